//! One ingest run: paths → streams → records → identities → Bloom → confirmed findings.
//!
//! This module wires the stages together and owns the counters of the run. It records
//! findings; it does not mail (the caller composes and delivers notifications from the
//! store afterwards, see `notify`), so an ingest that dies half-way leaves every finding it
//! recorded ready to be notified by the next run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read};
use std::path::PathBuf;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::filter::AccountFilter;
use crate::fingerprint::Fingerprinter;
use crate::identity::block::KeyBlocks;
use crate::identity::{url_host, IdentityHash, IdentityKind, Normalizer};
use crate::liveness::ntlm::CurrentPasswords;
use crate::parse::detect::Layout;
use crate::parse::device::{self, DeviceInfo, Role};
use crate::parse::reader::{LineReader, RawLine};
use crate::parse::sheet::SheetKind;
use crate::parse::{self, Format, Malformed, ParseStats, Record, Sink};
use crate::progress::Progress;
use crate::scan::{self, ScanSink};
use crate::source::{self, Mapped, ReadSeek, SourceError, StreamHandler, WalkOptions};
use crate::store::{
    DeviceRecord, FindingKind, Recorded, Recording, Severity, Sighting, SightingOutcome, Store,
    StoreError, UnknownSighting,
};
use crate::timefmt::Clock;

mod ready;
use ready::Prep;

/// Deferred lines made ready together ([`Ingest::run_deferred`]): enough to keep every
/// core busy for a few milliseconds, few enough to hold (about 100 bytes each).
const DEFERRED_BATCH: usize = 8_192;
/// Malformed lines logged one by one per stream and reason; the rest are only counted.
const MALFORMED_LOGGED: u64 = 5;
/// Input errors kept word for word for the feed run's row (all are logged).
const ERRORS_KEPT: usize = 5;
/// Hits recorded per transaction (`Ingest::flush_hits`): a leak whose every line is an
/// account costs a commit per batch, not per line; a crash loses at most one batch of
/// work, which the input, not yet marked done, gives again on the next run. Each commit
/// writes every index page its batch touched, and a million hits in random account order
/// touch all of them: 16,384 a batch recorded 39,000 new findings a second, 65,536 about
/// 110,000, for some 30 MB of queued hits.
const HIT_BATCH: usize = 65_536;
/// New findings logged one by one per run; the rest at debug level (the summary counts
/// them all): a leak of the whole user base must not write a million log lines.
const FINDINGS_LOGGED: u64 = 100;

/// How urgent a finding is: critical from an infected machine; medium for an address
/// alone or a slow salted hash (they cost an attacker per guess; fast ones do not); high
/// for the rest.
fn severity(
    from_device: bool,
    kind: FindingKind,
    algo: Option<crate::parse::hashed::HashAlgo>,
) -> Severity {
    match (from_device, kind) {
        (true, _) => Severity::Critical,
        (false, FindingKind::Identity) => Severity::Medium,
        (false, FindingKind::PasswordHash) if algo.is_some_and(|a| a.is_slow()) => Severity::Medium,
        (false, _) => Severity::High,
    }
}

/// Appends `n` in decimal: a `file:line` per hit through `write!` was the formatting
/// machinery's, a fiftieth of a re-read leak's time.
fn push_decimal(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        s.push(char::from(d));
    }
}

/// A hit waiting for its batch's transaction, with what recording it needs (owned: the
/// record it came from is gone by then). The password is already a fingerprint.
struct PendingHit {
    /// The account the hash is a key of; `None` for an org identity no key matched.
    account: Option<i64>,
    kind: FindingKind,
    fp: Option<[u8; 32]>,
    hint: Option<crate::fingerprint::Hint>,
    hash: IdentityHash,
    site: Option<String>,
    format: Format,
    line: u64,
    /// `file:line`, in [`Ingest::sources`] (written when the hit is queued: a leak of the
    /// whole user base is not a million small strings).
    source: (u32, u32),
    seen_at: i64,
    severity: Severity,
    hash_algo: Option<&'static str>,
    /// For an address on an org domain: recorded as an unknown identity if no active
    /// account holds it.
    masked: Option<String>,
    has_password: bool,
    /// Whether the leaked password is the account's password now (`None`: unknown).
    current: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Without a working database nothing can be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stopped by a shutdown after reading this much.
    #[error("stopped by shutdown")]
    Cancelled(Box<IngestStats>),
}

/// Counters of one run, printed as its summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    pub files: u64,
    pub streams: u64,
    pub bytes: u64,
    pub lines: u64,
    /// Entries read (lines of line formats; rows, objects, statements of the others).
    /// Each ends in exactly one of `with_identity`, `malformed`, `no_identity`.
    pub entries: u64,
    pub with_identity: u64,
    pub malformed: u64,
    pub no_identity: u64,
    pub records: u64,
    pub identities: u64,
    pub matches: u64,
    pub new_findings: u64,
    pub new_unknown: u64,
    /// Files, entries or paths that could not be read (reported one by one).
    pub errors: u64,
    /// Infected-device folders (stealer logs) that gave a finding.
    pub devices: u64,
    /// Identities the filter let through: `matches` of them were accounts, the rest its
    /// false positives.
    pub filter_passed: u64,
    /// The first input errors, as logged (they name the file, archive and entry).
    #[serde(skip)]
    pub error_samples: Vec<String>,
}

