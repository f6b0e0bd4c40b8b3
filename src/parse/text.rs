//! The grep floor: the addresses in any text that no structured reader claimed.
//!
//! Leak sites publish whatever came out of the victim's systems: mail headers
//! (`"Dupont, Jean" <jean@example.net>`), LDIF and vCard exports, HTML tables, forum
//! pastes where an address sits in prose. A reader for each shape would never be done; this
//! one makes sure that a shape nobody wrote a reader for is never blind. Every line (or
//! field) that the structured readers leave is searched for addresses, and each one found
//! is an identity record (no password: nothing in free text says which token is one).
//!
//! The address pattern is the one people grep with (`[A-Za-z0-9._%+-]+@` then a domain
//! whose last label is two letters or more), read the way a regex engine reads it, so that
//! what leakwatch finds is a superset of what `grep -oE` finds in the same bytes: a test
//! checks that on random text. Only ASCII is matched here; internationalised addresses are
//! read by the structured readers, where a field says where the address ends.

use super::{Format, ParseStats, Record, Sink};

/// Bytes of an address's local part, as the common grep pattern has them.
#[inline]
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[inline]
fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// The longest address reported (an address has at most 254 bytes; a little slack).
pub const MAX_ADDRESS: usize = 320;

/// Every address in `text`, left to right, as `(start, end)` byte offsets: exactly the
/// matches `grep -oE` prints (they never overlap). An `@` whose left side holds no local
/// part or whose right side holds no domain ending in a label of two letters or more
/// gives nothing.
pub fn address_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = text.as_bytes();
    let mut last_end = 0;
    memchr::memchr_iter(b'@', b).filter_map(move |at| {
        if at < last_end {
            return None;
        }
        let start = b[last_end..at]
            .iter()
            .rposition(|&c| !is_local(c))
            .map_or(last_end, |i| last_end + i + 1);
        if start == at {
            return None;
        }
        let run = b[at + 1..]
            .iter()
            .position(|&c| !is_domain(c))
            .map_or(b.len(), |i| at + 1 + i);
        // A regex's greedy `[a-z0-9.-]+\.[a-z]{2,}`: the longest prefix of the run that
        // ends with a dot and two letters or more (its letters taken as far as they go).
        let domain = &b[at + 1..run];
        let mut end = None;
        for (i, _) in domain.iter().enumerate().filter(|&(_, &c)| c == b'.').rev() {
            if i == 0 {
                break; // the regex needs a domain character before the dot
            }
            let letters = domain[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if letters >= 2 {
                end = Some(at + 1 + i + 1 + letters);
                break;
            }
        }
        let end = end?;
        last_end = end;
        // No account's address is this long (254 bytes at most): a hostile run of letters
        // around an `@` must not become a megabyte "address" kept per record.
        (end - start <= MAX_ADDRESS).then_some((start, end))
    })
}

/// Every address in `text`.
pub fn addresses(text: &str) -> impl Iterator<Item = &str> + '_ {
    address_spans(text).map(move |(s, e)| &text[s..e])
}

/// Text a reader gave up on (the line a JSON value broke on, the fields of a table
/// record cut short), read by the floor: its addresses are an entry of their own, so
/// that a shape broken by its text (a stray quote) loses nothing grep would find.
pub fn floor_entry(stats: &mut ParseStats, text: &[u8], no: u64, sink: &mut dyn Sink) {
    if memchr::memchr(b'@', text).is_none() {
        return;
    }
    let n = floor(&super::decode::line_text(text), 0, None, no, sink);
    if n > 0 {
        stats.entries += 1;
        stats.records += n;
        sink.end_entry();
    }
}

/// Reports each address of `text[from..]` as an identity record of line `no`, but the
/// one at `skip` (a login already reported); returns how many. `from` is where the part a
/// structured reader claimed ends (0 for none).
pub fn floor(
    text: &str,
    from: usize,
    skip: Option<(usize, usize)>,
    no: u64,
    sink: &mut dyn Sink,
) -> u64 {
    let Some(rest) = text.get(from..) else {
        return 0;
    };
    let mut n = 0;
    for (s, e) in address_spans(rest) {
        if skip == Some((from + s, from + e)) {
            continue;
        }
        n += 1;
        sink.record(&Record {
            login: &rest[s..e],
            password: None,
            url: None,
            line: no,
            format: Format::Text,
        });
    }
    n
}

