//! One rate limiter per (base URL, endpoint), shared by everything in the process.
//!
//! Samsara allows 5 requests per second on the training endpoints, per
//! organization. Every fetch — several jobs at once, several chunks of one
//! query — takes its turn from the same limiter, so the sum stays under the
//! limit and a 429 is an exception, not the pacing mechanism.
//!
//! The limiter is governor's GCRA with a burst of one: requests are spaced
//! evenly, so *any* one-second window holds at most `rate` of them (a
//! burst-sized bucket would allow `2 × rate - 1` in some windows). Its clock
//! is tokio's, so tests run it under a paused clock.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Extra spacing on top of `1 s / rate`, in parts per thousand. Requests leave
/// evenly spaced but arrive with a little jitter; 1% keeps a server that
/// counts arrivals in a sliding second from ever seeing `rate + 1`.
const SPACING_MARGIN_PER_MILLE: u32 = 10;

/// governor's clock, read from tokio so that a paused test clock drives it.
#[derive(Debug, Clone)]
struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Paces requests to at most `rate` per second, first come first served.
#[derive(Debug)]
pub struct Limiter {
    gcra: Gcra,
    clock: TokioClock,
    /// tokio's Mutex is fair: waiters get their turn in arrival order.
    queue: tokio::sync::Mutex<()>,
    rate: u32,
}

impl Limiter {
    /// A limiter for `rate` requests per second (at least 1).
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(1);
        let period = Duration::from_secs(1) / rate * (1000 + SPACING_MARGIN_PER_MILLE) / 1000;
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(NonZeroU32::MIN);
        let clock = TokioClock {
            origin: tokio::time::Instant::now(),
        };
        Self {
            gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            queue: tokio::sync::Mutex::new(()),
            rate,
        }
    }

    /// The configured requests per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Waits until one more request may be sent.
    pub async fn acquire(&self) {
        let _turn = self.queue.lock().await;
        loop {
            match self.gcra.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The limiters of a process, one per (base URL, endpoint path).
#[derive(Debug, Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<(String, &'static str), Arc<Limiter>>>,
}

impl RateLimits {
    /// The registry every client shares unless a test makes its own.
    pub fn global() -> Arc<RateLimits> {
        static GLOBAL: OnceLock<Arc<RateLimits>> = OnceLock::new();
        GLOBAL.get_or_init(Default::default).clone()
    }

    /// The limiter for `endpoint` at `base_url`, created at `rate` on first use.
    pub fn get(&self, base_url: &str, endpoint: &'static str, rate: u32) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((base_url.trim_end_matches('/').to_string(), endpoint))
            .or_insert_with(|| Arc::new(Limiter::new(rate)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_limiter_per_base_url_and_endpoint() {
        let limits = RateLimits::default();
        let a = limits.get("http://127.0.0.1:1/", "/training-assignments/stream", 5);
        let b = limits.get("http://127.0.0.1:1", "/training-assignments/stream", 5);
        let c = limits.get("http://127.0.0.1:1", "/training-courses", 5);
        let d = limits.get("http://127.0.0.1:2", "/training-assignments/stream", 5);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(!Arc::ptr_eq(&a, &d));
    }
}
