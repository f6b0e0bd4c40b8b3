//! SQL dumps: mysqldump / MariaDB `INSERT` statements and PostgreSQL `COPY … FROM stdin`
//! blocks, read as a stream of rows.
//!
//! Leak sites publish the victim's database as its dump tool wrote it: one `INSERT INTO t
//! VALUES (…),(…),…;` of many megabytes on one line (mysqldump's extended inserts), or a
//! `COPY t (cols) FROM stdin;` followed by tab-separated rows and `\.`. This reader
//! tokenises statements byte by byte through a bounded [`Cursor`], never a whole line or
//! statement, so a 50 MB statement costs one buffer.
//!
//! - Column names come from the statement's column list, else from the table's `CREATE
//!   TABLE` earlier in the dump (mysqldump writes no column list by default), else the
//!   login is found by content. They pick the login and password as a table's header
//!   does ([`columns`]).
//! - Values: `'…'` and `"…"` strings with backslash and doubled-quote escapes, `_binary`
//!   / `_utf8mb4` / `N` prefixes, `NULL`, numbers and expressions (read, not evaluated).
//! - Statements of no interest (`SET`, `LOCK`, `DROP`, …) are skipped quote-aware, their
//!   text read by the grep floor; comments are skipped.
//! - A row cut by the end of the input (an unterminated string) is reported as malformed
//!   with the line it started on.

use std::collections::HashMap;
use std::io::{self, Read};

use super::columns::{self, Columns};
use super::cursor::Cursor;
use super::{decode, text, Format, Malformed, ParseStats, Sink};

/// Fields kept per row; more are read and dropped.
const MAX_FIELDS: usize = 1024;
/// Tables whose columns are remembered from `CREATE TABLE`.
const MAX_TABLES: usize = 4096;
/// Bytes of a keyword or identifier kept.
const MAX_WORD: usize = 256;
/// Progress is reported every this many bytes.
const PROGRESS_EVERY: u64 = 1 << 20;

/// Whether a sample reads as SQL: its first statement (after comments) is a SQL keyword,
/// and a data statement (`INSERT`, `REPLACE`, `COPY`) or a `CREATE TABLE` appears in it.
pub fn sniff(sample: &[u8]) -> bool {
    let mut first = true;
    let mut data = false;
    for line in sample.split(|&b| b == b'\n').take(2000) {
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"--") || line.starts_with(b"#") {
            continue;
        }
        if line.starts_with(b"/*") {
            continue;
        }
        let word: Vec<u8> = line
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .map(u8::to_ascii_uppercase)
            .collect();
        if first {
            first = false;
            const KEYWORDS: &[&[u8]] = &[
                b"SET", b"INSERT", b"REPLACE", b"CREATE", b"DROP", b"LOCK", b"UNLOCK", b"USE",
                b"COPY", b"ALTER", b"BEGIN", b"START", b"COMMIT", b"SELECT",
            ];
            if !KEYWORDS.contains(&word.as_slice()) {
                return false;
            }
        }
        let rest = line
            .get(word.len()..)
            .unwrap_or_default()
            .trim_ascii_start();
        let next_upper =
            |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
        data |= match word.as_slice() {
            b"INSERT" | b"REPLACE" => true,
            b"COPY" => true,
            b"CREATE" => next_upper(b"TABLE") || next_upper(b"TEMPORARY"),
            _ => false,
        };
        if data {
            return true;
        }
    }
    false
}

/// Reads a SQL dump; see the module's doc. `max_field` bounds each value (and a skipped
/// statement's text read by the floor).
pub fn parse<R: Read>(input: R, max_field: usize, sink: &mut dyn Sink) -> io::Result<ParseStats> {
    Ok(parse_from(input, max_field, State::default(), sink)?.0)
}

/// What the reader carries from one statement to the next, so that a dump read in pieces
/// (`crate::split`) reads each as the reader of the whole would: the tables' columns,
/// and whether a `COPY` block's rows are being read (they are lines, so a piece may
/// start among them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Column names of the tables created so far, by lower-case table name.
    tables: HashMap<String, Vec<String>>,
    /// Inside a `COPY … FROM stdin` block, with its columns.
    copying: Option<Columns>,
}

