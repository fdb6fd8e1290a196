//! The archive's files as the outbox stages them (written row by row, the
//! HTML's rows a chunk at a time) are byte for byte what the whole
//! in-memory renderings give; and a CSV too large for an email goes to the
//! archive only, the email saying so.

use chrono::{DateTime, Utc};
use trainwatch::config;
use trainwatch::job;
use trainwatch::outbox::{self, Payload};
use trainwatch::render::Renderer;
use trainwatch::report::Report;
use trainwatch::sample;
use trainwatch::samsara::Client;

const FIRE: &str = "2026-11-01T00:05:00-05:00";

/// The monthly audit of the sample: its config (state in a folder of its
/// own), job and report.
async fn audit() -> (
    config::Config,
    config::Job,
    Report,
    trainwatch::window::Window,
) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/config.toml");
    let mut config = config::load(&path).unwrap();
    config.state_dir = tempfile::tempdir().unwrap().keep();
    let job = config.job("monthly-audit").unwrap().clone();
    let (settings, _server) = sample::client_settings(&config.samsara).await.unwrap();
    let client = Client::with_limits(settings, Default::default()).unwrap();
    let fire: DateTime<Utc> = DateTime::parse_from_rfc3339(FIRE)
        .unwrap()
        .with_timezone(&Utc);
    let data = job::fetch(&config, &job, &client, fire, None)
        .await
        .unwrap();
    let mut reports = job::reports(&config, &job, &data, fire);
    assert_eq!(reports.len(), 1);
    (config, job, reports.remove(0), data.window)
}

/// `report` with its rows repeated up to `rows` of them.
fn inflated(report: &Report, rows: usize) -> Report {
    let mut big = report.clone();
    big.assignments = report
        .assignments
        .iter()
        .cycle()
        .take(rows)
        .cloned()
        .collect();
    big
}

fn staged_archive(
    config: &config::Config,
    job: &config::Job,
    window: trainwatch::window::Window,
    report: &Report,
) -> Vec<(String, Vec<u8>)> {
    let renderer = Renderer::new(None).unwrap();
    let outbox =
        outbox::build(config, job, window, std::slice::from_ref(report), &renderer).unwrap();
    let files = outbox
        .items
        .iter()
        .find_map(|i| match &i.payload {
            Payload::Archive { files, .. } => Some(files.clone()),
            _ => None,
        })
        .expect("an archive delivery");
    let out = files
        .iter()
        .map(|f| (f.name.clone(), std::fs::read(&f.path).unwrap()))
        .collect();
    outbox.discard_staged();
    out
}

fn in_memory(report: &Report) -> Vec<(String, Vec<u8>)> {
    let renderer = Renderer::new(None).unwrap();
    vec![
        ("assignments.csv".into(), outbox::csv_bytes(report).unwrap()),
        (
            "assignments.json".into(),
            serde_json::to_vec_pretty(&report.assignments).unwrap(),
        ),
        (
            "report.html".into(),
            renderer.archive_html(report).unwrap().into_bytes(),
        ),
    ]
}

#[tokio::test]
async fn the_staged_archive_files_are_the_bytes_the_in_memory_path_wrote() {
    let (config, job, report, window) = audit().await;
    assert!(!report.assignments.is_empty());

    // The sample as it is, and with more rows than one chunk of the HTML.
    for report in [report.clone(), inflated(&report, 2_345)] {
        let staged = staged_archive(&config, &job, window, &report);
        let expected = in_memory(&report);
        for ((name, bytes), (want_name, want)) in staged.iter().zip(&expected) {
            assert_eq!(name, want_name);
            assert!(
                bytes == want,
                "{name} differs ({} rows)",
                report.assignments.len()
            );
        }
        assert_eq!(staged.len(), 3);
    }
}

#[tokio::test]
async fn a_csv_too_large_to_email_goes_to_the_archive_and_the_email_says_where() {
    let (config, job, report, window) = audit().await;
    // Rows with long course titles: over the limit without many rows.
    let mut big = inflated(&report, 12_000);
    for row in &mut big.assignments {
        row.course_title = format!("{} {}", row.course_title, "x".repeat(1_000));
    }
    let bytes = outbox::csv_bytes(&big).unwrap().len();
    assert!(bytes > outbox::MAX_CSV_ATTACHMENT_BYTES, "{bytes}");
    let renderer = Renderer::new(None).unwrap();

    let built =
        outbox::build(&config, &job, window, std::slice::from_ref(&big), &renderer).unwrap();

    let email = built
        .items
        .iter()
        .find_map(|i| match &i.payload {
            Payload::Email(e) => Some((i, e)),
            _ => None,
        })
        .expect("the email still goes");
    let (item, email) = email;
    assert!(email.attachment.is_none());
    let dir = job
        .deliver
        .iter()
        .find_map(|d| match d {
            config::Delivery::Archive(a) => Some(a.dir.clone()),
            _ => None,
        })
        .unwrap();
    let folder = outbox::archive_folder(&dir, &big);
    let note = outbox::csv_left_out(bytes as u64, 12_000, &folder);
    assert!(note.contains("12000 assignments"), "{note}");
    assert!(email.text.contains(&note), "{}", email.text);
    assert!(email.html.contains("is not attached"), "{}", email.html);
    assert!(
        item.summary.contains("CSV not attached"),
        "{}",
        item.summary
    );
    built.discard_staged();

    // Without an archive, the email is refused, as before.
    let mut alone = job.clone();
    alone
        .deliver
        .retain(|d| !matches!(d, config::Delivery::Archive(_)));
    let err = outbox::build(
        &config,
        &alone,
        window,
        std::slice::from_ref(&big),
        &renderer,
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("over the 10 MiB"), "{err}");
}

#[tokio::test]
async fn the_audit_email_from_its_first_hundred_rows_and_the_count_is_the_email_from_every_row() {
    let (_, _, report, _) = audit().await;
    // Custom copies of the audit email (a comment added) get every row.
    let dir = tempfile::tempdir().unwrap();
    for file in ["audit.html", "audit.txt"] {
        let builtin = trainwatch::render::BUILTIN
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap()
            .1;
        std::fs::write(dir.path().join(file), format!("{builtin}{{# every row #}}")).unwrap();
    }
    let limited = Renderer::new(None).unwrap();
    let full = Renderer::new(Some(dir.path())).unwrap();

    for report in [report.clone(), inflated(&report, 2_345)] {
        let a = limited.email("audit", &report, None).unwrap();
        let b = full.email("audit", &report, None).unwrap();
        assert_eq!(a.subject, b.subject);
        assert_eq!(a.text, b.text);
        assert_eq!(a.html, b.html);
    }
    let big = limited
        .email("audit", &inflated(&report, 2_345), None)
        .unwrap();
    assert!(big.html.contains("2245 more"), "{}", big.html);
}
