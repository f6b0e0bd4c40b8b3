//! One ingest run: paths → streams → records → identities → Bloom → confirmed findings.
//!
//! This module wires the stages together and owns the counters of the run. It records
//! findings; it does not mail (the caller composes and delivers notifications from the
//! store afterwards, see `notify`), so an ingest that dies half-way leaves every finding it
//! recorded ready to be notified by the next run.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::filter::AccountFilter;
use crate::fingerprint::{password_hint, Fingerprinter};
use crate::identity::{mask_email, url_host, IdentityHash, IdentityKind, Normalizer};
use crate::parse::{self, Malformed, Record, Sink};
use crate::progress::Progress;
use crate::source::{self, SourceError, StreamHandler};
use crate::store::{FindingKind, Sighting, SightingOutcome, Store, StoreError, UnknownSighting};
use crate::timefmt::Clock;

/// Malformed lines logged one by one per stream and reason; the rest are only counted.
const MALFORMED_LOGGED: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Without a working database nothing can be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stopped by a shutdown after reading this much.
    #[error("stopped by shutdown")]
    Cancelled(IngestStats),
}

/// Counters of one run, printed as its summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    pub files: u64,
    pub streams: u64,
    pub bytes: u64,
    pub lines: u64,
    pub malformed: u64,
    pub records: u64,
    pub identities: u64,
    pub matches: u64,
    pub new_findings: u64,
    pub new_unknown: u64,
    /// Files, entries or paths that could not be read (reported one by one).
    pub errors: u64,
}

pub struct Ingest<'a> {
    cfg: &'a Config,
    store: &'a mut Store,
    filter: &'a AccountFilter,
    fingerprinter: &'a Fingerprinter,
    clock: &'a dyn Clock,
    norm: Normalizer,
    stats: IngestStats,
    progress: Progress,
    show_progress: bool,
    /// Bytes of the files already done, for progress.
    done_bytes: u64,
    /// A store failure stops the run: without a working database nothing can be recorded.
    fatal: Option<StoreError>,
    key: String,
    source_name: String,
    cancel: Option<Cancel>,
    /// Set when a cancel stopped the run part-way.
    cancelled: bool,
}

impl<'a> Ingest<'a> {
    pub fn new(
        cfg: &'a Config,
        store: &'a mut Store,
        filter: &'a AccountFilter,
        fingerprinter: &'a Fingerprinter,
        clock: &'a dyn Clock,
    ) -> Ingest<'a> {
        Ingest {
            cfg,
            store,
            filter,
            fingerprinter,
            clock,
            norm: Normalizer::new(&cfg.organization),
            stats: IngestStats::default(),
            progress: Progress::hidden(),
            show_progress: false,
            done_bytes: 0,
            fatal: None,
            key: String::with_capacity(128),
            source_name: String::new(),
            cancel: None,
            cancelled: false,
        }
    }

    /// Stops between records once `cancel` fires. Findings recorded until then are kept;
    /// the input is reported as not finished, so its feed reads it again next time.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Reads one input that is not a file on disk (a download's spool).
    pub fn run_input<R: Read + io::Seek>(
        mut self,
        name: &str,
        input: R,
        size: u64,
    ) -> Result<IngestStats, IngestError> {
        if self.show_progress {
            self.progress = Progress::new(size);
        }
        self.stats.files += 1;
        let limits = self.cfg.limits.clone();
        source::read_input(name, input, &limits, &mut self);
        self.progress.finish();
        self.finish()
    }

    fn finish(mut self) -> Result<IngestStats, IngestError> {
        if let Some(e) = self.fatal.take() {
            return Err(IngestError::Store(e));
        }
        if self.cancelled {
            return Err(IngestError::Cancelled(self.stats));
        }
        Ok(self.stats)
    }

    /// Shows progress (bar or log lines) while running.
    pub fn with_progress(mut self) -> Self {
        self.show_progress = true;
        self
    }

    /// Reads every path. Errors in inputs are reported and counted; only a store failure
    /// or a cancel is returned as an error (findings recorded before it are kept).
    pub fn run(mut self, paths: &[PathBuf]) -> Result<IngestStats, IngestError> {
        let (files, errors) = source::collect_files(paths);
        for e in errors {
            self.error(e);
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        if self.show_progress {
            self.progress = Progress::new(total);
        }
        let limits = self.cfg.limits.clone();
        for file in &files {
            self.stats.files += 1;
            source::read_file(file, &limits, &mut self);
            if self.fatal.is_some() || self.cancelled {
                break;
            }
            self.done_bytes += file.size;
            self.progress.set(self.done_bytes);
        }
        self.progress.finish();
        self.finish()
    }

    fn record_match(
        &mut self,
        r: &Record<'_>,
        hash: IdentityHash,
        kind: IdentityKind,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        match self.store.confirm(&hash)? {
            Some(account) => {
                self.stats.matches += 1;
                let source = format!("{}:{}", self.source_name, r.line);
                let site = r.url.and_then(url_host).map(str::to_ascii_lowercase);
                let (kind, fp, hint) = match r.password {
                    Some(pw) => (
                        FindingKind::Password,
                        Some(self.fingerprinter.password(account.id, pw)),
                        self.cfg.privacy.password_hint.then(|| password_hint(pw)),
                    ),
                    None => (FindingKind::Identity, None, None),
                };
                let outcome = self.store.record_sighting(&Sighting {
                    account_id: account.id,
                    kind,
                    secret_fp: fp,
                    password_hint: hint.as_deref(),
                    identity_hash: hash,
                    site: site.as_deref(),
                    format: r.format,
                    source: &source,
                    seen_at: now,
                })?;
                if let SightingOutcome::New(id) = outcome {
                    self.stats.new_findings += 1;
                    tracing::info!(
                        finding = id,
                        account = account.id,
                        kind = kind.as_str(),
                        source = %source,
                        "new finding"
                    );
                }
            }
            None => self.record_unknown(r, hash, kind)?,
        }
        Ok(())
    }

    /// Records an org-domain identity that no account holds. Runs for every identity the
    /// filter rejects, so the cheap domain test comes first.
    fn record_unknown(
        &mut self,
        r: &Record<'_>,
        hash: IdentityHash,
        kind: IdentityKind,
    ) -> Result<(), StoreError> {
        if kind != IdentityKind::Email || !self.norm.is_org_email(&self.key) {
            return Ok(());
        }
        let now = self.clock.now();
        let masked = mask_email(&self.key);
        let source = format!("{}:{}", self.source_name, r.line);
        if self.store.record_unknown(&UnknownSighting {
            hash,
            masked: &masked,
            has_password: r.password.is_some(),
            format: r.format,
            source: &source,
            seen_at: now,
        })? {
            self.stats.new_unknown += 1;
        }
        Ok(())
    }

    fn error(&mut self, e: SourceError) {
        if self.cancelled {
            return; // the input was cut by the shutdown, not broken
        }
        self.stats.errors += 1;
        tracing::error!(error = %e, "input skipped");
    }
}

