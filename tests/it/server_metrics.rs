//! `GET /metrics` of the real server on loopback: the exposition is parsed,
//! not searched, and every series and value is checked.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use trainwatch::metrics::{Metrics, RunOutcome};
use trainwatch::samsara::{AssignmentQuery, Endpoint, Observer};
use trainwatch::server::{Health, serve};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One family: its HELP and TYPE, and its samples in the order served.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    name: String,
    help: String,
    kind: String,
    samples: Vec<Sample>,
}

/// Parses the text format strictly: HELP then TYPE open a family, and every
/// sample belongs to the family opened last. Panics on anything else.
fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
            let ty = lines.next().expect("TYPE follows HELP");
            let ty = ty
                .strip_prefix(&format!("# TYPE {name} "))
                .unwrap_or_else(|| panic!("TYPE of {name} follows its HELP, got {ty:?}"));
            families.push(Family {
                name: name.to_string(),
                help: help.to_string(),
                kind: ty.to_string(),
                samples: Vec::new(),
            });
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        assert!(!line.is_empty(), "empty line in the exposition");
        let sample = parse_sample(line);
        let family = families.last_mut().expect("a sample before any HELP");
        let allowed: Vec<String> = if family.kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", family.name))
                .collect()
        } else {
            vec![family.name.clone()]
        };
        assert!(
            allowed.contains(&sample.name),
            "{} is not of family {}",
            sample.name,
            family.name
        );
        family.samples.push(sample);
    }
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    families
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a sample has a value");
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        rest = body;
        // key="value" pairs separated by commas, up to the closing brace.
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            let mut chars = after.chars();
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value") {
                    '"' => break,
                    '\\' => match chars.next().expect("escape") {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other} in {line:?}"),
                    },
                    c => value.push(c),
                }
            }
            rest = chars.as_str();
            rest = rest.strip_prefix(',').unwrap_or(rest);
            assert!(
                labels.insert(key.to_string(), value).is_none(),
                "label {key} twice in {line:?}"
            );
        }
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The samples of `family` named `name`, as labels → value.
fn series(
    families: &[Family],
    family: &str,
    name: &str,
) -> BTreeMap<BTreeMap<String, String>, f64> {
    families
        .iter()
        .find(|f| f.name == family)
        .unwrap_or_else(|| panic!("no family {family}"))
        .samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(metrics: Arc<Metrics>) -> Served {
    let (stop, stopped) = oneshot::channel::<()>();
    let health = Arc::new(Health::new(["weekly"], Duration::from_secs(120)));
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), metrics, health, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    Served {
        addr,
        stop: Some(stop),
    }
}

