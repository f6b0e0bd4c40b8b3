//! The daemon's bookkeeping: one row per feed run (what `status` shows and what an admin
//! reads when a feed fails), small per-feed state (HTTP validators, the range cursor),
//! the files a directory feed has read, and the running daemon's heartbeat.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::identity::IdentityKind;

/// How a feed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    Running,
    /// Everything read.
    Ok,
    /// Nothing new at the source (HTTP 304, same content, no new file).
    Unchanged,
    /// Done, but some input was skipped or some request failed; see `message`.
    Problems,
    /// The run could not do its job (source unreachable after retries, store failure).
    Failed,
    /// Stopped by a shutdown; resumes next time.
    Cancelled,
    /// The process died during the run (found `running` at the next start).
    Interrupted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Ok => "ok",
            RunOutcome::Unchanged => "unchanged",
            RunOutcome::Problems => "problems",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> RunOutcome {
        match s {
            "running" => RunOutcome::Running,
            "ok" => RunOutcome::Ok,
            "unchanged" => RunOutcome::Unchanged,
            "problems" => RunOutcome::Problems,
            "cancelled" => RunOutcome::Cancelled,
            "interrupted" => RunOutcome::Interrupted,
            _ => RunOutcome::Failed,
        }
    }
}

/// Counters of a feed run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeedRunStats {
    pub bytes: u64,
    pub lines: u64,
    /// Entries read, each in one of the three counters after it (see `IngestStats`).
    pub entries: u64,
    pub with_identity: u64,
    pub malformed: u64,
    pub no_identity: u64,
    pub identities: u64,
    pub matches: u64,
    pub new_findings: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedRunRow {
    pub id: i64,
    pub feed: String,
    pub kind: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: RunOutcome,
    pub stats: FeedRunStats,
    pub message: Option<String>,
}

/// A file a directory feed has read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFile {
    pub size: u64,
    pub mtime: i64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonRow {
    pub pid: i64,
    pub started_at: i64,
    pub heartbeat: i64,
    pub status: String,
    pub stopped_at: Option<i64>,
}

impl Store {
    /// Opens a run row, `running`, and returns its id.
    pub fn feed_run_start(&self, feed: &str, kind: &str, now: i64) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO feed_runs (feed, kind, started_at, outcome) VALUES (?1, ?2, ?3, 'running')",
            params![feed, kind, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn feed_run_finish(
        &self,
        id: i64,
        outcome: RunOutcome,
        stats: &FeedRunStats,
        message: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE feed_runs SET finished_at = ?2, outcome = ?3, bytes = ?4, lines = ?5,
                identities = ?6, matches = ?7, new_findings = ?8, errors = ?9, message = ?10,
                entries = ?11, with_identity = ?12, malformed = ?13, no_identity = ?14
             WHERE id = ?1",
            params![
                id,
                now,
                outcome.as_str(),
                stats.bytes as i64,
                stats.lines as i64,
                stats.identities as i64,
                stats.matches as i64,
                stats.new_findings as i64,
                stats.errors as i64,
                message,
                stats.entries as i64,
                stats.with_identity as i64,
                stats.malformed as i64,
                stats.no_identity as i64
            ],
        )?;
        Ok(())
    }

