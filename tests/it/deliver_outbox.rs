//! Whole runs of the sample's per-team weekly job against real receivers:
//! per-team archives each get their own snapshot, and a run where two of
//! four emails are refused sends a failure notice that says exactly which
//! went out and which did not, once.

use crate::smtp_support;
use crate::support::TestRun;

use std::time::Duration;

use chrono::{DateTime, Utc};
use smtp_support::Script;
use trainwatch::config::{ArchiveDelivery, Config, Delivery, EmailDelivery, WhenEmpty};
use trainwatch::job::{self, DeliveryOutcome};
use trainwatch::render::Renderer;

const JOB: &str = "weekly-overdue";

fn fire() -> DateTime<Utc> {
    "2026-11-23T14:00:00Z".parse().unwrap()
}

/// The sample config of `app`, the weekly job sending every team (empty
/// or not) to `deliver`, failures to ops.
fn sample_config(app: &TestRun, deliver: Vec<Delivery>) -> Config {
    let mut config = app.config.clone();
    let job = config.jobs.iter_mut().find(|j| j.name == JOB).unwrap();
    job.when_empty = WhenEmpty::Send;
    job.deliver = deliver;
    job.on_failure = vec![Delivery::Email(EmailDelivery {
        to: vec!["ops@example.com".into()],
        cc: vec![],
        bcc: vec![],
        subject: None,
        template: "failure".into(),
        attach_csv: false,
        csv_excel: false,
    })];
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn each_team_of_a_per_team_archive_gets_its_own_snapshot_and_manifest() {
    let app = TestRun::sample().smtp().start().await;
    let dir = app.path();
    let archive = dir.join("audit");
    let config = sample_config(
        &app,
        vec![Delivery::Archive(ArchiveDelivery {
            dir: archive.clone(),
        })],
    );
    let store = app.store();

    let summary = app.job_with(&config, JOB, fire(), &store).await;

    assert!(!summary.failed(), "{summary:?}");
    assert_eq!(
        summary
            .deliveries
            .iter()
            .map(|d| d.outcome.clone())
            .collect::<Vec<_>>(),
        vec![DeliveryOutcome::Delivered { attempts: 1 }; 4],
        "four teams, four snapshots, none 'already archived'"
    );
    let windows: Vec<_> = std::fs::read_dir(archive.join(JOB)).unwrap().collect();
    assert_eq!(windows.len(), 1, "one window folder");
    let window = windows[0].as_ref().unwrap().path();
    let mut teams: Vec<String> = std::fs::read_dir(&window)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    teams.sort();
    assert_eq!(teams, config.teams.keys().cloned().collect::<Vec<_>>());
    for team in &teams {
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(window.join(team).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["team"]["name"], team.as_str());
        let rows = std::fs::read_to_string(window.join(team).join("assignments.csv"))
            .unwrap()
            .lines()
            .count()
            - 1;
        assert_eq!(
            manifest["counts"]["assignments"], rows,
            "{team}: the manifest counts its own team's rows"
        );
    }

    let again = app.job_with(&config, JOB, fire(), &store).await;
    assert!(
        again
            .deliveries
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::AlreadyDelivered),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_notice_names_what_went_out_and_what_did_not() {
    let app = TestRun::sample()
        .smtp_script(Script {
            refuse_recipients: vec![
                "sam.lee@example.com".into(),
                "renee.gagnon@example.com".into(),
            ],
            ..Script::default()
        })
        .start()
        .await;
    let smtp = app.smtp();
    let config = sample_config(
        &app,
        vec![Delivery::Email(EmailDelivery {
            to: vec!["{{ team.manager }}".into()],
            cc: vec![],
            bcc: vec![],
            subject: None,
            template: "overdue".into(),
            attach_csv: false,
            csv_excel: false,
        })],
    );
    let store = app.store();

    let summary = app.job_with(&config, JOB, fire(), &store).await;

    assert!(summary.failed());
    let messages = smtp.messages();
    let notices: Vec<_> = messages
        .iter()
        .filter(|m| m.recipients == ["ops@example.com"])
        .collect();
    assert_eq!(notices.len(), 1, "one notice");
    assert_eq!(messages.len(), 3, "two reports and the notice");
    let text = notices[0].parsed().body_text(0).unwrap().into_owned();
    assert!(
        text.contains("2 of 4 deliveries failed, 2 went out."),
        "{text}"
    );
    let section = |name: &str| -> String {
        let start = text
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {text}"));
        text[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  - "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let not_sent = section("Not sent:");
    let sent = section("Sent:");
    for (team, who) in [("south-yard", "sam.lee"), ("east-depot", "renee.gagnon")] {
        assert!(
            not_sent.contains(&format!("(team {team})")) && not_sent.contains(who),
            "{text}"
        );
    }
    for (team, who) in [("north-yard", "dana.ortiz"), ("west-hub", "miguel.torres")] {
        assert!(
            sent.contains(&format!("(team {team})")) && sent.contains(who),
            "{text}"
        );
    }
    assert!(!text.contains("its report was not sent"), "{text}");

    let runs = store.runs(Some(JOB), 1).unwrap();
    assert_eq!(runs[0].deliveries, (2, 2, 0));
    assert_eq!(runs[0].notices, (1, 0));
    assert_eq!(
        runs[0].error.as_deref(),
        Some("2 of 4 deliveries failed, 2 went out")
    );
}

fn email_to_managers() -> Vec<Delivery> {
    vec![Delivery::Email(EmailDelivery {
        to: vec!["{{ team.manager }}".into()],
        cc: vec![],
        bcc: vec![],
        subject: None,
        template: "overdue".into(),
        attach_csv: false,
        csv_excel: false,
    })]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_failure_is_sent_by_the_services_outbox_pass_once_its_retry_is_due() {
    use std::collections::VecDeque;
    // Both attempts of the run at the first email get "421 try later".
    let app = TestRun::sample()
        .smtp_script(Script {
            data_replies: VecDeque::from([(421, "try later".into()), (421, "try later".into())]),
            ..Script::default()
        })
        .start()
        .await;
    let smtp = app.smtp();
    let mut config = sample_config(&app, email_to_managers());
    config.jobs.iter_mut().for_each(|j| j.on_failure.clear());
    let store = app.store();

    let first = app.job_with(&config, JOB, fire(), &store).await;
    assert!(first.failed());
    assert_eq!(smtp.messages().len(), 3, "three of four teams");
    let failed = store
        .deliveries(JOB)
        .into_iter()
        .flatten()
        .find(|d| d.status == trainwatch::store::Status::Failed)
        .expect("the failed one");
    let retry_at = failed
        .next_attempt_at
        .expect("a transient failure is scheduled");

    // The service's pass before it is due sends nothing; at its time, it sends it.
    let job = config.job(JOB).unwrap();
    let dispatcher = app.dispatcher(&config);
    let control = job::Control::default();
    let early = retry_at - chrono::TimeDelta::seconds(1);
    let none = job::resume_pending(&config, job, &store, &dispatcher, || early, &control)
        .await
        .unwrap();
    assert!(none.is_none(), "not due yet");
    let pass = job::resume_pending(&config, job, &store, &dispatcher, || retry_at, &control)
        .await
        .unwrap()
        .expect("a pass that sent something");
    dispatcher.close().await;
    assert!(!pass.failed(), "{pass:?}");
    assert_eq!(pass.deliveries.len(), 1);
    assert_eq!(smtp.messages().len(), 4, "every team's email, each once");

    let runs = store.runs(Some(JOB), 10).unwrap();
    assert_eq!(runs[1].id, first.run_id);
    assert_eq!(
        runs[1].deliveries,
        (4, 0, 0),
        "the count stays with the first run"
    );
    assert_eq!(runs[1].finished_later, (1, Some(pass.run_id)));
    assert_eq!(runs[1].outcome, trainwatch::store::Outcome::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fire_whose_job_another_process_holds_waits_then_is_recorded_as_failed() {
    let app = TestRun::sample().smtp().start().await;
    let smtp = app.smtp();
    let config = sample_config(&app, email_to_managers());
    let store = app.store();
    let other_process = app.store();
    let _held = other_process.lock_job(JOB).unwrap();

    let job = config.job(JOB).unwrap();
    let (client, _server) = app.data_client(&config).await;
    let dispatcher = app.dispatcher(&config);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let control = job::Control::new(stopped, Duration::from_millis(300));
    let summary = job::run_controlled(
        &config,
        job,
        &client,
        &Renderer::new(None).unwrap(),
        &store,
        &dispatcher,
        fire(),
        Utc::now,
        &control,
    )
    .await
    .unwrap();
    dispatcher.close().await;

    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("was running in another trainwatch process"),
        "{error}"
    );
    let runs = store.runs(Some(JOB), 10).unwrap();
    assert_eq!(runs.len(), 1, "the fire is in history");
    assert_eq!(runs[0].outcome, trainwatch::store::Outcome::Failed);
    assert_eq!(runs[0].fire_time, fire());
    assert!(store.has_run(JOB, fire()).unwrap());
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "only the notice: {messages:?}");
    assert_eq!(messages[0].recipients, ["ops@example.com"]);
    let text = messages[0].parsed().body_text(0).unwrap().into_owned();
    assert!(text.contains("This fire did not run"), "{text}");
}
