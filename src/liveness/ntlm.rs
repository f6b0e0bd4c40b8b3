//! The directory's NT hashes, from a pwdump export, to tell whether a leaked password is
//! still an account's password.
//!
//! Active Directory keeps each password as its NT hash (MD4 of the UTF-16LE text).
//! While a leaked password is in memory at match time, its NT hash is compared with the
//! account's, and only the verdict is kept: the hash of the leaked password is not stored,
//! and the export's hashes never leave this process (they are as good as the passwords
//! against NTLM: the file must be 0600 or a systemd credential, and the text read is
//! wiped once parsed).
//!
//! The export is what `secretsdump.py -just-dc-ntlm` and DSInternals' `Format-Custom
//! -View PwDump` write: `[DOMAIN\]user:rid:lmhash:nthash:::`, one account a line. Users
//! are matched to accounts by their login (the accounts CSV's `username`), through the
//! identity index; history lines (`user_history0`) and machine accounts (`name$`) are
//! skipped, and a line that is not of that shape is counted and reported by number,
//! never quoted. UTF-8 or, as Windows PowerShell's `Out-File` writes, UTF-16LE.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use md4::{Digest, Md4};
use zeroize::Zeroize;

use crate::identity::{IdentityHash, IdentityKind, Normalizer};
use crate::secret::{check_secret_file, SecretError};
use crate::store::{KeyIndex, KeyIndexError};

/// An NT hash.
pub type NtHash = [u8; 16];

#[derive(Debug, thiserror::Error)]
pub enum NtError {
    #[error("NT hash export: {0}")]
    File(#[from] SecretError),
    #[error("NT hash export {path}: {source}")]
    Keys {
        path: PathBuf,
        source: KeyIndexError,
    },
}

/// The NT hash of `password`: MD4 of its UTF-16LE encoding.
pub fn nt_hash(password: &str) -> NtHash {
    let mut md4 = Md4::new();
    for unit in password.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

/// What a line of the export holds.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Account(&'a str, NtHash),
    /// A password-history line or a machine account.
    Skipped,
    Malformed,
}

fn parse_line(line: &str) -> Line<'_> {
    let mut fields = line.trim_end_matches('\r').split(':');
    let (Some(user), Some(rid), Some(lm), Some(nt)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let user = user.rsplit_once('\\').map_or(user, |(_, u)| u).trim();
    let hex = |h: &str| -> Option<NtHash> {
        let h = h.as_bytes();
        if h.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in h.chunks_exact(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            out[i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Some(out)
    };
    // Samba's `pdbedit -L -w` (smbpasswd format) writes 32 `X` for a hash it does not
    // hold: no LM hash, or no password at all.
    let none = |h: &str| h.len() == 32 && h.bytes().all(|b| b == b'X');
    if user.is_empty()
        || !rid.bytes().all(|b| b.is_ascii_digit())
        || (hex(lm).is_none() && !none(lm))
    {
        return Line::Malformed;
    }
    if none(nt) {
        return Line::Skipped;
    }
    let Some(nt) = hex(nt) else {
        return Line::Malformed;
    };
    let history = user
        .rsplit_once("_history")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if history || user.ends_with('$') {
        return Line::Skipped;
    }
    Line::Account(user, nt)
}

/// How the directory holds an account's password: enough to tell whether a leaked one
/// is it, never enough to read it.
pub enum Stored {
    /// Active Directory's NT hash.
    Nt(NtHash),
    /// LDAP `{SSHA}` (SHA-1) or `{SSHA512}`: the digest of the password then the salt.
    Salted {
        sha512: bool,
        digest: Vec<u8>,
        salt: Vec<u8>,
    },
}

impl Stored {
    /// Whether `password` is the one stored; the comparison takes the same time whichever
    /// byte differs.
    pub fn matches(&self, password: &str) -> bool {
        let mut got = match self {
            Stored::Nt(_) => nt_hash(password).to_vec(),
            Stored::Salted { sha512, salt, .. } => {
                use sha2::Digest as _;
                match sha512 {
                    true => {
                        let mut h = sha2::Sha512::new();
                        h.update(password.as_bytes());
                        h.update(salt);
                        h.finalize().to_vec()
                    }
                    false => {
                        let mut h = sha1::Sha1::new();
                        h.update(password.as_bytes());
                        h.update(salt);
                        h.finalize().to_vec()
                    }
                }
            }
        };
        let want: &[u8] = match self {
            Stored::Nt(h) => h,
            Stored::Salted { digest, .. } => digest,
        };
        let same =
            got.len() == want.len() && got.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        got.zeroize();
        same
    }
}

impl Drop for Stored {
    fn drop(&mut self) {
        match self {
            Stored::Nt(h) => h.zeroize(),
            Stored::Salted { digest, salt, .. } => {
                digest.zeroize();
                salt.zeroize();
            }
        }
    }
}

/// How each account's password is held by the directory (its NT hash from an export, or
/// its salted hash read over LDAP), by account id: whether a leaked password is current.
#[derive(Default)]
pub struct CurrentPasswords {
    by_account: HashMap<i64, Stored>,
    /// Lines of the export that named an account of the directory, named none, or were
    /// not of the pwdump shape (their numbers, the first few, in `malformed_lines`).
    pub matched: usize,
    pub unmatched: usize,
    pub malformed: usize,
    pub malformed_lines: Vec<usize>,
}

impl std::fmt::Debug for CurrentPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CurrentPasswords({} accounts)", self.by_account.len())
    }
}

impl CurrentPasswords {
    /// Reads the export at `path` (a secret file: 0600, or a systemd credential) and
    /// matches its users to accounts through the identity index.
    pub fn load(
        path: &Path,
        norm: &Normalizer,
        keys: &KeyIndex,
    ) -> Result<CurrentPasswords, NtError> {
        let path = check_secret_file(path)?;
        let read = |source| SecretError::Read {
            path: path.clone(),
            source,
        };
        let mut bytes = std::fs::read(&path).map_err(read)?;
        // Windows PowerShell's `Out-File` writes UTF-16LE with a BOM.
        let mut text = match bytes.starts_with(&[0xFF, 0xFE]) {
            true => encoding_rs::UTF_16LE
                .decode_with_bom_removal(&bytes)
                .0
                .into_owned(),
            false => String::from_utf8_lossy(&bytes).into_owned(),
        };
        bytes.zeroize();
        let out = Self::parse(&text, norm, keys).map_err(|source| NtError::Keys {
            path: path.clone(),
            source,
        });
        text.zeroize();
        out
    }