/// As [`parse`], from `state` (the state after the bytes before `input`); returns the
/// state after `input` too. [`ParseStats::ended_inside`] is set when `input` ends inside
/// a statement (which a `COPY` block's rows are not).
pub fn parse_from<R: Read>(
    input: R,
    max_field: usize,
    state: State,
    sink: &mut dyn Sink,
) -> io::Result<(ParseStats, State)> {
    let mut r = SqlReader {
        c: Cursor::new(input),
        max_field,
        tables: state.tables,
        copying: state.copying,
        block_ended: false,
        fields: Vec::new(),
        nulls: Vec::new(),
        used: 0,
        last_word: Vec::new(),
        lead: Vec::new(),
        unescaped: Vec::new(),
        stats: ParseStats::default(),
        next_progress: PROGRESS_EVERY,
    };
    r.run(sink)?;
    r.stats.lines = r.c.lines();
    r.stats.bytes = r.c.bytes_read();
    let state = State {
        tables: r.tables,
        copying: r.copying,
    };
    Ok((r.stats, state))
}

/// Values of a row [`SqlReader::plain_row`] reads (a wider one is read by
/// [`SqlReader::values`]).
const PLAIN_FIELDS: usize = 32;

/// Where a value of a plain row is.
#[derive(Debug, Clone)]
enum Span {
    Null,
    /// In the cursor's window.
    Here(std::ops::Range<usize>),
    /// Unescaped, in the reader's buffer.
    Unescaped(std::ops::Range<usize>),
}

/// The byte a backslash escape in a MySQL string stands for (`\n`, `\0`, `\Z`, …;
/// any other byte, itself).
fn unescape(e: u8) -> u8 {
    match e {
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'0' => 0,
        b'Z' => 0x1A,
        other => other,
    }
}

/// The values of the row `window` starts with (at its `(`), as [`SqlReader::values`]
/// reads them, into `spans`: how many, and the bytes through the `)`. `None` for a row
/// that is not plain (see [`SqlReader::plain_row`]) or does not end in `window`.
fn plain_values(
    window: &[u8],
    max: usize,
    spans: &mut [Span; PLAIN_FIELDS],
    unescaped: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let w = window;
    let skip_ws = |mut i: usize| -> Option<usize> {
        while w.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        Some(i)
    };
    debug_assert_eq!(w.first(), Some(&b'('));
    let mut i = 1;
    let mut n = 0;
    loop {
        i = skip_ws(i)?;
        let b = *w.get(i)?;
        let span = if b == b'\'' || b == b'"' {
            // A string: borrowed as it lies, or unescaped if it holds an escape.
            let from = i + 1;
            let mut end = memchr::memchr2(b, b'\\', &w[from..])? + from;
            if w[end] == b && *w.get(end + 1)? != b {
                i = end + 1;
                (end - from <= max).then_some(Span::Here(from..end))?
            } else {
                let start = unescaped.len();
                let mut at = from;
                loop {
                    unescaped.extend_from_slice(&w[at..end]);
                    let c = *w.get(end + 1)?;
                    if w[end] == b'\\' {
                        unescaped.push(unescape(c));
                    } else if c == b {
                        unescaped.push(b); // a doubled quote
                    } else {
                        break;
                    }
                    at = end + 2;
                    end = memchr::memchr2(b, b'\\', &w[at..])? + at;
                }
                i = end + 1;
                (unescaped.len() - start <= max)
                    .then_some(Span::Unescaped(start..unescaped.len()))?
            }
        } else {
            let from = i;
            while let Some(&c) = w.get(i) {
                if matches!(c, b',' | b')' | b'(' | b'\'' | b'"') || c.is_ascii_whitespace() {
                    break;
                }
                i += 1;
            }
            let word = &w[from..i];
            if word.len() > MAX_WORD.min(max) {
                return None;
            }
            if word.eq_ignore_ascii_case(b"NULL") {
                Span::Null
            } else {
                Span::Here(from..i)
            }
        };
        i = skip_ws(i)?;
        *spans.get_mut(n)? = span;
        n += 1;
        match w.get(i)? {
            b',' => i += 1,
            b')' => return Some((n, i + 1)),
            _ => return None,
        }
    }
}

