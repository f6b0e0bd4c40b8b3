//! Tables with a header row: the CSV/TSV/`;` dumps that leak sites publish.
//!
//! The email column is found by its header name (`email`, `courriel`, `mail`, …) or, failing
//! that, by content (the column whose sample values look like addresses). A password column
//! is used when its header names one. Every other column (names, phone numbers, addresses)
//! is never read, so personal data from the dump goes no further than the line buffer.

use super::{Format, Record, Sink};

/// Header names (lower case, spaces/dashes/underscores removed) of an email column.
const EMAIL_HEADERS: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "adressemail",
    "adresseemail",
    "adressemel",
    "courriel",
    "useremail",
    "loginemail",
    "mel",
];
const PASSWORD_HEADERS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "motdepasse",
    "mdp",
    "userpassword",
];
const DELIMITERS: &[u8] = b",;\t|";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    pub delimiter: u8,
    pub email_col: usize,
    pub password_col: Option<usize>,
}

impl TableLayout {
    /// Recognises a table from its first lines (header first). `None` if it is not one.
    pub fn sniff(lines: &[&str]) -> Option<TableLayout> {
        let (header, rows) = lines.split_first()?;
        if header.contains('@') || rows.is_empty() {
            return None;
        }
        // The delimiter: present in the header, and giving every sample row the header's
        // field count (rows may be cut by the sample's end, so the last one is not judged).
        let judged = &rows[..rows.len().saturating_sub(1).max(1)];
        let delimiter = *DELIMITERS.iter().find(|&&d| {
            let n = count_fields(header, d);
            n >= 2 && judged.iter().all(|r| count_fields(r, d) == n)
        })?;
        let headers: Vec<String> = fields(header, delimiter).map(header_key).collect();
        let by_name = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
        let email_col = by_name(EMAIL_HEADERS).or_else(|| {
            // By content: the column where most sample rows hold an address.
            (0..headers.len())
                .map(|c| {
                    let hits = judged
                        .iter()
                        .filter(|r| field(r, delimiter, c).is_some_and(looks_like_email))
                        .count();
                    (hits, c)
                })
                .filter(|&(hits, _)| hits * 2 > judged.len())
                .max()
                .map(|(_, c)| c)
        })?;
        Some(TableLayout {
            delimiter,
            email_col,
            password_col: by_name(PASSWORD_HEADERS),
        })
    }

    /// Reads one data row. Returns false when the row has no email column.
    pub fn parse_row(&self, line: &str, no: u64, sink: &mut dyn Sink) -> bool {
        let Some(email) = field(line, self.delimiter, self.email_col) else {
            return false;
        };
        if email.is_empty() {
            // A row without an address is a well-formed row of no interest.
            return true;
        }
        let password = self
            .password_col
            .and_then(|c| field(line, self.delimiter, c))
            .filter(|p| !p.is_empty());
        sink.record(&Record {
            login: email,
            password,
            url: None,
            line: no,
            format: Format::Table,
        });
        true
    }
}

fn header_key(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '"' | '\''))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'é' | 'è' | 'ê' => 'e',
            c => c,
        })
        .collect()
}

fn looks_like_email(s: &str) -> bool {
    match s.find('@') {
        Some(at) => at > 0 && s[at + 1..].contains('.') && !s.contains(' '),
        None => false,
    }
}

fn count_fields(line: &str, d: u8) -> usize {
    fields(line, d).count()
}

/// The `k`-th field, unquoted and trimmed.
pub fn field(line: &str, d: u8, k: usize) -> Option<&str> {
    fields(line, d).nth(k)
}

/// Fields of one line, honouring double quotes (a delimiter inside quotes is data).
pub fn fields(line: &str, d: u8) -> impl Iterator<Item = &str> {
    let b = line.as_bytes();
    let mut pos = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let start = pos;
        let mut in_quotes = false;
        while pos < b.len() {
            let c = b[pos];
            if c == b'"' {
                in_quotes = !in_quotes;
            } else if c == d && !in_quotes {
                break;
            }
            pos += 1;
        }
        let f = &line[start..pos];
        if pos >= b.len() {
            done = true;
        } else {
            pos += 1;
        }
        let f = f.trim();
        let f = f
            .strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or(f);
        Some(f.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    #[test]
    fn sniff_table() {
        type Want = Option<(u8, usize, Option<usize>)>;
        let cases: &[(&[&str], Want)] = &[
            (
                &[
                    "id,Email,Mot de passe",
                    "1,a@example.net,pw",
                    "2,b@example.net,pw2",
                ],
                Some((b',', 1, Some(2))),
            ),
            (
                &[
                    "nom;prénom;Courriel",
                    "Dupont;Jean;j@example.net",
                    "X;Y;z@example.net",
                ],
                Some((b';', 2, None)),
            ),
            (
                &[
                    "id\tcontact\tcity",
                    "1\tj@example.net\tParis",
                    "2\tk@example.net\tLyon",
                ],
                Some((b'\t', 1, None)),
            ),
            (
                &[
                    "\"id\",\"E-Mail\"",
                    "\"1\",\"a,b@example.net\"",
                    "\"2\",\"c@example.net\"",
                ],
                Some((b',', 1, None)),
            ),
            // Combo lists are not tables.
            (&["a@example.net:pw", "b@example.net:pw"], None),
            // A header but no column of addresses.
            (&["id,city", "1,Paris", "2,Lyon"], None),
            // Inconsistent field counts: prose, not a table.
            (&["hello, world", "this is, not, a table", "at, all"], None),
        ];
        for (lines, want) in cases {
            let got = TableLayout::sniff(lines).map(|t| (t.delimiter, t.email_col, t.password_col));
            assert_eq!(got, *want, "{lines:?}");
        }
    }

    #[test]
    fn rows() {
        let t = TableLayout {
            delimiter: b',',
            email_col: 1,
            password_col: Some(3),
        };
        let mut sink = CollectSink::default();
        assert!(t.parse_row("1,\" a@example.net \",Paris,\"p,w\"", 2, &mut sink));
        assert!(t.parse_row("2,,Paris,pw", 3, &mut sink));
        assert!(t.parse_row("3,b@example.net", 4, &mut sink));
        assert!(!t.parse_row("4", 5, &mut sink));
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| (r.login.as_str(), r.password.as_deref(), r.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@example.net", Some("p,w"), 2),
                ("b@example.net", None, 4)
            ]
        );
    }
}
