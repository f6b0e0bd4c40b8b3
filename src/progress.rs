//! Progress of long runs: a bar on a terminal, a periodic log line otherwise (under
//! systemd the journal gets one line every `LOG_EVERY`, not a bar's control characters).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// A bar of `total` drawn with `template` (a constant: it cannot fail to parse).
fn bar(total: u64, template: &'static str) -> ProgressBar {
    let b = ProgressBar::new(total);
    b.set_style(ProgressStyle::with_template(template).expect("static template"));
    b
}

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    pos: u64,
    started: Instant,
    last_log: Instant,
    /// What the periodic log line is about.
    what: &'static str,
    /// Counts items (mails, findings), not bytes.
    items: bool,
}

impl Progress {
    /// `total` is in bytes. The bar is drawn only when stderr is a terminal.
    pub fn new(total: u64) -> Progress {
        Progress::of("ingest progress", total)
    }

    /// [`Progress::new`] for another job than an ingest: `what` names its log lines.
    pub fn of(what: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            bar(
                total,
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
        });
        Progress::with(bar, what, total, false)
    }

    /// A phase that counts `total` items (mails composed, delivered): a bar on a
    /// terminal when there are enough to wait for, a log line every `LOG_EVERY` else.
    pub fn phase(what: &'static str, total: u64) -> Progress {
        const WORTH_A_BAR: u64 = 1000;
        let bar = (total >= WORTH_A_BAR && std::io::stderr().is_terminal()).then(|| {
            let b = bar(total, "{spinner} [{elapsed_precise}] {msg} {wide_bar} {human_pos}/{human_len} {per_sec} eta {eta}");
            b.set_message(what);
            b
        });
        Progress::with(bar, what, total, true)
    }

    fn with(bar: Option<ProgressBar>, what: &'static str, total: u64, items: bool) -> Progress {
        let now = Instant::now();
        Progress {
            bar,
            total,
            pos: 0,
            started: now,
            last_log: now,
            what,
            items,
        }
    }

    /// `n` more items done.
    pub fn inc(&mut self, n: u64) {
        self.set(self.pos + n);
    }

    /// A progress that shows nothing (tests, small jobs).
    pub fn hidden() -> Progress {
        let mut p = Progress::new(0);
        if let Some(b) = p.bar.take() {
            b.finish_and_clear();
        }
        p.last_log = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        p
    }

    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            return;
        }
        let now = Instant::now();
        if now >= self.last_log + LOG_EVERY {
            self.last_log = now;
            let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
            if self.items {
                tracing::info!(
                    done = pos,
                    total = self.total,
                    per_s = format_args!("{:.0}", pos as f64 / secs),
                    "{}",
                    self.what
                );
                return;
            }
            tracing::info!(
                bytes = pos,
                total = self.total,
                percent = format_args!("{:.1}", pos as f64 * 100.0 / self.total.max(1) as f64),
                mb_per_s = format_args!("{:.1}", pos as f64 / secs / 1e6),
                "{}",
                self.what
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
