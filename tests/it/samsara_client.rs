//! The Samsara client against a real HTTP server on loopback (wiremock).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;
use trainwatch::learner::LearnerId;
use trainwatch::samsara::{ApiError, AssignmentQuery, Client, Endpoint, RateLimits, Status};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const STREAM: &str = "/training-assignments/stream";

fn query() -> AssignmentQuery {
    AssignmentQuery::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-02-01T00:00:00Z".parse().unwrap(),
    )
}

fn param(req: &Request, name: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Serves a fixed list of pages by cursor (`c1`, `c2`, …), whatever the query.
struct Pages(Vec<Vec<Value>>);

impl Respond for Pages {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let index = match param(req, "after") {
            None => 0,
            Some(c) => c.trim_start_matches('c').parse::<usize>().unwrap(),
        };
        let more = index + 1 < self.0.len();
        let cursor = if more {
            format!("c{}", index + 1)
        } else {
            String::new()
        };
        ResponseTemplate::new(200).set_body_json(page(self.0[index].clone(), &cursor, more))
    }
}

fn numbered(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            assignment(
                &format!("a{i}"),
                &format!("{}", i % 17),
                "c1",
                "notStarted",
                "2026-01-02T00:00:00Z",
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stream_of_many_pages_of_unannounced_sizes_is_fetched_whole() {
    let server = MockServer::start().await;
    let sizes = [3, 0, 7, 1, 100, 42, 9];
    let mut pages = Vec::new();
    let mut next = 0;
    for n in sizes {
        pages.push(numbered(next..next + n));
        next += n;
    }
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(Pages(pages))
        .mount(&server)
        .await;

    let fetched = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap();

    assert_eq!(fetched.assignments.len(), next);
    assert_eq!(fetched.stats.pages, sizes.len() as u64);
    let ids: HashSet<_> = fetched.assignments.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), next);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), sizes.len());
    for (i, req) in requests.iter().enumerate() {
        assert_eq!(
            param(req, "startTime").as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(
            param(req, "endTime").as_deref(),
            Some("2026-02-01T00:00:00.000Z")
        );
        let expected_cursor = (i > 0).then(|| format!("c{i}"));
        assert_eq!(param(req, "after"), expected_cursor);
    }
}

/// Answers a stream query from a fixed set of assignments, honouring
/// `learnerIds`, two pages per query, and records every learnerIds list.
struct ByLearner {
    records: Vec<Value>,
    asked: Mutex<Vec<Vec<String>>>,
}

