//! The organisation's directory: accounts and their identity hashes.

use std::cmp::Ordering;

use rusqlite::{params, OptionalExtension};

use super::keys::{KeyEntry, KeyIndex, KeyIndexError};
use super::{Store, StoreError};
use crate::config::Lang;
use crate::identity::{IdentityHash, IdentityKind};

/// An account as imported, with the hashes of its identity keys.
#[derive(Debug, Clone)]
pub struct DirectoryAccount {
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub lang: Lang,
    pub keys: Vec<(IdentityHash, IdentityKind)>,
    /// The account's last password change (unix seconds), when the directory says
    /// (`liveness`: a password changed after a leak is not forced to change again).
    pub password_changed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub lang: Lang,
}

/// The new directory's identity keys, sorted by hash, as `replace_directory_with` gives
/// them to its `derive` (their accounts' ids are not settled yet).
pub struct NewKeys<'a>(&'a [KeyEntry]);

impl NewKeys<'_> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn hashes(&self) -> impl Iterator<Item = &IdentityHash> {
        self.0.iter().map(|k| &k.0)
    }
}

pub(super) const GENERATION: &str = "directory_generation";
/// SQLite's page cache during an import (negative: KiB), and its default after.
const IMPORT_CACHE_KIB: i64 = -512 * 1024;
const DEFAULT_CACHE_KIB: i64 = -2000;

impl Store {
    /// Replaces the directory in one transaction: accounts absent from `accounts` are
    /// deactivated (their findings stay, they stop matching), ids of accounts that remain
    /// are kept so their history stays attached. Returns the new directory generation.
    ///
    /// Emails must be unique in `accounts` (the importer checks it).
    pub fn replace_directory(&mut self, accounts: &[DirectoryAccount]) -> Result<u64, StoreError> {
        Ok(self.replace_directory_with(accounts, |_, _| ())?.0)
    }

    /// `replace_directory`, running `derive` on another thread while the database is
    /// written: it gets the new directory's keys, sorted by hash, and its generation (the
    /// importer builds the Bloom filter there). Returns the generation and what `derive` made.
    pub fn replace_directory_with<T: Send>(
        &mut self,
        accounts: &[DirectoryAccount],
        derive: impl FnOnce(NewKeys<'_>, u64) -> T + Send,
    ) -> Result<(u64, T), StoreError> {
        // A directory holds tens of millions of rows, and row-by-row upserts cost 8 µs
        // each (an index probe and a statement journal per row). Instead the new directory
        // is merged, in email order, with the stored one: only rows that differ are written,
        // and new rows are appended in the B-trees' own order, with a page cache large
        // enough to hold their last pages.
        let keys: usize = accounts.iter().map(|a| a.keys.len()).sum();
        if u32::try_from(keys).is_err() || u32::try_from(accounts.len()).is_err() {
            return Err(StoreError::DirectoryTooLarge {
                accounts: accounts.len(),
                keys,
            });
        }
        let t = std::time::Instant::now();
        let fps = Fingerprinter::new();
        let order = email_order(
            accounts.len(),
            |i| &accounts[i].email,
            |i| fps.of_new(&accounts[i]),
        );
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "directory sorted by email"
        );
        self.conn
            .pragma_update(None, "cache_size", IMPORT_CACHE_KIB)?;
        // In WAL mode every page of the transaction is written twice, to the log and then
        // into the database at the checkpoint: for 10 M new accounts, 600 MB twice and 3.7 s
        // at commit. With a rollback journal only the pages that existed before are
        // journaled and new ones are written once (1.9 s). The switch needs the database to
        // itself; when another connection is open it is refused and the import goes on in
        // WAL mode, just as safely.
        let switched = matches!(super::set_journal_mode(&self.conn, "DELETE"), Ok(true));
        tracing::debug!(switched, "rollback journal for the import");
        let result = self.merge_directory(accounts, &order, &fps, derive);
        if switched && !matches!(super::set_journal_mode(&self.conn, "WAL"), Ok(true)) {
            tracing::warn!("the database stays in rollback-journal mode until it is next opened");
        }
        self.conn
            .pragma_update(None, "cache_size", DEFAULT_CACHE_KIB)?;
        result
    }

