//! The state store: run history and the delivery ledger, in SQLite (the
//! default, in `state_dir`) or in Postgres (`[store] url`, shared by several
//! replicas; see [`postgres`]).
//!
//! SQLite is embedded (rusqlite, bundled) in `state_dir/trainwatch.db`, WAL
//! journal, `synchronous = FULL` so that a recorded delivery survives a power
//! cut, versioned migrations in [`MIGRATIONS`]. Everything outside this module
//! goes through [`Store`]'s methods, the same on either backend.
//!
//! The ledger is what makes deliveries exactly-once per (job, window,
//! target, recipient): a delivery is claimed under its idempotency key before
//! it is sent, marked delivered right after, and never sent again once
//! delivered. Its payload is stored with it (never a secret: URLs and keys
//! stay in the config), so an interrupted run can be finished later.
//!
//! Layout: `records.rs` (what is recorded and handed back), `error.rs`,
//! `row.rs` (the row mapping both backends share), then one folder per
//! backend, `sqlite/` and `postgres/`: connection and migrations, runs, the
//! outbox, locks or leases. The store owns every table in its database, the
//! mirror's included (their migrations are the store's); it imports
//! nothing above `config`.

use std::path::Path;

use chrono::{DateTime, Utc};

mod error;
pub mod postgres;
mod records;
mod row;
mod sqlite;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use postgres::PG_MIGRATIONS;
pub use records::{
    Attempt, Claim, DeliveryRecord, NewDelivery, Outcome, RETRY_FIRST, RETRY_GIVE_UP,
    RETRY_MAX_GAP, RunRecord, Status, StoredDelivery, next_retry,
};
pub use sqlite::{MIGRATIONS, SqliteStore};

/// Held while a job runs: no other trainwatch process can run the same job
/// on the same store until it is dropped. On SQLite a lock file in
/// `state_dir/locks` (the OS releases it if the process dies); on Postgres a
/// lease renewed in the background, which another replica takes once it
/// has expired (the process died or stalled).
#[derive(Debug)]
pub struct JobLock {
    _file: Option<std::fs::File>,
    lease: Option<postgres::LeaseGuard>,
}

impl JobLock {
    fn file(file: std::fs::File) -> Self {
        Self {
            _file: Some(file),
            lease: None,
        }
    }

    /// False once a Postgres lease was found taken by another replica (or
    /// could not be renewed before it expired); a file lock never is lost.
    pub fn held(&self) -> bool {
        self.lease.as_ref().is_none_or(postgres::LeaseGuard::held)
    }

    /// Runs `send` unless and until the lock is lost: checked before every
    /// poll, so a process resumed after a stall past its lease drops a send
    /// still waiting on its receiver (an SMTP server yet to accept DATA)
    /// before writing another byte of it: [`StoreError::LostLease`] then.
    pub async fn guard<F: std::future::Future>(&self, send: F) -> Result<F::Output, StoreError> {
        let mut send = std::pin::pin!(send);
        std::future::poll_fn(|cx| {
            if let Some(lease) = self.lease.as_ref().filter(|l| !l.held()) {
                return std::task::Poll::Ready(Err(lease.lost()));
            }
            send.as_mut().poll(cx).map(Ok)
        })
        .await
    }
}

/// The state store: SQLite in `state_dir` (the default, one host) or
/// Postgres (`[store] url`, shared by several replicas). Both behave the
/// same to callers; Postgres adds leases that fence a stalled replica.
#[derive(Debug)]
pub enum Store {
    /// `state_dir/trainwatch.db`.
    Sqlite(SqliteStore),
    /// A Postgres database shared by replicas.
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend this is.
macro_rules! both {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$m($($a),*),
            Store::Postgres(p) => p.$m($($a),*),
        }
    };
}

