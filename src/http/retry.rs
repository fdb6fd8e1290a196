//! The one retry loop: an attempt's failure is classified ([`Classify`]),
//! the [`RetryPolicy`] decides how long to wait, the loop only sleeps.
//!
//! It runs on tokio's clock, so tests drive it under a paused clock.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::retry::{AttemptFailure, RetryPolicy};

/// What a failed attempt means for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worth another attempt after a backoff: 5xx, timeouts, broken connections.
    Transient,
    /// The server asked us to slow down (429, or a `Retry-After` on a
    /// transient answer), with its wait if it gave a valid one.
    RateLimited { retry_after: Option<Duration> },
    /// Nothing accepted the connection. Retried like a transient failure:
    /// a caller for whom it is final (`run-once`) has made it
    /// [`Verdict::Permanent`] already, see `SendError::final_if_refused`.
    Refused,
    /// Retrying cannot help: other 4xx, a bad request, a bad address.
    Permanent,
}

/// A failure that knows whether it is worth another attempt.
pub trait Classify: Display {
    /// What this failure means for the next attempt.
    fn classify(&self) -> Verdict;
}

impl Classify for AttemptFailure {
    fn classify(&self) -> Verdict {
        match self {
            Self::RateLimited { retry_after } => Verdict::RateLimited {
                retry_after: *retry_after,
            },
            Self::Server { .. } | Self::Timeout | Self::Connection(_) => Verdict::Transient,
        }
    }
}

/// How answers that ask us to slow down are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// A rate-limited answer is one more failure: it spends an attempt and
    /// waits its `Retry-After` (capped by the policy), or backs off.
    Attempts,
    /// A rate-limited answer is the server pacing us, not an error: it waits
    /// [`RetryPolicy::rate_limited_delay`] with this `floor`, spends no
    /// attempt, and such waits are bounded by `max` in all. Time spent in
    /// them does not count against the policy's `max_elapsed` either.
    ServerPaced { floor: Duration, max: Duration },
}

/// The outcome of [`retry`].
#[derive(Debug, Clone, PartialEq)]
pub struct Retried<T, E> {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from the first attempt to the end of the last.
    pub elapsed: Duration,
    /// The last attempt's result.
    pub result: Result<T, E>,
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds,
/// fails permanently, or `policy`'s budget is spent, waiting between
/// attempts as `policy` and `pacing` say. `what` names the request in logs.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    pacing: Pacing,
    what: &(dyn Display + Sync),
    mut attempt: F,
) -> Retried<T, E>
where
    E: Classify,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    // Attempts in all; failures that spend the policy's attempt budget; time
    // spent waiting after server-paced answers (bounded on its own).
    let (mut n, mut errors) = (0u32, 0u32);
    let mut limited_for = Duration::ZERO;
    loop {
        n += 1;
        let result = attempt(n).await;
        let elapsed = started.elapsed();
        let err = result.as_ref().err();
        let next = err.and_then(|err| match (err.classify(), pacing) {
            (Verdict::Permanent, _) => None,
            (Verdict::RateLimited { retry_after }, Pacing::ServerPaced { floor, max }) => {
                let delay = policy.rate_limited_delay(retry_after, floor);
                limited_for += delay;
                (limited_for <= max).then_some(delay)
            }
            (verdict, _) => {
                errors += 1;
                let failure = match verdict {
                    Verdict::RateLimited { retry_after } => {
                        AttemptFailure::RateLimited { retry_after }
                    }
                    _ => AttemptFailure::Timeout,
                };
                policy.next_delay(&failure, errors, elapsed.saturating_sub(limited_for))
            }
        });
        match (err, next) {
            (Some(err), Some(delay)) => {
                tracing::warn!(
                    %what,
                    attempt = n,
                    retry_in_ms = delay.as_millis() as u64,
                    "{err}; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            _ => {
                return Retried {
                    attempts: n,
                    elapsed,
                    result,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failure(Verdict);

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    impl Classify for Failure {
        fn classify(&self) -> Verdict {
            self.0
        }
    }

    async fn always(
        policy: &RetryPolicy,
        pacing: Pacing,
        verdict: Verdict,
    ) -> Retried<(), Failure> {
        retry(
            policy,
            pacing,
            &"test",
            |_| async move { Err(Failure(verdict)) },
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn server_paced_answers_spend_no_attempt_and_are_bounded_by_time() {
        let policy = RetryPolicy::immediate(2);
        let limited = Verdict::RateLimited { retry_after: None };
        let pacing = Pacing::ServerPaced {
            floor: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let out = always(&policy, pacing, limited).await;
        // Each wait is 1 to 1.5 s: 6 to 10 waits fit in 10 s.
        assert!((7..=11).contains(&out.attempts), "{}", out.attempts);
        assert!(out.elapsed <= Duration::from_secs(10), "{:?}", out.elapsed);
        let out = always(&policy, Pacing::Attempts, limited).await;
        assert_eq!(out.attempts, 2, "a 429 spends an attempt here");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_spend_attempts_and_permanent_ones_stop() {
        let policy = RetryPolicy::immediate(3);
        for (verdict, attempts) in [
            (Verdict::Transient, 3),
            (Verdict::Refused, 3),
            (Verdict::Permanent, 1),
        ] {
            let out = always(&policy, Pacing::Attempts, verdict).await;
            assert_eq!(out.attempts, attempts, "{verdict:?}");
        }
    }
}
