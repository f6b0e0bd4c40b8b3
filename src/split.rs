//! Row readers on several cores: a table or NDJSON dump cut into pieces of whole lines,
//! each piece read and settled by a reader of its own on a worker, the results applied to
//! the store's sink in input order.
//!
//! Why: a reader tokenises on one core, and [`settle`] moves only the identity stage to
//! the second; tokenising a CSV or NDJSON row costs as much as settling it, so two cores
//! did little better than one. Here both cores do both.
//!
//! How it stays exact: a piece starts at a line end. A reader started there is in the
//! state the reader of the whole stream is in at that point if, and only if, the previous
//! piece ended between two entries: a table row or an NDJSON value does not carry state
//! into the next, but a quoted field or a JSON value may span lines. So each reader tells
//! whether its input ended inside an entry ([`ParseStats::ended_inside`]); such a piece is
//! read again joined to the next one (on the applying thread, while the workers go on),
//! and the next piece's own reading is dropped. A join that grows past [`MAX_JOIN`]
//! without ending cleanly (a pretty-printed JSON document, one huge value) ends the
//! splitting: the rest of the stream, from the join's start, is read by one reader, as
//! without this module. So the results are those of the reader alone, line for line: a
//! unit test compares them on every shape with pieces of a few bytes.
//!
//! Which dumps split: tables (their header row is read with the first piece, the rest
//! without one); SQL dumps, whose reader carries state from statement to statement (the
//! columns of each `CREATE TABLE`, a `COPY` block's rows being read: [`sql::State`]):
//! each piece is read from the state after the last piece applied when it was handed
//! out, and read again, on applying, if a piece between changed it; JSON when its first
//! line is one whole object and the next starts another (NDJSON).
//!
//! Memory: `2 × threads` pieces in flight, their results (counts, and only the entries
//! that may be ours), and a join of at most [`MAX_JOIN`] bytes.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::{mpsc, Arc, Mutex};

use crate::filter::AccountFilter;
use crate::identity::Normalizer;
use crate::parse::detect::Layout;
use crate::parse::sql::{self, State};
use crate::parse::{self, Format, Malformed, ParseStats, Record, Sink};
use crate::settle::{self, Counts, Target};

/// Bytes per piece: large enough that handing it over costs nothing next to reading it,
/// small enough to keep memory flat and both workers busy.
pub const PIECE_BYTES: usize = 1 << 20;
/// Bytes a join may grow to before the rest of the stream is read by one reader.
pub const MAX_JOIN: usize = 16 << 20;

/// How a stream is cut.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub norm: &'a Normalizer,
    pub filter: &'a AccountFilter,
    pub max_line: usize,
    /// Workers (two or more; with one, [`settle::run_inline`] is used instead).
    pub threads: usize,
    /// [`PIECE_BYTES`] but in tests.
    pub piece_bytes: usize,
    /// [`MAX_JOIN`] but in tests.
    pub max_join: usize,
}

/// Whether a dump of this layout may be split at all (the first piece then decides for
/// JSON, by [`ndjson`]).
pub fn may_split(layout: Layout) -> bool {
    matches!(layout, Layout::Table(_) | Layout::Json | Layout::Sql)
}

/// Reads `input` (all of it, from its first byte, as [`parse::Opened::input`] gives it)
/// with `layout`'s reader on `setup.threads` workers; see the module's doc. Returns the
/// stats the reader alone would have returned. `Err` for an I/O error of `input`; what
/// was read before it is applied.
pub fn run(
    target: &mut dyn Target,
    setup: &Setup<'_>,
    layout: Layout,
    input: &mut dyn Read,
) -> io::Result<ParseStats> {
    let (stats, reread) = run_counted(target, setup, layout, input)?;
    if reread > 0 {
        tracing::debug!(
            reread,
            "pieces read again (joined, or from a changed state)"
        );
    }
    Ok(stats)
}

