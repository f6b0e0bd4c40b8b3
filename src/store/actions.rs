//! The remediation log (`act`): every action a finding called for, what became of it and
//! who approved it. Rows are never deleted: the table is the audit trail that
//! `leakwatch actions log` prints.
//!
//! States: `dry_run`, `blocked` (a protected account), `rejected`, `done` and `failed` are
//! final; `awaiting_approval` and `held` (over the hourly ceiling) wait for an admin;
//! `pending` waits for its time; `running` was started and not finished (a crash then:
//! started again, which is why every action is idempotent).

use rusqlite::params;

use super::{NewMail, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    DryRun,
    Blocked,
    AwaitingApproval,
    Held,
    Pending,
    Running,
    Done,
    Failed,
    Rejected,
}

impl ActionStatus {
    pub const ALL: [ActionStatus; 9] = [
        ActionStatus::DryRun,
        ActionStatus::Blocked,
        ActionStatus::AwaitingApproval,
        ActionStatus::Held,
        ActionStatus::Pending,
        ActionStatus::Running,
        ActionStatus::Done,
        ActionStatus::Failed,
        ActionStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::DryRun => "dry_run",
            ActionStatus::Blocked => "blocked",
            ActionStatus::AwaitingApproval => "awaiting_approval",
            ActionStatus::Held => "held",
            ActionStatus::Pending => "pending",
            ActionStatus::Running => "running",
            ActionStatus::Done => "done",
            ActionStatus::Failed => "failed",
            ActionStatus::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> ActionStatus {
        ActionStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .unwrap_or(ActionStatus::Failed)
    }

    /// Waiting for an admin's `approve` or `reject`.
    pub fn waits_for_admin(self) -> bool {
        matches!(self, ActionStatus::AwaitingApproval | ActionStatus::Held)
    }
}

/// An action to plan.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub finding_id: i64,
    pub account_id: i64,
    /// The finding's severity when planned: a finding raised later is planned again.
    pub severity: &'static str,
    pub action: &'static str,
    pub target: &'static str,
    pub step: u32,
    pub status: ActionStatus,
    /// Why, for states decided at planning (`blocked`).
    pub result: Option<String>,
}

/// An action as the log shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub finding_id: i64,
    pub account_id: i64,
    pub email: Option<String>,
    pub username: Option<String>,
    pub severity: String,
    pub action: String,
    pub target: String,
    pub step: i64,
    pub status: ActionStatus,
    pub attempts: i64,
    pub result: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub done_at: Option<i64>,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum ActionOutcome {
    Done(String),
    /// Failed; tried again at `retry_at`, or failed for good when `None`.
    Failed {
        error: String,
        retry_at: Option<i64>,
    },
}

const SELECT: &str = "SELECT a.id, a.finding_id, a.account_id, c.email, c.username, a.severity,
        a.action, a.target, a.step, a.status, a.attempts, a.result, a.created_at,
        a.started_at, a.done_at, a.approved_by, a.approved_at
    FROM actions a LEFT JOIN accounts c ON c.id = a.account_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
    Ok(ActionRow {
        id: r.get(0)?,
        finding_id: r.get(1)?,
        account_id: r.get(2)?,
        email: r.get(3)?,
        username: r.get(4)?,
        severity: r.get(5)?,
        action: r.get(6)?,
        target: r.get(7)?,
        step: r.get(8)?,
        status: ActionStatus::parse(&r.get::<_, String>(9)?),
        attempts: r.get(10)?,
        result: r.get(11)?,
        created_at: r.get(12)?,
        started_at: r.get(13)?,
        done_at: r.get(14)?,
        approved_by: r.get(15)?,
        approved_at: r.get(16)?,
    })
}

