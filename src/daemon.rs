//! The daemon's core: fires → runs, with no overlap, catch-up and a drained
//! shutdown. It knows nothing of Samsara or deliveries: a [`Runner`] runs a
//! job, and a trigger decides when.
//!
//! Fire instants always come from [`crate::schedule`], computed in the job's
//! real timezone. Two triggers deliver them:
//! - [`Daemon::start_scheduler`]: tokio-cron-scheduler (what `trainwatch run`
//!   uses), one one-shot job per fire, re-armed after each with the next
//!   instant. Its own cron parsing is not used: it keeps the UTC offset of
//!   the moment a job was created and fires an hour off after a DST change
//!   (its issues #87, #107). It polls the wall clock every 500 ms and may
//!   call a little early, so each fire then waits for its exact instant: a
//!   run never starts before the end of its window.
//! - [`Daemon::start_timer`]: tokio timers against a [`Clock`], so tests
//!   drive the daemon with tokio's paused clock.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::task::JoinSet;

use crate::config::Schedule;
use crate::schedule;

/// Runs one job for one fire. Implemented by [`crate::job`]'s real runner and by tests.
pub trait Runner: Send + Sync + 'static {
    /// Runs `job` as fired at `fire`; returns when the run is over.
    fn run(&self, job: &str, fire: DateTime<Utc>) -> impl Future<Output = ()> + Send;

    /// The fire of `job` at `fire` did not run: the previous run was still
    /// going. The real runner records it in history, so no fire vanishes.
    fn skipped(&self, _job: &str, _fire: DateTime<Utc>) {}
}

/// The wall clock as the daemon sees it.
pub trait Clock: Clone + Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Waits until `at` (returns at once if it has passed).
    fn sleep_until(&self, at: DateTime<Utc>) -> impl Future<Output = ()> + Send;
}

/// The system clock, re-read after every sleep so that a clock change does
/// not shift fires: long waits are cut into pieces of at most a minute.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        loop {
            let left = at - Utc::now();
            let Ok(left) = left.to_std() else { return };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        }
    }
}

/// A job as the daemon schedules it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub name: String,
    pub schedule: Schedule,
    pub timezone: Tz,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Runs that finished within the timeout.
    pub finished: usize,
    /// Runs cut off at the timeout; their unconfirmed deliveries stay pending.
    pub interrupted: usize,
}

/// Fires jobs, never two runs of one job at once.
pub struct Daemon<R: Runner> {
    jobs: Vec<Scheduled>,
    runner: Arc<R>,
    running: Arc<Mutex<HashSet<String>>>,
    runs: Mutex<JoinSet<()>>,
    triggers: Mutex<JoinSet<()>>,
    scheduler: tokio::sync::Mutex<Option<tokio_cron_scheduler::JobScheduler>>,
    /// The fire each job's one-shot is armed for (production trigger).
    armed: Mutex<BTreeMap<String, DateTime<Utc>>>,
    skipped: AtomicU64,
}

impl<R: Runner> Daemon<R> {
    /// A daemon for `jobs`, running them with `runner`.
    pub fn new(jobs: Vec<Scheduled>, runner: Arc<R>) -> Arc<Self> {
        Arc::new(Self {
            jobs,
            runner,
            running: Arc::default(),
            runs: Mutex::new(JoinSet::new()),
            triggers: Mutex::new(JoinSet::new()),
            scheduler: tokio::sync::Mutex::new(None),
            armed: Mutex::default(),
            skipped: AtomicU64::new(0),
        })
    }

