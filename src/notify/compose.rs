//! Composing notifications from the store: one mail per affected user listing everything
//! new about them, and one digest per admin. The mails and the marks on what they cover
//! commit in one transaction (see `Store::queue_notifications`), which is what makes
//! "mailed exactly once" hold across crashes: either both happened or neither did.

use std::collections::BTreeMap;

use serde::Serialize;

use super::digest::{
    self, BySeverity, DigestAction, DigestBuilder, DigestCtx, DigestDevice, DigestFinding,
    DigestUnknown, ResetList, Sections, SourceCount,
};
use super::message::{self, CsvAttachment};
use super::template::Templates;
use super::NotifyError;
use crate::config::Config;
use crate::progress::Progress;
use crate::store::{FindingKind, FindingView, MailKind, NewMail, NotificationBatch, Store};
use crate::timefmt;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Composed {
    pub user_mails: u64,
    pub digest_mails: u64,
    /// Findings whose owner could not be mailed (address lettre refuses); the digest lists them.
    pub undeliverable: u64,
    /// Accounts not mailed because they opted out (`leakwatch optout`).
    pub opted_out: u64,
}

#[derive(Serialize)]
struct Exposure {
    kind: &'static str,
    site: Option<String>,
    format: String,
    first_seen: String,
    hint: Option<String>,
    /// For `password_hash`, the algorithm (`bcrypt`, `md5/ntlm`, …).
    algorithm: Option<String>,
}

#[derive(Serialize)]
struct UserCtx<'a> {
    org_name: &'a str,
    name: Option<&'a str>,
    email: &'a str,
    has_password: bool,
    exposures: Vec<Exposure>,
}

/// `sso.agence-exemple.fr` → `sso[.]agence-exemple[.]fr`: mail clients turn host names
/// into links, and the user mail must carry none.
pub fn defang(host: &str) -> String {
    host.replace('.', "[.]")
}

/// The site of a finding as a mail may name it: a host name, IDNA-normalised (so that
/// fullwidth dots and other lookalikes become what a browser would go to), of letters,
/// digits and hyphens in labels of 1–63 bytes, 253 bytes at most; `None` for anything
/// else. A site is text the dump chose (`sso[.]agence-exemple[.]fr — urgent, call +33…`
/// was once mailed as it came): a mail that cannot name a host names none.
pub fn mail_host(site: &str) -> Option<String> {
    // A cookie's domain (`.example.net`) names the same host.
    let site = site.strip_prefix('.').unwrap_or(site);
    let ascii = idna::domain_to_ascii(site).ok()?;
    let ldh = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    (ascii.len() <= 253 && ascii.split('.').all(ldh)).then_some(ascii)
}

/// Accounts whose user mails are composed and queued per transaction: memory holds one
/// page of findings and mails, whatever the number owed; each page's mails and the marks
/// on what they cover commit together, so a crash between pages composes nothing twice.
const USER_PAGE: usize = 1000;
/// Findings read per query for the digest.
const DIGEST_PAGE: usize = 2000;

