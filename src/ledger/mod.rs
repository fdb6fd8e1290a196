//! The delivery ledger's protocol: every delivery of a run recorded as
//! pending before the first is sent, each claimed right before it goes,
//! sent once, and its result recorded; what a run left pending resumed by
//! the next. [`crate::job`] sequences a run; this module is how its
//! deliveries are kept, and the only code that talks to the store about them.
//!
//! The store keeps kinds and keys as strings: they become
//! [`DeliveryKind`]s and [`DeliveryKey`]s here, and an unknown stored kind
//! fails its delivery with a message instead of being guessed.

mod notice;
mod outcome;
mod resume;
mod send;
mod stored;

use chrono::{DateTime, Utc};

use crate::config::{Config, Job};
use crate::store::{JobLock, Store};
use crate::window::Window;

pub use crate::outbox::DeliveryKind;
pub use notice::Notice;
pub(crate) use outcome::left_pending_note;
pub use outcome::{
    DeliveryLine, DeliveryOutcome, RunSummary, deliveries_count, failure_detail, failure_headline,
};
pub use resume::resume_pending;

/// A delivery's idempotency key: stable per (job, window, target, team,
/// recipient), so a re-run of the same window finds it in the ledger, and
/// receivers can deduplicate (`Idempotency-Key`, derived `Message-ID`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryKey(String);

impl DeliveryKey {
    /// The key of `item`, a delivery of `job` for `window`.
    pub fn of(job: &str, window: &Window, item: &crate::outbox::Outgoing) -> Self {
        let material = format!(
            "{job}\n{}\n{}\n{}\n{}\n{}",
            window.start.timestamp_millis(),
            window.end.timestamp_millis(),
            item.target,
            item.team.as_deref().unwrap_or(""),
            item.recipient,
        );
        Self(crate::deliver::archive::sha256_hex(material.as_bytes()))
    }

    /// The key of an `on_failure` notice of run `run`: one per (run, notice).
    pub fn notice(job: &str, run: i64, item: &crate::outbox::Outgoing) -> Self {
        let material = format!(
            "on_failure\n{job}\n{run}\n{}\n{}\n{}",
            item.delivery, item.target, item.recipient
        );
        Self(crate::deliver::archive::sha256_hex(material.as_bytes()))
    }

    /// A key as the store gave it back.
    pub fn stored(key: String) -> Self {
        Self(key)
    }

    /// The key as the store and the receivers see it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a run waits for its job's lock while another process (a manual
/// `run-once`, a second service) runs the same job, before it gives up and
/// is recorded as failed.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a run may do: stop starting sends once a shutdown begins, and how
/// long to wait for its job's lock.
#[derive(Debug, Clone)]
pub struct Control {
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    /// How long to wait for the job's lock held by another process.
    pub lock_wait: std::time::Duration,
    /// Set by the service on a shared (Postgres) store: a fire already
    /// claimed by another replica is not run again here.
    pub once_per_fire: bool,
}

impl Default for Control {
    /// Never stopped; waits [`LOCK_WAIT`] for the lock.
    fn default() -> Self {
        Self::new(tokio::sync::watch::channel(false).1, LOCK_WAIT)
    }
}

impl Control {
    /// Stops starting sends once `stop` holds true.
    pub fn new(stop: tokio::sync::watch::Receiver<bool>, lock_wait: std::time::Duration) -> Self {
        Self {
            stop,
            lock_wait,
            once_per_fire: false,
        }
    }

    /// True once a shutdown has begun: no new send may start.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes when a shutdown begins (at once if the signal is gone).
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    /// What a lock wait watches to give up at a shutdown.
    pub(crate) fn stop_signal(&self) -> &tokio::sync::watch::Receiver<bool> {
        &self.stop
    }
}

/// The parts one run's deliveries are kept with: the job, where they are
/// recorded, who sends them, the clock, and the lock that fences each send
/// (`None` only for a notice that the run could not get the lock).
pub struct Ledger<'a, S, N> {
    pub config: &'a Config,
    pub job: &'a Job,
    pub store: &'a Store,
    pub sender: &'a S,
    pub now: &'a N,
    pub lock: Option<&'a JobLock>,
}

impl<S, N> Clone for Ledger<'_, S, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S, N> Copy for Ledger<'_, S, N> {}

impl<'a, S: crate::deliver::Sender, N: Fn() -> DateTime<Utc>> Ledger<'a, S, N> {
    /// The same parts, with every send fenced by `lock`.
    pub fn locked(self, lock: &'a JobLock) -> Self {
        Self {
            lock: Some(lock),
            ..self
        }
    }
}

/// Whether `e` says this replica lost its lease on the job.
pub fn lost_lease(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::store::StoreError>(),
            Some(crate::store::StoreError::LostLease { .. })
        )
    })
}
