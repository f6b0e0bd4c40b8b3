//! The SIEM export queue (`siem`): finding ids owed to each target, queued with the
//! digest (see `queue_notifications`), delivered and marked here.

use rusqlite::params;

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct SiemRow {
    pub id: i64,
    pub finding_id: i64,
    pub target: String,
    pub attempts: i64,
}

impl Store {
    /// Events due, oldest first, at most `limit` after id `after`.
    pub fn pending_siem(
        &self,
        now: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SiemRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, finding_id, target, attempts FROM siem_queue
             WHERE status = 'pending' AND next_attempt_at <= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![now, after, limit], |r| {
                Ok(SiemRow {
                    id: r.get(0)?,
                    finding_id: r.get(1)?,
                    target: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Records a group's outcomes in one transaction: `None` sent, `Some((error,
    /// retry_at))` failed, tried again at `retry_at` or given up when `None`.
    #[allow(clippy::type_complexity)]
    pub fn mark_siem(
        &self,
        outcomes: &[(i64, Option<(String, Option<i64>)>)],
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        for (id, outcome) in outcomes {
            match outcome {
                None => tx.execute(
                    "UPDATE siem_queue SET status = 'sent', sent_at = ?2, attempts = attempts + 1
                     WHERE id = ?1",
                    params![id, now],
                )?,
                Some((error, Some(at))) => tx.execute(
                    "UPDATE siem_queue SET attempts = attempts + 1, last_error = ?2,
                         next_attempt_at = ?3 WHERE id = ?1",
                    params![id, error, at],
                )?,
                Some((error, None)) => tx.execute(
                    "UPDATE siem_queue SET status = 'failed', attempts = attempts + 1,
                         last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// Events by (target, status), for `status` and the metrics.
    pub fn siem_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.grouped(
            "SELECT target, status, count(*) FROM siem_queue GROUP BY target, status ORDER BY 1, 2",
        )
    }
}
