//! The findings already recorded, held in memory while a heavy run records its hits.
//!
//! A leak of the whole user base is a million hits, and a finding is deduplicated by
//! (account, kind, password fingerprint): asked of SQLite, each hit costs a lookup in the
//! findings' unique index and a probe of its sightings, a few microseconds on the one
//! thread that owns the store. Once a run has had many hits, the store reads the whole
//! table once (a sequential scan, a fraction of a microsecond a row) and answers from
//! memory: a hit on no known finding is inserted without asking, and a dump read again
//! (the same file and line) is recognised without a read.
//!
//! The map is only a shortcut, never the truth: a key it does not hold is inserted with
//! `OR IGNORE` and, if SQLite had the row after all, recorded the general way; a key it
//! holds but cannot vouch for (seen in more than one place, raised, written by another
//! path) is recorded the general way too. Only writers holding the state lock change
//! findings, so the map is exact for the run that loaded it; at its end it is saved
//! beside the database ([`file`]) for the next run, and dropped.

mod file;

use std::hash::BuildHasher;

use super::findings::{FindingKind, Severity};
use super::Store;
use super::StoreError;

/// Hits a run records through batches before the table is worth reading whole.
pub(crate) const KNOW_AFTER: u64 = 16_384;
/// More findings than this stay in SQLite: 32 bytes each, 58 MB at most, so that with the
/// accounts' heads a run stays well within 256 MB.
const MAX_KNOWN: usize = 1_800_000;
/// Accounts the map has a head for at most (4 bytes each, 64 MB): a directory whose
/// account ids run past this keeps its findings in SQLite.
const MAX_ACCOUNTS: i64 = 16 << 20;
/// The table is read whole only while it has at most this many rows per hit of the run
/// so far: reading a row costs about a tenth of asking for one.
const ROWS_PER_HIT: i64 = 8;

/// What a finding is unique by beside its account (the `dedup` column): its kind and the
/// first 8 bytes of its fingerprint, a keyed HMAC, so that two of one account's
/// passwords share it with odds of 2⁻⁶⁴.
pub(super) fn dedup(kind: FindingKind, fp: &[u8]) -> i64 {
    let kind: u64 = match kind {
        FindingKind::Password => 1,
        FindingKind::Identity => 2,
        FindingKind::Session => 3,
        FindingKind::PasswordHash => 4,
    };
    let mut first = [0u8; 8];
    let n = fp.len().min(8);
    first[..n].copy_from_slice(&fp[..n]);
    (u64::from_le_bytes(first) ^ kind << 56) as i64
}

/// A finding's unique key: its account and [`dedup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    account: i64,
    dedup: i64,
}

/// What the map knows of one finding.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Hash of its only sighting's source, when `exact`.
    pub source: u64,
    pub id: u32,
    pub severity: Severity,
    /// Seen once, at `source`, at `severity`, with no device: a hit there is a re-read.
    /// Otherwise the map only says the finding exists and the hit goes the general way.
    pub exact: bool,
}

/// One finding in [`Known::slots`], chained to the account's other findings.
#[derive(Clone, Copy)]
struct Slot {
    dedup: i64,
    entry: Entry,
    /// Index + 1 of the account's next finding; 0 ends the chain.
    next: u32,
}

/// The findings by account. Account ids are the accounts table's row ids, dense from 1,
/// so each account has a head in a flat array (4 bytes an account) and its findings,
/// nearly always one, follow in a chain: reading a million rows appends to one array
/// instead of scattering into a hash table's (a third of the load's time), and a million
/// findings take 36 MB (4 a head, 32 an entry) where the hash table took 69.
pub(super) struct Known {
    /// Per account id: index + 1 of its first finding in `slots` (0: none).
    heads: Vec<u32>,
    slots: Vec<Slot>,
    /// Seeds the sources' hash: per map, kept in its file.
    seed: u64,
    /// The `meta` token the map was read or saved under (0: none), which stays there only
    /// while no finding changes behind it ([`file`]).
    token: i64,
    /// Changed since it was read from its file (or read from the table).
    pub(super) dirty: bool,
}

/// The `meta` key of the token the known findings' file is valid under.
const TOKEN: &str = "known_token";

/// A fresh token: random, never 0 (what `meta_get` gives for none).
fn new_token() -> i64 {
    (rand::random::<u64>() >> 1 | 1) as i64
}

