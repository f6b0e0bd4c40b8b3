//! The per-line fast path of the identity stage: a login's key written, lower-cased, straight
//! into a padded SHA-1 block, and blocks hashed in batches with the bare compression
//! function.
//!
//! Why: at 0.6 GB/s a core has about 80 ns per line for everything. Through the `Digest`
//! API a SHA-1 costs 64–71 ns (buffering, padding, a copy per call); one compression of a
//! block we padded ourselves costs about 20 ns when several are in flight. Keys of up to
//! 55 bytes (nearly all addresses) fit one block.
//!
//! [`KeyBlocks::key`] decides only the common case — an ASCII address on a domain that is
//! not the organisation's — and answers [`Fast::Defer`] for everything else (Unicode,
//! `+tags` and addresses on the organisation's domains, usernames on login hosts, long
//! keys). Deferred lines go through [`Normalizer::key_of`], the reference, so the two paths
//! cannot disagree on a key: the test below checks that every key decided here is the one
//! the reference gives.

use sha1::block_api::compress;

use crate::bytes;
use crate::parse::shape::plain_at;

use super::normalize::{bad_local_byte, trim_decorations, valid_ascii_domain};
use super::{IdentityHash, Normalizer};

/// What the fast path made of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// Not an identity (a username off the login hosts, a malformed address).
    NoKey,
    /// The key, written into the block; its length.
    Key(usize),
    /// Needs the full normaliser and, maybe, the store.
    Defer,
}

/// Longest key that fits one SHA-1 block with its padding.
pub const MAX_BLOCK_KEY: usize = 55;

/// SHA-1's initial state.
pub(super) const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The organisation's side of the fast path: what makes an identity need the slow one.
#[derive(Debug, Clone)]
pub struct KeyBlocks<'n> {
    norm: &'n Normalizer,
}

impl<'n> KeyBlocks<'n> {
    pub fn new(norm: &'n Normalizer) -> Self {
        KeyBlocks { norm }
    }

    /// Writes the key of `login` (seen on `url`) into `block`, padded for SHA-1.
    #[inline]
    pub fn key(&self, login: &str, url: Option<&str>, block: &mut [u8; 64]) -> Fast {
        let login = trim_decorations(login);
        if let Some(at) = plain_at(login) {
            return self.simple_email(login, at, login.as_bytes(), block);
        }
        let b = login.as_bytes();
        let Some(at) = memchr::memrchr(b'@', b) else {
            return self.username(url);
        };
        if !b.is_ascii() {
            return Fast::Defer;
        }
        let (local, domain) = (&b[..at], &b[at + 1..]);
        if local.is_empty() || local.len() > 64 || domain.len() < 3 || domain.len() > 253 {
            return Fast::NoKey;
        }
        if local.iter().any(|&c| bad_local_byte(c)) {
            return Fast::NoKey;
        }
        let domain = domain.strip_suffix(b".").unwrap_or(domain);
        // ASCII checked above: these are the reference's own checks on the same bytes.
        let domain_str = &login[at + 1..at + 1 + domain.len()];
        if !valid_ascii_domain(domain_str) {
            return Fast::NoKey;
        }
        let len = local.len() + 1 + domain.len();
        if len > MAX_BLOCK_KEY
            || self
                .norm
                .org_domains()
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain_str))
        {
            return Fast::Defer;
        }
        lower_into(&mut block[..local.len()], local);
        block[local.len()] = b'@';
        lower_into(&mut block[local.len() + 1..len], domain);
        pad(block, len);
        Fast::Key(len)
    }
}

