//! Benchmark: three `trainwatch export` processes at once, on one token,
//! against a local server that enforces 5 requests per second on the
//! stream (a sliding second of arrivals; 429 with the time left as
//! `Retry-After`). Run twice: the three processes on one state store (the
//! shared limit) and on three stores (each pacing alone, as before #14).
//! Prints 429s and the wall time beside the bound `(all pages - 1) / 5 s`.
//!
//! `cargo bench --bench shared_limit`
//! (`TRAINWATCH_BENCH_PAGES=50`: pages per process, of 100 assignments.)

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PAGE_SIZE: usize = 100;
const RATE: usize = 5;
const PROCESSES: usize = 3;

/// Pages by cursor; 429 when `RATE` requests arrived in the last second.
struct RateLimitedStream {
    pages: Vec<Vec<u8>>,
    arrivals: Mutex<VecDeque<Instant>>,
    served: AtomicU64,
    limited: AtomicU64,
}

/// The responder, shared with the code that reads its counters.
struct Shared(Arc<RateLimitedStream>);

impl Respond for Shared {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.0.answer(req)
    }
}

impl RateLimitedStream {
    fn answer(&self, req: &Request) -> ResponseTemplate {
        let now = Instant::now();
        {
            let mut arrivals = self.arrivals.lock().unwrap();
            while arrivals
                .front()
                .is_some_and(|t| now - *t >= Duration::from_secs(1))
            {
                arrivals.pop_front();
            }
            if arrivals.len() >= RATE {
                self.limited.fetch_add(1, Ordering::Relaxed);
                let wait = Duration::from_secs(1) - (now - arrivals[0]);
                return ResponseTemplate::new(429)
                    .insert_header("Retry-After", format!("{:.5}", wait.as_secs_f64()).as_str());
            }
            arrivals.push_back(now);
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        let index = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "after")
            .map_or(0, |(_, v)| {
                v.trim_start_matches('p').parse::<usize>().unwrap()
            });
        ResponseTemplate::new(200).set_body_raw(self.pages[index].clone(), "application/json")
    }
}

fn build_pages(pages: usize) -> Vec<Vec<u8>> {
    (0..pages)
        .map(|p| {
            let data: Vec<_> = (p * PAGE_SIZE..(p + 1) * PAGE_SIZE)
                .map(|i| {
                    json!({
                        "id": format!("00000000-0000-4000-8000-{i:012}"),
                        "course": {"id": format!("course-{}", i % 40), "revisionId": "r1"},
                        "learner": {"id": format!("{}", 100_000 + i % 900), "type": "driver"},
                        "status": "notStarted",
                        "createdAtTime": "2026-01-05T10:00:00Z",
                        "createdById": "user-1",
                        "updatedAtTime": "2026-02-05T10:00:00.123Z",
                        "updatedById": "user-1",
                        "durationMinutes": i % 90,
                    })
                })
                .collect();
            let more = p + 1 < pages;
            let cursor = if more {
                format!("p{}", p + 1)
            } else {
                String::new()
            };
            serde_json::to_vec(
                &json!({"data": data, "pagination": {"endCursor": cursor, "hasNextPage": more}}),
            )
            .unwrap()
        })
        .collect()
}

fn write_config(dir: &Path, base_url: &str, state_dir: &Path) -> std::path::PathBuf {
    let cfg = format!(
        r#"
timezone = "UTC"
state_dir = "{}"

[samsara]
base_url = "{base_url}"
token = "${{TW_BENCH_TOKEN}}"

[mirror]
enabled = false

[webhooks.safety]
kind = "slack"
url = "https://hooks.slack.invalid/T000/B000/XXXX"

[[jobs]]
name = "audit"
schedule = "0 8 * * Mon"
window = {{ last = "365d" }}
deliver = [{{ webhook = "safety", template = "digest" }}]
"#,
        state_dir.display()
    );
    let p = dir.join("config.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// Runs the three exports at once; returns (wall time, 429s, requests served).
async fn three_exports(pages: usize, shared_store: bool) -> (Duration, u64, u64) {
    let responder = Arc::new(RateLimitedStream {
        pages: build_pages(pages),
        arrivals: Mutex::default(),
        served: AtomicU64::new(0),
        limited: AtomicU64::new(0),
    });
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(Shared(responder.clone()))
        .mount(&server)
        .await;
    let empty = json!({"data": [], "pagination": {"endCursor": "", "hasNextPage": false}});
    for p in ["/training-courses", "/fleet/drivers"] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(empty.clone()))
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let own = dir.path().join(format!("p{i}"));
            std::fs::create_dir_all(&own).unwrap();
            let state = if shared_store {
                dir.path().join("state")
            } else {
                own.join("state")
            };
            // As after any `run` or `sync`: export does not create state_dir.
            std::fs::create_dir_all(&state).unwrap();
            let config = write_config(&own, &server.uri(), &state);
            Command::new(env!("CARGO_BIN_EXE_trainwatch"))
                .arg("--config")
                .arg(&config)
                .args([
                    "export",
                    "audit",
                    "--at",
                    "2026-03-01T00:00:00Z",
                    "--format",
                    "csv",
                    "--out",
                ])
                .arg(own.join("out.csv"))
                .env("TW_BENCH_TOKEN", "bench-token")
                .env_remove("TRAINWATCH_CONFIG")
                // Their warnings (429s retried, names shown by id) would bury the figures.
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("trainwatch starts")
        })
        .collect();
    let mut failed = 0;
    for mut child in children {
        if !child.wait().unwrap().success() {
            failed += 1;
        }
    }
    let wall = started.elapsed();
    assert_eq!(failed, 0, "every export succeeds");
    (
        wall,
        responder.limited.load(Ordering::Relaxed),
        responder.served.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() {
    let pages: usize = std::env::var("TRAINWATCH_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let all = PROCESSES * pages;
    let bound = Duration::from_secs_f64((all - 1) as f64 / RATE as f64);
    println!(
        "shared_limit: {PROCESSES} exports at once, {pages} pages of {PAGE_SIZE} each, server at {RATE} req/s"
    );
    println!("  bound for all {all} pages   {:.2} s", bound.as_secs_f64());
    for (label, shared) in [
        ("one store (shared limit)", true),
        ("three stores (alone)", false),
    ] {
        let (wall, limited, served) = three_exports(pages, shared).await;
        println!(
            "  {label:<26} wall {:.2} s (x{:.3} the bound), 429s {limited}, pages served {served}",
            wall.as_secs_f64(),
            wall.as_secs_f64() / bound.as_secs_f64()
        );
    }
}
