//! The fast path against the reference path, line for line.

use std::collections::HashSet;

use super::*;
use crate::identity::{IdentityHash, IdentityKind, Normalizer};
use crate::parse::reader::LineReader;
use crate::parse::{self, Record, Sink};
use crate::synth::{self, Rng};

const MAX_LINE: usize = 256;

fn norm() -> Normalizer {
    Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"])
}

/// What a path found: every key (line, key) that needs the store, all identities, and
/// the malformed lines reported.
#[derive(Debug, Default)]
struct Seen {
    needs_store: Vec<(u64, String)>,
    identities: u64,
    malformed: Vec<(u64, Malformed)>,
    deferred: u64,
}

/// The reference's judgement of one record, as `Ingest::record` makes it.
fn judge(r: &Record<'_>, norm: &Normalizer, filter: &AccountFilter, seen: &mut Seen) {
    let mut key = String::new();
    let Some(kind) = norm.key_of(r.login, r.url, &mut key) else {
        return;
    };
    seen.identities += 1;
    let ours = filter.may_contain(&IdentityHash::of(&key));
    if ours || (kind == IdentityKind::Email && norm.is_org_email(&key)) {
        seen.needs_store.push((r.line, key));
    }
}

struct Reference<'a> {
    norm: &'a Normalizer,
    filter: &'a AccountFilter,
    seen: Seen,
}

impl Sink for Reference<'_> {
    fn record(&mut self, r: &Record<'_>) {
        judge(r, self.norm, self.filter, &mut self.seen);
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.seen.malformed.push((line, why));
    }
}

impl ScanSink for Reference<'_> {
    fn deferred(&mut self, line: u64, text: &str) {
        self.seen.deferred += 1;
        assert!(
            parse::parse_credential_line(text, line, self),
            "{line}: {text:?}"
        );
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.seen.malformed.push((line, why));
    }
}

/// A dump with everything the screen and the parsers must agree on.
fn dump(seed: u64, lines: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut line = String::new();
    for i in 0..lines {
        match rng.below(40) {
            0 => out.extend(b"caf\xe9@example.net:latin1"),
            1 => out.extend(b"nul\x00@example.net:pw"),
            2 => out.extend(std::iter::repeat_n(b'x', 200 + rng.below(400) as usize)),
            3 => out.extend("élodie@bücher.example:mot de passe".as_bytes()),
            4 => out.extend(format!("Fantome{i}+RH@Agence-Exemple.FR:pw").bytes()),
            5 => out.extend(format!("https://sso.agence-exemple.fr/login|jd{i}|pw").bytes()),
            6 => out.extend(format!("\"Quoted{i}@Example.NET\";pw").bytes()),
            7 => out.extend(format!("mailto:m{i}@example.org\tpw").bytes()),
            8 => out.extend(b"   \t "),
            _ => {
                synth::noise_line(&mut rng, &mut line);
                out.extend(line.as_bytes());
            }
        }
        out.extend(if rng.chance(10) { &b"\r\n"[..] } else { b"\n" });
    }
    out.extend(b"last.line@example.com:no-newline");
    out
}

