//! Rate limits of outgoing requests: one limiter per (base URL, endpoint),
//! in a [`RateLimits`] registry that its owner builds once and passes to
//! every client that must share it (the service builds one for the Samsara
//! client and its webhook sender builds its own). There is no process-wide
//! registry: whoever builds a registry decides its rates.
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
//!
//! Processes sharing a state store also share the token's budget: a
//! [`RateLimits::shared`] registry books each request's slot from a
//! [`SlotBook`] (the `rate_slots` table, see [`SqliteSlots`]),
//! so three processes on one token together send `rate` requests a second,
//! not three times that. The in-process GCRA stays the path for tests and
//! for a book that cannot be reached (with a warning).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

mod slots;

pub use slots::{SqliteSlots, shared_limits};

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

/// Where the processes sharing a token book their request slots.
pub trait SlotBook: Send + Sync + std::fmt::Debug {
    /// Books the next slot of `key` — at or after `now_ns` (nanoseconds since
    /// the epoch) and `period` after the slot booked before it — and returns
    /// its time. Must be atomic across processes.
    fn book(&self, key: &str, period: Duration, now_ns: i64) -> Result<i64, String>;
}

/// The wall clock slots are booked on, in nanoseconds since the epoch (every
/// process must read the same clock; tests map tokio's paused clock onto it).
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock as a [`WallClock`].
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// A limiter's share of a [`SlotBook`].
struct Shared {
    book: Arc<dyn SlotBook>,
    key: String,
    clock: WallClock,
    /// The book failed once: said once in the log, not per request.
    warned: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

/// Paces requests to at most `rate` per second, first come first served.
#[derive(Debug)]
pub struct Limiter {
    gcra: Gcra,
    clock: TokioClock,
    /// tokio's Mutex is fair: waiters get their turn in arrival order.
    queue: tokio::sync::Mutex<()>,
    rate: u32,
    period: Duration,
    shared: Option<Shared>,
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
            period,
            shared: None,
        }
    }

    /// The configured requests per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Waits until one more request may be sent.
    pub async fn acquire(&self) {
        let _turn = self.queue.lock().await;
        if let Some(shared) = &self.shared
            && self.acquire_shared(shared).await
        {
            return;
        }
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

impl Limiter {
    /// Books a slot from the shared book and sleeps until it; false when
    /// the book failed (the caller then paces in-process).
    async fn acquire_shared(&self, shared: &Shared) -> bool {
        let (book, key, period) = (shared.book.clone(), shared.key.clone(), self.period);
        let now = (shared.clock)();
        // SQLite waits on other processes' locks: off the async threads.
        let booked = tokio::task::spawn_blocking(move || book.book(&key, period, now)).await;
        let failure = match booked {
            Ok(Ok(slot)) => {
                let wait = slot.saturating_sub((shared.clock)());
                if wait > 0 {
                    tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
                }
                return true;
            }
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        if !shared.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the shared rate limit could not be booked ({failure}); \
                 pacing this process alone, other processes on the token may cause 429s"
            );
        }
        false
    }
}

/// How slots are shared by a [`RateLimits`] registry.
struct SharedConfig {
    book: Arc<dyn SlotBook>,
    /// A fingerprint of the token (never the token): the budget is the token's.
    token_tag: String,
    clock: WallClock,
}

/// The limiters of a process, one per (base URL, endpoint path).
#[derive(Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<(String, &'static str), Arc<Limiter>>>,
    shared: Option<SharedConfig>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("shared", &self.shared.as_ref().map(|s| &s.book))
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// A registry pacing this process alone (a one-shot command, a test, a
    /// webhook sender), to be shared by every client that must share it.
    pub fn local() -> Arc<RateLimits> {
        Arc::default()
    }

    /// A registry whose limiters book their slots from `book`, shared with
    /// every process using the same book and `token`.
    pub fn shared(book: Arc<dyn SlotBook>, token: &str) -> Self {
        Self::shared_with_clock(book, token, system_clock())
    }

    /// [`Self::shared`] on a given wall clock (tests: tokio's paused one).
    pub fn shared_with_clock(book: Arc<dyn SlotBook>, token: &str, clock: WallClock) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(token.as_bytes());
        Self {
            limiters: Mutex::default(),
            shared: Some(SharedConfig {
                book,
                token_tag: hex::encode(&digest[..8]),
                clock,
            }),
        }
    }

    /// The limiter for `endpoint` at `base_url`, created at `rate` on first use.
    pub fn get(&self, base_url: &str, endpoint: &'static str, rate: u32) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let base = base_url.trim_end_matches('/').to_string();
        map.entry((base.clone(), endpoint))
            .or_insert_with(|| {
                let mut limiter = Limiter::new(rate);
                limiter.shared = self.shared.as_ref().map(|s| Shared {
                    book: s.book.clone(),
                    key: format!("{base}{endpoint} {}", s.token_tag),
                    clock: s.clock.clone(),
                    warned: AtomicBool::new(false),
                });
                Arc::new(limiter)
            })
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
