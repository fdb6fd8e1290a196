//! Per-team fan-out: one fetch of the union of the teams' learners, rows split per team.

use crate::common;

use common::{assignment, page};
use serde_json::json;
use trainwatch::config;
use trainwatch::job;
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONFIG: &str = r#"
timezone = "America/Chicago"
[samsara]
base_url = "BASE"
token = "t"
# The direct API query (Part 1), not the mirror.
[mirror]
enabled = false
[teams.north]
manager = "Dana <dana@example.com>"
learners = ["driver-1", "driver-2"]
[teams.south]
manager = "Sam <sam@example.com>"
learners = ["driver-2", "driver-3"]
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = { last = "7d" }
per_team = true
deliver = [{ webhook = "w" }]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn one_fetch_for_all_teams_and_a_learner_in_two_teams_is_in_both_reports() {
    let server = MockServer::start().await;
    Mock::given(path("/training-assignments/stream"))
        .and(query_param("learnerIds", "driver-1,driver-2,driver-3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                assignment("a1", "1", "c1", "notStarted", "2026-03-05T00:00:00Z"),
                assignment("a2", "2", "c1", "completed", "2026-03-05T00:00:00Z"),
                assignment("a3", "3", "c2", "inProgress", "2026-03-05T00:00:00Z"),
            ],
            "",
            false,
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/training-courses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .mount(&server)
        .await;
    Mock::given(path("/fleet/drivers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "2", "name": "Both Teams"})],
            "",
            false,
        )))
        .mount(&server)
        .await;
    let source = CONFIG.replace("BASE", &server.uri());
    let config = config::load_str(&source, "t.toml".as_ref(), &|_| None).unwrap();
    let job = config.job("weekly").unwrap();
    let client = common::client(&server.uri());
    let fire = "2026-03-09T14:00:00Z".parse().unwrap();

    let data = job::fetch(&config, job, &client, fire, None).await.unwrap();
    let reports = job::reports(&config, job, &data, fire);

    assert_eq!(reports.len(), 2);
    let ids = |i: usize| -> Vec<&str> {
        reports[i]
            .assignments
            .iter()
            .map(|r| r.assignment_id.as_str())
            .collect()
    };
    assert_eq!(reports[0].team.as_ref().unwrap().name, "north");
    assert_eq!(
        reports[0].team.as_ref().unwrap().manager.as_deref(),
        Some("Dana <dana@example.com>")
    );
    assert_eq!(ids(0), ["a1", "a2"]);
    assert_eq!(reports[1].team.as_ref().unwrap().name, "south");
    assert_eq!(ids(1), ["a2", "a3"]);
    assert_eq!(reports[0].totals.completed, 1);
    assert_eq!(reports[1].totals.learners, 2);
}

#[test]
fn a_team_reads_as_its_display_name_or_else_its_key() {
    let source = CONFIG.replace("BASE", "http://127.0.0.1:9").replace(
        "[teams.north]\n",
        "[teams.north]\ndisplay_name = \"North Yard\"\n",
    );
    let config = config::load_str(&source, "t.toml".as_ref(), &|_| None).unwrap();
    let job = config.job("weekly").unwrap();
    let window = trainwatch::window::Window {
        start: "2026-03-02T14:00:00Z".parse().unwrap(),
        end: "2026-03-09T14:00:00Z".parse().unwrap(),
    };
    let data = common::held_data(&config, job, window, Vec::new());

    let reports = job::reports(&config, job, &data, data.window.end);

    let teams: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| r.team.as_ref().unwrap())
        .map(|t| (t.name.as_str(), t.display_name.as_str()))
        .collect();
    assert_eq!(teams, [("north", "North Yard"), ("south", "south")]);
}

/// A state large enough to be folded on several threads (each thread some
/// teams' reports over the whole state): every team's report equals the
/// one `report::build` gives for that team's members alone, to the bit
/// (average scores are float sums, so the order of adding must not change),
/// with the rows in the state's order. Three teams on two cores split
/// unevenly; a learner in two teams is in both.
#[test]
fn a_large_states_team_reports_folded_on_threads_equal_each_teams_built_alone() {
    let source = CONFIG.replace("BASE", "http://127.0.0.1:9").replace(
        "[webhooks.w]",
        "[teams.west]\nlearners = [\"driver-3\", \"driver-4\", \"driver-5\"]\n[webhooks.w]",
    );
    let config = config::load_str(&source, "t.toml".as_ref(), &|_| None).unwrap();
    let job = config.job("weekly").unwrap();
    let window = trainwatch::window::Window {
        start: "2026-03-02T14:00:00Z".parse().unwrap(),
        end: "2026-03-09T14:00:00Z".parse().unwrap(),
    };
    let statuses = ["notStarted", "inProgress", "completed", "archivedByAdmin"];
    let assignments: Vec<trainwatch::samsara::Assignment> = (0..30_000)
        .map(|i| {
            let mut a = common::assignment(
                &format!("a-{i:06}"),
                &(1 + i % 6).to_string(),
                &format!("c{}", i % 7),
                statuses[i % 4],
                &format!("2026-03-0{}T{:02}:00:00Z", 3 + i % 5, i % 24),
            );
            a["dueAtTime"] = json!(format!("2026-0{}-15T00:00:00Z", 1 + i % 4));
            a["scorePercent"] = json!((i % 1000) as f64 / 7.0);
            a["isOverdue"] = json!(i % 3 == 0);
            if i % 11 == 0 {
                a["deletedAtTime"] = json!("2026-03-08T00:00:00Z");
            }
            serde_json::from_value(a).unwrap()
        })
        .collect();
    let data = common::held_data(&config, job, window, assignments);

    let reports = job::reports(&config, job, &data, window.end);

    assert_eq!(reports.len(), 3);
    for report in &reports {
        let team = report.team.clone().unwrap();
        let members = &data.teams.get(&team.name).unwrap().members;
        let meta = trainwatch::report::Meta {
            job: trainwatch::report::JobInfo::of(job),
            window,
            kind: job.window.kind(),
            timezone: job.timezone,
            generated_at: window.end,
            team: Some(team),
            include_deleted: false,
        };
        let alone = trainwatch::report::build(
            data.assignments
                .iter()
                .filter(|a| members.contains(&a.learner)),
            &meta,
            &data.names,
        );
        assert!(alone.totals.assignments > 4_000, "a large report");
        assert_eq!(*report, alone, "team {}", meta.team.unwrap().name);
    }
}