/// As [`run`]; also returns how many pieces were read again.
fn run_counted(
    target: &mut dyn Target,
    setup: &Setup<'_>,
    layout: Layout,
    input: &mut dyn Read,
) -> io::Result<(ParseStats, u64)> {
    let mut cutter = Cutter {
        input,
        carry: Vec::new(),
        eof: false,
        piece: setup.piece_bytes.max(1),
        max: setup.max_join.max(setup.piece_bytes),
    };
    let mut first = Vec::new();
    let cut = cutter.next(&mut first)?;
    let splits = match layout {
        Layout::Table(_) | Layout::Sql => true,
        Layout::Json => ndjson(&first),
        _ => false,
    };
    if !splits || cut != Cut::Piece {
        // One piece, or a shape that does not split: the reader alone, as before.
        let mut apply = Apply::new(target);
        apply.rest(setup, layout, &State::default(), first, &mut cutter)?;
        return Ok((apply.stats, 0));
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(setup.threads);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        for _ in 0..setup.threads.max(1) {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || loop {
                let job = job_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(job)) = job else { return };
                if done_tx.send(read_piece(setup, job)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut apply = Apply::new(target);
        let mut free: Vec<Vec<u8>> = Vec::new();
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let (mut seq, mut in_flight) = (0u64, 0usize);
        let mut next = Some((first, cut));
        let mut result = Ok(());
        let mut long = None;
        loop {
            // Hand out the piece read, then read the next while the workers are busy.
            if let Some((buf, cut)) = next.take() {
                let job = Job {
                    seq,
                    layout: if seq == 0 { layout } else { continued(layout) },
                    // The state after the last piece applied: right but where a piece
                    // still being read changes it (a `CREATE TABLE`), checked on applying.
                    state: apply.state.clone(),
                    buf,
                    last: cut == Cut::Last,
                };
                if job_tx.send(job).is_err() {
                    break;
                }
                seq += 1;
                in_flight += 1;
            }
            // Apply whatever is done, in order; wait when enough is in flight.
            loop {
                let done = if in_flight >= 2 * setup.threads.max(1) {
                    done_rx.recv().ok()
                } else {
                    done_rx.try_recv().ok()
                };
                let Some(done) = done else { break };
                in_flight -= 1;
                pending.insert(done.seq, done);
                while let Some(d) = pending.remove(&apply.next_seq) {
                    free.extend(apply.one(setup, d));
                }
            }
            if apply.gave_up || apply.failed.is_some() || result.is_err() {
                break;
            }
            let mut buf = free.pop().unwrap_or_default();
            match cutter.next(&mut buf) {
                Ok(Cut::End) => break,
                Ok(Cut::Long) => {
                    // A line longer than a join: no piece can hold it. The pieces handed
                    // out are applied; the rest is read by one reader from this line.
                    long = Some(buf);
                    break;
                }
                Ok(cut) => next = Some((buf, cut)),
                Err(e) => result = Err(e),
            }
        }
        drop(job_tx);
        // Every piece handed out is applied (or, after giving up, gathered to be read
        // again): findings before an error are not lost.
        while in_flight > 0 {
            let Ok(done) = done_rx.recv() else { break };
            in_flight -= 1;
            pending.insert(done.seq, done);
            while let Some(d) = pending.remove(&apply.next_seq) {
                apply.one(setup, d);
            }
        }
        result?;
        if let Some(e) = apply.failed.take() {
            return Err(e);
        }
        // What is left to one reader: a join that never ended (from its first piece, the
        // pieces after it gathered), then a line too long for a piece, then the stream.
        let join = apply.join.take();
        if join.is_some() || long.is_some() {
            let (layout, state) = match &join {
                Some(j) => (j.layout, j.state.clone()),
                None => (continued(layout), apply.state.clone()),
            };
            let mut bytes = join.map(|j| j.bytes).unwrap_or_default();
            bytes.extend_from_slice(&long.unwrap_or_default());
            apply.rest(setup, layout, &state, bytes, &mut cutter)?;
        }
        Ok((apply.stats, apply.reread))
    })
}

/// NDJSON: the first line holds one object, whole, and the next line starts another.
/// (A guess that only saves work: a wrong one ends in a join, then one reader.)
fn ndjson(first: &[u8]) -> bool {
    let mut lines = first.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
    let (Some(a), Some(b)) = (lines.next(), lines.next()) else {
        return false;
    };
    let a = a.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(a);
    a.len() >= 2 && a.starts_with(b"{") && a.ends_with(b"}") && b.starts_with(b"{")
}

/// The layout of a piece after the first: a table's header is in the first.
fn continued(layout: Layout) -> Layout {
    match layout {
        Layout::Table(mut t) => {
            t.header = false;
            Layout::Table(t)
        }
        other => other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// A piece ending at a line end, with more to come.
    Piece,
    /// The last piece (it may not end at a line end).
    Last,
    /// No more input.
    End,
    /// More than a join's bytes without a line end (see [`Cutter::next`]).
    Long,
}

/// Cuts a stream into pieces of whole lines.
struct Cutter<'i> {
    input: &'i mut dyn Read,
    /// Bytes read past the last piece's end.
    carry: Vec<u8>,
    eof: bool,
    piece: usize,
    max: usize,
}

impl Cutter<'_> {
    /// The next piece, into `buf`. [`Cut::Long`]: `buf` holds more than `max` bytes
    /// without a line end (nothing is left in `carry` then, but what `buf` holds).
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Cut> {
        buf.clear();
        buf.append(&mut self.carry);
        // Bytes of `buf` known to hold no line end (past the piece size).
        let mut searched = buf.len().min(self.piece);
        loop {
            if buf.len() >= self.piece {
                if let Some(nl) = memchr::memrchr(b'\n', &buf[searched..]) {
                    let end = searched + nl + 1;
                    self.carry.extend_from_slice(&buf[end..]);
                    buf.truncate(end);
                    return Ok(Cut::Piece);
                }
                if let Some(nl) = memchr::memrchr(b'\n', &buf[..searched]) {
                    let end = nl + 1;
                    self.carry.extend_from_slice(&buf[end..]);
                    buf.truncate(end);
                    return Ok(Cut::Piece);
                }
                searched = buf.len();
                if buf.len() >= self.max {
                    return Ok(Cut::Long);
                }
            }
            if self.eof {
                return Ok(if buf.is_empty() { Cut::End } else { Cut::Last });
            }
            let start = buf.len();
            // To the piece's size; past it (a line longer), in steps of at most 64 KiB.
            let want = match self.piece.checked_sub(start) {
                Some(n) if n > 0 => n,
                _ => self.piece.min(64 << 10),
            };
            buf.resize(start + want, 0);
            let n = loop {
                match self.input.read(&mut buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            buf.truncate(start + n);
            self.eof = n == 0;
        }
    }
}

struct Job {
    seq: u64,
    layout: Layout,
    /// The reader's state at the piece's start, as guessed when it was handed out.
    state: Arc<State>,
    buf: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    layout: Layout,
    state: Arc<State>,
    buf: Vec<u8>,
    last: bool,
    read: io::Result<Reading>,
}

/// A piece's reading: its stats, what reaches the store, the reader's state after it
/// (`None`: the reader carries none).
type Reading = (ParseStats, Collect, Option<State>);

/// A worker's job: the piece read and settled, what reaches the store gathered.
fn read_piece(setup: &Setup<'_>, job: Job) -> Done {
    let read = read_bytes(setup, job.layout, &job.state, &job.buf);
    Done {
        seq: job.seq,
        layout: job.layout,
        state: job.state,
        buf: job.buf,
        last: job.last,
        read,
    }
}

fn read_bytes(
    setup: &Setup<'_>,
    layout: Layout,
    state: &State,
    bytes: &[u8],
) -> io::Result<Reading> {
    let mut collect = Collect::default();
    let (stats, state) = settle::run_inline(&mut collect, setup.norm, setup.filter, |sink| {
        read_from(layout, state, bytes, setup.max_line, sink)
    })?;
    Ok((stats, collect, state))
}

/// `layout`'s reader over `input`, from `state` for a reader that carries one.
fn read_from(
    layout: Layout,
    state: &State,
    input: impl Read,
    max_line: usize,
    sink: &mut dyn Sink,
) -> io::Result<(ParseStats, Option<State>)> {
    match layout {
        Layout::Sql => {
            let (stats, state) = sql::parse_from(input, max_line, state.clone(), sink)?;
            Ok((stats, Some(state)))
        }
        _ => Ok((parse::parse_layout(layout, input, max_line, sink)?, None)),
    }
}

/// What a piece's reader gave the store's sink, kept to be applied in order.
#[derive(Default)]
struct Collect {
    text: String,
    events: Vec<Event>,
    counts: Counts,
}

enum Event {
    Record {
        login: Range<usize>,
        password: Option<Range<usize>>,
        url: Option<Range<usize>>,
        line: u64,
        format: Format,
    },
    End,
    Malformed(u64, Malformed),
    Section(Range<usize>),
}

impl Collect {
    fn push(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }
}

impl Sink for Collect {
    fn record(&mut self, r: &Record<'_>) {
        let event = Event::Record {
            login: self.push(r.login),
            password: r.password.map(|p| self.push(p)),
            url: r.url.map(|u| self.push(u)),
            line: r.line,
            format: r.format,
        };
        self.events.push(event);
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.events.push(Event::Malformed(line, why));
    }
    fn section(&mut self, name: &str) {
        let name = self.push(name);
        self.events.push(Event::Section(name));
    }
    fn end_entry(&mut self) {
        self.events.push(Event::End);
    }
}

impl Target for Collect {
    fn settled(&mut self, counts: &Counts) {
        self.counts.add(counts);
    }
}

/// Pieces being read again together, from the first whose reading ended inside an entry.
struct Join {
    layout: Layout,
    /// The reader's state at the join's start.
    state: Arc<State>,
    bytes: Vec<u8>,
}

/// Applies pieces in order to the store's sink, lines numbered from the stream's start.
struct Apply<'t> {
    target: &'t mut dyn Target,
    next_seq: u64,
    stats: ParseStats,
    join: Option<Join>,
    /// A join grew past its bound: the rest is read by one reader.
    gave_up: bool,
    /// The reader's state after the pieces applied.
    state: Arc<State>,
    /// Pieces read again: joined to the next, or started from a state guessed wrong.
    reread: u64,
    /// A piece's reader failed: the stream's error; later pieces are not applied.
    failed: Option<io::Error>,
}

impl<'t> Apply<'t> {
    fn new(target: &'t mut dyn Target) -> Self {
        Apply {
            target,
            next_seq: 0,
            stats: ParseStats::default(),
            join: None,
            gave_up: false,
            state: Arc::default(),
            reread: 0,
            failed: None,
        }
    }

    /// Applies the next piece (or joins it); gives its buffer back when done with it.
    fn one(&mut self, setup: &Setup<'_>, d: Done) -> Option<Vec<u8>> {
        self.next_seq += 1;
        if self.failed.is_some() {
            return Some(d.buf);
        }
        if self.gave_up {
            // Gathered by the caller to be read by one reader.
            if let Some(j) = &mut self.join {
                j.bytes.extend_from_slice(&d.buf);
            }
            return None;
        }
        let (layout, state, bytes, read) = match self.join.take() {
            None if Arc::ptr_eq(&d.state, &self.state) || *d.state == *self.state => {
                (d.layout, d.state, d.buf, d.read)
            }
            None => {
                // Read from a state that a piece before it changed: read again.
                self.reread += 1;
                let state = self.state.clone();
                let read = read_bytes(setup, d.layout, &state, &d.buf);
                (d.layout, state, d.buf, read)
            }
            Some(mut j) => {
                // The piece's own reading started inside an entry: dropped, read again.
                self.reread += 1;
                j.bytes.extend_from_slice(&d.buf);
                let read = read_bytes(setup, j.layout, &j.state, &j.bytes);
                (j.layout, j.state, j.bytes, read)
            }
        };
        let (stats, collect, after) = match read {
            Ok(r) => r,
            // Reading bytes in memory fails only if a reader does: the stream fails
            // there, as it would read by one reader, and nothing after it is applied.
            Err(e) => {
                self.failed = Some(e);
                return Some(bytes);
            }
        };
        if stats.ended_inside && !d.last {
            if bytes.len() >= setup.max_join {
                self.gave_up = true;
            }
            self.join = Some(Join {
                layout,
                state,
                bytes,
            });
            return None;
        }
        self.emit(stats, collect);
        if let Some(after) = after {
            if after != *self.state {
                self.state = Arc::new(after);
            }
        }
        Some(bytes)
    }

    fn emit(&mut self, s: ParseStats, c: Collect) {
        let base = self.stats.lines;
        for e in &c.events {
            match e {
                Event::Record {
                    login,
                    password,
                    url,
                    line,
                    format,
                } => self.target.record(&Record {
                    login: &c.text[login.clone()],
                    password: password.clone().map(|p| &c.text[p]),
                    url: url.clone().map(|u| &c.text[u]),
                    line: base + line,
                    format: *format,
                }),
                Event::End => self.target.end_entry(),
                Event::Malformed(line, why) => self.target.malformed(base + line, *why),
                Event::Section(name) => self.target.section(&c.text[name.clone()]),
            }
        }
        self.target.settled(&c.counts);
        self.add(&s);
    }

    /// Adds a reading's stats to the stream's, and tells how far it is.
    fn add(&mut self, s: &ParseStats) {
        let t = &mut self.stats;
        t.lines += s.lines;
        t.entries += s.entries;
        t.malformed += s.malformed;
        t.records += s.records;
        t.bytes += s.bytes;
        t.ended_inside = s.ended_inside;
        self.target.progress(t.bytes);
    }

    /// Reads `head` then the rest of `cutter`'s stream with one reader (the identity
    /// stage on a second core), numbered on from what was applied.
    fn rest(
        &mut self,
        setup: &Setup<'_>,
        layout: Layout,
        state: &State,
        head: Vec<u8>,
        cutter: &mut Cutter<'_>,
    ) -> io::Result<()> {
        let carry = std::mem::take(&mut cutter.carry);
        let input = io::Cursor::new(head)
            .chain(io::Cursor::new(carry))
            .chain(&mut *cutter.input);
        let mut on = Onward {
            target: &mut *self.target,
            lines: self.stats.lines,
            bytes: self.stats.bytes,
        };
        let (s, _) = if setup.threads > 1 {
            settle::run(&mut on, setup.norm, setup.filter, |sink| {
                read_from(layout, state, input, setup.max_line, sink)
            })
        } else {
            settle::run_inline(&mut on, setup.norm, setup.filter, |sink| {
                read_from(layout, state, input, setup.max_line, sink)
            })
        }?;
        self.add(&s);
        Ok(())
    }
}

/// The store's sink for a reader that starts part way: lines and bytes numbered on.
struct Onward<'t> {
    target: &'t mut dyn Target,
    lines: u64,
    bytes: u64,
}

