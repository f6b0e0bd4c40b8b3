//! Hostile text through the binary: a directory name that once stopped all mail, text a
//! dump put in a site that once reached the admin's terminal raw.

use crate::support::*;

/// A CR/LF in a directory name made lettre panic while the user's mail was composed;
/// with `panic = "abort"` every later run died the same way and no mail went out again.
/// Now the import cleans the name (and says which line), the mails go out, and no header
/// can be added through a name.
#[test]
fn a_line_break_in_a_directory_name_stops_no_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let csv = tmp.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "email,name\n\
         jean@agence-exemple.fr,\"Jean\r\nBcc: evil@example.net\"\n\
         marie@agence-exemple.fr,\"Marie\u{1b}[31m\u{7}\u{2028}Curie\"\n\
         paul@agence-exemple.fr,Paul Martin\n",
    )
    .unwrap();
    let o = run(&cfg, &["accounts", "import", csv.to_str().unwrap()]);
    expect_code(&o, 0);
    assert_stderr(&o, "line=2");
    assert_stderr(&o, "control characters");

    let dump = tmp.path().join("combo.txt");
    std::fs::write(
        &dump,
        "jean@agence-exemple.fr:Secret-1\nmarie@agence-exemple.fr:Secret-2\npaul@agence-exemple.fr:Secret-3\n",
    )
    .unwrap();
    expect_code(&ingest(&cfg, &[&dump]), 0);
    // Again: nothing left pending that a second run would trip on.
    expect_code(&ingest(&cfg, &[&dump]), 0);
    let outbox = tmp.path().join("state/outbox");
    let counts = user_mail_counts(&outbox);
    for who in ["jean", "marie", "paul"] {
        assert_eq!(
            counts.get(&format!("{who}@agence-exemple.fr")),
            Some(&1),
            "{counts:?}"
        );
    }
    for (path, raw) in all_files(&outbox) {
        let text = String::from_utf8_lossy(&raw);
        let head = &text[..text.find("\r\n\r\n").unwrap_or(text.len())];
        for line in head.split("\r\n") {
            assert!(!line.starts_with("Bcc:"), "{}: {line:?}", path.display());
            assert!(!line.bytes().any(|b| b == 0x1b || b == 0x07), "{line:?}");
        }
    }
}

/// Text a dump put where a site goes (here ESC and BEL in a ULP line's host) is stored
/// as read, but `findings list` shows it escaped: nothing reaches the terminal raw.
#[test]
fn findings_list_escapes_what_a_dump_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let csv = tmp.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "email\njean@agence-exemple.fr\nmarie@agence-exemple.fr\npaul@agence-exemple.fr\n",
    )
    .unwrap();
    import(&cfg, &csv);
    let dump = tmp.path().join("ulp.txt");
    std::fs::write(
        &dump,
        "https://evil\u{1b}]0;owned\u{7}.example/login:jean@agence-exemple.fr:Secret-1\n\
         https://sso[.]agence-exemple[.]fr urgent call +33 1 23 45 67 89/login:marie@agence-exemple.fr:Secret-2\n\
         https://sso.agence-exemple\u{ff0e}fr/login:paul@agence-exemple.fr:Secret-3\n",
    )
    .unwrap();
    expect_code(&ingest(&cfg, &[&dump]), 0);
    let o = run(&cfg, &["findings", "list"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("jean@agence-exemple.fr"), "{out}");
    assert!(!out.bytes().any(|b| b == 0x1b || b == 0x07), "{out:?}");
    assert!(
        out.contains("\\x1b]0;owned\\x07"),
        "the site is shown, escaped: {out}"
    );

    // The users' mails name a site only when it is a host name.
    let mails = read_outbox(&tmp.path().join("state/outbox"));
    let to = |who: &str| {
        mails
            .iter()
            .find(|m| m.to_address() == who)
            .unwrap_or_else(|| panic!("no mail to {who}"))
            .text
            .clone()
    };
    let jean = to("jean@agence-exemple.fr");
    assert!(
        !jean.contains("owned") && !jean.contains('\u{1b}'),
        "{jean}"
    );
    let marie = to("marie@agence-exemple.fr");
    assert!(
        !marie.contains("urgent") && !marie.contains("+33"),
        "{marie}"
    );
    let paul = to("paul@agence-exemple.fr");
    assert!(paul.contains("sso[.]agence-exemple[.]fr"), "{paul}");
}

