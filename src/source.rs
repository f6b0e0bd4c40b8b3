//! Sources: the paths an admin names, turned into named byte streams for the parser.
//!
//! First stage of the pipeline. Directories are walked recursively (symbolic links to
//! directories are not followed, so a loop cannot trap the walk), zip archives are read
//! entry by entry as streams, never extracted to disk. Every archive read is bounded by the
//! configured limits, counted on the bytes actually decompressed rather than on the sizes
//! the archive claims. A file or entry that fails is reported with its name and the walk
//! goes on.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use crate::config::Limits;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not a readable zip archive: {message}")]
    Archive { path: String, message: String },
    #[error("{path}: skipped: {reason}")]
    Skipped { path: String, reason: String },
}

/// A file to read, with its size on disk (for progress).
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub size: u64,
}

/// Expands the given paths into the files to read, in a stable (sorted) order.
/// Paths that cannot be read are returned as errors beside the files that can.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<InputFile>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut errors, true);
    }
    (files, errors)
}

fn collect(p: &Path, files: &mut Vec<InputFile>, errors: &mut Vec<SourceError>, named: bool) {
    let io_err = |source| SourceError::Io {
        path: p.display().to_string(),
        source,
    };
    // A path named by the admin may be a link; links found inside directories are followed
    // only to files.
    let meta = if named {
        std::fs::metadata(p)
    } else {
        std::fs::symlink_metadata(p).and_then(|m| {
            if m.file_type().is_symlink() {
                std::fs::metadata(p).and_then(|t| {
                    if t.is_dir() {
                        Err(io::Error::other(
                            "symbolic link to a directory, not followed",
                        ))
                    } else {
                        Ok(t)
                    }
                })
            } else {
                Ok(m)
            }
        })
    };
    match meta {
        Err(e) => errors.push(io_err(e)),
        Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
            Err(e) => errors.push(io_err(e)),
            Ok(rd) => {
                let mut entries: Vec<PathBuf> =
                    rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                entries.sort();
                for e in entries {
                    collect(&e, files, errors, false);
                }
            }
        },
        Ok(m) if m.is_file() => files.push(InputFile {
            path: p.to_path_buf(),
            size: m.len(),
        }),
        Ok(_) => {} // sockets, fifos: not dumps
    }
}

/// What the walker hands each stream to.
pub trait StreamHandler {
    /// Reads one named stream. An `Err` is reported with the stream's name; the walk goes on.
    fn stream(&mut self, name: &str, input: &mut dyn Read) -> io::Result<()>;
    fn error(&mut self, error: SourceError);
    /// Compressed bytes of an archive entry done (plain files report through the parser).
    fn archive_progress(&mut self, _bytes: u64) {}
}

/// Reads one file: as a zip archive if it is one, else as a single stream.
pub fn read_file(file: &InputFile, limits: &Limits, handler: &mut dyn StreamHandler) {
    let name = file.path.display().to_string();
    match File::open(&file.path) {
        Ok(f) => read_input(&name, f, limits, handler),
        Err(source) => handler.error(SourceError::Io { path: name, source }),
    }
}

/// Reads one named input that can be re-read (a file, a download's spool): as a zip
/// archive if it is one, else as a single stream.
pub fn read_input<R: Read + Seek>(
    name: &str,
    mut f: R,
    limits: &Limits,
    handler: &mut dyn StreamHandler,
) {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut f, &mut magic);
    let is_zip = n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06");
    if is_zip {
        read_zip(f, name, limits, handler);
        return;
    }
    let mut input = io::Cursor::new(magic[..n].to_vec()).chain(f);
    if let Err(source) = handler.stream(name, &mut input) {
        handler.error(SourceError::Io {
            path: name.to_string(),
            source,
        });
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// Entry names come from the archive's author: shown, never used as a path, and cleaned
/// of control characters so that they cannot forge log lines.
fn clean_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn read_zip<R: Read + Seek>(f: R, name: &str, limits: &Limits, handler: &mut dyn StreamHandler) {
    let mut archive = match zip::ZipArchive::new(f) {
        Ok(a) => a,
        Err(e) => {
            return handler.error(SourceError::Archive {
                path: name.to_string(),
                message: e.to_string(),
            })
        }
    };
    let entries = archive.len() as u64;
    if entries > limits.max_archive_entries {
        handler.error(SourceError::Skipped {
            path: name.to_string(),
            reason: format!(
                "{entries} entries, over limits.max_archive_entries = {}",
                limits.max_archive_entries
            ),
        });
        return;
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                let reason = match e {
                    zip::result::ZipError::UnsupportedArchive(m) => m.to_string(),
                    other => other.to_string(),
                };
                handler.error(SourceError::Skipped {
                    path: format!("{name}!#{i}"),
                    reason,
                });
                continue;
            }
        };
        if entry.is_dir() {
            continue;
        }
        let entry_name = format!("{name}!{}", clean_name(entry.name()));
        let compressed = entry.compressed_size();
        let skip = |reason: String| SourceError::Skipped {
            path: entry_name.clone(),
            reason,
        };
        if entry.size() > limits.max_entry_bytes {
            handler.error(skip(format!(
                "declares {} bytes, over limits.max_entry_bytes",
                entry.size()
            )));
            continue;
        }
        let budget = Budget {
            entry_max: limits.max_entry_bytes,
            archive_left: limits.max_archive_bytes.saturating_sub(total),
            // Small entries get 1 MiB of slack: a short text of repeated lines compresses
            // far better than any real dump, and is no bomb.
            ratio_max: limits
                .max_compression_ratio
                .saturating_mul(compressed)
                .max(1 << 20),
        };
        let mut limited = LimitedReader {
            inner: &mut entry,
            read: 0,
            budget,
            nested_checked: false,
        };
        let result = handler.stream(&entry_name, &mut limited);
        total += limited.read;
        if let Err(e) = result {
            handler.error(SourceError::Io {
                path: entry_name,
                source: e,
            });
        }
        handler.archive_progress(compressed);
        if total >= limits.max_archive_bytes {
            handler.error(SourceError::Skipped {
                path: name.to_string(),
                reason: format!(
                    "stopped after {total} uncompressed bytes, limits.max_archive_bytes"
                ),
            });
            return;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    entry_max: u64,
    archive_left: u64,
    ratio_max: u64,
}

/// Counts decompressed bytes and fails the read as soon as a limit is passed, so a bomb
/// costs at most the limit, whatever the archive claims.
struct LimitedReader<'a, R> {
    inner: &'a mut R,
    read: u64,
    budget: Budget,
    nested_checked: bool,
}

