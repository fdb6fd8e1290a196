//! `changes`, `due_soon`, `trend` and a `min_days_overdue` narrowing, from a
//! real SQLite mirror through `job::fetch` and `job::reports`, checked
//! against a deliberately simple second computation over the same generated
//! versions: status transitions, deletions, moved due dates, an unknown
//! status, versions exactly at the fire instants and due dates exactly on
//! the boundaries, across the end of daylight saving time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trainwatch::config::{self, Config};
use trainwatch::job;
use trainwatch::mirror::{Lists, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::report::Report;
use trainwatch::samsara::{Assignment, Client, ClientSettings};

/// One generated version, as the simple computation reads it.
#[derive(Debug, Clone)]
struct V {
    id: String,
    learner: u32,
    status: &'static str,
    due: Option<DateTime<Utc>>,
    deleted: bool,
    updated: DateTime<Utc>,
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Monday 08:00 in Chicago: the fire, and the five before it (Oct 26 is
/// still daylight time, 13:00 UTC; the rest are 14:00 UTC).
const FIRE: &str = "2026-11-23T14:00:00Z";

fn fires() -> Vec<DateTime<Utc>> {
    [
        "2026-10-26T13:00:00Z",
        "2026-11-02T14:00:00Z",
        "2026-11-09T14:00:00Z",
        "2026-11-16T14:00:00Z",
        FIRE,
    ]
    .map(t)
    .to_vec()
}

/// Versions of 600 assignments of 12 learners: each starts not started
/// with a due date, then changes up to four times (started, completed,
/// deleted, due date moved, an unknown status). Some changes land exactly
/// on a fire instant and some due dates exactly on a boundary.
fn generate() -> Vec<V> {
    let mut rng = StdRng::seed_from_u64(11);
    let start = t("2026-09-01T00:00:00Z");
    let end = t("2026-11-27T00:00:00Z");
    let span = (end - start).num_seconds();
    let fires = fires();
    let fire = t(FIRE);
    let mut out = Vec::new();
    for i in 0..600 {
        let id = format!("a-{i:03}");
        let learner = rng.random_range(1..=12);
        let created = start + Duration::seconds(rng.random_range(0..span));
        let mut due = Some(match i % 10 {
            // Exactly 30 whole days before the fire: in a 30-day narrowing.
            0 => fire - Duration::days(30),
            // One second short of 30 days: not.
            1 => fire - Duration::days(30) + Duration::seconds(1),
            // Due exactly at the fire: not overdue yet, and due soon.
            2 => fire,
            _ => created + Duration::hours(rng.random_range(-200..1500)),
        });
        let mut v = V {
            id: id.clone(),
            learner,
            status: "notStarted",
            due,
            deleted: false,
            updated: created,
        };
        out.push(v.clone());
        let mut at = created;
        for _ in 0..rng.random_range(0..=4) {
            if v.deleted {
                break;
            }
            at = if rng.random_bool(0.08) {
                // A change exactly at a fire instant is not yet seen by it.
                match fires.iter().find(|f| **f > at) {
                    Some(f) => *f,
                    None => break,
                }
            } else {
                at + Duration::seconds(rng.random_range(3_600..20 * 86_400))
            };
            if at >= end {
                break;
            }
            match rng.random_range(0..10) {
                0..=2 => v.status = "inProgress",
                3..=4 => v.status = "completed",
                5 => v.deleted = true,
                6..=7 => {
                    due = due.map(|d| d + Duration::days(rng.random_range(-10..40)));
                    v.due = due;
                }
                8 => v.status = "expired",
                _ => v.status = "notStarted",
            }
            v.updated = at;
            out.push(v.clone());
        }
    }
    // Completed, then deleted, in the week: a deletion is how it resolved.
    let done = V {
        id: "z-completed-then-deleted".into(),
        learner: 5,
        status: "notStarted",
        due: Some(t("2026-11-01T00:00:00Z")),
        deleted: false,
        updated: t("2026-10-01T00:00:00Z"),
    };
    out.push(done.clone());
    let completed = V {
        status: "completed",
        updated: t("2026-11-18T00:00:00Z"),
        ..done.clone()
    };
    out.push(completed.clone());
    out.push(V {
        deleted: true,
        updated: t("2026-11-19T00:00:00Z"),
        ..completed
    });
    out
}

fn wire(v: &V) -> Assignment {
    let at = |t: DateTime<Utc>| t.to_rfc3339();
    serde_json::from_value(serde_json::json!({
        "id": v.id,
        "course": {"id": format!("course-{}", v.learner % 3)},
        "learner": {"id": v.learner.to_string(), "type": "driver"},
        "status": v.status,
        "createdAtTime": "2026-08-31T00:00:00Z",
        "updatedAtTime": at(v.updated),
        "durationMinutes": 10,
        "dueAtTime": v.due.map(at),
        "completedAtTime": (v.status == "completed").then(|| at(v.updated)),
        "deletedAtTime": v.deleted.then(|| at(v.updated)),
    }))
    .unwrap()
}

/// Two per-team jobs on the same mirror: the weekly overdue job (overdue,
/// not started or in progress) with an escalation at 30 days, and one
/// without filters (completed ones stay in it).
fn config(dir: &Path) -> Config {
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "2026-01-01T00:00:00Z"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[teams.north]
learners = ["1", "2", "3", "4", "5", "6"]
manager = "n@example.com"
escalation = "boss@example.com"
[teams.south]
learners = ["5", "6", "7", "8", "9", "10"]
manager = "s@example.com"
escalation = "boss@example.com"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ current = true }}
filters = {{ overdue = true, status = ["notStarted", "inProgress"] }}
per_team = true
trend = 5
deliver = [{{ webhook = "w" }}, {{ webhook = "w", min_days_overdue = 30 }}]
[[jobs]]
name = "everything"
schedule = "0 8 * * Mon"
window = {{ current = true }}
per_team = true
trend = 5
due_soon = "3d"
deliver = [{{ webhook = "w" }}]
"#,
        state = dir.join("state").display(),
    );
    config::load_str(&source, &dir.join("t.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{source}"))
}

