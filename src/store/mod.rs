//! State: one SQLite database in the state directory.
//!
//! Fifth stage of the pipeline. It holds the organisation's directory and identity hashes
//! (for exact confirmation of Bloom hits), the findings (deduplicated across files, feeds
//! and runs), and the mail queue. SQLite was chosen because it is embedded (nothing to run
//! beside the daemon), transactional (a finding and the mail it causes commit together or
//! not at all) and survives `kill -9`: in WAL mode a committed transaction is on disk
//! before the call returns, whatever happens to the process next.
//!
//! Nothing from a third-party dump is stored in plain text: findings keep account ids
//! (the organisation's own directory), identity hashes, password fingerprints, masked hints
//! and the host of the site a credential was typed into.

mod actions;
mod counters;
mod devices;
mod directory;
mod erase;
mod feeds;
mod findings;
mod keys;
mod known;
mod optout;
mod outbox;
mod siem;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use actions::{ActionOutcome, ActionRow, ActionStatus, NewAction};
pub use devices::{DeviceRecord, DeviceView};
pub use directory::{AccountRow, DirectoryAccount, NewKeys};
pub use erase::{Cutoffs, Deleted, Forgotten};
pub use feeds::{DaemonRow, FeedRunRow, FeedRunStats, RunOutcome, SeenFile};
pub use findings::{
    FindingKind, FindingView, Recorded, Recording, Severity, Sighting, SightingOutcome,
    UnknownSighting, UnknownView,
};
pub use keys::{KeyEntry, KeyIndex, KeyIndexError};
pub use known::Reread;
pub use outbox::{Attempt, MailCounts, MailKind, NewMail, NotificationBatch, QueuedMail};
pub use siem::SiemRow;

