//! The daemon's production trigger, `Daemon::start_scheduler` (what
//! `trainwatch run` uses: tokio-cron-scheduler one-shots), on the real
//! clock: a fire armed a second or two ahead runs exactly once, not before
//! its instant, and the trigger re-arms for the next fire. Real time is
//! only a deadline here (the fire plus 3 s), never a measure of a rate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use trainwatch::daemon::{Daemon, Runner, Scheduled};

/// A run as the runner saw it: job, fire instant, when it started.
type Ran = (String, DateTime<Utc>, DateTime<Utc>);

/// Records each run.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<Ran>>,
}

impl Runner for Recorder {
    async fn run(&self, job: &str, fire: DateTime<Utc>) {
        self.runs
            .lock()
            .unwrap()
            .push((job.to_string(), fire, Utc::now()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_trigger_runs_a_fire_once_at_its_instant_and_arms_the_next() {
    // The first whole second more than a second from now: a daily fire.
    let fire = (Utc::now() + chrono::TimeDelta::seconds(2))
        .with_nanosecond(0)
        .unwrap();
    let expr = format!("{} {} {} * * *", fire.second(), fire.minute(), fire.hour());
    let runner = Arc::new(Recorder::default());
    let daemon = Daemon::new(
        vec![Scheduled {
            name: "daily".into(),
            schedule: trainwatch::schedule::parse(&expr).unwrap(),
            timezone: chrono_tz::UTC,
        }],
        runner.clone(),
    );

    daemon.start_scheduler().await.unwrap();
    assert_eq!(daemon.armed(), [("daily".to_string(), fire)]);

    // Wait for the run and the re-arm, at most until 3 s past the fire.
    let next = fire + chrono::TimeDelta::days(1);
    let deadline = fire + chrono::TimeDelta::seconds(3);
    while runner.runs.lock().unwrap().is_empty() || daemon.armed()[0].1 != next {
        assert!(
            Utc::now() < deadline,
            "no run and re-arm by 3 s after the fire at {fire}: runs {:?}, armed {:?}",
            runner.runs.lock().unwrap(),
            daemon.armed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = daemon.shutdown(Duration::from_secs(1)).await;

    let runs = runner.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "exactly one run: {runs:?}");
    let (job, fired, started) = &runs[0];
    assert_eq!((job.as_str(), *fired), ("daily", fire));
    assert!(
        *started >= fire,
        "a run never starts before its instant: started {started}, fire {fire}"
    );
    assert_eq!(daemon.armed(), [("daily".to_string(), next)]);
    assert_eq!(drained.interrupted, 0);
}
