//! Nothing lost, nothing twice, with the real service: `trainwatch run`
//! sends a per-team email to each of 40 managers through a slow SMTP
//! server, is stopped part-way (by `kill -9`, and by SIGTERM), and is
//! started again. The outbox held all 40 before the first left, so the
//! restarted service sends exactly the rest: every manager gets exactly one
//! email for that fire, and `history` shows the run as finished later.

use crate::smtp_support;
use crate::support::service::{Service, received_by_manager, trainwatch, write_per_team_config};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use smtp_support::{Script, TestSmtp};

const TEAMS: usize = 40;

/// A service config: one per-team email job of 40 teams that fires once,
/// a few seconds from now, and mail to `smtp`.
fn write_config(dir: &Path, smtp: &TestSmtp) -> PathBuf {
    let fire = Utc::now() + chrono::TimeDelta::seconds(4);
    let schedule = format!("{} {} {} * * *", fire.second(), fire.minute(), fire.hour());
    write_per_team_config(dir, smtp, TEAMS, &schedule, "1h", "")
}

fn start_service(config: &Path, log: &Path) -> Service {
    Service::start(config, log, None)
}

/// Waits (up to a minute) until `done` holds for the messages received.
async fn wait_for(smtp: &TestSmtp, what: &str, log: &Path, done: impl Fn(usize) -> bool) {
    let started = Instant::now();
    while !done(smtp.log().messages.len()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {} messages after a minute\n{}",
            smtp.log().messages.len(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn history(config: &Path) -> Vec<String> {
    let out = trainwatch(config)
        .args(["history", "per-team"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

async fn stopped_part_way_then_restarted(signal: &str) {
    let smtp = TestSmtp::start(Script {
        data_delay: Duration::from_millis(300),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &smtp);
    let first_log = dir.path().join("first.log");

    // 1. The fire's run sends ten emails; the service is stopped while the
    // eleventh waits on the slow server.
    let mut service = start_service(&config, &first_log);
    wait_for(&smtp, "the first ten emails", &first_log, |n| n >= 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = Instant::now();
    service.signal(signal);
    let exit = service.child.wait().unwrap();
    if signal == "-TERM" {
        assert_eq!(
            exit.code(),
            Some(0),
            "{}",
            std::fs::read_to_string(&first_log).unwrap()
        );
        assert!(
            stopped_at.elapsed() < Duration::from_secs(10),
            "a shutdown waits for the send in flight only, not for the whole run"
        );
    }
    let sent_before = smtp.log().messages.len();
    assert!(
        (10..TEAMS).contains(&sent_before),
        "stopped part-way: {sent_before} of {TEAMS} sent"
    );
    let rows = history(&config);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert!(
        rows[0].contains(&format!(
            "{sent_before} sent, 0 failed, {} pending",
            TEAMS - sent_before
        )),
        "the outbox held every email before the first left: {rows:#?}"
    );
    let expected = if signal == "-TERM" {
        "interrupted: stopped by a shutdown"
    } else {
        "running or interrupted"
    };
    assert!(rows[0].contains(expected), "{rows:#?}");

    // 2. Started again, the service sends the rest at once.
    let second_log = dir.path().join("second.log");
    let mut service = start_service(&config, &second_log);
    wait_for(&smtp, "all forty emails", &second_log, |n| n >= TEAMS).await;
    // Time for a duplicate to show up, if the service were to send one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.signal("-TERM");
    assert_eq!(service.child.wait().unwrap().code(), Some(0));

    let received = received_by_manager(&smtp);
    let expected: Vec<String> = (1..=TEAMS)
        .map(|i| format!("m{i:02}@example.com"))
        .collect();
    assert_eq!(
        received.keys().cloned().collect::<Vec<_>>(),
        expected,
        "every manager got mail"
    );
    for (manager, ids) in &received {
        assert_eq!(ids.len(), 1, "{manager} got exactly one email: {ids:?}");
    }
    assert_eq!(smtp.log().messages.len(), TEAMS);

    let rows = history(&config);
    assert_eq!(
        rows.len(),
        2,
        "the fire's run and the restart's resume; no second run of the fire: {rows:#?}"
    );
    let resumed = TEAMS - sent_before;
    assert!(
        rows[0].contains(&format!(
            "0 sent, 0 failed, 0 pending; finished {resumed} of earlier runs"
        )) && rows[0].ends_with("succeeded"),
        "{rows:#?}"
    );
    let resume_run = rows[0].split_whitespace().next().unwrap();
    assert!(
        rows[1].contains(&format!("{TEAMS} sent, 0 failed, 0 pending")),
        "the counts stay with the fire's run: {rows:#?}"
    );
    assert!(
        rows[1].ends_with(&format!(
            "succeeded ({resumed} finished later, by run {resume_run})"
        )),
        "{rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_killed_part_way_sends_the_rest_at_restart_each_manager_once() {
    stopped_part_way_then_restarted("-KILL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_stopped_part_way_by_sigterm_sends_the_rest_at_restart_each_manager_once() {
    stopped_part_way_then_restarted("-TERM").await;
}

/// A run's archives are staged files the ledger names: killed with them
/// pending, the restarted service publishes each team's snapshot exactly
/// once, whole (every SHA256SUMS line holds), and leaves no staging behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_killed_part_way_publishes_every_staged_archive_once_at_restart() {
    let smtp = TestSmtp::start(Script {
        data_delay: Duration::from_millis(300),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &smtp);
    let audit = dir.path().join("audit");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_archive = text.replace(
        r#"template = "overdue" } }]"#,
        &format!(
            r#"template = "overdue" }} }}, {{ archive = {{ dir = "{}" }} }}]"#,
            audit.display()
        ),
    );
    assert_ne!(text, with_archive, "the job gains an archive delivery");
    std::fs::write(&config, with_archive).unwrap();

    let first_log = dir.path().join("first.log");
    let mut service = start_service(&config, &first_log);
    wait_for(&smtp, "the first ten emails", &first_log, |n| n >= 10).await;
    service.signal("-KILL");
    service.child.wait().unwrap();
    let staging = dir.path().join("state/staging");
    let staged = std::fs::read_dir(&staging).map_or(0, |d| d.count());
    assert!(
        staged > 0,
        "the killed run left its archives staged, pending"
    );

    let second_log = dir.path().join("second.log");
    let mut service = start_service(&config, &second_log);
    wait_for(&smtp, "all forty emails", &second_log, |n| n >= TEAMS).await;
    let started = Instant::now();
    let snapshots = || -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![audit.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten() {
                let p = e.unwrap().path();
                if p.join("SHA256SUMS").exists() {
                    out.push(p);
                } else if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out
    };
    // Every snapshot published and its staged files removed (on a loaded
    // machine the last ones come well after the last email), then a moment
    // more for a duplicate to show.
    let staged_now = || std::fs::read_dir(&staging).map_or(0, |d| d.count());
    while (snapshots().len() < TEAMS || staged_now() > 0)
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.signal("-TERM");
    assert_eq!(service.child.wait().unwrap().code(), Some(0));

    let mut found = snapshots();
    found.sort();
    assert_eq!(
        found.len(),
        TEAMS,
        "one snapshot per team: {found:#?}\n{}",
        std::fs::read_to_string(&second_log).unwrap_or_default()
    );
    for snapshot in &found {
        let sums = std::fs::read_to_string(snapshot.join("SHA256SUMS")).unwrap();
        assert_eq!(sums.lines().count(), 4, "{}", snapshot.display());
        for line in sums.lines() {
            let (sha, file) = line.split_once("  ").unwrap();
            let bytes = std::fs::read(snapshot.join(file)).unwrap();
            assert_eq!(
                trainwatch::deliver::archive::sha256_hex(&bytes),
                sha,
                "{}/{file}",
                snapshot.display()
            );
        }
    }
    assert_eq!(
        staged_now(),
        0,
        "no staging left once every archive is delivered"
    );
    assert_eq!(smtp.log().messages.len(), TEAMS, "and each email once");
}
