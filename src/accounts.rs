//! Importing the organisation's directory from CSV, and keeping the Bloom filter in step.
//!
//! The CSV has a header row; `email` is required, `username`, `name`, `lang` (`fr` or
//! `en`, default `fr`) and `password_changed_at` (the last password change: RFC 3339,
//! `YYYY-MM-DD[ HH:MM[:SS]]` in UTC, or AD's `pwdLastSet` as a FILETIME) are optional,
//! other columns are ignored. A bad row is reported by line number and skipped; a bad
//! date is reported and the account imported without it. Each import replaces the
//! directory.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::config::{Config, Lang};
use crate::filter::{AccountFilter, FilterError};
use crate::identity::{IdentityHash, IdentityKind, Normalizer, LOGIN_KEY_PREFIX};
use crate::progress::Progress;
use crate::store::{DirectoryAccount, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Header { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub accounts: u64,
    pub keys: u64,
    pub skipped: Vec<RowError>,
    pub generation: u64,
    pub filter_bytes: u64,
}

/// Parses a directory CSV into accounts with their identity keys. Pure: no I/O but `input`.
pub fn parse_directory<R: Read>(
    input: R,
    name: &str,
    norm: &Normalizer,
) -> Result<(Vec<DirectoryAccount>, Vec<RowError>), ImportError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Header {
            path: name.into(),
            message: e.to_string(),
        })?
        .clone();
    let col = |n: &str| {
        headers.iter().position(|h| {
            h.trim_start_matches('\u{feff}')
                .trim()
                .eq_ignore_ascii_case(n)
        })
    };
    let email_col = col("email").ok_or_else(|| ImportError::Header {
        path: name.into(),
        message: "the header has no `email` column".into(),
    })?;
    let cols = Columns {
        email: email_col,
        user: col("username"),
        name: col("name"),
        lang: col("lang"),
        changed: col("password_changed_at"),
    };

    // Rows are read here, in order, and checked in batches by one worker per core: the
    // checks (normalising, hashing) are most of an import's parsing and every row's are
    // independent. The batches are put back in file order as they return; duplicates,
    // which depend on the rows before, are settled once all are in (`settle_duplicates`).
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Rows::default();
    let (work, queue) = std::sync::mpsc::sync_channel::<(u64, Batch)>(workers);
    let queue = std::sync::Mutex::new(queue);
    let (done_tx, done) = std::sync::mpsc::channel::<(u64, Batch, Vec<Checked>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done_tx, cols) = (&queue, done_tx.clone(), &cols);
            scope.spawn(move || {
                let mut key = String::new();
                loop {
                    let job = queue.lock().map(|q| q.recv());
                    let Ok(Ok((seq, batch))) = job else { break };
                    let checked = batch
                        .rows
                        .iter()
                        .map(|row| match &row.error {
                            None => (
                                row.line,
                                check_row(&row.record, row.line, cols, norm, &mut key),
                            ),
                            Some(e) => (row.line, Err(e.clone())),
                        })
                        .collect();
                    if done_tx.send((seq, batch, checked)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut spare: Vec<Batch> = Vec::new();
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut sent = 0u64;
        let mut apply = |seq: u64, batch: Batch, checked: Vec<Checked>, spare: &mut Vec<Batch>| {
            waiting.insert(seq, checked);
            spare.push(batch);
            while let Some(checked) = waiting.remove(&next) {
                rows.apply(checked);
                next += 1;
            }
        };
        let mut more = true;
        while more {
            let mut batch = spare.pop().unwrap_or_default();
            more = batch.fill(&mut rdr);
            if batch.rows.is_empty() {
                break;
            }
            while let Ok((seq, b, checked)) = done.try_recv() {
                apply(seq, b, checked, &mut spare);
            }
            if work.send((sent, batch)).is_err() {
                break;
            }
            sent += 1;
        }
        drop(work);
        for (seq, b, checked) in done.iter() {
            apply(seq, b, checked, &mut spare);
        }
    });
    Ok(rows.settle_duplicates())
}

/// Where the directory's columns are.
struct Columns {
    email: usize,
    user: Option<usize>,
    name: Option<usize>,
    lang: Option<usize>,
    changed: Option<usize>,
}

/// A row as checked on its own: the account, or why the row is skipped.
type Checked = (u64, Result<DirectoryAccount, String>);

const BATCH_ROWS: usize = 4096;

/// Rows read from the CSV; the records are reused from batch to batch.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
}

