//! Time: a clock that tests can control, and the few formats leakwatch writes.
//!
//! Timestamps are stored as Unix seconds (UTC) and formatted only for people.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where "now" comes from. The real clock in production, a fixed one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// `2025-10-12T08:30:00Z`.
pub fn rfc3339(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// `2025-10-12`.
pub fn date(ts: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day()),
        Err(_) => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_760_257_800), "2025-10-12T08:30:00Z");
        assert_eq!(date(1_760_257_800), "2025-10-12");
        assert_eq!(FixedClock(5).now(), 5);
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
