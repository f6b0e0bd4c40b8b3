//! Hits made ready off the store's thread.
//!
//! Everything a hit needs before it is written (its key, hash and Bloom answer, its
//! account from the memory-mapped identity index, the password's keyed fingerprint, the
//! site, the masked org address) reads shared, unchanging state. In a leak of the whole
//! user base every line is such a hit, and doing that work on the one thread that owns the
//! store held it to 400,000 lines a second; [`Prep::lines`] does it for a run of deferred
//! lines on every core, and the store's thread only queues the results, in input order.
//! The same [`Prep::hit`] serves records read one at a time, so both ways give the same
//! hit.

use std::path::Path;

use super::{severity, PendingHit};
use crate::filter::AccountFilter;
use crate::fingerprint::{password_hint, Fingerprinter, Hint};
use crate::identity::{mask_email, url_host, IdentityHash, IdentityKind, Normalizer};
use crate::liveness::ntlm::CurrentPasswords;
use crate::parse::{Record, Sink};
use crate::store::{FindingKind, KeyIndex, Reread, Severity, StoreError};

/// The shared state a hit is made from.
pub(super) struct Prep<'a> {
    pub norm: &'a Normalizer,
    pub filter: &'a AccountFilter,
    /// `None` when the index does not match the directory (then a hit is an error).
    pub keys: Option<&'a KeyIndex>,
    pub keys_path: &'a Path,
    pub fingerprinter: &'a Fingerprinter,
    /// How the directory holds its accounts' passwords (NT hash export, LDAP), when
    /// configured: whether a leaked password is current.
    pub nt: Option<&'a CurrentPasswords>,
    pub hints: bool,
    /// The known findings, when the store holds them ([`Prep::lines`] only).
    pub reread: Option<Reread<'a>>,
}

/// What [`Prep::make`] made of an identity.
enum Made {
    Nothing,
    /// Already recorded from this very line.
    Seen,
    Hit(PendingHit),
}

/// One identity of a deferred line, made ready.
pub(super) struct Ready {
    /// Index of its line in the run given to [`Prep::lines`].
    pub line: u32,
    /// The Bloom filter let it through.
    pub passed: bool,
    /// `Ok(true)`: something to record (a finding's sighting or an unknown org identity),
    /// the next of its worker's [`Out::hits`]; `Ok(false)`: nothing.
    pub hit: Result<bool, Box<StoreError>>,
    /// A match already recorded from this very line ([`Reread`]): counted, not written.
    pub seen: bool,
}

/// What one worker made of its lines: every identity, in line order, and the hits among
/// them apart. In a re-read leak nearly every identity is a `seen` one, and a `Ready`
/// the size of a hit was written and read again for each (a twentieth of the re-read's
/// time); boxing the hits instead cost the recording its allocations.
#[derive(Default)]
pub(super) struct Out {
    pub ready: Vec<Ready>,
    pub hits: Vec<PendingHit>,
}

impl Out {
    fn clear(&mut self) {
        self.ready.clear();
        self.hits.clear();
    }
}

