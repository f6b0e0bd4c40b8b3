//! Importing the organisation's directory from CSV, and keeping the Bloom filter in step.
//!
//! The CSV has a header row; `email` is required, `username`, `name` and `lang` (`fr` or
//! `en`, default `fr`) are optional, other columns are ignored. A bad row is reported by
//! line number and skipped; the rest is imported. Each import replaces the directory.

use std::io::Read;
use std::path::Path;

use crate::config::{Config, Lang};
use crate::filter::{AccountFilter, FilterError};
use crate::identity::{IdentityHash, IdentityKind, Normalizer};
use crate::store::{DirectoryAccount, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Header { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub accounts: u64,
    pub keys: u64,
    pub skipped: Vec<RowError>,
    pub generation: u64,
    pub filter_bytes: u64,
}

/// Parses a directory CSV into accounts with their identity keys. Pure: no I/O but `input`.
pub fn parse_directory<R: Read>(
    input: R,
    name: &str,
    norm: &Normalizer,
) -> Result<(Vec<DirectoryAccount>, Vec<RowError>), ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Header {
            path: name.into(),
            message: e.to_string(),
        })?
        .clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(n))
    };
    let email_col = col("email").ok_or_else(|| ImportError::Header {
        path: name.into(),
        message: "the header has no `email` column".into(),
    })?;
    let (user_col, name_col, lang_col) = (col("username"), col("name"), col("lang"));

    let mut accounts = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::<IdentityHash, u64>::new();
    let mut key = String::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                errors.push(RowError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let mut fail = |message: String| errors.push(RowError { line, message });
        let Some(raw_email) = field(Some(email_col)) else {
            fail("no email".into());
            continue;
        };
        if !norm.email_key(raw_email, &mut key) {
            fail(format!("`{raw_email}` is not an email address"));
            continue;
        }
        let email = key.clone();
        let lang = match field(lang_col) {
            None => Lang::Fr,
            Some(l) => match Lang::parse(l) {
                Some(l) => l,
                None => {
                    fail(format!("lang `{l}` is neither fr nor en"));
                    continue;
                }
            },
        };
        let mut keys = vec![(IdentityHash::of(&email), IdentityKind::Email)];
        let username = match field(user_col) {
            None => None,
            Some(u) => {
                if !norm.login_key(u, &mut key) {
                    fail(format!("username `{u}` is not a valid login"));
                    continue;
                }
                if norm.has_login_hosts() {
                    keys.push((IdentityHash::of(&key), IdentityKind::Login));
                }
                Some(key[crate::identity::LOGIN_KEY_PREFIX.len()..].to_string())
            }
        };
        if let Some((_, first)) = keys.iter().find_map(|(h, k)| seen.get(h).map(|l| (k, *l))) {
            fail(format!(
                "email or username already used on line {first}; row skipped"
            ));
            continue;
        }
        for (h, _) in &keys {
            seen.insert(*h, line);
        }
        accounts.push(DirectoryAccount {
            email,
            username,
            name: field(name_col).map(str::to_string),
            lang,
            keys,
        });
    }
    Ok((accounts, errors))
}

/// Imports a directory CSV file: replaces the directory in the store and rebuilds the filter.
pub fn import_file(
    cfg: &Config,
    store: &mut Store,
    path: &Path,
) -> Result<ImportReport, ImportError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        path: name.clone(),
        source,
    })?;
    let norm = Normalizer::new(&cfg.organization);
    let (accounts, skipped) = parse_directory(std::io::BufReader::new(file), &name, &norm)?;
    let generation = store.replace_directory(&accounts)?;
    let filter = rebuild_filter(cfg, store, generation)?;
    Ok(ImportReport {
        accounts: accounts.len() as u64,
        keys: accounts.iter().map(|a| a.keys.len() as u64).sum(),
        skipped,
        generation,
        filter_bytes: filter.size_bytes(),
    })
}

/// Builds the filter from the store's hashes and saves it in the state dir.
pub fn rebuild_filter(
    cfg: &Config,
    store: &Store,
    generation: u64,
) -> Result<AccountFilter, ImportError> {
    let n = store.identity_key_count()?;
    let mut filter = AccountFilter::with_capacity(n, cfg.filter.false_positive_rate, generation)?;
    store.for_each_identity_hash(|h| filter.insert(&h))?;
    filter.save(&AccountFilter::path_in(cfg.state_dir()))?;
    Ok(filter)
}

/// Loads the saved filter, rebuilding it when missing or older than the directory.
pub fn load_filter(cfg: &Config, store: &Store) -> Result<AccountFilter, ImportError> {
    let generation = store.directory_generation()?;
    let started = std::time::Instant::now();
    match AccountFilter::load(&AccountFilter::path_in(cfg.state_dir())) {
        Ok(f) if f.generation() == generation => {
            tracing::info!(
                keys = f.items(),
                bytes = f.size_bytes(),
                k = f.hashes_per_key(),
                design_rate = f.design_rate(),
                ms = started.elapsed().as_millis() as u64,
                "filter loaded"
            );
            Ok(f)
        }
        Ok(f) => {
            tracing::warn!(
                filter_generation = f.generation(),
                directory_generation = generation,
                "filter is stale, rebuilding from the directory"
            );
            rebuild_filter(cfg, store, generation)
        }
        Err(e) => {
            if generation > 0 {
                tracing::warn!(error = %e, "filter unreadable, rebuilding from the directory");
            }
            rebuild_filter(cfg, store, generation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_and_reported_by_line() {
        let csv = "\u{feff}Email,username,Name,lang,department\n\
            Jean.Dupont@Agence-Exemple.fr,JDupont,Jean Dupont,fr,RH\n\
            marie@example.net,,Marie,en,\n\
            not-an-address,,X,fr,\n\
            paul@example.net,,Paul,de,\n\
            ,,Nobody,fr,\n\
            jean.dupont+x@agence-exemple.fr,,Dup,fr,\n\
            other@agence-exemple.fr,jdupont,Dup,fr,\n\
            \"quoted, name\"@example.org,,\"Q, N\",EN\n";
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let (accounts, errors) = parse_directory(csv.as_bytes(), "dir.csv", &norm).unwrap();
        let emails: Vec<_> = accounts.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(
            emails,
            ["jean.dupont@agence-exemple.fr", "marie@example.net"]
        );
        assert_eq!(accounts[0].username.as_deref(), Some("jdupont"));
        assert_eq!(accounts[0].keys.len(), 2);
        assert_eq!(accounts[1].lang, Lang::En);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{errors:?}");
        assert!(errors[1].message.contains("lang `de`"));
        assert!(errors[3].message.contains("line 2"));
    }

    #[test]
    fn header_without_email_is_an_error() {
        let norm = Normalizer::from_parts(&["x.example"], &[]);
        let err = parse_directory("mail,name\na@x.example,A\n".as_bytes(), "d.csv", &norm)
            .unwrap_err()
            .to_string();
        assert!(err.contains("d.csv") && err.contains("email"), "{err}");
    }
}