/// This process's name among replicas: `--replica-id` when given, else
/// `hostname:pid`.
pub fn replica_id(given: Option<&str>) -> String {
    // The first id given names the process from then on, so the mirror
    // opened later (without one) records its syncs under the same name.
    static GIVEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(id) = given.filter(|s| !s.trim().is_empty()) {
        let id = id.trim().to_string();
        let _ = GIVEN.set(id.clone());
        return id;
    }
    if let Some(id) = GIVEN.get() {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

impl Store {
    /// Opens (creating, and migrating) the SQLite store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        SqliteStore::open(state_dir).map(Self::Sqlite)
    }

    /// Opens the store `config` names: Postgres when `[store] url` is set,
    /// otherwise SQLite in `state_dir`; runs are recorded as `replica`'s.
    pub fn open_config(
        config: &crate::config::Config,
        replica: Option<&str>,
    ) -> Result<Self, StoreError> {
        let replica = replica_id(replica);
        match &config.store.url {
            Some(url) => {
                postgres::PgStore::open(url, config.store.lease, replica).map(Self::Postgres)
            }
            None => {
                let mut s = SqliteStore::open(&config.state_dir)?;
                s.replica = replica;
                Ok(Self::Sqlite(s))
            }
        }
    }

    /// Where the store is: the SQLite file, or the Postgres URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(s) => s.path().display().to_string(),
            Self::Postgres(p) => p.url().to_string(),
        }
    }

    /// Whether several replicas may share this store (Postgres): each
    /// fire then runs once, on whichever replica claims it first.
    pub fn shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The name this process records its runs under.
    pub fn replica(&self) -> &str {
        match self {
            Self::Sqlite(s) => &s.replica,
            Self::Postgres(p) => p.replica(),
        }
    }

    /// Takes `job`'s run lock, or says which process holds it.
    pub fn lock_job(&self, job: &str) -> Result<JobLock, StoreError> {
        both!(self.lock_job(job))
    }

    /// Takes `job`'s run lock if it is free; `None` when another run holds it.
    pub fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        both!(self.try_lock_job(job))
    }

    /// Takes `job`'s run lock, waiting up to `max_wait` (on tokio's clock)
    /// while another process holds it, or until `stop` turns true.
    pub async fn lock_job_waiting(
        &self,
        job: &str,
        max_wait: std::time::Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<JobLock, StoreError> {
        match self {
            Self::Sqlite(s) => s.lock_job_waiting(job, max_wait, stop).await,
            Self::Postgres(p) => p.lock_job_waiting(job, max_wait, stop).await,
        }
    }

    /// Records the start of a run; returns its id.
    pub fn begin_run(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        both!(self.begin_run(job, fire, now))
    }

    /// Records a fire that did not run, so that history shows it.
    pub fn record_skipped(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        both!(self.record_skipped(job, fire, why, now))
    }

    /// Records the window and record count of a run once it has fetched.
    pub fn set_window(
        &self,
        run: i64,
        window: (DateTime<Utc>, DateTime<Utc>),
        records: u64,
    ) -> Result<(), StoreError> {
        both!(self.set_window(run, window, records))
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        run: i64,
        outcome: Outcome,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self.finish_run(run, outcome, error, now))
    }

    /// The outbox: records every delivery of `run` in one transaction (see
    /// [`SqliteStore::enqueue`]). On Postgres it fails with
    /// [`StoreError::LostLease`] when the run's lease is no longer this replica's.
    pub fn enqueue(
        &self,
        run: i64,
        items: &[NewDelivery<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        both!(self.enqueue(run, items, now))
    }

    /// Claims one delivery before it is sent (see [`SqliteStore::claim`]);
    /// on Postgres, only while the run's lease is still this replica's.
    pub fn claim(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        both!(self.claim(run, d, now))
    }

    /// Claims, right before sending it, a delivery `run` recorded in its
    /// outbox: [`Claim::AlreadyDelivered`] when someone delivered it since.
    /// On Postgres in one transaction with the lease check (fencing).
    pub fn claim_send(&self, run: i64, job: &str, key: &str) -> Result<Claim, StoreError> {
        both!(self.claim_send(run, job, key))
    }

    /// Claims the fire of `job` at `fire` for this process, to be called
    /// with the job's lock held: true unless the fire was dealt with
    /// already (on Postgres: by whichever replica won its (job, fire) row).
    pub fn claim_fire(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        both!(self.claim_fire(job, fire))
    }

    /// The replica that claimed (or ran) the fire of `job` at `fire`.
    pub fn fire_claimed_by(
        &self,
        job: &str,
        fire: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        both!(self.fire_claimed_by(job, fire))
    }

    /// [`Store::claim`] for an on_failure notice of `run`.
    pub fn claim_notice(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        both!(self.claim_notice(run, d, now))
    }

    /// Records the result of sending a claimed delivery in run `by_run`.
    pub fn record(
        &self,
        key: &str,
        by_run: i64,
        attempt: &Attempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self.record(key, by_run, attempt, now))
    }

    /// Deliveries of `job` recorded but never confirmed, oldest first.
    pub fn pending(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        both!(self.pending(job))
    }

    /// Deliveries of `job` to send now (pending, or a retry due), oldest first.
    pub fn due(&self, job: &str, now: DateTime<Utc>) -> Result<Vec<DeliveryRecord>, StoreError> {
        both!(self.due(job, now))
    }

    /// The jobs with a delivery [`Store::due`] at `now`.
    pub fn jobs_due(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        both!(self.jobs_due(now))
    }

    /// Every delivery of `job`, oldest first.
    pub fn deliveries(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        both!(self.deliveries(job))
    }

    /// Drops the payloads of deliveries delivered before `before`.
    pub fn prune_payloads(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        both!(self.prune_payloads(before))
    }

    /// Whether the fire of `job` at `fire` has been dealt with (by any replica).
    pub fn has_run(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        both!(self.has_run(job, fire))
    }

    /// The most recent successful run of `job`, if any.
    pub fn last_success(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        both!(self.last_success(job))
    }

    /// The most recent runs (of `job`, or of every job), newest first.
    pub fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        both!(self.runs(job, limit))
    }
}
