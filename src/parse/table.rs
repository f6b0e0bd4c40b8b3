//! Tables: the CSV/TSV/`;`/`|` exports leak sites publish, with a header row or without.
//!
//! Fields follow RFC 4180 as spreadsheets write it: a field that starts with `"` is quoted,
//! may hold the delimiter and line breaks, and writes a quote as `""`; a quote inside an
//! unquoted field is data. Records are read from a bounded [`Cursor`], so a quoted field
//! that never closes costs at most `max_field` bytes: the record is then reported as
//! malformed and reading resumes at the next line.
//!
//! The login and password columns are found by the header's names ([`columns`]: French
//! and English, `courriel`, `adresse e-mail`, `mot de passe`, `mdp`, …) or, in a table
//! without a header (`id,name,email,phone`), the login by content. Every other field is
//! read by the grep floor only.

use std::io::{self, Read};

use super::columns::{self, Columns};
use super::cursor::{Cursor, Stop};
use super::{decode, text, Format, Malformed, ParseStats, Sink};

const DELIMITERS: &[u8] = b",;\t|";
/// Records of the sample judged.
const SAMPLE_RECORDS: usize = 50;
/// Fields kept per record; more are read and dropped.
const MAX_FIELDS: usize = 1024;
const PROGRESS_EVERY: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    pub delimiter: u8,
    pub columns: Columns,
    /// The first record is a header (not data).
    pub header: bool,
}

impl TableLayout {
    /// Recognises a table from the first bytes of a stream. `None` if it is not one.
    ///
    /// A delimiter must give the sample's records (all but a last one the sample may
    /// cut) one field count of two or more. With a header (a first record without `@`),
    /// the login column is found by name or by content; without one, by content, and
    /// then the table needs three fields or more when the delimiter is not a comma, so
    /// that a combo list (`addr;password`) stays a combo list.
    pub fn sniff(sample: &[u8]) -> Option<TableLayout> {
        let sample = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
        DELIMITERS.iter().find_map(|&d| Self::sniff_with(sample, d))
    }

    fn sniff_with(sample: &[u8], d: u8) -> Option<TableLayout> {
        let mut c = Cursor::new(sample);
        let mut records = Vec::new();
        let mut fields = Vec::new();
        while records.len() < SAMPLE_RECORDS {
            match read_record(&mut c, d, &mut fields, 1024, &mut Vec::new()).ok()? {
                // The sample's end may cut a quoted field: judge what came before.
                Record::End | Record::Cut(_) => break,
                Record::Blank => continue,
                Record::Fields(n) => records.push(
                    fields[..n]
                        .iter()
                        .map(|f: &Vec<u8>| decode::line_text(f).trim().to_string())
                        .collect::<Vec<_>>(),
                ),
            }
        }
        // The last record may be cut by the sample's end: judge it only if it is alone.
        let judged = if records.len() > 2 && c.bytes_read() as usize >= sample.len() {
            &records[..records.len() - 1]
        } else {
            &records[..]
        };
        let (first, rest) = judged.split_first()?;
        let n = first.len();
        if n < 2 || rest.is_empty() || !rest.iter().all(|r| r.len() == n) {
            return None;
        }
        let (columns, header) = columns::decide(judged)?;
        if !header && d != b',' && n < 3 {
            return None; // `addr;password`: a combo list
        }
        Some(TableLayout {
            delimiter: d,
            columns,
            header,
        })
    }

