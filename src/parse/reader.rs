//! Bounded line reading: the first thing every parser does with a byte stream.
//!
//! Lines are cut out of one large reused buffer, so reading a 10 GB dump allocates no more
//! than reading a 10 MB one and nothing is allocated per line. A line longer than the limit
//! is not buffered: the reader drops bytes until the next newline and reports the line as
//! too long, so a file with no newline at all costs one buffer, not its size.

use std::io::{self, Read};

/// Size of the read buffer when the line limit is small. Large reads keep syscalls rare.
const MIN_BUF: usize = 1 << 20;

/// One line as the reader found it, without its `\n` (and `\r`).
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine<'a> {
    Line(&'a [u8]),
    /// The line was longer than the limit; its bytes were dropped.
    TooLong,
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_line: usize,
    line_no: u64,
    eof: bool,
    first: bool,
    bytes: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        let cap = MIN_BUF.max(max_line.saturating_mul(2) + 2);
        LineReader {
            inner,
            buf: vec![0; cap],
            start: 0,
            end: 0,
            max_line,
            line_no: 0,
            eof: false,
            first: true,
            bytes: 0,
        }
    }

    /// Bytes read from the underlying reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next line and its 1-based number, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, RawLine<'_>)>> {
        // Found as (start, end, too_long) so that the borrow of the buffer is taken once, at
        // the end, rather than inside the loop that refills it.
        let (s, e, too_long) = loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                let s = self.start;
                self.start += i + 1;
                break (s, s + i, i > self.max_line);
            }
            if self.end - self.start > self.max_line {
                self.skip_rest_of_line()?;
                break (0, 0, true);
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let s = self.start;
                self.start = self.end;
                break (s, self.end, false);
            }
            self.fill()?;
        };
        self.line_no += 1;
        if too_long {
            self.first = false;
            return Ok(Some((self.line_no, RawLine::TooLong)));
        }
        let mut line = &self.buf[s..e];
        if self.first {
            self.first = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        Ok(Some((self.line_no, RawLine::Line(line))))
    }

    /// Moves unread bytes to the front and reads more after them.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops bytes up to and including the next newline (or to end of input).
    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                self.start += i + 1;
                return Ok(());
            }
            self.start = 0;
            self.end = 0;
            if self.eof {
                return Ok(());
            }
            self.fill()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        let mut expect_no = 1;
        while let Some((no, l)) = r.next_line().unwrap() {
            assert_eq!(no, expect_no);
            expect_no += 1;
            out.push(match l {
                RawLine::Line(b) => Some(b.to_vec()),
                RawLine::TooLong => None,
            });
        }
        out
    }

    #[test]
    fn splits_lf_crlf_bom_and_last_line() {
        let got = lines(b"\xEF\xBB\xBFa:b\r\nc:d\n\ne", 100);
        let want: Vec<Option<Vec<u8>>> = vec![
            Some(b"a:b".to_vec()),
            Some(b"c:d".to_vec()),
            Some(vec![]),
            Some(b"e".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn bom_only_stripped_at_start() {
        let got = lines(b"x\n\xEF\xBB\xBFy\n", 100);
        assert_eq!(got[1], Some(b"\xEF\xBB\xBFy".to_vec()));
    }

    #[test]
    fn too_long_lines_are_reported_and_skipped() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend(b"\nafter\n");
        input.extend(std::iter::repeat_n(b'y', 300));
        let got = lines(&input, 256);
        assert_eq!(
            got,
            vec![Some(b"short".to_vec()), None, Some(b"after".to_vec()), None]
        );
    }

    #[test]
    fn huge_line_without_newline_uses_bounded_memory() {
        // 5 MiB without a newline: the reader must report one too-long line, not grow.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0);
                buf[..n].fill(b'z');
                self.0 -= n;
                Ok(n)
            }
        }
        let mut r = LineReader::new(Endless(5 << 20), 1024);
        assert_eq!(r.next_line().unwrap(), Some((1, RawLine::TooLong)));
        assert_eq!(r.next_line().unwrap(), None);
        assert!(r.buf.len() <= MIN_BUF);
        assert_eq!(r.bytes_read(), 5 << 20);
    }

    #[test]
    fn lines_across_buffer_boundaries() {
        let mut input = Vec::new();
        for i in 0..300_000u32 {
            input.extend(format!("user{i}@example.net:pw{i}\n").bytes());
        }
        let mut r = LineReader::new(&input[..], 256);
        let mut n = 0u32;
        while let Some((_, RawLine::Line(l))) = r.next_line().unwrap() {
            assert_eq!(l, format!("user{n}@example.net:pw{n}").as_bytes());
            n += 1;
        }
        assert_eq!(n, 300_000);
    }
}
