//! Retention and a data subject's rights: `export` gives what is held about a person,
//! `forget` erases it from every state file (database, its write-ahead log, the identity
//! index, the queue), `purge` deletes what `[retention]` says is old.

use std::path::Path;

use crate::support::*;

/// Every state file but the outbox directory's delivered messages (those are the
/// delivered mail, as in a mailbox), with its bytes.
fn state_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    all_files(&dir.join("state"))
        .into_iter()
        .filter(|(p, _)| !p.starts_with(dir.join("state/outbox")))
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[test]
fn export_then_forget_leaves_nothing_of_the_person_and_purge_applies_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(dir, "file", "");
    std::fs::write(
        dir.join("accounts.csv"),
        "email,username,name\n\
         alice.martin@agence-exemple.fr,amartin,Alice Martin\n\
         bruno.petit@agence-exemple.fr,bpetit,Bruno Petit\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Forget#Me1\nbruno.petit@agence-exemple.fr:Keep#Me2\nhttps://sso.agence-exemple.fr/login:amartin:Forget#Me3\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);

    // Right of access.
    let o = run(&config, &["export", "AMARTIN"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["account"]["email"], "alice.martin@agence-exemple.fr");
    assert_eq!(v["findings"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["mail"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "user"));
    assert!(!stdout(&o).contains("Forget#Me"));

    // Before: the person is in the state files (the directory, the mail log).
    assert!(state_files(dir)
        .iter()
        .any(|(_, b)| contains(b, "alice.martin")));
    let o = run(&config, &["forget", "Alice.Martin@agence-exemple.fr"]);
    expect_code(&o, 0);
    assert_stdout(&o, "2 finding(s)");
    for (path, bytes) in state_files(dir) {
        for needle in ["alice.martin", "amartin", "Alice Martin"] {
            assert!(
                !contains(&bytes, needle),
                "{needle} still in {}",
                path.display()
            );
        }
    }
    // Her own message is gone from the outbox directory too; Bruno's stays.
    let mails = read_outbox(&dir.join("state/outbox"));
    assert!(!mails
        .iter()
        .any(|m| m.to_address() == "alice.martin@agence-exemple.fr"));
    assert!(mails
        .iter()
        .any(|m| m.to_address() == "bruno.petit@agence-exemple.fr"));
    // Bruno is untouched, and her address no longer matches.
    let o = run(&config, &["findings", "list", "--json"]);
    let f: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["email"], "bruno.petit@agence-exemple.fr");
    let o = ingest(&config, &[&dir.join("combo.txt")]);
    expect_code(&o, 0);
    assert_stdout(&o, " 1 matches");
    let o = run(&config, &["export", "amartin"]);
    expect_code(&o, 1);

    // Retention: nothing of today goes by default; kept a day, what was last seen three
    // days ago goes (dates moved back in the database, as time would).
    let o = run(&config, &["purge"]);
    expect_code(&o, 0);
    assert_stdout(&o, "purge: 0 finding(s)");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}[retention]\nfindings_days = 1\nmail_days = 1\n"),
    )
    .unwrap();
    expect_code(&run(&config, &["purge"]), 0);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&stdout(&run(
            &config,
            &["findings", "list", "--json"]
        )))
        .unwrap()
        .len(),
        1,
        "a finding seen today is kept for a day"
    );
    let db = rusqlite::Connection::open(dir.join("state/leakwatch.db")).unwrap();
    db.execute_batch(
        "UPDATE findings SET last_seen = last_seen - 3 * 86400;
         UPDATE outbox SET created_at = created_at - 3 * 86400;",
    )
    .unwrap();
    drop(db);
    let o = run(&config, &["purge"]);
    expect_code(&o, 0);
    assert_stdout(&o, "purge: 1 finding(s)");
    let o = run(&config, &["findings", "list", "--json"]);
    assert_eq!(stdout(&o).trim(), "[]");
    let o = run(&config, &["mail", "list"]);
    assert!(!stdout(&o).contains("bruno.petit"), "{}", stdout(&o));
}
