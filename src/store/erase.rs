//! Retention and erasure: what is deleted when it has been kept long enough
//! (`[retention]`, `leakwatch purge`), what is deleted of one person on request
//! (`leakwatch forget`), and what is held about one person (`leakwatch export`).
//!
//! Each runs in one transaction: a crash leaves everything or nothing of it done.

use rusqlite::params;

use super::directory::GENERATION;
use super::{Store, StoreError};

/// Cut-offs, as unix seconds (`None`: keep forever).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cutoffs {
    pub findings: Option<i64>,
    pub sightings: Option<i64>,
    pub unknowns: Option<i64>,
    pub mail: Option<i64>,
    pub feed_runs: Option<i64>,
}

/// Rows deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    pub findings: u64,
    pub sightings: u64,
    pub actions: u64,
    pub siem_events: u64,
    pub unknown_identities: u64,
    pub mails: u64,
    pub feed_runs: u64,
    pub devices: u64,
}

/// What `forget` erased, and the user mails whose outbox files are to go too.
#[derive(Debug, Default)]
pub struct Forgotten {
    pub deleted: Deleted,
    /// (outbox id, kind) of the person's own messages.
    pub mails: Vec<(i64, String)>,
}

/// Deletes findings matching `cond` (an SQL condition on `findings`) and everything
/// that hangs from them, inside `tx`.
fn delete_findings(
    tx: &rusqlite::Transaction<'_>,
    cond: &str,
    p: &[&dyn rusqlite::ToSql],
    d: &mut Deleted,
) -> Result<(), StoreError> {
    let sub = format!("SELECT id FROM findings WHERE {cond}");
    d.sightings += tx.execute(
        &format!("DELETE FROM sightings WHERE finding_id IN ({sub})"),
        p,
    )? as u64;
    d.actions += tx.execute(
        &format!("DELETE FROM actions WHERE finding_id IN ({sub})"),
        p,
    )? as u64;
    d.siem_events += tx.execute(
        &format!("DELETE FROM siem_queue WHERE finding_id IN ({sub})"),
        p,
    )? as u64;
    d.findings += tx.execute(&format!("DELETE FROM findings WHERE {cond}"), p)? as u64;
    Ok(())
}

fn orphan_devices(tx: &rusqlite::Transaction<'_>, d: &mut Deleted) -> Result<(), StoreError> {
    d.devices += tx.execute(
        "DELETE FROM devices WHERE id NOT IN
             (SELECT device_id FROM findings WHERE device_id IS NOT NULL)",
        [],
    )? as u64;
    Ok(())
}

impl Store {
    /// Runs `f` with SQLite's `secure_delete` on (freed pages are overwritten, not left
    /// with the old rows in them), then truncates the write-ahead log (whose older frames
    /// still hold the pages as they were): erased means gone from the files, not only
    /// from the tables.
    fn erasing<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let out = f(self);
        let _ = self.conn.pragma_update(None, "secure_delete", "OFF");
        let out = out?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(out)
    }

    /// Deletes what is older than its cut-off: findings not seen since (with their
    /// sightings, actions and export rows), sightings, unknown identities not seen since,
    /// delivered or failed mail, finished feed runs; then devices no finding names.
    pub fn purge(&mut self, c: &Cutoffs) -> Result<Deleted, StoreError> {
        let c = *c;
        self.erasing(|s| s.purge_now(&c))
    }

    fn purge_now(&mut self, c: &Cutoffs) -> Result<Deleted, StoreError> {
        let mut d = Deleted::default();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(t) = c.findings {
            delete_findings(&tx, "last_seen < ?1", &[&t], &mut d)?;
        }
        if let Some(t) = c.sightings {
            d.sightings += tx.execute("DELETE FROM sightings WHERE seen_at < ?1", [t])? as u64;
        }
        if let Some(t) = c.unknowns {
            d.unknown_identities +=
                tx.execute("DELETE FROM unknown_identities WHERE last_seen < ?1", [t])? as u64;
        }
        if let Some(t) = c.mail {
            d.mails += tx.execute(
                "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND created_at < ?1",
                [t],
            )? as u64;
            d.siem_events += tx.execute(
                "DELETE FROM siem_queue WHERE status IN ('sent', 'failed') AND created_at < ?1",
                [t],
            )? as u64;
        }
        if let Some(t) = c.feed_runs {
            d.feed_runs += tx.execute(
                "DELETE FROM feed_runs WHERE finished_at IS NOT NULL AND finished_at < ?1
                   AND id NOT IN (SELECT max(id) FROM feed_runs GROUP BY feed)",
                [t],
            )? as u64;
        }
        orphan_devices(&tx, &mut d)?;
        tx.commit()?;
        Ok(d)
    }

    /// Erases one account: its findings and all that hangs from them, every message to
    /// its address (queued or sent), and its own data in the directory (the row is kept,
    /// inactive and emptied, so that ids stay unique; the directory's generation moves on,
    /// so the identity index and the filter are rebuilt without its keys).
    pub fn forget(&mut self, account_id: i64, email: &str) -> Result<Forgotten, StoreError> {
        let out = self.erasing(|s| s.forget_now(account_id, email))?;
        // Rows changed before (a delivered message's body emptied, say) may have left
        // their old bytes in free pages: a data subject's erasure rewrites the file.
        self.conn.execute_batch("VACUUM")?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(out)
    }

    fn forget_now(&mut self, account_id: i64, email: &str) -> Result<Forgotten, StoreError> {
        let mut out = Forgotten::default();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        delete_findings(&tx, "account_id = ?1", &[&account_id], &mut out.deleted)?;
        out.deleted.actions +=
            tx.execute("DELETE FROM actions WHERE account_id = ?1", [account_id])? as u64;
        {
            let mut stmt = tx.prepare("SELECT id, kind FROM outbox WHERE recipient = ?1")?;
            out.mails = stmt
                .query_map([email], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
        }
        out.deleted.mails += tx.execute("DELETE FROM outbox WHERE recipient = ?1", [email])? as u64;
        tx.execute(
            "UPDATE accounts SET email = 'erased-' || id || '@invalid', username = NULL,
                 name = NULL, active = 0, password_changed_at = NULL WHERE id = ?1",
            [account_id],
        )?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = ?1",
            params![GENERATION],
        )?;
        orphan_devices(&tx, &mut out.deleted)?;
        tx.commit()?;
        Ok(out)
    }

    /// The messages to an address: (id, kind, status, created, sent), without bodies.
    #[allow(clippy::type_complexity)]
    pub fn mail_to(
        &self,
        email: &str,
    ) -> Result<Vec<(i64, String, String, i64, Option<i64>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, status, created_at, sent_at FROM outbox WHERE recipient = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([email], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The account (active or not) whose address or username is `who`, any case: a data
    /// subject's request names them so, and a removed account keeps its findings.
    pub fn account_by_identity(&self, who: &str) -> Result<Option<super::AccountRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, email, username, name, lang FROM accounts
             WHERE lower(email) = lower(?1) OR lower(username) = lower(?1)
             ORDER BY active DESC, id LIMIT 1",
        )?;
        use rusqlite::OptionalExtension as _;
        Ok(stmt
            .query_row([who.trim()], super::directory::account_row)
            .optional()?)
    }

    /// The ids of an account's findings.
    pub fn finding_ids_of(&self, account_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM findings WHERE account_id = ?1 ORDER BY id")?;
        let rows = stmt
            .query_map([account_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