impl Respond for ByLearner {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let wanted: Vec<String> = param(req, "learnerIds")
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect();
        let second = param(req, "after").is_some();
        if !second {
            self.asked.lock().unwrap().push(wanted.clone());
        }
        let wanted: HashSet<_> = wanted.into_iter().collect();
        let matching: Vec<Value> = self
            .records
            .iter()
            .filter(|r| {
                wanted.contains(&format!("driver-{}", r["learner"]["id"].as_str().unwrap()))
            })
            .cloned()
            .collect();
        let half = matching.len() / 2;
        if second {
            ResponseTemplate::new(200).set_body_json(page(matching[half..].to_vec(), "", false))
        } else {
            let cursor = format!("p2-{}", self.asked.lock().unwrap().len());
            ResponseTemplate::new(200).set_body_json(page(matching[..half].to_vec(), &cursor, true))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_250_learner_filter_is_split_into_requests_of_100_and_merged_without_duplicates() {
    let server = MockServer::start().await;
    let mut records: Vec<Value> = (0..250)
        .flat_map(|l| {
            [
                assignment(
                    &format!("x{l}"),
                    &l.to_string(),
                    "c1",
                    "completed",
                    "2026-01-03T00:00:00Z",
                ),
                assignment(
                    &format!("y{l}"),
                    &l.to_string(),
                    "c2",
                    "inProgress",
                    "2026-01-03T00:00:00Z",
                ),
            ]
        })
        .collect();
    // The stream may send an assignment again after it changed: an older and
    // a newer version of x7 both arrive; the newer one must win.
    records.push(assignment(
        "x7",
        "7",
        "c1",
        "inProgress",
        "2026-01-02T00:00:00Z",
    ));
    records.insert(
        0,
        assignment("x7", "7", "c1", "notStarted", "2026-01-04T00:00:00Z"),
    );
    let responder = Arc::new(ByLearner {
        records,
        asked: Mutex::default(),
    });
    struct Shared(Arc<ByLearner>);
    impl Respond for Shared {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(Shared(responder.clone()))
        .mount(&server)
        .await;

    let mut q = query();
    q.learner_ids = (0..250)
        .map(|l| LearnerId::parse(&l.to_string()).unwrap())
        .collect();
    // The same learner named twice is asked for once.
    q.learner_ids.push(LearnerId::parse("driver-5").unwrap());
    let fetched = client(&server.uri()).fetch_assignments(&q).await.unwrap();

    let asked = responder.asked.lock().unwrap();
    assert_eq!(asked.len(), 3, "three queries of at most 100 learners");
    assert!(asked.iter().all(|l| l.len() <= 100));
    let all_asked: Vec<_> = asked.iter().flatten().collect();
    assert_eq!(all_asked.len(), 250);
    assert_eq!(all_asked.iter().collect::<HashSet<_>>().len(), 250);

    assert_eq!(fetched.stats.queries, 3);
    assert_eq!(fetched.stats.received, 502);
    assert_eq!(fetched.stats.duplicates, 2);
    assert_eq!(fetched.assignments.len(), 500);
    let x7 = fetched.assignments.iter().find(|a| &*a.id == "x7").unwrap();
    assert_eq!(x7.status, Status::NotStarted);
    assert_eq!(
        x7.updated_at_time,
        "2026-01-04T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_the_fractional_retry_after_plus_the_floor_then_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0.40235"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..2), "", false)))
        .mount(&server)
        .await;
    let sends = Arc::new(Sends::default());
    let c = client(&server.uri()).observed(sends.clone());

    let fetched = c.fetch_assignments(&query()).await.unwrap();

    assert_eq!(fetched.assignments.len(), 2);
    let at = sends.at.lock().unwrap();
    assert_eq!(at.len(), 2);
    let waited = at[1].1 - at[0].1;
    // Retry-After, plus the 1 s floor, plus up to half the floor of jitter.
    assert!(
        waited >= Duration::from_micros(1_402_350),
        "waited only {waited:?}"
    );
    assert!(
        waited <= Duration::from_micros(1_902_350),
        "waited {waited:?}"
    );
    assert_eq!(*sends.statuses.lock().unwrap(), ["429", "200"]);
}

#[tokio::test(start_paused = true)]
async fn server_errors_500_502_503_are_retried_with_backoff_until_success() {
    let server = MockServer::start().await;
    for (priority, status) in [(1, 500), (2, 502), (3, 503)] {
        Mock::given(method("GET"))
            .and(path(STREAM))
            .respond_with(ResponseTemplate::new(status).set_body_string("upstream hiccup"))
            .up_to_n_times(1)
            .with_priority(priority)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..5), "", false)))
        .with_priority(10)
        .mount(&server)
        .await;
    let sends = Arc::new(Sends::default());
    let c = client(&server.uri()).observed(sends.clone());

    let fetched = c.fetch_assignments(&query()).await.unwrap();

    assert_eq!(fetched.assignments.len(), 5);
    assert_eq!(
        *sends.statuses.lock().unwrap(),
        ["500", "502", "503", "200"]
    );
    // Backoff grows: each gap is at least half its step (10, 20, 40 ms).
    let at = sends.at.lock().unwrap();
    for (i, step) in [10u64, 20, 40].iter().enumerate() {
        let gap = at[i + 1].1 - at[i].1;
        assert!(gap >= Duration::from_millis(step / 2), "gap {i}: {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_attempt_budget_with_the_last_failure_named() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.retry.max_attempts = 3;
    let c = Client::with_limits(s, Arc::new(RateLimits::default())).unwrap();

    let err = c.fetch_assignments(&query()).await.unwrap_err();

    assert!(
        matches!(err, ApiError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("GET /training-assignments/stream, page 1"),
        "{msg}"
    );
    assert!(msg.contains("503: down for maintenance"), "{msg}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(numbered(0..1), "", false))
                .set_delay(Duration::from_secs(10)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..3), "", false)))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.timeout = Some(Duration::from_millis(150));
    let sends = Arc::new(Sends::default());
    let c = Client::with_limits(s, Arc::new(RateLimits::default()))
        .unwrap()
        .observed(sends.clone());

    let fetched = c.fetch_assignments(&query()).await.unwrap();

    assert_eq!(
        fetched.assignments.len(),
        3,
        "the answer of the second attempt"
    );
    assert_eq!(*sends.statuses.lock().unwrap(), ["timeout", "200"]);
}

