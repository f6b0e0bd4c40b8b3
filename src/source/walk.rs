//! The archive walker: one input in, every stream inside it out, whatever the nesting.
//!
//! Containers are told by their first bytes, never by their name (stealer-log sellers
//! rename freely). zip and 7z need to seek (their directory is at the end), so a nested
//! one is first copied into an encrypted, unlinked [`Spool`]; tar and gzip are read as
//! streams. Nothing is ever extracted to a file system path, so an entry named
//! `../../etc/passwd` is only a label; it is still reported, because an archive built
//! that way was built to attack someone.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use super::budget::{Counter, LeafReader, LimitHit};
use super::{clean_name, read_up_to, Mapped, SourceError, StreamHandler};
use crate::config::Limits;
use crate::feed::spool::Spool;

/// Bytes looked at to tell a container (tar's magic is at offset 257).
const HEAD: usize = 512;

/// What an archive walk needs besides the input.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions<'a> {
    pub limits: &'a Limits,
    /// Tried in order on encrypted entries and archives (after no password at all).
    pub passwords: &'a [String],
    /// Where nested zip and 7z archives are spooled, encrypted, to be read with seeks.
    pub spool_dir: &'a Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Zip,
    SevenZ,
    Tar,
    Gzip,
    Rar,
    Plain,
}

impl Container {
    pub fn sniff(head: &[u8]) -> Container {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Container::Zip
        } else if head.starts_with(b"7z\xBC\xAF\x27\x1C") {
            Container::SevenZ
        } else if head.starts_with(b"\x1F\x8B") {
            Container::Gzip
        } else if head.starts_with(b"Rar!\x1A\x07") {
            Container::Rar
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Container::Tar
        } else {
            Container::Plain
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Container::Zip => "zip",
            Container::SevenZ => "7z",
            Container::Tar => "tar",
            Container::Gzip => "gzip",
            Container::Rar => "rar",
            Container::Plain => "plain",
        }
    }
}

/// How reading one stream ended, for the container around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Done,
    /// This stream failed (reported); the container goes on with the next entry.
    Failed,
    /// The input's total budget is spent or the handler asked to stop: stop everything.
    Stop,
}

pub struct Walker<'a, 'h> {
    pub(super) opts: WalkOptions<'a>,
    pub(super) handler: &'h mut dyn StreamHandler,
    /// Bytes handed to the parser or spooled, across every layer of the input.
    total: Counter,
    /// Entries looked at, across every layer.
    pub(super) entries: u64,
    pub(super) stopped: bool,
}

impl<'a, 'h> Walker<'a, 'h> {
    pub fn new(opts: WalkOptions<'a>, handler: &'h mut dyn StreamHandler) -> Self {
        Walker {
            opts,
            handler,
            total: Counter::default(),
            entries: 0,
            stopped: false,
        }
    }

    pub(super) fn limits(&self) -> &Limits {
        self.opts.limits
    }

    /// The bytes handed on or spooled so far across the input's layers (shared).
    pub(super) fn total_counter(&self) -> Counter {
        self.total.clone()
    }

    pub(super) fn broken(&mut self, path: &str, kind: &'static str, message: impl ToString) {
        self.handler.error(SourceError::Archive {
            path: path.to_string(),
            kind,
            message: message.to_string(),
        });
    }

    pub(super) fn io_failed(&mut self, path: &str, source: io::Error) {
        self.handler.error(SourceError::Io {
            path: path.to_string(),
            source,
        });
    }

