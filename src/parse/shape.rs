//! One forward pass that tells the shape of a combo/ULP line, for the fast path.
//!
//! [`super::parse_credential_line`] is the reference: it asks `looks_like_ulp`, then
//! splits with `split_ulp` or `split_combo`, several scans of the line each. Most lines of
//! a dump are `address<sep>password`; this pass reads the first field once, byte class by
//! byte class, and settles that case on its own. Every other shape is named so that the
//! caller runs the reference on it: the answers cannot differ, and a test compares them
//! on random lines.

use super::ulp;
use crate::bytes::{self, Classes};

/// Bytes of a plain address or word: letters, digits, `.`, `-`, `_`, `+`.
const PLAIN: u8 = 1;
/// Letters, digits, `.`, `-`: what a URL scheme and (with non-ASCII) a host are made of.
const HOSTISH: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            t[c] = PLAIN | HOSTISH;
        } else if b == b'_' || b == b'+' {
            t[c] = PLAIN;
        }
        c += 1;
    }
    t
};

/// What the fast pass made of a trimmed, non-empty line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a> {
    /// `login<sep>password`, or a bare address. `simple_at` is the `@`'s position when
    /// the login is plain bytes around exactly one `@` (nothing to trim or decode).
    Combo {
        login: &'a str,
        password: Option<&'a str>,
        simple_at: Option<usize>,
    },
    /// A ULP line: split it with [`split_ulp_with`] (or `ulp::split_ulp`). `scheme` is
    /// where the URL's `scheme://` ends, if it has one.
    Ulp { scheme: Option<usize> },
    /// Neither recognised here nor refused: ask the reference.
    Other,
    /// The reference refuses it too (`:nologin`, `@`, `a@`).
    Malformed,
}

/// The shape of `line` (trimmed, not empty).
pub fn shape(line: &str) -> Shape<'_> {
    shape_with(line, &classes_of(line, line.as_bytes()))
}

/// A line's first 64 bytes: in place when the memory after the line holds them (read
/// whatever follows the line: masks are cut at its length), else copied.
#[inline]
pub fn window64<'w>(line: &str, window: &'w [u8], copy: &'w mut [u8; 64]) -> &'w [u8; 64] {
    match window.first_chunk::<64>() {
        Some(w) => w,
        None => {
            let b = line.as_bytes();
            let n = b.len().min(64);
            copy[..n].copy_from_slice(&b[..n]);
            copy
        }
    }
}

/// The classes of a line's first 64 bytes (all four, for tests and tools).
pub fn classes_of(line: &str, window: &[u8]) -> Classes {
    let mut copy = [0u8; 64];
    let w = window64(line, window, &mut copy);
    let mut c = bytes::classify(w);
    bytes::classify_ulp(w, &mut c);
    c
}

/// [`shape`], from the classes of the line's first 64 bytes ([`classes_of`]).
#[inline]
pub fn shape_with<'a>(line: &'a str, c: &Classes) -> Shape<'a> {
    let b = line.as_bytes();
    let (plain, at_mask) = (c.plain, c.at);
    // The first byte that is neither plain nor `@`, or the line's end.
    let i = ((!(plain | at_mask)).trailing_zeros() as usize).min(b.len());
    if i >= 64 {
        return Shape::Other; // a first field of 64 plain bytes or more: rare
    }
    let field_ats = at_mask & bytes::bits(0, i);
    // None, one or several: no population count needed.
    let ats = match field_ats {
        0 => 0,
        m if m & (m - 1) == 0 => 1,
        _ => 2,
    };
    let first_at = field_ats.trailing_zeros() as usize;
    let first = &b[..i];
    let Some(&stop) = b.get(i) else {
        // No separator at all: a bare address, if the `@` is neither first nor last.
        return if ats == 0 || (ats == 1 && (first_at == 0 || first_at + 1 == b.len())) {
            Shape::Malformed
        } else if first_at == 0 {
            Shape::Other // `@a@b.example`: no login, but an address for the grep floor
        } else {
            Shape::Combo {
                login: line,
                password: None,
                simple_at: (ats == 1).then_some(first_at),
            }
        };
    };
    match stop {
        b':' | b';' | b'|' | b'\t' => {
            if stop == b':' && is_scheme(b, i) {
                return Shape::Ulp {
                    scheme: Some(i + 3),
                };
            }
            // `;` is no ULP separator: the ULP test would look past it, at a first field
            // that holds `;` and so is no host.
            if stop != b';' && ats == 0 && looks_like_host(first) {
                return Shape::Ulp { scheme: None };
            }
            if i == 0 {
                // `:nologin`; `:a@b.example` holds an address for the grep floor.
                return if memchr::memchr(b'@', b).is_some() {
                    Shape::Other
                } else {
                    Shape::Malformed
                };
            }
            if i == 6 && stop == b':' && first.eq_ignore_ascii_case(b"mailto") {
                return Shape::Other; // `mailto:addr:pass`: the variant reader's
            }
            let password = &line[i + 1..];
            Shape::Combo {
                login: &line[..i],
                password: (!password.is_empty()).then_some(password),
                simple_at: (ats == 1).then_some(first_at),
            }
        }
        // `host …` or `host/path …`: ULP if the first field is a host (and, after a path,
        // a separator follows). Anything else (a space inside a login, a slash in an
        // address) is rare: the reference judges.
        b' ' if ats == 0 && looks_like_host(first) => Shape::Ulp { scheme: None },
        b'/' if ats == 0
            && looks_like_host(first)
            && b[i..]
                .iter()
                .any(|c| matches!(c, b':' | b'|' | b' ' | b'\t')) =>
        {
            Shape::Ulp { scheme: None }
        }
        _ => other_or_junk(line),
    }
}

