//! The directory read over LDAP: each account's last password change and, where the
//! bind may read it, its salted password hash (`liveness`).
//!
//! OpenLDAP's ppolicy overlay keeps the last change in `pwdChangedTime` (a GeneralizedTime),
//! Active Directory in `pwdLastSet` (a FILETIME); both are read, whichever the server has.
//! `userPassword` in `{SSHA}` or `{SSHA512}` (salted SHA-1 or SHA-512, what `slappasswd`
//! and the Password Modify operation write) lets a leaked password be compared at match
//! time as an NT hash is; other schemes are counted and left unknown. Entries are matched
//! to accounts by their login attribute (`uid`, or `sAMAccountName` for AD) through the
//! identity index, as the accounts CSV's `username` is. The search is paged (500 a page),
//! so a directory of millions is read whatever the server's size limit.
//!
//! What is read stays in this process: the hashes in memory for the run (wiped when it
//! ends), the change dates written to `accounts.password_changed_at`.

use std::time::Duration;

use base64::Engine as _;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};
use zeroize::Zeroize;

use super::ntlm::Stored;
use crate::config::LdapSource;
use crate::identity::{IdentityHash, IdentityKind, Normalizer};
use crate::secret::{read_secret_file, SecretError};
use crate::store::{KeyIndex, KeyIndexError};

#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("LDAP {url}: {source}")]
    Ldap {
        url: String,
        source: Box<ldap3::LdapError>,
    },
    #[error("LDAP bind password: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Keys(#[from] KeyIndexError),
}

/// What the directory said, by account id.
#[derive(Default)]
pub struct FromLdap {
    /// Each matched account's last password change (unix seconds), when the entry has one.
    pub changed: Vec<(i64, i64)>,
    pub hashes: Vec<(i64, Stored)>,
    /// Entries read, matched to an account, and with a `userPassword` in a scheme that
    /// cannot be compared.
    pub entries: usize,
    pub matched: usize,
    pub other_schemes: usize,
}

