//! The mirror against a local Samsara in the API's wire format (the sample
//! server's machinery, serving generated data with a clock): its answers
//! equal the API's, its current window equals a simple second computation,
//! and an interrupted sync leaves it as it was.

use crate::support::TestRun;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use trainwatch::config::{self, Config};
use trainwatch::export::Row;
use trainwatch::job;
use trainwatch::mirror::{self, MirrorStore, SqliteMirror};
use trainwatch::sample::SampleContent;

/// The generated organisation's first instant; DST starts in Chicago on Mar 8.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One generated organisation: every version of every assignment, in wire format.
struct Org {
    versions: Vec<Value>,
    /// Every instant that appears in the data (for windows on the edges).
    instants: Vec<DateTime<Utc>>,
}

const STATUSES: [&str; 4] = ["notStarted", "inProgress", "completed", "expired"];

/// `n` assignments, each with 1–4 versions between `from` and `to`:
/// status changes, due dates moved, deletions, unknown statuses, exact
/// duplicate records, and some untouched for a long time.
fn organisation(rng: &mut StdRng, n: usize, from: DateTime<Utc>, to: DateTime<Utc>) -> Org {
    let span = (to - from).num_seconds();
    let mut versions = Vec::new();
    let mut instants = Vec::new();
    for i in 0..n {
        let id = format!("a{i:03}");
        let created = from + Duration::seconds(rng.random_range(0..span));
        let mut updated = created;
        let learner = format!("{}", rng.random_range(1..=5));
        let course = format!("c{}", rng.random_range(1..=5));
        let mut due =
            (rng.random_bool(0.8)).then(|| created + Duration::days(rng.random_range(-3..60)));
        let count = rng.random_range(1..=4);
        for v in 0..count {
            if v > 0 {
                // Some changes come seconds apart, some months.
                let step = if rng.random_bool(0.5) {
                    rng.random_range(1..600)
                } else {
                    rng.random_range(3600..span.max(3601) / 2)
                };
                updated += Duration::seconds(step);
                if rng.random_bool(0.15) {
                    updated += Duration::milliseconds(rng.random_range(1..1000));
                }
            }
            if updated >= to {
                break;
            }
            if rng.random_bool(0.2) {
                due = due.map(|d| d + Duration::days(rng.random_range(1..30)));
            }
            let known = if rng.random_bool(0.9) { 3 } else { 4 };
            let status = STATUSES[rng.random_range(0..known)];
            let mut a = json!({
                "id": id,
                "course": {"id": course, "revisionId": "r1"},
                "learner": {"id": learner, "type": "driver"},
                "status": status,
                "createdAtTime": rfc(created),
                "createdById": "user-1",
                "updatedAtTime": rfc(updated),
                "updatedById": "user-2",
                "durationMinutes": rng.random_range(0..90),
            });
            if let Some(d) = due {
                a["dueAtTime"] = json!(rfc(d));
                instants.push(d);
                if status != "completed" {
                    // The API's flag, sometimes stale: the numbers must not trust it.
                    let stale = rng.random_bool(0.3);
                    a["isOverdue"] = json!(if stale {
                        rng.random_bool(0.5)
                    } else {
                        d < updated
                    });
                }
            }
            if status == "completed" {
                let done = updated - Duration::seconds(rng.random_range(0..3600));
                a["completedAtTime"] = json!(rfc(done));
                a["scorePercent"] = json!(f64::from(rng.random_range(0..=100u8)) / 100.0);
            }
            if v == count - 1 && rng.random_bool(0.15) {
                a["deletedAtTime"] = json!(rfc(updated));
            }
            instants.push(updated);
            if rng.random_bool(0.1) {
                versions.push(a.clone()); // an exact duplicate in the stream
            }
            versions.push(a);
        }
        instants.push(created);
    }
    Org { versions, instants }
}

fn content(org: &Org, page_size: usize) -> SampleContent {
    let course = |id: &str, status: &str, category: &str| {
        json!({"id": id, "title": format!("Course {id}"), "status": status,
               "category": {"id": category, "name": format!("Category {category}")}})
    };
    let driver = |id: &str, name: &str, tag: &str| json!({"id": id, "name": name, "tags": [{"id": tag, "name": format!("Tag {tag}")}]});
    SampleContent {
        stream: org.versions.clone(),
        // c5 is named by the stream and unknown to /training-courses.
        courses: vec![
            course("c1", "published", "k1"),
            course("c2", "archived", "k1"),
            course("c3", "deleted", "k2"),
            course("c4", "published", "k2"),
        ],
        active: vec![
            driver("1", "Avery", "t1"),
            driver("2", "Zoë", "t1"),
            driver("3", "José", "t2"),
            driver("4", "O'Brien & <Sons>", "t2"),
        ],
        deactivated: vec![json!({"id": "5", "name": "Former Driver"})],
        tags: vec![
            json!({"id": "t0", "name": "Regions"}),
            json!({"id": "t1", "name": "Tag t1", "parentTagId": "t0"}),
            json!({"id": "t2", "name": "Tag t2", "parentTagId": "t0"}),
        ],
        page_size,
    }
}