/// A CSV row with its line, or the reader's error for it.
#[derive(Default)]
struct Row {
    line: u64,
    record: csv::StringRecord,
    error: Option<String>,
}

impl Batch {
    /// Reads up to `BATCH_ROWS` rows; false at the end of the input.
    fn fill<R: Read>(&mut self, rdr: &mut csv::Reader<R>) -> bool {
        for n in 0..BATCH_ROWS {
            if self.rows.len() == n {
                self.rows.push(Row::default());
            }
            let row = &mut self.rows[n];
            row.line = rdr.position().line();
            row.error = None;
            match rdr.read_record(&mut row.record) {
                Ok(false) => {
                    self.rows.truncate(n);
                    return false;
                }
                Ok(true) => {
                    if let Some(p) = row.record.position() {
                        row.line = p.line();
                    }
                }
                Err(e) => row.error = Some(e.to_string()),
            }
        }
        true
    }
}

/// Checks one row on its own (everything but duplicates).
fn check_row(
    record: &csv::StringRecord,
    line: u64,
    cols: &Columns,
    norm: &Normalizer,
    key: &mut String,
) -> Result<DirectoryAccount, String> {
    // Fields are trimmed here rather than by the reader, which would trim every column
    // on the reading thread.
    let field = |c: Option<usize>| {
        c.and_then(|c| record.get(c))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(raw_email) = field(Some(cols.email)) else {
        return Err("no email".into());
    };
    if !norm.email_key(raw_email, key) {
        return Err(format!("`{raw_email}` is not an email address"));
    }
    let email = key.clone();
    let lang = match field(cols.lang) {
        None => Lang::Fr,
        Some(l) => Lang::parse(l).ok_or_else(|| format!("lang `{l}` is neither fr nor en"))?,
    };
    let username = match field(cols.user) {
        None => None,
        Some(u) => {
            if !norm.login_key(u, key) {
                return Err(format!("username `{u}` is not a valid login"));
            }
            Some(key[LOGIN_KEY_PREFIX.len()..].to_string())
        }
    };
    let keys = account_keys(norm, &email, username.as_deref());
    let password_changed_at = field(cols.changed).and_then(|v| {
        let t = password_changed_at(v);
        if t.is_none() {
            // Not a reason to leave the person unprotected: without the date, a leaked
            // password of theirs forces a reset as before.
            tracing::warn!(
                line,
                "password_changed_at is not a date (RFC 3339, YYYY-MM-DD or an AD FILETIME): imported without it"
            );
        }
        t.flatten()
    });
    Ok(DirectoryAccount {
        password_changed_at,
        email,
        username,
        name: field(cols.name).and_then(|n| {
            let clean = crate::notify::message::display_name(n);
            if clean != n {
                // Not a reason to leave the person unprotected: the name is cleaned, and
                // the directory's owner told which line to fix.
                tracing::warn!(
                    line,
                    "the name holds control characters (a line break?): cleaned"
                );
            }
            Some(clean).filter(|c| !c.is_empty())
        }),
        lang,
        keys,
    })
}

/// A `password_changed_at` cell as unix seconds: `Some(None)` for AD's "never" or "must
/// change at next logon" (`0`), `None` if it is not a date.
fn password_changed_at(v: &str) -> Option<Option<i64>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(Some(t.timestamp()));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, f) {
            return Some(Some(t.and_utc().timestamp()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()));
    }
    // pwdLastSet: 100 ns ticks since 1601-01-01 (0: must change; all ones: never).
    let ticks: i64 = v.parse().ok()?;
    match ticks {
        0 | i64::MAX => Some(None),
        t if t > 0 => Some(Some(t / 10_000_000 - 11_644_473_600)),
        _ => None,
    }
}

