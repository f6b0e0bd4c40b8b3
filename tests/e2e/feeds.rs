//! Network feeds through the binary (`run --once`) against real servers on loopback: the
//! test HTTP server (tests/support/httpd.py), a range API and an HIBP-like API in it, and
//! a real SOCKS5 proxy (microsocks).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use leakwatch::synth;

use crate::support::*;

/// A temporary directory with a generated scenario under `data/`, a config with a feeds
/// directory, and the scenario's accounts imported.
struct Setup {
    tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    sc: synth::Scenario,
    cfg: std::path::PathBuf,
    feeds: std::path::PathBuf,
}

fn setup(seed: u64, accounts: usize, noise: u64) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, seed, accounts, noise).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    import(&cfg, &data.join("accounts.csv"));
    Setup {
        tmp,
        data,
        sc,
        cfg,
        feeds,
    }
}

fn write_feed(feeds: &Path, name: &str, body: &str) {
    std::fs::write(feeds.join(format!("{name}.toml")), body).unwrap();
}

fn run_once(cfg: &Path) -> std::process::Output {
    run(cfg, &["run", "--once"])
}

fn status(cfg: &Path) -> String {
    stdout(&run(cfg, &["status"]))
}

/// The status table's row of `feed`.
fn status_row(cfg: &Path, feed: &str) -> String {
    let s = status(cfg);
    s.lines()
        .find(|l| l.starts_with(&format!("{feed} ")))
        .unwrap_or_else(|| panic!("no row for {feed} in:\n{s}"))
        .to_string()
}

#[test]
fn http_feed_resumes_a_cut_download_then_gets_304_and_reads_nothing_again() {
    let Setup {
        tmp,
        data,
        sc,
        cfg,
        feeds,
    } = setup(31, 40, 20_000);
    let server = HttpServer::start(
        tmp.path(),
        &[
            "--root",
            data.join("dumps").to_str().unwrap(),
            "--cut",
            "combo.txt",
        ],
    );
    let urls: Vec<String> = ["combo.txt", "ulp.txt", "leak-site.csv", "stealer-logs.zip"]
        .iter()
        .map(|f| {
            format!(
                "\"{}\"",
                server.url(&format!("/files/{f}?token=s3cret-token"))
            )
        })
        .collect();
    write_feed(
        &feeds,
        "dumps",
        &format!(
            "name = \"dumps\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [{}]\nretry_backoff_ms = 50\n",
            urls.join(", ")
        ),
    );

    let o = run_once(&cfg);
    expect_code(&o, 0);
    assert_stderr(&o, "download cut, resuming");
    assert!(
        !stderr(&o).contains("s3cret-token"),
        "a URL's query reached the log"
    );

    // The cut request, then a resume from where it stopped, tied to the same ETag.
    let reqs = server.requests();
    let combo: Vec<_> = reqs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/files/combo.txt"))
        .collect();
    assert_eq!(combo.len(), 2, "{combo:?}");
    assert_eq!(combo[0]["status"], "200-cut");
    assert_eq!(combo[1]["status"], 206);
    let size = std::fs::metadata(data.join("dumps/combo.txt"))
        .unwrap()
        .len();
    assert_eq!(combo[1]["range"], format!("bytes={}-", size / 2));
    assert!(combo[1]["if_range"].as_str().unwrap().starts_with('"'));

    // The same findings and mail as `ingest` of the same files.
    let exp = &sc.expected;
    let want: BTreeSet<String> = exp.password.iter().chain(&exp.identity).cloned().collect();
    let outbox = tmp.path().join("state/outbox");
    let got = user_mail_counts(&outbox);
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(got.values().all(|n| *n == 1));
    assert!(
        status_row(&cfg, "dumps").contains(" ok "),
        "{}",
        status(&cfg)
    );
    // The spool was encrypted and unlinked: no planted password anywhere in the state.
    assert_nowhere(&tmp.path().join("state"), &exp.passwords);

    // Second run: every URL answers 304 to its validators; nothing read, nothing sent.
    let before = server.requests().len();
    let o = run_once(&cfg);
    expect_code(&o, 0);
    let again = &server.requests()[before..];
    assert_eq!(again.len(), 4, "{again:?}");
    for r in again {
        assert_eq!(r["status"], 304, "{r}");
        assert!(r["if_none_match"].is_string());
    }
    assert_eq!(user_mail_counts(&outbox), got);
    let row = status_row(&cfg, "dumps");
    assert!(row.contains(" unchanged "), "{row}");
}

