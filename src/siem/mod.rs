//! Findings to the SIEM: each new or raised finding as one JSON event with Elastic Common
//! Schema field names where they fit, sent by syslog (RFC 5424) and/or an HTTPS webhook.
//!
//! The events are queued with the admins' digest, in its transaction (`siem_queue`), so a
//! finding is exported once whatever happens; delivery then works from the queue after
//! the mail, retried with a doubling delay up to `[notify] max_attempts`, as mail is.
//! The event is rendered at delivery from the finding as it then is.
//!
//! What an event carries: the account (the organisation's own data, sent to the
//! organisation's own SIEM), the finding's kind, severity, verdict, format, dates and
//! sightings, and a site that passed the mails' host-name check. Never the password, its
//! hint or a hash of it, a source path or any other text of the dump.

pub mod syslog;

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Config;
use crate::liveness::Verdict;
use crate::store::{FindingKind, FindingView, Severity, Store, StoreError};
use crate::timefmt;

/// Events read per query when delivering.
const PAGE: u32 = 256;

/// The targets configured, as queue rows name them.
pub fn targets(cfg: &Config) -> Vec<&'static str> {
    let mut t = Vec::new();
    if cfg.siem.syslog.is_some() {
        t.push("syslog");
    }
    if cfg.siem.webhook_url.is_some() {
        t.push("webhook");
    }
    t
}

/// ECS `event.severity` (0–100) and syslog's severity for a finding.
fn severities(s: Severity) -> (u8, u8) {
    match s {
        Severity::Critical => (90, 2),
        Severity::High => (70, 3),
        Severity::Medium => (50, 4),
    }
}

/// The finding as one ECS event.
pub fn event(cfg: &Config, f: &FindingView, now: i64) -> serde_json::Value {
    let what = match f.kind {
        FindingKind::Password => "a password",
        FindingKind::PasswordHash => "a password hash",
        FindingKind::Session => "login session cookies",
        FindingKind::Identity => "the address, without a password",
    };
    serde_json::json!({
        "@timestamp": timefmt::rfc3339(now),
        "message": format!("leakwatch: {what} of an account of {} found in a leak", cfg.organization.name),
        "ecs": { "version": "8.11.0" },
        "event": {
            "kind": "alert",
            "category": ["iam", "threat"],
            "type": ["indicator"],
            "dataset": "leakwatch.finding",
            "provider": "leakwatch",
            "id": f.id.to_string(),
            "severity": severities(f.severity).0,
            "created": timefmt::rfc3339(f.first_seen),
        },
        "user": {
            "email": f.email,
            "name": f.username,
        },
        "organization": { "name": cfg.organization.name },
        "observer": { "vendor": "leakwatch", "product": "leakwatch", "version": env!("CARGO_PKG_VERSION") },
        "threat": {
            "indicator": {
                "type": "email-addr",
                "provider": "leakwatch",
                "first_seen": timefmt::rfc3339(f.first_seen),
                "last_seen": timefmt::rfc3339(f.last_seen),
                "sightings": f.times_seen,
                "description": format!("{what} exposed ({})", f.format),
            }
        },
        "leakwatch": {
            "finding_id": f.id,
            "kind": f.kind,
            "severity": f.severity,
            "verdict": f.verdict,
            "forces_reset": f.kind != FindingKind::Identity && f.verdict.forces_reset(),
            "current_password": f.verdict == Verdict::Current,
            "format": f.format,
            "site": f.site.as_deref().and_then(crate::notify::compose::mail_host),
            "exposed_at": timefmt::rfc3339(f.exposed_at()),
            "infected_device": f.device.is_some(),
        },
    })
}

/// What a delivery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Sends the events whose time has come. A target out of reach defers its events (the
/// next pass tries again); the other target goes on.
pub fn deliver(
    cfg: &Config,
    store: &Store,
    rt: &tokio::runtime::Handle,
    now: i64,
) -> Result<Exported, StoreError> {
    let mut out = Exported::default();
    let timeout = Duration::from_secs(cfg.siem.timeout_secs);
    let host = hostname();
    let mut syslog: Option<Result<syslog::Sender, String>> = None;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .ok();
    let key = cfg
        .siem
        .webhook_secret_file
        .as_ref()
        .map(|p| crate::secret::read_secret_file(p).map_err(|e| e.to_string()));
    let mut after = 0;
    loop {
        let group = store.pending_siem(now, after, PAGE)?;
        let Some(last) = group.last() else { break };
        after = last.id;
        let ids: Vec<i64> = group.iter().map(|r| r.finding_id).collect();
        let findings: HashMap<i64, FindingView> = store
            .findings_by_ids(&ids, false)?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        let mut outcomes = Vec::with_capacity(group.len());
        for row in &group {
            let Some(f) = findings.get(&row.finding_id) else {
                outcomes.push((row.id, Some(("the finding is gone".to_string(), None))));
                continue;
            };
            let body = event(cfg, f, now).to_string();
            let sent: Result<(), String> = match row.target.as_str() {
                "syslog" => {
                    let target = cfg.siem.syslog.as_deref().and_then(syslog::Target::parse);
                    match target {
                        None => Err("[siem] syslog is not configured any more".into()),
                        Some(target) => {
                            let sender = syslog.get_or_insert_with(|| {
                                syslog::Sender::open(&target, timeout).map_err(|e| e.to_string())
                            });
                            match sender {
                                Ok(s) => {
                                    let line = syslog::line(
                                        severities(f.severity).1,
                                        &timefmt::rfc3339(now),
                                        &host,
                                        &body,
                                    );
                                    s.send(&line).map_err(|e| e.to_string())
                                }
                                Err(e) => Err(e.clone()),
                            }
                        }
                    }
                }
                "webhook" => match (&cfg.siem.webhook_url, &client, &key) {
                    (None, _, _) => Err("[siem] webhook_url is not configured any more".into()),
                    (_, None, _) => Err("HTTP client".into()),
                    (_, _, Some(Err(e))) => Err(e.clone()),
                    (Some(url), Some(client), key) => {
                        let sig = match key {
                            Some(Ok(k)) => Some(crate::act::webhook_signature(
                                k.expose().as_bytes(),
                                body.as_bytes(),
                            )),
                            _ => None,
                        };
                        rt.block_on(post(client, url, sig, &body))
                    }
                },
                other => Err(format!("unknown target {other}")),
            };
            outcomes.push((
                row.id,
                match sent {
                    Ok(()) => {
                        out.sent += 1;
                        None
                    }
                    Err(e) => {
                        let attempts = row.attempts + 1;
                        let retry = attempts < i64::from(cfg.notify.max_attempts);
                        if retry {
                            out.deferred += 1;
                        } else {
                            out.failed += 1;
                        }
                        let delay = (cfg.notify.retry_interval_secs as i64)
                            .saturating_mul(1 << (attempts - 1).clamp(0, 20))
                            .min(6 * 3600);
                        Some((crate::act::clean(&e), retry.then_some(now + delay)))
                    }
                },
            ));
        }
        store.mark_siem(&outcomes, now)?;
    }
    if out != Exported::default() {
        tracing::info!(
            sent = out.sent,
            deferred = out.deferred,
            failed = out.failed,
            "findings exported to the SIEM"
        );
    }
    Ok(out)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    sig: Option<String>,
    body: &str,
) -> Result<(), String> {
    let mut req = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(s) = sig {
        req = req.header("X-Leakwatch-Signature", s);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}
