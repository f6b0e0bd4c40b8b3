//! The pipeline's stages held open together, for one command or one feed run.
//!
//! `leakwatch ingest` and every feed of the daemon go through here, so that a dump
//! found by a feed and a dump handed over by an admin give the same findings, the same
//! deduplication and the same mail. Two steps:
//!
//! - `Pipeline`: the store, the filter and the fingerprint key, open for recording
//!   (parsed inputs through `Ingest`, or hashes an API reported through `record_hit`);
//! - `notify_pass`: compose what the findings owe and deliver the queue, under the state
//!   lock so that two runs never compose or send the same mail.

use crate::accounts::{self, ImportError};
use crate::cancel::Cancel;
use crate::config::Config;
use crate::filter::AccountFilter;
use crate::fingerprint::{Fingerprinter, KeyError};
use crate::identity::{IdentityHash, Normalizer};
use crate::ingest::Ingest;
use crate::liveness::ntlm::CurrentPasswords;
use crate::notify::{self, Composed, Delivered, NotifyError, Templates, Transport};
use crate::parse::Format;
use crate::store::{
    FindingKind, Severity, Sighting, SightingOutcome, StateLock, Store, StoreError,
};
use crate::timefmt::Clock;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Filter(#[from] ImportError),
    #[error("installation key: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Liveness(#[from] crate::liveness::ntlm::NtError),
}

pub struct Pipeline<'c> {
    cfg: &'c Config,
    pub store: Store,
    filter: AccountFilter,
    fingerprinter: Fingerprinter,
    /// How the directory holds its passwords (`[liveness]`), when configured.
    nt: Option<CurrentPasswords>,
}

/// One identity hash a remote API reported, with what is known of the leak.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    pub hash: IdentityHash,
    /// `Some` when the leak exposed a credential: its fingerprint is keyed on this text
    /// (for APIs that report which site's password leaked but not the password).
    pub credential_of: Option<&'a str>,
    pub site: Option<&'a str>,
    pub format: Format,
    pub source: &'a str,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOutcome {
    /// Not one of ours (or a Bloom false positive).
    NoAccount,
    New(i64),
    Seen(i64),
}

/// What the directory says of its accounts' passwords (`liveness`): the NT hash export,
/// then LDAP (its last password changes written to the accounts, its salted hashes held
/// with the export's). `None` when neither is configured. LDAP out of reach is a warning:
/// its hashes are then not compared (the findings stay "unknown", so still forced) and
/// the dates stay those of its last read.
fn current_passwords(
    cfg: &Config,
    store: &mut Store,
) -> Result<Option<CurrentPasswords>, PipelineError> {
    let live = &cfg.liveness;
    if live.nt_hashes_file.is_none() && live.ldap.is_none() && live.keycloak.is_none() {
        return Ok(None);
    }
    let norm = Normalizer::new(&cfg.organization);
    let Some(keys) = store.key_index() else {
        return Ok(None);
    };
    // Keycloak's dates are written first and the LDAP read's after: an account in both
    // keeps the directory's.
    let mut keycloak_changes = None;
    let now = chrono::Utc::now().timestamp();
    if let Some(kc) = &live.keycloak {
        let last = store.meta_value("keycloak_read_at")?;
        if last.is_none_or(|t| now - t >= live.keycloak_refresh_secs as i64 || t > now) {
            match crate::liveness::keycloak::read(cfg, kc, &norm, keys) {
                Ok(read) => {
                    tracing::info!(
                        realm = %kc.realm,
                        users = read.users,
                        accounts = read.matched,
                        changes = read.changed.len(),
                        "Keycloak read: password dates"
                    );
                    keycloak_changes = Some(read.changed);
                }
                Err(e) => tracing::warn!(
                    realm = %kc.realm,
                    error = %e,
                    "Keycloak not read: its password dates are those of its last read"
                ),
            }
        }
    }
    if let Some(changed) = keycloak_changes {
        store.set_password_changes(&changed)?;
        store.set_meta_value("keycloak_read_at", now)?;
    }
    let Some(keys) = store.key_index() else {
        return Ok(None);
    };
    let mut out = CurrentPasswords::default();
    if let Some(path) = &live.nt_hashes_file {
        out = CurrentPasswords::load(path, &norm, keys)?;
        tracing::info!(
            file = %path.display(),
            accounts = out.matched,
            unmatched = out.unmatched,
            malformed = out.malformed,
            malformed_lines = ?out.malformed_lines,
            "NT hash export read"
        );
    }
    if let Some(src) = &live.ldap {
        match crate::liveness::ldap::read(src, &norm, keys) {
            Ok(read) => {
                tracing::info!(
                    url = %src.url,
                    entries = read.entries,
                    accounts = read.matched,
                    changes = read.changed.len(),
                    hashes = read.hashes.len(),
                    other_schemes = read.other_schemes,
                    "directory read over LDAP"
                );
                let crate::liveness::ldap::FromLdap {
                    changed, hashes, ..
                } = read;
                for (id, h) in hashes {
                    out.add(id, h);
                }
                store.set_password_changes(&changed)?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "directory not read over LDAP: its hashes are not compared this run")
            }
        }
    }
    Ok(Some(out.with_slow_budget(std::time::Duration::from_secs(
        live.slow_hash_budget_secs,
    ))))
}