/// How the fast path is given its input.
enum Input<'a> {
    Stream(&'a mut dyn Read),
    /// Read as a stream.
    Bytes(&'a [u8]),
    /// Written to a file and mapped ([`scan_mapped`]); the file is then truncated to the
    /// given length, if any.
    Mapped(&'a [u8], Option<u64>),
}

/// The fast path on `input`, with what its deferred lines give through the reference.
fn fast(
    input: Input<'_>,
    norm: &Normalizer,
    filter: &AccountFilter,
    chunk_bytes: usize,
    threads: usize,
) -> (io::Result<ScanStats>, Seen) {
    let setup = Setup {
        filter,
        keys: KeyBlocks::new(norm),
        max_line: MAX_LINE,
        threads,
        chunk_bytes,
    };
    let mut got = Reference {
        norm,
        filter,
        seen: Seen::default(),
    };
    let stats = match input {
        Input::Stream(r) => scan_lines(r, &setup, &mut got),
        Input::Bytes(mut b) => scan_lines(&mut b, &setup, &mut got),
        Input::Mapped(bytes, shrink_to) => {
            use std::io::Write;
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(bytes).unwrap();
            file.flush().unwrap();
            let map = Mapped::open(file.as_file(), bytes.len() as u64).unwrap();
            if let Some(len) = shrink_to {
                file.as_file().set_len(len).unwrap();
            }
            scan_mapped(&map, &setup, &mut got)
        }
    };
    (stats, got.seen)
}

fn reference(input: &[u8], norm: &Normalizer, filter: &AccountFilter) -> (Seen, ParseStats) {
    let mut r = Reference {
        norm,
        filter,
        seen: Seen::default(),
    };
    let stats = parse::parse_lines(LineReader::new(input, MAX_LINE), &mut r).unwrap();
    (r.seen, stats)
}

/// A filter holding the keys of one line in twenty of the dump, at a rate high enough to give false
/// positives (deferred lines that are not ours).
fn filter_for(input: &[u8], norm: &Normalizer) -> AccountFilter {
    let mut keys = Vec::new();
    let mut key = String::new();
    for (i, line) in String::from_utf8_lossy(input).lines().enumerate() {
        if i % 20 == 0 {
            for part in line.split([':', ';', '|', '\t', ' ']) {
                if norm.key_of(part, None, &mut key).is_some() {
                    keys.push(IdentityHash::of(&key));
                }
            }
        }
    }
    AccountFilter::build(keys.into_iter(), 1e-2, 1).unwrap()
}

#[test]
fn fast_path_equals_the_reference_for_every_chunking_and_thread_count() {
    let norm = norm();
    let input = dump(3, 6000);
    let filter = filter_for(&input, &norm);
    let (want, want_stats) = reference(&input, &norm, &filter);
    assert!(want.needs_store.len() > 100 && want.identities > 3000);
    for (chunk_bytes, threads) in [
        (300, 1),
        (1000, 3),
        (4096, 2),
        (CHUNK_BYTES, 1),
        (CHUNK_BYTES, 4),
    ] {
        for mapped in [false, true] {
            let source = if mapped {
                Input::Mapped(&input, None)
            } else {
                Input::Bytes(&input)
            };
            let (result, got) = fast(source, &norm, &filter, chunk_bytes, threads);
            let stats = result.unwrap();
            let ctx = format!("chunk {chunk_bytes}, {threads} threads, mapped {mapped}");
            assert_eq!(stats.parse, want_stats, "{ctx}");
            assert_eq!(got.needs_store, want.needs_store, "{ctx}");
            assert_eq!(stats.identities + got.identities, want.identities, "{ctx}");
            assert_eq!(stats.deferred, got.deferred, "{ctx}");
            // Most lines are settled by the fast path, or it is not one.
            assert!(stats.deferred * 4 < want_stats.records, "{ctx}: {stats:?}");
            // Malformed lines: the first of each reason is reported with its line number,
            // and every report is the reference's.
            let reported: HashSet<_> = got.malformed.iter().collect();
            assert!(
                got.malformed.iter().all(|m| want.malformed.contains(m)),
                "{ctx}"
            );
            for why in Malformed::ALL {
                if let Some(first) = want.malformed.iter().find(|(_, w)| *w == why) {
                    assert!(reported.contains(first), "{ctx}: {first:?}");
                }
            }
            let lines: Vec<u64> = got.malformed.iter().map(|m| m.0).collect();
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "{ctx}: reports out of order"
            );
        }
    }
}

#[test]
fn edges_of_the_stream() {
    let norm = norm();
    let filter = AccountFilter::build(std::iter::empty(), 1e-3, 1).unwrap();
    let long = "y".repeat(3000);
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        b"\xEF\xBB\xBF\r\n".to_vec(),
        b"\n\n\n".to_vec(),
        b"a@example.net:pw".to_vec(),
        long.clone().into_bytes(),
        format!("{long}\na@example.net:pw\n{long}").into_bytes(),
        format!("\u{feff}{long}\nb@example.net:pw\n").into_bytes(),
        format!("a@example.net:pw\r\n{long}\r\n\r\n").into_bytes(),
    ];
    for input in cases {
        let (want, want_stats) = reference(&input, &norm, &filter);
        let cases = [(257, 1, false), (300, 2, false), (CHUNK_BYTES, 2, false)];
        // A mapped file is never empty: the walker reads an empty file as a stream.
        let mapped = [(257, 1, true), (300, 2, true), (CHUNK_BYTES, 1, true)];
        let n = if input.is_empty() { 0 } else { mapped.len() };
        for (chunk_bytes, threads, mapped) in cases.into_iter().chain(mapped.into_iter().take(n)) {
            let source = if mapped {
                Input::Mapped(&input, None)
            } else {
                Input::Bytes(&input)
            };
            let (result, got) = fast(source, &norm, &filter, chunk_bytes, threads);
            let stats = result.unwrap();
            let ctx = format!(
                "{:?}, chunk {chunk_bytes}, mapped {mapped}",
                String::from_utf8_lossy(&input[..input.len().min(20)])
            );
            assert_eq!(stats.parse, want_stats, "{ctx}");
            assert_eq!(got.malformed, want.malformed, "{ctx}");
            assert_eq!(stats.identities + got.identities, want.identities, "{ctx}");
        }
    }
}

/// A read error mid-stream is returned, after the chunks before it were applied.
#[test]
fn read_error_keeps_what_was_read() {
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0.len()).min(500);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let norm = norm();
    let input = dump(5, 400);
    let filter = filter_for(&input, &norm);
    let (want, _) = reference(&input, &norm, &filter);
    for threads in [1, 2] {
        let (result, got) = fast(
            Input::Stream(&mut Failing(&input)),
            &norm,
            &filter,
            1000,
            threads,
        );
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        // Everything but the last partial chunk was applied, in order.
        let n = got.needs_store.len();
        assert!(n > want.needs_store.len() / 2, "{threads}: {n}");
        assert_eq!(got.needs_store[..], want.needs_store[..n]);
    }
}

/// A mapped file that shrinks while it is read ends the scan with an error instead of the
/// process (SIGBUS); what was read before is applied, and nothing read as zeros is.
#[test]
fn a_mapped_file_that_shrinks_is_an_error_not_a_crash() {
    let norm = norm();
    let input = dump(7, 20_000);
    let filter = filter_for(&input, &norm);
    let (want, _) = reference(&input, &norm, &filter);
    for threads in [1, 2] {
        let cut = (input.len() as u64 * 2 / 5) & !4095;
        let (result, got) = fast(
            Input::Mapped(&input, Some(cut)),
            &norm,
            &filter,
            4096,
            threads,
        );
        let err = result.unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
        let n = got.needs_store.len();
        assert!(n > 0 && n < want.needs_store.len(), "{threads}: {n}");
        assert_eq!(got.needs_store[..], want.needs_store[..n]);
        assert!(got
            .malformed
            .iter()
            .all(|m| m.1 != Malformed::NulByte || want.malformed.contains(m)));
    }
}