/// Random job filters, as TOML.
fn filters(rng: &mut StdRng) -> String {
    let mut parts = Vec::new();
    let pick = |rng: &mut StdRng, items: &[&str]| -> Vec<String> {
        items
            .iter()
            .filter(|_| rng.random_bool(0.5))
            .map(|s| format!("\"{s}\""))
            .collect()
    };
    if rng.random_bool(0.3) {
        let l = pick(rng, &["driver-1", "driver-2", "driver-3", "driver-5"]);
        if !l.is_empty() {
            parts.push(format!("learners = [{}]", l.join(", ")));
        }
    }
    if rng.random_bool(0.3) {
        let c = pick(rng, &["c1", "c2", "c5"]);
        if !c.is_empty() {
            parts.push(format!("courses = [{}]", c.join(", ")));
        }
    }
    if rng.random_bool(0.25) {
        let k = pick(rng, &["k1", "k2"]);
        if !k.is_empty() {
            parts.push(format!("categories = [{}]", k.join(", ")));
        }
    }
    if rng.random_bool(0.3) {
        let s = pick(rng, &["notStarted", "inProgress", "completed"]);
        if !s.is_empty() {
            parts.push(format!("status = [{}]", s.join(", ")));
        }
    }
    if rng.random_bool(0.3) {
        parts.push(format!("overdue = {}", rng.random_bool(0.5)));
    }
    if rng.random_bool(0.4) {
        parts.push("include_deleted = true".into());
    }
    format!("{{ {} }}", parts.join(", "))
}

/// Two jobs with the same window and filters: one from the mirror, one from
/// the API (left out for current windows, which only the mirror answers).
fn config(dir: &Path, uri: &str, overlap: &str, window: &str, filters: &str) -> Config {
    let api_job = if window.contains("current") {
        String::new()
    } else {
        format!(
            r#"
[[jobs]]
name = "from-api"
schedule = "0 8 * * Mon"
source = "api"
window = {window}
filters = {filters}
deliver = [{{ webhook = "w" }}]
"#
        )
    };
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "{uri}"
token = "t"
requests_per_second = 100
[mirror]
since = "2026-02-01T00:00:00Z"
overlap = "{overlap}"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[[jobs]]
name = "from-mirror"
schedule = "0 8 * * Mon"
window = {window}
filters = {filters}
deliver = [{{ webhook = "w" }}]
{api_job}"#,
        state = dir.join("state").display(),
    );
    config::load_str(&source, &dir.join("t.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{source}"))
}

/// The rows an export of `job` writes.
async fn export(
    config: &Config,
    name: &str,
    client: &trainwatch::samsara::Client,
    fire: DateTime<Utc>,
) -> Vec<Row> {
    let job = config.job(name).unwrap();
    let data = job::fetch(config, job, client, fire, None)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    data.included(job)
        .map(|a| Row::new(a, &data.names, data.window.end))
        .collect()
}

