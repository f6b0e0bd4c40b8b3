//! The admins' digest at any scale: built finding by finding from pages of the store, so
//! that a leak of the whole user base (a million findings) is summarised in a mail that
//! fits, with memory bounded whatever the count.
//!
//! The body lists the first [`DIGEST_LINES`] of each section and counts the rest (by
//! kind, severity and source); the forced-reset list is always complete: attached as CSV
//! while small, gzip-compressed while the compressed list stays under [`ATTACH_MAX`], and
//! past that written under the state directory (0600) and named in the mail. Never
//! dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::compose::{mail_host, spreadsheet_safe};
use super::message::CsvAttachment;
use crate::liveness::Verdict;
use crate::store::{FindingKind, FindingView, Severity, UnknownView};
use crate::timefmt;

/// Lines of each section the body shows; the rest are counted (and the forced-reset list
/// is whole in the attachment).
pub const DIGEST_LINES: usize = 200;
/// The CSV is attached as it is up to this size.
const ATTACH_PLAIN_MAX: usize = 1 << 20;
/// The compressed CSV is attached up to this size (most mail systems take 10–25 MB
/// once base64 has grown it by a third); past it the list is written to disk.
const ATTACH_MAX: usize = 8 << 20;
/// Distinct source files counted one by one; the rest are counted together.
const SOURCES_COUNTED: usize = 10_000;
/// Source files named in the summary.
const TOP_SOURCES: usize = 10;
/// Accounts named per infected device in the body.
const DEVICE_ACCOUNTS_SHOWN: usize = 20;

#[derive(Serialize)]
pub(crate) struct DigestFinding {
    pub email: String,
    pub username: Option<String>,
    pub first_seen: String,
    pub site: Option<String>,
    pub format: String,
    pub sources: String,
    /// From an infected machine (stealer log).
    pub critical: bool,
    pub device: Option<String>,
    /// For an exposed password hash, its algorithm.
    pub algorithm: Option<String>,
    /// The leaked password is the account's password now (`liveness`).
    pub current: bool,
    /// Why a credential is not forced to change: "stale" or "rotated since".
    pub not_live: Option<&'static str>,
}

/// A remediation action's latest state (`act`).
#[derive(Serialize)]
pub(crate) struct DigestAction {
    pub id: i64,
    pub email: String,
    pub action: String,
    pub target: String,
    pub status: &'static str,
    pub result: Option<String>,
    pub approved_by: Option<String>,
}

/// One infected machine and the accounts stolen from it.
#[derive(Serialize)]
pub(crate) struct DigestDevice {
    pub description: String,
    /// How many accounts of ours were stolen from it (`accounts` may show fewer).
    pub count: usize,
    pub accounts: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct DigestUnknown {
    pub masked: String,
    pub hash: String,
    pub has_password: bool,
    pub format: String,
    pub first_seen: String,
    pub first_source: String,
}

/// Counts per section: all of them (`totals`) or those not in the body (`omitted`).
#[derive(Serialize, Default, Clone, Copy)]
pub(crate) struct Sections {
    pub resets: u64,
    /// Credentials no longer live (stale, or rotated since): advice only.
    pub advice: u64,
    pub sessions: u64,
    pub identities: u64,
    pub unknowns: u64,
    pub devices: u64,
    /// Remediation actions whose state changed since the last digest.
    pub actions: u64,
}

#[derive(Serialize, Default)]
pub(crate) struct BySeverity {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
}

#[derive(Serialize)]
pub(crate) struct SourceCount {
    pub source: String,
    pub count: u64,
}

#[derive(Serialize)]
pub(crate) struct DigestCtx<'a> {
    pub org_name: &'a str,
    pub generated_at: String,
    pub resets: Vec<DigestFinding>,
    pub advice: Vec<DigestFinding>,
    pub sessions: Vec<DigestFinding>,
    pub devices: Vec<DigestDevice>,
    pub identities: Vec<DigestFinding>,
    pub unknowns: Vec<DigestUnknown>,
    pub actions: Vec<DigestAction>,
    /// Actions waiting for an admin (approval, or held by the ceiling), in all.
    pub actions_waiting: u64,
    pub users_mailed: u64,
    pub totals: Sections,
    pub omitted: Sections,
    pub by_severity: BySeverity,
    /// The files most findings came from, most first.
    pub top_sources: Vec<SourceCount>,
    /// The attachment's file name, if the list is attached.
    pub attachment: Option<String>,
    /// Where the list was written, if it was too large to mail.
    pub report_path: Option<String>,
}

