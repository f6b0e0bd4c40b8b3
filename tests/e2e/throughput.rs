//! The fast path through the binary: a generated dump read on several threads, plain, in a
//! gzip and in a zip, gives exactly what the line-by-line reference path gives (the same
//! counts, the same findings at the same lines), and finds every planted account.

use std::io::Write;
use std::path::Path;

use leakwatch::synth;

use crate::support::*;

/// The summary lines without the mail part (the second run of a state sends none).
fn counts(o: &std::process::Output) -> String {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with("ingest:") || l.starts_with("filter:"))
        .map(|l| l.split("; mails:").next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// (email, kind, severity, first source with its line) of every finding.
fn findings(config: &Path) -> Vec<(String, String, String, String)> {
    let o = run(config, &["findings", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut rows: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("email"), s("kind"), s("severity"), s("first_source"))
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn fast_path_gives_the_reference_findings_plain_and_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let planted = synth::write_bench(&data, 5, 4000, 6 << 20, 150).unwrap();
    let combo = data.join("combo.txt");
    // The same list in a gzip and in a zip.
    let gz = data.join("combo.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&combo).unwrap()).unwrap();
    enc.finish().unwrap();
    let zipped = data.join("combo.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
    z.start_file("combo.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(&std::fs::read(&combo).unwrap()).unwrap();
    z.finish().unwrap();

    let run_once = |name: &str, input: &Path, extra: &[&str]| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = write_config(&dir, "file", "");
        import(&config, &data.join("accounts.csv"));
        let mut args = vec!["ingest", "--no-progress"];
        args.extend(extra);
        args.push(input.to_str().unwrap());
        let o = run(&config, &args);
        expect_code(&o, 0);
        (counts(&o), findings(&config))
    };
    let (want_counts, want) = run_once("reference", &combo, &["--reference"]);
    let emails: std::collections::BTreeSet<String> = want.iter().map(|f| f.0.clone()).collect();
    assert_eq!(
        emails,
        planted.iter().cloned().collect(),
        "the reference finds the planted accounts"
    );
    assert!(want_counts.contains(" 150 matches"), "{want_counts}");

    for (name, input, threads) in [
        ("one-thread", &combo, "1"),
        ("three-threads", &combo, "3"),
        ("gzip", &gz, "2"),
        ("zip", &zipped, "2"),
    ] {
        let (got_counts, got) = run_once(name, input, &["--threads", threads]);
        assert_eq!(got_counts, want_counts, "{name}");
        // Sources name the input: compare the line numbers, not the file names.
        let strip =
            |f: &[(String, String, String, String)]| -> Vec<(String, String, String, String)> {
                f.iter()
                    .map(|(e, k, s, src)| {
                        (
                            e.clone(),
                            k.clone(),
                            s.clone(),
                            src.rsplit(':').next().unwrap().to_string(),
                        )
                    })
                    .collect()
            };
        assert_eq!(strip(&got), strip(&want), "{name}");
    }
}

/// A leak of the whole user base, read three times (new, again, and reshuffled with
/// changed passwords, new shapes and unknown org addresses) on the fast path, gives what
/// the reference path gives: past [`leakwatch`]'s threshold the known findings are held in
/// memory and lines already recorded are known off the store's thread, and that must
/// change nothing that is recorded or counted.
#[test]
fn a_leak_of_the_whole_user_base_read_again_is_recorded_as_by_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // More hits than the store's threshold for holding them in memory (16,384) and than
    // one run of deferred lines (8,192).
    let n = 20_000;
    synth::write_heavy(&data, 17, n).unwrap();
    let all = std::fs::read_to_string(data.join("all.txt")).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    // Reshuffled: every third line first, 300 passwords changed, 200 lines as ULP with a
    // site, and addresses on the organisation's domain that no account holds.
    let mut mixed: Vec<String> = lines.iter().step_by(3).map(|l| l.to_string()).collect();
    for (i, l) in lines.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        let (email, pw) = l.split_once(':').unwrap();
        mixed.push(match i % 97 {
            1..=15 => format!("{email}:{pw}-changed"),
            16..=25 => format!("https://intranet.example/login:{email}:{pw}"),
            _ => l.to_string(),
        });
    }
    for i in 0..50 {
        mixed.push(format!("nobody{i}@{}:pw{i}", synth::DEMO_ORG_DOMAIN));
    }
    std::fs::write(data.join("mixed.txt"), mixed.join("\n") + "\n").unwrap();

    let run_all = |name: &str, extra: &[&str]| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = write_config(&dir, "file", "");
        import(&config, &data.join("accounts.csv"));
        let mut counted = Vec::new();
        for file in ["all.txt", "all.txt", "mixed.txt"] {
            let path = data.join(file);
            let mut args = vec!["ingest", "--no-progress"];
            args.extend(extra);
            args.push(path.to_str().unwrap());
            let o = run(&config, &args);
            expect_code(&o, 0);
            counted.push(counts(&o));
        }
        let o = run(&config, &["findings", "list", "--json"]);
        expect_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let mut rows: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {} {} {}",
                    f["email"],
                    f["kind"],
                    f["severity"],
                    f["first_source"],
                    f["times_seen"],
                    f["sources"]
                )
            })
            .collect();
        rows.sort();
        (counted, rows)
    };
    let (want_counts, want) = run_all("reference", &["--reference"]);
    assert!(
        want_counts[0].contains(&format!(" {n} new findings")),
        "{want_counts:?}"
    );
    assert!(
        want_counts[1].contains(&format!(" {n} matches, 0 new findings")),
        "{want_counts:?}"
    );
    assert!(
        want_counts[2].contains(" 50 new unknown"),
        "{want_counts:?}"
    );
    assert!(
        !want_counts[2].contains(" 0 new findings"),
        "{want_counts:?}"
    );
    let (got_counts, got) = run_all("fast", &["--threads", "2"]);
    assert_eq!(got_counts, want_counts);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}
