//! Sample data served as the Samsara API on loopback.
//!
//! With `samsara.sample_data` set, trainwatch starts a [`SampleServer`] on
//! `127.0.0.1:0` that serves a folder of API responses (like the bundled
//! `sample/api`, written by `sample/generate.py`) with the API's semantics,
//! and points the client at it. The client then talks to it exactly as to
//! Samsara: real HTTP, cursors, parsing and deduplication. No token and no
//! network are needed.
//!
//! The folder holds bodies in the wire format:
//! - `stream-page-*.json`: `/training-assignments/stream` pages
//!   (`{"data": [...], "pagination": {...}}`), read in file-name order;
//!   together they are the unfiltered stream, duplicates included;
//! - `courses.json`: a `/training-courses` page (required);
//! - `drivers-active.json`, `drivers-deactivated.json`: `/fleet/drivers` pages;
//! - `tags.json`: a `/tags` page (optional).
//!
//! What is served, as the API does:
//! - `GET /training-assignments/stream`: `startTime` and `endTime` required
//!   (RFC 3339); a record is in the window when its `createdAtTime` or its
//!   `updatedAtTime` is in `[startTime, endTime)`; `learnerIds`
//!   (`driver-<id>`), `courseIds`, `categoryIds` (through the course's
//!   category), `status` and `isOverdue` filter; at most 100 ids per list;
//!   sorted by `updatedAtTime`; [`STREAM_PAGE_SIZE`] per page.
//! - `GET /training-courses`: `courseIds`, `categoryIds`, `status`;
//!   [`COURSES_PAGE_SIZE`] per page.
//! - `GET /fleet/drivers`: `driverActivationStatus` (`active` by default or
//!   `deactivated`), `limit` 1–512 (default 512), `tagIds` (drivers with
//!   any of these tags) and `parentTagIds` (with any of these tags or a
//!   descendant; here the parent's own drivers are in too), at most 100 each.
//! - `GET /tags`: `limit` 1–512 (default 512).
//!
//! Tests and benchmarks can also serve data held in memory
//! ([`SampleServer::start_with`]), set the server's "now" (versions modified
//! at or after it are not served yet: [`SampleServer::set_now`]), and make
//! the stream fail from a given page on ([`SampleServer::fail_stream_from_page`]).
//!
//! Pages end with `hasNextPage: false` and an empty `endCursor`; cursors are
//! opaque and passed back as `after`. Every request needs an
//! `Authorization: Bearer …` header (any token) or gets 401. Errors are JSON
//! `{"message", "requestId"}`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use url::Url;

use crate::config::SamsaraConfig;
use crate::learner::LearnerId;
use crate::samsara::{ClientSettings, MAX_IDS_PER_LIST};

/// Records per page of `/training-assignments/stream`.
pub const STREAM_PAGE_SIZE: usize = 25;
/// Courses per page of `/training-courses` (small, so pagination is exercised).
pub const COURSES_PAGE_SIZE: usize = 5;
/// The largest and default `limit` of `/fleet/drivers`.
pub const DRIVERS_MAX_LIMIT: usize = 512;
/// The token sent to the sample server: a configured token never leaves for it.
pub const SAMPLE_TOKEN: &str = "sample-data";

/// The sample data served on `127.0.0.1`, until dropped.
pub struct SampleServer {
    /// `http://127.0.0.1:PORT/`.
    pub base_url: Url,
    /// The folder served.
    pub dir: PathBuf,
    data: Arc<Data>,
    /// Dropping it tells the server to stop.
    _shutdown: oneshot::Sender<()>,
}

impl SampleServer {
    /// Loads the folder `dir` and serves it on `127.0.0.1` on a free port.
    /// A missing or malformed file fails here, naming the file.
    pub async fn start(dir: &Path) -> anyhow::Result<SampleServer> {
        let owned = dir.to_path_buf();
        let data = tokio::task::spawn_blocking(move || Data::load(&owned))
            .await
            .context("loading the sample data")??;
        Self::serve(data, dir).await
    }