#[test]
fn http_feed_retries_a_500_and_records_the_failure_in_its_run_row() {
    let Setup {
        tmp,
        data,
        cfg,
        feeds,
        ..
    } = setup(32, 20, 100);
    // Three failures: the first run's two attempts, then one more before success.
    let server = HttpServer::start(
        tmp.path(),
        &[
            "--root",
            data.join("dumps").to_str().unwrap(),
            "--fail-first",
            "3",
        ],
    );
    write_feed(
        &feeds,
        "flaky",
        &format!(
            "name = \"flaky\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [\"{}\"]\nretries = 1\nretry_backoff_ms = 20\n",
            server.url("/files/combo.txt")
        ),
    );
    let o = run_once(&cfg);
    expect_code(&o, 1);
    assert_stderr(&o, "request failed, retrying");
    assert_eq!(server.requests().len(), 2, "one attempt and one retry");
    let row = status_row(&cfg, "flaky");
    assert!(row.contains(" failed "), "{row}");
    let s = status(&cfg);
    assert!(s.contains("HTTP 500"), "the run row says why:\n{s}");

    let o = run_once(&cfg);
    expect_code(&o, 0);
    let statuses: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    assert!(status_row(&cfg, "flaky").contains(" ok "));
}

/// microsocks, from Debian's packages (installed here when missing).
fn microsocks(port: u16, bind: &str) -> Child {
    ensure_debian_tools("microsocks", &["microsocks"], "the proxy test");
    let child = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-b", bind])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => c,
        Err(e) => panic!("the proxy test needs microsocks (apt-get install microsocks): {e}"),
    }
}

#[test]
fn a_feed_with_a_socks5_proxy_goes_through_it() {
    let Setup {
        tmp,
        data,
        sc,
        cfg,
        feeds,
    } = setup(33, 20, 100);
    let server = HttpServer::start(
        tmp.path(),
        &["--root", data.join("dumps").to_str().unwrap()],
    );
    // The proxy makes its outgoing connections from 127.0.0.2, so the server's log tells
    // a proxied request (127.0.0.2) from a direct one (127.0.0.1).
    let port = free_port();
    let mut proxy = microsocks(port, "127.0.0.2");
    wait_for(10, "microsocks to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    write_feed(
        &feeds,
        "via-proxy",
        &format!(
            "name = \"via-proxy\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [\"{}\"]\nproxy = \"socks5h://127.0.0.1:{port}\"\n",
            server.url("/files/combo.txt")
        ),
    );
    write_feed(
        &feeds,
        "direct",
        &format!(
            "name = \"direct\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [\"{}\"]\n",
            server.url("/files/ulp.txt")
        ),
    );
    let o = run_once(&cfg);
    let _ = proxy.kill();
    let _ = proxy.wait();
    expect_code(&o, 0);
    let reqs = server.requests();
    let client_of = |file: &str| {
        reqs.iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("no request for {file}: {reqs:?}"))["client"]
            .clone()
    };
    assert_eq!(client_of("combo.txt"), "127.0.0.2", "through the proxy");
    assert_eq!(client_of("ulp.txt"), "127.0.0.1", "direct");
    // And what came through the proxy was read: the combo list's planted accounts.
    assert!(!sc.expected.password.is_empty());
    assert!(stdout(&run(&cfg, &["findings", "list"])).contains("combo"));
}

/// `leakwatch hash EMAIL` → the 40-hex SHA-1 of its identity key.
fn hash_of(cfg: &Path, email: &str) -> String {
    let o = run(cfg, &["hash", email]);
    expect_code(&o, 0);
    stdout(&o).split('\t').nth(1).unwrap().to_string()
}

