//! Findings: confirmed matches, deduplicated, and what the notifier still owes for them.
//!
//! A finding is one (account, kind, password fingerprint). Seeing it again, in any file or
//! run, only moves `last_seen` and adds a sighting; a different password for the same
//! account is a new finding. Each write is its own transaction, committed before the
//! parser moves on, so a crash loses at most the line being read.

use rusqlite::{params, OptionalExtension};

use super::devices::{DeviceView, DEVICE_COLUMNS};
use super::directory::{account_row, AccountRow};
use super::known::{dedup, Known};
use super::{Store, StoreError};
use crate::identity::IdentityHash;
use crate::liveness::Verdict;
use crate::parse::Format;

/// Sightings kept per finding; beyond that only the counters move.
const MAX_SIGHTINGS: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A password for the account was exposed: forced reset.
    Password,
    /// Only the identity was exposed: phishing warning.
    Identity,
    /// A login cookie for one of the organisation's hosts was stolen with the account's
    /// credentials: its sessions must be revoked.
    Session,
    /// The hash of a password was exposed (a database dump's password column): forced
    /// reset, with the algorithm named (`hash_algo`), since how fast it cracks depends on it.
    PasswordHash,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Password => "password",
            FindingKind::Identity => "identity",
            FindingKind::Session => "session",
            FindingKind::PasswordHash => "password_hash",
        }
    }

    pub(super) fn parse(s: &str) -> FindingKind {
        match s {
            "password" => FindingKind::Password,
            "session" => FindingKind::Session,
            "password_hash" => FindingKind::PasswordHash,
            _ => FindingKind::Identity,
        }
    }
}

/// How urgent a finding is. A credential or session stolen from an infected machine is
/// critical: the machine still has the malware, and the attacker has a working login.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An address exposed without a password.
    Medium,
    /// A password in a combo list or dump.
    High,
    /// From a stealer log: device infected.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub(super) fn parse(s: &str) -> Severity {
        match s {
            "critical" => Severity::Critical,
            "medium" => Severity::Medium,
            _ => Severity::High,
        }
    }
}

/// One confirmed match, ready to be recorded.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    pub account_id: i64,
    pub kind: FindingKind,
    /// Keyed fingerprint of the password; `None` for identity-only.
    pub secret_fp: Option<[u8; 32]>,
    pub password_hint: Option<&'a str>,
    pub identity_hash: IdentityHash,
    /// Host of the site the credential was typed into.
    pub site: Option<&'a str>,
    pub format: Format,
    /// `file:line` or `archive!entry:line`.
    pub source: &'a str,
    pub seen_at: i64,
    pub severity: Severity,
    /// The infected machine, for stealer-log findings.
    pub device_id: Option<i64>,
    /// For a `password_hash` finding, the hash's algorithm.
    pub hash_algo: Option<&'static str>,
    /// Whether the leaked password is the account's password now, when the directory's NT
    /// hashes say (`liveness`): the finding keeps the latest verdict, never the hash.
    pub password_current: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SightingOutcome {
    New(i64),
    Seen(i64),
    /// Seen before at a lower severity (a password from a combo list, now in a stealer
    /// log): raised, and owed to the user and the digest again, since the advice changes.
    Escalated(i64),
}

impl SightingOutcome {
    pub fn id(self) -> i64 {
        match self {
            SightingOutcome::New(id)
            | SightingOutcome::Seen(id)
            | SightingOutcome::Escalated(id) => id,
        }
    }
}

/// An identity on the organisation's domains that no account holds.
#[derive(Debug, Clone)]
pub struct UnknownSighting<'a> {
    pub hash: IdentityHash,
    pub masked: &'a str,
    pub has_password: bool,
    pub format: Format,
    pub source: &'a str,
    pub seen_at: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingView {
    pub id: i64,
    #[serde(skip)]
    pub account: AccountRow,
    pub email: String,
    pub username: Option<String>,
    pub kind: FindingKind,
    pub severity: Severity,
    pub device: Option<super::DeviceView>,
    /// Only for the owner's mail: never printed for admins.
    #[serde(skip)]
    pub password_hint: Option<String>,
    pub site: Option<String>,
    pub format: String,
    /// For a `password_hash` finding, the hash's algorithm.
    pub hash_algo: Option<String>,
    pub first_source: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times_seen: i64,
    /// Distinct files (or archive entries) it was seen in, without line numbers.
    pub sources: Vec<String>,
    /// Whether the leaked password was the account's password when last checked
    /// (`liveness::ntlm`; `None`: never checked).
    pub password_current: Option<bool>,
    /// The account's last password change, from the directory (unix seconds).
    pub password_changed_at: Option<i64>,
    /// Whether the credential is still live, from the two above ([`Verdict::of`]).
    pub verdict: Verdict,
}