    fn merge_directory<T: Send>(
        &mut self,
        accounts: &[DirectoryAccount],
        order: &[Keyed],
        fps: &Fingerprinter,
        derive: impl FnOnce(NewKeys<'_>, u64) -> T + Send,
    ) -> Result<(u64, T), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The transaction holds the write lock, so nobody else bumps the generation.
        let generation: i64 = tx.query_row(
            "SELECT coalesce(max(value), 0) + 1 FROM meta WHERE key = ?1",
            [GENERATION],
            |r| r.get(0),
        )?;
        let generation = generation as u64;
        let t = std::time::Instant::now();
        let (mut keys, derived, written) = std::thread::scope(|scope| {
            // The keys are sorted and `derive` runs beside the merge and the writes: they
            // need only the new directory. Entries carry the account's position until
            // the merge has given it an id.
            let side = scope.spawn(move || {
                let mut keys: Vec<KeyEntry> =
                    Vec::with_capacity(accounts.len() + accounts.len() / 4);
                for (at, a) in accounts.iter().enumerate() {
                    keys.extend(a.keys.iter().map(|(h, kind)| (*h, at as i64, *kind)));
                }
                let keys = sort_by_hash(keys);
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "identity keys sorted");
                let derived = derive(NewKeys(&keys), generation);
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "derived");
                (keys, derived)
            });
            let written = plan_accounts(&tx, accounts, order, fps).and_then(|plan| {
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "merge planned");
                tracing::info!(
                    new = plan.inserts.len(),
                    changed = plan.updates.len(),
                    leaving = plan.leaving.len(),
                    "directory compared with the stored one; writing"
                );
                plan.apply(&tx)?;
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "rows written");
                let g: i64 = tx.query_row(
                    "INSERT INTO meta (key, value) VALUES (?1, 1)
                     ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
                    [GENERATION],
                    |r| r.get(0),
                )?;
                debug_assert_eq!(g as u64, generation);
                tx.commit()?;
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "committed");
                Ok(plan.ids)
            });
            let (keys, derived) = side.join().expect("the key builder panicked");
            (keys, derived, written)
        });
        let ids = written?;
        for key in &mut keys {
            key.1 = ids[key.1 as usize];
        }
        self.write_keys(generation, &keys)?;
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "identity index written"
        );
        Ok((generation, derived))
    }

    /// Writes the identity index for `generation` and reads from it from now on.
    fn write_keys(&mut self, generation: u64, keys: &[KeyEntry]) -> Result<(), StoreError> {
        self.keys = None;
        KeyIndex::write(&self.keys_path, generation, keys)?;
        self.open_keys()
    }

    /// Opens the identity index if it is there and of the directory's generation.
    pub(super) fn open_keys(&mut self) -> Result<(), StoreError> {
        let generation = self.directory_generation()?;
        self.keys = match KeyIndex::open(&self.keys_path) {
            Ok(k) if k.generation() == generation => Some(k),
            Ok(k) => {
                tracing::warn!(
                    index_generation = k.generation(),
                    directory_generation = generation,
                    "identity index is stale; it is rebuilt at the next start"
                );
                None
            }
            Err(KeyIndexError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "identity index unreadable; it is rebuilt at the next start");
                None
            }
        };
        Ok(())
    }

    /// Whether `confirm` can run: the identity index matches the directory.
    pub fn keys_fresh(&self) -> bool {
        self.keys.is_some()
    }

    /// Rebuilds the identity index from the active accounts; `keys_of(email, username)`
    /// gives an account's keys, as the importer computes them. Returns the key count.
    pub fn rebuild_keys(
        &mut self,
        keys_of: impl Fn(&str, Option<&str>) -> Vec<(IdentityHash, IdentityKind)>,
    ) -> Result<u64, StoreError> {
        let generation = self.directory_generation()?;
        let mut keys: Vec<KeyEntry> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id, email, username FROM accounts WHERE active = 1")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let email: String = r.get(1)?;
                let username: Option<String> = r.get(2)?;
                keys.extend(
                    keys_of(&email, username.as_deref())
                        .into_iter()
                        .map(|(h, kind)| (h, id, kind)),
                );
            }
        }
        let mut keys = sort_by_hash(keys);
        let before = keys.len();
        keys.dedup_by_key(|k| k.0);
        if keys.len() < before {
            tracing::warn!(
                dropped = before - keys.len(),
                "identity keys shared by two accounts; each kept for one of them"
            );
        }
        self.write_keys(generation, &keys)?;
        Ok(keys.len() as u64)
    }

    /// Bumped by every import; the Bloom filter and identity index files carry the
    /// generation they were built from.
    pub fn directory_generation(&self) -> Result<u64, StoreError> {
        Ok(self.meta_get(GENERATION)? as u64)
    }

    /// The identity index, if it matches the directory (else a lookup is an error:
    /// `key_index_path` names it).
    pub fn key_index(&self) -> Option<&KeyIndex> {
        self.keys.as_ref()
    }

    pub fn key_index_path(&self) -> &std::path::Path {
        &self.keys_path
    }

    fn fresh_keys(&self) -> Result<&KeyIndex, StoreError> {
        self.keys.as_ref().ok_or_else(|| StoreError::KeysStale {
            path: self.keys_path.clone(),
        })
    }

    pub fn identity_key_count(&self) -> Result<u64, StoreError> {
        Ok(self.fresh_keys()?.len())
    }

    pub fn active_account_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM accounts WHERE active = 1", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Calls `f` with every identity hash of the directory (to build the Bloom filter)
    /// without holding them all in memory.
    pub fn for_each_identity_hash(&self, f: impl FnMut(IdentityHash)) -> Result<(), StoreError> {
        Ok(self.fresh_keys()?.for_each_hash(f)?)
    }

    /// Every identity key with its account and kind, in hash order.
    pub fn for_each_identity_key(&self, f: impl FnMut(KeyEntry)) -> Result<(), StoreError> {
        Ok(self.fresh_keys()?.for_each(f)?)
    }

    /// The account an identity hash is a key of, from the key index alone (no query): an
    /// ingest's batch asks whether it is still active when it records
    /// ([`super::Recording::Match`]).
    pub fn account_of(&self, hash: &IdentityHash) -> Result<Option<i64>, StoreError> {
        Ok(self.fresh_keys()?.lookup(hash)?.map(|(id, _)| id))
    }

    /// Exact confirmation of a Bloom hit: the active account this hash belongs to, if any.
    pub fn confirm(&self, hash: &IdentityHash) -> Result<Option<AccountRow>, StoreError> {
        let Some((id, _)) = self.fresh_keys()?.lookup(hash)? else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, email, username, name, lang FROM accounts WHERE id = ?1 AND active = 1",
        )?;
        Ok(stmt.query_row([id], account_row).optional()?)
    }
}

