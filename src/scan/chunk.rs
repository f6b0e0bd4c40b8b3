//! One chunk of whole lines, read by one worker: the per-line loop of the fast path.
//!
//! Each line is screened exactly as [`crate::parse::reader::LineReader`] and the reference
//! parser screen it (length limit, `\r`, NUL, UTF-8, trim), then split by the reference
//! parser's own functions. Only the key and its hash take the fast road
//! ([`KeyBlocks`]), in batches: keys are written into SHA-1 blocks, hashed together,
//! their filter blocks prefetched together, then tested. A line whose key may be one of
//! ours, or that the fast key builder will not decide, is handed back as *deferred*, to go
//! through the reference path and the store on the thread that owns them.

use crate::bytes;
use crate::identity::block::{hash_blocks, Fast, KeyBlocks};
use crate::identity::IdentityHash;
use crate::parse::shape::{self, Shape};
use crate::parse::{self, decode, ulp, Malformed, Record, Sink};

use super::masks::Masks;
use super::Setup;

/// The separators of combo lines: `:`, `;`, `|`, tab.
static COMBO_SEP: [bool; 256] = bytes::byte_set(b":;|\t");

/// Keys hashed together: enough to keep SHA-1 and memory busy, small enough for L1.
const BATCH: usize = 16;
/// Malformed lines per reason kept with their line number (for the log), per chunk.
const SAMPLES_PER_REASON: u8 = 5;

/// What a worker found in one chunk; line numbers are 1-based within the chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkOut {
    pub seq: u64,
    /// The chunk's bytes (given back to the reader for reuse); empty when they are
    /// read in place from a mapped file.
    pub buf: Vec<u8>,
    /// Where the chunk starts in the mapped file, if it is read there.
    pub at: Option<usize>,
    /// Bytes of input the chunk stands for: its lines at the start of `buf` (or at `at`
    /// in the mapped file), or a too-long line that was dropped (then `buf` is empty).
    pub len: usize,
    /// The chunk starts the stream (its first line may begin with a byte-order mark).
    pub first: bool,
    pub lines: u64,
    pub records: u64,
    /// Keys hashed and rejected by the filter here (deferred ones are counted later).
    pub identities: u64,
    /// Lines settled here that gave identities, and that gave none (blank lines,
    /// usernames off the login hosts, addresses that do not normalise). With the
    /// malformed and deferred lines, every line of the chunk is in one of the four.
    pub bearing: u64,
    pub none: u64,
    pub malformed: u64,
    pub samples: Vec<(u64, Malformed)>,
    /// Lines for the reference path: (line, start, end) in `buf`, without the byte-order
    /// mark or `\r`, in line order.
    pub deferred: Vec<(u64, usize, usize)>,
}

/// Screens and parses every line of the chunk, in its buffer or at its place in
/// `mapped`; `masks` is the worker's space for the chunk's byte classes.
pub(crate) fn scan_in(setup: &Setup<'_>, out: &mut ChunkOut, masks: &mut Masks, mapped: &[u8]) {
    match out.at {
        Some(at) => scan(setup, out, masks, &mapped[at..]),
        None => {
            let buf = std::mem::take(&mut out.buf);
            scan(setup, out, masks, &buf);
            out.buf = buf;
        }
    }
}

