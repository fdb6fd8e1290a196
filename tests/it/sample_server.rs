//! The real client against the sample server: what it fetches is exactly
//! what the API's semantics give over the raw sample files.

use crate::sample_support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use trainwatch::learner::LearnerId;
use trainwatch::sample::{COURSES_PAGE_SIZE, STREAM_PAGE_SIZE, SampleServer};
use trainwatch::samsara::{ApiError, AssignmentQuery, Fetched, Status};

use sample_support::*;

/// Which raw records a filter keeps.
type Keep = Box<dyn Fn(&Value) -> bool>;

async fn server() -> SampleServer {
    SampleServer::start(&sample_dir()).await.unwrap()
}

/// `id → (updatedAtTime, status)` of a fetch and of a recomputation.
fn keyed_fetch(f: &Fetched) -> BTreeMap<String, (DateTime<Utc>, String)> {
    f.assignments
        .iter()
        .map(|a| (a.id.to_string(), (a.updated_at_time, a.status.to_string())))
        .collect()
}

fn keyed_expected(e: &BTreeMap<String, Value>) -> BTreeMap<String, (DateTime<Utc>, String)> {
    e.iter()
        .map(|(id, r)| {
            let status = r["status"].as_str().unwrap().to_string();
            (id.clone(), (field_time(r, "updatedAtTime"), status))
        })
        .collect()
}

