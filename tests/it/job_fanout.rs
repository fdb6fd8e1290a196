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
    let data = job::JobData {
        window: trainwatch::window::Window {
            start: "2026-03-02T14:00:00Z".parse().unwrap(),
            end: "2026-03-09T14:00:00Z".parse().unwrap(),
        },
        assignments: Vec::new(),
        names: Default::default(),
        stats: Default::default(),
        teams: trainwatch::teams::resolve(
            &config,
            trainwatch::teams::Wanted::For(&job.filters),
            &[],
            &[],
        )
        .unwrap(),
        query: None,
        history: None,
        streamed: None,
    };

    let reports = job::reports(&config, job, &data, data.window.end);

    let teams: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| r.team.as_ref().unwrap())
        .map(|t| (t.name.as_str(), t.display_name.as_str()))
        .collect();
    assert_eq!(teams, [("north", "North Yard"), ("south", "south")]);
}