struct SqlReader<R> {
    c: Cursor<R>,
    max_field: usize,
    /// Column names of the tables created so far, by lower-case table name.
    tables: HashMap<String, Vec<String>>,
    /// Inside a `COPY` block's rows, with its columns.
    copying: Option<Columns>,
    /// The statement just read was a `COPY` block that ended at its `\.`.
    block_ended: bool,
    /// The row being read: its values' bytes (reused), whether each is `NULL`.
    fields: Vec<Vec<u8>>,
    nulls: Vec<bool>,
    /// Fields of the row being read.
    used: usize,
    /// The last keyword read, as written: the start of a statement the floor reads.
    last_word: Vec<u8>,
    /// A lone `-` or `/` read while looking for a comment: the statement's first byte.
    lead: Vec<u8>,
    /// The escaped strings of the plain row being read, unescaped.
    unescaped: Vec<u8>,
    stats: ParseStats,
    next_progress: u64,
}

/// How a row's reading ended.
enum RowEnd {
    Done,
    /// The input ended inside the row.
    Cut,
}

impl<R: Read> SqlReader<R> {
    fn run(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        if let Some(cols) = self.copying {
            self.copy_rows(cols, sink)?;
        }
        loop {
            self.skip_ws_and_comments(sink)?;
            let Some(b) = self.c.peek()? else {
                return Ok(());
            };
            if b == b';' {
                // An empty statement (`-;` included: the lone `-` was all of it).
                self.lead.clear();
                self.c.bump()?;
                continue;
            }
            self.block_ended = false;
            self.statement(sink)?;
            // A statement ends at its `;` (a `COPY` block, at its `\.` or among its rows):
            // one that the input's end cut short is the next piece's to finish.
            let ended = self.c.last() == Some(b';') || self.block_ended;
            if !ended && self.copying.is_none() && self.c.peek()?.is_none() {
                self.stats.ended_inside = true;
            }
        }
    }

    /// One statement, from its first word.
    fn statement(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        {
            // A statement after a lone `-` or `/` is none we read.
            let lead = std::mem::take(&mut self.lead);
            let word = self.word()?;
            let word = if lead.is_empty() { word.as_str() } else { "" };
            match word {
                "INSERT" | "REPLACE" => self.insert(sink)?,
                "COPY" => self.copy(sink)?,
                "CREATE" => {
                    self.create(sink)?;
                    self.stats.entries += 1;
                    sink.end_entry();
                }
                // Not a statement we read: to the next `;`, its text (with the word it
                // began with: `jean@…` is not a keyword) read by the floor.
                _ => {
                    let mut first = lead;
                    first.append(&mut self.last_word);
                    self.skip_statement_from(Some(sink), first)?;
                }
            }
            let read = self.c.bytes_read();
            if read >= self.next_progress {
                self.next_progress = read + PROGRESS_EVERY;
                sink.progress(read);
            }
        }
        Ok(())
    }