    async fn serve(data: Data, dir: &Path) -> anyhow::Result<SampleServer> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the sample server to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let data = Arc::new(data);
        let app = router(data.clone());
        tokio::spawn(async move {
            let signal = async {
                // Resolves when the sender is dropped.
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!("sample server: {err}");
            }
        });
        let base_url = Url::parse(&format!("http://{addr}/"))?;
        // Debug: every command on the sample would otherwise open with it.
        tracing::debug!(dir = %dir.display(), url = %base_url, "serving sample data");
        Ok(SampleServer {
            base_url,
            dir: dir.to_path_buf(),
            data,
            _shutdown: shutdown,
        })
    }

    /// Requests answered so far by the API endpoints (errors included).
    pub fn requests(&self) -> u64 {
        self.data.requests.load(Ordering::Relaxed)
    }

    /// Serves data held in memory, as [`Self::start`] serves a folder:
    /// stream records (every version, in any order), courses, active and
    /// deactivated drivers, tags (all in wire format), `page_size` records
    /// per stream page.
    pub async fn start_with(content: SampleContent) -> anyhow::Result<SampleServer> {
        let data = Data::from_content(content)?;
        Self::serve(data, Path::new("(memory)")).await
    }

    /// The server's clock: versions whose `updatedAtTime` is at or after
    /// `now` are not served (they have not happened yet); `None`: all are.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        let n = now.map_or(i64::MAX, |t| t.timestamp_nanos_opt().unwrap_or(i64::MAX));
        self.data.now.store(n, Ordering::SeqCst);
    }

    /// Replaces the drivers served from now on (active, deactivated; wire
    /// format): a driver moved to another tag between two syncs.
    pub fn set_drivers(&self, active: Vec<Value>, deactivated: Vec<Value>) {
        *self.data.drivers.write().unwrap_or_else(|e| e.into_inner()) = (active, deactivated);
    }

    /// From the `page`-th stream page of any query on (1-based), answer
    /// HTTP 500 with a plain-text body, as the API's 5xx are; 0 turns it off.
    pub fn fail_stream_from_page(&self, page: u64) {
        self.data.fail_from_page.store(page, Ordering::SeqCst);
    }
}

/// Data for [`SampleServer::start_with`], every item in wire format.
#[derive(Debug, Clone, Default)]
pub struct SampleContent {
    /// `/training-assignments/stream` records: every version, any order.
    pub stream: Vec<Value>,
    /// `/training-courses` items.
    pub courses: Vec<Value>,
    /// `/fleet/drivers?driverActivationStatus=active` items.
    pub active: Vec<Value>,
    /// `/fleet/drivers?driverActivationStatus=deactivated` items.
    pub deactivated: Vec<Value>,
    /// `/tags` items.
    pub tags: Vec<Value>,
    /// Records per stream page; 0 means [`STREAM_PAGE_SIZE`].
    pub page_size: usize,
}

impl std::fmt::Debug for SampleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleServer")
            .field("base_url", &self.base_url.as_str())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Client settings from `[samsara]`; with `sample_data` set, a started
/// [`SampleServer`] too, the settings pointing at it (whatever `base_url`
/// says) with a placeholder token. Keep the server alive while the client
/// is used.
pub async fn client_settings(
    config: &SamsaraConfig,
) -> anyhow::Result<(ClientSettings, Option<SampleServer>)> {
    let mut settings = ClientSettings::from_config(config);
    let Some(dir) = &config.sample_data else {
        return Ok((settings, None));
    };
    let server = SampleServer::start(dir)
        .await
        .with_context(|| format!("serving the sample data in {}", dir.display()))?;
    settings.base_url = server.base_url.clone();
    settings.token = SecretString::from(SAMPLE_TOKEN);
    Ok((settings, Some(server)))
}

// --- The data -------------------------------------------------------------

/// One stream record as sent, with what the filters need.
struct Record {
    raw: Value,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    /// Filter form, `driver-281474`.
    learner: String,
    course: String,
    status: String,
    overdue: bool,
}

struct CourseRec {
    raw: Value,
    id: String,
    category: Option<String>,
    status: Option<String>,
}

struct Data {
    stream: Vec<Record>,
    courses: Vec<CourseRec>,
    /// Category id of each course id.
    categories: HashMap<String, String>,
    /// Active and deactivated drivers; replaceable while serving.
    drivers: std::sync::RwLock<(Vec<Value>, Vec<Value>)>,
    tags: Vec<Value>,
    requests: AtomicU64,
    /// Nanoseconds: versions modified at or after it are not served yet.
    now: AtomicI64,
    /// 1-based stream page from which requests fail (0: never).
    fail_from_page: AtomicU64,
    page_size: usize,
}