/// Identity keys sorted by hash. The first 8 bytes of a digest almost always decide, and
/// comparing them as one integer is 2.6× faster than comparing 20-byte arrays.
fn sort_by_hash(keys: Vec<KeyEntry>) -> Vec<KeyEntry> {
    let head = |k: &KeyEntry| u64::from_be_bytes(k.0 .0[..8].try_into().unwrap());
    crate::sort::par_sorted(keys, |a, b| {
        head(a).cmp(&head(b)).then_with(|| a.0.cmp(&b.0))
    })
}

/// An account's place in email order: the first 16 bytes of its email (as two big-endian
/// integers, which order emails as the strings do up to a tie), its fingerprint, and its
/// position in its own list. The merge reads these in order and touches an account's
/// strings only when heads tie and fingerprints differ.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    head: (u64, u64),
    fp: Fingerprint,
    at: u32,
}

fn email_head(s: &str) -> (u64, u64) {
    let mut b = [0u8; 16];
    let n = s.len().min(16);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    (
        u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(b[8..].try_into().expect("8 bytes")),
    )
}

/// Positions `0..n` in the order of `email(i)`, keyed. Comparing heads first, almost no
/// comparison touches a string: a plain sort by email spent 0.9 s per million accounts
/// chasing pointers, and with 8 bytes most addresses still tied (`jean.dup…`).
fn email_order<'s>(
    n: usize,
    email: impl Fn(usize) -> &'s str + Sync,
    fp: impl Fn(usize) -> Fingerprint,
) -> Vec<Keyed> {
    let keyed: Vec<Keyed> = (0..n)
        .map(|i| Keyed {
            head: email_head(email(i)),
            fp: fp(i),
            at: i as u32,
        })
        .collect();
    crate::sort::par_sorted(keyed, |a, b| {
        a.head
            .cmp(&b.head)
            .then_with(|| email(a.at as usize).cmp(email(b.at as usize)))
    })
}

