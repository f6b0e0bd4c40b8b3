//! When each feed runs next: pure bookkeeping over the feeds' schedules, driven by the
//! daemon with the time and a source of randomness passed in, so that every decision
//! (catch-up at start, no overlap, jitter, reload) is tested with fixed numbers.

use std::collections::BTreeMap;

use crate::feed::Feed;
use crate::schedule::{with_jitter, Schedule};

#[derive(Debug, Clone)]
struct Entry {
    schedule: Schedule,
    jitter: u64,
    enabled: bool,
    /// Unix seconds of the next run; `None` when it will not run again (disabled, or a
    /// `--once` run that has started it).
    next: Option<i64>,
    running: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    entries: BTreeMap<String, Entry>,
    once: bool,
}

impl Plan {
    /// A plan for `feeds` at `now`. A feed runs at once if a firing fell between its last
    /// run (`last_start`) and now, or if it never ran; otherwise at its next firing.
    /// With `once`, every enabled feed runs now and then never again.
    pub fn new(
        feeds: &[Feed],
        last_start: impl Fn(&str) -> Option<i64>,
        now: i64,
        once: bool,
        random: &mut dyn FnMut() -> u64,
    ) -> Plan {
        let mut plan = Plan {
            entries: BTreeMap::new(),
            once,
        };
        plan.replace(feeds, last_start, now, random);
        plan
    }

    /// Takes a new set of feeds (a reload). A feed whose schedule is unchanged keeps its
    /// next run and its running state; a new or changed one is planned as at start.
    pub fn replace(
        &mut self,
        feeds: &[Feed],
        last_start: impl Fn(&str) -> Option<i64>,
        now: i64,
        random: &mut dyn FnMut() -> u64,
    ) {
        let mut entries = BTreeMap::new();
        for f in feeds {
            let old = self.entries.remove(&f.name);
            let running = old.as_ref().is_some_and(|o| o.running);
            let next = match old {
                Some(o) if o.schedule.expr() == f.schedule.expr() && o.enabled == f.enabled => {
                    o.next
                }
                _ if !f.enabled => None,
                _ if self.once => Some(now),
                _ => {
                    if f.schedule.due_at_start(last_start(&f.name), now) {
                        Some(now)
                    } else {
                        f.schedule
                            .next_after(now)
                            .map(|t| with_jitter(t, f.jitter_secs, random()))
                    }
                }
            };
            entries.insert(
                f.name.clone(),
                Entry {
                    schedule: f.schedule.clone(),
                    jitter: f.jitter_secs,
                    enabled: f.enabled,
                    next,
                    running,
                },
            );
        }
        self.entries = entries;
    }

