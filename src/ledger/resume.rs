//! Resume: what earlier runs left pending, and transient failures now due,
//! sent by a later run (or the service's outbox pass).

use chrono::{DateTime, Utc};

use super::outcome::left_pending_note;
use super::stored::Stored;
use super::{
    Control, DeliveryKey, DeliveryLine, DeliveryOutcome, Ledger, RunSummary, deliveries_count,
    failure_headline,
};
use crate::config::{Config, Job};
use crate::store::{Attempt, Claim, NewDelivery, Outcome};

impl<S: crate::deliver::Sender, N: Fn() -> DateTime<Utc>> Ledger<'_, S, N> {
    /// Sends, under run `run_id`, what earlier runs of the job left pending
    /// and the transient failures whose retry is due; once `control` says
    /// stop, the rest stay pending. Returns (key, line) of each sent, and
    /// how many were left. A stored delivery that cannot be read back (its
    /// payload, or a kind this version does not know) is failed for good
    /// with the reason, never sent as a guess.
    pub(crate) async fn resume_into(
        self,
        run_id: i64,
        control: &Control,
    ) -> anyhow::Result<(Vec<(DeliveryKey, DeliveryLine)>, usize)> {
        let mut lines = Vec::new();
        let mut left = 0;
        for pending in self.store.due(&self.job.name, (self.now)())? {
            if control.stopping() {
                left += 1;
                continue;
            }
            let key = DeliveryKey::stored(pending.key.clone());
            let restored = match pending
                .payload
                .as_deref()
                .map(serde_json::from_str::<Stored>)
            {
                Some(Ok(stored)) => stored.restore(&self.config.webhooks),
                _ => Err(
                    "its stored payload cannot be read (written by another version?)".to_string(),
                ),
            };
            let line = match restored {
                Ok(item) => {
                    let d = NewDelivery {
                        key: key.as_str(),
                        job: &self.job.name,
                        window: (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
                        target: &pending.target,
                        recipient: &pending.recipient,
                        payload: pending.payload.as_deref().unwrap_or_default(),
                    };
                    match self.store.claim(run_id, &d, (self.now)())? {
                        Claim::AlreadyDelivered { .. } => None,
                        Claim::Send { parts_done, .. } => Some(
                            self.send_and_record(&item, &key, run_id, parts_done)
                                .await?,
                        ),
                    }
                    .map(|outcome| DeliveryLine::of(&item, outcome, true))
                }
                Err(error) => {
                    let attempt = Attempt {
                        attempts: 0,
                        parts_done: 0,
                        error: Some(&error),
                        transient: false,
                    };
                    self.store
                        .record(key.as_str(), run_id, &attempt, (self.now)())?;
                    tracing::error!(job = %self.job.name, target = %pending.target, "a pending delivery failed: {error}");
                    Some(DeliveryLine {
                        // The target starts with the kind for email and archive.
                        kind: pending
                            .target
                            .split(' ')
                            .next()
                            .and_then(super::DeliveryKind::parse)
                            .map_or("unknown", |k| k.as_str())
                            .to_string(),
                        target: pending.target.clone(),
                        team: None,
                        recipient: pending.recipient.clone(),
                        outcome: DeliveryOutcome::Failed { attempts: 0, error },
                        resumed: true,
                    })
                }
            };
            lines.extend(line.map(|l| (key, l)));
        }
        Ok((lines, left))
    }

    /// [`resume_pending`] with the job's lock already held (`self.lock`).
    pub(crate) async fn resume_locked(
        self,
        control: &Control,
    ) -> anyhow::Result<Option<RunSummary>> {
        let (store, now) = (self.store, self.now);
        if store.due(&self.job.name, now())?.is_empty() {
            return Ok(None);
        }
        let run_id = store.begin_run(&self.job.name, now(), now())?;
        let (lines, left) = self.resume_into(run_id, control).await?;
        let mut summary = RunSummary {
            run_id,
            deliveries: lines.into_iter().map(|(_, l)| l).collect(),
            left_pending: left,
            ..RunSummary::default()
        };
        let (outcome, note) = if left > 0 {
            let note = left_pending_note(left);
            summary.error = Some(note.clone());
            (Outcome::Interrupted, note)
        } else if summary.failed() {
            (
                Outcome::Failed,
                format!(
                    "finishing earlier runs' deliveries: {}",
                    failure_headline(&summary.deliveries)
                ),
            )
        } else {
            (
                Outcome::Succeeded,
                format!(
                    "finished {} of earlier runs",
                    deliveries_count(summary.deliveries.len())
                ),
            )
        };
        store.finish_run(run_id, outcome, Some(&note), now())?;
        Ok(Some(summary))
    }
}

/// The service's outbox pass for `job`: finishes the deliveries earlier
/// runs left pending and retries transient failures now due, as a run of
/// its own (fired `now`). `None` when there was nothing due, or when another
/// run of the job holds its lock (that run finishes them itself, or the
/// next pass does).
pub async fn resume_pending<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    now: impl Fn() -> DateTime<Utc>,
    control: &Control,
) -> anyhow::Result<Option<RunSummary>> {
    if store.due(&job.name, now())?.is_empty() {
        return Ok(None);
    }
    let Some(lock) = store.try_lock_job(&job.name)? else {
        return Ok(None);
    };
    let ledger = Ledger {
        config,
        job,
        store,
        sender,
        now: &now,
        lock: Some(&lock),
    };
    ledger.resume_locked(control).await
}
