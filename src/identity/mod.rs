//! Identities: from a raw login (and the site it was typed into) to an [`IdentityHash`].
//!
//! Third stage of the pipeline. An identity key is the normalised text that stands for one
//! account: an email address (`jean.dupont@agence-exemple.fr`), or `login:<username>` for a
//! bare username typed into one of the organisation's login hosts. Keys are SHA-1 hashed
//! (as HIBP does, shown in upper-case hex); the first 5 hex digits are the k-anonymous
//! [`HashPrefix`], the only part of a hash that may ever be sent to a remote service.
//!
//! The same normaliser builds the keys of the organisation's directory and of every dump
//! line, which is what makes an exact hash match mean "same account".

pub mod block;
mod normalize;
pub mod sha_ni;
pub mod sha_x16;

pub use normalize::{mask, mask_email, normalize_email, url_host, Normalizer};

use sha1::{Digest, Sha1};
use std::fmt;

/// What kind of identity a key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Email,
    /// A bare username on one of the organisation's login hosts.
    Login,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Login => "login",
        }
    }
}

/// The prefix that marks a login key; `:` never appears in a normalised email.
pub const LOGIN_KEY_PREFIX: &str = "login:";

/// SHA-1 of an identity key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityHash(pub [u8; 20]);

impl IdentityHash {
    pub fn of(key: &str) -> IdentityHash {
        IdentityHash(Sha1::digest(key.as_bytes()).into())
    }

    pub fn from_slice(b: &[u8]) -> Option<IdentityHash> {
        Some(IdentityHash(b.try_into().ok()?))
    }

    /// Upper-case hex, as HIBP writes hashes.
    pub fn hex(&self) -> String {
        to_hex_upper(&self.0)
    }

    pub fn prefix(&self) -> HashPrefix {
        let hex = to_hex_upper(&self.0[..3]);
        let mut p = [0u8; 5];
        p.copy_from_slice(&hex.as_bytes()[..5]);
        HashPrefix(p)
    }
}

impl fmt::Debug for IdentityHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityHash({})", self.hex())
    }
}

impl fmt::Display for IdentityHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// The first 5 hex digits of an [`IdentityHash`]: about a million buckets, so a prefix alone
/// says almost nothing about the identity it came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashPrefix([u8; 5]);

impl HashPrefix {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

impl fmt::Debug for HashPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashPrefix({})", self.as_str())
    }
}

impl fmt::Display for HashPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn to_hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_hex_and_prefix_match_hibp_convention() {
        // SHA-1("password") is the best-known HIBP example.
        let h = IdentityHash::of("password");
        assert_eq!(h.hex(), "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert_eq!(h.prefix().as_str(), "5BAA6");
        assert_eq!(h.to_string().len(), 40);
    }
}
