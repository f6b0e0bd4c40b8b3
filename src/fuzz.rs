//! Fuzz harnesses: one per parser and one for the archive walker. `fuzz/` wraps each in a
//! `cargo fuzz` target; the tests below run them on mutated archives and random bytes on
//! every `cargo test`, so a crash found once stays found.
//!
//! Each harness must only ever return: any panic, hang or unbounded allocation is a bug.

use std::io::{self, Cursor, Read};

use crate::config::Limits;
use crate::parse::{self, device, CollectSink};
use crate::source::{self, SourceError, StreamHandler, WalkOptions};

/// Every parser: format detection, combo/ULP, tables, stealer blocks.
pub fn parse_stream(data: &[u8]) {
    let names = ["dump.txt", "Passwords.txt", "dump.csv"];
    let name = names[data.first().map_or(0, |b| *b as usize % names.len())];
    let mut sink = CollectSink::default();
    let stats =
        parse::parse_stream(data, name, 1024, &mut sink).expect("reading a slice cannot fail");
    assert_eq!(stats.bytes, data.len() as u64);
    assert_eq!(stats.records, sink.records.len() as u64);
    assert_eq!(stats.entries, stats.malformed + sink.ended);
}

/// The fast path for combo/ULP lists against the reference on the same bytes: the same
/// lines, malformed lines, records and identities, for a chunking and thread count drawn
/// from the input.
pub fn scan_lines(data: &[u8]) {
    use crate::filter::AccountFilter;
    use crate::identity::{block::KeyBlocks, Normalizer};
    use crate::parse::{reader::LineReader, Malformed, Record, Sink};
    use crate::scan::{self, ScanSink};

    /// Counts records, identities and entries with and without them, as `Ingest` would.
    struct Count<'n> {
        norm: &'n Normalizer,
        key: String,
        identities: u64,
        has: bool,
        with: u64,
        without: u64,
    }
    impl Sink for Count<'_> {
        fn record(&mut self, r: &Record<'_>) {
            if self.norm.key_of(r.login, r.url, &mut self.key).is_some() {
                self.identities += 1;
                self.has = true;
            }
        }
        fn malformed(&mut self, _: u64, _: Malformed) {}
        fn end_entry(&mut self) {
            if std::mem::take(&mut self.has) {
                self.with += 1;
            } else {
                self.without += 1;
            }
        }
    }
    impl ScanSink for Count<'_> {
        fn deferred(&mut self, line: u64, text: &str) {
            assert!(parse::parse_credential_line(text, line, self));
            Sink::end_entry(self);
        }
        fn malformed(&mut self, _: u64, _: Malformed) {}
    }

    let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
    let filter = AccountFilter::build(std::iter::empty(), 1e-3, 0).expect("empty filter");
    let count = || Count {
        norm: &norm,
        key: String::new(),
        identities: 0,
        has: false,
        with: 0,
        without: 0,
    };
    let mut want = count();
    let want_stats = parse::parse_lines(LineReader::new(data, 256), &mut want)
        .expect("reading a slice cannot fail");
    let pick = data.last().map_or(0, |&b| b as usize);
    let setup = scan::Setup {
        filter: &filter,
        keys: KeyBlocks::new(&norm),
        max_line: 256,
        threads: 1 + pick % 3,
        chunk_bytes: [257, 300, 4096][pick % 3],
    };
    let mut got = count();
    let stats = scan::scan_lines(&mut &data[..], &setup, &mut got).expect("a slice");
    assert_eq!(stats.parse, want_stats);
    assert_eq!(stats.identities + got.identities, want.identities);
    // Every line in one counter, the same one on both paths.
    assert_eq!(stats.with_identity + got.with, want.with);
    assert_eq!(stats.no_identity + got.without, want.without);
    assert_eq!(
        want.with + want.without + want_stats.malformed,
        want_stats.lines
    );
}

/// Device files, cookie lines and stealer file names.
pub fn device_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut info = device::DeviceInfo::default();
    for line in text.lines() {
        info.line(line);
        let _ = device::cookie_domain(line);
        let _ = device::classify(line);
        let _ = device::normalize_date(line);
    }
    let _ = info.family("userinformation.txt");
}