impl KeyBlocks<'_> {
    /// [`KeyBlocks::key`] for a username (a login without `@`) seen on `url`. A username
    /// is an identity only on a login host: rare in dumps, and always worth the full path.
    #[inline]
    pub fn username(&self, url: Option<&str>) -> Fast {
        if !self.norm.has_login_hosts() {
            // No host can match, but the reference decides what a Unicode one is.
            return match url {
                Some(u) if !u.is_ascii() => Fast::Defer,
                _ => Fast::NoKey,
            };
        }
        match url.and_then(super::url_host) {
            Some(host) if !host.is_ascii() || self.norm.is_login_host(host) => Fast::Defer,
            _ => Fast::NoKey,
        }
    }

    /// [`KeyBlocks::username`] when the URL's host is known and ASCII
    /// (`shape::plain_url_host`); the URL itself is needed only when there is no login
    /// host (a non-ASCII URL is then the reference's to judge).
    #[inline]
    pub fn username_on(&self, url: &str, host: &str) -> Fast {
        if !self.norm.has_login_hosts() {
            return self.username(Some(url));
        }
        if self.norm.is_login_host(host) {
            Fast::Defer
        } else {
            Fast::NoKey
        }
    }

    /// [`KeyBlocks::key`] for a login known to be plain bytes (letters, digits, `.`, `-`,
    /// `_`, `+`) around exactly one `@`, at `at` (`parse::shape::plain_at`): nothing to
    /// trim or decode, one pass over the domain.
    #[inline]
    ///
    /// `window` starts with `login`; when it holds 64 bytes they are copied at once.
    pub fn simple_email(
        &self,
        login: &str,
        at: usize,
        window: &[u8],
        block: &mut [u8; 64],
    ) -> Fast {
        let b = login.as_bytes();
        debug_assert_eq!(b.get(at), Some(&b'@'));
        let (local, domain) = (&b[..at], &b[at + 1..]);
        if local.is_empty() || local.len() > 64 || domain.len() < 3 || domain.len() > 253 {
            return Fast::NoKey;
        }
        // One trailing dot is no part of the key.
        let len = if b.last() == Some(&b'.') {
            b.len() - 1
        } else {
            b.len()
        };
        if len > MAX_BLOCK_KEY {
            return Fast::Defer;
        }
        let mut copy = [0u8; 64];
        let src = match window.first_chunk::<64>() {
            Some(w) => w,
            None => {
                copy[..len].copy_from_slice(&b[..len]);
                &copy
            }
        };
        let (dots, plus) = bytes::lower_marked(src, len, block);
        // `valid_ascii_domain` on plain bytes: no `+`, a dot, and no empty label.
        let domain = bytes::bits(at + 1, len);
        let dots = dots & domain;
        let ends = (1u64 << (at + 1)) | (1u64 << (len - 1));
        if plus & domain != 0 || dots == 0 || dots & ends != 0 || dots & (dots >> 1) != 0 {
            return Fast::NoKey;
        }
        let key_domain = &block[at + 1..len];
        if self
            .norm
            .org_domains()
            .iter()
            .any(|d| d.as_bytes() == key_domain)
        {
            return Fast::Defer;
        }
        put_length(block, len);
        Fast::Key(len)
    }
}

#[inline(always)]
fn lower_into(out: &mut [u8], from: &[u8]) {
    for (o, &c) in out.iter_mut().zip(from) {
        *o = c | (((c.wrapping_sub(b'A') < 26) as u8) << 5);
    }
}

/// SHA-1 padding of a one-block message of `len` bytes.
#[inline(always)]
fn pad(block: &mut [u8; 64], len: usize) {
    bytes::keep_and_mark(block, len);
    put_length(block, len);
}

/// The end of SHA-1's padding: the message's length in bits, big-endian.
#[inline(always)]
fn put_length(block: &mut [u8; 64], len: usize) {
    block[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
}

/// A message of at most [`MAX_BLOCK_KEY`] bytes padded into one block (for the hashers'
/// tests).
#[cfg(test)]
pub(super) fn padded(msg: &[u8]) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..msg.len()].copy_from_slice(msg);
    b[msg.len()] = 0x80;
    put_length(&mut b, msg.len());
    b
}

