//! Generic JSON webhooks (`kind = "json"`): the report data (or a
//! `NAME.json` template's output), signed when the webhook has a secret.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use super::Sink;

/// The header carrying the HMAC of a json webhook's body.
pub const SIGNATURE_HEADER: &str = "X-Trainwatch-Signature";

/// The header carrying a json delivery's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `kind = "json"`: the body is `NAME.json` rendered when there is one, the
/// report data otherwise. Any 2xx is success.
///
/// Headers: `Idempotency-Key: <key>` always, so a receiver can drop the
/// duplicate of a delivery whose answer was lost (the key is derived from
/// job, window, target and recipient, so it is the same for every attempt
/// and every run that re-sends that delivery). With a `secret`,
/// `X-Trainwatch-Signature: sha256=<hex>`: the lowercase hex HMAC-SHA256 of
/// the exact body bytes sent.
#[derive(Debug, Clone, Copy)]
pub struct Json;

impl Sink for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn template_suffix(&self) -> &'static str {
        ".json"
    }
    fn data_without_template(&self) -> bool {
        true
    }
    fn summary(&self, _parts: usize, include_assignments: bool) -> String {
        format!(
            "report data{}",
            if include_assignments {
                " with assignments"
            } else {
                ""
            }
        )
    }
    fn failure(&self, _headline: &str, _error: &str, context: Value) -> Value {
        context
    }
    fn preview_name(&self) -> &'static str {
        "body"
    }
    fn signs(&self) -> bool {
        true
    }
    fn headers(
        &self,
        body: &[u8],
        secret: Option<&SecretString>,
        key: &str,
    ) -> Result<Vec<(&'static str, String)>, String> {
        if !key
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(format!(
                "the idempotency key {key:?} is not a valid header value (visible ASCII only)"
            ));
        }
        let mut headers = vec![(IDEMPOTENCY_HEADER, key.to_string())];
        if let Some(secret) = secret {
            headers.push((SIGNATURE_HEADER, signature(secret, body)));
        }
        Ok(headers)
    }
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
