//! Feeds: where dumps come from when nobody hands leakwatch a file.
//!
//! The stage before `source` in the pipeline. A feed is a TOML file in the feeds
//! directory (`[feeds] dir`): a name, a kind, a cron schedule, and the options of its kind.
//! This module parses and validates those files; the kinds' fetchers live in the
//! submodules and hand what they fetch to the same pipeline as `leakwatch ingest`:
//!
//! - `http`: dumps and archives over HTTP(S), optionally through a SOCKS5 proxy (Tor);
//! - `directory`: a drop directory, each new or changed file read once;
//! - `range`: a k-anonymous range API, asked about 5-hex prefixes only;
//! - `hibp`: the Have I Been Pwned v3 API for the organisation's own domains.
//!
//! A feed file is checked as strictly as the main config: unknown keys are errors that
//! name the file and the key.

pub mod client;
pub mod directory;
pub mod hibp;
pub mod http;
pub mod range;
pub mod spool;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::schedule::Schedule;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("feeds directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("feed {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("feed {path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("feeds {first} and {second} are both named `{name}`")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// One feed, parsed and validated.
#[derive(Debug, Clone)]
pub struct Feed {
    pub name: String,
    pub file: PathBuf,
    pub schedule: Schedule,
    pub enabled: bool,
    /// A random delay of up to this many seconds after each firing.
    pub jitter_secs: u64,
    pub kind: FeedKind,
}

#[derive(Debug, Clone)]
pub enum FeedKind {
    Http(http::HttpFeed),
    Directory(directory::DirectoryFeed),
    Range(range::RangeFeed),
    Hibp(hibp::HibpFeed),
}

impl FeedKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedKind::Http(_) => "http",
            FeedKind::Directory(_) => "directory",
            FeedKind::Range(_) => "range",
            FeedKind::Hibp(_) => "hibp",
        }
    }
}

/// The keys every feed has; the rest of the file belongs to its kind.
#[derive(Debug, Deserialize)]
struct Common {
    name: String,
    kind: String,
    schedule: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    jitter_secs: u64,
}

const COMMON_KEYS: [&str; 5] = ["name", "kind", "schedule", "enabled", "jitter_secs"];

fn yes() -> bool {
    true
}

impl Feed {
    /// Parses one feed file's text; `path` names it in errors. Relative paths inside are
    /// taken as they are (relative to the working directory, like the main config's).
    pub fn parse(text: &str, path: &Path) -> Result<Feed, FeedError> {
        let invalid = |message: String| FeedError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let key = |key: &str, message: String| FeedError::Key {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
        let mut common = toml::Table::new();
        let mut rest = toml::Table::new();
        for (k, v) in table {
            if COMMON_KEYS.contains(&k.as_str()) {
                common.insert(k, v);
            } else {
                rest.insert(k, v);
            }
        }
        let c: Common = common
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().trim_end().to_string()))?;
        if c.name.is_empty()
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(key(
                "name",
                "use letters, digits, `-`, `_` and `.` only".into(),
            ));
        }
        let schedule = Schedule::parse(&c.schedule).map_err(|e| key("schedule", e.message))?;
        let options = |e: toml::de::Error| invalid(e.message().trim_end().to_string());
        // Network kinds share the client's keys: split them off, so that each struct can
        // still deny the keys it does not know.
        let (client_keys, own_keys): (toml::Table, toml::Table) = if c.kind == "directory" {
            (toml::Table::new(), rest)
        } else {
            rest.into_iter()
                .partition(|(k, _)| client::ClientOptions::KEYS.contains(&k.as_str()))
        };
        let client = || -> Result<client::ClientOptions, FeedError> {
            client_keys.clone().try_into().map_err(options)
        };
        let kind = match c.kind.as_str() {
            "http" => {
                let mut h: http::HttpFeed = own_keys.try_into().map_err(options)?;
                h.client = client()?;
                FeedKind::Http(h)
            }
            "directory" => FeedKind::Directory(own_keys.try_into().map_err(options)?),
            "range" => {
                let mut r: range::RangeFeed = own_keys.try_into().map_err(options)?;
                r.client = client()?;
                FeedKind::Range(r)
            }
            "hibp" => {
                let mut h: hibp::HibpFeed = own_keys.try_into().map_err(options)?;
                h.client = client()?;
                FeedKind::Hibp(h)
            }
            other => {
                return Err(key(
                    "kind",
                    format!("`{other}`; expected http, directory, range or hibp"),
                ))
            }
        };
        let feed = Feed {
            name: c.name,
            file: path.to_path_buf(),
            schedule,
            enabled: c.enabled,
            jitter_secs: c.jitter_secs,
            kind,
        };
        feed.validate()
            .map_err(|(k, message)| key(k, message.to_string()))?;
        Ok(feed)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match &self.kind {
            FeedKind::Http(h) => h.validate(),
            FeedKind::Directory(d) => d.validate(),
            FeedKind::Range(r) => r.validate(),
            FeedKind::Hibp(h) => h.validate(),
        }
    }
}