/// A window as TOML: fixed (edges often exactly on data instants) or `last`.
fn window(rng: &mut StdRng, org: &Org, fire: DateTime<Utc>) -> String {
    let instant = |rng: &mut StdRng| {
        if rng.random_bool(0.6) && !org.instants.is_empty() {
            let t = org.instants[rng.random_range(0..org.instants.len())];
            t.min(fire)
        } else {
            t0() + Duration::seconds(rng.random_range(0..(fire - t0()).num_seconds()))
        }
    };
    if rng.random_bool(0.2) {
        return format!("{{ last = \"{}d\" }}", rng.random_range(1..=30));
    }
    match rng.random_range(0..10) {
        // Calendar periods in Chicago (the data spans the DST change of March 8).
        0 => {
            return [
                "{ previous = \"day\" }",
                "{ previous = \"week\" }",
                "{ previous = \"month\" }",
            ][rng.random_range(0..3)]
            .to_string();
        }
        1 => {
            return format!(
                "{{ since_last_run = true, max = \"{}d\" }}",
                rng.random_range(1..=35)
            );
        }
        _ => {}
    }
    let (a, b) = (instant(rng), instant(rng));
    let (mut start, end) = (a.min(b), a.max(b).min(fire));
    if start >= end {
        start = end - Duration::seconds(1);
    }
    format!("{{ start = \"{}\", end = \"{}\" }}", rfc(start), rfc(end))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever the sync schedule (many small syncs, one big one, syncs
    /// overlapping by a lot or not at all), the mirror's export of any window
    /// and filters equals the API's, row for row.
    #[test]
    fn the_mirrors_export_equals_the_apis_row_for_row(seed in any::<u64>(), schedule in 0u8..3) {
        let mut rng = StdRng::seed_from_u64(seed);
        let fire = t0() + Duration::days(40);
        let n = rng.random_range(5..40);
        let org = organisation(&mut rng, n, t0(), fire);
        let page_size = rng.random_range(1..8);
        let overlap = ["0", "10m", "2d"][rng.random_range(0..3)];
        let window = window(&mut rng, &org, fire);
        let filters = filters(&mut rng);
        let syncs: Vec<DateTime<Utc>> = match schedule {
            0 => vec![],                                        // one big sync, at the run
            1 => {                                              // many small ones
                let mut v: Vec<_> = (0..rng.random_range(2..8))
                    .map(|_| t0() + Duration::seconds(rng.random_range(1..(fire - t0()).num_seconds())))
                    .collect();
                v.sort();
                v
            }
            _ => (1..5).map(|i| t0() + Duration::days(i * 8)).collect(), // regular
        };
        runtime().block_on(async {
            let app = TestRun::generated(content(&org, page_size))
                .config(|dir, uri| config(dir, uri, overlap, &window, &filters))
                .start()
                .await;
            let server = app.server();
            let config = app.config.clone();
            let client = app.client();
            let store = SqliteMirror::open(&config.state_dir).unwrap();
            for at in &syncs {
                server.set_now(Some(*at));
                mirror::sync(&store, &client, &config.mirror, *at, None).await.unwrap();
            }
            server.set_now(Some(fire));
            let from_mirror = export(&config, "from-mirror", &client, fire).await;
            let from_api = export(&config, "from-api", &client, fire).await;
            prop_assert_eq!(&from_mirror, &from_api, "window {} filters {} syncs {:?}", window, filters, syncs);
            Ok(())
        })?;
    }
}

/// The deliberately simple second computation of a current window: per id
/// the newest version before `at`, then deleted ones dropped, then filters
/// on that state, overdue from `dueAtTime` as of `at`.
fn current_by_hand(
    versions: &[Value],
    at: DateTime<Utc>,
    learners: &[&str],
    overdue: Option<bool>,
    include_deleted: bool,
) -> BTreeMap<String, bool> {
    let time = |v: &Value, k: &str| -> Option<DateTime<Utc>> {
        v.get(k).and_then(Value::as_str).map(|s| s.parse().unwrap())
    };
    let mut newest: BTreeMap<String, &Value> = BTreeMap::new();
    for v in versions {
        let updated = time(v, "updatedAtTime").unwrap();
        if updated >= at {
            continue;
        }
        let id = v["id"].as_str().unwrap().to_string();
        match newest.get(&id) {
            Some(kept) if time(kept, "updatedAtTime").unwrap() >= updated => {}
            _ => {
                newest.insert(id, v);
            }
        }
    }
    newest
        .into_iter()
        .filter(|(_, v)| include_deleted || v.get("deletedAtTime").is_none())
        .filter(|(_, v)| {
            let learner = format!("driver-{}", v["learner"]["id"].as_str().unwrap());
            learners.is_empty() || learners.contains(&learner.as_str())
        })
        .map(|(id, v)| {
            let is_overdue = match v["status"].as_str().unwrap() {
                "notStarted" | "inProgress" => time(v, "dueAtTime").is_some_and(|d| d < at),
                "completed" => false,
                _ => v["isOverdue"] == true,
            };
            (id, is_overdue)
        })
        .filter(|(_, is_overdue)| overdue.is_none_or(|o| o == *is_overdue))
        .collect()
}

#[test]
fn the_current_window_is_the_newest_version_before_the_fire_instant_then_the_filters() {
    let rt = runtime();
    for seed in 0..12u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        // Three years of history: many assignments untouched for over a year,
        // due dates that passed with no modification since.
        let from = t0() - Duration::days(3 * 365);
        let fire = t0() + Duration::days(40);
        let mut org = organisation(&mut rng, 60, from, fire);
        // One overdue assignment nobody touched for two years, one deleted
        // after it fell due, and one due a second before the fire instant.
        let old = from + Duration::days(10);
        for (id, status, due, deleted) in [
            ("old-overdue", "notStarted", old + Duration::days(30), false),
            (
                "deleted-overdue",
                "inProgress",
                old + Duration::days(5),
                true,
            ),
            (
                "due-just-now",
                "inProgress",
                fire - Duration::seconds(1),
                false,
            ),
        ] {
            let mut a = json!({"id": id, "course": {"id": "c1"}, "learner": {"id": "1", "type": "driver"},
                "status": status, "createdAtTime": rfc(old), "updatedAtTime": rfc(old),
                "durationMinutes": 0, "dueAtTime": rfc(due), "isOverdue": false});
            if deleted {
                a["deletedAtTime"] = json!(rfc(old + Duration::days(400)));
                a["updatedAtTime"] = json!(rfc(old + Duration::days(400)));
            }
            org.versions.push(a);
        }
        // Completed exactly at the fire instant: as of the fire instant it is
        // still the old, overdue version (the window is end-exclusive).
        let at_fire = json!({"id": "completed-at-fire", "course": {"id": "c2"},
            "learner": {"id": "1", "type": "driver"}, "status": "notStarted",
            "createdAtTime": rfc(old), "updatedAtTime": rfc(old), "durationMinutes": 0,
            "dueAtTime": rfc(old + Duration::days(1))});
        let mut done = at_fire.clone();
        done["status"] = json!("completed");
        done["updatedAtTime"] = json!(rfc(fire));
        done["completedAtTime"] = json!(rfc(fire));
        org.versions.extend([at_fire, done]);
        let include_deleted = seed % 3 == 0;
        let overdue = [None, Some(true), Some(false)][(seed % 3) as usize];
        let learners: &[&str] = if seed % 4 == 1 {
            &["driver-1", "driver-3"]
        } else {
            &[]
        };
        rt.block_on(async {
            let mut f = Vec::new();
            if !learners.is_empty() {
                f.push(format!(
                    "learners = [{}]",
                    learners
                        .iter()
                        .map(|l| format!("\"{l}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(o) = overdue {
                f.push(format!("overdue = {o}"));
            }
            if include_deleted {
                f.push("include_deleted = true".into());
            }
            let filters = format!("{{ {} }}", f.join(", "));
            let app = TestRun::generated(content(&org, 7))
                .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", &filters))
                .start()
                .await;
            let server = app.server();
            let mut config = app.config.clone();
            config.mirror.since = from - Duration::days(1);
            let client = app.client();
            // Synced in two steps, the second reaching past nothing new.
            let store = SqliteMirror::open(&config.state_dir).unwrap();
            server.set_now(Some(t0()));
            mirror::sync(&store, &client, &config.mirror, t0(), None)
                .await
                .unwrap();
            // The mirror reaches past the fire instant (a later sync).
            server.set_now(Some(fire + Duration::days(1)));
            mirror::sync(
                &store,
                &client,
                &config.mirror,
                fire + Duration::days(1),
                None,
            )
            .await
            .unwrap();
            let job = config.job("from-mirror").unwrap();
            let data = job::fetch(&config, job, &client, fire, None).await.unwrap();
            let got: BTreeMap<String, bool> = data
                .included(job)
                .map(|a| (a.id.to_string(), trainwatch::report::is_overdue(a, fire)))
                .collect();
            let want = current_by_hand(&org.versions, fire, learners, overdue, include_deleted);
            assert_eq!(got, want, "seed {seed}");
            if overdue != Some(false) && (learners.is_empty() || learners.contains(&"driver-1")) {
                assert_eq!(
                    got.get("old-overdue"),
                    Some(&true),
                    "seed {seed}: untouched for two years"
                );
                assert_eq!(got.get("due-just-now"), Some(&true), "seed {seed}");
                assert_eq!(
                    got.get("completed-at-fire"),
                    Some(&true),
                    "seed {seed}: completed at, not before, the fire instant"
                );
                assert_eq!(
                    got.contains_key("deleted-overdue"),
                    include_deleted,
                    "seed {seed}"
                );
            }
            // The report counts the same overdue assignments.
            let reports = job::reports(&config, job, &data, fire);
            let want_overdue = want.values().filter(|o| **o).count() as u64;
            assert_eq!(reports[0].totals.overdue, want_overdue, "seed {seed}");
            assert_eq!(reports[0].window.kind, "current");
            assert_eq!(reports[0].window.start, None);
            // `export` reads the same state row by row from the mirror,
            // holding none of it: the bytes of the held rows, the same counts.
            let mut streamed = Vec::new();
            let summary = trainwatch::export::export(
                &config,
                job,
                &client,
                fire,
                trainwatch::export::Format::Jsonl,
                &mut streamed,
            )
            .await
            .unwrap();
            let mut held = Vec::new();
            trainwatch::export::write_rows(
                data.included(job)
                    .map(|a| Row::new(a, &data.names, data.window.end)),
                trainwatch::export::Format::Jsonl,
                &mut held,
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(held).unwrap(),
                "seed {seed}"
            );
            assert_eq!(summary.rows, want.len(), "seed {seed}");
            assert_eq!(
                summary.left_out,
                data.assignments.len() - want.len(),
                "seed {seed}"
            );
            assert_eq!(summary.fetch, data.stats, "seed {seed}");
        });
    }
}

/// Distinct (id, updatedAtTime) of the versions the server serves before `at`.
fn distinct_versions_before(org: &Org, at: DateTime<Utc>) -> u64 {
    org.versions
        .iter()
        .filter(|v| {
            v["updatedAtTime"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                < at
        })
        .map(|v| {
            (
                v["id"].as_str().unwrap(),
                v["updatedAtTime"].as_str().unwrap(),
            )
        })
        .collect::<BTreeSet<_>>()
        .len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_failing_mid_way_leaves_the_mirror_as_it_was_and_the_next_one_completes_it() {
    let mut rng = StdRng::seed_from_u64(7);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 80, t0(), fire);
    let app = TestRun::generated(content(&org, 5))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let server = app.server();
    let mut config = app.config.clone();
    config.samsara.max_attempts = 2;
    let client = app.client();
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    let half = t0() + Duration::days(20);
    server.set_now(Some(half));
    mirror::sync(&store, &client, &config.mirror, half, None)
        .await
        .unwrap();
    let before = store.status().unwrap();
    assert_eq!(before.versions, distinct_versions_before(&org, half));

    server.set_now(Some(fire));
    server.fail_stream_from_page(3);
    let err = mirror::sync(&store, &client, &config.mirror, fire, None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 500"), "{err:#}");
    let after = store.status().unwrap();
    assert_eq!(after.reach, before.reach, "the reach is unchanged");
    assert_eq!(
        after.versions, before.versions,
        "no version of the failed sync is stored"
    );
    let failed = after.last_sync.unwrap();
    assert_eq!(failed.outcome, "failed");
    assert!(
        failed.stats.pages >= 2,
        "it failed part-way: {:?}",
        failed.stats
    );

    server.fail_stream_from_page(0);
    let report = mirror::sync(&store, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    assert_eq!(report.reach.end, fire);
    assert_eq!(
        store.status().unwrap().versions,
        distinct_versions_before(&org, fire)
    );
    // And it says the same as a mirror built in one go.
    let fresh = tempfile::tempdir().unwrap();
    let other = SqliteMirror::open(&fresh.path().join("state")).unwrap();
    mirror::sync(&other, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    assert_eq!(store.state_at(fire).unwrap(), other.state_at(fire).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_to_an_instant_the_mirror_already_reaches_reads_nothing() {
    let mut rng = StdRng::seed_from_u64(3);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 10, t0(), fire);
    let app = TestRun::generated(content(&org, 5))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    let client = app.client();
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    mirror::sync(&store, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    let requests = server.requests();
    let again = mirror::sync(
        &store,
        &client,
        &config.mirror,
        fire - Duration::hours(1),
        None,
    )
    .await
    .unwrap();
    assert_eq!(again.outcome, mirror::SyncOutcome::Skipped);
    assert_eq!(server.requests(), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_share_one_sync() {
    let mut rng = StdRng::seed_from_u64(5);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 30, t0(), fire);
    let app = TestRun::generated(content(&org, 5))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let config = app.config.clone();
    let client = app.client();
    let job = config.job("from-mirror").unwrap();
    let (a, b) = tokio::join!(
        job::fetch(&config, job, &client, fire, None),
        job::fetch(&config, job, &client, fire, None)
    );
    assert_eq!(a.unwrap().assignments, b.unwrap().assignments);
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    let syncs = store.syncs(10).unwrap();
    assert_eq!(
        syncs.len(),
        1,
        "one sync, the other job waited for it: {syncs:?}"
    );
}

#[test]
fn a_sync_killed_with_sigkill_leaves_the_reach_unchanged_and_the_next_sync_completes() {
    // A sample folder big enough that a sync at 4 requests/s takes seconds.
    let mut rng = StdRng::seed_from_u64(11);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 400, t0(), fire);
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api");
    std::fs::create_dir(&api).unwrap();
    let content = content(&org, 0);
    let write = |name: &str, data: &[Value]| {
        let body = json!({"data": data, "pagination": {"endCursor": "", "hasNextPage": false}});
        std::fs::write(api.join(name), serde_json::to_vec(&body).unwrap()).unwrap();
    };
    write("stream-page-01.json", &content.stream);
    write("courses.json", &content.courses);
    write("drivers-active.json", &content.active);
    write("drivers-deactivated.json", &content.deactivated);
    write("tags.json", &content.tags);
    let config_path = dir.path().join("config.toml");
    let write_config = |rps: u32| {
        std::fs::write(
            &config_path,
            format!(
                "state_dir = \"state\"\n[samsara]\nsample_data = \"api\"\nrequests_per_second = {rps}\n\
                 [mirror]\nsince = \"2026-02-01T00:00:00Z\"\n"
            ),
        )
        .unwrap();
    };
    let trainwatch = |at: DateTime<Utc>| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("trainwatch"));
        cmd.arg("--config")
            .arg(&config_path)
            .args(["sync", "--at", &rfc(at)])
            .env_remove("TRAINWATCH_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // A first sync, quickly, to the middle.
    write_config(100);
    let half = t0() + Duration::days(20);
    assert!(trainwatch(half).status().unwrap().success());
    let state = dir.path().join("state");
    let before = SqliteMirror::open(&state).unwrap().status().unwrap();
    assert_eq!(before.reach.unwrap().end, half);

    // The second, slowly: killed once some of its pages are staged.
    write_config(4);
    let mut child = trainwatch(fire).spawn().unwrap();
    let db = rusqlite::Connection::open(state.join("trainwatch.db")).unwrap();
    let started = std::time::Instant::now();
    loop {
        let staged: i64 = db
            .query_row("SELECT COUNT(*) FROM mirror_staging", [], |r| r.get(0))
            .unwrap_or(0);
        if staged > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no page was staged"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after = SqliteMirror::open(&state).unwrap().status().unwrap();
    assert_eq!(after.reach, before.reach, "the reach is unchanged");
    assert_eq!(
        after.versions, before.versions,
        "no version of the killed sync is visible"
    );
    assert_eq!(
        after.last_sync.unwrap().outcome,
        "running",
        "shown as running or interrupted"
    );

    // The next sync completes it.
    write_config(100);
    assert!(trainwatch(fire).status().unwrap().success());
    let done = SqliteMirror::open(&state).unwrap().status().unwrap();
    assert_eq!(done.reach.unwrap().end, fire);
    assert_eq!(done.versions, distinct_versions_before(&org, fire));
    let staged: i64 = db
        .query_row("SELECT COUNT(*) FROM mirror_staging", [], |r| r.get(0))
        .unwrap();
    assert_eq!(staged, 0, "what the killed sync staged was dropped");
}

#[test]
fn metrics_show_syncs_once_one_has_ended() {
    let metrics = trainwatch::metrics::Metrics::new();
    assert!(!metrics.render().contains("trainwatch_mirror_syncs_total"));
    let stats = trainwatch::mirror::SyncStats {
        versions: 120,
        new_versions: 100,
        requests: 9,
        pages: 2,
    };
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    metrics.sync_finished("succeeded", &stats, std::time::Duration::from_secs(2), at);
    metrics.sync_finished("failed", &stats, std::time::Duration::from_secs(1), at);
    let body = metrics.render();
    for line in [
        "trainwatch_mirror_syncs_total{outcome=\"succeeded\"} 1",
        "trainwatch_mirror_syncs_total{outcome=\"failed\"} 1",
        "trainwatch_mirror_versions_received_total 240",
        "trainwatch_mirror_new_versions_total 200",
        "trainwatch_mirror_sync_requests_total 18",
        "trainwatch_mirror_sync_seconds_total 3",
        "trainwatch_mirror_last_success_timestamp_seconds 1795442400",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing from:\n{body}"
        );
    }
}

/// A config with one job of `window` and `extra` job keys, and `mirror` as the [mirror] table body.
fn load_one_job(mirror: &str, window: &str, extra: &str) -> Result<Config, config::ConfigErrors> {
    let source = format!(
        "[samsara]\ntoken = \"t\"\n[mirror]\n{mirror}\n[webhooks.w]\nkind = \"json\"\nurl = \"http://127.0.0.1:9/h\"\n\
         [[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\nwindow = {window}\n{extra}\ndeliver = [{{ webhook = \"w\" }}]\n"
    );
    config::load_str(&source, Path::new("t.toml"), &|_| None)
}

#[test]
fn validate_says_a_current_window_needs_the_mirror() {
    let err = load_one_job("", "{ current = true }", "source = \"api\"").unwrap_err();
    assert!(
        err.to_string().contains("t.toml:")
            && err.to_string().contains("`window = { current = true }` reads the state of every assignment from the mirror, but this job has `source = \"api\"`"),
        "{err}"
    );
    let err = load_one_job("enabled = false", "{ current = true }", "").unwrap_err();
    assert!(
        err.to_string()
            .contains("but [mirror] has `enabled = false`"),
        "{err}"
    );
    let err = load_one_job(
        "enabled = false",
        "{ last = \"7d\" }",
        "source = \"mirror\"",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`source = \"mirror\"` needs the mirror"),
        "{err}"
    );
    let err = load_one_job("", "{ last = \"7d\" }", "source = \"cache\"").unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown source `cache`: use mirror or api"),
        "{err}"
    );
    let err = load_one_job("since = \"yesterday\"", "{ last = \"7d\" }", "").unwrap_err();
    assert!(
        err.to_string()
            .contains("`since` is not an RFC 3339 datetime"),
        "{err}"
    );

    // Defaults: the mirror on, jobs read it; off, they query the API.
    let c = load_one_job("", "{ current = true }", "").unwrap();
    assert_eq!(c.mirror, trainwatch::config::MirrorConfig::default());
    assert_eq!(c.jobs[0].source, trainwatch::config::Source::Mirror);
    let c = load_one_job("enabled = false", "{ last = \"7d\" }", "").unwrap();
    assert_eq!(c.jobs[0].source, trainwatch::config::Source::Api);
    let c = load_one_job(
        "overlap = \"1h\"\nrefresh = \"0\"\nsince = 2019-06-01T00:00:00Z",
        "{ last = \"7d\" }",
        "",
    )
    .unwrap();
    assert_eq!(c.mirror.overlap, std::time::Duration::from_secs(3600));
    assert!(c.mirror.refresh.is_zero());
    assert_eq!(
        c.mirror.since,
        Utc.with_ymd_and_hms(2019, 6, 1, 0, 0, 0).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_starting_before_since_is_read_from_the_api() {
    let mut rng = StdRng::seed_from_u64(9);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 10, t0(), fire);
    // since is 2026-02-01: a 90-day window reaches before it.
    let app = TestRun::generated(content(&org, 5))
        .config(|dir, uri| config(dir, uri, "10m", "{ last = \"90d\" }", "{}"))
        .start()
        .await;
    let config = app.config.clone();
    let client = app.client();
    let job = config.job("from-mirror").unwrap();
    let data = job::fetch(&config, job, &client, fire, None).await.unwrap();
    assert!(!data.assignments.is_empty());
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    assert_eq!(store.reach().unwrap(), None, "no sync: the API answered");
}

#[test]
fn sync_and_mirror_commands_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/api");
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"state\"\n[samsara]\nsample_data = \"{}\"\nrequests_per_second = 100\n",
            api.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("trainwatch"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("TRAINWATCH_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&["sync", "--at", "2026-11-23T08:00:00-06:00"]);
    assert!(
        first.starts_with("synced [2020-01-01T00:00:00+00:00, 2026-11-23T14:00:00+00:00): 308 versions received, 308 new, "),
        "{first}"
    );
    let again = run(&["sync", "--at", "2026-11-23T08:00:00-06:00"]);
    assert_eq!(
        again,
        "mirror already reaches 2026-11-23T14:00:00+00:00: nothing to sync\n"
    );
    let status = run(&["mirror"]);
    assert!(
        status.contains("reach: [2020-01-01T00:00:00+00:00, 2026-11-23T14:00:00+00:00)"),
        "{status}"
    );
    assert!(
        status.contains("holds: 308 versions of 307 assignments, 8 courses, 40 drivers, 6 tags"),
        "{status}"
    );
    assert!(status.contains("last sync: #1 succeeded"), "{status}");
    assert_eq!(run(&["sync", "--status"]), status);
}

#[test]
fn the_service_syncs_the_mirror_at_start_and_counts_it_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/api");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"state_dir = "state"
catch_up = "0"
[server]
listen = "127.0.0.1:{port}"
[samsara]
sample_data = "{api}"
requests_per_second = 100
[mirror]
refresh = "1h"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[[jobs]]
name = "new-year"
schedule = "0 8 1 1 *"
window = {{ current = true }}
deliver = [{{ webhook = "w" }}]
"#,
            api = api.display()
        ),
    )
    .unwrap();
    let mut service = std::process::Command::new(assert_cmd::cargo::cargo_bin("trainwatch"))
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .env_remove("TRAINWATCH_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("service.log")).unwrap())
        .spawn()
        .unwrap();
    let state = dir.path().join("state");
    let started = std::time::Instant::now();
    // Read with a plain connection: opening the store here would race the
    // service's own migration of a new database.
    let synced = loop {
        let new: Option<i64> = rusqlite::Connection::open_with_flags(
            state.join("trainwatch.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()
        .and_then(|c| {
            c.query_row(
                "SELECT new_versions FROM mirror_syncs WHERE outcome = 'succeeded'",
                [],
                |r| r.get(0),
            )
            .ok()
        });
        if let Some(new) = new {
            break new;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no sync at start: {}",
            std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(synced, 308);
    // Metrics: fetched over plain HTTP/1.0 on loopback (the counters follow
    // the commit by a moment).
    let metrics = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let mut body = metrics();
    while !body.contains("trainwatch_mirror_syncs_total") && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        body = metrics();
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let status = service.wait().unwrap();
    assert!(
        body.lines()
            .any(|l| l == "trainwatch_mirror_syncs_total{outcome=\"succeeded\"} 1"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "trainwatch_mirror_new_versions_total 308"),
        "{body}"
    );
    assert!(status.success(), "stopped cleanly on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_replaces_the_mirror_in_one_go_and_a_failed_one_keeps_the_old() {
    let mut rng = StdRng::seed_from_u64(21);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 40, t0(), fire);
    let app = TestRun::generated(content(&org, 4))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    let client = app.client();
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    mirror::sync(&store, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    let state = store.state_at(fire).unwrap();
    let versions = store.status().unwrap().versions;

    server.fail_stream_from_page(2);
    assert!(
        mirror::rebuild(&store, &client, &config.mirror, fire, None)
            .await
            .is_err()
    );
    assert_eq!(
        store.state_at(fire).unwrap(),
        state,
        "a failed rebuild keeps the old mirror"
    );
    assert_eq!(store.status().unwrap().versions, versions);

    server.fail_stream_from_page(0);
    let report = mirror::rebuild(&store, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    assert_eq!(
        report.range,
        Some((config.mirror.since, fire)),
        "read again from since"
    );
    assert_eq!(
        report.stats.new_versions, versions,
        "every version stored anew"
    );
    assert_eq!(store.state_at(fire).unwrap(), state);
    assert_eq!(store.status().unwrap().versions, versions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_never_reaches_past_the_real_clock() {
    let mut rng = StdRng::seed_from_u64(4);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 5, t0(), fire);
    let app = TestRun::generated(content(&org, 5))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let config = app.config.clone();
    let client = app.client();
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    let before = Utc::now();
    let report = mirror::sync(
        &store,
        &client,
        &config.mirror,
        before + Duration::days(365),
        None,
    )
    .await
    .unwrap();
    let end = store.reach().unwrap().unwrap().end;
    assert!(
        before <= end && end <= Utc::now(),
        "reach {end} is the clock, not a year ahead"
    );
    assert_eq!(report.reach.end, end);
}

#[test]
fn two_processes_syncing_at_once_make_one_sync_and_the_other_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/api");
    let config_path = dir.path().join("config.toml");
    // Slow enough (4 requests/s) that the second starts while the first syncs.
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"state\"\n[samsara]\nsample_data = \"{}\"\nrequests_per_second = 4\n",
            api.display()
        ),
    )
    .unwrap();
    let spawn = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("trainwatch"))
            .arg("--config")
            .arg(&config_path)
            .args(["sync", "--at", "2026-11-23T08:00:00-06:00"])
            .env_remove("TRAINWATCH_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outputs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let synced = outputs.iter().filter(|o| o.starts_with("synced ")).count();
    let waited = outputs
        .iter()
        .filter(|o| o.starts_with("mirror already reaches 2026-11-23T14:00:00+00:00"))
        .count();
    assert_eq!((synced, waited), (1, 1), "{outputs:?}");
    let store = SqliteMirror::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.syncs(10).unwrap().len(), 1);
    assert_eq!(store.status().unwrap().versions, 308);
}

/// The mirror in Postgres (`[store] url`), when `TRAINWATCH_TEST_PG_URL`
/// names a server: built through a failed sync and a completed one, it
/// answers exactly as the SQLite mirror built in one go, and a job reading
/// it exports the API's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_mirror_answers_as_the_sqlite_one_and_as_the_api() {
    let mut rng = StdRng::seed_from_u64(11);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 80, t0(), fire);
    let app = TestRun::generated(content(&org, 5))
        .postgres("postgres_mirror")
        .config(|dir, uri| {
            config(
                dir,
                uri,
                "10m",
                "{ start = \"2026-03-05T00:00:00Z\", end = \"2026-04-01T00:00:00Z\" }",
                "{}",
            )
        })
        .start()
        .await;
    let Some(url) = app.pg.clone() else {
        return;
    };
    let (server, dir) = (app.server(), &app.dir);
    let mut config = app.config.clone();
    config.samsara.max_attempts = 2;
    config.store.url = Some(url.clone());
    let client = app.client();
    let pg = mirror::open(&config).unwrap();
    let half = t0() + Duration::days(20);
    server.set_now(Some(half));
    mirror::sync(pg.as_ref(), &client, &config.mirror, half, None)
        .await
        .unwrap();
    server.set_now(Some(fire));
    server.fail_stream_from_page(3);
    mirror::sync(pg.as_ref(), &client, &config.mirror, fire, None)
        .await
        .unwrap_err();
    assert_eq!(
        pg.status().unwrap().versions,
        distinct_versions_before(&org, half),
        "a failed sync stores nothing"
    );
    server.fail_stream_from_page(0);
    mirror::sync(pg.as_ref(), &client, &config.mirror, fire, None)
        .await
        .unwrap();

    let sqlite = SqliteMirror::open(&dir.path().join("sqlite")).unwrap();
    mirror::sync(&sqlite, &client, &config.mirror, fire, None)
        .await
        .unwrap();
    for at in [t0() + Duration::days(3), half, fire] {
        assert_eq!(pg.state_at(at).unwrap(), sqlite.state_at(at).unwrap());
    }
    // Row by row (Postgres streams its rows off the wire): the same states.
    for at in [half, fire] {
        let each = |m: &dyn MirrorStore| {
            let mut v = Vec::new();
            m.state_each(at, &mut |a| {
                v.push(a);
                Ok(())
            })
            .unwrap();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        let rows = each(pg.as_ref());
        assert!(!rows.is_empty());
        assert_eq!(rows, each(&sqlite), "as of {at}");
    }
    // Tag membership is known from the sync that first saw it: the same
    // once both mirrors have synced to `fire`.
    assert_eq!(
        pg.drivers_at(fire).unwrap(),
        sqlite.drivers_at(fire).unwrap()
    );
    assert_eq!(
        pg.versions_in(t0(), fire).unwrap(),
        sqlite.versions_in(t0(), fire).unwrap()
    );
    assert_eq!(pg.tags_known_since().unwrap(), Some(half));
    assert_eq!(sqlite.tags_known_since().unwrap(), Some(fire));
    assert_eq!(pg.courses().unwrap(), sqlite.courses().unwrap());
    assert_eq!(pg.tags().unwrap(), sqlite.tags().unwrap());
    let (p, s) = (pg.status().unwrap(), sqlite.status().unwrap());
    assert_eq!(
        (
            p.reach,
            p.versions,
            p.assignments,
            p.courses,
            p.drivers,
            p.tags
        ),
        (
            s.reach,
            s.versions,
            s.assignments,
            s.courses,
            s.drivers,
            s.tags
        )
    );
    assert_eq!(
        export(&config, "from-mirror", &client, fire).await,
        export(&config, "from-api", &client, fire).await
    );

    // In order, as a held state is sorted (by update, then id in byte
    // order): both backends sort, ties and ids that differ in case included
    // ("B…" before "a…" in bytes, after it in most languages' collations).
    let later = fire + Duration::days(1);
    let tied: Vec<trainwatch::samsara::Assignment> = ["a-tie", "B-tie", "b-tie", "A-tie", "_tie"]
        .iter()
        .map(|id| {
            serde_json::from_value(json!({
                "id": id,
                "course": {"id": "c"},
                "learner": {"id": "1", "type": "driver"},
                "status": "notStarted",
                "createdAtTime": "2026-04-11T00:00:00Z",
                "updatedAtTime": (fire + Duration::hours(1)).to_rfc3339(),
                "durationMinutes": 0,
            }))
            .unwrap()
        })
        .collect();
    let ordered = |m: &dyn MirrorStore, at| {
        let mut v = Vec::new();
        m.state_ordered_each(at, &mut |a| {
            v.push(a);
            Ok(())
        })
        .unwrap();
        v
    };
    for m in [pg.as_ref(), &sqlite as &dyn MirrorStore] {
        let sync = m.begin_sync(fire, later, later).unwrap();
        m.stage(sync, &tied).unwrap();
        let reach = mirror::Reach {
            since: m.reach().unwrap().unwrap().since,
            end: later,
        };
        let stats = mirror::SyncStats {
            versions: tied.len() as u64,
            ..mirror::SyncStats::default()
        };
        m.commit(sync, reach, &mirror::Lists::default(), &stats, false, later)
            .unwrap();
    }
    for at in [half, fire, later] {
        let rows = ordered(pg.as_ref(), at);
        assert!(!rows.is_empty());
        assert_eq!(rows, sqlite.state_at(at).unwrap(), "as of {at}");
        assert_eq!(rows, ordered(&sqlite, at), "as of {at}");
    }
    let ids: Vec<String> = ordered(pg.as_ref(), later)
        .into_iter()
        .rev()
        .take(5)
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids, ["b-tie", "a-tie", "_tie", "B-tie", "A-tie"]);
}

/// Two replicas (two stores on one Postgres database) syncing at once make
/// one sync; the other waits for the sync lease and finds the mirror there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_syncing_one_postgres_mirror_at_once_make_one_sync() {
    let Some(url) = crate::support::postgres("postgres_mirror_sync") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(13);
    let fire = t0() + Duration::days(40);
    let org = organisation(&mut rng, 40, t0(), fire);
    let app = TestRun::generated(content(&org, 3))
        .config(|dir, uri| config(dir, uri, "10m", "{ current = true }", "{}"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    server.set_now(Some(fire));
    let client = app.client();
    let lease = std::time::Duration::from_secs(30);
    let a = mirror::postgres::PgMirror::open(&url, lease, "replica-a".into()).unwrap();
    let b = mirror::postgres::PgMirror::open(&url, lease, "replica-b".into()).unwrap();
    let (ra, rb) = tokio::join!(
        mirror::sync(&a, &client, &config.mirror, fire, None),
        mirror::sync(&b, &client, &config.mirror, fire, None)
    );
    let outcomes: BTreeSet<_> = [ra.unwrap().outcome, rb.unwrap().outcome]
        .into_iter()
        .map(|o| format!("{o:?}"))
        .collect();
    assert_eq!(
        outcomes,
        ["Skipped".to_string(), "Synced".to_string()].into()
    );
    assert_eq!(a.syncs(10).unwrap().len(), 1, "one sync in all");
    assert_eq!(
        b.status().unwrap().versions,
        distinct_versions_before(&org, fire)
    );
}
