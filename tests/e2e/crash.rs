//! `kill -9` at arbitrary points of an ingest loses no finding and sends no mail twice.

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

    for delay_ms in [150, 500, 1200, 2500] {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["ingest", "--no-progress"])
            .arg(data.join("combo.txt"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL: no destructor, no flush, as after a crash or an OOM kill.
        let _ = child.kill();
        let _ = child.wait();
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
