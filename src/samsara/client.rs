//! The HTTP client: one request at a time through the shared limiter, retried
//! by the policy, parsed strictly; pages followed until the cursor ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, Endpoint, Place};
use super::query::{AssignmentQuery, MAX_IDS_PER_LIST};
use super::ratelimit::RateLimits;
use super::wire::{Assignment, Course, Driver, Page, Tag};
use crate::config::SamsaraConfig;
use crate::learner::LearnerId;
use crate::retry::{AttemptFailure, RetryPolicy, parse_retry_after};

/// How many split queries of one fetch run at once (they share the limiter).
const DEFAULT_CONCURRENCY: usize = 4;
/// `/fleet/drivers` takes up to 512 per page.
const DRIVERS_PAGE_LIMIT: &str = "512";
/// `/tags` takes up to 512 per page.
const TAGS_PAGE_LIMIT: &str = "512";
/// Every course status `/training-courses` knows (drafts are never returned).
pub const COURSE_STATUSES: [&str; 3] = ["published", "archived", "deleted"];
/// How much of an error body goes into a message.
const BODY_SNIPPET: usize = 300;

/// Hooks for progress display, metrics and tests. Every method has a no-op default.
pub trait Observer: Send + Sync {
    /// A request is about to leave (it has passed the rate limiter).
    fn on_send(&self, _endpoint: Endpoint) {}
    /// A response (or failure) came back; `status` is the HTTP status or a
    /// word such as `timeout` or `connection`.
    fn on_response(&self, _endpoint: Endpoint, _status: &str) {}
    /// A page was parsed with `records` records.
    fn on_page(&self, _endpoint: Endpoint, _records: usize) {}
}

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
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Defaults for a base URL and token (used by tests and tools).
    pub fn new(base_url: Url, token: SecretString) -> Self {
        Self {
            base_url,
            token,
            requests_per_second: 5,
            timeout: Some(Duration::from_secs(60)),
            api_version: None,
            retry: RetryPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// The assignments of a fetch, deduplicated, with what it took to get them.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// One per assignment id, the latest `updatedAtTime` winning; in stream
    /// order (by `updatedAtTime`, then id).
    pub assignments: Vec<Assignment>,
    pub stats: FetchStats,
}

/// Counts of a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Split queries the fetch needed (1 unless an id list was longer than 100).
    pub queries: usize,
    /// Pages received.
    pub pages: u64,
    /// Records received, duplicates included.
    pub received: u64,
    /// Records that were an older or repeated version of another.
    pub duplicates: u64,
}

/// Course titles and categories, and learner names, for one run.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub courses: HashMap<String, Course>,
    pub learners: HashMap<LearnerId, String>,
    /// What could not be named and why (the names fall back to ids).
    pub warnings: Vec<String>,
}

impl Names {
    /// The learner's name, or its id (filter form) when unknown or empty.
    pub fn learner_name(&self, id: &LearnerId) -> String {
        self.learners
            .get(id)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The course's title, or its id when unknown or empty.
    pub fn course_title(&self, id: &str) -> String {
        self.courses
            .get(id)
            .map(|c| c.title.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| id.to_string())
    }
}

/// A Samsara API client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: ClientSettings,
    limits: Arc<RateLimits>,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.settings.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client whose limiters are shared with every other client of the process.
    pub fn new(settings: ClientSettings) -> Result<Self, reqwest::Error> {
        Self::with_limits(settings, RateLimits::global())
    }