const DB_FILE: &str = "leakwatch.db";
const SCHEMA_VERSION: i64 = 13;
const KEYS_FILE: &str = "identity-keys.idx";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Said with what to do: nothing is changed, the admin chooses.
    #[error("database {path} is damaged ({what}); nothing was changed. Restore it from a backup (with install.key beside it), or move the state directory aside and import the directory again: findings and the mail history are in it, and credentials already reported would be reported again")]
    Damaged { path: PathBuf, what: String },
    #[error("database {path} has schema version {found}, this leakwatch knows {SCHEMA_VERSION}")]
    Version { path: PathBuf, found: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// More findings than the map of known findings holds (its batch is recorded again
    /// without it; never reported).
    #[error("more findings than the map of known findings holds")]
    KnownOverflow,
    #[error(transparent)]
    Keys(#[from] KeyIndexError),
    /// Checked before anything is written: the identity index counts in 32 bits.
    #[error("directory of {accounts} accounts with {keys} identity keys: the identity index holds at most 2^32 - 1")]
    DirectoryTooLarge { accounts: usize, keys: usize },
    /// `confirm` before the identity index was brought up to date (`accounts::load_filter`
    /// does it at every start).
    #[error("identity index {path} is missing or older than the directory")]
    KeysStale { path: PathBuf },
}

/// Sets SQLite's journal mode without waiting: false when another connection's lock
/// refused it (it then stays as it was).
fn set_journal_mode(conn: &Connection, mode: &str) -> rusqlite::Result<bool> {
    conn.busy_timeout(std::time::Duration::ZERO)?;
    let now = conn.pragma_update_and_check(None, "journal_mode", mode, |r| r.get::<_, String>(0));
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match now {
        Ok(now) => Ok(now.eq_ignore_ascii_case(mode)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The directory's identity keys (see `keys`), when the file matches the directory.
    keys: Option<KeyIndex>,
    keys_path: PathBuf,
    /// The findings in memory while a heavy run records (see `known`), with the hits
    /// batched since the last `forget_known`.
    known: Option<known::Known>,
    batched: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Creates the state directory (mode 0700: it holds the installation key and the
/// organisation's directory) if it does not exist.
pub fn ensure_state_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(err)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the state directory is open to other users (its files are created 0600 all the same); chmod 700 it");
            }
        }
    }
    Ok(())
}

/// An exclusive lock on the state directory, held by every command that writes
/// (import, ingest, mail flush) for as long as it runs. Two runs at once (an admin's
/// ingest while cron's is still going) would otherwise both compose, or both deliver,
/// the same pending mail. The lock is the kernel's (`flock`), so a killed process
/// releases it with no stale lock file to clean up.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock, waiting (and saying so) while another run holds it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StoreError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join("leakwatch.lock");
        let err = |source| StoreError::Dir {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(lock = %path.display(), "another leakwatch run holds the state directory; waiting for it");
                file.lock().map_err(err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        Ok(StateLock { _file: file })
    }
}

/// A corrupt or foreign file, as SQLite reports it on first read, said as such.
fn damaged(path: &Path, e: StoreError) -> StoreError {
    let code = match &e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
        | StoreError::Open {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => Some(f.code),
        _ => None,
    };
    match code {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Damaged {
                path: path.to_path_buf(),
                what: match code {
                    Some(rusqlite::ErrorCode::NotADatabase) => "not a database file".into(),
                    _ => "its pages do not hold together: truncated or overwritten".into(),
                },
            }
        }
        _ => e,
    }
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let open_err = |source| {
            damaged(
                &path,
                StoreError::Open {
                    path: path.clone(),
                    source,
                },
            )
        };
        // SQLite takes an empty file for a new database. Beside files that only an
        // imported directory leaves, an empty one was lost (truncated, a restore gone
        // wrong): starting afresh would forget every finding in silence.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let others: Vec<&str> = [KEYS_FILE, "install.key"]
                .into_iter()
                .filter(|f| state_dir.join(f).exists())
                .collect();
            if !others.is_empty() {
                return Err(StoreError::Damaged {
                    path,
                    what: format!("empty, beside {}", others.join(" and ")),
                });
            }
        }
        let conn = Connection::open(&path).map_err(open_err)?;
        // WAL + NORMAL: a commit survives a crash of the process (not necessarily of the
        // machine's power); busy_timeout lets `status` read while an ingest writes.
        // An import writes through a rollback journal (see `directory`): a run that opens
        // the database meanwhile cannot switch it back, and goes on in rollback mode (as
        // safe; readers and the writer wait on each other) rather than failing.
        if !set_journal_mode(&conn, "WAL").map_err(open_err)? {
            tracing::info!(
                db = %path.display(),
                "database busy (an import?): opened in rollback-journal mode"
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // 32 MiB of pages kept (SQLite's default is 2 MiB): a leak of the whole user base
        // touches every finding, and each page missed was a read from the kernel.
        conn.pragma_update(None, "cache_size", -32768)
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mut store = Store {
            conn,
            path,
            keys: None,
            keys_path: state_dir.join(KEYS_FILE),
            known: None,
            batched: 0,
        };
        // The first reads of the file: a damaged one is told apart from other failures.
        store.migrate().map_err(|e| damaged(&store.path, e))?;
        store.open_keys()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        // Each step and its version number commit together, so a crash mid-migration
        // leaves the previous version intact; the steps run from the one after `version`.
        let steps: [&str; 6] = [SCHEMA, SCHEMA_2, SCHEMA_3, SCHEMA_4, SCHEMA_5, SCHEMA_6];
        // The steps after version 7 (which is a table rebuild of its own), in order.
        let later: [&str; 6] = [
            SCHEMA_8, SCHEMA_9, SCHEMA_10, SCHEMA_11, SCHEMA_12, SCHEMA_13,
        ];
        let run_later = |from: i64| -> Result<(), StoreError> {
            for step in &later[(from - 7) as usize..] {
                self.conn.execute_batch(step)?;
            }
            Ok(())
        };
        match version {
            0..=6 => {
                for step in &steps[version as usize..] {
                    self.conn.execute_batch(step)?;
                }
                self.migrate_7()?;
                run_later(7)
            }
            7..SCHEMA_VERSION => run_later(version),
            SCHEMA_VERSION => Ok(()),
            found => Err(StoreError::Version {
                path: self.path.clone(),
                found,
            }),
        }
    }

    /// Version 7: findings deduplicated by (account, 64 bits of the fingerprint) instead
    /// of (account, kind, 32-byte fingerprint). The old unique index took 54 bytes a
    /// finding and every batch of a leak of the whole user base rewrote most of its pages
    /// (a million new findings wrote 2.4 GB); this one takes about 19. SQLite cannot drop
    /// a table's own UNIQUE constraint, so the table is rebuilt (SQLite's documented
    /// twelve steps: foreign keys off, copy, drop, rename, check, on).
    fn migrate_7(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let done = (|| -> Result<(), StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(SCHEMA_7_TABLE)?;
            {
                let mut read = tx.prepare("SELECT id, kind, secret_fp FROM findings")?;
                let mut write = tx.prepare(&format!(
                    "INSERT INTO findings_v7 ({FINDING_COLUMNS_6}, dedup)
                     SELECT {FINDING_COLUMNS_6}, ?2 FROM findings WHERE id = ?1"
                ))?;
                let mut rows = read.query([])?;
                while let Some(r) = rows.next()? {
                    let kind = FindingKind::parse(&r.get::<_, String>(1)?);
                    let fp: Vec<u8> = r.get(2)?;
                    write.execute(rusqlite::params![
                        r.get::<_, i64>(0)?,
                        known::dedup(kind, &fp)
                    ])?;
                }
            }
            tx.execute_batch(SCHEMA_7_SWAP)?;
            let broken: i64 =
                tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })?;
            if broken != 0 {
                return Err(StoreError::Damaged {
                    path: self.path.clone(),
                    what: format!("{broken} rows point at rows that are not there"),
                });
            }
            tx.commit()?;
            Ok(())
        })();
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        done
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta_get(&self, key: &str) -> Result<i64, StoreError> {
        Ok(self.meta_value(key)?.unwrap_or(0))
    }

    /// A value of `meta`, if set (the ceiling's last alert, the last purge, the last
    /// Keycloak read).
    pub fn meta_value(&self, key: &str) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta_value(&self, key: &str, value: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            rusqlite::params![key, value],
        )?;
        Ok(())
    }
}