impl Store {
    /// Plans actions in one transaction; one already planned (same finding, severity,
    /// action and target) is left as it is. Returns how many were new.
    pub fn plan_actions(&mut self, actions: &[NewAction], now: i64) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut n = 0;
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO actions (finding_id, account_id, severity, action, target,
                     step, status, next_attempt_at, result, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
            )?;
            for a in actions {
                n += insert.execute(params![
                    a.finding_id,
                    a.account_id,
                    a.severity,
                    a.action,
                    a.target,
                    a.step,
                    a.status.as_str(),
                    now,
                    a.result,
                ])? as u64;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Actions to do now: pending ones whose time has come (all pending ones unless
    /// `due_by`), and running ones a crash interrupted; in the order planned.
    pub fn due_actions(
        &self,
        due_by: Option<i64>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ActionRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT} WHERE a.id > ?2
                AND ((a.status = 'pending' AND a.next_attempt_at <= ?1) OR a.status = 'running')
             ORDER BY a.id LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(params![due_by.unwrap_or(i64::MAX), after, limit], row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Actions started at or after `since` (the hourly ceiling counts them).
    pub fn actions_started_since(&self, since: i64) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM actions WHERE started_at >= ?1",
            [since],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Marks an action started (committed before anything is done, so that the ceiling
    /// counts it whatever happens next).
    pub fn start_action(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE actions SET status = 'running', attempts = attempts + 1, started_at = ?2
             WHERE id = ?1",
            [id, now],
        )?;
        Ok(())
    }

    pub fn finish_action(
        &self,
        id: i64,
        outcome: &ActionOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        match outcome {
            ActionOutcome::Done(result) => self.conn.execute(
                "UPDATE actions SET status = 'done', result = ?2, done_at = ?3, reported = 0
                 WHERE id = ?1",
                params![id, result, now],
            )?,
            ActionOutcome::Failed {
                error,
                retry_at: Some(at),
            } => self.conn.execute(
                "UPDATE actions SET status = 'pending', result = ?2, next_attempt_at = ?3
                 WHERE id = ?1",
                params![id, error, at],
            )?,
            ActionOutcome::Failed {
                error,
                retry_at: None,
            } => self.conn.execute(
                "UPDATE actions SET status = 'failed', result = ?2, done_at = ?3, reported = 0
                 WHERE id = ?1",
                params![id, error, now],
            )?,
        };
        Ok(())
    }

    /// Holds every pending action nobody approved (the ceiling was reached): they wait
    /// for an admin. The admins' alert is queued in the same transaction, once per hold
    /// (`alerts` empty: already told this hour). Returns how many were held.
    pub fn hold_unapproved_actions(
        &mut self,
        why: &str,
        alerts: &[NewMail],
        now: i64,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let held = tx.execute(
            "UPDATE actions SET status = 'held', result = ?1, reported = 0
             WHERE status = 'pending' AND approved_by IS NULL",
            [why],
        )? as u64;
        if held > 0 && !alerts.is_empty() {
            let mut insert = tx.prepare(
                "INSERT INTO outbox (kind, recipient, message, status, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )?;
            for mail in alerts {
                insert.execute(params![
                    mail.kind.as_str(),
                    mail.recipient,
                    mail.message,
                    now
                ])?;
            }
            drop(insert);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('actions_alerted_at', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [now],
            )?;
        }
        tx.commit()?;
        Ok(held)
    }

    /// Settles actions that wait for an admin: `ids`, or all of them when `None`. Approved
    /// ones become pending (done at the next pass, past the ceiling: an admin chose them);
    /// rejected ones are final. Returns the ids settled; an id that was not waiting is
    /// left alone and not returned.
    pub fn settle_actions(
        &mut self,
        ids: Option<&[i64]>,
        approve: bool,
        who: &str,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let waiting: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM actions WHERE status IN ('awaiting_approval', 'held') ORDER BY id",
            )?;
            let all = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            match ids {
                None => all,
                Some(ids) => all.into_iter().filter(|i| ids.contains(i)).collect(),
            }
        };
        {
            let mut update = tx.prepare(
                "UPDATE actions SET status = ?2, approved_by = ?3, approved_at = ?4,
                     next_attempt_at = ?4, reported = 0
                 WHERE id = ?1",
            )?;
            let status = if approve { "pending" } else { "rejected" };
            for id in &waiting {
                update.execute(params![id, status, who, now])?;
            }
        }
        tx.commit()?;
        Ok(waiting)
    }

    /// Actions in `statuses` (all when empty), newest first, at most `limit`.
    pub fn actions(
        &self,
        statuses: &[ActionStatus],
        limit: u32,
    ) -> Result<Vec<ActionRow>, StoreError> {
        let filter = if statuses.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = statuses
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            format!("WHERE a.status IN ({})", list.join(","))
        };
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT} {filter} ORDER BY a.id DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit], row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Actions whose latest state no digest has told: the first `limit` (oldest first),
    /// the ids of them all, and how many.
    #[allow(clippy::type_complexity)]
    pub fn unreported_actions(
        &self,
        limit: u32,
    ) -> Result<(Vec<ActionRow>, Vec<i64>, u64), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM actions WHERE reported = 0 AND status NOT IN ('pending', 'running')
             ORDER BY id",
        )?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok((Vec::new(), ids, 0));
        }
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT} WHERE a.reported = 0 AND a.status NOT IN ('pending', 'running')
             ORDER BY a.id LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit], row)?.collect::<Result<_, _>>()?;
        let total = ids.len() as u64;
        Ok((rows, ids, total))
    }

    /// How many actions are in each state.
    pub fn action_counts(&self) -> Result<Vec<(ActionStatus, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, count(*) FROM actions GROUP BY status")?;
        let mut out: Vec<(ActionStatus, u64)> = stmt
            .query_map([], |r| {
                Ok((
                    ActionStatus::parse(&r.get::<_, String>(0)?),
                    r.get::<_, i64>(1)? as u64,
                ))
            })?
            .collect::<Result<_, _>>()?;
        out.sort();
        Ok(out)
    }
}
