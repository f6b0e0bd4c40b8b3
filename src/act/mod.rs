//! Remediation: acting on a finding in the directory itself, after the store and before
//! the digest (which then tells what was done).
//!
//! Two steps, as mail has (`notify`):
//! - [`plan`] turns the findings no digest has covered yet into actions, by the first
//!   `[[remediation.rule]]` their kind, severity and liveness verdict match, one per
//!   account, action and target, and commits them at once. A finding planned twice (a
//!   crash before its digest) plans nothing new: the table's unique key.
//! - [`execute`] does the pending ones in order, each marked `running` before anything is
//!   done and `done` or `failed` after, retried with a doubling delay. A crash between
//!   the two starts it again: every action is idempotent (a flag set, a session list
//!   emptied, a webhook carrying the same action id), so "exactly once" holds for its
//!   effect, as "mailed once" holds for a mail's Message-ID.
//!
//! The guards stand between a forged dump and the organisation's accounts: `dry_run`
//! records what would be done and does nothing; `approval` queues everything for
//! `leakwatch actions approve`; past `max_per_hour` actions started in the last hour, the
//! rest is held for approval and the admins are mailed once; `protected` accounts are
//! never disabled (checked when planned and again when done).

mod command;
mod graph;
pub(crate) mod http;
pub(crate) mod keycloak;
mod ldap;
mod webhook;

use std::collections::HashMap;

use crate::config::{ActionName, Config, RemediationRule};
use crate::notify::message;
use crate::store::{
    ActionRow, ActionStatus, FindingView, MailKind, NewAction, NewMail, Store, StoreError,
};
use crate::timefmt::Clock;

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
}

/// Findings read per query when planning.
const PLAN_PAGE: usize = 2000;
/// Actions read per query when executing.
const EXECUTE_PAGE: u32 = 64;
/// The longest wait between two attempts.
const MAX_RETRY_SECS: i64 = 3600;

/// Where an action is done: each configured system that can do it.
fn targets(cfg: &Config, action: ActionName) -> Vec<&'static str> {
    let r = &cfg.remediation;
    let mut out = Vec::new();
    match action {
        ActionName::Report => {}
        ActionName::ForceChange | ActionName::Disable => {
            if r.ldap.is_some() {
                out.push("ldap");
            }
            if r.keycloak.is_some() {
                out.push("keycloak");
            }
            if r.graph.is_some() {
                out.push("graph");
            }
        }
        ActionName::RevokeSessions => {
            if r.keycloak.is_some() {
                out.push("keycloak");
            }
            if r.graph.is_some() {
                out.push("graph");
            }
        }
        ActionName::Webhook => out.push("webhook"),
        ActionName::Command => out.push("command"),
    }
    out
}

fn rule_for<'r>(rules: &'r [RemediationRule], f: &FindingView) -> Option<&'r RemediationRule> {
    rules.iter().find(|r| {
        (r.kinds.is_empty() || r.kinds.contains(&f.kind))
            && (r.severities.is_empty() || r.severities.contains(&f.severity))
            && r.verdicts.contains(&f.verdict)
    })
}

/// Whether an account is on the `protected` list (by address or username, any case).
pub fn protected(cfg: &Config, email: Option<&str>, username: Option<&str>) -> bool {
    cfg.remediation.protected.iter().any(|p| {
        let p = p.trim();
        email.is_some_and(|e| e.eq_ignore_ascii_case(p))
            || username.is_some_and(|u| u.eq_ignore_ascii_case(p))
    })
}

/// What planning did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub actions: u64,
}