impl<'c> Pipeline<'c> {
    pub fn open(cfg: &'c Config) -> Result<Pipeline<'c>, PipelineError> {
        let mut store = Store::open(cfg.state_dir())?;
        let fingerprinter = Fingerprinter::open(cfg.state_dir())?;
        let filter = accounts::load_filter(cfg, &mut store)?;
        if filter.items() == 0 {
            tracing::warn!(
                "the directory is empty: run `leakwatch accounts import FILE.csv` first"
            );
        }
        let nt = current_passwords(cfg, &mut store)?;
        Ok(Pipeline {
            cfg,
            store,
            filter,
            fingerprinter,
            nt,
        })
    }

    /// An ingest over this pipeline's stages.
    /// A file's path as logs and the store show it: a device folder (`root`, a prefix of
    /// `path`) named by its keyed label, not by the HWID or IP its name may hold.
    pub fn shown_path(&self, path: &str, root: Option<&str>) -> String {
        match root {
            Some(r) => self.fingerprinter.redact_folder(path, r),
            None => path.to_string(),
        }
    }

    pub fn ingest<'p>(&'p mut self, clock: &'p dyn Clock, cancel: Option<&Cancel>) -> Ingest<'p> {
        let run = Ingest::new(
            self.cfg,
            &mut self.store,
            &self.filter,
            &self.fingerprinter,
            self.nt.as_ref(),
            clock,
        );
        match cancel {
            Some(c) => run.with_cancel(c.clone()),
            None => run,
        }
    }

    /// Records a hash a remote API reported, if it is one of the organisation's.
    pub fn record_hit(&mut self, hit: &Hit<'_>, now: i64) -> Result<HitOutcome, StoreError> {
        if !self.filter.may_contain(&hit.hash) {
            return Ok(HitOutcome::NoAccount);
        }
        let Some(account) = self.store.confirm(&hit.hash)? else {
            return Ok(HitOutcome::NoAccount);
        };
        let (kind, fp) = match hit.credential_of {
            Some(c) => (
                FindingKind::Password,
                Some(self.fingerprinter.password(account.id, c)),
            ),
            None => (FindingKind::Identity, None),
        };
        let outcome = self.store.record_sighting(&Sighting {
            account_id: account.id,
            kind,
            secret_fp: fp,
            password_hint: None,
            identity_hash: hit.hash,
            site: hit.site,
            format: hit.format,
            source: hit.source,
            seen_at: now,
            severity: hit.severity,
            device_id: None,
            hash_algo: None,
            // An API reports no password to compare.
            password_current: None,
        })?;
        Ok(match outcome {
            SightingOutcome::New(id) | SightingOutcome::Escalated(id) => {
                tracing::info!(finding = id, account = account.id, kind = kind.as_str(), source = %hit.source, "new finding");
                HitOutcome::New(id)
            }
            SightingOutcome::Seen(id) => HitOutcome::Seen(id),
        })
    }
}

/// What one notify pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotifyOutcome {
    pub composed: Composed,
    pub delivered: Delivered,
}