/// `pwdChangedTime`: `YYYYMMDDHHMMSS[.fraction]Z`.
pub fn generalized_time(v: &str) -> Option<i64> {
    let v = v.strip_suffix('Z')?;
    let whole = v.split(['.', ',']).next()?;
    chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// `pwdLastSet`: 100 ns ticks since 1601 (`0`: must change at next logon, no date).
pub fn filetime(v: &str) -> Option<i64> {
    match v.parse::<i64>().ok()? {
        t if t > 0 && t < i64::MAX => Some(t / 10_000_000 - 11_644_473_600),
        _ => None,
    }
}

/// A `userPassword` value: `{SSHA}` or `{SSHA512}` (digest then salt, base64), or
/// `{CRYPT}` in SHA-256/512-crypt or bcrypt.
pub fn stored_hash(v: &[u8]) -> Option<Stored> {
    let (scheme, rest) = match v {
        [b'{', ..] => {
            let end = v.iter().position(|&b| b == b'}')?;
            (&v[1..end], &v[end + 1..])
        }
        _ => return None,
    };
    if scheme.eq_ignore_ascii_case(b"CRYPT") {
        return Stored::crypt(std::str::from_utf8(rest).ok()?);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let (len, sha512) = match scheme.to_ascii_uppercase().as_slice() {
        b"SSHA" => (20, false),
        b"SSHA512" => (64, true),
        _ => return None,
    };
    if decoded.len() <= len {
        return None;
    }
    let (digest, salt) = decoded.split_at(len);
    Some(Stored::Salted {
        sha512,
        digest: digest.to_vec(),
        salt: salt.to_vec(),
    })
}

/// Reads the directory at `src` and matches its entries to accounts.
pub fn read(src: &LdapSource, norm: &Normalizer, keys: &KeyIndex) -> Result<FromLdap, LdapError> {
    let ldap_err = |source| LdapError::Ldap {
        url: src.url.clone(),
        source: Box::new(source),
    };
    let password = read_secret_file(&src.password_file)?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(src.timeout_secs))
        .set_starttls(src.starttls);
    let mut conn = LdapConn::with_settings(settings, &src.url).map_err(ldap_err)?;
    conn.with_timeout(Duration::from_secs(src.timeout_secs));
    let bound = conn
        .simple_bind(&src.bind_dn, password.expose())
        .and_then(|r| r.success());
    drop(password);
    bound.map_err(ldap_err)?;
    let attrs = vec![
        src.login_attribute.as_str(),
        "pwdChangedTime",
        "pwdLastSet",
        "userPassword",
    ];
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let mut out = FromLdap::default();
    let mut key = String::new();
    let mut stream = conn
        .streaming_search_with(adapters, &src.base_dn, Scope::Subtree, &src.filter, attrs)
        .map_err(ldap_err)?;
    while let Some(entry) = stream.next().map_err(ldap_err)? {
        let mut e = SearchEntry::construct(entry);
        out.entries += 1;
        let first = |e: &SearchEntry, name: &str| {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let account = match first(&e, &src.login_attribute) {
            Some(login) if norm.login_key(&login, &mut key) => {
                match keys.lookup(&IdentityHash::of(&key))? {
                    Some((id, IdentityKind::Login)) => Some(id),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(id) = account {
            out.matched += 1;
            let changed = first(&e, "pwdChangedTime")
                .and_then(|v| generalized_time(&v))
                .or_else(|| first(&e, "pwdLastSet").and_then(|v| filetime(&v)));
            if let Some(t) = changed {
                out.changed.push((id, t));
            }
            let values: Vec<&[u8]> = e
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("userPassword"))
                .flat_map(|(_, v)| v.iter().map(|s| s.as_bytes()))
                .chain(
                    e.bin_attrs
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case("userPassword"))
                        .flat_map(|(_, v)| v.iter().map(Vec::as_slice)),
                )
                .collect();
            match values.iter().find_map(|v| stored_hash(v)) {
                Some(h) => out.hashes.push((id, h)),
                None if !values.is_empty() => out.other_schemes += 1,
                None => {}
            }
        }
        for v in e.attrs.values_mut().flatten() {
            v.zeroize();
        }
        for v in e.bin_attrs.values_mut().flatten() {
            v.zeroize();
        }
    }
    stream.result().success().map_err(ldap_err)?;
    let _ = conn.unbind();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_dates_and_hashes_as_servers_write_them() {
        assert_eq!(generalized_time("20251102080000Z"), Some(1_762_070_400));
        assert_eq!(generalized_time("20251102080000.123Z"), Some(1_762_070_400));
        assert_eq!(generalized_time("20251102080000"), None);
        assert_eq!(filetime("134065440000000000"), Some(1_762_070_400));
        assert_eq!(filetime("0"), None);
        assert_eq!(filetime("9223372036854775807"), None);
        // `slappasswd -h {SSHA} -s secret`.
        let stored = stored_hash(b"{SSHA}q84GYVTGNdaaH//4uVgMvRuPZ4glxObH").unwrap();
        let Stored::Salted {
            sha512,
            digest,
            salt,
        } = &stored
        else {
            panic!("not salted");
        };
        assert!(!sha512);
        assert_eq!((digest.len(), salt.len()), (20, 4));
        assert!(stored.matches("secret"));
        assert!(!stored.matches("Secret"));
        assert!(stored_hash(b"secret").is_none());
        assert!(stored_hash(b"{SSHA}AAAA").is_none());
    }

    /// `{CRYPT}` as `openssl passwd -5/-6`, glibc's crypt and OpenBSD's bcrypt write it:
    /// the vectors of Drepper's SHA-crypt specification and openwall's crypt_blowfish.
    /// Schemes not compared, malformed values and costs past the bounds are refused when
    /// read, so they stay "unknown" rather than "stale".
    #[test]
    fn crypt_values_as_glibc_and_openbsd_write_them() {
        for (value, password) in [
            (
                "{CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
                "Hello world!",
            ),
            (
                "{crypt}$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
                "Hello world!",
            ),
            (
                "{CRYPT}$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
                "Hello world!",
            ),
            (
                "{CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                "U*U",
            ),
        ] {
            let stored = stored_hash(value.as_bytes()).unwrap_or_else(|| panic!("{value}"));
            assert!(stored.matches(password), "{value}");
            assert!(!stored.matches("hello world!"), "{value}");
        }
        for refused in [
            "{CRYPT}$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1",
            "{CRYPT}$6$abc",
            "{CRYPT}$6$rounds=999999999$salt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "{CRYPT}$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "{CRYPT}$2a$05$short",
            "{CRYPT}xxj31ZMTZzkVA",
        ] {
            assert!(stored_hash(refused.as_bytes()).is_none(), "{refused}");
        }
    }
}