#[tokio::test(start_paused = true)]
async fn a_truncated_body_is_an_error_naming_the_endpoint_and_page_never_a_short_result() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .and(query_param("after", "c1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"data":[{"id":"a9","course":{"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..4), "c1", true)))
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::BadResponse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("GET /training-assignments/stream, page 2: malformed response"),
        "{msg}"
    );
    assert!(msg.contains("EOF"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn a_record_missing_a_required_field_is_malformed_not_skipped() {
    let server = MockServer::start().await;
    let mut broken = assignment("a1", "1", "c1", "completed", "2026-01-02T00:00:00Z");
    broken.as_object_mut().unwrap().remove("updatedAtTime");
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![broken], "", false)))
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    assert!(
        err.to_string().contains("missing field `updatedAtTime`"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_fields_and_unknown_statuses_are_accepted() {
    let server = MockServer::start().await;
    let mut record = assignment("a1", "1", "c1", "expired", "2026-01-02T00:00:00Z");
    record["someNewField"] = serde_json::json!({"nested": [1, 2]});
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![record], "", false)))
        .mount(&server)
        .await;

    let fetched = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap();

    assert_eq!(
        fetched.assignments[0].status,
        Status::Other("expired".into())
    );
    assert_eq!(fetched.assignments[0].learner.as_str(), "driver-1");
}

#[tokio::test(start_paused = true)]
async fn a_401_fails_at_once_naming_the_token_scope_and_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"message": "Unauthorized", "requestId": "8916bd6e"}),
            ),
        )
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    let msg = err.to_string();
    assert!(
        matches!(err, ApiError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("HTTP 401: Unauthorized (requestId 8916bd6e)"),
        "{msg}"
    );
    assert!(msg.contains("Read Training Assignments"), "{msg}");
    assert!(
        !msg.contains("test-token"),
        "the token never appears: {msg}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no retry"
    );
}