/// Pieces random text is made of in the floor's tests: letters, separators, address
/// fragments and whole addresses.
#[cfg(test)]
pub(crate) const RANDOM_TEXT: &[&str] = &[
    "a",
    "Z",
    "9",
    ".",
    "@",
    "@",
    "-",
    "_",
    "+",
    "%",
    " ",
    "<",
    ">",
    "\"",
    ":",
    ",",
    "é",
    "example",
    ".net",
    ".fr",
    "co",
    "x.y",
    "..",
    "mailto:",
    "\t",
    ";",
    "|",
    "jean@example.net",
    "a@b",
    "@sso.agence-exemple.fr",
    "Dupont <",
    "marie.curie@agence-exemple.fr",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_text() {
        let cases: &[(&str, &[&str])] = &[
            (
                "\"Dupont, Jean\" <Jean.Dupont@example.net>",
                &["Jean.Dupont@example.net"],
            ),
            (
                "Jean Dupont <jd@agence-exemple.fr>, <x@y.example>",
                &["jd@agence-exemple.fr", "x@y.example"],
            ),
            (
                "contact: marie@example.org, tel 06 12 34 56 78",
                &["marie@example.org"],
            ),
            ("mail: a.b@example.com", &["a.b@example.com"]),
            ("EMAIL;TYPE=INTERNET:c@example.com", &["c@example.com"]),
            (
                "<td>d@example.com</td><td>e@example.com</td>",
                &["d@example.com", "e@example.com"],
            ),
            (
                "href=\"mailto:f@example.com?subject=x\"",
                &["f@example.com"],
            ),
            ("g@b.com-x h@b.co.uk. i@b.c0m", &["g@b.com", "h@b.co.uk"]),
            ("@example.com a@ a@.fr a@b.c", &[]),
            ("x..y@example.net", &["x..y@example.net"]),
            ("'q@example.net'", &["q@example.net"]),
            ("a@b@example.net", &["b@example.net"]),
            (
                &format!("{}@example.net x@example.org", "a".repeat(400)),
                &["x@example.org"],
            ),
        ];
        for (text, want) in cases {
            let got: Vec<&str> = addresses(text).collect();
            assert_eq!(got, *want, "{text:?}");
        }
    }

    /// What `grep -oiE '[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}'` prints, written out as a
    /// regex engine runs it (leftmost, then greedy with backtracking), independently of
    /// `address_spans`.
    fn grep_o(text: &str) -> Vec<&str> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some((start, end)) = (pos..b.len()).find_map(|start| match_at(b, start)) {
            out.push(&text[start..end]);
            pos = end;
        }
        out
    }

    /// The match of the pattern that starts at `start`, if any: greedy local part, then
    /// backtrack to an `@`; greedy domain, then backtrack to a dot and two letters.
    fn match_at(b: &[u8], start: usize) -> Option<(usize, usize)> {
        let local_end = (start..b.len())
            .find(|&i| !is_local(b[i]))
            .unwrap_or(b.len());
        for at in (start + 1..=local_end).rev() {
            if b.get(at) != Some(&b'@') {
                continue;
            }
            let dom_end = (at + 1..b.len())
                .find(|&i| !is_domain(b[i]))
                .unwrap_or(b.len());
            for mid in (at + 2..dom_end).rev() {
                if b[mid] != b'.' {
                    continue;
                }
                let letters = b[mid + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                if letters >= 2 {
                    return Some((start, mid + 1 + letters));
                }
            }
        }
        None
    }

    #[test]
    fn a_superset_of_grep_on_random_text() {
        const PIECES: &[&str] = RANDOM_TEXT;
        let mut rng = crate::synth::Rng::new(7);
        let mut seen = 0;
        for _ in 0..50_000 {
            let text: String = (0..1 + rng.below(16)).map(|_| *rng.pick(PIECES)).collect();
            let ours: Vec<&str> = addresses(&text).collect();
            let grep: Vec<&str> = grep_o(&text)
                .into_iter()
                .filter(|m| m.len() <= MAX_ADDRESS)
                .collect();
            seen += grep.len();
            assert_eq!(ours, grep, "{text:?}");
        }
        assert!(seen > 2_000, "only {seen} grep matches");
    }
}
