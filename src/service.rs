//! `trainwatch run`: the long-running service. Builds what every run shares
//! (store, templates, Samsara client), finishes deliveries interrupted runs
//! left pending, catches up a missed fire, then fires jobs on schedule until
//! SIGINT or SIGTERM, when it drains running jobs and exits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;

use crate::config::Config;
use crate::daemon::{Daemon, Runner, Scheduled};
use crate::deliver::dispatch::Dispatcher;
use crate::deliver::webhook::WebhookSender;
use crate::job::{self, Control, DeliveryOutcome, RunSummary};
use crate::memory::Quiet;
use crate::metrics::{Metrics, RunOutcome, delivery_outcome_label};
use crate::render::Renderer;
use crate::retry::RetryPolicy;
use crate::samsara::Client;
use crate::server::Health;
use crate::store::Store;

/// How often the service tells `/healthz` it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// `/healthz` turns 503 when the last heartbeat is older than this.
const STALE_AFTER: Duration = Duration::from_secs(120);

/// What every run reports to.
#[derive(Clone)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

impl Telemetry {
    /// Telemetry for the jobs of `config`.
    pub fn for_config(config: &Config) -> Self {
        let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        Self {
            metrics: Arc::new(Metrics::for_jobs(names.iter().copied())),
            health: Arc::new(Health::new(names, STALE_AFTER)),
        }
    }

    /// Records a finished run: its log line, metrics and health.
    pub fn run_done(
        &self,
        job: &str,
        fire: chrono::DateTime<Utc>,
        summary: &RunSummary,
        took: Duration,
    ) {
        log_run(job, summary, took);
        let outcome = RunOutcome::of(summary);
        let now = Utc::now();
        self.metrics.run_finished(job, outcome, took, now);
        for d in &summary.deliveries {
            self.metrics
                .delivery(&d.kind, delivery_outcome_label(&d.outcome));
        }
        self.health.job_ran(job, fire, outcome, now);
    }
}

/// Runs real jobs: fetch, render, deliver, record; one log line per run.
pub struct JobRunner {
    config: Arc<Config>,
    client: Client,
    renderer: Arc<Renderer>,
    store: Arc<Store>,
    telemetry: Telemetry,
    /// One HTTP client for every run's webhooks (its pool and TLS setup
    /// are built once, not per run).
    webhooks: WebhookSender,
    control: Control,
    /// Runs and syncs in flight; the last to end releases memory.
    quiet: Quiet,
}

impl JobRunner {
    /// A runner sharing `client`, `renderer`, `store` and one webhook
    /// client between runs; `control` says when a shutdown has begun.
    pub fn new(
        config: Arc<Config>,
        client: Client,
        renderer: Arc<Renderer>,
        store: Arc<Store>,
        telemetry: Telemetry,
        control: Control,
        quiet: Quiet,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            config,
            client,
            renderer,
            store,
            telemetry,
            webhooks: WebhookSender::new().context("creating the webhook client")?,
            control,
            quiet,
        })
    }

    /// The senders of one run: a fresh SMTP session, the shared webhook client.
    fn dispatcher(&self) -> anyhow::Result<Dispatcher> {
        Dispatcher::with_parts(
            &self.config,
            None,
            self.webhooks.clone(),
            RetryPolicy::default(),
        )
    }

    /// One outbox pass: for every job, finishes what earlier runs left
    /// pending and retries transient failures now due (a job whose lock
    /// another run holds is left for the next pass); then drops delivered
    /// payloads older than the retention.
    pub async fn outbox_pass(&self) {
        // One query for all jobs, so that an idle pass builds no senders.
        let due = match self.store.jobs_due(Utc::now()) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!("looking for pending deliveries: {e}");
                Vec::new()
            }
        };
        // One set of senders (one SMTP session) for the whole pass.
        let dispatcher = match due.is_empty() {
            true => None,
            false => match self.dispatcher() {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!("finishing pending deliveries: {e:#}");
                    None
                }
            },
        };
        for job in self.config.jobs.iter().filter(|j| due.contains(&j.name)) {
            let Some(dispatcher) = &dispatcher else { break };
            if self.control.stopping() {
                break;
            }
            let started = Instant::now();
            let resumed = job::resume_pending(
                &self.config,
                job,
                &self.store,
                dispatcher,
                Utc::now,
                &self.control,
            )
            .await;
            match resumed {
                Ok(Some(summary)) => {
                    self.telemetry
                        .run_done(&job.name, Utc::now(), &summary, started.elapsed())
                }
                Ok(None) => {}
                Err(e) => tracing::error!(job = %job.name, "finishing pending deliveries: {e:#}"),
            }
        }
        if let Some(dispatcher) = dispatcher {
            dispatcher.close().await;
        }
        let retention =
            chrono::TimeDelta::from_std(self.config.retention).unwrap_or(chrono::TimeDelta::MAX);
        let before = Utc::now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        match self.store.prune_payloads(before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                "dropped delivered payloads older than the retention"
            ),
            Err(e) => tracing::error!("pruning delivered payloads: {e}"),
        }
        // Files staged for deliveries never sent (a dry run, a run that
        // failed before sending): delivered ones are deleted when sent.
        let before = std::time::SystemTime::now()
            .checked_sub(self.config.retention)
            .unwrap_or(std::time::UNIX_EPOCH);
        match crate::outbox::prune_staging(&self.config.state_dir, before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "dropped staged files older than the retention"),
            Err(e) => tracing::error!("pruning staged files: {e}"),
        }
    }
}