/// Chicago's Sunday 2026-11-22, October 2026, and the 365 days before the fire.
fn windows() -> [(&'static str, DateTime<Utc>, DateTime<Utc>); 3] {
    [
        ("last 365d", fire() - Duration::days(365), fire()),
        (
            "previous day",
            time("2026-11-22T00:00:00-06:00"),
            time("2026-11-23T00:00:00-06:00"),
        ),
        (
            "previous month",
            time("2026-10-01T00:00:00-05:00"),
            time("2026-11-01T00:00:00-05:00"),
        ),
    ]
}

#[tokio::test]
async fn a_window_fetch_returns_exactly_the_recomputed_records() {
    let server = server().await;
    let client = client(&server.base_url);
    for ((name, start, end), at_least) in windows().into_iter().zip([250, 25, 100]) {
        let fetched = client
            .fetch_assignments(&AssignmentQuery::new(start, end))
            .await
            .unwrap();
        let want = expected(start, end, |_| true);
        assert_eq!(keyed_fetch(&fetched), keyed_expected(&want), "{name}");
        assert!(want.len() >= at_least, "{name}: only {}", want.len());
        let received = fetched.stats.received as usize;
        assert_eq!(
            fetched.stats.pages as usize,
            received.div_ceil(STREAM_PAGE_SIZE).max(1),
            "{name}: pages of {STREAM_PAGE_SIZE}"
        );
    }
    // The whole stream, and every record of it is served.
    let all = client
        .fetch_assignments(&AssignmentQuery::new(
            time("2000-01-01T00:00:00Z"),
            time("2100-01-01T00:00:00Z"),
        ))
        .await
        .unwrap();
    assert_eq!(all.stats.received as usize, stream_records().len());
    assert_eq!(all.stats.duplicates, 1);
}

#[tokio::test]
async fn both_versions_of_the_duplicate_are_served_and_the_newer_one_is_kept() {
    let records = stream_records();
    let mut by_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for r in &records {
        by_id.entry(r["id"].as_str().unwrap()).or_default().push(r);
    }
    let dups: Vec<_> = by_id.iter().filter(|(_, v)| v.len() > 1).collect();
    assert_eq!(dups.len(), 1, "exactly one assignment appears twice");
    let (dup_id, versions) = dups[0];
    let newest = versions
        .iter()
        .max_by_key(|r| field_time(r, "updatedAtTime"))
        .unwrap();

    let server = server().await;
    let (_, start, end) = windows()[2];
    let fetched = client(&server.base_url)
        .fetch_assignments(&AssignmentQuery::new(start, end))
        .await
        .unwrap();
    assert_eq!(
        fetched.stats.duplicates, 1,
        "October receives both versions"
    );
    let kept = fetched
        .assignments
        .iter()
        .find(|a| &*a.id == *dup_id)
        .unwrap();
    assert_eq!(kept.updated_at_time, field_time(newest, "updatedAtTime"));
    assert_eq!(kept.status, Status::Completed);
    assert_eq!(kept.is_completed_late, Some(true));
}

#[tokio::test]
async fn windows_are_half_open_at_the_month_and_day_boundaries() {
    let server = server().await;
    let client = client(&server.base_url);
    // Records created (and updated) exactly at an instant.
    let at = |instant: &str| -> String {
        let t = time(instant);
        stream_records()
            .into_iter()
            .find(|r| field_time(r, "createdAtTime") == t && field_time(r, "updatedAtTime") == t)
            .unwrap_or_else(|| panic!("no record at {instant}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cases = [
        (2, "2026-10-01T05:00:00Z", true),
        (2, "2026-10-01T04:59:59Z", false),
        (2, "2026-11-01T04:59:59.999Z", true),
        (2, "2026-11-01T05:00:00Z", false),
        (1, "2026-11-22T06:00:00Z", true),
        (1, "2026-11-22T05:59:59.999Z", false),
        (1, "2026-11-23T06:00:00Z", false),
        (0, "2025-11-23T14:00:00Z", true),
        (0, "2025-11-23T13:59:59Z", false),
    ];
    for (window, instant, inside) in cases {
        let (name, start, end) = windows()[window];
        let ids: BTreeSet<String> = client
            .fetch_assignments(&AssignmentQuery::new(start, end))
            .await
            .unwrap()
            .assignments
            .into_iter()
            .map(|a| a.id.to_string())
            .collect();
        assert_eq!(ids.contains(&at(instant)), inside, "{name}: {instant}");
    }
}

#[tokio::test]
async fn learner_course_category_status_and_overdue_filters_match_the_recomputation() {
    let server = server().await;
    let client = client(&server.base_url);
    let (start, end) = (fire() - Duration::days(365), fire());
    let courses = page_data(&sample_dir().join("courses.json"));
    let category_of: BTreeMap<String, String> = courses
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["category"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let safety = courses
        .iter()
        .find(|c| c["category"]["name"] == "Safety")
        .unwrap()["category"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let course = courses[1]["id"].as_str().unwrap().to_string();
    let learners = ["driver-46282156", "driver-1093377", "driver-999001"];

    let mut cases: Vec<(&str, AssignmentQuery, Keep)> = Vec::new();
    let base = AssignmentQuery::new(start, end);
    cases.push((
        "learners",
        AssignmentQuery {
            learner_ids: learners
                .iter()
                .map(|l| LearnerId::parse(l).unwrap())
                .collect(),
            ..base.clone()
        },
        Box::new(move |r| learners.contains(&learner(r).as_str())),
    ));
    cases.push((
        "status",
        AssignmentQuery {
            status: vec![Status::NotStarted, Status::Completed],
            ..base.clone()
        },
        Box::new(|r| matches!(r["status"].as_str(), Some("notStarted" | "completed"))),
    ));
    cases.push((
        "overdue",
        AssignmentQuery {
            is_overdue: Some(true),
            ..base.clone()
        },
        Box::new(|r| r["isOverdue"] == true),
    ));
    cases.push((
        "not overdue",
        AssignmentQuery {
            is_overdue: Some(false),
            ..base.clone()
        },
        Box::new(|r| r["isOverdue"] != true),
    ));
    cases.push((
        "weekly-overdue filters",
        AssignmentQuery {
            status: vec![Status::NotStarted, Status::InProgress],
            is_overdue: Some(true),
            ..base.clone()
        },
        Box::new(|r| {
            r["isOverdue"] == true
                && matches!(r["status"].as_str(), Some("notStarted" | "inProgress"))
        }),
    ));
    let c = course.clone();
    cases.push((
        "course",
        AssignmentQuery {
            course_ids: vec![course.clone()],
            ..base.clone()
        },
        Box::new(move |r| r["course"]["id"] == c.as_str()),
    ));
    let (k, cat) = (category_of.clone(), safety.clone());
    cases.push((
        "category",
        AssignmentQuery {
            category_ids: vec![safety.clone()],
            ..base.clone()
        },
        Box::new(move |r| k.get(r["course"]["id"].as_str().unwrap()) == Some(&cat)),
    ));
    // 40 drivers, the unknown learner and 60 that do not exist: the client
    // splits the 101 ids into two requests and merges them.
    let mut many: Vec<String> = page_data(&sample_dir().join("drivers-active.json"))
        .into_iter()
        .chain(page_data(&sample_dir().join("drivers-deactivated.json")))
        .map(|d| format!("driver-{}", d["id"].as_str().unwrap()))
        .collect();
    many.push("driver-999001".into());
    many.extend((0..60).map(|i| format!("driver-{}", 100 + i)));
    assert_eq!(many.len(), 101);
    let wanted: BTreeSet<String> = many.iter().cloned().collect();
    cases.push((
        "101 learners",
        AssignmentQuery {
            learner_ids: many.iter().map(|l| LearnerId::parse(l).unwrap()).collect(),
            ..base.clone()
        },
        Box::new(move |r| wanted.contains(&learner(r))),
    ));

    let everything = expected(start, end, |_| true).len();
    for (name, query, keep) in cases {
        let fetched = client.fetch_assignments(&query).await.unwrap();
        let want = expected(start, end, keep);
        assert_eq!(keyed_fetch(&fetched), keyed_expected(&want), "{name}");
        assert!(!want.is_empty(), "{name}: the filter matches nothing");
        if name != "101 learners" {
            assert!(want.len() < everything, "{name}: the filter matches all");
        } else {
            assert_eq!(fetched.stats.queries, 2);
        }
    }
}

#[tokio::test]
async fn courses_and_learners_are_named_including_deactivated_drivers() {
    let server = server().await;
    let client = client(&server.base_url);
    let records = stream_records();
    let course_ids: Vec<String> = records
        .iter()
        .map(|r| r["course"]["id"].as_str().unwrap().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let before = server.requests();
    let names = client.names(&course_ids).await.unwrap();
    assert!(names.warnings.is_empty(), "{:?}", names.warnings);

    let files = page_data(&sample_dir().join("courses.json"));
    assert_eq!(names.courses.len(), files.len(), "every sample course");
    // The stream names one course that /training-courses does not know.
    let unknown: Vec<&String> = course_ids
        .iter()
        .filter(|id| !names.courses.contains_key(*id))
        .collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let titles: BTreeSet<&str> = names.courses.values().map(|c| c.title.as_str()).collect();
    assert!(
        titles.contains(r#"Hazmat & "Spill" <Response>"#),
        "{titles:?}"
    );
    let categories: BTreeSet<&str> = names
        .courses
        .values()
        .map(|c| c.category.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(categories.len(), 3, "{categories:?}");

    let name = |id: &str| names.learners.get(&LearnerId::parse(id).unwrap()).cloned();
    assert_eq!(name("driver-46282156").as_deref(), Some("Zoë Ångström"));
    assert_eq!(name("driver-7310442").as_deref(), Some("Łukasz Żółć"));
    assert_eq!(name("driver-1093377").as_deref(), Some("O'Brien & <Sons>"));
    assert_eq!(
        name("driver-999001"),
        None,
        "not a driver: falls back to its id"
    );
    let deactivated = page_data(&sample_dir().join("drivers-deactivated.json"));
    assert!(deactivated.len() >= 3);
    for d in &deactivated {
        let id = format!("driver-{}", d["id"].as_str().unwrap());
        assert_eq!(name(&id).as_deref(), d["name"].as_str(), "{id}");
    }
    let total = page_data(&sample_dir().join("drivers-active.json")).len() + deactivated.len();
    assert_eq!(names.learners.len(), total);
    // Courses in pages of 5 (two pages for 8 courses), drivers one page each.
    let course_pages = files.len().div_ceil(COURSES_PAGE_SIZE) as u64;
    assert_eq!(server.requests() - before, course_pages + 2);
}

// --- The HTTP surface, without the client -----------------------------------

async fn get(server: &SampleServer, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let url = server.base_url.join(path).unwrap();
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth("t")
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_api_error(body: &Value, mentions: &str) {
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(mentions), "{message}");
    assert!(body["requestId"].as_str().is_some_and(|s| !s.is_empty()));
}

const START: &str = "2026-10-01T05:00:00Z";
const END: &str = "2026-11-01T05:00:00Z";

#[tokio::test]
async fn a_list_of_more_than_100_ids_is_rejected_with_400() {
    let server = server().await;
    let ids = |n: usize| {
        (0..n)
            .map(|i| format!("driver-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for param in ["learnerIds", "courseIds", "categoryIds"] {
        let (status, body) = get(
            &server,
            "training-assignments/stream",
            &[("startTime", START), ("endTime", END), (param, &ids(101))],
        )
        .await;
        assert_eq!(status, 400, "{param}");
        assert_api_error(&body, param);
        let (status, _) = get(
            &server,
            "training-assignments/stream",
            &[("startTime", START), ("endTime", END), (param, &ids(100))],
        )
        .await;
        assert_eq!(status, 200, "{param}: 100 is allowed");
    }
    let (status, body) = get(&server, "training-courses", &[("courseIds", &ids(101))]).await;
    assert_eq!(status, 400);
    assert_api_error(&body, "courseIds");
}

#[tokio::test]
async fn a_missing_or_malformed_time_is_rejected_with_400() {
    let server = server().await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("startTime", START)], "endTime"),
        (&[("endTime", END)], "startTime"),
        (
            &[("startTime", START), ("endTime", "2026-11-01")],
            "endTime",
        ),
        (&[("startTime", "yesterday"), ("endTime", END)], "startTime"),
        (
            &[("startTime", START), ("endTime", END), ("isOverdue", "yes")],
            "isOverdue",
        ),
    ];
    for (query, mentions) in cases {
        let (status, body) = get(&server, "training-assignments/stream", query).await;
        assert_eq!(status, 400, "{query:?}");
        assert_api_error(&body, mentions);
    }
    // Through the client: a 400 fails at once with the API's message.
    let mut q = AssignmentQuery::new(time(START), time(END));
    q.status = vec![Status::Other("expired".into())];
    let err = client(&server.base_url)
        .fetch_assignments(&q)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Rejected { status: 400, message, .. } if message.contains("expired")),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_bearer_token_gets_401_and_an_unknown_path_404() {
    let server = server().await;
    let url = server.base_url.join("fleet/drivers").unwrap();
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_api_error(&response.json().await.unwrap(), "Authorization");
    let (status, body) = get(&server, "fleet/vehicles", &[]).await;
    assert_eq!(status, 404);
    assert_api_error(&body, "endpoint");
    let (status, body) = get(
        &server,
        "training-assignments/stream",
        &[("startTime", START), ("endTime", END), ("after", "MjkY")],
    )
    .await;
    assert_eq!(status, 400);
    assert_api_error(&body, "cursor");
}

#[tokio::test]
async fn stream_pages_are_sorted_and_the_last_ends_with_an_empty_cursor() {
    let server = server().await;
    let mut after = String::new();
    let mut updated = Vec::new();
    let mut pages = 0;
    loop {
        let mut query = vec![("startTime", START), ("endTime", END)];
        if !after.is_empty() {
            query.push(("after", &after));
        }
        let (status, body) = get(&server, "training-assignments/stream", &query).await;
        assert_eq!(status, 200);
        pages += 1;
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= STREAM_PAGE_SIZE);
        updated.extend(data.iter().map(|r| field_time(r, "updatedAtTime")));
        // The learner id is bare, as the API sends it.
        assert!(
            data.iter()
                .all(|r| !r["learner"]["id"].as_str().unwrap().starts_with("driver-"))
        );
        let more = body["pagination"]["hasNextPage"].as_bool().unwrap();
        let cursor = body["pagination"]["endCursor"]
            .as_str()
            .unwrap()
            .to_string();
        if !more {
            assert_eq!(cursor, "");
            break;
        }
        assert!(!cursor.is_empty());
        after = cursor;
    }
    assert!(pages >= 4, "{pages} pages");
    assert!(
        updated.windows(2).all(|w| w[0] <= w[1]),
        "sorted by updatedAtTime"
    );
}

#[tokio::test]
async fn drivers_are_paginated_by_limit_and_after() {
    let server = server().await;
    for status in ["active", "deactivated"] {
        let want: Vec<Value> = page_data(&sample_dir().join(format!("drivers-{status}.json")));
        let mut got = Vec::new();
        let mut after = String::new();
        loop {
            let mut query = vec![("driverActivationStatus", status), ("limit", "3")];
            if !after.is_empty() {
                query.push(("after", &after));
            }
            let (code, body) = get(&server, "fleet/drivers", &query).await;
            assert_eq!(code, 200);
            got.extend(body["data"].as_array().unwrap().iter().cloned());
            if !body["pagination"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = body["pagination"]["endCursor"]
                .as_str()
                .unwrap()
                .to_string();
        }
        assert_eq!(got, want, "{status}");
    }
    let (code, body) = get(&server, "fleet/drivers", &[]).await;
    assert_eq!(code, 200, "active by default, limit 512");
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        page_data(&sample_dir().join("drivers-active.json")).len()
    );
    for (key, value) in [
        ("limit", "0"),
        ("limit", "513"),
        ("driverActivationStatus", "all"),
    ] {
        let (code, body) = get(&server, "fleet/drivers", &[(key, value)]).await;
        assert_eq!(code, 400, "{key}={value}");
        assert_api_error(&body, key);
    }
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = server().await;
    let url = server.base_url.join("training-courses").unwrap();
    let http = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    assert_eq!(
        http()
            .get(url.clone())
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(server);
    let mut refused = false;
    for _ in 0..100 {
        if http()
            .get(url.clone())
            .bearer_auth("t")
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "still serving after drop");
}

#[tokio::test]
async fn a_broken_sample_folder_fails_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = SampleServer::start(dir.path()).await.unwrap_err();
    assert!(format!("{err:#}").contains("courses.json"), "{err:#}");

    std::fs::copy(
        sample_dir().join("courses.json"),
        dir.path().join("courses.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("stream-page-01.json"),
        r#"{"data": [{"id": "a", "course": {"id": "c"}, "learner": {"id": "1", "type": "driver"},
            "status": "notStarted", "createdAtTime": "2026-01-01T00:00:00Z", "updatedAtTime": "soon"}],
            "pagination": {"endCursor": "", "hasNextPage": false}}"#,
    )
    .unwrap();
    let err = SampleServer::start(dir.path()).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("stream-page-01.json") && text.contains("updatedAtTime"),
        "{text}"
    );

    std::fs::remove_file(dir.path().join("stream-page-01.json")).unwrap();
    let server = SampleServer::start(dir.path()).await.unwrap();
    let (status, body) = get(
        &server,
        "training-assignments/stream",
        &[("startTime", START), ("endTime", END)],
    )
    .await;
    assert_eq!(status, 200, "no stream pages: an empty stream");
    assert_eq!(body["data"], serde_json::json!([]));
    assert_eq!(body["pagination"]["hasNextPage"], false);
}