/// A state directory that already exists open to others (0755, as `mkdir` makes it) is
/// warned about, and every file leakwatch writes in it is still its own alone (0600;
/// directories 0700): the database, the filter, the key index, the installation key, the
/// outbox's messages.
#[test]
fn state_files_are_private_whatever_the_directory() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let csv = tmp.path().join("accounts.csv");
    std::fs::write(&csv, "email\njean@agence-exemple.fr\n").unwrap();
    let o = run(&cfg, &["accounts", "import", csv.to_str().unwrap()]);
    expect_code(&o, 0);
    assert_stderr(&o, "chmod 700");
    let dump = tmp.path().join("combo.txt");
    std::fs::write(&dump, "jean@agence-exemple.fr:Secret-1\n").unwrap();
    expect_code(&ingest(&cfg, &[&dump]), 0);
    let files = all_files(&state);
    assert!(files.len() >= 5, "{files:?}");
    assert!(
        files
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "eml")),
        "a mail was written"
    );
    for (path, _) in &files {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
    for entry in std::fs::read_dir(&state).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
    }
}

/// Whoever can write the drop directory plants a link to a file elsewhere, a FIFO, and a
/// link where `processed/` should be. The run reads neither the link's target nor waits
/// on the FIFO, moves nothing out of the tree, and says why for each in the run's row.
#[test]
fn a_drop_directory_cannot_lead_the_run_out_of_it() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    let csv = tmp.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "email\njean@agence-exemple.fr\nmarie@agence-exemple.fr\npaul@agence-exemple.fr\n",
    )
    .unwrap();
    import(&cfg, &csv);
    let (drop, outside, elsewhere) = (
        tmp.path().join("drop"),
        tmp.path().join("outside"),
        tmp.path().join("elsewhere"),
    );
    for d in [&drop, &outside, &elsewhere] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(drop.join("ok.txt"), "paul@agence-exemple.fr:Secret-3\n").unwrap();
    std::fs::write(
        outside.join("secret.txt"),
        "jean@agence-exemple.fr:Secret-1\n",
    )
    .unwrap();
    symlink(outside.join("secret.txt"), drop.join("link.txt")).unwrap();
    symlink(&outside, drop.join("folder")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        drop.join("pipe.txt"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    symlink(&elsewhere, drop.join("processed")).unwrap();
    std::fs::write(
        feeds.join("drop.toml"),
        format!(
            "name = \"drop\"\nkind = \"directory\"\nschedule = \"*/5 * * * *\"\npath = \"{}\"\nprocessed_dir = \"{}\"\nsettle_secs = 0\n",
            drop.display(),
            drop.join("processed").display()
        ),
    )
    .unwrap();
    // Exit 1: the run had problems, said below.
    let o = run(&cfg, &["run", "--once"]);
    expect_code(&o, 1);
    let status = stdout(&run(&cfg, &["status"]));
    for said in [
        "link.txt: refused: a symbolic link, not followed",
        "folder: refused: a symbolic link, not followed",
        "pipe.txt: refused: a FIFO, not a regular file",
        "processed_dir: refused: a symbolic link, not followed",
    ] {
        assert!(status.contains(said), "{said:?} not in {status}");
    }
    let counts = user_mail_counts(&tmp.path().join("state/outbox"));
    assert_eq!(counts.get("paul@agence-exemple.fr"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("jean@agence-exemple.fr"), None, "{counts:?}");
    // Nothing moved out through the planted link; the file read stays where it was.
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(drop.join("ok.txt").exists());
    assert!(outside.join("secret.txt").exists());
}
