//! The webhook sender (reqwest lives here): one POST per part of a body,
//! for every kind in [`crate::sink::SINKS`]; what differs per kind (headers,
//! signature, pacing, which status is success) the kind's sink says.
//!
//! Each attempt is one POST, classified as [`SendError`]: the sink's
//! success; else 429 (with its `Retry-After`), 408, 5xx, timeouts and
//! connection errors are transient, and every other answer is permanent.
//! [`with_retries`] does the waiting.
//!
//! Webhook URLs are secrets (a Slack URL carries its credential in its
//! path): no error, log line or `Debug` output here contains one. Webhooks
//! are named by the label the caller passes (the webhook's config name),
//! reqwest errors are stripped of their URL, and every message is scrubbed
//! of the URL once more before it leaves, in case a receiver echoes it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Attempted, SendError, with_retries};
use crate::errors::chain;
use crate::http::{Redirects, snippet};
use crate::ratelimit::RateLimits;
use crate::retry::RetryPolicy;
use crate::sink::WebhookKind;

pub use crate::sink::json::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};

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

/// The result of posting a webhook's parts (several for a long Slack digest).
pub type SlackAttempted = PartsAttempted;

/// The result of posting a webhook's parts, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsAttempted {
    /// Attempts made over all parts, first attempts included.
    pub attempts: u32,
    /// Parts delivered, counted from the first part of the digest: on a
    /// failure, the parts before the failed one. Pass it to
    /// [`WebhookSender::post`] to resume without re-sending them.
    pub parts_sent: usize,
    /// `Ok` when every part was delivered; the failed part's last error otherwise.
    pub result: Result<(), SendError>,
}

impl From<PartsAttempted> for Attempted {
    fn from(s: PartsAttempted) -> Self {
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

    /// Posts the `parts` of a webhook body of `kind` in order, from part
    /// `first` (0-based: the parts before it were delivered by an earlier
    /// run; parts keep their numbers in errors), each retried on its own.
    /// Headers beyond `Content-Type: application/json` are the kind's
    /// ([`crate::sink::Sink::headers`], given `secret` and the delivery's
    /// idempotency `key`); one it cannot make fails before any attempt.
    /// A kind with a rate ([`crate::sink::Sink::per_second`]) is paced per
    /// URL across every sender sharing this sender's registry. `label`
    /// names the webhook in errors (never its URL).
    #[allow(clippy::too_many_arguments)] // each is one thing a post needs; a struct would only rename them
    pub async fn post(
        &self,
        kind: WebhookKind,
        label: &str,
        url: &SecretString,
        secret: Option<&SecretString>,
        parts: &[Value],
        first: usize,
        key: &str,
        policy: &RetryPolicy,
    ) -> PartsAttempted {
        // Keyed by the URL's hash and the kind's name.
        let limiter = kind
            .per_second()
            .map(|rate| self.limits.get(&url_key(url), kind.name(), rate));
        let total = parts.len();
        let mut attempts = 0;
        for (index, part) in parts.iter().enumerate().skip(first) {
            let place = if total > 1 {
                format!("{kind} webhook {label:?}, part {} of {total}", index + 1)
            } else {
                format!("{kind} webhook {label:?}")
            };
            let body = serde_json::to_vec(part).expect("a JSON value always serializes");
            let headers = match headers(kind, &body, secret, key) {
                Ok(headers) => headers,
                Err(why) => {
                    return PartsAttempted {
                        attempts,
                        parts_sent: index,
                        result: Err(SendError::permanent(format!("{place}: {why}"))),
                    };
                }
            };
            let out = with_retries(policy, |_| async {
                if let Some(limiter) = &limiter {
                    limiter.acquire().await;
                }
                let mut request = self
                    .http
                    .post(url.expose_secret())
                    .header(CONTENT_TYPE, "application/json");
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                let request = request.body(body.clone());
                self.attempt(&place, url, request, |s| kind.success(s.as_u16()))
                    .await
            })
            .await;
            attempts += out.attempts;
            if let Err(err) = out.result {
                return PartsAttempted {
                    attempts,
                    parts_sent: index,
                    result: Err(err),
                };
            }
        }
        PartsAttempted {
            attempts,
            parts_sent: total,
            result: Ok(()),
        }
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
        let kind = WebhookKind::Slack;
        self.post(kind, label, url, None, messages, first, "", policy)
            .await
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
        let parts = std::slice::from_ref(card);
        let kind = WebhookKind::MsTeams;
        self.post(kind, label, url, None, parts, 0, "", policy)
            .await
            .into()
    }

    /// Posts `body` as JSON. Any 2xx is success. A key that is not a valid
    /// header value fails permanently before any attempt (`attempts: 0`).
    /// Headers: see [`crate::sink::json::Json`].
    pub async fn json(
        &self,
        label: &str,
        url: &SecretString,
        secret: Option<&SecretString>,
        body: &Value,
        idempotency_key: &str,
        policy: &RetryPolicy,
    ) -> Attempted {
        let parts = std::slice::from_ref(body);
        let kind = WebhookKind::Json;
        self.post(kind, label, url, secret, parts, 0, idempotency_key, policy)
            .await
            .into()
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

/// The headers of `kind` for a part's `body`, as reqwest takes them.
fn headers(
    kind: WebhookKind,
    body: &[u8],
    secret: Option<&SecretString>,
    key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    kind.headers(body, secret, key)?
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("internal: {name:?} is not a header name"))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| format!("the {name} header is not a valid header value"))?;
            Ok((name, value))
        })
        .collect()
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
