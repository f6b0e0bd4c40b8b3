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
pub mod digest;
pub mod dkim;
pub mod message;
mod pace;
pub mod template;
pub mod transport;

use crate::config::Config;
use crate::progress::Progress;
use crate::store::{Store, StoreError};
use crate::timefmt::Clock;

pub use compose::{compose, selfcheck as template_selfcheck, Composed};
pub use template::Templates;
pub use transport::Transport;

/// Messages delivered, then marked in one transaction, per group; the queue is read a
/// group at a time, so a backlog of any size is never all in memory. A crash between a
/// group's deliveries and its marks sends at most this many messages a second time, each
/// with the same Message-ID as the first (docs/design.md's "exactly once" says so).
pub const DELIVERY_GROUP: u32 = 64;
/// Messages logged one by one per run; the rest at debug level (progress lines and the
/// summary count them all).
const DELIVERIES_LOGGED: u64 = 100;
/// Outbox files written at once by the file transport.
const FILE_WRITERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error(transparent)]
    Dkim(#[from] dkim::DkimError),
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// The forced-reset list could not be written: the digest is not sent without it.
    #[error("forced-reset list under {path}: {source}")]
    Report {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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
///
/// Up to `max_connections` messages are in flight at once over pooled SMTP sessions
/// (`rate_per_domain` paces each recipient domain), a group of [`DELIVERY_GROUP`] at a
/// time, whose outcomes commit together. A stall (a server that stopped answering, an
/// outbox that cannot be written) ends the flush: what was not started waits, untried,
/// for the next run.
pub async fn deliver(
    cfg: &Config,
    store: &Store,
    transport: &Transport,
    clock: &dyn Clock,
    due_only: bool,
) -> Result<Delivered, NotifyError> {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    let started = std::time::Instant::now();
    let mut out = Delivered::default();
    let (concurrency, rate) = match (&transport, &cfg.notify.smtp) {
        (Transport::Smtp { .. }, Some(smtp)) => {
            (smtp.max_connections.max(1) as usize, smtp.rate_per_domain)
        }
        _ => (FILE_WRITERS, 0),
    };
    let mut pacer = pace::Pacer::new(rate);
    let mut progress = Progress::phase("delivering mail", store.mail_counts()?.pending);
    let mut logged = 0u64;
    let mut after = 0;
    let stalled = AtomicBool::new(false);
    loop {
        let due_by = due_only.then(|| clock.now());
        let group = store.pending_mail(due_by, after, DELIVERY_GROUP)?;
        let Some(last) = group.last() else { break };
        after = last.id;
        if stalled.load(Ordering::Relaxed) {
            out.deferred += group.len() as u64;
            continue;
        }
        let starts: Vec<_> = group.iter().map(|m| pacer.slot(&m.recipient)).collect();
        let stalled = &stalled;
        let results: Vec<Option<Result<(), transport::DeliveryError>>> =
            futures_util::stream::iter(group.iter().zip(starts).map(|(mail, start)| async move {
                if let Some(at) = start {
                    tokio::time::sleep_until(at.into()).await;
                }
                // After a stall the rest waits, untried (no attempt counted).
                if stalled.load(Ordering::Relaxed) {
                    return None;
                }
                let r = transport.deliver(mail).await;
                if r.as_ref().is_err_and(|e| e.stalled) {
                    stalled.store(true, Ordering::Relaxed);
                }
                Some(r)
            }))
            .buffered(concurrency)
            .collect()
            .await;
        let outcomes: Vec<(i64, crate::store::Attempt<'_>)> = group
            .iter()
            .zip(&results)
            .filter_map(|(mail, r)| {
                let r = r.as_ref()?;
                Some((
                    mail.id,
                    r.as_ref()
                        .map(|_| ())
                        .map_err(|e| (e.message.as_str(), e.permanent)),
                ))
            })
            .collect();
        store.mark_outcomes(&outcomes, clock.now(), cfg.notify.max_attempts)?;
        for (mail, r) in group.iter().zip(&results) {
            match r {
                None => out.deferred += 1,
                Some(Ok(())) => {
                    out.sent += 1;
                    logged += 1;
                    if logged <= DELIVERIES_LOGGED {
                        tracing::info!(mail = mail.id, kind = %mail.kind, "mail delivered");
                    } else {
                        tracing::debug!(mail = mail.id, kind = %mail.kind, "mail delivered");
                    }
                }
                Some(Err(e)) => {
                    let give_up =
                        e.permanent || mail.attempts + 1 >= i64::from(cfg.notify.max_attempts);
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
        progress.inc(group.len() as u64);
    }
    progress.finish();
    transport.close().await;
    if logged > DELIVERIES_LOGGED {
        tracing::info!(
            more = logged - DELIVERIES_LOGGED,
            "further deliveries logged at debug level only"
        );
    }
    if stalled.load(Ordering::Relaxed) {
        tracing::warn!(
            left = out.deferred,
            "delivery stalled (the SMTP server stopped answering, or the outbox cannot be written): the rest of the queue waits for the next run"
        );
    }
    // Each phase's time in the log: what an admin (and `benches/heavy.sh`) reads.
    tracing::info!(
        sent = out.sent,
        deferred = out.deferred,
        failed = out.failed,
        secs = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        "queue delivered"
    );
    Ok(out)
}