/// One infected machine's folder while its input is read. Its files come in any order
/// (`Passwords.txt` before or after `System.txt` and `Cookies/`), so what they say is
/// gathered here and settled when the input ends (`finish_devices`).
#[derive(Debug, Default)]
struct DeviceState {
    info: DeviceInfo,
    /// The device file's name, lower case (it names the family when nothing else does).
    info_file: &'static str,
    /// The store's row, once a finding needed it.
    id: Option<i64>,
    /// Accounts whose credentials were in this folder, with the hash they matched by.
    accounts: BTreeMap<i64, IdentityHash>,
    /// The organisation's hosts this folder holds login cookies for.
    cookie_hosts: BTreeSet<String>,
}

pub struct Ingest<'a> {
    cfg: &'a Config,
    store: &'a mut Store,
    filter: &'a AccountFilter,
    fingerprinter: &'a Fingerprinter,
    /// How the directory holds its passwords (`liveness`), when configured.
    nt: Option<&'a CurrentPasswords>,
    clock: &'a dyn Clock,
    norm: Normalizer,
    stats: IngestStats,
    progress: Progress,
    show_progress: bool,
    /// Bytes of the files already done, for progress.
    done_bytes: u64,
    /// Bytes of all the run's files, and of those read so far (the files done and the
    /// current one's part): how far through its input a run is.
    total_bytes: u64,
    read_bytes: u64,
    /// A store failure stops the run: without a working database nothing can be recorded.
    fatal: Option<StoreError>,
    key: String,
    source_name: String,
    cancel: Option<Cancel>,
    /// Set when a cancel stopped the run part-way.
    cancelled: bool,
    archive_passwords: Vec<String>,
    /// Device folders known before reading (a drop directory's machine folder, a zip's or
    /// 7z's listed entries): a file below one that is not a stealer log's own is named by
    /// the folder's label too.
    device_roots: HashSet<String>,
    /// Device folders of stealer logs seen in this run, by folder name.
    devices: HashMap<String, DeviceState>,
    /// The device folder of the credential file being parsed.
    current_device: Option<String>,
    /// Threads of the fast path for combo/ULP lists; 0 reads them line by line through
    /// the reference path (for cross-checks).
    threads: usize,
    /// While a workbook is read, the length of its name in `source_name` (a sheet's
    /// name follows it); `usize::MAX` otherwise.
    section_base: usize,
    /// The entry being read gave an identity (see `Sink::end_entry`).
    entry_has_identity: bool,
    /// Hits read but not yet recorded ([`HIT_BATCH`]).
    pending: Vec<PendingHit>,
    /// The lists [`Prep::lines`] fills, kept from one run of deferred lines to the next.
    ready: Vec<ready::Out>,
    /// The queued hits' sources, end to end.
    sources: String,
    /// Lines the scan deferred, not yet read ([`DEFERRED_BATCH`]).
    deferred: Deferred,
}

/// Deferred lines kept for [`Ingest::run_deferred`]: their text end to end, and each
/// one's number and span.
#[derive(Default)]
struct Deferred {
    text: String,
    lines: Vec<(u64, usize, usize)>,
}