/// The accounts read so far, in file order, with their lines, and the rows skipped.
#[derive(Default)]
struct Rows {
    accounts: Vec<DirectoryAccount>,
    lines: Vec<u64>,
    errors: Vec<RowError>,
}

impl Rows {
    fn apply(&mut self, checked: Vec<Checked>) {
        for (line, row) in checked {
            match row {
                Ok(account) => {
                    self.accounts.push(account);
                    self.lines.push(line);
                }
                Err(message) => self.errors.push(RowError { line, message }),
            }
        }
    }

    /// Skips each row that uses a key (email or username) an earlier kept row took, as if
    /// the rows were claimed one by one in file order.
    ///
    /// Claiming row by row in a hash map cost a cache miss per key, 4–5 s of CPU for 10 M
    /// accounts. Instead the keys are sorted, which finds the keys that occur twice;
    /// only the rows holding one of them can be skipped or cause a skip, and claiming just
    /// those, in file order, decides exactly as claiming them all would: a key held by a
    /// single row is never refused to it.
    fn settle_duplicates(mut self) -> (Vec<DirectoryAccount>, Vec<RowError>) {
        let hash =
            |e: &(u64, u64)| &self.accounts[(e.1 >> 8) as usize].keys[(e.1 & 0xff) as usize].0;
        let mut entries: Vec<(u64, u64)> = Vec::with_capacity(self.accounts.len() * 5 / 4);
        for (row, a) in self.accounts.iter().enumerate() {
            for (slot, (h, _)) in a.keys.iter().enumerate() {
                let head = u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes"));
                entries.push((head, (row as u64) << 8 | slot as u64));
            }
        }
        let entries = crate::sort::par_sorted(entries, |a, b| {
            a.0.cmp(&b.0).then_with(|| hash(a).cmp(hash(b)))
        });
        let mut involved: Vec<usize> = entries
            .chunk_by(|a, b| a.0 == b.0 && hash(a) == hash(b))
            .filter(|same| same.len() > 1)
            .flat_map(|same| same.iter().map(|e| (e.1 >> 8) as usize))
            .collect();
        drop(entries);
        if involved.is_empty() {
            return (self.accounts, self.errors);
        }
        involved.sort_unstable();
        involved.dedup();
        let mut taken: HashMap<IdentityHash, u64> = HashMap::new();
        let mut skipped = Vec::new();
        for &row in &involved {
            let line = self.lines[row];
            if let Some(first) = claim(&mut taken, &self.accounts[row].keys, line) {
                skipped.push(row);
                self.errors.push(RowError {
                    line,
                    message: format!("email or username already used on line {first}; row skipped"),
                });
            }
        }
        self.errors.sort_by_key(|e| e.line);
        let mut skipped = skipped.into_iter().peekable();
        let mut row = 0;
        self.accounts.retain(|_| {
            let skip = skipped.next_if_eq(&row).is_some();
            row += 1;
            !skip
        });
        (self.accounts, self.errors)
    }
}

/// Takes the row's keys, or none of them if one is taken (returns by which line). One
/// probe per key: keys are claimed as they come and given back in the rare conflict.
fn claim(
    taken: &mut HashMap<IdentityHash, u64>,
    keys: &[(IdentityHash, IdentityKind)],
    line: u64,
) -> Option<u64> {
    for (i, (h, _)) in keys.iter().enumerate() {
        match taken.entry(*h) {
            Entry::Vacant(v) => {
                v.insert(line);
            }
            Entry::Occupied(o) => {
                let first = *o.get();
                for (h, _) in &keys[..i] {
                    taken.remove(h);
                }
                return Some(first);
            }
        }
    }
    None
}