impl Prep<'_> {
    /// The account `hash` is a key of, from the index alone (the batch asks whether it
    /// is still active when it records).
    fn account_of(&self, hash: &IdentityHash) -> Result<Option<i64>, StoreError> {
        let keys = self.keys.ok_or_else(|| StoreError::KeysStale {
            path: self.keys_path.to_path_buf(),
        })?;
        Ok(keys.lookup(hash)?.map(|(id, _)| id))
    }

    /// The hit a record's identity makes: a sighting of an account's finding if the filter
    /// `passed` it and the index confirms it; else, for an address on an org domain, an
    /// unknown identity; else nothing. `key` is the identity as `Normalizer::key_of` made it.
    #[allow(clippy::too_many_arguments)]
    pub fn hit(
        &self,
        r: &Record<'_>,
        hash: IdentityHash,
        kind: IdentityKind,
        passed: bool,
        key: &str,
        seen_at: i64,
    ) -> Result<Option<PendingHit>, StoreError> {
        let account = match passed {
            true => self.account_of(&hash)?,
            false => None,
        };
        match self.make(r, hash, kind, account, key, seen_at, None)? {
            Made::Hit(hit) => Ok(Some(hit)),
            Made::Seen | Made::Nothing => Ok(None),
        }
    }

    /// [`Prep::hit`] once the identity's `account` is known (`None`: not one of the
    /// directory's, or the filter did not pass it), and with `reread` (the record's
    /// `file:line`, when the known findings are in memory) a hit on a finding already
    /// recorded from there is told apart before anything else is made for it.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        r: &Record<'_>,
        hash: IdentityHash,
        kind: IdentityKind,
        account: Option<i64>,
        key: &str,
        seen_at: i64,
        reread: Option<(&Reread<'_>, &str)>,
    ) -> Result<Made, StoreError> {
        let masked = || {
            (kind == IdentityKind::Email && self.norm.is_org_email(key)).then(|| mask_email(key))
        };
        let Some(account) = account else {
            return Ok(match masked() {
                Some(masked) => Made::Hit(PendingHit {
                    account: None,
                    kind: FindingKind::Identity,
                    fp: None,
                    hint: None,
                    hash,
                    site: None,
                    format: r.format,
                    line: r.line,
                    source: (0, 0),
                    seen_at,
                    severity: Severity::Medium,
                    hash_algo: None,
                    masked: Some(masked),
                    has_password: r.password.is_some(),
                    current: None,
                }),
                None => Made::Nothing,
            });
        };
        let algo = r.password.and_then(crate::parse::hashed::classify);
        let (finding, fp) = self.fingerprint(account, r.password, algo);
        let current = self.current(account, finding, r.password);
        // A password that still opens the account is acted on first.
        let severity = match current {
            Some(true) => Severity::Critical,
            _ => severity(false, finding, algo),
        };
        if let Some((reread, source)) = reread {
            if reread
                .seen(account, finding, fp.as_ref(), source, severity)
                .is_some()
            {
                return Ok(Made::Seen);
            }
        }
        let hint = match (finding, r.password) {
            (FindingKind::Password, Some(pw)) if self.hints => Some(password_hint(pw)),
            _ => None,
        };
        Ok(Made::Hit(PendingHit {
            account: Some(account),
            kind: finding,
            fp,
            hint,
            hash,
            site: r.url.and_then(url_host).map(str::to_ascii_lowercase),
            format: r.format,
            line: r.line,
            source: (0, 0),
            seen_at,
            severity,
            hash_algo: algo.map(|a| a.as_str()),
            masked: masked(),
            has_password: r.password.is_some(),
            current,
        }))
    }

    /// Whether a leaked plaintext password is `account`'s password now, from the
    /// directory's hashes (`None`: none configured, none for the account, or not a
    /// plaintext password).
    pub fn current(&self, account: i64, kind: FindingKind, password: Option<&str>) -> Option<bool> {
        match (kind, password, self.nt) {
            (FindingKind::Password, Some(pw), Some(nt)) => nt.check(account, pw),
            _ => None,
        }
    }

    /// The kind of finding a password (or none) makes, and its fingerprint.
    fn fingerprint(
        &self,
        account: i64,
        password: Option<&str>,
        algo: Option<crate::parse::hashed::HashAlgo>,
    ) -> (FindingKind, Option<[u8; 32]>) {
        match (password, algo) {
            (Some(pw), Some(_)) => (
                FindingKind::PasswordHash,
                Some(self.fingerprinter.password(account, pw)),
            ),
            (Some(pw), None) => (
                FindingKind::Password,
                Some(self.fingerprinter.password(account, pw)),
            ),
            (None, _) => (FindingKind::Identity, None),
        }
    }

    /// The finding a password (or none) makes: its kind, fingerprint and hint. A password
    /// column that holds a hash: the hash is the exposure (its fingerprint, like a
    /// password's; never a hint of it).
    pub fn exposure(
        &self,
        account: i64,
        password: Option<&str>,
        algo: Option<crate::parse::hashed::HashAlgo>,
    ) -> (FindingKind, Option<[u8; 32]>, Option<Hint>) {
        let (kind, fp) = self.fingerprint(account, password, algo);
        let hint = match (kind, password) {
            (FindingKind::Password, Some(pw)) if self.hints => Some(password_hint(pw)),
            _ => None,
        };
        (kind, fp, hint)
    }

    /// The identities of `lines` (each its number and span in `text`: trimmed combo/ULP
    /// lines, as the scan defers them), read through the reference line parser on
    /// `threads` threads, into `outs` (one list per thread, each in line order, the
    /// threads' in turn). The lists are kept from call to call: allocated anew, their
    /// pages were zeroed by the kernel each time, a tenth of a re-read leak's time.
    pub fn lines(
        &self,
        text: &str,
        lines: &[(u64, usize, usize)],
        threads: usize,
        source_name: &str,
        seen_at: i64,
        outs: &mut Vec<Out>,
    ) {
        let part = lines.len().div_ceil(threads.max(1)).max(1);
        let parts = lines.len().div_ceil(part);
        outs.resize_with(parts.max(outs.len()), Out::default);
        let one = |from: usize, part: &[(u64, usize, usize)], out: &mut Out| {
            out.clear();
            let mut sink = Collect {
                prep: self,
                key: String::with_capacity(128),
                source_name,
                source: String::with_capacity(256),
                seen_at,
                line: 0,
                held: Vec::with_capacity(GROUP),
                arena: String::with_capacity(GROUP * 128),
                out,
            };
            for (i, &(no, a, b)) in part.iter().enumerate() {
                sink.line = (from + i) as u32;
                crate::parse::parse_credential_line(&text[a..b], no, &mut sink);
            }
            sink.group();
        };
        let (first, rest) = outs.split_at_mut(1);
        for out in rest.iter_mut() {
            out.clear();
        }
        if parts <= 1 {
            one(0, lines, &mut first[0]);
            return;
        }
        std::thread::scope(|scope| {
            let spawned: Vec<_> = lines
                .chunks(part)
                .skip(1)
                .zip(rest.iter_mut())
                .enumerate()
                .map(|(k, (p, out))| scope.spawn(move || one((k + 1) * part, p, out)))
                .collect();
            one(0, &lines[..part], &mut first[0]);
            for r in spawned {
                // A worker's panic is an abort in release; in tests it is passed on.
                r.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        })
    }
}

