//! The commands, as the binary runs them. This is the top of the program: it opens the
//! stages, runs them in order and turns their typed errors into messages (`anyhow` is
//! used here and nowhere below).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::accounts;
use crate::config::Config;
use crate::daemon;
use crate::feed;
use crate::identity::{IdentityHash, Normalizer};
use crate::ingest::IngestStats;
use crate::liveness::Verdict;
use crate::notify::{self, Delivered, Templates, Transport};
use crate::pipeline::{self, Pipeline};
use crate::shown::shown;
use crate::store::{StateLock, Store};
use crate::timefmt::{self, Clock, SystemClock};

/// Exit status: everything done, nothing wrong.
pub const EXIT_OK: i32 = 0;
/// Done, but something needs a look (an input skipped, a mail not delivered yet).
pub const EXIT_PROBLEMS: i32 = 1;
/// The configuration is invalid (sysexits' EX_CONFIG, which systemd shows as such).
pub const EXIT_CONFIG: i32 = 78;

/// Validates the config, the templates and the mail transport; prints what it found.
pub fn check(config_path: &Path, cfg: &Config) -> Result<i32> {
    let templates = Templates::load(cfg.notify.templates_dir.as_deref())?;
    notify::template_selfcheck(cfg, &templates)?;
    crate::store::ensure_state_dir(cfg.state_dir())?;
    // Built inside a runtime: the SMTP pool starts a task of its own.
    let transport = runtime()?.block_on(async { Transport::from_config(cfg) })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "config {}: OK", config_path.display())?;
    writeln!(
        out,
        "  organization: {} ({} domain(s), {} login host(s))",
        cfg.organization.name,
        cfg.organization.domains.len(),
        cfg.organization.login_hosts.len()
    )?;
    writeln!(out, "  state dir: {}", absolute(cfg.state_dir()).display())?;
    writeln!(
        out,
        "  mail: {transport:?}, {} admin(s)",
        cfg.notify.admins.len()
    )?;
    if let Some(d) = &cfg.notify.dkim {
        let signer = crate::notify::dkim::DkimSigner::load(d)?;
        let (name, record) = signer.dns_record();
        writeln!(
            out,
            "  DKIM: d={} s={}, key {} (owner-only); publish TXT at {name}:\n    {record}",
            d.domain,
            d.selector,
            d.key_file.display()
        )?;
        if !cfg
            .notify
            .from
            .email
            .domain()
            .eq_ignore_ascii_case(&d.domain)
        {
            writeln!(
                out,
                "  warning: DKIM d={} is not the From domain {}: DMARC alignment fails",
                d.domain,
                cfg.notify.from.email.domain()
            )?;
        }
    }
    if let Some(path) = &cfg.liveness.nt_hashes_file {
        let path = crate::secret::check_secret_file(path)?;
        writeln!(
            out,
            "  liveness: NT hash export {} (owner-only)",
            path.display()
        )?;
    }
    let r = &cfg.remediation;
    if r.rule.is_empty() {
        writeln!(out, "  remediation: report only (no [[remediation.rule]])")?;
    } else {
        let mode = if r.dry_run {
            "dry run"
        } else if r.approval {
            "approval"
        } else {
            "automatic"
        };
        writeln!(
            out,
            "  remediation: {} rule(s), {mode}, at most {} action(s) an hour, {} protected account(s)",
            r.rule.len(),
            r.max_per_hour,
            r.protected.len()
        )?;
        // Every secret the actions will need, readable and owner-only now rather than
        // failing at the first finding.
        let secrets = [
            (
                "ldap bind password",
                r.ldap.as_ref().map(|l| &l.password_file),
            ),
            (
                "keycloak client secret",
                r.keycloak.as_ref().map(|k| &k.client_secret_file),
            ),
            (
                "graph client secret",
                r.graph.as_ref().map(|g| &g.client_secret_file),
            ),
            ("webhook key", r.webhook.as_ref().map(|w| &w.secret_file)),
        ];
        for (what, path) in secrets {
            if let Some(path) = path {
                let path = crate::secret::check_secret_file(path)?;
                writeln!(out, "    {what}: {} (owner-only)", path.display())?;
            }
        }
        if let Some(c) = &r.command {
            let meta = std::fs::metadata(&c.path)
                .with_context(|| format!("remediation command {}", c.path.display()))?;
            anyhow::ensure!(
                meta.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0,
                "remediation command {}: not an executable file",
                c.path.display()
            );
            writeln!(out, "    command: {}", c.path.display())?;
        }
    }
    for (name, origin) in templates.origins() {
        writeln!(out, "  template {name}: {origin}")?;
    }
    if let Some(addr) = cfg.metrics.listen {
        writeln!(out, "  metrics: http://{addr}/metrics (daemon)")?;
        if !addr.ip().is_loopback() {
            writeln!(
                out,
                "  warning: metrics listen on {addr}, beyond loopback: whoever reaches it reads the counts"
            )?;
        }
    }
    if let Some(path) = &cfg.metrics.textfile {
        writeln!(out, "  metrics: textfile {}", path.display())?;
    }
    for w in cfg.warnings() {
        writeln!(out, "  warning: {w}")?;
    }
    let Some(dir) = &cfg.feeds.dir else {
        writeln!(out, "  feeds: none ([feeds] dir is not set)")?;
        return Ok(EXIT_OK);
    };
    let (feeds, errors) = feed::load_dir(dir);
    writeln!(out, "  feeds in {}: {} valid", dir.display(), feeds.len())?;
    for f in &feeds {
        writeln!(
            out,
            "    {} ({}, \"{}\"{})",
            f.name,
            f.kind.as_str(),
            f.schedule.expr(),
            if f.enabled { "" } else { ", disabled" }
        )?;
    }
    drop(out);
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok(if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_CONFIG
    })
}

