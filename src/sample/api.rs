//! The sample server's HTTP side: the API's endpoints, their query checks,
//! cursors and pages, and its errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::data::{Data, Record};
use super::{COURSES_PAGE_SIZE, DRIVERS_MAX_LIMIT};
use crate::samsara::MAX_IDS_PER_LIST;

pub(super) type Shared = Arc<Data>;

pub(super) fn router(data: Shared) -> Router {
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
#[derive(Debug)]
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

    /// `limit`, from 1 to `max`; `max` when not given.
    fn limit(&self, max: usize) -> Result<usize, ApiError> {
        match self.one("limit") {
            None => Ok(max),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad_request(format!(
                    "limit `{text}` must be from 1 to {max}"
                ))),
            },
        }
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
    let limit = q.limit(DRIVERS_MAX_LIMIT)?;
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
    let limit = q.limit(DRIVERS_MAX_LIMIT)?;
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

    #[test]
    fn limit_is_from_one_to_the_endpoints_most_and_that_most_when_absent() {
        let query = |raw: &str| Query {
            pairs: url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        };
        assert_eq!(query("").limit(512).unwrap(), 512);
        assert_eq!(query("limit=1").limit(512).unwrap(), 1);
        assert_eq!(query("limit=512").limit(512).unwrap(), 512);
        for bad in ["0", "513", "-1", "ten", ""] {
            let err = query(&format!("limit={bad}")).limit(512).unwrap_err();
            assert_eq!(err.0, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(err.1, format!("limit `{bad}` must be from 1 to 512"));
        }
    }
}
