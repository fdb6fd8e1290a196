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
use super::wire::{Assignment, Course, Driver, Page, Tag};
use crate::config::SamsaraConfig;
use crate::http::{Classify, Pacing, Redirects, Verdict, retry, snippet};
use crate::learner::LearnerId;
use crate::ratelimit::RateLimits;
use crate::retry::{AttemptFailure, RetryPolicy};

/// How many split queries of one fetch run at once (they share the limiter).
const DEFAULT_CONCURRENCY: usize = 4;
/// `/fleet/drivers` takes up to 512 per page.
const DRIVERS_PAGE_LIMIT: &str = "512";
/// `/tags` takes up to 512 per page.
const TAGS_PAGE_LIMIT: &str = "512";
/// Every course status `/training-courses` knows (drafts are never returned).
pub const COURSE_STATUSES: [&str; 3] = ["published", "archived", "deleted"];
/// The largest response body read by default: 64 times a large page
/// (512 drivers, or a few hundred assignments, are under 1 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The longest one fetch may take by default (`samsara.max_fetch_time`):
/// 9,000 pages at the API's 5 requests per second, far beyond any real
/// report, yet an endless cursor stops within the half hour.
pub const DEFAULT_MAX_FETCH_TIME: Duration = Duration::from_secs(30 * 60);
/// The least a 429 waits beyond its `Retry-After` (plus up to half of it at random).
pub const DEFAULT_RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);
/// How long one request may keep being answered 429 before the fetch fails.
/// 429s are the server pacing us, not errors: they are bounded by this time,
/// not by the attempt budget.
pub const DEFAULT_MAX_RATE_LIMITED: Duration = Duration::from_secs(10 * 60);

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
            concurrency: DEFAULT_CONCURRENCY,
            max_fetch_time: c.max_fetch_time,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_limit_floor: DEFAULT_RATE_LIMIT_FLOOR,
            max_rate_limited: DEFAULT_MAX_RATE_LIMITED,
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
            max_fetch_time: DEFAULT_MAX_FETCH_TIME,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_limit_floor: DEFAULT_RATE_LIMIT_FLOOR,
            max_rate_limited: DEFAULT_MAX_RATE_LIMITED,
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
    /// `/fleet/drivers` was refused (no scope): every learner shows its id.
    pub learners_unavailable: bool,
    /// `/training-courses` was refused (no scope): every course shows its id.
    pub courses_unavailable: bool,
}

