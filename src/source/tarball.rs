//! tar archives and gzip streams (so `.tar.gz`/`.tgz` too), read strictly in order.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::budget::{Compressed, Counter, CountingReader, RatioReader};
use super::walk::{Flow, Walker};

impl Walker<'_, '_> {
    /// A gzip layer keeps its name: `logs.tar.gz!Dev1/Passwords.txt` reads better than
    /// `logs.tar.gz!logs.tar!Dev1/Passwords.txt`.
    pub(super) fn gzip(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> Flow {
        let consumed = Counter::default();
        let counted = CountingReader {
            inner: input,
            count: consumed.clone(),
        };
        let ratio = self.limits().max_compression_ratio;
        let mut out = RatioReader::new(
            MultiGzDecoder::new(counted),
            Compressed::Counted(consumed),
            ratio,
            Counter::default(),
        );
        match self.stream(name, &mut out, depth) {
            Ok(flow) => flow,
            Err(e) => {
                self.broken(name, "gzip", e);
                Flow::Failed
            }
        }
    }

    /// Entries are read raw: the `tar` crate reads a GNU long name or a PAX header whole
    /// into memory, whatever size its header declares (a 2.5 MB `.tar.gz` once took
    /// 1.3 GB). Here at most [`MAX_TAR_META`] bytes of one are kept; a larger one is
    /// reported, its rest skipped through the ratio limit like any entry's bytes, and the
    /// entry it names read under its short name.
    pub(super) fn tar(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> Flow {
        let mut archive = tar::Archive::new(input);
        let entries = match archive.entries() {
            Ok(e) => e.raw(true),
            Err(e) => {
                self.broken(name, "tar", e);
                return Flow::Failed;
            }
        };
        let mut files = 0u64;
        let mut long_name: Option<Vec<u8>> = None;
        for (i, entry) in entries.enumerate() {
            if self.must_stop() || !self.count_entry(name) {
                return Flow::Stop;
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    // A tar has no index: after a broken header nothing more can be found.
                    self.broken(name, "tar", e);
                    return Flow::Failed;
                }
            };
            let kind = entry.header().entry_type();
            let (gnu_name, pax) = (kind.is_gnu_longname(), kind.is_pax_local_extensions());
            if gnu_name || pax || kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
                let declared = entry.size();
                let mut meta = Vec::new();
                if let Err(e) = (&mut entry).take(MAX_TAR_META).read_to_end(&mut meta) {
                    self.broken(name, "tar", e);
                    return Flow::Failed;
                }
                if declared > MAX_TAR_META {
                    self.skip(
                        &format!("{name}!#{i}"),
                        format!(
                            "a {} header of {declared} bytes, over the {MAX_TAR_META} read; the entry after it keeps its short name",
                            if pax { "PAX" } else { "GNU long-name" }
                        ),
                    );
                    long_name = None;
                } else if gnu_name {
                    while meta.last() == Some(&0) {
                        meta.pop();
                    }
                    long_name = Some(meta);
                } else if pax {
                    if let Some(path) = pax_path(&meta) {
                        long_name = Some(path.to_vec());
                    }
                }
                continue;
            }
            let named = long_name.take();
            if !kind.is_file() {
                continue;
            }
            files += 1;
            let raw = match &named {
                Some(n) => String::from_utf8_lossy(n).into_owned(),
                None => String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            };
            let entry_name = self.entry_name(name, &raw);
            let flow = self.stream_reported(&entry_name, &mut entry, depth);
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        self.note_empty(name, "tar", files);
        Flow::Done
    }
}

/// Bytes of a GNU long name or PAX header kept (a path is at most 4 KiB on Linux; a PAX
/// header may hold a few other records).
pub const MAX_TAR_META: u64 = 64 << 10;

/// The `path` record of a PAX header (`LEN path=VALUE\n` records), if it has one.
fn pax_path(mut meta: &[u8]) -> Option<&[u8]> {
    let mut path = None;
    while !meta.is_empty() {
        let space = meta.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&meta[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > meta.len() {
            return path;
        }
        let record = &meta[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value);
        }
        meta = &meta[len..];
    }
    path
}
