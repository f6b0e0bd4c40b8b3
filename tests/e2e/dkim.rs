//! DKIM: every message signed (rsa-sha256, relaxed/relaxed) with a key read from a
//! secret file, verified by dkimpy against the record `leakwatch check` says to publish;
//! a message changed after signing fails; every message says it is auto-generated.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::*;

fn verify(eml: &Path, record: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let o = Command::new(smtp_python())
        .arg(script)
        .arg(eml)
        .arg(record)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn every_message_is_dkim_signed_and_verifies() {
    ensure_debian_tools("openssl", &["openssl"], "the DKIM test");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = dir.join("dkim.pem");
    let o = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_config(dir, "file", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}[notify.dkim]\ndomain = \"agence-exemple.fr\"\nselector = \"lw2026\"\nkey_file = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let o = run(&config, &["check"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("publish TXT at lw2026._domainkey.agence-exemple.fr:"),
        "{out}"
    );
    let record = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("v=DKIM1"))
        .map(|r| format!("v=DKIM1{r}"))
        .unwrap_or_else(|| panic!("{out}"));

    std::fs::write(
        dir.join("accounts.csv"),
        "email,name,lang\nalice.martin@agence-exemple.fr,Alice Martin,fr\nbruno.petit@example.net,Bruno Petit,en\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Dkim#1\nbruno.petit@example.net:Dkim#2\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);
    let outbox = dir.join("state/outbox");
    let mut files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "two users, two admins");
    for f in &files {
        let raw = std::fs::read_to_string(f).unwrap();
        assert!(raw.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=agence-exemple.fr; s=lw2026;"), "{raw}");
        assert!(
            raw.contains("\r\nAuto-Submitted: auto-generated\r\n"),
            "{raw}"
        );
        let (ok, said) = verify(f, &record);
        assert!(ok, "{}: {said}", f.display());
        assert_eq!(said.trim(), "pass");
    }
    // A subject changed after signing no longer verifies.
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    let forged = dir.join("forged.eml");
    let subject_at = raw.find("\r\nSubject: ").unwrap() + 11;
    let mut changed = raw.clone();
    changed.insert_str(subject_at, "URGENT ");
    std::fs::write(&forged, changed).unwrap();
    let (ok, said) = verify(&forged, &record);
    assert!(!ok, "{said}");
    // The key must be owner-only.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&config, &["check"]);
    assert!(!o.status.success());
    assert_stderr(&o, "dkim.pem");
}

/// Staff and the public hear from their own senders; only the public's mail offers
/// `List-Unsubscribe` (a mailto, nothing in the body); an opted-out person gets no user
/// mail and still appears in the admins' digest; opting back in mails them again.
#[test]
fn senders_unsubscribe_header_and_the_optout_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(
        dir,
        "file",
        "from_public = \"Agence Exemple <ne-pas-repondre@services.agence-exemple.fr>\"\n\
         from_staff = \"DSI <securite@agence-exemple.fr>\"\n\
         unsubscribe = \"desinscription@services.agence-exemple.fr\"",
    );
    std::fs::write(
        dir.join("accounts.csv"),
        "email,name\nalice.martin@agence-exemple.fr,Alice Martin\nbruno.petit@example.net,Bruno Petit\ncarole.roux@example.org,Carole Roux\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    let o = run(&config, &["optout", "add", "Carole.Roux@Example.org"]);
    expect_code(&o, 0);
    assert_stdout(&o, "carole.roux@example.org opted out");
    expect_code(&run(&config, &["optout", "add", "not an address"]), 2);
    std::fs::write(
        dir.join("combo.txt"),
        "alice.martin@agence-exemple.fr:Opt#1\nbruno.petit@example.net:Opt#2\ncarole.roux@example.org:Opt#3\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("combo.txt")]), 0);
    let outbox = dir.join("state/outbox");
    let raw_of = |to: &str| {
        std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().ends_with("-user.eml"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .find(|raw| raw.contains(&format!("To: {to}")) || raw.contains(&format!("<{to}>")))
    };
    let alice = raw_of("alice.martin@agence-exemple.fr").expect("Alice's mail");
    assert!(
        alice.contains("From: DSI <securite@agence-exemple.fr>"),
        "{alice}"
    );
    assert!(!alice.contains("List-Unsubscribe"), "{alice}");
    let bruno = raw_of("bruno.petit@example.net").expect("Bruno's mail");
    assert!(
        bruno.contains("ne-pas-repondre@services.agence-exemple.fr"),
        "{bruno}"
    );
    assert!(
        bruno.contains("\r\nList-Unsubscribe: <mailto:desinscription@services.agence-exemple.fr?subject=unsubscribe>\r\n"),
        "{bruno}"
    );
    assert!(
        raw_of("carole.roux@example.org").is_none(),
        "Carole opted out"
    );
    let digest = read_outbox(&outbox)
        .into_iter()
        .find(|m| m.file.ends_with("-digest.eml"))
        .unwrap();
    assert!(
        digest.text.contains("carole.roux@example.org"),
        "{}",
        digest.text
    );
    let o = run(&config, &["optout", "list"]);
    assert_stdout(&o, "1 address(es) opted out");
    expect_code(
        &run(&config, &["optout", "remove", "carole.roux@example.org"]),
        0,
    );
    std::fs::write(dir.join("again.txt"), "carole.roux@example.org:Opt#4\n").unwrap();
    expect_code(&ingest(&config, &[&dir.join("again.txt")]), 0);
    assert!(raw_of("carole.roux@example.org").is_some(), "mailed again");
}