/// A line without combo separators or `@` is a record only as a ULP line (`host login
/// password`); otherwise the reference finds nothing in it. Banners and rulers
/// (`# fresh combos`, `=====`) are settled here rather than by the reference's searches.
fn other_or_junk(line: &str) -> Shape<'_> {
    let combo = line
        .bytes()
        .any(|c| matches!(c, b':' | b';' | b'|' | b'\t' | b'@'));
    if combo || ulp::looks_like_ulp(line) {
        Shape::Other
    } else {
        Shape::Malformed
    }
}

/// `normalize::url_host` of a ULP line's `url` (which starts the line) from the line's
/// classes (with the ULP ones), when the URL has a `scheme://` (`scheme` is where it
/// ends) or no separator at all, and its host is plain bytes inside the first 64 (then a
/// port of digits, maybe): nothing in it needs the general reading (no space, no
/// non-ASCII byte). `None` when it cannot tell.
#[inline]
pub fn plain_url_host<'a>(url: &'a str, c: &Classes, scheme: Option<usize>) -> Option<&'a str> {
    // Without a scheme, `url_host` reads from the start when no `://` follows: certainly
    // so when the URL holds no `:` (nor any other separator) at all.
    let start = match scheme {
        Some(s) => s,
        None if url.len() <= 64 && c.sep & bytes::bits(0, url.len()) == 0 => 0,
        None => return None,
    };
    let span = bytes::bits(start, url.len().min(64));
    let end = match (c.path & span).trailing_zeros() as usize {
        64 if url.len() > 64 => return None,
        64 => url.len(),
        end => end,
    };
    // User info (`android://<hash>@package/`): the host follows the last `@`, and the
    // user info must hold no separator (`url_host` would stop at a space there).
    let ats = c.at & bytes::bits(start, end);
    let from = if ats == 0 {
        start
    } else {
        let last = 63 - ats.leading_zeros() as usize;
        if c.sep & bytes::bits(start, last) != 0 {
            return None;
        }
        last + 1
    };
    // Plain bytes, or plain bytes then a port (`:8080`, digits only, maybe none).
    let other = !c.plain & bytes::bits(from, end);
    let end = match other {
        0 => end,
        _ if other & (other - 1) == 0 => {
            let colon = other.trailing_zeros() as usize;
            let port = &url.as_bytes()[colon + 1..end];
            if url.as_bytes()[colon] != b':' || !port.iter().all(u8::is_ascii_digit) {
                return None;
            }
            colon
        }
        _ => return None,
    };
    let host = &url[from..end];
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// `ulp::split_ulp` of a line [`shape_with`] found to be ULP, from its classes (with the
/// ULP ones: `bytes::classify_ulp`), for a URL that ends within the first 64 bytes. `None`
/// when it cannot tell: then ask the reference.
#[inline]
#[allow(clippy::type_complexity)]
pub fn split_ulp_with<'a>(
    line: &'a str,
    c: &Classes,
    scheme: Option<usize>,
) -> Option<Option<(&'a str, &'a str, Option<&'a str>)>> {
    let b = line.as_bytes();
    let start = scheme.unwrap_or(0);
    let known = bytes::bits(start, b.len().min(64));
    let (seps, path) = (c.sep & known, c.path & known);
    let first_sep = seps.trailing_zeros() as usize;
    let first_path = path.trailing_zeros() as usize;
    let url_end = if first_path < first_sep {
        // A path: the URL ends at the first separator after its start.
        (seps & bytes::bits(first_path, 64)).trailing_zeros() as usize
    } else if b.get(first_sep) == Some(&b':') && scheme.is_some() && ulp::is_port(b, first_sep) {
        // `host:8080`, then a path or a separator.
        let digits = b[first_sep + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let after = first_sep + 1 + digits;
        match b[after] {
            b'/' | b'?' | b'#' => (seps & bytes::bits(after, 64)).trailing_zeros() as usize,
            // A second colon: maybe a second port, as the reference reads it.
            b':' => return None,
            _ => after,
        }
    } else {
        first_sep
    };
    if url_end >= 64 || url_end >= b.len() || url_end <= start {
        return None;
    }
    let sep = b[url_end];
    let mut rest = &line[url_end + 1..];
    if sep == b' ' {
        rest = rest.trim_start_matches(' ');
    }
    // The next `sep` from the separator bits of the first 64 bytes, then past them.
    let from = b.len() - rest.len();
    let mut seps = c.sep & bytes::bits(from, b.len().min(64));
    let mut next = None;
    while seps != 0 {
        let i = seps.trailing_zeros() as usize;
        if b[i] == sep {
            next = Some(i - from);
            break;
        }
        seps &= seps - 1;
    }
    if next.is_none() && b.len() > 64 {
        let past = from.max(64);
        next = memchr::memchr(sep, &b[past..]).map(|j| past + j - from);
    }
    let (login, password) = match next {
        Some(j) => (&rest[..j], &rest[j + 1..]),
        None => (rest, ""),
    };
    let login = bytes::trim(login);
    if login.is_empty() {
        return Some(None);
    }
    let password = if sep == b' ' {
        password.trim_start_matches(' ')
    } else {
        password
    };
    Some(Some((
        &line[..url_end],
        login,
        (!password.is_empty()).then_some(password),
    )))
}

/// The `@`'s position if `login` is plain bytes around exactly one `@`.
#[inline]
pub fn plain_at(login: &str) -> Option<usize> {
    let mut at = None;
    for (i, &c) in login.as_bytes().iter().enumerate() {
        if c == b'@' {
            if at.is_some() {
                return None;
            }
            at = Some(i);
        } else if CLASS[c as usize] & PLAIN == 0 {
            return None;
        }
    }
    at
}

/// Whether the `:` at `colon` ends a URL scheme, as `ulp::scheme_len` decides: within the
/// first 34 bytes, followed by `//`, after a letter and letters, digits, `+`, `.`, `-`.
#[inline]
fn is_scheme(b: &[u8], colon: usize) -> bool {
    colon <= 32
        && colon > 0
        && b[colon + 1..].starts_with(b"//")
        && b[0].is_ascii_alphabetic()
        && b[..colon]
            .iter()
            .all(|&c| CLASS[c as usize] & HOSTISH != 0 || c == b'+')
}

/// `ulp::looks_like_host` for a field of plain bytes (no `@`, no `/`).
#[inline]
fn looks_like_host(s: &[u8]) -> bool {
    // The dot is looked for before a trailing one is cut, as the reference does. Plain
    // loops: the fields are short, and a `memchr` call costs more than it saves here.
    if s.len() < 3 || s[0] == b'.' || !s.contains(&b'.') {
        return false;
    }
    let s = s.strip_suffix(b".").unwrap_or(s);
    let tld = s
        .iter()
        .rposition(|&c| c == b'.')
        .map_or(s, |dot| &s[dot + 1..]);
    s.iter().all(|&c| CLASS[c as usize] & HOSTISH != 0) && tld.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{combo, ulp, CollectSink};

    /// Wherever the classes give a URL's host, it is `url_host`'s; and they give it for
    /// the common URLs.
    #[test]
    fn plain_url_host_agrees_with_url_host() {
        use crate::identity::url_host;
        let long = format!("https://{}.example/login", "a".repeat(70));
        let urls = [
            "https://sso.agence-exemple.fr/login",
            "https://SSO.Agence-Exemple.FR./login?next=1",
            "http://jeux.example:8080/connexion",
            "http://jeux.example:/connexion",
            "http://jeux.example:80a/connexion",
            "http://jeux.example.:443",
            "http://:443/",
            "http://a:1:2/",
            "http://[::1]:8080/",
            "android://aGFzaA==@com.example.social/",
            "android://a@b@com.example.social/",
            "android://a b@com.example.social/",
            "android://@com.example.social/",
            "android://hash@/",
            "https://user:pw@host.example/",
            "https://user@host.example:443/",
            "https://host.example",
            "https://host.example#frag",
            "https:///path",
            "https://./x",
            "https://hôte.example/x",
            "ftp://a b.example/",
            "webmail.example/auth",
            "webmail.example",
            "webmail.example:8080/auth",
            "a@webmail.example/auth",
            "https://a.example/r?u=http://b.example/",
            long.as_str(),
        ];
        let mut known = 0;
        for url in urls {
            let line = format!("{url} user pass");
            let c = classes_of(&line, line.as_bytes());
            let Shape::Ulp { scheme } = shape_with(&line, &c) else {
                continue;
            };
            if let Some(host) = plain_url_host(url, &c, scheme) {
                known += 1;
                assert_eq!(Some(host), url_host(url), "{url}");
            }
        }
        assert!(known >= 12, "only {known} hosts read from the classes");
    }

    /// Every line the fast pass settles, the reference settles the same way.
    #[test]
    fn agrees_with_the_reference_parser() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "jean",
            "9",
            ".",
            "@",
            "@",
            "+",
            "-",
            "_",
            " ",
            "\t",
            ":",
            ";",
            "|",
            "/",
            "//",
            "https",
            "http://",
            "android://",
            "\"",
            "'",
            "<",
            "=",
            "#",
            "é",
            "example.net",
            "sso.agence-exemple.fr",
            "x.y",
            "1.2",
            "mailto:",
            ":8443",
            "?",
            ",",
            "pw",
            "*",
        ];
        let mut rng = crate::synth::Rng::new(5);
        let (mut settled, mut split_decided) = (0, 0);
        for _ in 0..300_000 {
            let raw: String = (0..1 + rng.below(7)).map(|_| *rng.pick(PIECES)).collect();
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let mut sink = CollectSink::default();
            let recognised = crate::parse::parse_credential_line(line, 1, &mut sink);
            // Read in place, with whatever follows the line in memory.
            let mut window = line.as_bytes().to_vec();
            window.extend(PIECES[..12].concat().bytes().cycle().take(64));
            assert_eq!(
                shape_with(line, &classes_of(line, &window)),
                shape(line),
                "{line:?}"
            );
            match shape(line) {
                Shape::Other => {}
                Shape::Malformed => {
                    settled += 1;
                    assert!(!recognised, "{line:?}");
                }
                Shape::Ulp { scheme } => {
                    settled += 1;
                    assert!(ulp::looks_like_ulp(line), "{line:?}");
                    let c = classes_of(line, &window);
                    if let Some(split) = split_ulp_with(line, &c, scheme) {
                        split_decided += 1;
                        assert_eq!(split, ulp::split_ulp(line), "{line:?}");
                    }
                }
                Shape::Combo {
                    login,
                    password,
                    simple_at,
                } => {
                    settled += 1;
                    assert!(!ulp::looks_like_ulp(line), "{line:?}");
                    assert_eq!(
                        combo::split_combo(line),
                        Some((login, password)),
                        "{line:?}"
                    );
                    assert_eq!(simple_at, plain_at(login), "{line:?}");
                    if let Some(at) = simple_at {
                        assert_eq!(login.matches('@').count(), 1, "{line:?}");
                        assert_eq!(login.find('@'), Some(at), "{line:?}");
                    }
                }
            }
        }
        assert!(settled > 120_000, "settled {settled}");
        assert!(split_decided > 10_000, "ULP splits decided {split_decided}");
    }

    #[test]
    fn common_shapes() {
        assert_eq!(
            shape("Jean.Dupont@example.net:p:w"),
            Shape::Combo {
                login: "Jean.Dupont@example.net",
                password: Some("p:w"),
                simple_at: Some(11)
            }
        );
        assert_eq!(
            shape("https://sso.example/login:jd:pw"),
            Shape::Ulp { scheme: Some(8) }
        );
        assert_eq!(
            shape("webmail.example/auth jd pw"),
            Shape::Ulp { scheme: None }
        );
        assert_eq!(shape("sso.example:jd:pw"), Shape::Ulp { scheme: None });
        assert_eq!(
            shape("jdupont:pw"),
            Shape::Combo {
                login: "jdupont",
                password: Some("pw"),
                simple_at: None
            }
        );
        assert_eq!(shape("ab.:jd:pw"), Shape::Ulp { scheme: None });
        // Banners: nothing the reference could read, unless they hold a separator.
        assert_eq!(shape("====="), Shape::Malformed);
        assert_eq!(shape("# fresh combos 2025"), Shape::Malformed);
        assert_eq!(shape("--- join our channel ---"), Shape::Malformed);
        assert_eq!(shape("# mail: x"), Shape::Other);
        assert_eq!(shape("--- x@y.example ---"), Shape::Other);
        assert_eq!(shape(":nologin"), Shape::Malformed);
        assert_eq!(shape("a@"), Shape::Malformed);
    }
}
