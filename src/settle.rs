//! The row readers' identity stage on a second core: between `parse` and `store`.
//!
//! A SQL, table or JSON dump is read by one reader on one thread; the combo fast path's
//! way of using both cores (chunks of whole lines) does not apply to a statement of many
//! megabytes or a quoted field across lines. What does split is the work after the
//! reader: decoding a row's fields, sorting them into login, password and the grep floor,
//! building each key, hashing it, testing the filter. So the reader ships its rows and
//! records, raw, in batches to a worker ([`Pipelined`]); the worker settles every entry
//! whose identities are certainly not ours and sends back only the counts, and the
//! entries that may be ours (or that the fast key builder leaves to the normaliser), to
//! be replayed through the store's sink in input order. The results are those of the
//! reader alone, line for line: an end-to-end test compares them with `--reference`.
//! With one core ([`run_inline`]) the same batches are settled on the reader's thread:
//! tested one at a time, each filter lookup waited for its cache line.

use std::ops::Range;
use std::sync::mpsc;

use crate::filter::AccountFilter;
use crate::identity::block::{hash_blocks, Fast, KeyBlocks};
use crate::identity::IdentityHash;
use crate::parse::columns::{self, Columns};
use crate::parse::shape::plain_at;
use crate::parse::{decode, Format, Malformed, Record, Sink};

/// Events per batch before it is shipped: large enough to cost nothing to hand over,
/// small enough to keep both cores busy and memory flat.
const BATCH_EVENTS: usize = 4096;
/// Bytes per batch before it is shipped.
const BATCH_BYTES: usize = 1 << 20;

/// Filter blocks asked for ahead of their test (about the loads a core keeps in flight).
const PREFETCH_AHEAD: usize = 16;

/// An empty vector of references, its allocation kept for references of another life.
fn reuse<'a>(mut v: Vec<Option<&str>>) -> Vec<Option<&'a str>> {
    v.clear();
    v.into_iter().map(|_| None).collect()
}

/// What the worker settled of a batch, besides the entries it sends back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub identities: u64,
    pub with_identity: u64,
    pub no_identity: u64,
    /// Records made from rows (the readers count their own records, not these).
    pub records: u64,
}

impl Counts {
    pub fn add(&mut self, c: &Counts) {
        self.identities += c.identities;
        self.with_identity += c.with_identity;
        self.no_identity += c.no_identity;
        self.records += c.records;
    }
}

/// Where settled batches go: the store's sink, with the counts of what it never sees.
pub trait Target: Sink {
    fn settled(&mut self, counts: &Counts);
}

enum Event {
    Row {
        fields: Range<usize>,
        cols: Columns,
        line: u64,
        format: Format,
        /// The login column is the row's only field with an `@` ([`lone_login`]).
        lone: bool,
    },
    Record(Pending),
    End,
}

struct Pending {
    login: Range<usize>,
    password: Option<Range<usize>>,
    url: Option<Range<usize>>,
    line: u64,
    format: Format,
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    fields: Vec<Option<Range<usize>>>,
    events: Vec<Event>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
        self.events.clear();
    }
}

/// `settle`'s working buffers, kept from batch to batch by whoever runs it.
#[derive(Default)]
struct Work {
    entries: Vec<Entry>,
    fast: Vec<Fast>,
    blocks: Vec<[u8; 64]>,
    hashes: Vec<IdentityHash>,
}

/// A settled batch: counts, and the entries to replay (their records, in order).
#[derive(Default)]
struct Settled {
    counts: Counts,
    text: String,
    records: Vec<Pending>,
    /// Ranges of `records`, one per entry to replay.
    entries: Vec<Range<usize>>,
}

/// The reader's side: a sink that ships batches to the worker and replays its answers.
pub struct Pipelined<'t> {
    target: &'t mut dyn Target,
    batch: Batch,
    to_worker: Option<mpsc::SyncSender<Batch>>,
    from_worker: mpsc::Receiver<Settled>,
    in_flight: usize,
    /// With one core: the batches are settled here, by the same function.
    inline: Option<(KeyBlocks<'t>, &'t AccountFilter)>,
    /// The working buffers of `settle` when it runs here.
    work: Work,
}

