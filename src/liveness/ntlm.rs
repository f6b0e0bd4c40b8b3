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
    /// LDAP `{CRYPT}` in a scheme built to be slow: SHA-256/512-crypt (`$5$`, `$6$`) or
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`), checked by [`Stored::crypt`] when read.
    Crypt(String),
}

/// The most rounds of SHA-crypt and the highest bcrypt cost compared: one comparison
/// stays under about a second (the directory is the organisation's own, but one entry
/// must not stall a run).
const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;
const MAX_BCRYPT_COST: u32 = 16;

impl Stored {
    /// A `{CRYPT}` value leakwatch can compare, or `None` (another scheme, or costs past
    /// the bounds above).
    pub fn crypt(value: &str) -> Option<Stored> {
        let ok = if value.starts_with("$5$") || value.starts_with("$6$") {
            let parsed = sha_crypt::PasswordHashRef::new(value).ok()?;
            let rounds = parsed
                .fields()
                .next()
                .and_then(|f| f.as_str().strip_prefix("rounds="))
                .map(|r| r.parse::<u32>().ok())
                .unwrap_or(Some(5000))?;
            rounds <= MAX_SHA_CRYPT_ROUNDS && parsed.fields().count() >= 2
        } else if value.starts_with("$2") {
            let parts: bcrypt::HashParts = value.parse().ok()?;
            parts.get_cost() <= MAX_BCRYPT_COST
        } else {
            false
        };
        ok.then(|| Stored::Crypt(value.to_string()))
    }

    /// Whether a comparison costs milliseconds rather than nanoseconds (see
    /// [`CurrentPasswords::check`]).
    fn is_slow(&self) -> bool {
        matches!(self, Stored::Crypt(_))
    }

    /// Whether `password` is the one stored; the comparison takes the same time whichever
    /// byte differs.
    pub fn matches(&self, password: &str) -> bool {
        use sha2::Digest as _;
        let (mut got, want): (Vec<u8>, &[u8]) = match self {
            Stored::Crypt(hash) => return crypt_matches(hash, password),
            Stored::Nt(h) => (nt_hash(password).to_vec(), h),
            Stored::Salted {
                sha512: true,
                digest,
                salt,
            } => {
                let mut h = sha2::Sha512::new();
                h.update(password.as_bytes());
                h.update(salt);
                (h.finalize().to_vec(), digest)
            }
            Stored::Salted {
                sha512: false,
                digest,
                salt,
            } => {
                let mut h = sha1::Sha1::new();
                h.update(password.as_bytes());
                h.update(salt);
                (h.finalize().to_vec(), digest)
            }
        };
        let same =
            got.len() == want.len() && got.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        got.zeroize();
        same
    }
}

/// Both libraries compare in constant time. A value that no longer parses (it parsed
/// when read) counts as not matching.
fn crypt_matches(hash: &str, password: &str) -> bool {
    if hash.starts_with("$2") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        use sha_crypt::PasswordVerifier as _;
        sha_crypt::ShaCrypt::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
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
            Stored::Crypt(h) => h.zeroize(),
        }
    }
}

/// How each account's password is held by the directory (its NT hash from an export, or
/// its salted hash read over LDAP), by account id: whether a leaked password is current.
pub struct CurrentPasswords {
    by_account: HashMap<i64, Stored>,
    /// Slow comparisons (`{CRYPT}`) already made this run, by account and SHA-256 of the
    /// password tried: a line read twice costs one.
    memo: std::sync::Mutex<HashMap<(i64, [u8; 32]), bool>>,
    /// Time spent on slow comparisons, and the most they may take in a run: past it a
    /// password is not compared (its finding stays "unknown", so forced) and counted.
    slow_nanos: std::sync::atomic::AtomicU64,
    slow_budget_nanos: u64,
    slow_done: std::sync::atomic::AtomicU64,
    slow_skipped: std::sync::atomic::AtomicU64,
    /// Lines of the export that named an account of the directory, named none, or were
    /// not of the pwdump shape (their numbers, the first few, in `malformed_lines`).
    pub matched: usize,
    pub unmatched: usize,
    pub malformed: usize,
    pub malformed_lines: Vec<usize>,
}

/// Slow comparisons a run may make by default: a minute of one core.
pub const SLOW_BUDGET_DEFAULT: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for CurrentPasswords {
    fn default() -> Self {
        CurrentPasswords {
            by_account: HashMap::new(),
            memo: Default::default(),
            slow_nanos: Default::default(),
            slow_budget_nanos: SLOW_BUDGET_DEFAULT.as_nanos() as u64,
            slow_done: Default::default(),
            slow_skipped: Default::default(),
            matched: 0,
            unmatched: 0,
            malformed: 0,
            malformed_lines: Vec::new(),
        }
    }
}

impl Drop for CurrentPasswords {
    /// The slow comparisons are told once, when the run lets go of the hashes.
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let (done, skipped) = (
            self.slow_done.load(Relaxed),
            self.slow_skipped.load(Relaxed),
        );
        let secs = self.slow_nanos.load(Relaxed) as f64 / 1e9;
        if skipped > 0 {
            tracing::warn!(
                done,
                skipped,
                secs = format_args!("{secs:.1}"),
                "{{CRYPT}} comparisons past this run's budget ([liveness] slow_hash_budget_secs): those findings stay \"unknown\", so forced"
            );
        } else if done > 0 {
            tracing::info!(
                done,
                secs = format_args!("{secs:.1}"),
                "{{CRYPT}} passwords compared"
            );
        }
    }
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
        use std::sync::atomic::Ordering::Relaxed;
        let stored = self.by_account.get(&account)?;
        if !stored.is_slow() {
            return Some(stored.matches(password));
        }
        let key = {
            use sha2::Digest as _;
            (
                account,
                <[u8; 32]>::from(sha2::Sha256::digest(password.as_bytes())),
            )
        };
        if let Some(&v) = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(v);
        }
        if self.slow_nanos.load(Relaxed) >= self.slow_budget_nanos {
            self.slow_skipped.fetch_add(1, Relaxed);
            return None;
        }
        let started = std::time::Instant::now();
        let v = stored.matches(password);
        self.slow_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        self.slow_done.fetch_add(1, Relaxed);
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v);
        Some(v)
    }

    /// The most time slow comparisons (`{CRYPT}`) may take in this run.
    pub fn with_slow_budget(mut self, budget: std::time::Duration) -> CurrentPasswords {
        self.slow_budget_nanos = budget.as_nanos().min(u64::MAX as u128) as u64;
        self
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

    /// A slow `{CRYPT}` comparison is made once per account and password in a run, and
    /// none past the run's budget: the answer is then "not known", never "stale".
    #[test]
    fn slow_comparisons_are_remembered_and_bounded() {
        use std::sync::atomic::Ordering::Relaxed;
        let bcrypt = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        let mut c = CurrentPasswords::default();
        c.add(1, Stored::crypt(bcrypt).unwrap());
        c.add(2, Stored::Nt(nt_hash("fast")));
        assert_eq!(c.check(1, "U*U"), Some(true));
        assert_eq!(c.check(1, "U*U"), Some(true));
        assert_eq!(c.check(1, "other"), Some(false));
        assert_eq!(c.slow_done.load(Relaxed), 2);
        let mut none = CurrentPasswords::default().with_slow_budget(std::time::Duration::ZERO);
        none.add(1, Stored::crypt(bcrypt).unwrap());
        none.add(2, Stored::Nt(nt_hash("fast")));
        assert_eq!(none.check(1, "U*U"), None);
        assert_eq!(none.check(2, "fast"), Some(true));
        assert_eq!(none.slow_skipped.load(Relaxed), 1);
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
