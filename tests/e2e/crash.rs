//! `kill -9` at 30 random instants (issue 16's battery): 10 in a directory import, 10 in a
//! big ingest, 10 in a mail flush to a real SMTP server. No finding is lost, no mail is
//! written twice by the file outbox, the state opens after every kill, and over SMTP each
//! message arrives, a second time only if it was the one in flight, under its Message-ID.
//!
//! The instants come from a seed printed by each test (`LEAKWATCH_FAULT_SEED=N` replays).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use leakwatch::synth;

use crate::support::*;

#[test]
fn kill_9_during_ingest_loses_nothing_and_sends_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Big enough that a debug build is still reading when the first kills land.
    let planted = synth::write_bench(&data, 99, 3000, 24 << 20, 400).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &data.join("accounts.csv"));

    let combo = data.join("combo.txt");
    for delay_ms in instants(10, 50, 3000) {
        run_and_kill(
            &cfg,
            &["ingest", "--no-progress", combo.to_str().unwrap()],
            delay_ms,
        );
    }
    let o = ingest(&cfg, &[&data.join("combo.txt")]);
    expect_code(&o, 0);

    let mails = read_outbox(&tmp.path().join("state/outbox"));
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_csv: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        if m.file.ends_with("-user.eml") {
            *per_user.entry(m.to_address()).or_default() += 1;
        } else if m.to_address() == "secops@agence-exemple.fr" {
            let csv = String::from_utf8(m.attachments["forced-resets.csv"].clone()).unwrap();
            for line in csv.lines().skip(1) {
                *in_csv
                    .entry(line.split(',').next().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let want: BTreeMap<String, usize> = planted.iter().map(|e| (e.clone(), 1)).collect();
    assert_eq!(per_user, want, "each planted account mailed exactly once");
    assert_eq!(
        in_csv, want,
        "each planted account in exactly one admin digest"
    );
    // No temporary outbox file left behind as a message.
    let o = run(&cfg, &["mail", "list"]);
    assert_stdout(&o, "0 pending");
}

/// `kill -9` in the middle of a directory import (which writes through a rollback journal,
/// not the WAL) leaves the old directory or the new one, never a mix: every later command
/// opens the state, and once the import is run to its end the new directory matches.
#[test]
fn kill_9_during_accounts_import_leaves_one_directory_or_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    synth::write_bench(&old, 1, 100_000, 1 << 20, 30).unwrap();
    // A debug build takes about 2 s to import it, the last second in its transaction.
    let planted = synth::write_bench(&new, 2, 250_000, 2 << 20, 30).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &old.join("accounts.csv"));
    let state = tmp.path().join("state");

    for delay_ms in instants(10, 50, 2300) {
        let csv = new.join("accounts.csv");
        run_and_kill(
            &cfg,
            &["accounts", "import", csv.to_str().unwrap()],
            delay_ms,
        );
        // The next run opens the state (rolling back a half-written import) and finds one
        // whole directory: the old one's planted accounts, or the new one's.
        let o = ingest(&cfg, &[&old.join("combo.txt"), &new.join("combo.txt")]);
        expect_code(&o, 0);
        let found = finding_emails(&cfg);
        assert!(
            found.len() >= 30 && found.len().is_multiple_of(30),
            "after a kill at {delay_ms} ms: {} accounts found",
            found.len()
        );
        assert!(
            !state.join("leakwatch.db-journal").exists(),
            "a rollback journal is left after a successful run"
        );
    }
    import(&cfg, &new.join("accounts.csv"));
    let o = ingest(&cfg, &[&new.join("combo.txt")]);
    expect_code(&o, 0);
    let found = finding_emails(&cfg);
    let missing: Vec<&String> = planted.iter().filter(|e| !found.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "new directory's accounts not found: {missing:?}"
    );
}

/// `kill -9` ten times during `mail flush` of 3,000 messages to a real SMTP server
/// (aiosmtpd), over several sessions at once: every message is delivered in the end; one
/// is delivered twice only if the kill fell after the server accepted it and before the
/// queue recorded its group (at most a group, `DELIVERY_GROUP`, per kill), and then with
/// the same Message-ID.
#[test]
fn kill_9_during_mail_flush_delivers_everything_and_repeats_at_most_a_group_per_kill() {
    const DELIVERY_GROUP: usize = 64;
    let tmp = tempfile::tempdir().unwrap();
    // Nobody listens yet: everything is queued.
    let (cfg, port, planted, _) = queued_for_smtp(tmp.path(), 98, 10_000, 4 << 20, 3000, 4);
    let server = SmtpServer::start(port, &tmp.path().join("smtp"), &SmtpOptions::default());
    let kills = instants(10, 20, 1500);
    // A kill fell mid-flush when mail went out during its run and some was still queued
    // after it; at least one must have (the rest may find the queue already empty).
    let mut mid_flush = 0;
    for &delay_ms in &kills {
        let before = server.received().len();
        run_and_kill(&cfg, &["mail", "flush"], delay_ms);
        let list = stdout(&run(&cfg, &["mail", "list"]));
        let pending: usize = list
            .split_whitespace()
            .zip(list.split_whitespace().skip(1))
            .find_map(|(n, w)| (w == "pending,").then(|| n.parse().ok()).flatten())
            .unwrap_or_else(|| panic!("no pending count in: {list}"));
        if server.received().len() > before && pending > 0 {
            mid_flush += 1;
        }
    }
    assert!(mid_flush > 0, "no kill fell mid-flush (kills at {kills:?})");
    let before_last = server.received().len();
    let o = run(&cfg, &["mail", "flush"]);
    expect_code(&o, 0);
    eprintln!(
        "{mid_flush} kills mid-flush; delivered before the last flush: {before_last}; {}",
        stdout(&o)
    );
    assert_stdout(&run(&cfg, &["mail", "list"]), "0 pending");

    let twice =
        each_planted_mailed_once(server.received(), &planted, &format!("kills at {kills:?}"));
    assert!(
        twice <= kills.len() * DELIVERY_GROUP,
        "{twice} repeated deliveries for {} kills",
        kills.len()
    );
}

/// `n` instants in [from, to) milliseconds, from `LEAKWATCH_FAULT_SEED` or the clock; the
/// seed is printed so that a failure can be replayed.
fn instants(n: usize, from: u64, to: u64) -> Vec<u64> {
    let seed = std::env::var("LEAKWATCH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill instants: LEAKWATCH_FAULT_SEED={seed}");
    let mut rng = synth::Rng::new(seed);
    let mut v: Vec<u64> = (0..n).map(|_| from + rng.below(to - from)).collect();
    v.sort_unstable();
    v
}

fn finding_emails(cfg: &std::path::Path) -> Vec<String> {
    let o = run(cfg, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut emails: Vec<String> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["email"].as_str().unwrap().to_string())
        .collect();
    emails.sort();
    emails.dedup();
    emails
}

/// Starts leakwatch with `args` and kills it with SIGKILL after `delay_ms`: no destructor,
/// no flush, as after a crash or an OOM kill.
fn run_and_kill(cfg: &std::path::Path, args: &[&str], delay_ms: u64) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
}
