//! Is a leaked password still live? The directory's NT hash export and its last password
//! changes decide whether a finding forces a reset or only advises, through the binary.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use leakwatch::liveness::ntlm::nt_hash;

use crate::slapd::{Slapd, SUFFIX};
use crate::support::*;

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each account's findings as `findings list --json` gives them: (verdict, severity,
/// whether the account has a last password change), oldest first.
fn verdicts(config: &std::path::Path) -> BTreeMap<String, Vec<(String, String, bool)>> {
    let o = run(config, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for f in v.as_array().unwrap() {
        out.entry(f["email"].as_str().unwrap().to_string())
            .or_default()
            .push((
                f["verdict"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["password_changed_at"].is_i64(),
            ));
    }
    out
}

/// One (verdict, severity, has a change date) as `verdicts` gives it.
fn said(verdict: &str, severity: &str, dated: bool) -> Vec<(String, String, bool)> {
    vec![(verdict.into(), severity.into(), dated)]
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

    let v = verdicts(&config);
    assert_eq!(
        v["alice.martin@agence-exemple.fr"],
        said("current", "critical", false)
    );
    assert_eq!(
        v["bruno.petit@agence-exemple.fr"],
        said("stale", "high", true)
    );
    assert_eq!(
        v["carole.roux@example.net"],
        said("rotated_since", "critical", true)
    );
    assert_eq!(
        v["denis.blanc@agence-exemple.fr"],
        said("unknown", "high", false)
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
    assert_eq!(
        verdicts(&config)["alice.martin@agence-exemple.fr"],
        said("rotated_since", "critical", true)
    );

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
    assert_eq!(
        verdicts(&config)["denis.blanc@agence-exemple.fr"],
        said("current", "critical", false)
    );
    assert_nowhere(&dir.join("state"), &[denis_nt]);
}

/// Against a real OpenLDAP with ppolicy: the password's salted hash and its last change
/// (`pwdChangedTime`, kept by the overlay) are read over an authenticated bind, and three
/// leaked passwords get three outcomes: the account's current password (critical,
/// forced), a stale one (advice), and one whose owner changed the password after the
/// stealer log that took it, in a scheme leakwatch cannot compare (rotated since:
/// advice). A wrong bind password is a warning, and the findings then stay forced.
#[test]
fn against_slapd_current_stale_and_rotated_passwords_get_three_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let slapd = Slapd::start(&dir.join("slapd"));
    slapd.tool(
        "ldapadd",
        &[],
        &format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Agence\ndc: agence-exemple\n\n\
             dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n\n\
             dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: cn=leakwatch,{SUFFIX}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: leakwatch\nuserPassword: lw-bind-synthetic\n\n\
             dn: {}\nobjectClass: inetOrgPerson\nuid: amartin\ncn: Alice Martin\nsn: Martin\n\n\
             dn: {}\nobjectClass: inetOrgPerson\nuid: bpetit\ncn: Bruno Petit\nsn: Petit\n\n\
             dn: {}\nobjectClass: inetOrgPerson\nuid: croux\ncn: Carole Roux\nsn: Roux\n",
            slapd.person("amartin"),
            slapd.person("bpetit"),
            slapd.person("croux"),
        ),
    );
    // Passwords set as users and admins set them (the Password Modify operation: stored
    // {SSHA}, pwdChangedTime kept by ppolicy); Bruno's as {CRYPT} SHA-512-crypt (`openssl
    // passwd -6` of his current password), Carole's in a scheme not compared (MD5-crypt).
    slapd.tool(
        "ldappasswd",
        &["-s", "Ete2025!actuel", &slapd.person("amartin")],
        "",
    );
    for (uid, value) in [
        (
            "bpetit",
            "{CRYPT}$6$c2FsdA$IK0FnJRRZhNU6.V9Gg.IqmTui/CpM48KTZdEQNNi1ZZHDt68MMvRvcyuGAJudcX8Aq0FfMbLhZ0Put44EB4Q7/",
        ),
        ("croux", "{CRYPT}$1$c2FsdA$mCA9HBwQKcJyWQJjbYBWd/"),
    ] {
        slapd.tool(
            "ldapmodify",
            &[],
            &format!(
                "dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: {value}\n",
                slapd.person(uid)
            ),
        );
    }

    let bind_pw = dir.join("ldap-bind");
    std::fs::write(&bind_pw, "lw-bind-synthetic\n").unwrap();
    std::fs::set_permissions(&bind_pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_config(dir, "file", "");
    let ldap_section = |pw: &std::path::Path| {
        format!(
            "[liveness.ldap]\nurl = \"{}\"\nbind_dn = \"cn=leakwatch,{SUFFIX}\"\npassword_file = \"{}\"\nbase_dn = \"ou=people,{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n",
            slapd.url,
            pw.display()
        )
    };
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{base}{}", ldap_section(&bind_pw))).unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        "email,username,name\n\
         alice.martin@agence-exemple.fr,amartin,Alice Martin\n\
         bruno.petit@agence-exemple.fr,bpetit,Bruno Petit\n\
         carole.roux@example.net,croux,Carole Roux\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));

    let dumps = dir.join("dumps");
    std::fs::create_dir_all(dumps.join("logs/FR-DESKTOP1")).unwrap();
    std::fs::write(
        dumps.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Ete2025!actuel\nbruno.petit@agence-exemple.fr:Ancien#2024\n",
    )
    .unwrap();
    std::fs::write(
        dumps.join("logs/FR-DESKTOP1/UserInformation.txt"),
        "Build ID: sale22\nCountry: FR\nHWID: 9F3A77C0\nLog date: 10/12/2025 2:02:11 PM\n",
    )
    .unwrap();
    std::fs::write(
        dumps.join("logs/FR-DESKTOP1/Passwords.txt"),
        "URL: https://webmail.example.net/\nUsername: carole.roux@example.net\nPassword: Carole!2025\n\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dumps]);
    expect_code(&o, 0);
    for said in [
        "directory read over LDAP",
        "entries=3",
        "accounts=3",
        "changes=3",
        "hashes=2",
        "other_schemes=1",
    ] {
        assert_stderr(&o, said);
    }
    let v = verdicts(&config);
    assert_eq!(
        v["alice.martin@agence-exemple.fr"],
        said("current", "critical", true)
    );
    assert_eq!(
        v["bruno.petit@agence-exemple.fr"],
        said("stale", "high", true)
    );
    assert_eq!(
        v["carole.roux@example.net"],
        said("rotated_since", "critical", true)
    );
    let mails = read_outbox(&dir.join("state/outbox"));
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
    assert_eq!(forced, ["alice.martin@agence-exemple.fr"], "{csv}");
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.file.ends_with("-user.eml"))
            .count(),
        3
    );
    // The bind password and the hashes read stay in memory.
    assert_nowhere(
        &dir.join("state"),
        &["lw-bind-synthetic".into(), "Ete2025!actuel".into()],
    );

    // A wrong bind password: a warning, the run goes on, nothing is compared.
    std::fs::write(&bind_pw, "wrong\n").unwrap();
    std::fs::write(
        dir.join("again.txt"),
        "bruno.petit@agence-exemple.fr:Encore#2025\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dir.join("again.txt")]);
    expect_code(&o, 0);
    assert_stderr(&o, "directory not read over LDAP");
    assert!(!stderr(&o).contains("wrong"), "{}", stderr(&o));
    let bruno: Vec<String> = verdicts(&config)["bruno.petit@agence-exemple.fr"]
        .iter()
        .map(|(v, _, _)| v.clone())
        .collect();
    // The earlier verdict kept; the new password, not compared, is forced.
    assert_eq!(bruno, ["stale", "unknown"]);
}
