//! Notification: telling the affected users and the admins, exactly once.
//!
//! Last stage of the pipeline, and it works only from the store. `compose` turns findings
//! that nobody has been told about into queued messages (in the transaction that marks
//! them told); `deliver` sends what is queued and records each outcome. Because the two
//! are separate, a crash at any point leaves either findings still owed a mail (composed
//! next time) or mails still queued (delivered next time), never a finding forgotten or
//! a message composed twice.
//!
//! User mails carry no link and ask for nothing: they say what leaked and where, and what
//! to do. The admins' digest carries the forced-reset list as a CSV attachment.

pub mod compose;
pub mod message;
pub mod template;
pub mod transport;

use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::timefmt::Clock;

pub use compose::{compose, selfcheck as template_selfcheck, Composed};
pub use template::Templates;
pub use transport::Transport;

/// Messages fetched from the queue at a time, so a large backlog is never all in memory.
const QUEUE_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u64,
    /// Failed this time and still queued for a retry.
    pub deferred: u64,
    /// Failed for good (permanent error or attempts used up); kept for `mail retry`.
    pub failed: u64,
}

/// Delivers queued messages. `due_only` honours the retry backoff (the daemon); without
/// it every pending message is tried now (an admin's `ingest` or `mail flush`).
pub async fn deliver(
    cfg: &Config,
    store: &Store,
    transport: &Transport,
    clock: &dyn Clock,
    due_only: bool,
) -> Result<Delivered, NotifyError> {
    let mut out = Delivered::default();
    let mut after = 0;
    let mut stalled = false;
    loop {
        let due_by = due_only.then(|| clock.now());
        let page = store.pending_mail(due_by, after, QUEUE_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for mail in &page {
            // After a stall the rest waits, untried (no attempt counted), for the next run.
            if stalled {
                out.deferred += 1;
                continue;
            }
            match transport.deliver(mail).await {
                Ok(()) => {
                    store.mark_sent(mail.id, clock.now())?;
                    out.sent += 1;
                    tracing::info!(mail = mail.id, kind = %mail.kind, "mail delivered");
                }
                Err(e) => {
                    stalled = e.stalled;
                    let give_up =
                        e.permanent || mail.attempts + 1 >= i64::from(cfg.notify.max_attempts);
                    store.mark_attempt_failed(
                        mail.id,
                        &e.message,
                        clock.now(),
                        e.permanent,
                        cfg.notify.max_attempts,
                    )?;
                    if give_up {
                        out.failed += 1;
                        tracing::error!(mail = mail.id, kind = %mail.kind, error = %e, "mail failed for good; see `leakwatch mail list`");
                    } else {
                        out.deferred += 1;
                        tracing::warn!(mail = mail.id, kind = %mail.kind, error = %e, "mail deferred, will retry");
                    }
                }
            }
        }
    }
    if stalled {
        tracing::warn!(
            left = out.deferred,
            "delivery stalled (the SMTP server stopped answering, or the outbox cannot be written): the rest of the queue waits for the next run"
        );
    }
    Ok(out)
}