/// Screens and parses every line of `buf[..out.len]`; at least 64 bytes follow them in
/// `buf`.
fn scan(setup: &Setup<'_>, out: &mut ChunkOut, masks: &mut Masks, buf: &[u8]) {
    let data = &buf[..out.len];
    masks.classify(data);
    // One vectorised pass tells whether any line needs the NUL and UTF-8 checks.
    let clean = data.iter().fold(0u8, |a, &b| a | b) < 0x80 && memchr::memchr(0, data).is_none();
    let mut sink = LineSink {
        keys: &setup.keys,
        setup,
        out,
        cur: (0, 0, 0),
        batch: Batch::default(),
        hashed: Hashed::default(),
        lines: [[(0, 0, 0); BATCH]; 2],
        side: 0,
        counts: [0; Malformed::ALL.len()],
    };
    let mut pos = 0;
    let mut no = 0u64;
    let mut newlines = masks.newlines();
    while pos < data.len() {
        let end = newlines.next().unwrap_or(data.len());
        no += 1;
        let why = if end - pos > setup.max_line {
            Some(Malformed::TooLong)
        } else {
            // As `LineReader`: a byte-order mark off the stream's first line, then `\r`.
            let mut start = pos;
            if no == 1 && sink.out.first && data[pos..end].starts_with(b"\xEF\xBB\xBF") {
                start += 3;
            }
            let stop = if end > start && data[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            match text_of(&data[start..stop], clean) {
                // Read as Windows-1252, as the reference reads it (`decode::line_text`).
                Err(Malformed::InvalidUtf8) => {
                    sink.cur = (no, start, stop);
                    let text = decode::line_text(&data[start..stop]);
                    let text = text.trim();
                    if text.is_empty() {
                        sink.out.none += 1;
                        None
                    } else if sink.general(text, no) {
                        None
                    } else {
                        Some(Malformed::Unrecognised)
                    }
                }
                Err(why) => Some(why),
                Ok(text) => {
                    // `str::trim`: in ASCII text, its whitespace is these six bytes.
                    let text = if clean { trim_ascii(text) } else { text.trim() };
                    sink.cur = (no, start, stop);
                    // The line's bytes in place, with the buffer's slack after them.
                    let at = text.as_ptr() as usize - buf.as_ptr() as usize;
                    if text.is_empty() {
                        sink.out.none += 1;
                        None
                    } else if sink.line(text, &buf[at..], masks.classes_at(at), no) {
                        None
                    } else {
                        Some(Malformed::Unrecognised)
                    }
                }
            }
        };
        if let Some(why) = why {
            sink.malformed_line(no, why);
        }
        pos = end + 1;
    }
    sink.flush();
    sink.test_hashed();
    let out = sink.out;
    out.lines = no;
    out.deferred.sort_unstable();
}

/// `str::trim` of ASCII text: its whitespace there is these six bytes.
#[inline]
fn trim_ascii(text: &str) -> &str {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let b = text.as_bytes();
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    &text[start..end]
}

/// A line as text, or why it is malformed: the reference's checks, in its order.
#[inline]
fn text_of(line: &[u8], clean: bool) -> Result<&str, Malformed> {
    if clean {
        // The chunk was ASCII when the caller checked it; but a mapped file's bytes can be
        // changed by its uploader between that check and this read, so the line is
        // checked again (cheap on ASCII) rather than trusted: at worst it is malformed.
        return std::str::from_utf8(line).map_err(|_| Malformed::InvalidUtf8);
    }
    if memchr::memchr(0, line).is_some() {
        return Err(Malformed::NulByte);
    }
    std::str::from_utf8(line).map_err(|_| Malformed::InvalidUtf8)
}

/// The lines of a batch: (number, start, end).
type Lines = [(u64, usize, usize); BATCH];

/// Keys being written into SHA-1 blocks.
#[derive(Clone, Copy)]
struct Batch {
    blocks: [[u8; 64]; BATCH],
    n: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            blocks: [[0; 64]; BATCH],
            n: 0,
        }
    }
}

/// A hashed batch whose filter blocks were prefetched, tested one batch later: by then
/// they are in cache (tested at once, the filter's loads were a third of `flush`).
#[derive(Clone, Copy)]
struct Hashed {
    hashes: [IdentityHash; BATCH],
    n: usize,
}

impl Default for Hashed {
    fn default() -> Self {
        Hashed {
            hashes: [IdentityHash([0; 20]); BATCH],
            n: 0,
        }
    }
}

/// Whether `b` holds an `@` at or after `from`: from the classes of its first 64 bytes,
/// then by search past them.
#[inline]
fn at_from(b: &[u8], classes: &bytes::Classes, from: usize) -> bool {
    let within = b.len().min(64);
    (from < within && classes.at & bytes::bits(from, within) != 0)
        || (b.len() > 64 && memchr::memchr(b'@', &b[from.max(64)..]).is_some())
}

/// Keys of one line tested on the spot; a line with more is deferred.
const PROBE_KEYS: usize = 8;

/// Collects the keys of one line's records (see `LineSink::general`).
struct Probe<'a> {
    keys: &'a KeyBlocks<'a>,
    blocks: [[u8; 64]; PROBE_KEYS],
    n: usize,
    records: u64,
    defer: bool,
}

impl Sink for Probe<'_> {
    fn record(&mut self, r: &Record<'_>) {
        self.records += 1;
        if self.defer {
            return;
        }
        if self.n == PROBE_KEYS {
            self.defer = true;
            return;
        }
        match self.keys.key(r.login, r.url, &mut self.blocks[self.n]) {
            Fast::NoKey => {}
            Fast::Key(_) => self.n += 1,
            Fast::Defer => self.defer = true,
        }
    }

    fn malformed(&mut self, _line: u64, _why: Malformed) {}
}