impl Sink for Onward<'_> {
    fn record(&mut self, r: &Record<'_>) {
        self.target.record(&Record {
            login: r.login,
            password: r.password,
            url: r.url,
            line: self.lines + r.line,
            format: r.format,
        });
    }
    fn malformed(&mut self, line: u64, why: Malformed) {
        self.target.malformed(self.lines + line, why);
    }
    fn progress(&mut self, bytes_read: u64) {
        self.target.progress(self.bytes + bytes_read);
    }
    fn section(&mut self, name: &str) {
        self.target.section(name);
    }
    fn end_entry(&mut self) {
        self.target.end_entry();
    }
}

impl Target for Onward<'_> {
    fn settled(&mut self, counts: &Counts) {
        self.target.settled(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityHash;

    /// What the store's sink is handed, as `Ingest` counts it.
    #[derive(Default)]
    struct Seen {
        c: Counts,
        /// Every record handed over, with its line and password.
        records: Vec<(String, Option<String>, u64)>,
        malformed: Vec<(u64, Malformed)>,
        ends: u64,
        progress: u64,
    }

    impl Sink for Seen {
        fn record(&mut self, r: &Record<'_>) {
            self.records
                .push((r.login.to_string(), r.password.map(str::to_string), r.line));
        }
        fn malformed(&mut self, line: u64, why: Malformed) {
            self.malformed.push((line, why));
        }
        fn end_entry(&mut self) {
            self.ends += 1;
        }
        fn progress(&mut self, b: u64) {
            assert!(b >= self.progress, "progress goes forward");
            self.progress = b;
        }
    }

    impl Target for Seen {
        fn settled(&mut self, c: &Counts) {
            self.c.add(c);
        }
    }

    fn read_alone(setup: &Setup<'_>, layout: Layout, bytes: &[u8]) -> (ParseStats, Seen) {
        let mut seen = Seen::default();
        let stats = settle::run_inline(&mut seen, setup.norm, setup.filter, |sink| {
            parse::parse_layout(layout, bytes, setup.max_line, sink)
        })
        .unwrap();
        (stats, seen)
    }

    fn read_split(setup: &Setup<'_>, layout: Layout, bytes: &[u8]) -> (ParseStats, Seen, u64) {
        let mut seen = Seen::default();
        let mut input = bytes;
        let (stats, reread) = run_counted(&mut seen, setup, layout, &mut input).unwrap();
        (stats, seen, reread)
    }

    fn same(alone: &(ParseStats, Seen), split: &(ParseStats, Seen, u64), what: &str) {
        let (a, b) = (&alone.0, &split.0);
        assert_eq!(
            (a.lines, a.entries, a.malformed, a.records, a.bytes),
            (b.lines, b.entries, b.malformed, b.records, b.bytes),
            "{what}: stats"
        );
        assert_eq!(alone.1.c, split.1.c, "{what}: settled counts");
        assert_eq!(alone.1.records, split.1.records, "{what}: records replayed");
        assert_eq!(alone.1.malformed, split.1.malformed, "{what}: malformed");
        assert_eq!(alone.1.ends, split.1.ends, "{what}: entries ended");
        assert_eq!(split.1.progress, b.bytes, "{what}: progress to the end");
    }

    /// Every shape's dump (the hostile ones too), and tables and NDJSON written to cut
    /// badly (quoted fields across lines, pretty-printed values, lines longer than a
    /// join), read by the reader alone and in pieces of many sizes: the same counts,
    /// records, lines and malformed reports.
    #[test]
    fn pieces_read_as_the_reader_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for hostile in [false, true] {
            let dir = tmp.path().join(format!("h{hostile}"));
            let sc = crate::synth::shapes::write_shapes(&dir, 7, 60, hostile).unwrap();
            for f in &sc.files {
                files.push((f.path.clone(), std::fs::read(dir.join(&f.path)).unwrap()));
            }
        }
        let mut quoted = b"id,email,password,note\n".to_vec();
        let mut nd = Vec::new();
        for i in 0..400 {
            let note = match i % 7 {
                0 => "\"a note\nacross \"\"two\"\" lines\"".to_string(),
                3 => "\"never closed".to_string(),
                _ => format!("plain {i}"),
            };
            quoted.extend(format!("{i},u{i}@agence-exemple.fr,pw{i},{note}\n").bytes());
            let obj = if i % 9 == 4 {
                format!("{{\"email\":\n \"u{i}@agence-exemple.fr\",\n \"password\": \"p{i}\"}}\n")
            } else if i % 11 == 5 {
                format!(
                    "{{\"email\": \"u{i}@agence-exemple.fr\", \"x\": \"{}\"}}\n",
                    "y".repeat(3000)
                )
            } else {
                format!("{{\"email\": \"u{i}@agence-exemple.fr\", \"password\": \"p{i}\"}}\n")
            };
            nd.extend(obj.bytes());
        }
        // SQL whose pieces need the state before them: tables created part way, rows by
        // their `CREATE TABLE`'s columns, `COPY` blocks across pieces, phpMyAdmin's
        // statements over many lines, a comment never closed.
        let mut dump = Vec::new();
        for t in 0..6 {
            dump.extend(
                format!("CREATE TABLE t{t} (id int, nom text, courriel text, mdp text);\n").bytes(),
            );
            dump.extend(format!("INSERT INTO t{t} VALUES\n").bytes());
            for i in 0..40 {
                let end = if i == 39 { ";" } else { "," };
                let u = t * 40 + i;
                dump.extend(format!("({u},'n{u}','u{u}@agence-exemple.fr','p{u}'){end}\n").bytes());
            }
            dump.extend(format!("COPY t{t} FROM stdin;\n").bytes());
            for i in 0..30 {
                let u = (t * 40 + i + 7) % 400;
                dump.extend(format!("{u}\tn\tu{u}@agence-exemple.fr\tq{u}\n").bytes());
            }
            dump.extend(b"\\.\n-- dumped by admin@agence-exemple.fr\n");
        }
        dump.extend(b"/* a comment never closed, u5@agence-exemple.fr\n");
        files.push(("quoted.csv".into(), quoted));
        files.push(("pretty.ndjson".into(), nd));
        files.push(("states.sql".into(), dump));
        let mut reread = 0;
        let planted: Vec<IdentityHash> = (0..400)
            .map(|i| IdentityHash::of(&format!("u{i}@agence-exemple.fr")))
            .collect();
        let norm = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"]);
        let filter = AccountFilter::build(planted.into_iter(), 1e-6, 0).unwrap();
        let mut split_shapes = 0;
        for (name, bytes) in &files {
            let opened = parse::open(&bytes[..], name).unwrap();
            let layout = opened.layout;
            if !may_split(layout) {
                continue;
            }
            split_shapes += 1;
            let mut decoded = Vec::new();
            { opened }.input.read_to_end(&mut decoded).unwrap();
            for (piece, max_join) in [(16, 64), (97, 4096), (1000, 2000), (4096, 1 << 20)] {
                let setup = Setup {
                    norm: &norm,
                    filter: &filter,
                    max_line: 1024,
                    threads: 2,
                    piece_bytes: piece,
                    max_join,
                };
                let alone = read_alone(&setup, layout, &decoded);
                let split = read_split(&setup, layout, &decoded);
                same(&alone, &split, &format!("{name} in pieces of {piece}"));
                if name.as_str() == "states.sql" && piece < 4096 {
                    assert!(
                        split.2 > 0,
                        "{name} in pieces of {piece}: nothing read again"
                    );
                }
                reread += split.2;
            }
        }
        assert!(split_shapes >= 9, "{split_shapes} dumps split");
        assert!(reread > 0);
    }
}
