//! The sample's weekly job run twice, a week apart, on one mirror: the
//! second email says what changed between them, carries the trend chart
//! inline (multipart/related inside multipart/alternative, sent through a
//! real SMTP server on loopback and parsed back), and a run whose previous
//! fire predates the mirror's reach renders without `changes`.

use crate::smtp_support;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use trainwatch::config::{self, Config};
use trainwatch::deliver::email::SmtpSender;
use trainwatch::job;
use trainwatch::outbox::{self, Payload};
use trainwatch::render::{Renderer, chart};
use trainwatch::report::Report;
use trainwatch::sample;
use trainwatch::samsara::Client;

const FIRST: &str = "2026-11-16T08:00:00-06:00";
const SECOND: &str = "2026-11-23T08:00:00-06:00";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The sample config with its mirror in a folder of its own.
fn sample_config(state: &Path) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/config.toml");
    let mut config = config::load(&path).unwrap();
    config.state_dir = state.to_path_buf();
    config
}

/// The weekly job's reports as fired at `fire`, syncing the mirror in `config`'s state.
async fn weekly(config: &Config, fire: &str) -> Vec<Report> {
    let job = config.job("weekly-overdue").unwrap();
    let (settings, _server) = sample::client_settings(&config.samsara).await.unwrap();
    let client = Client::with_limits(settings, Default::default()).unwrap();
    let data = job::fetch(config, job, &client, at(fire), None)
        .await
        .unwrap();
    job::reports(config, job, &data, at(fire))
}

fn north(reports: &[Report]) -> &Report {
    reports
        .iter()
        .find(|r| r.team.as_ref().unwrap().name == "north-yard")
        .unwrap()
}

fn ids(report: &Report) -> BTreeSet<String> {
    report
        .overdue
        .iter()
        .map(|r| r.assignment_id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_second_weekly_email_says_what_changed_since_the_first() {
    let state = tempfile::tempdir().unwrap();
    let config = sample_config(state.path());
    let first = weekly(&config, FIRST).await;
    let second = weekly(&config, SECOND).await;

    for (a, b) in first.iter().zip(&second) {
        let team = &b.team.as_ref().unwrap().name;
        let changes = b
            .changes
            .as_ref()
            .expect("the previous fire is within the mirror");
        assert_eq!(changes.since, FIRST);
        // What the first run listed against what the second lists.
        let (before, now) = (ids(a), ids(b));
        let newly: BTreeSet<String> = changes
            .newly_overdue
            .iter()
            .map(|r| r.assignment_id.to_string())
            .collect();
        let resolved: BTreeSet<String> = changes
            .resolved
            .iter()
            .map(|r| r.row.assignment_id.to_string())
            .collect();
        assert_eq!(newly, &now - &before, "{team}: newly overdue");
        assert_eq!(resolved, &before - &now, "{team}: resolved");
        assert_eq!(changes.overdue_before, a.totals.overdue, "{team}");
        assert_eq!(changes.overdue_now, b.totals.overdue, "{team}");
        let trend_before = &b.trend[b.trend.len() - 2];
        assert_eq!(trend_before.overdue, a.totals.overdue, "{team}: trend");
    }

    let report = north(&second);
    let changes = report.changes.as_ref().unwrap();
    assert!(
        !changes.newly_overdue.is_empty() || !changes.resolved.is_empty(),
        "the sample changes in that week"
    );
    let renderer = Renderer::new(None).unwrap();
    let email = renderer.email("overdue", report, None).unwrap();
    let opening = format!(
        "{} newly overdue, {} resolved since Mon Nov 16.",
        changes.newly_overdue.len(),
        changes.resolved.len()
    );
    assert!(email.text.contains(&opening), "{}", email.text);
    insta::assert_snapshot!("second_week_north_yard.txt", email.text);
    insta::assert_snapshot!("second_week_north_yard.html", email.html);
    insta::assert_snapshot!("second_week_north_yard.subject", email.subject);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_previous_fire_predates_the_mirror_renders_without_changes() {
    let state = tempfile::tempdir().unwrap();
    let mut config = sample_config(state.path());
    // The mirror's first sync reads from after the previous fire (Nov 16).
    config.mirror.since = at("2026-11-20T00:00:00-06:00");

    let reports = weekly(&config, SECOND).await;

    let report = north(&reports);
    assert_eq!(report.changes, None);
    assert_eq!(
        report.trend.len(),
        1,
        "no earlier fire is within the mirror's reach"
    );
    let email = Renderer::new(None)
        .unwrap()
        .email("overdue", report, None)
        .unwrap();
    assert!(!email.text.contains("newly overdue"), "{}", email.text);
    assert!(!email.html.contains("cid:"), "no chart of one point");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_email_carries_the_chart_inline_as_related_to_its_html() {
    let state = tempfile::tempdir().unwrap();
    let server = smtp_support::TestSmtp::plain().await;
    let mut config = sample_config(state.path());
    config.smtp = Some(server.config("127.0.0.1"));
    let reports = weekly(&config, SECOND).await;
    let job = config.job("weekly-overdue").unwrap();
    let renderer = Renderer::new(None).unwrap();
    let window = trainwatch::window::Window {
        start: at(SECOND),
        end: at(SECOND),
    };
    let built = outbox::build(&config, job, window, &reports, &renderer).unwrap();
    let item = built
        .items
        .iter()
        .find(|i| i.team.as_deref() == Some("north-yard"))
        .unwrap();
    let Payload::Email(email) = &item.payload else {
        panic!("an email")
    };

    let sender = SmtpSender::new(config.smtp.as_ref().unwrap(), None).unwrap();
    sender.send(email).await.unwrap();

    let received = server.messages();
    let raw = &received[0].data;
    let message = MessageParser::default().parse(raw).unwrap();
    let root = message.part(0).unwrap();
    assert_eq!(root.content_type().unwrap().subtype(), Some("alternative"));
    let PartType::Multipart(children) = &root.body else {
        panic!("multipart/alternative has parts")
    };
    assert_eq!(children.len(), 2, "text, then the related HTML");
    let text = message.part(children[0]).unwrap();
    assert_eq!(text.content_type().unwrap().subtype(), Some("plain"));
    let related = message.part(children[1]).unwrap();
    assert_eq!(related.content_type().unwrap().subtype(), Some("related"));
    let PartType::Multipart(inner) = &related.body else {
        panic!("multipart/related has parts")
    };
    assert_eq!(inner.len(), 2, "the HTML and the chart");
    let html = message.part(inner[0]).unwrap();
    assert_eq!(html.content_type().unwrap().subtype(), Some("html"));
    let PartType::Html(html_text) = &html.body else {
        panic!("an HTML body")
    };
    assert!(html_text.contains("src=\"cid:trend.png\""));
    assert!(html_text.contains("alt=\"Overdue at the last "));
    let image = message.part(inner[1]).unwrap();
    assert_eq!(image.content_type().unwrap().ctype(), "image");
    assert_eq!(image.content_type().unwrap().subtype(), Some("png"));
    assert_eq!(image.content_id(), Some("trend.png"));
    assert!(
        image
            .content_disposition()
            .is_some_and(|d| d.ctype() == "inline"),
        "shown in place, not as an attachment"
    );

    let decoder = png::Decoder::new(std::io::Cursor::new(image.contents()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (chart::WIDTH, chart::HEIGHT));
}
