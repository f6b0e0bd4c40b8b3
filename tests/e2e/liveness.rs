//! Is a leaked password still live? The directory's NT hash export and its last password
//! changes decide whether a finding forces a reset or only advises, through the binary.

use std::os::unix::fs::PermissionsExt;

use leakwatch::liveness::ntlm::nt_hash;

use crate::support::*;

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Four leaked passwords, four outcomes: the account's password now (critical, forced),
/// one that is not (stale: advice), one changed after the stealer log that took it
/// (rotated since: advice), and one nothing is known of (forced, as before). Everyone is
/// told; only the first and the last are on the forced-reset list; no hash or password
/// reaches the state directory.
#[test]
fn current_stale_rotated_and_unknown_passwords_get_their_own_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(dir, "file", "");
    let pwdump = dir.join("ntds.pwdump");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[liveness]\nnt_hashes_file = \"{}\"\n",
        pwdump.display()
    ));
    std::fs::write(&config, text).unwrap();

    std::fs::write(
        dir.join("accounts.csv"),
        "email,username,name,lang,password_changed_at\n\
         alice.martin@agence-exemple.fr,amartin,Alice Martin,fr,\n\
         bruno.petit@agence-exemple.fr,bpetit,Bruno Petit,en,2020-01-01\n\
         carole.roux@example.net,croux,Carole Roux,fr,2025-11-02T08:00:00Z\n\
         denis.blanc@agence-exemple.fr,dblanc,Denis Blanc,fr,not a date\n",
    )
    .unwrap();
    let lm = "aad3b435b51404eeaad3b435b51404ee";
    let alice_nt = hex(&nt_hash("Ete2025!actuel"));
    let bruno_nt = hex(&nt_hash("Nouveau#2026"));
    let other_nt = hex(&nt_hash("autre"));
    std::fs::write(
        &pwdump,
        format!(
            "AGENCE\\amartin:1104:{lm}:{alice_nt}:::\n\
             AGENCE\\bpetit:1105:{lm}:{bruno_nt}::: (status=Enabled)\n\
             AGENCE\\bpetit_history0:1105:{lm}:{other_nt}:::\n\
             AGENCE\\nobody:1200:{lm}:{other_nt}:::\n\
             SRV01$:1300:{lm}:{other_nt}:::\n\
             not a pwdump line {other_nt}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pwdump, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(
        &config,
        &[
            "accounts",
            "import",
            dir.join("accounts.csv").to_str().unwrap(),
        ],
    );
    expect_code(&o, 0);
    assert_stderr(&o, "line=5");
    assert_stderr(&o, "password_changed_at is not a date");

    let dumps = dir.join("dumps");
    std::fs::create_dir_all(dumps.join("logs/FR-DESKTOP1")).unwrap();
    std::fs::write(
        dumps.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Ete2025!actuel\n\
         bruno.petit@agence-exemple.fr:Ancien#2024\n\
         denis.blanc@agence-exemple.fr:Denis!2025\n",
    )
    .unwrap();
    std::fs::write(
        dumps.join("logs/FR-DESKTOP1/UserInformation.txt"),
        "Build ID: sale22\nCountry: FR\nHWID: 9F3A77C0\nMachineName: DESKTOP-1\n\
         Log date: 10/12/2025 2:02:11 PM\n",
    )
    .unwrap();
    std::fs::write(
        dumps.join("logs/FR-DESKTOP1/Passwords.txt"),
        "URL: https://webmail.example.net/\nUsername: carole.roux@example.net\n\
         Password: Carole!2025\n\n",
    )
    .unwrap();

    // The export is as good as the passwords: readable by others, it is refused.
    let o = ingest(&config, &[&dumps]);
    assert_ne!(o.status.code(), Some(0));
    assert_stderr(&o, "ntds.pwdump");
    assert_stderr(&o, "chmod 600");
    std::fs::set_permissions(&pwdump, std::fs::Permissions::from_mode(0o600)).unwrap();

    let o = ingest(&config, &[&dumps]);
    expect_code(&o, 0);
    assert_stdout(&o, "4 new findings");
    for said in [
        "NT hash export read",
        "accounts=2",
        "unmatched=1",
        "malformed=1",
    ] {
        assert_stderr(&o, said);
    }
    assert_stderr(&o, "malformed_lines=[6]");

    let o = run(&config, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let verdict = |email: &str| {
        let f = v
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["email"] == email)
            .unwrap_or_else(|| panic!("no finding for {email}"));
        (
            f["verdict"].as_str().unwrap().to_string(),
            f["severity"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        verdict("alice.martin@agence-exemple.fr"),
        ("current".into(), "critical".into())
    );
    assert_eq!(
        verdict("bruno.petit@agence-exemple.fr"),
        ("stale".into(), "high".into())
    );
    assert_eq!(
        verdict("carole.roux@example.net"),
        ("rotated_since".into(), "critical".into())
    );
    assert_eq!(
        verdict("denis.blanc@agence-exemple.fr"),
        ("unknown".into(), "high".into())
    );
    let o = run(&config, &["findings", "list"]);
    expect_code(&o, 0);
    for said in ["current", "stale", "rotated since"] {
        assert_stdout(&o, said);
    }

    let mails = read_outbox(&dir.join("state/outbox"));
    let users: Vec<String> = mails
        .iter()
        .filter(|m| m.file.ends_with("-user.eml"))
        .map(|m| m.to_address())
        .collect();
    assert_eq!(users.len(), 4, "everyone is told: {users:?}");
    let digest = mails
        .iter()
        .find(|m| m.file.ends_with("-digest.eml") && m.to_address().starts_with("secops"))
        .expect("a digest");
    let csv = String::from_utf8(digest.attachments["forced-resets.csv"].clone()).unwrap();
    let forced: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        forced,
        [
            "alice.martin@agence-exemple.fr",
            "denis.blanc@agence-exemple.fr"
        ],
        "{csv}"
    );
    assert!(csv.lines().next().unwrap().ends_with(",verdict"), "{csv}");
    assert!(csv.contains(",current password"), "{csv}");
    let body = &digest.text;
    assert!(
        body.contains("[CURRENT PASSWORD] alice.martin@agence-exemple.fr"),
        "{body}"
    );
    assert!(body.contains("advice only (2)"), "{body}");
    assert!(
        body.contains(
            "bruno.petit@agence-exemple.fr (login bpetit): not the account's password now"
        ),
        "{body}"
    );
    assert!(
        body.contains("carole.roux@example.net (login croux): password changed since the leak"),
        "{body}"
    );
    assert!(body.contains("forced reset (2)"), "{body}");

    // Only verdicts are kept: no password, no NT hash, in any state file.
    let secrets: Vec<String> = [
        "Ete2025!actuel".to_string(),
        "Ancien#2024".into(),
        "Carole!2025".into(),
        "Denis!2025".into(),
        alice_nt.clone(),
        alice_nt.to_uppercase(),
        bruno_nt.clone(),
    ]
    .to_vec();
    assert_nowhere(&dir.join("state"), &secrets);
    for raw in [nt_hash("Ete2025!actuel"), nt_hash("Nouveau#2026")] {
        for (path, bytes) in all_files(&dir.join("state")) {
            assert!(
                !bytes.windows(16).any(|w| w == raw),
                "{} holds an NT hash",
                path.display()
            );
        }
    }
    assert!(!stderr(&o).contains(&alice_nt));

    // Alice changes her password and the next import of the directory says so: her
    // finding is no longer live, whatever the comparison said at the time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    std::fs::write(
        dir.join("accounts.csv"),
        format!(
            "email,username,name,lang,password_changed_at\n\
             alice.martin@agence-exemple.fr,amartin,Alice Martin,fr,{}\n\
             bruno.petit@agence-exemple.fr,bpetit,Bruno Petit,en,2020-01-01\n\
             carole.roux@example.net,croux,Carole Roux,fr,2025-11-02T08:00:00Z\n\
             denis.blanc@agence-exemple.fr,dblanc,Denis Blanc,fr,\n",
            leakwatch::timefmt::rfc3339(now + 120)
        ),
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    let o = run(&config, &["findings", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let alice = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["email"] == "alice.martin@agence-exemple.fr")
        .unwrap();
    assert_eq!(alice["verdict"], "rotated_since");

    // Denis's hash now in the export, written as Windows PowerShell's `Out-File` writes
    // (UTF-16LE, with a BOM); his password seen again in another file: the new sighting
    // is compared, finds it current, and raises the finding.
    let denis_nt = hex(&nt_hash("Denis!2025"));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            format!("AGENCE\\dblanc:1106:{lm}:{denis_nt}:::\r\n")
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    std::fs::write(&pwdump, utf16).unwrap();
    std::fs::write(
        dir.join("again.txt"),
        "denis.blanc@agence-exemple.fr:Denis!2025\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dir.join("again.txt")]);
    expect_code(&o, 0);
    assert_stderr(&o, "accounts=1");
    let o = run(&config, &["findings", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let denis = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["email"] == "denis.blanc@agence-exemple.fr")
        .unwrap();
    assert_eq!(
        (&denis["verdict"], &denis["severity"]),
        (
            &serde_json::json!("current"),
            &serde_json::json!("critical")
        )
    );
    assert_nowhere(&dir.join("state"), &[denis_nt]);
}
