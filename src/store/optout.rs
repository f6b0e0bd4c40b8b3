//! The suppression list (`leakwatch optout`): addresses that get no user mail. Their
//! findings are recorded and reach the admins' digest as any other.

use std::collections::HashSet;

use super::{Store, StoreError};

impl Store {
    pub fn optouts(&self) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT email FROM optout")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Adds an address (lower case); `false` if it was there.
    pub fn optout_add(&self, email: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO optout (email, added_at) VALUES (lower(?1), ?2)",
            rusqlite::params![email.trim(), now],
        )? == 1)
    }

    /// Removes an address; `false` if it was not there.
    pub fn optout_remove(&self, email: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM optout WHERE email = lower(?1)", [email.trim()])?
            == 1)
    }

    pub fn optout_list(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT email, added_at FROM optout ORDER BY email")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