/// The most ids one fallback warning lists; the rest are counted.
const MAX_IDS_IN_WARNING: usize = 50;

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

    /// One warning per reason a name fell back to its id, naming the ids
    /// (sorted, at most 50 each, the rest counted) among `learners` and
    /// `courses`: not found in the endpoint, found with an empty name, or
    /// the endpoint refused. Empty when every name was found.
    pub fn fallback_warnings<'a>(
        &self,
        learners: impl IntoIterator<Item = &'a LearnerId>,
        courses: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        use std::collections::BTreeSet;
        let mut missing_learners = BTreeSet::new();
        let mut unnamed_learners = BTreeSet::new();
        for id in learners {
            match self.learners.get(id) {
                Some(name) if !name.is_empty() => {}
                Some(_) => {
                    unnamed_learners.insert(id.to_string());
                }
                None => {
                    missing_learners.insert(id.to_string());
                }
            }
        }
        let mut missing_courses = BTreeSet::new();
        let mut untitled_courses = BTreeSet::new();
        for id in courses {
            match self.courses.get(id) {
                Some(c) if !c.title.is_empty() => {}
                Some(_) => {
                    untitled_courses.insert(id.to_string());
                }
                None => {
                    missing_courses.insert(id.to_string());
                }
            }
        }
        let learners_why = if self.learners_unavailable {
            "learner names could not be read (GET /fleet/drivers was refused, see above)"
        } else {
            "learners not found in /fleet/drivers (active or deactivated)"
        };
        let courses_why = if self.courses_unavailable {
            "course titles could not be read (GET /training-courses was refused, see above)"
        } else {
            "courses not found in /training-courses"
        };
        [
            (learners_why, missing_learners),
            (
                "learners with an empty name in /fleet/drivers",
                unnamed_learners,
            ),
            (courses_why, missing_courses),
            (
                "courses with an empty title in /training-courses",
                untitled_courses,
            ),
        ]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(why, ids)| {
            let shown: Vec<String> = ids
                .iter()
                .take(MAX_IDS_IN_WARNING)
                .map(|id| crate::names::one_line(id).into_owned())
                .collect();
            let more = ids.len().saturating_sub(MAX_IDS_IN_WARNING);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{why}, shown by id: {}{more}", shown.join(", "))
        })
        .collect()
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
    /// A client with limiters of its own ([`RateLimits::local`]): for a
    /// command with one client. Clients that must share a rate build one
    /// registry and use [`Self::with_limits`].
    pub fn new(settings: ClientSettings) -> Result<Self, reqwest::Error> {
        Self::with_limits(settings, RateLimits::local())
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
        let http = crate::http::client_builder(settings.timeout, Redirects::Follow)
            .default_headers(headers)
            .build()?;
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
        let deadline = self.deadline();
        let chains = parts.into_iter().enumerate().map(|(i, part)| {
            let chunk = (total > 1).then_some((i + 1, total));
            async move {
                let mut records = Vec::new();
                let pages = self
                    .paginate::<Assignment>(
                        Endpoint::TrainingAssignments,
                        part.params(),
                        chunk,
                        deadline,
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
        let deadline = self.deadline();
        let mut courses = Vec::new();
        for (i, chunk) in ids.chunks(MAX_IDS_PER_LIST).enumerate() {
            let params = vec![("courseIds", chunk.join(","))];
            let label = (total > 1).then_some((i + 1, total));
            self.paginate::<Course>(Endpoint::TrainingCourses, params, label, deadline, |page| {
                courses.extend(page)
            })
            .await?;
        }
        Ok(courses)
    }

    /// Every driver, active and deactivated (so former drivers keep their names).
    pub async fn drivers(&self) -> Result<Vec<Driver>, ApiError> {
        let deadline = self.deadline();
        let mut drivers = Vec::new();
        for status in ["active", "deactivated"] {
            let params = vec![
                ("limit", DRIVERS_PAGE_LIMIT.to_string()),
                ("driverActivationStatus", status.to_string()),
            ];
            self.paginate::<Driver>(Endpoint::Drivers, params, None, deadline, |page| {
                drivers.extend(page)
            })
            .await?;
        }
        Ok(drivers)
    }

    /// The drivers, active and deactivated, that carry any of `tag_ids`
    /// (`tagIds`, at most 100 per request, merged by driver id), each with
    /// all its tags. The caller names every tag it wants, descendants
    /// included: `parentTagIds` would not say whether the parent's own
    /// drivers are in. No ids: no request, no drivers.
    pub async fn drivers_with_tags(&self, tag_ids: &[String]) -> Result<Vec<Driver>, ApiError> {
        let mut ids = tag_ids.to_vec();
        ids.sort();
        ids.dedup();
        let total = ids.len().div_ceil(MAX_IDS_PER_LIST);
        let deadline = self.deadline();
        let mut by_id: HashMap<String, Driver> = HashMap::new();
        for (i, chunk) in ids.chunks(MAX_IDS_PER_LIST).enumerate() {
            for status in ["active", "deactivated"] {
                let params = vec![
                    ("limit", DRIVERS_PAGE_LIMIT.to_string()),
                    ("driverActivationStatus", status.to_string()),
                    ("tagIds", chunk.join(",")),
                ];
                let label = (total > 1).then_some((i + 1, total));
                self.paginate::<Driver>(Endpoint::Drivers, params, label, deadline, |page| {
                    by_id.extend(page.into_iter().map(|d| (d.id.clone(), d)))
                })
                .await?;
            }
        }
        let mut drivers: Vec<Driver> = by_id.into_values().collect();
        drivers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(drivers)
    }

    /// Every tag of the organisation (the mirror keeps them; `init` lists them).
    pub async fn tags(&self) -> Result<Vec<Tag>, ApiError> {
        let deadline = self.deadline();
        let mut tags = Vec::new();
        let params = vec![("limit", TAGS_PAGE_LIMIT.to_string())];
        self.paginate::<Tag>(Endpoint::Tags, params, None, deadline, |page| {
            tags.extend(page)
        })
        .await?;
        Ok(tags)
    }

    /// One request to `endpoint`, its first page only (one record where the
    /// API takes a `limit`): whether the token may read it. `now` bounds the
    /// assignment stream's window (its last hour).
    pub async fn check_access(
        &self,
        endpoint: Endpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        let place = Place {
            endpoint,
            page: 1,
            chunk: None,
        };
        let mut url = self.url(endpoint, &place)?;
        {
            let mut q = url.query_pairs_mut();
            match endpoint {
                Endpoint::TrainingAssignments => {
                    let query = AssignmentQuery::new(now - chrono::Duration::hours(1), now);
                    for (k, v) in query.params() {
                        q.append_pair(k, &v);
                    }
                }
                Endpoint::TrainingCourses => {}
                Endpoint::Drivers | Endpoint::Tags => {
                    q.append_pair("limit", "1");
                }
            }
        }
        self.get::<Page<serde_json::Value>>(url, &place)
            .await
            .map(drop)
    }

    /// Every course of every status (published, archived, deleted), one
    /// cursor chain per status (one value per request, as the SDK sends it),
    /// deduplicated by id.
    pub async fn all_courses(&self) -> Result<Vec<Course>, ApiError> {
        let deadline = self.deadline();
        let mut by_id: HashMap<String, Course> = HashMap::new();
        for status in COURSE_STATUSES {
            let params = vec![("status", status.to_string())];
            self.paginate::<Course>(Endpoint::TrainingCourses, params, None, deadline, |page| {
                by_id.extend(page.into_iter().map(|c| (c.id.clone(), c)))
            })
            .await?;
        }
        let mut courses: Vec<Course> = by_id.into_values().collect();
        courses.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(courses)
    }

    /// The unfiltered stream over `[start, end)`, page by page, for the
    /// mirror's sync: `sink` gets each page's records (duplicates and
    /// every version included, nothing merged) and may stop the read by
    /// returning an error, which is handed back as is. Returns the pages read.
    ///
    /// The read may take `samsara.max_fetch_time` for every
    /// `SYNC_PERIOD` (30 days) of the range (at least once): a first sync or a
    /// rebuild reads years, and a whole organisation's history at 5
    /// requests/s can take hours, while an hourly sync keeps the plain bound.
    pub async fn stream_pages<E>(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut sink: impl FnMut(Vec<Assignment>) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let query = AssignmentQuery::new(start, end);
        let seconds = u64::try_from((end - start).num_seconds()).unwrap_or(0);
        let periods = seconds.div_ceil(SYNC_PERIOD.as_secs()).clamp(1, 10_000) as u32;
        let deadline =
            self.deadline_after(self.inner.settings.max_fetch_time.saturating_mul(periods));
        let mut failed: Option<E> = None;
        let pages = self
            .paginate_while::<Assignment>(
                Endpoint::TrainingAssignments,
                query.params(),
                None,
                deadline,
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
            Err(e @ ApiError::Unauthorized { .. }) => {
                names.courses_unavailable = true;
                names
                    .warnings
                    .push(format!("course titles fall back to ids: {e}"))
            }
            Err(e) => return Err(e),
        }
        match drivers {
            Ok(list) => {
                names.learners = list
                    .into_iter()
                    .map(|d| (LearnerId::from_wire(&d.id, "driver"), d.name))
                    .collect()
            }
            Err(e @ ApiError::Unauthorized { .. }) => {
                names.learners_unavailable = true;
                names
                    .warnings
                    .push(format!("learner names fall back to ids: {e}"))
            }
            Err(e) => return Err(e),
        }
        Ok(names)
    }

    /// Follows one cursor chain to its end, handing each page's records to
    /// `sink`; returns the number of pages. Page size is whatever the server
    /// sends.
    ///
    /// The chain ends with [`ApiError::FetchTooLong`] at `deadline`: a server
    /// that answers `hasNextPage: true` with a new cursor forever is
    /// followed no longer than `max_fetch_time`.
    async fn paginate<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: Vec<(&'static str, String)>,
        chunk: Option<(usize, usize)>,
        deadline: Deadline,
        mut sink: impl FnMut(Vec<T>),
    ) -> Result<u64, ApiError> {
        self.paginate_while(endpoint, params, chunk, deadline, |page| {
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
        deadline: Deadline,
        mut sink: impl FnMut(Vec<T>) -> bool,
    ) -> Result<u64, ApiError> {
        let mut after: Option<String> = None;
        let mut seen = HashSet::new();
        let mut page = 0u32;
        loop {
            page = page.saturating_add(1);
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
            let too_long = || ApiError::FetchTooLong {
                place: place.clone(),
                limit: deadline.limit,
                pages: u64::from(page - 1),
            };
            if Instant::now() >= deadline.at {
                return Err(too_long());
            }
            // Without request timeouts (paused-clock tests) no timer may be
            // pending while a server answers, so the deadline is then only
            // checked between pages; otherwise it also cuts a request short.
            let body: Page<T> = if self.inner.settings.timeout.is_some() {
                tokio::time::timeout_at(deadline.at, self.get(url, &place))
                    .await
                    .map_err(|_| too_long())??
            } else {
                self.get(url, &place).await?
            };
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

    /// When a fetch that starts now must have ended (`samsara.max_fetch_time`).
    fn deadline(&self) -> Deadline {
        self.deadline_after(self.inner.settings.max_fetch_time)
    }

    /// When a read that starts now and may take `limit` must have ended.
    fn deadline_after(&self, limit: Duration) -> Deadline {
        let now = Instant::now();
        let at = now
            .checked_add(limit)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        Deadline { at, limit }
    }

    fn url(&self, endpoint: Endpoint, place: &Place) -> Result<Url, ApiError> {
        let base = self.inner.settings.base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{}", endpoint.path())).map_err(|e| ApiError::Request {
            place: place.clone(),
            detail: e.to_string(),
        })
    }

    /// One GET, paced by the endpoint's limiter and retried by the policy:
    /// 429s are the server pacing us ([`Pacing::ServerPaced`]), bounded by
    /// `max_rate_limited` and not by the attempt budget.
    async fn get<T: DeserializeOwned>(&self, url: Url, place: &Place) -> Result<T, ApiError> {
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

/// The span of a sync's range that gets one `max_fetch_time` of reading.
pub const SYNC_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// The end of a read's time and the limit it came from (for the error).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    limit: Duration,
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