// ---- The simple computation ----

/// Each id's newest version strictly before `at`.
fn state(versions: &[V], at: DateTime<Utc>) -> BTreeMap<&str, &V> {
    let mut out: BTreeMap<&str, &V> = BTreeMap::new();
    for v in versions.iter().filter(|v| v.updated < at) {
        if out
            .get(v.id.as_str())
            .is_none_or(|old| old.updated < v.updated)
        {
            out.insert(&v.id, v);
        }
    }
    out
}

fn overdue(v: &V, at: DateTime<Utc>) -> bool {
    matches!(v.status, "notStarted" | "inProgress") && v.due.is_some_and(|d| d < at)
}

struct Spec {
    members: Vec<u32>,
    only_overdue: bool,
    min_days: Option<i64>,
    due_soon: Duration,
}

/// The ids in the report at `at`.
fn report_at<'a>(versions: &'a [V], at: DateTime<Utc>, spec: &Spec) -> BTreeMap<&'a str, &'a V> {
    state(versions, at)
        .into_iter()
        .filter(|(_, v)| {
            !v.deleted
                && spec.members.contains(&v.learner)
                && (!spec.only_overdue
                    || (overdue(v, at) && matches!(v.status, "notStarted" | "inProgress")))
                && spec.min_days.is_none_or(|n| {
                    overdue(v, at) && (at - v.due.unwrap()).num_seconds() / 86_400 >= n
                })
        })
        .collect()
}

struct Expected {
    overdue_before: usize,
    overdue_now: usize,
    newly: BTreeSet<String>,
    resolved: BTreeMap<String, &'static str>,
    new_assignments: usize,
    due_soon: BTreeSet<String>,
    trend: Vec<(u64, u64, u64)>,
}

fn expected(versions: &[V], spec: &Spec) -> Expected {
    let fires = fires();
    let (since, fire) = (fires[3], fires[4]);
    let before = report_at(versions, since, spec);
    let now = report_at(versions, fire, spec);
    let state_now = state(versions, fire);
    let over_before: BTreeSet<&str> = before
        .iter()
        .filter(|(_, v)| overdue(v, since))
        .map(|(id, _)| *id)
        .collect();
    let over_now: BTreeSet<&str> = now
        .iter()
        .filter(|(_, v)| overdue(v, fire))
        .map(|(id, _)| *id)
        .collect();
    let resolved = over_before
        .difference(&over_now)
        .map(|id| {
            let then = before[id];
            let how = match state_now.get(id) {
                Some(v) if v.deleted => "deleted",
                Some(v) if v.status == "completed" => "completed",
                Some(v) if v.due != then.due && !overdue(v, fire) => "due date moved",
                _ => "left the report",
            };
            (id.to_string(), how)
        })
        .collect();
    let due_soon = state_now
        .values()
        .filter(|v| {
            !v.deleted
                && spec.min_days.is_none()
                && spec.members.contains(&v.learner)
                && v.status != "completed"
                && (!spec.only_overdue || matches!(v.status, "notStarted" | "inProgress"))
                && v.due.is_some_and(|d| d >= fire && d < fire + spec.due_soon)
        })
        .map(|v| v.id.clone())
        .collect();
    let trend = fires
        .iter()
        .map(|&at| {
            let r = report_at(versions, at, spec);
            (
                r.len() as u64,
                r.values().filter(|v| overdue(v, at)).count() as u64,
                r.values().filter(|v| v.status == "completed").count() as u64,
            )
        })
        .collect();
    Expected {
        overdue_before: over_before.len(),
        overdue_now: over_now.len(),
        newly: over_now
            .difference(&over_before)
            .map(|s| s.to_string())
            .collect(),
        resolved,
        new_assignments: now.keys().filter(|id| !before.contains_key(*id)).count(),
        due_soon,
        trend,
    }
}

