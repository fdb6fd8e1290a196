//! Job leases on Postgres: taken when free or expired, renewed in the
//! background, released on drop; and the mirror's sync lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::{PgStore, R, chain};
use crate::store::{JobLock, StoreError};

/// How often a replica waiting for a job's lease tries again.
const LEASE_POLL: Duration = Duration::from_millis(200);

impl PgStore {
    /// Takes the lease `name` for [`Self::lease`] if it is free or expired;
    /// its new generation when taken, `None` while another holds it.
    async fn take_lease(&self, name: &str) -> R<Option<i64>> {
        let c = self.client().await?;
        let ms = self.lease.as_millis() as i64;
        let row = c
            .query_opt(
                "INSERT INTO leases (name, owner, generation, expires_at)
                 VALUES ($1, $2, 1, clock_timestamp() + $3::BIGINT * INTERVAL '1 millisecond')
                 ON CONFLICT (name) DO UPDATE
                   SET owner = EXCLUDED.owner, generation = leases.generation + 1,
                       expires_at = EXCLUDED.expires_at
                   WHERE leases.expires_at <= clock_timestamp()
                 RETURNING generation",
                &[&name, &self.replica, &ms],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Who holds the lease `name` now (for messages).
    async fn lease_holder(&self, name: &str) -> R<Option<String>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT owner FROM leases WHERE name = $1 AND expires_at > clock_timestamp()",
            &[&name],
        )
        .await?
        .map(|r| r.get(0)))
    }

    fn guard(&self, job: &str, generation: i64, deadline: std::time::Instant) -> JobLock {
        JobLock {
            _file: None,
            lease: Some(self.lease_guard(format!("job:{job}"), job, generation, deadline)),
        }
    }

    /// Holds the lease `name` (taken at `generation`), renewing it in the
    /// background; `job` is the key its generation is registered under.
    fn lease_guard(
        &self,
        name: String,
        job: &str,
        generation: i64,
        deadline: std::time::Instant,
    ) -> LeaseGuard {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_string(), generation);
        let held = Arc::new(AtomicBool::new(true));
        let deadline = Arc::new(Mutex::new(deadline));
        let renew = {
            let (pool, owner, name, held, lease, until) = (
                self.pool.clone(),
                self.replica.clone(),
                name.clone(),
                held.clone(),
                self.lease,
                deadline.clone(),
            );
            self.handle.spawn(async move {
                // Renewed three times a lease, so one slow round trip does not lose it.
                let every = (lease / 3).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    let asked = std::time::Instant::now();
                    let renewed = async {
                        let c = pool.get().await.map_err(|e| chain(&e))?;
                        c.execute(
                            "UPDATE leases SET expires_at = clock_timestamp() + $4::BIGINT * INTERVAL '1 millisecond'
                             WHERE name = $1 AND owner = $2 AND generation = $3 AND expires_at > clock_timestamp()",
                            &[&name, &owner, &generation, &(lease.as_millis() as i64)],
                        )
                        .await
                        .map_err(|e| chain(&e))
                    }
                    .await;
                    match renewed {
                        Ok(1) => {
                            *until.lock().unwrap_or_else(|e| e.into_inner()) = asked + lease;
                        }
                        Ok(_) => {
                            held.store(false, Ordering::SeqCst);
                            tracing::error!(lease = %name, "lost the lease to another replica (this one stalled past store.lease); sending nothing more for it");
                            return;
                        }
                        // The lease may still be ours: try again until it is not.
                        Err(e) => tracing::warn!(lease = %name, "renewing the lease: {e}"),
                    }
                }
            })
        };
        LeaseGuard {
            name,
            job: job.to_string(),
            generation,
            owner: self.replica.clone(),
            held,
            deadline,
            renew,
            pool: self.pool.clone(),
            handle: self.handle.clone(),
            registry: self.held.clone(),
        }
    }

    /// The name the mirror's sync lease is registered under (not a job
    /// name: those have no spaces).
    pub(crate) const SYNC_KEY: &'static str = "mirror sync";

    /// Takes the lease that lets one replica at a time sync the mirror, if
    /// it is free or expired.
    pub(crate) fn try_lock_sync(&self) -> Result<Option<LeaseGuard>, StoreError> {
        let asked = std::time::Instant::now();
        let generation = self.call("taking the sync lease", self.take_lease("mirror-sync"))?;
        Ok(generation
            .map(|g| self.lease_guard("mirror-sync".into(), Self::SYNC_KEY, g, asked + self.lease)))
    }

    /// The generation of the lease registered under `key` that this process holds.
    pub(crate) fn held_generation(&self, key: &str) -> Option<i64> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// Takes `job`'s lease, or says which replica holds it.
    pub fn lock_job(&self, job: &str) -> Result<JobLock, StoreError> {
        match self.try_lock_job(job)? {
            Some(lock) => Ok(lock),
            None => {
                let holder = self
                    .call("reading a lease", self.lease_holder(&format!("job:{job}")))?
                    .unwrap_or_else(|| "another replica".into());
                Err(StoreError::JobBusy {
                    job: job.to_string(),
                    holder: format!("({holder} holds the job's lease in {})", self.url),
                })
            }
        }
    }

    /// Takes `job`'s lease if it is free or expired.
    pub fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        // Measured before asking: the database's expiry is later than this.
        let asked = std::time::Instant::now();
        let generation = self.call("taking a job lease", self.take_lease(&format!("job:{job}")))?;
        Ok(generation.map(|g| self.guard(job, g, asked + self.lease)))
    }

    /// Takes `job`'s lease, waiting up to `max_wait` (tokio's clock) while
    /// another replica holds it, or until `stop` turns true.
    pub async fn lock_job_waiting(
        &self,
        job: &str,
        max_wait: Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<JobLock, StoreError> {
        let started = tokio::time::Instant::now();
        let mut said = false;
        loop {
            if let Some(lock) = self.try_lock_job(job)? {
                return Ok(lock);
            }
            let waited = started.elapsed();
            if waited >= max_wait || *stop.borrow() {
                return Err(StoreError::JobWaitedOut {
                    job: job.to_string(),
                    holder: format!("(another replica held the job's lease in {})", self.url),
                    waited_s: waited.as_secs(),
                    shutdown: *stop.borrow(),
                });
            }
            if !said {
                tracing::info!(
                    job,
                    max_wait_s = max_wait.as_secs(),
                    "the job is running on another replica; waiting for its lease"
                );
                said = true;
            }
            tokio::time::sleep(LEASE_POLL.min(max_wait - waited)).await;
        }
    }
}

