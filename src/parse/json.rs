//! JSON exports: arrays of objects (pretty-printed or not), NDJSON, nested objects, read as
//! a stream of records.
//!
//! A record is an object that stands at the top level or as an element of an array
//! (`[{…},{…}]`, `{"users": [{…}]}`, one object per NDJSON line). Within a record, keys are
//! matched by name at any depth (`{"user": {"contact": {"mail": …}, "auth": {"pass": …}}}`):
//! the innermost key names the value, as a column name does ([`columns`]); without a named
//! address, the first string value that is one is the login; every other string value is
//! read by the grep floor. Only those candidates are kept while a record is read (each
//! bounded), so a 10 GB array never sits in memory, and neither does one huge object.
//!
//! Bad JSON is reported and skipped, not fatal: a syntax error ends the value it is in
//! (reported as malformed with its line), and reading resumes at the next line, which is
//! how NDJSON with a broken line reads on.

use std::io::{self, Read};

use super::columns::{self, Named};
use super::cursor::Cursor;
use super::{decode, Format, Malformed, ParseStats, Sink};
use crate::bytes;

/// Nesting beyond this is refused (reported, and the value skipped).
const MAX_DEPTH: usize = 256;
/// Addresses kept from one record's other values; a record with more is reported as too
/// long, and the rest dropped.
const MAX_FLOOR: usize = 4096;
/// Bytes of a key kept (enough for any column name).
const MAX_KEY: usize = 128;
/// Distinct keys whose names are kept.
const MAX_NAMES: usize = 64;
const PROGRESS_EVERY: u64 = 1 << 20;

/// Whether a sample reads as JSON: it starts (after white space) with `{` then `"` or `}`,
/// or `[` then `{`, `[`, `"`, `]`, a digit or a literal.
pub fn sniff(sample: &[u8]) -> bool {
    let mut it = sample.iter().copied().filter(|b| !b.is_ascii_whitespace());
    matches!(
        (it.next(), it.next()),
        (Some(b'{'), Some(b'"' | b'}'))
            | (
                Some(b'['),
                Some(b'{' | b'[' | b'"' | b']' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
            )
    )
}

/// Reads JSON or NDJSON; see the module's doc. `max_field` bounds each string value.
pub fn parse<R: Read>(input: R, max_field: usize, sink: &mut dyn Sink) -> io::Result<ParseStats> {
    let mut r = JsonReader {
        c: Cursor::new(input),
        max_field,
        stats: ParseStats::default(),
        records: Vec::new(),
        key: Vec::new(),
        names: Names::default(),
        key_login: None,
        value: Vec::new(),
        string_end: 0,
        next_progress: PROGRESS_EVERY,
    };
    loop {
        r.c.skip_ws()?;
        if r.c.peek()?.is_none() {
            break;
        }
        match r.value(0, None, sink)? {
            Ok(()) => r.stats.ended_inside = false,
            Err(why) => {
                // At the end of the input: the value was cut by it, not broken.
                r.stats.ended_inside = r.c.peek()?.is_none();
                // An address key whose value never came: the floor's, below.
                let key_login = r.key_login.take();
                r.stats.entries += 1;
                r.stats.malformed += 1;
                sink.malformed(r.c.line(), why);
                // Whatever records were open are reported as read so far.
                while let Some(rec) = r.records.pop() {
                    r.emit(rec, sink);
                }
                // Resume at the next line (NDJSON's unit). The rest of the line it broke
                // on, from the end of the last string read, is read by the floor, an
                // entry of its own: what follows a string ended early (a stray quote) is
                // not lost, and what was read before is not reported twice.
                let line = r.c.line();
                let mut text = key_login.map(|k| k.into_bytes()).unwrap_or_default();
                text.push(b' ');
                r.c.line_since(r.string_end, &mut text, max_field);
                r.c.push_bounded(b"\n", &mut text, max_field)?;
                r.c.bump()?;
                super::text::floor_entry(&mut r.stats, &text, line, sink);
            }
        }
        let read = r.c.bytes_read();
        if read >= r.next_progress {
            r.next_progress = read + PROGRESS_EVERY;
            sink.progress(read);
        }
    }
    r.stats.lines = r.c.lines();
    r.stats.bytes = r.c.bytes_read();
    Ok(r.stats)
}

/// What one open record has gathered: its strings owned (`String`) while the record
/// is read across buffer refills, borrowed from the buffer (`&str`) for a record read
/// where it lies ([`JsonReader::plain_object`]).
struct Rec<S> {
    login: Option<S>,
    /// The login was found by its key's name (it wins over one found by content).
    login_named: bool,
    password: Option<S>,
    floor: Vec<S>,
    /// Addresses past `MAX_FLOOR`: not kept (the record is reported as too long).
    dropped: u64,
}

impl<S> Default for Rec<S> {
    fn default() -> Self {
        Rec {
            login: None,
            login_named: false,
            password: None,
            floor: Vec::new(),
            dropped: 0,
        }
    }
}

/// How a record keeps a string it was given: a copy, or the string itself.
trait Keep<'a>: AsRef<str> {
    fn keep(s: &'a str) -> Self;
}

impl Keep<'_> for String {
    fn keep(s: &str) -> String {
        s.to_string()
    }
}

