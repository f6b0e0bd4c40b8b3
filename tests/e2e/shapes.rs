//! Every shape a leak site publishes, through the binary: SQL, JSON, tables in any
//! encoding, spreadsheets, text and combo variants, and their broken variants. Each
//! planted account is found with the right kind; nothing else is; what an address `grep`
//! finds in the same bytes is a subset of it; no planted password reaches the state, the
//! outbox or the logs; the damaged files are reported by name and the rest goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use leakwatch::synth::shapes::write_shapes;

use crate::support::*;

/// `(account, kind)` of every finding.
fn findings(cfg: &Path) -> BTreeSet<(String, String)> {
    let o = run(cfg, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["email"].as_str().unwrap().to_lowercase(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What `grep -rhoiaE` with the common address pattern prints for these files, lower case.
fn grep_addresses(paths: &[&Path]) -> BTreeSet<String> {
    let mut cmd = Command::new("grep");
    cmd.args(["-rhoiaE", "[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}"]);
    cmd.args(paths);
    let o = cmd.output().expect("grep runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn every_shape_is_read_beyond_what_grep_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = write_shapes(&data, 15, 6, true).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    import(&cfg, &data.join("accounts.csv"));
    let (dumps, hostile) = (data.join("dumps"), data.join("hostile"));

    let o = ingest(&cfg, &[&dumps, &hostile]);
    // The truncated workbook is an input error: exit 1, and everything else read.
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("truncated.xlsx"), "{err}");
    assert!(
        err.contains("unterminated.csv") && err.contains("line too long"),
        "{err}"
    );
    assert_stdout(&o, "1 input errors");

    // Every entry in exactly one counter: `E entries (I with identities, M malformed, Z without)`.
    let out = stdout(&o);
    let counts: Vec<u64> = out
        .split(" entries (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let entries: u64 = out
        .split(" entries (")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(counts.len(), 3, "{out}");
    assert_eq!(entries, counts.iter().sum::<u64>(), "{out}");
    assert!(
        counts[0]
            >= sc
                .files
                .iter()
                .filter(|f| f.promised)
                .map(|f| f.planted.len() as u64)
                .sum::<u64>()
                / 3,
        "{out}"
    );
    assert!(
        counts[1] >= 3,
        "the broken line, row and quote are counted: {out}"
    );

    let found = findings(&cfg);
    let kinds: BTreeMap<&str, BTreeSet<&str>> =
        found.iter().fold(BTreeMap::new(), |mut m, (e, k)| {
            m.entry(e.as_str()).or_default().insert(k.as_str());
            m
        });
    let mut promised = BTreeSet::new();
    let mut maybe = BTreeSet::new();
    for f in &sc.files {
        for p in &f.planted {
            let email = p.email.to_lowercase();
            if !f.promised {
                maybe.insert(email);
                continue;
            }
            let want = match (&p.password, p.hashed) {
                (Some(_), true) => "password_hash",
                (Some(_), false) => "password",
                (None, _) => "identity",
            };
            let got = kinds.get(email.as_str());
            assert!(
                got.is_some_and(|k| k.contains(want)),
                "{}: {email} should have a {want} finding, has {got:?}",
                f.path
            );
            if p.password.is_none() {
                assert!(
                    !got.unwrap().contains("password"),
                    "{}: {email} has no password in the dump",
                    f.path
                );
            }
            promised.insert(email);
        }
    }
    // Nothing else: decoys (lookalikes, strangers, unknown org addresses) give no finding.
    for email in kinds.keys() {
        assert!(
            promised.contains(*email) || maybe.contains(*email),
            "{email} was never planted"
        );
    }

    // A superset of an address grep over the same bytes, for every account it sees.
    let directory: BTreeSet<String> = sc.accounts.iter().map(|a| a.email.to_lowercase()).collect();
    let grep = grep_addresses(&[&dumps, &hostile]);
    let grep_accounts: BTreeSet<&String> = grep.iter().filter(|a| directory.contains(*a)).collect();
    for a in &grep_accounts {
        assert!(
            kinds.contains_key(a.as_str()),
            "grep finds {a}, leakwatch does not"
        );
    }
    assert!(
        promised.len() > grep_accounts.len(),
        "leakwatch found {} accounts, grep {}",
        promised.len(),
        grep_accounts.len()
    );

    // The org address no account has, one in each file, is listed as an unknown.
    let readable = sc.files.iter().filter(|f| f.promised).count();
    assert_stdout(&o, &format!("{readable} new unknown org identities"));

    // Hashes are on the forced-reset list with their algorithm, and the users are told
    // it was a hash of their password.
    let mails = read_outbox(&tmp.path().join("state/outbox"));
    let digest = mails
        .iter()
        .find(|m| m.file.ends_with("-digest.eml"))
        .unwrap();
    let csv = String::from_utf8(digest.attachments["forced-resets.csv"].clone()).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",hash_algorithm,verdict"),
        "{csv}"
    );
    let hashed: Vec<&str> = csv
        .lines()
        .filter(|l| l.contains(",password_hash,"))
        .collect();
    let planted_hashes = sc
        .files
        .iter()
        .flat_map(|f| &f.planted)
        .filter(|p| p.hashed)
        .count();
    assert_eq!(hashed.len(), planted_hashes, "{csv}");
    assert!(
        hashed
            .iter()
            .all(|l| l.ends_with(",bcrypt,unknown") || l.ends_with(",md5/ntlm,unknown")),
        "{csv}"
    );
    assert!(
        hashed.iter().any(|l| l.contains(",medium,"))
            && hashed.iter().any(|l| l.contains(",high,")),
        "{csv}"
    );
    assert!(mails
        .iter()
        .any(|m| m.text.contains("the hash of your password (bcrypt)")));

    // The reference path (each record settled alone, lines one by one) reads the same.
    let tmp2 = tempfile::tempdir().unwrap();
    let cfg2 = write_config(tmp2.path(), "file", "");
    import(&cfg2, &data.join("accounts.csv"));
    let mut args = vec!["ingest", "--no-progress", "--reference"];
    args.extend([dumps.to_str().unwrap(), hostile.to_str().unwrap()]);
    let reference = run(&cfg2, &args);
    expect_code(&reference, 1);
    let summary = |o: &std::process::Output| stdout(o).lines().next().unwrap().to_string();
    assert_eq!(summary(&reference), summary(&o));
    assert_eq!(findings(&cfg2), found);

    // No planted password anywhere: state, outbox, logs.
    assert_nowhere(&tmp.path().join("state"), &sc.passwords);
    for pw in &sc.passwords {
        assert!(
            !err.contains(pw.as_str()),
            "a planted password reached the log"
        );
    }
}
