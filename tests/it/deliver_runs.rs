//! Whole runs delivered for real: the sample's monthly audit as an archive
//! snapshot and an email with the CSV to an SMTP server on loopback, twice;
//! and a failed run telling its on_failure target.

use crate::smtp_support;
use crate::support::TestRun;

use chrono::{DateTime, Utc};
use trainwatch::job::DeliveryOutcome;

fn fire() -> DateTime<Utc> {
    "2026-11-01T05:05:00Z".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monthly_audit_is_archived_and_emailed_once_even_when_run_twice() {
    let app = TestRun::sample().smtp().start().await;
    let (smtp, dir) = (app.smtp(), app.path());
    let store = app.store();

    let first = app.job("monthly-audit", fire(), &store).await;

    assert!(!first.failed(), "{first:?}");
    let outcomes: Vec<_> = first.deliveries.iter().map(|d| d.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        [
            DeliveryOutcome::Delivered { attempts: 1 },
            DeliveryOutcome::Delivered { attempts: 1 }
        ]
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].recipients, ["compliance@example.com"]);
    let parsed = messages[0].parsed();
    assert_eq!(
        parsed.subject(),
        // The audit template's own subject (the sample no longer sets a raw timestamp).
        Some("Training audit — October 2026")
    );
    let attachment = parsed.attachments().next().expect("the CSV attachment");
    let folder = std::fs::read_dir(dir.join("audit/monthly-audit"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let archived_csv = std::fs::read(folder.join("assignments.csv")).unwrap();
    assert_eq!(
        attachment.contents(),
        &archived_csv[..],
        "the email's CSV is the archived CSV"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["assignments"], 120);
    assert_eq!(manifest["query"]["startTime"], "2026-10-01T05:00:00.000Z");
    assert_eq!(manifest["query"]["endTime"], "2026-11-01T05:00:00.000Z");

    let second = app.job("monthly-audit", fire(), &store).await;

    assert!(!second.failed(), "{second:?}");
    assert!(
        second
            .deliveries
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::AlreadyDelivered),
        "{second:?}"
    );
    assert_eq!(smtp.messages().len(), 1, "nothing sent the second time");
    let runs = store.runs(Some("monthly-audit"), 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].deliveries, (2, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_fetch_fails_sends_nothing_but_the_on_failure_email() {
    let app = TestRun::sample().smtp().start().await;
    let (smtp, dir) = (app.smtp(), app.path());
    let mut config = app.config.clone();
    config.samsara.sample_data = None;
    config.samsara.base_url = format!("http://127.0.0.1:{}", smtp_support::closed_port())
        .parse()
        .unwrap();
    config.samsara.max_attempts = 1;
    let store = app.store();

    let summary = app.job_with(&config, "monthly-audit", fire(), &store).await;

    assert!(summary.failed());
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("job monthly-audit: fetching assignments"),
        "{error}"
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "only the failure notice");
    assert_eq!(messages[0].recipients, ["ops@example.com"]);
    let parsed = messages[0].parsed();
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains("fetching assignments"), "{text}");
    assert!(
        !dir.join("audit").exists(),
        "no archive from a failed fetch"
    );
    let runs = store.runs(Some("monthly-audit"), 1).unwrap();
    assert_eq!(runs[0].outcome, trainwatch::store::Outcome::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_without_a_manager_is_skipped_with_a_reason_and_the_other_managers_get_their_email()
{
    let app = TestRun::sample().smtp().start().await;
    let smtp = app.smtp();
    let mut config = app.config.clone();
    // As a team from tags without a manager would come (validate rejects it in the file).
    config.teams.get_mut("south-yard").unwrap().manager = None;
    let store = app.store();

    let summary = app
        .job_with(
            &config,
            "weekly-overdue",
            "2026-11-23T14:00:00Z".parse().unwrap(),
            &store,
        )
        .await;

    assert!(!summary.failed(), "{summary:?}");
    let skipped: Vec<_> = summary
        .skipped
        .iter()
        .map(|s| (s.team.as_deref().unwrap_or("-"), s.reason.as_str()))
        .collect();
    assert!(
        skipped.contains(&(
            "south-yard",
            "delivery 1 (email) not sent: the team has no manager for its `{{ team.manager }}` recipient"
        )),
        "{skipped:?}"
    );
    let mut recipients: Vec<String> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        [
            "dana.ortiz@example.com",
            "miguel.torres@example.com",
            "renee.gagnon@example.com"
        ]
    );
}