fn emails_of(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn range_feed_finds_planted_accounts_sending_only_prefixes_and_resumes_its_sweep() {
    let Setup {
        tmp,
        data,
        cfg,
        feeds,
        ..
    } = setup(34, 30, 10);
    let emails = emails_of(&data.join("accounts.csv"));
    let hashes: Vec<String> = emails.iter().map(|e| hash_of(&cfg, e)).collect();
    let prefixes: BTreeSet<String> = hashes.iter().map(|h| h[..5].to_string()).collect();
    // Three of ours leaked, among other hashes, some of them in our buckets.
    let planted = [0usize, 7, 19];
    let mut lines: Vec<String> = planted
        .iter()
        .map(|i| format!("{}:3", hashes[*i]))
        .collect();
    for (i, h) in hashes.iter().enumerate() {
        lines.push(format!("{}{:035X}:1", &h[..5], i as u128 * 7919 + 1));
    }
    std::fs::write(tmp.path().join("range.txt"), lines.join("\n")).unwrap();
    let server = HttpServer::start(
        tmp.path(),
        &[
            "--range-hashes",
            tmp.path().join("range.txt").to_str().unwrap(),
        ],
    );
    write_feed(
        &feeds,
        "range",
        &format!(
            "name = \"range\"\nkind = \"range\"\nschedule = \"0 3 * * *\"\nbase_url = \"{}\"\nrequests_per_second = 200\nmax_requests_per_run = 10\n",
            server.url("")
        ),
    );
    // Runs of 10 prefixes each until the sweep is done; no prefix asked twice.
    let runs = prefixes.len().div_ceil(10);
    for _ in 0..runs {
        expect_code(&run_once(&cfg), 0);
    }
    let reqs = server.requests();
    let asked: Vec<String> = reqs
        .iter()
        .map(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("/range/")
                .to_string()
        })
        .collect();
    assert_eq!(
        asked.len(),
        prefixes.len(),
        "one request per prefix: {asked:?}"
    );
    assert_eq!(asked.iter().cloned().collect::<BTreeSet<_>>(), prefixes);
    for r in &reqs {
        assert_eq!(r["add_padding"], "true");
        assert_eq!(r["status"], 200);
    }
    // Nothing but the prefix left: no full hash, no address, in any path or header.
    let log = std::fs::read_to_string(&server.log).unwrap();
    for (e, h) in emails.iter().zip(&hashes) {
        assert!(
            !log.contains(e.as_str()) && !log.contains(&h[5..]),
            "{e} leaked to the server"
        );
    }
    let want: BTreeSet<String> = planted.iter().map(|i| emails[*i].clone()).collect();
    let got = user_mail_counts(&tmp.path().join("state/outbox"));
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
    // Padding entries (count 0) were seen and ignored; the next sweep finds nothing new.
    expect_code(&run_once(&cfg), 0);
    assert_eq!(
        server.requests().len(),
        prefixes.len() + prefixes.len().min(10)
    );
    assert_eq!(user_mail_counts(&tmp.path().join("state/outbox")), got);
}

#[test]
fn hibp_feed_waits_out_a_429_sends_its_key_and_records_breaches_and_stealer_logs() {
    let Setup {
        tmp,
        data: _,
        sc,
        cfg,
        feeds,
    } = setup(35, 30, 10);
    let staff: Vec<&str> = sc
        .accounts
        .iter()
        .filter(|a| a.email.ends_with("@agence-exemple.fr"))
        .map(|a| a.email.as_str())
        .collect();
    assert!(staff.len() >= 2);
    let alias = |e: &str| e.split('@').next().unwrap().to_string();
    let answers = serde_json::json!({
        "breaches": {"agence-exemple.fr": {alias(staff[0]): ["ExampleBreach2025"], "nobody.here": ["ExampleBreach2025"]}},
        "stealer": {"agence-exemple.fr": {alias(staff[1]): ["sso.agence-exemple.fr"]}},
    });
    std::fs::write(tmp.path().join("hibp.json"), answers.to_string()).unwrap();
    let key_file = tmp.path().join("hibp-key");
    std::fs::write(&key_file, "test-hibp-key-0123456789\n").unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let server = HttpServer::start(
        tmp.path(),
        &[
            "--hibp",
            tmp.path().join("hibp.json").to_str().unwrap(),
            "--hibp-key",
            key_file.to_str().unwrap(),
        ],
    );
    write_feed(
        &feeds,
        "hibp",
        &format!(
            "name = \"hibp\"\nkind = \"hibp\"\nschedule = \"0 5 * * *\"\napi_key_file = \"{}\"\nbase_url = \"{}\"\nmin_interval_ms = 10\n",
            key_file.display(),
            server.url("/api/v3")
        ),
    );
    let o = run_once(&cfg);
    expect_code(&o, 0);
    assert!(
        !stderr(&o).contains("test-hibp-key"),
        "the API key reached the log"
    );
    let reqs = server.requests();
    assert_eq!(reqs[0]["status"], 429);
    assert_eq!(reqs.len(), 3, "429, then one request per search: {reqs:?}");
    assert!(reqs[1..]
        .iter()
        .all(|r| r["hibp_api_key_ok"] == true && r["status"] == 200));
    let findings = stdout(&run(&cfg, &["findings", "list"]));
    let row = |email: &str| {
        findings
            .lines()
            .find(|l| l.contains(email))
            .unwrap_or_else(|| panic!("no finding for {email}:\n{findings}"))
            .to_string()
    };
    assert!(row(staff[0]).contains("identity"), "{findings}");
    let stolen = row(staff[1]);
    assert!(
        stolen.contains("password") && stolen.contains("sso.agence-exemple.fr"),
        "{stolen}"
    );
    // The stealer-log account is on the admins' forced-reset list; the unknown alias is
    // reported masked in the digest.
    let mails = read_outbox(&tmp.path().join("state/outbox"));
    let digest = mails
        .iter()
        .find(|m| m.file.ends_with("-digest.eml"))
        .expect("a digest");
    let csv = String::from_utf8(digest.attachments["forced-resets.csv"].clone()).unwrap();
    assert!(csv.contains(staff[1]) && !csv.contains(staff[0]), "{csv}");
    assert!(
        !digest.text.contains("nobody.here"),
        "an unknown identity is shown masked only"
    );
    assert_nowhere(&tmp.path().join("state"), &["nobody.here".to_string()]);
}

