//! Parsing: a byte stream in, credential [`Record`]s out, pushed into a [`Sink`].
//!
//! Second stage of the pipeline (after `source`, before `identity`). The format of a stream
//! is detected from its first bytes (`detect`), then one parser reads it line by line through
//! a bounded [`reader::LineReader`]. Records borrow from the line buffer: nothing is
//! allocated per line, and a record lives only for the duration of the `Sink` call.
//!
//! Bad input is never fatal: invalid UTF-8, NUL bytes, over-long lines and lines of no known
//! shape are reported to the sink as [`Malformed`] with their line number, and parsing goes on.

pub mod columns;
pub mod combo;
pub mod cursor;
pub mod decode;
pub mod detect;
pub mod device;
pub mod hashed;
pub mod json;
pub mod reader;
pub mod shape;
pub mod sheet;
pub mod sql;
pub mod stealer;
pub mod table;
pub mod text;
pub mod ulp;

use std::io::{self, Read};

use reader::{LineReader, RawLine};

/// The layout a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `email<sep>password` (or a bare email).
    Combo,
    /// `url<sep>login<sep>password`.
    Ulp,
    /// A table with a header row (leak-site dump).
    Table,
    /// A stealer log's `Passwords.txt` blocks.
    Stealer,
    /// A k-anonymous range API's answer (identity hashes, no passwords).
    Range,
    /// The Have I Been Pwned API.
    Hibp,
    /// A stealer log's Netscape cookie files.
    Cookies,
    /// An address found in free text by the grep floor (`text`): no password.
    Text,
    /// A row of a SQL dump (`INSERT … VALUES`, `COPY … FROM stdin`).
    Sql,
    /// An object of a JSON or NDJSON export.
    Json,
    /// A row of a spreadsheet (XLSX, ODS).
    Sheet,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Combo => "combo",
            Format::Ulp => "ulp",
            Format::Table => "table",
            Format::Stealer => "stealer",
            Format::Range => "range",
            Format::Hibp => "hibp",
            Format::Cookies => "cookies",
            Format::Text => "text",
            Format::Sql => "sql",
            Format::Json => "json",
            Format::Sheet => "sheet",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "combo" => Format::Combo,
            "ulp" => Format::Ulp,
            "table" => Format::Table,
            "stealer" => Format::Stealer,
            "range" => Format::Range,
            "hibp" => Format::Hibp,
            "cookies" => Format::Cookies,
            "text" => Format::Text,
            "sql" => Format::Sql,
            "json" => Format::Json,
            "sheet" => Format::Sheet,
            _ => return None,
        })
    }
}

/// One credential as found in a dump. Fields are raw (not normalised) and borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The email or username as written.
    pub login: &'a str,
    /// The password, when the dump has one (empty passwords count as none).
    pub password: Option<&'a str>,
    /// The site the credential was typed into (URL, `host/path` or `android://…`).
    pub url: Option<&'a str>,
    /// Line where the record ends (a stealer block spans several lines).
    pub line: u64,
    pub format: Format,
}

impl<'a> Record<'a> {
    /// A `login<sep>password` line's record.
    pub fn combo(login: &'a str, password: Option<&'a str>, line: u64) -> Self {
        Record {
            login,
            password,
            url: None,
            line,
            format: Format::Combo,
        }
    }

    /// A `url<sep>login<sep>password` line's record.
    pub fn ulp(url: &'a str, login: &'a str, password: Option<&'a str>, line: u64) -> Self {
        Record {
            login,
            password,
            url: Some(url),
            line,
            format: Format::Ulp,
        }
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    InvalidUtf8,
    NulByte,
    TooLong,
    /// Not empty, but of no shape any parser knows.
    Unrecognised,
    /// A quoted value or a structure the input ended inside of.
    Unterminated,
    /// Not valid in its format (a JSON syntax error).
    Syntax,
}

impl Malformed {
    /// Every reason, in discriminant order (`why as usize` indexes per-reason counters).
    pub const ALL: [Malformed; 6] = [
        Malformed::InvalidUtf8,
        Malformed::NulByte,
        Malformed::TooLong,
        Malformed::Unrecognised,
        Malformed::Unterminated,
        Malformed::Syntax,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::InvalidUtf8 => "invalid UTF-8",
            Malformed::NulByte => "NUL byte",
            Malformed::TooLong => "line too long",
            Malformed::Unrecognised => "unrecognised line",
            Malformed::Unterminated => "unterminated value",
            Malformed::Syntax => "syntax error",
        }
    }
}

