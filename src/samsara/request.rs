//! One request of the client: paced by the endpoint's limiter, retried by
//! the one loop in [`crate::http`], its body read through a cap and its
//! failure classified.

use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use super::client::Client;
use super::error::{ApiError, Place};
use crate::http::{Classify, Pacing, Verdict, retry, snippet};
use crate::retry::AttemptFailure;

impl Client {
    /// One GET, paced by the endpoint's limiter and retried by the policy:
    /// 429s are the server pacing us ([`Pacing::ServerPaced`]), bounded by
    /// `max_rate_limited` and not by the attempt budget.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        place: &Place,
    ) -> Result<T, ApiError> {
        let settings = &self.inner.settings;
        let limiter = self.inner.limits.get(
            settings.base_url.as_str(),
            place.endpoint.path(),
            settings.requests_per_second,
        );
        let pacing = Pacing::ServerPaced {
            floor: settings.rate_limit_floor,
            max: settings.max_rate_limited,
        };
        let (limiter, url) = (&limiter, &url);
        let out = retry(&settings.retry, pacing, place, |_| async move {
            limiter.acquire().await;
            if let Some(o) = &self.inner.observer {
                o.on_send(place.endpoint);
            }
            self.attempt(url.clone(), place).await
        })
        .await;
        out.result.map_err(|failed| match failed {
            Failed::Fatal(e) => e,
            Failed::Again(last) => ApiError::Exhausted {
                place: place.clone(),
                attempts: out.attempts,
                elapsed: out.elapsed,
                last: last.to_string(),
            },
        })
    }

    /// One attempt: the value, or why not ([`Failed::Again`] when a retry
    /// may help).
    async fn attempt<T: DeserializeOwned>(&self, url: Url, place: &Place) -> Result<T, Failed> {
        let observe = |status: &str| {
            if let Some(o) = &self.inner.observer {
                o.on_response(place.endpoint, status);
            }
        };
        let request = self
            .inner
            .http
            .get(url)
            .bearer_auth(self.inner.settings.token.expose_secret());
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let failure = transport_failure(e);
                observe(failure_label(&failure));
                return Err(Failed::Again(failure));
            }
        };
        let status = response.status();
        observe(status.as_str());
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = crate::http::retry_after(response.headers());
            return Err(Failed::Again(AttemptFailure::RateLimited { retry_after }));
        }
        // Read through a cap: a body is streamed into memory only up to
        // `max_body_bytes`, whatever the server declares or sends.
        let limit = self.inner.settings.max_body_bytes;
        let too_large = || {
            Failed::Fatal(ApiError::BodyTooLarge {
                place: place.clone(),
                limit,
            })
        };
        let declared = response.content_length().unwrap_or(0);
        if declared > limit as u64 {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity((declared as usize).min(1024 * 1024));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The connection broke mid-body: a truncated page is never used.
                Err(e) => return Err(Failed::Again(transport_failure(e))),
            }
        }
        if status.is_server_error() {
            return Err(Failed::Again(AttemptFailure::Server {
                status: status.as_u16(),
                body: snippet(&body),
            }));
        }
        if !status.is_success() {
            let (message, request_id) = error_body(&body);
            let (place, status) = (place.clone(), status.as_u16());
            return Err(Failed::Fatal(if status == 401 || status == 403 {
                ApiError::Unauthorized {
                    place,
                    status,
                    message,
                    request_id,
                }
            } else {
                ApiError::Rejected {
                    place,
                    status,
                    message,
                    request_id,
                }
            }));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Failed::Fatal(ApiError::BadResponse {
                place: place.clone(),
                detail: format!("{e} (body of {} bytes)", body.len()),
            })
        })
    }
}

/// Why one attempt produced no value.
#[derive(Debug)]
enum Failed {
    /// A retry may help (429, 5xx, a timeout, a broken connection).
    Again(AttemptFailure),
    /// A retry cannot help.
    Fatal(ApiError),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Again(failure) => failure.fmt(f),
            Self::Fatal(e) => e.fmt(f),
        }
    }
}

impl Classify for Failed {
    fn classify(&self) -> Verdict {
        match self {
            Self::Again(failure) => failure.classify(),
            Self::Fatal(_) => Verdict::Permanent,
        }
    }
}

/// Classifies a reqwest failure. Its message never includes the URL: the
/// query string can hold kilobytes of learner ids, and errors reach logs and
/// failure notices.
fn transport_failure(e: reqwest::Error) -> AttemptFailure {
    if e.is_timeout() {
        return AttemptFailure::Timeout;
    }
    AttemptFailure::Connection(crate::errors::chain(&e.without_url()))
}

fn failure_label(f: &AttemptFailure) -> &'static str {
    match f {
        AttemptFailure::Timeout => "timeout",
        _ => "connection",
    }
}

/// `message` and `requestId` of a 4xx JSON body, or the start of the raw body.
fn error_body(body: &[u8]) -> (String, Option<String>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        message: Option<String>,
        request_id: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        // The API's own words go into one-line errors and logs: keep them on one line, and short.
        Ok(ErrorBody {
            message: Some(m),
            request_id,
        }) => (
            snippet(m.as_bytes()),
            request_id.map(|id| crate::names::one_line(&id).into_owned()),
        ),
        Ok(ErrorBody { request_id, .. }) => ("(no message)".into(), request_id),
        Err(_) if body.is_empty() => ("(empty body)".into(), None),
        Err(_) => (snippet(body), None),
    }
}