    /// A client using the limiters of `limits`.
    pub fn with_limits(
        settings: ClientSettings,
        limits: Arc<RateLimits>,
    ) -> Result<Self, reqwest::Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = &settings.api_version
            && let Ok(v) = reqwest::header::HeaderValue::from_str(v)
        {
            headers.insert("X-Samsara-Version", v);
        }
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("trainwatch/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        http = match settings.timeout {
            Some(timeout) => http
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(15))),
            None => http.pool_idle_timeout(None),
        };
        let http = http.build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                settings,
                limits,
                observer: None,
            }),
        })
    }

    /// The observer this client reports to, if any (so a caller can chain its own).
    pub fn observer(&self) -> Option<Arc<dyn Observer>> {
        self.inner.observer.clone()
    }

    /// The same client reporting to `observer`.
    pub fn observed(self, observer: Arc<dyn Observer>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            http: arc.http.clone(),
            settings: arc.settings.clone(),
            limits: arc.limits.clone(),
            observer: arc.observer.clone(),
        });
        Self {
            inner: Arc::new(Inner {
                observer: Some(observer),
                ..inner
            }),
        }
    }

    /// Every assignment matching `query`, deduplicated by id. Long id lists
    /// are split into several queries, fetched concurrently through the
    /// shared limiter and merged. Any failure fails the whole fetch.
    pub async fn fetch_assignments(&self, query: &AssignmentQuery) -> Result<Fetched, ApiError> {
        let parts = query.split();
        let total = parts.len();
        let chains = parts.into_iter().enumerate().map(|(i, part)| {
            let chunk = (total > 1).then_some((i + 1, total));
            async move {
                let mut records = Vec::new();
                let pages = self
                    .paginate::<Assignment>(
                        Endpoint::TrainingAssignments,
                        part.params(),
                        chunk,
                        |page| records.extend(page),
                    )
                    .await?;
                Ok::<_, ApiError>((pages, records))
            }
        });
        let mut merged = Dedup::default();
        let mut stats = FetchStats {
            queries: total,
            ..FetchStats::default()
        };
        futures::stream::iter(chains)
            .buffer_unordered(self.inner.settings.concurrency.max(1))
            .try_for_each(|(pages, records)| {
                stats.pages += pages;
                stats.received += records.len() as u64;
                records.into_iter().for_each(|a| merged.insert(a));
                futures::future::ready(Ok(()))
            })
            .await?;
        stats.duplicates = stats.received - merged.len() as u64;
        Ok(Fetched {
            assignments: merged.into_sorted(),
            stats,
        })
    }

    /// Courses by id (titles and categories), in requests of at most 100 ids.
    pub async fn courses(&self, ids: &[String]) -> Result<Vec<Course>, ApiError> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let total = ids.len().div_ceil(MAX_IDS_PER_LIST);
        let mut courses = Vec::new();
        for (i, chunk) in ids.chunks(MAX_IDS_PER_LIST).enumerate() {
            let params = vec![("courseIds", chunk.join(","))];
            let label = (total > 1).then_some((i + 1, total));
            self.paginate::<Course>(Endpoint::TrainingCourses, params, label, |page| {
                courses.extend(page)
            })
            .await?;
        }
        Ok(courses)
    }

    /// Every driver, active and deactivated (so former drivers keep their names).
    pub async fn drivers(&self) -> Result<Vec<Driver>, ApiError> {
        let mut drivers = Vec::new();
        for status in ["active", "deactivated"] {
            let params = vec![
                ("limit", DRIVERS_PAGE_LIMIT.to_string()),
                ("driverActivationStatus", status.to_string()),
            ];
            self.paginate::<Driver>(Endpoint::Drivers, params, None, |page| drivers.extend(page))
                .await?;
        }
        Ok(drivers)
    }

    /// Every course of every status (published, archived, deleted), one
    /// cursor chain per status (one value per request, as the SDK sends it),
    /// deduplicated by id.
    pub async fn all_courses(&self) -> Result<Vec<Course>, ApiError> {
        let mut by_id: HashMap<String, Course> = HashMap::new();
        for status in COURSE_STATUSES {
            let params = vec![("status", status.to_string())];
            self.paginate::<Course>(Endpoint::TrainingCourses, params, None, |page| {
                by_id.extend(page.into_iter().map(|c| (c.id.clone(), c)))
            })
            .await?;
        }
        let mut courses: Vec<Course> = by_id.into_values().collect();
        courses.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(courses)
    }

    /// Every tag of the organisation.
    pub async fn tags(&self) -> Result<Vec<Tag>, ApiError> {
        let mut tags = Vec::new();
        let params = vec![("limit", TAGS_PAGE_LIMIT.to_string())];
        self.paginate::<Tag>(Endpoint::Tags, params, None, |page| tags.extend(page))
            .await?;
        Ok(tags)
    }

    /// The unfiltered stream over `[start, end)`, page by page, for the
    /// mirror's sync: `sink` gets each page's records (duplicates and
    /// every version included, nothing merged) and may stop the read by
    /// returning an error, which is handed back as is. Returns the pages read.
    pub async fn stream_pages<E>(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut sink: impl FnMut(Vec<Assignment>) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let query = AssignmentQuery::new(start, end);
        let mut failed: Option<E> = None;
        let pages = self
            .paginate_while::<Assignment>(
                Endpoint::TrainingAssignments,
                query.params(),
                None,
                |page| match sink(page) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                },
            )
            .await
            .map_err(StreamError::Api)?;
        match failed {
            Some(e) => Err(StreamError::Sink(e)),
            None => Ok(pages),
        }
    }

    /// The names a report needs, fetched once per run: the given courses and
    /// all drivers. A token without the scope for one of them is not fatal:
    /// the names fall back to ids and a warning says why. Any other failure is.
    pub async fn names(&self, course_ids: &[String]) -> Result<Names, ApiError> {
        let (courses, drivers) = tokio::join!(self.courses(course_ids), self.drivers());
        let mut names = Names::default();
        match courses {
            Ok(list) => names.courses = list.into_iter().map(|c| (c.id.clone(), c)).collect(),
            Err(e @ ApiError::Unauthorized { .. }) => names
                .warnings
                .push(format!("course titles fall back to ids: {e}")),
            Err(e) => return Err(e),
        }
        match drivers {
            Ok(list) => {
                names.learners = list
                    .into_iter()
                    .filter(|d| !d.name.is_empty())
                    .map(|d| (LearnerId::from_wire(&d.id, "driver"), d.name))
                    .collect()
            }
            Err(e @ ApiError::Unauthorized { .. }) => names
                .warnings
                .push(format!("learner names fall back to ids: {e}")),
            Err(e) => return Err(e),
        }
        Ok(names)
    }

    /// Follows one cursor chain to its end, handing each page's records to
    /// `sink`; returns the number of pages. Page size is whatever the server
    /// sends.
    async fn paginate<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: Vec<(&'static str, String)>,
        chunk: Option<(usize, usize)>,
        mut sink: impl FnMut(Vec<T>),
    ) -> Result<u64, ApiError> {
        self.paginate_while(endpoint, params, chunk, |page| {
            sink(page);
            true
        })
        .await
    }

    /// [`Self::paginate`], stopping early (without error) when `sink` returns false.
    async fn paginate_while<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: Vec<(&'static str, String)>,
        chunk: Option<(usize, usize)>,
        mut sink: impl FnMut(Vec<T>) -> bool,
    ) -> Result<u64, ApiError> {
        let mut after: Option<String> = None;
        let mut seen = HashSet::new();
        let mut page = 0u32;
        loop {
            page += 1;
            let place = Place {
                endpoint,
                page,
                chunk,
            };
            let mut url = self.url(endpoint, &place)?;
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in &params {
                    q.append_pair(k, v);
                }
                if let Some(cursor) = &after {
                    q.append_pair("after", cursor);
                }
            }
            let body: Page<T> = self.get(url, &place).await?;
            if let Some(o) = &self.inner.observer {
                o.on_page(endpoint, body.data.len());
            }
            if !sink(body.data) || !body.pagination.has_next_page {
                return Ok(u64::from(page));
            }
            let cursor = body.pagination.end_cursor;
            if cursor.is_empty() {
                return Err(ApiError::BadResponse {
                    place,
                    detail: "hasNextPage is true but endCursor is empty".into(),
                });
            }
            if !seen.insert(cursor.clone()) {
                return Err(ApiError::RepeatedCursor { place, cursor });
            }
            after = Some(cursor);
        }
    }

    fn url(&self, endpoint: Endpoint, place: &Place) -> Result<Url, ApiError> {
        let base = self.inner.settings.base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{}", endpoint.path())).map_err(|e| ApiError::Request {
            place: place.clone(),
            detail: e.to_string(),
        })
    }

    /// One GET, paced by the endpoint's limiter and retried by the policy.
    async fn get<T: DeserializeOwned>(&self, url: Url, place: &Place) -> Result<T, ApiError> {
        let settings = &self.inner.settings;
        let limiter = self.inner.limits.get(
            settings.base_url.as_str(),
            place.endpoint.path(),
            settings.requests_per_second,
        );
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            limiter.acquire().await;
            if let Some(o) = &self.inner.observer {
                o.on_send(place.endpoint);
            }
            let failure = match self.attempt(url.clone(), place).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(fatal) => return Err(fatal),
            };
            let elapsed = started.elapsed();
            match settings.retry.next_delay(&failure, attempt, elapsed) {
                Some(delay) => {
                    tracing::warn!(
                        endpoint = place.endpoint.path(),
                        page = place.page,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "{failure}; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(ApiError::Exhausted {
                        place: place.clone(),
                        attempts: attempt,
                        elapsed,
                        last: failure.to_string(),
                    });
                }
            }
        }
    }

    /// One attempt: `Ok(Ok(value))` on success, `Ok(Err(failure))` when a
    /// retry may help, `Err` when it cannot.
    async fn attempt<T: DeserializeOwned>(
        &self,
        url: Url,
        place: &Place,
    ) -> Result<Result<T, AttemptFailure>, ApiError> {
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
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let failure = transport_failure(&e);
                observe(failure_label(&failure));
                return Ok(Err(failure));
            }
        };
        let status = response.status();
        observe(status.as_str());
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Ok(Err(AttemptFailure::RateLimited { retry_after }));
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            // The connection broke mid-body: a truncated page is never used.
            Err(e) => return Ok(Err(transport_failure(&e))),
        };
        if status.is_server_error() {
            return Ok(Err(AttemptFailure::Server {
                status: status.as_u16(),
                body: snippet(&body),
            }));
        }
        if !status.is_success() {
            let (message, request_id) = error_body(&body);
            let (place, status) = (place.clone(), status.as_u16());
            return Err(if status == 401 || status == 403 {
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
            });
        }
        serde_json::from_slice(&body)
            .map(Ok)
            .map_err(|e| ApiError::BadResponse {
                place: place.clone(),
                detail: format!("{e} (body of {} bytes)", body.len()),
            })
    }
}

