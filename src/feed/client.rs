//! The HTTP client every network feed shares: options from the feed file, a `reqwest`
//! client built from them, and requests retried with exponential backoff and jitter.
//!
//! A configured `proxy` is the only proxy used: environment variables such as
//! `HTTPS_PROXY` are ignored, so that a feed meant to go through Tor can never leave
//! through some other route because of the environment it was started in. With
//! `socks5h://` the proxy resolves names, so `.onion` hosts work and no name of a leak
//! site is ever sent to the local resolver.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::cancel::Cancel;
use crate::secret;

/// The longest wait a `Retry-After` header can impose; beyond it the request fails and
/// the next scheduled run tries again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Client options, written as top-level keys of a network feed's file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientOptions {
    /// `socks5h://host:port` (Tor: `socks5h://127.0.0.1:9050`), `socks5://…` or `http(s)://…`.
    pub proxy: Option<String>,
    pub connect_timeout_secs: u64,
    /// Longest silence while reading a response.
    pub read_timeout_secs: u64,
    /// Longest a whole transfer may take, request and body (a download with its
    /// resumptions, an API call with its retries).
    pub deadline_secs: u64,
    /// Slowest a body may arrive, in bytes per second over each `rate_window_secs`: a
    /// server that trickles a byte every few seconds never trips `read_timeout_secs`, and
    /// would hold the feed (and, two such, every feed) for good. 0: no floor.
    pub min_bytes_per_sec: u64,
    pub rate_window_secs: u64,
    /// Attempts after the first, for connection errors, 5xx, 429 and cut downloads.
    pub retries: u32,
    /// First backoff; doubled at each retry (at most 60 s), with random jitter.
    pub retry_backoff_ms: u64,
    pub user_agent: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// A header sent with every request, its value read from `auth_file` (never written here).
    pub auth_header: Option<String>,
    pub auth_file: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            proxy: None,
            connect_timeout_secs: 30,
            read_timeout_secs: 120,
            deadline_secs: 6 * 3600,
            min_bytes_per_sec: 1024,
            rate_window_secs: 60,
            retries: 4,
            retry_backoff_ms: 1000,
            user_agent: None,
            ca_file: None,
            auth_header: None,
            auth_file: None,
        }
    }
}

impl ClientOptions {
    /// The keys of this struct, to split them from a feed kind's own keys.
    pub const KEYS: [&'static str; 12] = [
        "proxy",
        "connect_timeout_secs",
        "read_timeout_secs",
        "deadline_secs",
        "min_bytes_per_sec",
        "rate_window_secs",
        "retries",
        "retry_backoff_ms",
        "user_agent",
        "ca_file",
        "auth_header",
        "auth_file",
    ];

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(p) = &self.proxy {
            let scheme = p.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("socks5h" | "socks5" | "http" | "https")) {
                return Err((
                    "proxy",
                    format!("`{p}`: use socks5h://host:port (Tor), socks5://, http:// or https://"),
                ));
            }
            if p.contains('@') {
                return Err((
                    "proxy",
                    "no credentials in the proxy URL: this file is not a secret".into(),
                ));
            }
        }
        if self.connect_timeout_secs == 0 || self.read_timeout_secs == 0 {
            return Err((
                "read_timeout_secs",
                "timeouts must be at least 1 second".into(),
            ));
        }
        if self.deadline_secs == 0 || self.rate_window_secs == 0 {
            return Err((
                "deadline_secs",
                "deadline_secs and rate_window_secs must be at least 1 second".into(),
            ));
        }
        if self.retries > 20 {
            return Err(("retries", "at most 20".into()));
        }
        if self.auth_header.is_some() != self.auth_file.is_some() {
            return Err(("auth_file", "auth_header and auth_file go together".into()));
        }
        if let Some(h) = &self.auth_header {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| ("auth_header", format!("`{h}` is not a header name")))?;
        }
        Ok(())
    }

    /// Whether names are resolved by the proxy (required for `.onion` hosts).
    pub fn proxy_resolves_names(&self) -> bool {
        self.proxy
            .as_deref()
            .is_some_and(|p| p.starts_with("socks5h://"))
    }
}

