//! A run: the job's lock, what earlier runs left, then fetch → reports →
//! outbox, then the deliveries through the [`crate::ledger`].

use chrono::{DateTime, Utc};

use super::{Context, Upto};
use crate::config::{Config, Job};
use crate::ledger::{Control, DeliveryKey, Ledger, Notice, RunSummary, lost_lease};
use crate::samsara::Client;
use crate::store::Outcome;

/// Runs `job` as fired at `fire`, never stopped, waiting
/// [`crate::ledger::LOCK_WAIT`] for its lock: see [`run_controlled`].
#[allow(clippy::too_many_arguments)] // the run's whole world, passed in (nothing global)
pub async fn run<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    client: &Client,
    renderer: &crate::render::Renderer,
    store: &crate::store::Store,
    sender: &S,
    fire: DateTime<Utc>,
    now: impl Fn() -> DateTime<Utc>,
) -> anyhow::Result<RunSummary> {
    run_controlled(
        config,
        job,
        client,
        renderer,
        store,
        sender,
        fire,
        now,
        &Control::default(),
    )
    .await
}

/// Runs `job` as fired at `fire` under `control`: see [`Run::fire`].
#[allow(clippy::too_many_arguments)] // the run's whole world, passed in (nothing global)
pub async fn run_controlled<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    client: &Client,
    renderer: &crate::render::Renderer,
    store: &crate::store::Store,
    sender: &S,
    fire: DateTime<Utc>,
    now: impl Fn() -> DateTime<Utc>,
    control: &Control,
) -> anyhow::Result<RunSummary> {
    let run = Run {
        config,
        job,
        client,
        renderer,
        store,
        sender,
    };
    run.fire(fire, now, control).await
}

/// What one job's runs are made with: the whole world, passed in (nothing global).
pub struct Run<'a, S> {
    pub config: &'a Config,
    pub job: &'a Job,
    pub client: &'a Client,
    pub renderer: &'a crate::render::Renderer,
    pub store: &'a crate::store::Store,
    pub sender: &'a S,
}

