//! A shutdown signal that both kinds of code can watch: synchronous parsing checks a flag
//! between records, async fetching awaits it beside its I/O. One `Cancel` is cloned into
//! every job; `cancel()` on any clone stops them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(watch::channel(false).0),
        }
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.tx.send_replace(true);
    }

    /// Cheap enough to call once per record.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves once `cancel` has been called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we are here.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sleeps for `d` unless cancelled first; returns false if cancelled.
    pub async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_cancelled(),
            _ = self.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_early_when_cancelled_from_another_clone() {
        let c = Cancel::new();
        let other = c.clone();
        let sleeper =
            tokio::spawn(async move { c.sleep(std::time::Duration::from_secs(3600)).await });
        tokio::task::yield_now().await;
        other.cancel();
        assert!(!sleeper.await.unwrap());
        assert!(other.is_cancelled());
        other.cancelled().await;
        assert!(!other.sleep(std::time::Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_uncancelled_sleep_runs_to_its_end() {
        let c = Cancel::new();
        assert!(c.sleep(std::time::Duration::from_secs(5)).await);
    }
}
