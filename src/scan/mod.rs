//! The fast path for combo and ULP lists: the parse → identity → filter stages run on
//! several cores over large line-aligned chunks, and only the rare lines that may be ours
//! come back to the reference path and the store.
//!
//! Why: a dump is billions of lines, and every identity in it must be hashed and looked up
//! (the public's accounts are at any provider, so no domain prefilter can help). Doing that
//! line by line through trait objects, one SHA-1 digest and one SipHash Bloom lookup at a
//! time, ran at about 70 MB/s. Here:
//!
//! - the calling thread only reads: it cuts the input into chunks of whole lines (about
//!   512 KiB) and hands them to `threads` workers, so a decompressor or a decrypting reader
//!   runs beside the parsing, not before it; a plain file on disk is cut where it is
//!   mapped ([`scan_mapped`]), without a copy;
//! - a worker screens its chunk as the reference does, settles the common line shapes in
//!   one pass of bit masks (`parse::shape`) and the rest with the reference parser's own
//!   functions (`parse::parse_credential_line`), builds keys straight into SHA-1 blocks and tests
//!   them in batches ([`chunk`]); nothing is allocated, locked or sent per line;
//! - results come back once per chunk and are applied **in input order**: line numbers,
//!   malformed-line reports and findings are exactly those of the reference path, which
//!   the tests check line for line.
//!
//! Memory is bounded by `2 × threads` chunk buffers, and for a mapped file the pages not
//! yet released (at most 8 MiB past the last chunk applied, and the chunks in flight),
//! whatever the input's size.

mod chunk;
mod masks;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{mpsc, Mutex};

use crate::filter::AccountFilter;
use crate::identity::block::KeyBlocks;
use crate::parse::{Malformed, ParseStats};
use crate::source::{Mapped, SHRUNK};

use chunk::ChunkOut;

/// Bytes of lines per chunk. Large enough that a chunk's hand-over costs nothing next to
/// its parsing (about 1 ms), small enough to stay in a core's cache with its classes and
/// keep memory flat. Measured on two threads, in alternation: 512 KiB was 3 % faster than
/// 256 KiB on a mapped file and on a gzip stream; 128 KiB and 1 MiB were slower.
pub const CHUNK_BYTES: usize = 512 << 10;

/// What the fast path needs: shared read-only by every worker.
pub struct Setup<'a> {
    pub filter: &'a AccountFilter,
    pub keys: KeyBlocks<'a>,
    pub max_line: usize,
    /// Worker threads; 1 parses on the calling thread.
    pub threads: usize,
    /// Bytes per chunk: [`CHUNK_BYTES`] but in tests (raised to the line limit).
    pub chunk_bytes: usize,
}

/// Where the lines the fast path did not settle go, in input order.
pub trait ScanSink {
    /// A line that may be ours, or that only the reference path can judge; `text` is
    /// trimmed, valid UTF-8, and holds a record.
    fn deferred(&mut self, line: u64, text: &str);
    /// A malformed line. Only the first few of each reason per chunk are reported; all
    /// are counted in the stats.
    fn malformed(&mut self, line: u64, why: Malformed);
    /// Bytes of the input consumed so far.
    fn progress(&mut self, _bytes: u64) {}
    /// Stops reading at the next chunk (shutdown, or a store failure).
    fn should_stop(&self) -> bool {
        false
    }
}

/// Counters of one scanned stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Lines, malformed lines, records and bytes, counted as the reference parser does.
    pub parse: ParseStats,
    /// Identities hashed and settled by the fast path (deferred ones are not counted here).
    pub identities: u64,
    /// Lines settled by the fast path with identities, and with none; the deferred lines
    /// are sorted by the sink.
    pub with_identity: u64,
    pub no_identity: u64,
    /// Lines handed to the sink.
    pub deferred: u64,
}

/// Scans a combo/ULP stream. `Err` only for an I/O error of `input`; every chunk read
/// before it has been applied to `sink`.
pub fn scan_lines(
    input: &mut dyn Read,
    setup: &Setup<'_>,
    sink: &mut dyn ScanSink,
) -> io::Result<ScanStats> {
    let mut chunks = Chunker::new(input, setup.max_line, setup.chunk_bytes);
    run(&mut chunks, None, setup, sink)
}

