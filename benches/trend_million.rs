//! The cost of `trend` (and `changes`, `due_soon`) on a mirror of 1,000,000
//! assignments: `job::history` for the weekly overdue job with `trend = 8`
//! (7 earlier fires read from the mirror, plus the state now), against one
//! read of the state as of the fire (what the report itself costs). Prints
//! wall time and the peak resident memory it adds.
//!
//! `cargo bench --bench trend_million`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=100000` for a shorter run.)
//!
//! Every assignment has one version, half of them a second one a few weeks
//! later (started, completed or deleted), spread over two years, so each
//! instant's state picks among versions. Building the mirror is not timed.

#[path = "support/million.rs"]
mod million;

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use trainwatch::config;
use trainwatch::job;
use trainwatch::mirror::{MirrorStore, SqliteMirror};

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
    t.to_rfc3339()
}

fn main() {
    let total: usize = std::env::var("TRAINWATCH_BENCH_ASSIGNMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let start = Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap();
    let fire = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    let end = fire + Duration::days(1);
    let span = (fire - start).num_seconds();

    // The mirror, built page by page as a sync stages it.
    let built = Instant::now();
    let versions = million::fill(&dir.path().join("state"), total, start, span, start, end);
    println!(
        "mirror: {total} assignments, {versions} versions, built in {:.1} s (not timed below)",
        built.elapsed().as_secs_f64()
    );

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
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ current = true }}
filters = {{ overdue = true, status = ["notStarted", "inProgress"] }}
trend = 8
deliver = [{{ webhook = "w" }}]
"#,
        state = dir.path().join("state").display(),
        since = rfc(start),
    );
    let config = config::load_str(&source, &dir.path().join("t.toml"), &|_| None).unwrap();
    let job = config.job("weekly").unwrap();
    let names = Default::default();

    // One read of the state as of the fire: the report's own cost.
    let store = SqliteMirror::open(&dir.path().join("state")).unwrap();
    reset_peak();
    let rss_before = rss_kib("VmRSS:");
    let one = Instant::now();
    let state = store.state_at(fire).unwrap();
    let one_secs = one.elapsed().as_secs_f64();
    let one_peak = rss_kib("VmHWM:").saturating_sub(rss_before);
    println!(
        "one state read (the report itself): {} assignments in {one_secs:.2} s, +{:.0} MiB peak",
        state.len(),
        one_peak as f64 / 1024.0
    );
    drop(state);

    reset_peak();
    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    let teams = trainwatch::teams::resolve(
        &config,
        trainwatch::teams::Wanted::For(&job.filters),
        &[],
        &[],
    )
    .unwrap();
    let history = job::history(&config, job, fire, &names, &teams).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let peak = rss_kib("VmHWM:").saturating_sub(rss_before);
    let points = history.trend.values().next().map_or(0, Vec::len);
    println!(
        "history (trend = 8: {points} earlier points, changes' previous state of {} assignments, {} due soon): {secs:.2} s ({:.1}× one read), +{:.0} MiB peak",
        history.previous.as_ref().map_or(0, Vec::len),
        history.due_soon.len(),
        secs / one_secs,
        peak as f64 / 1024.0
    );
}