impl<'a> Keep<'a> for &'a str {
    fn keep(s: &'a str) -> &'a str {
        s
    }
}

struct JsonReader<R> {
    c: Cursor<R>,
    max_field: usize,
    stats: ParseStats,
    /// The records being read, innermost last.
    records: Vec<Rec<String>>,
    key: Vec<u8>,
    /// Keys met, with what they name (see [`JsonReader::named`]).
    names: Names,
    /// The address that the key being read is, for the object under it.
    key_login: Option<String>,
    value: Vec<u8>,
    /// Where the last string read ended (bytes read): where the floor starts on a line
    /// the reading broke on.
    string_end: u64,
    next_progress: u64,
}

type Parsed = Result<(), Malformed>;

impl<R: Read> JsonReader<R> {
    /// One value; `key` is the name it stands under in its object, if any. A record
    /// starts at an object that is at the top level or in an array (`in_record` false).
    fn value(
        &mut self,
        depth: usize,
        key: Option<Named>,
        sink: &mut dyn Sink,
    ) -> io::Result<Parsed> {
        if depth > MAX_DEPTH {
            return Ok(Err(Malformed::Syntax));
        }
        self.c.skip_ws()?;
        match self.c.peek()? {
            None => Ok(Err(Malformed::Unterminated)),
            Some(b'{') => {
                if key.is_none() && self.key_login.is_none() && self.plain_object(sink)? {
                    return Ok(Ok(()));
                }
                self.c.bump()?;
                // An object under an address (`{"jean@example.net": {…}}`, a map keyed
                // by user) is that user's record.
                let login = self.key_login.take();
                let record = key.is_none() || login.is_some();
                if record {
                    self.records.push(Rec {
                        login_named: login.is_some(),
                        login,
                        ..Rec::default()
                    });
                }
                let r = self.object(depth, sink)?;
                if record && r.is_ok() {
                    if let Some(rec) = self.records.pop() {
                        self.emit(rec, sink);
                    }
                }
                Ok(r)
            }
            Some(b'[') => {
                self.c.bump()?;
                self.array(depth, sink)
            }
            Some(b'"') => {
                self.c.bump()?;
                let mut value = std::mem::take(&mut self.value);
                value.clear();
                let r = self.string(&mut value, self.max_field)?;
                if r.is_ok() {
                    self.take_string(key, &value, sink);
                }
                self.value = value;
                Ok(r)
            }
            Some(_) => {
                // A number or a literal: read, not kept.
                let mut lit = Vec::new();
                self.c.take_while(
                    |b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace(),
                    &mut lit,
                    64,
                )?;
                Ok(if literal(lit.trim_ascii()) {
                    Ok(())
                } else {
                    Err(Malformed::Syntax)
                })
            }
        }
    }

