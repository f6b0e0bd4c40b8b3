//! `directory` feeds: a drop directory where people or other tools put dumps.
//!
//! Every new or changed file is read once. A file is known by its path, size and
//! modification time; when those change its content hash (SHA-256) decides, so that a file
//! touched or renamed is not read again. Files still being written are left for the next
//! run: names starting with `.` or ending in `.part`/`.tmp`, and files modified in the
//! last `settle_secs`. After reading, a file can be moved to `processed_dir`.
//!
//! Whoever can write here can plant links and FIFOs: everything below the drop directory
//! is listed, opened and moved through its descriptor ([`DropDir`]); links and special
//! files are refused with their reason in the run's row.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::source::beneath::{kind_name, Refused, Tree};
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
    /// Below the drop directory: how it is opened and moved.
    pub rel: PathBuf,
    pub size: u64,
    pub mtime: i64,
    /// Why it is not read (a link, a FIFO, a device), said in the run's row.
    pub refused: Option<String>,
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

/// A drop directory open for one run: its files listed, opened and moved relative to its
/// descriptor (`source::beneath`), so that a link or FIFO put there by whoever uploads
/// cannot lead the run out of the tree or hang it.
pub struct DropDir {
    path: PathBuf,
    tree: Tree,
    /// The processed folder, or why it cannot be used (a link planted in its place).
    processed: Option<Result<Tree, String>>,
    /// The processed folder's place below the drop directory, when it is inside it.
    processed_rel: Option<PathBuf>,
}

impl DropDir {
    pub fn open(feed: &DirectoryFeed) -> std::io::Result<DropDir> {
        let tree = Tree::open(&feed.path)?;
        let top = absolute(&feed.path);
        let mut processed_rel = None;
        let processed = feed.processed_dir.as_deref().map(|p| {
            let p = absolute(p);
            match p.strip_prefix(&top) {
                // Inside the drop directory, where uploaders write: no link followed.
                Ok(rel) => {
                    processed_rel = Some(rel.to_path_buf());
                    tree.subtree_made(rel).map_err(|e| e.to_string())
                }
                // The admin's own path elsewhere.
                Err(_) => std::fs::create_dir_all(&p)
                    .and_then(|()| Tree::open(&p))
                    .map_err(|e| e.to_string()),
            }
        });
        Ok(DropDir {
            path: feed.path.clone(),
            tree,
            processed,
            processed_rel,
        })
    }

    /// The files ready to be looked at, in name order, skipping the processed folder and
    /// files still being written. Links and special files are returned refused, with the
    /// reason; folders that cannot be listed as messages.
    pub fn scan(&self, settle: u64, now: i64) -> (Vec<Candidate>, Vec<String>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let skip = match &self.processed {
            Some(Ok(t)) => t.id().ok(),
            _ => None,
        };
        if let Some(Err(e)) = &self.processed {
            problems.push(format!("processed_dir: {e}"));
        }
        let mut w = Walk {
            top: self,
            skip,
            settle,
            now,
            out: &mut out,
            problems: &mut problems,
        };
        w.dir(Path::new(""), 0);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        (out, problems)
    }

    /// Opens a listed file for reading: below the drop directory's descriptor, no link
    /// followed, regular files only.
    pub fn open_file(&self, rel: &Path) -> Result<File, Refused> {
        self.tree.file(rel)
    }

