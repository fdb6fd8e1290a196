//! Numbers and messages that agree with each other: every per-row flag in
//! the CSV and JSON matches the totals beside it (as of the window end), the
//! warnings name every id shown as an id and why, and CSV cells that a
//! spreadsheet would run as formulas are neutralised (JSON keeps them raw).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use trainwatch::config;
use trainwatch::export::{Format, Row, write_rows};
use trainwatch::job;
use trainwatch::report::Report;
use trainwatch::sample;
use trainwatch::samsara::{Client, Names};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The monthly audit of the bundled sample, fired on November 1st.
async fn monthly_audit() -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/config.toml");
    let config = config::load(&path).unwrap();
    let job = config.job("monthly-audit").unwrap().clone();
    let (settings, _server) = sample::client_settings(&config.samsara).await.unwrap();
    let client = Client::with_limits(settings, Default::default()).unwrap();
    let fire = utc("2026-11-01T00:05:00-05:00");
    let data = job::fetch(&config, &job, &client, fire, None)
        .await
        .unwrap();
    let mut reports = job::reports(&config, &job, &data, fire);
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

/// The simple definition, from the raw fields: open with a due date before
/// the window end.
fn simply_overdue(row: &Row, end: DateTime<Utc>) -> bool {
    (row.status == "notStarted" || row.status == "inProgress")
        && row.due_at.is_some_and(|due| due < end)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_csv_counts_as_many_overdue_rows_as_its_totals_say() {
    let report = monthly_audit().await;
    let end = utc(&report.window.end);

    let mut csv = Vec::new();
    write_rows(&report.assignments, Format::Csv, &mut csv).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (overdue_col, late_col) = (column("is_overdue"), column("is_completed_late"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let csv_overdue = records.iter().filter(|r| &r[overdue_col] == "true").count();
    let csv_late = records.iter().filter(|r| &r[late_col] == "true").count();

    assert!(report.totals.overdue > 0, "the sample has overdue rows");
    assert_eq!(csv_overdue as u64, report.totals.overdue);
    assert_eq!(csv_late as u64, report.totals.completed_late);
    let json_overdue = report.assignments.iter().filter(|r| r.is_overdue).count();
    assert_eq!(json_overdue as u64, report.totals.overdue);
    // And the second, deliberately simple computation agrees row by row
    // (the sample has no unknown statuses, where the API's flag decides).
    for row in &report.assignments {
        assert_eq!(row.is_overdue, simply_overdue(row, end), "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_warnings_name_every_id_that_fell_back_and_why() {
    let report = monthly_audit().await;

    let shown_as_id: Vec<&Row> = report
        .assignments
        .iter()
        .filter(|r| r.learner_name == r.learner_id)
        .collect();
    assert!(!shown_as_id.is_empty(), "the sample has an unknown driver");
    let learners = report
        .warnings
        .iter()
        .find(|w| w.starts_with("learners not found in /fleet/drivers (active or deactivated)"))
        .unwrap_or_else(|| panic!("{:#?}", report.warnings));
    for row in shown_as_id {
        assert!(learners.contains(&row.learner_id), "{learners}");
    }
    assert!(learners.contains("driver-999001"), "{learners}");

    let untitled: Vec<&Row> = report
        .assignments
        .iter()
        .filter(|r| r.course_title == r.course_id)
        .collect();
    assert!(!untitled.is_empty(), "the sample has an unknown course");
    let courses = report
        .warnings
        .iter()
        .find(|w| w.starts_with("courses not found in /training-courses, shown by id: "))
        .unwrap_or_else(|| panic!("{:#?}", report.warnings));
    for row in untitled {
        assert!(courses.contains(&row.course_id), "{courses}");
    }
}

#[test]
fn a_warning_lists_at_most_fifty_ids_and_counts_the_rest() {
    let names = Names::default();
    let learners: Vec<_> = (0..75)
        .map(|i| trainwatch::learner::LearnerId::parse(&format!("driver-{}", 100 + i)).unwrap())
        .collect();
    let warnings = names.fallback_warnings(&learners, ["c\r\n1"]);
    assert_eq!(warnings.len(), 2);
    assert!(
        warnings[0].ends_with("driver-149 and 25 more"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        warnings[1], "courses not found in /training-courses, shown by id: c  1",
        "an id from data never breaks the line"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn formula_names_are_neutralised_in_csv_and_kept_raw_in_json() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let page = |data: Vec<Value>| json!({"data": data, "pagination": {"endCursor": "", "hasNextPage": false}});
    let mut record = json!({
        "id": "=cmd|'/C calc'!A0",
        "course": {"id": "c1"},
        "learner": {"id": "1", "type": "driver"},
        "status": "@status",
        "createdAtTime": "2026-03-03T00:00:00Z",
        "updatedAtTime": "2026-03-04T00:00:00Z",
        "durationMinutes": -5,
        "scorePercent": -0.5,
    });
    record["dueAtTime"] = json!("2026-03-01T00:00:00Z");
    Mock::given(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![record])))
        .mount(&server)
        .await;
    Mock::given(path("/training-courses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![json!({
            "id": "c1", "title": "=HYPERLINK(\"http://x\")",
            "category": {"id": "+k", "name": "-Safety"}
        })])))
        .mount(&server)
        .await;
    Mock::given(path("/fleet/drivers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(vec![json!({"id": "1", "name": "\tTab Driver"})])),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[mirror]\nenabled = false\n\n[samsara]\nbase_url = \"{}\"\ntoken = \"t\"\n\n[[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\n\
             window = {{ last = \"7d\" }}\ndeliver = [{{ archive = {{ dir = \"a\" }} }}]\n",
            server.uri()
        ),
    )
    .unwrap();
    let export = |format: &'static str| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = assert_cmd::Command::cargo_bin("trainwatch")
                    .unwrap()
                    .arg("--config")
                    .arg(&config)
                    .args([
                        "export",
                        "j",
                        "--at",
                        "2026-03-09T00:00:00Z",
                        "--format",
                        format,
                    ])
                    .env_remove("TRAINWATCH_CONFIG")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
            .await
            .unwrap()
        }
    };

    let csv = export("csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(cell("assignment_id"), "'=cmd|'/C calc'!A0");
    assert_eq!(cell("course_title"), "'=HYPERLINK(\"http://x\")");
    assert_eq!(cell("category_id"), "'+k");
    assert_eq!(cell("category_name"), "'-Safety");
    assert_eq!(cell("learner_name"), "'\tTab Driver");
    assert_eq!(cell("status"), "'@status");
    assert_eq!(cell("learner_id"), "driver-1");
    // Numbers are not formulas: a negative one stays a number.
    assert_eq!(cell("duration_minutes"), "-5");
    assert_eq!(cell("score_percent"), "-0.5");

    let jsonl = export("jsonl").await;
    let raw: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(raw["assignment_id"], "=cmd|'/C calc'!A0");
    assert_eq!(raw["course_title"], "=HYPERLINK(\"http://x\")");
    assert_eq!(raw["learner_name"], "\tTab Driver");
    assert_eq!(raw["status"], "@status");
}
