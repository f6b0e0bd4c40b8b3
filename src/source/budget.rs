//! Limits on what an archive may make us read, counted on the bytes actually produced.
//!
//! An archive's headers are written by whoever packed it, so no size it declares is
//! trusted: every decompressor's output runs through a [`RatioReader`] (compression ratio),
//! and every stream handed to the parser or spooled for a nested archive runs through a
//! [`LeafReader`] (single entry size, and total bytes of the whole input). A reader that
//! passes a limit fails the read with a [`LimitHit`], so a bomb costs at most the limit
//! in time and nothing in memory.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Small outputs get this much slack above the ratio: a short text of repeated lines
/// compresses far better than any real dump, and is no bomb.
const RATIO_SLACK: u64 = 1 << 20;

/// A limit that stopped a read; carried inside the `io::Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stopped after {read} bytes: over {what} ({max})")]
pub struct LimitHit {
    pub what: &'static str,
    pub max: u64,
    pub read: u64,
    /// Whether the whole input must stop (its total budget is spent), not just this entry.
    pub total: bool,
}

impl LimitHit {
    pub fn of(e: &io::Error) -> Option<&LimitHit> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<LimitHit>())
    }
}

fn hit(what: &'static str, max: u64, read: u64, total: bool) -> io::Error {
    io::Error::other(LimitHit {
        what,
        max,
        read,
        total,
    })
}

/// Bytes counted across readers (the compressed input of a gzip stream, the output of a
/// whole 7z archive, the total of a top-level input).
pub type Counter = Rc<Cell<u64>>;

/// Where the compressed size to compare against comes from.
#[derive(Debug, Clone)]
pub enum Compressed {
    /// Known up front (a zip entry's compressed size, a 7z archive's size).
    Fixed(u64),
    /// Counted as the decompressor consumes it (gzip).
    Counted(Counter),
    /// Counted as the decompressor consumes it, from this count on (a zip entry, whose
    /// declared compressed size is the archive's word: a forged one once let 100 KB
    /// inflate to 100 MB within the ratio).
    Since(Counter, u64),
}

/// Counts the bytes read through it (a zip archive's file: what its entries' readers
/// actually consume); seeks pass through.
pub struct Metered<R> {
    pub inner: R,
    pub count: Counter,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for Metered<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Fails once the output is more than `ratio` times the compressed input (+ slack).
/// `produced` may be shared by several readers of one unit (the entries of a 7z archive).
pub struct RatioReader<R> {
    inner: R,
    compressed: Compressed,
    ratio: u64,
    produced: Counter,
}

impl<R: Read> RatioReader<R> {
    pub fn new(inner: R, compressed: Compressed, ratio: u64, produced: Counter) -> Self {
        RatioReader {
            inner,
            compressed,
            ratio,
            produced,
        }
    }
}

impl<R: Read> Read for RatioReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let produced = self.produced.get() + n as u64;
        self.produced.set(produced);
        let compressed = match &self.compressed {
            Compressed::Fixed(c) => *c,
            Compressed::Counted(c) => c.get(),
            Compressed::Since(c, start) => c.get().saturating_sub(*start),
        };
        let max = self
            .ratio
            .saturating_mul(compressed)
            .saturating_add(RATIO_SLACK);
        if produced > max {
            return Err(hit(
                "limits.max_compression_ratio",
                self.ratio,
                produced,
                false,
            ));
        }
        Ok(n)
    }
}

/// Counts what it passes through into a shared counter (a decompressor's input).
pub struct CountingReader<R> {
    pub inner: R,
    pub count: Counter,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A stream's bytes as they reach the parser (or a nested archive's spool): bounded per
/// entry and, through the shared `total`, per top-level input.
pub struct LeafReader<'r> {
    inner: &'r mut dyn Read,
    read: u64,
    entry_max: u64,
    total: Counter,
    total_max: u64,
}

impl<'r> LeafReader<'r> {
    pub fn new(inner: &'r mut dyn Read, entry_max: u64, total: Counter, total_max: u64) -> Self {
        LeafReader {
            inner,
            read: 0,
            entry_max,
            total,
            total_max,
        }
    }
}

impl Read for LeafReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let total = self.total.get() + n as u64;
        self.total.set(total);
        if self.read > self.entry_max {
            return Err(hit(
                "limits.max_entry_bytes",
                self.entry_max,
                self.read,
                false,
            ));
        }
        if total > self.total_max {
            return Err(hit("limits.max_archive_bytes", self.total_max, total, true));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut dyn Read) -> (u64, Option<LimitHit>) {
        let mut buf = [0u8; 4096];
        let mut n = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (n, None),
                Ok(k) => n += k as u64,
                Err(e) => return (n, LimitHit::of(&e).cloned()),
            }
        }
    }

    #[test]
    fn ratio_is_checked_on_produced_bytes() {
        let data = vec![0u8; 3 << 20];
        let mut r = RatioReader::new(
            &data[..],
            Compressed::Fixed(10_000),
            100,
            Counter::default(),
        );
        let (n, hit) = drain(&mut r);
        let hit = hit.expect("3 MiB from 10 kB at ratio 100 is a bomb");
        assert_eq!(hit.what, "limits.max_compression_ratio");
        assert!(n <= 100 * 10_000 + RATIO_SLACK, "{n}");
        // The same output from enough input passes.
        let mut r = RatioReader::new(
            &data[..],
            Compressed::Fixed(1 << 20),
            100,
            Counter::default(),
        );
        assert_eq!(drain(&mut r), (3 << 20, None));
    }

    #[test]
    fn leaf_limits_entry_and_shared_total() {
        let total = Counter::default();
        let data = vec![1u8; 10_000];
        let mut src = &data[..];
        let mut a = LeafReader::new(&mut src, 20_000, total.clone(), 15_000);
        assert_eq!(drain(&mut a), (10_000, None));
        let mut src = &data[..];
        let mut b = LeafReader::new(&mut src, 20_000, total.clone(), 15_000);
        let (_, hit) = drain(&mut b);
        let hit = hit.unwrap();
        assert!(
            hit.total && hit.what == "limits.max_archive_bytes",
            "{hit:?}"
        );
        let mut src = &data[..];
        let mut c = LeafReader::new(&mut src, 5_000, Counter::default(), u64::MAX);
        let (_, hit) = drain(&mut c);
        assert_eq!(hit.unwrap().what, "limits.max_entry_bytes");
    }
}
