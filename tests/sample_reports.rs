//! The bundled sample through the whole pipeline: the real binary's first
//! command, dry runs, and snapshots of every built-in template rendered from
//! the sample data (the sample server is real HTTP on loopback).

use std::path::Path;

use assert_cmd::Command;
use chrono::{DateTime, Utc};
use trainwatch::config;
use trainwatch::job;
use trainwatch::outbox::{self, Payload};
use trainwatch::render::Renderer;
use trainwatch::report::Report;
use trainwatch::sample;
use trainwatch::samsara::Client;

fn sample_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/config.toml")
}

fn trainwatch() -> Command {
    let mut cmd = Command::cargo_bin("trainwatch").unwrap();
    cmd.arg("--config")
        .arg(sample_config())
        .env_remove("SAMSARA_API_TOKEN");
    cmd
}

#[test]
fn the_readme_first_command_previews_every_team_with_no_token_and_no_network() {
    let out = tempfile::tempdir().unwrap();

    let result = trainwatch()
        .args([
            "preview",
            "weekly-overdue",
            "--at",
            "2026-11-23T08:00:00-06:00",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    for team in ["east-depot", "north-yard", "south-yard", "west-hub"] {
        let dir = out.path().join("weekly-overdue").join(team);
        for file in [
            "email.html",
            "email.txt",
            "email.eml",
            "slack.json",
            "msteams.json",
            "body.json",
            "assignments.csv",
            "report.html",
        ] {
            assert!(
                dir.join(file).is_file(),
                "{team}/{file} missing; stdout:\n{stdout}"
            );
        }
    }
    let eml =
        std::fs::read_to_string(out.path().join("weekly-overdue/north-yard/email.eml")).unwrap();
    assert!(
        eml.contains("Subject: Overdue training, north-yard: "),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"));
    let html =
        std::fs::read_to_string(out.path().join("weekly-overdue/south-yard/email.html")).unwrap();
    assert!(
        html.contains("O&#x27;Brien &amp; &lt;Sons&gt;")
            || html.contains("O&#39;Brien &amp; &lt;Sons&gt;"),
        "names are escaped"
    );
    assert!(!html.contains("<Sons>"), "never raw markup");
    assert!(stdout.contains("wrote 32 files"), "{stdout}");
}

#[test]
fn a_dry_run_says_what_would_go_to_whom_and_never_a_webhook_url() {
    let result = trainwatch()
        .args([
            "run-once",
            "daily-slack-digest",
            "--at",
            "2026-11-23T09:00:00-06:00",
            "--dry-run",
        ])
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("window [2026-11-22T00:00:00-06:00, 2026-11-23T00:00:00-06:00)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("slack     -     webhook safety-channel  1 Slack message"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing was sent"));
    assert!(
        !stdout.contains("http://") && !stdout.contains("sample-slack"),
        "no URL: {stdout}"
    );
}

/// Every report of a job on the sample, generated at the fire time.
async fn reports(job_name: &str, fire: &str) -> (config::Config, Vec<Report>) {
    let mut config = config::load(&sample_config()).unwrap();
    // The mirror of each call in a folder of its own, not the sample's state.
    let state = tempfile::tempdir().unwrap().keep();
    config.state_dir = state;
    let job = config.job(job_name).unwrap().clone();
    let (settings, _server) = sample::client_settings(&config.samsara).await.unwrap();
    let client = Client::with_limits(settings, Default::default()).unwrap();
    let fire: DateTime<Utc> = DateTime::parse_from_rfc3339(fire)
        .unwrap()
        .with_timezone(&Utc);
    let data = job::fetch(&config, &job, &client, fire, None)
        .await
        .unwrap();
    let reports = job::reports(&config, &job, &data, fire);
    (config, reports)
}

fn snap(name: &str, text: &str) {
    insta::with_settings!({ snapshot_suffix => name, prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("sample", text);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn every_built_in_template_renders_the_sample_as_its_snapshot() {
    let renderer = Renderer::new(None).unwrap();
    let (config, weekly) = reports("weekly-overdue", "2026-11-23T08:00:00-06:00").await;
    let north = weekly
        .iter()
        .find(|r| r.team.as_ref().unwrap().name == "north-yard")
        .unwrap();
    let (_, daily) = reports("daily-slack-digest", "2026-11-23T09:00:00-06:00").await;
    let (_, monthly) = reports("monthly-audit", "2026-11-01T00:05:00-05:00").await;
    let cases: [(&str, &Report); 3] = [
        ("overdue", north),
        ("digest", &daily[0]),
        ("audit", &monthly[0]),
    ];
    for (template, report) in cases {
        let email = renderer.email(template, report, None).unwrap();
        snap(&format!("{template}.subject"), &email.subject);
        snap(&format!("{template}.html"), &email.html);
        snap(&format!("{template}.txt"), &email.text);
        let slack = renderer.slack(template, report).unwrap();
        snap(
            &format!("{template}.slack.json"),
            &serde_json::to_string_pretty(&slack).unwrap(),
        );
        let teams = renderer.msteams(template, report).unwrap();
        snap(
            &format!("{template}.msteams.json"),
            &serde_json::to_string_pretty(&teams).unwrap(),
        );
        let body = renderer.json_body(template, report, false).unwrap();
        snap(
            &format!("{template}.body.json"),
            &serde_json::to_string_pretty(&body).unwrap(),
        );
    }
    snap(
        "audit.report.html",
        &renderer.archive_html(&monthly[0]).unwrap(),
    );
    snap(
        "assignments.csv",
        &String::from_utf8(outbox::csv_bytes(&monthly[0]).unwrap()).unwrap(),
    );

    // The whole outbox of the weekly job renders; each team's email goes to its manager.
    let job = config.job("weekly-overdue").unwrap();
    let window = trainwatch::window::compute(
        &job.window,
        "2026-11-23T14:00:00Z".parse().unwrap(),
        job.timezone,
        None,
    )
    .unwrap();
    let built = outbox::build(&config, job, window, &weekly, &renderer).unwrap();
    let recipients: Vec<_> = built
        .items
        .iter()
        .map(|i| (i.team.clone().unwrap(), i.recipient.clone()))
        .collect();
    assert_eq!(recipients.len(), 4, "{recipients:?}");
    for (team, to) in &recipients {
        let manager = config.teams[team].manager.clone().unwrap();
        assert_eq!(to, &manager);
    }
    assert!(
        built
            .items
            .iter()
            .all(|i| matches!(i.payload, Payload::Email(_)))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_reports_add_up() {
    let (_, weekly) = reports("weekly-overdue", "2026-11-23T08:00:00-06:00").await;
    let overdue: Vec<u64> = weekly.iter().map(|r| r.totals.overdue).collect();
    // Teams in name order: east-depot, north-yard, south-yard, west-hub (sample/summary.json).
    // A current window: every overdue assignment as of the fire instant,
    // the 6 nobody touched for a year included (a 365-day window gave 10, 15, 32, 20).
    assert_eq!(overdue, [11, 16, 35, 21]);
    for r in &weekly {
        assert_eq!(r.overdue.len() as u64, r.totals.overdue);
        assert_eq!(
            r.courses.iter().map(|c| c.overdue).sum::<u64>(),
            r.totals.overdue
        );
    }
    let (_, monthly) = reports("monthly-audit", "2026-11-01T00:05:00-05:00").await;
    assert_eq!(monthly[0].totals.assignments, 120);
    assert_eq!(
        monthly[0].totals.deleted, 1,
        "the audit includes the deleted assignment"
    );
}
