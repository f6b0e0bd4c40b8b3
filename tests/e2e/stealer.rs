//! Stealer logs as they circulate: every family's layout, packed every way sellers pack
//! them (encrypted, nested), and hostile archives that must be reported, not obeyed.

use std::collections::BTreeSet;
use std::path::Path;

use leakwatch::synth::pack::{self, ZipLock, ZipMethod};
use leakwatch::synth::{self, stealer};

use crate::support::*;

/// (email, kind, severity, family, infection date, country, site) of every finding.
type Row = (String, String, String, String, String, String, String);

fn findings(cfg: &Path) -> (Vec<serde_json::Value>, BTreeSet<Row>) {
    let o = run(cfg, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let rows = list
        .iter()
        .map(|f| {
            let d = &f["device"];
            (
                s(&f["email"]),
                s(&f["kind"]),
                s(&f["severity"]),
                s(&d["family"]),
                s(&d["log_date"]),
                s(&d["country"]),
                s(&f["site"]),
            )
        })
        .collect();
    (list, rows)
}

#[test]
fn every_family_and_packing_gives_its_findings_with_device_evidence() {
    ensure_unar();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = stealer::write_scenario(&data, 11).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &data.join("accounts.csv"));

    // The combo list first: one password finding, high.
    let o = ingest(&cfg, &[&data.join("combo.txt")]);
    expect_code(&o, 0);
    assert_stdout(&o, "1 new findings");

    // One password on the command line, the right one from a file (out of the process
    // list).
    let wrong = "t.me/not_this_one";
    let logs = data.join("logs");
    let pw_file = tmp.path().join("archive-passwords.txt");
    std::fs::write(&pw_file, format!("\n{}\r\n", sc.archive_password)).unwrap();
    let args = [
        "ingest",
        "--no-progress",
        "--archive-password",
        wrong,
        "--archive-passwords-file",
        pw_file.to_str().unwrap(),
        logs.to_str().unwrap(),
    ];
    let o = run(&cfg, &args);
    expect_code(&o, 0);
    assert!(!stderr(&o).contains("ERROR"), "{}", stderr(&o));

    let site = synth::DEMO_LOGIN_HOST;
    let mut want = BTreeSet::new();
    let mut passwords = Vec::new();
    for d in &sc.devices {
        let dev = |email: &str, kind: &str, site: &str| -> Row {
            (
                email.to_string(),
                kind.to_string(),
                "critical".into(),
                d.family.as_str().into(),
                d.date.clone(),
                d.country.clone(),
                site.to_string(),
            )
        };
        for (email, pw) in &d.accounts {
            passwords.push(pw.clone());
            want.insert(dev(email, "password", site));
            for host in &d.session_hosts {
                want.insert(dev(email, "session", host));
            }
        }
    }
    let (list, got) = findings(&cfg);
    assert_eq!(got, want, "findings differ from what was planted");
    assert_eq!(list.len(), want.len(), "one finding per planted item");
    assert_eq!(family_count(&got), 12, "all twelve families seen");

    // The account also in the combo list: raised to critical, once.
    let combo: Vec<_> = list
        .iter()
        .filter(|f| f["email"] == sc.in_combo_too.as_str() && f["kind"] == "password")
        .collect();
    assert_eq!(combo.len(), 1);
    assert_eq!(combo[0]["format"], "stealer");
    assert_eq!(combo[0]["times_seen"], 2);

    // Accounts stolen from one machine share its device row.
    for d in sc.devices.iter().filter(|d| d.accounts.len() == 2) {
        let ids: BTreeSet<_> = list
            .iter()
            .filter(|f| d.accounts.iter().any(|(e, _)| f["email"] == e.as_str()))
            .map(|f| f["device"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "{}: one device", d.family.as_str());
    }

    // The digest: devices, sessions to revoke, the cookie-only machine as unknown.
    let outbox = tmp.path().join("state/outbox");
    let mails = read_outbox(&outbox);
    let digest = mails
        .iter()
        .rfind(|m| m.file.ends_with("-digest.eml"))
        .unwrap();
    let text = &digest.text;
    assert!(
        text.contains("2 account(s) stolen from the same infected device: Lumma"),
        "{text}"
    );
    let sessions: usize = sc
        .devices
        .iter()
        .map(|d| d.accounts.len() * d.session_hosts.len())
        .sum();
    assert!(
        text.contains(&format!(
            "== Stolen login sessions: revoke sessions ({sessions}) =="
        )),
        "{text}"
    );
    assert!(text.contains("[CRITICAL] "), "{text}");
    assert!(
        text.contains("login cookies for agence-exemple.fr (Lumma"),
        "{text}"
    );
    assert!(text.contains("account unknown"), "{text}");
    let csv = String::from_utf8(digest.attachments["forced-resets.csv"].clone()).unwrap();
    assert_eq!(csv.matches("revoke sessions").count(), sessions, "{csv}");
    // The macOS families are named, not only found.
    for family in ["Atomic (AMOS)", "Banshee", "Poseidon", "Cthulhu"] {
        assert!(text.contains(family), "{family}: {text}");
    }

    // Nothing of the logs in clear in the state: no password, no machine id, no cookie.
    assert_nowhere(&tmp.path().join("state"), &passwords);
    let folders: Vec<String> = sc.devices.iter().map(|d| d.folder.clone()).collect();
    let db = std::fs::read(tmp.path().join("state/leakwatch.db")).unwrap();
    for f in &folders {
        let hwid_like = f.split(['[', ']', '_']).find(|p| p.len() >= 12);
        if let Some(h) = hwid_like {
            assert!(
                !db.windows(h.len()).any(|w| w == h.as_bytes()),
                "{h} stored"
            );
        }
    }

    // Read again: nothing new, no mail.
    let before = read_outbox(&outbox).len();
    let o = run(&cfg, &args);
    expect_code(&o, 0);
    assert_stdout(&o, " 0 new findings");
    assert_eq!(read_outbox(&outbox).len(), before);
}

fn family_count(rows: &BTreeSet<Row>) -> usize {
    rows.iter()
        .map(|r| r.3.clone())
        .collect::<BTreeSet<_>>()
        .len()
}

/// `n` synthetic accounts, written to `dir/accounts.csv`.
fn small_directory(dir: &Path, seed: u64, n: usize) -> Vec<synth::SynthAccount> {
    let mut rng = synth::Rng::new(seed);
    let accounts = synth::directory(&mut rng, n, synth::DEMO_ORG_DOMAIN);
    let mut csv = Vec::new();
    synth::write_directory_csv(&mut csv, &accounts).unwrap();
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    accounts
}

#[test]
fn hostile_archives_are_reported_and_the_run_goes_on() {
    ensure_unar();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("in");
    std::fs::create_dir_all(&data).unwrap();
    let accounts = small_directory(tmp.path(), 5, 6);
    let cred = |i: usize| format!("{}:Pw-{i}-synthetic\n", accounts[i].email).into_bytes();
    let entry = |n: &str, d: Vec<u8>| (n.to_string(), d);

    std::fs::write(data.join("good.txt"), cred(0)).unwrap();
    std::fs::write(data.join("bomb.zip"), pack::zip_bomb(64 << 20).unwrap()).unwrap();
    let locked = pack::zip(
        &[entry("x/Passwords.txt", cred(1))],
        ZipMethod::Deflate,
        &ZipLock::Aes256("right".into()),
    )
    .unwrap();
    std::fs::write(data.join("wrong-password.zip"), &locked).unwrap();
    let whole = pack::zip(
        &[entry("a.txt", cred(1)), entry("b.txt", cred(1))],
        ZipMethod::Deflate,
        &ZipLock::None,
    )
    .unwrap();
    std::fs::write(data.join("truncated.zip"), &whole[..whole.len() / 2]).unwrap();
    let sz = pack::sevenz(&[entry("a.txt", cred(1))], None).unwrap();
    std::fs::write(data.join("truncated.7z"), &sz[..sz.len() - 20]).unwrap();
    let tgz = pack::gzip(&pack::tar(&[entry("a.txt", cred(1).repeat(2000))]).unwrap()).unwrap();
    std::fs::write(data.join("truncated.tar.gz"), &tgz[..tgz.len() / 2]).unwrap();
    let paths = pack::zip(
        &[
            entry("../../etc/cron.d/evil", cred(2)),
            entry("/abs/combo.txt", cred(3)),
        ],
        ZipMethod::Deflate,
        &ZipLock::None,
    )
    .unwrap();
    std::fs::write(data.join("paths.zip"), paths).unwrap();
    let mut deep = pack::zip(
        &[entry("deep.txt", cred(5))],
        ZipMethod::Deflate,
        &ZipLock::None,
    )
    .unwrap();
    for level in 0..4 {
        deep = pack::zip(
            &[entry(&format!("level{level}.zip"), deep)],
            ZipMethod::Stored,
            &ZipLock::None,
        )
        .unwrap();
    }
    std::fs::write(data.join("deep.zip"), deep).unwrap();
    std::fs::write(data.join("logs.rar"), b"Rar!\x1A\x07\x01\x00synthetic").unwrap();
    // 100,000 tiny entries, the last one with a credential.
    let mut many: Vec<_> = (0..99_999)
        .map(|i| entry(&format!("d{}/f{i}.txt", i % 100), b"x\n".to_vec()))
        .collect();
    many.push(entry("last/Passwords.txt", cred(4)));
    let many = pack::zip(&many, ZipMethod::Stored, &ZipLock::None).unwrap();
    let many_path = tmp.path().join("many.zip");
    std::fs::write(&many_path, many).unwrap();
    std::fs::copy(&many_path, data.join("many.zip")).unwrap();

    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &tmp.path().join("accounts.csv"));
    let o = run(
        &cfg,
        &[
            "ingest",
            "--no-progress",
            "--archive-password",
            "nope",
            data.to_str().unwrap(),
        ],
    );
    expect_code(&o, 1);
    let err = stderr(&o);
    // A stealer file's folder (`x/`, or the archive itself for bomb.zip's top-level
    // Passwords.txt) is named by its label (`device-…`), in errors too.
    for (what, why) in [
        ("/device-", "!Passwords.txt: stopped after"),
        ("/device-", "limits.max_compression_ratio"),
        (
            "wrong-password.zip!device-",
            "/Passwords.txt: skipped: encrypted, and none of the 1 archive_passwords opens it",
        ),
        ("truncated.zip", "not a readable zip archive"),
        ("truncated.7z", "not a readable 7z archive"),
        ("truncated.tar.gz!a.txt", ""),
        (
            "paths.zip!../../etc/cron.d/evil",
            "suspicious entry name (path climbs out",
        ),
        (
            "paths.zip!/abs/combo.txt",
            "suspicious entry name (absolute path)",
        ),
        ("level0.zip!deep.txt", ""),
        (
            "logs.rar",
            "not a readable rar archive: holds no file entry",
        ),
    ] {
        let hit = err.lines().find(|l| l.contains(what) && l.contains(why));
        if what.starts_with("level0") {
            // Five zips deep: the innermost is refused before it is opened.
            assert!(err.contains("max_archive_depth"), "{err}");
            assert!(hit.is_none(), "deep.txt must not be read:\n{err}");
        } else {
            assert!(hit.is_some(), "no report of {what} ({why}):\n{err}");
        }
    }
    // Everything readable was read: the good file, the odd paths, the 100,000th entry.
    let (list, _) = findings(&cfg);
    let found: BTreeSet<&str> = list.iter().map(|f| f["email"].as_str().unwrap()).collect();
    let want: BTreeSet<&str> = [0, 2, 3, 4]
        .iter()
        .map(|&i| accounts[i].email.as_str())
        .collect();
    assert_eq!(found, want);

    // With a lower entry limit, the big archive is refused up front, and said so.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[limits]\nmax_archive_entries = 1000\n");
    std::fs::write(&cfg, text).unwrap();
    let o = ingest(&cfg, &[&many_path]);
    expect_code(&o, 1);
    assert_stderr(
        &o,
        "many.zip: skipped: 100000 entries, over limits.max_archive_entries (1000)",
    );
}