// ---- The real path ----

async fn reports(config: &Config, job_name: &str) -> Vec<Report> {
    let job = config.job(job_name).unwrap();
    // The mirror reaches past the fire: no sync, so no request is made.
    let client = Client::new(ClientSettings::new(
        "http://127.0.0.1:9".parse().unwrap(),
        "t".to_string().into(),
    ))
    .unwrap();
    let data = job::fetch(config, job, &client, t(FIRE), None)
        .await
        .unwrap();
    job::reports(config, job, &data, t(FIRE))
}

/// The mirror of `versions`, reaching `[since, Nov 28)`.
fn load_mirror(dir: &Path, versions: &[V], since: DateTime<Utc>) {
    let mirror = SqliteMirror::open(&dir.join("state")).unwrap();
    let now = t("2026-11-28T00:00:00Z");
    let sync = mirror.begin_sync(since, now, now).unwrap();
    let page: Vec<Assignment> = versions.iter().map(wire).collect();
    mirror.stage(sync, &page).unwrap();
    let reach = Reach { since, end: now };
    mirror
        .commit(
            sync,
            reach,
            &Lists::default(),
            &SyncStats::default(),
            false,
            now,
        )
        .unwrap();
}

fn check(report: &Report, want: &Expected, what: &str) {
    let changes = report
        .changes
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no changes"));
    assert_eq!(changes.since, "2026-11-16T08:00:00-06:00", "{what}");
    assert_eq!(
        changes.overdue_before as usize, want.overdue_before,
        "{what}: overdue_before"
    );
    assert_eq!(
        changes.overdue_now as usize, want.overdue_now,
        "{what}: overdue_now"
    );
    let newly: BTreeSet<String> = changes
        .newly_overdue
        .iter()
        .map(|r| r.assignment_id.to_string())
        .collect();
    assert_eq!(newly, want.newly, "{what}: newly_overdue");
    let resolved: BTreeMap<String, &str> = changes
        .resolved
        .iter()
        .map(|r| (r.row.assignment_id.to_string(), r.how))
        .collect();
    assert_eq!(resolved, want.resolved, "{what}: resolved");
    assert_eq!(
        changes.new_assignments as usize, want.new_assignments,
        "{what}: new_assignments"
    );
    let due: BTreeSet<String> = report
        .due_soon
        .iter()
        .map(|r| r.assignment_id.to_string())
        .collect();
    assert_eq!(due, want.due_soon, "{what}: due_soon");
    let trend: Vec<(u64, u64, u64)> = report
        .trend
        .iter()
        .map(|p| (p.assignments, p.overdue, p.completed))
        .collect();
    assert_eq!(trend, want.trend, "{what}: trend");
    let at: Vec<&str> = report.trend.iter().map(|p| p.at.as_str()).collect();
    assert_eq!(
        at,
        [
            "2026-10-26T08:00:00-05:00",
            "2026-11-02T08:00:00-06:00",
            "2026-11-09T08:00:00-06:00",
            "2026-11-16T08:00:00-06:00",
            "2026-11-23T08:00:00-06:00",
        ],
        "{what}: trend instants, oldest first, in the job's timezone"
    );
    let last = report.trend.last().unwrap();
    assert_eq!(
        (last.assignments, last.overdue, last.completed),
        (
            report.totals.assignments,
            report.totals.overdue,
            report.totals.completed
        ),
        "{what}: the last trend point is the report's own totals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_due_soon_trend_and_narrowing_agree_with_a_simple_computation() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let config = config(dir.path());
    let teams = [
        ("north", vec![1, 2, 3, 4, 5, 6]),
        ("south", vec![5, 6, 7, 8, 9, 10]),
    ];

    let mut hows = BTreeSet::new();
    let weekly = reports(&config, "weekly").await;
    assert_eq!(
        weekly.len(),
        4,
        "two teams, each plain and narrowed to 30 days"
    );
    for report in &weekly {
        let team = &report.team.as_ref().unwrap().name;
        let members = teams.iter().find(|(n, _)| n == team).unwrap().1.clone();
        let spec = Spec {
            members,
            only_overdue: true,
            min_days: report.min_days_overdue.map(i64::from),
            due_soon: Duration::days(7),
        };
        let want = expected(&versions, &spec);
        check(
            report,
            &want,
            &format!("weekly {team} {:?}", report.min_days_overdue),
        );
        hows.extend(want.resolved.values().copied());
        assert!(
            !want.newly.is_empty(),
            "the data has newly overdue ones for {team}"
        );
        if report.min_days_overdue.is_none() {
            assert!(
                !want.due_soon.is_empty(),
                "the data has due-soon ones for {team}"
            );
        } else {
            assert!(
                report.overdue.iter().all(|r| r.days_overdue.unwrap() >= 30),
                "a narrowed report has only 30 days or more"
            );
            assert!(report.totals.overdue > 0);
        }
    }
    let plain = &weekly[0];
    let narrowed = &weekly[1];
    assert_eq!(narrowed.min_days_overdue, Some(30));
    assert!(narrowed.totals.overdue < plain.totals.overdue);

    for report in reports(&config, "everything").await {
        let team = &report.team.as_ref().unwrap().name;
        let members = teams.iter().find(|(n, _)| n == team).unwrap().1.clone();
        let spec = Spec {
            members,
            only_overdue: false,
            min_days: None,
            due_soon: Duration::days(3),
        };
        let want = expected(&versions, &spec);
        check(&report, &want, &format!("everything {team}"));
        hows.extend(want.resolved.values().copied());
        assert!(
            want.trend.iter().all(|p| p.2 > 0),
            "completed ones are counted"
        );
    }
    assert_eq!(
        hows,
        BTreeSet::from(["completed", "deleted", "due date moved", "left the report"]),
        "the generated data resolves in every way"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_previous_fire_before_the_mirrors_reach_gives_no_changes_and_a_shorter_trend() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    // The mirror's reach starts after the previous fire (Nov 16).
    load_mirror(dir.path(), &versions, t("2026-11-20T00:00:00Z"));
    let mut config = config(dir.path());
    config.mirror.since = t("2026-11-20T00:00:00Z");

    for report in reports(&config, "weekly").await {
        assert_eq!(report.changes, None, "since is before the mirror's reach");
        assert_eq!(report.trend.len(), 1, "only this fire is within the reach");
    }
}

/// A job whose deliveries read no detail list and no row gets reports
/// without them (the previous fire's state and the state now never read),
/// and every number the same: totals, statuses, courses, categories,
/// trend, warnings. The lists are really left out (so the test can fail).
#[tokio::test(flavor = "multi_thread")]
async fn reports_without_the_lists_nobody_reads_have_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let config = config(dir.path());
    let client = Client::new(ClientSettings::new(
        "http://127.0.0.1:9".parse().unwrap(),
        "t".to_string().into(),
    ))
    .unwrap();
    let lean = trainwatch::report::Keep {
        rows: false,
        details: false,
    };
    for name in ["weekly", "everything"] {
        let job = config.job(name).unwrap();
        let full = reports(&config, name).await;
        let data = job::fetch_reading(&config, job, &client, t(FIRE), None, false)
            .await
            .unwrap();
        let history = data.history.as_ref().expect("a current window has history");
        assert!(history.previous.is_none() && history.state_now.is_empty());
        let thin = job::reports_keeping(&config, job, &data, t(FIRE), lean);
        assert_eq!(thin.len(), full.len(), "{name}");
        let mut lists = 0;
        for (thin, full) in thin.iter().zip(&full) {
            let what = format!("{name} {:?} {:?}", full.team, full.min_days_overdue);
            assert_eq!(thin.totals, full.totals, "{what}");
            assert_eq!(thin.statuses, full.statuses, "{what}");
            assert_eq!(thin.courses, full.courses, "{what}");
            assert_eq!(thin.categories, full.categories, "{what}");
            assert_eq!(thin.trend, full.trend, "{what}");
            assert_eq!(thin.warnings, full.warnings, "{what}");
            assert_eq!(
                (thin.team.clone(), thin.min_days_overdue),
                (full.team.clone(), full.min_days_overdue)
            );
            assert!(
                thin.assignments.is_empty() && thin.outstanding.is_empty(),
                "{what}"
            );
            assert!(
                thin.overdue.is_empty() && thin.due_soon.is_empty(),
                "{what}"
            );
            assert_eq!(thin.changes, None, "{what}");
            lists += full.assignments.len() + full.outstanding.len() + full.due_soon.len();
            assert_eq!(full.assignments.len() as u64, full.totals.assignments);
        }
        assert!(
            lists > 0,
            "{name}: the full reports have lists to leave out"
        );
    }
}

/// The mirror hands its state on one assignment at a time: every id once
/// (in no promised order), the same versions `state_at` collects; and an error in the
/// middle stops the read and comes back, so a caller never takes part of
/// the state for all of it.
#[test]
fn the_state_read_row_by_row_is_the_whole_state_and_an_error_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let mirror = SqliteMirror::open(&dir.path().join("state")).unwrap();
    for at in fires() {
        let mut seen = Vec::new();
        mirror
            .state_each(at, &mut |a| {
                seen.push(a);
                Ok(())
            })
            .unwrap();
        seen.sort_by(|a, b| b.id.cmp(&a.id));
        // The second computation: each id's newest version before `at`.
        let expect: Vec<(&str, DateTime<Utc>)> = state(&versions, at)
            .values()
            .rev()
            .map(|v| (v.id.as_str(), v.updated))
            .collect();
        let got: Vec<(&str, DateTime<Utc>)> = seen
            .iter()
            .map(|a| (a.id.as_ref(), a.updated_at_time))
            .collect();
        assert_eq!(got, expect, "each id's newest version before {at}");
        let mut whole = mirror.state_at(at).unwrap();
        whole.sort_by(|a, b| b.id.cmp(&a.id));
        assert_eq!(seen, whole, "as of {at}");
    }
    let mut handed = 0;
    let err = mirror
        .state_each(t(FIRE), &mut |_| {
            handed += 1;
            anyhow::ensure!(handed < 3, "the reader gave up");
            Ok(())
        })
        .unwrap_err();
    assert_eq!(handed, 3, "nothing handed on after the error");
    let chain = format!("{err:#}");
    assert!(chain.contains("the reader gave up"), "{chain}");
    assert!(
        chain.contains("reading the state as of an instant"),
        "{chain}"
    );
}