/// As [`run`] with one core: the batches are settled on the reader's thread, between
/// reads (still hashed together and with the filter's blocks asked for ahead).
pub fn run_inline<'t, T>(
    target: &'t mut dyn Target,
    norm: &'t crate::identity::Normalizer,
    filter: &'t AccountFilter,
    read: impl FnOnce(&mut Pipelined<'t>) -> T,
) -> T {
    let (_, from_worker) = mpsc::channel::<Settled>();
    let mut p = Pipelined {
        target,
        batch: Batch::default(),
        to_worker: None,
        from_worker,
        in_flight: 0,
        inline: Some((KeyBlocks::new(norm), filter)),
        work: Work::default(),
    };
    let out = read(&mut p);
    p.finish();
    out
}

/// Runs `read` with a [`Pipelined`] sink over `target`, the worker on a second thread.
/// Returns what `read` returned, once every batch is settled and replayed.
pub fn run<T>(
    target: &mut dyn Target,
    norm: &crate::identity::Normalizer,
    filter: &AccountFilter,
    read: impl FnOnce(&mut Pipelined<'_>) -> T,
) -> T {
    let (to_worker, batches) = mpsc::sync_channel::<Batch>(2);
    let (results, from_worker) = mpsc::channel::<Settled>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let keys = KeyBlocks::new(norm);
            let mut work = Work::default();
            for batch in batches {
                if results
                    .send(settle(&batch, &keys, filter, &mut work))
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut p = Pipelined {
            target,
            batch: Batch::default(),
            to_worker: Some(to_worker),
            from_worker,
            in_flight: 0,
            inline: None,
            work: Work::default(),
        };
        let out = read(&mut p);
        p.finish();
        out
    })
}

impl Pipelined<'_> {
    fn push(&mut self, s: &[u8]) -> Range<usize> {
        let start = self.batch.bytes.len();
        self.batch.bytes.extend_from_slice(s);
        start..self.batch.bytes.len()
    }

    /// Ships the batch (at an entry's end) and applies what came back meanwhile.
    fn ship(&mut self) {
        if let Some((keys, filter)) = &self.inline {
            // Settled here: the batch's buffers are kept for the next (allocated anew,
            // they were page faults and copies as they grew, batch after batch).
            let settled = settle(&self.batch, keys, filter, &mut self.work);
            self.batch.clear();
            self.apply(settled);
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if let Some(tx) = &self.to_worker {
            if tx.send(batch).is_ok() {
                self.in_flight += 1;
            }
        }
        while let Ok(settled) = self.from_worker.try_recv() {
            self.in_flight -= 1;
            self.apply(settled);
        }
    }

    fn apply(&mut self, s: Settled) {
        self.target.settled(&s.counts);
        for entry in s.entries {
            for r in &s.records[entry] {
                self.target.record(&Record {
                    login: &s.text[r.login.clone()],
                    password: r.password.clone().map(|p| &s.text[p]),
                    url: r.url.clone().map(|u| &s.text[u]),
                    line: r.line,
                    format: r.format,
                });
            }
            self.target.end_entry();
        }
    }

    /// Ships what is left, waits for every batch and applies it.
    fn finish(&mut self) {
        if !self.batch.events.is_empty() {
            if !matches!(self.batch.events.last(), Some(Event::End)) {
                // Records the reader never ended an entry for: settled as one entry.
                self.batch.events.push(Event::End);
            }
            self.ship();
        }
        self.to_worker = None;
        while self.in_flight > 0 {
            let Ok(settled) = self.from_worker.recv() else {
                break;
            };
            self.in_flight -= 1;
            self.apply(settled);
        }
    }
}

impl Sink for Pipelined<'_> {
    fn record(&mut self, r: &Record<'_>) {
        let pending = Pending {
            login: self.push(r.login.as_bytes()),
            password: r.password.map(|p| self.push(p.as_bytes())),
            url: r.url.map(|u| self.push(u.as_bytes())),
            line: r.line,
            format: r.format,
        };
        self.batch.events.push(Event::Record(pending));
    }

    fn row(
        &mut self,
        fields: &[Option<&[u8]>],
        cols: Columns,
        line: u64,
        format: Format,
    ) -> Option<u64> {
        let start = self.batch.fields.len();
        let mut ats = 0;
        let mut at_login = false;
        for (i, f) in fields.iter().enumerate() {
            // Only what the worker will read is copied (as `columns::needed` says).
            let kept = f
                .filter(|f| {
                    let at = columns::has_at(f);
                    ats += at as usize;
                    at_login |= at && cols.email == Some(i);
                    at || cols.password == Some(i)
                })
                .map(|f| self.push(f));
            self.batch.fields.push(kept);
        }
        let end = self.batch.fields.len();
        self.batch.events.push(Event::Row {
            fields: start..end,
            cols,
            line,
            format,
            lone: ats == 1 && at_login,
        });
        Some(0)
    }

    fn end_entry(&mut self) {
        self.batch.events.push(Event::End);
        if self.batch.events.len() >= BATCH_EVENTS || self.batch.bytes.len() >= BATCH_BYTES {
            self.ship();
        }
    }

    fn malformed(&mut self, line: u64, why: Malformed) {
        self.target.malformed(line, why);
    }

    fn progress(&mut self, bytes_read: u64) {
        self.target.progress(bytes_read);
    }

    fn section(&mut self, name: &str) {
        self.target.section(name);
    }
}

