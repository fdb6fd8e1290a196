//! Every loop and buffer of the client is bounded: a cursor that never ends
//! stops at `max_fetch_time`, a body larger than `max_body_bytes` stops at the
//! limit without being read whole, and errors name the endpoint and page,
//! never the request URL with its query string.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{assignment, page};
use trainwatch::learner::LearnerId;
use trainwatch::samsara::{ApiError, AssignmentQuery, Client, RateLimits};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn query() -> AssignmentQuery {
    AssignmentQuery::new(utc("2026-03-02T00:00:00Z"), utc("2026-03-09T00:00:00Z"))
}

/// Answers every page with one record, `hasNextPage: true` and a cursor it
/// has never sent before: a stream that never ends.
struct EndlessCursor {
    pages: Arc<AtomicU64>,
}

impl Respond for EndlessCursor {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.pages.fetch_add(1, Ordering::SeqCst);
        let record = assignment(
            &format!("a{n}"),
            "1",
            "c1",
            "notStarted",
            "2026-03-04T00:00:00Z",
        );
        ResponseTemplate::new(200).set_body_json(page(vec![record], &format!("cursor-{n}"), true))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_cursor_stops_at_max_fetch_time_with_a_clear_error() {
    let server = MockServer::start().await;
    let pages = Arc::new(AtomicU64::new(0));
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(EndlessCursor {
            pages: pages.clone(),
        })
        .mount(&server)
        .await;
    let mut settings = common::settings(&server.uri());
    settings.timeout = Some(Duration::from_secs(5));
    settings.requests_per_second = 100;
    settings.max_fetch_time = Duration::from_millis(400);
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();

    let started = std::time::Instant::now();
    let err = client.fetch_assignments(&query()).await.unwrap_err();
    let took = started.elapsed();

    assert!(matches!(err, ApiError::FetchTooLong { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("GET /training-assignments/stream, page "),
        "{message}"
    );
    assert!(
        message.contains("took longer than samsara.max_fetch_time (400ms) after"),
        "{message}"
    );
    let followed = pages.load(Ordering::SeqCst);
    assert!(followed > 5, "it did follow the cursor: {followed} pages");
    // Named tolerance: the limit plus a loaded machine's scheduling slack.
    const SLACK: Duration = Duration::from_secs(3);
    assert!(took < Duration::from_millis(400) + SLACK, "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn under_a_paused_clock_the_deadline_is_checked_between_pages() {
    let server = MockServer::start().await;
    let pages = Arc::new(AtomicU64::new(0));
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(EndlessCursor {
            pages: pages.clone(),
        })
        .mount(&server)
        .await;
    let mut settings = common::settings(&server.uri());
    settings.requests_per_second = 5;
    settings.max_fetch_time = Duration::from_secs(60);
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();

    let started = tokio::time::Instant::now();
    let err = client.fetch_assignments(&query()).await.unwrap_err();

    assert!(
        matches!(err, ApiError::FetchTooLong { pages, .. } if pages >= 290),
        "{err}"
    );
    // At 5 requests per second, 60 s hold about 300 pages; it stops there.
    let followed = pages.load(Ordering::SeqCst);
    assert!((290..=302).contains(&followed), "{followed} pages");
    assert!(started.elapsed() <= Duration::from_secs(61));
}

/// A sync's stream read over `days` of range against an endless cursor, at
/// 5 requests/s with `max_fetch_time = 60s`: how long it ran (paused clock)
/// and the limit its error names.
async fn endless_sync_read(days: i64) -> (Duration, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(EndlessCursor {
            pages: Arc::new(AtomicU64::new(0)),
        })
        .mount(&server)
        .await;
    let mut settings = common::settings(&server.uri());
    settings.requests_per_second = 5;
    settings.max_fetch_time = Duration::from_secs(60);
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();
    let end = utc("2026-03-09T00:00:00Z");
    let started = tokio::time::Instant::now();
    let err = client
        .stream_pages(end - chrono::TimeDelta::days(days), end, |_| {
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .unwrap_err();
    (started.elapsed(), err.to_string())
}

#[tokio::test(start_paused = true)]
async fn a_sync_gets_max_fetch_time_for_every_30_days_of_its_range_and_no_more() {
    // An hourly sync keeps the plain bound; a first sync over 90 days may
    // read three times as long (a whole history at 5 requests/s takes
    // hours), and an endless cursor still ends there.
    let (short, message) = endless_sync_read(1).await;
    assert!(
        (Duration::from_secs(59)..=Duration::from_secs(61)).contains(&short),
        "{short:?}"
    );
    assert!(message.contains("samsara.max_fetch_time (1m)"), "{message}");
    let (long, message) = endless_sync_read(90).await;
    assert!(
        (Duration::from_secs(179)..=Duration::from_secs(181)).contains(&long),
        "{long:?}"
    );
    assert!(message.contains("samsara.max_fetch_time (3m)"), "{message}");
}

/// A local server whose one endpoint streams `total` bytes of JSON-looking
/// filler, lazily, counting what it actually produced.
async fn streaming_server(total: u64, declare_length: bool) -> (String, Arc<AtomicU64>) {
    use axum::body::Body;
    use axum::routing::get;
    const CHUNK: usize = 64 * 1024;
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let app = axum::Router::new().route(
        "/training-assignments/stream",
        get(move || {
            let counter = counter.clone();
            async move {
                let chunks = total.div_ceil(CHUNK as u64);
                let stream = futures::stream::iter(0..chunks).map(move |_| {
                    counter.fetch_add(CHUNK as u64, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; CHUNK]))
                });
                let mut response = axum::response::Response::new(Body::from_stream(stream));
                if declare_length {
                    response.headers_mut().insert(
                        "content-length",
                        (chunks * CHUNK as u64).to_string().parse().unwrap(),
                    );
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), produced)
}

use futures::StreamExt as _;

const GIB: u64 = 1024 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gigabyte_body_fails_at_the_limit_without_being_read_whole() {
    let (uri, produced) = streaming_server(GIB, false).await;
    let mut settings = common::settings(&uri);
    settings.max_body_bytes = 8 * 1024 * 1024;
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();

    let err = client.fetch_assignments(&query()).await.unwrap_err();

    assert_eq!(
        err.to_string(),
        "GET /training-assignments/stream, page 1: the response body is larger than the limit \
         of 8 MiB; stopping instead of reading it"
    );
    // The server produces lazily; what it produced is what the client read
    // plus what the socket buffers held: nowhere near the gigabyte.
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes were produced");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_length_over_the_limit_fails_before_the_body_is_read() {
    let (uri, produced) = streaming_server(GIB, true).await;
    let mut settings = common::settings(&uri);
    settings.max_body_bytes = 8 * 1024 * 1024;
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();

    let err = client.fetch_assignments(&query()).await.unwrap_err();

    assert!(matches!(err, ApiError::BodyTooLarge { .. }), "{err}");
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent < 16 * 1024 * 1024, "{sent} bytes were produced");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_request_names_endpoint_and_page_but_never_the_url() {
    // A port that was just free: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("http://127.0.0.1:{port}");
    let mut settings = common::settings(&uri);
    settings.retry.max_attempts = 1;
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();
    let mut q = query();
    q.learner_ids = (0..80)
        .map(|i| LearnerId::parse(&format!("driver-{}", 1_000_000 + i)).unwrap())
        .collect();

    let err = client.fetch_assignments(&q).await.unwrap_err();

    let message = err.to_string();
    assert!(
        message.starts_with("GET /training-assignments/stream, page 1: gave up after 1 attempts"),
        "{message}"
    );
    for leak in ["learnerIds", "driver-1000000", "startTime", "?", "http://"] {
        assert!(!message.contains(leak), "{leak:?} leaked into: {message}");
    }
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn export_against_an_endless_cursor_fails_within_max_fetch_time() {
    let server = MockServer::start().await;
    let pages = Arc::new(AtomicU64::new(0));
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(EndlessCursor {
            pages: pages.clone(),
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
# The API path: a sync's first read is allowed longer (see
# a_sync_gets_max_fetch_time_for_every_30_days_of_its_range_and_no_more).
[mirror]
enabled = false

[samsara]
base_url = "{}"
token = "test-token"
requests_per_second = 100
max_fetch_time = "1s"

[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ last = "7d" }}
deliver = [{{ archive = {{ dir = "audit" }} }}]
"#,
            server.uri()
        ),
    )
    .unwrap();

    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("trainwatch")
            .unwrap()
            .arg("--config")
            .arg(&config)
            .args(["export", "weekly", "--at", "2026-03-09T13:00:00Z"])
            .env_remove("TRAINWATCH_CONFIG")
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();

    assert_eq!(output.status.code(), Some(1), "a failed run exits 1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("GET /training-assignments/stream, page ")
            && stderr.contains("took longer than samsara.max_fetch_time (1s) after"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing partial on stdout");
    assert!(pages.load(Ordering::SeqCst) > 10);
    // Named tolerance: 1 s of fetching plus process start and a loaded machine.
    const SLACK: Duration = Duration::from_secs(10);
    assert!(took < Duration::from_secs(1) + SLACK, "took {took:?}");
}