/// Reads every stream to its end, as the parser would; keeps nothing.
#[derive(Default)]
struct Drain {
    streams: u64,
    errors: u64,
}

impl StreamHandler for Drain {
    fn stream(&mut self, _name: &str, input: &mut dyn Read) -> io::Result<()> {
        self.streams += 1;
        io::copy(input, &mut io::sink()).map(|_| ())
    }
    fn error(&mut self, _e: SourceError) {
        self.errors += 1;
    }
}

/// The archive walker on arbitrary bytes, under small limits (so that a bomb the fuzzer
/// finds costs milliseconds), with two passwords to try.
pub fn archive(data: &[u8]) {
    let limits = Limits {
        max_archive_bytes: 8 << 20,
        max_entry_bytes: 4 << 20,
        max_archive_entries: 10_000,
        max_compression_ratio: 100,
        ..Limits::default()
    };
    let passwords = ["p".to_string(), "t.me/synthetic_logs_cloud".to_string()];
    let spool = std::env::temp_dir();
    let opts = WalkOptions {
        limits: &limits,
        passwords: &passwords,
        spool_dir: &spool,
    };
    let mut h = Drain::default();
    source::read_input("fuzz", Cursor::new(data), opts, &mut h);
    // A plain input is one stream; an archive is read or reported, never silently empty.
    assert!(
        h.streams + h.errors >= 1,
        "the walker neither read nor reported the input"
    );
}

/// The row readers (SQL, JSON, tables) on arbitrary bytes, each directly: no panic, every
/// record counted, every entry ended once; and each reads the same with its cursor
/// holding one byte (byte at a time, never in place) as with its usual buffer: the same
/// records, lines, malformed entries and counts.
pub fn rows(data: &[u8]) {
    use crate::parse::cursor;
    use crate::parse::{json, sql, table::TableLayout};
    let check = |read: &dyn Fn(&mut CollectSink) -> parse::ParseStats| {
        let mut sink = CollectSink::default();
        let stats = read(&mut sink);
        assert_eq!(stats.records, sink.records.len() as u64);
        assert_eq!(stats.entries, stats.malformed + sink.ended);
        assert_eq!(stats.bytes, data.len() as u64);
        let mut slow = CollectSink::default();
        let slow_stats = cursor::with_buffer(1, || read(&mut slow));
        assert_eq!(stats, slow_stats, "in place and byte at a time");
        assert_eq!(sink.records, slow.records, "in place and byte at a time");
        assert_eq!(
            sink.malformed, slow.malformed,
            "in place and byte at a time"
        );
        assert_eq!(sink.ended, slow.ended, "in place and byte at a time");
    };
    check(&|sink| sql::parse(data, 256, sink).expect("a slice"));
    check(&|sink| json::parse(data, 256, sink).expect("a slice"));
    for delimiter in [b',', b';', b'\t', b'|'] {
        let layout = TableLayout {
            delimiter,
            columns: parse::columns::Columns {
                email: Some(1),
                password: Some(2),
            },
            header: data.first().is_some_and(|b| b & 1 == 1),
        };
        check(&|sink| layout.parse(data, 256, sink).expect("a slice"));
    }
    let _ = TableLayout::sniff(data);
    let _ = sql::sniff(data);
    let _ = json::sniff(data);
}