#[test]
fn check_names_the_feed_file_and_key_at_fault() {
    let Setup {
        tmp: _tmp,
        cfg,
        feeds,
        ..
    } = setup(36, 20, 10);
    write_feed(
        &feeds,
        "ok",
        "name = \"ok\"\nkind = \"directory\"\nschedule = \"*/15 * * * *\"\npath = \"/srv/drop\"\n",
    );
    let o = run(&cfg, &["check"]);
    expect_code(&o, 0);
    assert_stdout(&o, "ok (directory, \"*/15 * * * *\")");
    write_feed(
        &feeds,
        "tor",
        "name = \"tor\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [\"http://abcdef.onion/d.zip\"]\n",
    );
    let o = run(&cfg, &["check"]);
    expect_code(&o, 78);
    assert_stderr(&o, "tor.toml: key `urls`");
    assert_stderr(&o, "socks5h://");
    // The daemon refuses to start on it, too, with the same message.
    let o = run(&cfg, &["run", "--once"]);
    expect_code(&o, 78);
    assert_stderr(&o, "tor.toml: key `urls`");
}

/// A feed's secret header goes to its own host only: a redirect to another host is
/// refused (reqwest drops `Authorization` on such a hop, but sends any other header on);
/// a redirect within the host is followed without a `Referer` (which carried the URL's
/// `?token=`); https never falls back to http.
#[test]
fn secrets_do_not_follow_redirects_to_another_host() {
    let Setup {
        tmp,
        data,
        cfg,
        feeds,
        ..
    } = setup(37, 20, 2_000);
    let server = HttpServer::start(
        tmp.path(),
        &["--root", data.join("dumps").to_str().unwrap()],
    );
    let key = tmp.path().join("api.key");
    std::fs::write(&key, "k3y-v4lue\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // 127.0.0.1 and localhost: the same server, another host name.
    let elsewhere = format!("http://localhost:{}/files/ulp.txt", server.port);
    let within = "/files/combo.txt";
    let enc = |u: &str| u.replace(':', "%3A").replace('/', "%2F");
    let feed = |name: &str, to: &str| {
        format!(
            "name = \"{name}\"\nkind = \"http\"\nschedule = \"0 * * * *\"\n\
             urls = [\"{}\"]\nauth_header = \"X-Api-Key\"\nauth_file = \"{}\"\n\
             retry_backoff_ms = 50\nretries = 0\n",
            server.url(&format!("/redirect?token=s3cret-token&to={}", enc(to))),
            key.display()
        )
    };
    write_feed(&feeds, "away", &feed("away", &elsewhere));
    write_feed(&feeds, "home", &feed("home", within));
    let o = run_once(&cfg);
    let away = status_row(&cfg, "away");
    assert!(away.contains(" failed "), "{away}");
    let s = status(&cfg);
    assert!(s.contains("refused"), "the run row says why:\n{s}");
    assert!(status_row(&cfg, "home").contains(" ok "), "{}", stderr(&o));
    let reqs = server.requests();
    assert!(
        !reqs
            .iter()
            .any(|r| r["host"].as_str().unwrap_or("").starts_with("localhost")),
        "the redirect to another host was followed: {reqs:?}"
    );
    let home: Vec<_> = reqs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/files/combo.txt"))
        .collect();
    assert_eq!(home.len(), 1, "{reqs:?}");
    assert_eq!(
        home[0]["x_api_key"], "k3y-v4lue",
        "same host: the key is sent"
    );
    assert!(
        home[0]["referer"].is_null(),
        "a Referer was sent: {:?}",
        home[0]
    );
}

/// A server that trickles a byte every tenth of a second never trips the read timeout;
/// the feed's minimum rate ends it, and its deadline ends one whose rate has no floor.
/// Each failure is the feed's own, said in its run row; the other feeds run.
#[test]
fn a_trickling_server_does_not_hold_a_feed() {
    let Setup {
        tmp,
        data,
        cfg,
        feeds,
        ..
    } = setup(41, 20, 2_000);
    let server = HttpServer::start(
        tmp.path(),
        &[
            "--root",
            data.join("dumps").to_str().unwrap(),
            "--trickle",
            "combo.txt",
        ],
    );
    let feed = |name: &str, extra: &str| {
        format!(
            "name = \"{name}\"\nkind = \"http\"\nschedule = \"0 * * * *\"\n\
             urls = [\"{}\"]\nretries = 0\n{extra}\n",
            server.url("/files/combo.txt")
        )
    };
    write_feed(
        &feeds,
        "slow",
        &feed("slow", "min_bytes_per_sec = 100\nrate_window_secs = 1"),
    );
    write_feed(
        &feeds,
        "late",
        &feed("late", "min_bytes_per_sec = 0\ndeadline_secs = 2"),
    );
    // Without a floor or a deadline this run would last the file's length in tenths of
    // a second (hours).
    run_once(&cfg);
    let s = status(&cfg);
    assert!(status_row(&cfg, "slow").contains(" failed "), "{s}");
    assert!(status_row(&cfg, "late").contains(" failed "), "{s}");
    assert!(s.contains("slower than min_bytes_per_sec"), "{s}");
    assert!(s.contains("deadline_secs (2 s)"), "{s}");
}

/// Broken peers: a TCP reset mid-body, a `Content-Length` that promises twice what comes,
/// a redirect to itself. Each URL fails with its reason in the run's row, the good URL of
/// the same feed is read, and none of the broken ones is remembered as read: the next run
/// asks for each again.
#[test]
fn broken_http_peers_fail_their_url_with_a_reason_and_the_feed_goes_on() {
    let Setup {
        tmp,
        data,
        sc,
        cfg,
        feeds,
    } = setup(43, 20, 2_000);
    let server = HttpServer::start(
        tmp.path(),
        &["--root", data.join("dumps").to_str().unwrap()],
    );
    let urls = [
        server.url("/reset/combo.txt"),
        server.url("/lie/combo.txt"),
        server.url("/loop"),
        server.url("/files/combo.txt"),
    ];
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    write_feed(
        &feeds,
        "broken",
        &format!(
            "name = \"broken\"\nkind = \"http\"\nschedule = \"0 * * * *\"\nurls = [{}]\nretries = 1\n",
            list.join(", ")
        ),
    );
    let o = run_once(&cfg);
    expect_code(&o, 1);
    let s = status(&cfg);
    assert!(status_row(&cfg, "broken").contains(" problems "), "{s}");
    for (url, why) in [
        ("/reset/combo.txt", "Connection reset by peer"),
        (
            "/lie/combo.txt",
            "end of file before message length reached",
        ),
        ("/loop", "more than 5 redirects"),
    ] {
        let said = format!("{}: ", server.url(url));
        let at = s.find(&said).unwrap_or_else(|| panic!("{url} not in {s}"));
        let reason = &s[at..s[at..].find("; ").map_or(s.len(), |e| at + e)];
        assert!(reason.contains(why), "{url}: {reason}");
    }
    let found = finding_count(&cfg);
    assert!(found > 0 && found <= sc.expected.password.len() + sc.expected.identity.len());
    let asked = |path: &str| {
        server
            .requests()
            .iter()
            .filter(|r| r["path"] == path)
            .count()
    };
    let before: Vec<usize> = ["/reset/combo.txt", "/lie/combo.txt", "/loop"]
        .iter()
        .map(|p| asked(p))
        .collect();
    assert!(before.iter().all(|&n| n >= 1), "{before:?}");
    run_once(&cfg);
    let after: Vec<usize> = ["/reset/combo.txt", "/lie/combo.txt", "/loop"]
        .iter()
        .map(|p| asked(p))
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a > b,
            "a broken URL was not asked again: {before:?} then {after:?}"
        );
    }
    assert_eq!(finding_count(&cfg), found, "the good URL counted once");
}

fn finding_count(cfg: &Path) -> usize {
    let o = run(cfg, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    json.as_array().unwrap().len()
}
