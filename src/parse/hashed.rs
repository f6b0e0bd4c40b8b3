//! Password fields that hold a hash rather than a password.
//!
//! Database dumps carry what the victim's application stored: bcrypt, argon2, crypt(3)
//! strings, or (still, often) unsalted MD5, SHA-1 or NTLM hex. Such a value is not the
//! password, but it is an exposure all the same: an unsalted fast hash falls to a
//! dictionary in seconds, a slow salted one costs an attacker per guess. The finding is
//! then a `password_hash` one, with the algorithm named and the severity that its
//! cracking speed calls for; the value itself is fingerprinted like a password, never
//! stored.

/// The hash algorithms told apart by their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Bcrypt,
    Argon2,
    Scrypt,
    Yescrypt,
    Sha512Crypt,
    Sha256Crypt,
    Md5Crypt,
    Phpass,
    Pbkdf2,
    /// MySQL's `PASSWORD()`: `*` and 40 hex digits, SHA-1 of SHA-1, unsalted.
    MySql,
    /// 32 hex digits: MD5, or NTLM (MD4 of UTF-16); both unsalted and fast.
    Md5OrNtlm,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Bcrypt => "bcrypt",
            HashAlgo::Argon2 => "argon2",
            HashAlgo::Scrypt => "scrypt",
            HashAlgo::Yescrypt => "yescrypt",
            HashAlgo::Sha512Crypt => "sha512crypt",
            HashAlgo::Sha256Crypt => "sha256crypt",
            HashAlgo::Md5Crypt => "md5crypt",
            HashAlgo::Phpass => "phpass",
            HashAlgo::Pbkdf2 => "pbkdf2",
            HashAlgo::MySql => "mysql",
            HashAlgo::Md5OrNtlm => "md5/ntlm",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Slow and salted: each guess costs the attacker (bcrypt, argon2, scrypt, crypt(3)
    /// with rounds, PBKDF2). The rest fall to a dictionary at billions of guesses a second.
    pub fn is_slow(self) -> bool {
        matches!(
            self,
            HashAlgo::Bcrypt
                | HashAlgo::Argon2
                | HashAlgo::Scrypt
                | HashAlgo::Yescrypt
                | HashAlgo::Sha512Crypt
                | HashAlgo::Sha256Crypt
                | HashAlgo::Pbkdf2
                | HashAlgo::Phpass
        )
    }
}

/// The algorithm of a password field's value, if it is shaped as a hash.
pub fn classify(value: &str) -> Option<HashAlgo> {
    let v = value.trim();
    let b = v.as_bytes();
    let b64ish = |s: &[u8]| {
        s.iter().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'.' | b'/' | b'+' | b'=' | b'$' | b',' | b'-' | b'_')
        })
    };
    if b.len() == 60
        && (v.starts_with("$2a$")
            || v.starts_with("$2b$")
            || v.starts_with("$2y$")
            || v.starts_with("$2x$"))
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b64ish(&b[7..])
    {
        return Some(HashAlgo::Bcrypt);
    }
    let crypt = |prefix: &str, min: usize| {
        v.starts_with(prefix) && b.len() >= min && b64ish(&b[prefix.len()..])
    };
    if crypt("$argon2id$", 30) || crypt("$argon2i$", 30) || crypt("$argon2d$", 30) {
        return Some(HashAlgo::Argon2);
    }
    if crypt("$scrypt$", 30) || crypt("$7$", 30) {
        return Some(HashAlgo::Scrypt);
    }
    if crypt("$y$", 30) {
        return Some(HashAlgo::Yescrypt);
    }
    if crypt("$6$", 90) {
        return Some(HashAlgo::Sha512Crypt);
    }
    if crypt("$5$", 50) {
        return Some(HashAlgo::Sha256Crypt);
    }
    if crypt("$1$", 26) {
        return Some(HashAlgo::Md5Crypt);
    }
    if (crypt("$P$", 34) || crypt("$H$", 34)) && b.len() == 34 {
        return Some(HashAlgo::Phpass);
    }
    if (v.starts_with("pbkdf2_sha256$")
        || v.starts_with("pbkdf2_sha1$")
        || v.starts_with("$pbkdf2"))
        && b.len() >= 40
        && b64ish(b)
    {
        return Some(HashAlgo::Pbkdf2);
    }
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if b.len() == 41 && b[0] == b'*' && hex(&b[1..]) {
        return Some(HashAlgo::MySql);
    }
    // Hex of a hash length, in one case (a password of 32 hex digits mixing cases is
    // improbable; a hash is written all lower or all upper).
    let one_case = !(b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_uppercase));
    if hex(b) && one_case && b.iter().any(u8::is_ascii_alphabetic) {
        return match b.len() {
            32 => Some(HashAlgo::Md5OrNtlm),
            40 => Some(HashAlgo::Sha1),
            64 => Some(HashAlgo::Sha256),
            128 => Some(HashAlgo::Sha512),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases: &[(&str, Option<HashAlgo>)] = &[
            (
                "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                Some(HashAlgo::Bcrypt),
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                Some(HashAlgo::Argon2),
            ),
            (
                "$1$saltsalt$abcdefghijklmnopqrstuv",
                Some(HashAlgo::Md5Crypt),
            ),
            ("$P$Babcdefghijklmnopqrstuvwxyz1234", Some(HashAlgo::Phpass)),
            (
                "pbkdf2_sha256$600000$salt$aGFzaGhhc2hoYXNoaGFzaA==",
                Some(HashAlgo::Pbkdf2),
            ),
            (
                "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",
                Some(HashAlgo::MySql),
            ),
            (
                "5f4dcc3b5aa765d61d8327deb882cf99",
                Some(HashAlgo::Md5OrNtlm),
            ),
            (
                "8846F7EAEE8FB117AD06BDD830B7586C",
                Some(HashAlgo::Md5OrNtlm),
            ),
            (
                "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
                Some(HashAlgo::Sha1),
            ),
            (
                "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
                Some(HashAlgo::Sha256),
            ),
            // Passwords.
            ("hunter2", None),
            ("$2y$not-a-hash", None),
            ("12345678901234567890123456789012", None),
            ("5f4dcc3b5aa765d61D8327DEB882CF99", None),
            ("Tr0ub4dor&3", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(classify(v), *want, "{v}");
        }
        assert!(HashAlgo::Bcrypt.is_slow());
        assert!(!HashAlgo::Md5OrNtlm.is_slow());
    }
}