/// The forced-reset list as it is sent.
pub enum ResetList {
    Attached(CsvAttachment),
    /// Too large to mail: written here.
    Written(PathBuf),
}

/// Builds a digest from findings and unknowns handed one at a time.
pub(crate) struct DigestBuilder<'a> {
    ctx: DigestCtx<'a>,
    /// The first devices, in order of first appearance, by id.
    devices: BTreeMap<i64, usize>,
    device_ids: HashSet<i64>,
    sources: HashMap<String, u64>,
    other_sources: u64,
    csv: csv::Writer<CsvSink>,
    findings: Vec<i64>,
    unknowns: Vec<Vec<u8>>,
}

impl<'a> DigestBuilder<'a> {
    /// `reports`: where a list too large to mail is written.
    pub fn new(org_name: &'a str, now: i64, reports: &Path) -> DigestBuilder<'a> {
        let mut csv = csv::Writer::from_writer(CsvSink::new(reports, now));
        write_header(&mut csv);
        DigestBuilder {
            ctx: DigestCtx {
                org_name,
                generated_at: timefmt::rfc3339(now),
                resets: Vec::new(),
                advice: Vec::new(),
                sessions: Vec::new(),
                devices: Vec::new(),
                identities: Vec::new(),
                unknowns: Vec::new(),
                actions: Vec::new(),
                actions_waiting: 0,
                users_mailed: 0,
                totals: Sections::default(),
                omitted: Sections::default(),
                by_severity: BySeverity::default(),
                top_sources: Vec::new(),
                attachment: None,
                report_path: None,
            },
            devices: BTreeMap::new(),
            device_ids: HashSet::new(),
            sources: HashMap::new(),
            other_sources: 0,
            csv,
            findings: Vec::new(),
            unknowns: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.unknowns.is_empty() && self.ctx.totals.actions == 0
    }

    /// Remediation actions to tell (the first [`DIGEST_LINES`] of `total`), and how many
    /// wait for an admin.
    pub fn add_actions(&mut self, rows: &[crate::store::ActionRow], total: u64, waiting: u64) {
        self.ctx.totals.actions = total;
        self.ctx.actions_waiting = waiting;
        for a in rows.iter().take(DIGEST_LINES) {
            self.ctx.actions.push(DigestAction {
                id: a.id,
                email: a
                    .email
                    .clone()
                    .unwrap_or_else(|| format!("account {}", a.account_id)),
                action: a.action.clone(),
                target: a.target.clone(),
                status: a.status.as_str(),
                result: a.result.clone(),
                approved_by: a.approved_by.clone(),
            });
        }
        self.ctx.omitted.actions = total.saturating_sub(self.ctx.actions.len() as u64);
    }

    pub fn add_finding(&mut self, f: &FindingView) {
        self.findings.push(f.id);
        match f.severity {
            Severity::Critical => self.ctx.by_severity.critical += 1,
            Severity::High => self.ctx.by_severity.high += 1,
            Severity::Medium => self.ctx.by_severity.medium += 1,
        }
        for s in &f.sources {
            let room = self.sources.len() < SOURCES_COUNTED;
            match self.sources.get_mut(s) {
                Some(n) => *n += 1,
                None if room => {
                    self.sources.insert(s.clone(), 1);
                }
                None => self.other_sources += 1,
            }
        }
        if let Some(d) = &f.device {
            if self.device_ids.insert(d.id) {
                self.ctx.totals.devices += 1;
                if self.ctx.devices.len() < DIGEST_LINES {
                    self.devices.insert(d.id, self.ctx.devices.len());
                    self.ctx.devices.push(DigestDevice {
                        description: d.describe(),
                        count: 0,
                        accounts: Vec::new(),
                    });
                } else {
                    self.ctx.omitted.devices += 1;
                }
            }
            if let Some(&at) = self.devices.get(&d.id) {
                let dev = &mut self.ctx.devices[at];
                if !dev.accounts.contains(&f.email) {
                    dev.count += 1;
                    if dev.accounts.len() < DEVICE_ACCOUNTS_SHOWN {
                        dev.accounts.push(f.email.clone());
                    }
                }
            }
        }
        let forced = f.verdict.forces_reset();
        let (list, total, omitted) = match f.kind {
            FindingKind::Password | FindingKind::PasswordHash | FindingKind::Session if !forced => {
                (
                    &mut self.ctx.advice,
                    &mut self.ctx.totals.advice,
                    &mut self.ctx.omitted.advice,
                )
            }
            FindingKind::Password | FindingKind::PasswordHash => (
                &mut self.ctx.resets,
                &mut self.ctx.totals.resets,
                &mut self.ctx.omitted.resets,
            ),
            FindingKind::Session => (
                &mut self.ctx.sessions,
                &mut self.ctx.totals.sessions,
                &mut self.ctx.omitted.sessions,
            ),
            FindingKind::Identity => (
                &mut self.ctx.identities,
                &mut self.ctx.totals.identities,
                &mut self.ctx.omitted.identities,
            ),
        };
        *total += 1;
        if list.len() < DIGEST_LINES {
            list.push(row(f));
        } else {
            *omitted += 1;
        }
        // Only what still opens the account is forced: a stale or rotated credential is
        // advice, and its owner is told all the same.
        if f.kind != FindingKind::Identity && forced {
            write_row(&mut self.csv, f);
        }
    }

    pub fn add_unknown(&mut self, u: &UnknownView) {
        self.unknowns.push(u.hash_raw.clone());
        self.ctx.totals.unknowns += 1;
        if self.ctx.unknowns.len() < DIGEST_LINES {
            self.ctx.unknowns.push(DigestUnknown {
                masked: u.masked.clone(),
                hash: u.hash.clone(),
                has_password: u.has_password,
                format: u.format.clone(),
                first_seen: timefmt::date(u.first_seen),
                first_source: u.first_source.clone(),
            });
        } else {
            self.ctx.omitted.unknowns += 1;
        }
    }

    /// The context to render, the forced-reset list, and what the digest covers
    /// (finding ids, unknown hashes).
    #[allow(clippy::type_complexity)]
    pub fn finish(
        mut self,
        users_mailed: u64,
    ) -> io::Result<(DigestCtx<'a>, ResetList, Vec<i64>, Vec<Vec<u8>>)> {
        self.ctx.users_mailed = users_mailed;
        let mut top: Vec<(String, u64)> = self.sources.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP_SOURCES);
        self.ctx.top_sources = top
            .into_iter()
            .map(|(source, count)| SourceCount { source, count })
            .collect();
        if self.other_sources > 0 {
            self.ctx.top_sources.push(SourceCount {
                source: "(other files)".into(),
                count: self.other_sources,
            });
        }
        let sink = self.csv.into_inner().map_err(|e| e.into_error())?;
        let list = sink.finish()?;
        match &list {
            ResetList::Attached(a) => self.ctx.attachment = Some(a.name.clone()),
            ResetList::Written(p) => self.ctx.report_path = Some(p.display().to_string()),
        }
        Ok((self.ctx, list, self.findings, self.unknowns))
    }
}

fn row(f: &FindingView) -> DigestFinding {
    DigestFinding {
        email: f.email.clone(),
        username: f.username.clone(),
        first_seen: timefmt::date(f.first_seen),
        site: f.site.as_deref().and_then(mail_host),
        format: f.format.clone(),
        sources: f.sources.join(", "),
        critical: f.severity == Severity::Critical,
        device: f.device.as_ref().map(|d| d.describe()),
        algorithm: f.hash_algo.clone(),
        current: f.verdict == Verdict::Current,
        not_live: match f.verdict {
            Verdict::Stale => Some("stale"),
            Verdict::RotatedSince => Some("rotated since"),
            Verdict::Current | Verdict::Unknown => None,
        },
    }
}

pub(crate) fn write_header<W: Write>(w: &mut csv::Writer<W>) {
    // A write error is kept by the sink and reported by `finish`.
    let _ = w.write_record([
        "email",
        "username",
        "kind",
        "action",
        "severity",
        "device",
        "first_seen",
        "last_seen",
        "site",
        "format",
        "sources",
        "hash_algorithm",
        "verdict",
    ]);
}

/// One row of `forced-resets.csv`: never the password or its hint; every cell made safe
/// for a spreadsheet ([`spreadsheet_safe`]).
pub(crate) fn write_row<W: Write>(w: &mut csv::Writer<W>, f: &FindingView) {
    let _ = w.write_record(
        [
            f.email.as_str(),
            f.username.as_deref().unwrap_or(""),
            f.kind.as_str(),
            if f.kind == FindingKind::Session {
                "revoke sessions"
            } else {
                "reset password"
            },
            f.severity.as_str(),
            &f.device.as_ref().map(|d| d.describe()).unwrap_or_default(),
            &timefmt::rfc3339(f.first_seen),
            &timefmt::rfc3339(f.last_seen),
            f.site.as_deref().unwrap_or(""),
            &f.format,
            &f.sources.join("; "),
            f.hash_algo.as_deref().unwrap_or(""),
            f.verdict.as_str(),
        ]
        .map(|cell| spreadsheet_safe(cell).into_owned()),
    );
}

/// Where the CSV goes as it is written: memory while small, then gzip into memory, then
/// (past [`ATTACH_MAX`] compressed) a file under the reports directory.
pub(crate) struct CsvSink {
    state: SinkState,
    reports: PathBuf,
    now: i64,
    error: Option<io::Error>,
}

enum SinkState {
    Plain(Vec<u8>),
    Gzip(Box<flate2::write::GzEncoder<Spill>>),
    Failed,
}

/// Compressed bytes: in memory up to [`ATTACH_MAX`], then in a file.
struct Spill {
    buf: Vec<u8>,
    file: Option<(std::fs::File, PathBuf)>,
    reports: PathBuf,
    now: i64,
}

impl Write for Spill {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.buf.len() + b.len() > ATTACH_MAX {
            let (mut file, path) = create_report(&self.reports, self.now)?;
            file.write_all(&self.buf)?;
            self.buf = Vec::new();
            self.file = Some((file, path));
        }
        match &mut self.file {
            Some((f, _)) => f.write_all(b)?,
            None => self.buf.extend_from_slice(b),
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((f, _)) => f.flush(),
            None => Ok(()),
        }
    }
}