/// The identity keys of an account whose email and username are already normalised: the
/// email, and the username as a login on the organisation's login hosts if it has any.
/// The importer and the identity index's rebuild both use it, so they agree.
pub fn account_keys(
    norm: &Normalizer,
    email: &str,
    username: Option<&str>,
) -> Vec<(IdentityHash, IdentityKind)> {
    let mut keys = vec![(IdentityHash::of(email), IdentityKind::Email)];
    if let Some(u) = username.filter(|_| norm.has_login_hosts()) {
        keys.push((
            IdentityHash::of(&format!("{LOGIN_KEY_PREFIX}{u}")),
            IdentityKind::Login,
        ));
    }
    keys
}

/// Imports a directory CSV file: replaces the directory in the store and rebuilds the filter.
pub fn import_file(
    cfg: &Config,
    store: &mut Store,
    path: &Path,
) -> Result<ImportReport, ImportError> {
    // `-`: the directory on standard input, so that root can read an export the service
    // user cannot (`runuser -u leakwatch -- leakwatch accounts import - < export.csv`).
    let (name, file, size): (String, Box<dyn Read>, u64) = if path == Path::new("-") {
        ("stdin".into(), Box::new(std::io::stdin().lock()), 0)
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
            path: name.clone(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (name, Box::new(file), size)
    };
    let norm = Normalizer::new(&cfg.organization);
    let started = std::time::Instant::now();
    let mut progress = Progress::of("import progress", size);
    let reading = ProgressRead {
        inner: file,
        read: 0,
        progress: &mut progress,
    };
    let parsed = parse_directory(std::io::BufReader::new(reading), &name, &norm);
    progress.finish();
    let (accounts, skipped) = parsed?;
    tracing::info!(
        rows = accounts.len(),
        ms = started.elapsed().as_millis() as u64,
        "directory parsed"
    );
    let started = std::time::Instant::now();
    let rate = cfg.filter.false_positive_rate;
    // The filter is built from the new keys while the directory is merged and written.
    let (generation, filter) = store.replace_directory_with(&accounts, |keys, generation| {
        let mut filter = AccountFilter::with_capacity(keys.len() as u64, rate, generation)?;
        keys.hashes().for_each(|h| filter.insert(h));
        Ok::<_, FilterError>(filter)
    })?;
    let filter = filter?;
    filter.save(&AccountFilter::path_in(cfg.state_dir()))?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "directory and filter stored"
    );
    let report = ImportReport {
        accounts: accounts.len() as u64,
        keys: accounts.iter().map(|a| a.keys.len() as u64).sum(),
        skipped,
        generation,
        filter_bytes: filter.size_bytes(),
    };
    // Freeing tens of millions of strings takes a second that nobody needs to wait for
    // (and that the process's exit skips).
    std::thread::spawn(move || drop(accounts));
    Ok(report)
}

/// A reader that moves a progress bar by the bytes it reads.
struct ProgressRead<'p, R> {
    inner: R,
    read: u64,
    progress: &'p mut Progress,
}

impl<R: Read> Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.progress.set(self.read);
        Ok(n)
    }
}

/// Builds the filter from the store's hashes and saves it in the state dir.
pub fn rebuild_filter(
    cfg: &Config,
    store: &Store,
    generation: u64,
) -> Result<AccountFilter, ImportError> {
    let n = store.identity_key_count()?;
    let mut filter = AccountFilter::with_capacity(n, cfg.filter.false_positive_rate, generation)?;
    store.for_each_identity_hash(|h| filter.insert(&h))?;
    filter.save(&AccountFilter::path_in(cfg.state_dir()))?;
    Ok(filter)
}