/// A drop-directory feed with its `archive_passwords`: the archive they open is read, the
/// one they do not is named in the feed run's row (shown by `status`) and the log.
#[test]
fn feed_archive_passwords_open_logs_and_failures_land_in_the_run_row() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let accounts = small_directory(tmp.path(), 8, 4);
    let cred = |i: usize| {
        (
            "PC1/Passwords.txt".to_string(),
            format!(
                "URL: https://sso.agence-exemple.fr/\nUsername: {}\nPassword: Pw{i}-synthetic\n",
                accounts[i].email
            )
            .into_bytes(),
        )
    };
    std::fs::write(
        drop.join("open.7z"),
        pack::sevenz(&[cred(0)], Some("chan-pass")).unwrap(),
    )
    .unwrap();
    let locked = pack::zip(
        &[cred(1)],
        ZipMethod::Deflate,
        &ZipLock::Aes256("other".into()),
    )
    .unwrap();
    std::fs::write(drop.join("locked.zip"), locked).unwrap();

    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    import(&cfg, &tmp.path().join("accounts.csv"));
    std::fs::write(
        feeds.join("drop.toml"),
        format!(
            "name = \"drop\"\nkind = \"directory\"\nschedule = \"*/5 * * * *\"\npath = \"{}\"\nsettle_secs = 0\narchive_passwords = [\"chan-pass\"]\n",
            drop.display()
        ),
    )
    .unwrap();
    // The machine folder (`PC1`) is named by its label, in the log and in the row.
    let o = run(&cfg, &["run", "--once"]);
    assert_stderr(&o, "locked.zip!device-");
    assert!(!stderr(&o).contains("!PC1/"), "{}", stderr(&o));
    let status = stdout(&run(&cfg, &["status"]));
    assert!(status.contains("problems"), "{status}");
    let said = "/Passwords.txt: skipped: encrypted, and none of the 1 archive_passwords opens it";
    assert!(
        status.contains("locked.zip!device-") && status.contains(said),
        "{status}"
    );
    let (list, _) = findings(&cfg);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["email"], accounts[0].email.as_str());
    assert_eq!(list[0]["severity"], "critical");
}

