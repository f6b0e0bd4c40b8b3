//! `directory` feeds: a drop directory where people or other tools put dumps.
//!
//! Every new or changed file is read once. A file is known by its path, size and
//! modification time; when those change its content hash (SHA-256) decides, so that a file
//! touched or renamed is not read again. Files still being written are left for the next
//! run: names starting with `.` or ending in `.part`/`.tmp`, and files modified in the
//! last `settle_secs`. After reading, a file can be moved to `processed_dir`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::store::SeenFile;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFeed {
    pub path: PathBuf,
    /// Where read files are moved; inside `path` or elsewhere. Kept in place if unset.
    #[serde(default)]
    pub processed_dir: Option<PathBuf>,
    /// Files modified this recently are left for the next run (still being copied).
    #[serde(default = "default_settle")]
    pub settle_secs: u64,
    /// Tried on encrypted archives (zip and 7z); sellers publish them with the logs.
    #[serde(default)]
    pub archive_passwords: Vec<String>,
}

fn default_settle() -> u64 {
    10
}

impl DirectoryFeed {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must not be empty".into()));
        }
        if self.processed_dir.as_deref() == Some(self.path.as_path()) {
            return Err(("processed_dir", "must differ from path".into()));
        }
        Ok(())
    }
}

/// A file of the drop directory and what is known of it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub size: u64,
    pub mtime: i64,
}

/// Whether a file lies in an infected machine's folder (a stealer log extracted into the
/// drop directory): its `Passwords.txt`, device file or cookies.
pub fn in_device_folder(c: &Candidate) -> bool {
    crate::parse::device::classify(&c.path.display().to_string()).is_some()
}

/// The files in groups to be read together: the files of one machine's folder (by the
/// folder, wherever they come in the listing), and every other file alone. In the
/// listing's order of each group's first file.
pub fn by_device_folder(
    files: Vec<Candidate>,
    drop_dir: &Path,
) -> Vec<(Option<String>, Vec<Candidate>)> {
    // The device folders: where a file is a stealer log's own (passwords, device info,
    // cookies). Any other file below one (a screenshot, a browser's history) is of it too,
    // but for the drop directory itself (a `Passwords.txt` dropped at its top).
    let top = drop_dir.display().to_string();
    let roots: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|c| {
            let name = c.path.display().to_string();
            crate::parse::device::classify(&name).map(|f| f.root.to_string())
        })
        .collect();
    let root_of = |name: &str| {
        if let Some(f) = crate::parse::device::classify(name) {
            return Some(f.root.to_string());
        }
        crate::parse::device::folder_above(name, |r| {
            r.len() > top.len() && r.starts_with(top.as_str()) && roots.contains(r)
        })
        .map(str::to_string)
    };
    let mut groups: Vec<(Option<String>, Vec<Candidate>)> = Vec::new();
    let mut by_root: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for c in files {
        let name = c.path.display().to_string();
        match root_of(&name) {
            Some(root) => match by_root.get(&root) {
                Some(&i) => groups[i].1.push(c),
                None => {
                    by_root.insert(root.clone(), groups.len());
                    groups.push((Some(root), vec![c]));
                }
            },
            None => groups.push((None, vec![c])),
        }
    }
    groups
}

/// The files ready to be looked at, in name order, skipping the processed directory and
/// files still being written. Unreadable entries are returned as messages.
pub fn scan(
    feed: &DirectoryFeed,
    now: i64,
) -> Result<(Vec<Candidate>, Vec<String>), std::io::Error> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let processed = feed.processed_dir.as_deref().map(absolute);
    walk(
        &feed.path,
        processed.as_deref(),
        feed.settle_secs,
        now,
        &mut out,
        &mut problems,
        0,
    )?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((out, problems))
}

fn walk(
    dir: &Path,
    skip: Option<&Path>,
    settle: u64,
    now: i64,
    out: &mut Vec<Candidate>,
    problems: &mut Vec<String>,
    depth: u32,
) -> Result<(), std::io::Error> {
    let rd = std::fs::read_dir(dir)?;
    for e in rd {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                problems.push(format!("{}: {err}", dir.display()));
                continue;
            }
        };
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
            continue;
        }
        // Not followed: a link could lead the feed anywhere on the machine.
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(err) => {
                problems.push(format!("{}: {err}", path.display()));
                continue;
            }
        };
        if meta.is_dir() {
            if skip.is_some_and(|s| absolute(&path) == s) || depth >= 8 {
                continue;
            }
            if let Err(err) = walk(&path, skip, settle, now, out, problems, depth + 1) {
                problems.push(format!("{}: {err}", path.display()));
            }
        } else if meta.is_file() {
            let mtime = mtime_of(&meta);
            if now - mtime < settle as i64 {
                continue;
            }
            out.push(Candidate {
                path,
                size: meta.len(),
                mtime,
            });
        }
    }
    Ok(())
}

