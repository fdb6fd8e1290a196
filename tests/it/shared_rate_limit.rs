//! One rate limit per token across processes: clients with registries of
//! their own (as separate processes have) book their request slots from one
//! SQLite slot book, so together they stay within the token's rate; and 429s
//! wait their `Retry-After` plus a floor without spending the attempt budget.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use trainwatch::ratelimit::SqliteSlots;
use trainwatch::samsara::{AssignmentQuery, Client, RateLimits, WallClock};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const STREAM: &str = "/training-assignments/stream";
const PAGES: usize = 6;

fn query() -> AssignmentQuery {
    AssignmentQuery::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-02-01T00:00:00Z".parse().unwrap(),
    )
}

/// `PAGES` pages of 2 assignments, by cursor.
struct Pages;

impl Respond for Pages {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let index: usize = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "after")
            .map(|(_, v)| v.trim_start_matches('c').parse().unwrap())
            .unwrap_or(0);
        let data: Vec<Value> = (0..2)
            .map(|i| {
                let id = format!("a{}", index * 2 + i);
                assignment(&id, "7", "c1", "notStarted", "2026-01-02T00:00:00Z")
            })
            .collect();
        let more = index + 1 < PAGES;
        let cursor = if more {
            format!("c{}", index + 1)
        } else {
            String::new()
        };
        ResponseTemplate::new(200).set_body_json(page(data, &cursor, more))
    }
}

/// The wall clock the three "processes" share, driven by tokio's paused clock.
fn paused_wall_clock() -> WallClock {
    let origin = tokio::time::Instant::now();
    Arc::new(move || {
        1_700_000_000_000_000_000 + (tokio::time::Instant::now() - origin).as_nanos() as i64
    })
}

/// Three clients, each with a registry of its own, fetching at once at 5/s;
/// returns the send instants of all of them.
async fn three_processes(
    server: &MockServer,
    registries: [Arc<RateLimits>; 3],
) -> Vec<tokio::time::Instant> {
    let sends = Arc::new(Sends::default());
    let fetches: Vec<_> = registries
        .into_iter()
        .map(|limits| {
            let mut s = settings(&server.uri());
            s.requests_per_second = 5;
            let c = Client::with_limits(s, limits)
                .unwrap()
                .observed(sends.clone());
            tokio::spawn(async move { c.fetch_assignments(&query()).await })
        })
        .collect();
    for f in fetches {
        assert_eq!(f.await.unwrap().unwrap().assignments.len(), PAGES * 2);
    }
    let at: Vec<_> = sends.at.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(at.len(), 3 * PAGES);
    at
}

async fn stream_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(Pages)
        .mount(&server)
        .await;
    server
}

#[tokio::test(start_paused = true)]
async fn three_processes_on_one_store_send_at_most_5_requests_in_any_second() {
    let server = stream_server().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = paused_wall_clock();
    // Each "process" opens the slot book itself: three SQLite connections.
    let registry = || {
        let book = Arc::new(SqliteSlots::open(dir.path()).unwrap());
        Arc::new(RateLimits::shared_with_clock(
            book,
            "test-token",
            clock.clone(),
        ))
    };

    let at = three_processes(&server, [registry(), registry(), registry()]).await;

    assert_eq!(max_in_any_window(&at, Duration::from_secs(1)), 5);
    let span = *at.iter().max().unwrap() - *at.iter().min().unwrap();
    let bound = Duration::from_secs((3 * PAGES - 1) as u64) / 5;
    assert!(span >= bound, "faster than the token's rate: {span:?}");
    assert!(
        span < bound * 103 / 100,
        "much slower than the bound {bound:?}: {span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn three_processes_pacing_alone_exceed_the_token_rate() {
    // The control: the same three fetches, each process with its own limit.
    let server = stream_server().await;
    let alone = || Arc::new(RateLimits::default());

    let at = three_processes(&server, [alone(), alone(), alone()]).await;

    assert!(max_in_any_window(&at, Duration::from_secs(1)) > 5);
}

#[tokio::test(start_paused = true)]
async fn different_tokens_on_one_store_have_budgets_of_their_own() {
    let server = stream_server().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = paused_wall_clock();
    let registry = |token: &str| {
        let book = Arc::new(SqliteSlots::open(dir.path()).unwrap());
        Arc::new(RateLimits::shared_with_clock(book, token, clock.clone()))
    };

    let at = three_processes(&server, [registry("t1"), registry("t2"), registry("t3")]).await;

    assert!(max_in_any_window(&at, Duration::from_secs(1)) > 5);
}

#[tokio::test(start_paused = true)]
async fn many_429s_do_not_spend_the_attempt_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0.001"))
        .up_to_n_times(10)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .mount(&server)
        .await;
    let sends = Arc::new(Sends::default());
    // Six attempts for errors; ten 429s in a row still end in the page.
    let c = client(&server.uri()).observed(sends.clone());

    c.fetch_assignments(&query()).await.unwrap();

    let at = sends.at.lock().unwrap();
    assert_eq!(at.len(), 11);
    for pair in at.windows(2) {
        let waited = pair[1].1 - pair[0].1;
        assert!(
            waited >= Duration::from_millis(1001),
            "a 429 waited only {waited:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn endless_429s_fail_after_the_rate_limited_time_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.max_rate_limited = Duration::from_secs(30);
    let c = Client::with_limits(s, Arc::new(RateLimits::default())).unwrap();

    let err = c.fetch_assignments(&query()).await.unwrap_err().to_string();

    assert!(
        err.starts_with("GET /training-assignments/stream, page 1: gave up after"),
        "{err}"
    );
    assert!(err.contains("HTTP 429"), "{err}");
    // 2 to 2.5 s a wait: 12 to 15 waits fit in 30 s.
    let requests = server.received_requests().await.unwrap().len();
    assert!((12..=16).contains(&requests), "{requests} requests");
}