/// Receives what a parser finds. Implemented by the matcher in `ingest`, and by tests.
pub trait Sink {
    fn record(&mut self, record: &Record<'_>);
    fn malformed(&mut self, line: u64, why: Malformed);
    /// Called once per buffer refill with the bytes read so far; used for progress.
    fn progress(&mut self, _bytes_read: u64) {}
    /// The records that follow come from a part of the stream with this name (a sheet of
    /// a workbook). The name is the input's author's: shown, never trusted.
    fn section(&mut self, _name: &str) {}
    /// An entry (a line, a row, an object, a statement) was read, and was not malformed:
    /// the records reported since the last call were its records. With `malformed`,
    /// every entry ends in exactly one of three counters (see [`ParseStats::entries`]).
    fn end_entry(&mut self) {}
    /// A row of a table or SQL dump, its fields as read (`None` for `NULL`), before they
    /// are decoded and sorted into records. A sink that settles rows elsewhere (on
    /// another core) takes it and returns `Some(0)`; by default it is `None`, and the
    /// reader reports the row's records itself ([`columns::report_row`]).
    fn row(
        &mut self,
        _fields: &[Option<&[u8]>],
        _cols: columns::Columns,
        _line: u64,
        _format: Format,
    ) -> Option<u64> {
        None
    }
}

/// Counters of one parsed stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParseStats {
    pub lines: u64,
    /// Entries read: lines of a line format; rows, objects and statements of the others.
    /// Each is either malformed (reported to [`Sink::malformed`]) or ended by
    /// [`Sink::end_entry`], which the sink sorts into those with and without identities.
    pub entries: u64,
    pub malformed: u64,
    pub records: u64,
    pub bytes: u64,
    /// The input ended inside an entry that its end cut short (a quoted field or a JSON
    /// value still open): for a piece of a larger stream ([`crate::split`]), a sign that
    /// the piece must be read again joined to the next. Set by the row readers.
    pub ended_inside: bool,
}

/// Detects the format of `input` from its first bytes and its `name`, then parses it all.
/// `Err` only for an I/O error of the reader; everything the content can do wrong is
/// reported to the sink instead.
pub fn parse_stream<R: Read>(
    input: R,
    name: &str,
    max_line: usize,
    sink: &mut dyn Sink,
) -> io::Result<ParseStats> {
    let opened = open(input, name)?;
    let raw = opened.raw_bytes.clone();
    let mut stats = parse_layout(opened.layout, opened.input, max_line, sink)?;
    if let Some(raw) = raw {
        stats.bytes = raw.get();
    }
    Ok(stats)
}

/// A stream ready for the readers: decoded to UTF-8, its layout told.
pub struct Opened<'a> {
    pub layout: detect::Layout,
    /// The whole stream from its first byte, as UTF-8 (but for Windows-1252 lines, which
    /// the line readers decode one by one).
    pub input: Box<dyn Read + 'a>,
    /// The stream's encoding before decoding: a UTF-16 stream is no longer the bytes of
    /// the file it came from.
    pub encoding: decode::Encoding,
    /// For a decoded stream, the bytes of the original read so far: the stream's size as
    /// reported (the readers count the decoded bytes).
    pub raw_bytes: Option<std::rc::Rc<std::cell::Cell<u64>>>,
}

