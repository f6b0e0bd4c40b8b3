//! Keycloak as a source of last password changes (`liveness`): each user's password
//! credential's `createdDate`, read through the admin REST API with the
//! client-credentials grant (the same client as `[remediation.keycloak]` can serve; it
//! needs `view-users`). Users are matched to accounts by username (the accounts CSV's
//! `username`), else by address.
//!
//! Keycloak has no bulk call for credentials, so a read costs one request per user: it is
//! made at most every `refresh_secs` (the dates are kept in `accounts`), not at each run.

use crate::act::http::Client;
use crate::config::{Config, KeycloakTarget};
use crate::identity::{IdentityHash, IdentityKind, Normalizer};
use crate::store::KeyIndex;

/// What the realm said: (account id, last password change) for each matched user.
#[derive(Debug, Default)]
pub struct FromKeycloak {
    pub changed: Vec<(i64, i64)>,
    pub users: usize,
    pub matched: usize,
}

/// Reads the realm. Errors are the caller's to log: the run goes on without them.
pub fn read(
    cfg: &Config,
    kc: &KeycloakTarget,
    norm: &Normalizer,
    keys: &KeyIndex,
) -> Result<FromKeycloak, String> {
    let mut out = FromKeycloak::default();
    let mut key = String::new();
    let mut account_of = |username: &str, email: Option<&str>| -> Option<i64> {
        if norm.login_key(username, &mut key) {
            if let Ok(Some((id, IdentityKind::Login))) = keys.lookup(&IdentityHash::of(&key)) {
                return Some(id);
            }
        }
        let email = email.or_else(|| username.contains('@').then_some(username))?;
        if norm.email_key(email, &mut key) {
            if let Ok(Some((id, IdentityKind::Email))) = keys.lookup(&IdentityHash::of(&key)) {
                return Some(id);
            }
        }
        None
    };
    let fut = async {
        let mut client = Client::new(cfg).map_err(|e| e.message)?;
        crate::act::keycloak::password_dates(&mut client, kc, |username, email, created| {
            if let Some(id) = account_of(username, email) {
                out.matched += 1;
                if let Some(t) = created {
                    out.changed.push((id, t));
                }
            }
        })
        .await
        .map_err(|e| e.message)
    };
    // In the daemon this runs on a blocking thread of its runtime; from `ingest`, outside
    // any runtime.
    let users = match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(fut),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(fut),
    }?;
    out.users = users;
    Ok(out)
}
