//! Webhook senders (reqwest lives here): Slack incoming webhooks, Microsoft
//! Teams Workflows webhooks, and generic signed JSON webhooks.
//!
//! Each attempt is one POST, classified as [`SendError`]: 429 (with its
//! `Retry-After`), 408, 5xx, timeouts and connection errors are transient;
//! every other answer is permanent. [`with_retries`] does the waiting.
//!
//! Webhook URLs are secrets (a Slack URL carries its credential in its
//! path): no error, log line or `Debug` output here contains one. Webhooks
//! are named by the label the caller passes (the webhook's config name),
//! reqwest errors are stripped of their URL, and every message is scrubbed
//! of the URL once more before it leaves, in case a receiver echoes it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Attempted, SendError, with_retries};
use crate::errors::chain;
use crate::http::{Redirects, snippet};
use crate::ratelimit::RateLimits;
use crate::retry::RetryPolicy;

/// Slack accepts one message per second per webhook, in bursts tolerated
/// briefly; trainwatch never relies on the burst.
const SLACK_MESSAGES_PER_SECOND: u32 = 1;

/// The registry key of Slack's limiters (the other half is the URL's hash).
const SLACK_ENDPOINT: &str = "slack-webhook";

/// The header carrying the HMAC of a json webhook's body.
pub const SIGNATURE_HEADER: &str = "X-Trainwatch-Signature";

/// The header carrying a json delivery's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Posts reports to webhooks. Cheap to clone; one HTTP client inside.
#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    limits: Arc<RateLimits>,
    /// A refused connection fails at once instead of being retried.
    refused_is_final: bool,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registry is keyed by hashes, but say nothing about it anyway.
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

/// The result of posting a (possibly multi-part) Slack digest.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackAttempted {
    /// Attempts made over all parts, first attempts included.
    pub attempts: u32,
    /// Parts delivered, counted from the first part of the digest: on a
    /// failure, the parts before the failed one. Pass it to
    /// [`WebhookSender::slack_from`] to resume without re-sending them.
    pub parts_sent: usize,
    /// `Ok` when every part was delivered; the failed part's last error otherwise.
    pub result: Result<(), SendError>,
}

impl From<SlackAttempted> for Attempted {
    fn from(s: SlackAttempted) -> Self {
        Attempted {
            attempts: s.attempts,
            result: s.result,
        }
    }
}

impl WebhookSender {
    /// A sender with a 30 s request timeout and a Slack pacing registry of
    /// its own, shared by its clones: build one per process and clone it.
    pub fn new() -> Result<Self, reqwest::Error> {
        Self::with_settings(Some(crate::defaults::WEBHOOK_TIMEOUT), RateLimits::local())
    }

    /// A sender with its own `timeout` and pacing registry `limits`.
    ///
    /// `timeout: None` sets no timer at all in the HTTP client (no request
    /// timeout, no pool-idle expiry): only for tests under tokio's paused
    /// clock, which jumps to the next pending timer whenever it waits on a
    /// server in another thread, and would fire those.
    pub fn with_settings(
        timeout: Option<Duration>,
        limits: Arc<RateLimits>,
    ) -> Result<Self, reqwest::Error> {
        // A webhook that redirects is misconfigured, and following it
        // would carry the body and its signature to another address.
        let http = crate::http::client_builder(timeout, Redirects::Never).build()?;
        Ok(Self {
            http,
            limits,
            refused_is_final: false,
        })
    }

    /// This sender, failing at once (not retrying) when nothing accepts the
    /// connection: for `run-once`, where someone is waiting.
    pub fn refused_is_final(mut self, yes: bool) -> Self {
        self.refused_is_final = yes;
        self
    }

    /// Posts a Slack digest: each Block Kit message of `messages` in order,
    /// each retried on its own (parts already delivered are not re-sent),
    /// never more than one message per second to the same URL across every
    /// sender sharing this sender's registry. Only HTTP 200 is success.
    /// `label` names the webhook in errors (never its URL).
    pub async fn slack(
        &self,
        label: &str,
        url: &SecretString,
        messages: &[Value],
        policy: &RetryPolicy,
    ) -> SlackAttempted {
        self.slack_from(label, url, messages, 0, policy).await
    }