/// What the merge of a sorted new list with a sorted stored one found at one position.
enum Step<'a, N, O> {
    New(&'a N),
    Both(&'a N, O),
    Old(O),
}

/// Walks `new` beside `old` (sorted the same way; `cmp` orders a new item against a
/// stored one), calling `f` for each position in order.
fn merge_sorted<'a, N, O>(
    new: &'a [N],
    old: impl IntoIterator<Item = O>,
    cmp: impl Fn(&N, &O) -> Ordering,
    mut f: impl FnMut(Step<'a, N, O>),
) {
    let mut new = new.iter().peekable();
    for o in old {
        while let Some(n) = new.next_if(|n| cmp(n, &o) == Ordering::Less) {
            f(Step::New(n));
        }
        match new.next_if(|n| cmp(n, &o) == Ordering::Equal) {
            Some(n) => f(Step::Both(n, o)),
            None => f(Step::Old(o)),
        }
    }
    new.for_each(|n| f(Step::New(n)));
}

/// A stored account as the merge needs it; its email is only read on a tie.
struct Stored {
    id: i64,
    active: bool,
    email: String,
}

/// A seeded 128-bit hash of everything stored of an account (`active` included): equal
/// fingerprints mean an unchanged account. It spares the merge the strings of both sides,
/// which in email order cost several cache misses per account (8 s of a 10 M re-import).
///
/// Two multiply-rotate lanes over 8-byte words, each field closed by its length, seeds
/// drawn for each import. It is not cryptographic: the directory is the organisation's
/// own data, and the worst a collision could do is leave one account's name or language
/// unchanged until the next import (its identity keys come from the new row regardless).
/// SipHash, twice for 128 bits, took 2.4 s for 10 M accounts.
type Fingerprint = (u64, u64);

struct Fingerprinter([u64; 2]);

impl Fingerprinter {
    fn new() -> Fingerprinter {
        Fingerprinter([rand::random(), rand::random()])
    }

    fn of(&self, fields: [Option<&str>; 5], active: bool) -> Fingerprint {
        let mut h = self.0;
        let mut mix = |w: u64| {
            h[0] = (h[0] ^ w)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(27);
            h[1] = (h[1] ^ w)
                .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
                .rotate_left(31);
        };
        for field in fields {
            let Some(text) = field else {
                mix(u64::MAX);
                continue;
            };
            let mut words = text.as_bytes().chunks_exact(8);
            for word in &mut words {
                mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            }
            let mut last = [0u8; 8];
            last[..words.remainder().len()].copy_from_slice(words.remainder());
            mix(u64::from_le_bytes(last));
            mix(text.len() as u64);
        }
        mix(active as u64);
        (fmix(h[0]), fmix(h[1]))
    }

    fn of_new(&self, a: &DirectoryAccount) -> Fingerprint {
        let changed = a.password_changed_at.map(|t| t.to_string());
        let fields = [
            Some(a.email.as_str()),
            a.username.as_deref(),
            a.name.as_deref(),
            Some(a.lang.code()),
            changed.as_deref(),
        ];
        self.of(fields, true)
    }
}

/// MurmurHash3's finaliser: every input bit reaches every output bit.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The writes that make `accounts` the stored directory, and each account's id.
struct Plan<'a> {
    /// In the order of the accounts given.
    ids: Vec<i64>,
    /// New accounts, in the order given, with their ids (consecutive).
    inserts: Vec<(&'a DirectoryAccount, i64)>,
    updates: Vec<(&'a DirectoryAccount, i64)>,
    leaving: Vec<i64>,
}

/// Compares `accounts` with the stored ones, walking both in email order (`order` gives
/// the positions of `accounts` in that order): new accounts get the next ids, changed ones
/// are updated, and those that left are deactivated.
///
/// New accounts are numbered in the order given, not in email order, so the inserts read
/// `accounts` front to back: in email order each row was a cache miss, and writing 10 M
/// new rows took 23 s instead of (measured after the change) a third of that.
fn plan_accounts<'a>(
    tx: &rusqlite::Transaction<'_>,
    accounts: &'a [DirectoryAccount],
    order: &[Keyed],
    fps: &Fingerprinter,
) -> Result<Plan<'a>, StoreError> {
    let next_id: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM accounts", [], |r| {
        r.get(0)
    })?;
    // 0 until known: stored ids are positive.
    let mut ids = vec![0i64; accounts.len()];
    let mut fresh: Vec<u32> = Vec::new();
    let mut updates = Vec::new();
    let mut leaving = Vec::new();
    // The stored directory is read in rowid order and sorted here: `ORDER BY email`
    // without an index on it made SQLite sort 10 M rows, 37 s of a re-import; read in
    // storage order and sorted as the new directory is, it takes seconds. An email index
    // would cost every insert instead, and nothing else looks accounts up by email.
    let mut stored: Vec<Stored> = Vec::new();
    let mut stored_fps: Vec<Fingerprint> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT id, email, username, name, lang, active, password_changed_at FROM accounts",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            // Borrowed from SQLite's row: only the email is copied out.
            let text = |i: usize| {
                r.get_ref(i)?.as_str_or_null().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })
            };
            let email = text(1)?.unwrap_or_default();
            let active = r.get(5)?;
            let changed = r.get::<_, Option<i64>>(6)?.map(|t| t.to_string());
            stored_fps.push(fps.of(
                [
                    Some(email),
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    changed.as_deref(),
                ],
                active,
            ));
            stored.push(Stored {
                id: r.get(0)?,
                active,
                email: email.to_string(),
            });
        }
    }
    let stored_order = email_order(stored.len(), |i| &stored[i].email, |i| stored_fps[i]);
    drop(stored_fps);
    merge_sorted(
        order,
        stored_order,
        |n, o| {
            n.head.cmp(&o.head).then_with(|| {
                if n.fp == o.fp {
                    Ordering::Equal
                } else {
                    accounts[n.at as usize]
                        .email
                        .cmp(&stored[o.at as usize].email)
                }
            })
        },
        |step| match step {
            Step::New(n) => fresh.push(n.at),
            Step::Both(n, o) => {
                let id = stored[o.at as usize].id;
                ids[n.at as usize] = id;
                if n.fp != o.fp {
                    updates.push((&accounts[n.at as usize], id));
                }
            }
            Step::Old(o) => {
                let o = &stored[o.at as usize];
                if o.active {
                    leaving.push(o.id);
                }
            }
        },
    );
    fresh.sort_unstable();
    let inserts = fresh
        .iter()
        .zip(next_id..)
        .map(|(&i, id)| {
            ids[i as usize] = id;
            (&accounts[i as usize], id)
        })
        .collect();
    Ok(Plan {
        ids,
        inserts,
        updates,
        leaving,
    })
}