    fn object(&mut self, depth: usize, sink: &mut dyn Sink) -> io::Result<Parsed> {
        self.c.skip_ws()?;
        if self.c.peek()? == Some(b'}') {
            self.c.bump()?;
            return Ok(Ok(()));
        }
        loop {
            self.c.skip_ws()?;
            if self.c.bump()? != Some(b'"') {
                return Ok(Err(Malformed::Syntax));
            }
            let mut key = std::mem::take(&mut self.key);
            key.clear();
            if let Err(e) = self.string(&mut key, MAX_KEY)? {
                return Ok(Err(e));
            }
            let name = self.named(&key);
            if memchr::memchr(b'@', &key).is_some() {
                let text = decode::line_text(&key);
                // A key that is an address starts the record of the object under it; the
                // addresses of any other key are the floor's.
                let trimmed = text.trim();
                if columns::looks_like_email(trimmed) {
                    self.key_login = Some(trimmed.to_string());
                } else if let Some(rec) = self.records.last_mut() {
                    for a in super::text::addresses(&text) {
                        push_floor(rec, a.to_string());
                    }
                }
            }
            self.key = key;
            self.c.skip_ws()?;
            if self.c.bump()? != Some(b':') {
                return Ok(Err(Malformed::Syntax));
            }
            if let Err(e) = self.value(depth + 1, Some(name), sink)? {
                return Ok(Err(e));
            }
            // An address key over a value that is not an object: the address alone.
            if let Some(address) = self.key_login.take() {
                if let Some(rec) = self.records.last_mut() {
                    push_floor(rec, address);
                }
            }
            self.c.skip_ws()?;
            match self.c.bump()? {
                Some(b',') => continue,
                Some(b'}') => return Ok(Ok(())),
                None => return Ok(Err(Malformed::Unterminated)),
                Some(_) => return Ok(Err(Malformed::Syntax)),
            }
        }
    }

    fn array(&mut self, depth: usize, sink: &mut dyn Sink) -> io::Result<Parsed> {
        self.c.skip_ws()?;
        if self.c.peek()? == Some(b']') {
            self.c.bump()?;
            return Ok(Ok(()));
        }
        loop {
            // Elements of an array are records of their own when they are objects.
            if let Err(e) = self.value(depth + 1, None, sink)? {
                return Ok(Err(e));
            }
            self.c.skip_ws()?;
            match self.c.bump()? {
                Some(b',') => continue,
                Some(b']') => return Ok(Ok(())),
                None => return Ok(Err(Malformed::Unterminated)),
                Some(_) => return Ok(Err(Malformed::Syntax)),
            }
        }
    }

    /// What a key names. An export repeats the same few keys in every record: they are
    /// classified once (keys that hold an address, unique by nature, are not kept).
    fn named(&mut self, key: &[u8]) -> Named {
        self.names.get(key)
    }

