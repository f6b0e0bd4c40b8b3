//! leakwatch finds an organisation's accounts in credential dumps (stealer logs, combo lists,
//! leak-site tables) and tells the people concerned before the phishing starts.
//!
//! The crate is a pipeline, and the module tree follows it; data flows one way:
//!
//! ```text
//! feed      (drop directory, HTTP(S)/SOCKS5/Tor, range API, HIBP; fetched on schedules)
//!   → source (files, directories, zip entries, download spools as byte streams)
//!   → parse     (decoded streams → `Record`s pushed into a `Sink`; a row reader's
//!                identity stage on a second core: `settle`)
//!   → identity  (normalise email / login+host → SHA-1 `IdentityHash` and its `HashPrefix`)
//!   → filter    (Bloom filter of the organisation's hashes; every hit is confirmed exactly by the store)
//!   → store     (SQLite: accounts, findings deduplicated across files and runs, the mail queue)
//!   → notify    (user mails and the admins' digest, composed from the store, delivered from a queue)
//! ```
//!
//! `parse`, `identity` and `filter` do no I/O of their own: they work on byte slices so that
//! they can be tested and benchmarked alone. `ingest` and `pipeline` wire the stages together
//! for one run; `daemon` drives the feeds on their schedules (`daemon::plan` decides when,
//! with the time passed in; `daemon::job` runs one feed through the pipeline).
//!
//! Privacy rules that every module keeps: a leaked password is never written anywhere (a
//! finding keeps a keyed fingerprint and, if configured, a masked hint); identities read from
//! dumps reach disk only as hashes, prefixes and masked hints; no log line carries a raw dump
//! line, a password or a secret.

pub mod accounts;
pub mod act;
pub mod app;
pub mod bytes;
pub mod cancel;
pub mod config;
pub mod daemon;
pub mod feed;
pub mod filter;
pub mod fingerprint;
pub mod fuzz;
pub mod identity;
pub mod ingest;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod progress;
pub mod scan;
pub mod schedule;
pub mod secret;
pub mod settle;
pub mod shown;
pub mod siem;
pub mod sort;
pub mod source;
pub mod split;
pub mod store;
pub mod synth;
pub mod timefmt;