impl Data {
    fn load(dir: &Path) -> anyhow::Result<Data> {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("stream-page-") && n.ends_with(".json"))
            })
            .collect();
        pages.sort();
        let mut stream = Vec::new();
        for page in &pages {
            for (i, raw) in read_page(page)?.into_iter().enumerate() {
                let record = Record::parse(raw)
                    .with_context(|| format!("{}: record {} of data", page.display(), i + 1))?;
                stream.push(record);
            }
        }
        let courses_path = dir.join("courses.json");
        let mut courses = Vec::new();
        for (i, raw) in read_page(&courses_path)?.into_iter().enumerate() {
            let course = CourseRec::parse(raw)
                .with_context(|| format!("{}: course {}", courses_path.display(), i + 1))?;
            courses.push(course);
        }
        let categories = courses
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.category.clone()?)))
            .collect();
        let drivers = |status: &str| -> anyhow::Result<Vec<Value>> {
            let path = dir.join(format!("drivers-{status}.json"));
            if path.exists() {
                read_page(&path)
            } else {
                Ok(Vec::new())
            }
        };
        let tags_path = dir.join("tags.json");
        let tags = if tags_path.exists() {
            read_page(&tags_path)?
        } else {
            Vec::new()
        };
        Ok(Data {
            stream,
            courses,
            categories,
            drivers: std::sync::RwLock::new((drivers("active")?, drivers("deactivated")?)),
            tags,
            requests: AtomicU64::new(0),
            now: AtomicI64::new(i64::MAX),
            fail_from_page: AtomicU64::new(0),
            page_size: STREAM_PAGE_SIZE,
        })
    }

    fn from_content(c: SampleContent) -> anyhow::Result<Data> {
        let stream = c
            .stream
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Record::parse(raw).with_context(|| format!("stream record {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let courses = c
            .courses
            .into_iter()
            .enumerate()
            .map(|(i, raw)| CourseRec::parse(raw).with_context(|| format!("course {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let categories = courses
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.category.clone()?)))
            .collect();
        Ok(Data {
            stream,
            courses,
            categories,
            drivers: std::sync::RwLock::new((c.active, c.deactivated)),
            tags: c.tags,
            requests: AtomicU64::new(0),
            now: AtomicI64::new(i64::MAX),
            fail_from_page: AtomicU64::new(0),
            page_size: if c.page_size == 0 {
                STREAM_PAGE_SIZE
            } else {
                c.page_size
            },
        })
    }
}

/// The `data` of a page file.
fn read_page(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    match body.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => bail!(
            "{}: expected a page, {{\"data\": [...], \"pagination\": {{...}}}}",
            path.display()
        ),
    }
}

fn str_field<'v>(v: &'v Value, pointer: &str) -> anyhow::Result<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("missing string {}", &pointer[1..].replace('/', ".")))
}

fn time_field(v: &Value, pointer: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = str_field(v, pointer)?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{} `{text}` is not RFC 3339", &pointer[1..]))
}

impl Record {
    fn parse(raw: Value) -> anyhow::Result<Record> {
        let learner_id = str_field(&raw, "/learner/id")?;
        let kind = raw
            .pointer("/learner/type")
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(Record {
            created: time_field(&raw, "/createdAtTime")?,
            updated: time_field(&raw, "/updatedAtTime")?,
            learner: LearnerId::from_wire(learner_id, kind).as_str().to_string(),
            course: str_field(&raw, "/course/id")?.to_string(),
            status: str_field(&raw, "/status")?.to_string(),
            overdue: raw
                .get("isOverdue")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            raw,
        })
    }
}

impl CourseRec {
    fn parse(raw: Value) -> anyhow::Result<CourseRec> {
        Ok(CourseRec {
            id: str_field(&raw, "/id")?.to_string(),
            category: raw
                .pointer("/category/id")
                .and_then(Value::as_str)
                .map(str::to_string),
            status: raw
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string),
            raw,
        })
    }
}

// --- HTTP -------------------------------------------------------------------

type Shared = Arc<Data>;

fn router(data: Shared) -> Router {
    Router::new()
        .route("/training-assignments/stream", get(stream))
        .route("/training-courses", get(courses))
        .route("/fleet/drivers", get(drivers))
        .route("/tags", get(tags))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(data)
}

