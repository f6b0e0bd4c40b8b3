//! Remediation through the binary: actions done in a real OpenLDAP (both flavours), in
//! stand-ins for Keycloak and Microsoft Graph that check every request, through a signed
//! webhook and a command; and the guards (dry run, approval, the hourly ceiling, the
//! protected list) that stand between a forged dump and the organisation's accounts.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::slapd::{Slapd, SUFFIX};
use crate::support::*;

/// `actions log --json`, oldest first.
fn actions(config: &Path) -> Vec<serde_json::Value> {
    let o = run(config, &["actions", "log", "--json", "--limit", "1000000"]);
    expect_code(&o, 0);
    let mut v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    v.reverse();
    v
}

/// (account, action, target) → status, for the actions of `emails`.
fn states(config: &Path) -> BTreeMap<(String, String, String), String> {
    actions(config)
        .iter()
        .map(|a| {
            (
                (
                    a["email"].as_str().unwrap().to_string(),
                    a["action"].as_str().unwrap().to_string(),
                    a["target"].as_str().unwrap().to_string(),
                ),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn key(email: &str, action: &str, target: &str) -> (String, String, String) {
    (email.into(), action.into(), target.into())
}

pub fn secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The config's text up to `[remediation]`, with `section` after it.
fn with_remediation(config: &Path, base: &str, section: &str) {
    std::fs::write(config, format!("{base}{section}")).unwrap();
}

fn attr<'a>(entry: &'a str, name: &str) -> Option<&'a str> {
    entry
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// Against OpenLDAP with ppolicy: the leaked current password is acted on, the stale and
/// the rotated ones are not; a dry run writes nothing; approval holds everything until an
/// admin decides (and a rejected action is never done); a protected account is never
/// disabled; without approval the entry is reset and locked at once, and a dump read
/// again acts no more. Then the same through the `ad` flavour (`pwdLastSet`,
/// `userAccountControl`) against AD's attributes in slapd.
#[test]
fn against_slapd_dry_run_approval_protected_and_both_flavours() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let slapd = Slapd::start(&dir.join("slapd"));
    let people = ["amartin", "bpetit", "croux", "dlefort", "esimon", "gnoel"];
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Agence\ndc: agence-exemple\n\n\
         dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n\n\
         dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=ad,{SUFFIX}\nobjectClass: organizationalUnit\nou: ad\n\n\
         dn: cn=leakwatch,{SUFFIX}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: leakwatch\nuserPassword: lw-bind-synthetic\n\n\
         dn: cn=remediation,{SUFFIX}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: remediation\nuserPassword: lw-write-synthetic\n\n\
         dn: cn=Farid Haddad,ou=ad,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: Farid Haddad\nsn: Haddad\nsAMAccountName: fhaddad\nuserAccountControl: 512\npwdLastSet: 134065440000000000\n\n"
    );
    for uid in people {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\n",
            slapd.person(uid)
        ));
    }
    slapd.tool("ldapadd", &[], &ldif);
    for (uid, pw) in [
        ("amartin", "Ete2025!actuel"),
        ("bpetit", "Nouveau#2026"),
        ("esimon", "Emile#2026"),
        ("gnoel", "Gaelle#2026"),
    ] {
        slapd.tool("ldappasswd", &["-s", pw, &slapd.person(uid)], "");
    }
    // Denis's in {CRYPT} SHA-512-crypt (`openssl passwd -6`), compared as {SSHA} is;
    // Carole's in MD5-crypt, which is not.
    for (uid, value) in [
        (
            "dlefort",
            "{CRYPT}$6$ZGVuaXM$y3QpmJ7ZfKQ9w1YGqN6g6iV.n9BblrTquvOlqLjidZUkzVdd75g/dLdM2iDrBp.QFDUWGU3xnBN2dkBZ3rqnV/",
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

    let read_pw = secret(dir, "ldap-read", "lw-bind-synthetic");
    let write_pw = secret(dir, "ldap-write", "lw-write-synthetic");
    let config = write_config(dir, "file", "");
    let base = format!(
        "{}[liveness.ldap]\nurl = \"{url}\"\nbind_dn = \"cn=leakwatch,{SUFFIX}\"\npassword_file = \"{}\"\nbase_dn = \"ou=people,{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n",
        std::fs::read_to_string(&config).unwrap(),
        read_pw.display(),
        url = slapd.url,
    );
    let target = |flavor: &str, ou: &str, login: &str| {
        format!(
            "[remediation.ldap]\nurl = \"{url}\"\nbind_dn = \"cn=remediation,{SUFFIX}\"\npassword_file = \"{}\"\nbase_dn = \"ou={ou},{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\nlogin_attribute = \"{login}\"\nflavor = \"{flavor}\"\n",
            write_pw.display(),
            url = slapd.url,
        )
    };
    let rule =
        "[[remediation.rule]]\nkinds = [\"password\"]\nactions = [\"force_change\", \"disable\"]\n";
    let mut csv = String::from("email,username,name\n");
    for (email, uid) in [
        ("alice.martin@agence-exemple.fr", "amartin"),
        ("bruno.petit@agence-exemple.fr", "bpetit"),
        ("carole.roux@example.net", "croux"),
        ("denis.lefort@agence-exemple.fr", "dlefort"),
        ("emile.simon@agence-exemple.fr", "esimon"),
        ("gaelle.noel@agence-exemple.fr", "gnoel"),
        ("farid.haddad@agence-exemple.fr", "fhaddad"),
    ] {
        csv.push_str(&format!("{email},{uid},{uid}\n"));
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    import(&config, &dir.join("accounts.csv"));
    let alice = "alice.martin@agence-exemple.fr";

    // 1. Dry run: the current password (alice) calls for both actions, the stale (bruno)
    // and the rotated (carole) for none; nothing is written.
    with_remediation(
        &config,
        &base,
        &format!(
            "[remediation]\ndry_run = true\n{rule}{}",
            target("openldap", "people", "uid")
        ),
    );
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
    expect_code(&ingest(&config, &[&dumps]), 0);
    // Shown with `--nocapture`: the three outcomes as an admin sees them.
    eprintln!("{}", stdout(&run(&config, &["findings", "list"])));
    eprintln!("{}", stdout(&run(&config, &["actions", "log"])));
    let s = states(&config);
    assert_eq!(
        s,
        BTreeMap::from([
            (key(alice, "force_change", "ldap"), "dry_run".to_string()),
            (key(alice, "disable", "ldap"), "dry_run".to_string()),
        ])
    );
    let entry = slapd.entry(&slapd.person("amartin"));
    assert_eq!(attr(&entry, "pwdReset"), None, "{entry}");
    assert_eq!(attr(&entry, "pwdAccountLockedTime"), None, "{entry}");
    let digest = read_outbox(&dir.join("state/outbox"))
        .into_iter()
        .find(|m| m.file.ends_with("-digest.eml") && m.to_address().starts_with("secops"))
        .expect("a digest");
    assert!(
        digest
            .text
            .contains("Remediation: actions in the directory (2)")
            && digest
                .text
                .contains("force_change (ldap) for alice.martin@agence-exemple.fr: dry_run"),
        "{}",
        digest.text
    );

    // 2. Approval: nothing is done until an admin decides; emile is protected.
    with_remediation(
        &config,
        &base,
        &format!(
            "[remediation]\napproval = true\nprotected = [\"ESIMON\"]\n{rule}{}",
            target("openldap", "people", "uid")
        ),
    );
    std::fs::write(
        dir.join("two.txt"),
        "denis.lefort@agence-exemple.fr:Denis#2026\nemile.simon@agence-exemple.fr:Emile#2026\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("two.txt")]), 0);
    let o = run(&config, &["findings", "list", "--json"]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let denis_finding = findings
        .iter()
        .find(|f| f["email"] == "denis.lefort@agence-exemple.fr")
        .unwrap();
    assert_eq!(denis_finding["verdict"], "current", "{denis_finding}");
    let s = states(&config);
    let denis = "denis.lefort@agence-exemple.fr";
    let emile = "emile.simon@agence-exemple.fr";
    assert_eq!(s[&key(denis, "force_change", "ldap")], "awaiting_approval");
    assert_eq!(s[&key(denis, "disable", "ldap")], "awaiting_approval");
    assert_eq!(s[&key(emile, "force_change", "ldap")], "awaiting_approval");
    assert_eq!(s[&key(emile, "disable", "ldap")], "blocked");
    for uid in ["dlefort", "esimon"] {
        let e = slapd.entry(&slapd.person(uid));
        assert_eq!(attr(&e, "pwdReset"), None, "{e}");
    }
    let o = run(&config, &["status"]);
    assert_stdout(&o, "3 action(s) wait for an admin");
    let waiting = run(&config, &["actions", "list", "--json"]);
    let waiting: Vec<serde_json::Value> = serde_json::from_str(&stdout(&waiting)).unwrap();
    assert_eq!(waiting.len(), 3);
    let id_of = |email: &str, action: &str| {
        actions(&config)
            .iter()
            .find(|a| a["email"] == email && a["action"] == action)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
            .to_string()
    };
    let o = run(
        &config,
        &["actions", "reject", &id_of(emile, "force_change")],
    );
    expect_code(&o, 0);
    let o = run(&config, &["actions", "approve", "999999"]);
    expect_code(&o, 1);
    assert_stderr(&o, "action 999999 does not wait for approval");
    // Denis is made protected while his `disable` waits: approved, it is still not done.
    with_remediation(
        &config,
        &base,
        &format!(
            "[remediation]\napproval = true\nprotected = [\"ESIMON\", \"Denis.Lefort@agence-exemple.fr\"]\n{rule}{}",
            target("openldap", "people", "uid")
        ),
    );
    let o = run(&config, &["actions", "approve", "--all"]);
    expect_code(&o, 1);
    assert_stdout(&o, "2 action(s) approved by ");
    assert_stdout(&o, "remediation: 1 done, 0 to retry, 1 failed");
    let s = states(&config);
    assert_eq!(s[&key(denis, "force_change", "ldap")], "done");
    assert_eq!(s[&key(denis, "disable", "ldap")], "failed");
    assert_eq!(s[&key(emile, "force_change", "ldap")], "rejected");
    assert_eq!(s[&key(emile, "disable", "ldap")], "blocked");
    let e = slapd.entry(&slapd.person("dlefort"));
    assert_eq!(attr(&e, "pwdReset"), Some("TRUE"), "{e}");
    assert_eq!(attr(&e, "pwdAccountLockedTime"), None, "{e}");
    let e = slapd.entry(&slapd.person("esimon"));
    assert_eq!(attr(&e, "pwdReset"), None, "{e}");
    assert_eq!(attr(&e, "pwdAccountLockedTime"), None, "{e}");
    let log = run(&config, &["actions", "log"]);
    assert_stdout(&log, "protected account: never disabled");
    let approved = actions(&config)
        .into_iter()
        .find(|a| a["email"] == denis && a["action"] == "force_change")
        .unwrap();
    assert!(approved["approved_by"].is_string(), "{approved}");
    assert!(approved["approved_at"].is_i64(), "{approved}");

    // 3. Automatic: reset and locked at once; the same dump again acts no more.
    with_remediation(
        &config,
        &base,
        &format!(
            "[remediation]\n{rule}{}",
            target("openldap", "people", "uid")
        ),
    );
    std::fs::write(
        dir.join("three.txt"),
        "gaelle.noel@agence-exemple.fr:Gaelle#2026\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("three.txt")]), 0);
    let e = slapd.entry(&slapd.person("gnoel"));
    assert_eq!(attr(&e, "pwdReset"), Some("TRUE"), "{e}");
    assert_eq!(
        attr(&e, "pwdAccountLockedTime"),
        Some("000001010000Z"),
        "{e}"
    );
    let before = actions(&config).len();
    expect_code(&ingest(&config, &[&dir.join("three.txt")]), 0);
    assert_eq!(actions(&config).len(), before);

    // 4. Active Directory's attributes: pwdLastSet 0, ACCOUNTDISABLE added to what was there.
    with_remediation(
        &config,
        &base,
        &format!(
            "[remediation]\n{rule}{}",
            target("ad", "ad", "sAMAccountName")
        ),
    );
    std::fs::write(
        dir.join("four.txt"),
        "farid.haddad@agence-exemple.fr:Farid#2026\n",
    )
    .unwrap();
    expect_code(&ingest(&config, &[&dir.join("four.txt")]), 0);
    let e = slapd.entry(&format!("cn=Farid Haddad,ou=ad,{SUFFIX}"));
    assert_eq!(attr(&e, "pwdLastSet"), Some("0"), "{e}");
    assert_eq!(attr(&e, "userAccountControl"), Some("514"), "{e}");
    let s = states(&config);
    assert_eq!(
        s[&key("farid.haddad@agence-exemple.fr", "disable", "ldap")],
        "done"
    );
    eprintln!("{}", stdout(&run(&config, &["actions", "log"])));

    // The bind passwords and the leaked passwords stay out of the state directory.
    assert_nowhere(
        &dir.join("state"),
        &[
            "lw-write-synthetic".into(),
            "lw-bind-synthetic".into(),
            "Gaelle#2026".into(),
        ],
    );
}

/// Hugo and Ines as the directory, and a combo list with a password for each, ingested.
fn hugo_and_ines(dir: &Path, config: &Path, hugo: &str, ines: &str) -> std::process::Output {
    std::fs::write(
        dir.join("accounts.csv"),
        "email,username,name\n\
         hugo.bernard@agence-exemple.fr,hbernard,Hugo Bernard\n\
         ines.perrin@agence-exemple.fr,iperrin,Ines Perrin\n",
    )
    .unwrap();
    import(config, &dir.join("accounts.csv"));
    std::fs::write(
        dir.join("combo.txt"),
        format!("hugo.bernard@agence-exemple.fr:{hugo}\nines.perrin@agence-exemple.fr:{ines}\n"),
    )
    .unwrap();
    ingest(config, &[&dir.join("combo.txt")])
}

/// The stand-in admin APIs (tests/support/admin_apis.py).
pub struct AdminApis {
    child: Child,
    port: u16,
    pub log: PathBuf,
}

impl AdminApis {
    pub fn start(dir: &Path, args: &[&str]) -> AdminApis {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/admin_apis.py");
        let port = free_port();
        let log = dir.join("apis.log");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--log"])
            .arg(&log)
            .args(args);
        let child = spawn_ready(&mut cmd, "admin_apis.py (needs python3)");
        AdminApis { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn state(&self) -> Vec<serde_json::Value> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                &self.url("/state"),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for AdminApis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keycloak and Graph as their documentation describes them (every request checked:
/// method, path, token, body), a webhook signed with HMAC-SHA256 that fails twice before
/// it takes the action, and a command that gets the action on its stdin. One account's
/// actions are done in the rule's order; no password reaches any of them. An action a
/// crash interrupted is done again with the same id, and only that one.
#[test]
fn keycloak_graph_webhook_and_command_get_exactly_what_they_document() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("users.json"),
        r#"[{"id": "7f0c1d9e-hugo", "username": "hbernard", "email": "hugo.bernard@agence-exemple.fr"},
            {"id": "8a1b2c3d-ines", "username": "iperrin", "email": "ines.perrin@agence-exemple.fr"}]"#,
    )
    .unwrap();
    let hook_key = secret(dir, "hook.key", "hook-key-synthetic");
    let apis = AdminApis::start(
        dir,
        &[
            "--users",
            dir.join("users.json").to_str().unwrap(),
            "--hook-secret",
            hook_key.to_str().unwrap(),
            "--hook-fail",
            "2",
        ],
    );
    let kc_secret = secret(dir, "kc.secret", "kc-secret-synthetic");
    let graph_secret = secret(dir, "graph.secret", "graph-secret-synthetic");
    let got = dir.join("command.jsonl");
    let config = write_config(dir, "file", "");
    let text = format!(
        "{}[remediation]\n\
         [[remediation.rule]]\nkinds = [\"password\"]\nactions = [\"force_change\", \"revoke_sessions\", \"disable\", \"webhook\", \"command\"]\n\
         [remediation.keycloak]\nurl = \"{kc}\"\nrealm = \"agence\"\nclient_id = \"leakwatch\"\nclient_secret_file = \"{}\"\n\
         [remediation.graph]\ntenant = \"agence-exemple.fr\"\nclient_id = \"0f1e2d3c-leakwatch\"\nclient_secret_file = \"{}\"\nauthority = \"{kc}\"\ngraph_url = \"{graph}\"\n\
         [remediation.webhook]\nurl = \"{hook}\"\nsecret_file = \"{}\"\n\
         [remediation.command]\npath = \"/bin/sh\"\nargs = [\"-c\", \"cat >> \\\"$0\\\"; echo >> \\\"$0\\\"\", \"{}\"]\n",
        std::fs::read_to_string(&config).unwrap(),
        kc_secret.display(),
        graph_secret.display(),
        hook_key.display(),
        got.display(),
        kc = apis.url(""),
        graph = apis.url("/v1.0"),
        hook = apis.url("/hook"),
    );
    std::fs::write(&config, text).unwrap();
    expect_code(&run(&config, &["check"]), 0);
    let o = hugo_and_ines(dir, &config, "Hugo!2026secret", "Ines!2026secret");
    expect_code(&o, 0);

    let s = states(&config);
    assert_eq!(s.len(), 2 * 8, "{s:?}");
    assert!(s.values().all(|v| v == "done"), "{s:?}");
    let users = apis.state();
    for u in &users {
        assert_eq!(
            u["requiredActions"],
            serde_json::json!(["UPDATE_PASSWORD"]),
            "{u}"
        );
        assert_eq!(u["enabled"], false, "{u}");
        assert_eq!(u["logouts"], 1, "{u}");
        assert_eq!(
            u["graph"],
            serde_json::json!({"accountEnabled": false, "revoked": 1, "forceChange": true}),
            "{u}"
        );
    }
    let reqs = apis.requests();
    // Every request passed the server's checks, but the two 503s asked for.
    let failed: Vec<_> = reqs.iter().filter(|r| r["ok"] != true).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|r| r["why"] == "failing on purpose"));
    // Keycloak, for Hugo: the change forced, then sessions revoked, then disabled.
    let hugo_writes: Vec<String> = reqs
        .iter()
        .filter(|r| r["api"] == "keycloak" && r["path"].as_str().unwrap().contains("7f0c1d9e-hugo"))
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["body"]))
        .collect();
    assert_eq!(
        hugo_writes,
        [
            "PUT {\"requiredActions\":[\"UPDATE_PASSWORD\"]}",
            "POST null",
            "PUT {\"enabled\":false}"
        ]
    );
    // One token per API for the whole pass.
    let tokens = reqs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/token"))
        .count();
    assert_eq!(tokens, 2);
    // The webhook: the first try failed twice and went through on the third.
    let hooks: Vec<_> = reqs.iter().filter(|r| r["api"] == "webhook").collect();
    assert_eq!(hooks.len(), 4, "{hooks:?}");
    for h in &hooks {
        let body = &h["body"];
        assert_eq!(body["action"], "webhook");
        assert_eq!(body["finding"]["kind"], "password");
        assert!(body["account"]["email"]
            .as_str()
            .unwrap()
            .ends_with("@agence-exemple.fr"));
    }
    // The command got each action once.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&got)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["action"] == "command"));
    let everything = format!(
        "{}{}",
        std::fs::read_to_string(&apis.log).unwrap(),
        std::fs::read_to_string(&got).unwrap()
    );
    assert!(
        !everything.contains("2026secret"),
        "a password left the machine"
    );
    let o = run(&config, &["status"]);
    assert_stdout(&o, "remediation actions: 16 done");

    // A crash while a webhook was being sent: the action is started again, with its id.
    let hook_action = actions(&config)
        .into_iter()
        .find(|a| a["action"] == "webhook")
        .unwrap();
    let id = hook_action["id"].as_i64().unwrap();
    let db = rusqlite::Connection::open(dir.join("state/leakwatch.db")).unwrap();
    db.execute("UPDATE actions SET status = 'running' WHERE id = ?1", [id])
        .unwrap();
    drop(db);
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    expect_code(&ingest(&config, &[&dir.join("empty.txt")]), 0);
    let again: Vec<_> = apis
        .requests()
        .into_iter()
        .filter(|r| r["api"] == "webhook")
        .collect();
    assert_eq!(again.len(), 5);
    assert_eq!(again[4]["action_header"], id.to_string());
    assert_eq!(again[4]["ok"], true);
    assert!(states(&config).values().all(|v| v == "done"));
    // Nothing else was done twice.
    assert_eq!(apis.requests().len(), reqs.len() + 1);
}

/// A forged dump of 10,000 of the organisation's accounts: the first `max_per_hour`
/// actions are done, the rest held for approval, and the admins are mailed once; a second
/// flood in the same hour is held without another mail; the admins reject the lot.
#[test]
fn ceiling_stops_a_flood_of_ten_thousand_forged_findings() {
    const ACCOUNTS: usize = 10_000;
    const CEILING: usize = 25;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hook_key = secret(dir, "hook.key", "hook-key-synthetic");
    let apis = AdminApis::start(dir, &["--hook-secret", hook_key.to_str().unwrap()]);
    let config = write_config(dir, "file", "");
    // The directory's NT hashes say the last five accounts' leaked passwords are current:
    // their actions come first, before the ceiling.
    let lm = "aad3b435b51404eeaad3b435b51404ee";
    let export: String = (ACCOUNTS - 5..ACCOUNTS)
        .map(|i| {
            let nt: String = leakwatch::liveness::ntlm::nt_hash(&format!("Forged{i}!"))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("AGENCE\\agent{i:05}:{}:{lm}:{nt}:::\n", 2000 + i)
        })
        .collect();
    let export = secret(dir, "nt-hashes", export.trim_end());
    let text = format!(
        "{}[liveness]\nnt_hashes_file = \"{}\"\n[remediation]\nmax_per_hour = {CEILING}\n\
         [[remediation.rule]]\nactions = [\"webhook\"]\n\
         [remediation.webhook]\nurl = \"{}\"\nsecret_file = \"{}\"\n",
        std::fs::read_to_string(&config).unwrap(),
        export.display(),
        apis.url("/hook"),
        hook_key.display(),
    );
    std::fs::write(&config, text).unwrap();
    let mut csv = String::from("email,username\n");
    let mut flood = String::new();
    let mut second = String::new();
    for i in 0..ACCOUNTS + 10 {
        csv.push_str(&format!("agent{i:05}@agence-exemple.fr,agent{i:05}\n"));
        let line = format!("agent{i:05}@agence-exemple.fr:Forged{i}!\n");
        if i < ACCOUNTS {
            flood.push_str(&line);
        } else {
            second.push_str(&line);
        }
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    import(&config, &dir.join("accounts.csv"));
    std::fs::write(dir.join("flood.txt"), flood).unwrap();
    expect_code(&ingest(&config, &[&dir.join("flood.txt")]), 0);

    let count = |config: &Path| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for a in actions(config) {
            *by.entry(a["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        by
    };
    assert_eq!(
        count(&config),
        BTreeMap::from([
            ("done".into(), CEILING),
            ("held".into(), ACCOUNTS - CEILING)
        ])
    );
    let hooks = apis.requests();
    assert_eq!(hooks.len(), CEILING);
    assert!(hooks.iter().all(|h| h["ok"] == true), "{hooks:?}");
    let verdicts: Vec<&str> = hooks
        .iter()
        .map(|h| h["body"]["finding"]["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts[..5], ["current"; 5], "{verdicts:?}");
    assert!(
        verdicts[5..].iter().all(|v| *v == "unknown"),
        "{verdicts:?}"
    );
    let alerts = |dir: &Path| {
        read_outbox(&dir.join("state/outbox"))
            .into_iter()
            .filter(|m| m.subject.contains("remediation actions held"))
            .collect::<Vec<_>>()
    };
    let first = alerts(dir);
    assert_eq!(first.len(), 2, "one per admin");
    assert!(first[0]
        .text
        .contains(&format!("ceiling of {CEILING} actions per hour")));
    let o = run(&config, &["status"]);
    assert_stdout(
        &o,
        &format!("{} action(s) wait for an admin", ACCOUNTS - CEILING),
    );

    std::fs::write(dir.join("second.txt"), second).unwrap();
    expect_code(&ingest(&config, &[&dir.join("second.txt")]), 0);
    assert_eq!(apis.requests().len(), CEILING);
    assert_eq!(count(&config)["held"], ACCOUNTS - CEILING + 10);
    assert_eq!(alerts(dir).len(), 2, "mailed once an hour at most");

    let o = run(&config, &["actions", "reject", "--all"]);
    expect_code(&o, 0);
    assert_stdout(
        &o,
        &format!("{} action(s) rejected", ACCOUNTS - CEILING + 10),
    );
    assert_eq!(
        count(&config),
        BTreeMap::from([
            ("done".into(), CEILING),
            ("rejected".into(), ACCOUNTS - CEILING + 10)
        ])
    );
    assert_eq!(apis.requests().len(), CEILING);
}

/// Samba as an Active Directory domain controller (Debian `samba`), provisioned in a
/// temporary directory and serving LDAP on 127.0.0.1:389 (the port AD's LDAP has; Samba
/// offers no other). Its NT hashes exported by `pdbedit -L -w` and its `pwdLastSet` read
/// over LDAP give the verdicts: Hugo's leaked password is his current one, Ines's is not.
/// Hugo's account is then forced to change its password (`pwdLastSet: 0`) and disabled
/// (ACCOUNTDISABLE added to `userAccountControl`); Ines's is left alone.
#[test]
fn against_samba_ad_current_password_is_reset_and_disabled() {
    ensure_debian_tools(
        "samba",
        &["samba", "samba-tool", "pdbedit"],
        "the Samba AD test",
    );
    ensure_debian_tools("ldap-utils", &["ldapsearch"], "the Samba AD test");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 389)).is_err(),
        "the Samba AD test needs 127.0.0.1:389 free"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = dir.join("samba");
    let admin_pw = "Synthetic#Admin2026";
    let tool = |args: &[&str]| {
        let o = std::process::Command::new("samba-tool")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "samba-tool {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    tool(&[
        "domain",
        "provision",
        "--realm=AGENCE.TEST",
        "--domain=AGENCE",
        "--server-role=dc",
        "--dns-backend=NONE",
        &format!("--adminpass={admin_pw}"),
        &format!("--targetdir={}", target.display()),
        "--option=interfaces=lo",
        "--option=bind interfaces only=yes",
    ]);
    let sam = target.join("private/sam.ldb");
    let sam = sam.to_str().unwrap();
    for (user, pw, mail) in [
        (
            "hbernard",
            "Hugo#2026current",
            "hugo.bernard@agence-exemple.fr",
        ),
        (
            "iperrin",
            "Ines#2026current",
            "ines.perrin@agence-exemple.fr",
        ),
    ] {
        tool(&[
            "user",
            "create",
            user,
            pw,
            &format!("--mail-address={mail}"),
            "-H",
            sam,
        ]);
    }
    let smb_conf = target.join("etc/smb.conf");
    let mut samba = std::process::Command::new("samba")
        .args(["-i", "-M", "single", "-s", smb_conf.to_str().unwrap()])
        // LDAP only (no winbindd, no Kerberos, no SMB), simple binds without TLS: on
        // loopback, for the test.
        .args([
            "--option=server services=ldap",
            "--option=ldap server require strong auth=no",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start samba");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let samba = Kill(&mut samba);
    wait_for(60, "samba's LDAP listening", || {
        std::net::TcpStream::connect(("127.0.0.1", 389)).is_ok()
    });

    // The NT hashes as Samba exports them, owner-only.
    let export = std::process::Command::new("pdbedit")
        .args(["-L", "-w", "-s", smb_conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(export.status.success());
    let hashes = secret(
        dir,
        "nt-hashes",
        String::from_utf8(export.stdout).unwrap().trim_end(),
    );
    let bind_pw = secret(dir, "ad-bind", admin_pw);
    let config = write_config(dir, "file", "");
    let ldap = |section: &str, flavor: &str| {
        format!(
            "[{section}]\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"Administrator@agence.test\"\npassword_file = \"{}\"\nbase_dn = \"CN=Users,DC=agence,DC=test\"\nfilter = \"(objectClass=user)\"\nlogin_attribute = \"sAMAccountName\"\n{flavor}",
            bind_pw.display()
        )
    };
    let text = format!(
        "{}[liveness]\nnt_hashes_file = \"{}\"\n{}[remediation]\n[[remediation.rule]]\nkinds = [\"password\"]\nactions = [\"force_change\", \"disable\"]\n{}",
        std::fs::read_to_string(&config).unwrap(),
        hashes.display(),
        ldap("liveness.ldap", ""),
        ldap("remediation.ldap", "flavor = \"ad\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let o = hugo_and_ines(dir, &config, "Hugo#2026current", "Ines#2024ancien");
    expect_code(&o, 0);
    assert_stderr(&o, "directory read over LDAP");
    let o = run(&config, &["findings", "list", "--json"]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let verdict = |email: &str| {
        let f = findings.iter().find(|f| f["email"] == email).unwrap();
        (
            f["verdict"].as_str().unwrap().to_string(),
            f["password_changed_at"].is_i64(),
        )
    };
    assert_eq!(
        verdict("hugo.bernard@agence-exemple.fr"),
        ("current".into(), true)
    );
    assert_eq!(
        verdict("ines.perrin@agence-exemple.fr"),
        ("stale".into(), true)
    );

    let entry = |user: &str| {
        let o = std::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                "ldap://127.0.0.1:389",
                "-D",
                "Administrator@agence.test",
                "-w",
                admin_pw,
                "-b",
                "CN=Users,DC=agence,DC=test",
                &format!("(sAMAccountName={user})"),
                "pwdLastSet",
                "userAccountControl",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let hugo = entry("hbernard");
    assert_eq!(attr(&hugo, "pwdLastSet"), Some("0"), "{hugo}");
    assert_eq!(attr(&hugo, "userAccountControl"), Some("514"), "{hugo}");
    let ines = entry("iperrin");
    assert_ne!(attr(&ines, "pwdLastSet"), Some("0"), "{ines}");
    assert_eq!(attr(&ines, "userAccountControl"), Some("512"), "{ines}");
    let s = states(&config);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s.values().all(|v| v == "done"), "{s:?}");
    drop(samba);
}

/// Keycloak as a source of last password changes: each user's password credential
/// `createdDate` (the OTP credential's date is not taken), read page by page. Hugo
/// changed his password after the stealer log that took it: rotated since, advice, no
/// action; Ines's password is older than the leak: unknown, forced and acted on. The
/// realm is read again only after `keycloak_refresh_secs`.
#[test]
fn keycloak_password_dates_say_rotated_since() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 2026-01-15 and 2020-01-01, in milliseconds as Keycloak gives them.
    std::fs::write(
        dir.join("users.json"),
        r#"[{"id": "7f0c1d9e-hugo", "username": "hbernard", "email": "hugo.bernard@agence-exemple.fr", "passwordCreated": 1768435200000},
            {"id": "8a1b2c3d-ines", "username": "ines.perrin@agence-exemple.fr", "email": "ines.perrin@agence-exemple.fr", "passwordCreated": 1577836800000},
            {"id": "9b2c3d4e-sso", "username": "federated", "email": "someone@example.net"}]"#,
    )
    .unwrap();
    let apis = AdminApis::start(dir, &["--users", dir.join("users.json").to_str().unwrap()]);
    let kc_secret = secret(dir, "kc.secret", "kc-secret-synthetic");
    let config = write_config(dir, "file", "");
    let kc = format!(
        "url = \"{}\"\nrealm = \"agence\"\nclient_id = \"leakwatch\"\nclient_secret_file = \"{}\"\n",
        apis.url(""),
        kc_secret.display()
    );
    std::fs::write(
        &config,
        format!(
            "{}[liveness]\nkeycloak_refresh_secs = 3600\n[liveness.keycloak]\n{kc}[remediation]\n[[remediation.rule]]\nactions = [\"force_change\"]\n[remediation.keycloak]\n{kc}",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        "email,username,name\n\
         hugo.bernard@agence-exemple.fr,hbernard,Hugo Bernard\n\
         ines.perrin@agence-exemple.fr,,Ines Perrin\n",
    )
    .unwrap();
    import(&config, &dir.join("accounts.csv"));
    let logs = dir.join("dumps/logs/FR-LAPTOP2");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("UserInformation.txt"),
        "Build ID: sale22\nCountry: FR\nHWID: 1A2B3C4D\nLog date: 10/12/2025 2:02:11 PM\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("Passwords.txt"),
        "URL: https://sso.agence-exemple.fr/\nUsername: hbernard\nPassword: Hugo!2025old\n\n\
         URL: https://webmail.example.net/\nUsername: ines.perrin@agence-exemple.fr\nPassword: Ines!2025old\n\n",
    )
    .unwrap();
    let o = ingest(&config, &[&dir.join("dumps")]);
    expect_code(&o, 0);
    for said in [
        "Keycloak read: password dates",
        "users=3",
        "accounts=2",
        "changes=2",
    ] {
        assert_stderr(&o, said);
    }
    let o = run(&config, &["findings", "list", "--json"]);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let verdict = |email: &str| {
        findings
            .iter()
            .filter(|f| f["email"] == email && f["kind"] == "password")
            .map(|f| f["verdict"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(verdict("hugo.bernard@agence-exemple.fr"), ["rotated_since"]);
    assert_eq!(verdict("ines.perrin@agence-exemple.fr"), ["unknown"]);
    let s = states(&config);
    assert_eq!(
        s.keys().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        ["ines.perrin@agence-exemple.fr"],
        "{s:?}"
    );
    let lists = |apis: &AdminApis| {
        apis.requests()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().contains("first="))
            .count()
    };
    assert_eq!(lists(&apis), 1);
    assert!(apis.requests().iter().all(|r| r["ok"] == true));
    // Within the refresh interval, the realm is not read again.
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    let o = ingest(&config, &[&dir.join("empty.txt")]);
    expect_code(&o, 0);
    assert!(!stderr(&o).contains("Keycloak read"), "{}", stderr(&o));
    assert_eq!(lists(&apis), 1);
}