    /// Marks runs left `running` by a dead process; returns how many.
    pub fn feed_runs_interrupted(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE feed_runs SET outcome = 'interrupted', finished_at = ?1,
                message = 'the process stopped during the run'
             WHERE outcome = 'running'",
            [now],
        )? as u64)
    }

    /// The latest run of each feed that has run.
    pub fn feed_runs_latest(&self) -> Result<Vec<FeedRunRow>, StoreError> {
        self.feed_runs_where(
            "id IN (SELECT max(id) FROM feed_runs GROUP BY feed) ORDER BY feed",
            params![],
        )
    }

    /// The latest runs of one feed, newest first.
    pub fn feed_runs_of(&self, feed: &str, limit: u32) -> Result<Vec<FeedRunRow>, StoreError> {
        self.feed_runs_where("feed = ?1 ORDER BY id DESC LIMIT ?2", params![feed, limit])
    }

    /// When each feed last started a run (its schedule's reference point).
    pub fn feed_last_start(&self, feed: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT max(started_at) FROM feed_runs WHERE feed = ?1",
            [feed],
            |r| r.get(0),
        )?)
    }

    fn feed_runs_where(
        &self,
        clause: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<FeedRunRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, feed, kind, started_at, finished_at, outcome, bytes, lines, identities,
                matches, new_findings, errors, message, entries, with_identity, malformed,
                no_identity FROM feed_runs WHERE {clause}"
        ))?;
        let rows = stmt.query_map(p, |r| {
            Ok(FeedRunRow {
                id: r.get(0)?,
                feed: r.get(1)?,
                kind: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                outcome: RunOutcome::parse(&r.get::<_, String>(5)?),
                stats: FeedRunStats {
                    bytes: r.get::<_, i64>(6)? as u64,
                    lines: r.get::<_, i64>(7)? as u64,
                    identities: r.get::<_, i64>(8)? as u64,
                    matches: r.get::<_, i64>(9)? as u64,
                    new_findings: r.get::<_, i64>(10)? as u64,
                    errors: r.get::<_, i64>(11)? as u64,
                    entries: r.get::<_, i64>(13)? as u64,
                    with_identity: r.get::<_, i64>(14)? as u64,
                    malformed: r.get::<_, i64>(15)? as u64,
                    no_identity: r.get::<_, i64>(16)? as u64,
                },
                message: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn feed_state_get(&self, feed: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM feed_state WHERE feed = ?1 AND key = ?2",
                params![feed, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn feed_state_set(&self, feed: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO feed_state (feed, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(feed, key) DO UPDATE SET value = excluded.value",
            params![feed, key, value],
        )?;
        Ok(())
    }

    pub fn feed_state_delete(&self, feed: &str, key: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM feed_state WHERE feed = ?1 AND key = ?2",
            params![feed, key],
        )?;
        Ok(())
    }

    pub fn seen_file(&self, feed: &str, path: &str) -> Result<Option<SeenFile>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, mtime, sha256 FROM feed_files WHERE feed = ?1 AND path = ?2",
                params![feed, path],
                |r| {
                    Ok(SeenFile {
                        size: r.get::<_, i64>(0)? as u64,
                        mtime: r.get(1)?,
                        sha256: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Whether the feed has read a file with this content, under any name.
    pub fn seen_content(&self, feed: &str, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM feed_files WHERE feed = ?1 AND sha256 = ?2 LIMIT 1",
                params![feed, &sha256[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn mark_file_seen(
        &self,
        feed: &str,
        path: &str,
        f: &SeenFile,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO feed_files (feed, path, size, mtime, sha256, done_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(feed, path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
                sha256 = excluded.sha256, done_at = excluded.done_at",
            params![feed, path, f.size as i64, f.mtime, &f.sha256[..], now],
        )?;
        Ok(())
    }

    pub fn daemon_started(&self, pid: u32, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO daemon (id, pid, started_at, heartbeat, status, stopped_at)
             VALUES (1, ?1, ?2, ?2, 'starting', NULL)
             ON CONFLICT(id) DO UPDATE SET pid = ?1, started_at = ?2, heartbeat = ?2,
                status = 'starting', stopped_at = NULL",
            params![pid, now],
        )?;
        Ok(())
    }

    pub fn daemon_heartbeat(&self, status: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE daemon SET heartbeat = ?1, status = ?2 WHERE id = 1",
            params![now, status],
        )?;
        Ok(())
    }

    pub fn daemon_stopped(&self, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE daemon SET stopped_at = ?1, heartbeat = ?1, status = 'stopped' WHERE id = 1",
            [now],
        )?;
        Ok(())
    }

    pub fn daemon(&self) -> Result<Option<DaemonRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT pid, started_at, heartbeat, status, stopped_at FROM daemon WHERE id = 1",
                [],
                |r| {
                    Ok(DaemonRow {
                        pid: r.get(0)?,
                        started_at: r.get(1)?,
                        heartbeat: r.get(2)?,
                        status: r.get(3)?,
                        stopped_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The distinct 20-bit prefixes (5 hex digits) of the directory's email identity
    /// hashes, in order: what a k-anonymous range feed asks about. Emails only: a remote
    /// service knows nothing of our `login:` keys.
    pub fn email_prefixes(&self) -> Result<Vec<u32>, StoreError> {
        let mut out = Vec::new();
        self.for_each_identity_key(|(h, _, kind)| {
            let p = (u32::from(h.0[0]) << 12) | (u32::from(h.0[1]) << 4) | (u32::from(h.0[2]) >> 4);
            // Keys come in hash order, so equal prefixes are neighbours.
            if kind == IdentityKind::Email && out.last() != Some(&p) {
                out.push(p);
            }
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_row_goes_from_running_to_its_outcome_and_crashed_runs_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.feed_run_start("a", "http", 100).unwrap();
        let stats = FeedRunStats {
            bytes: 10,
            lines: 2,
            entries: 2,
            with_identity: 1,
            no_identity: 1,
            new_findings: 1,
            ..Default::default()
        };
        store
            .feed_run_finish(a, RunOutcome::Problems, &stats, Some("x: 500"), 105)
            .unwrap();
        let b = store.feed_run_start("b", "directory", 200).unwrap();
        assert_eq!(store.feed_runs_interrupted(300).unwrap(), 1);
        let latest = store.feed_runs_latest().unwrap();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].outcome, RunOutcome::Problems);
        assert_eq!(latest[0].stats, stats);
        assert_eq!(latest[0].message.as_deref(), Some("x: 500"));
        assert_eq!(latest[1].id, b);
        assert_eq!(latest[1].outcome, RunOutcome::Interrupted);
        assert_eq!(store.feed_last_start("b").unwrap(), Some(200));
        assert_eq!(store.feed_last_start("c").unwrap(), None);
    }

    #[test]
    fn seen_files_are_found_by_path_and_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let f = SeenFile {
            size: 3,
            mtime: 7,
            sha256: [9; 32],
        };
        store.mark_file_seen("drop", "/x/a.txt", &f, 10).unwrap();
        assert_eq!(store.seen_file("drop", "/x/a.txt").unwrap(), Some(f));
        assert_eq!(store.seen_file("other", "/x/a.txt").unwrap(), None);
        assert!(store.seen_content("drop", &[9; 32]).unwrap());
        assert!(!store.seen_content("drop", &[8; 32]).unwrap());
    }

    #[test]
    fn a_version_1_database_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        drop(conn);
        let store = Store::open(dir.path()).unwrap();
        store.feed_state_set("f", "k", "v").unwrap();
        assert_eq!(
            store.feed_state_get("f", "k").unwrap().as_deref(),
            Some("v")
        );
    }
}