/// A 4xx as the API sends it: `{"message", "requestId"}`.
struct ApiError(StatusCode, String);

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

static ERRORS: AtomicU64 = AtomicU64::new(0);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let n = ERRORS.fetch_add(1, Ordering::Relaxed) + 1;
        let body = json!({"message": self.1, "requestId": format!("sample-{n:06}")});
        (self.0, axum::Json(body)).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        "only GET is supported".into(),
    )
}

/// The query of one request, with the checks every endpoint shares.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn new(headers: &HeaderMap, raw: Option<String>) -> Result<Query, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if token.is_none_or(str::is_empty) {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or malformed Authorization header: send `Bearer <token>`".into(),
            ));
        }
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Ok(Query { pairs })
    }

    /// The last value of `name`.
    fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A list parameter: comma-separated (the API's form), repeated keys
    /// merged; at most [`MAX_IDS_PER_LIST`] items.
    fn list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let items: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if items.len() > MAX_IDS_PER_LIST {
            return Err(bad_request(format!(
                "{name}: at most {MAX_IDS_PER_LIST} values are allowed, got {}",
                items.len()
            )));
        }
        Ok(items)
    }

    fn time(&self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        let value = self
            .one(name)
            .ok_or_else(|| bad_request(format!("{name} is required")))?;
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad_request(format!("{name} `{value}` is not an RFC 3339 time")))
    }

    /// The offset encoded in `after`, or 0.
    fn offset(&self, endpoint: &str) -> Result<usize, ApiError> {
        match self.one("after") {
            None | Some("") => Ok(0),
            Some(cursor) => decode_cursor(endpoint, cursor)
                .ok_or_else(|| bad_request(format!("after `{cursor}` is not a valid cursor"))),
        }
    }
}

/// Cursors are opaque to clients; here they are the hex of `endpoint:offset`.
fn encode_cursor(endpoint: &str, offset: usize) -> String {
    format!("{endpoint}:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(endpoint: &str, cursor: &str) -> Option<usize> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (e, offset) = text.split_once(':')?;
    if e != endpoint {
        return None;
    }
    offset.parse().ok()
}

/// One page of `items` from `offset`.
fn page<'a>(
    endpoint: &str,
    items: impl IntoIterator<Item = &'a Value>,
    offset: usize,
    size: usize,
) -> Response {
    let items: Vec<&Value> = items.into_iter().collect();
    let start = offset.min(items.len());
    let end = (start + size).min(items.len());
    let more = end < items.len();
    let cursor = if more {
        encode_cursor(endpoint, end)
    } else {
        String::new()
    };
    axum::Json(json!({
        "data": &items[start..end],
        "pagination": {"endCursor": cursor, "hasNextPage": more},
    }))
    .into_response()
}

async fn stream(
    State(data): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    data.requests.fetch_add(1, Ordering::Relaxed);
    let q = Query::new(&headers, raw)?;
    let start = q.time("startTime")?;
    let end = q.time("endTime")?;
    let learners = q.list("learnerIds")?;
    let courses = q.list("courseIds")?;
    let categories = q.list("categoryIds")?;
    let status = q.list("status")?;
    if let Some(bad) = status
        .iter()
        .find(|s| !crate::samsara::Status::FILTERABLE.contains(&s.as_str()))
    {
        return Err(bad_request(format!(
            "status `{bad}` is not one of notStarted, inProgress, completed"
        )));
    }
    let overdue = match q.one("isOverdue") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(bad_request(format!(
                "isOverdue `{other}` is not true or false"
            )));
        }
    };
    let offset = q.offset("stream")?;
    let fail_from = data.fail_from_page.load(Ordering::SeqCst);
    if fail_from > 0 && (offset / data.page_size) as u64 + 1 >= fail_from {
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, "upstream connect error").into_response());
    }
    let now = data.now.load(Ordering::SeqCst);
    let within = |t: &DateTime<Utc>| start <= *t && *t < end;
    let mut hits: Vec<&Record> = data
        .stream
        .iter()
        .filter(|r| r.updated.timestamp_nanos_opt().unwrap_or(i64::MAX) < now)
        .filter(|r| within(&r.created) || within(&r.updated))
        .filter(|r| learners.is_empty() || learners.contains(&r.learner))
        .filter(|r| courses.is_empty() || courses.contains(&r.course))
        .filter(|r| {
            categories.is_empty()
                || data
                    .categories
                    .get(&r.course)
                    .is_some_and(|c| categories.contains(c))
        })
        .filter(|r| status.is_empty() || status.contains(&r.status))
        .filter(|r| overdue.is_none_or(|o| r.overdue == o))
        .collect();
    hits.sort_by_key(|r| r.updated); // stable: ties keep file order
    Ok(page(
        "stream",
        hits.into_iter().map(|r| &r.raw),
        offset,
        data.page_size,
    ))
}

