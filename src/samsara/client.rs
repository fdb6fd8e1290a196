//! The HTTP client: one request at a time through the shared limiter, retried
//! by the policy, parsed strictly (see `request.rs`); pages followed until
//! the cursor ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, Endpoint, Place};
use super::fetched::{Dedup, FetchStats, Fetched};
use super::names::Names;
use super::query::{AssignmentQuery, MAX_IDS_PER_LIST};
use super::settings::ClientSettings;
use super::wire::{Assignment, Course, Driver, Page, Tag};
use crate::http::Redirects;
use crate::learner::LearnerId;
use crate::ratelimit::RateLimits;

/// `/fleet/drivers` takes up to 512 per page.
const DRIVERS_PAGE_LIMIT: &str = "512";
/// `/tags` takes up to 512 per page.
const TAGS_PAGE_LIMIT: &str = "512";
/// Every course status `/training-courses` knows (drafts are never returned).
pub const COURSE_STATUSES: [&str; 3] = ["published", "archived", "deleted"];

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

/// A Samsara API client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

/// What the clones of a client share.
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) settings: ClientSettings,
    pub(super) limits: Arc<RateLimits>,
    pub(super) observer: Option<Arc<dyn Observer>>,
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
        let mut failed: Option<E> = None;
        let pages = self
            .stream_into(
                start,
                end,
                Immediate(|page| match sink(page) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }),
            )
            .await
            .map_err(StreamError::Api)?;
        match failed {
            Some(e) => Err(StreamError::Sink(e)),
            None => Ok(pages),
        }
    }

    /// [`Self::stream_pages`] into a bounded channel: each page is sent
    /// before the next is requested, waiting while the channel is full, so
    /// the reader runs at most the channel's capacity ahead of whoever
    /// receives (a page in flight besides). A receiver that is dropped
    /// stops the read after the page being sent, without error. Returns
    /// the pages read.
    pub async fn stream_pages_to(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        pages: tokio::sync::mpsc::Sender<Vec<Assignment>>,
    ) -> Result<u64, ApiError> {
        self.stream_into(start, end, Channel(pages)).await
    }

    /// The unfiltered stream over `[start, end)` into `sink`, with the
    /// deadline of [`Self::stream_pages`].
    async fn stream_into(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        sink: impl PageSink<Assignment>,
    ) -> Result<u64, ApiError> {
        let query = AssignmentQuery::new(start, end);
        let seconds = u64::try_from((end - start).num_seconds()).unwrap_or(0);
        let periods = seconds.div_ceil(SYNC_PERIOD.as_secs()).clamp(1, 10_000) as u32;
        let deadline =
            self.deadline_after(self.inner.settings.max_fetch_time.saturating_mul(periods));
        self.paginate_while::<Assignment>(
            Endpoint::TrainingAssignments,
            query.params(),
            None,
            deadline,
            sink,
        )
        .await
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
        self.paginate_while(
            endpoint,
            params,
            chunk,
            deadline,
            Immediate(|page| {
                sink(page);
                true
            }),
        )
        .await
    }

    /// [`Self::paginate`], stopping early (without error) when `sink` says so.
    async fn paginate_while<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: Vec<(&'static str, String)>,
        chunk: Option<(usize, usize)>,
        deadline: Deadline,
        mut sink: impl PageSink<T>,
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
            if !sink.take(body.data).await || !body.pagination.has_next_page {
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
}

/// Where a cursor chain's pages go: `take` says whether to read on. A page
/// is handed on before the next is requested.
trait PageSink<T> {
    fn take(&mut self, page: Vec<T>) -> impl std::future::Future<Output = bool> + Send;
}

/// A sink that takes each page at once (a closure).
struct Immediate<F>(F);

impl<T, F: FnMut(Vec<T>) -> bool> PageSink<T> for Immediate<F> {
    fn take(&mut self, page: Vec<T>) -> impl std::future::Future<Output = bool> + Send {
        std::future::ready((self.0)(page))
    }
}

/// A sink that sends each page into a bounded channel, waiting for room;
/// a closed channel stops the read.
struct Channel<T>(tokio::sync::mpsc::Sender<Vec<T>>);

impl<T: Send> PageSink<T> for Channel<T> {
    fn take(&mut self, page: Vec<T>) -> impl std::future::Future<Output = bool> + Send {
        let sender = &self.0;
        async move { sender.send(page).await.is_ok() }
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
