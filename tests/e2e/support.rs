//! Helpers of the end-to-end tests: the real binary, configs in temporary directories,
//! reading an outbox of `.eml` files, and a real SMTP server (aiosmtpd) on loopback.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_leakwatch");

/// Runs `leakwatch --config <config> args…` and returns its output.
pub fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "leakwatch=info")
        .output()
        .expect("run leakwatch")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it is not the one expected.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// A config for `dir`: state in `dir/state`, file outbox, two admins. `notify_extra` is
/// appended inside `[notify]` (for SMTP settings).
pub fn write_config(dir: &Path, transport: &str, notify_extra: &str) -> PathBuf {
    let text = format!(
        r#"
[organization]
name = "Agence Exemple"
domains = ["agence-exemple.fr"]
login_hosts = ["sso.agence-exemple.fr"]
[state]
dir = "{state}"
[notify]
transport = "{transport}"
from = "Sécurité <securite@agence-exemple.fr>"
admins = ["secops@agence-exemple.fr", "rssi@agence-exemple.fr"]
admin_lang = "en"
max_attempts = 5
{notify_extra}
"#,
        state = dir.join("state").display()
    );
    let path = dir.join("leakwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One parsed message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: BTreeMap<String, Vec<u8>>,
}

impl Mail {
    pub fn parse(file: &str, raw: &[u8]) -> Mail {
        let m = mailparse::parse_mail(raw).expect("parse message");
        let header = |name: &str| {
            m.headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case(name))
                .map(|h| h.get_value())
                .unwrap_or_default()
        };
        let mut mail = Mail {
            file: file.to_string(),
            to: header("To"),
            subject: header("Subject"),
            text: String::new(),
            html: String::new(),
            attachments: BTreeMap::new(),
        };
        for part in m.parts() {
            let disp = part.get_content_disposition();
            if let Some(name) = disp.params.get("filename") {
                mail.attachments
                    .insert(name.clone(), part.get_body_raw().unwrap());
                continue;
            }
            match part.ctype.mimetype.as_str() {
                "text/plain" => mail.text = part.get_body().unwrap(),
                "text/html" => mail.html = part.get_body().unwrap(),
                _ => {}
            }
        }
        mail
    }

    /// The bare address of the recipient.
    pub fn to_address(&self) -> String {
        let t = self.to.trim();
        match (t.rfind('<'), t.rfind('>')) {
            (Some(a), Some(b)) if a < b => t[a + 1..b].to_string(),
            _ => t.to_string(),
        }
    }
}

/// Every `.eml` in `dir`, sorted by file name.
pub fn read_outbox(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|p| Mail::parse(&p.display().to_string(), &std::fs::read(p).unwrap()))
        .collect()
}

/// Every file under `dir`, recursively, with its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python with aiosmtpd, trustme, prometheus_client (whose parser reads our metrics)
/// and dkimpy (which verifies our signatures): the one in `LEAKWATCH_TEST_PYTHON`, the system's
/// if it has them, else a virtualenv made once under the target directory from PyPI.
/// There is no silent skip: if none can be had, the SMTP tests fail and say why.
pub fn smtp_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let has_modules = |py: &Path| {
            Command::new(py)
                .args(["-c", "import aiosmtpd, trustme, prometheus_client, dkim"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Ok(p) = std::env::var("LEAKWATCH_TEST_PYTHON") {
            let p = PathBuf::from(p);
            assert!(has_modules(&p), "LEAKWATCH_TEST_PYTHON={} lacks aiosmtpd, trustme, prometheus_client or dkimpy", p.display());
            return p;
        }
        let system = PathBuf::from("python3");
        if has_modules(&system) {
            return system;
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smtp-venv");
        let py = venv.join("bin/python");
        if !has_modules(&py) {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "-q",
                        "aiosmtpd==1.4.6",
                        "trustme==1.2.1",
                        "prometheus-client==0.21.1",
                        "dkimpy==1.1.8",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok && has_modules(&py),
                "the SMTP and metrics tests need Python 3 with aiosmtpd, trustme, prometheus_client and dkimpy (pip install aiosmtpd trustme prometheus-client dkimpy), \
                 and could not install them into {}",
                venv.display()
            );
        }
        py
    })
}

