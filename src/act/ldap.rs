//! The directory written over LDAP: the account's entry found by its login (or address),
//! then, by the directory's `flavor`:
//!
//! | action | OpenLDAP (ppolicy) | Active Directory |
//! |---|---|---|
//! | `force_change` | `pwdReset: TRUE` | `pwdLastSet: 0` |
//! | `disable` | `pwdAccountLockedTime: 000001010000Z` (locked until an admin unlocks) | `userAccountControl` with ACCOUNTDISABLE (0x2) |
//!
//! Each is a `replace`, so doing it twice leaves the entry as doing it once. The bind is
//! the one in `[remediation.ldap]`, which needs write access to those attributes (and is
//! usually not the read-only bind of `[liveness.ldap]`).

use std::time::Duration;

use ldap3::{ldap_escape, LdapConn, LdapConnSettings, Mod, Scope, SearchEntry};

use super::Failure;
use crate::config::{LdapFlavor, LdapSource};
use crate::secret::read_secret_file;

/// `pwdAccountLockedTime`'s value for "locked until an administrator unlocks it".
const LOCKED_FOR_GOOD: &str = "000001010000Z";
const ACCOUNTDISABLE: u32 = 0x2;

pub struct Conn {
    conn: LdapConn,
}

fn ldap_failure(what: &str, e: ldap3::LdapError) -> Failure {
    use ldap3::LdapError as E;
    let message = format!("LDAP {what}: {}", super::clean(&e.to_string()));
    match e {
        // The server's answer: a refusal (no such attribute, insufficient access) is
        // reported; a busy or unavailable server is tried again.
        E::LdapResult { result } if !matches!(result.rc, 51..=53 | 80) => {
            Failure::permanent(message)
        }
        _ => Failure::transient(message),
    }
}

impl Conn {
    pub fn open(src: &LdapSource) -> Result<Conn, Failure> {
        let password = read_secret_file(&src.password_file)
            .map_err(|e| Failure::permanent(format!("LDAP bind password: {e}")))?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(src.timeout_secs))
            .set_starttls(src.starttls);
        let mut conn =
            LdapConn::with_settings(settings, &src.url).map_err(|e| ldap_failure("connect", e))?;
        conn.with_timeout(Duration::from_secs(src.timeout_secs));
        let bound = conn
            .simple_bind(&src.bind_dn, password.expose())
            .and_then(|r| r.success());
        drop(password);
        bound.map_err(|e| ldap_failure("bind", e))?;
        Ok(Conn { conn })
    }

    /// The one entry whose login attribute is the account's username, or whose `mail` is
    /// its address; with its `userAccountControl` for AD.
    fn find(
        &mut self,
        src: &LdapSource,
        email: &str,
        username: Option<&str>,
    ) -> Result<(String, Option<u32>), Failure> {
        let by_login = username
            .filter(|u| !u.is_empty())
            .map(|u| format!("({}={})", src.login_attribute, ldap_escape(u)))
            .unwrap_or_default();
        let filter = format!(
            "(&{}(|{by_login}(mail={})))",
            src.filter,
            ldap_escape(email)
        );
        let (entries, _) = self
            .conn
            .with_timeout(Duration::from_secs(src.timeout_secs))
            .search(
                &src.base_dn,
                Scope::Subtree,
                &filter,
                vec!["userAccountControl"],
            )
            .and_then(|r| r.success())
            .map_err(|e| ldap_failure("search", e))?;
        match entries.len() {
            0 => Err(Failure::permanent("LDAP: no entry for the account")),
            1 => {
                let e = SearchEntry::construct(entries.into_iter().next().expect("one"));
                let uac = e
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("userAccountControl"))
                    .and_then(|(_, v)| v.first())
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(|v| v as u32);
                Ok((e.dn, uac))
            }
            n => Err(Failure::permanent(format!(
                "LDAP: {n} entries match the account: none changed"
            ))),
        }
    }

    pub fn act(
        &mut self,
        src: &LdapSource,
        action: &str,
        email: &str,
        username: Option<&str>,
    ) -> Result<String, Failure> {
        let (dn, uac) = self.find(src, email, username)?;
        let (attr, value) = match (src.flavor, action) {
            (LdapFlavor::Openldap, "force_change") => ("pwdReset", "TRUE".to_string()),
            (LdapFlavor::Openldap, "disable") => {
                ("pwdAccountLockedTime", LOCKED_FOR_GOOD.to_string())
            }
            (LdapFlavor::Ad, "force_change") => ("pwdLastSet", "0".to_string()),
            (LdapFlavor::Ad, "disable") => {
                let uac = uac.ok_or_else(|| {
                    Failure::permanent(format!("LDAP {dn}: no userAccountControl to change"))
                })?;
                ("userAccountControl", (uac | ACCOUNTDISABLE).to_string())
            }
            (_, other) => return Err(Failure::permanent(format!("LDAP cannot do `{other}`"))),
        };
        let values: std::collections::HashSet<&str> = [value.as_str()].into();
        self.conn
            .with_timeout(Duration::from_secs(src.timeout_secs))
            .modify(&dn, vec![Mod::Replace(attr, values)])
            .and_then(|r| r.success())
            .map_err(|e| ldap_failure("modify", e))?;
        Ok(format!("LDAP {dn}: {attr} set to {value}"))
    }
}