/// An audit of the generated organisation (versions, deletions, an unknown
/// status) through the path a fire takes (`job::Context::prepare`: the
/// lists its deliveries read, no detail list here): its archive's
/// `assignments.csv` has one row per state as of the fire, deleted ones
/// included, each id the simple computation names once with its status;
/// and it is byte for byte the CSV of the report built with every list
/// (`job::reports`). A row dropped or a list wrongly left out fails both.
#[tokio::test(flavor = "multi_thread")]
async fn an_audits_archive_has_every_state_once_and_the_bytes_of_the_full_build() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "2026-01-01T00:00:00Z"
[[jobs]]
name = "audit"
schedule = "0 8 * * Mon"
window = {{ current = true }}
filters = {{ include_deleted = true }}
deliver = [{{ archive = {{ dir = "{archive}" }} }}]
"#,
        state = dir.path().join("state").display(),
        archive = dir.path().join("audit").display(),
    );
    let config = config::load_str(&source, &dir.path().join("t.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let job = config.job("audit").unwrap();
    let client = Client::new(ClientSettings::new(
        "http://127.0.0.1:9".parse().unwrap(),
        "t".to_string().into(),
    ))
    .unwrap();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    assert_eq!(
        renderer.keeps(&config, job),
        trainwatch::report::Keep {
            rows: true,
            details: false
        },
        "an archive reads the rows and no detail list"
    );
    let prepared = job::Context {
        config: &config,
        job,
        client: &client,
    }
    .prepare(t(FIRE), None, t(FIRE), job::Upto::Outbox(&renderer))
    .await
    .unwrap();
    let files = prepared
        .outbox
        .items
        .iter()
        .find_map(|i| match &i.payload {
            trainwatch::outbox::Payload::Archive { files, .. } => Some(files.clone()),
            _ => None,
        })
        .expect("an archive delivery");
    let staged = files.iter().find(|f| f.name == "assignments.csv").unwrap();
    let csv = std::fs::read(&staged.path).unwrap();
    prepared.outbox.discard_staged();

    let want: BTreeMap<String, (String, bool)> = state(&versions, t(FIRE))
        .into_iter()
        .map(|(id, v)| (id.to_string(), (v.status.to_string(), v.deleted)))
        .collect();
    let mut got = BTreeMap::new();
    for record in csv::Reader::from_reader(csv.as_slice()).deserialize() {
        let row: BTreeMap<String, String> = record.unwrap();
        let id = row["assignment_id"].clone();
        let seen = (row["status"].clone(), !row["deleted_at"].is_empty());
        assert!(got.insert(id.clone(), seen).is_none(), "{id} twice");
    }
    assert_eq!(got.len(), want.len(), "one row per state");
    assert_eq!(got, want);
    assert!(
        got.values().any(|(s, _)| s == "expired"),
        "an unknown status"
    );
    assert!(got.values().any(|(_, deleted)| *deleted), "deleted ones");

    let data = job::fetch(&config, job, &client, t(FIRE), None)
        .await
        .unwrap();
    let full = job::reports(&config, job, &data, t(FIRE));
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].assignments.len(), want.len());
    assert!(
        csv == trainwatch::outbox::csv_bytes(&full[0]).unwrap(),
        "the archive's CSV is the full build's"
    );
}

