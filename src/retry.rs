//! Retry policy: which failures are worth another attempt (the decision) and
//! how long to wait before it (the timing), kept apart so each can be tested.
//! Shared by the Samsara client and the delivery senders through the one
//! loop in `crate::http`.

use std::time::Duration;

use rand::Rng;

/// The outcome of one attempt that did not produce a page.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptFailure {
    /// 429, with the server's `Retry-After` if it sent a valid one.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, with the start of its (plain-text) body.
    Server { status: u16, body: String },
    /// The request timed out.
    Timeout,
    /// Connecting, sending, or reading the body failed.
    Connection(String),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RateLimited { .. } => write!(f, "HTTP 429 Too Many Requests"),
            Self::Server { status, body } if body.is_empty() => write!(f, "HTTP {status}"),
            Self::Server { status, body } => write!(f, "HTTP {status}: {body}"),
            Self::Timeout => write!(f, "the request timed out"),
            Self::Connection(detail) => write!(f, "connection failed: {detail}"),
        }
    }
}

/// Bounds and pacing of retries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// First backoff; doubles with each attempt.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
    /// `Retry-After` values above this are capped to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: crate::defaults::MAX_ATTEMPTS,
            max_elapsed: crate::defaults::MAX_RETRY_TIME,
            base_delay: crate::defaults::RETRY_BASE_DELAY,
            max_delay: crate::defaults::RETRY_MAX_DELAY,
            max_retry_after: crate::defaults::MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts with no wait between them (and
    /// `Retry-After` capped to nothing): for tests, which need the decisions
    /// and not the pacing.
    pub fn immediate(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_retry_after: Duration::ZERO,
        }
    }

    /// How long to wait before attempt `attempt + 1`, after `attempt`
    /// attempts (1-based) have failed with `failure` and `elapsed` has
    /// passed; `None` when the budget is spent.
    pub fn next_delay(
        &self,
        failure: &AttemptFailure,
        attempt: u32,
        elapsed: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match failure {
            AttemptFailure::RateLimited {
                retry_after: Some(after),
            } => (*after).min(self.max_retry_after),
            _ => self.backoff(attempt),
        };
        (elapsed + delay <= self.max_elapsed).then_some(delay)
    }

    /// How long to wait after a 429: its `Retry-After` (capped by
    /// `max_retry_after`, 0 when absent) plus `floor`, plus up to half the
    /// floor at random. The floor keeps clients that got tiny `Retry-After`
    /// values (`0.002`) from coming back at once, together, into the same
    /// full second; the jitter spreads them out.
    pub fn rate_limited_delay(&self, retry_after: Option<Duration>, floor: Duration) -> Duration {
        let after = retry_after
            .unwrap_or(Duration::ZERO)
            .min(self.max_retry_after);
        after + floor + (floor / 2).mul_f64(rand::rng().random::<f64>())
    }

    /// Exponential backoff with jitter: half the step fixed, half random, so
    /// that clients retrying together spread out but never retry at once.
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16))
            .min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Parses `Retry-After` as the API sends it: seconds, possibly fractional
/// (`0.40235`). HTTP dates and nonsense give `None` (backoff is used instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_fractional_seconds() {
        assert_eq!(
            parse_retry_after("0.40235"),
            Some(Duration::from_secs_f64(0.40235))
        );
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        let limited = |s| AttemptFailure::RateLimited {
            retry_after: Some(Duration::from_secs_f64(s)),
        };
        assert_eq!(
            p.next_delay(&limited(0.4), 1, Duration::ZERO),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            p.next_delay(&limited(3600.0), 1, Duration::ZERO),
            Some(p.max_retry_after)
        );
    }

    #[test]
    fn a_429_waits_its_retry_after_plus_the_floor_with_jitter() {
        let p = RetryPolicy::default();
        let floor = Duration::from_secs(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let d = p.rate_limited_delay(Some(Duration::from_millis(2)), floor);
            assert!(d >= Duration::from_millis(1002), "{d:?}");
            assert!(d <= Duration::from_millis(1502), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 1, "no jitter: {seen:?}");
        let d = p.rate_limited_delay(None, floor);
        assert!(d >= floor && d <= floor * 3 / 2, "{d:?}");
        let d = p.rate_limited_delay(Some(Duration::from_secs(3600)), floor);
        assert!(d >= p.max_retry_after + floor, "{d:?}");
        assert!(d <= p.max_retry_after + floor * 3 / 2, "capped: {d:?}");
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy::default();
        for attempt in 1..p.max_attempts {
            let d = p
                .next_delay(&AttemptFailure::Timeout, attempt, Duration::ZERO)
                .unwrap();
            let step = (p.base_delay * (1 << (attempt - 1))).min(p.max_delay);
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} vs step {step:?}"
            );
        }
    }

    #[test]
    fn budget_in_attempts_and_time_is_respected() {
        let p = RetryPolicy::default();
        let f = AttemptFailure::Server {
            status: 503,
            body: String::new(),
        };
        assert_eq!(p.next_delay(&f, p.max_attempts, Duration::ZERO), None);
        assert_eq!(p.next_delay(&f, 1, p.max_elapsed), None);
    }
}
