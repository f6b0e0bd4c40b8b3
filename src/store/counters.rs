//! Counters that only grow (`counters`), and the grouped counts the metrics read
//! (`metrics`): everything a scrape needs in a few indexed queries.

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Rows of `sql`: two text columns and a count (the grouped counts below).
    pub(super) fn grouped(&self, sql: &str) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Adds to named counters in one transaction.
    pub fn add_counters(&mut self, adds: &[(&str, u64)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            )?;
            for (name, n) in adds {
                if *n > 0 {
                    up.execute(params![name, *n as i64])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds to one counter (a statement of its own: for callers holding `&Store`).
    pub fn add_counter(&self, name: &str, n: u64) -> Result<(), StoreError> {
        if n > 0 {
            self.conn.execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                params![name, n as i64],
            )?;
        }
        Ok(())
    }

    pub fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, value FROM counters ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Findings by (kind, severity).
    pub fn finding_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.grouped(
            "SELECT kind, severity, count(*) FROM findings GROUP BY kind, severity ORDER BY 1, 2",
        )
    }

    pub fn unknown_identity_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM unknown_identities", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Feed runs by (feed, outcome).
    pub fn feed_run_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.grouped(
            "SELECT feed, outcome, count(*) FROM feed_runs GROUP BY feed, outcome ORDER BY 1, 2",
        )
    }

    /// Each feed's last successful run's end (unix seconds).
    pub fn feed_last_successes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT feed, max(finished_at) FROM feed_runs
             WHERE outcome = 'ok' AND finished_at IS NOT NULL GROUP BY feed ORDER BY 1",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
