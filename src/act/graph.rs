//! Microsoft Graph (Entra ID): the user addressed by user principal name (the account's
//! address), then `revoke_sessions` is `revokeSignInSessions`, `disable` sets
//! `accountEnabled: false`, `force_change` sets `passwordProfile.
//! forceChangePasswordNextSignIn`. The token comes from the tenant's v2.0 endpoint by the
//! client-credentials grant, for Graph's `.default` scope.

use std::time::Duration;

use super::http::{network, status_failure, url, Client};
use super::Failure;
use crate::config::GraphTarget;

const SCOPE: &str = "https://graph.microsoft.com/.default";

pub async fn act(
    client: &mut Client,
    g: &GraphTarget,
    action: &str,
    email: &str,
) -> Result<String, Failure> {
    let out = act_once(client, g, action, email).await;
    client.after(out)
}

async fn act_once(
    client: &mut Client,
    g: &GraphTarget,
    action: &str,
    email: &str,
) -> Result<String, Failure> {
    let timeout = Duration::from_secs(g.timeout_secs);
    let token_url = url(&g.authority, &[&g.tenant, "oauth2", "v2.0", "token"])?;
    let bearer = client
        .token(
            token_url.as_str(),
            &g.client_id,
            &g.client_secret_file,
            Some(SCOPE),
            timeout,
        )
        .await?;
    let request = match action {
        "revoke_sessions" => client.inner.post(url(
            &g.graph_url,
            &["users", email, "revokeSignInSessions"],
        )?),
        "disable" => client
            .inner
            .patch(url(&g.graph_url, &["users", email])?)
            .json(&serde_json::json!({ "accountEnabled": false })),
        "force_change" => client
            .inner
            .patch(url(&g.graph_url, &["users", email])?)
            .json(&serde_json::json!({
                "passwordProfile": { "forceChangePasswordNextSignIn": true }
            })),
        other => return Err(Failure::permanent(format!("Graph cannot do `{other}`"))),
    };
    let resp = request
        .bearer_auth(&bearer)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| network("Graph", &e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Failure::permanent("Graph: no such user"));
    }
    if !status.is_success() {
        return Err(status_failure(&format!("Graph {action}"), status));
    }
    Ok(match action {
        "revoke_sessions" => "Graph: sign-in sessions revoked".into(),
        "disable" => "Graph: account disabled".into(),
        _ => "Graph: password change forced at next sign-in".into(),
    })
}