impl Sink for Ingest<'_> {
    fn record(&mut self, r: &Record<'_>) {
        if self.fatal.is_some() || self.cancelled {
            return;
        }
        if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            self.cancelled = true;
            return;
        }
        let Some(kind) = self.norm.key_of(r.login, r.url, &mut self.key) else {
            return;
        };
        self.stats.identities += 1;
        let hash = IdentityHash::of(&self.key);
        let result = if self.filter.may_contain(&hash) {
            self.record_match(r, hash, kind)
        } else {
            self.record_unknown(r, hash, kind)
        };
        if let Err(e) = result {
            self.fatal = Some(e);
        }
    }

    fn malformed(&mut self, line: u64, why: Malformed) {
        // Counted per stream in the parser's stats; logged here for the first few.
        let _ = (line, why);
    }

    fn progress(&mut self, bytes_read: u64) {
        self.progress.set(self.done_bytes + bytes_read);
    }
}

impl StreamHandler for Ingest<'_> {
    fn stream(&mut self, name: &str, input: &mut dyn Read) -> io::Result<()> {
        self.stats.streams += 1;
        self.source_name.clear();
        self.source_name.push_str(name);
        let max_line = self.cfg.limits.max_line_bytes;
        // Reads fail once a shutdown is asked for, so even a long file of lines that hold
        // no identity stops within one buffer.
        let cancel = self.cancel.clone();
        let mut input = CancelReader {
            inner: input,
            cancel: cancel.as_ref(),
        };
        let mut logger = MalformedLog {
            inner: self,
            name,
            logged: [0; Malformed::ALL.len()],
        };
        let result = parse::parse_stream(&mut input, name, max_line, &mut logger);
        let logged: u64 = logger.logged.iter().sum();
        if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            self.cancelled = true;
        }
        if let Ok(s) = &result {
            self.stats.lines += s.lines;
            self.stats.malformed += s.malformed;
            self.stats.records += s.records;
            self.stats.bytes += s.bytes;
            if s.malformed > logged {
                tracing::warn!(file = %name, malformed = s.malformed, "malformed lines skipped");
            }
        }
        if self.fatal.is_some() {
            return Err(io::Error::other("stopped: the state database failed"));
        }
        if self.cancelled {
            return Err(io::Error::other("stopped by shutdown"));
        }
        result.map(|_| ())
    }

    fn error(&mut self, e: SourceError) {
        Ingest::error(self, e);
    }
}

/// Logs the first malformed lines of a stream by file and line number (never content).
struct MalformedLog<'i, 'a> {
    inner: &'i mut Ingest<'a>,
    name: &'i str,
    logged: [u64; Malformed::ALL.len()],
}

impl Sink for MalformedLog<'_, '_> {
    fn record(&mut self, r: &Record<'_>) {
        self.inner.record(r);
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        let n = &mut self.logged[why as usize];
        if *n < MALFORMED_LOGGED {
            *n += 1;
            tracing::warn!(file = %self.name, line, reason = why.as_str(), "malformed line skipped");
        }
    }
    fn progress(&mut self, bytes_read: u64) {
        self.inner.progress(bytes_read);
    }
}

struct CancelReader<'a, 'c> {
    inner: &'a mut dyn Read,
    cancel: Option<&'c Cancel>,
}

impl Read for CancelReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(Cancel::is_cancelled) {
            return Err(io::Error::other("stopped by shutdown"));
        }
        self.inner.read(buf)
    }
}
