//! Keycloak's admin REST API: a user found by username (else by address, exactly), then
//! `force_change` adds the `UPDATE_PASSWORD` required action, `revoke_sessions` logs the
//! user out everywhere, `disable` sets `enabled: false`. The token comes from the realm's
//! own token endpoint by the client-credentials grant (a confidential client whose
//! service account holds `manage-users`).

use std::time::Duration;

use super::http::{json, network, status_failure, url, Client};
use super::Failure;
use crate::config::KeycloakTarget;

async fn token(client: &mut Client, kc: &KeycloakTarget) -> Result<String, Failure> {
    let u = url(
        &kc.url,
        &["realms", &kc.realm, "protocol", "openid-connect", "token"],
    )?;
    client
        .token(
            u.as_str(),
            &kc.client_id,
            &kc.client_secret_file,
            None,
            Duration::from_secs(kc.timeout_secs),
        )
        .await
}

/// Does `action` for the account; returns what was done.
pub async fn act(
    client: &mut Client,
    kc: &KeycloakTarget,
    action: &str,
    email: &str,
    username: Option<&str>,
) -> Result<String, Failure> {
    let out = act_once(client, kc, action, email, username).await;
    client.after(out)
}

async fn act_once(
    client: &mut Client,
    kc: &KeycloakTarget,
    action: &str,
    email: &str,
    username: Option<&str>,
) -> Result<String, Failure> {
    let timeout = Duration::from_secs(kc.timeout_secs);
    let bearer = token(client, kc).await?;
    let users = url(&kc.url, &["admin", "realms", &kc.realm, "users"])?;
    // Exactly one user, by username first (the directory's login), else by address.
    let mut found: Option<serde_json::Value> = None;
    let by: Vec<(&str, &str)> = match username {
        Some(u) if !u.is_empty() => vec![("username", u), ("email", email)],
        _ => vec![("email", email)],
    };
    for (field, value) in by {
        let list: Vec<serde_json::Value> = json(
            "Keycloak user search",
            client
                .inner
                .get(users.clone())
                .bearer_auth(&bearer)
                .timeout(timeout)
                .query(&[(field, value), ("exact", "true")]),
        )
        .await?;
        match list.len() {
            0 => continue,
            1 => {
                found = list.into_iter().next();
                break;
            }
            n => {
                return Err(Failure::permanent(format!(
                    "Keycloak: {n} users match by {field}: none changed"
                )))
            }
        }
    }
    let user = found.ok_or_else(|| Failure::permanent("Keycloak: no such user"))?;
    let id = user["id"]
        .as_str()
        .ok_or_else(|| Failure::permanent("Keycloak: a user without id"))?
        .to_string();
    let user_url = url(&kc.url, &["admin", "realms", &kc.realm, "users", &id])?;
    let (request, done) = match action {
        "force_change" => {
            let mut required: Vec<String> = user["requiredActions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if required.iter().any(|r| r == "UPDATE_PASSWORD") {
                return Ok(format!(
                    "Keycloak user {id}: UPDATE_PASSWORD already required"
                ));
            }
            required.push("UPDATE_PASSWORD".into());
            (
                client
                    .inner
                    .put(user_url)
                    .json(&serde_json::json!({ "requiredActions": required })),
                format!("Keycloak user {id}: UPDATE_PASSWORD required"),
            )
        }
        "revoke_sessions" => {
            let mut logout = user_url.clone();
            logout
                .path_segments_mut()
                .map_err(|_| Failure::permanent("Keycloak URL"))?
                .push("logout");
            (
                client.inner.post(logout),
                format!("Keycloak user {id}: sessions revoked"),
            )
        }
        "disable" => (
            client
                .inner
                .put(user_url)
                .json(&serde_json::json!({ "enabled": false })),
            format!("Keycloak user {id}: disabled"),
        ),
        other => return Err(Failure::permanent(format!("Keycloak cannot do `{other}`"))),
    };
    let resp = request
        .bearer_auth(&bearer)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| network("Keycloak", &e))?;
    if !resp.status().is_success() {
        return Err(status_failure(&format!("Keycloak {action}"), resp.status()));
    }
    Ok(done)
}

/// Users read per page when the realm is listed.
const PAGE: usize = 200;
/// The most users listed in one read: a realm larger than this is read in part (logged).
pub(crate) const MAX_USERS: usize = 10_000_000;

/// Calls `each(username, email, password_created)` for every user of the realm, a page at
/// a time, with the creation date of the user's password credential (unix seconds;
/// `None` for a user without a password, say one who signs in through another provider).
/// Keycloak has no bulk call for credentials: one request per user. Returns how many
/// users were read.
pub(crate) async fn password_dates(
    client: &mut Client,
    kc: &KeycloakTarget,
    mut each: impl FnMut(&str, Option<&str>, Option<i64>),
) -> Result<usize, Failure> {
    let timeout = Duration::from_secs(kc.timeout_secs);
    let bearer = token(client, kc).await?;
    let users = url(&kc.url, &["admin", "realms", &kc.realm, "users"])?;
    let mut read = 0;
    while read < MAX_USERS {
        let page: Vec<serde_json::Value> = json(
            "Keycloak user list",
            client
                .inner
                .get(users.clone())
                .bearer_auth(&bearer)
                .timeout(timeout)
                .query(&[
                    ("first", read.to_string().as_str()),
                    ("max", PAGE.to_string().as_str()),
                    ("briefRepresentation", "true"),
                ]),
        )
        .await?;
        for user in &page {
            let (Some(id), Some(username)) = (user["id"].as_str(), user["username"].as_str())
            else {
                continue;
            };
            let creds_url = url(
                &kc.url,
                &["admin", "realms", &kc.realm, "users", id, "credentials"],
            )?;
            let creds: Vec<serde_json::Value> = json(
                "Keycloak credentials",
                client
                    .inner
                    .get(creds_url)
                    .bearer_auth(&bearer)
                    .timeout(timeout),
            )
            .await?;
            let created = creds
                .iter()
                .filter(|c| c["type"] == "password")
                .filter_map(|c| c["createdDate"].as_i64())
                .max()
                .map(|ms| ms / 1000);
            each(username, user["email"].as_str(), created);
        }
        read += page.len();
        if page.len() < PAGE {
            break;
        }
    }
    Ok(read)
}