/// A per-team audit whose archive and emailed CSV are written from the
/// job's state rather than held rows (`Renderer::rows_held`): two teams
/// sharing learners, with archive and an audit email with the CSV.
/// A mirror of [`generate`]'s versions since 2026-01-01 and the team audit's
/// config on it: the folder (kept while the test runs), the versions, the config.
fn team_audit_mirror() -> (tempfile::TempDir, Vec<V>, Config) {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let config = team_audit_config(dir.path());
    (dir, versions, config)
}

fn team_audit_config(dir: &Path) -> Config {
    team_audit_config_with(dir, "")
}

/// [`team_audit_config`] with `more` (more `[teams.…]` tables) before the job.
fn team_audit_config_with(dir: &Path, more: &str) -> Config {
    let source = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "2026-01-01T00:00:00Z"
[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
from = "Training <training@example.com>"
[teams.north]
learners = ["1", "2", "3", "4", "5", "6"]
manager = "n@example.com"
[teams.south]
learners = ["5", "6", "7", "8", "9", "10"]
manager = "s@example.com"
{more}
[[jobs]]
name = "audit"
schedule = "0 8 * * Mon"
window = {{ current = true }}
filters = {{ include_deleted = true }}
per_team = true
deliver = [
  {{ archive = {{ dir = "{archive}" }} }},
  {{ email = {{ to = ["{{{{ team.manager }}}}"], template = "audit", attach_csv = true }} }},
]
"#,
        state = dir.join("state").display(),
        archive = dir.join("audit").display(),
    );
    config::load_str(&source, &dir.join("t.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{source}"))
}