impl Known {
    pub fn key(account: i64, kind: FindingKind, fp: &[u8]) -> Key {
        Key {
            account,
            dedup: dedup(kind, fp),
        }
    }

    pub fn source_hash(&self, source: &str) -> u64 {
        self.hash_bytes(source.as_bytes())
    }

    /// A seeded multiply-fold over 8-byte words: a collision only takes a second sighting
    /// of a finding for a re-read of the first (never a finding), and SipHash cost a
    /// tenth of a re-read leak's time.
    fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        let mix = |h: u64, w: u64| {
            let m = u128::from(h ^ w) * 0x9E37_79B9_7F4A_7C15;
            (m as u64) ^ ((m >> 64) as u64)
        };
        let mut h = self.seed ^ bytes.len() as u64;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let mut last = [0u8; 8];
        last[..words.remainder().len()].copy_from_slice(words.remainder());
        mix(mix(h, u64::from_le_bytes(last)), self.seed)
    }

    fn find(&self, key: &Key) -> Option<usize> {
        let head = *self.heads.get(usize::try_from(key.account).ok()?)?;
        let mut at = head as usize;
        while at != 0 {
            let slot = &self.slots[at - 1];
            if slot.dedup == key.dedup {
                return Some(at - 1);
            }
            at = slot.next as usize;
        }
        None
    }

    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.find(key).map(|i| self.slots[i].entry)
    }

    /// Records what a write did; false if the map cannot hold it (an id beyond 32 bits, an
    /// account past [`MAX_ACCOUNTS`], or a finding past [`MAX_KNOWN`]), and the map must
    /// then be dropped.
    #[must_use]
    pub fn put(&mut self, key: Key, id: i64, severity: Severity, source: Option<u64>) -> bool {
        let Ok(id) = u32::try_from(id) else {
            return false;
        };
        let entry = Entry {
            source: source.unwrap_or(0),
            id,
            severity,
            exact: source.is_some(),
        };
        self.dirty = true;
        if let Some(i) = self.find(&key) {
            self.slots[i].entry = entry;
            return true;
        }
        let account = match usize::try_from(key.account) {
            Ok(a) if (a as i64) < MAX_ACCOUNTS => a,
            _ => return false,
        };
        if self.slots.len() >= MAX_KNOWN {
            return false;
        }
        if account >= self.heads.len() {
            self.heads.resize(account + 1, 0);
        }
        if self.slots.len() == self.slots.capacity() {
            // Doubling, but never past what the map may hold.
            let more = self
                .slots
                .len()
                .max(1 << 16)
                .min(MAX_KNOWN - self.slots.len());
            self.slots.reserve_exact(more);
        }
        self.slots.push(Slot {
            dedup: key.dedup,
            entry,
            next: self.heads[account],
        });
        self.heads[account] = self.slots.len() as u32;
        true
    }

    /// The map, if it is worth it for a run that has had `hits` hits, from the file at
    /// `saved` if it is valid, else from the table: `None` if it is too large for that
    /// (asked again at the next batch).
    pub fn load(
        conn: &rusqlite::Connection,
        hits: u64,
        saved: &std::path::Path,
    ) -> Result<Option<Known>, StoreError> {
        // max(id) is one step down the table's B-tree, and bounds the row count.
        let rows: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM findings", [], |r| {
            r.get(0)
        })?;
        let accounts: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM accounts", [], |r| {
                r.get(0)
            })?;
        if rows > MAX_KNOWN as i64
            || rows > ROWS_PER_HIT.saturating_mul(hits as i64)
            || accounts >= MAX_ACCOUNTS
        {
            return Ok(None);
        }
        let t = std::time::Instant::now();
        let token = meta_token(conn)?;
        if token != 0 {
            match file::load(saved, token) {
                Ok(Some(known)) => {
                    tracing::debug!(
                        findings = known.slots.len(),
                        ms = t.elapsed().as_millis() as u64,
                        "known findings read from their file"
                    );
                    return Ok(Some(known));
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::debug!(file = %saved.display(), %why, "known findings' file not used")
                }
            }
        }
        // The token goes in before the table is read: a finding changed from now on
        // deletes it, and the map is then not saved.
        let token = new_token();
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            rusqlite::params![TOKEN, token],
        )?;
        let mut known = Known {
            // Row ids are never negative as leakwatch writes them; a database edited by
            // hand must not turn one into a huge allocation.
            heads: vec![0; accounts.max(0) as usize + 1],
            slots: Vec::with_capacity((rows.max(0) as usize + (1 << 16)).min(MAX_KNOWN)),
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64) | 1,
            token,
            dirty: true,
        };
        // Only what a hit is checked against: the key as stored (`dedup`), and the source
        // and severity of a finding seen once (else NULL); no text is parsed beyond that.
        let mut stmt = conn.prepare(
            "SELECT account_id, dedup, id, severity,
                    CASE WHEN times_seen = 1 AND device_id IS NULL THEN first_source END
             FROM findings",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = Key {
                account: r.get(0)?,
                dedup: r.get(1)?,
            };
            let severity = match r.get_ref(3)?.as_bytes().map_err(rusqlite::Error::from)? {
                b"critical" => Severity::Critical,
                b"medium" => Severity::Medium,
                _ => Severity::High,
            };
            let source = match r.get_ref(4)? {
                rusqlite::types::ValueRef::Text(t) => Some(known.hash_bytes(t)),
                _ => None,
            };
            if !known.put(key, r.get(2)?, severity, source) {
                return Ok(None);
            }
        }
        tracing::debug!(
            findings = known.slots.len(),
            ms = t.elapsed().as_millis() as u64,
            "known findings read into memory"
        );
        Ok(Some(known))
    }

    /// Saves the map for the next run if it changed and nothing changed behind it since it
    /// was read ([`file`]). A failure only costs the next run the table's read.
    fn keep(&self, conn: &rusqlite::Connection, saved: &std::path::Path) {
        if !self.dirty {
            return;
        }
        let done = (|| -> Result<bool, Box<dyn std::error::Error>> {
            if meta_token(conn)? != self.token {
                return Ok(false);
            }
            // No token while the file is replaced: a crash in between leaves it unused.
            conn.execute("DELETE FROM meta WHERE key = ?1", [TOKEN])?;
            let token = new_token();
            file::save(self, saved, token)?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                rusqlite::params![TOKEN, token],
            )?;
            Ok(true)
        })();
        match done {
            Ok(true) => tracing::debug!(findings = self.slots.len(), "known findings saved"),
            Ok(false) => {
                tracing::debug!("findings changed during the run: known findings not saved")
            }
            Err(e) => {
                tracing::warn!(file = %saved.display(), error = %e, "known findings not saved; the next heavy run reads the table")
            }
        }
    }
}

