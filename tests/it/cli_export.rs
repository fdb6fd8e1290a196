//! The real binary: `export` and `validate` against a local Samsara (wiremock).

use crate::common;

use std::path::Path;

use assert_cmd::Command;
use common::{assignment, page};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "s3cr3t-token-value";

fn write_config(dir: &Path, base_url: &str, extra_samsara: &str) -> std::path::PathBuf {
    let cfg = format!(
        r#"
timezone = "America/Chicago"

[samsara]
base_url = "{base_url}"
token = "${{TW_TEST_TOKEN}}"
{extra_samsara}

# These tests are about the direct API query (Part 1), not the mirror.
[mirror]
enabled = false

[teams.north-yard]
manager = "Dana Ortiz <dana.ortiz@example.com>"
learners = ["driver-1", "driver-2"]

[webhooks.safety]
kind = "slack"
url = "https://hooks.slack.invalid/T000/B000/XXXX"

[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ last = "7d" }}
filters = {{ team = "north-yard", status = ["notStarted", "inProgress", "completed"] }}
deliver = [{{ webhook = "safety", template = "digest" }}]
"#
    );
    let p = dir.join("config.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

async fn samsara_with_data() -> MockServer {
    let server = MockServer::start().await;
    let mut deleted = assignment("a3", "2", "c2", "notStarted", "2026-03-05T00:00:00Z");
    deleted["deletedAtTime"] = json!("2026-03-05T00:00:00Z");
    let mut overdue = assignment("a1", "1", "c1", "inProgress", "2026-03-04T00:00:00Z");
    overdue["dueAtTime"] = json!("2026-03-01T00:00:00Z");
    overdue["isOverdue"] = json!(true);
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .and(query_param("after", "next"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                deleted,
                // A newer version of a1 arrives on the second page.
                assignment("a1", "1", "c1", "completed", "2026-03-06T00:00:00Z"),
            ],
            "",
            false,
        )))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .and(query_param("startTime", "2026-03-02T13:00:00.000Z"))
        .and(query_param("endTime", "2026-03-09T13:00:00.000Z"))
        .and(query_param("learnerIds", "driver-1,driver-2"))
        .and(query_param("status", "notStarted,inProgress,completed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                overdue,
                assignment("a2", "2", "c2", "notStarted", "2026-03-04T00:00:00Z"),
            ],
            "next",
            true,
        )))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(path("/training-courses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "c1", "title": "Hazmat, \"Level 1\"", "category": {"id": "k1", "name": "Safety"}})],
            "",
            false,
        )))
        .mount(&server)
        .await;
    Mock::given(path("/fleet/drivers"))
        .and(query_param("driverActivationStatus", "active"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "1", "name": "Zoë Ångström"})],
            "",
            false,
        )))
        .mount(&server)
        .await;
    Mock::given(path("/fleet/drivers"))
        .and(query_param("driverActivationStatus", "deactivated"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .mount(&server)
        .await;
    server
}

fn trainwatch(config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("trainwatch").unwrap();
    cmd.arg("--config")
        .arg(config)
        .env("TW_TEST_TOKEN", TOKEN)
        .env_remove("TRAINWATCH_CONFIG");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_the_jobs_deduplicated_assignments_with_names_as_jsonl() {
    let server = samsara_with_data().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.uri(), "");
    let out = dir.path().join("out.jsonl");

    let result = trainwatch(&config)
        .args([
            "export",
            "weekly",
            "--at",
            "2026-03-09T07:00:00-06:00",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // Not on a terminal there is no progress: standard error holds only the
    // warnings that say which names fell back to ids, and why.
    let stderr = String::from_utf8_lossy(&result.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].ends_with(
            "learners not found in /fleet/drivers (active or deactivated), shown by id: driver-2"
        ),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with("courses not found in /training-courses, shown by id: c2"),
        "{stderr}"
    );
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<_> = rows
        .iter()
        .map(|r| r["assignment_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["a2", "a1"],
        "deleted a3 dropped, a1 once, in stream order"
    );
    let a1 = &rows[1];
    assert_eq!(a1["status"], "completed", "the newest version of a1");
    assert_eq!(a1["learner_id"], "driver-1");
    assert_eq!(a1["learner_name"], "Zoë Ångström");
    assert_eq!(a1["course_title"], "Hazmat, \"Level 1\"");
    assert_eq!(a1["category_name"], "Safety");
    let a2 = &rows[0];
    assert_eq!(
        a2["learner_name"], "driver-2",
        "an unknown learner falls back to the id"
    );
    assert_eq!(
        a2["course_title"], "c2",
        "an unknown course falls back to the id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_as_csv_quotes_names_the_rfc4180_way() {
    let server = samsara_with_data().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.uri(), "");

    let result = trainwatch(&config)
        .args([
            "export",
            "weekly",
            "--at",
            "2026-03-09T13:00:00Z",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let text = String::from_utf8(result.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        trainwatch::export::CSV_HEADER.join(",")
    );
    let a1 = lines.find(|l| l.starts_with("a1,")).unwrap();
    assert!(a1.contains(r#","Hazmat, ""Level 1""","#), "{a1}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.records().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fetch_exits_1_names_the_place_and_leaves_no_output_file() {
    let server = MockServer::start().await;
    Mock::given(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.uri(), "max_attempts = 2");
    let out = dir.path().join("out.csv");

    let result = trainwatch(&config)
        .args(["export", "weekly", "--at", "2026-03-09T13:00:00Z", "--out"])
        .arg(&out)
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("job weekly: fetching assignments"),
        "{stderr}"
    );
    assert!(
        stderr.contains("GET /training-assignments/stream, page 1: gave up after 2 attempts"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
    assert!(!out.exists(), "no partial file");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_says_which_scope_it_needs() {
    let server = MockServer::start().await;
    Mock::given(path("/training-assignments/stream"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "Unauthorized", "requestId": "abc"})),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.uri(), "");

    let result = trainwatch(&config)
        .args(["export", "weekly", "--at", "2026-03-09T13:00:00Z"])
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("Read Training Assignments"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

#[test]
fn an_unknown_job_is_a_usage_error_listing_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");

    let result = trainwatch(&config)
        .args(["export", "nope"])
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&result.stderr).contains("no job named `nope`"));
    assert!(String::from_utf8_lossy(&result.stderr).contains("jobs: weekly"));
}

#[test]
fn validate_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");

    let result = trainwatch(&config).arg("validate").output().unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(String::from_utf8_lossy(&result.stdout).contains("OK (1 job, 1 team, 1 webhook)"));
}

#[test]
fn validate_prints_all_five_mistakes_with_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broken.toml");
    std::fs::write(
        &cfg,
        r#"timezone = "America/Chicago"
stat_dir = "state"

[samsara]
token = "${TW_MISSING_VARIABLE}"

[[jobs]]
name = "a"
schedule = "0 8 * * Mon"
timezone = "Mars/Olympus_Mons"
window = { last = "7d" }
deliver = [{ webhook = "nowhere" }]

[[jobs]]
name = "b"
schedule = "61 8 * * *"
window = { previous = "fortnight" }
deliver = [{ archive = { dir = "audit" } }]
"#,
    )
    .unwrap();

    let result = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&cfg)
        .arg("validate")
        .env_remove("TW_MISSING_VARIABLE")
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    let located = |line: usize| format!("broken.toml:{line}:");
    for (line, words) in [
        (2, "stat_dir"),
        (5, "TW_MISSING_VARIABLE"),
        (10, "Mars/Olympus_Mons"),
        (12, "nowhere"),
        (16, "61 8 * * *"),
        (17, "fortnight"),
    ] {
        let hit = stderr
            .lines()
            .any(|l| l.contains(&located(line)) && l.contains(words));
        assert!(
            hit,
            "no problem at line {line} mentioning {words}:\n{stderr}"
        );
    }
    assert!(stderr.contains("6 problems"), "{stderr}");
}

/// A Samsara whose token may read assignments, drivers and tags, not courses.
async fn samsara_without_the_courses_scope() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], "", false)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/training-courses"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Forbidden", "requestId": "r-1"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fleet/drivers"))
        .and(query_param("limit", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "281474", "name": "Ana Ruiz"})],
            "more",
            true,
        )))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    for (status, drivers) in [
        (
            "active",
            vec![
                json!({"id": "281474", "name": "Ana Ruiz"}),
                json!({"id": "46282156", "name": "Bo Li"}),
            ],
        ),
        (
            "deactivated",
            vec![json!({"id": "77", "name": "Cy Old", "driverActivationStatus": "deactivated"})],
        ),
    ] {
        Mock::given(method("GET"))
            .and(path("/fleet/drivers"))
            .and(query_param("driverActivationStatus", status))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(drivers, "", false)))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/tags"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                json!({"id": "4815", "name": "North Yard", "parentTagId": "1"}),
                json!({"id": "1", "name": "Regions"}),
            ],
            "",
            false,
        )))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn init_checks_each_scope_once_lists_tags_and_drivers_and_writes_a_config_that_validates() {
    let server = samsara_without_the_courses_scope().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trainwatch.toml");

    let result = Command::cargo_bin("trainwatch")
        .unwrap()
        .args(["init", "--base-url", &server.uri(), "--out"])
        .arg(&config)
        .env("SAMSARA_API_TOKEN", TOKEN)
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim_end).collect();
    assert!(
        lines.contains(&"  ok       Read Training Assignments    GET /training-assignments/stream"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"  MISSING  Read Training Courses        GET /training-courses: HTTP 403, add this scope, or reports show course ids instead of titles"),
        "{stdout}"
    );
    assert!(
        lines.contains(&"3 drivers (2 active, 1 deactivated)."),
        "{stdout}"
    );
    assert!(lines.contains(&"  North Yard (id 4815)"), "{stdout}");
    assert!(
        stdout.contains("trainwatch --config "),
        "says the next command: {stdout}"
    );
    assert!(!stdout.contains(TOKEN), "never the token");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("# learners = [\"driver-281474\", \"driver-46282156\", \"driver-77\"]"),
        "{written}"
    );

    // The config it wrote needs only the token.
    let validate = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .arg("validate")
        .env("SAMSARA_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    // And `init` never overwrites it.
    let again = Command::cargo_bin("trainwatch")
        .unwrap()
        .args(["init", "--base-url", &server.uri(), "--out"])
        .arg(&config)
        .env("SAMSARA_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);
}

#[test]
fn init_without_a_token_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();

    let result = Command::cargo_bin("trainwatch")
        .unwrap()
        .args(["init", "--base-url", "http://127.0.0.1:9", "--out"])
        .arg(dir.path().join("config.toml"))
        .env_remove("SAMSARA_API_TOKEN")
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("SAMSARA_API_TOKEN is not set"), "{stderr}");
    assert!(
        stderr
            .contains("Read Training Assignments, Read Training Courses, Read Drivers, Read Tags"),
        "{stderr}"
    );
    assert!(!dir.path().join("config.toml").exists());
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let bash = Command::cargo_bin("trainwatch")
        .unwrap()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let man = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("man")
        .output()
        .unwrap();

    assert!(bash.status.success() && man.status.success());
    let bash = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.contains("_trainwatch()") && bash.contains("run-once"),
        "{bash}"
    );
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH trainwatch 1"), "{man}");
    assert!(man.contains("preview"), "{man}");
}
