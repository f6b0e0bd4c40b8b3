//! The daemon as a process: it picks up dropped files on its schedule, mails once, reloads
//! on SIGHUP (refusing a broken feed file), stops in time on SIGTERM, and after `kill -9`
//! and a restart neither loses nor repeats a notification.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leakwatch::synth;

use crate::support::*;

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(cfg: &Path, log: &Path) -> Daemon {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .arg("run")
            .env("RUST_LOG", "leakwatch=info")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            log: log.to_path_buf(),
        };
        d.wait_log(1, "leakwatch daemon started");
        d
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// Waits until `needle` has appeared `n` times in the log (all starts included).
    #[track_caller]
    fn wait_log(&self, n: usize, needle: &str) {
        wait_for(60, needle, || self.log_count(needle) >= n);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops a file the way a careful copy does: written under a `.part` name, then renamed.
fn drop_file(from: &Path, dir: &Path) {
    let name = from.file_name().unwrap().to_str().unwrap();
    let part = dir.join(format!("{name}.part"));
    std::fs::copy(from, &part).unwrap();
    std::fs::rename(&part, dir.join(name)).unwrap();
}

fn drop_feed(name: &str, dir: &Path) -> String {
    format!(
        "name = \"{name}\"\nkind = \"directory\"\nschedule = \"*/1 * * * * *\"\npath = \"{}\"\nprocessed_dir = \"{}\"\nsettle_secs = 0\n",
        dir.display(),
        dir.join("processed").display()
    )
}

#[test]
fn daemon_picks_up_drops_reloads_stops_in_time_and_survives_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sc = synth::write_scenario(&data, 41, 40, 300).unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    import(&cfg, &data.join("accounts.csv"));
    let (drop1, drop2) = (tmp.path().join("drop1"), tmp.path().join("drop2"));
    std::fs::create_dir_all(&drop1).unwrap();
    std::fs::create_dir_all(&drop2).unwrap();
    std::fs::write(feeds.join("drop1.toml"), drop_feed("drop1", &drop1)).unwrap();
    let log = tmp.path().join("daemon.log");
    let outbox = tmp.path().join("state/outbox");
    let dumps = data.join("dumps");

    let d = Daemon::start(&cfg, &log);
    drop_file(&dumps.join("combo.txt"), &drop1);
    d.wait_log(1, "feed run finished feed=drop1 outcome=\"ok\"");
    assert!(drop1.join("processed/combo.txt").exists());
    assert!(!drop1.join("combo.txt").exists());
    let after_combo = user_mail_counts(&outbox);
    assert!(!after_combo.is_empty());
    let s = stdout(&run(&cfg, &["status"]));
    assert!(s.contains("daemon: running, pid"), "{s}");
    assert!(s.contains("drop1"), "{s}");

    // A broken feed file: the reload is refused and the old feeds keep running.
    std::fs::write(
        feeds.join("broken.toml"),
        "name = \"broken\"\nkind = \"http\"\nschedule = \"* * *\"\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log(1, "reload refused");
    std::fs::remove_file(feeds.join("broken.toml")).unwrap();
    // A new feed file: added on the next reload.
    std::fs::write(feeds.join("drop2.toml"), drop_feed("drop2", &drop2)).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log(1, "configuration reloaded");
    drop_file(&dumps.join("ulp.txt"), &drop2);
    d.wait_log(1, "feed run finished feed=drop2 outcome=\"ok\"");
    assert!(drop2.join("processed/ulp.txt").exists());
    // Nothing from the first file was sent again.
    let now = user_mail_counts(&outbox);
    assert!(now.values().all(|n| *n == 1), "{now:?}");
    assert!(now.len() > after_combo.len());

    // kill -9 while the next files are being picked up, then a restart.
    drop_file(&dumps.join("leak-site.csv"), &drop1);
    drop_file(&dumps.join("stealer-logs.zip"), &drop1);
    std::thread::sleep(Duration::from_millis(700));
    let mut d = d;
    let _ = d.child.kill();
    let _ = d.child.wait();
    drop(d);

    let d = Daemon::start(&cfg, &log);
    wait_for(60, "both files processed", || {
        drop1.join("processed/leak-site.csv").exists()
            && drop1.join("processed/stealer-logs.zip").exists()
    });
    let exp = &sc.expected;
    let want: BTreeSet<String> = exp.password.iter().chain(&exp.identity).cloned().collect();
    wait_for(60, "every planted account mailed", || {
        user_mail_counts(&outbox)
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
            == want
    });

    // SIGTERM: a clean stop, within the promised 10 seconds.
    let mut d = d;
    let asked = Instant::now();
    d.signal(libc::SIGTERM);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("leakwatch daemon stopped"));

    let counts = user_mail_counts(&outbox);
    assert!(
        counts.values().all(|n| *n == 1),
        "a mail was sent twice: {counts:?}"
    );
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), want);
    let s = stdout(&run(&cfg, &["status"]));
    assert!(
        s.contains("daemon: not running") && s.contains("stopped"),
        "{s}"
    );
    assert!(s.contains("mail queue: 0 pending"), "{s}");
    assert_nowhere(&tmp.path().join("state"), &exp.passwords);
}

#[test]
fn daemon_speaks_the_systemd_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "file", "");
    let feeds = add_feeds_dir(&cfg, tmp.path());
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(feeds.join("drop.toml"), drop_feed("drop", &drop)).unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // `exec` keeps the shell's pid, so WATCHDOG_PID names the daemon, as systemd sets it.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ exec {BIN} --config {} run",
            cfg.display()
        ))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let recv_until = |want: &str, seen: &mut String| {
        let mut buf = [0u8; 4096];
        while !seen.contains(want) {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want} from the daemon ({e}); got:\n{seen}"));
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    };
    recv_until("READY=1", &mut seen);
    recv_until("STATUS=", &mut seen);
    recv_until("WATCHDOG=1", &mut seen);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    recv_until("RELOADING=1", &mut seen);
    assert!(seen.contains("MONOTONIC_USEC="), "{seen}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    recv_until("STOPPING=1", &mut seen);
    assert!(child.wait().unwrap().success());
    // READY came before anything was run, and STATUS says what the daemon does next.
    assert!(
        seen.contains("STATUS=idle; next drop at") || seen.contains("STATUS=running drop"),
        "{seen}"
    );
}