/// A machine's folder extracted into a drop directory: its files are read together, so
/// its cookies become sessions of the accounts stolen with them; the same machine dropped
/// again under another folder name is the same device.
#[test]
fn an_extracted_machine_folder_in_a_drop_directory_is_read_as_one_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let accounts = small_directory(tmp.path(), 21, 6);
    let mut rng = synth::Rng::new(3);
    let plant = stealer::Plant {
        accounts: vec![(accounts[0].email.clone(), "Drop-Pw-0!".into())],
        session_hosts: vec!["sso.agence-exemple.fr".into()],
    };
    let (device, entries) = stealer::device(
        &mut rng,
        leakwatch::parse::device::Family::Lumma,
        &plant,
        "https://sso.agence-exemple.fr/login",
        "sso.agence-exemple.fr.evil.example",
    );
    let write = |folder: &str| {
        for (path, bytes) in &entries {
            let rel = path.replacen(&device.folder, folder, 1);
            let full = drop.join(rel);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        }
    };
    write("FR_machine_A");
    // A file of the folder that is not a stealer log's own: of the machine all the same.
    let other = drop.join(
        entries[0]
            .0
            .replacen(&device.folder, "FR_machine_A", 1)
            .rsplit_once('/')
            .map_or("FR_machine_A".to_string(), |(dir, _)| dir.to_string()),
    );
    std::fs::write(other.join("Screenshot-notes.txt"), "nothing here\n").unwrap();

    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    import(&cfg, &tmp.path().join("accounts.csv"));
    std::fs::write(
        feeds.join("drop.toml"),
        format!(
            "name = \"drop\"\nkind = \"directory\"\nschedule = \"*/5 * * * *\"\npath = \"{}\"\nsettle_secs = 0\n",
            drop.display()
        ),
    )
    .unwrap();
    let o = run(&cfg, &["run", "--once"]);
    expect_code(&o, 0);
    let (list, rows) = findings(&cfg);
    let kinds: BTreeSet<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert!(
        kinds.contains(&(accounts[0].email.as_str(), "password")),
        "{rows:?}"
    );
    assert!(
        kinds.contains(&(accounts[0].email.as_str(), "session")),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.2 == "critical" && r.3 == "Lumma"),
        "{rows:?}"
    );
    let devices = |list: &[serde_json::Value]| -> BTreeSet<i64> {
        list.iter()
            .map(|f| f["device"]["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(devices(&list).len(), 1);
    // The folder's name (an HWID or an IP, in real logs) is in no log line and nowhere in
    // the state: its files are named by the folder's keyed label.
    assert!(!stderr(&o).contains("FR_machine_A"), "{}", stderr(&o));
    assert!(stderr(&o).contains("device-"), "{}", stderr(&o));
    for (path, bytes) in all_files(&tmp.path().join("state")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("FR_machine_A"),
            "{} names the folder",
            path.display()
        );
    }

    // The same machine's log, renamed: one device still, no new finding.
    write("BE_same_machine_renamed");
    let o = run(&cfg, &["run", "--once"]);
    expect_code(&o, 0);
    let (again, _) = findings(&cfg);
    assert_eq!(again.len(), list.len());
    assert_eq!(devices(&again), devices(&list));
}

/// In a zip or a 7z, a machine folder's other files can come before its first stealer
/// file (`Autofills/` sorts before `Passwords.txt`). The archive's listing names the
/// folder up front, so their log lines already use the folder's label, never its name (an
/// HWID, an IP); so does an entry the walk reports (here one no password opens).
#[test]
fn an_archived_machine_folder_is_named_by_its_label_from_its_first_file() {
    let tmp = tempfile::tempdir().unwrap();
    let accounts = small_directory(tmp.path(), 31, 4);
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &tmp.path().join("accounts.csv"));
    let hwid = "HWID-7F3A9C1D2E4B";
    let folder = format!("FR[{hwid}] 203.0.113.77");
    let entries = |with_lock: bool| {
        let mut e = vec![
            (
                format!("{folder}/Autofills/Google_[Chrome]_Default.txt"),
                b"not a credential line\nnor this one\n".to_vec(),
            ),
            (
                format!("{folder}/Passwords.txt"),
                format!(
                    "URL: https://sso.agence-exemple.fr/\nUsername: {}\nPassword: Pw-Label-1\n",
                    accounts[0].email
                )
                .into_bytes(),
            ),
        ];
        if with_lock {
            e.truncate(1);
        }
        e
    };
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("logs.zip"),
        pack::zip(&entries(false), ZipMethod::Deflate, &ZipLock::None).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("logs.7z"),
        pack::sevenz(&entries(false), None).unwrap(),
    )
    .unwrap();
    let mut locked = entries(true);
    locked.push((format!("{folder}/Passwords.txt"), b"x".to_vec()));
    std::fs::write(
        dir.join("locked.zip"),
        pack::zip(
            &locked[1..],
            ZipMethod::Deflate,
            &ZipLock::Aes256("k".into()),
        )
        .unwrap(),
    )
    .unwrap();
    let o = ingest(&cfg, &[&dir]);
    let err = stderr(&o);
    assert!(err.contains("Google_[Chrome]_Default.txt"), "{err}");
    assert!(err.contains("none of the 0 archive_passwords"), "{err}");
    for raw in [hwid, "203.0.113.77"] {
        assert!(!err.contains(raw), "{raw} in the log:\n{err}");
        assert!(!stdout(&o).contains(raw), "{raw} in the output");
    }
    let list = stdout(&run(&cfg, &["findings", "list"]));
    assert!(list.contains(&accounts[0].email), "{list}");
    assert!(!list.contains(hwid), "{list}");
}