/// Composes and queues everything the store owes: user mails for findings not yet told,
/// and a digest of everything not yet digested. Does nothing when nothing is owed.
pub fn compose(
    cfg: &Config,
    store: &mut Store,
    templates: &Templates,
    now: i64,
) -> Result<Composed, NotifyError> {
    let started = std::time::Instant::now();
    let mut out = Composed::default();
    let dkim = cfg
        .notify
        .dkim
        .as_ref()
        .map(super::dkim::DkimSigner::load)
        .transpose()?;
    let optouts = store.optouts()?;
    let pending = store.pending_user_mail_ids()?;
    let total_accounts = pending.chunk_by(|a, b| a.0 == b.0).count() as u64;
    let mut progress = Progress::phase("composing user mail", total_accounts);
    let mut rest = &pending[..];
    while !rest.is_empty() {
        // A page ends at an account's last finding.
        let mut end = 0;
        let mut accounts = 0;
        while end < rest.len() && accounts < USER_PAGE {
            let account = rest[end].0;
            while end < rest.len() && rest[end].0 == account {
                end += 1;
            }
            accounts += 1;
        }
        let (page, after) = rest.split_at(end);
        rest = after;
        let ids: Vec<i64> = page.iter().map(|p| p.1).collect();
        let findings = store.findings_by_ids(&ids, false)?;
        let batch = compose_users(
            cfg,
            templates,
            &findings,
            now,
            &mut out,
            dkim.as_ref(),
            &optouts,
        );
        if !batch.user_mails.is_empty() || !batch.user_skipped.is_empty() {
            store.queue_notifications(&batch, now)?;
        }
        progress.inc(accounts as u64);
    }
    progress.finish();
    let mut batch = NotificationBatch::default();
    compose_digest(
        cfg,
        store,
        templates,
        now,
        &mut out,
        &mut batch,
        dkim.as_ref(),
    )?;
    if !batch.digest_mails.is_empty() {
        store.queue_notifications(&batch, now)?;
    }
    tracing::info!(
        user = out.user_mails,
        digest = out.digest_mails,
        secs = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        "mail composed"
    );
    Ok(out)
}

/// One page of user mails: one per account of `findings`.
fn compose_users(
    cfg: &Config,
    templates: &Templates,
    findings: &[FindingView],
    now: i64,
    out: &mut Composed,
    dkim: Option<&super::dkim::DkimSigner>,
    optouts: &std::collections::HashSet<String>,
) -> NotificationBatch {
    let mut batch = NotificationBatch::default();
    let mut by_account: BTreeMap<i64, Vec<&FindingView>> = BTreeMap::new();
    for f in findings {
        by_account.entry(f.account.id).or_default().push(f);
    }
    for findings in by_account.values() {
        let ids: Vec<i64> = findings.iter().map(|f| f.id).collect();
        if !cfg.notify.users {
            batch.user_skipped.extend(ids);
            continue;
        }
        // Asked not to be mailed again: the digest still lists the findings.
        if optouts.contains(&findings[0].account.email.to_ascii_lowercase()) {
            out.opted_out += 1;
            batch.user_skipped.extend(ids);
            continue;
        }
        let account = &findings[0].account;
        let to = match message::mailbox(&account.email, account.name.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(account = account.id, error = %e, "user cannot be mailed; listed in the digest only");
                out.undeliverable += ids.len() as u64;
                batch.user_skipped.extend(ids);
                continue;
            }
        };
        let ctx = UserCtx {
            org_name: &cfg.organization.name,
            name: account.name.as_deref(),
            email: &account.email,
            has_password: findings.iter().any(|f| f.kind != FindingKind::Identity),
            exposures: findings
                .iter()
                .map(|f| Exposure {
                    kind: f.kind.as_str(),
                    site: f.site.as_deref().and_then(mail_host).map(|h| defang(&h)),
                    format: f.format.clone(),
                    first_seen: timefmt::date(f.first_seen),
                    hint: f.password_hint.clone(),
                    algorithm: f.hash_algo.clone(),
                })
                .collect(),
        };
        // One message that cannot be made is that message's failure, not the queue's:
        // its findings go to the digest, with the reason in the log.
        let built = templates
            .render("user", account.lang, &ctx)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                // Staff and the public may hear from different senders; only the public
                // is offered the unsubscribe header (staff are told as staff).
                let public = !cfg.organization.domains.iter().any(|d| {
                    account
                        .email
                        .rsplit_once('@')
                        .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
                });
                let n = &cfg.notify;
                let from = match public {
                    true => n.from_public.as_ref().unwrap_or(&n.from),
                    false => n.from_staff.as_ref().unwrap_or(&n.from),
                };
                let unsubscribe = public.then(|| n.unsubscribe.as_ref().unwrap_or(from));
                message::build(from, &to, &r, None, now, dkim, unsubscribe)
                    .map_err(|e| e.to_string())
            });
        let bytes = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(account = account.id, error = %e, "user mail cannot be made; listed in the digest only");
                out.undeliverable += ids.len() as u64;
                batch.user_skipped.extend(ids);
                continue;
            }
        };
        batch.user_mails.push((
            NewMail {
                kind: MailKind::User,
                recipient: account.email.clone(),
                message: bytes,
            },
            ids,
        ));
        out.user_mails += 1;
    }
    batch
}