    /// Feeds whose time has come and that are not running, earliest first.
    pub fn due(&self, now: i64) -> Vec<String> {
        let mut due: Vec<(i64, &String)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running)
            .filter_map(|(n, e)| e.next.filter(|t| *t <= now).map(|t| (t, n)))
            .collect();
        due.sort();
        due.into_iter().map(|(_, n)| n.clone()).collect()
    }

    /// Marks a feed started at `now` and plans its next firing after `now`. Firings that
    /// pass while it runs fold into one run right after it ends.
    pub fn started(&mut self, name: &str, now: i64, random: &mut dyn FnMut() -> u64) {
        let once = self.once;
        if let Some(e) = self.entries.get_mut(name) {
            e.running = true;
            e.next = if once {
                None
            } else {
                e.schedule
                    .next_after(now)
                    .map(|t| with_jitter(t, e.jitter, random()))
            };
        }
    }

    pub fn finished(&mut self, name: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            e.running = false;
        }
    }

    /// The earliest planned run of a feed that is not running.
    pub fn next_wake(&self) -> Option<i64> {
        self.entries
            .values()
            .filter(|e| !e.running)
            .filter_map(|e| e.next)
            .min()
    }

    pub fn next_of(&self, name: &str) -> Option<i64> {
        self.entries.get(name).and_then(|e| e.next)
    }

    pub fn running(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.running)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// A `--once` plan is done when nothing is left to start or running.
    pub fn exhausted(&self) -> bool {
        self.entries
            .values()
            .all(|e| !e.running && e.next.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// 2026-11-23T10:00:00Z.
    const T0: i64 = 1_795_428_000;

    fn feed(name: &str, schedule: &str, enabled: bool, jitter: u64) -> Feed {
        let text = format!(
            "name = \"{name}\"\nkind = \"directory\"\nschedule = \"{schedule}\"\nenabled = {enabled}\njitter_secs = {jitter}\npath = \"/x\"\n"
        );
        Feed::parse(&text, Path::new("t.toml")).unwrap()
    }

    fn zero() -> impl FnMut() -> u64 {
        || 0
    }

    #[test]
    fn at_start_a_feed_runs_now_only_if_it_missed_a_firing_or_never_ran() {
        let feeds = [
            feed("never", "*/15 * * * *", true, 0),
            feed("missed", "*/15 * * * *", true, 0),
            feed("fresh", "*/15 * * * *", true, 0),
            feed("off", "*/15 * * * *", false, 0),
        ];
        let last = |n: &str| match n {
            "missed" => Some(T0 - 3600),
            "fresh" => Some(T0 + 60),
            _ => None,
        };
        let plan = Plan::new(&feeds, last, T0 + 5 * 60, false, &mut zero());
        assert_eq!(plan.due(T0 + 5 * 60), ["missed", "never"]);
        assert_eq!(plan.next_of("fresh"), Some(T0 + 15 * 60));
        assert_eq!(plan.next_of("off"), None);
        assert_eq!(plan.next_wake(), Some(T0 + 5 * 60));
    }

    #[test]
    fn a_running_feed_is_never_started_again_and_missed_firings_fold_into_one() {
        let feeds = [feed("a", "* * * * *", true, 0)];
        let mut plan = Plan::new(&feeds, |_| Some(T0), T0 + 1, false, &mut zero());
        assert!(plan.due(T0 + 1).is_empty());
        assert_eq!(plan.due(T0 + 60), ["a"]);
        plan.started("a", T0 + 60, &mut zero());
        // Five minutes later it is still running: not due, not in next_wake.
        assert!(plan.due(T0 + 360).is_empty());
        assert_eq!(plan.next_wake(), None);
        assert_eq!(plan.running(), ["a"]);
        plan.finished("a");
        // One catch-up run, not five.
        assert_eq!(plan.due(T0 + 361), ["a"]);
        plan.started("a", T0 + 361, &mut zero());
        plan.finished("a");
        assert!(plan.due(T0 + 361).is_empty());
        assert_eq!(plan.next_of("a"), Some(T0 + 420));
    }

    #[test]
    fn jitter_delays_within_its_bound() {
        let feeds = [feed("a", "0 * * * *", true, 300)];
        let mut r = || 1_000_003u64;
        let plan = Plan::new(&feeds, |_| Some(T0), T0 + 1, false, &mut r);
        let next = plan.next_of("a").unwrap();
        assert_eq!(next, T0 + 3600 + (1_000_003 % 301) as i64);
    }

    #[test]
    fn once_runs_every_enabled_feed_a_single_time() {
        let feeds = [
            feed("a", "0 0 1 1 *", true, 0),
            feed("b", "* * * * *", true, 0),
            feed("off", "* * * * *", false, 0),
        ];
        let mut plan = Plan::new(&feeds, |_| Some(T0), T0, true, &mut zero());
        assert_eq!(plan.due(T0), ["a", "b"]);
        plan.started("a", T0, &mut zero());
        plan.started("b", T0, &mut zero());
        assert!(!plan.exhausted());
        plan.finished("a");
        plan.finished("b");
        assert!(plan.exhausted());
        assert!(plan.due(T0 + 3600).is_empty());
    }

    #[test]
    fn a_reload_keeps_unchanged_feeds_and_plans_new_ones() {
        let mut plan = Plan::new(
            &[feed("a", "*/15 * * * *", true, 0)],
            |_| Some(T0),
            T0 + 1,
            false,
            &mut zero(),
        );
        plan.started("a", T0 + 1, &mut zero());
        let new = [
            feed("a", "*/15 * * * *", true, 0),
            feed("b", "*/15 * * * *", true, 0),
        ];
        plan.replace(&new, |_| None, T0 + 2, &mut zero());
        assert_eq!(plan.running(), ["a"], "a keeps running");
        assert_eq!(plan.next_of("a"), Some(T0 + 900));
        assert_eq!(
            plan.due(T0 + 2),
            ["b"],
            "a new feed that never ran runs now"
        );
        plan.replace(
            &[feed("b", "0 * * * *", true, 0)],
            |_| Some(T0 + 2),
            T0 + 3,
            &mut zero(),
        );
        assert_eq!(plan.next_of("a"), None, "removed");
        assert_eq!(
            plan.next_of("b"),
            Some(T0 + 3600),
            "changed schedule replanned"
        );
    }
}