/// Loads the saved filter, rebuilding it (and the identity index before it) when missing
/// or older than the directory.
pub fn load_filter(cfg: &Config, store: &mut Store) -> Result<AccountFilter, ImportError> {
    let generation = store.directory_generation()?;
    let started = std::time::Instant::now();
    if !store.keys_fresh() {
        let norm = Normalizer::new(&cfg.organization);
        let keys = store.rebuild_keys(|email, username| account_keys(&norm, email, username))?;
        tracing::info!(
            keys,
            ms = started.elapsed().as_millis() as u64,
            "identity index rebuilt from the directory"
        );
        return rebuild_filter(cfg, store, generation);
    }
    match AccountFilter::load(&AccountFilter::path_in(cfg.state_dir())) {
        Ok(f) if f.generation() == generation => {
            tracing::info!(
                keys = f.items(),
                bytes = f.size_bytes(),
                k = f.hashes_per_key(),
                design_rate = f.design_rate(),
                ms = started.elapsed().as_millis() as u64,
                "filter loaded"
            );
            Ok(f)
        }
        Ok(f) => {
            tracing::warn!(
                filter_generation = f.generation(),
                directory_generation = generation,
                "filter is stale, rebuilding from the directory"
            );
            rebuild_filter(cfg, store, generation)
        }
        Err(e) => {
            if generation > 0 {
                tracing::warn!(error = %e, "filter unreadable, rebuilding from the directory");
            }
            rebuild_filter(cfg, store, generation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes a directory export gives a last password change in, as unix seconds;
    /// AD's "must change at next logon" and "never" as no date; anything else refused.
    #[test]
    fn password_change_dates_as_directories_export_them() {
        let t = |v: &str| password_changed_at(v);
        assert_eq!(t("2025-11-02T08:00:00Z"), Some(Some(1_762_070_400)));
        assert_eq!(t("2025-11-02T10:00:00+02:00"), Some(Some(1_762_070_400)));
        assert_eq!(t("2025-11-02 08:00:00"), Some(Some(1_762_070_400)));
        assert_eq!(t("2025-11-02 08:00"), Some(Some(1_762_070_400)));
        assert_eq!(t("2025-11-02"), Some(Some(1_762_041_600)));
        // pwdLastSet of 2025-11-02T08:00:00Z, in 100 ns ticks since 1601.
        assert_eq!(t("134065440000000000"), Some(Some(1_762_070_400)));
        assert_eq!(t("0"), Some(None));
        assert_eq!(t("9223372036854775807"), Some(None));
        for bad in ["yesterday", "02/11/2025", "-5", "2025-13-02"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_are_checked_and_reported_by_line() {
        let csv = "\u{feff}Email,username,Name,lang,department\n\
            Jean.Dupont@Agence-Exemple.fr,JDupont,Jean Dupont,fr,RH\n\
            marie@example.net,,Marie,en,\n\
            not-an-address,,X,fr,\n\
            paul@example.net,,Paul,de,\n\
            ,,Nobody,fr,\n\
            jean.dupont+x@agence-exemple.fr,,Dup,fr,\n\
            other@agence-exemple.fr,jdupont,Dup,fr,\n\
            \"quoted, name\"@example.org,,\"Q, N\",EN\n";
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let (accounts, errors) = parse_directory(csv.as_bytes(), "dir.csv", &norm).unwrap();
        let emails: Vec<_> = accounts.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(
            emails,
            ["jean.dupont@agence-exemple.fr", "marie@example.net"]
        );
        assert_eq!(accounts[0].username.as_deref(), Some("jdupont"));
        assert_eq!(accounts[0].keys.len(), 2);
        assert_eq!(accounts[1].lang, Lang::En);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{errors:?}");
        assert!(errors[1].message.contains("lang `de`"));
        assert!(errors[3].message.contains("line 2"));
    }

    #[test]
    fn header_without_email_is_an_error() {
        let norm = Normalizer::from_parts(&["x.example"], &[]);
        let err = parse_directory("mail,name\na@x.example,A\n".as_bytes(), "d.csv", &norm)
            .unwrap_err()
            .to_string();
        assert!(err.contains("d.csv") && err.contains("email"), "{err}");
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use crate::store::KeyIndex;

    fn config(state: &Path) -> Config {
        let text = format!(
            "[organization]\nname = \"T\"\ndomains = [\"agence-exemple.fr\"]\n\
             login_hosts = [\"sso.agence-exemple.fr\"]\n[state]\ndir = {:?}\n\
             [notify]\ntransport = \"file\"\nfrom = \"a@agence-exemple.fr\"\n\
             admins = [\"s@agence-exemple.fr\"]\n",
            state.display().to_string()
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    fn import(cfg: &Config, csv: &str) -> ImportReport {
        let path = cfg.state_dir().with_extension("csv");
        std::fs::write(&path, csv).unwrap();
        let mut store = Store::open(cfg.state_dir()).unwrap();
        import_file(cfg, &mut store, &path).unwrap()
    }

    const CSV: &str = "email,username\njean@agence-exemple.fr,jdupont\nmarie@gmail.example,\n";

    fn login(u: &str) -> IdentityHash {
        IdentityHash::of(&format!("{LOGIN_KEY_PREFIX}{u}"))
    }

    #[test]
    fn a_stale_or_missing_index_is_rebuilt_from_the_accounts_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir.path().join("state"));
        import(&cfg, CSV);
        let index = cfg.state_dir().join("identity-keys.idx");
        let first = std::fs::read(&index).unwrap();
        import(
            &cfg,
            "email,username\njean@agence-exemple.fr,jdupont\nnew@orange.example,\n",
        );
        // As if the process died after the second import's commit, before its index.
        std::fs::write(&index, &first).unwrap();
        let mut store = Store::open(cfg.state_dir()).unwrap();
        assert!(!store.keys_fresh());
        assert!(matches!(
            store.confirm(&IdentityHash::of("new@orange.example")),
            Err(StoreError::KeysStale { .. })
        ));
        let filter = load_filter(&cfg, &mut store).unwrap();
        assert!(store.keys_fresh());
        assert_eq!(filter.generation(), 2);
        let new = IdentityHash::of("new@orange.example");
        assert!(filter.may_contain(&new));
        assert!(store.confirm(&new).unwrap().is_some());
        assert!(store
            .confirm(&IdentityHash::of("marie@gmail.example"))
            .unwrap()
            .is_none());
        let jean = store.confirm(&login("jdupont")).unwrap().unwrap();
        assert_eq!(jean.email, "jean@agence-exemple.fr");
        assert_eq!(KeyIndex::open(&index).unwrap().len(), 3);

        std::fs::remove_file(&index).unwrap();
        let mut store = Store::open(cfg.state_dir()).unwrap();
        load_filter(&cfg, &mut store).unwrap();
        assert_eq!(
            store.confirm(&login("jdupont")).unwrap().unwrap().id,
            jean.id
        );
    }

    #[test]
    fn a_version_3_database_loses_its_key_table_and_keeps_matching() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir.path().join("state"));
        import(&cfg, CSV);
        // Back to schema 3: the keys in a table, no index file.
        std::fs::remove_file(cfg.state_dir().join("identity-keys.idx")).unwrap();
        let conn = rusqlite::Connection::open(cfg.state_dir().join("leakwatch.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE identity_keys (hash BLOB PRIMARY KEY, account_id INTEGER NOT NULL,
             kind TEXT NOT NULL) WITHOUT ROWID;
             ALTER TABLE feed_runs DROP COLUMN entries;
             ALTER TABLE feed_runs DROP COLUMN with_identity;
             ALTER TABLE feed_runs DROP COLUMN malformed;
             ALTER TABLE feed_runs DROP COLUMN no_identity;
             ALTER TABLE findings DROP COLUMN hash_algo;
             ALTER TABLE devices DROP COLUMN same_as;
             ALTER TABLE accounts DROP COLUMN password_changed_at;
             ALTER TABLE findings DROP COLUMN password_current;
             DROP TABLE actions;
             DROP TABLE counters;
             DROP TABLE siem_queue;
             DROP TABLE optout;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        let mut store = Store::open(cfg.state_dir()).unwrap();
        let conn = rusqlite::Connection::open(cfg.state_dir().join("leakwatch.db")).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'identity_keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        load_filter(&cfg, &mut store).unwrap();
        assert!(store
            .confirm(&IdentityHash::of("marie@gmail.example"))
            .unwrap()
            .is_some());
    }

    /// The sort-based settling against claiming every row in order, on rows drawn from
    /// small pools so that duplicates chain: a row refused for its username gives its
    /// email back, and a later row may take it.
    #[test]
    fn duplicates_are_settled_as_by_claiming_every_row_in_order() {
        use rand::{Rng, SeedableRng};
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..50 {
            let mut rows = Rows::default();
            let mut batch = Vec::new();
            for i in 0..rng.random_range(1..300u64) {
                let email = format!("p{}@x.example", rng.random_range(0..60));
                let user = rng
                    .random_bool(0.6)
                    .then(|| format!("l{}", rng.random_range(0..40)));
                let keys = account_keys(&norm, &email, user.as_deref());
                let account = DirectoryAccount {
                    email,
                    username: user,
                    name: None,
                    lang: Lang::Fr,
                    keys,
                    password_changed_at: None,
                };
                batch.push((i + 2, Ok(account)));
            }
            let mut taken = HashMap::new();
            let mut want_kept = Vec::new();
            let mut want_errors = Vec::new();
            for (line, a) in &batch {
                let a = a.as_ref().unwrap();
                match claim(&mut taken, &a.keys, *line) {
                    None => want_kept.push(a.email.clone()),
                    Some(first) => want_errors.push((*line, first)),
                }
            }
            rows.apply(batch);
            let (kept, errors) = rows.settle_duplicates();
            let kept: Vec<String> = kept.into_iter().map(|a| a.email).collect();
            let errors: Vec<(u64, u64)> = errors
                .iter()
                .map(|e| {
                    let first = e.message.split("line ").nth(1).unwrap();
                    (e.line, first.split(';').next().unwrap().parse().unwrap())
                })
                .collect();
            assert_eq!(kept, want_kept, "round {round}");
            assert_eq!(errors, want_errors, "round {round}");
        }
    }

    #[test]
    fn rows_across_batches_keep_their_lines_and_the_first_of_duplicates() {
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let n = BATCH_ROWS * 3 + 17;
        let mut csv = String::from("email,username,name\n");
        for i in 0..n {
            match i % 1000 {
                // A duplicate of the row 500 before it, by email or by username.
                700 => csv.push_str(&format!("u{}@x.example,,dup\n", i - 500)),
                800 => csv.push_str(&format!("z{i}@x.example,login{},dup\n", i - 500)),
                900 => csv.push_str("not-an-address,,bad\n"),
                _ => csv.push_str(&format!("u{i}@x.example,login{i},User {i}\n")),
            }
        }
        let (accounts, errors) = parse_directory(csv.as_bytes(), "d.csv", &norm).unwrap();
        let bad: Vec<(u64, String)> = errors.iter().map(|e| (e.line, e.message.clone())).collect();
        let mut expected = Vec::new();
        for i in 0..n {
            let line = i as u64 + 2;
            match i % 1000 {
                700 | 800 => expected.push((
                    line,
                    format!(
                        "email or username already used on line {}; row skipped",
                        line - 500
                    ),
                )),
                900 => expected.push((line, "`not-an-address` is not an email address".into())),
                _ => {}
            }
        }
        assert_eq!(bad, expected);
        assert_eq!(accounts.len(), n - expected.len());
        let names: Vec<&str> = accounts
            .iter()
            .map(|a| a.name.as_deref().unwrap())
            .collect();
        let in_order: Vec<String> = (0..n)
            .filter(|i| ![700, 800, 900].contains(&(i % 1000)))
            .map(|i| format!("User {i}"))
            .collect();
        assert_eq!(names, in_order);
    }
}