/// Plans the actions that findings not yet in a digest call for. Nothing to do (and no
/// query) without rules.
pub fn plan(cfg: &Config, store: &mut Store, now: i64) -> Result<Planned, ActError> {
    let r = &cfg.remediation;
    if r.rule.is_empty() {
        return Ok(Planned::default());
    }
    // One action per account, action and target: the most severe finding carries it
    // (the earliest among equals).
    // With what urgency: a password known current first, then by severity (so that a
    // ceiling reached mid-batch has spent itself on those).
    let mut chosen: HashMap<(i64, &'static str, &'static str), (Urgency, NewAction)> =
        HashMap::new();
    let ids = store.pending_digest_ids()?;
    for page in ids.chunks(PLAN_PAGE) {
        for f in store.findings_by_ids(page, false)? {
            let Some(rule) = rule_for(&r.rule, &f) else {
                continue;
            };
            for (step, &action) in rule.actions.iter().enumerate() {
                for target in targets(cfg, action) {
                    let status = if action == ActionName::Disable
                        && protected(cfg, Some(&f.email), f.username.as_deref())
                    {
                        ActionStatus::Blocked
                    } else if r.dry_run {
                        ActionStatus::DryRun
                    } else if r.approval {
                        ActionStatus::AwaitingApproval
                    } else {
                        ActionStatus::Pending
                    };
                    let new = NewAction {
                        finding_id: f.id,
                        account_id: f.account.id,
                        severity: f.severity.as_str(),
                        action: action.as_str(),
                        target,
                        step: step as u32,
                        status,
                        result: (status == ActionStatus::Blocked)
                            .then(|| "protected account: never disabled".to_string()),
                    };
                    let key = (f.account.id, action.as_str(), target);
                    let urgency = (
                        u8::from(f.verdict != crate::liveness::Verdict::Current),
                        2 - rank(new.severity),
                    );
                    let replace = chosen.get(&key).is_none_or(|(was, _)| urgency < *was);
                    if replace {
                        chosen.insert(key, (urgency, new));
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Ok(Planned::default());
    }
    let mut rows: Vec<(Urgency, NewAction)> = chosen.into_values().collect();
    // Done in this order (ids follow it): the most urgent account first, and per account
    // the rule's order (a forced change before sessions are revoked). An account's
    // actions share its most urgent finding's urgency.
    let mut account_urgency: HashMap<i64, Urgency> = HashMap::new();
    for (u, a) in &rows {
        let e = account_urgency.entry(a.account_id).or_insert(*u);
        *e = (*e).min(*u);
    }
    rows.sort_by_key(|(_, a)| {
        (
            account_urgency[&a.account_id],
            a.account_id,
            a.step,
            a.target,
        )
    });
    let rows: Vec<NewAction> = rows.into_iter().map(|(_, a)| a).collect();
    let n = store.plan_actions(&rows, now)?;
    if n > 0 {
        let mode = if r.dry_run {
            "dry run: recorded, not done"
        } else if r.approval {
            "awaiting approval"
        } else {
            "to do"
        };
        tracing::info!(actions = n, mode, "remediation planned");
    }
    Ok(Planned { actions: n })
}

/// Lower first: (0 if the leaked password is known current, 2 − severity rank).
type Urgency = (u8, u8);

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 1,
        _ => 0,
    }
}

/// How an attempt failed: `transient` ones are tried again.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub transient: bool,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }
}

/// `sha256=HEX`, the HMAC-SHA256 of `body` under `key` (the webhook action's and the SIEM
/// webhook's signature).
pub fn webhook_signature(key: &[u8], body: &[u8]) -> String {
    webhook::signature(key, body)
}

/// Text from another system (an LDAP diagnostic, a command's stderr) as the log and the
/// digest may show it: one line, no control characters, at most 200 characters.
pub fn clean(s: &str) -> String {
    message::display_name(s)
}

/// What executing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    pub done: u64,
    pub retried: u64,
    pub failed: u64,
    pub held: u64,
}

/// The systems actions are done in, connected on first use and kept for the pass.
struct Systems<'c> {
    cfg: &'c Config,
    rt: &'c tokio::runtime::Handle,
    ldap: Option<ldap::Conn>,
    http: Option<http::Client>,
}