/// Reads the first bytes of `input`, settles its encoding (`decode`), and tells its
/// layout from the decoded bytes and its `name`.
pub fn open<'a, R: Read + 'a>(mut input: R, name: &str) -> io::Result<Opened<'a>> {
    let sample_bytes = detect::SAMPLE_BYTES as u64;
    let mut raw = Vec::with_capacity(detect::SAMPLE_BYTES);
    (&mut input).take(sample_bytes).read_to_end(&mut raw)?;
    let encoding = decode::sniff(&raw);
    if encoding == decode::Encoding::Utf8 {
        return Ok(Opened {
            layout: detect::detect(&raw, name),
            input: Box::new(io::Cursor::new(raw).chain(input)),
            encoding,
            raw_bytes: None,
        });
    }
    let mut decoded = decode::Utf16Reader::new(io::Cursor::new(raw).chain(input), encoding);
    let raw_bytes = Some(decoded.raw_bytes());
    let mut sample = Vec::with_capacity(detect::SAMPLE_BYTES);
    (&mut decoded).take(sample_bytes).read_to_end(&mut sample)?;
    Ok(Opened {
        layout: detect::detect(&sample, name),
        input: Box::new(io::Cursor::new(sample).chain(decoded)),
        encoding,
        raw_bytes,
    })
}

/// Parses a whole stream (its sniffed sample first) in a known layout.
pub fn parse_layout<R: Read>(
    layout: detect::Layout,
    input: R,
    max_line: usize,
    sink: &mut dyn Sink,
) -> io::Result<ParseStats> {
    match layout {
        detect::Layout::Sql => sql::parse(input, max_line, sink),
        detect::Layout::Json => json::parse(input, max_line, sink),
        detect::Layout::Lines => parse_lines(LineReader::new(input, max_line), sink),
        detect::Layout::Table(t) => t.parse(input, max_line, sink),
        detect::Layout::Stealer => {
            let mut block = stealer::BlockParser::default();
            let stats = run_lines(LineReader::new(input, max_line), sink, |line, no, sink| {
                block.line(line, no, sink);
                true
            })?;
            let mut stats = stats;
            stats.records += block.finish(sink);
            Ok(stats)
        }
    }
}

/// Parses a combo/ULP list line by line: the reference for the fast path in `scan`.
pub fn parse_lines<R: Read>(reader: LineReader<R>, sink: &mut dyn Sink) -> io::Result<ParseStats> {
    run_lines(reader, sink, parse_credential_line)
}

/// One line of a combo/ULP list: dispatches on its shape, then reads the other addresses
/// of the line (the grep floor, `text`). Returns false if it found nothing.
///
/// The floor reads what follows the login, and the login itself when it holds what no
/// address holds (`mail=jd@example.net`, `Jean <jd@example.net>`): there the address a
/// grep sees may not be the login. A ULP line's URL is not read: its user part is an app's
/// hash or a URL login, not an address.
pub fn parse_credential_line(line: &str, no: u64, sink: &mut dyn Sink) -> bool {
    let offset = |s: &str| s.as_ptr() as usize - line.as_ptr() as usize;
    let claimed = if ulp::looks_like_ulp(line) {
        ulp::split_ulp(line).map(|(url, field, password)| {
            let login = combo::address_in(field);
            sink.record(&Record::ulp(url, login, password, no));
            (field, login, offset(field) + field.len())
        })
    } else {
        combo::split_variant(line).map(|c| {
            sink.record(&Record::combo(c.login, c.password.as_deref(), no));
            let field = &line[..c.claimed];
            (field, c.login, c.claimed)
        })
    };
    let found = match claimed {
        None => text::floor(line, 0, None, no, sink),
        Some((field, login, end)) => {
            let from = if combo::decorated(field) {
                end - field.len()
            } else {
                end
            };
            let login_span = (offset(login), offset(login) + login.len());
            text::floor(line, from, Some(login_span), no, sink)
        }
    };
    claimed.is_some() || found > 0
}