    /// Reads the whole table.
    pub fn parse<R: Read>(
        &self,
        input: R,
        max_field: usize,
        sink: &mut dyn Sink,
    ) -> io::Result<ParseStats> {
        let mut c = Cursor::new(input);
        let mut stats = ParseStats::default();
        let mut fields: Vec<Vec<u8>> = Vec::new();
        let mut rest = Vec::new();
        let mut header = self.header;
        let mut next_progress = PROGRESS_EVERY;
        loop {
            let start = c.line();
            if !header {
                if let Some(n) = self.plain_record(&mut c, max_field, start, sink)? {
                    stats.entries += 1;
                    stats.records += n;
                    sink.end_entry();
                    let read = c.bytes_read();
                    if read >= next_progress {
                        next_progress = read + PROGRESS_EVERY;
                        sink.progress(read);
                    }
                    continue;
                }
            }
            let record = read_record(&mut c, self.delimiter, &mut fields, max_field, &mut rest)?;
            if !matches!(record, Record::End) {
                stats.entries += 1;
            }
            match record {
                Record::End => break,
                Record::Blank => sink.end_entry(),
                Record::Cut(n) => {
                    stats.malformed += 1;
                    sink.malformed(start, Malformed::TooLong);
                    // Cut by the end of the input (a quote still open), not by the bound.
                    stats.ended_inside = c.peek()?.is_none();
                    // Its fields, and the rest of the line it was cut on, are the floor's:
                    // a stray quote that opened a field loses nothing grep would find.
                    for field in fields[..n].iter().chain([&rest]) {
                        text::floor_entry(&mut stats, field, start, sink);
                    }
                }
                Record::Fields(_) if header => {
                    header = false;
                    sink.end_entry();
                }
                Record::Fields(n) => {
                    let raw: Vec<Option<&[u8]>> =
                        fields[..n].iter().map(|f| Some(f.as_slice())).collect();
                    let line = c.lines();
                    stats.records +=
                        columns::report_row(&raw, self.columns, line, Format::Table, sink);
                    stats.records += floor_quoted(&fields[..n], &rest, line, sink);
                    sink.end_entry();
                }
            }
            let read = c.bytes_read();
            if read >= next_progress {
                next_progress = read + PROGRESS_EVERY;
                sink.progress(read);
            }
        }
        stats.lines = c.lines();
        stats.bytes = c.bytes_read();
        Ok(stats)
    }
}

impl TableLayout {
    /// The common record, read where it lies: one whole line in the cursor's buffer, with
    /// no quote, of at most [`PLAIN_FIELDS`] fields within the bound, not blank. Its
    /// fields are those [`read_record`] would copy out (the delimiter cuts, a last `\r`
    /// goes); they are reported as they lie and the line is consumed. `None`, with
    /// nothing consumed, for any other record: [`read_record`] reads it.
    fn plain_record<R: Read>(
        &self,
        c: &mut Cursor<R>,
        max_field: usize,
        line: u64,
        sink: &mut dyn Sink,
    ) -> io::Result<Option<u64>> {
        let window = c.window()?;
        let Some(nl) = memchr::memchr2(b'\n', b'"', window) else {
            return Ok(None);
        };
        if window[nl] != b'\n' {
            return Ok(None);
        }
        let text = &window[..nl];
        let mut raw: [Option<&[u8]>; PLAIN_FIELDS] = [None; PLAIN_FIELDS];
        let mut n = 0;
        let mut from = 0;
        for cut in memchr::memchr_iter(self.delimiter, text).chain([text.len()]) {
            let field = &text[from..cut];
            if n == PLAIN_FIELDS || field.len() > max_field {
                return Ok(None);
            }
            raw[n] = Some(field);
            n += 1;
            from = cut + 1;
        }
        let last = raw[n - 1].unwrap_or_default();
        let last = last.strip_suffix(b"\r").unwrap_or(last);
        raw[n - 1] = Some(last);
        if n == 1 && last.iter().all(u8::is_ascii_whitespace) {
            return Ok(None); // blank: `read_record`'s to say
        }
        let records = columns::report_row(&raw[..n], self.columns, line, Format::Table, sink);
        c.consume(nl + 1, 1);
        Ok(Some(records))
    }
}

