//! A byte cursor over a stream, for the readers of shapes that are not lines (SQL
//! statements of many megabytes on one line, JSON pretty-printed over thousands).
//!
//! One fixed buffer, refilled in place: memory does not grow with the input. Newlines are
//! counted when a line number is asked for (or the buffer is refilled), in one pass over
//! the bytes consumed since: counting them byte by byte or value by value cost more than
//! the parsing around it. Values are copied
//! into buffers the caller bounds ([`Cursor::push_bounded`]).

use std::io::{self, Read};

const BUF: usize = 1 << 20;

thread_local! {
    /// The buffer size of the cursors this thread makes, when not [`BUF`]: see
    /// [`with_buffer`].
    static BUFFER: std::cell::Cell<usize> = const { std::cell::Cell::new(BUF) };
}

/// Runs `f` with the cursors it makes on this thread holding `size` bytes (at least 1).
/// With one byte, no record ever lies whole in a reader's window, so each reader reads
/// byte at a time, as it does where a record crosses a refill: the tests and the fuzz
/// harness compare that with the in-place reading of the same bytes.
pub fn with_buffer<T>(size: usize, f: impl FnOnce() -> T) -> T {
    let old = BUFFER.with(|b| b.replace(size.max(1)));
    let out = f();
    BUFFER.with(|b| b.set(old));
    out
}

pub struct Cursor<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    /// The line of `buf[counted]` (1-based).
    line: u64,
    /// Bytes of `buf` whose newlines are in `line`.
    counted: usize,
    /// Bytes consumed before `buf[0]`.
    base: u64,
    /// The last byte consumed.
    last: Option<u8>,
    /// The bytes of the current line consumed before `buf[0]` (at most [`TAIL`]): for
    /// [`Cursor::line_so_far`].
    tail: Vec<u8>,
}

/// Bytes of a line kept across a refill for [`Cursor::line_so_far`].
const TAIL: usize = 64 << 10;

impl<R: Read> Cursor<R> {
    pub fn new(inner: R) -> Self {
        Cursor {
            inner,
            buf: vec![0; BUFFER.with(std::cell::Cell::get)].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            counted: 0,
            base: 0,
            last: None,
            tail: Vec::new(),
        }
    }

    /// The line of the next byte.
    pub fn line(&mut self) -> u64 {
        self.count_to(self.pos);
        self.line
    }

    fn count_to(&mut self, to: usize) {
        if to > self.counted {
            let span = &self.buf[self.counted..to];
            // A row's worth is counted faster by hand than by a vector search's set-up.
            self.line += if span.len() < 128 {
                span.iter().filter(|&&b| b == b'\n').count()
            } else {
                memchr::memchr_iter(b'\n', span).count()
            } as u64;
            self.counted = to;
        }
    }

    /// Appends to `out` the bytes of the current line consumed since the absolute offset
    /// `from` (from the line's start if that is later), up to `max` bytes: for a reader
    /// that gives up on a broken entry, so that the floor reads the text it broke on.
    /// Only a line's first 64 KiB are kept, whatever the buffer's size, so the answer
    /// does not depend on where refills fell.
    pub fn line_since(&self, from: u64, out: &mut Vec<u8>, max: usize) {
        let here = &self.buf[..self.pos];
        let (head, body, start) = match memchr::memrchr(b'\n', here) {
            Some(nl) => (&[][..], &here[nl + 1..], self.base + nl as u64 + 1),
            None => (&self.tail[..], here, self.base - self.tail.len() as u64),
        };
        let body = &body[..body.len().min(TAIL - head.len())];
        let skip = from.saturating_sub(start) as usize;
        let (head, body) = if skip <= head.len() {
            (&head[skip..], body)
        } else {
            (&[][..], body.get(skip - head.len()..).unwrap_or_default())
        };
        for part in [head, body] {
            let room = max.saturating_sub(out.len());
            out.extend_from_slice(&part[..part.len().min(room)]);
        }
    }

    /// The last byte consumed.
    pub fn last(&self) -> Option<u8> {
        self.last
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Lines read so far: the number of the last line that holds a consumed byte.
    pub fn lines(&mut self) -> u64 {
        self.count_to(self.pos);
        match self.last {
            None => 0,
            Some(b'\n') => self.line - 1,
            Some(_) => self.line,
        }
    }

    /// Makes bytes available; false at end of input.
    #[inline(always)]
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.refill()
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.count_to(self.end);
        let consumed = &self.buf[..self.end];
        let line = match memchr::memrchr(b'\n', consumed) {
            Some(nl) => {
                self.tail.clear();
                &consumed[nl + 1..]
            }
            None => consumed,
        };
        let room = TAIL.saturating_sub(self.tail.len());
        self.tail.extend_from_slice(&line[..line.len().min(room)]);
        self.counted = 0;
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(if self.fill()? {
            Some(self.buf[self.pos])
        } else {
            None
        })
    }

