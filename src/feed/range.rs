//! `range` feeds: a k-anonymous range API in the style of HIBP's Pwned Passwords,
//! holding SHA-1 hashes of leaked identities.
//!
//! For each distinct 5-hex prefix of the organisation's email hashes, one request
//! `GET {base_url}/range/{PREFIX}`; the answer lists `SUFFIX:COUNT` lines, the 35 other
//! hex digits of every leaked hash in that bucket. Only the prefix leaves the machine,
//! and a prefix is shared by about one hash in a million of all possible ones; the
//! suffixes are compared here. With `Add-Padding: true` the server pads its answer with
//! fake suffixes of count 0, so that the answer's size does not tell an observer how
//! many real ones it held: those are ignored.
//!
//! A sweep over all prefixes can take long (a million prefixes at the configured rate),
//! so the feed keeps a cursor: the next run continues after the last prefix done.

use serde::Deserialize;

use super::client::{Client, ClientOptions, FetchError};
use crate::cancel::Cancel;
use crate::identity::IdentityHash;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeFeed {
    /// The API root; requests go to `{base_url}/range/{PREFIX}`.
    pub base_url: String,
    /// Requests per second, at most.
    #[serde(default = "default_rate")]
    pub requests_per_second: f64,
    /// Prefixes asked per run; 0 means the whole sweep. The cursor carries the rest over.
    #[serde(default)]
    pub max_requests_per_run: u64,
    /// Ask for padded answers (`Add-Padding: true`).
    #[serde(default = "yes")]
    pub padding: bool,
    #[serde(skip)]
    pub client: ClientOptions,
}

fn default_rate() -> f64 {
    10.0
}
fn yes() -> bool {
    true
}

impl RangeFeed {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.client.validate()?;
        super::client::validate_url(&self.base_url, &self.client).map_err(|m| ("base_url", m))?;
        if !(self.requests_per_second > 0.0 && self.requests_per_second <= 1000.0) {
            return Err(("requests_per_second", "must be in (0, 1000]".into()));
        }
        Ok(())
    }

    pub fn url_of(&self, prefix: u32) -> String {
        format!(
            "{}/range/{}",
            self.base_url.trim_end_matches('/'),
            prefix_hex(prefix)
        )
    }
}

/// A 20-bit prefix as its 5 upper-case hex digits.
pub fn prefix_hex(prefix: u32) -> String {
    format!("{:05X}", prefix & 0xF_FFFF)
}

/// What one answer held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RangeAnswer {
    /// Full hashes with a count above 0.
    pub hashes: Vec<IdentityHash>,
    /// Entries with count 0 (padding).
    pub padding: u64,
    /// Lines that are not `SUFFIX:COUNT`.
    pub malformed: u64,
}

/// Parses a range answer for `prefix`: `SUFFIX:COUNT` per line, 35 hex digits of suffix.
pub fn parse_answer(prefix: u32, body: &str) -> RangeAnswer {
    let mut out = RangeAnswer::default();
    let p = prefix_hex(prefix);
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((suffix, count)) = line.split_once(':') else {
            out.malformed += 1;
            continue;
        };
        let Ok(count) = count.trim().parse::<u64>() else {
            out.malformed += 1;
            continue;
        };
        if suffix.len() != 35 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.malformed += 1;
            continue;
        }
        if count == 0 {
            out.padding += 1;
            continue;
        }
        let full = format!("{p}{suffix}");
        match decode_hex20(&full) {
            Some(h) => out.hashes.push(IdentityHash(h)),
            None => out.malformed += 1,
        }
    }
    out
}

fn decode_hex20(s: &str) -> Option<[u8; 20]> {
    let b = s.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Asks about one prefix.
pub async fn query(
    client: &Client,
    feed: &RangeFeed,
    prefix: u32,
    cancel: &Cancel,
) -> Result<RangeAnswer, FetchError> {
    let url = feed.url_of(prefix);
    let body = client
        .get_api(&url, cancel, || {
            let r = client.get(&url);
            if feed.padding {
                r.header("Add-Padding", "true")
            } else {
                r
            }
        })
        .await?
        .unwrap_or_default();
    Ok(parse_answer(prefix, &String::from_utf8_lossy(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_give_full_hashes_and_drop_padding() {
        let h = IdentityHash::of("alice@agence-exemple.fr");
        let hex = h.hex();
        let prefix = u32::from_str_radix(&hex[..5], 16).unwrap();
        assert_eq!(prefix_hex(prefix), &hex[..5]);
        let body = format!(
            "{}:3\r\n{}:0\nnot a line\n{}:x\n\n0123456789ABCDEF0123456789ABCDEF012:1\n",
            &hex[5..],
            "F".repeat(35),
            "A".repeat(35)
        );
        let a = parse_answer(prefix, &body);
        assert_eq!(a.hashes.len(), 2);
        assert_eq!(a.hashes[0], h);
        assert_eq!(a.padding, 1);
        assert_eq!(a.malformed, 2);
        // Lower-case suffixes are read too.
        let lower = parse_answer(prefix, &format!("{}:1", hex[5..].to_ascii_lowercase()));
        assert_eq!(lower.hashes, [h]);
    }

    #[test]
    fn urls_carry_only_the_prefix() {
        let f = RangeFeed {
            base_url: "https://range.example/api/".into(),
            requests_per_second: 1.0,
            max_requests_per_run: 0,
            padding: true,
            client: ClientOptions::default(),
        };
        assert_eq!(f.url_of(0xABC), "https://range.example/api/range/00ABC");
        assert_eq!(f.url_of(0xFFFFF), "https://range.example/api/range/FFFFF");
    }
}