fn offline_client() -> Client {
    Client::new(ClientSettings::new(
        "http://127.0.0.1:9".parse().unwrap(),
        "t".to_string().into(),
    ))
    .unwrap()
}

/// Each archive's files by team, and each email's CSV by team.
type Written = BTreeMap<String, (BTreeMap<String, Vec<u8>>, Vec<u8>)>;

fn written(outbox: &trainwatch::outbox::Outbox) -> Written {
    let mut out: Written = BTreeMap::new();
    for item in &outbox.items {
        let team = item.team.clone().expect("a per-team delivery");
        let entry = out.entry(team).or_default();
        match &item.payload {
            trainwatch::outbox::Payload::Archive { files, .. } => {
                for f in files {
                    entry.0.insert(f.name.clone(), f.read_checked().unwrap());
                }
            }
            trainwatch::outbox::Payload::Email(e) => {
                entry.1 = e.attachment.as_ref().expect("the CSV").1.clone();
            }
            _ => panic!("an archive or an email"),
        }
    }
    out
}

/// The audit through the fire's path holds at most the hundred rows its
/// email lists, yet every team's archive files (CSV, JSON, page) and its
/// email's CSV are byte for byte those of the report built with every
/// row held; and each team's CSV has exactly the states the simple
/// computation gives for that team's learners, each once (an older bug
/// gave every team the first team's rows).
#[tokio::test(flavor = "multi_thread")]
async fn per_team_archives_and_csvs_written_from_the_state_are_the_held_rows_bytes() {
    let (_dir, versions, config) = team_audit_mirror();
    let job = config.job("audit").unwrap();
    let client = offline_client();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    assert_eq!(renderer.rows_held(&config, job), Some(100));
    let prepared = job::Context {
        config: &config,
        job,
        client: &client,
    }
    .prepare(t(FIRE), None, t(FIRE), job::Upto::Outbox(&renderer))
    .await
    .unwrap();
    // Nothing of the state held: read once for the reports, again per file.
    assert!(prepared.data.streamed.is_some());
    assert!(prepared.data.assignments.is_empty());
    let streamed = written(&prepared.outbox);
    prepared.outbox.discard_staged();

    let data = job::fetch(&config, job, &client, t(FIRE), None)
        .await
        .unwrap();
    // The counts a run records and `preview` prints: those of the held state.
    assert_eq!(prepared.data.fetched_count(), data.fetched_count());
    assert_eq!(
        prepared.data.included_count(job),
        data.included(job).count() as u64
    );
    assert_eq!(prepared.data.stats, data.stats);
    let held = job::reports_holding(
        &config,
        job,
        &data,
        t(FIRE),
        trainwatch::report::Keep::ALL,
        Some(100),
    )
    .unwrap();
    let full = job::reports(&config, job, &data, t(FIRE));
    assert_eq!(held.len(), 2);
    for (h, f) in held.iter().zip(&full) {
        assert!(h.assignments.len() <= 100);
        assert!(f.assignments.len() > 100, "more rows than the email lists");
        assert_eq!(h.assignments[..], f.assignments[..h.assignments.len()]);
        assert_eq!(h.row_count(), f.assignments.len());
    }
    let whole = trainwatch::outbox::build(&config, job, data.window, &full, &renderer).unwrap();
    let from_held = written(&whole);
    whole.discard_staged();
    assert_eq!(streamed.keys().collect::<Vec<_>>(), ["north", "south"]);
    for (team, (files, csv)) in &streamed {
        let (want_files, want_csv) = &from_held[team];
        assert_eq!(files.len(), 3, "{team}");
        for (name, bytes) in files {
            assert!(bytes == &want_files[name], "{team}: {name} differs");
        }
        assert!(csv == want_csv, "{team}: the email's CSV differs");
        assert!(csv == &files["assignments.csv"], "{team}");

        let members: BTreeSet<u32> = match team.as_str() {
            "north" => (1..=6).collect(),
            _ => (5..=10).collect(),
        };
        let want: BTreeMap<String, (String, bool)> = state(&versions, t(FIRE))
            .into_iter()
            .filter(|(_, v)| members.contains(&v.learner))
            .map(|(id, v)| (id.to_string(), (v.status.to_string(), v.deleted)))
            .collect();
        let mut got = BTreeMap::new();
        for record in csv::Reader::from_reader(csv.as_slice()).deserialize() {
            let row: BTreeMap<String, String> = record.unwrap();
            let id = row["assignment_id"].clone();
            let seen = (row["status"].clone(), !row["deleted_at"].is_empty());
            assert!(got.insert(id.clone(), seen).is_none(), "{team}: {id} twice");
        }
        assert_eq!(got, want, "{team}: its own learners' states, each once");
        assert!(
            got.values().any(|(_, deleted)| *deleted),
            "{team}: deleted ones"
        );
    }
}