/// Logs the one line a run leaves in the log.
pub fn log_run(job: &str, summary: &RunSummary, took: Duration) {
    let count = |f: fn(&DeliveryOutcome) -> bool| {
        summary.deliveries.iter().filter(|d| f(&d.outcome)).count()
    };
    let delivered = count(|o| matches!(o, DeliveryOutcome::Delivered { .. }));
    let already = count(|o| {
        matches!(
            o,
            DeliveryOutcome::AlreadyDelivered | DeliveryOutcome::AlreadyArchived
        )
    });
    let failed = count(|o| matches!(o, DeliveryOutcome::Failed { .. }));
    let window = summary
        .window
        .map(|w| w.to_string())
        .unwrap_or_else(|| "-".into());
    let records = summary.records.unwrap_or(0);
    let duration_ms = took.as_millis() as u64;
    if summary.left_pending > 0 {
        // Stopped by a shutdown: nothing failed, the rest is sent at the next start.
        let pending = summary.left_pending;
        tracing::warn!(
            job,
            run = summary.run_id,
            window,
            records,
            delivered,
            already,
            failed,
            pending,
            duration_ms,
            outcome = "interrupted",
            "run finished"
        );
    } else if summary.failed() {
        let error = summary
            .error
            .clone()
            .unwrap_or_else(|| format!("{failed} deliveries failed"));
        tracing::error!(job, run = summary.run_id, window, records, delivered, already, failed, duration_ms, outcome = "failed", %error, "run finished");
    } else {
        tracing::info!(
            job,
            run = summary.run_id,
            window,
            records,
            delivered,
            already,
            failed,
            duration_ms,
            outcome = "succeeded",
            "run finished"
        );
    }
}

impl Runner for JobRunner {
    async fn run(&self, name: &str, fire: chrono::DateTime<Utc>) {
        let started = Instant::now();
        let Some(job) = self.config.job(name) else {
            return;
        };
        self.telemetry.health.run_started(name);
        // What the run leaves behind goes back to the system when the last
        // run (or sync) in flight ends.
        let _busy = self.quiet.busy();
        // Clears "running" even when the run is cut off at shutdown.
        struct Finished<'a>(&'a Health, &'a str);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.run_finished(self.1);
            }
        }
        let _finished = Finished(&self.telemetry.health, name);
        // One SMTP session per run.
        let result = match self.dispatcher() {
            Ok(dispatcher) => {
                let result = job::run_controlled(
                    &self.config,
                    job,
                    &self.client,
                    &self.renderer,
                    &self.store,
                    &dispatcher,
                    fire,
                    Utc::now,
                    &self.control,
                )
                .await;
                dispatcher.close().await;
                result
            }
            Err(e) => Err(e),
        };
        let summary = result.unwrap_or_else(|e| RunSummary {
            error: Some(format!("{e:#}")),
            ..RunSummary::default()
        });
        if summary.ran_elsewhere.is_some() && summary.run_id == 0 {
            // Another replica ran this fire and left nothing to finish:
            // its run is in the store, counted where it ran.
            return;
        }
        self.telemetry
            .run_done(name, fire, &summary, started.elapsed());
    }

    fn skipped(&self, name: &str, fire: chrono::DateTime<Utc>) {
        if let Err(e) = self.store.record_skipped(
            name,
            fire,
            "skipped: the previous run of this job was still going",
            Utc::now(),
        ) {
            tracing::error!(job = name, "recording a skipped fire: {e}");
        }
    }
}

