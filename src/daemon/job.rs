//! One feed run, start to end: a `running` row in `feed_runs`, the feed's fetcher, the
//! pipeline over what it fetched, the mail it causes, and the row completed with its
//! outcome, counters and the first errors.
//!
//! A run is synchronous code on a blocking thread (parsing is CPU work); its network parts
//! are awaited on the daemon's runtime through `rt.block_on`. A failure in one URL, file
//! or prefix is recorded and the run goes on to the next; a run's failure is its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::feed::client::{redact, Client, FetchError};
use crate::feed::directory::{self, DirectoryFeed, DropDir, Verdict};
use crate::feed::hibp::{self, HibpFeed, Search};
use crate::feed::http::{self, Fetched, HttpFeed, Validators};
use crate::feed::range::{self, RangeFeed};
use crate::feed::{Feed, FeedKind};
use crate::identity::{mask_email, IdentityHash, Normalizer};
use crate::ingest::{IngestError, IngestStats};
use crate::parse::Format;
use crate::pipeline::{self, Hit, HitOutcome, Pipeline, PipelineError};
use crate::source::InputFile;
use crate::store::{FeedRunStats, RunOutcome, Severity, Store, StoreError, UnknownSighting};
use crate::timefmt::Clock;

/// Errors kept in a run's `message`; the rest are counted.
const MESSAGES_KEPT: usize = 5;
const RANGE_CURSOR: &str = "range:cursor";

/// What every job needs from the daemon.
#[derive(Clone)]
pub struct JobEnv {
    pub cfg: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub cancel: Cancel,
    pub rt: tokio::runtime::Handle,
}

impl JobEnv {
    fn spool_dir(&self) -> PathBuf {
        self.cfg.state_dir().join("spool")
    }
}

#[derive(Debug, Clone)]
pub struct JobReport {
    pub feed: String,
    pub outcome: RunOutcome,
    pub stats: FeedRunStats,
    pub message: Option<String>,
    pub mails_sent: u64,
}

/// What a fetcher reports back to the run.
#[derive(Debug, Default)]
struct Progress {
    stats: FeedRunStats,
    messages: Vec<String>,
    /// Errors in parts of the run (a URL, a file, a prefix).
    failures: u64,
    /// Parts attempted.
    parts: u64,
    /// Parts where the source had something new.
    changed: u64,
    cancelled: bool,
}

impl Progress {
    fn fail(&mut self, what: impl std::fmt::Display) {
        self.failures += 1;
        tracing::error!(error = %what, "feed error");
        if self.messages.len() < MESSAGES_KEPT {
            self.messages.push(what.to_string());
        }
    }

    fn add_ingest(&mut self, s: &IngestStats) {
        self.stats.bytes += s.bytes;
        self.stats.lines += s.lines;
        self.stats.entries += s.entries;
        self.stats.with_identity += s.with_identity;
        self.stats.malformed += s.malformed;
        self.stats.no_identity += s.no_identity;
        self.stats.identities += s.identities;
        self.stats.matches += s.matches;
        self.stats.new_findings += s.new_findings;
        self.stats.errors += s.errors;
        // Name the archive and entry in the run's row, not only in the log.
        for e in &s.error_samples {
            if self.messages.len() < MESSAGES_KEPT {
                self.messages.push(e.clone());
            }
        }
    }
}