/// Why [`Client::stream_pages`] stopped: the API, or the page sink.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    /// The API failed (after retries).
    #[error(transparent)]
    Api(ApiError),
    /// The sink refused a page.
    #[error("storing a page: {0}")]
    Sink(E),
}

/// Classifies a reqwest failure. Its message never includes the URL.
fn transport_failure(e: &reqwest::Error) -> AttemptFailure {
    if e.is_timeout() {
        return AttemptFailure::Timeout;
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    AttemptFailure::Connection(detail)
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
        Ok(ErrorBody {
            message: Some(m),
            request_id,
        }) => (m, request_id),
        Ok(ErrorBody { request_id, .. }) => ("(no message)".into(), request_id),
        Err(_) if body.is_empty() => ("(empty body)".into(), None),
        Err(_) => (snippet(body), None),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(BODY_SNIPPET) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Keeps one version of each assignment: the latest `updatedAtTime`, and on a
/// tie the one received last.
#[derive(Debug, Default)]
pub struct Dedup {
    by_id: HashMap<String, Assignment>,
}

impl Dedup {
    /// Offers one received record.
    pub fn insert(&mut self, a: Assignment) {
        match self.by_id.get(&a.id) {
            Some(kept) if kept.updated_at_time > a.updated_at_time => {}
            _ => {
                self.by_id.insert(a.id.clone(), a);
            }
        }
    }

    /// Distinct assignments so far.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The kept versions in stream order (by `updatedAtTime`, then id).
    pub fn into_sorted(self) -> Vec<Assignment> {
        let mut v: Vec<_> = self.by_id.into_values().collect();
        v.sort_by(|a, b| (a.updated_at_time, &a.id).cmp(&(b.updated_at_time, &b.id)));
        v
    }
}
