//! The daemon's core under tokio's paused clock: no overlap, catch-up once,
//! and a shutdown that drains.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use trainwatch::daemon::{Clock, Daemon, Drained, Runner, Scheduled};

/// A wall clock that starts at `base` and moves with tokio's (paused) clock.
#[derive(Clone)]
struct TestClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TestClock {
    fn at(base: &str) -> Self {
        Self {
            base: base.parse().unwrap(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::TimeDelta::from_std(self.start.elapsed()).unwrap()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let offset = (at - self.base).to_std().unwrap_or_default();
        tokio::time::sleep_until(self.start + offset).await;
    }
}

/// A run as the runner saw it: job, fire instant, when it started.
type Ran = (String, DateTime<Utc>, DateTime<Utc>);

/// Records each run and takes `takes` to run.
struct SlowRunner {
    clock: TestClock,
    takes: Duration,
    runs: Mutex<Vec<Ran>>,
    finished: Mutex<usize>,
}

impl Runner for SlowRunner {
    async fn run(&self, job: &str, fire: DateTime<Utc>) {
        self.runs
            .lock()
            .unwrap()
            .push((job.to_string(), fire, self.clock.now()));
        tokio::time::sleep(self.takes).await;
        *self.finished.lock().unwrap() += 1;
    }
}

fn job(name: &str, expr: &str) -> Scheduled {
    Scheduled {
        name: name.into(),
        schedule: trainwatch::schedule::parse(expr).unwrap(),
        timezone: chrono_tz::America::Chicago,
    }
}

fn runner(clock: &TestClock, takes: Duration) -> Arc<SlowRunner> {
    Arc::new(SlowRunner {
        clock: clock.clone(),
        takes,
        runs: Mutex::default(),
        finished: Mutex::default(),
    })
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_slow_run_blocks_its_own_next_fires_but_not_other_jobs() {
    let clock = TestClock::at("2026-03-09T14:00:00Z");
    let runner = runner(&clock, Duration::from_secs(25));
    let daemon = Daemon::new(
        vec![
            job("slow", "*/10 * * * * *"),
            job("other", "5/10 * * * * *"),
        ],
        runner.clone(),
    );

    daemon.start_timer(clock.clone());
    tokio::time::sleep(Duration::from_secs(59)).await;

    let fires = |name: &str| -> Vec<DateTime<Utc>> {
        runner
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| r.1)
            .collect()
    };
    // slow: runs at :10 (busy until :35), :20 and :30 skipped, runs at :40 (busy until 1:05), :50 skipped.
    assert_eq!(
        fires("slow"),
        [t("2026-03-09T14:00:10Z"), t("2026-03-09T14:00:40Z")]
    );
    // other: its own fires at :05 (busy until :30), :35; :15 and :25 skipped, :45 and :55 skipped too.
    assert_eq!(
        fires("other"),
        [t("2026-03-09T14:00:05Z"), t("2026-03-09T14:00:35Z")]
    );
    assert_eq!(daemon.skipped(), 3 + 4);
    // Runs start at their fire instants, to the second.
    for (_, fire, started) in runner.runs.lock().unwrap().iter() {
        assert_eq!(fire, started);
    }
    daemon.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn a_missed_fire_younger_than_catch_up_runs_once_and_only_once() {
    // Mondays 08:00 Chicago; the daemon starts Monday 10:00 (2 h late).
    let clock = TestClock::at("2026-03-09T15:00:00Z");
    let runner = runner(&clock, Duration::from_secs(1));
    let daemon = Daemon::new(
        vec![job("weekly", "0 8 * * Mon"), job("daily", "0 9 * * *")],
        runner.clone(),
    );
    let history: Mutex<Vec<(String, DateTime<Utc>)>> = Mutex::default();
    let has_run = |job: &str, fire: DateTime<Utc>| {
        history
            .lock()
            .unwrap()
            .iter()
            .any(|(j, f)| j == job && *f == fire)
    };

    let started = daemon.catch_up(clock.now(), Duration::from_secs(6 * 3600), has_run);

    // weekly's 08:00 (2 h ago) is caught up; daily's 09:00 was 1 h ago: also caught up.
    assert_eq!(started, ["weekly", "daily"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ran: Vec<_> = runner
        .runs
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.0.clone(), r.1))
        .collect();
    assert_eq!(
        ran,
        [
            ("weekly".into(), t("2026-03-09T13:00:00Z")),
            ("daily".into(), t("2026-03-09T14:00:00Z"))
        ]
    );
    history.lock().unwrap().extend(ran);

    // A restart a minute later finds both in the history: nothing runs again.
    let again = daemon.catch_up(clock.now(), Duration::from_secs(6 * 3600), has_run);
    assert!(again.is_empty());
    // Too old for catch_up, or catch_up off: nothing runs.
    assert!(
        daemon
            .catch_up(clock.now(), Duration::from_secs(30 * 60), |_, _| false)
            .is_empty()
    );
    assert!(
        daemon
            .catch_up(clock.now(), Duration::ZERO, |_, _| false)
            .is_empty()
    );
    daemon.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_firing_and_waits_for_the_running_job() {
    let clock = TestClock::at("2026-03-09T14:00:00Z");
    let runner = runner(&clock, Duration::from_secs(20));
    let daemon = Daemon::new(vec![job("j", "*/10 * * * * *")], runner.clone());
    daemon.start_timer(clock.clone());
    tokio::time::sleep(Duration::from_secs(12)).await; // fired at :10, runs until :30
    assert_eq!(daemon.running(), ["j"]);

    let before = tokio::time::Instant::now();
    let drained = daemon.shutdown(Duration::from_secs(60)).await;

    assert_eq!(
        drained,
        Drained {
            finished: 1,
            interrupted: 0
        }
    );
    assert_eq!(*runner.finished.lock().unwrap(), 1);
    assert_eq!(
        before.elapsed(),
        Duration::from_secs(18),
        "waited exactly for the run"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        runner.runs.lock().unwrap().len(),
        1,
        "no fire after shutdown"
    );
    assert!(daemon.running().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_off_a_run_that_outlasts_the_timeout() {
    let clock = TestClock::at("2026-03-09T14:00:00Z");
    let runner = runner(&clock, Duration::from_secs(3600));
    let daemon = Daemon::new(vec![job("j", "*/10 * * * * *")], runner.clone());
    daemon.start_timer(clock.clone());
    tokio::time::sleep(Duration::from_secs(11)).await;

    let drained = daemon.shutdown(Duration::from_secs(30)).await;

    assert_eq!(
        drained,
        Drained {
            finished: 0,
            interrupted: 1
        }
    );
    assert_eq!(*runner.finished.lock().unwrap(), 0);
    assert!(
        daemon.running().is_empty(),
        "the flag is cleared even for an aborted run"
    );
}

/// Counts the fires it was told were skipped.
#[derive(Default)]
struct CountingRunner {
    skipped: Mutex<Vec<String>>,
}

impl Runner for CountingRunner {
    async fn run(&self, _job: &str, _fire: DateTime<Utc>) {}

    fn skipped(&self, job: &str, _fire: DateTime<Utc>) {
        self.skipped.lock().unwrap().push(job.to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn finished_runs_are_let_go_so_a_long_running_daemon_holds_only_the_latest() {
    let runner = Arc::new(CountingRunner::default());
    let daemon = Daemon::new(vec![job("often", "*/10 * * * * *")], runner.clone());
    let fire = t("2026-03-09T14:00:00Z");
    for i in 0..1000 {
        assert!(daemon.fire("often", fire + chrono::TimeDelta::seconds(10 * i)));
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(
        daemon.tracked_runs(),
        1,
        "only the last run, not a thousand finished ones"
    );
    assert_eq!(daemon.shutdown(Duration::from_secs(1)).await.interrupted, 0);
}

#[tokio::test(start_paused = true)]
async fn a_fire_skipped_because_the_job_is_still_running_is_reported_to_the_runner() {
    let clock = TestClock::at("2026-03-09T14:00:00Z");
    let slow = runner(&clock, Duration::from_secs(60));
    struct Both(Arc<SlowRunner>, Arc<CountingRunner>);
    impl Runner for Both {
        async fn run(&self, job: &str, fire: DateTime<Utc>) {
            self.0.run(job, fire).await
        }
        fn skipped(&self, job: &str, fire: DateTime<Utc>) {
            self.1.skipped(job, fire)
        }
    }
    let counting = Arc::new(CountingRunner::default());
    let daemon = Daemon::new(
        vec![job("slow", "*/10 * * * * *")],
        Arc::new(Both(slow, counting.clone())),
    );
    let fire = t("2026-03-09T14:00:00Z");
    assert!(daemon.fire("slow", fire));
    assert!(!daemon.fire("slow", fire + chrono::TimeDelta::seconds(10)));
    assert_eq!(*counting.skipped.lock().unwrap(), ["slow"]);
    assert_eq!(daemon.skipped(), 1);
}