impl FindingView {
    /// When the credential was exposed: the end of its stealer log's day where there is
    /// one (never after leakwatch first saw it), else when leakwatch first saw it. Late
    /// rather than early: a password changed the day of the theft is not claimed rotated.
    pub fn exposed_at(&self) -> i64 {
        let logged = self
            .device
            .as_ref()
            .and_then(|d| d.log_date.as_deref())
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .map(|t| t.and_utc().timestamp());
        logged.map_or(self.first_seen, |t| t.min(self.first_seen))
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UnknownView {
    pub hash: String,
    #[serde(skip)]
    pub hash_raw: Vec<u8>,
    pub masked: String,
    pub has_password: bool,
    pub format: String,
    pub first_source: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times_seen: i64,
}

impl Store {
    pub fn record_sighting(&mut self, s: &Sighting<'_>) -> Result<SightingOutcome, StoreError> {
        // Written past the map of known findings: it can no longer vouch for this one.
        let fp: &[u8] = s.secret_fp.as_ref().map_or(&[], |f| &f[..]);
        let key = Known::key(s.account_id, s.kind, fp);
        let Some(known) = self.known.as_mut() else {
            return self.record_sighting_alone(s);
        };
        let severity = known
            .get(&key)
            .map_or(s.severity, |e| e.severity.max(s.severity));
        let outcome = self.record_sighting_alone(s);
        match &outcome {
            Ok(o)
                if self
                    .known
                    .as_mut()
                    .is_some_and(|k| k.put(key, o.id(), severity, None)) => {}
            _ => self.known = None,
        }
        outcome
    }

    fn record_sighting_alone(&mut self, s: &Sighting<'_>) -> Result<SightingOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = sighting_in(&tx, s)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Whether the identity index is of the database's generation of the directory: then
    /// every account it names is active.
    pub(super) fn index_current(&self) -> Result<bool, StoreError> {
        let index_generation = self.keys.as_ref().map(|k| k.generation());
        let current: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(value), 0) FROM meta WHERE key = ?1")?
            .query_row([super::directory::GENERATION], |r| r.get(0))?;
        Ok(index_generation == Some(current as u64))
    }

    /// Records an unknown org identity; true if it was not known before.
    pub fn record_unknown(&mut self, u: &UnknownSighting<'_>) -> Result<bool, StoreError> {
        unknown_in(&self.conn, u)
    }

    /// Records `items` in one transaction, in order, through prepared statements: a leak
    /// whose every line is an account costs one commit per batch, not one per line. The
    /// outcomes are those of recording each alone, in the same order; nothing of the batch
    /// is kept if the commit fails.
    pub fn record_batch(&mut self, items: &[Recording<'_>]) -> Result<Vec<Recorded>, StoreError> {
        self.batched += items.len() as u64;
        self.want_known(self.batched, self.batched)?;
        let mut known = self.known.take();
        let out = match self.record_batch_with(items, known.as_mut()) {
            Err(StoreError::KnownOverflow) => {
                known = None;
                self.record_batch_with(items, None)
            }
            out => out,
        };
        // A failed batch is rolled back: what the map learnt of it is not true.
        if out.is_ok() {
            self.known = known;
        }
        out
    }

    fn record_batch_with(
        &mut self,
        items: &[Recording<'_>],
        known: Option<&mut Known>,
    ) -> Result<Vec<Recorded>, StoreError> {
        // The identity index holds the keys of the directory's accounts, all active, as of
        // its generation: while the database is at that generation (no import by another
        // process since this store opened it), every account it names is active and the
        // batch asks nothing per hit.
        // Asked before the transaction: the state lock this run holds keeps any other
        // writer (an import) out until it ends.
        let all_active = self.index_current()?;
        // Then every account the batch names exists, and every sighting's finding is one
        // it found or just wrote: SQLite's foreign-key checks (a B-tree probe per row,
        // a tenth of a new finding's cost) would find nothing. The pragma is a no-op
        // inside a transaction, so it is set around it.
        if !all_active {
            return self.record_batch_in(items, known, false);
        }
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let out = self.record_batch_in(items, known, true);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        out
    }

    fn record_batch_in(
        &mut self,
        items: &[Recording<'_>],
        mut known: Option<&mut Known>,
        all_active: bool,
    ) -> Result<Vec<Recorded>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // In account order: the findings' index is by account, so a batch's writes land
        // on neighbouring pages, each written once, not on a page per hit (a million new
        // findings wrote gigabytes of WAL in input order). Outcomes keep the input's order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| match &items[i] {
            Recording::Match { sighting, .. } => (0, sighting.account_id),
            Recording::Unknown(_) => (1, 0),
        });
        let mut out = vec![Recorded::Nothing; items.len()];
        for i in order {
            let item = &items[i];
            out[i] = match item {
                Recording::Match {
                    sighting,
                    otherwise,
                } => {
                    if all_active || active_in(&tx, sighting.account_id)? {
                        Recorded::Sighting(match known.as_deref_mut() {
                            Some(known) => sighting_known(&tx, known, sighting)?,
                            None => sighting_in(&tx, sighting)?,
                        })
                    } else if let Some(u) = otherwise {
                        Recorded::Unknown(unknown_in(&tx, u)?)
                    } else {
                        Recorded::Nothing
                    }
                }
                Recording::Unknown(u) => Recorded::Unknown(unknown_in(&tx, u)?),
            };
        }
        tx.commit()?;
        Ok(out)
    }

    /// All findings, newest first.
    pub fn findings(&self) -> Result<Vec<FindingView>, StoreError> {
        self.findings_where("1 = 1")
    }

    /// Every finding whose owner has not been mailed yet, as (account, finding), grouped
    /// by account and oldest first within it: 16 bytes a finding, so that a million are
    /// composed page by page ([`Store::findings_by_ids`]) without a million views in
    /// memory.
    pub fn pending_user_mail_ids(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT account_id, id FROM findings WHERE user_notified = 0
             ORDER BY account_id, first_seen, id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The findings of `ids`, oldest first; with the files each was seen in only if
    /// `sources` (one more query per finding).
    pub fn findings_by_ids(
        &self,
        ids: &[i64],
        sources: bool,
    ) -> Result<Vec<FindingView>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Integers only: written into the statement as they are.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        self.findings_where_with(&format!("f.id IN ({list})"), sources)
    }

    /// The ids of the findings not yet in any admin digest, oldest first.
    pub fn pending_digest_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM findings WHERE digest_id IS NULL ORDER BY first_seen, id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `f` with each unknown identity not yet in a digest, oldest first, one row at
    /// a time (there may be as many as the leak has addresses on our domains).
    pub fn for_each_unknown_pending_digest(
        &self,
        mut f: impl FnMut(&UnknownView),
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT hash, masked, has_password, format, first_source, first_seen, last_seen, times_seen
             FROM unknown_identities WHERE digest_id IS NULL ORDER BY first_seen, masked",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let hash: Vec<u8> = r.get(0)?;
            f(&UnknownView {
                hash: crate::identity::to_hex_upper(&hash),
                hash_raw: hash,
                masked: r.get(1)?,
                has_password: r.get(2)?,
                format: r.get(3)?,
                first_source: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
                times_seen: r.get(7)?,
            });
        }
        Ok(())
    }

    pub fn unknowns_pending_digest(&self) -> Result<Vec<UnknownView>, StoreError> {
        let mut out = Vec::new();
        self.for_each_unknown_pending_digest(|u| out.push(u.clone()))?;
        Ok(out)
    }

    fn findings_where(&self, cond: &str) -> Result<Vec<FindingView>, StoreError> {
        self.findings_where_with(cond, true)
    }

    fn findings_where_with(
        &self,
        cond: &str,
        sources: bool,
    ) -> Result<Vec<FindingView>, StoreError> {
        let sql = format!(
            "SELECT a.id, a.email, a.username, a.name, a.lang,
                    f.id, f.kind, f.password_hint, f.site, f.format, f.first_source, f.first_seen,
                    f.last_seen, f.times_seen, f.severity, f.hash_algo, {DEVICE_COLUMNS},
                    f.password_current, a.password_changed_at
             FROM findings f JOIN accounts a ON a.id = f.account_id
             LEFT JOIN devices d ON d.id = f.device_id
             WHERE {cond} ORDER BY f.first_seen, f.id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut out: Vec<FindingView> = stmt
            .query_map([], |r| {
                let account = account_row(r)?;
                let kind: String = r.get(6)?;
                let mut view = FindingView {
                    id: r.get(5)?,
                    email: account.email.clone(),
                    username: account.username.clone(),
                    account,
                    kind: FindingKind::parse(&kind),
                    severity: Severity::parse(&r.get::<_, String>(14)?),
                    device: DeviceView::from_row(r, 16)?,
                    hash_algo: r.get(15)?,
                    password_hint: r.get(7)?,
                    site: r.get(8)?,
                    format: r.get(9)?,
                    first_source: r.get(10)?,
                    first_seen: r.get(11)?,
                    last_seen: r.get(12)?,
                    times_seen: r.get(13)?,
                    sources: Vec::new(),
                    password_current: r.get(23)?,
                    password_changed_at: r.get(24)?,
                    verdict: Verdict::Unknown,
                };
                view.verdict = Verdict::of(
                    view.kind,
                    view.password_current,
                    view.last_seen,
                    view.exposed_at(),
                    view.password_changed_at,
                );
                Ok(view)
            })?
            .collect::<Result<_, _>>()?;
        if !sources {
            return Ok(out);
        }
        let mut src = self.conn.prepare_cached(
            "SELECT source FROM sightings WHERE finding_id = ?1 ORDER BY seen_at, source",
        )?;
        for f in &mut out {
            let rows = src.query_map([f.id], |r| r.get::<_, String>(0))?;
            for s in rows {
                let file = strip_line(&s?).to_string();
                if !f.sources.contains(&file) {
                    f.sources.push(file);
                }
            }
        }
        Ok(out)
    }

    /// Finds a finding's account (for tests and tools).
    pub fn account_by_email(&self, email: &str) -> Result<Option<AccountRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, email, username, name, lang FROM accounts WHERE email = ?1",
                [email],
                account_row,
            )
            .optional()?)
    }
}

