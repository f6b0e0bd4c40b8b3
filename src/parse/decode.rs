//! Text encodings, settled once before the readers: every reader sees UTF-8.
//!
//! Dumps come in whatever encoding the victim's systems used. Two cases matter:
//!
//! - **UTF-16** (Excel's "Unicode text", Windows exports, PowerShell's `Out-File`), little
//!   or big endian, with a byte-order mark or without one. Without a mark it is told by its
//!   NUL pattern: text in Latin script has a zero in every other byte. The whole stream is
//!   transcoded to UTF-8 as it is read ([`Utf16Reader`]), in bounded buffers.
//! - **Windows-1252 / Latin-1** lines (`é` written as one byte `0xE9`), common in French
//!   leaks and in lists concatenated from many sources. A line that is not valid UTF-8 is
//!   read as Windows-1252 ([`line_text`]), which maps every byte to a character, so such a
//!   line is read rather than dropped. The choice is per line, not per file: mixed files
//!   are the norm in combo lists.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use encoding_rs::{Decoder, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// A stream's encoding, as far as the readers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (or ASCII), with Windows-1252 lines read as such.
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// Bytes of the sample judged for the NUL pattern.
const JUDGED: usize = 4096;

/// Tells UTF-16 from the first bytes: a byte-order mark, or the NUL pattern of text in
/// Latin script (at least 40 % of the even or odd bytes zero, and almost none of the
/// others). Anything else is read as UTF-8.
pub fn sniff(sample: &[u8]) -> Encoding {
    if sample.starts_with(b"\xFF\xFE") {
        return Encoding::Utf16Le;
    }
    if sample.starts_with(b"\xFE\xFF") {
        return Encoding::Utf16Be;
    }
    let judged = &sample[..sample.len().min(JUDGED) & !1];
    if judged.len() < 8 {
        return Encoding::Utf8;
    }
    let pairs = judged.len() / 2;
    let (mut even, mut odd) = (0, 0);
    for pair in judged.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    if odd * 10 >= pairs * 4 && even * 50 <= pairs {
        Encoding::Utf16Le
    } else if even * 10 >= pairs * 4 && odd * 50 <= pairs {
        Encoding::Utf16Be
    } else {
        Encoding::Utf8
    }
}

/// A line as text: UTF-8 when it is valid UTF-8, else Windows-1252 (every byte is a
/// character there, so this never fails).
pub fn line_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

/// Transcodes a UTF-16 stream to UTF-8 as it is read. Memory: two fixed buffers. A
/// byte-order mark is dropped; unpaired surrogates become U+FFFD.
pub struct Utf16Reader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    eof: bool,
    done: bool,
    /// Bytes of UTF-16 read, shared with whoever reports the stream's size.
    raw: Rc<Cell<u64>>,
}

const BUF: usize = 64 << 10;

impl<R: Read> Utf16Reader<R> {
    /// `encoding` must be one of the UTF-16 ones; UTF-8 reads as little endian.
    pub fn new(inner: R, encoding: Encoding) -> Self {
        let decoder = match encoding {
            Encoding::Utf16Be => UTF_16BE.new_decoder_with_bom_removal(),
            _ => UTF_16LE.new_decoder_with_bom_removal(),
        };
        Utf16Reader {
            inner,
            decoder,
            input: vec![0; BUF].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            output: vec![0; BUF * 3 / 2 + 16].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            eof: false,
            done: false,
            raw: Rc::default(),
        }
    }

    /// The count of UTF-16 bytes read so far, as it grows.
    pub fn raw_bytes(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.raw)
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_start == self.out_end {
            if self.done {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                self.in_start = 0;
                self.in_end = 0;
                loop {
                    match self.inner.read(&mut self.input) {
                        Ok(0) => self.eof = true,
                        Ok(n) => {
                            self.in_end = n;
                            self.raw.set(self.raw.get() + n as u64);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                    break;
                }
            }
            let (result, read, written, _) = self.decoder.decode_to_utf8(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            // Called with `last` and all its input taken, the decoder has finished (its
            // last output, such as a lone surrogate's U+FFFD, is in `written`): calling
            // it again panics, so it is never called again.
            if self.eof && result == encoding_rs::CoderResult::InputEmpty {
                self.done = true;
            }
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An odd byte at the end: the decoder's last call gives U+FFFD and finishes it; it
    /// was called again and panicked (found by `cargo fuzz`, fuzz/regressions/).
    #[test]
    fn an_odd_utf16_tail_ends_the_stream() {
        let mut r = Utf16Reader::new(&b"\xff\xfeA\x00B"[..], Encoding::Utf16Le);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out.trim_start_matches('\u{feff}'), "A\u{fffd}");
        assert_eq!(r.read(&mut [0u8; 16]).unwrap(), 0);
    }

    fn utf16(text: &str, big: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big { [0xFE, 0xFF] } else { [0xFF, 0xFE] });
        }
        for unit in text.encode_utf16() {
            out.extend(if big {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn sniffs_utf16_with_and_without_bom() {
        let text = "email\tmot de passe\r\nrené@example.net\tpàss\r\n";
        for big in [false, true] {
            for bom in [false, true] {
                let want = if big {
                    Encoding::Utf16Be
                } else {
                    Encoding::Utf16Le
                };
                assert_eq!(sniff(&utf16(text, big, bom)), want, "big {big} bom {bom}");
            }
        }
        assert_eq!(sniff(text.as_bytes()), Encoding::Utf8);
        assert_eq!(sniff(b"a@b.fr:pw\n\x00\x00\x00"), Encoding::Utf8);
        // Binary with NULs everywhere is not UTF-16.
        assert_eq!(sniff(&[0u8; 64]), Encoding::Utf8);
        assert_eq!(sniff(b""), Encoding::Utf8);
    }

    #[test]
    fn transcodes_utf16_in_small_reads() {
        let text = "rené@example.net\tpàss€\r\n".repeat(10_000);
        for big in [false, true] {
            let bytes = utf16(&text, big, true);
            let mut r = Utf16Reader::new(&bytes[..], sniff(&bytes));
            let mut out = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn windows_1252_lines() {
        assert_eq!(
            line_text(b"ren\xe9@example.net:p\xe0ss\x80"),
            "rené@example.net:pàss€"
        );
        assert_eq!(line_text("déjà".as_bytes()), "déjà");
        assert!(matches!(line_text(b"plain"), Cow::Borrowed("plain")));
    }
}