/// Drives a line reader: screens out bad lines, hands good UTF-8 lines to `each`.
/// `each` returns whether the line was recognised; a record it emits counts as one.
fn run_lines<R: Read>(
    mut reader: LineReader<R>,
    sink: &mut dyn Sink,
    mut each: impl FnMut(&str, u64, &mut dyn Sink) -> bool,
) -> io::Result<ParseStats> {
    let mut stats = ParseStats::default();
    let mut counting = Counting {
        inner: sink,
        records: 0,
    };
    let mut last_bytes = 0;
    while let Some((no, raw)) = reader.next_line()? {
        stats.lines = no;
        stats.entries += 1;
        let why = match raw {
            RawLine::TooLong => Some(Malformed::TooLong),
            RawLine::Line(bytes) => {
                if memchr::memchr(0, bytes).is_some() {
                    Some(Malformed::NulByte)
                } else {
                    let text = decode::line_text(bytes);
                    let text = text.trim();
                    if text.is_empty() || each(text, no, &mut counting) {
                        None
                    } else {
                        Some(Malformed::Unrecognised)
                    }
                }
            }
        };
        match why {
            Some(why) => {
                stats.malformed += 1;
                counting.inner.malformed(no, why);
            }
            None => counting.inner.end_entry(),
        }
        let b = reader.bytes_read();
        if b != last_bytes {
            last_bytes = b;
            counting.inner.progress(b);
        }
    }
    stats.records = counting.records;
    stats.bytes = reader.bytes_read();
    Ok(stats)
}

/// Counts records on their way to the real sink.
struct Counting<'s> {
    inner: &'s mut dyn Sink,
    records: u64,
}

impl Sink for Counting<'_> {
    fn record(&mut self, record: &Record<'_>) {
        self.records += 1;
        self.inner.record(record);
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.inner.malformed(line, why);
    }
    fn end_entry(&mut self) {
        self.inner.end_entry();
    }
}

/// A sink that keeps owned copies; for tests and tools, never for the ingest path.
#[derive(Debug, Default)]
pub struct CollectSink {
    pub records: Vec<OwnedRecord>,
    pub malformed: Vec<(u64, Malformed)>,
    /// Entries ended (`Sink::end_entry`).
    pub ended: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub login: String,
    pub password: Option<String>,
    pub url: Option<String>,
    pub line: u64,
    pub format: Format,
}