pub fn import_accounts(cfg: &Config, file: &Path) -> Result<i32> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut store = Store::open(cfg.state_dir())?;
    let report = accounts::import_file(cfg, &mut store, file)?;
    for e in &report.skipped {
        eprintln!("{}:{}: {} (row skipped)", file.display(), e.line, e.message);
    }
    println!(
        "imported {} accounts ({} identity keys) from {}; {} row(s) skipped; filter {} KiB, generation {}",
        report.accounts,
        report.keys,
        file.display(),
        report.skipped.len(),
        report.filter_bytes.div_ceil(1024),
        report.generation
    );
    Ok(if report.skipped.is_empty() {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    })
}

/// Everything `ingest` did, for its summary line.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    pub stats: IngestStats,
    pub user_mails: u64,
    pub digest_mails: u64,
    pub delivered: Delivered,
}

/// How `leakwatch ingest` reads its inputs.
#[derive(Debug, Default, Clone)]
pub struct IngestOptions {
    pub archive_passwords: Vec<String>,
    pub progress: bool,
    /// Threads for combo/ULP lists instead of `[ingest] threads`; `Some(0)` reads them
    /// line by line through the reference path.
    pub threads: Option<usize>,
}

/// Archive passwords, one per line (blank lines skipped), from `path` or, for `-`, from
/// standard input.
pub fn archive_passwords_from(path: &Path) -> Result<Vec<String>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("archive passwords from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("archive passwords file {}", path.display()))?
    };
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub fn ingest(cfg: &Config, paths: &[PathBuf], opts: &IngestOptions) -> Result<i32> {
    let clock = SystemClock;
    let outcome = ingest_with(cfg, paths, opts, &clock)?;
    let s = &outcome.stats;
    let d = &outcome.delivered;
    println!(
        "ingest: {} files ({} streams), {} lines, {} entries ({} with identities, {} malformed, {} without), {} identities, {} matches, {} new findings, {} new unknown org identities, {} input errors; mails: {} composed ({} user, {} digest), {} sent, {} queued for retry, {} failed",
        s.files, s.streams, s.lines, s.entries, s.with_identity, s.malformed, s.no_identity, s.identities, s.matches, s.new_findings, s.new_unknown, s.errors,
        outcome.user_mails + outcome.digest_mails, outcome.user_mails, outcome.digest_mails,
        d.sent, d.deferred, d.failed
    );
    // What the filter cost: its false positives were each one store lookup.
    let false_positives = s.filter_passed.saturating_sub(s.matches);
    println!(
        "filter: {} of {} identities passed, {} of them accounts; observed false-positive rate {:.2e}",
        s.filter_passed,
        s.identities,
        s.matches,
        false_positives as f64 / s.identities.saturating_sub(s.matches).max(1) as f64
    );
    let problems = s.errors > 0 || d.deferred > 0 || d.failed > 0;
    Ok(if problems { EXIT_PROBLEMS } else { EXIT_OK })
}

