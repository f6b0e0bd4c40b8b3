//! The daemon: runs every feed on its schedule, for months, under systemd.
//!
//! It drives the pipeline from the outside: `plan` decides which feed runs when (pure, with
//! the time passed in), `job` runs one feed through the pipeline on a blocking thread, and
//! this module owns the event loop: timers, at most `feeds.max_concurrent` jobs at once,
//! signals, the mail retry tick, and systemd notifications.
//!
//! - `SIGHUP` reloads the config and the feed files. If anything in them is invalid the
//!   error is logged and the daemon goes on with what it had.
//! - `SIGTERM` / `SIGINT` stop taking work and cancel the jobs: each stops between two
//!   records (its findings are already committed; a file or download cut short is read
//!   again next time, and deduplication makes that harmless), then the mail queue is
//!   flushed and the daemon exits, all within `STOP_WITHIN`.
//! - A run row left `running` by a crash is marked `interrupted` at start, and a feed whose
//!   firing was missed while the daemon was down runs once at start.

pub mod job;
pub mod plan;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::feed::{self, Feed};
use crate::pipeline;
use crate::store::{RunOutcome, Store, StoreError};
use crate::timefmt::{self, Clock};

use job::{JobEnv, JobReport};
use plan::Plan;

/// systemd's default `TimeoutStopSec` is 90 s; we promise far less.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);
/// Time left for the final mail flush, out of `STOP_WITHIN`.
const FLUSH_BUDGET: Duration = Duration::from_secs(3);
/// The longest sleep between two looks at the plan (and the heartbeat in the state).
const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Feeds(String),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: PathBuf,
    /// Every enabled feed once, then exit.
    pub once: bool,
}

/// What a run of the daemon did, for its exit status.
#[derive(Debug, Default)]
pub struct Summary {
    pub runs: u64,
    /// Runs that ended `failed` or `problems`.
    pub troubled: u64,
}

pub async fn run(
    cfg: Config,
    feeds: Vec<Feed>,
    opts: RunOptions,
    clock: Arc<dyn Clock>,
) -> Result<Summary, DaemonError> {
    let mut cfg = Arc::new(cfg);
    let mut feeds = feeds;
    let cancel = Cancel::new();
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let store = Store::open(cfg.state_dir())?;
    let interrupted = store.feed_runs_interrupted(clock.now())?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "feed runs interrupted by the last stop were marked"
        );
    }
    // Bound before READY: a port taken is a failed start, not a silent gap in the graphs.
    // The listener keeps serving across reloads (the state directory does not change).
    let metrics = match cfg.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            tracing::info!(%addr, "metrics served on /metrics");
            Some(tokio::spawn(crate::metrics::serve(listener, cfg.clone())))
        }
        None => None,
    };
    store.daemon_started(std::process::id(), clock.now())?;
    let mut random = || rand::rng().next_u64();
    let mut plan = Plan::new(
        &feeds,
        last_starts(&store, &feeds),
        clock.now(),
        opts.once,
        &mut random,
    );

    let mut jobs: JoinSet<JobReport> = JoinSet::new();
    let mut summary = Summary::default();
    let mut mail_tick = tokio::time::interval(Duration::from_secs(cfg.notify.retry_interval_secs));
    mail_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mail_job: Option<tokio::task::JoinHandle<()>> = None;
    let watchdog = systemd::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

    tracing::info!(
        feeds = feeds.len(),
        enabled = feeds.iter().filter(|f| f.enabled).count(),
        once = opts.once,
        "leakwatch daemon started"
    );
    systemd::ready();
    loop {
        let now = clock.now();
        for name in plan.due(now) {
            if jobs.len() >= cfg.feeds.max_concurrent {
                break;
            }
            let Some(f) = feeds.iter().find(|f| f.name == name).cloned() else {
                continue;
            };
            plan.started(&name, now, &mut random);
            let env = JobEnv {
                cfg: cfg.clone(),
                clock: clock.clone(),
                cancel: cancel.clone(),
                rt: tokio::runtime::Handle::current(),
            };
            jobs.spawn_blocking(move || job::run_feed(&env, &f));
        }
        let status = status_line(&plan, &feeds);
        systemd::status(&status);
        if let Err(e) = store.daemon_heartbeat(&status, now) {
            tracing::warn!(error = %e, "cannot write the heartbeat");
        }
        if opts.once && plan.exhausted() && jobs.is_empty() {
            break;
        }
        let sleep = match plan.next_wake() {
            Some(t) => {
                Duration::from_secs((t - clock.now()).clamp(0, HEARTBEAT.as_secs() as i64) as u64)
            }
            None => HEARTBEAT,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                match done {
                    Ok(report) => {
                        plan.finished(&report.feed);
                        summary.runs += 1;
                        if matches!(report.outcome, RunOutcome::Failed | RunOutcome::Problems) {
                            summary.troubled += 1;
                            tracing::warn!(feed = %report.feed, outcome = report.outcome.as_str(), message = report.message.as_deref().unwrap_or(""), "feed run needs a look");
                        }
                    }
                    // A panic aborts the process (panic = "abort"), so this is a bug in tokio.
                    Err(e) => tracing::error!(error = %e, "a feed job vanished"),
                }
            }
            _ = hup.recv() => {
                systemd::reloading();
                match reload(&opts.config_path) {
                    Ok((new_cfg, new_feeds)) => {
                        tracing::info!(feeds = new_feeds.len(), "configuration reloaded");
                        cfg = Arc::new(new_cfg);
                        feeds = new_feeds;
                        plan.replace(&feeds, last_starts(&store, &feeds), clock.now(), &mut random);
                    }
                    Err(e) => tracing::error!(error = %e, "reload refused; keeping the running configuration"),
                }
                systemd::ready();
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = mail_tick.tick(), if !opts.once => {
                if mail_job.as_ref().is_none_or(|j| j.is_finished()) {
                    let (cfg, clock) = (cfg.clone(), clock.clone());
                    let rt = tokio::runtime::Handle::current();
                    mail_job = Some(tokio::task::spawn_blocking(move || retry_mail(&cfg, clock.as_ref(), &rt)));
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => systemd::watchdog(),
        }
    }

    systemd::stopping();
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + STOP_WITHIN - FLUSH_BUDGET;
    while !jobs.is_empty() {
        match tokio::time::timeout_at(deadline, jobs.join_next()).await {
            Ok(Some(Ok(report))) => {
                summary.runs += 1;
                if matches!(report.outcome, RunOutcome::Failed | RunOutcome::Problems) {
                    summary.troubled += 1;
                }
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    jobs = jobs.len(),
                    "jobs still running at the stop deadline; leaving them"
                );
                break;
            }
        }
    }
    // Whatever the jobs composed and could not send yet.
    let flush = {
        let (cfg, clock) = (cfg.clone(), clock.clone());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut store = Store::open(cfg.state_dir()).map_err(|e| e.to_string())?;
            pipeline::notify_pass(&cfg, &mut store, clock.as_ref(), &rt, true)
                .map_err(|e| e.to_string())
        })
    };
    match tokio::time::timeout(FLUSH_BUDGET, flush).await {
        Ok(Ok(Ok(n))) if n.delivered.sent > 0 => {
            tracing::info!(sent = n.delivered.sent, "mail flushed")
        }
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "final mail flush failed; mail stays queued"),
        Err(_) => tracing::warn!("final mail flush cut at the stop deadline; mail stays queued"),
        _ => {}
    }
    if let Some(m) = metrics {
        m.abort();
    }
    store.daemon_stopped(clock.now())?;
    tracing::info!(runs = summary.runs, "leakwatch daemon stopped");
    Ok(summary)
}

