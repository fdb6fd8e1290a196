//! Outgoing HTTP (reqwest lives here): one way to build a client, one retry
//! loop, one classification of failures, one way to quote a body.
//!
//! The Samsara client and the webhook sink build on this; neither knows
//! the other.

mod retry;

use std::time::Duration;

pub use retry::{Classify, Pacing, Retried, Verdict, retry};

/// How much of a body goes into a message, in characters.
pub const SNIPPET_CHARS: usize = 300;

/// The longest a connection may take to open, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether a client follows redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// reqwest's default (up to 10 hops).
    Follow,
    /// Never: a redirect is an answer like any other. For webhooks, where
    /// following would carry the body and its signature to another address.
    Never,
}

/// A reqwest client builder with trainwatch's user agent, rustls, `timeout`
/// per request (and at most 15 s to connect) and `redirects`.
///
/// `timeout: None` sets no timer at all in the HTTP client (no timeouts, no
/// pool-idle expiry): only for tests under tokio's paused clock, which jumps
/// to the next pending timer whenever it waits on a server in another
/// thread, and would fire those.
pub fn client_builder(timeout: Option<Duration>, redirects: Redirects) -> reqwest::ClientBuilder {
    let mut http =
        reqwest::Client::builder().user_agent(concat!("trainwatch/", env!("CARGO_PKG_VERSION")));
    if redirects == Redirects::Never {
        http = http.redirect(reqwest::redirect::Policy::none());
    }
    match timeout {
        Some(timeout) => http
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT)),
        None => http.pool_idle_timeout(None),
    }
}

/// The start of a body for a message: on one line (control characters and
/// runs of white space become one space), trimmed, cut to
/// [`SNIPPET_CHARS`] characters with `…` when longer.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A `Retry-After` header's value, as [`crate::retry::parse_retry_after`] reads it.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::retry::parse_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_is_one_trimmed_line_cut_at_the_limit() {
        assert_eq!(snippet(b"  invalid_blocks\n"), "invalid_blocks");
        assert_eq!(snippet(b"a\r\n\tb  c"), "a b c");
        assert_eq!(snippet(b" \n "), "");
        let long = snippet("é".repeat(1000).as_bytes());
        assert_eq!(long.chars().filter(|c| *c == 'é').count(), SNIPPET_CHARS);
        assert!(long.ends_with('…'));
        assert_eq!(
            snippet("é".repeat(SNIPPET_CHARS).as_bytes())
                .chars()
                .count(),
            SNIPPET_CHARS
        );
    }
}
