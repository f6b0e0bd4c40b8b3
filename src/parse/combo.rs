//! Combo lines: `email<sep>password`, with `:`, `;`, `|` or tab as separator.
//!
//! The password is everything after the first separator, so passwords that contain
//! separators survive. A line with no separator that holds an `@` is a bare identity (email
//! lists are common in leak-site dumps). `login:password` lines without an `@` are returned
//! too: they carry no host, so the identity stage will not attribute them, but they are
//! well-formed and must not be counted as malformed.

use std::borrow::Cow;

const SEPARATORS: &[u8] = b":;|\t";

/// A combo line's credential as leakers write it, variants included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combo<'a> {
    /// The login: the whole first field, or the address inside it
    /// (`Jean <jd@example.net>` gives `jd@example.net`).
    pub login: &'a str,
    pub password: Option<Cow<'a, str>>,
    /// Where the first field ends in the line: the grep floor reads what follows.
    pub claimed: usize,
}

/// Splits a trimmed line in every combo variant: `mailto:` before the address, spaces
/// around the separator (`addr : pass`, `addr | pass`), quoted pairs (`"addr","pass"`,
/// with `""` escapes), `addr pass` with one space, and the plain `login<sep>password`.
pub fn split_variant(line: &str) -> Option<Combo<'_>> {
    // `mailto:` (any case, any number of times): the rest is the line.
    let mut skip = 0;
    while line.len() - skip > 7 && line.as_bytes()[skip..skip + 7].eq_ignore_ascii_case(b"mailto:")
    {
        skip += 7;
    }
    let rest = &line[skip..];
    let mut combo = if rest.starts_with('"') {
        quoted_pair(rest).or_else(|| plain(rest))
    } else {
        plain(rest).or_else(|| spaced_pair(rest))
    }?;
    combo.claimed += skip;
    combo.login = address_in(combo.login);
    Some(combo)
}

/// A login that holds an `@` next to what no address holds (`Jean <jd@example.net>`,
/// `(jd@example.net)`, `mail=jd@example.net`): the first address in it, if there is one.
/// Any other login is left whole: `rené@example.net` and `o'brien@example.net` are
/// addresses, not `né@example.net` and `brien@example.net`. (`=` is allowed in an
/// address, but in dumps it is far more often `key=value`.)
pub fn address_in(login: &str) -> &str {
    if !decorated(login) {
        return login;
    }
    super::text::addresses(login).next().unwrap_or(login)
}

/// Whether a login holds an `@` and bytes around it that no address holds: the address
/// a grep sees in it may then differ from the login (see [`address_in`]).
pub fn decorated(login: &str) -> bool {
    static DECORATION: [bool; 256] = crate::bytes::byte_set(b" \t\r\n\x0b\x0c<>\"(),[]\\=");
    memchr::memchr(b'@', login.as_bytes()).is_some()
        && login.bytes().any(|c| DECORATION[c as usize])
}

/// `login<sep>password`: [`split_combo`], with the spaces of `addr : pass` taken off.
fn plain(line: &str) -> Option<Combo<'_>> {
    let (login, password) = split_combo(line)?;
    let claimed = login.as_ptr() as usize - line.as_ptr() as usize + login.len();
    let password = match password {
        // A space before the separator: the spaces after it are the layout's, not the
        // password's (`addr : pass`).
        Some(p) if line.as_bytes().get(claimed) == Some(&b' ') => {
            Some(p.trim_start_matches(' ')).filter(|p| !p.is_empty())
        }
        p => p,
    };
    Some(Combo {
        login,
        password: password.map(Cow::Borrowed),
        claimed,
    })
}

/// `addr pass`: an address, one space (or more), and a password with no space in it.
fn spaced_pair(line: &str) -> Option<Combo<'_>> {
    let (first, rest) = line.split_once(' ')?;
    // A plain address only: `mail=jd@example.net statut=actif` is prose.
    super::shape::plain_at(first).filter(|&at| at > 0 && at + 1 < first.len())?;
    let password = rest.trim_start_matches(' ');
    if password.is_empty() || password.contains(char::is_whitespace) {
        return None;
    }
    Some(Combo {
        login: first,
        password: Some(Cow::Borrowed(password)),
        claimed: first.len(),
    })
}