    /// The next byte, consumed.
    #[inline]
    pub fn bump(&mut self) -> io::Result<Option<u8>> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.last = Some(b);
        Ok(Some(b))
    }

    /// The bytes buffered from the next one on (at least one unless at end of input; a
    /// record may go on past them): for a reader's fast path, which reads a whole
    /// record where it lies, with no copy, and [`Cursor::consume`]s it.
    #[inline]
    pub fn window(&mut self) -> io::Result<&[u8]> {
        self.fill()?;
        Ok(&self.buf[self.pos..self.end])
    }

    /// Consumes `n` bytes of the [`Cursor::window`] (`n` at most its length), which the
    /// caller knows hold `newlines` line ends: counted here, when the lines before are,
    /// rather than again by [`Cursor::line`] (a quarter of a table reader's time).
    #[inline]
    pub fn consume(&mut self, n: usize, newlines: u64) {
        debug_assert!(self.pos + n <= self.end);
        debug_assert_eq!(
            memchr::memchr_iter(b'\n', &self.buf[self.pos..self.pos + n]).count() as u64,
            newlines
        );
        if n == 0 {
            return;
        }
        if self.counted == self.pos {
            self.line += newlines;
            self.counted += n;
        }
        self.pos += n;
        self.last = Some(self.buf[self.pos - 1]);
    }

    /// Consumes white space.
    pub fn skip_ws(&mut self) -> io::Result<()> {
        loop {
            if !self.fill()? {
                return Ok(());
            }
            let avail = &self.buf[self.pos..self.end];
            let n = avail
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(avail.len());
            if n > 0 {
                self.last = Some(avail[n - 1]);
                self.pos += n;
            }
            if self.pos < self.end {
                return Ok(());
            }
        }
    }

    /// Consumes the bytes for which `take` holds, copying up to `max` of them into `out`.
    pub fn take_while(
        &mut self,
        take: impl Fn(u8) -> bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<()> {
        loop {
            if !self.fill()? {
                return Ok(());
            }
            let avail = &self.buf[self.pos..self.end];
            let n = avail.iter().position(|&b| !take(b)).unwrap_or(avail.len());
            let room = max.saturating_sub(out.len());
            out.extend_from_slice(&avail[..n.min(room)]);
            if n > 0 {
                self.last = Some(avail[n - 1]);
                self.pos += n;
            }
            if self.pos < self.end {
                return Ok(());
            }
        }
    }

    /// Consumes bytes up to the first of `stops` (not consumed), copying them into `out`
    /// while it holds fewer than `max` bytes (the rest are dropped, and `true` says so).
    /// Returns the stop byte found, or `None` at end of input.
    pub fn push_bounded(
        &mut self,
        stops: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<(Option<u8>, bool)> {
        let mut cut = false;
        loop {
            if !self.fill()? {
                return Ok((None, cut));
            }
            let avail = &self.buf[self.pos..self.end];
            let found = match stops {
                [a] => memchr::memchr(*a, avail),
                [a, b] => memchr::memchr2(*a, *b, avail),
                [a, b, c] => memchr::memchr3(*a, *b, *c, avail),
                _ => avail.iter().position(|c| stops.contains(c)),
            };
            let n = found.unwrap_or(avail.len());
            let room = max.saturating_sub(out.len());
            out.extend_from_slice(&avail[..n.min(room)]);
            cut |= n > room;
            if n > 0 {
                self.last = Some(avail[n - 1]);
            }
            self.pos += n;
            if found.is_some() {
                return Ok((Some(self.buf[self.pos]), cut));
            }
        }
    }
}

/// Where [`Cursor::push_upto`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At this stop byte (not consumed).
    Byte(u8),
    /// At the end of the input.
    End,
    /// `out` was full: nothing past it was consumed.
    Full,
}

impl<R: Read> Cursor<R> {
    /// As [`Cursor::push_bounded`], but stops consuming when `out` holds `max` bytes:
    /// for a value whose end may never come (an unclosed quote), so that the reader can
    /// resume close to where it went wrong.
    pub fn push_upto(&mut self, stops: &[u8], out: &mut Vec<u8>, max: usize) -> io::Result<Stop> {
        loop {
            if !self.fill()? {
                return Ok(Stop::End);
            }
            let room = max.saturating_sub(out.len());
            if room == 0 {
                return Ok(Stop::Full);
            }
            let avail = &self.buf[self.pos..self.end.min(self.pos + room)];
            let found = match stops {
                [a] => memchr::memchr(*a, avail),
                [a, b] => memchr::memchr2(*a, *b, avail),
                _ => avail.iter().position(|c| stops.contains(c)),
            };
            let n = found.unwrap_or(avail.len());
            out.extend_from_slice(&avail[..n]);
            if n > 0 {
                self.last = Some(avail[n - 1]);
            }
            self.pos += n;
            if found.is_some() {
                return Ok(Stop::Byte(self.buf[self.pos]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_copies_and_lines() {
        let mut c = Cursor::new(&b"abc\ndef'ghi\nj"[..]);
        let mut out = Vec::new();
        assert_eq!(
            c.push_bounded(b"'", &mut out, 4).unwrap(),
            (Some(b'\''), true)
        );
        assert_eq!(out, b"abc\n");
        assert_eq!(c.line(), 2);
        assert_eq!(c.bump().unwrap(), Some(b'\''));
        out.clear();
        assert_eq!(c.push_bounded(b"'", &mut out, 100).unwrap(), (None, false));
        assert_eq!(out, b"ghi\nj");
        assert_eq!(c.line(), 3);
        assert_eq!(c.bytes_read(), 13);
        assert_eq!(c.lines(), 3);
    }

    #[test]
    fn push_upto_stops_when_full() {
        let mut c = Cursor::new(&b"abcdef\"gh"[..]);
        let mut out = Vec::new();
        assert_eq!(c.push_upto(b"\"", &mut out, 4).unwrap(), Stop::Full);
        assert_eq!(out, b"abcd");
        assert_eq!(c.bytes_read(), 4);
        out.clear();
        assert_eq!(c.push_upto(b"\"", &mut out, 10).unwrap(), Stop::Byte(b'"'));
        assert_eq!(out, b"ef");
    }
}