impl CsvSink {
    fn new(reports: &Path, now: i64) -> CsvSink {
        CsvSink {
            state: SinkState::Plain(Vec::new()),
            reports: reports.to_path_buf(),
            now,
            error: None,
        }
    }

    fn finish(self) -> io::Result<ResetList> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            SinkState::Plain(body) => Ok(ResetList::Attached(CsvAttachment {
                name: "forced-resets.csv".into(),
                content_type: "text/csv; charset=utf-8",
                body,
            })),
            SinkState::Gzip(gz) => {
                let spill = gz.finish()?;
                match spill.file {
                    None => Ok(ResetList::Attached(CsvAttachment {
                        name: "forced-resets.csv.gz".into(),
                        content_type: "application/gzip",
                        body: spill.buf,
                    })),
                    Some((file, path)) => {
                        file.sync_all()?;
                        Ok(ResetList::Written(path))
                    }
                }
            }
            SinkState::Failed => Err(io::Error::other("forced-reset list: write failed")),
        }
    }
}

impl Write for CsvSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let result = match &mut self.state {
            SinkState::Plain(v) if v.len() + b.len() <= ATTACH_PLAIN_MAX => {
                v.extend_from_slice(b);
                Ok(())
            }
            SinkState::Plain(v) => {
                let plain = std::mem::take(v);
                let mut gz = flate2::write::GzEncoder::new(
                    Spill {
                        buf: Vec::new(),
                        file: None,
                        reports: self.reports.clone(),
                        now: self.now,
                    },
                    flate2::Compression::default(),
                );
                let r = gz.write_all(&plain).and_then(|_| gz.write_all(b));
                self.state = SinkState::Gzip(Box::new(gz));
                r
            }
            SinkState::Gzip(gz) => gz.write_all(b),
            SinkState::Failed => Ok(()),
        };
        if let Err(e) = result {
            // Kept for `finish`; the digest is not sent without its list.
            self.error.get_or_insert(e);
            self.state = SinkState::Failed;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A new file `forced-resets-<time>.csv.gz` under `reports` (0700), readable by
/// leakwatch's user only.
fn create_report(reports: &Path, now: i64) -> io::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(reports)?;
    let stamp = timefmt::rfc3339(now).replace(':', "");
    for n in 0..1000 {
        let name = match n {
            0 => format!("forced-resets-{stamp}.csv.gz"),
            n => format!("forced-resets-{stamp}-{n}.csv.gz"),
        };
        let path = reports.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Err(io::Error::other(format!(
        "{}: no free report name",
        reports.display()
    )))
}