    /// A string after its opening quote, unescaped into `out` (bounded by `max`).
    fn string(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<Parsed> {
        loop {
            let (stop, _) = self.c.push_bounded(b"\"\\\n", out, max)?;
            match stop {
                None => return Ok(Err(Malformed::Unterminated)),
                // JSON has no raw line break in a string: a string cut at its line's end
                // (the next line is NDJSON's next record, left unread).
                Some(b'\n') => return Ok(Err(Malformed::Unterminated)),
                Some(b'"') => {
                    self.c.bump()?;
                    self.string_end = self.c.bytes_read();
                    return Ok(Ok(()));
                }
                Some(_) => {
                    self.c.bump()?;
                    let Some(e) = self.c.bump()? else {
                        return Ok(Err(Malformed::Unterminated));
                    };
                    let mut utf8 = [0u8; 4];
                    let bytes: &[u8] = match e {
                        b'n' => b"\n",
                        b't' => b"\t",
                        b'r' => b"\r",
                        b'b' | b'f' => b" ",
                        b'u' => {
                            let Some(c) = self.unicode_escape()? else {
                                return Ok(Err(Malformed::Syntax));
                            };
                            c.encode_utf8(&mut utf8).as_bytes()
                        }
                        other => {
                            utf8[0] = other;
                            &utf8[..1]
                        }
                    };
                    if out.len() + bytes.len() <= max {
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
    }

    /// The character of `\uXXXX` (a surrogate pair read whole); U+FFFD for a lone half.
    fn unicode_escape(&mut self) -> io::Result<Option<char>> {
        let Some(hi) = self.hex4()? else {
            return Ok(None);
        };
        if (0xD800..0xDC00).contains(&hi) {
            if self.c.peek()? == Some(b'\\') {
                self.c.bump()?;
                if self.c.bump()? != Some(b'u') {
                    return Ok(None);
                }
                let Some(lo) = self.hex4()? else {
                    return Ok(None);
                };
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                return Ok(Some(char::from_u32(c).unwrap_or('\u{FFFD}')));
            }
            return Ok(Some('\u{FFFD}'));
        }
        Ok(Some(char::from_u32(hi).unwrap_or('\u{FFFD}')))
    }

    fn hex4(&mut self) -> io::Result<Option<u32>> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(d) = self.c.bump()?.and_then(|b| (b as char).to_digit(16)) else {
                return Ok(None);
            };
            v = v * 16 + d;
        }
        Ok(Some(v))
    }

    /// A string value of the innermost open record: a candidate login or password by
    /// its key's name, else by content, else for the floor.
    fn take_string(&mut self, key: Option<Named>, value: &[u8], sink: &mut dyn Sink) {
        // Only a password, or a value with an `@` (a login or the floor's addresses), is
        // of use: the rest (ids, names, dates) is not even decoded.
        let useful = key == Some(Named::Password) || memchr::memchr(b'@', value).is_some();
        let Some(rec) = self.records.last_mut() else {
            // A string outside any object (`["a@b.example", …]`): the floor's.
            self.stats.entries += 1;
            if useful {
                let text = decode::line_text(value);
                self.stats.records += super::text::floor(&text, 0, None, self.c.line(), sink);
            }
            sink.end_entry();
            return;
        };
        if useful {
            take_text(rec, key, &decode::line_text(value));
        }
    }

    /// Reports a record that ended.
    fn emit(&mut self, rec: Rec<String>, sink: &mut dyn Sink) {
        let line = self.c.line();
        emit(&mut self.stats, rec, line, sink);
    }

    /// The common record, read where it lies: a flat object whole in the cursor's buffer
    /// (keys without `@`, values that are strings or literals within the bounds, nothing
    /// nested, no escape, no invalid UTF-8 where it is read). It is the record
    /// [`Self::value`] would report, made by the same [`take_text`], its strings borrowed
    /// where they lie; the object is consumed. `false`, with nothing consumed, for any
    /// other value: [`Self::value`] reads it. Three quarters of the reader's time went
    /// to the byte-at-a-time reading and the copies this skips.
    fn plain_object(&mut self, sink: &mut dyn Sink) -> io::Result<bool> {
        let line = self.c.line();
        let JsonReader {
            c,
            names,
            stats,
            max_field,
            string_end,
            ..
        } = self;
        let window = c.window()?;
        let Some((rec, len, newlines)) = plain_record(window, *max_field, names) else {
            return Ok(false);
        };
        emit(stats, rec, line + newlines, sink);
        c.consume(len, newlines);
        // Read whole: nothing in it is the floor's if the line breaks after it.
        *string_end = c.bytes_read();
        Ok(true)
    }
}

/// What keys name. An export repeats the same few keys in every record, in the same
/// order: they are classified once (keys that hold an address, unique by nature, are
/// not kept), and each is looked for first where the last one found was followed.
#[derive(Default)]
struct Names {
    known: Vec<(Vec<u8>, Named)>,
    /// Where the next key is likely to be in `known`.
    next: usize,
}

impl Names {
    fn get(&mut self, key: &[u8]) -> Named {
        if let Some((k, n)) = self.known.get(self.next) {
            if k == key {
                self.next += 1;
                return *n;
            }
        }
        if let Some(i) = self.known.iter().position(|(k, _)| k == key) {
            self.next = i + 1;
            return self.known[i].1;
        }
        let n = Named::of(&decode::line_text(key));
        if self.known.len() < MAX_NAMES && memchr::memchr(b'@', key).is_none() {
            self.known.push((key.to_vec(), n));
            self.next = self.known.len();
        }
        n
    }
}

/// Whether a number or literal (trimmed) is valid JSON, as far as a record cares.
fn literal(lit: &[u8]) -> bool {
    matches!(lit, b"true" | b"false" | b"null")
        || (!lit.is_empty()
            && lit
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
}

/// A useful string value (a password by its key, or one with an `@`) of a record: a
/// candidate login or password by its key's name, else by content, else the floor's.
fn take_text<'a, S: Keep<'a>>(rec: &mut Rec<S>, key: Option<Named>, text: &'a str) {
    let text = bytes::trim(text);
    if text.is_empty() {
        return;
    }
    let named_email = key == Some(Named::Email);
    if named_email && !rec.login_named && columns::looks_like_email(text) {
        if let Some(old) = rec.login.replace(S::keep(text)) {
            push_floor(rec, old);
        }
        rec.login_named = true;
        return;
    }
    if key == Some(Named::Password) && rec.password.is_none() {
        // An address in a password is the floor's all the same.
        for address in super::text::addresses(text) {
            push_floor(rec, S::keep(address));
        }
        rec.password = Some(S::keep(text));
        return;
    }
    if rec.login.is_none() && columns::looks_like_email(text) {
        rec.login = Some(S::keep(text));
        return;
    }
    for address in super::text::addresses(text) {
        push_floor(rec, S::keep(address));
    }
}

/// Reports a record that ended, as of `line`.
fn emit<S: AsRef<str>>(stats: &mut ParseStats, rec: Rec<S>, line: u64, sink: &mut dyn Sink) {
    stats.entries += 1;
    if let Some(login) = &rec.login {
        stats.records += 1;
        sink.record(&super::Record {
            login: login.as_ref(),
            password: rec.password.as_ref().map(AsRef::as_ref),
            url: None,
            line,
            format: Format::Json,
        });
    }
    for address in &rec.floor {
        stats.records += 1;
        sink.record(&super::Record {
            login: address.as_ref(),
            password: None,
            url: None,
            line,
            format: Format::Text,
        });
    }
    sink.end_entry();
    if rec.dropped > 0 {
        // Its addresses past the bound: an entry of its own, malformed.
        stats.entries += 1;
        stats.malformed += 1;
        sink.malformed(line, Malformed::TooLong);
    }
}

fn push_floor<S>(rec: &mut Rec<S>, address: S) {
    if rec.floor.len() < MAX_FLOOR {
        rec.floor.push(address);
    } else {
        rec.dropped += 1;
    }
}

/// The record of the flat object `window` starts with (at its `{`), the bytes through
/// its `}` and the line ends among them; `None` for any other value, or one that does
/// not end in `window` (see [`JsonReader::plain_object`]).
fn plain_record<'w>(
    window: &'w [u8],
    max: usize,
    names: &mut Names,
) -> Option<(Rec<&'w str>, usize, u64)> {
    let w = window;
    debug_assert_eq!(w.first(), Some(&b'{'));
    // Line ends are only in the white space between tokens: counted as it is skipped.
    let mut newlines = 0;
    let mut skip_ws = |mut i: usize| -> Option<usize> {
        while w.get(i)?.is_ascii_whitespace() {
            newlines += (w[i] == b'\n') as u64;
            i += 1;
        }
        Some(i)
    };
    // A string at `i` (its `"`), without escape or line break: its bytes and what follows.
    let string = |i: usize| -> Option<(&'w [u8], usize)> {
        let from = i + 1;
        let end = string_end(w.get(from..)?)? + from;
        (w[end] == b'"').then_some((&w[from..end], end + 1))
    };
    let mut rec = Rec::default();
    let mut i = skip_ws(1)?;
    if w[i] == b'}' {
        return None; // `{}`: rare, and the reader's
    }
    loop {
        if w[i] != b'"' {
            return None;
        }
        let (key, next) = string(i)?;
        if key.len() > MAX_KEY || memchr::memchr(b'@', key).is_some() {
            return None;
        }
        let name = names.get(key);
        i = skip_ws(next)?;
        if w[i] != b':' {
            return None;
        }
        i = skip_ws(i + 1)?;
        match w[i] {
            b'"' => {
                let (value, next) = string(i)?;
                if value.len() > max {
                    return None;
                }
                // As `take_string`: only a password or a value with an `@` is read.
                if name == Named::Password || memchr::memchr(b'@', value).is_some() {
                    take_text(&mut rec, Some(name), std::str::from_utf8(value).ok()?);
                }
                i = next;
            }
            b'{' | b'[' => return None,
            _ => {
                let from = i;
                while !matches!(w.get(i)?, b',' | b'}' | b']') && !w[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i - from > 64 || !literal(&w[from..i]) {
                    return None;
                }
            }
        }
        i = skip_ws(i)?;
        match w[i] {
            b',' => i = skip_ws(i + 1)?,
            b'}' => return Some((rec, i + 1, newlines)),
            _ => return None,
        }
    }
}

/// Where a string's bytes end: at its closing `"`, an escape or a line break. Most keys
/// and values are short: a loop finds their end sooner than a vector search is set up.
#[inline]
fn string_end(b: &[u8]) -> Option<usize> {
    if b.len() >= 64 {
        let m = bytes::eq_mask(b, b'"') | bytes::eq_mask(b, b'\\') | bytes::eq_mask(b, b'\n');
        if m != 0 {
            return Some(m.trailing_zeros() as usize);
        }
        return memchr::memchr3(b'"', b'\\', b'\n', &b[64..]).map(|i| i + 64);
    }
    b.iter().position(|c| matches!(c, b'"' | b'\\' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    type Got = Vec<(String, Option<String>, u64, Format)>;

    fn read(json: &[u8]) -> (Got, CollectSink, ParseStats) {
        let mut sink = CollectSink::default();
        let stats = parse(json, 1024, &mut sink).unwrap();
        let got = sink
            .records
            .iter()
            .map(|r| (r.login.clone(), r.password.clone(), r.line, r.format))
            .collect();
        (got, sink, stats)
    }

    fn rec(
        login: &str,
        pw: Option<&str>,
        line: u64,
        f: Format,
    ) -> (String, Option<String>, u64, Format) {
        (login.into(), pw.map(Into::into), line, f)
    }

    #[test]
    fn pretty_array_nested_keys() {
        let json = br#"[
  {
    "id": 1,
    "user": {"contact": {"mail": "a@example.net", "tel": "06"}, "auth": {"pass": "p\"w\u00e9"}},
    "note": "ask b@example.org"
  },
  {"id": 2, "Adresse e-mail": "c@example.com", "mot_de_passe": "x", "tags": [1, true, null]},
  {"id": 3, "name": "no address"}
]"#;
        let (got, _, stats) = read(json);
        assert_eq!(
            got,
            vec![
                rec("a@example.net", Some("p\"wé"), 6, Format::Json),
                rec("b@example.org", None, 6, Format::Text),
                rec("c@example.com", Some("x"), 7, Format::Json),
            ]
        );
        assert_eq!(stats.lines, 9);
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn ndjson_with_a_broken_line() {
        let json = b"{\"email\":\"a@example.net\",\"password\":\"1\"}\n{\"email\": broken\n{\"login\":\"b@example.net\"}\n";
        let (got, sink, stats) = read(json);
        assert_eq!(
            got,
            vec![
                rec("a@example.net", Some("1"), 1, Format::Json),
                rec("b@example.net", None, 3, Format::Json),
            ]
        );
        assert_eq!(stats.malformed, 1);
        assert_eq!(sink.malformed, vec![(2, Malformed::Syntax)]);
    }

    #[test]
    fn wrapped_records_and_hostile_input() {
        let (got, _, _) = read(br#"{"data": {"users": [{"email": "a@example.net"}, {"email": "b@example.net"}], "total": 2}}"#);
        assert_eq!(
            got.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["a@example.net", "b@example.net"]
        );
        // Deep nesting is refused without a stack overflow.
        let deep = "[".repeat(100_000);
        let (got, _, stats) = read(deep.as_bytes());
        assert!(got.is_empty());
        assert_eq!(stats.malformed, 1);
        // An unterminated string at the end.
        let (got, sink, _) = read(b"[{\"email\": \"a@example.net\"}, {\"email\": \"b@exa");
        assert_eq!(got.len(), 1);
        assert_eq!(sink.malformed, vec![(1, Malformed::Unterminated)]);
        // Loose strings in an array.
        let (got, _, _) = read(br#"["x@example.net", "y"]"#);
        assert_eq!(got, vec![rec("x@example.net", None, 1, Format::Text)]);
    }

    #[test]
    fn maps_keyed_by_address() {
        let (got, _, _) = read(
            br#"{"users": {"jean@example.net": {"password": "1", "name": "J"}, "marie@example.org": {"pass": "2"}}, "admin@example.com": "Admin", "see x@example.net": 1}"#,
        );
        assert_eq!(
            got,
            vec![
                rec("jean@example.net", Some("1"), 1, Format::Json),
                rec("marie@example.org", Some("2"), 1, Format::Json),
                rec("admin@example.com", None, 1, Format::Text),
                rec("x@example.net", None, 1, Format::Text),
            ]
        );
    }

    #[test]
    fn sniffing() {
        assert!(sniff(b"\n  [\n {\"a\": 1}]"));
        assert!(sniff(b"{\"a\":1}\n{\"a\":2}\n"));
        assert!(!sniff(b"[section]\nkey=value\n"));
        assert!(!sniff(b"{fresh combos}\n"));
        assert!(!sniff(b"a@example.net:pw"));
    }
}