impl Systems<'_> {
    fn http(&mut self) -> Result<&mut http::Client, Failure> {
        if self.http.is_none() {
            self.http = Some(http::Client::new(self.cfg)?);
        }
        Ok(self.http.as_mut().expect("just set"))
    }

    fn run(&mut self, a: &ActionRow, f: &FindingView) -> Result<String, Failure> {
        let cfg = self.cfg;
        let r = &cfg.remediation;
        match (a.target.as_str(), a.action.as_str()) {
            ("ldap", action) => {
                let src = r.ldap.as_ref().ok_or_else(|| unconfigured("ldap"))?;
                if self.ldap.is_none() {
                    self.ldap = Some(ldap::Conn::open(src)?);
                }
                let conn = self.ldap.as_mut().expect("just set");
                let out = conn.act(src, action, &f.email, f.username.as_deref());
                if out.as_ref().is_err_and(|e| e.transient) {
                    // A broken connection is opened anew next time.
                    self.ldap = None;
                }
                out
            }
            ("keycloak", action) => {
                let kc = r
                    .keycloak
                    .as_ref()
                    .ok_or_else(|| unconfigured("keycloak"))?;
                let rt = self.rt;
                let client = self.http()?;
                rt.block_on(keycloak::act(
                    client,
                    kc,
                    action,
                    &f.email,
                    f.username.as_deref(),
                ))
            }
            ("graph", action) => {
                let g = r.graph.as_ref().ok_or_else(|| unconfigured("graph"))?;
                let rt = self.rt;
                let client = self.http()?;
                rt.block_on(graph::act(client, g, action, &f.email))
            }
            ("webhook", _) => {
                let w = r.webhook.as_ref().ok_or_else(|| unconfigured("webhook"))?;
                let body = payload(cfg, a, f);
                let rt = self.rt;
                let client = self.http()?;
                rt.block_on(webhook::send(client, w, a.id, &body))
            }
            ("command", _) => {
                let c = r.command.as_ref().ok_or_else(|| unconfigured("command"))?;
                command::run(c, &payload(cfg, a, f))
            }
            (t, _) => Err(unconfigured(t)),
        }
    }
}

fn unconfigured(target: &str) -> Failure {
    Failure::permanent(format!("[remediation.{target}] is not configured any more"))
}

/// The finding as a webhook or a command receives it: what an admin's tooling needs to
/// act, never the password, its hint or any text of the dump but a checked host name.
pub fn payload(cfg: &Config, a: &ActionRow, f: &FindingView) -> Vec<u8> {
    let body = serde_json::json!({
        "action_id": a.id,
        "action": a.action,
        "organization": cfg.organization.name,
        "account": { "email": f.email, "username": f.username },
        "finding": {
            "id": f.id,
            "kind": f.kind,
            "severity": f.severity,
            "verdict": f.verdict,
            "format": f.format,
            "site": f.site.as_deref().and_then(crate::notify::compose::mail_host),
            "first_seen": crate::timefmt::rfc3339(f.first_seen),
            "exposed_at": crate::timefmt::rfc3339(f.exposed_at()),
        },
    });
    serde_json::to_vec(&body).expect("JSON of plain values")
}

/// Does the actions whose time has come. Holds the rest once `max_per_hour` actions have
/// started in the last hour, and alerts the admins (once an hour at most).
pub fn execute(
    cfg: &Config,
    store: &mut Store,
    clock: &dyn Clock,
    rt: &tokio::runtime::Handle,
) -> Result<Executed, ActError> {
    let r = &cfg.remediation;
    let mut out = Executed::default();
    let mut systems = Systems {
        cfg,
        rt,
        ldap: None,
        http: None,
    };
    let mut after = 0;
    loop {
        let now = clock.now();
        let group = store.due_actions(Some(now), after, EXECUTE_PAGE)?;
        let Some(last) = group.last() else { break };
        after = last.id;
        let ids: Vec<i64> = group.iter().map(|a| a.finding_id).collect();
        let findings: HashMap<i64, FindingView> = store
            .findings_by_ids(&ids, false)?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        for a in &group {
            let now = clock.now();
            if a.approved_by.is_none()
                && store.actions_started_since(now - 3600)? >= u64::from(r.max_per_hour)
            {
                out.held += hold(cfg, store, now)?;
                continue;
            }
            let Some(f) = findings.get(&a.finding_id) else {
                store.start_action(a.id, now)?;
                store.finish_action(
                    a.id,
                    &crate::store::ActionOutcome::Failed {
                        error: "the finding is gone".into(),
                        retry_at: None,
                    },
                    now,
                )?;
                out.failed += 1;
                continue;
            };
            if a.action == ActionName::Disable.as_str()
                && protected(cfg, Some(&f.email), f.username.as_deref())
            {
                store.start_action(a.id, now)?;
                store.finish_action(
                    a.id,
                    &crate::store::ActionOutcome::Failed {
                        error: "protected account: never disabled".into(),
                        retry_at: None,
                    },
                    now,
                )?;
                out.failed += 1;
                continue;
            }
            store.start_action(a.id, now)?;
            let result = systems.run(a, f);
            let now = clock.now();
            let attempts = a.attempts + 1;
            let outcome = match result {
                Ok(done) => {
                    tracing::info!(action = a.id, finding = a.finding_id, what = %a.action, target = %a.target, result = %done, "remediation done");
                    out.done += 1;
                    crate::store::ActionOutcome::Done(done)
                }
                Err(e) => {
                    let retry = e.transient && attempts < i64::from(r.max_attempts);
                    let delay = (r.retry_interval_secs as i64)
                        .saturating_mul(1 << (attempts - 1).clamp(0, 20))
                        .min(MAX_RETRY_SECS);
                    if retry {
                        out.retried += 1;
                        tracing::warn!(action = a.id, what = %a.action, target = %a.target, attempts, retry_in_secs = delay, error = %e.message, "remediation failed, will retry");
                    } else {
                        out.failed += 1;
                        tracing::error!(action = a.id, what = %a.action, target = %a.target, attempts, error = %e.message, "remediation failed");
                    }
                    crate::store::ActionOutcome::Failed {
                        error: e.message,
                        retry_at: retry.then_some(now + delay),
                    }
                }
            };
            store.finish_action(a.id, &outcome, now)?;
        }
    }
    if out != Executed::default() {
        tracing::info!(
            done = out.done,
            retried = out.retried,
            failed = out.failed,
            held = out.held,
            "remediation pass"
        );
    }
    Ok(out)
}