impl Sink for CollectSink {
    fn record(&mut self, r: &Record<'_>) {
        self.records.push(OwnedRecord {
            login: r.login.to_string(),
            password: r.password.map(str::to_string),
            url: r.url.map(str::to_string),
            line: r.line,
            format: r.format,
        });
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.malformed.push((line, why));
    }
    fn end_entry(&mut self) {
        self.ended += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8], name: &str) -> (CollectSink, ParseStats) {
        let mut sink = CollectSink::default();
        let stats = parse_stream(input, name, 1024, &mut sink).unwrap();
        (sink, stats)
    }

    #[test]
    fn mixed_combo_and_ulp_with_junk() {
        let mut input = b"\xEF\xBB\xBFalice@agence-exemple.fr:pa:ss\r\n".to_vec();
        input.extend(b"https://sso.agence-exemple.fr:8443/login|jdupont|x|y\n");
        input.extend(b"bad\xFF\xFEutf8@example.net:pw\n");
        input.extend(b"nul\x00byte@example.net:pw\n");
        input.extend(b"=====\n\n");
        input.extend(std::iter::repeat_n(b'a', 2000));
        input.extend(b"\nlast@example.net;pw");
        let (sink, stats) = parse(&input, "dump.txt");
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| (r.login.as_str(), r.password.as_deref(), r.line, r.format))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice@agence-exemple.fr", Some("pa:ss"), 1, Format::Combo),
                ("jdupont", Some("x|y"), 2, Format::Ulp),
                // Not UTF-8: read as Windows-1252.
                ("badÿþutf8@example.net", Some("pw"), 3, Format::Combo),
                ("last@example.net", Some("pw"), 8, Format::Combo),
            ]
        );
        assert_eq!(
            sink.malformed,
            vec![
                (4, Malformed::NulByte),
                (5, Malformed::Unrecognised),
                (7, Malformed::TooLong),
            ]
        );
        assert_eq!(stats.lines, 8);
        assert_eq!(stats.malformed, 3);
        assert_eq!(stats.records, 4);
        assert_eq!(stats.bytes, input.len() as u64);
    }

    /// Random bytes shaped like dumps (separators, `@`, `://`, quotes, bad UTF-8, long
    /// runs) through every parser: no panic, and every line is accounted for. A stable
    /// stand-in for the fuzz targets, run on every `cargo test`.
    #[test]
    fn arbitrary_bytes_never_panic() {
        const PIECES: &[&[u8]] = &[
            b":",
            b";",
            b"|",
            b"\t",
            b" ",
            b"@",
            b"://",
            b"\"",
            b"'",
            b"\n",
            b"\r\n",
            b"\xff",
            b"\xc3",
            b"\x00",
            b"https",
            b"android",
            b"URL:",
            b"Password:",
            b"email,",
            b"a",
            b"b.c",
            b"xn--",
            b"\xEF\xBB\xBF",
            b"=====",
            b"mailto:",
            b"+",
            b".",
            b"8443",
            b"/",
            b"INSERT INTO t VALUES (",
            b"),(",
            b"NULL",
            b"\\",
            b"COPY t (email) FROM stdin;\n",
            b"\\.",
            b"{\"email\": ",
            b"\"pass\":",
            b"[",
            b"]",
            b"{",
            b"}",
            b"\\u00e9",
            b"\\ud800",
            b"-- ",
            b"/*",
            b"*/",
            b"a@b.example",
        ];
        // Prefixes that make the sample read as SQL or JSON, so that their readers meet
        // the same random bytes.
        const PREFIXES: &[&[u8]] = &[b"", b"", b"", b"INSERT INTO t VALUES (", b"[{"];
        let mut rng = crate::synth::Rng::new(42);
        for case in 0..5000 {
            let mut input = PREFIXES[case % PREFIXES.len()].to_vec();
            input.extend(crate::synth::pieces(&mut rng, PIECES, 400));
            if case % 100 == 0 {
                input.extend(std::iter::repeat_n(b'x', 3000));
            }
            let names = ["x.txt", "Passwords.txt", "dump.csv"];
            let mut sink = CollectSink::default();
            let stats = parse_stream(&input[..], names[case % 3], 1024, &mut sink).unwrap();
            assert_eq!(stats.bytes, input.len() as u64);
            assert_eq!(stats.records, sink.records.len() as u64);
            assert_eq!(stats.malformed, sink.malformed.len() as u64);
            // Every entry ends once: malformed, or ended with its records.
            assert_eq!(stats.entries, stats.malformed + sink.ended, "case {case}");
            for r in &sink.records {
                assert!(!r.login.is_empty());
                assert!(r.line >= 1 && r.line <= stats.lines.max(1));
            }
        }
    }

    #[test]
    fn malformed_all_is_in_discriminant_order() {
        for (i, m) in Malformed::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
    }

    #[test]
    fn table_and_stealer_are_detected() {
        let (sink, _) = parse(
            b"id;nom;courriel;ville\n1;Dupont;jean@example.net;Paris\n2;Durand;marie@example.org;Lyon\n",
            "dump.csv",
        );
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.records[1].login, "marie@example.org");
        assert_eq!(sink.records[1].format, Format::Table);
        assert_eq!(sink.records[1].line, 3);

        let (sink, stats) = parse(
            b"URL: https://sso.agence-exemple.fr/\nUsername: jdupont\nPassword: pw1\n\nurl: https://x.example/\nlogin: a@example.net\npassword: pw2\n",
            "Passwords.txt",
        );
        assert_eq!(sink.records.len(), 2);
        assert_eq!(stats.records, 2);
        assert_eq!(
            sink.records[0].url.as_deref(),
            Some("https://sso.agence-exemple.fr/")
        );
        assert_eq!(sink.records[1].password.as_deref(), Some("pw2"));
        assert!(sink.records.iter().all(|r| r.format == Format::Stealer));
    }
}

/// The grep floor as a property: through every reader, whatever shape wraps it, each
/// address `grep -o` would find in a line (`text::addresses`, itself checked against
/// grep on random text) is in some record's login.
#[cfg(test)]
mod floor_property {
    use super::*;