impl Plan<'_> {
    fn apply(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        // Many rows per statement: a statement's run has a fixed cost (reset, VDBE
        // start, cursor seek) that one-row inserts paid 10 M times.
        let insert_sql = |rows: usize| {
            let mut sql = String::from(
                "INSERT INTO accounts (id, email, username, name, lang, password_changed_at, active) VALUES ",
            );
            for i in 0..rows {
                sql.push_str(if i == 0 {
                    "(?,?,?,?,?,?,1)"
                } else {
                    ",(?,?,?,?,?,?,1)"
                });
            }
            sql
        };
        let mut many = tx.prepare(&insert_sql(ROWS_PER_INSERT))?;
        let mut chunks = self.inserts.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            bind_inserts(&mut many, chunk)?;
            many.raw_execute()?;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = tx.prepare(&insert_sql(rest.len()))?;
            bind_inserts(&mut last, rest)?;
            last.raw_execute()?;
        }
        let mut update = tx.prepare(
            "UPDATE accounts SET username = ?2, name = ?3, lang = ?4, password_changed_at = ?5,
                active = 1 WHERE id = ?1",
        )?;
        for (a, id) in &self.updates {
            update.execute(params![
                id,
                a.username,
                a.name,
                a.lang.code(),
                a.password_changed_at
            ])?;
        }
        let mut deactivate = tx.prepare("UPDATE accounts SET active = 0 WHERE id = ?1")?;
        for id in &self.leaving {
            deactivate.execute([id])?;
        }
        Ok(())
    }
}

