//! The fault battery's end-to-end part (issue 16): SMTP peers that break the protocol,
//! state files damaged before a start. Each fault must end in a clear error or a retry,
//! never a panic, a hang, a lost finding or a message sent twice.
//!
//! Elsewhere in the battery: `crash.rs` (`kill -9` at random instants), `feeds.rs`
//! (`broken_http_peers_…`, `a_trickling_server_…`), `diskfull.rs` (a full filesystem).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use leakwatch::synth;

use crate::support::*;

/// tests/support/smtp_faults.py on loopback, stopped when dropped.
struct FaultySmtp {
    child: Child,
    dir: PathBuf,
}

impl FaultySmtp {
    fn start(port: u16, dir: &Path, args: &[&str]) -> FaultySmtp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_faults.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--outdir"])
            .arg(dir)
            .args(args);
        let child = spawn_ready(&mut cmd, "smtp_faults.py");
        FaultySmtp {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Accepted messages by recipient.
    fn recipients(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, meta) in received_in(&self.dir) {
            for r in meta["rcpt_tos"].as_array().unwrap() {
                *m.entry(r.as_str().unwrap().to_string()).or_default() += 1;
            }
        }
        m
    }

    /// Every DATA attempt: its recipients and what became of it.
    fn attempts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("attempts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for FaultySmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Case {
    tmp: tempfile::TempDir,
    data: PathBuf,
    sc: synth::Scenario,
    cfg: PathBuf,
    port: u16,
}

fn case(seed: u64) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, seed, 12, 100).unwrap();
    let port = free_port();
    let cfg = write_config(
        tmp.path(),
        "smtp",
        &format!("[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_secs = 3\n"),
    );
    import(&cfg, &data.join("accounts.csv"));
    Case {
        tmp,
        data,
        sc,
        cfg,
        port,
    }
}

fn everyone(sc: &synth::Scenario) -> BTreeMap<String, usize> {
    sc.expected
        .password
        .iter()
        .chain(&sc.expected.identity)
        .cloned()
        .chain([
            "secops@agence-exemple.fr".into(),
            "rssi@agence-exemple.fr".into(),
        ])
        .map(|e| (e, 1))
        .collect()
}

/// A server that resets the connection in the middle of DATA never accepted the message:
/// it stays queued with the error, and the next flush delivers it, once.
#[test]
fn smtp_reset_mid_data_is_retried_and_delivered_once() {
    let c = case(61);
    let server = FaultySmtp::start(
        c.port,
        &c.tmp.path().join("smtp"),
        &["--mode", "drop-mid-data", "--count", "2"],
    );
    let o = ingest(&c.cfg, &[&c.data.join("dumps")]);
    expect_code(&o, 1);
    assert_stdout(&o, "2 queued for retry");
    let cut = server
        .attempts()
        .iter()
        .filter(|a| a["result"] == "cut")
        .count();
    assert_eq!(cut, 2);
    expect_code(&run(&c.cfg, &["mail", "flush"]), 0);
    assert_eq!(server.recipients(), everyone(&c.sc));
    assert_stdout(&run(&c.cfg, &["mail", "list"]), "0 pending");
}

/// 451 then 550 for one recipient: retried after the 451, marked failed with the 550's
/// text after it, and never tried again; everyone else gets one message.
#[test]
fn smtp_4xx_then_5xx_is_retried_then_failed_and_left_alone() {
    let c = case(62);
    let victim = c.sc.expected.password[0].clone();
    let server = FaultySmtp::start(
        c.port,
        &c.tmp.path().join("smtp"),
        &["--mode", "tempfail-then-permfail", "--victim", &victim],
    );
    let o = ingest(&c.cfg, &[&c.data.join("dumps")]);
    expect_code(&o, 1);
    assert_stdout(&o, "1 queued for retry");
    let o = run(&c.cfg, &["mail", "flush"]);
    let list = stdout(&run(&c.cfg, &["mail", "list"]));
    assert!(list.contains("550"), "{list}");
    assert!(list.contains("1 failed"), "{list}");
    expect_code(&run(&c.cfg, &["mail", "flush"]), 0);
    let tried = server
        .attempts()
        .iter()
        .filter(|a| a["rcpt_tos"][0] == victim.as_str())
        .count();
    assert_eq!(tried, 2, "{}", stdout(&o));
    let mut want = everyone(&c.sc);
    want.remove(&victim);
    assert_eq!(server.recipients(), want);
}