    /// The floor's random text; with `breaking`, the quote and the tab too: those break
    /// the shape itself (a string or a field ended early, or opened).
    fn pieces(breaking: bool) -> Vec<&'static str> {
        text::RANDOM_TEXT
            .iter()
            .copied()
            .filter(|p| breaking || !p.contains(['"', '\t']))
            .collect()
    }

    fn text(rng: &mut crate::synth::Rng, breaking: bool) -> String {
        let pieces = pieces(breaking);
        (0..1 + rng.below(8)).map(|_| *rng.pick(&pieces)).collect()
    }

    /// One document of each shape, with random text in every field, key, comment and
    /// line between: (file name, bytes).
    fn documents(rng: &mut crate::synth::Rng, breaking: bool) -> Vec<(&'static str, String)> {
        let mut t = || text(rng, breaking);
        vec![
            (
                "dump.sql",
                format!(
                    "-- {}\nCREATE TABLE `users` (\n  `id` int,\n  `email` varchar(255), -- {}\n  `password` varchar(64)\n);\nINSERT INTO `users` (`id`, `email`, `password`) VALUES (1,'{}','{}'),(2,'{}','{}');\n/* {} */\nCOPY public.members (id, mail, note) FROM stdin;\n3\t{}\t{}\n\\.\n{}\n",
                    t(), t(), t(), t(), t(), t(), t(), t(), t(), t()
                ),
            ),
            (
                "export.json",
                format!(
                    "[\n  {{\"user\": {{\"contact\": {{\"mail\": \"{}\"}}, \"auth\": {{\"pass\": \"{}\"}}}}, \"note\": \"{}\"}},\n  {{\"{}\": \"{}\"}},\n  \"{}\"\n]\n",
                    t(), t(), t(), t(), t(), t()
                ),
            ),
            (
                "users.ndjson",
                format!("{{\"email\": \"{}\", \"x\": \"{}\"}}\n{{\"login\": \"{}\"}}\n", t(), t(), t()),
            ),
            (
                "table.csv",
                format!("id,email,name\n1,{},{}\n2,\"{}\",\"{}\"\n{}\n", t(), t(), t(), t(), t()),
            ),
            ("plain.tsv", format!("{}\t{}\t{}\n{}\t{}\n", t(), t(), t(), t(), t())),
            (
                "Passwords.txt",
                format!("URL: https://{}\nUsername: {}\nPassword: {}\n\n{}\n===============\n", t(), t(), t(), t()),
            ),
            ("combo.txt", format!("{}:{}\n{} {}\n{}\n", t(), t(), t(), t(), t())),
        ]
    }

    #[test]
    fn every_reader_reports_every_address_grep_finds() {
        check(16, false, &[]);
    }

    /// Text that breaks the shape (stray quotes, tabs): the rest of a JSON value's broken
    /// line, a table record cut short, a quoted record's line as written, a skipped SQL
    /// statement with its quotes, are all read by the floor.
    #[test]
    fn text_breaking_the_shape_loses_no_address() {
        check(17, true, &[]);
    }

    /// Checks the documents named in `only` (all when empty).
    fn check(seed: u64, breaking: bool, only: &[&str]) {
        let mut rng = crate::synth::Rng::new(seed);
        let mut checked = 0usize;
        let mut missed: Vec<String> = Vec::new();
        let mut by_name = std::collections::BTreeMap::new();
        for _ in 0..3_000 {
            for (name, doc) in documents(&mut rng, breaking) {
                if !only.is_empty() && !only.contains(&name) {
                    continue;
                }
                let mut sink = CollectSink::default();
                parse_stream(doc.as_bytes(), name, 1 << 16, &mut sink).unwrap();
                for line in doc.lines() {
                    for a in text::addresses(line) {
                        checked += 1;
                        let lower = a.to_lowercase();
                        let found = sink
                            .records
                            .iter()
                            .any(|r| r.login.to_lowercase().contains(&lower));
                        if !found {
                            *by_name.entry(name).or_insert(0usize) += 1;
                        }
                        if !found && missed.len() < 20 {
                            missed.push(format!("{name}: {a:?} in {line:?}"));
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} addresses");
        assert!(
            missed.is_empty(),
            "missed {by_name:?} of {checked}, e.g.:\n{}",
            missed.join("\n")
        );
    }
}