/// Starts a test server script and waits for the "READY" line it prints once listening.
/// Its stdin is kept open: the scripts stop when it closes (when the test process dies).
pub fn spawn_ready(cmd: &mut Command, what: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "{what} did not start");
    child
}

/// aiosmtpd on 127.0.0.1, stopped when dropped (and when the test process dies, since it
/// exits when its stdin closes).
pub struct SmtpServer {
    child: Child,
    pub dir: PathBuf,
}

#[derive(Default, Clone)]
pub struct SmtpOptions {
    pub fail_first: u32,
    pub starttls: bool,
    pub auth: Option<(String, String)>,
}

impl SmtpServer {
    pub fn start(port: u16, dir: &Path, opts: &SmtpOptions) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtpd.py");
        let mut cmd = Command::new(smtp_python());
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--outdir"])
            .arg(dir)
            .args(["--fail-first", &opts.fail_first.to_string()]);
        if opts.starttls {
            cmd.arg("--starttls");
        }
        if let Some((u, p)) = &opts.auth {
            cmd.args(["--auth", &format!("{u}:{p}")]);
        }
        let child = spawn_ready(&mut cmd, "smtpd.py");
        SmtpServer {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Messages received so far, with their envelope metadata.
    pub fn received(&self) -> Vec<(Mail, serde_json::Value)> {
        received_in(&self.dir)
    }
}

/// The messages a test SMTP server saved in `dir` (NNNN.eml, envelope in NNNN.json).
pub fn received_in(dir: &Path) -> Vec<(Mail, serde_json::Value)> {
    {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let meta = std::fs::read_to_string(p.with_extension("json")).unwrap();
                (
                    Mail::parse(&p.display().to_string(), &std::fs::read(p).unwrap()),
                    serde_json::from_str(&meta).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `leakwatch accounts import FILE`, which must succeed.
#[track_caller]
pub fn import(config: &Path, csv: &Path) {
    expect_code(
        &run(config, &["accounts", "import", csv.to_str().unwrap()]),
        0,
    );
}

/// `leakwatch ingest --no-progress PATHS…`.
pub fn ingest(config: &Path, paths: &[&Path]) -> Output {
    let mut args = vec!["ingest", "--no-progress"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    run(config, &args)
}

/// Asserts that stdout contains `needle`, showing stdout when it does not.
#[track_caller]
pub fn assert_stdout(o: &Output, needle: &str) {
    let out = stdout(o);
    assert!(out.contains(needle), "stdout lacks {needle:?}:\n{out}");
}

/// Asserts that stderr contains `needle`, showing stderr when it does not.
#[track_caller]
pub fn assert_stderr(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}

/// Adds a `[feeds]` section pointing at `dir/feeds.d` (created) to a config from
/// `write_config`, and returns that directory.
pub fn add_feeds_dir(config: &Path, dir: &Path) -> PathBuf {
    let feeds = dir.join("feeds.d");
    std::fs::create_dir_all(&feeds).unwrap();
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("[feeds]\ndir = \"{}\"\n", feeds.display()));
    std::fs::write(config, text).unwrap();
    feeds
}

/// The test HTTP server (tests/support/httpd.py, Python's standard library) on loopback.
pub struct HttpServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl HttpServer {
    /// Starts it with `args` (see the script); its request log goes to `dir/http.log`.
    pub fn start(dir: &Path, args: &[&str]) -> HttpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/httpd.py");
        let port = free_port();
        let log = dir.join("http.log");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--log"])
            .arg(&log)
            .args(args);
        let child = spawn_ready(&mut cmd, "httpd.py (needs python3)");
        HttpServer { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Recipients of user mails in an outbox, with how many each got.
pub fn user_mail_counts(outbox: &Path) -> BTreeMap<String, usize> {
    let mut per_user = BTreeMap::new();
    for m in read_outbox(outbox) {
        if m.file.ends_with("-user.eml") {
            *per_user.entry(m.to_address()).or_default() += 1;
        }
    }
    per_user
}

/// Asserts that no file under `dir` contains any of `secrets`.
#[track_caller]
pub fn assert_nowhere(dir: &Path, secrets: &[String]) {
    for (path, bytes) in all_files(dir) {
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} contains a planted secret",
                path.display()
            );
        }
    }
}

/// Polls `cond` every 100 ms until it holds, failing with `what` after `secs` seconds.
/// (A bound on waiting for a daemon, not a timing assertion.)
#[track_caller]
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `unar` and `lsar` (RAR), installed from Debian's packages when missing and running as
/// root, as the tests install what they need; otherwise a failure naming the package.
pub fn ensure_unar() {
    ensure_debian_tools("unar", &["lsar", "unar"], "the RAR tests");
}

/// Installs Debian's `package` for `tools` when they are missing (as root, with apt-get),
/// so that `cargo test` alone passes on a fresh machine; panics, saying what to install,
/// when they still cannot run.
pub fn ensure_debian_tools(package: &str, tools: &[&str], who: &str) {
    let have = || {
        tools.iter().all(|t| {
            Command::new(t)
                .arg("-h")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
    };
    // Tests run in parallel: one installs, the others wait for it (two `apt-get` at once
    // fail on dpkg's lock).
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if have() {
        return;
    }
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    // No questions asked, and no service started by the package's scripts (slapd's would
    // listen on every interface): tests start their own servers, on loopback.
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("RUNLEVEL", "1")
        .status();
    assert!(
        have(),
        "{who} need {tools:?} (Debian package {package}): apt-get install {package}"
    );
}

/// The value of `header` in the message file at `path`.
pub fn mail_header(path: &str, header: &str) -> String {
    let raw = std::fs::read_to_string(path).unwrap();
    raw.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(header))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{path}: no {header}"))
}

/// A directory of `accounts` and a combo list of about `bytes` with `planted` of them in
/// it (`synth::write_bench`, seeded), ingested with the SMTP relay set to a loopback port
/// nobody listens on yet (`sessions` at once): every mail is queued. Returns the config,
/// the port, the planted addresses and the ingest's output.
pub fn queued_for_smtp(
    tmp: &Path,
    seed: u64,
    accounts: usize,
    bytes: u64,
    planted: usize,
    sessions: usize,
) -> (PathBuf, u16, Vec<String>, Output) {
    let data = tmp.join("data");
    let planted = leakwatch::synth::write_bench(&data, seed, accounts, bytes, planted).unwrap();
    let port = free_port();
    let cfg = write_config(
        tmp,
        "smtp",
        &format!("[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_secs = 5\nmax_connections = {sessions}\n"),
    );
    import(&cfg, &data.join("accounts.csv"));
    let o = ingest(&cfg, &[&data.join("combo.txt")]);
    expect_code(&o, 1);
    (cfg, port, planted, o)
}

/// Checks mail received by the test SMTP server: every planted account got mail, and
/// each recipient one message only, however often it came (a repeat has the same
/// Message-ID). Returns the repeats.
pub fn each_planted_mailed_once(
    received: impl IntoIterator<Item = (Mail, serde_json::Value)>,
    planted: &[String],
    context: &str,
) -> usize {
    let mut by_recipient: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (mail, meta) in received {
        let id = mail_header(&mail.file, "Message-ID");
        for r in meta["rcpt_tos"].as_array().unwrap() {
            by_recipient
                .entry(r.as_str().unwrap().to_string())
                .or_default()
                .push(id.clone());
        }
    }
    let users: Vec<&String> = by_recipient
        .keys()
        .filter(|r| !r.starts_with("secops@") && !r.starts_with("rssi@"))
        .collect();
    let mut want: Vec<&String> = planted.iter().collect();
    want.sort();
    assert_eq!(
        users, want,
        "every planted account got its mail ({context})"
    );
    let mut repeats = 0;
    for (r, ids) in &by_recipient {
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), 1, "{r} got different messages: {ids:?}");
        repeats += ids.len() - 1;
    }
    repeats
}