impl<S: crate::deliver::Sender> Run<'_, S> {
    /// Runs the job as fired at `fire`: takes its lock (waiting while another
    /// process runs it), finishes what earlier runs left pending, fetches,
    /// renders every delivery, records them all as pending in one transaction
    /// (the outbox), then sends each one not already delivered for this window,
    /// recording every result. Once `control` says stop, it starts no new send
    /// and leaves the rest pending for the service to finish. Never returns
    /// early without recording the run, even one that could not get the lock.
    pub async fn fire(
        &self,
        fire: DateTime<Utc>,
        now: impl Fn() -> DateTime<Utc>,
        control: &Control,
    ) -> anyhow::Result<RunSummary> {
        let &Run {
            config,
            job,
            client,
            renderer,
            store,
            sender,
        } = self;
        let ledger = Ledger {
            config,
            job,
            store,
            sender,
            now: &now,
            lock: None,
        };
        // Another process delivering this job now would race us for its claims:
        // wait for it (bounded), and record the fire either way.
        let lock = match store
            .lock_job_waiting(&job.name, control.lock_wait, control.stop_signal())
            .await
        {
            Ok(lock) => lock,
            Err(e) => {
                let error = format!("{e:#}");
                let run_id = store.begin_run(&job.name, fire, now())?;
                // Stopped while waiting: nothing was recorded for the fire, so
                // catch-up at the next start runs it.
                let outcome = if control.stopping() {
                    Outcome::Interrupted
                } else {
                    Outcome::Failed
                };
                store.finish_run(run_id, outcome, Some(&error), now())?;
                let mut summary = RunSummary {
                    run_id,
                    error: Some(error.clone()),
                    ..RunSummary::default()
                };
                if !control.stopping() {
                    let detail =
                        format!("{error}\nThis fire did not run: nothing was sent for it.");
                    let notice = Notice {
                        window: None,
                        fire,
                        error: &detail,
                    };
                    ledger
                        .notify_failure(renderer, notice, &mut summary)
                        .await?;
                }
                return Ok(summary);
            }
        };
        let ledger = ledger.locked(&lock);
        // Several replicas on one store: the fire runs on whichever claims its
        // (job, fire) row first. The others still finish what a replica that
        // died left pending, under the lease they now hold.
        if control.once_per_fire && !store.claim_fire(&job.name, fire)? {
            let by = store
                .fire_claimed_by(&job.name, fire)?
                .unwrap_or_else(|| "another replica".into());
            tracing::info!(job = %job.name, fire = %fire.to_rfc3339(), replica = %by, "this fire ran on another replica");
            let resumed = ledger.resume_locked(control).await?;
            let mut summary = resumed.unwrap_or_default();
            summary.ran_elsewhere = Some(by);
            return Ok(summary);
        }
        let run_id = store.begin_run(&job.name, fire, now())?;
        let result = async {
            let mut summary = RunSummary {
                run_id,
                ..RunSummary::default()
            };

            // 1. What earlier runs left pending, and transient failures now due.
            let (resumed_lines, resumed_left) = ledger.resume_into(run_id, control).await?;
            let resumed: std::collections::HashSet<DeliveryKey> =
                resumed_lines.iter().map(|(k, _)| k.clone()).collect();
            summary
                .deliveries
                .extend(resumed_lines.into_iter().map(|(_, line)| line));

            // 2. Fetch and render everything before sending anything.
            let prepared = async {
                let context = Context {
                    config,
                    job,
                    client,
                };
                let upto = Upto::Outbox(renderer);
                let data = context
                    .fetch(fire, last_success_end(store, job)?, upto)
                    .await?;
                let prepared = context.render(fire, data, now(), renderer)?;
                // After the reports: a streamed state is counted as they read it.
                let data = &prepared.data;
                let records = data.included_count(job);
                store.set_window(run_id, (data.window.start, data.window.end), records)?;
                anyhow::Ok((prepared.data.window, records, prepared.outbox))
            }
            .await;
            let (window, records, outbox) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    let error = format!("{e:#}");
                    store.finish_run(run_id, Outcome::Failed, Some(&error), now())?;
                    summary.error = Some(error.clone());
                    let detail = format!("{error}\nNothing was sent for this window.");
                    let notice = Notice {
                        window: None,
                        fire,
                        error: &detail,
                    };
                    ledger
                        .notify_failure(renderer, notice, &mut summary)
                        .await?;
                    return Ok(summary);
                }
            };
            summary.window = Some(window);
            summary.records = Some(records);
            summary.skipped = outbox.skipped.clone();

            // 3. The outbox recorded, then each delivery claimed, sent, recorded.
            let (lines, left) = ledger
                .deliver_all(run_id, window, &outbox.items, &resumed, control)
                .await?;
            summary.deliveries.extend(lines);
            let left = resumed_left + left;
            if left > 0 {
                // Not a failure to report: the service sends the rest at its next start.
                let error = crate::ledger::left_pending_note(left);
                store.finish_run(run_id, Outcome::Interrupted, Some(&error), now())?;
                summary.left_pending = left;
                summary.error = Some(error);
                return Ok(summary);
            }
            let outcome = if summary.failed() {
                Outcome::Failed
            } else {
                Outcome::Succeeded
            };
            let error = summary
                .failed()
                .then(|| crate::ledger::failure_headline(&summary.deliveries));
            store.finish_run(run_id, outcome, error.as_deref(), now())?;
            if error.is_some() {
                let detail = crate::ledger::failure_detail(&summary.deliveries);
                let notice = Notice {
                    window: Some(window),
                    fire,
                    error: &detail,
                };
                ledger
                    .notify_failure(renderer, notice, &mut summary)
                    .await?;
            }
            Ok(summary)
        }
        .await;
        if let Err(e) = &result {
            if lost_lease(e) {
                // Another replica owns the job now and finishes this run's
                // deliveries (and settles its outcome); writing one here could
                // overwrite what it recorded.
                tracing::error!(job = %job.name, run = run_id, "{e:#}");
            } else {
                // The store itself failing part-way: still leave an outcome if it can.
                let _ = store.finish_run(run_id, Outcome::Failed, Some(&format!("{e:#}")), now());
            }
        }
        result
    }
}

/// The end of the last successful run's window (for `since_last_run`).
fn last_success_end(
    store: &crate::store::Store,
    job: &Job,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(store
        .last_success(&job.name)?
        .and_then(|r| r.window)
        .map(|(_, end)| end))
}
