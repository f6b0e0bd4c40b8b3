//! RAR archives (RAR 4 and RAR 5, the format stealer-log sellers use most), read through
//! The Unarchiver's `lsar` and `unar` (Debian package `unar`, LGPL) as subprocesses.
//!
//! Why a subprocess: the only maintained Rust RAR reader binds RARLAB's UnRAR code, whose
//! licence is not open source; libarchive reads RAR 5 but not encrypted RAR 5. `unar`
//! reads both, with passwords. It is given the archive through an anonymous memory file
//! (`memfd`), so nothing of an archive is written to disk in clear, and it runs with
//! limits: no file may be written (`RLIMIT_FSIZE` 0; entries come out on its stdout),
//! bounded CPU time and address space, nested archives left to us (`-no-recursion`).
//! (Under the shipped systemd unit, which filters the calls that set limits, it runs in
//! the service's sandbox instead: no writable path but the state directory.)
//! What it writes is counted against the same limits as any other archive's entries.
//! Without `unar` on the machine, a RAR archive is reported, naming the package.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Child, Command, Stdio};

use super::budget::{Compressed, Counter, CountingReader, LeafReader, LimitHit, RatioReader};
use super::walk::{Flow, Walker};

/// CPU seconds one `lsar` or `unar` may take.
const CPU_SECONDS: libc::rlim_t = 600;
/// Address space one may take.
const ADDRESS_SPACE: libc::rlim_t = 2 << 30;
/// Bytes of a tool's error output kept for the report.
const STDERR_KEPT: usize = 4096;

/// One entry of `lsar -j`.
#[derive(Debug, serde::Deserialize)]
struct Listed {
    #[serde(rename = "XADFileName")]
    name: String,
    #[serde(rename = "XADIndex")]
    index: u64,
    #[serde(rename = "XADFileSize", default)]
    size: Option<u64>,
    #[serde(rename = "XADCompressedSize", default)]
    compressed: Option<u64>,
    #[serde(rename = "XADIsDirectory", default)]
    directory: Option<serde_json::Value>,
    #[serde(rename = "XADIsEncrypted", default)]
    encrypted: Option<serde_json::Value>,
}

#[derive(Debug, serde::Deserialize)]
struct Listing {
    #[serde(rename = "lsarContents", default)]
    contents: Vec<Listed>,
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// Whether `lsar` and `unar` can be run here. Once found they are remembered; while
/// missing they are looked for again at each RAR archive (two process starts, for a rare
/// input), so that installing them takes effect without restarting the daemon. (Caching
/// "missing" also made the RAR tests fail on a fresh machine: a test that met a RAR first
/// cached it while another was installing `unar`.)
pub fn available() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FOUND: AtomicBool = AtomicBool::new(false);
    if FOUND.load(Ordering::Relaxed) {
        return true;
    }
    let now = available_now();
    if now {
        FOUND.store(true, Ordering::Relaxed);
    }
    now
}

/// Whether `lsar` and `unar` can be run here now.
pub fn available_now() -> bool {
    ["lsar", "unar"].iter().all(|tool| {
        Command::new(tool)
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// A tool's command with its limits; its stdout piped, its stderr to `err`.
fn tool(name: &str, err: &File) -> io::Result<Command> {
    let mut cmd = Command::new(name);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err.try_clone()?));
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let limit = |resource, value: libc::rlim_t| {
                let r = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                // Under the shipped systemd unit the `@resources` calls are filtered
                // (EPERM): unar then runs in the service's own sandbox, without these.
                if libc::setrlimit(resource, &r) != 0
                    && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                {
                    return Err(io::Error::last_os_error());
                }
                Ok::<(), io::Error>(())
            };
            limit(libc::RLIMIT_FSIZE, 0)?;
            limit(libc::RLIMIT_CPU, CPU_SECONDS)?;
            limit(libc::RLIMIT_AS, ADDRESS_SPACE)?;
            limit(libc::RLIMIT_CORE, 0)?;
            Ok(())
        });
    }
    Ok(cmd)
}