/// When each feed last started, read once from the store.
fn last_starts(store: &Store, feeds: &[Feed]) -> impl Fn(&str) -> Option<i64> {
    let starts: std::collections::HashMap<String, i64> = feeds
        .iter()
        .filter_map(|f| {
            Some((
                f.name.clone(),
                store.feed_last_start(&f.name).ok().flatten()?,
            ))
        })
        .collect();
    move |name: &str| starts.get(name).copied()
}

/// Loads the config and the feeds anew; any error refuses the whole reload.
fn reload(config_path: &Path) -> Result<(Config, Vec<Feed>), DaemonError> {
    let cfg = Config::load(config_path).map_err(|e| DaemonError::Feeds(e.to_string()))?;
    let feeds = feed::load(&cfg).map_err(|errors| {
        DaemonError::Feeds(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok((cfg, feeds))
}

/// Delivers queued mail whose retry time has come.
fn retry_mail(cfg: &Config, clock: &dyn Clock, rt: &tokio::runtime::Handle) {
    let result = Store::open(cfg.state_dir())
        .map_err(|e| e.to_string())
        .and_then(|mut store| {
            pipeline::notify_pass(cfg, &mut store, clock, rt, true).map_err(|e| e.to_string())
        });
    match result {
        Ok(n) if n.delivered.sent + n.delivered.deferred + n.delivered.failed > 0 => {
            tracing::info!(
                sent = n.delivered.sent,
                deferred = n.delivered.deferred,
                failed = n.delivered.failed,
                "mail queue retried"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "mail retry failed"),
    }
}

/// One line for systemd's status and `leakwatch status`: what runs, what comes next.
fn status_line(plan: &Plan, feeds: &[Feed]) -> String {
    let running = plan.running();
    let next = feeds
        .iter()
        .filter_map(|f| plan.next_of(&f.name).map(|t| (t, &f.name)))
        .filter(|(_, n)| !running.contains(&n.as_str()))
        .min();
    let mut s = if running.is_empty() {
        "idle".to_string()
    } else {
        format!("running {}", running.join(", "))
    };
    if let Some((t, name)) = next {
        s.push_str(&format!("; next {name} at {}", timefmt::rfc3339(t)));
    }
    s
}
