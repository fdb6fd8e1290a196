//! Benchmark: a `current` job's reports from a mirror of 1,000,000
//! assignments, as a fire builds them: the state as of the fire read from
//! the SQLite mirror (the sync is skipped: the mirror already reaches the
//! fire), names and teams from the mirror, filters, then one report per team
//! (four teams of 1,250 learners, every learner in one). Without the
//! earlier states `changes` and `trend` compare with (`job::fetch_assignments`):
//! `benches/trend_million.rs` measures those. The reports have the lists
//! the job's deliveries read (`Renderer::keeps`), as a fire builds them.
//! Prints assignments
//! per second (the mirror's assignments over the wall time of the read and
//! the rollups) and the peak resident memory this adds.
//!
//! `cargo bench --bench report_mirror`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=100000` for a shorter run;
//! `TRAINWATCH_BENCH_REPEAT=5` for more repetitions, the median printed;
//! `TRAINWATCH_BENCH_KEEP=all` to build every list, rows included.)
//!
//! Every assignment has one version, half of them a second one a few weeks
//! later (started, completed or deleted); building the mirror is not timed.

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::json;
use trainwatch::config;
use trainwatch::job;
use trainwatch::mirror::{Lists, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::samsara::{Assignment, Category, Client, ClientSettings, Course, Driver};

const COURSES: usize = 40;
const LEARNERS: usize = 5_000;
const TEAMS: usize = 4;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak (VmHWM) to the current RSS, so the next peak is this step's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn build_mirror(state: &std::path::Path, total: usize, start: DateTime<Utc>, end: DateTime<Utc>) {
    let span = (end - start).num_seconds() - 86_400;
    let mirror = SqliteMirror::open(state).unwrap();
    let sync = mirror.begin_sync(start, end, end).unwrap();
    let mut versions = 0u64;
    for page_start in (0..total).step_by(10_000) {
        let mut page: Vec<Assignment> = Vec::with_capacity(20_000);
        for i in page_start..(page_start + 10_000).min(total) {
            let created = start + Duration::seconds((i as i64 * 7919) % span);
            let due = created + Duration::days(((i * 31) % 60) as i64);
            let base = json!({
                "id": format!("5e1c0000-0000-4000-8000-{i:012}"),
                "course": {"id": format!("course-{:04}", i % COURSES), "revisionId": "r1"},
                "learner": {"id": (100_000 + i % LEARNERS).to_string(), "type": "driver"},
                "status": "notStarted",
                "createdAtTime": rfc(created),
                "createdById": "user-1",
                "updatedAtTime": rfc(created),
                "updatedById": "user-1",
                "durationMinutes": i % 90,
                "dueAtTime": rfc(due),
            });
            page.push(serde_json::from_value(base.clone()).unwrap());
            if i % 2 == 0 {
                let later = created + Duration::days(((i * 13) % 50) as i64 + 1);
                let mut next = base;
                next["updatedAtTime"] = json!(rfc(later));
                match i % 6 {
                    0 => next["status"] = json!("inProgress"),
                    2 => {
                        next["status"] = json!("completed");
                        next["completedAtTime"] = json!(rfc(later));
                        next["scorePercent"] = json!((i % 100) as f64);
                    }
                    _ => next["deletedAtTime"] = json!(rfc(later)),
                }
                page.push(serde_json::from_value(next).unwrap());
            }
        }
        versions += page.len() as u64;
        mirror.stage(sync, &page).unwrap();
    }
    let lists = Lists {
        courses: Some(
            (0..COURSES)
                .map(|c| Course {
                    id: format!("course-{c:04}"),
                    title: format!("Course {c}"),
                    status: Some("published".into()),
                    category: Some(Category {
                        id: format!("k{}", c % 4),
                        name: format!("Category {}", c % 4),
                    }),
                    estimated_time_to_complete_minutes: Some(30),
                })
                .collect(),
        ),
        drivers: Some(
            (0..LEARNERS)
                .map(|d| Driver {
                    id: (100_000 + d).to_string(),
                    name: format!("Driver {d}"),
                    username: None,
                    driver_activation_status: Some("active".into()),
                    tags: Vec::new(),
                })
                .collect(),
        ),
        tags: Some(Vec::new()),
        warnings: Vec::new(),
    };
    let stats = SyncStats {
        versions,
        ..SyncStats::default()
    };
    mirror
        .commit(
            sync,
            Reach { since: start, end },
            &lists,
            &stats,
            false,
            end,
        )
        .unwrap();
}