/// The admins' digest of everything not yet digested, into `batch`.
fn compose_digest(
    cfg: &Config,
    store: &mut Store,
    templates: &Templates,
    now: i64,
    out: &mut Composed,
    batch: &mut NotificationBatch,
    dkim: Option<&super::dkim::DkimSigner>,
) -> Result<(), NotifyError> {
    let reports = cfg.state_dir().join("reports");
    let mut digest = DigestBuilder::new(&cfg.organization.name, now, &reports);
    let ids = store.pending_digest_ids()?;
    let mut progress = Progress::phase("composing the digest", ids.len() as u64);
    for page in ids.chunks(DIGEST_PAGE) {
        for f in store.findings_by_ids(page, true)? {
            digest.add_finding(&f);
        }
        progress.inc(page.len() as u64);
    }
    progress.finish();
    store.for_each_unknown_pending_digest(|u| digest.add_unknown(u))?;
    let (actions, action_ids, total) = store.unreported_actions(digest::DIGEST_LINES as u32)?;
    if total > 0 {
        let waiting = store
            .action_counts()?
            .iter()
            .filter(|(s, _)| s.waits_for_admin())
            .map(|(_, n)| n)
            .sum();
        digest.add_actions(&actions, total, waiting);
    }
    if digest.is_empty() {
        return Ok(());
    }
    let (ctx, list, findings, unknowns) =
        digest
            .finish(out.user_mails)
            .map_err(|e| NotifyError::Report {
                path: reports.clone(),
                source: e,
            })?;
    if let ResetList::Written(path) = &list {
        tracing::warn!(path = %path.display(), "forced-reset list too large to mail: written on this host, named in the digest");
    }
    let rendered = templates.render("digest", cfg.notify.admin_lang, &ctx)?;
    for admin in &cfg.notify.admins {
        let attachment = match &list {
            ResetList::Attached(a) => Some(CsvAttachment {
                name: a.name.clone(),
                content_type: a.content_type,
                body: a.body.clone(),
            }),
            ResetList::Written(_) => None,
        };
        let bytes = message::build(
            &cfg.notify.from,
            admin,
            &rendered,
            attachment,
            now,
            dkim,
            None,
        )?;
        batch.digest_mails.push(NewMail {
            kind: MailKind::Digest,
            recipient: admin.email.to_string(),
            message: bytes,
        });
        out.digest_mails += 1;
    }
    batch.digest_findings = findings;
    batch.digest_unknowns = unknowns;
    batch.digest_actions = action_ids;
    batch.siem_targets = crate::siem::targets(cfg);
    Ok(())
}

/// `forced-resets.csv`: one row per exposed password or stolen session, with the action
/// it calls for; never the password or its hint (the digest writes it the same way,
/// page by page: [`DigestBuilder`]).
/// A cell a spreadsheet will not run: one that starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return (OWASP's list for CSV injection) gets a leading `'`, so that a site or
/// a file name a dump chose is shown as text, never evaluated.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

pub fn forced_resets_csv(findings: &[FindingView]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    digest::write_header(&mut w);
    for f in findings
        .iter()
        .filter(|f| f.kind != FindingKind::Identity && f.verdict.forces_reset())
    {
        digest::write_row(&mut w, f);
    }
    w.into_inner().expect("flushing a Vec cannot fail")
}