/// A server that greets and then never answers: each delivery gives up after
/// `timeout_secs`, the run ends, and every message is still queued.
#[test]
fn a_stalled_smtp_server_does_not_hold_the_run() {
    let c = case(63);
    let _server = FaultySmtp::start(c.port, &c.tmp.path().join("smtp"), &["--mode", "stall"]);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&c.cfg)
        .args(["ingest", "--no-progress"])
        .arg(c.data.join("dumps"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not a timing assertion: a watchdog that turns a hang into a failure.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(300) {
            let _ = child.kill();
            panic!("ingest still running after 300 s against a stalled SMTP server");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "{}", stderr(&o));
    let total = everyone(&c.sc).len();
    assert_stdout(&o, &format!("0 sent, {total} queued for retry"));
    let list = stdout(&run(&c.cfg, &["mail", "list"]));
    assert!(list.contains(&format!("{total} pending")), "{list}");
    assert!(
        list.to_lowercase().contains("timed out") || list.contains("timeout"),
        "{list}"
    );
}

/// Damaged state files at start: the database (garbage, cut in half, emptied beside the
/// other files) is refused with what to do and nothing changed; a damaged filter or
/// identity index is rebuilt and the run finds what it found before; a damaged
/// installation key is refused with what to do. Never a panic.
#[test]
fn damaged_state_files_give_a_clear_error_or_are_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 64, 12, 100).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &data.join("accounts.csv"));
    expect_code(&ingest(&cfg, &[&data.join("dumps")]), 0);
    let state = tmp.path().join("state");
    let good = tmp.path().join("state.good");
    copy_dir(&state, &good);
    // What was found, not how often it was seen since.
    let findings = || {
        let o = run(&cfg, &["findings", "list", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{} {} {}", f["id"], f["email"], f["kind"]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let baseline = findings();
    assert!(baseline.contains(&sc.expected.password[0]));

    for file in [
        "leakwatch.db",
        "accounts.bloom",
        "identity-keys.idx",
        "install.key",
    ] {
        for damage in ["garbage", "half", "empty"] {
            std::fs::remove_dir_all(&state).unwrap();
            copy_dir(&good, &state);
            let path = state.join(file);
            let bytes = std::fs::read(&path).unwrap();
            let damaged: Vec<u8> = match damage {
                "garbage" => (0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect(),
                "half" => bytes[..bytes.len() / 2].to_vec(),
                _ => Vec::new(),
            };
            std::fs::write(&path, &damaged).unwrap();
            let o = ingest(&cfg, &[&data.join("dumps")]);
            let err = stderr(&o);
            let what = format!("{file} {damage}");
            assert!(
                o.status.code().is_some(),
                "{what}: killed by a signal: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
            match (file, damage) {
                ("leakwatch.db", _) => {
                    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
                    assert!(err.contains("leakwatch.db is damaged"), "{what}: {err}");
                    assert!(err.contains("Restore it from a backup"), "{what}: {err}");
                    assert_eq!(std::fs::read(&path).unwrap(), damaged, "{what}: changed");
                }
                ("install.key", "empty") => {
                    // Left by a crash of a version before the key was written whole:
                    // made anew, as documented.
                    expect_code(&o, 0);
                }
                ("install.key", _) => {
                    assert_ne!(o.status.code(), Some(0), "{what}: {err}");
                    assert!(err.contains("install.key has"), "{what}: {err}");
                    assert!(err.contains("Restore it from the backup"), "{what}: {err}");
                }
                _ => {
                    expect_code(&o, 0);
                    assert!(err.contains(file), "{what}: not named: {err}");
                    assert_eq!(findings(), baseline, "{what}");
                }
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The state directory's filesystem fills up mid-ingest (while findings are recorded)
/// and mid-outbox (while mails are written): the run stops with a clear error and no
/// panic, the database still opens, and once space returns the next run records and
/// mails everything, each planted account once. The filesystem is a small tmpfs mounted
/// in a user and mount namespace of the test's own (`unshare -rm`), so it needs no root.
#[test]
fn a_full_disk_stops_the_run_cleanly_and_nothing_is_lost_once_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let planted = synth::write_bench(&data, 97, 2000, 2 << 20, 300).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    // Free space left when the ingest starts: none to speak of (the installation key
    // cannot be written), some (the batch of findings does not fit: recording fails),
    // more (the findings fit, queuing their mail does not), more still (the mail is
    // queued, the outbox's files do not all fit). Measured windows on this data: 50–130,
    // 150–2000 and 2500–5000 KiB.
    for free_kb in [32, 90, 800, 3500] {
        let state = tmp.path().join("state");
        let out = tmp.path().join(format!("out-{free_kb}"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let script = r#"
set -u
mount -t tmpfs -o size=32m tmpfs "$STATE" || exit 90
"$BIN" --config "$CFG" accounts import "$CSV" >"$OUT/import.log" 2>&1 || exit 91
avail=$(df -k --output=avail "$STATE" | tail -1)
dd if=/dev/zero of="$STATE/filler" bs=1k count=$((avail - FREE_KB)) 2>/dev/null
"$BIN" --config "$CFG" ingest --no-progress "$DUMP" >"$OUT/full.out" 2>"$OUT/full.err"
echo $? >"$OUT/full.rc"
"$BIN" --config "$CFG" findings list --json >"$OUT/between.json" 2>"$OUT/between.err"
echo $? >"$OUT/between.rc"
rm -f "$STATE/filler"
"$BIN" --config "$CFG" ingest --no-progress "$DUMP" >"$OUT/after.out" 2>"$OUT/after.err"
echo $? >"$OUT/after.rc"
cp -r "$STATE/outbox" "$OUT/outbox"
"$BIN" --config "$CFG" findings list --json >"$OUT/findings.json"
"#;
        let o = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "bash", "-c", script])
            .env("STATE", &state)
            .env("BIN", BIN)
            .env("CFG", &cfg)
            .env("CSV", data.join("accounts.csv"))
            .env("DUMP", data.join("combo.txt"))
            .env("OUT", &out)
            .env("FREE_KB", free_kb.to_string())
            .env("RUST_LOG", "leakwatch=info")
            .output()
            .expect("unshare (util-linux) runs the disk-full sequence");
        assert_eq!(
            o.status.code(),
            Some(0),
            "the namespace script failed (90: mount, 91: import): {}",
            stderr(&o)
        );
        let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
        let what = format!("{free_kb} KiB free");
        let full_err = read("full.err");
        let rc: i32 = read("full.rc").trim().parse().unwrap();
        assert!((1..=2).contains(&rc), "{what}: exit {rc}: {full_err}");
        assert!(!full_err.contains("panicked"), "{what}: {full_err}");
        assert!(
            full_err.contains("No space left on device") || full_err.contains("disk is full"),
            "{what}: the error does not say the disk is full: {full_err}"
        );
        if free_kb == 90 {
            assert!(
                full_err.contains("ingest stopped"),
                "{what}: not stopped while recording: {full_err}"
            );
        }
        assert_eq!(
            read("between.rc").trim(),
            "0",
            "{what}: {}",
            read("between.err")
        );
        assert_eq!(
            read("after.rc").trim(),
            "0",
            "{what}: once space returns: {}",
            read("after.err")
        );
        let counts = user_mail_counts(&out.join("outbox"));
        let want: BTreeMap<String, usize> = planted.iter().map(|e| (e.clone(), 1)).collect();
        assert_eq!(counts, want, "{what}: each planted account mailed once");
        std::fs::remove_dir_all(&state).unwrap();
    }
}
