//! Which field of a row is the login and which the password: shared by every reader of
//! rows (tables, SQL dumps, JSON objects, spreadsheets).
//!
//! A leak site's export names its columns in the victim's language and schema
//! (`courriel`, `adresse e-mail`, `user_email`, `mot de passe`, `mdp`, `password_hash`),
//! or names none. The login is the field named as an address, else the first field whose
//! value is one; the password is the field named as one. Every other field is read by the
//! grep floor only (its addresses become identity records), so a column nobody named is
//! never blind and no other personal data goes further than the reader's buffer.

use super::{text, Format, Record, Sink};

/// Column names (see [`header_key`]) of an address.
const EMAIL_NAMES: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "mailaddress",
    "adressemail",
    "adresseemail",
    "adressemel",
    "adressemailpersonnelle",
    "courriel",
    "adressecourriel",
    "useremail",
    "usermail",
    "loginemail",
    "customeremail",
    "contactemail",
    "emailpro",
    "emailperso",
    "mel",
    "email1",
    "emailaddr",
];

/// Column names of a password (or of its hash: the value tells which it is).
const PASSWORD_NAMES: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "pw",
    "motdepasse",
    "mdp",
    "userpassword",
    "userpass",
    "passwordhash",
    "passhash",
    "pwdhash",
    "hashedpassword",
    "encryptedpassword",
    "passwordencrypted",
    "secret",
    "hash",
    "mdphash",
    "motdepassehash",
];

/// A column name as compared: lower case, accents off, no spaces, dashes, underscores,
/// dots or quotes (`Adresse e-mail` → `adresseemail`).
pub fn header_key(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '"' | '\'' | '`' | '[' | ']'))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'à' | 'â' => 'a',
            'ï' | 'î' => 'i',
            'ô' => 'o',
            'ù' | 'û' => 'u',
            'ç' => 'c',
            c => c,
        })
        .collect()
}

/// What a column or key name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Email,
    Password,
    Other,
}

impl Named {
    /// Classifies a raw name. An ASCII name is folded on the stack (JSON repeats its keys
    /// in every object: a `String` per key was an eighth of an NDJSON run).
    pub fn of(name: &str) -> Named {
        let mut buf = [0u8; 48];
        let mut n = 0;
        if name.is_ascii() && name.len() <= 96 {
            for &c in name.as_bytes() {
                if matches!(
                    c,
                    b' ' | b'-' | b'_' | b'.' | b'"' | b'\'' | b'`' | b'[' | b']'
                ) {
                    continue;
                }
                if n == buf.len() {
                    return Named::Other;
                }
                buf[n] = c.to_ascii_lowercase();
                n += 1;
            }
            // ASCII in, ASCII out.
            let key = std::str::from_utf8(&buf[..n]).unwrap_or_default();
            return Named::of_key(key);
        }
        Named::of_key(&header_key(name))
    }

    fn of_key(key: &str) -> Named {
        if is_email_name(key) {
            Named::Email
        } else if is_password_name(key) {
            Named::Password
        } else {
            Named::Other
        }
    }
}

/// Whether a column name (as [`header_key`] gives it) names an address.
pub fn is_email_name(key: &str) -> bool {
    EMAIL_NAMES.contains(&key)
}

/// Whether a column name names a password.
pub fn is_password_name(key: &str) -> bool {
    PASSWORD_NAMES.contains(&key)
}

/// A value that is one address and nothing else (`a@b.example`, no space).
pub fn looks_like_email(s: &str) -> bool {
    // One pass over the bytes, a table telling `@`, `.`, ASCII white space and non-ASCII
    // bytes (searched as characters, in four passes, this was a tenth of the JSON
    // reader's time). White space outside ASCII is asked of the characters.
    const AT: u8 = 1;
    const DOT: u8 = 2;
    const WHITE: u8 = 4;
    const HIGH: u8 = 8;
    static CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = match c as u8 {
                b'@' => AT,
                b'.' => DOT,
                b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ' => WHITE,
                0x80..=0xFF => HIGH,
                _ => 0,
            };
            c += 1;
        }
        t
    };
    let b = s.as_bytes();
    let (mut at, mut before, mut after) = (None, 0u8, 0u8);
    for (i, &c) in b.iter().enumerate() {
        let class = CLASS[c as usize];
        if class & AT != 0 {
            if at.is_some() {
                return false; // a second `@`
            }
            at = Some(i);
        } else if at.is_some() {
            after |= class;
        } else {
            before |= class;
        }
    }
    let Some(at) = at else {
        return false;
    };
    let white = (before | after) & WHITE != 0
        || ((before | after) & HIGH != 0 && s.contains(char::is_whitespace));
    at > 0 && after & DOT != 0 && !white
}

/// The columns a row's reader settled on, by position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    pub email: Option<usize>,
    pub password: Option<usize>,
}

impl Columns {
    /// From column names (any case and spelling [`header_key`] folds).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Columns {
        let mut c = Columns::default();
        for (i, name) in names.into_iter().enumerate() {
            let key = header_key(name);
            if c.email.is_none() && is_email_name(&key) {
                c.email = Some(i);
            } else if c.password.is_none() && is_password_name(&key) {
                c.password = Some(i);
            }
        }
        c
    }
}

