//! ULP lines: `url<sep>login<sep>password`, the layout of stealer-log compilations.
//!
//! The separator is `:`, `|`, space or tab. The hard part is finding where the URL ends,
//! because `:` is also the port separator and may appear in the path. The URL is read as
//! scheme, authority (with an optional port), then path; the first separator after that
//! ends it. The login is the next field; the password is all the rest.
//!
//! Accepted URL shapes: `https://host:8443/path`, `host/path`, `host` and
//! `android://<hash>@<package>/`.

/// The separators `:`, `|`, space and tab, as a table: this runs on every byte of every URL.
static IS_SEP: [bool; 256] = crate::bytes::byte_set(b":| \t");

#[inline]
fn is_sep(c: u8) -> bool {
    IS_SEP[c as usize]
}

/// Length of `scheme://` at the start of `line`, if there is one.
fn scheme_len(line: &str) -> Option<usize> {
    // A scheme is short and comes first: look at the first 34 bytes only, so that a
    // combo line is not searched to its end for `://` (this runs on every line).
    let head = &line.as_bytes()[..line.len().min(34)];
    let p = memchr::memchr(b':', head)?;
    if !line.as_bytes()[p + 1..].starts_with(b"//") {
        return None;
    }
    let scheme = &line.as_bytes()[..p];
    let ok = !scheme.is_empty()
        && scheme.len() <= 32
        && scheme[0].is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'));
    ok.then_some(p + 3)
}

/// Whether a line is ULP rather than combo: it starts with a scheme, or its first field is a
/// host name or `host/path` (a combo line's first field holds an `@` instead).
pub fn looks_like_ulp(line: &str) -> bool {
    if scheme_len(line).is_some() {
        return true;
    }
    let end = line.bytes().position(is_sep).unwrap_or(line.len());
    if end == line.len() {
        return false;
    }
    let first = &line[..end];
    let host = first.split('/').next().unwrap_or("");
    looks_like_host(host)
}

/// `a.b` shape: labels of letters, digits and dashes, at least one dot, a letter in the last
/// label. Enough to tell `site.com/login` from `jdupont` or `a@b.c`.
fn looks_like_host(s: &str) -> bool {
    if s.len() < 3 || !s.contains('.') || s.starts_with('.') {
        return false;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80);
    let tld = s.rsplit('.').next().unwrap_or("");
    ok && tld.bytes().any(|b| b.is_ascii_alphabetic() || b >= 0x80)
}

/// Splits a ULP line into (url, login, password).
pub fn split_ulp(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let b = line.as_bytes();
    let has_scheme = scheme_len(line);
    let mut i = has_scheme.unwrap_or(0);
    // Authority: up to the path, or to the first separator that is not a port's colon.
    let url_end = loop {
        if i >= b.len() {
            return None; // a URL with nothing after it
        }
        match b[i] {
            b'/' | b'?' | b'#' => {
                // Path: ends at the first separator.
                let rest = &b[i..];
                break i + rest.iter().position(|&c| is_sep(c))?;
            }
            b':' if has_scheme.is_some() && is_port(b, i) => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            c if is_sep(c) => break i,
            _ => i += 1,
        }
    };
    let url = &line[..url_end];
    if url.len() <= has_scheme.unwrap_or(0) {
        return None;
    }
    let sep = b[url_end];
    let rest = &line[url_end + 1..];
    // Several spaces between fields are one separator.
    let rest = if sep == b' ' {
        rest.trim_start_matches(' ')
    } else {
        rest
    };
    let (login, password) = match memchr::memchr(sep, rest.as_bytes()) {
        Some(j) => (&rest[..j], &rest[j + 1..]),
        None => (rest, ""),
    };
    let login = login.trim();
    if login.is_empty() {
        return None;
    }
    let password = if sep == b' ' {
        password.trim_start_matches(' ')
    } else {
        password
    };
    Some((url, login, (!password.is_empty()).then_some(password)))
}

/// Whether the `:` at `i` starts a port: 1 to 5 digits, then the path, or a separator with
/// two more fields (login and password) after it. `https://host:12345:pw` is host, login
/// `12345`, password `pw`: a port there would leave no room for a login.
pub(crate) fn is_port(b: &[u8], i: usize) -> bool {
    let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=5).contains(&digits) {
        return false;
    }
    let after = i + 1 + digits;
    match b.get(after) {
        None => false,
        Some(b'/' | b'?' | b'#') => true,
        Some(&sep) if is_sep(sep) => memchr::memchr(sep, &b[after + 1..]).is_some(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        type Want<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;
        let cases: &[(&str, Want)] = &[
            (
                "https://sso.agence-exemple.fr:8443/login:jdupont:pw",
                Some((
                    "https://sso.agence-exemple.fr:8443/login",
                    "jdupont",
                    Some("pw"),
                )),
            ),
            (
                "https://sso.agence-exemple.fr:8443:jdupont:p:w",
                Some(("https://sso.agence-exemple.fr:8443", "jdupont", Some("p:w"))),
            ),
            (
                "https://site.example:12345:pw",
                Some(("https://site.example", "12345", Some("pw"))),
            ),
            (
                "https://site.example/a?b=c|a@example.net|pw|x",
                Some(("https://site.example/a?b=c", "a@example.net", Some("pw|x"))),
            ),
            (
                "https://site.example/path a@example.net  pw with space",
                Some((
                    "https://site.example/path",
                    "a@example.net",
                    Some("pw with space"),
                )),
            ),
            (
                "sso.agence-exemple.fr/login:jdupont:pw",
                Some(("sso.agence-exemple.fr/login", "jdupont", Some("pw"))),
            ),
            (
                "sso.agence-exemple.fr:jdupont:pw",
                Some(("sso.agence-exemple.fr", "jdupont", Some("pw"))),
            ),
            (
                "android://Zm9vYmFy_hash==@com.example.app/:a@example.net:pw",
                Some((
                    "android://Zm9vYmFy_hash==@com.example.app/",
                    "a@example.net",
                    Some("pw"),
                )),
            ),
            (
                "https://site.example/login:a@example.net",
                Some(("https://site.example/login", "a@example.net", None)),
            ),
            ("https://site.example/login", None),
            ("https://site.example/login::pw", None),
            ("https://", None),
        ];
        for (line, want) in cases {
            assert!(looks_like_ulp(line), "{line:?} should look like ULP");
            assert_eq!(split_ulp(line), *want, "line {line:?}");
        }
    }

    #[test]
    fn combo_lines_are_not_ulp() {
        for line in [
            "a@example.net:pw",
            "jdupont:pw",
            "a.b@example.net|pw",
            "nosep",
            "1.2:pw",
        ] {
            assert!(!looks_like_ulp(line), "{line:?} should not look like ULP");
        }
    }
}
