//! `webhook`: each action POSTed as JSON to the admins' URL (a SOAR, a ticketing hook),
//! signed so that the receiver can tell it came from here: `X-Leakwatch-Signature:
//! sha256=HEX`, the HMAC-SHA256 of the exact body under the key in `secret_file`. The
//! action's id rides along (`X-Leakwatch-Action`, and `action_id` in the body) so that a
//! receiver can drop the second copy a crash may cause. A transient failure is tried
//! again at once, twice, with a growing pause; after that the action waits for its next
//! attempt (`retry_interval_secs`, doubling).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::http::{network, status_failure, Client};
use super::Failure;
use crate::config::WebhookTarget;
use crate::secret::read_secret_file;

/// Attempts within one try of the action, and the first pause between them.
const QUICK_ATTEMPTS: u32 = 3;
const QUICK_PAUSE: Duration = Duration::from_millis(500);

/// `sha256=` and the hex HMAC of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        crate::identity::to_hex_upper(&tag).to_lowercase()
    )
}

pub async fn send(
    client: &mut Client,
    w: &WebhookTarget,
    action_id: i64,
    body: &[u8],
) -> Result<String, Failure> {
    let key = read_secret_file(&w.secret_file)
        .map_err(|e| Failure::permanent(format!("webhook key: {e}")))?;
    let sig = signature(key.expose().as_bytes(), body);
    drop(key);
    let mut pause = QUICK_PAUSE;
    let mut last = Failure::transient("webhook: not tried");
    for attempt in 1..=QUICK_ATTEMPTS {
        let sent = client
            .inner
            .post(&w.url)
            .timeout(Duration::from_secs(w.timeout_secs))
            .header("Content-Type", "application/json")
            .header("X-Leakwatch-Signature", &sig)
            .header("X-Leakwatch-Action", action_id.to_string())
            .body(body.to_vec())
            .send()
            .await;
        last = match sent {
            Ok(resp) if resp.status().is_success() => {
                return Ok(format!("webhook: HTTP {}", resp.status().as_u16()))
            }
            Ok(resp) => status_failure("webhook", resp.status()),
            Err(e) => network("webhook", &e),
        };
        if !last.transient || attempt == QUICK_ATTEMPTS {
            break;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 ("Jefe"), as any receiver's HMAC-SHA256 computes it.
    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