/// The ingest pipeline end to end: queued mail first (it is owed from before), then the
/// inputs, then compose and deliver what they caused. The state lock is held throughout,
/// so a daemon's feed runs wait for this one before they compose any mail.
pub fn ingest_with(
    cfg: &Config,
    paths: &[PathBuf],
    opts: &IngestOptions,
    clock: &dyn Clock,
) -> Result<IngestOutcome> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut pipe = Pipeline::open(cfg)?;
    let templates = Templates::load(cfg.notify.templates_dir.as_deref())?;
    let rt = runtime()?;
    let mut delivered = pipeline::deliver_queue(cfg, &pipe.store, clock, rt.handle(), false)?;

    let mut run = pipe
        .ingest(clock, None)
        .with_archive_passwords(&opts.archive_passwords);
    if let Some(n) = opts.threads {
        run = run.with_threads(n);
    }
    if opts.progress {
        run = run.with_progress();
    }
    let started = std::time::Instant::now();
    let stats = run.run(paths).context("ingest stopped")?;
    tracing::info!(
        lines = stats.lines,
        matches = stats.matches,
        new_findings = stats.new_findings,
        secs = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        "dumps read, findings recorded"
    );

    pipeline::act_pass(cfg, &mut pipe.store, clock, rt.handle());
    let composed = notify::compose(cfg, &mut pipe.store, &templates, clock.now())?;
    let d = pipeline::deliver_queue(cfg, &pipe.store, clock, rt.handle(), false)?;
    delivered.sent += d.sent;
    delivered.failed += d.failed;
    delivered.deferred = d.deferred;
    pipeline::purge_if_due(cfg, &mut pipe.store, clock.now());
    crate::metrics::write_textfile(cfg, &pipe.store);
    Ok(IngestOutcome {
        stats,
        user_mails: composed.user_mails,
        digest_mails: composed.digest_mails,
        delivered,
    })
}

