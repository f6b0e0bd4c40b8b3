//! The pipeline through the binary with the file outbox: the right people get the right
//! mail, once, and no leaked password reaches the state directory.

use std::collections::BTreeSet;
use std::path::Path;

use leakwatch::synth;

use crate::support::*;

fn user_mails(mails: &[Mail]) -> Vec<&Mail> {
    mails
        .iter()
        .filter(|m| m.file.ends_with("-user.eml"))
        .collect()
}

fn digests(mails: &[Mail]) -> Vec<&Mail> {
    mails
        .iter()
        .filter(|m| m.file.ends_with("-digest.eml"))
        .collect()
}

/// The CSV rows' email column.
fn csv_emails(csv: &[u8]) -> (String, BTreeSet<String>) {
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let emails = lines
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    (header, emails)
}

#[test]
fn shipped_demo_matches_its_generator() {
    let tmp = tempfile::tempdir().unwrap();
    synth::write_scenario(tmp.path(), 2025, 24, 200).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("feeds/demo");
    let mut fresh = all_files(tmp.path());
    fresh.sort();
    assert_eq!(fresh.len(), 5);
    for (path, bytes) in fresh {
        let rel = path.strip_prefix(tmp.path()).unwrap();
        let shipped = std::fs::read(demo.join(rel)).unwrap_or_default();
        assert!(
            shipped == bytes,
            "feeds/demo/{} differs from the generator: run `cargo run --bin leakwatch-synth -- scenario feeds/demo`",
            rel.display()
        );
    }
}

#[test]
fn ingest_mails_the_right_people_once_and_stores_no_password() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 7, 60, 3000).unwrap();
    let exp = &sc.expected;
    let cfg = write_config(tmp.path(), "file", "");

    let o = run(
        &cfg,
        &[
            "accounts",
            "import",
            data.join("accounts.csv").to_str().unwrap(),
        ],
    );
    expect_code(&o, 0);
    assert_stdout(&o, "imported 60 accounts");

    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 0);
    let summary = stdout(&o);
    let new_findings = exp.password.len() + exp.identity.len();
    assert!(
        summary.contains(&format!("{new_findings} new findings")),
        "{summary}"
    );
    assert!(
        summary.contains("1 new unknown org identities"),
        "{summary}"
    );
    // The invalid UTF-8, NUL and 70 KiB lines of the generated combo list.
    let malformed_named = stderr(&o);
    assert!(
        malformed_named.contains("combo.txt") && malformed_named.contains("line too long"),
        "{malformed_named}"
    );

    let outbox = tmp.path().join("state/outbox");
    let mails = read_outbox(&outbox);
    let users = user_mails(&mails);
    let got: BTreeSet<String> = users.iter().map(|m| m.to_address()).collect();
    let want: BTreeSet<String> = exp.password.iter().chain(&exp.identity).cloned().collect();
    assert_eq!(got, want, "user mail recipients");
    assert_eq!(users.len(), want.len(), "one mail per user");
    for u in &exp.untouched {
        assert!(!got.contains(u), "lookalike-only account {u} was mailed");
    }

    for m in &users {
        let to = m.to_address();
        let account = sc.accounts.iter().find(|a| a.email == to).unwrap();
        let password = exp.password.contains(&to);
        let (subject, advice) = match (account.lang, password) {
            ("fr", true) => ("vos identifiants", "Changez dès maintenant ce mot de passe"),
            ("fr", false) => ("vos identifiants", "Méfiez-vous des messages"),
            (_, true) => ("your credentials", "Change this password now"),
            (_, false) => ("your credentials", "Be wary of messages"),
        };
        assert!(
            m.subject.contains(subject),
            "{}: subject {:?}",
            m.file,
            m.subject
        );
        assert!(m.text.contains(advice), "{}: text lacks {advice:?}", m.file);
        assert!(m.html.contains(advice), "{}: html lacks {advice:?}", m.file);
        let never = if account.lang == "fr" {
            "ne vous demandera jamais votre mot de passe"
        } else {
            "will never ask you for your password"
        };
        assert!(
            m.text.contains(never) && m.html.contains(never),
            "{}",
            m.file
        );
        for body in [&m.text, &m.html] {
            let lower = body.to_lowercase();
            for link in ["http:", "https:", "www.", "<a ", "href", "://"] {
                assert!(
                    !lower.contains(link),
                    "{}: user mail contains {link:?}",
                    m.file
                );
            }
        }
    }

    let ds = digests(&mails);
    let admins: BTreeSet<String> = ds.iter().map(|m| m.to_address()).collect();
    assert_eq!(
        admins,
        BTreeSet::from([
            "secops@agence-exemple.fr".to_string(),
            "rssi@agence-exemple.fr".to_string()
        ])
    );
    assert_eq!(ds.len(), 2);
    for d in &ds {
        let csv = d
            .attachments
            .get("forced-resets.csv")
            .expect("forced-resets.csv attached");
        let (header, emails) = csv_emails(csv);
        for col in ["email", "username", "kind", "first_seen", "sources"] {
            assert!(
                header.split(',').any(|h| h == col),
                "CSV header lacks {col}: {header}"
            );
        }
        assert_eq!(
            emails,
            exp.password.iter().cloned().collect::<BTreeSet<_>>()
        );
        assert!(
            !String::from_utf8_lossy(csv).contains('•'),
            "password hint in the admin CSV"
        );
        for i in &exp.identity {
            assert!(
                d.text.contains(i.as_str()),
                "digest lacks identity-only {i}"
            );
        }
        assert!(
            d.text.contains("f•••••u@agence-exemple.fr"),
            "digest lacks the masked unknown identity"
        );
    }

    // Privacy: no planted password, and no unknown identity in clear, anywhere in the state.
    let state = all_files(&tmp.path().join("state"));
    assert!(state.iter().any(|(p, _)| p.ends_with("leakwatch.db")));
    for (path, bytes) in &state {
        let hay = String::from_utf8_lossy(bytes);
        for pw in &exp.passwords {
            assert!(
                !hay.contains(pw.as_str()),
                "password found in {}",
                path.display()
            );
        }
        for u in &exp.unknown {
            assert!(
                !hay.contains(u.as_str()),
                "unknown identity in clear in {}",
                path.display()
            );
        }
    }

    // Re-ingest: nothing new, no mail.
    let o = ingest(&cfg, &[&data.join("dumps")]);
    expect_code(&o, 0);
    assert_stdout(&o, "0 new findings");
    assert_eq!(
        read_outbox(&outbox).len(),
        mails.len(),
        "re-ingest sent mail"
    );

    let o = run(&cfg, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), new_findings);
    // The same lines of the same files read again are not new sightings: nothing moves.
    assert!(
        list.iter().all(|f| f["times_seen"] == 1),
        "a re-read counted as a sighting"
    );
    let stealer = list
        .iter()
        .find(|f| f["format"] == "stealer")
        .expect("stealer finding");
    assert_eq!(stealer["site"], "sso.agence-exemple.fr");
    assert!(stealer["first_source"]
        .as_str()
        .unwrap()
        .contains("stealer-logs.zip!"));
}