    /// [`slack`](Self::slack), starting at part `first` (0-based) because
    /// the parts before it were delivered by an earlier run; parts keep
    /// their numbers in errors.
    pub async fn slack_from(
        &self,
        label: &str,
        url: &SecretString,
        messages: &[Value],
        first: usize,
        policy: &RetryPolicy,
    ) -> SlackAttempted {
        let limiter = self
            .limits
            .get(&url_key(url), SLACK_ENDPOINT, SLACK_MESSAGES_PER_SECOND);
        let total = messages.len();
        let mut attempts = 0;
        for (index, message) in messages.iter().enumerate().skip(first) {
            let place = if total > 1 {
                format!("slack webhook {label:?}, part {} of {total}", index + 1)
            } else {
                format!("slack webhook {label:?}")
            };
            let body = serde_json::to_vec(message).expect("a JSON value always serializes");
            let out = with_retries(policy, |_| async {
                limiter.acquire().await;
                let request = self
                    .http
                    .post(url.expose_secret())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                self.attempt(&place, url, request, |s| s == StatusCode::OK)
                    .await
            })
            .await;
            attempts += out.attempts;
            if let Err(err) = out.result {
                return SlackAttempted {
                    attempts,
                    parts_sent: index,
                    result: Err(err),
                };
            }
        }
        SlackAttempted {
            attempts,
            parts_sent: total,
            result: Ok(()),
        }
    }

    /// Posts a Teams Workflows message (`card`: the message with its
    /// Adaptive Card). Any 2xx is success; Workflows answers 202.
    pub async fn msteams(
        &self,
        label: &str,
        url: &SecretString,
        card: &Value,
        policy: &RetryPolicy,
    ) -> Attempted {
        let place = format!("msteams webhook {label:?}");
        let body = serde_json::to_vec(card).expect("a JSON value always serializes");
        with_retries(policy, |_| async {
            let request = self
                .http
                .post(url.expose_secret())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            self.attempt(&place, url, request, |s| s.is_success()).await
        })
        .await
    }

    /// Posts `body` as JSON. Any 2xx is success. A key that is not a valid
    /// header value fails permanently before any attempt (`attempts: 0`).
    ///
    /// Headers: `Idempotency-Key: <idempotency_key>` always, so a receiver
    /// can drop the duplicate of a delivery whose answer was lost; the
    /// caller derives the key from (job, window, target, recipient), so it
    /// is the same for every attempt and every run that re-sends that
    /// delivery. With a `secret`, `X-Trainwatch-Signature: sha256=<hex>`:
    /// the lowercase hex HMAC-SHA256 of the exact body bytes sent.
    pub async fn json(
        &self,
        label: &str,
        url: &SecretString,
        secret: Option<&SecretString>,
        body: &Value,
        idempotency_key: &str,
        policy: &RetryPolicy,
    ) -> Attempted {
        let place = format!("json webhook {label:?}");
        let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
        let key = match HeaderValue::from_str(idempotency_key) {
            Ok(key) => key,
            Err(_) => {
                return Attempted {
                    attempts: 0,
                    result: Err(SendError::permanent(format!(
                        "{place}: the idempotency key {idempotency_key:?} is not a valid \
                         header value (visible ASCII only)"
                    ))),
                };
            }
        };
        let signature = secret.map(|s| signature(s, &bytes));
        with_retries(policy, |_| async {
            let mut request = self
                .http
                .post(url.expose_secret())
                .header(CONTENT_TYPE, "application/json")
                .header(IDEMPOTENCY_HEADER, key.clone())
                .body(bytes.clone());
            if let Some(sig) = &signature {
                request = request.header(SIGNATURE_HEADER, sig);
            }
            self.attempt(&place, url, request, |s| s.is_success()).await
        })
        .await
    }