/// Scans a mapped combo/ULP file in place: as [`scan_lines`], without copying its bytes.
/// `Err` when the file shrank while it was read; the chunks read before are applied.
pub fn scan_mapped(
    map: &Mapped,
    setup: &Setup<'_>,
    sink: &mut dyn ScanSink,
) -> io::Result<ScanStats> {
    let mut chunks = MapChunker {
        map,
        pos: 0,
        max_line: setup.max_line,
        chunk: setup.chunk_bytes.max(setup.max_line + 1),
    };
    run(&mut chunks, Some(map), setup, sink)
}

/// The read-parse-apply loop over a source of chunks.
fn run(
    chunks: &mut dyn Cut,
    map: Option<&Mapped>,
    setup: &Setup<'_>,
    sink: &mut dyn ScanSink,
) -> io::Result<ScanStats> {
    let mapped = map.map_or(&[][..], Mapped::bytes);
    let mut apply = Apply {
        map,
        ..Apply::default()
    };
    if setup.threads <= 1 {
        let mut buf = chunks.new_buffer();
        let mut masks = masks::Masks::default();
        while !sink.should_stop() {
            let out = match chunks.next(&mut buf)? {
                Piece::End => break,
                Piece::TooLong(bytes) => too_long(bytes),
                Piece::Lines { at, len, first } => {
                    let mut out = ChunkOut {
                        buf: if at.is_none() {
                            std::mem::take(&mut buf)
                        } else {
                            Vec::new()
                        },
                        at,
                        len,
                        first,
                        ..ChunkOut::default()
                    };
                    chunk::scan_in(setup, &mut out, &mut masks, mapped);
                    out
                }
            };
            if let Some(b) = apply.one(out, sink)? {
                buf = b;
            }
        }
        return apply.finish();
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<ChunkOut>(setup.threads);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<ChunkOut>();
        for _ in 0..setup.threads {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                let mut masks = masks::Masks::default();
                loop {
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(mut job)) = job else { return };
                    chunk::scan_in(setup, &mut job, &mut masks, mapped);
                    if done_tx.send(job).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut free: Vec<Vec<u8>> = (0..setup.threads * 2)
            .map(|_| chunks.new_buffer())
            .collect();
        let (mut seq, mut in_flight) = (0u64, 0usize);
        let mut pending: BTreeMap<u64, ChunkOut> = BTreeMap::new();
        let mut result = Ok(());
        // Applies every finished chunk that is next in input order.
        let mut settle = |out: ChunkOut,
                          pending: &mut BTreeMap<u64, ChunkOut>,
                          free: &mut Vec<Vec<u8>>,
                          result: &mut io::Result<()>,
                          sink: &mut dyn ScanSink| {
            pending.insert(out.seq, out);
            while let Some(next) = pending.remove(&apply.next_seq) {
                match apply.one(next, sink) {
                    Ok(Some(b)) => free.push(b),
                    Ok(None) => {}
                    Err(e) => {
                        if result.is_ok() {
                            *result = Err(e);
                        }
                    }
                }
            }
        };
        while !sink.should_stop() && result.is_ok() {
            let Some(mut buf) = free.pop() else {
                let out = done_rx.recv().expect("workers outlive the queue");
                in_flight -= 1;
                settle(out, &mut pending, &mut free, &mut result, sink);
                continue;
            };
            let piece = match chunks.next(&mut buf) {
                Ok(p) => p,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let out = match piece {
                Piece::End => break,
                Piece::TooLong(bytes) => {
                    free.push(buf);
                    ChunkOut {
                        seq,
                        ..too_long(bytes)
                    }
                }
                Piece::Lines { at, len, first } => {
                    if at.is_some() {
                        free.push(std::mem::take(&mut buf));
                    }
                    job_tx
                        .send(ChunkOut {
                            seq,
                            buf,
                            at,
                            len,
                            first,
                            ..ChunkOut::default()
                        })
                        .expect("workers outlive the queue");
                    seq += 1;
                    in_flight += 1;
                    while let Ok(out) = done_rx.try_recv() {
                        in_flight -= 1;
                        settle(out, &mut pending, &mut free, &mut result, sink);
                    }
                    continue;
                }
            };
            seq += 1;
            settle(out, &mut pending, &mut free, &mut result, sink);
        }
        drop(job_tx);
        // Whatever was read is applied, even after an error or a stop: findings in the
        // chunks before it are not lost.
        while in_flight > 0 {
            let out = done_rx.recv().expect("workers outlive the queue");
            in_flight -= 1;
            settle(out, &mut pending, &mut free, &mut result, sink);
        }
        result.and_then(|()| apply.finish())
    })
}

/// The stand-in chunk for a dropped too-long line of `bytes` bytes.
fn too_long(bytes: u64) -> ChunkOut {
    ChunkOut {
        len: bytes as usize,
        lines: 1,
        malformed: 1,
        samples: vec![(1, Malformed::TooLong)],
        ..ChunkOut::default()
    }
}

/// Applies chunks in order to the sink and sums their counters.
#[derive(Default)]
struct Apply<'m> {
    next_seq: u64,
    stats: ScanStats,
    /// The mapped file the chunks are read from, if they are.
    map: Option<&'m Mapped>,
}

