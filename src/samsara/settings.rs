//! What the client needs to know, usually from `[samsara]`.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::config::SamsaraConfig;
use crate::retry::RetryPolicy;

use crate::defaults;

/// Everything the client needs, usually built from `[samsara]` by [`ClientSettings::from_config`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub base_url: Url,
    pub token: SecretString,
    pub requests_per_second: u32,
    /// Timeout of one request. `None` sets no timer at all in the HTTP
    /// client (no timeouts, no pool-idle expiry): only for tests under
    /// tokio's paused clock, which jumps to the next pending timer whenever
    /// it waits on a server in another thread, and would fire those.
    pub timeout: Option<Duration>,
    pub api_version: Option<String>,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    /// Total time one fetch (every page of every split query) may take.
    pub max_fetch_time: Duration,
    /// The largest response body read; a larger one fails the fetch.
    pub max_body_bytes: usize,
    /// The least a 429 waits beyond its `Retry-After`.
    pub rate_limit_floor: Duration,
    /// How long one request may be answered 429 before it fails.
    pub max_rate_limited: Duration,
}

impl ClientSettings {
    /// Settings from the `[samsara]` table.
    pub fn from_config(c: &SamsaraConfig) -> Self {
        Self {
            base_url: c.base_url.clone(),
            token: c.token.clone(),
            requests_per_second: c.requests_per_second,
            timeout: Some(c.timeout),
            api_version: c.api_version.clone(),
            retry: RetryPolicy {
                max_attempts: c.max_attempts,
                max_elapsed: c.max_retry_time,
                ..RetryPolicy::default()
            },
            concurrency: defaults::FETCH_CONCURRENCY,
            max_fetch_time: c.max_fetch_time,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            rate_limit_floor: defaults::RATE_LIMIT_FLOOR,
            max_rate_limited: defaults::MAX_RATE_LIMITED,
        }
    }

    /// Defaults for a base URL and token (used by tests and tools).
    pub fn new(base_url: Url, token: SecretString) -> Self {
        Self {
            base_url,
            token,
            requests_per_second: defaults::REQUESTS_PER_SECOND,
            timeout: Some(defaults::REQUEST_TIMEOUT),
            api_version: None,
            retry: RetryPolicy::default(),
            concurrency: defaults::FETCH_CONCURRENCY,
            max_fetch_time: defaults::MAX_FETCH_TIME,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            rate_limit_floor: defaults::RATE_LIMIT_FLOOR,
            max_rate_limited: defaults::MAX_RATE_LIMITED,
        }
    }
}