/// `leakwatch run [--once]`: the daemon, or every enabled feed once.
pub fn run(config_path: &Path, cfg: Config, once: bool) -> Result<i32> {
    let feeds = match feed::load(&cfg) {
        Ok(f) => f,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return Ok(EXIT_CONFIG);
        }
    };
    if feeds.is_empty() {
        tracing::warn!("no feeds configured ([feeds] dir): nothing will run");
    }
    // Blocking threads run the feed jobs and the mail passes; a few more than the jobs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cfg.feeds.max_concurrent + 4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let opts = daemon::RunOptions {
        config_path: config_path.to_path_buf(),
        once,
    };
    let summary = rt.block_on(daemon::run(cfg, feeds, opts, Arc::new(SystemClock)))?;
    // A job still running at the stop deadline is abandoned, not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    if once {
        println!(
            "run --once: {} feed run(s), {} with problems; see `leakwatch status`",
            summary.runs, summary.troubled
        );
    }
    Ok(if summary.troubled > 0 {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}

/// `leakwatch status`: the daemon, each feed's last run and next run, the mail queue.
pub fn status(cfg: &Config, json: bool) -> Result<i32> {
    let clock = SystemClock;
    let now = clock.now();
    let store = Store::open(cfg.state_dir())?;
    let (feeds, errors) = match &cfg.feeds.dir {
        Some(dir) => feed::load_dir(dir),
        None => (Vec::new(), Vec::new()),
    };
    let runs = store.feed_runs_latest()?;
    let daemon = store.daemon()?;
    let alive = daemon
        .as_ref()
        .is_some_and(|d| d.stopped_at.is_none() && process_alive(d.pid));
    let mail = store.mail_counts()?;
    let actions = store.action_counts()?;
    let next_of = |f: &feed::Feed| f.enabled.then(|| f.schedule.next_after(now)).flatten();
    if json {
        let feeds_json: Vec<_> = feeds
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "kind": f.kind.as_str(),
                    "enabled": f.enabled,
                    "schedule": f.schedule.expr(),
                    "next_run": next_of(f),
                    "last_run": runs.iter().find(|r| r.feed == f.name),
                })
            })
            .collect();
        let v = serde_json::json!({
            "daemon": daemon.as_ref().map(|d| serde_json::json!({
                "running": alive, "pid": d.pid, "started_at": d.started_at,
                "heartbeat": d.heartbeat, "status": d.status, "stopped_at": d.stopped_at,
            })),
            "feeds": feeds_json,
            "mail": { "pending": mail.pending, "sent": mail.sent, "failed": mail.failed },
            "actions": actions.iter().map(|(s, n)| (s.as_str(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    let mut out = std::io::stdout().lock();
    match &daemon {
        None => writeln!(out, "daemon: has never run on this state directory")?,
        Some(d) if alive => writeln!(
            out,
            "daemon: running, pid {}, since {}; {} (as of {}s ago)",
            d.pid,
            timefmt::rfc3339(d.started_at),
            d.status,
            now - d.heartbeat
        )?,
        Some(d) => writeln!(
            out,
            "daemon: not running (last started {}, {})",
            timefmt::rfc3339(d.started_at),
            match d.stopped_at {
                Some(t) => format!("stopped {}", timefmt::rfc3339(t)),
                None => "did not stop cleanly".into(),
            }
        )?,
    }
    writeln!(
        out,
        "{:<20} {:<9} {:<7} {:<16} {:<20} {:>7} {:<11} {:>10} {:>9} {:>10} {:>8}  next run",
        "feed",
        "kind",
        "enabled",
        "schedule",
        "last run",
        "took",
        "result",
        "bytes",
        "lines",
        "identities",
        "findings",
    )?;
    for f in &feeds {
        let r = runs.iter().find(|r| r.feed == f.name);
        let (start, took, result, s) = match r {
            Some(r) => (
                timefmt::rfc3339(r.started_at),
                r.finished_at
                    .map(|e| format!("{}s", e - r.started_at))
                    .unwrap_or_else(|| "-".into()),
                r.outcome.as_str(),
                r.stats,
            ),
            None => ("never".into(), "-".into(), "-", Default::default()),
        };
        writeln!(
            out,
            "{:<20} {:<9} {:<7} {:<16} {:<20} {:>7} {:<11} {:>10} {:>9} {:>10} {:>8}  {}",
            f.name,
            f.kind.as_str(),
            if f.enabled { "yes" } else { "no" },
            f.schedule.expr(),
            start,
            took,
            result,
            s.bytes,
            s.lines,
            s.identities,
            s.new_findings,
            next_of(f)
                .map(timefmt::rfc3339)
                .unwrap_or_else(|| "-".into())
        )?;
        if let Some(m) = r.and_then(|r| r.message.as_deref()) {
            // A server's or an archive's words, among others: escaped.
            writeln!(out, "    last run: {}", shown(m))?;
        }
    }
    for r in runs
        .iter()
        .filter(|r| !feeds.iter().any(|f| f.name == r.feed))
    {
        writeln!(
            out,
            "{:<20} (no longer configured; last run {} {})",
            r.feed,
            timefmt::rfc3339(r.started_at),
            r.outcome.as_str()
        )?;
    }
    for e in &errors {
        writeln!(out, "error: {e}")?;
    }
    writeln!(
        out,
        "mail queue: {} pending, {} sent, {} failed",
        mail.pending, mail.sent, mail.failed
    )?;
    let siem = store.siem_counts()?;
    if !siem.is_empty() {
        let list: Vec<String> = siem
            .iter()
            .map(|(t, s, n)| format!("{t} {n} {s}"))
            .collect();
        writeln!(out, "SIEM export: {}", list.join(", "))?;
    }
    if !actions.is_empty() {
        let list: Vec<String> = actions
            .iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        writeln!(out, "remediation actions: {}", list.join(", "))?;
        let waiting: u64 = actions
            .iter()
            .filter(|(s, _)| s.waits_for_admin())
            .map(|(_, n)| n)
            .sum();
        if waiting > 0 {
            writeln!(
                out,
                "{waiting} action(s) wait for an admin: `leakwatch actions list`"
            )?;
        }
    }
    Ok(if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_CONFIG
    })
}

/// Whether a process exists (signal 0 checks without sending anything; `EPERM` means it
/// exists under another user, as the daemon does under systemd).
fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks the pid; it has no memory effects.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub fn findings_list(cfg: &Config, json: bool) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    let findings = store.findings()?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &findings)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{:>5}  {:<8}  {:<8}  {:<32}  {:<24}  {:<8}  {:<10}  {:>4}  {:<13}  {:<48}  sources",
        "id",
        "kind",
        "severity",
        "account",
        "site",
        "format",
        "first_seen",
        "seen",
        "live",
        "device"
    )?;
    for f in &findings {
        writeln!(
            out,
            "{:>5}  {:<8}  {:<8}  {:<32}  {:<24}  {:<8}  {:<10}  {:>4}  {:<13}  {:<48}  {}",
            f.id,
            f.kind.as_str(),
            f.severity.as_str(),
            shown(&f.email),
            shown(f.site.as_deref().unwrap_or("-")),
            shown(&f.format),
            timefmt::date(f.first_seen),
            f.times_seen,
            match f.verdict {
                Verdict::Current => "current",
                Verdict::Stale => "stale",
                Verdict::RotatedSince => "rotated since",
                Verdict::Unknown => "-",
            },
            shown(
                &f.device
                    .as_ref()
                    .map(|d| d.describe())
                    .unwrap_or_else(|| "-".into())
            ),
            shown(&f.sources.join(", "))
        )?;
    }
    writeln!(out, "{} finding(s)", findings.len())?;
    Ok(EXIT_OK)
}