/// `"login","password"` (or `;`, `:`, `|`, tab between; the password quoted or not; more
/// fields after it are ignored). `None` when the line does not start with a closed quote
/// and a separator, or nothing.
fn quoted_pair(line: &str) -> Option<Combo<'_>> {
    let (login, end) = quoted(line)?;
    let Cow::Borrowed(login) = login else {
        return None; // a login with `""` in it is no address
    };
    let login = login.trim();
    if login.is_empty() {
        return None;
    }
    let after = line[end..].trim_start_matches(' ');
    let Some(&sep) = after.as_bytes().first() else {
        if !login.contains('@') {
            return None; // a quoted word alone is no credential
        }
        return Some(Combo {
            login,
            password: None,
            claimed: end,
        });
    };
    match sep {
        b':' | b';' | b'|' | b'\t' => {}
        // A comma is a separator of CSV, not of combo lists: only with an address.
        b',' if login.contains('@') => {}
        _ => return None,
    }
    let value = after[1..].trim_start_matches(' ');
    let password = if value.starts_with('"') {
        quoted(value).map(|(p, _)| p)
    } else {
        let stop = value.find([',', ';', '|', '\t']).unwrap_or(value.len());
        Some(Cow::Borrowed(value[..stop].trim_end()))
    };
    Some(Combo {
        login,
        password: password.filter(|p| !p.is_empty()),
        claimed: end,
    })
}

/// The quoted value at the start of `s` (its first byte is `"`): the text inside, with
/// `""` read as `"`, and the offset past the closing quote.
pub fn quoted(s: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let mut escaped = false;
    loop {
        let j = i + memchr::memchr(b'"', &b[i..])?;
        if b.get(j + 1) == Some(&b'"') {
            escaped = true;
            i = j + 2;
            continue;
        }
        let inner = &s[1..j];
        let value = if escaped {
            Cow::Owned(inner.replace("\"\"", "\""))
        } else {
            Cow::Borrowed(inner)
        };
        return Some((value, j + 1));
    }
}

/// Splits a trimmed combo line into (login, password). `None` if it has no credential shape.
pub fn split_combo(line: &str) -> Option<(&str, Option<&str>)> {
    let bytes = line.as_bytes();
    match bytes.iter().position(|b| SEPARATORS.contains(b)) {
        Some(i) => {
            let login = line[..i].trim();
            if login.is_empty() {
                return None;
            }
            let password = &line[i + 1..];
            let password = (!password.is_empty()).then_some(password);
            Some((login, password))
        }
        None => {
            // A bare identity: one token with an `@` that is neither first nor last.
            let at = line.find('@')?;
            if at == 0 || at + 1 == line.len() || line.contains(char::is_whitespace) {
                return None;
            }
            Some((line, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        type Want<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: &[(&str, Want)] = &[
            ("a@example.net:pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net;pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net|pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net\tpw", Some(("a@example.net", Some("pw")))),
            (
                "a@example.net:p:w;|x",
                Some(("a@example.net", Some("p:w;|x"))),
            ),
            ("a@example.net:", Some(("a@example.net", None))),
            ("a@example.net", Some(("a@example.net", None))),
            (
                "\"a@example.net\" :pw",
                Some(("\"a@example.net\"", Some("pw"))),
            ),
            ("jdupont:secret", Some(("jdupont", Some("secret")))),
            (":nologin", None),
            ("no separator here", None),
            ("=====", None),
            ("@", None),
        ];
        for (line, want) in cases {
            assert_eq!(split_combo(line), *want, "line {line:?}");
        }
    }

    #[test]
    fn variants() {
        type Want<'a> = Option<(&'a str, Option<&'a str>, usize)>;
        let cases: &[(&str, Want)] = &[
            (
                "mailto:a@example.net:pw",
                Some(("a@example.net", Some("pw"), 20)),
            ),
            ("MAILTO:a@example.net", Some(("a@example.net", None, 20))),
            (
                "a@example.net : pw:x",
                Some(("a@example.net", Some("pw:x"), 13)),
            ),
            (
                "a@example.net | pw",
                Some(("a@example.net", Some("pw"), 13)),
            ),
            (
                "a@example.net:  pw",
                Some(("a@example.net", Some("  pw"), 13)),
            ),
            (
                "\"a@example.net\",\"p\"\"w\"",
                Some(("a@example.net", Some("p\"w"), 15)),
            ),
            (
                "\"a@example.net\";pw;Paris",
                Some(("a@example.net", Some("pw"), 15)),
            ),
            ("\"a@example.net\"", Some(("a@example.net", None, 15))),
            ("a@example.net pw", Some(("a@example.net", Some("pw"), 13))),
            (
                "a@example.net   pw",
                Some(("a@example.net", Some("pw"), 13)),
            ),
            ("a@example.net is my address", None),
            (
                "Jean <jd@example.net>:pw",
                Some(("jd@example.net", Some("pw"), 21)),
            ),
            ("\"Dupont, Jean\" <jd@example.net>", None),
            ("jdupont:pw", Some(("jdupont", Some("pw"), 7))),
            (
                "\"unclosed@example.net,pw",
                Some(("unclosed@example.net", None, 24)),
            ),
            ("mailto:", Some(("mailto", None, 6))),
        ];
        for (line, want) in cases {
            let got = split_variant(line).map(|c| (c.login, c.password, c.claimed));
            let want = want.map(|(l, p, c)| (l, p.map(Cow::Borrowed), c));
            assert_eq!(got, want, "line {line:?}");
        }
    }
}