/// SHA-1 of padded one-block messages: sixteen at a time in AVX-512 lanes
/// ([`super::sha_x16`]), four or two with the SHA extensions ([`super::sha_ni`]), else one
/// after the other with the `sha1` crate's compression.
#[inline]
pub fn hash_blocks(blocks: &[[u8; 64]], out: &mut [IdentityHash]) {
    let n = blocks.len().min(out.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if n >= 16 && super::sha_x16::available() {
        for (sixteen, hashes) in blocks[..n].chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            let sixteen: &[[u8; 64]; 16] = sixteen.try_into().expect("sixteen blocks");
            // SAFETY: `available` checked the CPU's extensions.
            unsafe { super::sha_x16::hash16(sixteen, hashes) };
        }
        done = n - n % 16;
    }
    #[cfg(target_arch = "x86_64")]
    if super::sha_ni::available() {
        let quads = blocks[done..n]
            .chunks_exact(4)
            .zip(out[done..].chunks_exact_mut(4));
        for (four, hashes) in quads {
            let [a, b, c, d] = hashes else { unreachable!() };
            // SAFETY: `available` checked the CPU's extensions.
            unsafe { super::sha_ni::hash4([&four[0], &four[1], &four[2], &four[3]], [a, b, c, d]) };
        }
        done = n - n % 4;
        let pairs = blocks[done..n]
            .chunks_exact(2)
            .zip(out[done..].chunks_exact_mut(2));
        for (pair, hashes) in pairs {
            let [a, b] = hashes else { unreachable!() };
            // SAFETY: `available` checked the CPU's extensions.
            unsafe { super::sha_ni::hash2([&pair[0], &pair[1]], [a, b]) };
        }
        done = n - n % 2;
    }
    for (block, out) in blocks[done..n].iter().zip(out[done..n].iter_mut()) {
        let mut state = H0;
        compress(&mut state, std::slice::from_ref(block));
        for (o, w) in out.0.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    fn norm() -> Normalizer {
        Normalizer::from_parts(&["agence-exemple.fr"], &["sso.agence-exemple.fr"])
    }

    #[test]
    fn block_hash_is_sha1() {
        let n = norm();
        let kb = KeyBlocks::new(&n);
        let mut block = [0u8; 64];
        let Fast::Key(len) = kb.key(" Jean.Dupont@Example.NET. ", None, &mut block) else {
            panic!("expected a key");
        };
        assert_eq!(&block[..len], b"jean.dupont@example.net");
        let mut h = [IdentityHash([0; 20])];
        hash_blocks(&[block], &mut h);
        assert_eq!(h[0], IdentityHash::of("jean.dupont@example.net"));
        // The longest one-block key, and one byte more.
        let local = "a".repeat(MAX_BLOCK_KEY - "@example.net".len());
        assert!(matches!(
            kb.key(&format!("{local}@example.net"), None, &mut block),
            Fast::Key(55)
        ));
        hash_blocks(&[block], &mut h);
        assert_eq!(h[0], IdentityHash::of(&format!("{local}@example.net")));
        assert_eq!(
            kb.key(&format!("{local}x@example.net"), None, &mut block),
            Fast::Defer
        );
    }

    /// Every key the fast path decides is the reference's key; every "no key" is the
    /// reference's too. Random logins and sites built from the pieces that make
    /// normalisation hard.
    #[test]
    fn agrees_with_the_reference_normaliser() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "jean",
            ".",
            "..",
            "@",
            "@",
            "+",
            "-",
            "_",
            " ",
            "\t",
            "\"",
            "'",
            "<",
            ">",
            "`",
            "mailto:",
            "MAILTO:",
            "é",
            "ß",
            "xn--",
            "example.net",
            "EXAMPLE.org",
            "agence-exemple.fr",
            "Agence-Exemple.FR",
            "agence-exemple.fr.evil.io",
            ":",
            "/",
            ";",
            ",",
            "\\",
            "\u{7f}",
            "\u{200b}",
            "0",
            "9",
        ];
        const SITES: &[Option<&str>] = &[
            None,
            Some("https://sso.agence-exemple.fr/login"),
            Some("https://SSO.agence-exemple.fr:8443/"),
            Some("sso.agence-exemple.fr"),
            Some("https://www.shop.example/login"),
            Some("android://aGFzaA==@com.example.app/"),
            Some("https://bücher.example/"),
        ];
        let n = norm();
        let kb = KeyBlocks::new(&n);
        let mut rng = crate::synth::Rng::new(11);
        let (mut key, mut block) = (String::new(), [0u8; 64]);
        let (mut decided, mut keys) = (0, 0);
        for _ in 0..200_000 {
            // Mostly address-shaped: pieces, an `@`, pieces; sometimes anything.
            let mut login: String = (0..1 + rng.below(4)).map(|_| *rng.pick(PIECES)).collect();
            if rng.chance(70) {
                login.push('@');
            }
            if rng.chance(60) {
                login.push_str(rng.pick::<&str>(&[
                    "example.net",
                    "EXAMPLE.org",
                    "agence-exemple.fr",
                    "b.c",
                ]));
            }
            login.extend((0..rng.below(3)).map(|_| *rng.pick(PIECES)));
            let url = *rng.pick(SITES);
            let reference = n.key_of(&login, url, &mut key);
            let plain = |c: u8| c.is_ascii_alphanumeric() || b".-_+@".contains(&c);
            if login.matches('@').count() == 1 && login.bytes().all(plain) {
                let at = login.find('@').unwrap();
                let mut window = login.as_bytes().to_vec();
                window.resize(64, b'Q');
                let mut in_place = [0u8; 64];
                let same = kb.simple_email(&login, at, &window, &mut in_place);
                match kb.simple_email(&login, at, login.as_bytes(), &mut block) {
                    Fast::Defer => {}
                    Fast::NoKey => assert_eq!(reference, None, "{login:?}"),
                    Fast::Key(len) => assert_eq!(&block[..len], key.as_bytes(), "{login:?}"),
                }
                assert_eq!(
                    same,
                    kb.simple_email(&login, at, login.as_bytes(), &mut block)
                );
                if let Fast::Key(_) = same {
                    assert_eq!(in_place, block, "{login:?}");
                }
            }
            match kb.key(&login, url, &mut block) {
                Fast::Defer => {}
                Fast::NoKey => {
                    decided += 1;
                    assert_eq!(
                        reference, None,
                        "{login:?} on {url:?}: reference has {key:?}"
                    );
                }
                Fast::Key(len) => {
                    decided += 1;
                    keys += 1;
                    assert_eq!(reference, Some(IdentityKind::Email), "{login:?}");
                    assert_eq!(&block[..len], key.as_bytes(), "{login:?}");
                }
            }
        }
        // The fast path must decide most logins, or it is not one.
        assert!(
            decided > 100_000 && keys > 10_000,
            "decided {decided}, keys {keys}"
        );
    }
}