fn meta_token(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [TOKEN], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// The known findings, read-only, for hits made ready off the store's thread: a hit on
/// a finding already recorded from its very line is known there, and never queued.
pub struct Reread<'a> {
    known: &'a Known,
}

impl Reread<'_> {
    /// Asks for `account`'s head to be brought into cache ([`Reread::prefetch_first`]
    /// next, then [`Reread::seen`]).
    pub fn prefetch_head(&self, account: i64) {
        if let Some(h) = usize::try_from(account)
            .ok()
            .and_then(|a| self.known.heads.get(a))
        {
            crate::bytes::prefetch(h);
        }
    }

    /// Asks for `account`'s first finding to be brought into cache (nearly always its
    /// only one).
    pub fn prefetch_first(&self, account: i64) {
        let head = usize::try_from(account)
            .ok()
            .and_then(|a| self.known.heads.get(a))
            .copied()
            .unwrap_or(0) as usize;
        if let Some(slot) = head.checked_sub(1).and_then(|i| self.known.slots.get(i)) {
            crate::bytes::prefetch(slot);
        }
    }

    /// The finding a hit is a re-read of: the map vouches that it was seen once, at this
    /// `source`, at no lower severity, with no device. Later writes of the run only add
    /// sightings or raise severities, which leave that true.
    pub fn seen(
        &self,
        account: i64,
        kind: FindingKind,
        fp: Option<&[u8; 32]>,
        source: &str,
        severity: Severity,
    ) -> Option<i64> {
        let fp: &[u8] = fp.map_or(&[], |f| &f[..]);
        let e = self.known.get(&Known::key(account, kind, fp))?;
        (e.exact && severity <= e.severity && e.source == self.known.source_hash(source))
            .then_some(i64::from(e.id))
    }
}

