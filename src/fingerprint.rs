//! What a finding keeps of a leaked password: a keyed fingerprint, never the password.
//!
//! The fingerprint is HMAC-SHA-256 under a per-installation key that lives in the state
//! directory (mode 0600). It lets leakwatch recognise "the same password again" across
//! files and runs, while a copy of the database alone cannot be brute-forced offline the way
//! a plain hash of a password could. The account id is mixed in so that two accounts that
//! share a password do not share a fingerprint.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

const KEY_FILE: &str = "install.key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("installation key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not made anew: a new key makes every fingerprint new, so credentials already
    /// reported would be reported (and mailed) again.
    #[error("installation key {path} has {len} bytes, expected {KEY_LEN}: damaged. Restore it from the backup taken with leakwatch.db. Deleting it makes a new key, and every credential already reported would be reported and mailed again")]
    Length { path: PathBuf, len: usize },
}

/// The installation key. `Debug` does not print it.
pub struct Fingerprinter {
    /// The HMAC keyed once (its two padded key blocks hashed): a fingerprint then costs
    /// two SHA-256 blocks, not four, a million times over in a leak of the whole user base.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(***)")
    }
}

impl Fingerprinter {
    /// Loads the key from the state dir, creating it (mode 0600, never overwritten) on
    /// first use. The key is written whole to a file of its own, flushed, then linked to
    /// its name, which fails if another process linked one first (whose key is then
    /// read): a crash at any point leaves no key or a whole one, never a short one. A
    /// 0-byte key, which versions before this left on such a crash, was never used to
    /// fingerprint anything, and is replaced.
    pub fn open(state_dir: &Path) -> Result<Fingerprinter, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        loop {
            match std::fs::read(&path) {
                Ok(bytes) if bytes.is_empty() => {
                    tracing::warn!(path = %path.display(), "the installation key is empty (a crash while it was first written): made anew");
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Ok(bytes) => {
                    let key: [u8; KEY_LEN] =
                        bytes.as_slice().try_into().map_err(|_| KeyError::Length {
                            path: path.clone(),
                            len: bytes.len(),
                        })?;
                    return Ok(Fingerprinter::keyed(key));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
            let mut key = [0u8; KEY_LEN];
            rand::rng().fill_bytes(&mut key);
            let mut suffix = [0u8; 8];
            rand::rng().fill_bytes(&mut suffix);
            let tmp = state_dir.join(format!(
                ".{KEY_FILE}.{}",
                crate::identity::to_hex_upper(&suffix)
            ));
            let written = (|| {
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp)?;
                f.write_all(&key)?;
                f.sync_all()?;
                std::fs::hard_link(&tmp, &path)
            })();
            let _ = std::fs::remove_file(&tmp);
            match written {
                Ok(()) => {
                    if let Ok(dir) = std::fs::File::open(state_dir) {
                        let _ = dir.sync_all();
                    }
                    return Ok(Fingerprinter::keyed(key));
                }
                // Another process made it first: its key is read.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// `logs.zip!FR[9F3A…] [2025-10-12]/Passwords.txt` → `logs.zip!device-3fa1b2c4d5e6/Passwords.txt`:
    /// `name` with its device folder `root` (a prefix of it) replaced by the folder's
    /// keyed label. A device folder's name often holds the machine's HWID or IP: logs,
    /// sources and the drop directory's file rows name it by this label instead.
    pub fn redact_folder(&self, name: &str, root: &str) -> String {
        let Some(rest) = name.strip_prefix(root) else {
            return name.to_string();
        };
        let key = self.label("device-folder", root);
        let label: String = key[..6].iter().map(|b| format!("{b:02x}")).collect();
        let parent = match root.rfind(['/', '\\', '!']) {
            Some(i) => &root[..=i],
            None => "",
        };
        format!("{parent}device-{label}{rest}")
    }

    pub fn from_key(key: [u8; KEY_LEN]) -> Fingerprinter {
        Fingerprinter::keyed(key)
    }

    fn keyed(key: [u8; KEY_LEN]) -> Fingerprinter {
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
        Fingerprinter { mac }
    }

    /// The fingerprint of `password` as leaked for account `account_id`.
    pub fn password(&self, account_id: i64, password: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&account_id.to_le_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Fingerprinter {
    /// A keyed hash of an identifier from a dump that must be comparable but never
    /// readable (an infected machine's HWID or name): without the installation key, a
    /// list of machine names cannot be tried against it.
    pub fn label(&self, domain: &str, text: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The masked hint of a password (`m•••••e`), shown only to its owner. Held inline (its
/// first and last characters and five bullets: at most 23 bytes), since a leak of the
/// whole user base makes a million of them.
#[derive(Debug, Clone, Copy)]
pub struct Hint {
    bytes: [u8; 23],
    len: u8,
}

impl Hint {
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever written (`password_hint`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("•••••")
    }
}

/// The hint of `password`: as `identity::mask`, without an allocation.
pub fn password_hint(password: &str) -> Hint {
    let mut hint = Hint {
        bytes: [0; 23],
        len: 0,
    };
    let mut push = |s: &str| {
        let at = hint.len as usize;
        hint.bytes[at..at + s.len()].copy_from_slice(s.as_bytes());
        hint.len += s.len() as u8;
    };
    let mut chars = password.chars();
    match (chars.next(), chars.next_back(), password.chars().nth(5)) {
        (Some(first), Some(last), Some(_)) => {
            push(first.encode_utf8(&mut [0; 4]));
            push("•••••");
            push(last.encode_utf8(&mut [0; 4]));
        }
        _ => push("•••••"),
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline hint is the masked form the rest of the code makes.
    #[test]
    fn hint_is_the_mask() {
        for pw in ["", "a", "abcde", "abcdef", "é€𝄞xyz", "𝄞bcde𝄞", "pass word"] {
            assert_eq!(
                password_hint(pw).as_str(),
                crate::identity::mask(pw),
                "{pw}"
            );
        }
    }

    /// A key left empty by a crash (as versions before the write-then-link did) is made
    /// anew; a short one is refused with its length; no temporary file is left.
    #[test]
    fn an_empty_key_is_replaced_and_a_short_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"").unwrap();
        let a = Fingerprinter::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(KEY_FILE)).unwrap().len(),
            KEY_LEN
        );
        let b = Fingerprinter::open(dir.path()).unwrap();
        assert_eq!(a.password(1, "pw"), b.password(1, "pw"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE], "only the key is left");
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let e = Fingerprinter::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("has 5 bytes"), "{e}");
    }

    #[test]
    fn key_is_created_once_with_mode_600_and_fingerprints_are_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Fingerprinter::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Fingerprinter::open(dir.path()).unwrap();
        assert_eq!(a.password(1, "pw"), b.password(1, "pw"));
        assert_ne!(a.password(1, "pw"), a.password(2, "pw"));
        assert_ne!(a.password(1, "pw"), a.password(1, "pw2"));
        let other = tempfile::tempdir().unwrap();
        let c = Fingerprinter::open(other.path()).unwrap();
        assert_ne!(a.password(1, "pw"), c.password(1, "pw"));
        assert_eq!(format!("{a:?}"), "Fingerprinter(***)");
    }
}