fn main() {
    let total = env_count("TRAINWATCH_BENCH_ASSIGNMENTS", 1_000_000);
    let repeat = env_count("TRAINWATCH_BENCH_REPEAT", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap();
    let fire = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    let end = fire + Duration::days(1);
    let building = Instant::now();
    build_mirror(&state, total, start, end);
    println!(
        "mirror: {total} assignments built in {:.1} s (not timed below)",
        building.elapsed().as_secs_f64()
    );

    let team = |t: usize| {
        let members: Vec<String> = (0..LEARNERS)
            .filter(|d| d % TEAMS == t)
            .map(|d| format!("\"driver-{}\"", 100_000 + d))
            .collect();
        format!("[teams.t{t}]\nlearners = [{}]\n", members.join(", "))
    };
    let teams: String = (0..TEAMS).map(team).collect();
    let names: Vec<String> = (0..TEAMS).map(|t| format!("\"t{t}\"")).collect();
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "{since}"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
{teams}
[[jobs]]
name = "status"
schedule = "0 8 * * Mon"
window = {{ current = true }}
per_team = true
filters = {{ teams = [{names}] }}
deliver = [{{ webhook = "w" }}]
"#,
        state = state.display(),
        since = rfc(start),
        names = names.join(", "),
    );
    let config = config::load_str(&source, &dir.path().join("t.toml"), &|_| None).unwrap();
    let job = config.job("status").unwrap();
    // Never asked: the mirror already reaches the fire, so the sync is skipped.
    let client = Client::new(ClientSettings::new(
        "http://127.0.0.1:9".parse().unwrap(),
        SecretString::from("bench"),
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // `TRAINWATCH_BENCH_KEEP=all`: every list, as `job::reports` builds them.
    let keep = if std::env::var("TRAINWATCH_BENCH_KEEP").as_deref() == Ok("all") {
        trainwatch::report::Keep::ALL
    } else {
        trainwatch::render::Renderer::new(None)
            .unwrap()
            .keeps(&config, job)
    };
    println!("lists built: {keep:?}");
    let mut rates = Vec::new();
    for _ in 0..repeat {
        reset_peak();
        let rss_before = rss_kib("VmRSS:");
        let started = Instant::now();
        let data = rt
            .block_on(job::fetch_assignments(&config, job, &client, fire, None))
            .unwrap();
        let read_secs = started.elapsed().as_secs_f64();
        // The lists a fire builds for this job's deliveries (a json body:
        // the details, no rows), as `job::Context::render` asks for them.
        let reports = job::reports_keeping(&config, job, &data, fire, keep);
        let secs = started.elapsed().as_secs_f64();
        let peak = rss_kib("VmHWM:").saturating_sub(rss_before);
        let counted: u64 = reports.iter().map(|r| r.totals.assignments).sum();
        assert_eq!(reports.len(), TEAMS, "one report per team");
        assert_eq!(data.stats.received, total as u64, "every assignment read");
        let rate = total as f64 / secs;
        println!(
            "{} reports ({counted} assignments counted, deleted left out) from {total} assignments: read {read_secs:.2} s, reports {:.2} s, {secs:.2} s in all: {rate:.0} assignments/s, +{:.0} MiB peak",
            reports.len(),
            secs - read_secs,
            peak as f64 / 1024.0
        );
        rates.push(rate);
        drop((reports, data));
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median of {repeat}: {:.0} assignments/s",
        rates[rates.len() / 2]
    );
}