/// Gathers the records of a batch's rows and records, entry by entry.
struct Gather<'s> {
    out: &'s mut Settled,
}

impl Sink for Gather<'_> {
    fn record(&mut self, r: &Record<'_>) {
        let text = &mut self.out.text;
        let mut push = |s: &str| {
            let start = text.len();
            text.push_str(s);
            start..text.len()
        };
        let pending = Pending {
            login: push(r.login),
            password: r.password.map(&mut push),
            url: r.url.map(&mut push),
            line: r.line,
            format: r.format,
        };
        self.out.records.push(pending);
    }
    fn malformed(&mut self, _line: u64, _why: Malformed) {}
}

/// The login of a row whose only field with an `@` is its login column, when that field
/// is plain bytes around one `@` (`shape::plain_at`): what [`columns::emit_row`] would
/// make of the row is then one record, that login, and the floor finds nothing in the
/// other fields. Its key is built straight from the field, with no record made unless
/// the entry may be ours (about half of the worker's time on a table or SQL dump).
fn lone_login<'b>(
    batch: &'b Batch,
    fields: &Range<usize>,
    cols: Columns,
) -> Option<(&'b str, usize)> {
    let range = batch.fields[fields.clone()].get(cols.email?)?.clone()?;
    let login = std::str::from_utf8(&batch.bytes[range]).ok()?;
    plain_at(login).map(|at| (login, at))
}

/// Where one entry's parts are in a batch and in what was settled of it.
struct Entry {
    /// Its events (without the `End`).
    events: Range<usize>,
    /// Its records made so far (not those of its lone-login rows).
    records: Range<usize>,
    /// Its keys, in `fast`.
    keys: Range<usize>,
    /// It has a lone-login row or a record with a plain login, whose records are made
    /// only if it is replayed.
    lazy: bool,
}

/// Buffers reused from row to row by [`gather`].
#[derive(Default)]
struct Scratch<'b> {
    texts: Vec<Option<std::borrow::Cow<'b, str>>>,
    refs: Vec<Option<&'static str>>,
}

/// Makes the records of one event (a row or a record) into `out`; returns those made
/// from a row. Two allocations a row were a tenth of the worker's time: hence `scratch`.
fn gather<'b>(
    batch: &'b Batch,
    event: &Event,
    scratch: &mut Scratch<'b>,
    out: &mut Settled,
) -> u64 {
    match event {
        Event::Row {
            fields,
            cols,
            line,
            format,
            ..
        } => {
            let texts = &mut scratch.texts;
            texts.clear();
            texts.extend(
                batch.fields[fields.clone()]
                    .iter()
                    .map(|f| f.clone().map(|r| decode::line_text(&batch.bytes[r]))),
            );
            let mut row = reuse(std::mem::take(&mut scratch.refs));
            row.extend(texts.iter().map(|t| t.as_deref()));
            let n = columns::emit_row(&row, *cols, *line, *format, &mut Gather { out });
            scratch.refs = reuse(row);
            n
        }
        Event::Record(r) => {
            let text = |r: &Range<usize>| decode::line_text(&batch.bytes[r.clone()]);
            let (login, password, url) = (
                text(&r.login),
                r.password.as_ref().map(text),
                r.url.as_ref().map(text),
            );
            Gather { out }.record(&Record {
                login: &login,
                password: password.as_deref(),
                url: url.as_deref(),
                line: r.line,
                format: r.format,
            });
            0
        }
        Event::End => 0,
    }
}

