//! Benchmark: the mirror against direct API queries, and the mirror's raw
//! sync throughput.
//!
//! 1. An organisation of N assignments (default 100,000; pages of 100)
//!    served on loopback, the client paced at 5 requests/s: the first sync's
//!    wall time against the physical bound (pages / 5 s). Then 2% of the
//!    assignments change over a week, and the weekly report over the last
//!    365 days (every assignment, no filter) is built from the mirror (its
//!    sync included) and by a direct API query: requests and wall time of
//!    each, and their ratio.
//! 2. A sync of M versions (default 1,000,000) from pre-built pages with no
//!    rate limit: versions per second, and the database's bytes per version;
//!    where the sync's time goes (waiting for pages, which its reader task
//!    reads and parses meanwhile; staging; committing), the CPU seconds of
//!    the thread that stages and commits and of the whole process (the
//!    reader and the loopback server included); the same versions staged and
//!    committed with no HTTP (the store alone), and the same pages read and
//!    parsed with nothing stored (the client alone).
//!
//! `cargo bench --bench mirror_sync`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=10000 TRAINWATCH_BENCH_VERSIONS=100000` for a shorter run.)

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::{Value, json};
use trainwatch::config;
use trainwatch::job;
use trainwatch::mirror::{self, MirrorStore, SqliteMirror};
use trainwatch::sample::{SampleContent, SampleServer};
use trainwatch::samsara::{Client, ClientSettings, RateLimits};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PAGE_SIZE: usize = 100;
const RATE: u32 = 5;
const STATUSES: [&str; 3] = ["notStarted", "inProgress", "completed"];

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn version(i: usize, updated: DateTime<Utc>, status: &str, rng: &mut StdRng) -> Value {
    let created = updated - Duration::days(rng.random_range(0..400));
    json!({
        "id": format!("{i:08x}-0000-4000-8000-000000000000"),
        "course": {"id": format!("course-{}", i % 40), "revisionId": "r1"},
        "learner": {"id": format!("{}", 100_000 + i % 2_000), "type": "driver"},
        "status": status,
        "createdAtTime": rfc(created),
        "createdById": "user-1",
        "updatedAtTime": rfc(updated),
        "updatedById": "user-1",
        "durationMinutes": rng.random_range(0..120),
        "dueAtTime": rfc(created + Duration::days(30)),
        "isOverdue": status != "completed" && created + Duration::days(30) < updated,
    })
}

fn client(uri: &str) -> Client {
    let mut s = ClientSettings::new(uri.parse().unwrap(), SecretString::from("bench"));
    s.requests_per_second = RATE;
    Client::with_limits(s, Arc::new(RateLimits::default())).unwrap()
}

