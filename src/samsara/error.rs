//! What can go wrong talking to Samsara, split by what the caller can do about it.

use std::time::Duration;

/// The endpoints trainwatch calls, with what their errors should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    TrainingAssignments,
    TrainingCourses,
    Drivers,
    /// `/tags`: the organisation's tags (the mirror keeps them).
    Tags,
}

impl Endpoint {
    /// The path under the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::TrainingAssignments => "/training-assignments/stream",
            Self::TrainingCourses => "/training-courses",
            Self::Drivers => "/fleet/drivers",
            Self::Tags => "/tags",
        }
    }

    /// The token scope this endpoint needs, for 401/403 messages.
    pub fn scope(self) -> &'static str {
        match self {
            Self::TrainingAssignments => "Read Training Assignments",
            Self::TrainingCourses => "Read Training Courses",
            Self::Drivers => "Read Drivers",
            Self::Tags => "Read Tags",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GET {}", self.path())
    }
}

/// Where in a fetch a request was: the endpoint, the page, and the chunk of
/// a split query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub endpoint: Endpoint,
    /// 1-based page within one cursor chain.
    pub page: u32,
    /// `(n, of)` when a long id list was split into several queries.
    pub chunk: Option<(usize, usize)>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, page {}", self.endpoint, self.page)?;
        if let Some((n, of)) = self.chunk {
            write!(f, " of query {n}/{of}")?;
        }
        Ok(())
    }
}

/// A failed fetch. Nothing partial is returned alongside it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the token is wrong or lacks a scope.
    #[error(
        "{place}: HTTP {status}: {message}{request_id}. {hint}",
        request_id = fmt_request_id(request_id),
        hint = if *status == 401 {
            format!("The API token was not accepted: check [samsara] token (it needs the scope \"{}\").", place.endpoint.scope())
        } else {
            format!("The API token lacks the scope \"{}\": add it to the token in the Samsara dashboard.", place.endpoint.scope())
        }
    )]
    Unauthorized {
        place: Place,
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// Any other 4xx (but 429): the request itself is wrong; retrying cannot help.
    #[error("{place}: HTTP {status}: {message}{request_id}", request_id = fmt_request_id(request_id))]
    Rejected {
        place: Place,
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// 429s, 5xx, timeouts or broken connections outlasted the retry budget.
    #[error("{place}: gave up after {attempts} attempts in {elapsed:.1?}: {last}")]
    Exhausted {
        place: Place,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    /// The body was not what the API documents: truncated, not JSON, a required field missing.
    #[error("{place}: malformed response: {detail}")]
    BadResponse { place: Place, detail: String },
    /// The API sent a cursor it had sent before: following it would loop forever.
    #[error(
        "{place}: the API returned cursor {cursor:?} a second time; stopping instead of looping"
    )]
    RepeatedCursor { place: Place, cursor: String },
    /// The fetch outlasted `samsara.max_fetch_time` (an endless cursor, or
    /// far more data than expected).
    #[error(
        "{place}: the fetch took longer than samsara.max_fetch_time ({limit}) after {pages} pages; stopping. \
         Raise max_fetch_time if the window really holds that much, or narrow the window",
        limit = fmt_duration(*limit)
    )]
    FetchTooLong {
        place: Place,
        limit: Duration,
        pages: u64,
    },
    /// A response body was larger than the client reads.
    #[error(
        "{place}: the response body is larger than the limit of {limit}; stopping instead of reading it",
        limit = fmt_bytes(*limit)
    )]
    BodyTooLarge { place: Place, limit: usize },
    /// The request could not even be built (a bad base URL).
    #[error("{place}: cannot build the request: {detail}")]
    Request { place: Place, detail: String },
}

/// A duration the way the config writes it (`30m`, `1s`), or in
/// milliseconds when it is not whole seconds.
fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(len) {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// A size in MiB when it is a whole number of them, else in bytes.
fn fmt_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

fn fmt_request_id(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (requestId {id})"))
        .unwrap_or_default()
}

impl ApiError {
    /// Where the failure happened.
    pub fn place(&self) -> &Place {
        match self {
            Self::Unauthorized { place, .. }
            | Self::Rejected { place, .. }
            | Self::Exhausted { place, .. }
            | Self::BadResponse { place, .. }
            | Self::RepeatedCursor { place, .. }
            | Self::FetchTooLong { place, .. }
            | Self::BodyTooLarge { place, .. }
            | Self::Request { place, .. } => place,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_shown_the_way_the_config_writes_them() {
        assert_eq!(fmt_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_duration(Duration::from_secs(14 * 86_400)), "2w");
        assert_eq!(fmt_duration(Duration::from_millis(400)), "400ms");
        assert_eq!(fmt_bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(fmt_bytes(1000), "1000 bytes");
    }
}