/// Identities held by a worker before their look-ups are made together: the Bloom filter,
/// the identity index and the known findings are tables of megabytes read at random, a
/// cache miss each (a third of a re-read leak's time when made one identity after the
/// other); asked for a group at a time, the misses overlap.
const GROUP: usize = 16;

/// A span of [`Collect::arena`].
type Span = (u32, u32);

/// An identity of a record, held for its group ([`Collect::group`]).
struct Held {
    /// Index of its line in the run.
    line: u32,
    /// Its record, its text in the arena.
    login: Span,
    password: Option<Span>,
    url: Option<Span>,
    record_line: u64,
    format: crate::parse::Format,
    /// The identity as `Normalizer::key_of` made it, in the arena.
    key: Span,
    hash: IdentityHash,
    kind: IdentityKind,
}

/// Gathers the identities of one worker's lines.
struct Collect<'p, 'a, 'o> {
    prep: &'p Prep<'a>,
    key: String,
    source_name: &'p str,
    /// `source_name:line` of the record, for [`Reread::seen`].
    source: String,
    seen_at: i64,
    line: u32,
    /// The identities of the group being gathered, and their text.
    held: Vec<Held>,
    arena: String,
    out: &'o mut Out,
}

impl Collect<'_, '_, '_> {
    /// Makes the held identities ready, in order. Each table is asked for the whole group
    /// before it is read: the Bloom blocks as the identities came, then the index entries,
    /// the known findings' heads, and their first findings (nearly always an account's
    /// only one). The prefetches are hints; the answers are those of [`Prep::make`] alone.
    fn group(&mut self) {
        let prep = self.prep;
        let mut accounts = [const { None }; GROUP];
        let mut passed = [false; GROUP];
        for (i, h) in self.held.iter().enumerate() {
            passed[i] = prep.filter.may_contain(&h.hash);
            if let (true, Some(keys)) = (passed[i], prep.keys) {
                keys.prefetch(&h.hash);
            }
        }
        for (i, h) in self.held.iter().enumerate() {
            let account = match passed[i] {
                true => prep.account_of(&h.hash),
                false => Ok(None),
            };
            if let (Some(reread), Ok(Some(a))) = (&prep.reread, &account) {
                reread.prefetch_head(*a);
            }
            accounts[i] = Some(account);
        }
        if let Some(reread) = &prep.reread {
            for account in accounts.iter().take(self.held.len()) {
                if let Some(Ok(Some(a))) = account {
                    reread.prefetch_first(*a);
                }
            }
        }
        let arena = self.arena.as_str();
        let text = |s: Span| &arena[s.0 as usize..s.1 as usize];
        for (i, h) in self.held.drain(..).enumerate() {
            let (hit, seen) = match accounts[i].take().unwrap_or(Ok(None)) {
                Err(e) => (Err(Box::new(e)), false),
                Ok(account) => {
                    let r = Record {
                        login: text(h.login),
                        password: h.password.map(text),
                        url: h.url.map(text),
                        line: h.record_line,
                        format: h.format,
                    };
                    let reread = match &prep.reread {
                        Some(reread) if passed[i] => {
                            self.source.clear();
                            self.source.push_str(self.source_name);
                            self.source.push(':');
                            super::push_decimal(&mut self.source, r.line);
                            Some((reread, self.source.as_str()))
                        }
                        _ => None,
                    };
                    let key = text(h.key);
                    match prep.make(&r, h.hash, h.kind, account, key, self.seen_at, reread) {
                        Ok(Made::Hit(hit)) => {
                            self.out.hits.push(hit);
                            (Ok(true), false)
                        }
                        Ok(Made::Nothing) => (Ok(false), false),
                        Ok(Made::Seen) => (Ok(false), true),
                        Err(e) => (Err(Box::new(e)), false),
                    }
                }
            };
            self.out.ready.push(Ready {
                line: h.line,
                passed: passed[i],
                hit,
                seen,
            });
        }
        self.arena.clear();
    }
}

impl Sink for Collect<'_, '_, '_> {
    fn record(&mut self, r: &Record<'_>) {
        let Some(kind) = self.prep.norm.key_of(r.login, r.url, &mut self.key) else {
            return;
        };
        let hash = IdentityHash::of(&self.key);
        self.prep.filter.prefetch(&hash);
        if let Some(keys) = self.prep.keys {
            keys.prefetch_fanout(&hash);
        }
        let arena = &mut self.arena;
        let mut put = |s: &str| {
            let from = arena.len() as u32;
            arena.push_str(s);
            (from, arena.len() as u32)
        };
        let held = Held {
            line: self.line,
            login: put(r.login),
            password: r.password.map(&mut put),
            url: r.url.map(&mut put),
            record_line: r.line,
            format: r.format,
            key: put(&self.key),
            hash,
            kind,
        };
        self.held.push(held);
        if self.held.len() == GROUP {
            self.group();
        }
    }
    fn malformed(&mut self, _line: u64, _why: crate::parse::Malformed) {}
}
