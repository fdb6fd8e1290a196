//! Teams from Samsara tags against a local Samsara in the API's wire format
//! (the sample server serving generated data): nested tags, deactivated
//! drivers, a driver who moves yards between two runs, both sources. Every
//! team's rows are checked against a deliberately simple second
//! computation of membership: walk each driver's tag up to the top.

use crate::common;
use crate::support::TestRun;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use trainwatch::config::{self, Config};
use trainwatch::job;
use trainwatch::mirror::{self, SqliteMirror};
use trainwatch::sample::{SampleContent, SampleServer};
use trainwatch::teams::{self, Wanted};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// (id, name, parent): two roots, regions nested three deep, one name that
/// is not a folder name as it is.
const TAGS: [(&str, &str, Option<&str>); 9] = [
    ("100", "Regions", None),
    ("110", "North", Some("100")),
    ("111", "North Yard A", Some("110")),
    ("112", "North Yard B", Some("110")),
    ("120", "South", Some("100")),
    ("121", "South Yard", Some("120")),
    ("130", "East / Dock", Some("100")),
    ("200", "Shifts", None),
    ("201", "Nights", Some("200")),
];

fn tag_json(id: &str) -> Value {
    let (id, name, parent) = TAGS.iter().find(|t| t.0 == id).unwrap();
    match parent {
        Some(p) => json!({"id": id, "name": name, "parentTagId": p}),
        None => json!({"id": id, "name": name}),
    }
}

/// A driver in wire format with the given tags.
fn driver(id: &str, tags: &[&str]) -> Value {
    json!({
        "id": id,
        "name": format!("Driver {id}"),
        "tags": tags.iter().map(|t| tag_json(t)).collect::<Vec<_>>(),
    })
}