    /// Skips white space, `-- …` and `# …` lines and `/* … */` comments. A comment is an
    /// entry of its own, read by the grep floor (`-- Dumped by admin@example.net`).
    fn skip_ws_and_comments(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let mut text = Vec::new();
        loop {
            self.c.skip_ws()?;
            text.clear();
            let line = self.c.line();
            match self.c.peek()? {
                Some(b'#') => {
                    self.c.push_bounded(b"\n", &mut text, self.max_field)?;
                }
                Some(b'-') => {
                    self.c.bump()?;
                    if self.c.peek()? != Some(b'-') {
                        // A lone `-`: the start of something else; read it as a statement.
                        self.lead = b"-".to_vec();
                        return Ok(());
                    }
                    self.c.push_bounded(b"\n", &mut text, self.max_field)?;
                }
                Some(b'/') => {
                    self.c.bump()?;
                    if self.c.peek()? != Some(b'*') {
                        self.lead = b"/".to_vec();
                        return Ok(());
                    }
                    self.c.bump()?;
                    loop {
                        match self.c.push_bounded(b"*", &mut text, self.max_field)?.0 {
                            None => {
                                // The input ended inside the comment.
                                self.stats.ended_inside = true;
                                break;
                            }
                            Some(_) => {
                                self.c.bump()?;
                                if self.c.peek()? == Some(b'/') {
                                    self.c.bump()?;
                                    break;
                                }
                                text.push(b'*');
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
            self.stats.entries += 1;
            if memchr::memchr(b'@', &text).is_some() {
                self.stats.records += text::floor(&decode::line_text(&text), 0, None, line, sink);
            }
            sink.end_entry();
        }
    }

    /// A keyword (letters and `_`), upper-cased; empty if none starts here.
    fn word(&mut self) -> io::Result<String> {
        let mut w = String::new();
        self.last_word.clear();
        while let Some(b) = self.c.peek()? {
            if !(b.is_ascii_alphanumeric() || b == b'_') {
                break;
            }
            self.c.bump()?;
            if w.len() < MAX_WORD {
                w.push(b.to_ascii_uppercase() as char);
                self.last_word.push(b);
            }
        }
        Ok(w)
    }

    /// An identifier: bare, or quoted with `` ` ``, `"` or `[]`; dotted parts joined by
    /// `.`. Returned as written, unquoted.
    fn identifier(&mut self) -> io::Result<String> {
        let mut out = Vec::new();
        loop {
            self.c.skip_ws()?;
            match self.c.peek()? {
                Some(q @ (b'`' | b'"' | b'[')) => {
                    self.c.bump()?;
                    let close = if q == b'[' { b']' } else { q };
                    let mut part = Vec::new();
                    self.c.push_bounded(&[close], &mut part, MAX_WORD)?;
                    self.c.bump()?;
                    out.extend(part);
                }
                Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 => {
                    while let Some(b) = self.c.peek()? {
                        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80) {
                            break;
                        }
                        self.c.bump()?;
                        if out.len() < MAX_WORD {
                            out.push(b);
                        }
                    }
                }
                _ => break,
            }
            if self.c.peek()? == Some(b'.') {
                self.c.bump()?;
                out.push(b'.');
                continue;
            }
            break;
        }
        Ok(decode::line_text(&out).into_owned())
    }

    /// `( name, name, … )`: the names, bounded in number.
    fn name_list(&mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        self.c.bump()?; // `(`
        loop {
            let name = self.identifier()?;
            if names.len() < MAX_FIELDS {
                names.push(name);
            }
            self.c.skip_ws()?;
            match self.c.bump()? {
                Some(b',') => continue,
                _ => return Ok(names), // `)`, or anything else: the list ends
            }
        }
    }

    /// The last part of a table name, lower case: the key of `tables`.
    fn table_key(name: &str) -> String {
        name.rsplit('.').next().unwrap_or(name).to_lowercase()
    }

    /// `INSERT [IGNORE] [INTO] t [(cols)] VALUES (…),(…);` (after `INSERT`/`REPLACE`).
    fn insert(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        // Modifiers, then `INTO`, then the table.
        let mut table;
        loop {
            self.c.skip_ws()?;
            table = self.identifier()?;
            match table.to_ascii_uppercase().as_str() {
                "LOW_PRIORITY" | "DELAYED" | "HIGH_PRIORITY" | "IGNORE" | "INTO" | "OR" => continue,
                _ => break,
            }
        }
        self.c.skip_ws()?;
        let names = if self.c.peek()? == Some(b'(') {
            Some(self.name_list()?)
        } else {
            None
        };
        let cols = match &names {
            Some(n) => Columns::from_names(n.iter().map(String::as_str)),
            None => match self.tables.get(&Self::table_key(&table)) {
                Some(n) => Columns::from_names(n.iter().map(String::as_str)),
                None => Columns::default(),
            },
        };
        self.c.skip_ws()?;
        let kw = self.word()?;
        if kw != "VALUES" && kw != "VALUE" {
            return self.skip_statement(Some(sink)); // `INSERT … SELECT`, `SET a = …`
        }
        loop {
            self.c.skip_ws()?;
            if self.c.peek()? != Some(b'(') {
                break;
            }
            if self.plain_row(cols, sink)? {
                self.stats.entries += 1;
                sink.end_entry();
            } else {
                self.c.bump()?;
                let start = self.c.line();
                self.stats.entries += 1;
                match self.values()? {
                    RowEnd::Done => {
                        self.emit(cols, Format::Sql, sink);
                        sink.end_entry();
                    }
                    RowEnd::Cut => {
                        self.stats.malformed += 1;
                        sink.malformed(start, Malformed::Unterminated);
                        return Ok(());
                    }
                }
            }
            self.c.skip_ws()?;
            if self.c.peek()? == Some(b',') {
                self.c.bump()?;
                continue;
            }
            break;
        }
        // `;`, or `ON DUPLICATE KEY UPDATE …`: the rest of the statement.
        if self.c.peek()? == Some(b';') {
            self.c.bump()?;
            return Ok(());
        }
        self.skip_statement(None)
    }

    /// The common row, read where it lies: one whole `( … )` in the cursor's buffer, on
    /// one line, of at most [`PLAIN_FIELDS`] values that are quoted strings, numbers,
    /// bare words or `NULL`, each within the bound. Its values are those [`Self::values`]
    /// would copy out: reported as they lie (an escaped string unescaped into a buffer
    /// of the row's), and the row consumed through its `)`. `false`, with nothing
    /// consumed, for any other row: [`Self::values`] reads it.
    fn plain_row(&mut self, cols: Columns, sink: &mut dyn Sink) -> io::Result<bool> {
        let line = self.c.line();
        let window = self.c.window()?;
        let unescaped = &mut self.unescaped;
        unescaped.clear();
        const NULL: Span = Span::Null;
        let mut spans = [NULL; PLAIN_FIELDS];
        let Some((n, len)) = plain_values(window, self.max_field, &mut spans, unescaped) else {
            return Ok(false);
        };
        if memchr::memchr(b'\n', &window[..len]).is_some() {
            return Ok(false);
        }
        let mut raw: [Option<&[u8]>; PLAIN_FIELDS] = [None; PLAIN_FIELDS];
        for (r, span) in raw.iter_mut().zip(&spans[..n]) {
            *r = match span {
                Span::Null => None,
                Span::Here(at) => Some(&window[at.clone()]),
                Span::Unescaped(at) => Some(&unescaped[at.clone()]),
            };
        }
        self.stats.records += columns::report_row(&raw[..n], cols, line, Format::Sql, sink);
        self.c.consume(len, 0);
        Ok(true)
    }

    /// Starts a new field of the current row; `None` past the bound.
    fn field(&mut self) -> Option<usize> {
        if self.used == MAX_FIELDS {
            return None;
        }
        if self.used == self.fields.len() {
            self.fields.push(Vec::new());
            self.nulls.push(false);
        }
        let i = self.used;
        self.fields[i].clear();
        self.nulls[i] = false;
        self.used += 1;
        Some(i)
    }

    /// The values of one row, after its `(`, through its `)`.
    fn values(&mut self) -> io::Result<RowEnd> {
        self.used = 0;
        let mut scratch = Vec::new();
        loop {
            self.c.skip_ws()?;
            let slot = self.field();
            let mut buf = match slot {
                Some(i) => std::mem::take(&mut self.fields[i]),
                None => std::mem::take(&mut scratch),
            };
            let max = if slot.is_some() { self.max_field } else { 0 };
            let end = self.value(&mut buf, max)?;
            match slot {
                Some(i) => {
                    self.nulls[i] = end.1;
                    self.fields[i] = buf;
                }
                None => scratch = buf,
            }
            match end.0 {
                None => return Ok(RowEnd::Cut),
                Some(b')') => return Ok(RowEnd::Done),
                Some(_) => continue, // `,`
            }
        }
    }

    /// One value, through the `,` or `)` after it (returned, with whether it was
    /// `NULL`); `None` at end of input.
    fn value(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<(Option<u8>, bool)> {
        let mut null = false;
        let mut word = Vec::new();
        let mut depth = 0u32;
        loop {
            let Some(b) = self.c.peek()? else {
                return Ok((None, null));
            };
            match b {
                b'\'' | b'"' => {
                    self.c.bump()?;
                    if !self.string(b, out, max)? {
                        return Ok((None, null));
                    }
                }
                b'(' => {
                    depth += 1;
                    self.c.bump()?;
                }
                b')' if depth > 0 => {
                    depth -= 1;
                    self.c.bump()?;
                }
                b',' | b')' if depth == 0 => {
                    self.c.bump()?;
                    if out.is_empty() && word.eq_ignore_ascii_case(b"NULL") {
                        null = true;
                    } else if out.is_empty() && !word.is_empty() {
                        // A number or a bare word: the value itself.
                        out.extend_from_slice(&word[..word.len().min(max)]);
                    }
                    return Ok((Some(b), null));
                }
                _ => {
                    self.c.bump()?;
                    if !b.is_ascii_whitespace() && word.len() < MAX_WORD {
                        word.push(b);
                    }
                }
            }
        }
    }

    /// A quoted string after its opening `quote`, unescaped into `out` (bounded by
    /// `max`); false if the input ends inside it.
    fn string(&mut self, quote: u8, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        loop {
            let (stop, _) = self.c.push_bounded(&[quote, b'\\'], out, max)?;
            let Some(stop) = stop else {
                return Ok(false);
            };
            self.c.bump()?;
            if stop == b'\\' {
                let Some(e) = self.c.bump()? else {
                    return Ok(false);
                };
                if out.len() < max {
                    out.push(unescape(e));
                }
                continue;
            }
            // A doubled quote is a quote.
            if self.c.peek()? == Some(quote) {
                self.c.bump()?;
                if out.len() < max {
                    out.push(quote);
                }
                continue;
            }
            return Ok(true);
        }
    }

    /// Reports the row just read.
    fn emit(&mut self, cols: Columns, format: Format, sink: &mut dyn Sink) {
        let line = self.c.line();
        self.emit_at(cols, line, format, sink);
    }

    /// Reports the row just read as of line `line`.
    fn emit_at(&mut self, cols: Columns, line: u64, format: Format, sink: &mut dyn Sink) {
        let raw: Vec<Option<&[u8]>> = self.fields[..self.used]
            .iter()
            .zip(&self.nulls)
            .map(|(f, &null)| (!null).then_some(f.as_slice()))
            .collect();
        self.stats.records += columns::report_row(&raw, cols, line, format, sink);
    }

    /// `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] t ( defs ) …;`: remembers its columns.
    fn create(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        self.c.skip_ws()?;
        let mut kw = self.word()?;
        if kw == "TEMPORARY" {
            self.c.skip_ws()?;
            kw = self.word()?;
        }
        if kw != "TABLE" {
            return self.skip_statement(None);
        }
        let mut name;
        loop {
            name = self.identifier()?;
            match name.to_ascii_uppercase().as_str() {
                "IF" | "NOT" | "EXISTS" => continue,
                _ => break,
            }
        }
        self.c.skip_ws()?;
        if self.c.peek()? != Some(b'(') {
            return self.skip_statement(None);
        }
        self.c.bump()?;
        let mut cols = Vec::new();
        loop {
            // `-- comment` lines between definitions: read by the floor, and not taken
            // for the next column's name.
            self.skip_ws_and_comments(sink)?;
            let first = self.identifier()?;
            const NOT_COLUMNS: &[&str] = &[
                "PRIMARY",
                "KEY",
                "UNIQUE",
                "INDEX",
                "CONSTRAINT",
                "FOREIGN",
                "FULLTEXT",
                "SPATIAL",
                "CHECK",
                "EXCLUDE",
                "LIKE",
            ];
            if !first.is_empty()
                && !NOT_COLUMNS.contains(&first.to_ascii_uppercase().as_str())
                && cols.len() < MAX_FIELDS
            {
                cols.push(first);
            }
            // The rest of the definition, to the `,` or `)` at this level; its quoted
            // text (`COMMENT 'ask admin@…'`, a default) read by the floor.
            let mut scratch = Vec::new();
            let end = self.value(&mut scratch, self.max_field)?.0;
            if memchr::memchr(b'@', &scratch).is_some() {
                let line = self.c.line();
                self.stats.records +=
                    text::floor(&decode::line_text(&scratch), 0, None, line, sink);
            }
            match end {
                Some(b',') => continue,
                _ => break,
            }
        }
        if self.tables.len() < MAX_TABLES || self.tables.contains_key(&Self::table_key(&name)) {
            self.tables.insert(Self::table_key(&name), cols);
        }
        self.skip_statement(None)
    }

    /// `COPY t [(cols)] FROM stdin;` and its rows, through `\.`.
    fn copy(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let table = self.identifier()?;
        self.c.skip_ws()?;
        let names = if self.c.peek()? == Some(b'(') {
            Some(self.name_list()?)
        } else {
            None
        };
        // `FROM stdin` and options, to the `;`.
        let mut head = Vec::new();
        self.c.push_bounded(b";", &mut head, MAX_WORD)?;
        self.c.bump()?;
        let upper = head.to_ascii_uppercase();
        if !upper.windows(5).any(|w| w == b"STDIN") {
            // `COPY … FROM 'file'`: no rows here.
            self.stats.entries += 1;
            sink.end_entry();
            return Ok(());
        }
        let cols = match &names {
            Some(n) => Columns::from_names(n.iter().map(String::as_str)),
            None => match self.tables.get(&Self::table_key(&table)) {
                Some(n) => Columns::from_names(n.iter().map(String::as_str)),
                None => Columns::default(),
            },
        };
        self.stats.entries += 1;
        sink.end_entry();
        // The rest of the statement's line, then one row per line.
        let mut line = Vec::new();
        self.c.push_bounded(b"\n", &mut line, 0)?;
        self.c.bump()?;
        self.copy_rows(cols, sink)
    }

    /// A `COPY` block's rows, one per line, through `\.`; at the input's end without it,
    /// still [`SqlReader::copying`].
    fn copy_rows(&mut self, cols: Columns, sink: &mut dyn Sink) -> io::Result<()> {
        self.copying = Some(cols);
        let mut line = Vec::new();
        loop {
            line.clear();
            let (stop, cut) = self.c.push_bounded(b"\n", &mut line, self.max_field)?;
            if stop.is_none() && line.is_empty() {
                return Ok(()); // the input ended without `\.`
            }
            let no = self.c.line();
            self.c.bump()?;
            let row = line.strip_suffix(b"\r").unwrap_or(&line);
            if row == b"\\." {
                self.copying = None;
                self.block_ended = true;
                return Ok(());
            }
            self.stats.entries += 1;
            if cut {
                self.stats.malformed += 1;
                sink.malformed(no, Malformed::TooLong);
                continue;
            }
            self.used = 0;
            for raw in row.split(|&b| b == b'\t') {
                let Some(i) = self.field() else { break };
                if raw == b"\\N" {
                    self.nulls[i] = true;
                    continue;
                }
                let f = &mut self.fields[i];
                let mut bytes = raw.iter();
                while let Some(&b) = bytes.next() {
                    if b != b'\\' {
                        f.push(b);
                        continue;
                    }
                    f.push(match bytes.next() {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(&o) => o,
                        None => b'\\',
                    });
                }
            }
            self.emit_at(cols, no, Format::Sql, sink);
            sink.end_entry();
        }
    }

    /// Consumes the rest of a statement through its `;` (quote-aware). With a sink, its
    /// text (bounded) is read by the grep floor.
    fn skip_statement(&mut self, sink: Option<&mut dyn Sink>) -> io::Result<()> {
        self.skip_statement_from(sink, Vec::new())
    }

    /// [`Self::skip_statement`], its text starting with `seen` (what was read of it).
    fn skip_statement_from(
        &mut self,
        sink: Option<&mut dyn Sink>,
        mut seen: Vec<u8>,
    ) -> io::Result<()> {
        let max = if sink.is_some() { self.max_field } else { 0 };
        let line = self.c.line();
        loop {
            let (stop, _) = self.c.push_bounded(b";'\"", &mut seen, max)?;
            match stop {
                None => break,
                Some(b';') => {
                    self.c.bump()?;
                    break;
                }
                Some(q) => {
                    // The quotes kept: the floor reads the text as grep does, where a
                    // quote ends an address.
                    self.c.bump()?;
                    if seen.len() < max {
                        seen.push(q);
                    }
                    if !self.string(q, &mut seen, max)? {
                        break;
                    }
                    if seen.len() < max {
                        seen.push(q);
                    }
                }
            }
        }
        if let Some(sink) = sink {
            self.stats.entries += 1;
            self.stats.records += text::floor(&decode::line_text(&seen), 0, None, line, sink);
            sink.end_entry();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    fn read(sql: &[u8]) -> (CollectSink, ParseStats) {
        let mut sink = CollectSink::default();
        let stats = parse(sql, 1024, &mut sink).unwrap();
        (sink, stats)
    }

    fn got(sink: &CollectSink) -> Vec<(String, Option<String>, u64)> {
        sink.records
            .iter()
            .map(|r| (r.login.clone(), r.password.clone(), r.line))
            .collect()
    }

    #[test]
    fn mysqldump_with_create_table_and_extended_insert() {
        let sql = b"-- MySQL dump 10.13\n/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `users`;\n\
CREATE TABLE `users` (\n  `id` int(11) NOT NULL,\n  `nom` varchar(64) DEFAULT 'a,b',\n  `courriel` varchar(255),\n  `mdp` varchar(255),\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n\
INSERT INTO `users` VALUES (1,'O\\'Brien','a@example.net','p\\'w'),(2,'Ren\xe9','b@example.org',NULL),(3,'x','','pw3'),(4,_binary 'y','c@example.com','it''s');\n";
        let (sink, stats) = read(sql);
        assert_eq!(
            got(&sink),
            vec![
                ("a@example.net".into(), Some("p'w".into()), 11),
                ("b@example.org".into(), None, 11),
                ("c@example.com".into(), Some("it's".into()), 11),
            ]
        );
        assert_eq!(stats.lines, 11);
        assert_eq!(stats.records, 3);
        assert_eq!(stats.malformed, 0);
        assert!(sink.records.iter().all(|r| r.format == Format::Sql));
    }

    #[test]
    fn column_lists_and_content() {
        let sql = b"INSERT INTO t (id, user_email, password_hash) VALUES\n(1, 'a@example.net', '$2y$10$abc'),\n(2, \"b@example.net\", 'x');\n\
INSERT INTO other VALUES (5, 'Dupont', 'c@example.net', 'note: d@example.org');\n";
        let (sink, _) = read(sql);
        assert_eq!(
            got(&sink),
            vec![
                ("a@example.net".into(), Some("$2y$10$abc".into()), 2),
                ("b@example.net".into(), Some("x".into()), 3),
                ("c@example.net".into(), None, 4),
                ("d@example.org".into(), None, 4),
            ]
        );
    }

    #[test]
    fn postgres_copy() {
        let sql = b"--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n\
COPY public.accounts (id, email, encrypted_password, bio) FROM stdin;\n\
1\ta@example.net\tsecret\t\\N\n2\t\\N\t\\N\tmail me: b@example.org\n3\tc@example.net\tp\\tw\tx\n\\.\n\
SELECT pg_catalog.setval('x', 3, true);\n";
        let (sink, stats) = read(sql);
        assert_eq!(
            got(&sink),
            vec![
                ("a@example.net".into(), Some("secret".into()), 6),
                ("b@example.org".into(), None, 7),
                ("c@example.net".into(), Some("p\tw".into()), 8),
            ]
        );
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn comments_are_read_by_the_floor() {
        let (sink, stats) = read(
            b"-- Dumped by admin@example.net\n/* owner: dba@example.org */\n# x\nSET a = 1;\n",
        );
        assert_eq!(
            got(&sink),
            vec![
                ("admin@example.net".into(), None, 1),
                ("dba@example.org".into(), None, 2),
            ]
        );
        // Three comments and a statement, each an entry.
        assert_eq!(stats.entries, 4);
        assert_eq!(sink.ended, 4);
    }

    #[test]
    fn hostile_statements() {
        // An unterminated string: one malformed row, named by the line it started on.
        let (sink, stats) =
            read(b"INSERT INTO t VALUES (1,'a@example.net'),\n(2,'never closed\n\n");
        assert_eq!(got(&sink), vec![("a@example.net".into(), None, 1)]);
        assert_eq!(stats.malformed, 1);
        assert_eq!(sink.malformed, vec![(2, Malformed::Unterminated)]);
        // A huge value is cut at the field bound, the row still read.
        let mut big = b"INSERT INTO t VALUES ('".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5 << 20));
        big.extend(b"', 'e@example.net');\n");
        let (sink, _) = read(&big);
        assert_eq!(got(&sink), vec![("e@example.net".into(), None, 1)]);
        // Nested parentheses and functions.
        let (sink, _) = read(b"INSERT INTO t VALUES (CONCAT('a', ')'), NOW(), 'f@example.net');");
        assert_eq!(got(&sink), vec![("f@example.net".into(), None, 1)]);
    }

    #[test]
    fn sniffing() {
        assert!(sniff(
            b"-- MySQL dump\n\nSET NAMES utf8;\nINSERT INTO t VALUES (1);\n"
        ));
        assert!(sniff(b"COPY public.t (a) FROM stdin;\n1\n\\.\n"));
        assert!(sniff(b"/*!40101 SET x */;\nCREATE TABLE t (a int);"));
        assert!(!sniff(b"a@example.net:pw\nINSERT INTO t VALUES (1);\n"));
        assert!(!sniff(b"SET x = 1;\n"));
        assert!(!sniff(b""));
    }
}
