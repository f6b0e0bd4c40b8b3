//! Sources: the paths an admin names, turned into named byte streams for the parser.
//!
//! First stage of the pipeline. Directories are walked recursively (symbolic links to
//! directories are not followed, so a loop cannot trap the walk). Archives (zip, 7z, tar,
//! gzip, nested in one another up to a depth) are read entry by entry as streams and never
//! extracted (`walk`). Every archive read is bounded by the configured limits, counted on
//! the bytes actually decompressed rather than on the sizes the archive claims (`budget`).
//! A file or entry that fails is reported with its name and the walk goes on.

pub mod beneath;
mod budget;
mod mapped;
pub mod rar;
mod sevenz;
mod tarball;
mod walk;
mod zipped;

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use crate::parse::sheet::SheetKind;

pub use budget::LimitHit;
pub use mapped::{Mapped, SHRUNK};
pub use walk::{Container, WalkOptions};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not a readable {kind} archive: {message}")]
    Archive {
        path: String,
        kind: &'static str,
        message: String,
    },
    #[error("{path}: skipped: {reason}")]
    Skipped { path: String, reason: String },
    /// Read all the same (it is never extracted), but reported: built to attack.
    #[error("{path}: suspicious entry name ({reason}); read as a stream, never written to disk")]
    Suspicious { path: String, reason: &'static str },
}

impl SourceError {
    /// The file or entry the error is about, to be shown otherwise (a machine folder by
    /// its label).
    pub fn path_mut(&mut self) -> &mut String {
        match self {
            SourceError::Io { path, .. }
            | SourceError::Archive { path, .. }
            | SourceError::Skipped { path, .. }
            | SourceError::Suspicious { path, .. } => path,
        }
    }
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
    /// Compressed bytes of a top-level archive entry done (plain files report through the
    /// parser).
    fn archive_progress(&mut self, _bytes: u64) {}
    /// The names of an archive's file entries (`archive!entry`), before any is read: zip
    /// and 7z list them up front, so a machine folder is known before its first file.
    fn listed(&mut self, _names: &mut dyn Iterator<Item = String>) {}
    /// True once the walk should stop (shutdown, or a failure that makes going on useless).
    fn should_stop(&self) -> bool {
        false
    }
    /// A plain file on disk, mapped: handlers that can parse it in place do; by default it
    /// is read as a stream. The walker reports an error if the file shrank meanwhile.
    fn mapped(&mut self, name: &str, map: &Mapped) -> io::Result<()> {
        self.stream(name, &mut map.bytes())
    }
    /// Called after the last stream of one top-level input (a file, a download).
    fn input_done(&mut self, _name: &str) {}
    /// A spreadsheet (XLSX, ODS), handed over whole: its parts refer to each other. By
    /// default it is not read, and says so.
    fn workbook(
        &mut self,
        _name: &str,
        _kind: SheetKind,
        _input: &mut dyn ReadSeek,
    ) -> io::Result<()> {
        Err(io::Error::other("spreadsheets are not read here"))
    }
}

/// What a spreadsheet reader needs of its input.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Reads one file: as an archive if it is one, else as a single stream.
pub fn read_file(file: &InputFile, opts: WalkOptions<'_>, handler: &mut dyn StreamHandler) {
    let name = file.path.display().to_string();
    match beneath::open_regular(&file.path) {
        Ok(f) => read_open_file(&name, f, opts, handler),
        Err(e) => handler.error(e.at(name)),
    }
}

/// Reads one file opened by the caller: a plain one in place ([`Mapped`]), an archive
/// entry by entry.
pub fn read_open_file(name: &str, f: File, opts: WalkOptions<'_>, handler: &mut dyn StreamHandler) {
    walk::Walker::new(opts, handler).file(name, f);
    handler.input_done(name);
}