impl Store {
    /// Reads the known findings into memory, if a run that has had `hits` hits and looks
    /// set to have `projected` by its end makes it worth it, and they are not there yet.
    pub fn want_known(&mut self, hits: u64, projected: u64) -> Result<(), StoreError> {
        if self.known.is_none() && hits >= KNOW_AFTER {
            self.known = Known::load(&self.conn, hits.max(projected), &self.known_file())?;
        }
        Ok(())
    }

    fn known_file(&self) -> std::path::PathBuf {
        self.path.with_file_name(file::FILE)
    }

    /// Drops the findings held in memory at a run's end (another process may write next),
    /// saved for the next run first.
    pub fn forget_known(&mut self) {
        if let Some(known) = self.known.take() {
            known.keep(&self.conn, &self.known_file());
        }
        self.batched = 0;
    }

    /// The known findings, when they are in memory and every account the identity index
    /// names is active (else a hit's account must be asked for as it is written).
    pub fn reread(&self) -> Result<Option<Reread<'_>>, StoreError> {
        match &self.known {
            Some(known) if self.index_current()? => Ok(Some(Reread { known })),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(accounts: usize) -> Known {
        Known {
            heads: vec![0; accounts + 1],
            slots: Vec::new(),
            seed: 1,
            token: 0,
            dirty: false,
        }
    }

    /// An account's findings are chained: each is found by its own key, an update
    /// replaces one entry, and what the map cannot hold is refused, never mixed up.
    #[test]
    fn findings_chain_per_account_and_what_cannot_be_held_is_refused() {
        let mut known = empty(4);
        let fp = |n: u8| [n; 32];
        for n in 1..=5u8 {
            let key = Known::key(3, FindingKind::Password, &fp(n));
            assert!(known.put(key, i64::from(n) * 10, Severity::High, Some(u64::from(n))));
        }
        assert!(known.put(
            Known::key(3, FindingKind::Identity, &[]),
            99,
            Severity::Medium,
            None
        ));
        for n in 1..=5u8 {
            let e = known
                .get(&Known::key(3, FindingKind::Password, &fp(n)))
                .unwrap();
            assert_eq!(
                (e.id, e.source, e.exact),
                (u32::from(n) * 10, u64::from(n), true)
            );
        }
        let identity = known
            .get(&Known::key(3, FindingKind::Identity, &[]))
            .unwrap();
        assert_eq!((identity.id, identity.exact), (99, false));
        // Same fingerprint, another kind or account: not known.
        assert!(known
            .get(&Known::key(3, FindingKind::PasswordHash, &fp(1)))
            .is_none());
        assert!(known
            .get(&Known::key(2, FindingKind::Password, &fp(1)))
            .is_none());
        assert!(known
            .get(&Known::key(-1, FindingKind::Password, &fp(1)))
            .is_none());
        assert!(known
            .get(&Known::key(1 << 40, FindingKind::Password, &fp(1)))
            .is_none());
        // An update replaces the entry in place.
        let key = Known::key(3, FindingKind::Password, &fp(2));
        assert!(known.put(key, 20, Severity::Critical, None));
        let e = known.get(&key).unwrap();
        assert_eq!((e.id, e.severity, e.exact), (20, Severity::Critical, false));
        assert_eq!(known.slots.len(), 6);
        // An account past the heads grows them; past MAX_ACCOUNTS, or an id past 32 bits,
        // is refused.
        let far = Known::key(1000, FindingKind::Password, &fp(7));
        assert!(known.put(far, 7, Severity::High, Some(7)));
        assert_eq!(known.get(&far).unwrap().id, 7);
        assert!(!known.put(
            Known::key(MAX_ACCOUNTS, FindingKind::Password, &fp(7)),
            8,
            Severity::High,
            None
        ));
        assert!(!known.put(
            Known::key(-5, FindingKind::Password, &fp(7)),
            8,
            Severity::High,
            None
        ));
        assert!(!known.put(
            Known::key(4, FindingKind::Password, &fp(7)),
            1 << 32,
            Severity::High,
            None
        ));
        assert!(known
            .get(&Known::key(4, FindingKind::Password, &fp(7)))
            .is_none());
    }
}