/// `dir/file.txt:12` → `dir/file.txt`.
fn strip_line(source: &str) -> &str {
    match source.rsplit_once(':') {
        Some((file, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => file,
        _ => source,
    }
}

/// One write of a batch ([`Store::record_batch`]).
#[derive(Debug, Clone)]
pub enum Recording<'a> {
    /// A hit on an account's key: a finding if the account is still active (asked inside
    /// the batch, so that it sees the directory the writes see), else `otherwise`, the
    /// org identity nobody active holds, if it is one.
    Match {
        sighting: Sighting<'a>,
        otherwise: Option<UnknownSighting<'a>>,
    },
    Unknown(UnknownSighting<'a>),
}

/// What one [`Recording`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Sighting(SightingOutcome),
    /// True if the identity was not known before.
    Unknown(bool),
    /// A match on an account no longer active, and not an org identity.
    Nothing,
}

fn active_in(conn: &rusqlite::Connection, id: i64) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM accounts WHERE id = ?1 AND active = 1")?;
    Ok(stmt.exists([id])?)
}

fn sighting_in(
    conn: &rusqlite::Connection,
    s: &Sighting<'_>,
) -> Result<SightingOutcome, StoreError> {
    let fp: &[u8] = match &s.secret_fp {
        Some(fp) => fp,
        None => &[],
    };
    // Whether this very sighting (the same file and line) is already recorded: a dump
    // read again is not seen again, and costs a read, not a write (a re-read leak of the
    // whole user base is a million of these).
    let existing: Option<(i64, i64, String, bool, Option<i64>)> = conn
        .prepare_cached(
            "SELECT f.id, f.times_seen, f.severity,
                    EXISTS (SELECT 1 FROM sightings s WHERE s.finding_id = f.id AND s.source = ?4),
                    f.device_id
             FROM findings f
             WHERE account_id = ?1 AND dedup = ?5 AND kind = ?2 AND secret_fp = ?3",
        )?
        .query_row(
            params![
                s.account_id,
                s.kind.as_str(),
                fp,
                s.source,
                dedup(s.kind, fp)
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let outcome = match existing {
        Some((id, _, severity, true, device))
            if s.severity <= Severity::parse(&severity)
                && (s.device_id.is_none() || device.is_some()) =>
        {
            SightingOutcome::Seen(id)
        }
        Some((id, times, severity, _, _)) => {
            conn.prepare_cached(
                "UPDATE findings SET last_seen = max(last_seen, ?2), times_seen = times_seen + 1,
                    device_id = coalesce(device_id, ?3),
                    password_current = coalesce(?4, password_current) WHERE id = ?1",
            )?
            .execute(params![id, s.seen_at, s.device_id, s.password_current])?;
            let escalated = s.severity > Severity::parse(&severity);
            if escalated {
                conn.prepare_cached(
                    "UPDATE findings SET severity = ?2, device_id = coalesce(?3, device_id),
                        format = ?4, site = coalesce(site, ?5), user_notified = 0,
                        digest_id = NULL WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    s.severity.as_str(),
                    s.device_id,
                    s.format.as_str(),
                    s.site
                ])?;
            }
            if times < MAX_SIGHTINGS {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO sightings (finding_id, source, seen_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, s.source, s.seen_at])?;
            }
            if escalated {
                SightingOutcome::Escalated(id)
            } else {
                SightingOutcome::Seen(id)
            }
        }
        None => match insert_new(conn, s, fp)? {
            Some(id) => SightingOutcome::New(id),
            // Unreachable while the state lock is held: nothing else inserts meanwhile.
            None => return Err(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows)),
        },
    };
    Ok(outcome)
}

