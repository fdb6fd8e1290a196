//! The optional `[server]` listener: `GET /healthz` and `GET /metrics`.
//!
//! [`Health`] is what the daemon tells it (heartbeats, runs started and
//! ended); [`serve`] binds before returning, so a taken port is an error at
//! start, and stops when its shutdown future resolves.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, RunOutcome};

/// The `Content-Type` of `/metrics`: the Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The daemon's liveness and each job's last run, for `/healthz`.
#[derive(Debug)]
pub struct Health {
    /// A heartbeat older than this makes `/healthz` answer 503.
    stale_after: Duration,
    inner: Mutex<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    heartbeat: Option<DateTime<Utc>>,
    jobs: BTreeMap<String, JobHealth>,
    /// This process's name among replicas (set on a shared store).
    replica: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct JobHealth {
    last_fire: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    last_outcome: Option<RunOutcome>,
    last_success: Option<DateTime<Utc>>,
    running: bool,
    /// The last run in the shared store, whichever replica ran it.
    store_last_run: Option<StoreRun>,
}

/// A job's last run as a shared (Postgres) store records it, whichever
/// replica ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreRun {
    /// Its fire instant.
    pub fire: String,
    /// The replica that ran it.
    pub replica: Option<String>,
    /// `running`, `succeeded`, `failed`, `interrupted` or `skipped`.
    pub outcome: String,
    /// When it finished; null while running (or cut off).
    pub finished: Option<String>,
}

/// What `/healthz` answers: whether the heartbeat is fresh, and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// `ok` or `stale`.
    pub status: &'static str,
    /// The last heartbeat, RFC 3339; null before the first.
    pub heartbeat: Option<String>,
    /// A heartbeat older than this many seconds is stale.
    pub stale_after_seconds: u64,
    /// Every configured job (and any other that ran), by name.
    pub jobs: BTreeMap<String, JobReport>,
    /// On a shared store: this replica's name (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// One job in `/healthz`; times RFC 3339, null before the first run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    /// The fire time of the last finished run.
    pub last_fire: Option<String>,
    /// When the last run finished.
    pub last_run: Option<String>,
    /// `succeeded` or `failed`.
    pub last_outcome: Option<&'static str>,
    /// When the last successful run finished.
    pub last_success: Option<String>,
    /// True while a run of the job is in progress.
    pub running: bool,
    /// On a shared store: the job's last run by any replica (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_last_run: Option<StoreRun>,
}

impl HealthReport {
    /// True when the heartbeat is fresh (`/healthz` answers 200).
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

impl Health {
    /// Health of the configured `jobs` (listed before they first run); a
    /// heartbeat older than `stale_after` is stale.
    pub fn new<I, S>(jobs: I, stale_after: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let jobs = jobs
            .into_iter()
            .map(|job| (job.into(), JobHealth::default()))
            .collect();
        Self {
            stale_after,
            inner: Mutex::new(HealthInner {
                heartbeat: None,
                jobs,
                replica: None,
            }),
        }
    }

    /// On a shared store: the name this replica reports under.
    pub fn set_replica(&self, replica: &str) {
        self.lock().replica = Some(replica.to_string());
    }

    /// On a shared store: `job`'s last run there, by whichever replica.
    pub fn store_saw(&self, job: &str, run: StoreRun) {
        self.lock()
            .jobs
            .entry(job.to_string())
            .or_default()
            .store_last_run = Some(run);
    }

    /// The scheduler is alive at `now`.
    pub fn heartbeat(&self, now: DateTime<Utc>) {
        self.lock().heartbeat = Some(now);
    }

    /// A run of `job` started.
    pub fn run_started(&self, job: &str) {
        self.lock().jobs.entry(job.to_string()).or_default().running = true;
    }

    /// A run of `job` ended without a result to record (e.g. it was cancelled).
    pub fn run_finished(&self, job: &str) {
        self.lock().jobs.entry(job.to_string()).or_default().running = false;
    }

    /// A run of `job` fired at `fire` ended at `finished_at` with `outcome`;
    /// it is no longer running.
    pub fn job_ran(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        outcome: RunOutcome,
        finished_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(job.to_string()).or_default();
        entry.last_fire = Some(fire);
        entry.last_run = Some(finished_at);
        entry.last_outcome = Some(outcome);
        if outcome == RunOutcome::Succeeded {
            entry.last_success = Some(finished_at);
        }
        entry.running = false;
    }

    /// The report as of `now`: stale when there has been no heartbeat, or
    /// the last is `stale_after` or more before `now`.
    pub fn report(&self, now: DateTime<Utc>) -> HealthReport {
        let inner = self.lock();
        let fresh = inner.heartbeat.is_some_and(|beat| {
            (now - beat)
                .to_std()
                // A heartbeat "from the future" (clock stepped back) is fresh.
                .map_or(true, |age| age < self.stale_after)
        });
        HealthReport {
            status: if fresh { "ok" } else { "stale" },
            heartbeat: inner.heartbeat.map(rfc3339),
            stale_after_seconds: self.stale_after.as_secs(),
            jobs: inner
                .jobs
                .iter()
                .map(|(name, j)| {
                    let report = JobReport {
                        last_fire: j.last_fire.map(rfc3339),
                        last_run: j.last_run.map(rfc3339),
                        last_outcome: j.last_outcome.map(RunOutcome::as_str),
                        last_success: j.last_success.map(rfc3339),
                        running: j.running,
                        store_last_run: j.store_last_run.clone(),
                    };
                    (name.clone(), report)
                })
                .collect(),
            replica: inner.replica.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HealthInner> {
        // Each update is one field write: a poisoned lock still holds good data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Serves `/healthz` and `/metrics` on `listen` (port 0 picks a free port)
/// until `shutdown` resolves. Returns the bound address and the server task.
/// Binding happens before this returns: a taken address is an error naming it.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("binding the health and metrics server ([server] listen) to {listen}")
        })?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("reading the address bound for {listen}"))?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, health });
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(address = %bound, "health and metrics server: {err}");
        }
    });
    tracing::info!(address = %bound, "serving /healthz and /metrics");
    Ok((bound, task))
}

async fn healthz(State(state): State<AppState>) -> Response {
    // The handler is the edge: the clock is read here and passed down.
    let report = state.health.report(Utc::now());
    let status = if report.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