impl<'a> Ingest<'a> {
    pub fn new(
        cfg: &'a Config,
        store: &'a mut Store,
        filter: &'a AccountFilter,
        fingerprinter: &'a Fingerprinter,
        nt: Option<&'a CurrentPasswords>,
        clock: &'a dyn Clock,
    ) -> Ingest<'a> {
        // What another run wrote since is in the database, not in any earlier map.
        store.forget_known();
        Ingest {
            cfg,
            store,
            filter,
            fingerprinter,
            nt,
            clock,
            norm: Normalizer::new(&cfg.organization),
            stats: IngestStats::default(),
            progress: Progress::hidden(),
            show_progress: false,
            done_bytes: 0,
            total_bytes: 0,
            read_bytes: 0,
            fatal: None,
            key: String::with_capacity(128),
            source_name: String::new(),
            cancel: None,
            cancelled: false,
            archive_passwords: Vec::new(),
            device_roots: HashSet::new(),
            devices: HashMap::new(),
            current_device: None,
            threads: cfg.ingest.worker_threads(),
            section_base: usize::MAX,
            entry_has_identity: false,
            pending: Vec::new(),
            deferred: Deferred::default(),
            sources: String::new(),
            ready: Vec::new(),
        }
    }

    /// Parses combo/ULP lists on `threads` threads; 0 for the line-by-line reference path.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Device folders the input is known to hold (see `device_roots`).
    pub fn with_device_roots(mut self, roots: Vec<String>) -> Self {
        self.device_roots = roots.into_iter().collect();
        self
    }

    /// Passwords tried on encrypted archives (a feed's `archive_passwords`).
    pub fn with_archive_passwords(mut self, passwords: &[String]) -> Self {
        self.archive_passwords = passwords.to_vec();
        self
    }

    /// Reads one input through the archive walker: `read` hands it to the walker.
    fn walk(&mut self, name: &str, read: impl FnOnce(WalkOptions<'_>, &mut Self)) {
        let limits = self.cfg.limits.clone();
        let passwords = std::mem::take(&mut self.archive_passwords);
        let spool_dir = self.cfg.state_dir().join("spool");
        if let Err(e) = crate::store::ensure_state_dir(&spool_dir) {
            self.fatal = Some(e);
            return;
        }
        let opts = WalkOptions {
            limits: &limits,
            passwords: &passwords,
            spool_dir: &spool_dir,
        };
        read(opts, self);
        self.archive_passwords = passwords;
        // Each input's hits are recorded when it ends: a file's findings are in the store
        // before the next file is opened, as they were when each was its own transaction.
        if self.fatal.is_none() {
            if let Err(e) = self.flush_hits() {
                self.fatal = Some(e);
            }
        }
        // The machines inside an archive cannot have files elsewhere: settle them now, so
        // that memory holds one archive's machines, not a whole run's.
        if self.fatal.is_none() && !self.cancelled {
            let inside = format!("{name}!");
            if let Err(e) = self.finish_devices(|root| root.starts_with(&inside)) {
                self.fatal = Some(e);
            }
            self.device_roots.retain(|r| !r.starts_with(&inside));
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
        self.walk(name, |opts, me| source::read_input(name, input, opts, me));
        self.progress.finish();
        self.finish()
    }

    fn finish(mut self) -> Result<IngestStats, IngestError> {
        // What was read before a cancel is recorded too (the run reports it as stopped).
        if self.fatal.is_none() {
            if let Err(e) = self.flush_hits() {
                self.fatal = Some(e);
            }
        }
        if self.fatal.is_none() && !self.cancelled {
            if let Err(e) = self.finish_devices(|_| true) {
                self.fatal = Some(e);
            }
        }
        // The metrics' counters: what was read, whether the run finished or not.
        let s = &self.stats;
        let adds = [
            ("bytes", s.bytes),
            ("lines", s.lines),
            ("identities", s.identities),
            ("filter_passed", s.filter_passed),
            ("matches", s.matches),
            ("new_findings", s.new_findings),
            ("new_unknown", s.new_unknown),
            ("errors", s.errors),
        ];
        if let Err(e) = self.store.add_counters(&adds) {
            tracing::warn!(error = %e, "metrics counters not updated");
        }
        // The lock this run holds ends with it; the map of known findings with it.
        self.store.forget_known();
        if self.stats.new_findings > FINDINGS_LOGGED {
            tracing::info!(
                more = self.stats.new_findings - FINDINGS_LOGGED,
                "further new findings logged at debug level only"
            );
        }
        if let Some(e) = self.fatal.take() {
            return Err(IngestError::Store(e));
        }
        if self.cancelled {
            return Err(IngestError::Cancelled(Box::new(self.stats)));
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
    pub fn run(self, paths: &[PathBuf]) -> Result<IngestStats, IngestError> {
        let (files, errors) = source::collect_files(paths);
        self.run_files(&files, errors, |f| source::beneath::open_regular(&f.path))
    }

    /// Reads `files`, each opened by `open` when its turn comes (one descriptor at a time,
    /// however many files): the drop directory opens its own below its descriptor.
    pub fn run_files(
        mut self,
        files: &[source::InputFile],
        errors: Vec<SourceError>,
        open: impl Fn(&source::InputFile) -> Result<std::fs::File, source::beneath::Refused>,
    ) -> Result<IngestStats, IngestError> {
        for e in errors {
            self.error(e);
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.total_bytes = total;
        if self.show_progress {
            self.progress = Progress::new(total);
        }
        for file in files {
            self.stats.files += 1;
            let name = file.path.display().to_string();
            match open(file) {
                Ok(f) => {
                    self.walk(&name, |opts, me| source::read_open_file(&name, f, opts, me));
                }
                Err(e) => self.error(e.at(name)),
            }
            if self.fatal.is_some() || self.cancelled {
                break;
            }
            self.done_bytes += file.size;
            self.progress.set(self.done_bytes);
        }
        self.progress.finish();
        self.finish()
    }

    /// The shared state hits are made from ([`ready`]).
    fn prep(&self) -> Prep<'_> {
        Prep {
            norm: &self.norm,
            filter: self.filter,
            keys: self.store.key_index(),
            keys_path: self.store.key_index_path(),
            fingerprinter: self.fingerprinter,
            nt: self.nt,
            hints: self.cfg.privacy.password_hint,
            reread: None,
        }
    }

    /// Makes the deferred lines' hits ready on every core ([`Prep::lines`]) and applies
    /// them in line order, as [`Sink::record`] and [`Sink::end_entry`] would one by one.
    fn run_deferred(&mut self) {
        let mut d = std::mem::take(&mut self.deferred);
        let mut outs = std::mem::take(&mut self.ready);
        if !d.lines.is_empty() {
            let now = self.clock.now();
            // A run this heavy has the known findings read, so that a line already
            // recorded is known on the spot (a re-read leak of the whole user base).
            let known = self
                .store
                .want_known(self.stats.filter_passed, self.projected_hits())
                .and_then(|()| self.store.reread());
            let (reread, failed) = match known {
                Ok(reread) => (reread, None),
                Err(e) => (None, Some(e)),
            };
            Prep {
                reread,
                ..self.prep()
            }
            .lines(
                &d.text,
                &d.lines,
                self.threads.max(1),
                &self.source_name,
                now,
                &mut outs,
            );
            if let Some(e) = failed {
                self.fatal = Some(e);
            }
            // Each worker's hits follow its identities that have one, in order.
            let mut ready = outs
                .iter_mut()
                .flat_map(|o| {
                    let ready::Out { ready, hits } = o;
                    let mut hits = hits.drain(..);
                    ready.drain(..).map(move |r| {
                        let hit = match r.hit {
                            Ok(true) => hits.next(),
                            _ => None,
                        };
                        (r, hit)
                    })
                })
                .peekable();
            for i in 0..d.lines.len() {
                while let Some((r, hit)) = ready.next_if(|(r, _)| r.line as usize == i) {
                    self.apply(r, hit);
                }
                self.end_entry();
            }
        }
        self.ready = outs;
        d.text.clear();
        d.lines.clear();
        self.deferred = d;
    }

    /// The hits the run will have had by its end, at the rate seen so far: a leak whose
    /// every line is ours has its known findings read after its first 16,384 hits, not
    /// once the hits outnumber an eighth of the table (a million-row table waited for
    /// 131,072 hits, half of them recorded the slow way, a sixth of the re-read's time).
    fn projected_hits(&self) -> u64 {
        let hits = self.stats.filter_passed;
        if self.read_bytes == 0 || self.total_bytes <= self.read_bytes {
            return hits;
        }
        let scale = self.total_bytes as f64 / self.read_bytes as f64;
        (hits as f64 * scale).min(u64::MAX as f64 / 2.0) as u64
    }

    /// One identity made ready off this thread, counted and queued as [`Sink::record`]
    /// does.
    fn apply(&mut self, r: ready::Ready, hit: Option<PendingHit>) {
        if self.fatal.is_some() || self.cancelled {
            return;
        }
        if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            self.cancelled = true;
            return;
        }
        self.stats.identities += 1;
        self.entry_has_identity = true;
        self.stats.filter_passed += u64::from(r.passed);
        self.stats.matches += u64::from(r.seen);
        let result = match (r.hit, hit) {
            (Ok(_), Some(hit)) => self.queue(hit),
            (Ok(_), None) => Ok(()),
            (Err(e), _) => Err(*e),
        };
        if let Err(e) = result {
            self.fatal = Some(e);
        }
    }

    /// Queues a hit for its batch.
    fn queue(&mut self, mut hit: PendingHit) -> Result<(), StoreError> {
        let start = self.sources.len() as u32;
        self.sources.push_str(&self.source_name);
        self.sources.push(':');
        push_decimal(&mut self.sources, hit.line);
        hit.source = (start, self.sources.len() as u32);
        self.pending.push(hit);
        if self.pending.len() >= HIT_BATCH {
            self.flush_hits()?;
        }
        Ok(())
    }

    /// Records the queued hits in one transaction and counts what they did.
    fn flush_hits(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let sources = std::mem::take(&mut self.sources);
        let source = |h: &PendingHit| &sources[h.source.0 as usize..h.source.1 as usize];
        fn unknown<'a>(h: &'a PendingHit, source: &'a str) -> Option<UnknownSighting<'a>> {
            h.masked.as_deref().map(|masked| UnknownSighting {
                hash: h.hash,
                masked,
                has_password: h.has_password,
                format: h.format,
                source,
                seen_at: h.seen_at,
            })
        }
        let items: Vec<Recording<'_>> = pending
            .iter()
            .filter_map(|h| match h.account {
                Some(account_id) => Some(Recording::Match {
                    sighting: Sighting {
                        account_id,
                        kind: h.kind,
                        secret_fp: h.fp,
                        password_hint: h.hint.as_ref().map(|h| h.as_str()),
                        identity_hash: h.hash,
                        site: h.site.as_deref(),
                        format: h.format,
                        source: source(h),
                        seen_at: h.seen_at,
                        severity: h.severity,
                        device_id: None,
                        hash_algo: h.hash_algo,
                        password_current: h.current,
                    },
                    otherwise: unknown(h, source(h)),
                }),
                None => unknown(h, source(h)).map(Recording::Unknown),
            })
            .collect();
        let outcomes = self.store.record_batch(&items)?;
        for (item, outcome) in items.iter().zip(outcomes) {
            match (item, outcome) {
                (Recording::Match { sighting, .. }, Recorded::Sighting(o)) => {
                    self.stats.matches += 1;
                    self.count_outcome(o, sighting.account_id, sighting.kind, sighting.source);
                }
                (_, Recorded::Unknown(true)) => self.stats.new_unknown += 1,
                _ => {}
            }
        }
        drop(items);
        let (mut pending, mut sources) = (pending, sources);
        pending.clear();
        sources.clear();
        self.pending = pending;
        self.sources = sources;
        Ok(())
    }

    /// A hit recorded at once, with its device (stealer logs).
    fn record_match_now(
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
                // A credential from an infected machine's folder: critical, with its device.
                let device_id = match self.current_device.clone() {
                    Some(root) => {
                        let id = self.device_id(&root, now)?;
                        if let Some(d) = self.devices.get_mut(&root) {
                            d.accounts.insert(account.id, hash);
                        }
                        Some(id)
                    }
                    None => None,
                };
                let algo = r.password.and_then(crate::parse::hashed::classify);
                let (kind, fp, hint) = self.prep().exposure(account.id, r.password, algo);
                let current = self.prep().current(account.id, kind, r.password);
                let outcome = self.store.record_sighting(&Sighting {
                    account_id: account.id,
                    kind,
                    secret_fp: fp,
                    password_hint: hint.as_ref().map(|h| h.as_str()),
                    identity_hash: hash,
                    site: site.as_deref(),
                    format: r.format,
                    source: &source,
                    seen_at: now,
                    severity: match current {
                        Some(true) => Severity::Critical,
                        _ => severity(device_id.is_some(), kind, algo),
                    },
                    device_id,
                    hash_algo: algo.map(|a| a.as_str()),
                    password_current: current,
                })?;
                self.count_outcome(outcome, account.id, kind, &source);
            }
            None => {
                let now = self.clock.now();
                let hit = self.prep().hit(r, hash, kind, false, &self.key, now)?;
                if let Some(hit) = hit {
                    self.queue(hit)?;
                }
            }
        }
        Ok(())
    }

    fn count_outcome(
        &mut self,
        outcome: SightingOutcome,
        account: i64,
        kind: FindingKind,
        source: &str,
    ) {
        let (id, what) = match outcome {
            SightingOutcome::New(id) => (id, "new finding"),
            SightingOutcome::Escalated(id) => (id, "finding raised to critical (infected device)"),
            SightingOutcome::Seen(_) => return,
        };
        self.stats.new_findings += 1;
        if self.stats.new_findings <= FINDINGS_LOGGED {
            tracing::info!(finding = id, account, kind = kind.as_str(), source = %source, "{what}");
        } else {
            tracing::debug!(finding = id, account, kind = kind.as_str(), source = %source, "{what}");
        }
    }

    /// The device folder (known before reading, or seen) that `name` lies below, for a
    /// file that is not a stealer log's own (a screenshot, a browser's history).
    fn folder_of(&self, name: &str) -> Option<String> {
        device::folder_above(name, |r| {
            self.devices.contains_key(r) || self.device_roots.contains(r)
        })
        .map(str::to_string)
    }

    /// `name` with its device folder `root` replaced by the folder's keyed label
    /// ([`Fingerprinter::redact_folder`]).
    fn redact_folder(&self, name: &str, root: &str) -> String {
        self.fingerprinter.redact_folder(name, root)
    }

    /// The store's row for a device folder, made on its first finding.
    fn device_id(&mut self, root: &str, now: i64) -> Result<i64, StoreError> {
        let state = self.devices.entry(root.to_string()).or_default();
        if let Some(id) = state.id {
            return Ok(id);
        }
        let key = self.fingerprinter.label("device-folder", root);
        let id = self.store.device_for_folder(&key, now)?;
        state.id = Some(id);
        self.stats.devices += 1;
        Ok(id)
    }

    /// What a device's files said, as stored: identifiers hashed under the installation key.
    fn device_record(&self, state: &DeviceState) -> DeviceRecord {
        let info = &state.info;
        let machine_hash = match (&info.hwid, &info.machine) {
            (Some(h), _) => Some(self.fingerprinter.label("hwid", h)),
            (None, Some(m)) => Some(self.fingerprinter.label("machine", m)),
            (None, None) => None,
        };
        DeviceRecord {
            machine_hash,
            family: info.family(state.info_file).map(|f| f.as_str().to_string()),
            build: info.build.clone(),
            log_date: info.date.clone(),
            country: info.country.clone(),
        }
    }

    /// Settles the device folders of the run: completes their rows from their device
    /// files, and turns the organisation's login cookies into `session` findings for the
    /// accounts stolen from the same machine (or, with none, an unknown for the digest).
    fn finish_devices(&mut self, which: impl Fn(&str) -> bool) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut roots: Vec<String> = self.devices.keys().filter(|r| which(r)).cloned().collect();
        roots.sort();
        for root in &roots {
            let Some(state) = self.devices.remove(root) else {
                continue;
            };
            if state.id.is_none() && state.cookie_hosts.is_empty() {
                continue; // a machine with nothing of ours: nothing of it is kept
            }
            let record = self.device_record(&state);
            // Cookies of ours but no account still make the device worth a row.
            let id = match state.id {
                Some(id) => id,
                None => {
                    self.stats.devices += 1;
                    let key = self.fingerprinter.label("device-folder", root);
                    self.store.device_for_folder(&key, now)?
                }
            };
            let id = self.store.update_device(id, &record)?;
            let described = self
                .store
                .device(id)?
                .map(|d| d.describe())
                .unwrap_or_default();
            let machine = match &record.machine_hash {
                Some(h) => crate::identity::to_hex_upper(h),
                None => root.clone(),
            };
            let source = format!("{}/Cookies", self.redact_folder(root, root));
            for host in &state.cookie_hosts {
                let fp = self
                    .fingerprinter
                    .label("session", &format!("{machine}\0{host}"));
                if state.accounts.is_empty() {
                    let desc = format!("login cookies for {host} ({described}), account unknown");
                    let mut hash = [0u8; 20];
                    hash.copy_from_slice(&fp[..20]);
                    if self.store.record_unknown(&UnknownSighting {
                        hash: IdentityHash(hash),
                        masked: &desc,
                        has_password: false,
                        format: Format::Cookies,
                        source: &source,
                        seen_at: now,
                    })? {
                        self.stats.new_unknown += 1;
                    }
                    continue;
                }
                for (&account, &hash) in &state.accounts {
                    let outcome = self.store.record_sighting(&Sighting {
                        account_id: account,
                        kind: FindingKind::Session,
                        secret_fp: Some(fp),
                        password_hint: None,
                        identity_hash: hash,
                        site: Some(host),
                        format: Format::Cookies,
                        source: &source,
                        seen_at: now,
                        severity: Severity::Critical,
                        device_id: Some(id),
                        hash_algo: None,
                        password_current: None,
                    })?;
                    self.count_outcome(outcome, account, FindingKind::Session, &source);
                }
            }
        }
        Ok(())
    }

    /// Reads a device file into its folder's state (bounded lines, nothing stored yet).
    fn read_device_file(
        &mut self,
        root: &str,
        base: &'static str,
        input: &mut dyn Read,
    ) -> io::Result<()> {
        let mut reader = LineReader::new(input, self.cfg.limits.max_line_bytes);
        let known = match self.devices.get(root).and_then(|d| d.id) {
            Some(id) => Some(id),
            None => {
                let key = self.fingerprinter.label("device-folder", root);
                self.store
                    .device_by_folder(&key)
                    .map_err(|e| io::Error::other(format!("state database: {e}")))?
            }
        };
        let state = self.devices.entry(root.to_string()).or_default();
        state.info_file = base;
        state.id = state.id.or(known);
        while let Some((_, raw)) = reader.next_line()? {
            // A device file's lines describe the machine: entries without identity.
            self.stats.lines += 1;
            self.stats.entries += 1;
            self.stats.no_identity += 1;
            if let RawLine::Line(bytes) = raw {
                state.info.line(&String::from_utf8_lossy(bytes));
            }
        }
        self.stats.bytes += reader.bytes_read();
        Ok(())
    }

    /// Reads a cookie file: only the domains of the organisation's hosts are kept, never
    /// a cookie's name or value.
    fn read_cookie_file(&mut self, root: &str, input: &mut dyn Read) -> io::Result<()> {
        let mut reader = LineReader::new(input, self.cfg.limits.max_line_bytes);
        let mut hosts = BTreeSet::new();
        while let Some((_, raw)) = reader.next_line()? {
            // Cookies give sessions (settled with the device), never an identity here.
            self.stats.lines += 1;
            self.stats.entries += 1;
            self.stats.no_identity += 1;
            let RawLine::Line(bytes) = raw else { continue };
            let Ok(line) = std::str::from_utf8(bytes) else {
                continue;
            };
            if let Some(domain) = device::cookie_domain(line.trim_end_matches('\r')) {
                if self.norm.is_org_host(domain) {
                    hosts.insert(domain.trim_start_matches('.').to_ascii_lowercase());
                }
            }
        }
        self.stats.bytes += reader.bytes_read();
        if !hosts.is_empty() {
            self.devices
                .entry(root.to_string())
                .or_default()
                .cookie_hosts
                .extend(hosts);
        }
        Ok(())
    }

    fn error(&mut self, mut e: SourceError) {
        if self.cancelled {
            return; // the input was cut by the shutdown, not broken
        }
        // A machine folder's name (an HWID, an IP) is shown by its label here too.
        let path = e.path_mut();
        let root = device::classify(path)
            .map(|f| f.root.to_string())
            .or_else(|| self.folder_of(path));
        if let Some(root) = root {
            *path = self.redact_folder(path, &root);
        }
        self.stats.errors += 1;
        let text = e.to_string();
        tracing::error!(error = %text, "input skipped");
        if self.stats.error_samples.len() < ERRORS_KEPT {
            self.stats.error_samples.push(text);
        }
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
        self.entry_has_identity = true;
        let hash = IdentityHash::of(&self.key);
        let passed = self.filter.may_contain(&hash);
        self.stats.filter_passed += u64::from(passed);
        // From an infected machine's folder (whose device row and cookies need the account
        // at once): recorded now.
        let result = if passed && self.current_device.is_some() {
            self.flush_hits()
                .and_then(|()| self.record_match_now(r, hash, kind))
        } else {
            let now = self.clock.now();
            match self.prep().hit(r, hash, kind, passed, &self.key, now) {
                Ok(Some(hit)) => self.queue(hit),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
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
        self.read_bytes = self.done_bytes + bytes_read;
        self.progress.set(self.read_bytes);
    }

    fn end_entry(&mut self) {
        if std::mem::take(&mut self.entry_has_identity) {
            self.stats.with_identity += 1;
        } else {
            self.stats.no_identity += 1;
        }
    }

    fn section(&mut self, name: &str) {
        if self.section_base <= self.source_name.len() {
            self.source_name.truncate(self.section_base);
            self.source_name.push('!');
            let clean = crate::source::clean_name(name);
            let mut end = clean.len().min(64);
            while !clean.is_char_boundary(end) {
                end -= 1;
            }
            self.source_name.push_str(&clean[..end]);
        }
    }
}

impl StreamHandler for Ingest<'_> {
    fn stream(&mut self, name: &str, input: &mut dyn Read) -> io::Result<()> {
        self.stats.streams += 1;
        let file = device::classify(name);
        match file {
            Some(f) if f.role == Role::Info => {
                return self.read_device_file(f.root, f.base, input);
            }
            Some(f) if f.role == Role::Cookies => return self.read_cookie_file(f.root, input),
            _ => {}
        }
        self.current_device = file.map(|f| f.root.to_string());
        // A device folder's name often holds the machine's HWID or IP: sources name the
        // folder by its keyed hash instead.
        let root = file
            .map(|f| f.root.to_string())
            .or_else(|| self.folder_of(name));
        let shown = match &root {
            Some(r) => self.redact_folder(name, r),
            None => name.to_string(),
        };
        let result = self.parse_credentials(&shown, input, None);
        self.current_device = None;
        result
    }

    /// A plain file on disk: a combo/ULP list is scanned in place by the fast path; a
    /// stealer log's file (named by its folder) and other layouts are read as streams.
    fn mapped(&mut self, name: &str, map: &Mapped) -> io::Result<()> {
        if self.threads == 0 || device::classify(name).is_some() || self.folder_of(name).is_some() {
            return self.stream(name, &mut map.reader());
        }
        self.stats.streams += 1;
        self.parse_credentials(name, &mut map.reader(), Some(map))
    }

    fn error(&mut self, e: SourceError) {
        Ingest::error(self, e);
    }

    /// Machine folders in an archive known before any of their files is read, so that a
    /// file read before the folder's first stealer file is named by the folder's label.
    fn listed(&mut self, names: &mut dyn Iterator<Item = String>) {
        for n in names {
            if let Some(f) = device::classify(&n) {
                if !self.device_roots.contains(f.root) {
                    self.device_roots.insert(f.root.to_string());
                }
            }
        }
    }

    /// A spreadsheet: every sheet read as a table, its sources named `file!sheet:row`.
    fn workbook(
        &mut self,
        name: &str,
        kind: SheetKind,
        input: &mut dyn ReadSeek,
    ) -> io::Result<()> {
        self.stats.streams += 1;
        self.source_name.clear();
        self.source_name.push_str(name);
        self.section_base = name.len();
        let max_line = self.cfg.limits.max_line_bytes;
        let mut logger = MalformedLog {
            inner: self,
            name,
            logged: [0; Malformed::ALL.len()],
        };
        let result = parse::sheet::parse(kind, input, max_line, &mut logger);
        let logged: u64 = logger.logged.iter().sum();
        self.section_base = usize::MAX;
        match result {
            Ok(s) => {
                self.stats.lines += s.lines;
                self.stats.entries += s.entries;
                self.stats.malformed += s.malformed;
                self.stats.records += s.records;
                if s.malformed > logged {
                    tracing::warn!(file = %name, malformed = s.malformed, "malformed rows skipped");
                }
            }
            Err(e) => return Err(io::Error::other(e)),
        }
        if self.fatal.is_some() {
            return Err(io::Error::other("stopped: the state database failed"));
        }
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.fatal.is_some()
            || self.cancelled
            || self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }
}

