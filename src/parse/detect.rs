//! Format detection from a stream's first bytes (and its name, as a hint only).
//!
//! Three file layouts are told apart: stealer `Passwords.txt` blocks, tables with a header,
//! and line lists (combo and ULP, which are mixed freely in the wild and so are told apart
//! line by line, not here).

use super::stealer;
use super::table::TableLayout;

/// How much of a stream is looked at before choosing its parser.
pub const SAMPLE_BYTES: usize = 64 * 1024;
/// How many non-empty lines of the sample are judged.
const SAMPLE_LINES: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Combo and ULP lines, and the grep floor for any other text: the catch-all.
    Lines,
    Table(TableLayout),
    Stealer,
    Sql,
    Json,
}

/// Every reader, in order of confidence: the first whose test passes reads the stream.
/// The line reader comes last and takes everything else, so that nothing unclaimed is
/// ever unread (its grep floor finds the addresses in any text).
pub fn detect(sample: &[u8], name: &str) -> Layout {
    let sample = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    if super::sql::sniff(sample) {
        return Layout::Sql;
    }
    if super::json::sniff(sample) {
        return Layout::Json;
    }
    // Invalid UTF-8 in the sample (a cut multi-byte character, a Latin-1 line) must not
    // blind detection: judge the lines that are valid.
    let lines: Vec<&str> = sample
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(SAMPLE_LINES)
        .collect();
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    let key_lines = lines.iter().filter(|l| stealer::is_key_line(l)).count();
    let named_passwords = base.to_ascii_lowercase().contains("passwords");
    if key_lines >= 2 && (named_passwords || key_lines * 3 >= lines.len()) {
        return Layout::Stealer;
    }
    if let Some(t) = TableLayout::sniff(sample) {
        return Layout::Table(t);
    }
    Layout::Lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_table() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"a@example.net:pw\nb@example.net:pw\n", "combo.txt", "lines"),
            (b"https://x.example/:a:b\n", "ulp.txt", "lines"),
            (b"URL: x\nUsername: a\nPassword: b\n", "Passwords.txt", "stealer"),
            (b"\xEF\xBB\xBFurl: x\nlogin: a\npassword: b\n", "creds.txt", "stealer"),
            (b"email,name\na@example.net,A\nb@example.net,B\n", "dump.csv", "table"),
            // Key lines lost in a combo list do not make it a stealer log.
            (
                b"password: x\nurl: y\na@e.net:1\nb@e.net:2\nc@e.net:3\nd@e.net:4\ne@e.net:5\nf@e.net:6\n",
                "combo.txt",
                "lines",
            ),
            (b"\xFF\xFE garbage\na@example.net:pw\n", "x", "lines"),
            (b"", "empty", "lines"),
            (b"-- MySQL dump\nINSERT INTO t VALUES (1,'a@example.net');\n", "x", "sql"),
            (b"[{\"email\": \"a@example.net\"}]", "x.txt", "json"),
            (b"{\"email\": \"a@example.net\"}\n", "x.ndjson", "json"),
        ];
        for (sample, name, want) in cases {
            let got = match detect(sample, name) {
                Layout::Lines => "lines",
                Layout::Table(_) => "table",
                Layout::Stealer => "stealer",
                Layout::Sql => "sql",
                Layout::Json => "json",
            };
            assert_eq!(got, *want, "{name}: {:?}", String::from_utf8_lossy(sample));
        }
    }
}