/// Settles the columns of rows whose first may be a header, from up to the first few
/// rows: `(columns, header)`. A first row without `@` is a header when a column is named
/// as an address or, failing that, when most of the other rows hold an address in one
/// column; without a header, the login column is the one where most rows hold an address.
/// `None` when no column holds addresses.
pub fn decide(rows: &[Vec<String>]) -> Option<(Columns, bool)> {
    let (first, rest) = rows.split_first()?;
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let by_content = |rows: &[Vec<String>]| {
        (0..width)
            .map(|c| {
                let hits = rows
                    .iter()
                    .filter(|r| r.get(c).is_some_and(|v| looks_like_email(v)))
                    .count();
                (hits, std::cmp::Reverse(c))
            })
            .filter(|&(hits, _)| hits > 0 && hits * 2 > rows.len())
            .max()
            .map(|(_, std::cmp::Reverse(c))| c)
    };
    if !first.iter().any(|f| f.contains('@')) {
        let mut cols = Columns::from_names(first.iter().map(String::as_str));
        if cols.email.is_none() {
            cols.email = by_content(rest);
        }
        return cols.email.map(|_| (cols, true));
    }
    by_content(rows).map(|email| {
        (
            Columns {
                email: Some(email),
                password: None,
            },
            false,
        )
    })
}

/// Whether a row's reader must decode field `i` (`raw`) for [`emit_row`]: the password
/// column, and any field with an `@` (a login, or an address for the floor). The others
/// are passed as `None`, which reads the same: a login without `@` gives no identity.
#[inline]
pub fn needed(i: usize, raw: &[u8], cols: Columns) -> bool {
    cols.password == Some(i) || has_at(raw)
}

/// Whether a raw field holds an `@`: without one it holds no address.
#[inline]
pub fn has_at(raw: &[u8]) -> bool {
    // Most fields are short: the standard library's word-at-a-time search costs less
    // than a vector search's set-up.
    if raw.len() < 32 {
        raw.contains(&b'@')
    } else {
        memchr::memchr(b'@', raw).is_some()
    }
}

/// Reports a row of raw fields (`None` for `NULL`): to the sink's own [`Sink::row`] if it
/// takes rows, else decoded here (only the fields [`needed`]) and sorted by [`emit_row`].
/// Returns the records reported here.
pub fn report_row(
    fields: &[Option<&[u8]>],
    cols: Columns,
    line: u64,
    format: Format,
    sink: &mut dyn Sink,
) -> u64 {
    if let Some(n) = sink.row(fields, cols, line, format) {
        return n;
    }
    let texts: Vec<Option<std::borrow::Cow<'_, str>>> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.filter(|f| needed(i, f, cols))
                .map(super::decode::line_text)
        })
        .collect();
    let refs: Vec<Option<&str>> = texts.iter().map(|t| t.as_deref()).collect();
    emit_row(&refs, cols, line, format, sink)
}

/// Reports one row: a record for its login (the named column, else the first field that
/// is an address) with its password, and the grep floor over every other field. Returns
/// the number of records. `NULL`-like values are `None`.
pub fn emit_row(
    fields: &[Option<&str>],
    columns: Columns,
    line: u64,
    format: Format,
    sink: &mut dyn Sink,
) -> u64 {
    let get = |i: Option<usize>| {
        i.and_then(|i| fields.get(i).copied().flatten())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let login_at = match columns.email {
        Some(i) if get(Some(i)).is_some() => Some(i),
        // A named column left empty: the row may still hold an address elsewhere.
        _ => fields
            .iter()
            .position(|f| f.is_some_and(|v| looks_like_email(v.trim()))),
    };
    let mut n = 0;
    if let Some(field) = get(login_at) {
        // `Jean <jd@example.net>` in the login column: the address in it.
        let login = super::combo::address_in(field);
        n += 1;
        sink.record(&Record {
            login,
            password: get(columns.password).filter(|_| login_at != columns.password),
            url: None,
            line,
            format,
        });
        // Any other address in the login's field (`Jean <jd@…>, copy to …`) is the
        // floor's; the login itself is not reported twice.
        if login.len() < field.len() {
            let at = login.as_ptr() as usize - field.as_ptr() as usize;
            n += text::floor(field, 0, Some((at, at + login.len())), line, sink);
        }
    }
    for (i, field) in fields.iter().enumerate() {
        // The password too: an address in it is someone's identity, as grep would see.
        if Some(i) == login_at {
            continue;
        }
        if let Some(value) = field {
            n += text::floor(value, 0, None, line, sink);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    #[test]
    fn names() {
        let c = Columns::from_names(["id", "Adresse e-mail", "Mot de passe", "ville"]);
        assert_eq!(
            c,
            Columns {
                email: Some(1),
                password: Some(2)
            }
        );
        let c = Columns::from_names(["`user_id`", "`user_email`", "`password_hash`"]);
        assert_eq!(
            c,
            Columns {
                email: Some(1),
                password: Some(2)
            }
        );
        assert_eq!(Columns::from_names(["id", "nom"]), Columns::default());
    }

    #[test]
    fn rows() {
        let mut sink = CollectSink::default();
        let c = Columns {
            email: Some(1),
            password: Some(2),
        };
        let n = emit_row(
            &[
                Some("1"),
                Some(" a@example.net "),
                Some("pw"),
                Some("see b@example.org"),
            ],
            c,
            3,
            Format::Table,
            &mut sink,
        );
        assert_eq!(n, 2);
        // The named column empty: the address is found by content.
        emit_row(
            &[Some("2"), None, None, Some("c@example.net")],
            c,
            4,
            Format::Table,
            &mut sink,
        );
        // No names at all.
        emit_row(
            &[Some("3"), Some("Dupont"), Some("d@example.net")],
            Columns::default(),
            5,
            Format::Sql,
            &mut sink,
        );
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| (r.login.as_str(), r.password.as_deref(), r.line, r.format))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@example.net", Some("pw"), 3, Format::Table),
                ("b@example.org", None, 3, Format::Text),
                ("c@example.net", None, 4, Format::Table),
                ("d@example.net", None, 5, Format::Sql),
            ]
        );
    }
}