fn mtime_of(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether `c` needs reading, given what the store remembers of its path. Cheap first
/// (size and time), then the content hash, computed only when they differ.
pub enum Verdict {
    Known,
    /// Same content as a file already read (touched, copied or renamed): remember it, skip it.
    SameContent(SeenFile),
    New(SeenFile),
}

pub fn judge(
    c: &Candidate,
    by_path: Option<&SeenFile>,
    content_seen: impl Fn(&[u8; 32]) -> bool,
) -> std::io::Result<Verdict> {
    if let Some(s) = by_path {
        if s.size == c.size && s.mtime == c.mtime {
            return Ok(Verdict::Known);
        }
    }
    let sha256 = hash_file(&c.path)?;
    let seen = SeenFile {
        size: c.size,
        mtime: c.mtime,
        sha256,
    };
    if by_path.is_some_and(|s| s.sha256 == sha256) || content_seen(&sha256) {
        Ok(Verdict::SameContent(seen))
    } else {
        Ok(Verdict::New(seen))
    }
}

fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Moves a read file into `processed_dir`, keeping its path below the drop directory and
/// never overwriting: a name already taken gets a numeric suffix.
pub fn move_processed(feed: &DirectoryFeed, file: &Path) -> std::io::Result<PathBuf> {
    let Some(dest_root) = &feed.processed_dir else {
        return Ok(file.to_path_buf());
    };
    let rel = file.strip_prefix(&feed.path).unwrap_or(file);
    let mut dest = dest_root.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut n = 1;
    while dest.exists() {
        dest = dest_root.join(format!("{}.{n}", rel.display()));
        n += 1;
    }
    std::fs::rename(file, &dest)?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(dir: &Path) -> DirectoryFeed {
        DirectoryFeed {
            path: dir.to_path_buf(),
            processed_dir: Some(dir.join("processed")),
            settle_secs: 0,
            archive_passwords: Vec::new(),
        }
    }

    #[test]
    fn scan_skips_partial_hidden_processed_and_fresh_files() {
        let d = tempfile::tempdir().unwrap();
        let f = feed(d.path());
        std::fs::create_dir_all(d.path().join("processed")).unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        for name in [
            "a.txt",
            "sub/b.txt",
            ".hidden",
            "c.part",
            "d.tmp",
            "processed/old.txt",
        ] {
            std::fs::write(d.path().join(name), "x@example.net:pw\n").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link.txt")).unwrap();
        let now = crate::timefmt::Clock::now(&crate::timefmt::SystemClock);
        let (found, problems) = scan(&f, now).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|c| c.path.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.txt", "sub/b.txt"]);
        assert!(problems.is_empty());
        let settled = DirectoryFeed {
            settle_secs: 3600,
            ..f
        };
        assert!(
            scan(&settled, now).unwrap().0.is_empty(),
            "fresh files wait"
        );
    }

    #[test]
    fn a_touched_or_renamed_file_is_recognised_by_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, "x@example.net:pw\n").unwrap();
        let c = Candidate {
            path: p.clone(),
            size: 17,
            mtime: 1,
        };
        let Verdict::New(seen) = judge(&c, None, |_| false).unwrap() else {
            panic!("new")
        };
        assert!(matches!(
            judge(&c, Some(&seen), |_| false).unwrap(),
            Verdict::Known
        ));
        let touched = Candidate {
            mtime: 2,
            ..c.clone()
        };
        assert!(matches!(
            judge(&touched, Some(&seen), |_| false).unwrap(),
            Verdict::SameContent(_)
        ));
        let renamed = Candidate {
            path: p.clone(),
            ..c.clone()
        };
        assert!(matches!(
            judge(&renamed, None, |h| *h == seen.sha256).unwrap(),
            Verdict::SameContent(_)
        ));
        std::fs::write(&p, "y@example.net:pw\n").unwrap();
        assert!(matches!(
            judge(&touched, Some(&seen), |_| false).unwrap(),
            Verdict::New(_)
        ));
    }

    #[test]
    fn processed_files_move_without_overwriting() {
        let d = tempfile::tempdir().unwrap();
        let f = feed(d.path());
        for round in 0..2 {
            let p = d.path().join("a.txt");
            std::fs::write(&p, format!("{round}")).unwrap();
            let dest = move_processed(&f, &p).unwrap();
            assert!(!p.exists());
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), round.to_string());
        }
        assert!(d.path().join("processed/a.txt").exists());
        assert!(d.path().join("processed/a.txt.1").exists());
    }
}