/// An anonymous memory file (not on any file system), inherited by the tools.
fn memfd() -> io::Result<File> {
    // SAFETY: a plain syscall; the name is a NUL-terminated literal.
    let fd = unsafe { libc::memfd_create(c"leakwatch-rar".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// What a tool wrote on its stderr, first line, bounded.
fn said(err: &mut File) -> String {
    let mut text = Vec::new();
    let _ = err.seek(SeekFrom::Start(0));
    let _ = err.take(STDERR_KEPT as u64).read_to_end(&mut text);
    let _ = err.set_len(0);
    let _ = err.seek(SeekFrom::Start(0));
    let text = String::from_utf8_lossy(&text);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    super::clean_name(line)
}

impl Walker<'_, '_> {
    /// A RAR archive found at `depth` (its layer's number, the archive's own).
    pub(super) fn rar(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> Flow {
        if !available() {
            self.skip(
                name,
                "RAR archive: reading it needs `unar` and `lsar` (Debian package `unar`)",
            );
            return Flow::Failed;
        }
        match self.rar_inner(name, input, depth) {
            Ok(flow) => flow,
            Err(e) => {
                if LimitHit::of(&e).is_some_and(|h| h.total) {
                    self.stopped = true;
                }
                self.broken(name, "rar", e);
                Flow::Failed
            }
        }
    }

    fn rar_inner(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> io::Result<Flow> {
        // The archive into memory, within the entry and total limits like a spool.
        let limits = self.limits().clone();
        let mut archive = memfd()?;
        let mut leaf = LeafReader::new(
            input,
            limits.max_entry_bytes,
            self.total_counter(),
            limits.max_archive_bytes,
        );
        io::copy(&mut leaf, &mut archive)?;
        archive.flush()?;
        let path = format!("/proc/self/fd/{}", archive.as_raw_fd());
        let mut err = memfd()?;

        // The listing: without a password, then with each (RAR 5 can encrypt its headers).
        let mut listing = None;
        let mut why = String::new();
        for password in std::iter::once(None).chain(self.opts.passwords.iter().map(Some)) {
            let mut cmd = tool("lsar", &err)?;
            if let Some(pw) = password {
                cmd.arg("-p").arg(pw);
            }
            let out = cmd.args(["-j", "-nr"]).arg(&path).output()?;
            if out.status.success() {
                if let Ok(l) = serde_json::from_slice::<Listing>(&out.stdout) {
                    listing = Some((l, password.cloned()));
                    break;
                }
            }
            why = said(&mut err);
        }
        let Some((listing, list_password)) = listing else {
            return Err(io::Error::other(if why.is_empty() {
                "lsar cannot read it".to_string()
            } else {
                why
            }));
        };
        let files: Vec<&Listed> = listing
            .contents
            .iter()
            .filter(|e| !truthy(&e.directory))
            .collect();
        if files.is_empty() {
            // lsar lists a damaged archive as empty rather than failing.
            self.note_empty(name, "rar", 0);
            return Ok(Flow::Failed);
        }
        let max = limits.max_archive_entries;
        if self.entries + files.len() as u64 > max {
            self.skip(
                name,
                format!(
                    "{} entries, over limits.max_archive_entries ({max})",
                    files.len()
                ),
            );
            return Ok(Flow::Failed);
        }
        let mut good = list_password;
        for entry in files {
            if self.must_stop() || !self.count_entry(name) {
                return Ok(Flow::Stop);
            }
            let entry_name = self.entry_name(name, &entry.name);
            if let Some(size) = entry.size.filter(|&s| s > limits.max_entry_bytes) {
                let m = limits.max_entry_bytes;
                self.skip(
                    &entry_name,
                    format!("declares {size} bytes, over limits.max_entry_bytes ({m})"),
                );
                continue;
            }
            // An encrypted entry: the password that opened the previous one first; each is
            // tested (`lsar -t`) before the entry is read, since a read cannot be undone.
            let password = if truthy(&entry.encrypted) {
                let order: Vec<&String> = good.iter().chain(self.opts.passwords.iter()).collect();
                let mut opened = None;
                for pw in order {
                    let ok = tool("lsar", &err)?
                        .args(["-t", "-nr", "-i", "-p"])
                        .arg(pw)
                        .arg(&path)
                        .arg(entry.index.to_string())
                        .output()?;
                    let _ = said(&mut err);
                    if ok.status.success() && tested_ok(&String::from_utf8_lossy(&ok.stdout)) {
                        opened = Some(pw.clone());
                        break;
                    }
                }
                let Some(pw) = opened else {
                    let n = self.opts.passwords.len();
                    self.skip(
                        &entry_name,
                        format!("encrypted, and none of the {n} archive_passwords opens it"),
                    );
                    continue;
                };
                good = Some(pw.clone());
                Some(pw)
            } else {
                None
            };
            let mut cmd = tool("unar", &err)?;
            cmd.args(["-q", "-nr", "-o", "-", "-i"]);
            if let Some(pw) = &password {
                cmd.arg("-p").arg(pw);
            }
            let mut child: Child = cmd.arg(&path).arg(entry.index.to_string()).spawn()?;
            let Some(stdout) = child.stdout.take() else {
                let _ = child.kill();
                return Err(io::Error::other("unar gave no output"));
            };
            let compressed = entry.compressed.unwrap_or(entry.size.unwrap_or(0));
            // unar writes what it could of a damaged entry and says nothing on its way out:
            // the bytes are counted against the size the archive declares.
            let produced = Counter::default();
            let counted = CountingReader {
                inner: stdout,
                count: produced.clone(),
            };
            let mut limited = RatioReader::new(
                counted,
                Compressed::Fixed(compressed),
                limits.max_compression_ratio,
                Counter::default(),
            );
            let flow = self.stream_reported(&entry_name, &mut limited, depth);
            drop(limited);
            // A stream stopped early (a limit, a shutdown) leaves unar writing to a closed
            // pipe: it ends on SIGPIPE, or is ended here.
            if flow != Flow::Done {
                let _ = child.kill();
            }
            let status = child.wait()?;
            let complaint = said(&mut err);
            let short = entry.size.filter(|&s| produced.get() < s);
            if flow == Flow::Done {
                if let Some(size) = short {
                    let got = produced.get();
                    self.broken(
                        &entry_name,
                        "rar",
                        format!("cut short: {got} of {size} bytes"),
                    );
                } else if !status.success() && !complaint.is_empty() {
                    self.broken(&entry_name, "rar", complaint);
                }
            }
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Done)
    }
}

/// Whether `lsar -t`'s report says the entries it tested passed, every one (its last
/// line: `1 passed, 0 failed.`). Looking for the word "failed" anywhere, as this once
/// did, refused every encrypted entry: the summary of a success says "0 failed".
fn tested_ok(report: &str) -> bool {
    report
        .lines()
        .rev()
        .find_map(|line| {
            let (passed, failed) = line.trim().trim_end_matches('.').split_once(", ")?;
            let passed: u64 = passed.strip_suffix(" passed")?.parse().ok()?;
            let failed: u64 = failed.strip_suffix(" failed")?.parse().ok()?;
            Some(passed > 0 && failed == 0)
        })
        .unwrap_or(false)
}