/// [`sighting_in`] answered from the map of known findings where it can vouch: a new
/// finding is inserted without a read, a re-read sighting costs nothing; anything else
/// goes the general way, and the map stops vouching for that finding.
fn sighting_known(
    conn: &rusqlite::Connection,
    known: &mut Known,
    s: &Sighting<'_>,
) -> Result<SightingOutcome, StoreError> {
    let fp: &[u8] = s.secret_fp.as_ref().map_or(&[], |f| &f[..]);
    if s.device_id.is_some() {
        return sighting_in(conn, s);
    }
    let key = Known::key(s.account_id, s.kind, fp);
    let source = known.source_hash(s.source);
    let outcome = match known.get(&key) {
        Some(e) if e.exact && e.source == source && s.severity <= e.severity => {
            return Ok(SightingOutcome::Seen(i64::from(e.id)));
        }
        Some(_) => sighting_in(conn, s)?,
        None => match insert_new(conn, s, fp)? {
            Some(id) => {
                if !known.put(key, id, s.severity, Some(source)) {
                    return Err(StoreError::KnownOverflow);
                }
                return Ok(SightingOutcome::New(id));
            }
            // SQLite had it after all: the map was wrong about this one.
            None => sighting_in(conn, s)?,
        },
    };
    let severity = known
        .get(&key)
        .map_or(s.severity, |e| e.severity.max(s.severity));
    if !known.put(key, outcome.id(), severity, None) {
        return Err(StoreError::KnownOverflow);
    }
    Ok(outcome)
}

/// Inserts a finding and its first sighting; `None` if (account, kind, fingerprint) was
/// there already (nothing written).
fn insert_new(
    conn: &rusqlite::Connection,
    s: &Sighting<'_>,
    fp: &[u8],
) -> Result<Option<i64>, StoreError> {
    let added = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO findings (account_id, kind, secret_fp, password_hint,
                identity_hash, site, format, first_source, first_seen, last_seen, times_seen,
                severity, device_id, hash_algo, dedup, password_current)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            s.account_id,
            s.kind.as_str(),
            fp,
            s.password_hint,
            &s.identity_hash.0[..],
            s.site,
            s.format.as_str(),
            s.source,
            s.seen_at,
            s.severity.as_str(),
            s.device_id,
            s.hash_algo,
            dedup(s.kind, fp),
            s.password_current
        ])?;
    if added == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO sightings (finding_id, source, seen_at) VALUES (?1, ?2, ?3)")?
        .execute(params![id, s.source, s.seen_at])?;
    Ok(Some(id))
}