/// Files written from a state that no longer gives the report's rows (one
/// state read twice, or one missing) are refused: the outbox is not built,
/// so nothing partial or doubled is staged or sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_doubled_or_dropped_between_the_build_and_the_files_fails_the_outbox() {
    let (_dir, _, config) = team_audit_mirror();
    let job = config.job("audit").unwrap();
    let client = offline_client();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    let data = job::fetch(&config, job, &client, t(FIRE), None)
        .await
        .unwrap();
    let keep = renderer.keeps(&config, job);
    let held = renderer.rows_held(&config, job);
    let reports = job::reports_holding(&config, job, &data, t(FIRE), keep, held).unwrap();
    let ok = trainwatch::outbox::build_for(&config, job, &data, &reports, &renderer).unwrap();
    assert_eq!(ok.items.len(), 4);
    ok.discard_staged();

    // A state of a learner in both teams.
    let both = |a: &Assignment| {
        ["north", "south"]
            .iter()
            .all(|t| data.teams.get(t).unwrap().members.contains(&a.learner))
    };
    let states = data.assignments.clone().into_vec();
    let at = states.iter().position(both).unwrap();
    let mut doubled = data.clone();
    let mut twice = states.clone();
    twice.insert(at, states[at].clone());
    doubled.assignments = twice.into();
    let mut dropped = data.clone();
    let mut once_less = states;
    once_less.remove(at);
    dropped.assignments = once_less.into();
    for (what, state) in [("doubled", &doubled), ("dropped", &dropped)] {
        let err = trainwatch::outbox::build_for(&config, job, state, &reports, &renderer)
            .map(|_| ())
            .unwrap_err();
        let chain = format!("{err:#}");
        assert!(
            chain.contains("rows were written where the report counts"),
            "{what}: {chain}"
        );
    }
}