    /// One POST, classified. `place` names the webhook; `url` is only used
    /// to scrub it from what the receiver or the HTTP stack says.
    async fn attempt(
        &self,
        place: &str,
        url: &SecretString,
        request: reqwest::RequestBuilder,
        success: impl Fn(StatusCode) -> bool,
    ) -> Result<(), SendError> {
        let scrub = |message: String| scrub(message, url.expose_secret());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let e = e.without_url();
                return Err(if e.is_builder() {
                    SendError::permanent(scrub(format!(
                        "{place}: the URL is not usable: {}",
                        chain(&e)
                    )))
                } else if e.is_timeout() {
                    SendError::transient(scrub(format!("{place}: the request timed out")))
                } else if e.is_connect() && super::is_refused(&e) {
                    SendError::Refused {
                        message: scrub(format!(
                            "{place}: {} (nothing listens at the webhook's address)",
                            super::REFUSED
                        )),
                    }
                    .final_if_refused(self.refused_is_final)
                } else {
                    SendError::transient(scrub(format!("{place}: {}", chain(&e))))
                });
            }
        };
        let status = response.status();
        let retry_after = crate::http::retry_after(response.headers());
        // The body is read in every case, so the connection can be reused.
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) if success(status) => {
                // Delivered: the receiver said so before the body broke off.
                tracing::debug!("{place}: reading the answer: {}", chain(&e.without_url()));
                String::new()
            }
            Err(e) => format!(
                "(the answer could not be read: {})",
                chain(&e.without_url())
            ),
        };
        if success(status) {
            tracing::debug!(status = status.as_u16(), "{place}: delivered");
            return Ok(());
        }
        let message = scrub(format!("{place}: {}", describe(status, &body)));
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        Err(if transient {
            SendError::Transient {
                message,
                retry_after,
            }
        } else {
            SendError::permanent(message)
        })
    }
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The registry key of a URL: its SHA-256, so the registry (which has a
/// `Debug`) never holds the URL itself.
fn url_key(url: &SecretString) -> String {
    hex::encode(Sha256::digest(url.expose_secret().trim().as_bytes()))
}

/// `HTTP 400 Bad Request: invalid_blocks`, the body quoted by
/// [`crate::http::snippet`] (on one line, cut to 300 characters).
fn describe(status: StatusCode, body: &str) -> String {
    let head = match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let excerpt = snippet(body.as_bytes());
    if excerpt.is_empty() {
        return head;
    }
    format!("{head}: {excerpt}")
}

/// `message` with the URL, and its path on its own, replaced.
fn scrub(message: String, url: &str) -> String {
    let url = url.trim();
    let mut out = message;
    if !url.is_empty() {
        out = out.replace(url, "<webhook URL>");
    }
    if let Ok(parsed) = url::Url::parse(url) {
        let path = parsed.path();
        if path.len() > 1 {
            out = out.replace(path, "/<redacted>");
        }
        if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
            out = out.replace(query, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_quoted_on_one_line_and_cut() {
        assert_eq!(
            describe(StatusCode::BAD_REQUEST, "invalid_blocks\n"),
            "HTTP 400 Bad Request: invalid_blocks"
        );
        assert_eq!(
            describe(StatusCode::BAD_GATEWAY, "  "),
            "HTTP 502 Bad Gateway"
        );
        let long = describe(StatusCode::BAD_REQUEST, &"é".repeat(1000));
        assert_eq!(
            long.chars().filter(|c| *c == 'é').count(),
            crate::http::SNIPPET_CHARS
        );
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_url_echoed_by_a_receiver_is_scrubbed() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRET?token=abc";
        let out = scrub(
            format!("no such hook {url}; path /services/T0/B0/SECRET; token=abc"),
            url,
        );
        assert!(!out.contains("SECRET") && !out.contains("abc"), "{out}");
    }

    #[test]
    fn the_signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        let sig = signature(&SecretString::from("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_pacing_key_does_not_hold_the_url() {
        let key = url_key(&SecretString::from("https://hooks.example/SECRET"));
        assert_eq!(key.len(), 64);
        assert!(!key.contains("SECRET"));
    }
}