/// Renders every template with sample data, so that a broken override is found by
/// `leakwatch check` rather than by the first real mail.
pub fn selfcheck(cfg: &Config, templates: &Templates) -> Result<(), NotifyError> {
    for lang in [crate::config::Lang::Fr, crate::config::Lang::En] {
        for has_password in [true, false] {
            let ctx = UserCtx {
                org_name: &cfg.organization.name,
                name: Some("Camille Exemple"),
                email: "camille@example.net",
                has_password,
                exposures: vec![
                    Exposure {
                        kind: if has_password { "password" } else { "identity" },
                        site: Some(defang("site.example")),
                        format: "stealer".into(),
                        first_seen: "2025-10-12".into(),
                        hint: has_password.then(|| "m•••••e".into()),
                        algorithm: None,
                    },
                    Exposure {
                        kind: if has_password {
                            "password_hash"
                        } else {
                            "identity"
                        },
                        site: None,
                        format: "sql".into(),
                        first_seen: "2025-10-12".into(),
                        hint: None,
                        algorithm: has_password.then(|| "md5/ntlm".into()),
                    },
                ],
            };
            templates.render("user", lang, &ctx)?;
        }
        let ctx = DigestCtx {
            org_name: &cfg.organization.name,
            generated_at: "2025-10-12T08:00:00Z".into(),
            resets: vec![
                DigestFinding {
                    email: "camille@example.net".into(),
                    username: Some("cexemple".into()),
                    first_seen: "2025-10-12".into(),
                    site: Some("site.example".into()),
                    format: "combo".into(),
                    sources: "dump.txt".into(),
                    critical: true,
                    device: Some("Lumma, infected 2025-10-12, device 0123456789ab".into()),
                    algorithm: None,
                    current: true,
                    not_live: None,
                },
                DigestFinding {
                    email: "dominique@example.net".into(),
                    username: None,
                    first_seen: "2025-10-12".into(),
                    site: None,
                    format: "sql".into(),
                    sources: "portail.sql".into(),
                    critical: false,
                    device: None,
                    algorithm: Some("bcrypt".into()),
                    current: false,
                    not_live: None,
                },
            ],
            advice: vec![DigestFinding {
                email: "claude@example.net".into(),
                username: None,
                first_seen: "2025-10-12".into(),
                site: None,
                format: "combo".into(),
                sources: "dump.txt".into(),
                critical: false,
                device: None,
                algorithm: None,
                current: false,
                not_live: Some("rotated since"),
            }],
            sessions: vec![DigestFinding {
                email: "camille@example.net".into(),
                username: None,
                first_seen: "2025-10-12".into(),
                site: Some("sso.example".into()),
                format: "cookies".into(),
                sources: "logs.zip!FR1/Cookies".into(),
                critical: true,
                device: Some("Lumma, infected 2025-10-12, device 0123456789ab".into()),
                algorithm: None,
                current: false,
                not_live: None,
            }],
            devices: vec![DigestDevice {
                description: "Lumma, infected 2025-10-12, device 0123456789ab".into(),
                count: 1,
                accounts: vec!["camille@example.net".into()],
            }],
            identities: vec![],
            unknowns: vec![DigestUnknown {
                masked: "j•••••t@example.net".into(),
                hash: "0".repeat(40),
                has_password: true,
                format: "combo".into(),
                first_seen: "2025-10-12".into(),
                first_source: "dump.txt:1".into(),
            }],
            actions: vec![DigestAction {
                id: 1,
                email: "camille@example.net".into(),
                action: "force_change".into(),
                target: "ldap".into(),
                status: "done",
                result: Some("LDAP uid=cexemple,ou=people: pwdReset set to TRUE".into()),
                approved_by: Some("root".into()),
            }],
            actions_waiting: 2,
            users_mailed: 1,
            totals: Sections {
                resets: 2,
                advice: 1,
                sessions: 1,
                identities: 0,
                unknowns: 1,
                devices: 1,
                actions: 1,
            },
            omitted: Sections::default(),
            by_severity: BySeverity {
                critical: 2,
                high: 1,
                medium: 0,
            },
            top_sources: vec![SourceCount {
                source: "dump.txt".into(),
                count: 2,
            }],
            attachment: Some("forced-resets.csv".into()),
            report_path: None,
        };
        templates.render("digest", lang, &ctx)?;
        // A digest too large for its body and its list too large to mail.
        let ctx = DigestCtx {
            omitted: Sections {
                resets: 1_000_000,
                ..ctx.totals
            },
            attachment: None,
            report_path: Some("/var/lib/leakwatch/reports/forced-resets.csv.gz".into()),
            ..ctx
        };
        templates.render("digest", lang, &ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Severity;

    /// Text a dump chose (a site, a source name) cannot become a formula in the
    /// forced-reset list, whichever cell it lands in.
    #[test]
    fn forced_reset_cells_are_never_formulas() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tcmd",
            "\rcmd",
        ] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"));
        }
        assert_eq!(
            spreadsheet_safe("sso.agence-exemple.fr"),
            "sso.agence-exemple.fr"
        );
        let f = FindingView {
            id: 1,
            account: crate::store::AccountRow {
                id: 1,
                email: "jean@agence-exemple.fr".into(),
                username: None,
                name: None,
                lang: crate::config::Lang::Fr,
            },
            email: "jean@agence-exemple.fr".into(),
            username: Some("-jdupont".into()),
            kind: FindingKind::Password,
            severity: Severity::High,
            device: None,
            password_hint: None,
            site: Some("=cmd|' /C calc'!A0".into()),
            format: "combo".into(),
            hash_algo: None,
            first_source: "@leak.txt".into(),
            first_seen: 0,
            last_seen: 0,
            times_seen: 1,
            sources: vec!["+dump.csv".into()],
            password_current: None,
            password_changed_at: None,
            verdict: crate::liveness::Verdict::Unknown,
        };
        let csv = String::from_utf8(forced_resets_csv(&[f])).unwrap();
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let row = rows.records().next().unwrap().unwrap();
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {csv}"
            );
        }
        assert_eq!(&row[8], "'=cmd|' /C calc'!A0");
    }

    #[test]
    fn defang_hosts() {
        assert_eq!(defang("sso.agence-exemple.fr"), "sso[.]agence-exemple[.]fr");
    }

    /// Only a host name reaches a mail; what a dump wrote around or instead of one does
    /// not, however it hides its dots and spaces.
    #[test]
    fn only_host_names_are_named_in_mail() {
        let ok = |s: &str| mail_host(s);
        assert_eq!(
            ok("sso.agence-exemple.fr").as_deref(),
            Some("sso.agence-exemple.fr")
        );
        assert_eq!(
            ok("SSO.Agence-Exemple.FR").as_deref(),
            Some("sso.agence-exemple.fr")
        );
        assert_eq!(
            ok("www.société.example").as_deref(),
            Some("www.xn--socit-esab.example")
        );
        // Fullwidth dots are dots: the host a browser would go to is the one named.
        assert_eq!(
            ok("agence-exemple\u{ff0e}secure-login\u{ff0e}com").as_deref(),
            Some("agence-exemple.secure-login.com")
        );
        assert_eq!(ok("10.0.0.5").as_deref(), Some("10.0.0.5"));
        for bad in [
            "sso[.]agence-exemple[.]fr — urgent call +33 1 23 45 67 89",
            "agence-exemple.fr\u{a0}or\u{a0}visit\u{a0}x.example",
            "a b.example",
            "host.example:8080",
            "-bad.example",
            "x..example",
            "",
            &"a".repeat(64),
            &format!("{}.example", ["abc"; 70].join(".")),
            "evil\u{1b}]0;x\u{7}.example",
            "user@host.example",
        ] {
            assert_eq!(ok(bad), None, "{bad:?}");
        }
    }
}