struct LineSink<'a, 's> {
    keys: &'a KeyBlocks<'a>,
    setup: &'a Setup<'s>,
    out: &'a mut ChunkOut,
    /// The line being parsed: (number, start, end).
    cur: (u64, usize, usize),
    batch: Batch,
    hashed: Hashed,
    /// The lines of `batch` (`lines[side]`) and of `hashed` (the other): the two trade
    /// places at each flush without copying.
    lines: [Lines; 2],
    side: usize,
    counts: [u8; Malformed::ALL.len()],
}

impl LineSink<'_, '_> {
    /// `parse::parse_credential_line`, with the common shapes settled by one pass.
    #[inline]
    fn line(&mut self, text: &str, window: &[u8], mut classes: bytes::Classes, no: u64) -> bool {
        // The most common line first, without going through `Shape` (whose matches cost a
        // mispredicted jump per line): one address, then a combo separator, and no `@`
        // after it (else the grep floor has more to read: `general`). `shape_with`
        // answers `Combo` with `simple_at` for exactly these lines.
        let b = text.as_bytes();
        let stop = ((!(classes.plain | classes.at)).trailing_zeros() as usize).min(b.len());
        let ats = classes.at & bytes::bits(0, stop);
        if stop < b.len() && ats != 0 && ats & (ats - 1) == 0 && COMBO_SEP[b[stop] as usize] {
            if at_from(b, &classes, stop) {
                return self.general(text, no);
            }
            self.simple(&text[..stop], ats.trailing_zeros() as usize, window);
            return true;
        }
        match shape::shape_with(text, &classes) {
            Shape::Combo {
                login,
                simple_at: Some(at),
                ..
            } if !at_from(b, &classes, login.len()) => self.simple(login, at, window),
            // A first field of plain bytes without `@`: a username, and with no URL it is
            // no identity (what `KeyBlocks::key` answers, without trimming and searching).
            Shape::Combo {
                login,
                simple_at: None,
                ..
            } if login.len() < 64
                && classes.at & bytes::bits(0, login.len()) == 0
                && !at_from(b, &classes, login.len()) =>
            {
                self.out.records += 1;
                self.out.none += 1;
            }
            Shape::Combo { .. } => return self.general(text, no),
            Shape::Ulp { scheme } => {
                let mut copy = [0u8; 64];
                bytes::classify_ulp(shape::window64(text, window, &mut copy), &mut classes);
                let split = shape::split_ulp_with(text, &classes, scheme)
                    .unwrap_or_else(|| ulp::split_ulp(text));
                let Some((url, login, password)) = split else {
                    // No ULP fields, but maybe an address for the grep floor.
                    return at_from(b, &classes, 0) && self.general(text, no);
                };
                let login_end = login.as_ptr() as usize - text.as_ptr() as usize + login.len();
                if at_from(b, &classes, login_end) {
                    return self.general(text, no);
                }
                if !self.plain_ulp(text, (url, scheme), login, &classes, window) {
                    if login.contains('@') {
                        // Not a plain address: the reference looks for one inside it.
                        return self.general(text, no);
                    }
                    self.record(&Record::ulp(url, login, password, no));
                }
            }
            Shape::Malformed => return false,
            Shape::Other => return self.general(text, no),
        }
        true
    }

    /// A line the fast shapes do not settle: the reference parser reads it, and its keys
    /// are settled so that the line is counted once. A line with one key joins the
    /// batch; with several (the grep floor found more addresses), they are tested here
    /// and, if any may be ours, the whole line is deferred: the reference path then
    /// reads all of it, and none of its keys was counted here.
    fn general(&mut self, text: &str, no: u64) -> bool {
        let mut probe = Probe {
            keys: self.keys,
            blocks: [[0; 64]; PROBE_KEYS],
            n: 0,
            records: 0,
            defer: false,
        };
        let recognised = parse::parse_credential_line(text, no, &mut probe);
        self.out.records += probe.records;
        match probe.n {
            _ if probe.defer => self.out.deferred.push(self.cur),
            0 if recognised => self.out.none += 1,
            0 => {}
            1 => {
                self.batch.blocks[self.batch.n] = probe.blocks[0];
                self.settle(Fast::Key(0));
            }
            n => {
                let mut hashes = [IdentityHash([0; 20]); PROBE_KEYS];
                hash_blocks(&probe.blocks[..n], &mut hashes[..n]);
                if hashes[..n].iter().any(|h| self.setup.filter.may_contain(h)) {
                    self.out.deferred.push(self.cur);
                } else {
                    self.out.identities += n as u64;
                    self.out.bearing += 1;
                }
            }
        }
        recognised
    }