impl Ingest<'_> {
    /// Parses one stream of credentials; `map` is the same bytes mapped, when they are a
    /// file on disk (the fast path then reads them in place).
    fn parse_credentials(
        &mut self,
        name: &str,
        input: &mut dyn Read,
        map: Option<&Mapped>,
    ) -> io::Result<()> {
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
        let result = parse::open(&mut input, name).and_then(|opened| {
            // A UTF-16 file is read through its decoder, not in place.
            let map = map.filter(|_| opened.encoding == parse::decode::Encoding::Utf8);
            let raw = opened.raw_bytes.clone();
            let mut stats = match opened.layout {
                Layout::Lines if logger.inner.threads > 0 => {
                    logger.scan(opened.input, map, max_line)
                }
                // Tables and NDJSON: pieces read on every core (`split`).
                layout if logger.inner.threads > 1 && crate::split::may_split(layout) => {
                    let norm = logger.inner.norm.clone();
                    let setup = crate::split::Setup {
                        norm: &norm,
                        filter: logger.inner.filter,
                        max_line,
                        threads: logger.inner.threads,
                        piece_bytes: crate::split::PIECE_BYTES,
                        max_join: crate::split::MAX_JOIN,
                    };
                    let mut input = opened.input;
                    crate::split::run(&mut logger, &setup, layout, &mut input)
                }
                // The reference path (`--reference`) settles each record alone.
                layout @ (Layout::Sql | Layout::Json | Layout::Table(_))
                    if logger.inner.threads > 1 =>
                {
                    let norm = logger.inner.norm.clone();
                    let filter = logger.inner.filter;
                    let input = opened.input;
                    crate::settle::run(&mut logger, &norm, filter, |sink| {
                        parse::parse_layout(layout, input, max_line, sink)
                    })
                }
                layout @ (Layout::Sql | Layout::Json | Layout::Table(_))
                    if logger.inner.threads == 1 =>
                {
                    let norm = logger.inner.norm.clone();
                    let filter = logger.inner.filter;
                    let input = opened.input;
                    crate::settle::run_inline(&mut logger, &norm, filter, |sink| {
                        parse::parse_layout(layout, input, max_line, sink)
                    })
                }
                layout => parse::parse_layout(layout, opened.input, max_line, &mut logger),
            }?;
            if let Some(raw) = raw {
                stats.bytes = raw.get();
            }
            Ok(stats)
        });
        let logged: u64 = logger.logged.iter().sum();
        if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            self.cancelled = true;
        }
        if let Ok(s) = &result {
            self.stats.lines += s.lines;
            self.stats.entries += s.entries;
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
}