/// Every `*.toml` file in `dir`, parsed. Bad files are returned as errors beside the good
/// ones, so that `check` lists them all and a reload can refuse the set as a whole.
pub fn load_dir(dir: &Path) -> (Vec<Feed>, Vec<FeedError>) {
    let mut feeds: Vec<Feed> = Vec::new();
    let mut errors = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(source) => {
            errors.push(FeedError::Dir {
                path: dir.to_path_buf(),
                source,
            });
            return (feeds, errors);
        }
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(FeedError::Invalid {
                    path,
                    message: e.to_string(),
                });
                continue;
            }
        };
        match Feed::parse(&text, &path) {
            Ok(f) => {
                if let Some(first) = feeds.iter().find(|g| g.name == f.name) {
                    errors.push(FeedError::Duplicate {
                        name: f.name.clone(),
                        first: first.file.clone(),
                        second: path,
                    });
                } else {
                    feeds.push(f);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (feeds, errors)
}

/// Loads the configured feeds; an error in any file fails the whole set (the daemon keeps
/// the set it has rather than run half of a new one).
pub fn load(cfg: &crate::config::Config) -> Result<Vec<Feed>, Vec<FeedError>> {
    let Some(dir) = &cfg.feeds.dir else {
        return Ok(Vec::new());
    };
    let (feeds, errors) = load_dir(dir);
    if errors.is_empty() {
        Ok(feeds)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Feed, String> {
        Feed::parse(text, Path::new("feeds.d/x.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_parses_with_its_defaults() {
        let f = parse(
            "name = \"dumps\"\nkind = \"http\"\nschedule = \"*/15 * * * *\"\nurls = [\"https://dumps.example/a.txt\"]\n",
        )
        .unwrap();
        assert!(f.enabled);
        let FeedKind::Http(h) = &f.kind else { panic!() };
        assert_eq!(h.urls.len(), 1);
        assert_eq!(h.client.retries, 4);
        let f = parse("name = \"drop\"\nkind = \"directory\"\nschedule = \"* * * * *\"\npath = \"/srv/drop\"\nenabled = false\n").unwrap();
        assert!(!f.enabled);
        assert_eq!(f.kind.as_str(), "directory");
        let f = parse("name = \"r\"\nkind = \"range\"\nschedule = \"0 3 * * *\"\nbase_url = \"https://range.example\"\n").unwrap();
        assert_eq!(f.kind.as_str(), "range");
        let f = parse(
            "name = \"h\"\nkind = \"hibp\"\nschedule = \"0 4 * * *\"\napi_key_file = \"/run/k\"\n",
        )
        .unwrap();
        assert_eq!(f.kind.as_str(), "hibp");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            ("name = \"a\"\nkind = \"ftp\"\nschedule = \"* * * * *\"\n", "key `kind`"),
            ("name = \"a b\"\nkind = \"http\"\nschedule = \"* * * * *\"\nurls = [\"http://x\"]\n", "key `name`"),
            ("name = \"a\"\nkind = \"http\"\nschedule = \"* * *\"\nurls = [\"http://x\"]\n", "key `schedule`"),
            ("name = \"a\"\nkind = \"http\"\nschedule = \"* * * * *\"\nurlz = [\"http://x\"]\n", "unknown field `urlz`"),
            ("name = \"a\"\nkind = \"http\"\nschedule = \"* * * * *\"\nurls = []\n", "key `urls`"),
            ("name = \"a\"\nkind = \"http\"\nschedule = \"* * * * *\"\nurls = [\"ftp://x/y\"]\n", "key `urls`"),
            ("name = \"a\"\nkind = \"http\"\nschedule = \"* * * * *\"\nurls = [\"http://x\"]\nproxy = \"socks4://127.0.0.1:1\"\n", "key `proxy`"),
            ("name = \"a\"\nkind = \"directory\"\nschedule = \"* * * * *\"\n", "missing field `path`"),
            ("name = \"a\"\nkind = \"range\"\nschedule = \"* * * * *\"\nbase_url = \"https://r\"\nrequests_per_second = 0\n", "key `requests_per_second`"),
            ("kind = \"range\"\nschedule = \"* * * * *\"\n", "missing field `name`"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains("feeds.d/x.toml"), "{e}");
            assert!(e.contains(want), "{text}: {e} (want {want})");
        }
    }

    #[test]
    fn a_directory_is_loaded_in_order_and_bad_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let good = "kind = \"directory\"\nschedule = \"* * * * *\"\npath = \"/x\"\n";
        std::fs::write(dir.path().join("b.toml"), format!("name = \"b\"\n{good}")).unwrap();
        std::fs::write(dir.path().join("a.toml"), format!("name = \"a\"\n{good}")).unwrap();
        std::fs::write(dir.path().join("c.toml"), format!("name = \"a\"\n{good}")).unwrap();
        std::fs::write(dir.path().join("d.toml"), "name = ").unwrap();
        std::fs::write(dir.path().join("README.md"), "not a feed").unwrap();
        let (feeds, errors) = load_dir(dir.path());
        let names: Vec<_> = feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(errors.len(), 2);
        assert!(matches!(&errors[0], FeedError::Duplicate { name, .. } if name == "a"));
        assert!(errors[1].to_string().contains("d.toml"));
    }
}
