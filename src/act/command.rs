//! `command`: an executable of the admins' run for each action, without a shell (no
//! argument is ever built from a finding), with an empty environment but `PATH`, the
//! action as JSON on its standard input, and a timeout after which it is killed. Exit 0
//! is done; anything else is a failure tried again later; the first line of its standard
//! error (cleaned, 200 characters) is kept as the reason.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Failure;
use crate::config::CommandTarget;

/// Output kept from the command's standard error.
const STDERR_KEPT: u64 = 4096;

pub fn run(c: &CommandTarget, input: &[u8]) -> Result<String, Failure> {
    let mut child = Command::new(&c.path)
        .args(&c.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::permanent(format!("command {}: {e}", c.path.display())))?;
    // Written from a thread: a command that does not read its input must not block us
    // past the timeout.
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(STDERR_KEPT).read_to_end(&mut buf);
        // Drained so that a chatty command never blocks on a full pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(c.timeout_secs);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(Failure::transient(format!(
                    "command {}: {e}",
                    c.path.display()
                )))
            }
        }
    };
    let _ = writer.join();
    let err = reader.join().unwrap_or_default();
    let first = String::from_utf8_lossy(&err);
    let first = super::clean(first.lines().next().unwrap_or(""));
    match status {
        None => Err(Failure::transient(format!(
            "command {}: killed after {} s",
            c.path.display(),
            c.timeout_secs
        ))),
        Some(s) if s.success() => Ok(format!("command {}: exit 0", c.path.display())),
        Some(s) => Err(Failure::transient(format!(
            "command {}: {s}{}{first}",
            c.path.display(),
            if first.is_empty() { "" } else { ": " }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str, args: &[&str], timeout_secs: u64) -> CommandTarget {
        CommandTarget {
            path: path.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout_secs,
        }
    }

    /// The input reaches the command's stdin, no shell reads the arguments, a failure
    /// keeps one clean line of stderr, and a command that hangs is killed at its timeout.
    #[test]
    fn runs_without_a_shell_with_json_on_stdin_and_a_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("got");
        let ok = target(
            "/bin/sh",
            &["-c", "cat > \"$0\"", out.to_str().unwrap()],
            10,
        );
        run(&ok, br#"{"action_id":7}"#).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), br#"{"action_id":7}"#);
        // `$(...)` in an argument stays text: nothing interprets it.
        let echo = target("/bin/echo", &["$(touch /tmp/leakwatch-never)"], 10);
        run(&echo, b"").unwrap();
        assert!(!std::path::Path::new("/tmp/leakwatch-never").exists());
        let fail = target(
            "/bin/sh",
            &[
                "-c",
                "printf 'no\\033[31m way\\tout\\r\\nsecond line\\n' >&2; exit 3",
            ],
            10,
        );
        let e = run(&fail, b"").unwrap_err();
        assert!(e.transient);
        assert!(
            e.message.ends_with("exit status: 3: no [31m way out"),
            "{}",
            e.message
        );
        let hang = target("/bin/sleep", &["30"], 1);
        let e = run(&hang, b"").unwrap_err();
        assert!(e.message.contains("killed after 1 s"), "{}", e.message);
        let missing = target("/nonexistent/leakwatch-hook", &[], 1);
        assert!(!run(&missing, b"").unwrap_err().transient);
    }
}
