//! Pacing per recipient domain (`[notify.smtp] rate_per_domain`): the big webmail
//! providers throttle, then refuse, a sender that bursts thousands of messages at them,
//! and a leak of the public lands on a handful of their domains.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Hands out send times, at most `rate` a second per recipient domain.
pub struct Pacer {
    gap: Option<Duration>,
    next: HashMap<String, Instant>,
}

impl Pacer {
    /// `rate` messages a second per domain; 0: no pacing.
    pub fn new(rate: u32) -> Pacer {
        Pacer {
            gap: (rate > 0).then(|| Duration::from_secs(1) / rate),
            next: HashMap::new(),
        }
    }

    /// When a message to `recipient` may start: `None` for now.
    pub fn slot(&mut self, recipient: &str) -> Option<Instant> {
        self.slot_at(recipient, Instant::now())
    }

    fn slot_at(&mut self, recipient: &str, now: Instant) -> Option<Instant> {
        let gap = self.gap?;
        let domain = recipient
            .rsplit_once('@')
            .map_or(recipient, |(_, d)| d)
            .to_ascii_lowercase();
        let next = self.next.entry(domain).or_insert(now);
        let at = (*next).max(now);
        *next = at + gap;
        (at > now).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_is_paced_apart() {
        let mut p = Pacer::new(4);
        let t = Instant::now();
        let gap = Duration::from_millis(250);
        assert_eq!(p.slot_at("a@gmail.example", t), None);
        assert_eq!(p.slot_at("b@GMAIL.example", t), Some(t + gap));
        assert_eq!(p.slot_at("c@gmail.example", t), Some(t + gap * 2));
        // Another domain is not held by the first.
        assert_eq!(p.slot_at("d@orange.example", t), None);
        // Time has passed: the domain's slot is now.
        assert_eq!(p.slot_at("e@gmail.example", t + gap * 10), None);
        assert_eq!(Pacer::new(0).slot_at("a@gmail.example", t), None);
    }
}