/// `leakwatch actions list` (those waiting for an admin) and `actions log` (all, newest
/// first).
pub fn actions_show(cfg: &Config, waiting_only: bool, json: bool, limit: u32) -> Result<i32> {
    use crate::store::ActionStatus;
    let store = Store::open(cfg.state_dir())?;
    let statuses: &[ActionStatus] = if waiting_only {
        &[ActionStatus::AwaitingApproval, ActionStatus::Held]
    } else {
        &[]
    };
    let rows = store.actions(statuses, limit)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{:>6}  {:>7}  {:<32}  {:<15}  {:<8}  {:<17}  {:>3}  {:<20}  {:<24}  result",
        "id", "finding", "account", "action", "target", "status", "try", "time", "approved by"
    )?;
    for a in &rows {
        let at = a.done_at.or(a.started_at).unwrap_or(a.created_at);
        writeln!(
            out,
            "{:>6}  {:>7}  {:<32}  {:<15}  {:<8}  {:<17}  {:>3}  {:<20}  {:<24}  {}",
            a.id,
            a.finding_id,
            shown(a.email.as_deref().unwrap_or("-")),
            a.action,
            a.target,
            a.status.as_str(),
            a.attempts,
            timefmt::rfc3339(at),
            shown(a.approved_by.as_deref().unwrap_or("-")),
            shown(a.result.as_deref().unwrap_or("-")),
        )?;
    }
    writeln!(out, "{} action(s)", rows.len())?;
    Ok(EXIT_OK)
}