/// Composes the mail that recorded findings owe, then delivers the queue (only messages
/// whose retry time has come when `due_only`). Holds the state lock throughout. A mail
/// transport that cannot be set up (an unreadable password file, say) leaves the mail
/// queued and is logged; it does not fail the pass.
pub fn notify_pass(
    cfg: &Config,
    store: &mut Store,
    clock: &dyn Clock,
    rt: &tokio::runtime::Handle,
    due_only: bool,
) -> Result<NotifyOutcome, NotifyError> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let templates = Templates::load(cfg.notify.templates_dir.as_deref())?;
    act_pass(cfg, store, clock, rt);
    let composed = notify::compose(cfg, store, &templates, clock.now())?;
    let delivered = deliver_queue(cfg, store, clock, rt, due_only)?;
    purge_if_due(cfg, store, clock.now());
    crate::metrics::write_textfile(cfg, store);
    Ok(NotifyOutcome {
        composed,
        delivered,
    })
}

/// Applies `[retention]` at most once a day (it scans the findings; a run a minute
/// should not). A failure is logged: what is due is purged next time.
pub fn purge_if_due(cfg: &Config, store: &mut Store, now: i64) {
    let due = store
        .meta_value("purged_at")
        .ok()
        .flatten()
        .is_none_or(|t| now - t >= 86_400 || t > now);
    if !due {
        return;
    }
    match store.purge(&cfg.retention.cutoffs(now)) {
        Ok(d) => {
            if d != crate::store::Deleted::default() {
                tracing::info!(
                    findings = d.findings,
                    sightings = d.sightings,
                    unknown_identities = d.unknown_identities,
                    mails = d.mails,
                    feed_runs = d.feed_runs,
                    devices = d.devices,
                    "retention: older data purged"
                );
            }
            if let Err(e) = store.set_meta_value("purged_at", now) {
                tracing::warn!(error = %e, "retention: purge time not recorded");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "retention: purge failed; tried again after the next run")
        }
    }
}

/// Plans the actions new findings call for and does those due (`act`), before the digest
/// that tells them; the caller holds the state lock. A failure is logged and leaves the
/// actions where they are (planned again, or done at the next pass): mail still goes out.
pub fn act_pass(cfg: &Config, store: &mut Store, clock: &dyn Clock, rt: &tokio::runtime::Handle) {
    let planned = crate::act::plan(cfg, store, clock.now());
    let done = planned.and_then(|_| crate::act::execute(cfg, store, clock, rt));
    if let Err(e) = done {
        tracing::error!(error = %e, "remediation pass stopped: its actions wait for the next pass");
    }
}

/// Delivers the queue; the caller holds the state lock.
pub fn deliver_queue(
    cfg: &Config,
    store: &Store,
    clock: &dyn Clock,
    rt: &tokio::runtime::Handle,
    due_only: bool,
) -> Result<Delivered, NotifyError> {
    // Built inside the runtime: its sessions live there.
    let delivered = rt.block_on(async {
        match Transport::from_config(cfg) {
            Ok(t) => Ok(notify::deliver(cfg, store, &t, clock, due_only).await),
            Err(e) => Err(e),
        }
    });
    if let Ok(Ok(d)) = &delivered {
        if let Err(e) = store.add_counter("mail_deferred", d.deferred) {
            tracing::warn!(error = %e, "metrics counters not updated");
        }
    }
    // The SIEM's events after the mail: its own queue and retries, never holding mail up.
    if !crate::siem::targets(cfg).is_empty() {
        if let Err(e) = crate::siem::deliver(cfg, store, rt, clock.now()) {
            tracing::error!(error = %e, "SIEM export stopped: its events stay queued");
        }
    }
    match delivered {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "mail transport unavailable: mail stays queued");
            Ok(Delivered {
                deferred: store.mail_counts()?.pending,
                ..Delivered::default()
            })
        }
    }
}
