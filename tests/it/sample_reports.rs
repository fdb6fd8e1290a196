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
        // Exactly what the job sends: its one email delivery (the preview
        // used to add every other kind too; it no longer does).
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["email.eml", "email.html", "email.txt", "trend.png"],
            "{team}; stdout:\n{stdout}"
        );
    }
    let eml =
        std::fs::read_to_string(out.path().join("weekly-overdue/north-yard/email.eml")).unwrap();
    assert!(
        eml.contains("Subject: Overdue training, North Yard: "),
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
    assert!(stdout.contains("wrote 16 files"), "{stdout}");
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

/// The sample config in `dir`, its data folder and state there too, and
/// its mail to `smtp_port` on loopback.
fn sample_config_in(dir: &Path, smtp_port: u16) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(sample_config())
        .unwrap()
        .replace(
            "sample_data = \"api\"",
            &format!(
                "sample_data = {:?}",
                root.join("sample/api").display().to_string()
            ),
        )
        .replace("../out/sample/", "")
        .replace("port = 2525", &format!("port = {smtp_port}"));
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_once_with_no_mail_server_fails_at_once_and_says_how_to_try_without_one() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sample_config_in(dir.path(), port);

    let result = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .args([
            "run-once",
            "weekly-overdue",
            "--at",
            "2026-11-23T08:00:00-06:00",
        ])
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 4, "one line per team:\n{stdout}");
    for line in &failed {
        assert!(
            line.contains("  1         FAILED: connecting to 127.0.0.1:")
                && line.contains(
                    "connection refused (no mail server listens there) (not retried by run-once)"
                ),
            "one attempt, no retries: {line}"
        );
    }
    assert!(!stderr.contains("retrying"), "no retry warnings: {stderr}");
    assert!(
        stderr.contains("trainwatch run-once weekly-overdue --dry-run")
            && stderr.contains("docker compose up -d mailpit"),
        "{stderr}"
    );
}

#[test]
fn output_in_a_pipe_has_no_colour_codes_and_no_notice_about_the_sample_server() {
    let quiet = trainwatch()
        .args([
            "run-once",
            "daily-slack-digest",
            "--at",
            "2026-11-23T09:00:00-06:00",
            "--dry-run",
        ])
        .env_remove("TRAINWATCH_LOG")
        .output()
        .unwrap();
    let verbose = trainwatch()
        .args([
            "run-once",
            "daily-slack-digest",
            "--at",
            "2026-11-23T09:00:00-06:00",
            "--dry-run",
        ])
        .env("TRAINWATCH_LOG", "trainwatch=debug")
        .output()
        .unwrap();

    assert!(quiet.status.success() && verbose.status.success());
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "nothing on stderr by default"
    );
    let verbose = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        verbose.contains("serving sample data"),
        "at debug: {verbose}"
    );
    assert!(
        !verbose.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {verbose:?}"
    );
}

#[test]
fn a_slack_preview_is_one_block_kit_message_object_per_message() {
    let out = tempfile::tempdir().unwrap();

    let result = trainwatch()
        .args([
            "preview",
            "daily-slack-digest",
            "--at",
            "2026-11-23T09:00:00-06:00",
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
    let dir = out.path().join("daily-slack-digest");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["slack.json"], "a webhook-only job writes no email");
    let message: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("slack.json")).unwrap()).unwrap();
    // What Block Kit Builder accepts: one object with `blocks`, not an array.
    assert!(message.is_object(), "{message}");
    assert!(message["blocks"].as_array().is_some_and(|b| !b.is_empty()));
    assert!(message["text"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn an_archive_preview_is_the_snapshot_the_archive_delivery_writes_and_can_be_rewritten() {
    let out = tempfile::tempdir().unwrap();
    let preview = || {
        trainwatch()
            .args([
                "preview",
                "monthly-audit",
                "--at",
                "2026-11-01T00:05:00-05:00",
                "--out",
            ])
            .arg(out.path())
            .output()
            .unwrap()
    };

    let first = preview();
    let second = preview();

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let archive = out.path().join("monthly-audit/archive");
    let mut files: Vec<String> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "SHA256SUMS",
            "assignments.csv",
            "assignments.json",
            "manifest.json",
            "report.html"
        ]
    );
    // Every line of SHA256SUMS holds for the file it names.
    let sums = std::fs::read_to_string(archive.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 4);
    for line in sums.lines() {
        let (sha, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(archive.join(file)).unwrap();
        assert_eq!(
            trainwatch::deliver::archive::sha256_hex(&bytes),
            sha,
            "{file}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["assignments"], 120);
    // The audit's email and its attachment, beside the snapshot.
    for file in ["email.html", "email.txt", "email.eml", "assignments.csv"] {
        assert!(
            out.path().join("monthly-audit").join(file).is_file(),
            "{file}"
        );
    }
}