/// The ceiling is reached: holds what nobody approved, and mails the admins unless they
/// were mailed in the last hour.
fn hold(cfg: &Config, store: &mut Store, now: i64) -> Result<u64, ActError> {
    let r = &cfg.remediation;
    let alerted = store
        .meta_value("actions_alerted_at")?
        .is_some_and(|t| t > now - 3600);
    let why = format!(
        "held: {} actions started in the last hour (max_per_hour)",
        r.max_per_hour
    );
    let mut alerts = Vec::new();
    if !alerted {
        let (subject, text) = match cfg.notify.admin_lang {
            crate::config::Lang::Fr => (
                format!("[leakwatch] {} : actions de remédiation suspendues", cfg.organization.name),
                format!(
                    "leakwatch a atteint le plafond de {} actions par heure et a suspendu les suivantes.\n\
                     Un afflux soudain de découvertes peut venir d'un fichier forgé : vérifiez la source avant d'agir.\n\n\
                     Sur l'hôte leakwatch :\n  leakwatch actions list\n  leakwatch actions approve ID... | --all\n  leakwatch actions reject ID... | --all\n",
                    r.max_per_hour
                ),
            ),
            crate::config::Lang::En => (
                format!("[leakwatch] {}: remediation actions held", cfg.organization.name),
                format!(
                    "leakwatch reached its ceiling of {} actions per hour and held the rest.\n\
                     A sudden flood of findings may come from a forged dump: check its source before acting.\n\n\
                     On the leakwatch host:\n  leakwatch actions list\n  leakwatch actions approve ID... | --all\n  leakwatch actions reject ID... | --all\n",
                    r.max_per_hour
                ),
            ),
        };
        // Our own text: nothing to escape but the organisation's name.
        let html = format!(
            "<pre>{}</pre>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
        let rendered = crate::notify::template::Rendered {
            subject,
            text,
            html,
        };
        for admin in &cfg.notify.admins {
            alerts.push(NewMail {
                kind: MailKind::Digest,
                recipient: admin.email.to_string(),
                message: message::build(&cfg.notify.from, admin, &rendered, None, now, None, None)?,
            });
        }
    }
    let held = store.hold_unapproved_actions(&why, &alerts, now)?;
    if held > 0 {
        tracing::warn!(
            held,
            max_per_hour = r.max_per_hour,
            alerted = !alerts.is_empty(),
            "remediation ceiling reached: actions held for approval"
        );
    }
    Ok(held)
}

/// Who settles an action from the command line: the login, and who ran `sudo` if anyone.
pub fn operator() -> String {
    let login = users_name(unsafe_getuid());
    match std::env::var("SUDO_USER") {
        Ok(s) if !s.is_empty() && s != login => format!("{login} (sudo by {})", clean(&s)),
        _ => login,
    }
}

fn unsafe_getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

fn users_name(uid: u32) -> String {
    // The name from /etc/passwd when there is one: no NSS call, which may not be
    // thread-safe or present in a hardened unit.
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_other_systems_is_one_clean_line() {
        assert_eq!(clean("bad\r\nX-Evil: 1\u{1b}[31m"), "bad X-Evil: 1 [31m");
        assert!(clean(&"x".repeat(500)).chars().count() <= 200);
    }
}