#[test]
fn reimport_stops_matching_removed_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 11, 30, 100).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let removed = sc.expected.password[0].clone();
    let csv = std::fs::read_to_string(data.join("accounts.csv")).unwrap();
    let kept: String = csv
        .lines()
        .filter(|l| !l.starts_with(&format!("{removed},")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept.lines().count(), csv.lines().count() - 1);
    std::fs::write(data.join("accounts-less.csv"), kept).unwrap();

    import(&cfg, &data.join("accounts.csv"));
    import(&cfg, &data.join("accounts-less.csv"));
    expect_code(&ingest(&cfg, &[&data.join("dumps")]), 0);
    let got: BTreeSet<String> = user_mails(&read_outbox(&tmp.path().join("state/outbox")))
        .iter()
        .map(|m| m.to_address())
        .collect();
    assert!(
        !got.contains(&removed),
        "removed account {removed} was mailed"
    );
    assert_eq!(
        got.len(),
        sc.expected.password.len() + sc.expected.identity.len() - 1
    );
}

#[test]
fn bad_directory_rows_are_reported_by_line_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let csv = tmp.path().join("accounts.csv");
    std::fs::write(&csv, "email,lang\na@agence-exemple.fr,fr\nnot-an-address,fr\nb@example.net,xx\nc@example.net,en\n").unwrap();
    let o = run(&cfg, &["accounts", "import", csv.to_str().unwrap()]);
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("accounts.csv:3:") && err.contains("not-an-address"),
        "{err}"
    );
    assert!(
        err.contains("accounts.csv:4:") && err.contains("lang"),
        "{err}"
    );
    assert_stdout(&o, "imported 2 accounts");
}

#[test]
fn bad_config_exits_78_and_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("admin_lang = \"en\"", "admin_lang = \"de\"");
    std::fs::write(&cfg, text).unwrap();
    let o = run(&cfg, &["check"]);
    expect_code(&o, 78);
    assert_stderr(&o, "admin_lang");
    assert_stderr(&o, "leakwatch.toml");

    let good = write_config(tmp.path(), "file", "");
    let o = run(&good, &["check"]);
    expect_code(&o, 0);
    assert_stdout(&o, "OK");
}

#[test]
fn unreadable_inputs_are_reported_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 3, 20, 50).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    std::fs::write(
        data.join("dumps/broken.zip"),
        b"PK\x03\x04 truncated archive",
    )
    .unwrap();
    import(&cfg, &data.join("accounts.csv"));
    let o = ingest(&cfg, &[&data.join("dumps"), &data.join("missing.txt")]);
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("broken.zip") && err.contains("missing.txt"),
        "{err}"
    );
    assert_stdout(&o, "2 input errors");
    let got = user_mails(&read_outbox(&tmp.path().join("state/outbox"))).len();
    assert_eq!(got, sc.expected.password.len() + sc.expected.identity.len());
}