const SCHEMA: &str = r#"
BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);

-- The organisation's directory (its own data, not a dump's).
CREATE TABLE accounts (
    id        INTEGER PRIMARY KEY,
    email     TEXT NOT NULL,
    username  TEXT,
    name      TEXT,
    lang      TEXT NOT NULL,
    active    INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE identity_keys (
    hash       BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    kind       TEXT NOT NULL
) WITHOUT ROWID;

-- One row per (account, kind, password fingerprint): the unit of deduplication.
CREATE TABLE findings (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL,
    secret_fp     BLOB NOT NULL,
    password_hint TEXT,
    identity_hash BLOB NOT NULL,
    site          TEXT,
    format        TEXT NOT NULL,
    first_source  TEXT NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    times_seen    INTEGER NOT NULL,
    user_notified INTEGER NOT NULL DEFAULT 0,
    digest_id     INTEGER REFERENCES digests(id),
    UNIQUE (account_id, kind, secret_fp)
);
CREATE INDEX findings_user_pending ON findings(user_notified) WHERE user_notified = 0;
CREATE INDEX findings_digest_pending ON findings(digest_id) WHERE digest_id IS NULL;

-- Where a finding was seen; bounded per finding (see findings.rs).
CREATE TABLE sightings (
    finding_id INTEGER NOT NULL REFERENCES findings(id),
    source     TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (finding_id, source)
) WITHOUT ROWID;

-- Identities on the organisation's domains that match no account: hash and mask only.
CREATE TABLE unknown_identities (
    hash         BLOB PRIMARY KEY,
    masked       TEXT NOT NULL,
    first_source TEXT NOT NULL,
    format       TEXT NOT NULL,
    has_password INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    times_seen   INTEGER NOT NULL,
    digest_id    INTEGER REFERENCES digests(id)
) WITHOUT ROWID;

CREATE TABLE digests (id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL);

-- Rendered messages waiting for delivery; rows are kept after sending as the mail log.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    message         BLOB NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
PRAGMA user_version = 1;
COMMIT;
"#;

/// Version 2: the daemon's feeds.
const SCHEMA_2: &str = r#"
BEGIN;
-- One row per feed run, written at its start and completed at its end; a row left
-- `running` by a crash is marked `interrupted` when the daemon starts.
CREATE TABLE feed_runs (
    id           INTEGER PRIMARY KEY,
    feed         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT NOT NULL,
    bytes        INTEGER NOT NULL DEFAULT 0,
    lines        INTEGER NOT NULL DEFAULT 0,
    identities   INTEGER NOT NULL DEFAULT 0,
    matches      INTEGER NOT NULL DEFAULT 0,
    new_findings INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,
    message      TEXT
);
CREATE INDEX feed_runs_by_feed ON feed_runs(feed, id);

-- Small per-feed state: HTTP validators, range cursor. Keys never hold a URL's secrets.
CREATE TABLE feed_state (
    feed  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (feed, key)
) WITHOUT ROWID;

-- Files a directory feed has ingested, so each is read once.
CREATE TABLE feed_files (
    feed    TEXT NOT NULL,
    path    TEXT NOT NULL,
    size    INTEGER NOT NULL,
    mtime   INTEGER NOT NULL,
    sha256  BLOB NOT NULL,
    done_at INTEGER NOT NULL,
    PRIMARY KEY (feed, path)
) WITHOUT ROWID;
CREATE INDEX feed_files_by_hash ON feed_files(feed, sha256);

-- The running daemon, for `leakwatch status`.
CREATE TABLE daemon (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat  INTEGER NOT NULL,
    status     TEXT NOT NULL,
    stopped_at INTEGER
);
PRAGMA user_version = 2;
COMMIT;
"#;

const SCHEMA_3: &str = r#"
BEGIN;
-- Infected machines that stealer-log findings came from. Identifiers from the dump are
-- stored only as keyed hashes (the folder's name, the machine's HWID or name).
CREATE TABLE devices (
    id           INTEGER PRIMARY KEY,
    folder_key   BLOB NOT NULL UNIQUE,
    machine_hash BLOB,
    family       TEXT,
    build        TEXT,
    log_date     TEXT,
    country      TEXT,
    first_seen   INTEGER NOT NULL
);
CREATE INDEX devices_by_machine ON devices(machine_hash);
ALTER TABLE findings ADD COLUMN severity TEXT NOT NULL DEFAULT 'high';
ALTER TABLE findings ADD COLUMN device_id INTEGER REFERENCES devices(id);
UPDATE findings SET severity = 'medium' WHERE kind = 'identity';
PRAGMA user_version = 3;
COMMIT;
"#;

const SCHEMA_4: &str = r#"
BEGIN;
-- Identity keys moved to a file derived from `accounts` (see store/keys.rs); it is built
-- at the next start.
DROP TABLE identity_keys;
PRAGMA user_version = 4;
COMMIT;
"#;

/// Version 5: each feed run says where every entry it read ended.
const SCHEMA_5: &str = r#"
BEGIN;
ALTER TABLE feed_runs ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feed_runs ADD COLUMN with_identity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feed_runs ADD COLUMN malformed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feed_runs ADD COLUMN no_identity INTEGER NOT NULL DEFAULT 0;
-- A `password_hash` finding names the hash's algorithm (never the hash).
ALTER TABLE findings ADD COLUMN hash_algo TEXT;
-- A folder whose machine (by its hash) was already known under another folder points at
-- that device.
ALTER TABLE devices ADD COLUMN same_as INTEGER REFERENCES devices(id);
PRAGMA user_version = 5;
COMMIT;
"#;

/// Version 6: the queue read in id order among pending messages. By `(status,
/// next_attempt_at)` alone, each group of a million-message queue scanned and sorted every
/// pending row: 219 messages a second instead of thousands.
const SCHEMA_6: &str = r#"
BEGIN;
CREATE INDEX IF NOT EXISTS outbox_pending_by_id ON outbox(status, id);
PRAGMA user_version = 6;
COMMIT;
"#;

/// The findings' columns as of version 6, in their order.
const FINDING_COLUMNS_6: &str = "id, account_id, kind, secret_fp, password_hint, identity_hash,
    site, format, first_source, first_seen, last_seen, times_seen, user_notified, digest_id,
    severity, device_id, hash_algo";

const SCHEMA_7_TABLE: &str = r#"
CREATE TABLE findings_v7 (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    kind          TEXT NOT NULL,
    secret_fp     BLOB NOT NULL,
    password_hint TEXT,
    identity_hash BLOB NOT NULL,
    site          TEXT,
    format        TEXT NOT NULL,
    first_source  TEXT NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    times_seen    INTEGER NOT NULL,
    user_notified INTEGER NOT NULL DEFAULT 0,
    digest_id     INTEGER REFERENCES digests(id),
    severity      TEXT NOT NULL DEFAULT 'high',
    device_id     INTEGER REFERENCES devices(id),
    hash_algo     TEXT,
    -- The kind and the first 8 bytes of the fingerprint (store/known.rs `dedup`).
    dedup         INTEGER NOT NULL
);
"#;

const SCHEMA_7_SWAP: &str = r#"
DROP TABLE findings;
ALTER TABLE findings_v7 RENAME TO findings;
CREATE UNIQUE INDEX findings_dedup ON findings(account_id, dedup);
CREATE INDEX findings_user_pending ON findings(user_notified) WHERE user_notified = 0;
CREATE INDEX findings_digest_pending ON findings(digest_id) WHERE digest_id IS NULL;
PRAGMA user_version = 7;
"#;

/// Version 8: a finding deleted, or changed in what the map of known findings records of
/// it, deletes the token its saved file is valid under (`known::file`), whoever writes.
/// A later step that rebuilds `findings` must delete the token itself.
const SCHEMA_8: &str = r#"
BEGIN;
CREATE TRIGGER findings_known_changed
AFTER UPDATE OF id, account_id, kind, secret_fp, dedup, first_source, times_seen, severity,
    device_id ON findings
BEGIN
    DELETE FROM meta WHERE key = 'known_token';
END;
CREATE TRIGGER findings_known_deleted AFTER DELETE ON findings
BEGIN
    DELETE FROM meta WHERE key = 'known_token';
END;
PRAGMA user_version = 8;
COMMIT;
"#;

/// Version 9: whether a leaked credential is still live (`liveness`): the account's last
/// password change from the directory, and the finding's latest NT hash verdict (1 the
/// account's password, 0 not, NULL never checked). Only the verdict, never a hash.
const SCHEMA_9: &str = r#"
BEGIN;
ALTER TABLE accounts ADD COLUMN password_changed_at INTEGER;
ALTER TABLE findings ADD COLUMN password_current INTEGER;
PRAGMA user_version = 9;
COMMIT;
"#;

/// Version 10: remediation (`act`). One row per action a finding called for, planned in
/// one transaction with its siblings (so a crash plans nothing twice: the unique key), and
/// moved through its states by `act` and the admins (`actions approve|reject`). `reported`
/// goes back to 0 at each change of state, so the next digest tells it.
const SCHEMA_10: &str = r#"
BEGIN;
CREATE TABLE actions (
    id              INTEGER PRIMARY KEY,
    finding_id      INTEGER NOT NULL REFERENCES findings(id),
    account_id      INTEGER NOT NULL,
    severity        TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    step            INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    result          TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    done_at         INTEGER,
    approved_by     TEXT,
    approved_at     INTEGER,
    reported        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (finding_id, severity, action, target)
);
CREATE INDEX actions_open ON actions(status, next_attempt_at);
CREATE INDEX actions_started ON actions(started_at) WHERE started_at IS NOT NULL;
CREATE INDEX actions_unreported ON actions(reported) WHERE reported = 0;
PRAGMA user_version = 10;
COMMIT;
"#;

/// Version 11: counters that only grow, for the metrics (`metrics`): what every run read
/// and found, whichever way it ran (`ingest`, a feed), and mail deferrals.
const SCHEMA_11: &str = r#"
BEGIN;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 11;
COMMIT;
"#;

/// Version 12: findings owed to the SIEM (`siem`), one row per finding and target, queued
/// in the transaction that puts the finding in a digest (so each new or raised finding is
/// exported once), delivered from here with retries as mail is.
const SCHEMA_12: &str = r#"
BEGIN;
CREATE TABLE siem_queue (
    id              INTEGER PRIMARY KEY,
    finding_id      INTEGER NOT NULL,
    target          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX siem_pending ON siem_queue(status, id);
PRAGMA user_version = 12;
COMMIT;
"#;

/// Version 13: people who asked not to be mailed (`leakwatch optout`), by address in
/// lower case. Kept through `forget`: the request not to be mailed outlives the rest.
const SCHEMA_13: &str = r#"
BEGIN;
CREATE TABLE optout (email TEXT PRIMARY KEY, added_at INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 13;
COMMIT;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("leakwatch.lock"))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Version { found: 99, .. })
        ));
    }
}
