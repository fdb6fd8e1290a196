//! `on_failure` notices: claimed, sent and recorded like any delivery, once per run.

use chrono::{DateTime, Utc};

use super::stored::Stored;
use super::{DeliveryKey, DeliveryLine, DeliveryOutcome, Ledger, RunSummary};
use crate::report::JobInfo;
use crate::store::{Claim, NewDelivery};
use crate::window::Window;

/// What a failure notice is about.
pub struct Notice<'a> {
    /// The run's window, when it got that far.
    pub window: Option<Window>,
    pub fire: DateTime<Utc>,
    pub error: &'a str,
}

impl<S: crate::deliver::Sender, N: Fn() -> DateTime<Utc>> Ledger<'_, S, N> {
    /// Sends the job's `on_failure` notices for run `summary.run_id`, each
    /// recorded in the ledger under a key of (run, notice), so a notice is
    /// never sent twice for one run (and one cut off is finished like any
    /// delivery). Their outcomes join the summary; their own failure cannot
    /// be reported anywhere but there and the log.
    pub(crate) async fn notify_failure(
        self,
        renderer: &crate::render::Renderer,
        notice: Notice<'_>,
        summary: &mut RunSummary,
    ) -> anyhow::Result<()> {
        let job = self.job;
        let ctx = crate::render::FailureContext {
            job: JobInfo::of(job),
            window: notice
                .window
                .map(|w| crate::report::WindowInfo::of(&w, job.timezone, job.window.kind())),
            generated_at: crate::report::local_rfc3339((self.now)(), job.timezone),
            error: notice.error.to_string(),
        };
        let items = match crate::outbox::failure(self.config, job, renderer, &ctx) {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(job = %job.name, "cannot render the on_failure messages: {e:#}");
                return Ok(());
            }
        };
        let window = notice
            .window
            .map_or((notice.fire, notice.fire), |w| (w.start, w.end));
        for item in items {
            let key = DeliveryKey::notice(&job.name, summary.run_id, &item);
            let stored = Stored::json(&item)?;
            let d = NewDelivery {
                key: key.as_str(),
                job: &job.name,
                window,
                target: &item.target,
                recipient: &item.recipient,
                payload: &stored,
            };
            let outcome = match self.store.claim_notice(summary.run_id, &d, (self.now)())? {
                Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
                Claim::Send { parts_done, .. } => {
                    self.send_and_record(&item, &key, summary.run_id, parts_done)
                        .await?
                }
            };
            if let DeliveryOutcome::Failed { error, .. } = &outcome {
                tracing::error!(job = %job.name, target = %item.target, "on_failure notification failed: {error}");
            }
            summary
                .deliveries
                .push(DeliveryLine::of(&item, outcome, false));
        }
        Ok(())
    }
}
