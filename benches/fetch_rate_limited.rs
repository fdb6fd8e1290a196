//! Benchmark: fetch 50,000 assignments in pages of 100 from a local server
//! that enforces 5 requests per second, and compare the wall time with the
//! physical bound (pages − 1) / 5 s. Counts the 429s the client provoked.
//!
//! `cargo bench --bench fetch_rate_limited`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=5000` for a shorter run.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;
use trainwatch::samsara::{AssignmentQuery, Client, ClientSettings, RateLimits};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PAGE_SIZE: usize = 100;
const RATE: usize = 5;
const STATUSES: [&str; 3] = ["notStarted", "inProgress", "completed"];

/// Serves pre-built pages by cursor; answers 429 when a request arrives while
/// `RATE` others arrived in the last second (a sliding window on arrival).
struct RateLimitedStream {
    pages: Vec<Vec<u8>>,
    arrivals: Mutex<VecDeque<Instant>>,
    served: AtomicU64,
    limited: AtomicU64,
}

impl Respond for RateLimitedStream {
    fn respond(&self, req: &Request) -> ResponseTemplate {
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

fn build_pages(total: usize) -> Vec<Vec<u8>> {
    let pages = total.div_ceil(PAGE_SIZE);
    (0..pages)
        .map(|p| {
            let data: Vec<_> = (p * PAGE_SIZE..((p + 1) * PAGE_SIZE).min(total))
                .map(|i| {
                    json!({
                        "id": format!("00000000-0000-4000-8000-{i:012}"),
                        "course": {"id": format!("course-{}", i % 40), "revisionId": "r1"},
                        "learner": {"id": format!("{}", 100_000 + i % 900), "type": "driver"},
                        "status": STATUSES[i % 3],
                        "createdAtTime": "2026-01-05T10:00:00Z",
                        "createdById": "user-1",
                        "updatedAtTime": "2026-02-05T10:00:00.123Z",
                        "updatedById": "user-1",
                        "durationMinutes": i % 90,
                        "dueAtTime": "2026-03-01T00:00:00Z",
                        "isOverdue": i % 7 == 0,
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

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("TRAINWATCH_BENCH_ASSIGNMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let responder = Arc::new(RateLimitedStream {
        pages: build_pages(total),
        arrivals: Mutex::default(),
        served: AtomicU64::new(0),
        limited: AtomicU64::new(0),
    });
    let pages = responder.pages.len();
    struct Shared(Arc<RateLimitedStream>);
    impl Respond for Shared {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(Shared(responder.clone()))
        .mount(&server)
        .await;

    let settings = ClientSettings::new(server.uri().parse().unwrap(), SecretString::from("bench"));
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();
    let query = AssignmentQuery::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-04-01T00:00:00Z".parse().unwrap(),
    );

    let started = Instant::now();
    let fetched = client.fetch_assignments(&query).await.expect("fetch");
    let wall = started.elapsed();

    assert_eq!(fetched.assignments.len(), total, "every assignment, once");
    let bound = Duration::from_secs_f64((pages - 1) as f64 / RATE as f64);
    println!("fetch_rate_limited: {total} assignments in {pages} pages of {PAGE_SIZE}");
    println!("  wall time          {:.2} s", wall.as_secs_f64());
    println!(
        "  physical bound     {:.2} s  ((pages - 1) / {RATE} per second)",
        bound.as_secs_f64()
    );
    println!(
        "  ratio              {:.4}",
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    println!(
        "  requests served    {}",
        responder.served.load(Ordering::Relaxed)
    );
    println!(
        "  429 responses      {}",
        responder.limited.load(Ordering::Relaxed)
    );
}