    /// Whether `c` needs reading, given what the store remembers of its path. Cheap first
    /// (size and time), then the content hash, computed only when they differ.
    pub fn judge(
        &self,
        c: &Candidate,
        by_path: Option<&SeenFile>,
        content_seen: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<Verdict, Refused> {
        if let Some(s) = by_path {
            if s.size == c.size && s.mtime == c.mtime {
                return Ok(Verdict::Known);
            }
        }
        let sha256 = hash_file(self.open_file(&c.rel)?)?;
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

    /// Moves a read file into `processed_dir`, keeping its place below the drop directory
    /// and never overwriting: a name already taken gets a numeric suffix. No link is
    /// followed on either side.
    pub fn move_processed(&self, feed: &DirectoryFeed, c: &Candidate) -> Result<PathBuf, String> {
        let (Some(processed), Some(root)) = (&self.processed, &feed.processed_dir) else {
            return Ok(c.path.clone());
        };
        let to = processed
            .as_ref()
            .map_err(|e| format!("processed_dir: {e}"))?;
        let rel = self.tree.move_to(&c.rel, to).map_err(|e| e.to_string())?;
        Ok(root.join(rel))
    }
}

struct Walk<'a> {
    top: &'a DropDir,
    skip: Option<(u64, u64)>,
    settle: u64,
    now: i64,
    out: &'a mut Vec<Candidate>,
    problems: &'a mut Vec<String>,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &Path, depth: u32) {
        let entries = match self.top.tree.list(rel) {
            Ok(e) => e,
            Err(err) => {
                let shown = self.top.path.join(rel);
                self.problems.push(format!("{}: {err}", shown.display()));
                return;
            }
        };
        for e in entries {
            let name = e.name.to_string_lossy();
            if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
                continue;
            }
            let rel = rel.join(&e.name);
            if self.top.processed_rel.as_deref() == Some(rel.as_path()) {
                continue;
            }
            match e.kind {
                FileType::Directory => {
                    if self.skip == Some(e.id) || depth >= 8 {
                        continue;
                    }
                    self.dir(&rel, depth + 1);
                }
                FileType::RegularFile => {
                    if self.now - e.mtime < self.settle as i64 {
                        continue;
                    }
                    self.out.push(Candidate {
                        path: self.top.path.join(&rel),
                        rel,
                        size: e.size,
                        mtime: e.mtime,
                        refused: None,
                    });
                }
                // Not followed, not opened: a link could lead the feed anywhere on the
                // machine, a FIFO would hang it. Said, so that the admin sees it.
                kind => {
                    let reason = match kind {
                        FileType::Symlink => Refused::Link,
                        k => Refused::Special(kind_name(k)),
                    };
                    self.out.push(Candidate {
                        path: self.top.path.join(&rel),
                        rel,
                        size: 0,
                        mtime: e.mtime,
                        refused: Some(reason.to_string()),
                    });
                }
            }
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub enum Verdict {
    Known,
    /// Same content as a file already read (touched, copied or renamed): remember it, skip it.
    SameContent(SeenFile),
    New(SeenFile),
}

fn hash_file(mut f: File) -> std::io::Result<[u8; 32]> {
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

    fn now() -> i64 {
        crate::timefmt::Clock::now(&crate::timefmt::SystemClock)
    }

    #[test]
    fn scan_skips_partial_hidden_processed_and_fresh_files_and_refuses_links() {
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
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).unwrap();
        let drop = DropDir::open(&f).unwrap();
        let (found, problems) = drop.scan(0, now());
        let names: Vec<_> = found
            .iter()
            .map(|c| {
                let rel = c.rel.display().to_string();
                assert_eq!(c.path, d.path().join(&c.rel));
                match &c.refused {
                    Some(why) => format!("{rel} ({why})"),
                    None => rel,
                }
            })
            .collect();
        assert_eq!(
            names,
            [
                "a.txt",
                "etc (refused: a symbolic link, not followed)",
                "link.txt (refused: a symbolic link, not followed)",
                "sub/b.txt"
            ]
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            drop.scan(3600, now()).0.iter().all(|c| c.refused.is_some()),
            "fresh files wait"
        );
    }

    #[test]
    fn a_file_swapped_after_the_scan_for_a_link_or_a_fifo_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "root:secret\n").unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a.txt"), "x@example.net:pw\n").unwrap();
        std::fs::write(d.path().join("b.txt"), "y@example.net:pw\n").unwrap();
        let drop = DropDir::open(&feed(d.path())).unwrap();
        let (found, _) = drop.scan(0, now());
        assert_eq!(found.len(), 2);
        // Between the scan and the read: the folder becomes a link out, the file a FIFO.
        std::fs::remove_dir_all(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("sub")).unwrap();
        std::fs::rename(outside.path().join("shadow"), outside.path().join("a.txt")).unwrap();
        std::fs::remove_file(d.path().join("b.txt")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("b.txt"),
            FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        for c in &found {
            let err = match drop.judge(c, None, |_| false) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{} was read", c.rel.display()),
            };
            assert!(err.starts_with("refused: "), "{err}");
            assert!(drop.open_file(&c.rel).is_err());
        }
    }

    #[test]
    fn a_touched_or_renamed_file_is_recognised_by_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, "x@example.net:pw\n").unwrap();
        let drop = DropDir::open(&feed(d.path())).unwrap();
        let c = Candidate {
            path: p.clone(),
            rel: "a.txt".into(),
            size: 17,
            mtime: 1,
            refused: None,
        };
        let Verdict::New(seen) = drop.judge(&c, None, |_| false).unwrap() else {
            panic!("new")
        };
        assert!(matches!(
            drop.judge(&c, Some(&seen), |_| false).unwrap(),
            Verdict::Known
        ));
        let touched = Candidate {
            mtime: 2,
            ..c.clone()
        };
        assert!(matches!(
            drop.judge(&touched, Some(&seen), |_| false).unwrap(),
            Verdict::SameContent(_)
        ));
        assert!(matches!(
            drop.judge(&c, None, |h| *h == seen.sha256).unwrap(),
            Verdict::SameContent(_)
        ));
        std::fs::write(&p, "y@example.net:pw\n").unwrap();
        assert!(matches!(
            drop.judge(&touched, Some(&seen), |_| false).unwrap(),
            Verdict::New(_)
        ));
    }

    #[test]
    fn processed_files_move_without_overwriting_nor_leaving_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let f = feed(d.path());
        let drop = DropDir::open(&f).unwrap();
        for round in 0..2 {
            std::fs::write(d.path().join("a.txt"), format!("{round}")).unwrap();
            let (found, _) = drop.scan(0, now());
            let dest = drop.move_processed(&f, &found[0]).unwrap();
            assert!(!d.path().join("a.txt").exists());
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), round.to_string());
        }
        assert!(d.path().join("processed/a.txt").exists());
        assert!(d.path().join("processed/a.txt.1").exists());
        // A link planted in processed/ where the file's folder goes: refused, file kept.
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("processed/sub")).unwrap();
        let (found, _) = drop.scan(0, now());
        let err = drop.move_processed(&f, &found[0]).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(d.path().join("sub/b.txt").exists());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