#[tokio::test(start_paused = true)]
async fn a_403_on_courses_names_the_courses_scope() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-courses"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(serde_json::json!({"message": "Forbidden", "requestId": "r-2"})),
        )
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .courses(&["c1".into()])
        .await
        .unwrap_err();

    assert!(
        err.to_string()
            .contains("lacks the scope \"Read Training Courses\""),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn other_4xx_fail_at_once_with_the_apis_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"message": "Invalid value for startTime", "requestId": "r-3"}),
        ))
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    assert!(
        matches!(err, ApiError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("Invalid value for startTime (requestId r-3)")
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cursor_that_comes_back_is_an_error_not_an_endless_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..1), "same", true)))
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::RepeatedCursor { .. }), "{err:?}");
    assert!(err.to_string().contains("page 2"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn more_pages_with_no_cursor_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(numbered(0..1), "", true)))
        .mount(&server)
        .await;

    let err = client(&server.uri())
        .fetch_assignments(&query())
        .await
        .unwrap_err();

    assert!(
        err.to_string()
            .contains("hasNextPage is true but endCursor is empty"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_fetches_share_one_limiter_and_never_exceed_5_requests_in_any_second() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(Pages((0..10).map(|i| numbered(i * 3..i * 3 + 3)).collect()))
        .mount(&server)
        .await;
    let limits = Arc::new(RateLimits::default());
    let sends = Arc::new(Sends::default());
    let fetches: Vec<_> = (0..4)
        .map(|_| {
            // Separate clients, as separate jobs would have, sharing the process's limits.
            let mut s = settings(&server.uri());
            s.requests_per_second = 5;
            let c = Client::with_limits(s, limits.clone())
                .unwrap()
                .observed(sends.clone());
            tokio::spawn(async move { c.fetch_assignments(&query()).await })
        })
        .collect();
    for f in fetches {
        assert_eq!(f.await.unwrap().unwrap().assignments.len(), 30);
    }

    let at: Vec<_> = sends.at.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(at.len(), 40);
    assert_eq!(max_in_any_window(&at, Duration::from_secs(1)), 5);
    let span = *at.iter().max().unwrap() - *at.iter().min().unwrap();
    assert!(
        span >= Duration::from_secs(39) / 5,
        "not faster than the limit: {span:?}"
    );
    assert!(
        span < Duration::from_secs(39) / 5 * 103 / 100,
        "not much slower either: {span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_identify_trainwatch_and_carry_the_token_and_api_version() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STREAM))
        .and(header("authorization", "Bearer test-token"))
        .and(header("x-samsara-version", "2024-11-18"))
        .and(header(
            "user-agent",
            concat!("trainwatch/", env!("CARGO_PKG_VERSION")),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.api_version = Some("2024-11-18".into());
    let c = Client::with_limits(s, Arc::new(RateLimits::default())).unwrap();

    assert!(
        c.fetch_assignments(&query())
            .await
            .unwrap()
            .assignments
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn names_come_from_courses_in_chunks_of_100_and_from_active_and_deactivated_drivers() {
    let server = MockServer::start().await;
    struct Courses;
    impl Respond for Courses {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let ids = param(req, "courseIds").unwrap();
            let data = ids
                .split(',')
                .map(|id| serde_json::json!({"id": id, "title": format!("Course {id}"), "category": {"id": "k", "name": "Safety"}}))
                .collect();
            ResponseTemplate::new(200).set_body_json(page(data, "", false))
        }
    }
    Mock::given(path("/training-courses"))
        .respond_with(Courses)
        .mount(&server)
        .await;
    for (status, id, name) in [
        ("active", "1", "Ana"),
        ("deactivated", "2", "Former Driver"),
    ] {
        Mock::given(path("/fleet/drivers"))
            .and(query_param("driverActivationStatus", status))
            .and(query_param("limit", "512"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(
                vec![serde_json::json!({"id": id, "name": name})],
                "",
                false,
            )))
            .mount(&server)
            .await;
    }
    let ids: Vec<String> = (0..150).map(|i| format!("c{i}")).collect();

    let names = client(&server.uri()).names(&ids).await.unwrap();

    assert_eq!(names.courses.len(), 150);
    assert_eq!(names.courses["c149"].title, "Course c149");
    let learners: HashMap<_, _> = names
        .learners
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        learners,
        HashMap::from([("driver-1", "Ana"), ("driver-2", "Former Driver")])
    );
    let course_requests = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/training-courses")
        .count();
    assert_eq!(course_requests, 2);
    assert!(names.warnings.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_token_without_the_drivers_scope_falls_back_to_ids_with_a_warning() {
    let server = MockServer::start().await;
    Mock::given(path("/fleet/drivers"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(serde_json::json!({"message": "Forbidden"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/training-courses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .mount(&server)
        .await;

    let names = client(&server.uri()).names(&["c1".into()]).await.unwrap();

    assert!(names.learners.is_empty());
    assert_eq!(names.warnings.len(), 1);
    assert!(
        names.warnings[0].contains("Read Drivers"),
        "{:?}",
        names.warnings
    );
}

#[test]
fn endpoints_name_their_scopes() {
    assert_eq!(Endpoint::Drivers.scope(), "Read Drivers");
}