impl Apply<'_> {
    /// Applies the next chunk; gives its buffer back (none for a too-long line's stand-in
    /// or a chunk of the mapped file). `Err`, and nothing applied, once the mapped file
    /// has shrunk: its bytes may have been read as zeros.
    fn one(&mut self, out: ChunkOut, sink: &mut dyn ScanSink) -> io::Result<Option<Vec<u8>>> {
        if self.map.is_some_and(Mapped::shrunk) {
            return Err(shrunk(self.stats.parse.lines));
        }
        self.next_seq += 1;
        let base = self.stats.parse.lines;
        let bytes = match (out.at, self.map) {
            (Some(at), Some(map)) => &map.bytes()[at..at + out.len],
            _ => &out.buf[..],
        };
        let mut samples = out.samples.iter().peekable();
        for &(line, start, end) in &out.deferred {
            // Malformed reports and deferred lines interleaved, in line order.
            while let Some(&&(m, why)) = samples.peek() {
                if m > line {
                    break;
                }
                sink.malformed(base + m, why);
                samples.next();
            }
            // Screened by the worker: no NUL; UTF-8, or Windows-1252 as the worker read it.
            let text = crate::parse::decode::line_text(&bytes[start..end]);
            sink.deferred(base + line, text.trim());
        }
        for &(m, why) in samples {
            sink.malformed(base + m, why);
        }
        let s = &mut self.stats;
        s.parse.lines += out.lines;
        s.parse.entries += out.lines;
        s.parse.malformed += out.malformed;
        s.with_identity += out.bearing;
        s.no_identity += out.none;
        debug_assert_eq!(
            out.lines,
            out.bearing + out.none + out.malformed + out.deferred.len() as u64
        );
        s.parse.records += out.records;
        s.parse.bytes += out.len as u64;
        s.identities += out.identities;
        s.deferred += out.deferred.len() as u64;
        sink.progress(s.parse.bytes);
        if let (Some(at), Some(map)) = (out.at, self.map) {
            map.release(at + out.len);
        }
        Ok((!out.buf.is_empty()).then_some(out.buf))
    }

    /// The counters, or an error if the mapped file shrank after the last chunk.
    fn finish(self) -> io::Result<ScanStats> {
        if self.map.is_some_and(Mapped::shrunk) {
            return Err(shrunk(self.stats.parse.lines));
        }
        Ok(self.stats)
    }
}

fn shrunk(lines: u64) -> io::Error {
    let why = SHRUNK;
    io::Error::other(format!("{why}; stopped after line {lines}"))
}

/// One cut of the input.
enum Piece {
    /// `len` bytes of whole lines, at `at` in the mapped file, or else at the start of the
    /// buffer; `first` for the stream's first chunk.
    Lines {
        at: Option<usize>,
        len: usize,
        first: bool,
    },
    /// A line longer than the limit, of this many bytes (newline included), was dropped.
    TooLong(u64),
    End,
}

/// A source of chunks: a stream read into buffers, or a mapped file.
trait Cut {
    /// A buffer for [`Cut::next`]: a carried line, a chunk and 64 bytes more (the workers
    /// read a line's first 64 bytes at once, even at the end of the data).
    fn new_buffer(&self) -> Vec<u8>;
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Piece>;
}