/// `leakwatch actions approve|reject ID…|--all`: settles actions waiting for an admin;
/// approved ones are done at once (past the hourly ceiling: an admin chose them).
pub fn actions_settle(cfg: &Config, ids: &[i64], all: bool, approve: bool) -> Result<i32> {
    let clock = SystemClock;
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut store = Store::open(cfg.state_dir())?;
    let who = crate::act::operator();
    let settled = store.settle_actions((!all).then_some(ids), approve, &who, clock.now())?;
    let verb = if approve { "approved" } else { "rejected" };
    let missed: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| !settled.contains(i))
        .collect();
    for id in &missed {
        eprintln!("error: action {id} does not wait for approval (see `leakwatch actions log`)");
    }
    println!("{} action(s) {verb} by {}", settled.len(), shown(&who));
    if approve && !settled.is_empty() {
        let rt = runtime()?;
        let done = crate::act::execute(cfg, &mut store, &clock, rt.handle())?;
        println!(
            "remediation: {} done, {} to retry, {} failed",
            done.done, done.retried, done.failed
        );
        if done.retried > 0 || done.failed > 0 {
            return Ok(EXIT_PROBLEMS);
        }
    }
    Ok(if missed.is_empty() {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    })
}

/// `leakwatch purge`: applies `[retention]` now.
pub fn purge(cfg: &Config) -> Result<i32> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut store = Store::open(cfg.state_dir())?;
    let now = SystemClock.now();
    let d = store.purge(&cfg.retention.cutoffs(now))?;
    store.set_meta_value("purged_at", now)?;
    println!(
        "purge: {} finding(s), {} sighting(s), {} action(s), {} SIEM event(s), {} unknown identit(ies), {} mail(s), {} feed run(s), {} device(s) deleted",
        d.findings, d.sightings, d.actions, d.siem_events, d.unknown_identities, d.mails, d.feed_runs, d.devices
    );
    Ok(EXIT_OK)
}

/// `leakwatch forget ADDRESS|USERNAME`: erases what is held about one person (a data
/// subject's request), then rebuilds the identity index and the filter without them.
pub fn forget(cfg: &Config, who: &str) -> Result<i32> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut store = Store::open(cfg.state_dir())?;
    let Some(account) = store.account_by_identity(who)? else {
        eprintln!(
            "error: no account has the address or username `{}`",
            shown(who)
        );
        return Ok(EXIT_PROBLEMS);
    };
    let f = store.forget(account.id, &account.email)?;
    // The person's own messages delivered by the file transport.
    let mut files = 0;
    for (id, kind) in &f.mails {
        let path = cfg.outbox_dir().join(format!("{id:08}-{kind}.eml"));
        if std::fs::remove_file(&path).is_ok() {
            files += 1;
        }
    }
    // The map of known findings was invalidated by the deletions; its file goes too.
    let _ = std::fs::remove_file(cfg.state_dir().join("known-findings.bin"));
    accounts::load_filter(cfg, &mut store)?;
    let d = &f.deleted;
    println!(
        "forget: account {} erased: {} finding(s), {} sighting(s), {} action(s), {} SIEM event(s), {} mail(s) ({} outbox file(s)); identity index and filter rebuilt without it",
        account.id, d.findings, d.sightings, d.actions, d.siem_events, d.mails, files
    );
    println!("remove the person from the directory export too, or the next import brings the account back");
    Ok(EXIT_OK)
}