impl<R: Read> Read for LimitedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.nested_checked && n >= 4 {
            self.nested_checked = true;
            if buf[..4] == *b"PK\x03\x04" {
                return Err(io::Error::other(
                    "nested zip archive: not read (nested archives are not supported yet)",
                ));
            }
        }
        self.read += n as u64;
        let b = self.budget;
        let limit = |what: &str, max: u64| {
            Err(io::Error::other(format!(
                "stopped after {} bytes: over {what} ({max})",
                self.read
            )))
        };
        if self.read > b.entry_max {
            return limit("limits.max_entry_bytes", b.entry_max);
        }
        if self.read > b.archive_left {
            return limit("limits.max_archive_bytes", b.archive_left);
        }
        if self.read > b.ratio_max {
            return limit("limits.max_compression_ratio", b.ratio_max);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Collect {
        streams: Vec<(String, Vec<u8>)>,
        errors: Vec<String>,
    }

    impl StreamHandler for Collect {
        fn stream(&mut self, name: &str, input: &mut dyn Read) -> io::Result<()> {
            let mut v = Vec::new();
            let r = input.read_to_end(&mut v);
            self.streams.push((name.to_string(), v));
            r.map(|_| ())
        }
        fn error(&mut self, e: SourceError) {
            self.errors.push(e.to_string());
        }
    }

    fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn walks_dirs_and_zips() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("a.txt"), b"x@example.net:1\n").unwrap();
        std::fs::write(d.path().join("b/c/d.txt"), b"y@example.net:2\n").unwrap();
        zip_with(
            &d.path().join("b/logs.zip"),
            &[
                ("Dev1/Passwords.txt", b"URL: a\n"),
                ("Dev2/x\n.txt", b"z\n"),
            ],
        );
        let (files, errors) = collect_files(&[d.path().to_path_buf(), d.path().join("missing")]);
        assert_eq!(files.len(), 3);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("missing"));
        let mut c = Collect::default();
        for f in &files {
            read_file(f, &Limits::default(), &mut c);
        }
        let names: Vec<&str> = c.streams.iter().map(|(n, _)| n.as_str()).collect();
        let want = [
            "a.txt",
            "c/d.txt",
            "logs.zip!Dev1/Passwords.txt",
            "logs.zip!Dev2/x?.txt",
        ];
        assert_eq!(names.len(), want.len());
        for (n, w) in names.iter().zip(want) {
            assert!(n.ends_with(w), "{n} should end with {w}");
        }
        assert!(c
            .streams
            .iter()
            .any(|(n, d)| n.ends_with("logs.zip!Dev1/Passwords.txt") && d == b"URL: a\n"));
        assert!(c
            .streams
            .iter()
            .any(|(n, _)| n.ends_with("logs.zip!Dev2/x?.txt")));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
    }

    #[test]
    fn bombs_and_nested_and_corrupt_archives_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let bomb = vec![b'a'; 8 << 20];
        zip_with(
            &d.path().join("bomb.zip"),
            &[("big.txt", &bomb), ("ok.txt", b"fine\n")],
        );
        let mut inner = Vec::new();
        {
            let mut w = zip::ZipWriter::new(io::Cursor::new(&mut inner));
            w.start_file("in.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"x").unwrap();
            w.finish().unwrap();
        }
        zip_with(&d.path().join("nested.zip"), &[("inner.zip", &inner)]);
        std::fs::write(d.path().join("corrupt.zip"), b"PK\x03\x04garbage").unwrap();
        let (files, _) = collect_files(&[d.path().to_path_buf()]);
        let mut c = Collect::default();
        for f in &files {
            read_file(f, &Limits::default(), &mut c);
        }
        let errs = c.errors.join("\n");
        assert!(
            errs.contains("bomb.zip!big.txt") && errs.contains("max_compression_ratio"),
            "{errs}"
        );
        assert!(
            errs.contains("nested.zip!inner.zip") && errs.contains("nested"),
            "{errs}"
        );
        assert!(errs.contains("corrupt.zip"), "{errs}");
        // The bomb was cut at the ratio limit, and the entry after it was still read.
        let big = c
            .streams
            .iter()
            .find(|(n, _)| n.ends_with("big.txt"))
            .unwrap();
        assert!(big.1.len() < 8 << 20);
        assert!(c
            .streams
            .iter()
            .any(|(n, d)| n.ends_with("bomb.zip!ok.txt") && d == b"fine\n"));
    }
}