    /// The record of a plain address (`shape::plain_at`), keyed without the general path.
    #[inline]
    fn simple(&mut self, login: &str, at: usize, window: &[u8]) {
        self.out.records += 1;
        let n = self.batch.n;
        let fast = self
            .keys
            .simple_email(login, at, window, &mut self.batch.blocks[n]);
        self.settle(fast);
    }

    /// The record of a ULP line whose login lies in the classified window and is plain
    /// bytes: an address (keyed as `simple`) or a username (a key only on a login host).
    /// What [`KeyBlocks::key`] would do, without its trimming and searching. False when
    /// the login is anything else: then the caller takes the general path.
    #[inline]
    fn plain_ulp(
        &mut self,
        text: &str,
        (url, scheme): (&str, Option<usize>),
        login: &str,
        line: &bytes::Classes,
        window: &[u8],
    ) -> bool {
        let start = login.as_ptr() as usize - text.as_ptr() as usize;
        let end = start + login.len();
        // Past the line's first 64 bytes (a long URL), the login gets a window of its own.
        let (c, span) = if end <= 64 {
            (*line, bytes::bits(start, end))
        } else if login.len() <= 64 {
            let mut copy = [0u8; 64];
            let w = shape::window64(login, &window[start..], &mut copy);
            (bytes::classify(w), bytes::bits(0, login.len()))
        } else {
            return false;
        };
        if (c.plain | c.at) & span != span {
            return false;
        }
        let ats = c.at & span;
        let fast = if ats == 0 {
            // The host from the line's classes: `url_host`'s searches were a fifth of the
            // time of a ULP line.
            match shape::plain_url_host(url, line, scheme) {
                Some(host) => self.keys.username_on(url, host),
                None => self.keys.username(Some(url)),
            }
        } else if ats & (ats - 1) == 0 {
            let n = self.batch.n;
            let at = ats.trailing_zeros() as usize - (span.trailing_zeros() as usize);
            self.keys
                .simple_email(login, at, &window[start..], &mut self.batch.blocks[n])
        } else {
            return false;
        };
        self.out.records += 1;
        self.settle(fast);
        true
    }

    /// Queues a key for hashing, or defers the line.
    #[inline]
    fn settle(&mut self, fast: Fast) {
        match fast {
            Fast::NoKey => self.out.none += 1,
            Fast::Defer => self.out.deferred.push(self.cur),
            Fast::Key(_) => {
                self.lines[self.side][self.batch.n] = self.cur;
                self.batch.n += 1;
                if self.batch.n == BATCH {
                    self.flush();
                }
            }
        }
    }

    fn malformed_line(&mut self, no: u64, why: Malformed) {
        self.out.malformed += 1;
        let n = &mut self.counts[why as usize];
        if *n < SAMPLES_PER_REASON {
            *n += 1;
            self.out.samples.push((no, why));
        }
    }

    /// Tests the batch hashed before, then hashes this one and prefetches its filter
    /// blocks.
    fn flush(&mut self) {
        self.test_hashed();
        let (b, h) = (&mut self.batch, &mut self.hashed);
        let n = b.n;
        hash_blocks(&b.blocks[..n], &mut h.hashes[..n]);
        for hash in &h.hashes[..n] {
            self.setup.filter.prefetch(hash);
        }
        h.n = n;
        b.n = 0;
        self.side ^= 1;
    }

    /// Tests the hashed batch against the filter: a hit defers its line.
    fn test_hashed(&mut self) {
        let h = &mut self.hashed;
        let lines = &self.lines[self.side ^ 1];
        let filter = self.setup.filter;
        for (hash, &line) in h.hashes[..h.n].iter().zip(lines) {
            if filter.may_contain(hash) {
                self.out.deferred.push(line);
            } else {
                // One key per line in a batch (`general` keeps lines of several apart).
                self.out.identities += 1;
                self.out.bearing += 1;
            }
        }
        h.n = 0;
    }
}

impl Sink for LineSink<'_, '_> {
    #[inline]
    fn record(&mut self, r: &Record<'_>) {
        self.out.records += 1;
        let n = self.batch.n;
        let fast = self.keys.key(r.login, r.url, &mut self.batch.blocks[n]);
        self.settle(fast);
    }

    fn malformed(&mut self, line: u64, why: Malformed) {
        // The line parsers report by returning false; nothing calls this.
        self.malformed_line(line, why);
    }
}
