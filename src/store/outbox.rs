//! The mail queue. A message is queued in the same transaction that marks its findings as
//! notified, so a finding is mailed exactly once whatever happens in between; delivery
//! then works from the queue and only ever changes a row's status.

use rusqlite::params;

use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    User,
    Digest,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::User => "user",
            MailKind::Digest => "digest",
        }
    }
}

/// A rendered message to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub kind: MailKind,
    pub recipient: String,
    /// The whole RFC 5322 message, as it will be delivered (same bytes on every retry).
    pub message: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub message: Vec<u8>,
    pub attempts: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MailCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
}

/// What one composition step hands to the store to commit at once.
#[derive(Debug, Default)]
pub struct NotificationBatch {
    /// Each user mail with the findings it tells about.
    pub user_mails: Vec<(NewMail, Vec<i64>)>,
    /// Findings whose owners are not mailed (users disabled in config): marked done.
    pub user_skipped: Vec<i64>,
    /// The digest, one message per admin, with what it covers.
    pub digest_mails: Vec<NewMail>,
    pub digest_findings: Vec<i64>,
    pub digest_unknowns: Vec<Vec<u8>>,
    /// Remediation actions whose latest state the digest tells.
    pub digest_actions: Vec<i64>,
    /// Where the digest's findings are exported too (`siem`): one queue row per finding
    /// and target, in the digest's transaction.
    pub siem_targets: Vec<&'static str>,
}