/// The worker's job: every entry's keys built, hashed together and tested; entries with
/// a key that may be ours, or one the fast builder defers, are sent back with their
/// records.
fn settle(batch: &Batch, keys: &KeyBlocks<'_>, filter: &AccountFilter, work: &mut Work) -> Settled {
    let mut out = Settled::default();
    // Pass 1: each entry's keys (and records, but for lone-login rows).
    let Work {
        entries,
        fast,
        blocks,
        hashes,
    } = work;
    entries.clear();
    fast.clear();
    blocks.clear();
    let mut scratch = Scratch::default();
    let mut entry = Entry {
        events: 0..0,
        records: 0..0,
        keys: 0..0,
        lazy: false,
    };
    for (i, event) in batch.events.iter().enumerate() {
        if let Event::End = event {
            entry.events.end = i;
            entry.records.end = out.records.len();
            entry.keys.end = fast.len();
            let next = Entry {
                events: i + 1..i + 1,
                records: out.records.len()..out.records.len(),
                keys: fast.len()..fast.len(),
                lazy: false,
            };
            entries.push(std::mem::replace(&mut entry, next));
            continue;
        }
        let mut block = [0u8; 64];
        if let Event::Row {
            fields,
            cols,
            lone: true,
            ..
        } = event
        {
            if let Some((login, at)) = lone_login(batch, fields, *cols) {
                // As `keys.key` does with a plain login (nothing to trim from it).
                let f = keys.simple_email(login, at, login.as_bytes(), &mut block);
                if let Fast::Key(_) = f {
                    blocks.push(block);
                }
                fast.push(f);
                out.counts.records += 1;
                entry.lazy = true;
                continue;
            }
        }
        if let Event::Record(Pending {
            login, url: None, ..
        }) = event
        {
            // A record whose login is plain: its key as `keys.key` would build it.
            let login = std::str::from_utf8(&batch.bytes[login.clone()]).ok();
            if let Some((login, at)) = login.and_then(|l| plain_at(l).map(|at| (l, at))) {
                let f = keys.simple_email(login, at, login.as_bytes(), &mut block);
                if let Fast::Key(_) = f {
                    blocks.push(block);
                }
                fast.push(f);
                entry.lazy = true;
                continue;
            }
        }
        let from = out.records.len();
        out.counts.records += gather(batch, event, &mut scratch, &mut out);
        for r in &out.records[from..] {
            let url = r.url.clone().map(|u| &out.text[u]);
            let f = keys.key(&out.text[r.login.clone()], url, &mut block);
            if let Fast::Key(_) = f {
                blocks.push(block);
            }
            fast.push(f);
        }
    }
    // Pass 2: every key hashed together.
    hashes.clear();
    hashes.resize(blocks.len(), IdentityHash([0; 20]));
    hash_blocks(blocks, hashes);
    // Pass 3: each entry settled here, or sent back whole. Each hash's filter block is
    // asked for a few hashes ahead of its test: asked for all at once, most of a batch's
    // requests were dropped, and waiting on the filter's loads was a quarter of the time.
    for h in hashes.iter().take(PREFETCH_AHEAD) {
        filter.prefetch(h);
    }
    let mut next_hash = 0;
    let mut replay = Vec::new();
    for entry in entries.drain(..) {
        let mut identities = 0;
        let mut unsettled = false;
        for f in &fast[entry.keys.clone()] {
            match f {
                Fast::NoKey => {}
                Fast::Defer => unsettled = true,
                Fast::Key(_) => {
                    identities += 1;
                    if let Some(h) = hashes.get(next_hash + PREFETCH_AHEAD) {
                        filter.prefetch(h);
                    }
                    unsettled |= filter.may_contain(&hashes[next_hash]);
                    next_hash += 1;
                }
            }
        }
        if !unsettled {
            out.counts.identities += identities;
            if identities > 0 {
                out.counts.with_identity += 1;
            } else {
                out.counts.no_identity += 1;
            }
        } else if entry.lazy {
            // Its records made now, all of them in order (rows already counted).
            let from = out.records.len();
            for event in &batch.events[entry.events] {
                gather(batch, event, &mut scratch, &mut out);
            }
            replay.push(from..out.records.len());
        } else {
            replay.push(entry.records);
        }
    }
    out.entries = replay;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Normalizer;
    use crate::parse::{self, detect::Layout};

    /// Counts as `Ingest` would: identities, entries with and without, and the records it
    /// was handed (the ones that may be ours, replayed).
    #[derive(Default)]
    struct Count {
        norm: Option<Normalizer>,
        key: String,
        has: bool,
        c: Counts,
        seen: Vec<(String, Option<String>, u64)>,
    }

    impl Sink for Count {
        fn record(&mut self, r: &Record<'_>) {
            let norm = self.norm.as_ref().unwrap();
            if norm.key_of(r.login, r.url, &mut self.key).is_some() {
                self.c.identities += 1;
                self.has = true;
                self.seen
                    .push((self.key.clone(), r.password.map(str::to_string), r.line));
            }
        }
        fn malformed(&mut self, _: u64, _: Malformed) {}
        fn end_entry(&mut self) {
            if std::mem::take(&mut self.has) {
                self.c.with_identity += 1;
            } else {
                self.c.no_identity += 1;
            }
        }
    }

    impl Target for Count {
        fn settled(&mut self, c: &Counts) {
            self.c.identities += c.identities;
            self.c.with_identity += c.with_identity;
            self.c.no_identity += c.no_identity;
            self.c.records += c.records;
        }
    }

    /// Every shape's dump read alone and through the worker: the same identities and
    /// entries; what may be ours (here: every planted account) reaches the target with its
    /// password and line.
    #[test]
    fn the_worker_settles_as_the_reader_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let sc = crate::synth::shapes::write_shapes(tmp.path(), 5, 40, false).unwrap();
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let planted: Vec<IdentityHash> = sc
            .files
            .iter()
            .flat_map(|f| &f.planted)
            .map(|p| IdentityHash::of(&p.email.to_lowercase()))
            .collect();
        let filter = AccountFilter::build(planted.clone().into_iter(), 1e-6, 0).unwrap();
        let mut shapes = 0;
        for f in &sc.files {
            let bytes = std::fs::read(tmp.path().join(&f.path)).unwrap();
            let opened = parse::open(&bytes[..], &f.path).unwrap();
            let layout = opened.layout;
            if !matches!(layout, Layout::Sql | Layout::Json | Layout::Table(_)) {
                continue;
            }
            shapes += 1;
            let mut alone = Count {
                norm: Some(norm.clone()),
                ..Count::default()
            };
            let a = parse::parse_layout(layout, opened.input, 1024, &mut alone).unwrap();
            let mut piped = Count {
                norm: Some(norm.clone()),
                ..Count::default()
            };
            let opened = parse::open(&bytes[..], &f.path).unwrap();
            let p = run(&mut piped, &norm, &filter, |sink| {
                parse::parse_layout(layout, opened.input, 1024, sink).unwrap()
            });
            // And on one core, the same.
            let mut inline = Count {
                norm: Some(norm.clone()),
                ..Count::default()
            };
            let opened = parse::open(&bytes[..], &f.path).unwrap();
            let i = run_inline(&mut inline, &norm, &filter, |sink| {
                parse::parse_layout(layout, opened.input, 1024, sink).unwrap()
            });
            assert_eq!(a.records, i.records + inline.c.records, "{}", f.path);
            assert_eq!(alone.c.identities, inline.c.identities, "{}", f.path);
            assert_eq!(alone.c.with_identity, inline.c.with_identity, "{}", f.path);
            assert_eq!(alone.c.no_identity, inline.c.no_identity, "{}", f.path);
            for p in &f.planted {
                let key = p.email.to_lowercase();
                let want: Vec<_> = alone.seen.iter().filter(|s| s.0 == key).collect();
                let got: Vec<_> = inline.seen.iter().filter(|s| s.0 == key).collect();
                assert_eq!(want, got, "{} on one core", f.path);
            }
            assert_eq!(a.entries, p.entries, "{}", f.path);
            assert_eq!(a.records, p.records + piped.c.records, "{}", f.path);
            assert_eq!(alone.c.identities, piped.c.identities, "{}", f.path);
            assert_eq!(alone.c.with_identity, piped.c.with_identity, "{}", f.path);
            assert_eq!(alone.c.no_identity, piped.c.no_identity, "{}", f.path);
            for p in &f.planted {
                let key = p.email.to_lowercase();
                let want: Vec<_> = alone.seen.iter().filter(|s| s.0 == key).collect();
                let got: Vec<_> = piped.seen.iter().filter(|s| s.0 == key).collect();
                assert!(!got.is_empty(), "{}: {key} not replayed", f.path);
                assert_eq!(want, got, "{}", f.path);
            }
        }
        assert!(shapes >= 8, "{shapes} row-reader dumps");
    }
}
