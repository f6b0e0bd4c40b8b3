//! Metrics as Prometheus reads them: written to a node_exporter textfile after `ingest`,
//! and served by the daemon on `/metrics`, both parsed by Prometheus's own Python parser.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

/// (name, labels) → value, as `tests/support/scrape.py` reads `src`.
fn scrape(src: &str) -> Vec<(String, serde_json::Value, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/scrape.py");
    let o = Command::new(smtp_python())
        .arg(script)
        .arg(src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the parser refused {src}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    match v.as_array() {
        Some(a) => a
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["labels"].clone(),
                    s["value"].as_f64().unwrap(),
                )
            })
            .collect(),
        None => vec![(
            "status".into(),
            serde_json::Value::Null,
            v["status"].as_f64().unwrap(),
        )],
    }
}

fn value(
    m: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: serde_json::Value,
) -> Option<f64> {
    m.iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_in_a_textfile_after_ingest_and_on_the_daemons_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let textfile = dir.join("leakwatch.prom");
    let config = write_config(dir, "file", "");
    let feeds = add_feeds_dir(&config, dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\ntextfile = \"{}\"\n",
        textfile.display()
    ));
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        "email\nalice.martin@agence-exemple.fr\nbruno.petit@agence-exemple.fr\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Secret#1\n\
         bruno.petit@agence-exemple.fr:Secret#2\n\
         someone@example.net:x1\n\
         other@example.org:x2\n\
         jean.inconnu@agence-exemple.fr:x3\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&textfile).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o644);
    let m = scrape(textfile.to_str().unwrap());
    let none = serde_json::json!({});
    assert_eq!(
        value(&m, "leakwatch_lines_read_total", none.clone()),
        Some(5.0)
    );
    assert_eq!(
        value(&m, "leakwatch_identities_total", none.clone()),
        Some(5.0)
    );
    assert_eq!(
        value(&m, "leakwatch_matches_total", none.clone()),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "leakwatch_findings_recorded_total", none.clone()),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "leakwatch_unknown_org_identities", none.clone()),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "leakwatch_findings",
            serde_json::json!({"kind": "password", "severity": "high"})
        ),
        Some(2.0)
    );
    let sent = read_outbox(&dir.join("state/outbox")).len() as f64;
    assert!(sent >= 3.0);
    assert_eq!(
        value(&m, "leakwatch_mail_sent_total", none.clone()),
        Some(sent)
    );
    assert_eq!(
        value(&m, "leakwatch_mail_queue_depth", none.clone()),
        Some(0.0)
    );
    let fp = value(&m, "leakwatch_filter_false_positive_ratio", none.clone()).unwrap();
    assert!((0.0..=1.0).contains(&fp));
    // `leakwatch metrics` prints the same.
    let o = run(&config, &["metrics"]);
    expect_code(&o, 0);
    assert_stdout(&o, "leakwatch_lines_read_total 5\n");

    // The daemon: a drop directory read once, then /metrics scraped over HTTP.
    let drop = dir.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(
        feeds.join("drop.toml"),
        format!(
            "name = \"drop\"\nkind = \"directory\"\nschedule = \"*/1 * * * * *\"\npath = \"{}\"\nprocessed_dir = \"{}\"\nsettle_secs = 0\n",
            drop.display(),
            drop.join("processed").display()
        ),
    )
    .unwrap();
    std::fs::write(
        drop.join("more.txt"),
        "alice.martin@agence-exemple.fr:Autre#3\nx@example.net:y\n",
    )
    .unwrap();
    let log = dir.join("daemon.log");
    let mut daemon = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "leakwatch=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(60, "the drop feed's run", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("feed run finished feed=drop outcome=\"ok\"")
    });
    let url = format!("http://127.0.0.1:{port}/metrics");
    let m = scrape(&url);
    let other = scrape(&format!("http://127.0.0.1:{port}/other"));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(
        value(&m, "leakwatch_lines_read_total", none.clone()),
        Some(7.0),
        "{m:?}"
    );
    assert!(
        value(
            &m,
            "leakwatch_feed_runs_total",
            serde_json::json!({"feed": "drop", "outcome": "ok"})
        )
        .is_some_and(|v| v >= 1.0),
        "{m:?}"
    );
    let last = value(
        &m,
        "leakwatch_feed_last_success_timestamp_seconds",
        serde_json::json!({"feed": "drop"}),
    )
    .unwrap();
    assert!(last > 1.7e9, "{last}");
    assert!(value(
        &m,
        "leakwatch_daemon_heartbeat_timestamp_seconds",
        none.clone()
    )
    .is_some());
    assert_eq!(
        other[0],
        ("status".to_string(), serde_json::Value::Null, 404.0)
    );
    assert_eq!(
        value(
            &m,
            "leakwatch_findings",
            serde_json::json!({"kind": "password", "severity": "high"})
        ),
        Some(3.0)
    );
}

/// `[log] format = "json"`: every line on stderr is one JSON object with its fields as
/// keys (what journald → SIEM pipelines parse); no password or dump line in any of them.
#[test]
fn json_logs_are_one_object_per_line_with_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(dir, "file", "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[log]\nformat = \"json\"\n");
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        "email\nalice.martin@agence-exemple.fr\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Json#Secret1\nnot a line at all \u{1b}[31m\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dir.join("combo.txt")]);
    expect_code(&o, 0);
    let err = stderr(&o);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let recorded = events
        .iter()
        .find(|e| e["message"] == "dumps read, findings recorded")
        .expect("the run's summary event");
    assert_eq!(recorded["lines"], 2);
    assert_eq!(recorded["new_findings"], 1);
    assert!(recorded["level"] == "INFO" && recorded["timestamp"].is_string());
    assert!(!err.contains("Json#Secret1"));
    assert!(!err.contains('\u{1b}'));
}

/// `--version`, the man page and shell completions come from the same command
/// definitions, and need no config.
#[test]
fn version_man_page_and_completions_without_a_config() {
    let out = |args: &[&str]| {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        out(&["--version"]).trim(),
        format!("leakwatch {}", env!("CARGO_PKG_VERSION"))
    );
    let man = out(&["man"]);
    assert!(man.contains(".TH leakwatch 1"), "{man}");
    for sub in ["ingest", "actions", "metrics", "completions"] {
        assert!(man.contains(sub), "the man page lacks {sub}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let bash = tmp.path().join("leakwatch.bash");
    std::fs::write(&bash, out(&["completions", "bash"])).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
    assert!(syntax.success(), "the bash completion does not parse");
    assert!(std::fs::read_to_string(&bash).unwrap().contains("approve"));
    assert!(out(&["completions", "zsh"]).starts_with("#compdef leakwatch"));
}