async fn courses(
    State(data): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    data.requests.fetch_add(1, Ordering::Relaxed);
    let q = Query::new(&headers, raw)?;
    let ids = q.list("courseIds")?;
    let categories = q.list("categoryIds")?;
    let status = q.list("status")?;
    if let Some(bad) = status
        .iter()
        .find(|s| !["published", "deleted", "archived"].contains(&s.as_str()))
    {
        return Err(bad_request(format!(
            "status `{bad}` is not one of published, deleted, archived"
        )));
    }
    let offset = q.offset("courses")?;
    let hits = data
        .courses
        .iter()
        .filter(|c| ids.is_empty() || ids.contains(&c.id))
        .filter(|c| {
            categories.is_empty() || c.category.as_ref().is_some_and(|k| categories.contains(k))
        })
        .filter(|c| status.is_empty() || c.status.as_ref().is_some_and(|s| status.contains(s)))
        .map(|c| &c.raw);
    Ok(page("courses", hits, offset, COURSES_PAGE_SIZE))
}

async fn drivers(
    State(data): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    data.requests.fetch_add(1, Ordering::Relaxed);
    let q = Query::new(&headers, raw)?;
    let active = match q.one("driverActivationStatus") {
        None | Some("active") => true,
        Some("deactivated") => false,
        Some(other) => {
            return Err(bad_request(format!(
                "driverActivationStatus `{other}` is not active or deactivated"
            )));
        }
    };
    let limit = match q.one("limit") {
        None => DRIVERS_MAX_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=DRIVERS_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad_request(format!(
                    "limit `{text}` must be from 1 to {DRIVERS_MAX_LIMIT}"
                )));
            }
        },
    };
    let tag_ids = q.list("tagIds")?;
    let parents = q.list("parentTagIds")?;
    // parentTagIds: the parents and every descendant, found in /tags.
    let mut wanted: std::collections::HashSet<String> = tag_ids.iter().cloned().collect();
    if !parents.is_empty() {
        let mut todo = parents.clone();
        while let Some(next) = todo.pop() {
            if wanted.insert(next.clone()) || parents.contains(&next) {
                for t in &data.tags {
                    if t.get("parentTagId").and_then(Value::as_str) == Some(next.as_str())
                        && let Some(id) = t.get("id").and_then(Value::as_str)
                        && !wanted.contains(id)
                    {
                        todo.push(id.to_string());
                    }
                }
            }
        }
    }
    let filtered = !tag_ids.is_empty() || !parents.is_empty();
    let offset = q.offset("drivers")?;
    let drivers = data.drivers.read().unwrap_or_else(|e| e.into_inner());
    let list = if active { &drivers.0 } else { &drivers.1 };
    let hits = list.iter().filter(|d| {
        !filtered
            || d.get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("id").and_then(Value::as_str))
                .any(|id| wanted.contains(id))
    });
    Ok(page("drivers", hits, offset, limit))
}

async fn tags(
    State(data): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    data.requests.fetch_add(1, Ordering::Relaxed);
    let q = Query::new(&headers, raw)?;
    let limit = match q.one("limit") {
        None => DRIVERS_MAX_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=DRIVERS_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad_request(format!(
                    "limit `{text}` must be from 1 to {DRIVERS_MAX_LIMIT}"
                )));
            }
        },
    };
    let offset = q.offset("tags")?;
    Ok(page("tags", &data.tags, offset, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_rejected() {
        let c = encode_cursor("stream", 75);
        assert_eq!(decode_cursor("stream", &c), Some(75));
        assert_eq!(decode_cursor("courses", &c), None);
        for bad in ["", "zz", "abc", "MjkY", "é1"] {
            assert_eq!(decode_cursor("stream", bad), None, "{bad}");
        }
    }
}
