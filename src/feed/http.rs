//! `http` feeds: dumps and archives at fixed URLs.
//!
//! Each URL is fetched with the validators of its last successful run (`If-None-Match`,
//! `If-Modified-Since`), so an unchanged dump costs one `304` and nothing else. A body is
//! streamed into an encrypted spool (see `spool`), bounded by `max_bytes`; a download cut
//! in the middle resumes with `Range` / `If-Range` where the server allows it, and starts
//! over where it does not. A body identical to the last one read (same SHA-256) is not
//! parsed again, even if the server changed its validators.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{
    CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::client::{redact, Client, ClientOptions, FetchError};
use super::spool::Spool;
use crate::cancel::Cancel;

/// A spool larger than this would reuse ChaCha20's keystream (2^32 blocks of 64 bytes).
const MAX_SPOOL_BYTES: u64 = 256 << 30;
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFeed {
    pub urls: Vec<String>,
    /// Largest body accepted, in bytes (default 8 GiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Tried on encrypted archives (zip and 7z); sellers publish them with the logs.
    #[serde(default)]
    pub archive_passwords: Vec<String>,
    #[serde(skip)]
    pub client: ClientOptions,
}

fn default_max_bytes() -> u64 {
    8 << 30
}

impl HttpFeed {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.client.validate()?;
        if self.urls.is_empty() {
            return Err(("urls", "list at least one URL".into()));
        }
        for u in &self.urls {
            super::client::validate_url(u, &self.client).map_err(|m| ("urls", m))?;
        }
        if self.max_bytes == 0 || self.max_bytes > MAX_SPOOL_BYTES {
            return Err((
                "max_bytes",
                format!("must be between 1 and {MAX_SPOOL_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// What the server said last time, kept per URL in the feed's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// SHA-256 of the last body read, hex.
    pub sha256: Option<String>,
}

impl Validators {
    /// The state key of a URL: a hash, so that a token in the URL is never stored.
    pub fn state_key(url: &str) -> String {
        let h = Sha256::digest(url.as_bytes());
        format!("http:{}", crate::identity::to_hex_upper(&h[..12]))
    }
}

#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`.
    NotModified,
    /// Downloaded, but the same bytes as last time; only the validators are new.
    SameContent(Validators),
    /// New content, waiting in the spool.
    New {
        spool: Box<Spool>,
        validators: Validators,
    },
}

/// Fetches one URL into a spool in `spool_dir`.
pub async fn fetch(
    client: &Client,
    url: &str,
    max_bytes: u64,
    previous: &Validators,
    spool_dir: &Path,
    cancel: &Cancel,
) -> Result<Fetched, FetchError> {
    let shown = redact(url);
    let mut spool = Spool::create(spool_dir)?;
    let mut hasher = Sha256::new();
    let mut got = Validators::default();
    let mut interruptions = 0;
    let started = Instant::now();
    let mut last_log = started;
    // One deadline for the whole transfer, resumptions included; the rate from each
    // (re)start of the body.
    let mut pace = super::client::Pace::start(client.options());
    let slow = |message: String| FetchError::Slow {
        url: redact(url),
        message,
    };
    loop {
        let resume_from = spool.len();
        // The validator that ties a resumed range to the body already spooled.
        let if_range = got.etag.clone().or_else(|| got.last_modified.clone());
        let sending = client.send(url, cancel, || {
            let mut r = client.get(url);
            if resume_from > 0 {
                r = r.header(RANGE, format!("bytes={resume_from}-"));
                if let Some(v) = &if_range {
                    r = r.header(IF_RANGE, v);
                }
            } else {
                if let Some(e) = &previous.etag {
                    r = r.header(IF_NONE_MATCH, e);
                }
                if let Some(m) = &previous.last_modified {
                    r = r.header(IF_MODIFIED_SINCE, m);
                }
            }
            r
        });
        let resp = tokio::select! {
            r = sending => r?,
            _ = tokio::time::sleep_until(pace.deadline()) => return Err(slow(pace.over_deadline())),
        };
        pace.restart_window(spool.len());
        let status = resp.status();
        match status {
            StatusCode::NOT_MODIFIED if resume_from == 0 => return Ok(Fetched::NotModified),
            StatusCode::OK => {
                if resume_from > 0 {
                    tracing::info!(url = %shown, "server sent the whole body again instead of a range");
                    spool.clear()?;
                    hasher = Sha256::new();
                }
                got = validators_of(&resp);
            }
            StatusCode::PARTIAL_CONTENT if resume_from > 0 => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(resume_from) {
                    return Err(FetchError::Body {
                        url: shown,
                        message: format!(
                            "asked for bytes from {resume_from}, got a range starting at {start:?}"
                        ),
                    });
                }
                tracing::info!(url = %shown, from = resume_from, "download resumed");
            }
            other => {
                return Err(FetchError::Status {
                    url: shown,
                    status: other,
                })
            }
        }
        if let Some(len) = resp.content_length() {
            if spool.len() + len > max_bytes {
                return Err(FetchError::TooLarge {
                    url: shown,
                    max: max_bytes,
                });
            }
        }
        let mut resp = resp;
        let body_error = loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = tokio::time::sleep_until(pace.next_check()) => {
                    pace.check(spool.len()).map_err(slow)?;
                    continue;
                }
            };
            pace.check(spool.len()).map_err(slow)?;
            match chunk {
                Ok(Some(bytes)) => {
                    if spool.len() + bytes.len() as u64 > max_bytes {
                        return Err(FetchError::TooLarge {
                            url: shown,
                            max: max_bytes,
                        });
                    }
                    hasher.update(&bytes);
                    spool.append(&bytes)?;
                    if last_log.elapsed() >= LOG_EVERY {
                        last_log = Instant::now();
                        tracing::info!(url = %shown, bytes = spool.len(), "downloading");
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(super::client::error_chain(&e)),
            }
        };
        let Some(message) = body_error else { break };
        interruptions += 1;
        let err = FetchError::Body {
            url: shown.clone(),
            message,
        };
        if interruptions > client.options().retries {
            return Err(err);
        }
        let wait = client.backoff(interruptions);
        tracing::warn!(error = %err, bytes = spool.len(), retry_in_ms = wait.as_millis() as u64, "download cut, resuming");
        if !cancel.sleep(wait).await {
            return Err(FetchError::Cancelled);
        }
    }
    spool.flush()?;
    got.sha256 = Some(crate::identity::to_hex_upper(&hasher.finalize()));
    tracing::info!(url = %shown, bytes = spool.len(), secs = started.elapsed().as_secs_f32(), "downloaded");
    if got.sha256.is_some() && got.sha256 == previous.sha256 {
        return Ok(Fetched::SameContent(got));
    }
    Ok(Fetched::New {
        spool: Box::new(spool),
        validators: got,
    })
}

fn validators_of(resp: &reqwest::Response) -> Validators {
    let h = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        etag: h(ETAG),
        last_modified: h(LAST_MODIFIED),
        sha256: None,
    }
}

/// The first byte of `bytes START-END/TOTAL`.
fn content_range_start(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_gives_its_start() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn state_keys_do_not_contain_the_url() {
        let k = Validators::state_key("https://h.example/d.txt?token=s3cret");
        assert!(k.starts_with("http:") && !k.contains("s3cret") && k.len() == 5 + 24);
        assert_ne!(k, Validators::state_key("https://h.example/d.txt"));
    }
}