/// The generated organisation: drivers (some deactivated) with 0–2 tags
/// anywhere in the tree, and 1–3 assignments each, all in `[t0, t0 + 20d)`.
struct Org {
    /// (driver id, its tag ids, active)
    drivers: Vec<(String, Vec<&'static str>, bool)>,
    assignments: Vec<Value>,
}

fn organisation(seed: u64) -> Org {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut drivers = Vec::new();
    let mut assignments = Vec::new();
    for d in 1..=40 {
        let id = format!("{}", 1000 + d);
        let n = rng.random_range(0..=2);
        let mut tags: Vec<&'static str> = (0..n)
            .map(|_| TAGS[rng.random_range(0..TAGS.len())].0)
            .collect();
        tags.sort();
        tags.dedup();
        let active = rng.random_bool(0.85);
        for a in 0..rng.random_range(1..=3) {
            let updated = t0() + Duration::minutes(rng.random_range(0..20 * 24 * 60));
            let due = updated + Duration::days(rng.random_range(-10..20));
            let status = ["notStarted", "inProgress", "completed"][rng.random_range(0..3)];
            let mut v = common::assignment(
                &format!("a-{id}-{a}"),
                &id,
                &format!("c{}", rng.random_range(1..=3)),
                status,
                &rfc(updated),
            );
            v["createdAtTime"] = json!(rfc(updated - Duration::hours(1)));
            v["dueAtTime"] = json!(rfc(due));
            if status == "completed" {
                v["completedAtTime"] = json!(rfc(updated));
            }
            assignments.push(v);
        }
        drivers.push((id, tags, active));
    }
    Org {
        drivers,
        assignments,
    }
}

fn wire_drivers(org: &Org) -> (Vec<Value>, Vec<Value>) {
    let mut active = Vec::new();
    let mut deactivated = Vec::new();
    for (id, tags, is_active) in &org.drivers {
        let mut d = driver(id, tags);
        d["driverActivationStatus"] = json!(if *is_active { "active" } else { "deactivated" });
        if *is_active {
            active.push(d);
        } else {
            deactivated.push(d);
        }
    }
    (active, deactivated)
}

fn content(org: &Org) -> SampleContent {
    let (active, deactivated) = wire_drivers(org);
    SampleContent {
        stream: org.assignments.clone(),
        courses: (1..=3)
            .map(|c| json!({"id": format!("c{c}"), "title": format!("Course {c}"), "status": "published"}))
            .collect(),
        active,
        deactivated,
        tags: TAGS.iter().map(|t| tag_json(t.0)).collect(),
        page_size: 7,
    }
}

/// The second computation: is `tag` the team's tag or below it? Walks up
/// the parents one by one (the code under test walks down).
fn under(tag: &str, team_tag: &str) -> bool {
    let mut at = Some(tag);
    for _ in 0..TAGS.len() {
        match at {
            Some(t) if t == team_tag => return true,
            Some(t) => at = TAGS.iter().find(|x| x.0 == t).and_then(|x| x.2),
            None => return false,
        }
    }
    false
}

/// The members of the team of `team_tag`: learner ids (`driver-…`).
fn expected_members(org: &Org, team_tag: &str) -> BTreeSet<String> {
    org.drivers
        .iter()
        .filter(|(_, tags, _)| tags.iter().any(|t| under(t, team_tag)))
        .map(|(id, _, _)| format!("driver-{id}"))
        .collect()
}

/// The ids of the assignments of `members`.
fn expected_rows(org: &Org, members: &BTreeSet<String>) -> BTreeSet<String> {
    org.assignments
        .iter()
        .filter(|a| members.contains(&format!("driver-{}", a["learner"]["id"].as_str().unwrap())))
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Each team's tag in the config below (the learner team is checked apart).
const TEAM_TAGS: [(&str, &str); 6] = [
    ("north", "110"),
    ("nights", "201"),
    ("North", "110"),
    ("South", "120"),
    ("East _ Dock", "130"),
    ("all-regions", "100"),
];

fn config(dir: &Path, uri: &str, source: &str, window: &str) -> Config {
    let text = format!(
        r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "{uri}"
token = "t"
requests_per_second = 100
[mirror]
since = "2026-02-01T00:00:00Z"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[teams.north]
tag = "North"
manager = "Dana Ortiz <dana@example.com>"
[teams.nights]
tag_id = "201"
[teams.all-regions]
tag = "Regions"
[teams.listed]
learners = ["driver-1001", "driver-1002"]
[teams_from_tags]
parent = "Regions"
managers = {{ "South" = "Sam South <sam@example.com>" }}
escalation = "Safety <safety@example.com>"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
source = "{source}"
window = {window}
per_team = true
when_empty = "send"
deliver = [{{ webhook = "w" }}]
[[jobs]]
name = "north-only"
schedule = "0 8 * * Mon"
source = "{source}"
window = {window}
filters = {{ team = "South" }}
deliver = [{{ webhook = "w" }}]
"#,
        state = dir.join("state").display(),
    );
    config::load_str(&text, &dir.join("t.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

/// Each team's report rows: team name → assignment ids.
async fn rows_per_team(
    config: &Config,
    client: &trainwatch::samsara::Client,
    fire: DateTime<Utc>,
) -> BTreeMap<String, BTreeSet<String>> {
    let job = config.job("weekly").unwrap();
    let data = job::fetch(config, job, client, fire, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    job::reports(config, job, &data, fire)
        .into_iter()
        .map(|r| {
            let ids = r
                .assignments
                .iter()
                .map(|a| a.assignment_id.to_string())
                .collect();
            (r.team.unwrap().name, ids)
        })
        .collect()
}

fn assert_rows_match_the_simple_computation(
    org: &Org,
    rows: &BTreeMap<String, BTreeSet<String>>,
    label: &str,
) {
    for (team, tag) in TEAM_TAGS {
        let members = expected_members(org, tag);
        let want = expected_rows(org, &members);
        assert_eq!(
            rows.get(team),
            Some(&want),
            "{label}: team {team} (tag {tag})"
        );
    }
    let listed: BTreeSet<String> = ["driver-1001", "driver-1002"].map(String::from).into();
    assert_eq!(
        rows.get("listed"),
        Some(&expected_rows(org, &listed)),
        "{label}"
    );
    // Every team, the ones made from the children of Regions included, and no other.
    let names: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "East _ Dock",
            "North",
            "South",
            "all-regions",
            "listed",
            "nights",
            "north"
        ],
        "{label}"
    );
}

#[tokio::test]
async fn per_team_reports_from_the_mirror_have_exactly_the_rows_of_the_tag_members() {
    for seed in 1..=4 {
        let org = organisation(seed);
        let app = TestRun::generated(content(&org))
            .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
            .start()
            .await;
        let config = app.config.clone();
        let client = app.client();
        let fire = t0() + Duration::days(21);

        let rows = rows_per_team(&config, &client, fire).await;

        assert_rows_match_the_simple_computation(&org, &rows, &format!("mirror, seed {seed}"));
        // A team with grandchild tags only has members (North Yard A/B under North).
        assert!(
            org.drivers
                .iter()
                .any(|(_, t, _)| t.contains(&"111") || t.contains(&"112"))
        );
    }
}

#[tokio::test]
async fn per_team_reports_from_the_api_have_exactly_the_rows_of_the_tag_members() {
    for seed in 1..=4 {
        let org = organisation(seed);
        let app = TestRun::generated(content(&org))
            .config(|dir, uri| config(dir, uri, "api", "{ last = \"365d\" }"))
            .start()
            .await;
        let config = app.config.clone();
        let client = app.client();
        let fire = t0() + Duration::days(21);

        let rows = rows_per_team(&config, &client, fire).await;

        assert_rows_match_the_simple_computation(&org, &rows, &format!("api, seed {seed}"));
    }
}

#[tokio::test]
async fn a_job_filtered_to_a_team_made_from_a_tag_counts_only_its_members() {
    let org = organisation(9);
    for (source, window) in [
        ("mirror", "{ current = true }"),
        ("api", "{ last = \"365d\" }"),
    ] {
        let app = TestRun::generated(content(&org))
            .config(|dir, uri| config(dir, uri, source, window))
            .start()
            .await;
        let config = app.config.clone();
        let client = app.client();
        let fire = t0() + Duration::days(21);
        let job = config.job("north-only").unwrap();

        let data = job::fetch(&config, job, &client, fire, None).await.unwrap();

        let got: BTreeSet<String> = data.included(job).map(|a| a.id.to_string()).collect();
        let want = expected_rows(&org, &expected_members(&org, "120"));
        assert_eq!(got, want, "{source}");
    }
}

/// The organisation with driver 1001 in North Yard A and 1002 in South Yard.
fn with_movers(seed: u64, first: &'static str, second: &'static str) -> Org {
    let mut org = organisation(seed);
    org.drivers[0].1 = vec![first];
    org.drivers[0].2 = true;
    org.drivers[1].1 = vec![second];
    org.drivers[1].2 = false; // deactivated drivers are members too
    org
}

#[tokio::test]
async fn a_driver_who_moved_yards_is_in_the_old_team_before_the_move_and_the_new_one_after() {
    let before = with_movers(5, "111", "121");
    // Between the two runs 1001 moves from North Yard A to South Yard.
    let mut after = with_movers(5, "121", "121");
    after.assignments = before.assignments.clone();
    let app = TestRun::generated(content(&before))
        .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    let client = app.client();
    let first = t0() + Duration::days(14);
    let second = first + Duration::days(7);

    server.set_now(Some(first));
    let rows_first = rows_per_team(&config, &client, first).await;
    server.set_now(Some(second));
    let (active, deactivated) = wire_drivers(&after);
    server.set_drivers(active, deactivated);
    let rows_second = rows_per_team(&config, &client, second).await;

    let store = SqliteMirror::open(&config.state_dir).unwrap();
    let at = |t| trainwatch::mirror::teams_at(&config, &store, Wanted::All, t).unwrap();
    let mover = trainwatch::learner::LearnerId::from_wire("1001", "driver");
    assert!(at(first).get("North").unwrap().members.contains(&mover));
    assert!(!at(first).get("South").unwrap().members.contains(&mover));
    assert!(!at(second).get("North").unwrap().members.contains(&mover));
    assert!(at(second).get("South").unwrap().members.contains(&mover));
    // Asked again later, the first instant still has the old membership.
    assert!(
        at(first + Duration::days(6))
            .get("North")
            .unwrap()
            .members
            .contains(&mover)
    );

    // Each run's rows, against the simple computation on that run's tags;
    // rows of assignments not yet made at the first fire are left out there.
    let made_by = |org: &Org, t: DateTime<Utc>| {
        let mut org = Org {
            drivers: org.drivers.clone(),
            assignments: org.assignments.clone(),
        };
        org.assignments.retain(|a| {
            a["updatedAtTime"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                < t
        });
        org
    };
    assert_rows_match_the_simple_computation(&made_by(&before, first), &rows_first, "first run");
    assert_rows_match_the_simple_computation(&made_by(&after, second), &rows_second, "second run");
    let movers_rows = expected_rows(&before, &BTreeSet::from(["driver-1001".to_string()]));
    let first_movers: BTreeSet<String> = made_by(&before, first)
        .assignments
        .iter()
        .filter(|a| a["learner"]["id"] == "1001")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !first_movers.is_empty(),
        "the mover has assignments at the first fire"
    );
    assert!(first_movers.is_subset(&rows_first["North"]));
    assert!(first_movers.is_disjoint(&rows_first["South"]));
    assert!(movers_rows.is_disjoint(&rows_second["North"]));
    assert!(movers_rows.is_subset(&rows_second["South"]));
}

/// Every team's report of `weekly` fired at `fire`: team name → report.
async fn reports_at(
    config: &Config,
    client: &trainwatch::samsara::Client,
    fire: DateTime<Utc>,
) -> BTreeMap<String, trainwatch::report::Report> {
    let job = config.job("weekly").unwrap();
    let data = job::fetch(config, job, client, fire, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    job::reports(config, job, &data, fire)
        .into_iter()
        .map(|r| (r.team.clone().unwrap().name, r))
        .collect()
}

#[tokio::test]
async fn a_driver_who_moved_yards_has_left_the_old_teams_report_and_is_newly_overdue_in_the_other()
{
    let mut before = with_movers(5, "111", "121");
    // Two of the mover's assignments, untouched and overdue since before
    // the previous fire (as a driver who changes yards often has).
    for n in 0..2 {
        let mut v = common::assignment(
            &format!("a-1001-overdue-{n}"),
            "1001",
            "c1",
            "notStarted",
            &rfc(t0() + Duration::hours(n)),
        );
        v["createdAtTime"] = json!(rfc(t0() - Duration::days(1)));
        v["dueAtTime"] = json!(rfc(t0() + Duration::days(2 + n)));
        before.assignments.push(v);
    }
    // Between the two fires 1001 moves from North Yard A to South Yard.
    let mut after = with_movers(5, "121", "121");
    after.assignments = before.assignments.clone();
    let app = TestRun::generated(content(&before))
        .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    let client = app.client();
    let job = config.job("weekly").unwrap();
    let now_fire = t0() + Duration::days(21);
    let since = job::previous_fires(job, now_fire, 1)[0];

    // The mirror syncs at the previous fire with the old tags, then at
    // this one with the new.
    server.set_now(Some(since));
    let then = reports_at(&config, &client, since).await;
    server.set_now(Some(now_fire));
    let (active, deactivated) = wire_drivers(&after);
    server.set_drivers(active, deactivated);
    let now = reports_at(&config, &client, now_fire).await;

    let movers_overdue = |report: &trainwatch::report::Report| -> BTreeSet<String> {
        report
            .overdue
            .iter()
            .filter(|r| r.learner.id == "driver-1001")
            .map(|r| r.assignment_id.to_string())
            .collect()
    };
    // Overdue in North's report at the previous fire and still overdue now,
    // but now in South's report.
    let moved: BTreeSet<String> = movers_overdue(&then["North"])
        .intersection(&movers_overdue(&now["South"]))
        .cloned()
        .collect();
    assert!(
        !moved.is_empty(),
        "the mover has overdue training that moved"
    );
    assert!(movers_overdue(&now["North"]).is_empty());

    let north = now["North"].changes.as_ref().expect("North's changes");
    let left: BTreeSet<String> = north
        .resolved
        .iter()
        .filter(|r| r.how == "left the report")
        .map(|r| r.row.assignment_id.to_string())
        .collect();
    assert_eq!(
        left, moved,
        "North: exactly the mover's overdue left the report"
    );

    let south = now["South"].changes.as_ref().expect("South's changes");
    let newly: BTreeSet<String> = south
        .newly_overdue
        .iter()
        .map(|r| r.assignment_id.to_string())
        .collect();
    assert!(moved.is_subset(&newly), "South: {moved:?} not in {newly:?}");
    assert!(
        south
            .resolved
            .iter()
            .all(|r| !moved.contains(&*r.row.assignment_id)),
        "what moved in is not also resolved"
    );
    let movers_rows_now = now["South"]
        .assignments
        .iter()
        .filter(|a| a.learner_id == "driver-1001")
        .count() as u64;
    assert!(
        south.new_assignments >= movers_rows_now,
        "the mover's {movers_rows_now} assignments are new to South ({} new)",
        south.new_assignments
    );
}

#[tokio::test]
async fn from_the_api_a_move_shows_at_the_next_run() {
    let before = with_movers(6, "112", "121");
    let mut after = with_movers(6, "121", "121");
    after.assignments = before.assignments.clone();
    let app = TestRun::generated(content(&before))
        .config(|dir, uri| config(dir, uri, "api", "{ last = \"365d\" }"))
        .start()
        .await;
    let server = app.server();
    let config = app.config.clone();
    let client = app.client();
    let fire = t0() + Duration::days(21);

    let rows_first = rows_per_team(&config, &client, fire).await;
    let (active, deactivated) = wire_drivers(&after);
    server.set_drivers(active, deactivated);
    let rows_second = rows_per_team(&config, &client, fire + Duration::days(7)).await;

    assert_rows_match_the_simple_computation(&before, &rows_first, "first run");
    assert_rows_match_the_simple_computation(&after, &rows_second, "second run");
}

#[tokio::test]
async fn a_tag_that_does_not_exist_fails_the_run_naming_it() {
    let org = organisation(3);
    for source in ["mirror", "api"] {
        let app = TestRun::generated(content(&org))
            .config(|dir, uri| config(dir, uri, source, "{ last = \"365d\" }"))
            .start()
            .await;
        let mut config = app.config.clone();
        config.teams.get_mut("north").unwrap().members =
            trainwatch::config::Members::Tag("Nort".into());
        let client = app.client();
        let job = config.job("weekly").unwrap();

        let err = job::fetch(&config, job, &client, t0() + Duration::days(21), None)
            .await
            .unwrap_err();

        let text = format!("{err:#}");
        assert!(
            text.contains("team north: `tag`: no tag is named `Nort` in the organisation"),
            "{source}: {text}"
        );
    }
}

#[tokio::test]
async fn the_teams_listing_says_source_member_count_and_manager_for_each_team() {
    let org = organisation(2);
    let app = TestRun::generated(content(&org))
        .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
        .start()
        .await;
    let config = app.config.clone();
    let client = app.client();
    let at = t0() + Duration::days(21);
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    mirror::sync(&store, &client, &config.mirror, at, None)
        .await
        .unwrap();

    let teams = trainwatch::mirror::teams_at(&config, &store, Wanted::All, at).unwrap();
    let lines = teams::lines(&teams);

    let n = |tag| expected_members(&org, tag).len();
    let members = |n: usize| format!("{n} member{}", if n == 1 { "" } else { "s" });
    let want: Vec<(String, String, String, String)> = vec![
        (
            "East _ Dock".into(),
            "teams_from_tags".into(),
            members(n("130")),
            "no manager".into(),
        ),
        (
            "North".into(),
            "teams_from_tags".into(),
            members(n("110")),
            "no manager".into(),
        ),
        (
            "South".into(),
            "teams_from_tags".into(),
            members(n("120")),
            "Sam South <sam@example.com>".into(),
        ),
        (
            "all-regions".into(),
            "tag Regions".into(),
            members(n("100")),
            "no manager".into(),
        ),
        (
            "listed".into(),
            "learners".into(),
            members(2),
            "no manager".into(),
        ),
        (
            "nights".into(),
            "tag Nights".into(),
            members(n("201")),
            "no manager".into(),
        ),
        (
            "north".into(),
            "tag North".into(),
            members(n("110")),
            "Dana Ortiz <dana@example.com>".into(),
        ),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (line, (name, source, count, manager)) in lines.iter().zip(&want) {
        let cols: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cols, [name.as_str(), source, count, manager], "{line}");
    }
    // The team made from "East / Dock" reads as the tag's own name.
    let east = teams.get("East _ Dock").unwrap();
    assert_eq!(east.team.display_name.as_deref(), Some("East / Dock"));
    assert_eq!(
        east.team.escalation.as_deref(),
        Some("Safety <safety@example.com>")
    );
}

#[tokio::test]
async fn a_child_tag_without_a_manager_skips_only_its_manager_email() {
    let org = organisation(4);
    let server = SampleServer::start_with(content(&org)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
state_dir = "{state}"
[samsara]
base_url = "{uri}"
token = "t"
[mirror]
since = "2026-02-01T00:00:00Z"
[smtp]
host = "127.0.0.1"
security = "none"
from = "Reports <reports@example.com>"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[teams_from_tags]
parent = "Regions"
managers = {{ "South" = "Sam South <sam@example.com>" }}
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ current = true }}
per_team = true
when_empty = "send"
deliver = [{{ email = {{ to = ["{{{{ team.manager }}}}"], template = "overdue" }} }}, {{ webhook = "w" }}]
"#,
        state = dir.path().join("state").display(),
        uri = server.base_url,
    );
    let config = config::load_str(&text, &dir.path().join("t.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let client = common::client(server.base_url.as_str());
    let job = config.job("weekly").unwrap();
    let fire = t0() + Duration::days(21);
    let data = job::fetch(&config, job, &client, fire, None).await.unwrap();
    let reports = job::reports(&config, job, &data, fire);
    let renderer = trainwatch::render::Renderer::new(None).unwrap();

    let outbox = trainwatch::outbox::build(&config, job, data.window, &reports, &renderer).unwrap();

    let sent: BTreeSet<(String, String)> = outbox
        .items
        .iter()
        .map(|i| (i.team.clone().unwrap(), i.kind.to_string()))
        .collect();
    let pair = |t: &str, k: &str| (t.to_string(), k.to_string());
    assert_eq!(
        sent,
        BTreeSet::from([
            pair("East _ Dock", "json"),
            pair("North", "json"),
            pair("South", "email"),
            pair("South", "json"),
        ])
    );
    let skipped: Vec<(&str, &str)> = outbox
        .skipped
        .iter()
        .map(|s| (s.team.as_deref().unwrap(), s.reason.as_str()))
        .collect();
    let why = "delivery 1 (email) not sent: the team has no manager for its `{{ team.manager }}` recipient";
    assert_eq!(skipped, [("East _ Dock", why), ("North", why)]);
}

#[tokio::test]
async fn from_the_api_a_tag_with_more_than_100_descendants_is_asked_for_in_chunks() {
    // North has 150 yards; the server refuses more than 100 ids per list.
    let mut tags: Vec<Value> = TAGS.iter().map(|t| tag_json(t.0)).collect();
    for y in 0..150 {
        tags.push(
            json!({"id": format!("5{y:03}"), "name": format!("Yard {y}"), "parentTagId": "110"}),
        );
    }
    let yard = |y: usize| json!({"id": format!("5{y:03}"), "name": format!("Yard {y}"), "parentTagId": "110"});
    let mut d1 = driver("1001", &[]);
    d1["tags"] = json!([yard(3)]);
    let mut d2 = driver("1002", &[]);
    d2["tags"] = json!([yard(149)]);
    let d3 = driver("1003", &["121"]);
    let server = SampleServer::start_with(SampleContent {
        courses: vec![json!({"id": "c1", "title": "Course 1"})],
        active: vec![d1, d3],
        deactivated: vec![d2],
        tags,
        ..SampleContent::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        server.base_url.as_str(),
        "api",
        "{ last = \"365d\" }",
    );
    let client = common::client(server.base_url.as_str());

    let teams = teams::from_api(&config, &client, Wanted::All)
        .await
        .unwrap();

    let ids = |team: &str| -> Vec<String> {
        teams
            .get(team)
            .unwrap()
            .members
            .iter()
            .map(|l| l.as_str().to_string())
            .collect()
    };
    assert_eq!(ids("north"), ["driver-1001", "driver-1002"]);
    assert_eq!(ids("South"), ["driver-1003"]);
    assert_eq!(
        ids("all-regions"),
        ["driver-1001", "driver-1002", "driver-1003"]
    );
}

/// The bundled sample's drivers under the tag `tag` (walking each driver's
/// tags up through `tags.json`), counted from the files themselves.
fn sample_members(api: &Path, tag: &str) -> usize {
    let read = |f: &str| -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(api.join(f)).unwrap()).unwrap();
        v["data"].as_array().unwrap().clone()
    };
    let tags = read("tags.json");
    let parent = |id: &str| -> Option<String> {
        tags.iter()
            .find(|t| t["id"] == id)
            .and_then(|t| t["parentTagId"].as_str().map(str::to_string))
    };
    let under = |mut id: String| {
        for _ in 0..tags.len() {
            if id == tag {
                return true;
            }
            match parent(&id) {
                Some(p) => id = p,
                None => return false,
            }
        }
        false
    };
    ["drivers-active.json", "drivers-deactivated.json"]
        .iter()
        .flat_map(|f| read(f))
        .filter(|d| {
            d["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| under(t["id"].as_str().unwrap().to_string()))
        })
        .count()
}

#[test]
fn trainwatch_teams_prints_one_line_per_team_on_the_bundled_sample() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/api");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        format!(
            r#"
state_dir = "{state}"
[samsara]
sample_data = "{api}"
[teams.west]
tag = "West Hub"
manager = "Miguel <miguel@example.com>"
[teams.listed]
learners = ["driver-281474"]
[teams_from_tags]
parent = "Regions"
managers = {{ "North Yard" = "Dana Ortiz <dana@example.com>" }}
"#,
            state = dir.path().join("state").display(),
            api = api.display(),
        ),
    )
    .unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainwatch"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "teams",
            "--at",
            "2026-11-23T08:00:00-06:00",
        ])
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let members = |n: usize| format!("{n} member{}", if n == 1 { "" } else { "s" });
    let n = |tag| members(sample_members(&api, tag));
    let want = [
        ["East Depot", "teams_from_tags", &n("4817"), "no manager"],
        [
            "North Yard",
            "teams_from_tags",
            &n("4815"),
            "Dana Ortiz <dana@example.com>",
        ],
        ["South Yard", "teams_from_tags", &n("4816"), "no manager"],
        ["West Hub", "teams_from_tags", &n("4818"), "no manager"],
        ["listed", "learners", &members(1), "no manager"],
        [
            "west",
            "tag West Hub",
            &n("4818"),
            "Miguel <miguel@example.com>",
        ],
    ];
    assert_eq!(rows, want, "{text}");
    // West Hub's drivers include those of its child tag, West Hub Nights.
    assert!(sample_members(&api, "4818") > sample_members(&api, "4830"));
}