impl MalformedLog<'_, '_> {
    /// A combo/ULP list through the fast path, read from `map` if there is one, else
    /// from `input`: only the lines it defers reach [`Sink::record`], in order, with their
    /// line numbers.
    fn scan(
        &mut self,
        mut input: impl Read,
        map: Option<&Mapped>,
        max_line: usize,
    ) -> io::Result<ParseStats> {
        let norm = self.inner.norm.clone();
        let setup = scan::Setup {
            filter: self.inner.filter,
            keys: KeyBlocks::new(&norm),
            max_line,
            threads: self.inner.threads,
            chunk_bytes: scan::CHUNK_BYTES,
        };
        let stats = match map {
            Some(map) => scan::scan_mapped(map, &setup, self),
            None => scan::scan_lines(&mut input, &setup, self),
        };
        // The lines deferred last, before the stream's name changes; after a read error
        // too, as the chunks before it are.
        self.inner.run_deferred();
        let stats = stats?;
        self.inner.stats.identities += stats.identities;
        self.inner.stats.with_identity += stats.with_identity;
        self.inner.stats.no_identity += stats.no_identity;
        Ok(stats.parse)
    }
}

impl ScanSink for MalformedLog<'_, '_> {
    fn deferred(&mut self, line: u64, text: &str) {
        // In an infected machine's folder a hit is recorded at once, with its device.
        if self.inner.current_device.is_some() {
            parse::parse_credential_line(text, line, self);
            Sink::end_entry(self);
            return;
        }
        let d = &mut self.inner.deferred;
        let start = d.text.len();
        d.text.push_str(text);
        d.lines.push((line, start, d.text.len()));
        if d.lines.len() >= DEFERRED_BATCH {
            self.inner.run_deferred();
        }
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        Sink::malformed(self, line, why);
    }
    fn progress(&mut self, bytes: u64) {
        self.inner.progress(bytes);
    }
    fn should_stop(&self) -> bool {
        StreamHandler::should_stop(&*self.inner)
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
    fn section(&mut self, name: &str) {
        self.inner.section(name);
    }
    fn end_entry(&mut self) {
        self.inner.end_entry();
    }
}

impl crate::settle::Target for MalformedLog<'_, '_> {
    /// What the worker settled without the store: counted as `Ingest::record` would.
    fn settled(&mut self, c: &crate::settle::Counts) {
        let ingest = &mut *self.inner;
        ingest.stats.records += c.records;
        if ingest.fatal.is_none() && !ingest.cancelled {
            ingest.stats.identities += c.identities;
            ingest.stats.with_identity += c.with_identity;
            ingest.stats.no_identity += c.no_identity;
        }
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