async fn mirror_versus_api() {
    let n = env_count("TRAINWATCH_BENCH_ASSIGNMENTS", 100_000);
    let mut rng = StdRng::seed_from_u64(20261123);
    let t1 = Utc.with_ymd_and_hms(2026, 11, 16, 14, 0, 0).unwrap();
    let t2 = t1 + Duration::days(7);
    let year = 364 * 86_400;
    let mut stream = Vec::with_capacity(n + n / 50);
    for i in 0..n {
        let updated = t1 - Duration::seconds(rng.random_range(1..year));
        let status = STATUSES[rng.random_range(0..3)];
        stream.push(version(i, updated, status, &mut rng));
    }
    let changed = n / 50;
    for i in (0..n).step_by(50).take(changed) {
        let updated = t1 + Duration::seconds(rng.random_range(0..7 * 86_400));
        stream.push(version(i, updated, "completed", &mut rng));
    }
    let courses: Vec<Value> = (0..40)
        .map(|c| json!({"id": format!("course-{c}"), "title": format!("Course {c}"), "status": "published",
                         "category": {"id": format!("k{}", c % 4), "name": format!("Category {}", c % 4)}}))
        .collect();
    let drivers: Vec<Value> = (0..2_000)
        .map(|d| json!({"id": format!("{}", 100_000 + d), "name": format!("Driver {d}")}))
        .collect();
    let server = SampleServer::start_with(SampleContent {
        stream,
        courses,
        active: drivers,
        page_size: PAGE_SIZE,
        ..SampleContent::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let team: Vec<String> = (0..200)
        .map(|d| format!("\"driver-{}\"", 100_000 + d))
        .collect();
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "{uri}"
token = "t"
[teams.yard]
learners = [{team}]
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[[jobs]]
name = "weekly-mirror"
schedule = "0 8 * * Mon"
window = {{ last = "365d" }}
deliver = [{{ webhook = "w" }}]
[[jobs]]
name = "weekly-api"
schedule = "0 8 * * Mon"
source = "api"
window = {{ last = "365d" }}
deliver = [{{ webhook = "w" }}]
"#,
        state = dir.path().join("state").display(),
        uri = server.base_url,
        team = team.join(", "),
    );
    let config = config::load_str(&source, &dir.path().join("t.toml"), &|_| None).unwrap();
    let client = client(server.base_url.as_str());
    let store = SqliteMirror::open(&config.state_dir).unwrap();

    // 1. The first sync.
    server.set_now(Some(t1));
    let (before, started) = (server.requests(), Instant::now());
    let report = mirror::sync(&store, &client, &config.mirror, t1, None)
        .await
        .unwrap();
    let first = started.elapsed().as_secs_f64();
    let first_requests = server.requests() - before;
    let pages = report.stats.pages;
    let bound = pages as f64 / f64::from(RATE);
    println!(
        "first sync: {n} assignments, {} versions in {pages} pages, {first_requests} requests, {first:.1} s; bound {bound:.1} s (pages / 5 s); ratio {:.3}",
        report.stats.versions,
        first / bound
    );

    // 2. A week later, 2% changed: the weekly report from the mirror, then by the API.
    server.set_now(Some(t2));
    let (before, started) = (server.requests(), Instant::now());
    let job = config.job("weekly-mirror").unwrap();
    let from_mirror = job::fetch(&config, job, &client, t2, None).await.unwrap();
    let mirror_reports = job::reports(&config, job, &from_mirror, t2);
    let mirror_secs = started.elapsed().as_secs_f64();
    let mirror_requests = server.requests() - before;

    let (before, started) = (server.requests(), Instant::now());
    let job = config.job("weekly-api").unwrap();
    let from_api = job::fetch(&config, job, &client, t2, None).await.unwrap();
    let api_reports = job::reports(&config, job, &from_api, t2);
    let api_secs = started.elapsed().as_secs_f64();
    let api_requests = server.requests() - before;

    assert_eq!(
        mirror_reports[0].totals, api_reports[0].totals,
        "the same numbers either way"
    );
    println!(
        "weekly report after {changed} changes ({} assignments, {} overdue): mirror {mirror_requests} requests, {mirror_secs:.1} s; API {api_requests} requests, {api_secs:.1} s; {:.1}x fewer requests, {:.1}x faster",
        api_reports[0].totals.assignments,
        api_reports[0].totals.overdue,
        api_requests as f64 / mirror_requests.max(1) as f64,
        api_secs / mirror_secs.max(0.001)
    );
}

/// A mirror that times what the sync asks of it: staging and the commit
/// (the rest of a sync's wall time is reading and parsing pages).
struct Timed<M> {
    inner: M,
    staging: std::sync::Mutex<std::time::Duration>,
    commit: std::sync::Mutex<std::time::Duration>,
}

impl<M> Timed<M> {
    fn new(inner: M) -> Self {
        Self {
            inner,
            staging: Default::default(),
            commit: Default::default(),
        }
    }
    fn took(&self) -> (f64, f64) {
        (
            self.staging.lock().unwrap().as_secs_f64(),
            self.commit.lock().unwrap().as_secs_f64(),
        )
    }
}

impl<M: MirrorStore> MirrorStore for Timed<M> {
    fn location(&self) -> std::path::PathBuf {
        self.inner.location()
    }
    fn reach(&self) -> anyhow::Result<Option<mirror::Reach>> {
        self.inner.reach()
    }
    fn begin_sync(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        self.inner.begin_sync(start, end, now)
    }
    fn stage(&self, sync: i64, page: &[trainwatch::samsara::Assignment]) -> anyhow::Result<()> {
        let t = Instant::now();
        let r = self.inner.stage(sync, page);
        *self.staging.lock().unwrap() += t.elapsed();
        r
    }
    fn commit(
        &self,
        sync: i64,
        reach: mirror::Reach,
        lists: &mirror::Lists,
        stats: &mirror::SyncStats,
        replace: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let t = Instant::now();
        let r = self.inner.commit(sync, reach, lists, stats, replace, now);
        *self.commit.lock().unwrap() += t.elapsed();
        r
    }
    fn fail(
        &self,
        sync: i64,
        error: &str,
        stats: &mirror::SyncStats,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.inner.fail(sync, error, stats, now)
    }
    fn versions_in(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<Vec<trainwatch::samsara::Assignment>> {
        self.inner.versions_in(start, end)
    }
    fn state_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<trainwatch::samsara::Assignment>> {
        self.inner.state_at(at)
    }
    fn courses(&self) -> anyhow::Result<Vec<trainwatch::samsara::Course>> {
        self.inner.courses()
    }
    fn drivers_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<trainwatch::samsara::Driver>> {
        self.inner.drivers_at(at)
    }
    fn tags(&self) -> anyhow::Result<Vec<trainwatch::samsara::Tag>> {
        self.inner.tags()
    }
    fn tags_known_since(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.inner.tags_known_since()
    }
    fn warnings(&self) -> anyhow::Result<Vec<String>> {
        self.inner.warnings()
    }
    fn syncs(&self, limit: usize) -> anyhow::Result<Vec<mirror::SyncRecord>> {
        self.inner.syncs(limit)
    }
    fn status(&self) -> anyhow::Result<mirror::MirrorStatus> {
        self.inner.status()
    }
    fn try_lock_sync(&self) -> anyhow::Result<mirror::SyncLock> {
        self.inner.try_lock_sync()
    }
}

/// CPU seconds (user + system) used so far by the process (`/proc/self`:
/// the in-process server's threads included) or by the calling thread
/// (`/proc/thread-self`), in Linux clock ticks of 1/100 s; `None` elsewhere.
fn cpu_secs(of: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{of}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Serves pre-built stream pages by cursor (`after=pN`), empty lists elsewhere.
struct Pages(Vec<Vec<u8>>);

impl Respond for Pages {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let index = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "after")
            .map_or(0, |(_, v)| {
                v.trim_start_matches('p').parse::<usize>().unwrap()
            });
        ResponseTemplate::new(200).set_body_raw(self.0[index].clone(), "application/json")
    }
}

async fn raw_sync_throughput() {
    let m = env_count("TRAINWATCH_BENCH_VERSIONS", 1_000_000);
    let mut rng = StdRng::seed_from_u64(7);
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let step = (2 * 365 * 86_400 * 1000) / m as i64;
    let pages_count = m.div_ceil(PAGE_SIZE);
    let mut pages = Vec::with_capacity(pages_count);
    let mut bytes = 0;
    for p in 0..pages_count {
        let data: Vec<Value> = (p * PAGE_SIZE..((p + 1) * PAGE_SIZE).min(m))
            .map(|i| {
                let updated = start + Duration::milliseconds(step * i as i64);
                version(i % (m / 3).max(1), updated, STATUSES[i % 3], &mut rng)
            })
            .collect();
        let last = p + 1 == pages_count;
        let body = serde_json::to_vec(&json!({"data": data, "pagination": {
            "endCursor": if last { String::new() } else { format!("p{}", p + 1) },
            "hasNextPage": !last}}))
        .unwrap();
        bytes += body.len();
        pages.push(body);
    }
    // The floor: a typed parse of the same bytes on one core, nothing stored.
    let parsing = Instant::now();
    let mut parsed = 0usize;
    for body in &pages {
        let page: trainwatch::samsara::Page<trainwatch::samsara::Assignment> =
            serde_json::from_slice(body).unwrap();
        parsed += page.data.len();
    }
    let parse_secs = parsing.elapsed().as_secs_f64();
    // The store alone: the same versions staged in batches of 5,000 (parsed
    // outside the clock) and committed, on this thread: CPU and wall time.
    {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMirror::open(&dir.path().join("state")).unwrap();
        let reach = mirror::Reach {
            since: start,
            end: start + Duration::days(2 * 365 + 1),
        };
        let sync = store.begin_sync(reach.since, reach.end, reach.end).unwrap();
        let timed = |f: &mut dyn FnMut()| {
            let (t, c) = (Instant::now(), cpu_secs("thread-self"));
            f();
            let cpu = cpu_secs("thread-self").zip(c).map_or(0.0, |(b, a)| b - a);
            (t.elapsed().as_secs_f64(), cpu)
        };
        let (mut stage_wall, mut stage_cpu) = (0.0, 0.0);
        let mut staged = 0u64;
        for bodies in pages.chunks(50) {
            let batch: Vec<trainwatch::samsara::Assignment> = bodies
                .iter()
                .flat_map(|b| {
                    serde_json::from_slice::<trainwatch::samsara::Page<_>>(b)
                        .unwrap()
                        .data
                })
                .collect();
            staged += batch.len() as u64;
            let (w, c) = timed(&mut || store.stage(sync, &batch).unwrap());
            stage_wall += w;
            stage_cpu += c;
        }
        let stats = mirror::SyncStats {
            versions: staged,
            ..Default::default()
        };
        let (commit_wall, commit_cpu) = timed(&mut || {
            store
                .commit(
                    sync,
                    reach,
                    &mirror::Lists::default(),
                    &stats,
                    false,
                    reach.end,
                )
                .unwrap();
        });
        println!(
            "the store alone: {staged} versions staged in {stage_wall:.1} s ({stage_cpu:.1} s CPU), committed in {commit_wall:.1} s ({commit_cpu:.1} s CPU)"
        );
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(Pages(pages))
        .mount(&server)
        .await;
    let empty = json!({"data": [], "pagination": {"endCursor": "", "hasNextPage": false}});
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .mount(&server)
        .await;
    let mut s = ClientSettings::new(server.uri().parse().unwrap(), SecretString::from("bench"));
    // No rate limit to speak of: what is measured is parsing and storing.
    s.requests_per_second = 1_000_000;
    let client = Client::with_limits(s, Arc::new(RateLimits::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Timed::new(SqliteMirror::open(&dir.path().join("state")).unwrap());
    let settings = trainwatch::config::MirrorConfig {
        since: start,
        ..Default::default()
    };
    // The client alone: the same pages read and parsed, nothing stored.
    let (reading, reading_cpu) = (Instant::now(), cpu_secs("thread-self"));
    let mut read = 0u64;
    client
        .stream_pages(start, start + Duration::days(2 * 365 + 1), |page| {
            read += page.len() as u64;
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
    let read_secs = reading.elapsed().as_secs_f64();
    let read_cpu = match (reading_cpu, cpu_secs("thread-self")) {
        (Some(a), Some(b)) => format!("{:.1}", b - a),
        _ => "?".into(),
    };
    let (process_cpu, thread_cpu) = (cpu_secs("self"), cpu_secs("thread-self"));
    let started = Instant::now();
    let report = mirror::sync(
        &store,
        &client,
        &settings,
        start + Duration::days(2 * 365 + 1),
        None,
    )
    .await
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cpu = |before: Option<f64>, of: &str| match (before, cpu_secs(of)) {
        (Some(a), Some(b)) => format!("{:.1}", b - a),
        _ => "?".into(),
    };
    let (process_cpu, thread_cpu) = (cpu(process_cpu, "self"), cpu(thread_cpu, "thread-self"));
    let (staging, committing) = store.took();
    let status = store.status().unwrap();
    // At rest: the staging pages' free space returned and the WAL checkpointed.
    let db = dir.path().join("state/trainwatch.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
        .unwrap();
    let at_rest = std::fs::metadata(&db).unwrap().len();
    println!(
        "raw sync: {} versions ({} new, {:.0} MB of JSON) in {} pages, {secs:.1} s: {:.0} versions/s; database {:.0} MB after the sync, {:.0} MB at rest ({:.0} bytes per version)",
        report.stats.versions,
        report.stats.new_versions,
        bytes as f64 / 1e6,
        report.stats.pages,
        report.stats.versions as f64 / secs,
        status.bytes as f64 / 1e6,
        at_rest as f64 / 1e6,
        at_rest as f64 / status.versions.max(1) as f64
    );
    println!(
        "raw sync's time: {:.1} s waiting for pages (read and parsed by its reader task, alongside staging), {staging:.1} s staging them, {committing:.1} s committing",
        secs - staging - committing
    );
    println!(
        "raw sync's CPU: {thread_cpu} s on the thread that stages and commits, {process_cpu} s in the process (the page reader's and the loopback server's threads included); the same pages read and parsed with nothing stored: {read} versions in {read_secs:.1} s, {read_cpu} s of the thread's CPU"
    );
    // A report over the mirror's every assignment: the state as of the end
    // (newest version per id, deleted included), names resolved, rolled up.
    let end = start + Duration::days(2 * 365 + 1);
    let building = Instant::now();
    let state = store.state_at(end).unwrap();
    let read_secs = building.elapsed().as_secs_f64();
    let names = trainwatch::mirror::read::names(&store.inner).unwrap();
    let meta = trainwatch::report::Meta {
        job: trainwatch::report::JobInfo {
            name: "audit".into(),
            schedule: "5 0 1 * *".into(),
            timezone: "UTC".into(),
        },
        window: trainwatch::window::Window { start: end, end },
        kind: "current",
        timezone: chrono_tz::UTC,
        generated_at: end,
        team: None,
        include_deleted: true,
    };
    let built = trainwatch::report::build(&state, &meta, &names);
    let build_secs = building.elapsed().as_secs_f64();
    println!(
        "report from the mirror: {} assignments (state as of the end) read in {read_secs:.2} s, report built in {build_secs:.2} s in all: {:.0} assignments/s",
        built.totals.assignments,
        state.len() as f64 / build_secs
    );
    drop((built, state));
    let rate = report.stats.versions as f64 / secs;
    let floor = parsed as f64 / parse_secs;
    println!(
        "typed-parse floor: {parsed} versions parsed in {parse_secs:.1} s on one core: {floor:.0} versions/s; the sync runs at {:.2} of it",
        rate / floor
    );
    // The same sync into the Postgres store, when a server is named.
    if std::env::var(trainwatch::store::postgres::TEST_URL_VAR).is_err() {
        println!(
            "raw sync into Postgres: not measured; set {} (eval \"$(bash .ci/postgres.sh)\")",
            trainwatch::store::postgres::TEST_URL_VAR
        );
        return;
    }
    let url = trainwatch::store::postgres::test_database("mirror_sync bench").unwrap();
    let pg =
        mirror::postgres::PgMirror::open(&url, std::time::Duration::from_secs(120), "bench".into())
            .unwrap();
    let started = Instant::now();
    let report = mirror::sync(
        &pg,
        &client,
        &settings,
        start + Duration::days(2 * 365 + 1),
        None,
    )
    .await
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "raw sync into Postgres: {} versions ({} new) in {} pages, {secs:.1} s: {:.0} versions/s; tables {:.0} MB",
        report.stats.versions,
        report.stats.new_versions,
        report.stats.pages,
        report.stats.versions as f64 / secs,
        pg.status().unwrap().bytes as f64 / 1e6,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("TRAINWATCH_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "api" {
        rt.block_on(mirror_versus_api());
    }
    if only.is_empty() || only == "raw" {
        rt.block_on(raw_sync_throughput());
    }
}