/// Rows per multi-row `INSERT` (6 parameters each; SQLite allows 32 766).
const ROWS_PER_INSERT: usize = 64;

fn bind_inserts(
    stmt: &mut rusqlite::Statement<'_>,
    rows: &[(&DirectoryAccount, i64)],
) -> Result<(), StoreError> {
    for (i, (a, id)) in rows.iter().enumerate() {
        let at = i * 6;
        stmt.raw_bind_parameter(at + 1, id)?;
        stmt.raw_bind_parameter(at + 2, &a.email)?;
        stmt.raw_bind_parameter(at + 3, &a.username)?;
        stmt.raw_bind_parameter(at + 4, &a.name)?;
        stmt.raw_bind_parameter(at + 5, a.lang.code())?;
        stmt.raw_bind_parameter(at + 6, a.password_changed_at)?;
    }
    Ok(())
}

impl super::Store {
    /// The accounts' last password changes as the directory reports them (unix seconds),
    /// in one transaction.
    pub fn set_password_changes(&mut self, changes: &[(i64, i64)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut set =
                tx.prepare("UPDATE accounts SET password_changed_at = ?2 WHERE id = ?1")?;
            for (id, at) in changes {
                set.execute(params![id, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

pub(crate) fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    let lang: String = r.get(4)?;
    Ok(AccountRow {
        id: r.get(0)?,
        email: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        lang: Lang::parse(&lang).unwrap_or(Lang::Fr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(email: &str, username: Option<&str>) -> DirectoryAccount {
        let mut keys = vec![(IdentityHash::of(email), IdentityKind::Email)];
        if let Some(u) = username {
            keys.push((IdentityHash::of(&format!("login:{u}")), IdentityKind::Login));
        }
        DirectoryAccount {
            email: email.into(),
            username: username.map(str::to_string),
            name: None,
            lang: Lang::En,
            keys,
            password_changed_at: None,
        }
    }

    fn journal_mode(s: &Store) -> String {
        s.conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn import_returns_to_wal_and_goes_on_beside_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.replace_directory(&[acct("a@x.example", None)]).unwrap();
        assert_eq!(journal_mode(&s), "wal");
        // A reader (`leakwatch status`) has the database open: the import cannot leave WAL
        // mode, and must still land.
        let other = Store::open(dir.path()).unwrap();
        assert_eq!(other.active_account_count().unwrap(), 1);
        s.replace_directory(&[acct("a@x.example", None), acct("b@x.example", None)])
            .unwrap();
        assert_eq!(journal_mode(&s), "wal");
        assert_eq!(other.active_account_count().unwrap(), 2);
        drop(other);
        // A crash in the middle of a rollback-journal import leaves a hot journal, which
        // the next open rolls back; here the import completed, and it is all there.
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(journal_mode(&s), "wal");
        assert_eq!(s.active_account_count().unwrap(), 2);
    }

    /// A run that starts while an import holds the write lock in rollback-journal mode
    /// opens the database (it cannot switch it back to WAL) and reads it.
    #[test]
    fn the_database_opens_during_an_import_in_rollback_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.replace_directory(&[acct("a@x.example", None)]).unwrap();
        assert!(super::super::set_journal_mode(&s.conn, "DELETE").unwrap());
        s.conn
            .execute_batch("BEGIN IMMEDIATE; UPDATE accounts SET name = 'x';")
            .unwrap();
        let t = std::time::Instant::now();
        let other = Store::open(dir.path()).unwrap();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "open waited"
        );
        assert_eq!(journal_mode(&other), "delete");
        assert_eq!(other.active_account_count().unwrap(), 1);
        drop(other);
        s.conn.execute_batch("COMMIT").unwrap();
        drop(s);
        assert_eq!(journal_mode(&Store::open(dir.path()).unwrap()), "wal");
    }

    #[test]
    fn many_rows_land_through_multi_row_inserts_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let n = ROWS_PER_INSERT * 2 + 3;
        // Given out of email order: ids follow the order given.
        let accounts: Vec<DirectoryAccount> = (0..n)
            .rev()
            .map(|i| {
                let mut a = acct(&format!("u{i:04}@x.example"), Some(&format!("l{i}")));
                a.name = Some(format!("User {i}"));
                a
            })
            .collect();
        s.replace_directory(&accounts).unwrap();
        assert_eq!(s.active_account_count().unwrap(), n as u64);
        let mut last_id = 0;
        for a in &accounts {
            let row = s.confirm(&a.keys[1].0).unwrap().unwrap();
            assert_eq!(
                (&row.email, &row.username, &row.name),
                (&a.email, &a.username, &a.name)
            );
            assert!(row.id > last_id, "{} came after id {last_id}", a.email);
            last_id = row.id;
        }
    }

    #[test]
    fn fingerprints_tell_fields_apart_and_repeat() {
        let fps = Fingerprinter::new();
        let base = fps.of(
            [Some("a@x.example"), Some("ab"), None, Some("fr"), None],
            true,
        );
        assert_eq!(
            base,
            fps.of(
                [Some("a@x.example"), Some("ab"), None, Some("fr"), None],
                true
            )
        );
        for other in [
            fps.of(
                [Some("a@x.example"), Some("a"), Some("b"), Some("fr"), None],
                true,
            ),
            fps.of(
                [Some("a@x.example"), None, Some("ab"), Some("fr"), None],
                true,
            ),
            fps.of(
                [Some("a@x.example"), Some("ab"), Some(""), Some("fr"), None],
                true,
            ),
            fps.of(
                [Some("a@x.example"), Some("ab"), None, Some("en"), None],
                true,
            ),
            fps.of(
                [Some("a@x.example"), Some("ab"), None, Some("fr"), None],
                false,
            ),
            fps.of(
                [Some("a@x.exampl"), Some("eab"), None, Some("fr"), None],
                true,
            ),
        ] {
            assert_ne!(base, other);
        }
        // Seeds differ between imports.
        let again = Fingerprinter::new();
        assert_ne!(
            base,
            again.of(
                [Some("a@x.example"), Some("ab"), None, Some("fr"), None],
                true
            )
        );
    }

    /// Emails whose first 16 bytes agree: the merge settles them by the strings.
    #[test]
    fn reimport_tells_apart_emails_with_a_common_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let email = |i: usize| format!("same.first.sixteen.{i}@x.example");
        let first: Vec<DirectoryAccount> = (0..40).map(|i| acct(&email(i), None)).collect();
        s.replace_directory(&first).unwrap();
        let id_of = |s: &Store, i: usize| {
            s.confirm(&IdentityHash::of(&email(i)))
                .unwrap()
                .map(|r| (r.id, r.name))
        };
        let before: Vec<_> = (0..40).map(|i| id_of(&s, i).unwrap().0).collect();
        // Even rows stay, odd rows get a name, rows 40.. are new, and 0..40 step 5 leave.
        let second: Vec<DirectoryAccount> = (0..50)
            .filter(|i| i % 5 != 0 || *i >= 40)
            .map(|i| {
                let mut a = acct(&email(i), None);
                a.name = (i % 2 == 1).then(|| format!("N{i}"));
                a
            })
            .collect();
        s.replace_directory(&second).unwrap();
        for i in 0..50 {
            let now = id_of(&s, i);
            if i < 40 && i % 5 == 0 {
                assert_eq!(now, None, "row {i} left");
            } else if i < 40 {
                let want_name = (i % 2 == 1).then(|| format!("N{i}"));
                assert_eq!(now, Some((before[i], want_name)), "row {i}");
            } else {
                assert!(
                    now.unwrap().0 > *before.iter().max().unwrap(),
                    "row {i} is new"
                );
            }
        }
    }

    #[test]
    fn reimport_replaces_and_keeps_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.directory_generation().unwrap(), 0);
        let g1 = s
            .replace_directory(&[acct("a@x.example", Some("a")), acct("b@x.example", None)])
            .unwrap();
        assert_eq!(g1, 1);
        assert_eq!(s.identity_key_count().unwrap(), 3);
        let a = s
            .confirm(&IdentityHash::of("a@x.example"))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.confirm(&IdentityHash::of("login:a")).unwrap().unwrap().id,
            a.id
        );
        let g2 = s.replace_directory(&[acct("a@x.example", None)]).unwrap();
        assert_eq!(g2, 2);
        assert_eq!(
            s.confirm(&IdentityHash::of("a@x.example"))
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
        assert!(s.confirm(&IdentityHash::of("login:a")).unwrap().is_none());
        assert!(s
            .confirm(&IdentityHash::of("b@x.example"))
            .unwrap()
            .is_none());
        assert_eq!(s.active_account_count().unwrap(), 1);
        let mut n = 0;
        s.for_each_identity_hash(|_| n += 1).unwrap();
        assert_eq!(n, 1);
        // b comes back with its old id; a's fields change in place; c is new, after both.
        let mut a2 = acct("a@x.example", Some("a2"));
        a2.lang = Lang::Fr;
        a2.name = Some("A Two".into());
        let b = s.account_by_email("b@x.example").unwrap().unwrap();
        s.replace_directory(&[acct("c@x.example", None), a2, acct("b@x.example", None)])
            .unwrap();
        let a_now = s.confirm(&IdentityHash::of("login:a2")).unwrap().unwrap();
        assert_eq!(
            (
                a_now.id,
                a_now.username.as_deref(),
                a_now.name.as_deref(),
                a_now.lang
            ),
            (a.id, Some("a2"), Some("A Two"), Lang::Fr)
        );
        assert_eq!(
            s.confirm(&IdentityHash::of("b@x.example"))
                .unwrap()
                .unwrap()
                .id,
            b.id
        );
        let c = s
            .confirm(&IdentityHash::of("c@x.example"))
            .unwrap()
            .unwrap();
        assert!(c.id > a.id.max(b.id));
        assert_eq!(s.active_account_count().unwrap(), 3);
    }
}