/// Runs `feed` once and records the run.
pub fn run_feed(env: &JobEnv, feed: &Feed) -> JobReport {
    let cfg = &env.cfg;
    let now = env.clock.now();
    let started = std::time::Instant::now();
    tracing::info!(feed = %feed.name, kind = feed.kind.as_str(), "feed run started");
    let run_id = Store::open(cfg.state_dir())
        .and_then(|s| s.feed_run_start(&feed.name, feed.kind.as_str(), now));
    let mut p = Progress::default();
    let mut mails_sent = 0;
    match Pipeline::open(cfg) {
        Err(e) => p.fail(e),
        Ok(mut pipe) => {
            let result = match &feed.kind {
                FeedKind::Directory(d) => run_directory(env, feed, d, &mut pipe, &mut p),
                FeedKind::Http(h) => run_http(env, feed, h, &mut pipe, &mut p),
                FeedKind::Range(r) => run_range(env, feed, r, &mut pipe, &mut p),
                FeedKind::Hibp(h) => run_hibp(env, feed, h, &mut pipe, &mut p),
            };
            if let Err(e) = result {
                p.fail(e);
            }
            if p.stats.new_findings > 0 {
                match pipeline::notify_pass(cfg, &mut pipe.store, env.clock.as_ref(), &env.rt, true)
                {
                    Ok(n) => {
                        mails_sent = n.delivered.sent;
                        if n.delivered.deferred + n.delivered.failed > 0 {
                            p.fail(format!(
                                "mail: {} deferred, {} failed (see `leakwatch mail list`)",
                                n.delivered.deferred, n.delivered.failed
                            ));
                        }
                    }
                    Err(e) => p.fail(format!("mail: {e}")),
                }
            }
        }
    }
    let outcome = if p.cancelled {
        RunOutcome::Cancelled
    } else if p.failures > 0 && p.failures >= p.parts.max(1) && p.changed == 0 {
        RunOutcome::Failed
    } else if p.failures > 0 || p.stats.errors > 0 {
        RunOutcome::Problems
    } else if p.changed == 0 {
        RunOutcome::Unchanged
    } else {
        RunOutcome::Ok
    };
    if p.stats.errors > 0 && p.messages.len() < MESSAGES_KEPT {
        p.messages.push(format!(
            "{} input error(s) skipped; see the log",
            p.stats.errors
        ));
    }
    let message = (!p.messages.is_empty()).then(|| p.messages.join("; "));
    let recorded = run_id.and_then(|id| {
        Store::open(cfg.state_dir())?.feed_run_finish(
            id,
            outcome,
            &p.stats,
            message.as_deref(),
            env.clock.now(),
        )
    });
    if let Err(e) = recorded {
        tracing::error!(feed = %feed.name, error = %e, "cannot record the feed run");
    }
    tracing::info!(
        feed = %feed.name,
        outcome = outcome.as_str(),
        secs = started.elapsed().as_secs_f32(),
        bytes = p.stats.bytes,
        identities = p.stats.identities,
        matches = p.stats.matches,
        new_findings = p.stats.new_findings,
        mails_sent,
        "feed run finished"
    );
    JobReport {
        feed: feed.name.clone(),
        outcome,
        stats: p.stats,
        message,
        mails_sent,
    }
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Folds an ingest's result into the run; true if the input was read to its end.
fn ingested(p: &mut Progress, r: Result<IngestStats, IngestError>) -> Result<bool, JobError> {
    match r {
        Ok(s) => {
            p.add_ingest(&s);
            Ok(true)
        }
        Err(IngestError::Cancelled(s)) => {
            p.add_ingest(&s);
            p.cancelled = true;
            Ok(false)
        }
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

fn run_directory(
    env: &JobEnv,
    feed: &Feed,
    d: &DirectoryFeed,
    pipe: &mut Pipeline<'_>,
    p: &mut Progress,
) -> Result<(), JobError> {
    let drop = DropDir::open(d).map_err(|source| JobError::Io {
        path: d.path.display().to_string(),
        source,
    })?;
    let (files, problems) = drop.scan(d.settle_secs, env.clock.now());
    for m in problems {
        p.fail(m);
    }
    // The files of one infected machine's folder are read in one run, so that its device
    // file and cookies are linked to its credentials: read one by one, each was settled
    // alone and a stolen session was never tied to the accounts stolen with it.
    for (root, group) in directory::by_device_folder(files, &d.path) {
        if env.cancel.is_cancelled() {
            p.cancelled = true;
            break;
        }
        let in_folder = root.is_some();
        // A device folder's name (an HWID, an IP) is in no log line and no file row: its
        // files are named by the folder's keyed label.
        let shown = |pipe: &Pipeline<'_>, c: &directory::Candidate| {
            pipe.shown_path(&c.path.display().to_string(), root.as_deref())
        };
        let mut new = Vec::new();
        let mut known = Vec::new();
        for c in group {
            let path = shown(pipe, &c);
            if let Some(why) = &c.refused {
                p.parts += 1;
                p.fail(format!("{path}: {why}"));
                continue;
            }
            let by_path = pipe.store.seen_file(&feed.name, &path)?;
            let verdict = drop.judge(&c, by_path.as_ref(), |h| {
                pipe.store.seen_content(&feed.name, h).unwrap_or(false)
            });
            match verdict {
                Ok(Verdict::Known) => known.push(c),
                Ok(Verdict::SameContent(seen)) => {
                    tracing::info!(feed = %feed.name, file = %path, "same content as a file already read; skipped");
                    pipe.store
                        .mark_file_seen(&feed.name, &path, &seen, env.clock.now())?;
                }
                Ok(Verdict::New(seen)) => new.push((c, seen)),
                Err(e) => {
                    p.parts += 1;
                    p.fail(format!("{path}: {e}"));
                }
            }
        }
        if new.is_empty() {
            continue;
        }
        // A folder with a new file is read whole: the device file or cookies read in an
        // earlier run are needed again to settle the new credentials, and findings
        // already known are only seen again.
        let mut files: Vec<InputFile> = new.iter().map(|(c, _)| input_of(c)).collect();
        if in_folder {
            files.extend(known.iter().map(input_of));
        }
        p.parts += new.len() as u64;
        p.changed += new.len() as u64;
        for (c, _) in &new {
            tracing::info!(feed = %feed.name, file = %shown(pipe, c), bytes = c.size, "reading new file");
        }
        let r = pipe
            .ingest(env.clock.as_ref(), Some(&env.cancel))
            .with_archive_passwords(&d.archive_passwords)
            .with_device_roots(root.iter().cloned().collect())
            .with_progress()
            .run_files(&files, Vec::new(), |f| {
                // Opened again below the drop directory's descriptor: whatever was put
                // in its place since the scan, no link is followed and no FIFO waited on.
                drop.open_file(f.path.strip_prefix(&d.path).unwrap_or(&f.path))
            });
        if !ingested(p, r)? {
            break;
        }
        // Recorded as read even if some of it was unreadable (reported above): the same
        // bytes would fail the same way. A changed file is read again.
        for (c, seen) in new {
            let path = shown(pipe, &c);
            pipe.store
                .mark_file_seen(&feed.name, &path, &seen, env.clock.now())?;
            if d.processed_dir.is_some() {
                match drop.move_processed(d, &c) {
                    Ok(dest) => {
                        // The folder moved with it: named by its label there too.
                        let moved_root =
                            root.as_deref()
                                .zip(d.processed_dir.as_deref())
                                .and_then(|(r, to)| {
                                    let rel = Path::new(r).strip_prefix(&d.path).ok()?;
                                    Some(to.join(rel).display().to_string())
                                });
                        let dest =
                            pipe.shown_path(&dest.display().to_string(), moved_root.as_deref());
                        pipe.store
                            .mark_file_seen(&feed.name, &dest, &seen, env.clock.now())?;
                    }
                    Err(e) => p.fail(format!("{path}: cannot move to processed_dir: {e}")),
                }
            }
        }
    }
    Ok(())
}

fn input_of(c: &directory::Candidate) -> InputFile {
    InputFile {
        path: c.path.clone(),
        size: c.size,
    }
}

fn run_http(
    env: &JobEnv,
    feed: &Feed,
    h: &HttpFeed,
    pipe: &mut Pipeline<'_>,
    p: &mut Progress,
) -> Result<(), JobError> {
    let client = Client::new(&h.client)?;
    let spool_dir = env.spool_dir();
    crate::store::ensure_state_dir(&spool_dir)?;
    for url in &h.urls {
        if env.cancel.is_cancelled() {
            p.cancelled = true;
            break;
        }
        p.parts += 1;
        let key = Validators::state_key(url);
        let previous: Validators = pipe
            .store
            .feed_state_get(&feed.name, &key)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let fetched = env.rt.block_on(http::fetch(
            &client,
            url,
            h.max_bytes,
            &previous,
            &spool_dir,
            &env.cancel,
        ));
        let shown = redact(url);
        match fetched {
            Ok(Fetched::NotModified) => {
                tracing::info!(feed = %feed.name, url = %shown, "not modified");
            }
            Ok(Fetched::SameContent(v)) => {
                tracing::info!(feed = %feed.name, url = %shown, "same content as last time; not read again");
                save_validators(pipe, &feed.name, &key, &v)?;
            }
            Ok(Fetched::New { spool, validators }) => {
                p.changed += 1;
                let len = spool.len();
                let name = format!("{}:{shown}", feed.name);
                let r = pipe
                    .ingest(env.clock.as_ref(), Some(&env.cancel))
                    .with_archive_passwords(&h.archive_passwords)
                    .with_progress()
                    .run_input(&name, *spool, len);
                if !ingested(p, r)? {
                    break;
                }
                save_validators(pipe, &feed.name, &key, &validators)?;
            }
            Err(FetchError::Cancelled) => {
                p.cancelled = true;
                break;
            }
            Err(e) => p.fail(e),
        }
    }
    Ok(())
}

fn save_validators(
    pipe: &Pipeline<'_>,
    feed: &str,
    key: &str,
    v: &Validators,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(v).expect("validators serialise");
    pipe.store.feed_state_set(feed, key, &json)
}

fn run_range(
    env: &JobEnv,
    feed: &Feed,
    r: &RangeFeed,
    pipe: &mut Pipeline<'_>,
    p: &mut Progress,
) -> Result<(), JobError> {
    let client = Client::new(&r.client)?;
    let prefixes = pipe.store.email_prefixes()?;
    let cursor: Option<u32> = pipe
        .store
        .feed_state_get(&feed.name, RANGE_CURSOR)?
        .and_then(|v| v.parse().ok());
    let todo: Vec<u32> = prefixes
        .iter()
        .copied()
        .filter(|x| cursor.is_none_or(|c| *x > c))
        .collect();
    let limit = if r.max_requests_per_run == 0 {
        usize::MAX
    } else {
        r.max_requests_per_run as usize
    };
    tracing::info!(
        feed = %feed.name,
        prefixes = prefixes.len(),
        left_in_sweep = todo.len(),
        resumed = cursor.is_some(),
        "range sweep"
    );
    let interval = std::time::Duration::from_secs_f64(1.0 / r.requests_per_second);
    let source = format!("{}:range", feed.name);
    let mut last_request: Option<std::time::Instant> = None;
    let mut last_log = std::time::Instant::now();
    let mut asked = 0usize;
    for &prefix in todo.iter().take(limit) {
        if let Some(t) = last_request {
            let wait = interval.saturating_sub(t.elapsed());
            if !env.rt.block_on(env.cancel.sleep(wait)) {
                p.cancelled = true;
                break;
            }
        }
        last_request = Some(std::time::Instant::now());
        p.parts += 1;
        let answer = match env
            .rt
            .block_on(range::query(&client, r, prefix, &env.cancel))
        {
            Ok(a) => a,
            Err(FetchError::Cancelled) => {
                p.cancelled = true;
                break;
            }
            Err(e) => {
                // The cursor stays before this prefix: the next run asks it again.
                p.fail(e);
                break;
            }
        };
        p.changed += 1;
        asked += 1;
        p.stats.lines += answer.hashes.len() as u64 + answer.padding + answer.malformed;
        // Each answer line is an entry: a hash (an identity), padding, or malformed.
        p.stats.entries += answer.hashes.len() as u64 + answer.padding + answer.malformed;
        p.stats.with_identity += answer.hashes.len() as u64;
        p.stats.no_identity += answer.padding;
        p.stats.malformed += answer.malformed;
        p.stats.identities += answer.hashes.len() as u64;
        p.stats.errors += answer.malformed;
        for hash in &answer.hashes {
            let hit = Hit {
                hash: *hash,
                credential_of: None,
                site: None,
                format: Format::Range,
                source: &source,
                severity: Severity::Medium,
            };
            match pipe.record_hit(&hit, env.clock.now())? {
                HitOutcome::NoAccount => {}
                HitOutcome::Seen(_) => p.stats.matches += 1,
                HitOutcome::New(_) => {
                    p.stats.matches += 1;
                    p.stats.new_findings += 1;
                }
            }
        }
        pipe.store
            .feed_state_set(&feed.name, RANGE_CURSOR, &prefix.to_string())?;
        if last_log.elapsed() >= std::time::Duration::from_secs(10) {
            last_log = std::time::Instant::now();
            tracing::info!(feed = %feed.name, asked, of = todo.len(), "range sweep progress");
        }
    }
    if !p.cancelled && p.failures == 0 && asked == todo.len() {
        pipe.store.feed_state_delete(&feed.name, RANGE_CURSOR)?;
        tracing::info!(feed = %feed.name, prefixes = prefixes.len(), "range sweep complete");
    }
    Ok(())
}

fn run_hibp(
    env: &JobEnv,
    feed: &Feed,
    h: &HibpFeed,
    pipe: &mut Pipeline<'_>,
    p: &mut Progress,
) -> Result<(), JobError> {
    let client = hibp::client(h)?;
    let norm = Normalizer::new(&env.cfg.organization);
    let domains = if h.domains.is_empty() {
        env.cfg.organization.domains.clone()
    } else {
        h.domains.clone()
    };
    let mut searches = Vec::new();
    for d in &domains {
        if h.breaches {
            searches.push((Search::Breaches, d));
        }
        if h.stealer_logs {
            searches.push((Search::StealerLogs, d));
        }
    }
    let interval = std::time::Duration::from_millis(h.min_interval_ms);
    let mut key = String::new();
    for (i, (what, domain)) in searches.into_iter().enumerate() {
        if i > 0 && !env.rt.block_on(env.cancel.sleep(interval)) {
            p.cancelled = true;
            break;
        }
        p.parts += 1;
        let answer = match env
            .rt
            .block_on(hibp::search(&client, h, what, domain, &env.cancel))
        {
            Ok(a) => a,
            Err(FetchError::Cancelled) => {
                p.cancelled = true;
                break;
            }
            Err(e) => {
                p.fail(e);
                continue;
            }
        };
        p.changed += 1;
        for (alias, names) in &answer {
            p.stats.lines += 1;
            p.stats.entries += 1;
            if !norm.email_key(&format!("{alias}@{domain}"), &mut key) {
                p.stats.errors += 1;
                p.stats.malformed += 1;
                continue;
            }
            p.stats.identities += 1;
            p.stats.with_identity += 1;
            let hash = IdentityHash::of(&key);
            let mut matched = false;
            let source_of = |name: &str| format!("{}:hibp {name}", feed.name);
            let mut record = |pipe: &mut Pipeline<'_>, hit: Hit<'_>| -> Result<(), StoreError> {
                match pipe.record_hit(&hit, env.clock.now())? {
                    HitOutcome::NoAccount => {}
                    HitOutcome::Seen(_) => matched = true,
                    HitOutcome::New(_) => {
                        matched = true;
                        p.stats.new_findings += 1;
                    }
                }
                Ok(())
            };
            match what {
                Search::Breaches => {
                    let source = source_of(&names.join(","));
                    record(
                        pipe,
                        Hit {
                            hash,
                            credential_of: None,
                            site: None,
                            format: Format::Hibp,
                            source: &source,
                            severity: Severity::Medium,
                        },
                    )?;
                }
                // A stealer log holds the password typed into each site: one credential
                // finding per site (HIBP does not give the password; the site keys it).
                Search::StealerLogs => {
                    for site in names {
                        let site = site.to_ascii_lowercase();
                        let source = source_of("stealer log");
                        let credential = format!("hibp-stealer-log\0{site}");
                        record(
                            pipe,
                            Hit {
                                hash,
                                credential_of: Some(&credential),
                                site: Some(&site),
                                format: Format::Hibp,
                                source: &source,
                                // Stolen by an infostealer: the machine is infected.
                                severity: Severity::Critical,
                            },
                        )?;
                    }
                }
            }
            if matched {
                p.stats.matches += 1;
            } else if norm.is_org_email(&key) {
                let source = source_of(match what {
                    Search::Breaches => "breaches",
                    Search::StealerLogs => "stealer log",
                });
                pipe.store.record_unknown(&UnknownSighting {
                    hash,
                    masked: &mask_email(&key),
                    has_password: what == Search::StealerLogs,
                    format: Format::Hibp,
                    source: &source,
                    seen_at: env.clock.now(),
                })?;
            }
        }
    }
    Ok(())
}