/// Runs the service until `shutdown` completes, as replica `hostname:pid`.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    run_as(config, None, shutdown).await
}

/// Runs the service until `shutdown` completes, recording its runs as
/// `replica`'s (default `hostname:pid`).
pub async fn run_as(
    config: Config,
    replica: Option<&str>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // The start (and the config check before it) is work too: what it
    // leaves behind goes back once it and the first mirror sync are over.
    let quiet = Quiet::default();
    let starting = quiet.busy();
    let config = Arc::new(config);
    let store = Arc::new(Store::open_config(&config, replica)?);
    let renderer =
        Arc::new(Renderer::new(config.templates_dir.as_deref()).context("loading the templates")?);
    let telemetry = Telemetry::for_config(&config);
    telemetry.health.heartbeat(Utc::now());
    let (settings, _sample) = crate::sample::client_settings(&config.samsara).await?;
    let limits = crate::ratelimit::shared_limits(&config.state_dir, &settings.token);
    let client = Client::with_limits(settings, limits)
        .context("creating the HTTP client")?
        .observed(telemetry.metrics.clone());
    // The listener first, so that a taken port stops the start with a clear error.
    let stop_server = Arc::new(tokio::sync::Notify::new());
    let server = match &config.server {
        Some(s) => {
            let stop = stop_server.clone();
            let (addr, handle) = crate::server::serve(
                s.listen,
                telemetry.metrics.clone(),
                telemetry.health.clone(),
                async move { stop.notified().await },
            )
            .await?;
            tracing::info!(%addr, "serving /healthz and /metrics");
            Some(handle)
        }
        None => None,
    };
    tracing::info!(
        config = %config.path.display(),
        jobs = config.jobs.len(),
        state = %store.describe(),
        replica = %store.replica(),
        version = env!("CARGO_PKG_VERSION"),
        "trainwatch starting"
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut control = Control::new(stopped, job::LOCK_WAIT);
    // Replicas sharing a Postgres store: each fire runs on one of them.
    control.once_per_fire = store.shared();
    let client_for_refresh = client.clone();
    let runner = Arc::new(JobRunner::new(
        config.clone(),
        client,
        renderer,
        store.clone(),
        telemetry.clone(),
        control.clone(),
        quiet.clone(),
    )?);
    // The outbox: what runs cut off by a stop or a crash left pending goes
    // first, then transient failures are retried as they fall due.
    let outbox = {
        let (runner, mut stopped) = (runner.clone(), control.clone());
        tokio::spawn(async move {
            loop {
                runner.outbox_pass().await;
                tokio::select! {
                    _ = tokio::time::sleep(crate::defaults::OUTBOX_INTERVAL) => {}
                    _ = stopped.stopped() => return,
                }
            }
        })
    };
    let scheduled = config
        .jobs
        .iter()
        .map(|j| Scheduled {
            name: j.name.clone(),
            schedule: j.schedule.clone(),
            timezone: j.timezone,
        })
        .collect();
    let daemon = Daemon::new(scheduled, runner);
    daemon.catch_up(Utc::now(), config.catch_up, |job, fire| {
        store.has_run(job, fire).unwrap_or(true)
    });
    daemon
        .start_scheduler()
        .await
        .context("starting the scheduler")?;
    for job in &config.jobs {
        if let Some(next) = crate::schedule::next_fire(&job.schedule, job.timezone, Utc::now()) {
            tracing::info!(job = %job.name, next = %next.with_timezone(&job.timezone).to_rfc3339(), "scheduled");
        }
    }

    let refresh = refresh_mirror(&config, &client_for_refresh, &telemetry, &quiet);

    let health = telemetry.health.clone();
    if store.shared() {
        health.set_replica(store.replica());
    }
    let heartbeat = {
        let (store, metrics) = (store.clone(), telemetry.metrics.clone());
        let jobs: Vec<String> = config.jobs.iter().map(|j| j.name.clone()).collect();
        tokio::spawn(async move {
            loop {
                health.heartbeat(Utc::now());
                if store.shared() {
                    // Every replica's work, read back from the shared store,
                    // so each replica's /healthz and /metrics show it.
                    for job in &jobs {
                        match store.runs(Some(job), 1) {
                            Ok(runs) => {
                                if let Some(r) = runs.into_iter().next() {
                                    let replica = r.replica.clone().unwrap_or_default();
                                    metrics.store_saw(
                                        job,
                                        &replica,
                                        r.outcome.as_str(),
                                        r.fire_time,
                                    );
                                    health.store_saw(
                                        job,
                                        crate::server::StoreRun {
                                            fire: r.fire_time.to_rfc3339(),
                                            replica: r.replica,
                                            outcome: r.outcome.as_str().to_string(),
                                            finished: r.finished_at.map(|t| t.to_rfc3339()),
                                        },
                                    );
                                }
                            }
                            Err(e) => {
                                tracing::warn!(job = %job, "reading the shared store's runs: {e}")
                            }
                        }
                    }
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        })
    };

    drop(starting);
    shutdown.await;
    heartbeat.abort();
    if let Some(refresh) = refresh {
        refresh.abort();
    }
    tracing::info!(
        "stopping: no new runs or sends; waiting up to {}s for the sends in flight",
        crate::defaults::SHUTDOWN_TIMEOUT.as_secs()
    );
    // Runs and the outbox start no new send from here; what is left stays
    // pending in the ledger for the next start.
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + crate::defaults::SHUTDOWN_TIMEOUT;
    let drained = daemon.shutdown(crate::defaults::SHUTDOWN_TIMEOUT).await;
    let mut outbox = outbox;
    if tokio::time::timeout_at(deadline, &mut outbox)
        .await
        .is_err()
    {
        outbox.abort();
    }
    if drained.interrupted > 0 {
        tracing::warn!(
            interrupted = drained.interrupted,
            "runs cut off at the shutdown timeout; their unsent deliveries are pending and are sent at the next start"
        );
    }
    stop_server.notify_one();
    if let Some(handle) = server {
        let _ = handle.await;
    }
    tracing::info!(finished = drained.finished, "stopped");
    Ok(())
}

/// Syncs the mirror every `mirror.refresh` (the first at start) while the
/// service runs, so runs find it nearly current; `None` when the mirror is
/// off, `refresh` is 0, or no job reads it. Sync metrics are recorded for
/// these syncs and for those runs start.
fn refresh_mirror(
    config: &Arc<Config>,
    client: &Client,
    telemetry: &Telemetry,
    quiet: &Quiet,
) -> Option<tokio::task::JoinHandle<()>> {
    let metrics = telemetry.metrics.clone();
    crate::mirror::on_sync_end(Arc::new(move |outcome, stats, took| {
        metrics.sync_finished(outcome, stats, took, Utc::now())
    }));
    let used = config
        .jobs
        .iter()
        .any(|j| crate::mirror::uses_mirror(config, j));
    if !used || config.mirror.refresh.is_zero() {
        return None;
    }
    let (config, client, quiet) = (config.clone(), client.clone(), quiet.clone());
    Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(config.mirror.refresh);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let _busy = quiet.busy();
            let synced = async {
                let mirror = crate::mirror::open(&config)?;
                crate::mirror::sync(mirror.as_ref(), &client, &config.mirror, Utc::now(), None)
                    .await
            }
            .await;
            // A failed refresh is logged by the sync; the next run syncs again.
            if let Err(e) = synced {
                tracing::debug!("mirror refresh: {e:#}");
            }
        }
    }))
}

/// Completes on SIGINT or SIGTERM.
pub async fn signals() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