/// `leakwatch export ADDRESS|USERNAME`: what is held about one person, as JSON (a data
/// subject's right of access).
pub fn export(cfg: &Config, who: &str) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    let Some(account) = store.account_by_identity(who)? else {
        eprintln!(
            "error: no account has the address or username `{}`",
            shown(who)
        );
        return Ok(EXIT_PROBLEMS);
    };
    let findings = store.findings_by_ids(&store.finding_ids_of(account.id)?, true)?;
    let actions: Vec<_> = store
        .actions(&[], u32::MAX)?
        .into_iter()
        .filter(|a| a.account_id == account.id)
        .collect();
    let mail: Vec<_> = store
        .mail_to(&account.email)?
        .into_iter()
        .map(|(id, kind, status, created, sent)| {
            serde_json::json!({"id": id, "kind": kind, "status": status,
                "created_at": timefmt::rfc3339(created), "sent_at": sent.map(timefmt::rfc3339)})
        })
        .collect();
    let v = serde_json::json!({
        "account": {
            "id": account.id, "email": account.email, "username": account.username,
            "name": account.name, "lang": account.lang,
        },
        "findings": findings,
        "actions": actions,
        "mail": mail,
        "note": "leakwatch never stores a leaked password: findings hold a keyed fingerprint and, if configured, a masked hint shown only in the person's own mail",
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    Ok(EXIT_OK)
}

/// `leakwatch optout add|remove|list`: the people who get no user mail.
pub fn optout(cfg: &Config, action: &str, email: Option<&str>) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    let now = SystemClock.now();
    let addr = |e: Option<&str>| -> Result<String> {
        let e = e.context("an address is needed")?;
        anyhow::ensure!(
            lettre::Address::from_str(e.trim()).is_ok(),
            "`{}` is not a mail address",
            shown(e)
        );
        Ok(e.trim().to_ascii_lowercase())
    };
    match action {
        "add" => {
            let e = addr(email)?;
            let new = store.optout_add(&e, now)?;
            println!(
                "{} {}",
                shown(&e),
                if new {
                    "opted out: no further user mail"
                } else {
                    "was already opted out"
                }
            );
        }
        "remove" => {
            let e = addr(email)?;
            if !store.optout_remove(&e)? {
                eprintln!("error: {} is not opted out", shown(&e));
                return Ok(EXIT_PROBLEMS);
            }
            println!("{} mailed again", shown(&e));
        }
        _ => {
            let list = store.optout_list()?;
            for (e, at) in &list {
                println!("{}\t{}", shown(e), timefmt::rfc3339(*at));
            }
            println!("{} address(es) opted out", list.len());
        }
    }
    Ok(EXIT_OK)
}

/// `leakwatch metrics`: the metrics as the daemon serves them.
pub fn metrics(cfg: &Config) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    print!("{}", crate::metrics::render(&store)?);
    Ok(EXIT_OK)
}

pub fn mail_list(cfg: &Config) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    let mut out = std::io::stdout().lock();
    for (id, kind, recipient, status, attempts, err, created) in store.mail_log()? {
        writeln!(
            out,
            "{id:>6}  {kind:<6}  {status:<7}  attempts {attempts:<3}  {}  {}{}",
            timefmt::rfc3339(created),
            shown(&recipient),
            err.map(|e| format!("  last error: {}", shown(&e)))
                .unwrap_or_default()
        )?;
    }
    let c = store.mail_counts()?;
    writeln!(
        out,
        "{} pending, {} sent, {} failed",
        c.pending, c.sent, c.failed
    )?;
    Ok(EXIT_OK)
}

/// Tries every queued message now; `retry_failed` first puts failed ones back in the queue.
pub fn mail_flush(cfg: &Config, retry_failed: bool) -> Result<i32> {
    let clock = SystemClock;
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let store = Store::open(cfg.state_dir())?;
    if retry_failed {
        let n = store.retry_failed(clock.now())?;
        println!("{n} failed message(s) queued again");
    }
    let d = runtime()?.block_on(async {
        let transport = Transport::from_config(cfg)?;
        notify::deliver(cfg, &store, &transport, &clock, false)
            .await
            .map_err(anyhow::Error::from)
    })?;
    println!(
        "mail: {} sent, {} queued for retry, {} failed",
        d.sent, d.deferred, d.failed
    );
    Ok(if d.deferred + d.failed > 0 {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}

/// Prints the identity key, SHA-1 and prefix of an address or username, as leakwatch
/// computes them; lets an admin look up a hash from the digest.
pub fn hash(cfg: &Config, identity: &str) -> Result<i32> {
    let norm = Normalizer::new(&cfg.organization);
    let mut key = String::new();
    let ok = if identity.contains('@') {
        norm.email_key(identity, &mut key)
    } else {
        norm.login_key(identity, &mut key)
    };
    anyhow::ensure!(
        ok,
        "`{identity}` is neither an email address nor a username"
    );
    let h = IdentityHash::of(&key);
    println!("{key}\t{}\t{}", h.hex(), h.prefix());
    Ok(EXIT_OK)
}

/// A runtime whose worker drives I/O by itself: the pipeline calls `Handle::block_on`,
/// which on a current-thread runtime would never poll the sockets (SMTP would hang).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
