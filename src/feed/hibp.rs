//! `hibp` feeds: the Have I Been Pwned v3 API, for the organisation's verified domains.
//!
//! Two searches per domain: the breached accounts of the domain
//! (`/breacheddomain/{domain}`) and the stealer-log entries of its addresses
//! (`/stealerlogsbyemaildomain/{domain}`). Both answer with a JSON object from each
//! address's alias (the part before `@`) to a list: breach names, or the websites whose
//! passwords the malware took. What is sent is the domain, which HIBP has already
//! verified as the organisation's; no address or hash leaves the machine.
//!
//! The API key is read from a file (`api_key_file`, a systemd credential in production),
//! sent as `hibp-api-key`, and never logged. Rate limits are the subscription's: requests
//! are spaced by `min_interval_ms` and a `429` waits for its `Retry-After`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::client::{Client, ClientOptions, FetchError};
use crate::cancel::Cancel;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HibpFeed {
    pub api_key_file: PathBuf,
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Domains to search; the organisation's `domains` when empty.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default = "yes")]
    pub breaches: bool,
    #[serde(default = "yes")]
    pub stealer_logs: bool,
    /// Time between two requests (the lowest subscription allows 10 a minute).
    #[serde(default = "default_interval")]
    pub min_interval_ms: u64,
    #[serde(skip)]
    pub client: ClientOptions,
}

fn default_base() -> String {
    "https://haveibeenpwned.com/api/v3".into()
}
fn default_interval() -> u64 {
    6000
}
fn yes() -> bool {
    true
}

impl HibpFeed {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.client.validate()?;
        if self.client.auth_header.is_some() {
            return Err((
                "auth_header",
                "a hibp feed sends its key from api_key_file".into(),
            ));
        }
        super::client::validate_url(&self.base_url, &self.client).map_err(|m| ("base_url", m))?;
        if !self.breaches && !self.stealer_logs {
            return Err(("breaches", "enable breaches, stealer_logs or both".into()));
        }
        Ok(())
    }
}

/// What HIBP said about one domain's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// alias → breach names.
    Breaches,
    /// alias → websites whose credentials a stealer took.
    StealerLogs,
}

impl Search {
    fn path(self) -> &'static str {
        match self {
            Search::Breaches => "breacheddomain",
            Search::StealerLogs => "stealerlogsbyemaildomain",
        }
    }
}

/// alias → names (breaches or websites).
pub type DomainAnswer = BTreeMap<String, Vec<String>>;

pub async fn search(
    client: &Client,
    feed: &HibpFeed,
    what: Search,
    domain: &str,
    cancel: &Cancel,
) -> Result<DomainAnswer, FetchError> {
    let url = format!(
        "{}/{}/{}",
        feed.base_url.trim_end_matches('/'),
        what.path(),
        domain
    );
    // HIBP answers 404 when nothing is known of the domain.
    let Some(body) = client.get_api(&url, cancel, || client.get(&url)).await? else {
        return Ok(DomainAnswer::new());
    };
    serde_json::from_slice(&body).map_err(|e| FetchError::Body {
        url,
        message: format!("not the JSON object HIBP sends: {e}"),
    })
}

/// The client with the API key header.
pub fn client(feed: &HibpFeed) -> Result<Client, FetchError> {
    Client::new(&feed.client)?.with_secret_header("hibp-api-key", &feed.api_key_file)
}
