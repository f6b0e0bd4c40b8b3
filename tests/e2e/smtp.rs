//! Delivery over SMTP to a real server (aiosmtpd) on loopback: queued while the server
//! is down, retried, delivered once; STARTTLS with AUTH and a password from a file.

use std::collections::BTreeMap;

use leakwatch::synth;

use crate::support::*;

fn recipients(server: &SmtpServer) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, meta) in server.received() {
        for r in meta["rcpt_tos"].as_array().unwrap() {
            *m.entry(r.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    m
}

fn expected_recipients(sc: &synth::Scenario) -> BTreeMap<String, usize> {
    sc.expected
        .password
        .iter()
        .chain(&sc.expected.identity)
        .chain(
            [
                "secops@agence-exemple.fr".to_string(),
                "rssi@agence-exemple.fr".to_string(),
            ]
            .iter(),
        )
        .map(|e| (e.clone(), 1))
        .collect()
}

#[test]
fn mail_is_queued_while_the_server_is_down_and_delivered_once_later() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 21, 30, 100).unwrap();
    let port = free_port();
    let cfg = write_config(
        tmp.path(),
        "smtp",
        &format!("[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_secs = 5\n"),
    );
    import(&cfg, &data.join("accounts.csv"));

    // Nobody listens: every mail is queued, the run says so and exits 1.
    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 1);
    let total = sc.expected.password.len() + sc.expected.identity.len() + 2;
    assert_stdout(&o, &format!("0 sent, {total} queued for retry"));
    let o = run(&cfg, &["mail", "list"]);
    assert_stdout(&o, &format!("{total} pending, 0 sent"));

    // The server comes up but refuses the first message with a 451: that one stays queued.
    let server = SmtpServer::start(
        port,
        &tmp.path().join("smtp"),
        &SmtpOptions {
            fail_first: 1,
            ..Default::default()
        },
    );
    let o = run(&cfg, &["mail", "flush"]);
    expect_code(&o, 1);
    assert_stdout(&o, &format!("{} sent, 1 queued for retry", total - 1));
    let o = run(&cfg, &["mail", "list"]);
    // The 451 is kept as the message's last error.
    assert_stdout(&o, "451");

    // The next run delivers it; nothing is sent twice, then or after.
    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 0);
    assert_stdout(&o, "0 new findings");
    assert_stdout(&o, "), 1 sent, 0 queued for retry");
    expect_code(&run(&cfg, &["mail", "flush"]), 0);
    assert_eq!(recipients(&server), expected_recipients(&sc));
    for (mail, meta) in server.received() {
        assert_eq!(meta["mail_from"], "securite@agence-exemple.fr");
        assert!(mail.text.len() > 100, "{}: empty body", mail.file);
    }
}

#[test]
fn starttls_and_auth_with_the_password_read_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 22, 30, 100).unwrap();
    let port = free_port();
    let secret = "s3cret-Sm7p-pa55";
    let server = SmtpServer::start(
        port,
        &tmp.path().join("smtp"),
        &SmtpOptions {
            starttls: true,
            auth: Some(("leakwatch".into(), secret.into())),
            ..Default::default()
        },
    );
    let pw_file = tmp.path().join("smtp-password");
    std::fs::write(&pw_file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = write_config(
        tmp.path(),
        "smtp",
        &format!(
            "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nusername = \"leakwatch\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
            pw_file.display(),
            tmp.path().join("smtp/ca.pem").display()
        ),
    );
    expect_code(&run(&cfg, &["check"]), 0);
    import(&cfg, &data.join("accounts.csv"));
    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 0);
    assert!(
        !stdout(&o).contains(secret) && !stderr(&o).contains(secret),
        "the SMTP password was printed"
    );
    assert_eq!(recipients(&server), expected_recipients(&sc));
    for (_, meta) in server.received() {
        assert_eq!(meta["tls"], true);
        assert_eq!(meta["auth_login"], "leakwatch");
    }

    // A world-readable password file is refused, naming the file.
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&cfg, &["check"]);
    assert_ne!(o.status.code(), Some(0));
    assert_stderr(&o, "smtp-password");
}

#[test]
fn a_broken_mail_setup_does_not_stop_findings_from_being_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 23, 30, 100).unwrap();
    let cfg = write_config(
        tmp.path(),
        "smtp",
        &format!(
            "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"leakwatch\"\npassword_file = \"{}\"\n",
            free_port(),
            tmp.path().join("no-such-password-file").display()
        ),
    );
    import(&cfg, &data.join("accounts.csv"));
    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 1);
    assert_stderr(&o, "no-such-password-file");
    let findings = sc.expected.password.len() + sc.expected.identity.len();
    assert_stdout(&o, &format!("{findings} new findings"));
    let o = run(&cfg, &["mail", "list"]);
    assert_stdout(&o, &format!("{} pending", findings + 2));
}

/// The SMTP server dies in the middle of a flush of 2,000 messages sent over four
/// sessions at once (an outage), then comes back: the flush stops with the rest queued,
/// untried; the next delivers them; every account got its message once. A repeat is
/// possible only for a message the server saved as it died, before its reply reached us
/// (at most one per session in flight), and then with the same Message-ID.
#[test]
fn an_smtp_outage_mid_flush_loses_nothing_and_repeats_nothing_but_what_was_in_flight() {
    const SESSIONS: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    // Nobody listens: everything is queued, and the refused connection stops the flush
    // at once (the server is down, not the messages wrong): no attempt burnt on the rest.
    let (cfg, port, planted, o) = queued_for_smtp(tmp.path(), 99, 6000, 2 << 20, 2000, SESSIONS);
    let total = planted.len() + 2;
    assert_stdout(&o, &format!("0 sent, {total} queued for retry"));

    let first = tmp.path().join("smtp-1");
    let server = SmtpServer::start(port, &first, &SmtpOptions::default());
    let flush = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["mail", "flush"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while received_in(&first).len() < 200 {
        assert!(std::time::Instant::now() < deadline, "no mail arrived");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(server); // the outage: the server process is killed mid-flush
    let o = flush.wait_with_output().unwrap();
    let during = received_in(&first).len();
    assert!(during < total, "the outage fell after the flush: {during}");
    expect_code(&o, 1);
    assert!(
        stdout(&o).contains("queued for retry"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );

    let second = tmp.path().join("smtp-2");
    let _server = SmtpServer::start(port, &second, &SmtpOptions::default());
    let o = run(&cfg, &["mail", "flush"]);
    expect_code(&o, 0);
    assert_stdout(&run(&cfg, &["mail", "list"]), "0 pending");

    let received = received_in(&first).into_iter().chain(received_in(&second));
    let repeats = each_planted_mailed_once(received, &planted, "after the outage");
    assert!(repeats <= SESSIONS, "{repeats} repeats");
}