/// The addresses of a joined record's line as written (`raw`) that none of its fields
/// holds, reported as the floor's; returns how many.
fn floor_quoted(fields: &[Vec<u8>], raw: &[u8], line: u64, sink: &mut dyn Sink) -> u64 {
    if memchr::memchr(b'@', raw).is_none() {
        return 0;
    }
    let texts: Vec<_> = fields.iter().map(|f| decode::line_text(f)).collect();
    let known: Vec<&str> = texts.iter().flat_map(|t| text::addresses(t)).collect();
    let raw = decode::line_text(raw);
    let mut n = 0;
    for address in text::addresses(&raw) {
        if !known.contains(&address) {
            n += 1;
            sink.record(&super::Record {
                login: address,
                password: None,
                url: None,
                line,
                format: Format::Text,
            });
        }
    }
    n
}

/// Fields of a record [`TableLayout::plain_record`] reads (a wider one is read by
/// [`read_record`]).
const PLAIN_FIELDS: usize = 32;

/// What [`read_record`] found.
enum Record {
    /// The end of the input.
    End,
    /// An empty line.
    Blank,
    /// A field longer than the bound (a quote that never closed, most often), in the
    /// first of this many fields read; the rest of its line was skipped.
    Cut(usize),
    /// A record of this many fields, in `fields[..n]`.
    Fields(usize),
}

/// Reads one record through its line end into `fields` (reused; each field's bytes,
/// unquoted). `rest` (bounded) is left empty but for the floor: a record cut short
/// leaves there the rest of the line it was cut on; a record where text follows a
/// closing quote, its last line as written (unquoting joins that text to the quoted
/// part, which may hide an address grep finds in the line: `"co"@x.fr`). A field that is
/// quoted whole (most of them) joins nothing, and costs nothing more.
fn read_record<R: Read>(
    c: &mut Cursor<R>,
    d: u8,
    fields: &mut Vec<Vec<u8>>,
    max_field: usize,
    rest: &mut Vec<u8>,
) -> io::Result<Record> {
    rest.clear();
    if c.peek()?.is_none() {
        return Ok(Record::End);
    }
    let mut n = 0;
    let mut joined = false;
    let mut dropped = Vec::new();
    loop {
        let f = if n < MAX_FIELDS {
            if n == fields.len() {
                fields.push(Vec::new());
            }
            let f = &mut fields[n];
            f.clear();
            n += 1;
            f
        } else {
            dropped.clear();
            &mut dropped
        };
        // Spaces before an opening quote are layout.
        while c.peek()? == Some(b' ') {
            c.bump()?;
            f.push(b' ');
        }
        let stop = if c.peek()? == Some(b'"') {
            f.clear();
            c.bump()?;
            loop {
                if c.push_upto(b"\"", f, max_field)? != Stop::Byte(b'"') {
                    // A quote that does not close within the bound: resume at the next
                    // line after the bound, not at the end of the input.
                    return skip_line(c, n, rest, max_field);
                }
                c.bump()?;
                if c.peek()? == Some(b'"') {
                    c.bump()?;
                    f.push(b'"');
                    continue;
                }
                break;
            }
            // What follows the closing quote, to the delimiter, is kept as data.
            let quoted = f.len();
            let (stop, cut) = c.push_bounded(&[d, b'\n'], f, max_field)?;
            let after = &f[quoted..];
            joined |= !after.is_empty() && after != b"\r";
            if cut {
                return skip_line(c, n, rest, max_field);
            }
            stop
        } else {
            let (stop, cut) = c.push_bounded(&[d, b'\n'], f, max_field)?;
            if cut {
                return skip_line(c, n, rest, max_field);
            }
            stop
        };
        match stop {
            Some(b) if b == d => {
                c.bump()?;
            }
            other => {
                if joined {
                    c.line_since(0, rest, max_field);
                }
                if other.is_some() {
                    c.bump()?; // the newline
                }
                if let Some(last) = fields.get_mut(n - 1) {
                    if last.last() == Some(&b'\r') {
                        last.pop();
                    }
                }
                if n == 1 && fields[0].iter().all(u8::is_ascii_whitespace) {
                    return Ok(Record::Blank);
                }
                return Ok(Record::Fields(n));
            }
        }
    }
}