/// Checks a feed URL: http(s) only, and an `.onion` host only through a proxy that
/// resolves names.
pub fn validate_url(url: &str, opts: &ClientOptions) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{}`: {e}", redact(url)))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("`{}`: only http and https", redact(url)));
    }
    let host = u.host_str().unwrap_or_default();
    if host.ends_with(".onion") && !opts.proxy_resolves_names() {
        return Err(format!(
            "`{}` is an onion service: set proxy = \"socks5h://127.0.0.1:9050\" (Tor), or its name would go to the local resolver",
            redact(url)
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "`{}`: no credentials in URLs; use auth_header and auth_file",
            redact(url)
        ));
    }
    Ok(u)
}

/// A URL as it may be logged and stored: no query string (it may carry a token).
pub fn redact(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let base = &url[..cut];
    // Credentials in the authority, if any slipped through, are dropped too.
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: larger than max_bytes = {max}")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: {message}")]
    Body { url: String, message: String },
    #[error("client setup: {0}")]
    Setup(String),
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    /// Past the transfer's deadline, or slower than its minimum rate: not retried (a
    /// retry would hold the feed as long again).
    #[error("{url}: {message}")]
    Slow { url: String, message: String },
    #[error("stopped by shutdown")]
    Cancelled,
}

impl FetchError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Request { .. } | FetchError::Body { .. } => true,
            FetchError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

/// The pace of one transfer: its deadline, and its body's rate checked over windows.
pub struct Pace {
    deadline: tokio::time::Instant,
    deadline_secs: u64,
    min_per_window: u64,
    window: Duration,
    window_end: tokio::time::Instant,
    window_start_bytes: u64,
}

impl Pace {
    pub fn start(opts: &ClientOptions) -> Pace {
        let now = tokio::time::Instant::now();
        let window = Duration::from_secs(opts.rate_window_secs.max(1));
        Pace {
            deadline: now + Duration::from_secs(opts.deadline_secs.max(1)),
            deadline_secs: opts.deadline_secs,
            min_per_window: opts.min_bytes_per_sec.saturating_mul(window.as_secs()),
            window,
            window_end: now + window,
            window_start_bytes: 0,
        }
    }

    /// When [`Pace::check`] must run next, data or not.
    pub fn next_check(&self) -> tokio::time::Instant {
        self.window_end.min(self.deadline)
    }

    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    pub fn over_deadline(&self) -> String {
        format!("not done within deadline_secs ({} s)", self.deadline_secs)
    }

    /// `Err` with the reason once the transfer is past its deadline, or a window has
    /// ended with fewer than its bytes; `bytes` is the body's total so far.
    pub fn check(&mut self, bytes: u64) -> Result<(), String> {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return Err(self.over_deadline());
        }
        if now >= self.window_end {
            let got = bytes.saturating_sub(self.window_start_bytes);
            if got < self.min_per_window {
                return Err(format!(
                    "{got} bytes in {} s, slower than min_bytes_per_sec ({} per second)",
                    self.window.as_secs(),
                    self.min_per_window / self.window.as_secs().max(1)
                ));
            }
            self.window_end = now + self.window;
            self.window_start_bytes = bytes;
        }
        Ok(())
    }

    /// A new window from now (after a pause this side chose: a backoff, a resumption).
    pub fn restart_window(&mut self, bytes: u64) {
        self.window_end = tokio::time::Instant::now() + self.window;
        self.window_start_bytes = bytes;
    }
}

/// The largest API answer read (a range bucket or a domain's HIBP list is far smaller).
pub const MAX_API_BODY: usize = 64 << 20;

/// A built client and what each request carries.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    opts: ClientOptions,
    auth: Option<(HeaderName, HeaderValue)>,
    /// Whether requests carry a secret header: the redirect policy then keeps to the
    /// origin (see [`redirect_policy`]).
    secret: Arc<AtomicBool>,
}

/// Redirects followed: at most 5; never from `https` to `http`; and, when the requests
/// carry a secret (`auth_header`, `hibp-api-key`), never to another origin (scheme,
/// host, port). `reqwest` drops `Authorization` on such a hop but sends any other header
/// on, so a feed's key would reach whatever host a redirect names: the transfer fails
/// instead, saying where the redirect went.
fn redirect_policy(secret: Arc<AtomicBool>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let (from, to) = (first.clone(), attempt.url().clone());
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let prev = attempt.previous().last().unwrap_or(&from);
        if prev.scheme() == "https" && to.scheme() != "https" {
            return attempt.error(format!("redirect from https to {} refused", to.scheme()));
        }
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
            )
        };
        if secret.load(Ordering::Relaxed) && origin(&to) != origin(&from) {
            return attempt.error(format!(
                "redirect to another host ({}) refused: the feed's credentials go to its own host only",
                to.host_str().unwrap_or("?")
            ));
        }
        attempt.follow()
    })
}

impl Client {
    pub fn new(opts: &ClientOptions) -> Result<Client, FetchError> {
        let setup = |e: &dyn std::fmt::Display| FetchError::Setup(e.to_string());
        let ua = opts
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("leakwatch/{}", env!("CARGO_PKG_VERSION")));
        let auth = match (&opts.auth_header, &opts.auth_file) {
            (Some(h), Some(f)) => Some(auth_header(h, f)?),
            _ => None,
        };
        let secret = Arc::new(AtomicBool::new(auth.is_some()));
        let mut b = reqwest::Client::builder()
            .user_agent(ua)
            .connect_timeout(Duration::from_secs(opts.connect_timeout_secs))
            .read_timeout(Duration::from_secs(opts.read_timeout_secs))
            .redirect(redirect_policy(secret.clone()))
            // A URL may carry a token (`?token=`): it is not told to the next server.
            .referer(false)
            .no_proxy();
        if let Some(p) = &opts.proxy {
            b = b.proxy(reqwest::Proxy::all(p).map_err(|e| setup(&e))?);
        }
        if let Some(ca) = &opts.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| FetchError::Setup(format!("{}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| FetchError::Setup(format!("{}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Client {
            http: b.build().map_err(|e| setup(&e))?,
            opts: opts.clone(),
            auth,
            secret,
        })
    }

    /// Adds a header whose value is a secret read from a file (marked sensitive, so that
    /// `reqwest` never shows it in debug output).
    pub fn with_secret_header(
        mut self,
        name: &str,
        file: &std::path::Path,
    ) -> Result<Client, FetchError> {
        self.auth = Some(auth_header(name, file)?);
        self.secret.store(true, Ordering::Relaxed);
        Ok(self)
    }

    pub fn get(&self, url: &str) -> RequestBuilder {
        let mut r = self.http.get(url);
        if let Some((k, v)) = &self.auth {
            r = r.header(k, v);
        }
        r
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The backoff before retry number `attempt` (1-based): doubling from
    /// `retry_backoff_ms`, at most a minute, and drawn uniformly from its upper half so
    /// that many clients retrying at once spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.opts.retry_backoff_ms.max(1);
        let full = base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(MAX_BACKOFF.as_millis() as u64);
        Duration::from_millis(rand::rng().random_range(full / 2..=full))
    }

    /// Sends the request `build` makes, retrying connection errors, 5xx and 429 (after
    /// its `Retry-After`) up to `retries` times. Any other answer is returned as it is.
    pub async fn send(
        &self,
        url: &str,
        cancel: &Cancel,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, FetchError> {
        let shown = redact(url);
        let mut attempt = 0;
        loop {
            let result = tokio::select! {
                r = build().send() => r,
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            };
            let (err, wait) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Ok(resp);
                    }
                    let wait = retry_after(&resp);
                    (
                        FetchError::Status {
                            url: shown.clone(),
                            status,
                        },
                        wait,
                    )
                }
                Err(e) => (
                    FetchError::Request {
                        url: shown.clone(),
                        message: error_chain(&e),
                    },
                    None,
                ),
            };
            attempt += 1;
            if attempt > self.opts.retries {
                return Err(err);
            }
            if wait.is_some_and(|w| w > MAX_RETRY_AFTER) {
                return Err(err);
            }
            let wait = wait.unwrap_or_else(|| self.backoff(attempt));
            tracing::warn!(error = %err, attempt, retry_in_ms = wait.as_millis() as u64, "request failed, retrying");
            if !cancel.sleep(wait).await {
                return Err(FetchError::Cancelled);
            }
        }
    }
}

impl Client {
    /// Sends the request `build` makes (with retries, see `send`) and reads an API's
    /// answer: `None` for 404 (what range and HIBP APIs say for "nothing known"), an
    /// error for any other non-success status, and the body, read within
    /// `MAX_API_BODY` and stopped by a cancel.
    pub async fn get_api(
        &self,
        url: &str,
        cancel: &Cancel,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let mut pace = Pace::start(&self.opts);
        let mut resp = tokio::select! {
            r = self.send(url, cancel, build) => r?,
            _ = tokio::time::sleep_until(pace.deadline()) => {
                return Err(FetchError::Slow { url: redact(url), message: pace.over_deadline() });
            }
        };
        pace.restart_window(0);
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let shown = redact(url);
        if !status.is_success() {
            return Err(FetchError::Status { url: shown, status });
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = tokio::time::sleep_until(pace.next_check()) => {
                    pace.check(body.len() as u64).map_err(|message| FetchError::Slow {
                        url: shown.clone(),
                        message,
                    })?;
                    continue;
                }
            };
            pace.check(body.len() as u64)
                .map_err(|message| FetchError::Slow {
                    url: shown.clone(),
                    message,
                })?;
            match chunk {
                Ok(Some(bytes)) => {
                    if body.len() + bytes.len() > MAX_API_BODY {
                        return Err(FetchError::TooLarge {
                            url: shown,
                            max: MAX_API_BODY as u64,
                        });
                    }
                    body.extend_from_slice(&bytes);
                }
                Ok(None) => return Ok(Some(body)),
                Err(e) => {
                    return Err(FetchError::Body {
                        url: shown,
                        message: error_chain(&e),
                    })
                }
            }
        }
    }
}

fn auth_header(
    name: &str,
    file: &std::path::Path,
) -> Result<(HeaderName, HeaderValue), FetchError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| FetchError::Setup(format!("`{name}` is not a header name")))?;
    let secret = secret::read_secret_file(&secret::expand_credentials_dir(file))
        .map_err(|e| FetchError::Setup(e.to_string()))?;
    let mut value = HeaderValue::from_str(secret.expose())
        .map_err(|_| FetchError::Setup(format!("{}: not a valid header value", file.display())))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// `Retry-After` in seconds (the form rate-limited APIs use).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `reqwest`'s error with its causes ("error sending request: … connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    // reqwest puts the full URL (query included) in its messages.
    match s.find("http") {
        Some(_) => s
            .split(' ')
            .map(|w| {
                if w.contains("://") {
                    redact(w.trim_matches(['(', ')']))
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_and_credentials_when_shown() {
        assert_eq!(
            redact("https://h.example/a/b.zip?token=s3cret"),
            "https://h.example/a/b.zip"
        );
        assert_eq!(
            redact("https://u:p@h.example:8443/x#frag"),
            "https://h.example:8443/x"
        );
        assert_eq!(redact("http://h"), "http://h");
    }

    #[test]
    fn onion_urls_need_a_proxy_that_resolves_names() {
        let mut o = ClientOptions::default();
        assert!(validate_url("http://abc.onion/d.txt", &o)
            .unwrap_err()
            .contains("socks5h"));
        o.proxy = Some("socks5://127.0.0.1:9050".into());
        assert!(validate_url("http://abc.onion/d.txt", &o).is_err());
        o.proxy = Some("socks5h://127.0.0.1:9050".into());
        assert!(validate_url("http://abc.onion/d.txt", &o).is_ok());
        assert!(validate_url("ftp://h/x", &o).is_err());
        assert!(validate_url("https://user:pw@h/x", &o).is_err());
    }

    #[test]
    fn backoff_doubles_within_its_jitter_and_is_capped() {
        let opts = ClientOptions {
            retry_backoff_ms: 1000,
            ..Default::default()
        };
        let c = Client::new(&opts).unwrap();
        for _ in 0..50 {
            let b1 = c.backoff(1).as_millis();
            let b3 = c.backoff(3).as_millis();
            assert!((500..=1000).contains(&b1), "{b1}");
            assert!((2000..=4000).contains(&b3), "{b3}");
            assert!(c.backoff(30) <= MAX_BACKOFF);
        }
    }

    #[test]
    fn proxy_urls_are_checked() {
        for (p, ok) in [
            ("socks5h://127.0.0.1:9050", true),
            ("http://proxy:3128", true),
            ("socks4://127.0.0.1:1080", false),
            ("socks5h://user:pw@127.0.0.1:9050", false),
        ] {
            let o = ClientOptions {
                proxy: Some(p.into()),
                ..Default::default()
            };
            assert_eq!(o.validate().is_ok(), ok, "{p}");
        }
    }
}
