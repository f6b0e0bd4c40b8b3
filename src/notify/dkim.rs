//! DKIM signatures (RFC 6376), rsa-sha256 with relaxed/relaxed canonicalization, added to
//! each message when it is built, so the queued bytes are the signed bytes.
//!
//! Written here on `ring` (already in the tree through rustls) rather than lettre's
//! `dkim` feature: that feature pulls the `rsa` crate, whose RUSTSEC-2023-0071 (a timing
//! side channel on private-key operations, "Marvin") has no fixed version; ring's RSA
//! signing is constant-time. Relaxed/relaxed because simple canonicalization fails on
//! the first relay that re-folds a header (the project's check of lettre's default
//! found as much).

use base64::Engine as _;
use ring::signature::RsaKeyPair;
use sha2::Digest as _;

use crate::config::DkimConfig;
use crate::secret::{check_secret_file, SecretError};

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key: {0}")]
    Secret(#[from] SecretError),
    #[error("DKIM key {path}: {message}")]
    Key {
        path: std::path::PathBuf,
        message: String,
    },
}

/// The headers signed, when present (`h=`): those a reader sees and trusts.
const SIGNED: [&str; 11] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "auto-submitted",
    "list-unsubscribe",
    "reply-to",
];

pub struct DkimSigner {
    key: RsaKeyPair,
    domain: String,
    selector: String,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimSigner(d={}, s={})", self.domain, self.selector)
    }
}

/// The DER inside a PEM file (`-----BEGIN …-----` … `-----END …-----`).
fn pem_der(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find("-----END ")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label, der))
}

impl DkimSigner {
    /// Reads the private key (PEM, PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)
    /// from a secret file (0600, or a systemd credential).
    pub fn load(cfg: &DkimConfig) -> Result<DkimSigner, DkimError> {
        let path = check_secret_file(&cfg.key_file)?;
        let bad = |message: String| DkimError::Key {
            path: path.clone(),
            message,
        };
        let mut text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let parsed = pem_der(&text);
        zeroize::Zeroize::zeroize(&mut text);
        let (label, mut der) = parsed.ok_or_else(|| bad("not a PEM file".into()))?;
        let key = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            other => {
                zeroize::Zeroize::zeroize(&mut der);
                return Err(bad(format!("a `{other}`: an RSA private key is needed")));
            }
        };
        zeroize::Zeroize::zeroize(&mut der);
        let key = key.map_err(|e| bad(format!("not a usable RSA key ({e})")))?;
        if key.public().modulus_len() < 128 {
            return Err(bad("RSA keys under 1024 bits are refused".into()));
        }
        Ok(DkimSigner {
            key,
            domain: cfg.domain.clone(),
            selector: cfg.selector.clone(),
        })
    }

    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn dns_record(&self) -> (String, String) {
        let spki = spki_der(self.key.public().as_ref());
        (
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!(
                "v=DKIM1; k=rsa; p={}",
                base64::engine::general_purpose::STANDARD.encode(spki)
            ),
        )
    }

    /// `message` with a `DKIM-Signature` header first. A message without a header/body
    /// separator is returned unsigned (lettre always writes one).
    pub fn sign(&self, message: &[u8], now: i64) -> Vec<u8> {
        let Some(split) = message.windows(4).position(|w| w == b"\r\n\r\n") else {
            return message.to_vec();
        };
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let headers = unfold(head);
        let body_hash = sha2::Sha256::digest(relaxed_body(body));
        let mut names = Vec::new();
        let mut canon = Vec::new();
        for name in SIGNED {
            // The last instance of each, as verifiers take it.
            if let Some((n, v)) = headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                canon.extend_from_slice(relaxed_header(n, v).as_bytes());
                names.push(name);
            }
        }
        let value = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={}; t={}; h={}; bh={}; b=",
            self.domain,
            self.selector,
            now.max(0),
            names.join(":"),
            base64::engine::general_purpose::STANDARD.encode(body_hash)
        );
        let own = relaxed_header("DKIM-Signature", &value);
        canon.extend_from_slice(own.trim_end_matches("\r\n").as_bytes());
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        if self
            .key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, &canon, &mut sig)
            .is_err()
        {
            tracing::error!("DKIM signing failed: the message goes unsigned");
            return message.to_vec();
        }
        let b = base64::engine::general_purpose::STANDARD.encode(sig);
        // Folded before `b=` and every 72 characters of it: RFC 5322 lines stay short,
        // and relaxed canonicalization ignores the folding.
        let mut header = format!("DKIM-Signature: {value}");
        for (i, chunk) in b.as_bytes().chunks(72).enumerate() {
            header.push_str(if i == 0 { "\r\n\t" } else { "\r\n\t " });
            header.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        }
        header.push_str("\r\n");
        let mut out = header.into_bytes();
        out.extend_from_slice(message);
        out
    }
}

/// Header fields as (name, value with its folding), in order.
fn unfold(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.to_string()));
        }
    }
    out
}

/// RFC 6376 §3.4.2: name in lower case, value unfolded, whitespace runs as one space,
/// none around the colon or at the ends.
fn relaxed_header(name: &str, value: &str) -> String {
    let v = value.replace("\r\n", "");
    let mut collapsed = String::with_capacity(v.len());
    let mut space = false;
    for c in v.chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space && !collapsed.is_empty() {
                collapsed.push(' ');
            }
            space = false;
            collapsed.push(c);
        }
    }
    format!("{}:{}\r\n", name.trim().to_ascii_lowercase(), collapsed)
}

/// RFC 6376 §3.4.4: whitespace runs as one space, none at line ends, no empty lines at
/// the end, a final CRLF unless the body is empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut line = Vec::with_capacity(raw.len());
        let mut space = false;
        for &b in raw {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    line.push(b' ');
                }
                space = false;
                line.push(b);
            }
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A PKCS#1 RSAPublicKey wrapped as SubjectPublicKeyInfo (what `openssl rsa -pubout`
/// writes and DKIM records carry).
fn spki_der(pkcs1: &[u8]) -> Vec<u8> {
    fn len(n: usize) -> Vec<u8> {
        match n {
            0..=127 => vec![n as u8],
            128..=255 => vec![0x81, n as u8],
            _ => vec![0x82, (n >> 8) as u8, n as u8],
        }
    }
    let algo: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    bits.extend(len(pkcs1.len() + 1));
    bits.push(0);
    bits.extend_from_slice(pkcs1);
    let mut inner = algo.to_vec();
    inner.extend(bits);
    let mut out = vec![0x30];
    out.extend(len(inner.len()));
    out.extend(inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6376 §3.4.5's example, relaxed.
    #[test]
    fn relaxed_canonicalization_as_the_rfc_shows_it() {
        assert_eq!(relaxed_header("A", " X"), "a:X\r\n");
        assert_eq!(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"no end"), b"no end\r\n");
    }
}