    pub(super) fn skip(&mut self, path: &str, reason: impl Into<String>) {
        self.handler.error(SourceError::Skipped {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// Whether the walk must stop (budget spent, shutdown, database gone).
    pub(super) fn must_stop(&mut self) -> bool {
        self.stopped || self.handler.should_stop()
    }

    /// Counts one more entry; false (reported once) when over the limit.
    pub(super) fn count_entry(&mut self, archive: &str) -> bool {
        self.entries += 1;
        let max = self.limits().max_archive_entries;
        if self.entries > max {
            self.skip(
                archive,
                format!("stopped after {max} entries: limits.max_archive_entries"),
            );
            self.stopped = true;
            return false;
        }
        true
    }

    /// A file on disk: a plain one is mapped and handed over in place ([`Mapped`]), the
    /// rest read as [`Walker::seekable`] inputs.
    pub fn file(&mut self, name: &str, f: File) -> Flow {
        match self.mapped(name, &f) {
            Some(flow) => flow,
            None => self.seekable(name, f, 0),
        }
    }

    /// Maps a plain file within the limits; `None` when it is not one or cannot be mapped
    /// (then it is read as a stream, which enforces the limits as it reads).
    fn mapped(&mut self, name: &str, f: &File) -> Option<Flow> {
        let meta = f.metadata().ok().filter(|m| m.is_file())?;
        let size = meta.len();
        let limits = self.limits();
        let total = self.total.get() + size;
        if size == 0 || size > limits.max_entry_bytes || total > limits.max_archive_bytes {
            return None;
        }
        let map = Mapped::open(f, size).ok()?;
        let head = &map.bytes()[..HEAD.min(map.bytes().len())];
        if Container::sniff(head) != Container::Plain {
            return None;
        }
        self.total.set(total);
        let mut result = self.handler.mapped(name, &map);
        if result.is_ok() && map.shrunk() {
            result = Err(io::Error::other(super::SHRUNK));
        }
        Some(match result {
            Ok(()) => Flow::Done,
            Err(e) => {
                self.io_failed(name, e);
                Flow::Failed
            }
        })
    }

    /// An input that can be re-read (a file, a spool): zip and 7z are read in place.
    pub fn seekable<R: Read + Seek>(&mut self, name: &str, mut r: R, depth: u32) -> Flow {
        let mut head = [0u8; HEAD];
        let n = read_up_to(&mut r, &mut head);
        let kind = Container::sniff(&head[..n]);
        if let Err(e) = r.seek(SeekFrom::Start(0)) {
            self.io_failed(name, e);
            return Flow::Failed;
        }
        match kind {
            Container::Zip | Container::SevenZ => {
                if !self.may_open(name, kind, depth) {
                    return Flow::Failed;
                }
                if kind == Container::Zip {
                    self.zip(name, r, depth + 1)
                } else {
                    self.sevenz(name, r, depth + 1)
                }
            }
            _ => self.stream_reported(name, &mut r, depth),
        }
    }

    /// Checks the nesting depth before opening a container found at `depth`.
    fn may_open(&mut self, name: &str, kind: Container, depth: u32) -> bool {
        let max = self.limits().max_archive_depth;
        if depth + 1 > max {
            self.skip(
                name,
                format!(
                    "{} archive nested {} deep, over limits.max_archive_depth ({max})",
                    kind.as_str(),
                    depth + 1
                ),
            );
            return false;
        }
        true
    }

    /// [`Walker::stream`], with an error reported under the stream's name: the container
    /// goes on with its next entry.
    pub(super) fn stream_reported(&mut self, name: &str, r: &mut dyn Read, depth: u32) -> Flow {
        match self.stream(name, r, depth) {
            Ok(flow) => flow,
            Err(e) => {
                self.io_failed(name, e);
                Flow::Failed
            }
        }
    }

    /// A stream read once, in order. `Err` only when its very first bytes cannot be read
    /// (nothing was handed on): a 7z reader takes that as a wrong password.
    pub(super) fn stream(&mut self, name: &str, r: &mut dyn Read, depth: u32) -> io::Result<Flow> {
        let mut head = Vec::with_capacity(HEAD);
        r.take(HEAD as u64).read_to_end(&mut head)?;
        let kind = Container::sniff(&head);
        let mut input = Cursor::new(head).chain(r);
        if kind != Container::Plain && !self.may_open(name, kind, depth) {
            return Ok(Flow::Failed);
        }
        Ok(match kind {
            Container::Plain => self.deliver(name, &mut input),
            Container::Rar => self.rar(name, &mut input, depth + 1),
            Container::Gzip => self.gzip(name, &mut input, depth + 1),
            Container::Tar => self.tar(name, &mut input, depth + 1),
            Container::Zip | Container::SevenZ => match self.spool(name, &mut input) {
                Some(spool) => self.seekable(name, spool, depth),
                None => Flow::Failed,
            },
        })
    }

    /// Copies a nested zip/7z into an encrypted, unlinked spool, within the limits.
    fn spool(&mut self, name: &str, input: &mut dyn Read) -> Option<Spool> {
        let limits = self.limits();
        let (entry_max, total_max) = (limits.max_entry_bytes, limits.max_archive_bytes);
        let mut spool = match Spool::create(self.opts.spool_dir) {
            Ok(s) => s,
            Err(e) => {
                let at = format!("{name}: spool in {}", self.opts.spool_dir.display());
                self.io_failed(&at, e);
                return None;
            }
        };
        let mut leaf = LeafReader::new(input, entry_max, self.total.clone(), total_max);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match leaf.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = spool.append(&buf[..n]) {
                        self.io_failed(name, e);
                        return None;
                    }
                }
                Err(e) => {
                    if LimitHit::of(&e).is_some_and(|h| h.total) {
                        self.stopped = true;
                    }
                    self.io_failed(name, e);
                    return None;
                }
            }
        }
        if let Err(e) = spool.flush() {
            self.io_failed(name, e);
            return None;
        }
        Some(spool)
    }