    /// Fires that were skipped because the job was still running.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Runs the daemon still holds: the running ones, and those finished
    /// since the last fire (reaped at the next one).
    pub fn tracked_runs(&self) -> usize {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Names of the jobs running now.
    pub fn running(&self) -> Vec<String> {
        let mut v: Vec<_> = self.lock_running().iter().cloned().collect();
        v.sort();
        v
    }

    /// The next fire of each job that [`Daemon::start_scheduler`] has armed
    /// a one-shot for, by job name (a test sees the trigger re-arm).
    pub fn armed(&self) -> Vec<(String, DateTime<Utc>)> {
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        armed.iter().map(|(j, t)| (j.clone(), *t)).collect()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a run of `job` for `fire` unless one is in progress (then the
    /// fire is skipped and logged). Returns whether it started.
    pub fn fire(&self, job: &str, fire: DateTime<Utc>) -> bool {
        if !self.lock_running().insert(job.to_string()) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job, fire = %fire.to_rfc3339(), "skipped: the previous run of this job is still going");
            self.runner.skipped(job, fire);
            return false;
        }
        let (runner, running, name) = (self.runner.clone(), self.running.clone(), job.to_string());
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        // A finished task keeps its memory (the whole run's future) until it
        // is joined: reap the finished ones, or a long-running service grows
        // by one run per fire.
        while let Some(done) = runs.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!("a run panicked: {e}");
            }
        }
        runs.spawn(async move {
            // Clears the flag however the run ends (even if aborted at shutdown).
            struct Done(Arc<Mutex<HashSet<String>>>, String);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&self.1);
                }
            }
            let _done = Done(running, name.clone());
            runner.run(&name, fire).await;
        });
        true
    }

    /// At start: runs once each job whose latest scheduled fire is younger
    /// than `window` and has no run yet (`has_run`). Returns the jobs started.
    pub fn catch_up(
        &self,
        now: DateTime<Utc>,
        window: Duration,
        has_run: impl Fn(&str, DateTime<Utc>) -> bool,
    ) -> Vec<String> {
        if window.is_zero() {
            return Vec::new();
        }
        let mut started = Vec::new();
        for job in &self.jobs {
            let Some(latest) = schedule::latest_fire(&job.schedule, job.timezone, now) else {
                continue;
            };
            let age = (now - latest).to_std().unwrap_or_default();
            if age < window && !has_run(&job.name, latest) {
                tracing::info!(job = %job.name, fire = %latest.to_rfc3339(), "catching up a fire missed while the daemon was down");
                if self.fire(&job.name, latest) {
                    started.push(job.name.clone());
                }
            }
        }
        started
    }

    /// Fires every job at its instants, from `clock`'s now on, with tokio timers.
    pub fn start_timer<C: Clock>(self: &Arc<Self>, clock: C) {
        let mut triggers = self.triggers.lock().unwrap_or_else(|e| e.into_inner());
        for job in self.jobs.clone() {
            let (daemon, clock) = (Arc::downgrade(self), clock.clone());
            triggers.spawn(async move {
                let mut after = clock.now();
                while let Some(next) = schedule::next_fire(&job.schedule, job.timezone, after) {
                    clock.sleep_until(next).await;
                    let Some(daemon) = daemon.upgrade() else {
                        return;
                    };
                    daemon.fire(&job.name, next);
                    after = next;
                }
            });
        }
    }

    /// Fires every job with tokio-cron-scheduler, from now on.
    pub async fn start_scheduler(self: &Arc<Self>) -> anyhow::Result<()> {
        let scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
        for job in &self.jobs {
            arm(Arc::downgrade(self), &scheduler, job.clone(), Utc::now()).await?;
        }
        scheduler.start().await?;
        *self.scheduler.lock().await = Some(scheduler);
        Ok(())
    }

    /// Stops firing, then waits up to `timeout` for running jobs to finish;
    /// those still running are cut off (their unconfirmed deliveries stay
    /// pending in the ledger and are sent at the next start).
    pub async fn shutdown(&self, timeout: Duration) -> Drained {
        if let Some(mut scheduler) = self.scheduler.lock().await.take()
            && let Err(e) = scheduler.shutdown().await
        {
            tracing::warn!("stopping the scheduler: {e}");
        }
        self.triggers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
        let mut runs = std::mem::take(&mut *self.runs.lock().unwrap_or_else(|e| e.into_inner()));
        let mut finished = 0;
        let drained = tokio::time::timeout(timeout, async {
            while runs.join_next().await.is_some() {
                finished += 1;
            }
        })
        .await;
        let interrupted = if drained.is_err() {
            let n = runs.len();
            runs.abort_all();
            while runs.join_next().await.is_some() {}
            n
        } else {
            0
        };
        Drained {
            finished,
            interrupted,
        }
    }
}

/// Adds a one-shot for `job`'s next fire after `after`; when it fires, runs
/// the job and arms the next one.
fn arm<'a, R: Runner>(
    daemon: std::sync::Weak<Daemon<R>>,
    scheduler: &'a tokio_cron_scheduler::JobScheduler,
    job: Scheduled,
    after: DateTime<Utc>,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let Some(next) = schedule::next_fire(&job.schedule, job.timezone, after) else {
            tracing::info!(job = %job.name, "the schedule has no future fire");
            return Ok(());
        };
        let (weak, name) = (daemon.clone(), job.name.clone());
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        let instant = std::time::Instant::now() + wait;
        let one_shot = tokio_cron_scheduler::Job::new_one_shot_at_instant_async(
            instant,
            move |_id, scheduler| {
                let (daemon, job) = (daemon.clone(), job.clone());
                Box::pin(async move {
                    // The scheduler polls every 500 ms and can be early; a run must
                    // never start before its instant (its window ends there).
                    SystemClock.sleep_until(next).await;
                    let Some(d) = daemon.upgrade() else { return };
                    d.fire(&job.name, next);
                    drop(d);
                    if let Err(e) = arm(daemon, &scheduler, job.clone(), next).await {
                        tracing::error!(job = %job.name, "cannot schedule the next fire: {e}");
                    }
                })
            },
        )?;
        scheduler.add(one_shot).await?;
        if let Some(d) = weak.upgrade() {
            d.armed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, next);
        }
        Ok(())
    })
}
