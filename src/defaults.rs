//! Every default value of trainwatch, defined once.
//!
//! The configuration falls back to these when a key is left out, and the
//! parts that can be built without a configuration (the API client, the retry
//! policy, the senders) start from the same numbers, so a documented default
//! cannot drift between `config.toml`, `product.md` and the code.
//!
//! A leaf: nothing here imports another trainwatch module.

use std::time::Duration;

/// The longest duration any setting accepts: 100 years of 365.25 days (a
/// bound, not a default; windows and timers stay within the calendar).
pub const MAX_DURATION_SECONDS: u64 = 36_525 * 86_400;

// --- top level --------------------------------------------------------------

/// `catch_up`: a missed fire younger than this runs once at start.
pub const CATCH_UP: Duration = Duration::from_secs(6 * 3600);
/// `retention`: how long the ledger keeps a delivered payload (90 days).
pub const RETENTION: Duration = Duration::from_secs(90 * 86_400);

// --- [samsara] --------------------------------------------------------------

/// `samsara.base_url`: the US region of the API.
pub const SAMSARA_BASE_URL: &str = "https://api.samsara.com/";
/// `samsara.requests_per_second`: the training endpoints' documented limit.
pub const REQUESTS_PER_SECOND: u32 = 5;
/// `samsara.timeout`: one request's timeout, well under [`API_TIMEOUT`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The Samsara API gives up on a request after 90 s; a configured request
/// timeout must end before it (a bound, not a default).
pub const API_TIMEOUT: Duration = Duration::from_secs(90);
/// `samsara.max_attempts`: attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// `samsara.max_retry_time`: total time one request may spend retrying.
pub const MAX_RETRY_TIME: Duration = Duration::from_secs(120);
/// `samsara.max_fetch_time`: the longest one fetch may take: 9,000 pages at
/// the API's 5 requests per second, far beyond any real report, yet an
/// endless cursor stops within the half hour.
pub const MAX_FETCH_TIME: Duration = Duration::from_secs(30 * 60);
/// The largest API response body read: 64 times a large page (512 drivers,
/// or a few hundred assignments, are under 1 MB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How many split queries of one fetch run at once (they share the limiter).
pub const FETCH_CONCURRENCY: usize = 4;
/// The least a 429 waits beyond its `Retry-After` (plus up to half of it at random).
pub const RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);
/// How long one request may keep being answered 429 before the fetch fails:
/// 429s are the server pacing us, bounded by time, not by the attempt budget.
pub const MAX_RATE_LIMITED: Duration = Duration::from_secs(10 * 60);
/// The token used with `samsara.sample_data` when none is configured.
pub const SAMPLE_TOKEN: &str = "sample-data";

// --- retries (the API client and the senders) ------------------------------

/// The first backoff of a retry; it doubles with each attempt.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest backoff between two attempts.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);
/// `Retry-After` values above this are capped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

// --- webhooks ---------------------------------------------------------------

/// One webhook request's timeout (Slack, Teams, JSON).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

// --- [store] ----------------------------------------------------------------

/// `store.lease`: how long a replica's hold on a running job lasts without
/// renewal before another replica may take the job over (Postgres only).
pub const LEASE: Duration = Duration::from_secs(120);

// --- [smtp] -----------------------------------------------------------------

/// `smtp.port` with `security = "starttls"` (the default).
pub const SMTP_PORT_STARTTLS: u16 = 587;
/// `smtp.port` with `security = "tls"`.
pub const SMTP_PORT_TLS: u16 = 465;
/// `smtp.port` with `security = "none"`.
pub const SMTP_PORT_PLAIN: u16 = 25;
/// `smtp.timeout`: one SMTP command's timeout.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

// --- [mirror] ---------------------------------------------------------------

/// `mirror.since`: how far back the first sync reaches (2020-01-01T00:00:00Z,
/// as seconds since the Unix epoch).
pub const MIRROR_SINCE_UNIX: i64 = 1_577_836_800;
/// `mirror.overlap`: each sync re-reads this much before the previous end.
pub const MIRROR_OVERLAP: Duration = Duration::from_secs(600);
/// `mirror.refresh`: how often `trainwatch run` syncs between runs.
pub const MIRROR_REFRESH: Duration = Duration::from_secs(3600);

// --- [[jobs]] ---------------------------------------------------------------

/// `window.max` of a `since_last_run` window.
pub const SINCE_LAST_RUN_MAX: Duration = Duration::from_secs(30 * 86_400);
/// A job's `due_soon`: what falls due within a week of the fire.
pub const DUE_SOON: Duration = Duration::from_secs(7 * 86_400);
/// A job's `trend`: this fire and the 7 before it.
pub const TREND: u32 = 8;

// --- the service ------------------------------------------------------------

/// How long `trainwatch run` waits for running jobs at a shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the service's outbox pass looks for pending deliveries.
pub const OUTBOX_INTERVAL: Duration = Duration::from_secs(30);