impl Store {
    /// Queues a batch of notifications and marks what they cover, in one transaction.
    pub fn queue_notifications(
        &mut self,
        batch: &NotificationBatch,
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO outbox (kind, recipient, message, status, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )?;
            let mut mark_user =
                tx.prepare("UPDATE findings SET user_notified = 1 WHERE id = ?1")?;
            for (mail, findings) in &batch.user_mails {
                insert.execute(params![
                    mail.kind.as_str(),
                    mail.recipient,
                    mail.message,
                    now
                ])?;
                for id in findings {
                    mark_user.execute([id])?;
                }
            }
            for id in &batch.user_skipped {
                mark_user.execute([id])?;
            }
            if !batch.digest_mails.is_empty() {
                tx.execute("INSERT INTO digests (created_at) VALUES (?1)", [now])?;
                let digest_id = tx.last_insert_rowid();
                for mail in &batch.digest_mails {
                    insert.execute(params![
                        mail.kind.as_str(),
                        mail.recipient,
                        mail.message,
                        now
                    ])?;
                }
                let mut mark_f = tx.prepare("UPDATE findings SET digest_id = ?1 WHERE id = ?2")?;
                for id in &batch.digest_findings {
                    mark_f.execute([digest_id, *id])?;
                }
                let mut mark_u =
                    tx.prepare("UPDATE unknown_identities SET digest_id = ?1 WHERE hash = ?2")?;
                for h in &batch.digest_unknowns {
                    mark_u.execute(params![digest_id, h])?;
                }
                let mut mark_a = tx.prepare("UPDATE actions SET reported = 1 WHERE id = ?1")?;
                for id in &batch.digest_actions {
                    mark_a.execute([id])?;
                }
                let mut siem = tx.prepare(
                    "INSERT INTO siem_queue (finding_id, target, next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?3)",
                )?;
                for target in &batch.siem_targets {
                    for id in &batch.digest_findings {
                        siem.execute(params![id, target, now])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Queued messages not yet delivered, oldest first, at most `limit` after id `after`.
    /// `due_by` filters on the retry backoff; `None` takes them all (an explicit flush).
    pub fn pending_mail(
        &self,
        due_by: Option<i64>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, recipient, message, attempts FROM outbox INDEXED BY outbox_pending_by_id
             WHERE status = 'pending' AND next_attempt_at <= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![due_by.unwrap_or(i64::MAX), after, limit], |r| {
            Ok(QueuedMail {
                id: r.get(0)?,
                kind: r.get(1)?,
                recipient: r.get(2)?,
                message: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn mark_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        mark_sent_in(&self.conn, id, now)
    }

    /// Records a failed attempt. The message stays queued with an exponential backoff
    /// (1 min doubling to 6 h), unless the failure is permanent or attempts are used up,
    /// in which case it is marked `failed` (kept, and listed, for `mail retry`).
    pub fn mark_attempt_failed(
        &self,
        id: i64,
        error: &str,
        now: i64,
        permanent: bool,
        max_attempts: u32,
    ) -> Result<(), StoreError> {
        mark_failed_in(&self.conn, id, error, now, permanent, max_attempts)
    }

    /// Records the outcomes of a group of deliveries in one transaction (a commit per
    /// group, not per message: at a thousand mails a second the commits were the cost).
    /// `Err((error, permanent))` is a failed attempt, as [`Store::mark_attempt_failed`].
    pub fn mark_outcomes(
        &self,
        outcomes: &[(i64, Attempt<'_>)],
        now: i64,
        max_attempts: u32,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        for (id, outcome) in outcomes {
            match outcome {
                Ok(()) => mark_sent_in(&tx, *id, now)?,
                Err((error, permanent)) => {
                    mark_failed_in(&tx, *id, error, now, *permanent, max_attempts)?
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Puts failed messages back in the queue; returns how many.
    pub fn retry_failed(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?1 WHERE status = 'failed'",
            [now],
        )? as u64)
    }

    pub fn mail_counts(&self) -> Result<MailCounts, StoreError> {
        let mut c = MailCounts::default();
        let mut stmt = self
            .conn
            .prepare("SELECT status, count(*) FROM outbox GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            match status.as_str() {
                "pending" => c.pending = n as u64,
                "sent" => c.sent = n as u64,
                _ => c.failed += n as u64,
            }
        }
        Ok(c)
    }

    /// The queue as a log: (id, kind, recipient, status, attempts, last_error, created_at).
    #[allow(clippy::type_complexity)]
    pub fn mail_log(
        &self,
    ) -> Result<Vec<(i64, String, String, String, i64, Option<String>, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, recipient, status, attempts, last_error, created_at FROM outbox ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// How one delivery went: `Err((error, permanent))` for a failed attempt.
pub type Attempt<'a> = Result<(), (&'a str, bool)>;

fn mark_sent_in(conn: &rusqlite::Connection, id: i64, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        // The body goes once delivered: the row stays as the mail log (who was told what
        // kind of mail, when), and the database holds no copy of what was said.
        "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL, message = x'' WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(())
}

fn mark_failed_in(
    conn: &rusqlite::Connection,
    id: i64,
    error: &str,
    now: i64,
    permanent: bool,
    max_attempts: u32,
) -> Result<(), StoreError> {
    let attempts: i64 = conn
        .prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 RETURNING attempts",
        )?
        .query_row(params![id, error], |r| r.get(0))?;
    let backoff = 60i64
        .saturating_mul(1 << attempts.clamp(0, 20))
        .min(6 * 3600);
    let status = if permanent || attempts >= i64::from(max_attempts) {
        "failed"
    } else {
        "pending"
    };
    conn.prepare_cached("UPDATE outbox SET status = ?2, next_attempt_at = ?3 WHERE id = ?1")?
        .execute(params![id, status, now + backoff])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str) -> NewMail {
        NewMail {
            kind: MailKind::User,
            recipient: to.into(),
            message: b"Subject: x\r\n\r\nbody".to_vec(),
        }
    }

    #[test]
    fn queue_retry_backoff_and_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let batch = NotificationBatch {
            user_mails: vec![(mail("a@x.example"), vec![]), (mail("b@x.example"), vec![])],
            ..Default::default()
        };
        s.queue_notifications(&batch, 100).unwrap();
        let q = s.pending_mail(Some(100), 0, 10).unwrap();
        assert_eq!(q.len(), 2);
        s.mark_sent(q[0].id, 101).unwrap();
        s.mark_attempt_failed(q[1].id, "connection refused", 101, false, 3)
            .unwrap();
        // Backed off: not due at 101, due for an explicit flush, and due after a minute.
        assert!(s.pending_mail(Some(101), 0, 10).unwrap().is_empty());
        assert_eq!(s.pending_mail(None, 0, 10).unwrap().len(), 1);
        assert_eq!(s.pending_mail(Some(101 + 120), 0, 10).unwrap().len(), 1);
        s.mark_attempt_failed(q[1].id, "refused", 102, false, 3)
            .unwrap();
        s.mark_attempt_failed(q[1].id, "refused", 103, false, 3)
            .unwrap();
        assert_eq!(
            s.mail_counts().unwrap(),
            MailCounts {
                pending: 0,
                sent: 1,
                failed: 1
            }
        );
        assert_eq!(s.retry_failed(200).unwrap(), 1);
        assert_eq!(s.pending_mail(Some(200), q[0].id, 10).unwrap().len(), 1);
        let log = s.mail_log().unwrap();
        assert_eq!(log[1].5.as_deref(), Some("refused"));
    }
}