    fn parse(
        text: &str,
        norm: &Normalizer,
        keys: &KeyIndex,
    ) -> Result<CurrentPasswords, KeyIndexError> {
        let mut out = CurrentPasswords::default();
        let mut key = String::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line) {
                Line::Account(user, nt) => {
                    let account = match norm.login_key(user, &mut key) {
                        true => keys.lookup(&IdentityHash::of(&key))?,
                        false => None,
                    };
                    match account {
                        Some((id, IdentityKind::Login)) => {
                            out.by_account.insert(id, Stored::Nt(nt));
                            out.matched += 1;
                        }
                        _ => out.unmatched += 1,
                    }
                }
                Line::Skipped => {}
                Line::Malformed => {
                    out.malformed += 1;
                    if out.malformed_lines.len() < 5 {
                        out.malformed_lines.push(n + 1);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether `password` is `account`'s password now (`None`: no hash for it).
    pub fn check(&self, account: i64, password: &str) -> Option<bool> {
        Some(self.by_account.get(&account)?.matches(password))
    }

    /// Adds what another source holds of an account's password; an export's NT hash,
    /// read first, is kept over it.
    pub fn add(&mut self, account: i64, stored: Stored) {
        self.by_account.entry(account).or_insert(stored);
    }

    pub fn len(&self) -> usize {
        self.by_account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_account.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &NtHash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The NT hashes every NTLM implementation agrees on.
    #[test]
    fn nt_hashes_are_md4_of_utf16le() {
        assert_eq!(hex(&nt_hash("")), "31d6cfe0d16ae931b73c59d7e0c089c0");
        assert_eq!(
            hex(&nt_hash("password")),
            "8846f7eaee8fb117ad06bdd830b7586c"
        );
        // Beyond ASCII: UTF-16LE, not the UTF-8 bytes.
        assert_ne!(nt_hash("é"), nt_hash("\u{c3}\u{a9}"));
    }

    #[test]
    fn pwdump_lines_as_secretsdump_and_dsinternals_write_them() {
        let nt = "8846f7eaee8fb117ad06bdd830b7586c";
        let lm = "aad3b435b51404eeaad3b435b51404ee";
        let want = nt_hash("password");
        assert_eq!(
            parse_line(&format!("CORP\\jdupont:1104:{lm}:{nt}:::")),
            Line::Account("jdupont", want)
        );
        assert_eq!(
            parse_line(&format!("jdupont:1104:{lm}:{}:::\r", nt.to_uppercase())),
            Line::Account("jdupont", want)
        );
        assert_eq!(
            parse_line(&format!("jdupont:1104:{lm}:{nt}::: (status=Enabled)")),
            Line::Account("jdupont", want)
        );
        assert_eq!(
            parse_line(&format!("jdupont_history0:1104:{lm}:{nt}:::")),
            Line::Skipped
        );
        assert_eq!(
            parse_line(&format!("WS01$:1105:{lm}:{nt}:::")),
            Line::Skipped
        );
        // Samba's `pdbedit -L -w`: no LM hash, and an account without a password.
        let x = "X".repeat(32);
        assert_eq!(
            parse_line(&format!(
                "jdupont:4294967295:{x}:{}:[U          ]:LCT-6B1167CF:",
                nt.to_uppercase()
            )),
            Line::Account("jdupont", want)
        );
        assert_eq!(
            parse_line(&format!("nobody:65534:{x}:{x}:[U          ]:LCT-00000000:")),
            Line::Skipped
        );
        for bad in [
            "jdupont".to_string(),
            format!("jdupont:x:{lm}:{nt}:::"),
            format!("jdupont:1104:{lm}:{}:::", &nt[..30]),
            format!("jdupont:1104:{lm}:{}zz:::", &nt[..30]),
            format!(":1104:{lm}:{nt}:::"),
        ] {
            assert_eq!(parse_line(&bad), Line::Malformed, "{bad}");
        }
    }
}