/// Reads one named input that can be re-read (a file, a download's spool): as an
/// archive if it is one, else as a single stream.
pub fn read_input<R: Read + Seek>(
    name: &str,
    input: R,
    opts: WalkOptions<'_>,
    handler: &mut dyn StreamHandler,
) {
    walk::Walker::new(opts, handler).seekable(name, input, 0);
    handler.input_done(name);
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
pub(crate) fn clean_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
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

    fn opts<'a>(limits: &'a Limits, spool: &'a Path) -> WalkOptions<'a> {
        WalkOptions {
            limits,
            passwords: &[],
            spool_dir: spool,
        }
    }

    /// Every file under `paths` read with the default limits, spooling into `spool`.
    fn read_paths(paths: &[PathBuf], spool: &Path) -> Collect {
        let (files, _) = collect_files(paths);
        let mut c = Collect::default();
        let limits = Limits::default();
        for f in &files {
            read_file(f, opts(&limits, spool), &mut c);
        }
        c
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

    /// `unar` (for RAR) installed from Debian's packages if missing, as the tests install
    /// what they need; a clear failure if it cannot be.
    fn ensure_unar() {
        // Tests run in parallel: one installs, the others wait for it (two `apt-get` at
        // once fail on dpkg's lock).
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        if rar::available_now() {
            return;
        }
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let _ = std::process::Command::new("apt-get")
                .args(["update", "-qq"])
                .status();
            let _ = std::process::Command::new("apt-get")
                .args(["install", "-y", "-qq", "unar"])
                .status();
        }
        assert!(
            rar::available_now(),
            "the RAR tests need `unar` and `lsar` (Debian package unar): apt-get install unar"
        );
    }

    /// A machine's folder, as the RAR tests pack it.
    fn rar_entries() -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "PC1/Passwords.txt".to_string(),
                b"URL: https://sso.example/\nUsername: a@example.net\nPassword: pw\n".to_vec(),
            ),
            ("PC1/Cookies/Chrome.txt".to_string(), b"x\n".repeat(5000)),
        ]
    }

    /// RAR 4 and RAR 5 archives (stored, written by `synth::pack`), at the top and inside
    /// a zip: every entry read, with its bytes, named inside its archive.
    #[test]
    fn rar_4_and_5_at_the_top_and_nested() {
        use crate::synth::pack;
        ensure_unar();
        let d = tempfile::tempdir().unwrap();
        let entries = rar_entries();
        std::fs::write(d.path().join("logs4.rar"), pack::rar4_stored(&entries)).unwrap();
        std::fs::write(d.path().join("logs5.rar"), pack::rar5_stored(&entries)).unwrap();
        let inner = pack::rar5_stored(&entries);
        zip_with(&d.path().join("outer.zip"), &[("part1.rar", &inner)]);
        let limits = Limits::default();
        for file in ["logs4.rar", "logs5.rar", "outer.zip"] {
            let mut c = Collect::default();
            let f = InputFile {
                path: d.path().join(file),
                size: 0,
            };
            read_file(&f, opts(&limits, d.path()), &mut c);
            assert!(c.errors.is_empty(), "{file}: {:?}", c.errors);
            assert_eq!(c.streams.len(), 2, "{file}");
            for ((name, bytes), (want_name, want)) in c.streams.iter().zip(&entries) {
                assert!(name.ends_with(&format!("!{want_name}")), "{name}");
                assert_eq!(bytes, want, "{name}");
            }
        }
        // Over the entry limit: reported, not read whole.
        let small = Limits {
            max_entry_bytes: 1000,
            ..Limits::default()
        };
        let mut c = Collect::default();
        let f = InputFile {
            path: d.path().join("logs5.rar"),
            size: 0,
        };
        read_file(&f, opts(&small, d.path()), &mut c);
        assert!(
            c.errors
                .iter()
                .any(|e| e.contains("logs5.rar") && e.contains("max_entry_bytes")),
            "{:?}",
            c.errors
        );
        // A RAR cut in half: reported by name.
        let cut = pack::rar5_stored(&entries);
        std::fs::write(d.path().join("cut.rar"), &cut[..cut.len() / 2]).unwrap();
        let mut c = Collect::default();
        let f = InputFile {
            path: d.path().join("cut.rar"),
            size: 0,
        };
        read_file(&f, opts(&limits, d.path()), &mut c);
        assert!(
            c.errors.iter().any(|e| e.contains("cut.rar")),
            "{:?} {:?}",
            c.errors,
            c.streams.len()
        );
    }

    /// An encrypted RAR 5 (AES-256, written by `synth::pack`), at the top and inside a
    /// zip: read with the password that opens it, after one that does not; with no
    /// password that opens it, each entry reported by name and none read. (Before this
    /// test, every encrypted RAR entry was refused: `lsar -t`'s "0 failed" was read as a
    /// failure.)
    #[test]
    fn encrypted_rar_5_read_with_its_password() {
        use crate::synth::pack;
        ensure_unar();
        let d = tempfile::tempdir().unwrap();
        let entries = rar_entries();
        let rar5 = pack::rar5_encrypted(&entries, "chan-pass", 3);
        std::fs::write(d.path().join("locked5.rar"), &rar5).unwrap();
        zip_with(&d.path().join("outer.zip"), &[("part1.rar", &rar5)]);
        let limits = Limits::default();
        let passwords = ["wrong".to_string(), "chan-pass".to_string()];
        for file in ["locked5.rar", "outer.zip"] {
            let f = InputFile {
                path: d.path().join(file),
                size: 0,
            };
            let mut c = Collect::default();
            let with = WalkOptions {
                passwords: &passwords,
                ..opts(&limits, d.path())
            };
            read_file(&f, with, &mut c);
            assert!(c.errors.is_empty(), "{file}: {:?}", c.errors);
            assert_eq!(c.streams.len(), 2, "{file}");
            for ((name, bytes), (want_name, want)) in c.streams.iter().zip(&entries) {
                assert!(name.ends_with(&format!("!{want_name}")), "{name}");
                assert_eq!(bytes, want, "{name}");
            }
            let mut c = Collect::default();
            let without = WalkOptions {
                passwords: &passwords[..1],
                ..opts(&limits, d.path())
            };
            read_file(&f, without, &mut c);
            assert!(c.streams.is_empty(), "{file}: read without its password");
            for (want_name, _) in &entries {
                assert!(
                    c.errors.iter().any(|e| e.contains(want_name.as_str())),
                    "{file}: {want_name} not reported: {:?}",
                    c.errors
                );
            }
        }
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
        let limits = Limits::default();
        for f in &files {
            read_file(f, opts(&limits, d.path()), &mut c);
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

    /// A zip entry whose declared compressed size is forged (here 200 MiB for about 8 KiB
    /// of deflate) is held to the ratio by the bytes its reader consumes: cut, reported.
    #[test]
    fn a_forged_compressed_size_does_not_widen_the_ratio() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("forged.zip");
        zip_with(&path, &[("big.txt", &vec![b'a'; 8 << 20])]);
        let mut bytes = std::fs::read(&path).unwrap();
        let forged = (200u32 << 20).to_le_bytes();
        // The local header's compressed size (offset 18) and the central directory's
        // (offset 20 of its entry).
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        bytes[18..22].copy_from_slice(&forged);
        let cd = bytes
            .windows(4)
            .rposition(|w| w == b"PK\x01\x02")
            .expect("a central directory entry");
        bytes[cd + 20..cd + 24].copy_from_slice(&forged);
        std::fs::write(&path, &bytes).unwrap();
        let c = read_paths(std::slice::from_ref(&path), d.path());
        let errs = c.errors.join("\n");
        assert!(
            errs.contains("forged.zip!big.txt") && errs.contains("max_compression_ratio"),
            "{errs}"
        );
        let read: usize = c.streams.iter().map(|(_, d)| d.len()).sum();
        assert!(read < 8 << 20, "{read} bytes read past the ratio");
    }

    /// GNU long names and PAX paths name their entries; one declared larger than what is
    /// kept is reported (it once was read whole into memory, whatever its size) and the
    /// entry after it is still read, under its short name.
    #[test]
    fn tar_long_names_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("Dev1/{}/Passwords.txt", "d".repeat(300));
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"one\n"[..]).unwrap();
        // A long-name header declaring 200 KB (the crate would keep it all).
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(200_000);
        h.set_path("././@LongLink").unwrap();
        h.set_cksum();
        b.append(&h, &vec![b'x'; 200_000][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "short.txt", &b"two\n"[..]).unwrap();
        // A PAX header with a path record.
        let record = "path=Dev2/pax-named.txt\n";
        let pax = format!("{} {record}", record.len() + 3);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(pax.len() as u64);
        h.set_path("PaxHeader/x").unwrap();
        h.set_cksum();
        b.append(&h, pax.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(6);
        h.set_mode(0o644);
        b.append_data(&mut h, "x.txt", &b"three\n"[..]).unwrap();
        std::fs::write(d.path().join("names.tar"), b.into_inner().unwrap()).unwrap();
        let c = read_paths(&[d.path().to_path_buf()], d.path());
        let names: Vec<String> = c
            .streams
            .iter()
            .map(|(n, _)| n.rsplit('!').next().unwrap().to_string())
            .collect();
        assert_eq!(names, [long.as_str(), "short.txt", "Dev2/pax-named.txt"]);
        let errs = c.errors.join("\n");
        assert!(
            errs.contains("GNU long-name header of 200000 bytes"),
            "{errs}"
        );
        assert_eq!(c.errors.len(), 1, "{errs}");
    }

    #[test]
    fn bombs_nesting_and_corrupt_archives() {
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
        std::fs::write(d.path().join("logs.rar"), b"Rar!\x1A\x07\x01\x00rest").unwrap();
        ensure_unar();
        let c = read_paths(&[d.path().to_path_buf()], d.path());
        let errs = c.errors.join("\n");
        assert!(
            errs.contains("bomb.zip!big.txt") && errs.contains("max_compression_ratio"),
            "{errs}"
        );
        assert!(errs.contains("corrupt.zip"), "{errs}");
        assert!(errs.contains("logs.rar") && errs.contains("rar"), "{errs}");
        assert_eq!(c.errors.len(), 3, "{errs}");
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
        // The nested zip was read, and named through both layers.
        assert!(c
            .streams
            .iter()
            .any(|(n, d)| n.ends_with("nested.zip!inner.zip!in.txt") && d == b"x"));

        // One level of nesting allowed: the inner zip is reported, not read.
        let shallow = Limits {
            max_archive_depth: 1,
            ..Limits::default()
        };
        let mut c = Collect::default();
        let (files, _) = collect_files(&[d.path().join("nested.zip")]);
        let nested = &files[0];
        read_file(nested, opts(&shallow, d.path()), &mut c);
        assert!(c.streams.is_empty());
        assert!(c.errors[0].contains("max_archive_depth"), "{:?}", c.errors);
    }
}