/// Cuts a mapped file into chunks of whole lines, as [`Chunker`] does a stream, without
/// copying them, but for the last one: it is copied into a buffer, whose slack the
/// workers may read past the data (past the map's end would fault).
struct MapChunker<'m> {
    map: &'m Mapped,
    pos: usize,
    max_line: usize,
    chunk: usize,
}

impl Cut for MapChunker<'_> {
    fn new_buffer(&self) -> Vec<u8> {
        vec![0; self.chunk + self.max_line + 1 + 64]
    }

    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Piece> {
        let data = self.map.bytes();
        let (pos, rest) = (self.pos, &data[self.pos..]);
        let first = pos == 0;
        if rest.is_empty() {
            return Ok(Piece::End);
        }
        if rest.len() <= self.chunk + 64 {
            if buf.len() < self.chunk + self.max_line + 1 + 64 {
                *buf = self.new_buffer();
            }
            buf[..rest.len()].copy_from_slice(rest);
            self.pos = data.len();
            return Ok(Piece::Lines {
                at: None,
                len: rest.len(),
                first,
            });
        }
        self.map.populate(pos, pos + self.chunk + 64);
        match memchr::memrchr(b'\n', &rest[..self.chunk]) {
            Some(i) => {
                self.pos += i + 1;
                Ok(Piece::Lines {
                    at: Some(pos),
                    len: i + 1,
                    first,
                })
            }
            // No newline in a chunk (longer than the line limit): a too-long line.
            None => {
                let len = memchr::memchr(b'\n', &rest[self.chunk..])
                    .map_or(rest.len(), |i| self.chunk + i + 1);
                self.pos += len;
                Ok(Piece::TooLong(len as u64))
            }
        }
    }
}

/// Cuts a stream into chunks of whole lines, as `LineReader` would split them.
struct Chunker<'r> {
    input: &'r mut dyn Read,
    max_line: usize,
    chunk: usize,
    /// Bytes read but not yet in a chunk: the start of a line whose end is not read yet,
    /// or what followed a dropped too-long line.
    carry: Vec<u8>,
    eof: bool,
    started: bool,
}

impl<'r> Chunker<'r> {
    fn new(input: &'r mut dyn Read, max_line: usize, chunk: usize) -> Self {
        Chunker {
            input,
            max_line,
            chunk: chunk.max(max_line + 1),
            carry: Vec::new(),
            eof: false,
            started: false,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.input.read(buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the rest of a too-long line of which `dropped` bytes are already gone.
    fn skip_line(&mut self, buf: &mut [u8], mut dropped: u64) -> io::Result<Piece> {
        loop {
            let n = self.read(&mut buf[..self.chunk])?;
            if n == 0 {
                return Ok(Piece::TooLong(dropped));
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                self.carry.extend_from_slice(&buf[i + 1..n]);
                return Ok(Piece::TooLong(dropped + i as u64 + 1));
            }
            dropped += n as u64;
        }
    }
}

impl Cut for Chunker<'_> {
    fn new_buffer(&self) -> Vec<u8> {
        vec![0; self.chunk + self.max_line + 1 + 64]
    }

    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Piece> {
        if buf.len() < self.chunk + self.max_line + 1 + 64 {
            *buf = self.new_buffer();
        }
        let mut len = self.carry.len();
        buf[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        while len < self.chunk && !self.eof {
            let n = self.read(&mut buf[len..self.chunk + self.max_line + 1])?;
            len += n;
        }
        if len == 0 {
            return Ok(Piece::End);
        }
        let first = !std::mem::replace(&mut self.started, true);
        if self.eof {
            return Ok(Piece::Lines {
                at: None,
                len,
                first,
            });
        }
        match memchr::memrchr(b'\n', &buf[..len]) {
            Some(i) => {
                self.carry.extend_from_slice(&buf[i + 1..len]);
                Ok(Piece::Lines {
                    at: None,
                    len: i + 1,
                    first,
                })
            }
            // A chunk with no newline is part of one line longer than the limit.
            None => self.skip_line(buf, len as u64),
        }
    }
}

#[cfg(test)]
mod tests;