/// A field over the bound, in the first `n` fields: the rest of its line is skipped
/// (its first `max` bytes kept in `rest`), the record reported cut.
fn skip_line<R: Read>(
    c: &mut Cursor<R>,
    n: usize,
    rest: &mut Vec<u8>,
    max: usize,
) -> io::Result<Record> {
    rest.clear();
    c.push_bounded(b"\n", rest, max)?;
    c.bump()?;
    Ok(Record::Cut(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    #[test]
    fn sniff_table() {
        type Want = Option<(u8, Option<usize>, Option<usize>, bool)>;
        let cases: &[(&[u8], Want)] = &[
            (
                b"id,Email,Mot de passe\n1,a@example.net,pw\n2,b@example.net,pw2\n",
                Some((b',', Some(1), Some(2), true)),
            ),
            (
                "nom;prénom;Courriel\nDupont;Jean;j@example.net\nX;Y;z@example.net\n".as_bytes(),
                Some((b';', Some(2), None, true)),
            ),
            (
                b"id\tcontact\tcity\n1\tj@example.net\tParis\n2\tk@example.net\tLyon\n",
                Some((b'\t', Some(1), None, true)),
            ),
            (
                b"\"id\",\"E-Mail\"\n\"1\",\"a,b@example.net\"\n\"2\",\"c@example.net\"\n",
                Some((b',', Some(1), None, true)),
            ),
            // A quoted field across lines.
            (
                b"id,notes,identifiant,mdp\n1,\"line one\nline two\",a@example.net,x\n2,n,b@example.net,y\n",
                Some((b',', Some(2), Some(3), true)),
            ),
            // No header: the column by content.
            (
                b"1,Dupont,a@example.net,0601\n2,Durand,b@example.net,0602\n3,X,c@example.net,0603\n",
                Some((b',', Some(2), None, false)),
            ),
            // Combo lists are not tables.
            (b"a@example.net:pw\nb@example.net:pw\n", None),
            (b"a@example.net;pw\nb@example.net;pw2\n", None),
            (b"a@example.net|pw|x\nb@example.net|pw2\n", None),
            // A header but no column of addresses.
            (b"id,city\n1,Paris\n2,Lyon\n", None),
            // Inconsistent field counts: prose, not a table.
            (b"hello, world\nthis is, not, a table\nat, all\n", None),
        ];
        for (sample, want) in cases {
            let got = TableLayout::sniff(sample)
                .map(|t| (t.delimiter, t.columns.email, t.columns.password, t.header));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(sample));
        }
    }

    #[test]
    fn rows_quotes_and_hostile_fields() {
        let t = TableLayout {
            delimiter: b',',
            columns: Columns {
                email: Some(1),
                password: Some(3),
            },
            header: true,
        };
        let mut input = b"id,email,ville,pass\n1,\" a@example.net \",Paris,\"p,w\"\"x\"\n2,,\"multi\nline c@example.org\",pw\n\n3,b@example.net\n".to_vec();
        input.extend(b"4,\"never closed,");
        input.extend(std::iter::repeat_n(b'z', 3000));
        input.extend(b"\n5,d@example.net,x,pw5\r\n");
        let mut sink = CollectSink::default();
        let stats = t.parse(&input[..], 1024, &mut sink).unwrap();
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| (r.login.as_str(), r.password.as_deref(), r.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@example.net", Some("p,w\"x"), 2),
                // No login in the login column: the floor's address, without a password.
                ("c@example.org", None, 4),
                ("b@example.net", None, 6),
                ("d@example.net", Some("pw5"), 8),
            ]
        );
        assert_eq!(stats.malformed, 1);
        assert_eq!(sink.malformed, vec![(7, Malformed::TooLong)]);
        assert_eq!(stats.lines, 8);
    }
}