/// A job lease this process holds: renewed in the background every third
/// of `store.lease`, released (expired at once, generation kept) on drop.
pub struct LeaseGuard {
    name: String,
    job: String,
    generation: i64,
    owner: String,
    held: Arc<AtomicBool>,
    /// Until when the lease is surely ours by this process's monotonic
    /// clock (measured from before each successful take or renewal, so
    /// always earlier than the database's expiry).
    deadline: Arc<Mutex<std::time::Instant>>,
    renew: tokio::task::JoinHandle<()>,
    pool: Pool,
    handle: tokio::runtime::Handle,
    registry: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("name", &self.name)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl LeaseGuard {
    /// The error for a lease this replica no longer holds.
    pub fn lost(&self) -> StoreError {
        StoreError::LostLease {
            job: self.job.clone(),
            replica: self.owner.clone(),
        }
    }

    /// False once renewing found the lease taken by another replica, or
    /// once this process's clock is past the last renewal plus the lease
    /// (it stalled: another replica may own the job by now).
    pub fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
            && std::time::Instant::now() < *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renew.abort();
        {
            let mut held = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            if held.get(&self.job) == Some(&self.generation) {
                held.remove(&self.job);
            }
        }
        // Expired now rather than deleted: the generation must only grow,
        // or a stalled holder of an old generation could pass the fence.
        let (pool, name, owner, generation) = (
            self.pool.clone(),
            self.name.clone(),
            self.owner.clone(),
            self.generation,
        );
        let (done, wait) = std::sync::mpsc::channel::<()>();
        self.handle.spawn(async move {
            if let Ok(c) = pool.get().await {
                let _ = c
                    .execute(
                        "UPDATE leases SET expires_at = clock_timestamp()
                         WHERE name = $1 AND owner = $2 AND generation = $3",
                        &[&name, &owner, &generation],
                    )
                    .await;
            }
            let _ = done.send(());
        });
        // Waited for (briefly), so that the next run of the job, here or
        // on another replica, finds it free; if the database is away, the
        // lease simply expires.
        let _ = wait.recv_timeout(Duration::from_secs(5));
    }
}
