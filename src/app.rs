//! The commands, as the binary runs them. This is the top of the program: it opens the
//! stages, runs them in order and turns their typed errors into messages (`anyhow` is
//! used here and nowhere below).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::accounts;
use crate::config::Config;
use crate::fingerprint::Fingerprinter;
use crate::identity::{IdentityHash, Normalizer};
use crate::ingest::{Ingest, IngestStats};
use crate::notify::{self, Delivered, Templates, Transport};
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
    let transport = Transport::from_config(cfg)?;
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
    for (name, origin) in templates.origins() {
        writeln!(out, "  template {name}: {origin}")?;
    }
    for w in cfg.warnings() {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(EXIT_OK)
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

pub fn ingest(cfg: &Config, paths: &[PathBuf], progress: bool) -> Result<i32> {
    let clock = SystemClock;
    let outcome = ingest_with(cfg, paths, progress, &clock)?;
    let s = &outcome.stats;
    let d = &outcome.delivered;
    println!(
        "ingest: {} files ({} streams), {} lines, {} malformed, {} identities, {} matches, {} new findings, {} new unknown org identities, {} input errors; mails: {} composed ({} user, {} digest), {} sent, {} queued for retry, {} failed",
        s.files, s.streams, s.lines, s.malformed, s.identities, s.matches, s.new_findings, s.new_unknown, s.errors,
        outcome.user_mails + outcome.digest_mails, outcome.user_mails, outcome.digest_mails,
        d.sent, d.deferred, d.failed
    );
    let problems = s.errors > 0 || d.deferred > 0 || d.failed > 0;
    Ok(if problems { EXIT_PROBLEMS } else { EXIT_OK })
}

/// The ingest pipeline end to end: queued mail first (it is owed from before), then the
/// inputs, then compose and deliver what they caused.
pub fn ingest_with(
    cfg: &Config,
    paths: &[PathBuf],
    progress: bool,
    clock: &dyn Clock,
) -> Result<IngestOutcome> {
    let _lock = StateLock::acquire(cfg.state_dir())?;
    let mut store = Store::open(cfg.state_dir())?;
    let fingerprinter = Fingerprinter::open(cfg.state_dir())?;
    let filter = accounts::load_filter(cfg, &store)?;
    if filter.items() == 0 {
        tracing::warn!("the directory is empty: run `leakwatch accounts import FILE.csv` first");
    }
    let templates = Templates::load(cfg.notify.templates_dir.as_deref())?;
    // A mail transport that cannot be set up (an unreadable password file, say) must not
    // stop the findings from being recorded: their mail is composed and stays queued.
    let transport = match Transport::from_config(cfg) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "mail transport unavailable: mail stays queued");
            None
        }
    };
    let rt = runtime()?;
    let mut delivered = Delivered::default();
    if let Some(t) = &transport {
        delivered = rt.block_on(notify::deliver(cfg, &store, t, clock, false))?;
    }

    let mut run = Ingest::new(cfg, &mut store, &filter, &fingerprinter, clock);
    if progress {
        run = run.with_progress();
    }
    let stats = run.run(paths).context("ingest stopped")?;

    let composed = notify::compose(cfg, &mut store, &templates, clock.now())?;
    match &transport {
        Some(t) => {
            let d = rt.block_on(notify::deliver(cfg, &store, t, clock, false))?;
            delivered.sent += d.sent;
            delivered.failed += d.failed;
            delivered.deferred = d.deferred;
        }
        None => delivered.deferred = store.mail_counts()?.pending,
    }
    Ok(IngestOutcome {
        stats,
        user_mails: composed.user_mails,
        digest_mails: composed.digest_mails,
        delivered,
    })
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
        "{:>5}  {:<9}  {:<36}  {:<24}  {:<8}  {:<10}  {:<10}  {:>5}  sources",
        "id", "kind", "account", "site", "format", "first_seen", "last_seen", "seen"
    )?;
    for f in &findings {
        writeln!(
            out,
            "{:>5}  {:<9}  {:<36}  {:<24}  {:<8}  {:<10}  {:<10}  {:>5}  {}",
            f.id,
            f.kind.as_str(),
            f.email,
            f.site.as_deref().unwrap_or("-"),
            f.format,
            timefmt::date(f.first_seen),
            timefmt::date(f.last_seen),
            f.times_seen,
            f.sources.join(", ")
        )?;
    }
    writeln!(out, "{} finding(s)", findings.len())?;
    Ok(EXIT_OK)
}

pub fn mail_list(cfg: &Config) -> Result<i32> {
    let store = Store::open(cfg.state_dir())?;
    let mut out = std::io::stdout().lock();
    for (id, kind, recipient, status, attempts, err, created) in store.mail_log()? {
        writeln!(
            out,
            "{id:>6}  {kind:<6}  {status:<7}  attempts {attempts:<3}  {}  {recipient}{}",
            timefmt::rfc3339(created),
            err.map(|e| format!("  last error: {e}"))
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
    let transport = Transport::from_config(cfg)?;
    let d = runtime()?.block_on(notify::deliver(cfg, &store, &transport, &clock, false))?;
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
