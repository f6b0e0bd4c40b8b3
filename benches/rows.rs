//! The row readers' cost by stage, on one core and in memory (no disk, no store): the
//! reader alone (rows taken, not settled), then the reader with the identity stage
//! (`settle`, as each `split` worker runs it). Whole-run figures, beside `rg`, come from
//! benches/shapes.sh; this says which stage to work on.
//!
//!     cargo bench --bench rows -- CONFIG STATE_DIR FILE [MIB]
//!
//! CONFIG and STATE_DIR are a configured leakwatch's (the filter is read from STATE_DIR);
//! FILE's first MIB mebibytes (default 256) are read into memory and parsed three times.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use leakwatch::config::Config;
use leakwatch::filter::AccountFilter;
use leakwatch::identity::Normalizer;
use leakwatch::parse::columns::Columns;
use leakwatch::parse::{self, Format, Malformed, Record, Sink};
use leakwatch::settle::{self, Counts, Target};

/// Counts what reaches it; takes rows unsettled when `take_rows`.
#[derive(Default)]
struct Count {
    take_rows: bool,
    records: u64,
    rows: u64,
    counts: Counts,
}

impl Sink for Count {
    fn record(&mut self, _: &Record<'_>) {
        self.records += 1;
    }
    fn malformed(&mut self, _: u64, _: Malformed) {}
    fn row(&mut self, f: &[Option<&[u8]>], _: Columns, _: u64, _: Format) -> Option<u64> {
        self.rows += 1;
        std::hint::black_box(f);
        self.take_rows.then_some(0)
    }
}

impl Target for Count {
    fn settled(&mut self, c: &Counts) {
        self.counts.add(c);
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [config, state, file, rest @ ..] = &args[..] else {
        eprintln!("usage: cargo bench --bench rows -- CONFIG STATE_DIR FILE [MIB]");
        std::process::exit(2);
    };
    let mib: u64 = rest.first().and_then(|m| m.parse().ok()).unwrap_or(256);
    let cfg = Config::load(Path::new(config)).expect("config");
    let norm = Normalizer::new(&cfg.organization);
    let filter = AccountFilter::load(&Path::new(state).join("accounts.bloom")).expect("filter");
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .expect("file")
        .take(mib << 20)
        .read_to_end(&mut bytes)
        .expect("read");
    // Whole lines only: a piece as `split` hands it out.
    if let Some(nl) = memchr::memrchr(b'\n', &bytes) {
        bytes.truncate(nl + 1);
    }
    let layout = parse::open(&bytes[..], file).expect("open").layout;
    let gbs = |secs: f64| bytes.len() as f64 / secs / 1e9;
    println!("{file}: {} MiB, {layout:?}", bytes.len() >> 20);
    for round in 0..3 {
        let mut reader = Count {
            take_rows: true,
            ..Count::default()
        };
        let t = Instant::now();
        parse::parse_layout(layout, &bytes[..], 1 << 20, &mut reader).expect("parse");
        let alone = t.elapsed().as_secs_f64();
        let mut target = Count::default();
        let t = Instant::now();
        let stats = settle::run_inline(&mut target, &norm, &filter, |sink| {
            parse::parse_layout(layout, &bytes[..], 1 << 20, sink)
        })
        .expect("parse");
        let settled = t.elapsed().as_secs_f64();
        println!(
            "round {round}: reader alone {:.3} GB/s ({} rows, {} records); with settle {:.3} GB/s \
             ({} entries, {} identities, {} replayed records)",
            gbs(alone),
            reader.rows,
            reader.records,
            gbs(settled),
            stats.entries,
            target.counts.identities,
            target.records,
        );
    }
}
