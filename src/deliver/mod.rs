//! Deliveries: where rendered reports leave trainwatch.
//!
//! Each sender (email, webhook, archive) makes one attempt and classifies
//! its failure as transient or permanent ([`SendError`] is
//! [`Classify`]); [`with_retries`] owns the waiting.

use std::future::Future;
use std::time::Duration;

use crate::http::{Classify, Pacing, Verdict, retry};
use crate::retry::RetryPolicy;

pub mod archive;
pub mod dispatch;
pub mod email;
pub mod webhook;

/// Why one attempt at a delivery failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt: SMTP 4xx, connection errors, HTTP 429/5xx, timeouts.
    #[error("{message}")]
    Transient {
        message: String,
        /// How long the receiver asked us to wait (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: SMTP 5xx, HTTP 4xx, a bad address, a full disk.
    #[error("{message}")]
    Permanent { message: String },
    /// Nothing accepted the connection (nothing listens at the address).
    /// The service retries it like any transient failure (a mail server
    /// restarting comes back); `run-once` gives up at once, see
    /// [`SendError::final_if_refused`].
    #[error("{message}")]
    Refused { message: String },
}

/// Words every refused-connection message carries, so the CLI can add its hint once.
pub const REFUSED: &str = "connection refused";

impl SendError {
    /// A transient failure with no server-given wait.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// True for failures worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Refused { .. })
    }

    /// A refused connection made permanent when `fail_fast` (a person at a
    /// terminal waits for `run-once`; six attempts over 44 s against a
    /// server that is not there help nobody); anything else unchanged.
    pub fn final_if_refused(self, fail_fast: bool) -> Self {
        match self {
            Self::Refused { message } if fail_fast => Self::Permanent {
                message: format!("{message} (not retried by run-once)"),
            },
            other => other,
        }
    }
}

/// True when `e` or one of its causes is an I/O error "connection refused".
pub fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    crate::errors::any_cause(e, |io: &std::io::Error| {
        io.kind() == std::io::ErrorKind::ConnectionRefused
    })
}

/// Sends one outgoing item (one attempt loop, retries included) under its
/// idempotency key. The real implementation is [`Dispatcher`](dispatch::Dispatcher); tests may
/// supply their own.
pub trait Sender {
    /// Delivers `item`, whose first `parts_done` parts the receiver already
    /// confirmed in an earlier run; `key` is its idempotency key.
    fn send(
        &self,
        item: &crate::outbox::Outgoing,
        key: &str,
        parts_done: u32,
    ) -> impl Future<Output = Dispatched> + Send;
}

/// The outcome of sending one outgoing item.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    pub attempted: Attempted<Sent>,
    /// Parts the receiver has confirmed in all (1 for single-part payloads
    /// once sent, the Slack parts for a digest).
    pub parts_done: u32,
}

/// How a delivery succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The receiver took it now.
    Delivered,
    /// An archive snapshot for this window was already there (untouched).
    AlreadyArchived,
}

/// The result of a delivery after its retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted<T = ()> {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// `Ok` when the last attempt succeeded; the last error otherwise.
    pub result: Result<T, SendError>,
}

impl Classify for SendError {
    fn classify(&self) -> Verdict {
        match self {
            Self::Transient {
                retry_after: Some(after),
                ..
            } => Verdict::RateLimited {
                retry_after: Some(*after),
            },
            Self::Transient { .. } => Verdict::Transient,
            Self::Refused { .. } => Verdict::Refused,
            Self::Permanent { .. } => Verdict::Permanent,
        }
    }
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds, fails
/// permanently, or `policy`'s budget in attempts or time is spent; waits
/// between attempts as the policy says (a receiver's `Retry-After` honoured,
/// capped, and spending an attempt). The loop is [`crate::http::retry`].
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, attempt: F) -> Attempted<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, SendError>>,
{
    let out = retry(policy, Pacing::Attempts, &"delivery", attempt).await;
    Attempted {
        attempts: out.attempts,
        result: out.result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let out = with_retries(&policy(), |n| async move {
            if n < 3 {
                Err(SendError::transient("busy"))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(
            out,
            Attempted {
                attempts: 3,
                result: Ok(())
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_connection_is_retried_unless_made_final() {
        let refused = || SendError::Refused {
            message: "connecting to 127.0.0.1:2525: connection refused".into(),
        };
        let retried: Attempted = with_retries(&policy(), |_| async { Err(refused()) }).await;
        assert_eq!(retried.attempts, 4, "the service keeps trying");
        let once: Attempted = with_retries(&policy(), |_| async {
            Err(refused().final_if_refused(true))
        })
        .await;
        assert_eq!(once.attempts, 1, "run-once gives up at once");
        assert_eq!(
            once.result.unwrap_err().to_string(),
            "connecting to 127.0.0.1:2525: connection refused (not retried by run-once)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_stops_at_once() {
        let out: Attempted = with_retries(&policy(), |_| async {
            Err(SendError::permanent("550 no such user"))
        })
        .await;
        assert_eq!(out.attempts, 1);
        assert_eq!(out.result, Err(SendError::permanent("550 no such user")));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_budget_and_honour_retry_after() {
        let started = tokio::time::Instant::now();
        let out: Attempted = with_retries(&policy(), |_| async {
            Err(SendError::Transient {
                message: "429".into(),
                retry_after: Some(Duration::from_secs(2)),
            })
        })
        .await;
        assert_eq!(out.attempts, 4);
        assert!(!out.result.unwrap_err().to_string().is_empty());
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(6),
            "three waits of Retry-After"
        );
    }
}
