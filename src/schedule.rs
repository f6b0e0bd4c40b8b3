//! Feed schedules: cron expressions as admins write them, and the times they give.
//!
//! The `cron` crate wants a seconds field and numbers days of the week from 1 = Sunday,
//! while a crontab line has five fields and numbers them from 0 = Sunday (7 too). Both
//! traps are closed here: a 5-field line means second 0, and days of the week are always
//! read as crontab numbers (`1-5` is Monday to Friday), with 6 or 7 fields alike. Names
//! (`MON-FRI`) mean the same in both and pass through.
//!
//! Everything is a pure function of the times it is given, so that the scheduler's
//! decisions (next run, catch-up after downtime) are tested with fixed clocks, not sleeps.

use std::str::FromStr;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{expr}`: {message}")]
pub struct ScheduleError {
    pub expr: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    inner: cron::Schedule,
}

impl Schedule {
    /// Parses `min hour dom month dow` (crontab), or the same with seconds first, and
    /// optionally a year last.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let err = |message: String| ScheduleError {
            expr: expr.to_string(),
            message,
        };
        let mut fields: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
        match fields.len() {
            5 => fields.insert(0, "0".into()),
            6 | 7 => {}
            n => {
                return Err(err(format!(
                    "{n} fields; expected 5 (minute hour day-of-month month day-of-week), \
                     or 6 with seconds first"
                )))
            }
        }
        fields[5] = crontab_days(&fields[5]).map_err(err)?;
        let inner = cron::Schedule::from_str(&fields.join(" ")).map_err(|e| err(e.to_string()))?;
        if inner.upcoming(Utc).next().is_none() {
            return Err(err("never fires".into()));
        }
        Ok(Schedule {
            expr: expr.to_string(),
            inner,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first firing strictly after `t` (Unix seconds, UTC).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let t = DateTime::<Utc>::from_timestamp(t, 0)?;
        self.inner.after(&t).next().map(|d| d.timestamp())
    }

    /// Whether a feed should run at start-up: it never ran, or a firing fell between its
    /// last run and now (the daemon was down). However many were missed, that is one run.
    pub fn due_at_start(&self, last_run: Option<i64>, now: i64) -> bool {
        match last_run {
            None => true,
            Some(last) => self.next_after(last).is_some_and(|next| next <= now),
        }
    }
}

/// Spreads a firing over `[t, t + jitter]` so that many installations (or feeds) on the
/// same schedule do not hit a source at the same second. `random` is any uniform u64.
pub fn with_jitter(t: i64, jitter_secs: u64, random: u64) -> i64 {
    if jitter_secs == 0 {
        return t;
    }
    t + (random % (jitter_secs + 1)) as i64
}

/// Rewrites a crontab day-of-week field (0 or 7 = Sunday) as the `cron` crate's
/// (1 = Sunday): the days are expanded and listed, which handles lists, ranges and steps.
fn crontab_days(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let alpha = field.bytes().any(|b| b.is_ascii_alphabetic());
    let digit = field.bytes().any(|b| b.is_ascii_digit());
    if alpha && digit {
        return Err("day of week: use names (MON-FRI) or numbers (1-5), not both".into());
    }
    if alpha {
        return Ok(field.to_string());
    }
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("day of week: `{s}` is not a number"))
    };
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, num(s)?),
            None => (part, 1),
        };
        if step == 0 {
            return Err("day of week: a step of 0".into());
        }
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (0, 6),
            Some((a, b)) => (num(a)?, num(b)?),
            None if step > 1 => (num(range)?, 7),
            None => (num(range)?, num(range)?),
        };
        if lo > 7 || hi > 7 || lo > hi {
            return Err(format!("day of week: `{part}` is outside 0-7"));
        }
        for d in (lo..=hi).step_by(step as usize) {
            days[(d % 7) as usize] = true;
        }
    }
    Ok(days
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(d, _)| (d + 1).to_string())
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-10-10 10:07:30 UTC, a Friday.
    const FRI: i64 = 1_760_090_850;

    fn at(rfc: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc).unwrap().timestamp()
    }

    #[test]
    fn next_runs() {
        assert_eq!(crate::timefmt::rfc3339(FRI), "2025-10-10T10:07:30Z");
        let cases: &[(&str, &str)] = &[
            ("*/15 * * * *", "2025-10-10T10:15:00Z"),
            ("0 */15 * * * *", "2025-10-10T10:15:00Z"),
            ("*/20 * * * * *", "2025-10-10T10:07:40Z"),
            // Crontab day numbers: 1-5 is Monday to Friday, so after Friday 10:07 comes Monday.
            ("0 9 * * 1-5", "2025-10-13T09:00:00Z"),
            ("0 9 * * MON-FRI", "2025-10-13T09:00:00Z"),
            // 0 and 7 are both Sunday.
            ("30 2 * * 0", "2025-10-12T02:30:00Z"),
            ("30 2 * * 7", "2025-10-12T02:30:00Z"),
            ("30 2 * * 5-7", "2025-10-11T02:30:00Z"),
            ("0 0 1 * *", "2025-11-01T00:00:00Z"),
        ];
        for (expr, want) in cases {
            let s = Schedule::parse(expr).unwrap();
            assert_eq!(s.next_after(FRI), Some(at(want)), "{expr}");
        }
    }

    #[test]
    fn bad_expressions_are_named() {
        for expr in [
            "* * *",
            "61 * * * *",
            "* * * * 8",
            "* * * * MON,3",
            "* * * * */0",
            "1 2 3 4 5 6 7 8",
        ] {
            let e = Schedule::parse(expr).unwrap_err();
            assert_eq!(e.expr, *expr);
            assert!(e.to_string().contains(expr), "{e}");
        }
    }

    #[test]
    fn catch_up_after_downtime_is_one_run() {
        let hourly = Schedule::parse("0 * * * *").unwrap();
        // Never ran: run now.
        assert!(hourly.due_at_start(None, FRI));
        // Last ran at 10:00, now 10:07: the next firing (11:00) is still ahead.
        assert!(!hourly.due_at_start(Some(at("2025-10-10T10:00:00Z")), FRI));
        // Last ran at 07:00: 08:00, 09:00 and 10:00 were missed; one run now.
        assert!(hourly.due_at_start(Some(at("2025-10-10T07:00:00Z")), FRI));
    }

    #[test]
    fn jitter_stays_in_its_window() {
        assert_eq!(with_jitter(100, 0, 12345), 100);
        let mut rng = crate::synth::Rng::new(3);
        for _ in 0..1000 {
            let t = with_jitter(100, 60, rng.next_u64());
            assert!((100..=160).contains(&t));
        }
    }
}