#[tokio::test]
async fn an_instant_before_the_mirror_knew_any_tags_uses_the_first_tags_and_says_so() {
    let org = organisation(8);
    let app = TestRun::generated(content(&org))
        .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
        .start()
        .await;
    let config = app.config.clone();
    let client = app.client();
    let store = SqliteMirror::open(&config.state_dir).unwrap();
    let synced = t0() + Duration::days(21);
    mirror::sync(&store, &client, &config.mirror, synced, None)
        .await
        .unwrap();

    let earlier =
        trainwatch::mirror::teams_at(&config, &store, Wanted::All, synced - Duration::days(7))
            .unwrap();
    let then = trainwatch::mirror::teams_at(&config, &store, Wanted::All, synced).unwrap();

    for (team, tag) in TEAM_TAGS {
        let want: BTreeSet<String> = expected_members(&org, tag);
        let got: BTreeSet<String> = earlier
            .get(team)
            .unwrap()
            .members
            .iter()
            .map(|l| l.as_str().to_string())
            .collect();
        assert_eq!(got, want, "{team}");
    }
    assert_eq!(
        earlier.warnings,
        [format!(
            "team membership: the mirror knows drivers' tags from {} on; teams as of {} use the tags of that first sync",
            synced.to_rfc3339(),
            (synced - Duration::days(7)).to_rfc3339()
        )]
    );
    assert!(then.warnings.is_empty());
}

