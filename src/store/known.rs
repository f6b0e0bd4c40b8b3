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
//! findings, so the map is exact for the run that loaded it, and dropped at its end.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use super::findings::{FindingKind, Severity};
use super::StoreError;

/// Hits a run records through batches before the table is worth reading whole.
pub(super) const KNOW_AFTER: u64 = 16_384;
/// More rows than this stay in SQLite (about 35 bytes of memory each).
const MAX_KNOWN: i64 = 4_000_000;
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

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64((self.account as u64) ^ (self.dedup as u64).rotate_left(23));
    }
}

/// One multiply folded: the fingerprint half is already uniform, the account half is
/// spread by the multiply.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let m = u128::from(self.0 ^ x) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
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

pub(super) struct Known {
    map: HashMap<Key, Entry, BuildHasherDefault<Mix>>,
    sources: std::collections::hash_map::RandomState,
}

impl Known {
    pub fn key(account: i64, kind: FindingKind, fp: &[u8]) -> Key {
        Key {
            account,
            dedup: dedup(kind, fp),
        }
    }

    pub fn source_hash(&self, source: &str) -> u64 {
        self.sources.hash_one(source)
    }

    pub fn get(&self, key: &Key) -> Option<Entry> {
        self.map.get(key).copied()
    }

    /// Records what a write did; false if the map cannot hold it (an id beyond 32 bits),
    /// and the map must then be dropped.
    #[must_use]
    pub fn put(&mut self, key: Key, id: i64, severity: Severity, source: Option<u64>) -> bool {
        let Ok(id) = u32::try_from(id) else {
            return false;
        };
        self.map.insert(
            key,
            Entry {
                source: source.unwrap_or(0),
                id,
                severity,
                exact: source.is_some(),
            },
        );
        true
    }

    /// Reads the table whole if it is worth it for a run that has had `hits` hits:
    /// `None` if it is too large for that (asked again at the next batch).
    pub fn load(conn: &rusqlite::Connection, hits: u64) -> Result<Option<Known>, StoreError> {
        // max(id) is one step down the table's B-tree, and bounds the row count.
        let rows: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM findings", [], |r| r.get(0))?;
        if rows > MAX_KNOWN || rows > ROWS_PER_HIT.saturating_mul(hits as i64) {
            return Ok(None);
        }
        let t = std::time::Instant::now();
        let mut known = Known {
            map: HashMap::with_capacity_and_hasher(
                (rows as usize).max(hits as usize),
                Default::default(),
            ),
            sources: Default::default(),
        };
        let mut stmt = conn.prepare(
            "SELECT account_id, kind, secret_fp, id, severity, times_seen, device_id IS NULL,
                    first_source
             FROM findings",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let text = |i| -> Result<&str, StoreError> {
                Ok(r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?)
            };
            let kind = FindingKind::parse(text(1)?);
            let fp = r.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            let key = Known::key(r.get(0)?, kind, fp);
            let once = r.get::<_, i64>(5)? == 1 && r.get::<_, bool>(6)?;
            let source = match once {
                true => Some(known.source_hash(text(7)?)),
                false => None,
            };
            let severity = Severity::parse(text(4)?);
            if !known.put(key, r.get(3)?, severity, source) {
                return Ok(None);
            }
        }
        tracing::debug!(
            findings = known.map.len(),
            ms = t.elapsed().as_millis() as u64,
            "known findings read into memory"
        );
        Ok(Some(known))
    }
}