/// A state read again for the files (see `JobData::streamed`) that fails
/// part-way through a later pass: the reports were built from a whole
/// first pass, but the outbox fails with the store's error, and nothing
/// staged stays behind: neither the part of the archive being written
/// (third pass: the first team's archive, after its CSV) nor a team's whole
/// archive staged before (fourth pass: the second team's CSV).
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_state_that_fails_while_the_files_are_written_fails_the_outbox() {
    #[derive(Debug)]
    struct Failing {
        states: Vec<Assignment>,
        passes: std::sync::atomic::AtomicUsize,
        fail_from: usize,
    }
    impl trainwatch::data::StateSource for Failing {
        fn each(
            &self,
            each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
        ) -> anyhow::Result<()> {
            let pass = self
                .passes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            for (i, a) in self.states.iter().enumerate() {
                anyhow::ensure!(pass < self.fail_from || i < 7, "the store went away");
                each(a.clone())?;
            }
            Ok(())
        }
        fn counts(&self) -> trainwatch::data::SourceCounts {
            let n = self.states.len() as u64;
            trainwatch::data::SourceCounts {
                read: n,
                passed: n,
                included: n,
            }
        }
    }
    let (dir, _, config) = team_audit_mirror();
    let job = config.job("audit").unwrap();
    let client = offline_client();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    let held = job::fetch_assignments(&config, job, &client, t(FIRE), None)
        .await
        .unwrap();
    for fail_from in [1, 2, 3] {
        let mut data = held.clone();
        let states = std::mem::take(&mut data.assignments).into_vec();
        assert!(states.len() > 7);
        data.streamed = Some(std::sync::Arc::new(Failing {
            states,
            passes: 0.into(),
            fail_from,
        }));
        let keep = renderer.keeps(&config, job);
        let held = renderer.rows_held(&config, job);
        let reports = job::reports_holding(&config, job, &data, t(FIRE), keep, held).unwrap();
        assert!(reports.iter().all(|r| r.totals.assignments > 0));
        let err = trainwatch::outbox::build_for(&config, job, &data, &reports, &renderer)
            .map(|_| ())
            .unwrap_err();
        let chain = format!("{err:#}");
        assert!(
            chain.contains("the store went away"),
            "{fail_from}: {chain}"
        );
        assert!(
            chain.contains("reading the report's rows again"),
            "{fail_from}: {chain}"
        );
        assert_eq!(
            staged_left(dir.path()),
            0,
            "{fail_from}: nothing staged stays"
        );
    }
}

/// The entries left in the staging folder under `dir`'s state directory.
fn staged_left(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state").join("staging"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A sync's overlap (or a rebuild) that commits a newer version before the
/// fire between the reports' read of a streamed state and the files' read
/// of it: the files would disagree with the totals beside them, so the
/// outbox fails, naming the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_that_changes_between_the_reports_and_the_files_fails_the_outbox() {
    let (dir, _, config) = team_audit_mirror();
    let job = config.job("audit").unwrap();
    let client = offline_client();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    let context = job::Context {
        config: &config,
        job,
        client: &client,
    };
    let data = context
        .fetch(t(FIRE), None, job::Upto::Outbox(&renderer))
        .await
        .unwrap();
    assert!(data.streamed.is_some());
    let keep = renderer.keeps(&config, job);
    let held = renderer.rows_held(&config, job);
    let reports = job::reports_holding(&config, job, &data, t(FIRE), keep, held).unwrap();

    // A newer version, still before the fire, of an assignment in the reports.
    let mirror = SqliteMirror::open(&dir.path().join("state")).unwrap();
    let mut changed = mirror
        .state_at(t(FIRE))
        .unwrap()
        .into_iter()
        .find(|a| a.deleted_at_time.is_none())
        .unwrap();
    changed.updated_at_time = t(FIRE) - Duration::seconds(1);
    changed.duration_minutes += 1;
    let reach = mirror.reach().unwrap().unwrap();
    let sync = mirror.begin_sync(reach.end, reach.end, reach.end).unwrap();
    mirror.stage(sync, &[changed]).unwrap();
    let stats = SyncStats {
        versions: 1,
        ..SyncStats::default()
    };
    mirror
        .commit(sync, reach, &Lists::default(), &stats, false, reach.end)
        .unwrap();

    let err = trainwatch::outbox::build_for(&config, job, &data, &reports, &renderer)
        .map(|_| ())
        .unwrap_err();
    let chain = format!("{err:#}");
    assert!(
        chain.contains("changed between two reads of this run"),
        "{chain}"
    );
    assert_eq!(staged_left(dir.path()), 0, "nothing staged stays behind");
}

/// A job that reports on more teams than `STREAMED_TEAMS_MAX` holds its
/// state: each team's files would be another read of the whole state.
/// With fewer, the same fetch holds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_many_teams_holds_its_state_once() {
    let dir = tempfile::tempdir().unwrap();
    let versions = generate();
    load_mirror(dir.path(), &versions, t("2026-01-01T00:00:00Z"));
    let client = offline_client();
    let renderer = trainwatch::render::Renderer::new(None).unwrap();
    let max = trainwatch::mirror::read::STREAMED_TEAMS_MAX;
    for (extra, streamed) in [(max - 2, true), (max - 1, false)] {
        let more: String = (0..extra)
            .map(|i| {
                format!(
                    "[teams.t{i}]\nlearners = [\"{}\"]\nmanager = \"t{i}@example.com\"\n",
                    i + 1
                )
            })
            .collect();
        let config = team_audit_config_with(dir.path(), &more);
        let job = config.job("audit").unwrap();
        let data = job::Context {
            config: &config,
            job,
            client: &client,
        }
        .fetch(t(FIRE), None, job::Upto::Outbox(&renderer))
        .await
        .unwrap();
        assert_eq!(data.streamed.is_some(), streamed, "{} teams", extra + 2);
        assert_eq!(data.assignments.is_empty(), streamed, "{} teams", extra + 2);
    }
}
