//! Claim → send → record, for a run's own deliveries.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::stored::Stored;
use super::{Control, DeliveryKey, DeliveryLine, DeliveryOutcome, Ledger};
use crate::outbox::Outgoing;
use crate::store::{Attempt, Claim, NewDelivery};
use crate::window::Window;

impl<S: crate::deliver::Sender, N: Fn() -> DateTime<Utc>> Ledger<'_, S, N> {
    /// Records every item as pending for run `run_id` in one transaction,
    /// before the first is sent (a crash from here on loses nothing), then
    /// sends each one not delivered for this window yet, recording every
    /// result. Items whose key is in `done` (finished by the run's resume)
    /// are left out. Once `control` says stop, no new send starts. Returns
    /// the lines of what was sent, and how many were left pending.
    pub(crate) async fn deliver_all(
        self,
        run_id: i64,
        window: Window,
        items: &[Outgoing],
        done: &HashSet<DeliveryKey>,
        control: &Control,
    ) -> anyhow::Result<(Vec<DeliveryLine>, usize)> {
        let mut todo = Vec::new();
        for item in items {
            let key = DeliveryKey::of(&self.job.name, &window, item);
            if done.contains(&key) {
                continue; // finished by the resume, and listed there
            }
            let stored = Stored::json(item)?;
            todo.push((item, key, stored));
        }
        let new: Vec<NewDelivery<'_>> = todo
            .iter()
            .map(|(item, key, stored)| NewDelivery {
                key: key.as_str(),
                job: &self.job.name,
                window: (window.start, window.end),
                target: &item.target,
                recipient: &item.recipient,
                payload: stored,
            })
            .collect();
        let claims = self.store.enqueue(run_id, &new, (self.now)())?;

        // Each delivery once per (job, window, target, team, recipient).
        let mut lines = Vec::new();
        let mut left = 0;
        for ((item, key, _), claim) in todo.iter().zip(claims) {
            let outcome = match claim {
                Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
                Claim::Send { .. } if control.stopping() => {
                    left += 1;
                    continue;
                }
                Claim::Send { .. } => {
                    // Fencing: the send is claimed again, alone, right before
                    // it goes, in a transaction that checks this run still
                    // holds the job's lease (a replica stalled past its lease
                    // stops here), and that nobody delivered it meanwhile.
                    if let Some(lock) = self.lock {
                        lock.guard(std::future::ready(())).await?;
                    }
                    match self
                        .store
                        .claim_send(run_id, &self.job.name, key.as_str())?
                    {
                        Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
                        Claim::Send { parts_done, .. } => {
                            self.send_and_record(item, key, run_id, parts_done).await?
                        }
                    }
                }
            };
            lines.push(DeliveryLine::of(item, outcome, false));
        }
        Ok((lines, left))
    }

    /// Sends one claimed delivery as run `by_run` and records the result (a
    /// transient failure is scheduled for the service to retry).
    pub(crate) async fn send_and_record(
        self,
        item: &Outgoing,
        key: &DeliveryKey,
        by_run: i64,
        parts_done: u32,
    ) -> anyhow::Result<DeliveryOutcome> {
        use crate::deliver::Sent;
        use tracing::Instrument as _;
        // Retry warnings say which delivery they are about (never its URL).
        let span =
            tracing::warn_span!("delivery", target = %item.target, recipient = %item.recipient);
        let send = self
            .sender
            .send(item, key.as_str(), parts_done)
            .instrument(span);
        let dispatched = match self.lock {
            // A stall past the lease drops the send before another byte goes:
            // the replica that owns the job now sends it.
            Some(lock) => lock.guard(send).await?,
            None => send.await,
        };
        let attempted = dispatched.attempted;
        let error = attempted.result.as_ref().err().map(ToString::to_string);
        // An existing snapshot counts as delivered: it is what this run would have written.
        self.store.record(
            key.as_str(),
            by_run,
            &Attempt {
                attempts: attempted.attempts,
                parts_done: dispatched.parts_done,
                error: error.as_deref(),
                transient: attempted
                    .result
                    .as_ref()
                    .err()
                    .is_some_and(|e| e.is_transient()),
            },
            (self.now)(),
        )?;
        Ok(match attempted.result {
            Ok(Sent::Delivered) => DeliveryOutcome::Delivered {
                attempts: attempted.attempts,
            },
            Ok(Sent::AlreadyArchived) => DeliveryOutcome::AlreadyArchived,
            Err(e) => DeliveryOutcome::Failed {
                attempts: attempted.attempts,
                error: e.to_string(),
            },
        })
    }
}

impl DeliveryLine {
    /// The summary line of `item`, ended with `outcome`.
    pub(crate) fn of(item: &Outgoing, outcome: DeliveryOutcome, resumed: bool) -> Self {
        Self {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            team: item.team.clone(),
            recipient: item.recipient.clone(),
            outcome,
            resumed,
        }
    }
}