fn unknown_in(conn: &rusqlite::Connection, u: &UnknownSighting<'_>) -> Result<bool, StoreError> {
    // The row's count after the upsert: 1 when it was not there before.
    let times: i64 = conn
        .prepare_cached(
            "INSERT INTO unknown_identities (hash, masked, first_source, format, has_password,
                first_seen, last_seen, times_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
             ON CONFLICT(hash) DO UPDATE SET last_seen = max(last_seen, ?6), times_seen = times_seen + 1,
                has_password = max(has_password, ?5)
             RETURNING times_seen",
        )?
        .query_row(
            params![
                &u.hash.0[..],
                u.masked,
                u.source,
                u.format.as_str(),
                u.has_password,
                u.seen_at
            ],
            |r| r.get(0),
        )?;
    Ok(times == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lang;
    use crate::identity::IdentityKind;
    use crate::store::DirectoryAccount;

    fn store_with(emails: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let accounts: Vec<_> = emails
            .iter()
            .map(|e| DirectoryAccount {
                email: e.to_string(),
                username: None,
                name: None,
                lang: Lang::Fr,
                keys: vec![(IdentityHash::of(e), IdentityKind::Email)],
                password_changed_at: None,
            })
            .collect();
        s.replace_directory(&accounts).unwrap();
        (dir, s)
    }

    fn sighting<'a>(account_id: i64, fp: Option<u8>, source: &'a str, at: i64) -> Sighting<'a> {
        Sighting {
            account_id,
            kind: if fp.is_some() {
                FindingKind::Password
            } else {
                FindingKind::Identity
            },
            secret_fp: fp.map(|b| [b; 32]),
            password_hint: None,
            identity_hash: IdentityHash::of("a@x.example"),
            site: None,
            format: Format::Combo,
            source,
            seen_at: at,
            severity: Severity::High,
            device_id: None,
            hash_algo: None,
            password_current: None,
        }
    }

    /// A small random generator (xorshift), `next(n)` in `0..n`, for reproducible mixes.
    fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// A batch of 1 to 12 random sightings of `ids`' accounts at `sources`: passwords 1–3
    /// or none, some at medium severity.
    fn random_batch<'a>(
        ids: &[i64],
        sources: &[&'a str],
        step: i64,
        next: &mut impl FnMut(u64) -> u64,
    ) -> Vec<Recording<'a>> {
        let mut items = Vec::new();
        for _ in 0..1 + next(12) {
            let fp = match next(4) {
                0 => None,
                b => Some(b as u8),
            };
            let mut sg = sighting(
                ids[next(ids.len() as u64) as usize],
                fp,
                sources[next(sources.len() as u64) as usize],
                step * 10 + next(10) as i64,
            );
            if next(8) == 0 {
                sg.severity = Severity::Medium;
            }
            items.push(Recording::Match {
                sighting: sg,
                otherwise: None,
            });
        }
        items
    }

    /// A batch does what recording its items one by one does, in order: a finding seen
    /// twice in one batch is new once; a departed account's hit becomes its fallback, an
    /// unknown org identity, or nothing.
    #[test]
    fn a_batch_records_as_one_at_a_time() {
        let (d, mut s) = store_with(&["a@x.example", "b@x.example"]);
        let a = s.account_by_email("a@x.example").unwrap().unwrap().id;
        let b = s.account_by_email("b@x.example").unwrap().unwrap().id;
        // b leaves the directory, imported by another process: this store's identity
        // index still names b, so the batch asks whether each account is active.
        let mut other = Store::open(d.path()).unwrap();
        other
            .replace_directory(&[DirectoryAccount {
                email: "a@x.example".into(),
                username: None,
                name: None,
                lang: Lang::Fr,
                keys: vec![(IdentityHash::of("a@x.example"), IdentityKind::Email)],
                password_changed_at: None,
            }])
            .unwrap();
        let unknown = |who: &'static str| UnknownSighting {
            hash: IdentityHash::of(who),
            masked: "x…@x.example",
            has_password: true,
            format: Format::Combo,
            source: "l:9",
            seen_at: 12,
        };
        let items = [
            Recording::Match {
                sighting: sighting(a, Some(1), "l:1", 10),
                otherwise: None,
            },
            Recording::Match {
                sighting: sighting(a, Some(1), "l:2", 11),
                otherwise: None,
            },
            Recording::Match {
                sighting: sighting(b, Some(1), "l:3", 12),
                otherwise: Some(unknown("b@x.example")),
            },
            Recording::Match {
                sighting: sighting(b, Some(2), "l:4", 12),
                otherwise: None,
            },
            Recording::Unknown(unknown("c@x.example")),
            Recording::Unknown(unknown("c@x.example")),
        ];
        let out = s.record_batch(&items).unwrap();
        let Recorded::Sighting(SightingOutcome::New(id)) = out[0] else {
            panic!("{out:?}");
        };
        assert_eq!(
            out[1..],
            [
                Recorded::Sighting(SightingOutcome::Seen(id)),
                Recorded::Unknown(true),
                Recorded::Nothing,
                Recorded::Unknown(true),
                Recorded::Unknown(false),
            ]
        );
        let all = s.findings().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].times_seen, all[0].last_seen), (2, 11));
        assert_eq!(s.unknowns_pending_digest().unwrap().len(), 2);
    }

    /// Every row of the findings and sightings, as the database holds them.
    fn table_dump(s: &Store) -> Vec<String> {
        let mut out = Vec::new();
        let mut f = s
            .conn
            .prepare(
                "SELECT id, account_id, kind, hex(secret_fp), first_source, first_seen, last_seen,
                        times_seen, severity, user_notified FROM findings ORDER BY id",
            )
            .unwrap();
        let mut rows = f.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let cols: Vec<String> = (0..10)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            out.push(cols.join(" "));
        }
        let mut g = s
            .conn
            .prepare(
                "SELECT finding_id, source, seen_at FROM sightings ORDER BY finding_id, source",
            )
            .unwrap();
        let mut rows = g.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out.push(format!(
                "sighting {:?} {:?} {:?}",
                r.get::<_, rusqlite::types::Value>(0).unwrap(),
                r.get::<_, rusqlite::types::Value>(1).unwrap(),
                r.get::<_, rusqlite::types::Value>(2).unwrap()
            ));
        }
        out
    }

    /// With the known findings in memory, batches and single sightings record exactly what
    /// they record through SQLite alone: the same outcomes, rows and sightings, over random
    /// runs of re-reads, new sources, new passwords, raised severities and sightings
    /// written past the batches (a stealer log's).
    #[test]
    fn known_findings_in_memory_record_as_sqlite_alone() {
        let emails = ["a@x.example", "b@x.example", "c@x.example"];
        let sources = ["f:1", "f:2", "g:1", "g:7", "h:3"];
        for seed in 1..=12u64 {
            let (_d1, mut plain) = store_with(&emails);
            let (_d2, mut mapped) = store_with(&emails);
            mapped
                .want_known(
                    super::super::known::KNOW_AFTER,
                    super::super::known::KNOW_AFTER,
                )
                .unwrap();
            assert!(mapped.known.is_some());
            let ids: Vec<i64> = emails
                .iter()
                .map(|e| plain.account_by_email(e).unwrap().unwrap().id)
                .collect();
            let mut next = xorshift(seed);
            for step in 0..40 {
                let items = random_batch(&ids, &sources, step, &mut next);
                if next(5) == 0 {
                    // Written past the batch: a critical sighting, as a stealer log's.
                    let mut sg = sighting(ids[next(3) as usize], Some(1), "s:1", step * 10);
                    sg.severity = Severity::Critical;
                    assert_eq!(
                        plain.record_sighting(&sg).unwrap(),
                        mapped.record_sighting(&sg).unwrap(),
                        "seed {seed} step {step}"
                    );
                }
                let want = plain.record_batch(&items).unwrap();
                let got = mapped.record_batch(&items).unwrap();
                assert_eq!(got, want, "seed {seed} step {step}");
            }
            assert!(mapped.known.is_some(), "the map was kept throughout");
            assert_eq!(table_dump(&mapped), table_dump(&plain), "seed {seed}");
        }
    }

    /// The map's file is read by the next run only while the findings are as it says: a
    /// finding deleted or lowered between runs makes the next run read the table, and a
    /// re-read of its line is recorded as new or raised, not taken for a re-read; a change
    /// the map does not record (the user mailed) leaves the file in use.
    #[test]
    fn a_finding_changed_between_runs_is_not_taken_from_the_saved_map() {
        let (_d, mut s) = store_with(&["a@x.example", "b@x.example"]);
        let a = s.account_by_email("a@x.example").unwrap().unwrap().id;
        let b = s.account_by_email("b@x.example").unwrap().unwrap().id;
        let at = super::super::known::KNOW_AFTER;
        let batch = |s: &mut Store| {
            let items = [
                Recording::Match {
                    sighting: sighting(a, Some(1), "f:1", 5),
                    otherwise: None,
                },
                Recording::Match {
                    sighting: sighting(b, Some(2), "f:2", 5),
                    otherwise: None,
                },
            ];
            s.record_batch(&items).unwrap()
        };
        // Each run: the map read (true: from its file), a batch, the map saved.
        let run = |s: &mut Store| {
            s.want_known(at, at).unwrap();
            let from_file = !s.known.as_ref().unwrap().dirty;
            let out = batch(s);
            s.forget_known();
            (from_file, out)
        };
        let (from_file, out) = run(&mut s);
        assert!(!from_file);
        assert!(matches!(
            out[..],
            [
                Recorded::Sighting(SightingOutcome::New(_)),
                Recorded::Sighting(SightingOutcome::New(_))
            ]
        ));
        let (from_file, out) = run(&mut s);
        assert!(from_file);
        assert!(matches!(
            out[..],
            [
                Recorded::Sighting(SightingOutcome::Seen(_)),
                Recorded::Sighting(SightingOutcome::Seen(_))
            ]
        ));
        s.conn
            .execute("UPDATE findings SET user_notified = 1", [])
            .unwrap();
        assert!(
            run(&mut s).0,
            "a change the map does not hold keeps the file"
        );

        s.conn
            .execute_batch(&format!(
                "DELETE FROM sightings WHERE finding_id IN
                    (SELECT id FROM findings WHERE account_id = {a});
                 DELETE FROM findings WHERE account_id = {a};"
            ))
            .unwrap();
        let (from_file, out) = run(&mut s);
        assert!(!from_file);
        assert!(matches!(
            out[..],
            [
                Recorded::Sighting(SightingOutcome::New(_)),
                Recorded::Sighting(SightingOutcome::Seen(_))
            ]
        ));
        assert!(run(&mut s).0);

        s.conn
            .execute(
                "UPDATE findings SET severity = 'medium' WHERE account_id = ?1",
                [b],
            )
            .unwrap();
        let (from_file, out) = run(&mut s);
        assert!(!from_file);
        assert!(matches!(
            out[..],
            [
                Recorded::Sighting(SightingOutcome::Seen(_)),
                Recorded::Sighting(SightingOutcome::Escalated(_))
            ]
        ));
        // The raise was written during that run: the map was not saved after it.
        assert!(!run(&mut s).0);
        // A sighting written the general way during a run: the map is not saved.
        s.want_known(at, at).unwrap();
        assert!(s.known.as_ref().is_some_and(|k| !k.dirty));
        s.record_sighting(&sighting(b, Some(2), "g:9", 6)).unwrap();
        s.forget_known();
        assert!(!run(&mut s).0);
    }

    /// Runs that keep the map in its file between them record as SQLite alone, whatever
    /// is written between runs without the map: sightings the general way (which change
    /// what the map says of a finding) and findings deleted (a purge, an admin). A file
    /// that could lie is never read; one that cannot is.
    #[test]
    fn known_findings_kept_between_runs_record_as_sqlite_alone() {
        let emails = ["a@x.example", "b@x.example", "c@x.example"];
        let sources = ["f:1", "f:2", "g:1", "g:7", "h:3"];
        let (mut from_file, mut from_table) = (0, 0);
        for seed in 1..=12u64 {
            let (_d1, mut plain) = store_with(&emails);
            let (_d2, mut mapped) = store_with(&emails);
            let ids: Vec<i64> = emails
                .iter()
                .map(|e| plain.account_by_email(e).unwrap().unwrap().id)
                .collect();
            let mut next = xorshift(seed);
            for step in 0..60 {
                if mapped.known.is_none() {
                    let at = super::super::known::KNOW_AFTER;
                    mapped.want_known(at, at).unwrap();
                    match mapped.known.as_ref().map(|k| k.dirty) {
                        Some(false) => from_file += 1,
                        Some(true) => from_table += 1,
                        None => panic!("seed {seed} step {step}: no map"),
                    }
                }
                let items = random_batch(&ids, &sources, step, &mut next);
                let want = plain.record_batch(&items).unwrap();
                let got = mapped.record_batch(&items).unwrap();
                assert_eq!(got, want, "seed {seed} step {step}");
                if next(3) != 0 {
                    continue;
                }
                // A run's end: the map saved (if nothing changed behind it), then writes
                // between runs, with no map held.
                mapped.forget_known();
                assert!(mapped.known.is_none());
                match next(4) {
                    0 => {
                        let sg = sighting(
                            ids[next(3) as usize],
                            Some(1 + next(3) as u8),
                            sources[next(5) as usize],
                            step * 10,
                        );
                        assert_eq!(
                            plain.record_sighting(&sg).unwrap(),
                            mapped.record_sighting(&sg).unwrap(),
                            "seed {seed} step {step}"
                        );
                    }
                    1 => {
                        let account = ids[next(3) as usize];
                        for s in [&plain, &mapped] {
                            s.conn
                                .execute_batch(&format!(
                                    "DELETE FROM sightings WHERE finding_id IN
                                        (SELECT id FROM findings WHERE account_id = {account});
                                     DELETE FROM findings WHERE account_id = {account};"
                                ))
                                .unwrap();
                        }
                    }
                    2 => {
                        // Not what the map records: the file stays valid.
                        for s in [&plain, &mapped] {
                            s.conn
                                .execute("UPDATE findings SET user_notified = 1", [])
                                .unwrap();
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(table_dump(&mapped), table_dump(&plain), "seed {seed}");
        }
        // A run that wrote a sighting the general way does not save the map (its writes
        // deleted the token): in this mix, most runs.
        assert!(
            from_file > 10 && from_table > 10,
            "{from_file} {from_table}"
        );
    }

    /// A database of version 6 (findings unique by account, kind and the whole
    /// fingerprint) is rebuilt as version 7 with every finding, sighting and reference
    /// kept, and deduplicates against them as before.
    #[test]
    fn version_6_findings_are_kept_by_the_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for step in [
                super::super::SCHEMA,
                super::super::SCHEMA_2,
                super::super::SCHEMA_3,
                super::super::SCHEMA_4,
                super::super::SCHEMA_5,
                super::super::SCHEMA_6,
            ] {
                conn.execute_batch(step).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO accounts (id, email, lang) VALUES (1, 'a@x.example', 'fr');
                 INSERT INTO findings (id, account_id, kind, secret_fp, identity_hash, format,
                    first_source, first_seen, last_seen, times_seen, severity)
                 VALUES (7, 1, 'password', x'0101010101010101010101010101010101010101010101010101010101010101',
                         x'00', 'combo', 'old.txt:3', 5, 6, 2, 'high'),
                        (9, 1, 'identity', x'', x'00', 'combo', 'old.txt:4', 5, 5, 1, 'medium');
                 INSERT INTO sightings VALUES (7, 'old.txt:3', 5), (7, 'old2.txt:1', 6),
                                              (9, 'old.txt:4', 5);",
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let version: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::SCHEMA_VERSION);
        let dump = table_dump(&s);
        assert_eq!(dump.len(), 5, "{dump:?}");
        assert!(
            dump[0].starts_with("Integer(7) Integer(1) Text(\"password\")"),
            "{dump:?}"
        );
        // The same password, and the same address alone, are the findings already there.
        let again = |fp: Option<u8>, src| Sighting {
            severity: if fp.is_some() {
                Severity::High
            } else {
                Severity::Medium
            },
            ..sighting(1, fp, src, 9)
        };
        assert_eq!(
            s.record_sighting(&again(Some(1), "new.txt:1")).unwrap(),
            SightingOutcome::Seen(7)
        );
        assert_eq!(
            s.record_sighting(&again(None, "old.txt:4")).unwrap(),
            SightingOutcome::Seen(9)
        );
        assert!(matches!(
            s.record_sighting(&again(Some(2), "new.txt:2")).unwrap(),
            SightingOutcome::New(_)
        ));
        let broken: i64 = s
            .conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0);
    }

    #[test]
    fn dedup_by_account_kind_and_password() {
        let (_d, mut s) = store_with(&["a@x.example"]);
        let id = s.account_by_email("a@x.example").unwrap().unwrap().id;
        let f1 = s
            .record_sighting(&sighting(id, Some(1), "one.txt:1", 10))
            .unwrap();
        assert!(matches!(f1, SightingOutcome::New(_)));
        // Same password elsewhere: not new.
        assert!(matches!(
            s.record_sighting(&sighting(id, Some(1), "two.txt:5", 20))
                .unwrap(),
            SightingOutcome::Seen(_)
        ));
        // Same line again (re-ingest): not new, not seen again (no second sighting row,
        // no count, no date moved: the same sighting read twice).
        assert!(matches!(
            s.record_sighting(&sighting(id, Some(1), "two.txt:5", 30))
                .unwrap(),
            SightingOutcome::Seen(_)
        ));
        // A new password: new finding. Identity-only: a finding of its own kind.
        assert!(matches!(
            s.record_sighting(&sighting(id, Some(2), "two.txt:6", 30))
                .unwrap(),
            SightingOutcome::New(_)
        ));
        assert!(matches!(
            s.record_sighting(&sighting(id, None, "three.csv:2", 30))
                .unwrap(),
            SightingOutcome::New(_)
        ));
        let all = s.findings().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].times_seen, 2);
        assert_eq!(all[0].first_seen, 10);
        assert_eq!(all[0].last_seen, 20);
        assert_eq!(all[0].sources, ["one.txt", "two.txt"]);
        assert_eq!(s.pending_user_mail_ids().unwrap().len(), 3);
    }

    #[test]
    fn a_stealer_sighting_escalates_a_combo_finding_once() {
        let (_d, mut s) = store_with(&["a@x.example"]);
        let id = s.account_by_email("a@x.example").unwrap().unwrap().id;
        let SightingOutcome::New(f) = s
            .record_sighting(&sighting(id, Some(1), "combo.txt:1", 10))
            .unwrap()
        else {
            panic!("new")
        };
        let dev = s.device_for_folder(&[7; 32], 20).unwrap();
        let stealer = Sighting {
            severity: Severity::Critical,
            device_id: Some(dev),
            format: Format::Stealer,
            ..sighting(id, Some(1), "logs.zip!x/Passwords.txt:4", 20)
        };
        assert_eq!(
            s.record_sighting(&stealer).unwrap(),
            SightingOutcome::Escalated(f)
        );
        assert_eq!(
            s.record_sighting(&stealer).unwrap(),
            SightingOutcome::Seen(f)
        );
        // A combo sighting after it does not lower it.
        assert_eq!(
            s.record_sighting(&sighting(id, Some(1), "combo2.txt:1", 30))
                .unwrap(),
            SightingOutcome::Seen(f)
        );
        let all = s.findings().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].severity, Severity::Critical);
        assert_eq!(all[0].format, "stealer");
        assert_eq!(all[0].device.as_ref().unwrap().id, dev);
    }

    #[test]
    fn unknowns_are_new_once() {
        let (_d, mut s) = store_with(&[]);
        let u = UnknownSighting {
            hash: IdentityHash::of("ghost@x.example"),
            masked: "g•••••t@x.example",
            has_password: false,
            format: Format::Combo,
            source: "a.txt:1",
            seen_at: 5,
        };
        assert!(s.record_unknown(&u).unwrap());
        assert!(!s
            .record_unknown(&UnknownSighting {
                has_password: true,
                ..u.clone()
            })
            .unwrap());
        let pending = s.unknowns_pending_digest().unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].has_password);
        assert_eq!(pending[0].times_seen, 2);
        assert_eq!(pending[0].hash, IdentityHash::of("ghost@x.example").hex());
    }

    #[test]
    fn strip_line_numbers() {
        assert_eq!(strip_line("a/b.txt:12"), "a/b.txt");
        assert_eq!(
            strip_line("a.zip!x/Passwords.txt:3"),
            "a.zip!x/Passwords.txt"
        );
        assert_eq!(strip_line("weird:name"), "weird:name");
    }
}