#[tokio::test]
async fn a_job_whose_team_has_nobody_in_it_reports_nothing_rather_than_everybody() {
    let mut org = organisation(10);
    for d in &mut org.drivers {
        d.1.clear(); // nobody carries a tag
    }
    for (source, window) in [
        ("mirror", "{ current = true }"),
        ("api", "{ last = \"365d\" }"),
    ] {
        let app = TestRun::generated(content(&org))
            .config(|dir, uri| config(dir, uri, source, window))
            .start()
            .await;
        let config = app.config.clone();
        let client = app.client();
        let job = config.job("north-only").unwrap();

        let data = job::fetch(&config, job, &client, t0() + Duration::days(21), None)
            .await
            .unwrap();

        assert!(!org.assignments.is_empty());
        assert_eq!(data.included(job).count(), 0, "{source}");
    }
}

#[tokio::test]
async fn an_archive_of_a_team_from_a_tag_names_its_members_in_the_manifest_query() {
    let org = organisation(11);
    let app = TestRun::generated(content(&org))
        .config(|dir, uri| config(dir, uri, "mirror", "{ current = true }"))
        .start()
        .await;
    let dir = &app.dir;
    let mut config = app.config.clone();
    let client = app.client();
    let archive = trainwatch::config::Delivery::Archive(trainwatch::config::ArchiveDelivery {
        dir: dir.path().join("audit"),
    });
    let job = config
        .jobs
        .iter_mut()
        .find(|j| j.name == "north-only")
        .unwrap();
    job.deliver = vec![archive];
    job.when_empty = trainwatch::config::WhenEmpty::Send;
    let job = config.job("north-only").unwrap();
    let fire = t0() + Duration::days(21);
    let data = job::fetch(&config, job, &client, fire, None).await.unwrap();
    let reports = job::reports(&config, job, &data, fire);
    let renderer = trainwatch::render::Renderer::new(None).unwrap();

    let outbox = trainwatch::outbox::build_with_teams(
        &config,
        job,
        data.window,
        &reports,
        &data.teams,
        &renderer,
    )
    .unwrap();

    let trainwatch::outbox::Payload::Archive { manifest, .. } = &outbox.items[0].payload else {
        panic!("an archive");
    };
    let south = expected_members(&org, "120");
    assert!(!south.is_empty());
    let named: BTreeSet<String> = manifest["query"]["learnerIds"]
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(named, south);
}

#[tokio::test]
async fn a_mirror_without_tags_fails_a_tag_team_run_instead_of_sending_empty_reports() {
    let org = organisation(12);
    let mut served = content(&org);
    served.tags.clear();
    let server = SampleServer::start_with(served).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        server.base_url.as_str(),
        "mirror",
        "{ current = true }",
    );
    let client = common::client(server.base_url.as_str());
    let job = config.job("weekly").unwrap();

    let err = job::fetch(&config, job, &client, t0() + Duration::days(21), None)
        .await
        .unwrap_err();

    let text = format!("{err:#}");
    assert!(
        text.contains("the mirror holds no tags, so teams that follow tags cannot be resolved: the token needs the scope *Read Tags*"),
        "{text}"
    );
}