    /// Hands a plain stream to the handler, bounded by the entry and total limits.
    fn deliver(&mut self, name: &str, input: &mut dyn Read) -> Flow {
        let limits = self.limits();
        let (entry_max, total_max) = (limits.max_entry_bytes, limits.max_archive_bytes);
        let mut leaf = LeafReader::new(input, entry_max, self.total.clone(), total_max);
        match self.handler.stream(name, &mut leaf) {
            Ok(()) => Flow::Done,
            Err(e) => {
                let total = LimitHit::of(&e).is_some_and(|h| h.total);
                self.io_failed(name, e);
                if total {
                    self.stopped = true;
                    Flow::Stop
                } else {
                    Flow::Failed
                }
            }
        }
    }

    /// Reports an archive in which nothing could be looked at: a damaged index can make a
    /// full archive look empty, and silence would hide it.
    pub(super) fn note_empty(&mut self, name: &str, kind: &'static str, files: u64) {
        if files == 0 {
            self.broken(name, kind, "holds no file entry");
        }
    }

    /// `archive!entry` for an entry, reporting names built to escape an extraction
    /// directory. The entry is read all the same: as a stream it cannot escape anything.
    pub(super) fn entry_name(&mut self, archive: &str, raw: &str) -> String {
        let name = format!("{archive}!{}", clean_name(raw));
        let absolute = raw.starts_with(['/', '\\'])
            || (raw.len() >= 2
                && raw.as_bytes()[1] == b':'
                && raw.as_bytes()[0].is_ascii_alphabetic());
        let climbs = raw.split(['/', '\\']).any(|c| c == "..");
        if absolute || climbs {
            self.handler.error(SourceError::Suspicious {
                path: name.clone(),
                reason: if absolute {
                    "absolute path"
                } else {
                    "path climbs out with `..`"
                },
            });
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_told_by_magic() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: &[(&[u8], Container)] = &[
            (b"PK\x03\x04rest", Container::Zip),
            (b"PK\x05\x06", Container::Zip),
            (b"7z\xBC\xAF\x27\x1C\x00\x04", Container::SevenZ),
            (b"\x1F\x8B\x08", Container::Gzip),
            (b"Rar!\x1A\x07\x01\x00", Container::Rar),
            (&tar, Container::Tar),
            (b"URL: x\n", Container::Plain),
            (b"", Container::Plain),
        ];
        for (head, want) in cases {
            assert_eq!(Container::sniff(head), *want, "{head:?}");
        }
    }
}