async fn get_metrics(served: &Served) -> (reqwest::header::HeaderMap, String) {
    let response = reqwest::get(format!("http://{}/metrics", served.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// Three runs of `weekly` (0.5 s failed, 12.5 s and 700 s succeeded), none of
/// `daily`, four deliveries and four API responses.
fn recorded() -> Arc<Metrics> {
    let m = Arc::new(Metrics::for_jobs(["weekly", "daily"]));
    m.run_finished(
        "weekly",
        RunOutcome::Succeeded,
        Duration::from_millis(12_500),
        at("2026-03-02T14:00:12.500Z"),
    );
    m.run_finished(
        "weekly",
        RunOutcome::Failed,
        Duration::from_millis(500),
        at("2026-03-09T14:00:00.500Z"),
    );
    m.run_finished(
        "weekly",
        RunOutcome::Succeeded,
        Duration::from_secs(700),
        at("2026-03-16T14:11:40Z"),
    );
    m.delivery("email", "delivered");
    m.delivery("email", "delivered");
    m.delivery("slack", "failed");
    m.delivery("archive", "already_archived");
    m.on_response(Endpoint::TrainingAssignments, "200");
    m.on_response(Endpoint::TrainingAssignments, "200");
    m.on_response(Endpoint::Drivers, "429");
    m.on_response(Endpoint::TrainingCourses, "timeout");
    m
}

#[tokio::test]
async fn metrics_serves_exactly_the_recorded_series_and_values() {
    let served = start(recorded()).await;
    let (_, body) = get_metrics(&served).await;
    let f = parse(&body);

    assert_eq!(
        series(&f, "trainwatch_runs_total", "trainwatch_runs_total"),
        BTreeMap::from([
            (labels(&[("job", "daily"), ("outcome", "failed")]), 0.0),
            (labels(&[("job", "daily"), ("outcome", "succeeded")]), 0.0),
            (labels(&[("job", "weekly"), ("outcome", "failed")]), 1.0),
            (labels(&[("job", "weekly"), ("outcome", "succeeded")]), 2.0),
        ])
    );
    assert_eq!(
        series(
            &f,
            "trainwatch_last_success_timestamp_seconds",
            "trainwatch_last_success_timestamp_seconds"
        ),
        BTreeMap::from([(
            labels(&[("job", "weekly")]),
            at("2026-03-16T14:11:40Z").timestamp() as f64
        )])
    );
    assert_eq!(
        series(
            &f,
            "trainwatch_deliveries_total",
            "trainwatch_deliveries_total"
        ),
        BTreeMap::from([
            (
                labels(&[("kind", "archive"), ("outcome", "already_archived")]),
                1.0
            ),
            (labels(&[("kind", "email"), ("outcome", "delivered")]), 2.0),
            (labels(&[("kind", "slack"), ("outcome", "failed")]), 1.0),
        ])
    );
    assert_eq!(
        series(
            &f,
            "trainwatch_api_requests_total",
            "trainwatch_api_requests_total"
        ),
        BTreeMap::from([
            (
                labels(&[("endpoint", "/fleet/drivers"), ("status", "429")]),
                1.0
            ),
            (
                labels(&[
                    ("endpoint", "/training-assignments/stream"),
                    ("status", "200")
                ]),
                2.0
            ),
            (
                labels(&[("endpoint", "/training-courses"), ("status", "timeout")]),
                1.0
            ),
        ])
    );
}

#[tokio::test]
async fn every_family_has_help_and_type_in_a_stable_order_with_sorted_series() {
    let served = start(recorded()).await;
    let (_, first) = get_metrics(&served).await;
    let (_, second) = get_metrics(&served).await;
    assert_eq!(first, second, "the same metrics render the same text");
    let f = parse(&first);

    let kinds: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("trainwatch_runs_total", "counter"),
            ("trainwatch_run_duration_seconds", "histogram"),
            ("trainwatch_last_success_timestamp_seconds", "gauge"),
            ("trainwatch_deliveries_total", "counter"),
            ("trainwatch_api_requests_total", "counter"),
        ]
    );
    for family in &f {
        assert!(
            !family.help.trim().is_empty(),
            "{} has no help",
            family.name
        );
        if family.kind != "histogram" {
            let order: Vec<_> = family.samples.iter().map(|s| s.labels.clone()).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{} series are sorted", family.name);
        }
    }
}

#[tokio::test]
async fn run_duration_is_a_cumulative_histogram_ending_at_inf_with_sum_and_count() {
    let served = start(recorded()).await;
    let (_, body) = get_metrics(&served).await;
    let f = parse(&body);
    let family = "trainwatch_run_duration_seconds";

    let weekly: Vec<(String, f64)> = f
        .iter()
        .find(|x| x.name == family)
        .unwrap()
        .samples
        .iter()
        .filter(|s| {
            s.name == "trainwatch_run_duration_seconds_bucket" && s.labels["job"] == "weekly"
        })
        .map(|s| (s.labels["le"].clone(), s.value))
        .collect();
    // 0.5 s ≤ 1; 12.5 s ≤ 15; 700 s only in +Inf.
    let expected: Vec<(String, f64)> = [
        ("1", 1.0),
        ("5", 1.0),
        ("15", 2.0),
        ("30", 2.0),
        ("60", 2.0),
        ("120", 2.0),
        ("300", 2.0),
        ("600", 2.0),
        ("+Inf", 3.0),
    ]
    .iter()
    .map(|(le, n)| (le.to_string(), *n))
    .collect();
    assert_eq!(weekly, expected);

    let weekly_labels = labels(&[("job", "weekly")]);
    let daily_labels = labels(&[("job", "daily")]);
    let sums = series(&f, family, "trainwatch_run_duration_seconds_sum");
    let counts = series(&f, family, "trainwatch_run_duration_seconds_count");
    assert_eq!(sums[&weekly_labels], 713.0);
    assert_eq!(counts[&weekly_labels], 3.0);
    // A configured job that has not run has an all-zero histogram.
    assert_eq!(sums[&daily_labels], 0.0);
    assert_eq!(counts[&daily_labels], 0.0);
    let daily_buckets: Vec<f64> = f
        .iter()
        .find(|x| x.name == family)
        .unwrap()
        .samples
        .iter()
        .filter(|s| {
            s.name == "trainwatch_run_duration_seconds_bucket" && s.labels["job"] == "daily"
        })
        .map(|s| s.value)
        .collect();
    assert_eq!(daily_buckets, [0.0; 9]);
}

#[tokio::test]
async fn label_values_escape_backslash_quote_and_newline() {
    let awkward = "a\\b \"quoted\"\nnext";
    let m = Arc::new(Metrics::new());
    m.delivery(awkward, "delivered");
    let served = start(m).await;
    let (_, body) = get_metrics(&served).await;

    assert!(
        body.lines().any(|l| l
            == r#"trainwatch_deliveries_total{kind="a\\b \"quoted\"\nnext",outcome="delivered"} 1"#),
        "escaped line missing from:\n{body}"
    );
    assert_eq!(
        series(
            &parse(&body),
            "trainwatch_deliveries_total",
            "trainwatch_deliveries_total"
        ),
        BTreeMap::from([(labels(&[("kind", awkward), ("outcome", "delivered")]), 1.0)])
    );
}

#[tokio::test]
async fn metrics_content_type_is_the_prometheus_text_format_0_0_4() {
    let served = start(Arc::new(Metrics::new())).await;
    let (headers, body) = get_metrics(&served).await;
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    // With nothing recorded, every family is still announced.
    assert_eq!(parse(&body).len(), 5);
}

#[tokio::test]
async fn api_requests_are_counted_from_the_samsara_client_as_it_sees_them() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(common::page(vec![], "", false)))
        .mount(&api)
        .await;
    let metrics = Arc::new(Metrics::new());
    let client = common::client(&api.uri()).observed(metrics.clone());
    client
        .fetch_assignments(&AssignmentQuery::new(
            at("2026-01-01T00:00:00Z"),
            at("2026-02-01T00:00:00Z"),
        ))
        .await
        .unwrap();

    let served = start(metrics).await;
    let (_, body) = get_metrics(&served).await;
    assert_eq!(
        series(
            &parse(&body),
            "trainwatch_api_requests_total",
            "trainwatch_api_requests_total"
        ),
        BTreeMap::from([
            (
                labels(&[
                    ("endpoint", "/training-assignments/stream"),
                    ("status", "200")
                ]),
                1.0
            ),
            (
                labels(&[
                    ("endpoint", "/training-assignments/stream"),
                    ("status", "503")
                ]),
                1.0
            ),
        ])
    );
}
