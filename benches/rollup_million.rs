//! Benchmark: parse + deduplicate + roll up 1,000,000 assignments that arrive
//! as wire-format pages of 100. Prints assignments per second and the peak
//! resident memory (VmHWM) before and after.
//!
//! `cargo bench --bench rollup_million`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=100000` for a shorter run.)
//!
//! Each page's JSON is generated just before it is parsed and dropped after,
//! as the client does, so the peak shows what the rollup keeps, not the raw
//! JSON. Generation is not timed.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;
use trainwatch::report::{self, JobInfo, Meta};
use trainwatch::samsara::{Assignment, Category, Course, Dedup, Names, Page};
use trainwatch::window::Window;

const PAGE: usize = 100;
const COURSES: usize = 60;
const LEARNERS: usize = 5_000;
const STATUSES: [&str; 4] = ["notStarted", "inProgress", "completed", "expired"];

fn page_bytes(first: usize, total: usize) -> Vec<u8> {
    let last = (first + PAGE).min(total);
    let data: Vec<_> = (first..last)
        .map(|i| {
            // Every 50th record is an older version of an earlier id: duplicates.
            let id = if i % 50 == 49 { i - 25 } else { i };
            json!({
                "id": format!("5e1c0000-0000-4000-8000-{id:012}"),
                "course": {"id": format!("course-{:04}", i % COURSES), "revisionId": "r1"},
                "learner": {"id": format!("{}", 200_000 + i % LEARNERS), "type": "driver"},
                "status": STATUSES[i % 4],
                "createdAtTime": "2026-01-05T10:00:00Z",
                "createdById": "user-1",
                "updatedAtTime": format!("2026-02-{:02}T10:00:00.123Z", 1 + i % 27),
                "updatedById": "user-1",
                "durationMinutes": i % 90,
                "dueAtTime": format!("2026-02-{:02}T00:00:00Z", 1 + i % 28),
                "isOverdue": i % 3 == 0,
                "scorePercent": (i % 100) as f64 / 100.0,
                "someFieldWeIgnore": {"nested": [1, 2, 3]},
            })
        })
        .collect();
    let more = last < total;
    serde_json::to_vec(&json!({"data": data, "pagination": {"endCursor": format!("p{last}"), "hasNextPage": more}}))
        .unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let total: usize = std::env::var("TRAINWATCH_BENCH_ASSIGNMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut names = Names::default();
    for c in 0..COURSES {
        let id = format!("course-{c:04}");
        names.courses.insert(
            id.clone(),
            Course {
                id,
                title: format!("Course {c}"),
                status: None,
                category: Some(Category {
                    id: format!("k{}", c % 5),
                    name: format!("Category {}", c % 5),
                }),
                estimated_time_to_complete_minutes: None,
            },
        );
    }
    let before = peak_rss_kib();
    let mut parse_time = Duration::ZERO;
    let mut dedup = Dedup::default();
    let mut raw_bytes = 0usize;
    for first in (0..total).step_by(PAGE) {
        let bytes = page_bytes(first, total);
        raw_bytes += bytes.len();
        let t = Instant::now();
        let page: Page<Assignment> = serde_json::from_slice(&bytes).expect("valid page");
        for a in page.data {
            dedup.insert(a);
        }
        parse_time += t.elapsed();
    }
    let t = Instant::now();
    let assignments = dedup.into_sorted();
    let meta = Meta {
        job: JobInfo {
            name: "bench".into(),
            schedule: "0 8 * * Mon".into(),
            timezone: "America/Chicago".into(),
        },
        window: Window {
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        },
        kind: "fixed",
        timezone: chrono_tz::America::Chicago,
        generated_at: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        team: None,
        include_deleted: false,
    };
    let report = report::build(&assignments, &meta, &names);
    let rollup_time = t.elapsed();
    let after = peak_rss_kib();
    let total_time = parse_time + rollup_time;

    assert_eq!(report.totals.assignments as usize, assignments.len());
    println!(
        "rollup_million: {total} records in pages of {PAGE} ({:.0} MB of JSON, generated page by page)",
        raw_bytes as f64 / 1e6
    );
    println!("  distinct assignments   {}", assignments.len());
    println!("  parse + dedup          {:.2} s", parse_time.as_secs_f64());
    println!(
        "  rollup                 {:.2} s",
        rollup_time.as_secs_f64()
    );
    println!(
        "  throughput             {:.0} records/s",
        total as f64 / total_time.as_secs_f64()
    );
    println!(
        "  peak RSS               {} MiB (before: {} MiB)",
        after / 1024,
        before / 1024
    );
    println!(
        "  per distinct assignment {:.0} bytes of peak RSS",
        (after - before) as f64 * 1024.0 / assignments.len() as f64
    );
}
