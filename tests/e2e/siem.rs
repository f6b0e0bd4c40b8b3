//! Findings to the SIEM: RFC 5424 syslog over UDP and TCP to a real receiver (Python's
//! socketserver), and a signed HTTPS-style webhook; each new finding exported once, a
//! collector out of reach caught up later, no password in any event.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::remediation::{secret, AdminApis};
use crate::support::*;

struct Syslogd {
    child: Child,
    log: PathBuf,
}

impl Syslogd {
    /// `proto`: "udp" or "tcp" and a port, or "unix" and a socket path.
    fn start(dir: &Path, proto: &str, at: &str) -> Syslogd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/syslogd.py");
        let log = dir.join(format!("syslog-{proto}.log"));
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(format!("--{proto}"))
            .arg(at)
            .arg("--log")
            .arg(&log);
        Syslogd {
            child: spawn_ready(&mut cmd, "syslogd.py (needs python3)"),
            log,
        }
    }

    /// (protocol, PRI, the JSON message) of each message received.
    fn messages(&self) -> Vec<(String, u32, serde_json::Value)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let raw = v["raw"].as_str().unwrap().to_string();
                // <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG
                let (pri, rest) = raw[1..]
                    .split_once(">1 ")
                    .unwrap_or_else(|| panic!("{raw}"));
                let fields: Vec<&str> = rest.splitn(7, ' ').collect();
                assert_eq!(fields.len(), 7, "{raw}");
                assert!(fields[0].ends_with('Z'), "{raw}");
                assert_eq!(
                    (fields[2], fields[4], fields[5]),
                    ("leakwatch", "finding", "-"),
                    "{raw}"
                );
                (
                    v["proto"].as_str().unwrap().to_string(),
                    pri.parse().unwrap(),
                    serde_json::from_str(fields[6]).unwrap_or_else(|e| panic!("{e}: {raw}")),
                )
            })
            .collect()
    }
}

impl Drop for Syslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn findings_reach_syslog_and_the_webhook_once_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = secret(dir, "siem.key", "siem-key-synthetic");
    let apis = AdminApis::start(dir, &["--hook-secret", key.to_str().unwrap()]);
    let udp = free_port();
    let syslog = Syslogd::start(dir, "udp", &udp.to_string());
    let config = write_config(dir, "file", "retry_interval_secs = 1");
    let base = std::fs::read_to_string(&config).unwrap();
    let with_syslog = |target: &str| {
        std::fs::write(
            &config,
            format!(
                "{base}[siem]\nsyslog = \"{target}\"\nwebhook_url = \"{}\"\nwebhook_secret_file = \"{}\"\n",
                apis.url("/siem"),
                key.display()
            ),
        )
        .unwrap();
    };
    with_syslog(&format!("udp://127.0.0.1:{udp}"));
    std::fs::write(
        dir.join("accounts.csv"),
        "email,username\nalice.martin@agence-exemple.fr,amartin\nbruno.petit@agence-exemple.fr,bpetit\ncarole.roux@agence-exemple.fr,croux\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Siem#Secret1\nbruno.petit@agence-exemple.fr\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);
    wait_for(10, "two syslog messages", || syslog.messages().len() == 2);
    let msgs = syslog.messages();
    let by_email = |email: &str| {
        msgs.iter()
            .find(|(_, _, e)| e["user"]["email"] == email)
            .unwrap_or_else(|| panic!("no event for {email}: {msgs:?}"))
    };
    let (_, pri, alice) = by_email("alice.martin@agence-exemple.fr");
    // authpriv (10) × 8 + err (3): a password from a combo list is "high".
    assert_eq!(*pri, 83);
    assert_eq!(alice["event"]["kind"], "alert");
    assert_eq!(alice["event"]["dataset"], "leakwatch.finding");
    assert_eq!(alice["user"]["name"], "amartin");
    assert_eq!(alice["leakwatch"]["kind"], "password");
    assert_eq!(alice["leakwatch"]["forces_reset"], true);
    assert_eq!(alice["threat"]["indicator"]["type"], "email-addr");
    let (_, pri, bruno) = by_email("bruno.petit@agence-exemple.fr");
    assert_eq!(*pri, 84, "an address alone is medium: warning");
    assert_eq!(bruno["leakwatch"]["kind"], "identity");
    // The webhook: the same two events, signed.
    let hooks: Vec<_> = apis
        .requests()
        .into_iter()
        .filter(|r| r["api"] == "siem")
        .collect();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert!(hooks.iter().all(|h| h["ok"] == true), "{hooks:?}");
    let everything = format!(
        "{}{}",
        std::fs::read_to_string(&syslog.log).unwrap(),
        std::fs::read_to_string(&apis.log).unwrap()
    );
    assert!(
        !everything.contains("Siem#Secret1"),
        "a password reached the SIEM"
    );

    // The same dump again: nothing new, nothing exported.
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);
    assert_eq!(syslog.messages().len(), 2);

    // TCP, to a collector not yet listening: deferred, then caught up once it is.
    let tcp = free_port();
    with_syslog(&format!("tcp://127.0.0.1:{tcp}"));
    std::fs::write(
        dir.join("more.txt"),
        "carole.roux@agence-exemple.fr:Autre#2\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dir.join("more.txt")]);
    expect_code(&o, 0);
    assert_stderr(&o, "deferred=1");
    let late = Syslogd::start(dir, "tcp", &tcp.to_string());
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    wait_for(20, "the deferred event over TCP", || {
        let _ = ingest(&config, &[&dir.join("empty.txt")]);
        !late.messages().is_empty()
    });
    let got = late.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "tcp");
    assert_eq!(got[0].2["user"]["email"], "carole.roux@agence-exemple.fr");
    let hooks = apis
        .requests()
        .into_iter()
        .filter(|r| r["api"] == "siem")
        .count();
    assert_eq!(hooks, 3, "the webhook took Carole's event at once");
    // The local daemon's socket, as /dev/log is.
    let sock = dir.join("log.sock");
    let local = Syslogd::start(dir, "unix", sock.to_str().unwrap());
    with_syslog(&format!("unix:{}", sock.display()));
    std::fs::write(
        dir.join("local.txt"),
        "alice.martin@agence-exemple.fr:Local#3\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("local.txt")]), 0);
    wait_for(10, "the event on the Unix socket", || {
        local.messages().len() == 1
    });
    let got = local.messages();
    assert_eq!(got[0].0, "unix");
    assert_eq!(got[0].2["user"]["email"], "alice.martin@agence-exemple.fr");
    let o = run(&config, &["status"]);
    assert_stdout(&o, "SIEM export: syslog 4 sent, webhook 4 sent");
    let o = run(&config, &["metrics"]);
    assert_stdout(
        &o,
        "leakwatch_siem_events{target=\"syslog\",status=\"sent\"} 4\n",
    );
}