/// A spreadsheet on arbitrary bytes, read as XLSX and as ODS: an error or rows, never a
/// panic; every entry ended once.
pub fn sheet(data: &[u8]) {
    use crate::parse::sheet::{self, SheetKind};
    for kind in [SheetKind::Xlsx, SheetKind::Ods] {
        let mut sink = CollectSink::default();
        if let Ok(stats) = sheet::parse(kind, Cursor::new(data), 256, &mut sink) {
            assert_eq!(stats.records, sink.records.len() as u64);
            assert_eq!(stats.entries, stats.malformed + sink.ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::pack::{self, ZipLock, ZipMethod};
    use crate::synth::Rng;

    /// `seed` with a few bytes flipped, cut short, or a run of it spliced in elsewhere:
    /// what a fuzzer does to its corpus first.
    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut m = seed.to_vec();
        match rng.below(3) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(m.len() as u64) as usize;
                    m[i] = rng.below(256) as u8;
                }
            }
            1 => m.truncate(rng.below(m.len() as u64) as usize),
            _ => {
                let i = rng.below(m.len() as u64) as usize;
                let j = rng.below(m.len() as u64) as usize;
                let run: Vec<u8> = m[i.min(j)..i.max(j)].to_vec();
                let at = rng.below(m.len() as u64) as usize;
                m.splice(at..at, run);
            }
        }
        m
    }

    /// Every input a fuzz run crashed on (`fuzz/regressions/TARGET/`, kept with its
    /// minimised form) through its harness again: a crash found once stays fixed.
    #[test]
    fn fuzz_regressions_stay_fixed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut ran = 0;
        for target in std::fs::read_dir(&root).unwrap() {
            let target = target.unwrap();
            let harness: fn(&[u8]) = match target.file_name().to_str().unwrap() {
                "parse_stream" => super::parse_stream,
                "scan_lines" => super::scan_lines,
                "device_file" => super::device_file,
                "archive" => super::archive,
                "rows" => super::rows,
                "sheet" => super::sheet,
                other => panic!("fuzz/regressions/{other}: no such harness"),
            };
            for input in std::fs::read_dir(target.path()).unwrap() {
                harness(&std::fs::read(input.unwrap().path()).unwrap());
                ran += 1;
            }
        }
        assert!(ran >= 2, "only {ran} regression inputs");
    }

    /// Valid archives of every kind, then thousands of mutations of them (flipped bytes,
    /// cuts, spliced runs) through the walker: the same inputs a fuzzer starts from.
    #[test]
    fn mutated_archives_never_panic() {
        let text = b"URL: https://x.example/\nUsername: a@example.net\nPassword: pw\n".repeat(40);
        let e = |n: &str| (n.to_string(), text.clone());
        let seeds: Vec<Vec<u8>> = vec![
            pack::zip(
                &[e("a/Passwords.txt"), e("b.txt")],
                ZipMethod::Deflate,
                &ZipLock::None,
            )
            .unwrap(),
            pack::zip(
                &[e("a.txt")],
                ZipMethod::Bzip2,
                &ZipLock::Aes256("p".into()),
            )
            .unwrap(),
            pack::zip(&[e("a.txt")], ZipMethod::Zstd, &ZipLock::None).unwrap(),
            pack::zip_zipcrypto(&[e("a.txt")], "p", 1).unwrap(),
            pack::zip_deflate64("a.txt", &text),
            pack::sevenz(&[e("a.txt"), e("b/System.txt")], None).unwrap(),
            pack::sevenz(&[e("a.txt")], Some("p")).unwrap(),
            pack::gzip(&pack::tar(&[e("a.txt"), e("b/c.txt")]).unwrap()).unwrap(),
            pack::zip(
                &[(
                    "in.7z".to_string(),
                    pack::sevenz(&[e("x.txt")], None).unwrap(),
                )],
                ZipMethod::Stored,
                &ZipLock::None,
            )
            .unwrap(),
            // Read by `unar` where it is installed, reported where it is not.
            pack::rar4_stored(&[e("a/Passwords.txt"), e("b.txt")]),
            pack::rar5_stored(&[e("a/Passwords.txt"), e("b.txt")]),
        ];
        let mut rng = Rng::new(99);
        for seed in &seeds {
            archive(seed);
            for _ in 0..150 {
                let m = mutate(&mut rng, seed);
                archive(&m);
            }
        }
    }

    /// Workbooks (XLSX with shared and inline strings, ODS) and thousands of mutations
    /// of them through the sheet reader.
    #[test]
    fn mutated_workbooks_never_panic() {
        use crate::synth::shapes::{ods, xlsx};
        let rows: String = (1..30)
            .map(|r| {
                format!("<row r=\"{r}\"><c r=\"A{r}\" t=\"s\"><v>{}</v></c><c r=\"B{r}\" t=\"inlineStr\"><is><t>u{r}@example.net</t></is></c></row>", r % 3)
            })
            .collect();
        let shared =
            "<sst><si><t>email</t></si><si><t>x@example.org</t></si><si><t>pw</t></si></sst>";
        let cells: String = (0..30)
            .map(|r| format!("<table:table-row><table:table-cell office:value-type=\"string\"><text:p>o{r}@example.net</text:p></table:table-cell></table:table-row>"))
            .collect();
        let seeds = [
            xlsx(&[("A", &rows), ("B", &rows)], shared).unwrap(),
            ods("F", &cells).unwrap(),
        ];
        let mut rng = Rng::new(17);
        for seed in &seeds {
            sheet(seed);
            for _ in 0..300 {
                let m = mutate(&mut rng, seed);
                sheet(&m);
            }
        }
    }

    /// SQL-, JSON- and CSV-shaped random bytes through each row reader.
    #[test]
    fn row_readers_on_random_bytes() {
        const PIECES: &[&[u8]] = &[
            b"INSERT INTO t VALUES (",
            b"INSERT INTO `u` (`id`, `email`) VALUES ",
            b"),(",
            b");\n",
            b"'",
            b"''",
            b"\\'",
            b"\"",
            b"NULL",
            b"_binary ",
            b"CREATE TABLE t (a int, email text);\n",
            b"COPY t (id, email, pass) FROM stdin;\n",
            b"\\.\n",
            b"\\N",
            b"\t",
            b",",
            b";",
            b"|",
            b"\n",
            b"\r\n",
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"email\":",
            b"\"pass\": ",
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"a@b.example",
            b"x",
            b"1",
            b"-- c\n",
            b"/*",
            b"*/",
            b"\xff",
            b"\xc3\xa9",
            b"\x00",
            b"(",
            b")",
        ];
        let mut rng = Rng::new(23);
        for _ in 0..4000 {
            rows(&crate::synth::pieces(&mut rng, PIECES, 120));
        }
    }

    /// Every row-reader shape leakwatch-synth writes (planted accounts, decoys, hostile
    /// variants: escapes, unclosed quotes, long values, invalid bytes), then mutations of
    /// them, through [`rows`]: read in place and byte at a time, the same.
    #[test]
    fn row_readers_in_place_as_byte_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let mut seeds = Vec::new();
        for hostile in [false, true] {
            let dir = tmp.path().join(format!("h{hostile}"));
            let sc = crate::synth::shapes::write_shapes(&dir, 11, 40, hostile).unwrap();
            for f in &sc.files {
                let bytes = std::fs::read(dir.join(&f.path)).unwrap();
                let layout = parse::open(&bytes[..], &f.path).unwrap().layout;
                use crate::parse::detect::Layout;
                // (Not the 50 MB line: a bound's test, not a shape's.)
                let row_shape = matches!(layout, Layout::Sql | Layout::Json | Layout::Table(_));
                if row_shape && bytes.len() < 1 << 20 {
                    seeds.push(bytes);
                }
            }
        }
        assert!(seeds.len() >= 8, "{} row-reader dumps", seeds.len());
        let mut rng = Rng::new(41);
        for _ in 0..6 {
            seeds.extend(plain_records(&mut rng));
        }
        for seed in &seeds {
            rows(seed);
            for _ in 0..40 {
                rows(&mutate(&mut rng, seed));
            }
        }
    }

    /// Dumps of the records the readers read in place, and of near misses, mixed: flat
    /// JSON objects over several lines and on one, SQL rows with escapes, doubled quotes,
    /// `NULL`, `_binary` and line breaks between values, tables with `\r\n`, blank
    /// lines, quotes and fields over the bound (256 in [`rows`]).
    fn plain_records(rng: &mut Rng) -> Vec<Vec<u8>> {
        const VALUES: &[&str] = &[
            "\"a@agence-exemple.fr\"",
            "\"B.C+d@Example.ORG\"",
            "\"pw \\\" q\"",
            "\"caf\u{e9}@exemple.fr\"",
            "\"x@y\"",
            "\"\"",
            "12",
            "-1.5e3",
            "null",
            "true",
            "nul",
            "{\"inner\": \"i@exemple.fr\"}",
            "[1, \"l@exemple.fr\"]",
        ];
        const KEYS: &[&str] = &[
            "email",
            "mail",
            "password",
            "mdp",
            "name",
            "k@exemple.fr",
            "id",
        ];
        const SQL: &[&str] = &[
            "'a@agence-exemple.fr'",
            "'O\\'Brien'",
            "'it''s'",
            "\"dq@exemple.fr\"",
            "NULL",
            "null",
            "_binary 'b'",
            "42",
            "NOW()",
            "''",
            "'line\\nbreak'",
            "'trail\\",
        ];
        const CELLS: &[&str] = &[
            "a@agence-exemple.fr",
            "pw",
            "\"q;uoted\"",
            " sp ",
            "",
            "é",
            "x@y.fr\r",
        ];
        const ENDS: &[&str] = &["\n", "\r\n", "\n\n"];
        let long = "z".repeat(300);
        let ws = |rng: &mut Rng| *rng.pick(&["", " ", "\n", " \n  ", "\t"]);
        let mut json = String::from("[\n");
        let mut sql = String::from(
            "CREATE TABLE u (id int, email text, password text, x text);\nINSERT INTO u VALUES ",
        );
        let mut csv = String::from("id;email;password;x\n");
        for i in 0..60 {
            json.push('{');
            for k in 0..1 + rng.below(4) {
                if k > 0 {
                    json.push(',');
                }
                json.push_str(ws(rng));
                json.push_str(&format!("\"{}\"{}:{}", rng.pick(KEYS), ws(rng), ws(rng)));
                if rng.chance(3) {
                    json.push_str(&format!("\"{long}\""));
                } else {
                    json.push_str(rng.pick::<&str>(VALUES));
                }
            }
            json.push_str(ws(rng));
            json.push_str(if i < 59 { "},\n" } else { "}\n]\n" });
            sql.push_str(if i > 0 { ",(" } else { "(" });
            for v in 0..4 {
                if v > 0 {
                    sql.push(',');
                    sql.push_str(ws(rng));
                }
                let value: &str = if rng.chance(3) {
                    &long
                } else {
                    rng.pick::<&str>(SQL)
                };
                sql.push_str(value);
            }
            sql.push(')');
            sql.push_str(ws(rng));
            let cells: Vec<&str> = (0..2 + rng.below(4)).map(|_| *rng.pick(CELLS)).collect();
            csv.push_str(&cells.join(";"));
            csv.push_str(rng.pick::<&str>(ENDS));
        }
        sql.push_str(";\n");
        vec![json.into_bytes(), sql.into_bytes(), csv.into_bytes()]
    }

    /// Random dump-shaped bytes through both paths: they must agree.
    #[test]
    fn fast_path_agrees_on_random_bytes() {
        const PIECES: &[&[u8]] = &[
            b":",
            b";",
            b"|",
            b"\t",
            b" ",
            b"@",
            b"://",
            b"https",
            b"sso.agence-exemple.fr",
            b"Agence-Exemple.FR",
            b"example.net",
            b"/",
            b"?",
            b"#",
            b"+",
            b".",
            b"..",
            b"\n",
            b"\r\n",
            b"\xff",
            b"\xc3\xa9",
            b"\x00",
            b"\xEF\xBB\xBF",
            b"\"",
            b"mailto:",
            b"8443",
            b"a",
            b"Z9",
            b"_-",
            b"android://h==@app/",
            b"\x0b",
        ];
        let mut rng = crate::synth::Rng::new(17);
        for case in 0..2000 {
            let mut input = crate::synth::pieces(&mut rng, PIECES, 600);
            if case % 50 == 0 {
                input.extend(std::iter::repeat_n(b'x', 700));
            }
            scan_lines(&input);
        }
    }

    #[test]
    fn device_files_never_panic() {
        const PIECES: &[&str] = &[
            "Build ID:",
            "HWID:",
            "Log date:",
            "Date:",
            "12/31/2025",
            "31.12.2025",
            "2025-13-45",
            "\t",
            "TRUE",
            "#HttpOnly_",
            ".",
            "META",
            "- ",
            ":",
            "\n",
            "é",
            "LID (Lumma ID):",
            "Network Info:",
            "System Summary:",
            "Cookies/",
            "!",
            "Passwords.txt",
            "/",
            "9999999999",
        ];
        let mut rng = Rng::new(3);
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..rng.below(60) {
                s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
            }
            device_file(s.as_bytes());
        }
    }
}
