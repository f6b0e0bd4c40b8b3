//! The HTTP side of remediation: one reqwest client for the pass, OAuth2 client-credentials
//! tokens kept until they expire, and what an HTTP status means for a retry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Failure;
use crate::config::Config;
use crate::secret::read_secret_file;

pub struct Client {
    pub inner: reqwest::Client,
    /// By token URL and client: the access token and when to stop using it.
    tokens: HashMap<String, (String, Instant)>,
}

impl Client {
    pub fn new(_cfg: &Config) -> Result<Client, Failure> {
        let inner = reqwest::Client::builder()
            // An admin API that redirects is not followed: a token goes where it was sent.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::permanent(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner,
            tokens: HashMap::new(),
        })
    }

    /// A bearer token from `token_url` by the client-credentials grant, reused until a
    /// minute before it expires. The secret is read from its file at each request for a
    /// token, and never kept.
    pub async fn token(
        &mut self,
        token_url: &str,
        client_id: &str,
        secret_file: &std::path::Path,
        scope: Option<&str>,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let key = format!("{token_url} {client_id}");
        if let Some((t, until)) = self.tokens.get(&key) {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let secret = read_secret_file(secret_file)
            .map_err(|e| Failure::permanent(format!("client secret: {e}")))?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let request = self.inner.post(token_url).timeout(timeout).form(&form);
        drop(form);
        drop(secret);
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: Token = json("token request", request).await?;
        let life = t.expires_in.unwrap_or(300).saturating_sub(60).max(1);
        self.tokens.insert(
            key,
            (
                t.access_token.clone(),
                Instant::now() + Duration::from_secs(life),
            ),
        );
        Ok(t.access_token)
    }

    /// Forgets the tokens after a 401 (revoked, or expired early): the next attempt asks
    /// for a new one.
    pub fn after(&mut self, out: Result<String, Failure>) -> Result<String, Failure> {
        if out
            .as_ref()
            .is_err_and(|e| e.message.ends_with("401 Unauthorized"))
        {
            self.tokens.clear();
        }
        out
    }
}

/// The largest JSON answer read (a page of users, a token): the servers are the
/// organisation's own, but every body has a bound.
const MAX_JSON: usize = 16 << 20;

/// Sends `req` and reads its JSON answer (at most [`MAX_JSON`] bytes).
pub async fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<T, Failure> {
    let mut resp = req.send().await.map_err(|e| network(what, &e))?;
    if !resp.status().is_success() {
        return Err(status_failure(what, resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| network(what, &e))? {
        if body.len() + chunk.len() > MAX_JSON {
            return Err(Failure::permanent(format!(
                "{what}: answer over {MAX_JSON} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|_| Failure::transient(format!("{what}: not the JSON expected")))
}

/// A transport error: always worth another try.
pub fn network(what: &str, e: &reqwest::Error) -> Failure {
    // reqwest's message names the URL, which is ours (config), never the dump's.
    Failure::transient(format!("{what}: {}", super::clean(&e.to_string())))
}

/// An HTTP error status: the server's trouble (5xx, 429, 408) is tried again; a refusal
/// (401, 403, 404, …) is not, and is reported.
pub fn status_failure(what: &str, status: reqwest::StatusCode) -> Failure {
    let message = format!("{what}: HTTP {status}");
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::UNAUTHORIZED
    {
        Failure::transient(message)
    } else {
        Failure::permanent(message)
    }
}

/// `base` with path segments appended, each percent-encoded: an account's name or id is
/// one segment whatever it holds.
pub fn url(base: &str, segments: &[&str]) -> Result<reqwest::Url, Failure> {
    let mut u =
        reqwest::Url::parse(base).map_err(|e| Failure::permanent(format!("URL {base}: {e}")))?;
    u.path_segments_mut()
        .map_err(|_| Failure::permanent(format!("URL {base}: cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}
