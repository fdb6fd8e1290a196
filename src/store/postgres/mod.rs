//! The store on Postgres (`[store] url`): the same runs and delivery ledger
//! as SQLite, shared by several replicas, plus what sharing needs: job
//! leases that a stalled or dead replica loses, a claim per (job, fire) so
//! each fire runs once, and fencing (every claim of a send checks, in its
//! own transaction, that the run's lease is still this replica's).
//!
//! tokio-postgres with a deadpool pool, driven on a runtime of its own (one
//! worker thread): the store's interface is synchronous, like SQLite's, and
//! a call blocks its caller for one round trip, as a SQLite write does.
//! Timestamps are `timestamptz`; lease times are the database's clock, so
//! replicas with skewed clocks still agree on who holds a lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret as _, SecretString};
use tokio_postgres::types::ToSql;

use super::{
    Attempt, Claim, DeliveryRecord, NewDelivery, Outcome, RunRecord, Status, StoreError, next_retry,
};

/// Postgres schema migrations, applied in order under an advisory lock;
/// `trainwatch_schema.version` is the count applied. Its own list, not
/// SQLite's: the two schemas evolve together but number apart.
pub const PG_MIGRATIONS: &[&str] = &[
    // 1: runs (with the replica that ran each and the lease generation it
    // ran under), the delivery ledger, job leases and fire claims.
    "CREATE TABLE runs (
        id           BIGSERIAL PRIMARY KEY,
        job          TEXT NOT NULL,
        fire_time    TIMESTAMPTZ NOT NULL,
        window_start TIMESTAMPTZ,
        window_end   TIMESTAMPTZ,
        started_at   TIMESTAMPTZ NOT NULL,
        finished_at  TIMESTAMPTZ,
        outcome      TEXT NOT NULL,
        records      BIGINT,
        error        TEXT,
        outboxed     BIGINT,
        replica      TEXT,
        lease_generation BIGINT
    );
    CREATE INDEX runs_by_job ON runs (job, fire_time);
    CREATE TABLE deliveries (
        id           BIGSERIAL PRIMARY KEY,
        run_id       BIGINT NOT NULL REFERENCES runs (id),
        key          TEXT NOT NULL UNIQUE,
        job          TEXT NOT NULL,
        window_start TIMESTAMPTZ NOT NULL,
        window_end   TIMESTAMPTZ NOT NULL,
        target       TEXT NOT NULL,
        recipient    TEXT NOT NULL,
        status       TEXT NOT NULL,
        attempts     BIGINT NOT NULL DEFAULT 0,
        parts_done   BIGINT NOT NULL DEFAULT 0,
        last_error   TEXT,
        payload      TEXT,
        created_at   TIMESTAMPTZ NOT NULL,
        sent_at      TIMESTAMPTZ,
        finished_by  BIGINT,
        next_attempt_at TIMESTAMPTZ,
        rounds       BIGINT NOT NULL DEFAULT 0,
        notice       BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX deliveries_by_status ON deliveries (job, status);
    CREATE INDEX deliveries_by_run ON deliveries (run_id);
    CREATE INDEX deliveries_by_finisher ON deliveries (finished_by);
    CREATE INDEX deliveries_by_sent ON deliveries (status, sent_at);
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        generation BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE fires (
        job        TEXT NOT NULL,
        fire_time  TIMESTAMPTZ NOT NULL,
        replica    TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job, fire_time)
    );",
    // 2: the mirror (src/mirror/postgres.rs): times in nanoseconds since
    // the epoch as in SQLite, exact for what the API sends and ordered.
    crate::mirror::postgres::MIGRATION,
];

/// The advisory lock that serialises migrations across replicas starting together.
const MIGRATION_LOCK: i64 = 0x7472_6169_6e77_7463; // "trainwtc"

/// How long a call waits for a free connection, and for a new one.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How often a replica waiting for a job's lease tries again.
const LEASE_POLL: Duration = Duration::from_millis(200);

/// The Postgres store.
pub struct PgStore {
    /// The runtime that drives the connections (`None` once dropped).
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    /// The URL without its password, for messages.
    url: String,
    replica: String,
    lease: Duration,
    /// Generation of each job lease this process holds now.
    held: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another
        // runtime (where the service drops its store).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // A password may also come as a query parameter.
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "postgres URL (unreadable, not shown)".into(),
    }
}

/// An error and its causes on one line (tokio-postgres puts the server's
/// message in the cause). None of them carries the password.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// An error inside a call: the database's, or a lease this replica lost.
enum Fail {
    Pg(String),
    LostLease(String),
}

impl<E: std::error::Error + 'static> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail::Pg(chain(&e))
    }
}

type R<T> = Result<T, Fail>;

impl PgStore {
    /// Connects to `url` (TLS with rustls when it says `sslmode=require`)
    /// and migrates its schema under an advisory lock; refuses a schema
    /// newer than this trainwatch knows.
    pub fn open(url: &SecretString, lease: Duration, replica: String) -> Result<Self, StoreError> {
        let shown = redact(url.expose_secret());
        let fail = |doing: &'static str, message: String| StoreError::Postgres {
            url: shown.clone(),
            doing,
            message,
        };
        let mut config: tokio_postgres::Config = url
            .expose_secret()
            .parse()
            .map_err(|e: tokio_postgres::Error| fail("reading the URL", chain(&e)))?;
        // A replica stalled inside a transaction (SIGSTOP between two
        // statements) would hold its row locks, and with them the lease row
        // every other replica needs, for as long as it stays stalled. The
        // server ends such a session after a third of the lease (our
        // transactions last milliseconds), so the lease can be taken over.
        let idle = (lease / 3).max(Duration::from_millis(500));
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={} -c client_min_messages=warning",
            config.get_options().unwrap_or_default(),
            idle.as_millis()
        );
        config.options(options.trim());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trainwatch-store")
            .enable_all()
            .build()
            .map_err(|e| fail("starting its runtime", e.to_string()))?;
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| fail("setting up TLS", e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Manager::from_config(
                    config,
                    tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                    manager_config,
                )
            }
            _ => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let pool = {
            let _entered = rt.enter();
            Pool::builder(manager)
                .max_size(8)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(POOL_WAIT))
                .create_timeout(Some(POOL_WAIT))
                .build()
                .map_err(|e| fail("creating the connection pool", chain(&e)))?
        };
        let store = Self {
            handle: rt.handle().clone(),
            rt: Some(rt),
            pool,
            url: shown.clone(),
            replica,
            lease,
            held: Arc::default(),
        };
        match store.block(store.migrate()) {
            Ok(None) => Ok(store),
            Ok(Some(found)) => Err(StoreError::PostgresNewerSchema {
                url: shown,
                found,
                known: PG_MIGRATIONS.len(),
            }),
            Err(Fail::Pg(m) | Fail::LostLease(m)) => Err(fail(
                "connecting and migrating its schema",
                format!("{m} (check that the server is up and [store] url is right)"),
            )),
        }
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name this process records its runs and leases under.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runs `f` to completion on the store's runtime, blocking the caller
    /// (which may be inside another runtime: the future is polled here,
    /// its I/O driven by the store's own worker).
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        let _entered = self.handle.enter();
        futures::executor::block_on(f)
    }

    /// Runs `f` and maps its failure to a [`StoreError`] saying what it was doing.
    fn call<T, F: std::future::Future<Output = R<T>>>(
        &self,
        doing: &'static str,
        f: F,
    ) -> Result<T, StoreError> {
        self.block(f).map_err(|e| match e {
            Fail::Pg(message) => StoreError::Postgres {
                url: self.url.clone(),
                doing,
                message,
            },
            Fail::LostLease(job) => StoreError::LostLease {
                job,
                replica: self.replica.clone(),
            },
        })
    }

    async fn client(&self) -> R<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// `Some(version)` when the schema is newer than this trainwatch knows.
    async fn migrate(&self) -> R<Option<usize>> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = async {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS trainwatch_schema (version INTEGER NOT NULL);
                 INSERT INTO trainwatch_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM trainwatch_schema);",
            )
            .await?;
            let version: i32 = c
                .query_one("SELECT version FROM trainwatch_schema", &[])
                .await?
                .get(0);
            let version = usize::try_from(version).unwrap_or(usize::MAX);
            if version > PG_MIGRATIONS.len() {
                return Ok(Some(version));
            }
            if version < PG_MIGRATIONS.len() {
                let tx = c.transaction().await?;
                for sql in &PG_MIGRATIONS[version..] {
                    tx.batch_execute(sql).await?;
                }
                tx.execute(
                    "UPDATE trainwatch_schema SET version = $1",
                    &[&(PG_MIGRATIONS.len() as i32)],
                )
                .await?;
                tx.commit().await?;
            }
            R::Ok(None)
        }
        .await;
        // Unlocked on every path; a dropped connection would unlock it too.
        let _ = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        result
    }

    /// The schema version recorded in the database (for tests and `store status`).
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.call("reading the schema version", async {
            let c = self.client().await?;
            let v: i32 = c
                .query_one("SELECT version FROM trainwatch_schema", &[])
                .await?
                .get(0);
            Ok(usize::try_from(v).unwrap_or(usize::MAX))
        })
    }

    /// Runs one SQL statement (for tests that age a lease or fake a newer schema).
    pub fn execute_for_tests(&self, sql: &str) -> Result<u64, StoreError> {
        self.call("running a statement", async {
            Ok(self.client().await?.execute(sql, &[]).await?)
        })
    }

    // ---- leases ----------------------------------------------------------

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

    fn guard(&self, job: &str, generation: i64, deadline: std::time::Instant) -> super::JobLock {
        super::JobLock {
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

    /// Runs `f` on the store's runtime (for the mirror), blocking the caller.
    pub(crate) fn run<T>(
        &self,
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.block(f)
    }

    /// A pooled connection (for the mirror).
    pub(crate) async fn connection(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("{}: connecting: {}", self.url, chain(&e)))
    }

    /// Takes `job`'s lease, or says which replica holds it.
    pub fn lock_job(&self, job: &str) -> anyhow::Result<super::JobLock> {
        match self.try_lock_job(job)? {
            Some(lock) => Ok(lock),
            None => {
                let holder = self
                    .call("reading a lease", self.lease_holder(&format!("job:{job}")))?
                    .unwrap_or_else(|| "another replica".into());
                anyhow::bail!(
                    "job {job} is running in another trainwatch process ({holder} holds the job's lease in {}); try again when it has finished",
                    self.url
                )
            }
        }
    }

    /// Takes `job`'s lease if it is free or expired.
    pub fn try_lock_job(&self, job: &str) -> anyhow::Result<Option<super::JobLock>> {
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
    ) -> anyhow::Result<super::JobLock> {
        let started = tokio::time::Instant::now();
        let mut said = false;
        loop {
            if let Some(lock) = self.try_lock_job(job)? {
                return Ok(lock);
            }
            let waited = started.elapsed();
            if waited >= max_wait || *stop.borrow() {
                anyhow::bail!(
                    "job {job} was running in another trainwatch process (another replica held the job's lease in {}) for all of the {}s this run waited{}",
                    self.url,
                    waited.as_secs(),
                    if *stop.borrow() {
                        " before the shutdown"
                    } else {
                        ""
                    }
                );
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

    /// Claims the fire of `job` at `fire` for this replica: true for the
    /// one replica whose insert of the (job, fire) row wins, or which finds
    /// that row left by a replica that no longer holds the job's lease and
    /// whose run died before recording its outbox. Called with the job's
    /// lease held, so claims of one job are also serialised.
    pub fn claim_fire(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        self.call("claiming a fire", async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "INSERT INTO fires (job, fire_time, replica, claimed_at)
                     VALUES ($1, $2, $3, clock_timestamp())
                     ON CONFLICT (job, fire_time) DO UPDATE
                       SET replica = EXCLUDED.replica, claimed_at = EXCLUDED.claimed_at
                       WHERE NOT EXISTS (
                         SELECT 1 FROM runs WHERE job = $1 AND fire_time = $2
                           AND (outboxed IS NOT NULL OR outcome NOT IN ('running', 'skipped', 'interrupted')))
                       AND NOT EXISTS (
                         SELECT 1 FROM leases l WHERE l.name = 'job:' || $1
                           AND l.owner = fires.replica AND l.owner != $3
                           AND l.expires_at > clock_timestamp())
                     RETURNING replica",
                    &[&job, &fire, &self.replica],
                )
                .await?;
            Ok(row.is_some())
        })
    }

    /// Which replica claimed the fire of `job` at `fire`, if any.
    pub fn fire_claimed_by(
        &self,
        job: &str,
        fire: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.call("reading a fire claim", async {
            let c = self.client().await?;
            Ok(c.query_opt(
                "SELECT replica FROM fires WHERE job = $1 AND fire_time = $2",
                &[&job, &fire],
            )
            .await?
            .map(|r| r.get(0)))
        })
    }

    // ---- runs ------------------------------------------------------------

    /// Records the start of a run under the job's lease this process holds (if any).
    pub fn begin_run(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let generation = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .copied();
        self.call("recording a run", async {
            let c = self.client().await?;
            Ok(c.query_one(
                "INSERT INTO runs (job, fire_time, started_at, outcome, replica, lease_generation)
                 VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id",
                &[&job, &fire, &now, &self.replica, &generation],
            )
            .await?
            .get(0))
        })
    }

    /// Records a fire that did not run.
    pub fn record_skipped(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.call("recording a skipped fire", async {
            let c = self.client().await?;
            Ok(c.query_one(
                "INSERT INTO runs (job, fire_time, started_at, finished_at, outcome, error, replica)
                 VALUES ($1, $2, $3, $3, 'skipped', $4, $5) RETURNING id",
                &[&job, &fire, &now, &why, &self.replica],
            )
            .await?
            .get(0))
        })
    }

    /// Records the window and record count of a run.
    pub fn set_window(
        &self,
        run: i64,
        window: (DateTime<Utc>, DateTime<Utc>),
        records: u64,
    ) -> Result<(), StoreError> {
        self.call("recording a run's window", async {
            let c = self.client().await?;
            c.execute(
                "UPDATE runs SET window_start = $2, window_end = $3, records = $4 WHERE id = $1",
                &[&run, &window.0, &window.1, &(records as i64)],
            )
            .await?;
            Ok(())
        })
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        run: i64,
        outcome: Outcome,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call("finishing a run", async {
            let c = self.client().await?;
            c.execute(
                "UPDATE runs SET outcome = $2, error = $3, finished_at = $4 WHERE id = $1",
                &[&run, &outcome.as_str(), &error, &now],
            )
            .await?;
            Ok(())
        })
    }

    // ---- the ledger ------------------------------------------------------

    /// The outbox: every delivery of `run` recorded in one transaction, under its lease.
    pub fn enqueue(
        &self,
        run: i64,
        items: &[NewDelivery<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.call("recording a run's outbox", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            fence(&tx, run).await?;
            let mut claims = Vec::with_capacity(items.len());
            for d in items {
                claims.push(claim_in(&tx, run, d, now, false).await?);
            }
            tx.execute(
                "UPDATE runs SET outboxed = $2 WHERE id = $1",
                &[&run, &(items.len() as i64)],
            )
            .await?;
            tx.commit().await?;
            Ok(claims)
        })
    }

    /// Claims one delivery, under the run's lease.
    pub fn claim(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.claim_as(run, d, now, false)
    }

    /// [`Self::claim`] for an on_failure notice.
    pub fn claim_notice(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.claim_as(run, d, now, true)
    }

    fn claim_as(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
        notice: bool,
    ) -> Result<Claim, StoreError> {
        self.call("claiming a delivery", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            fence(&tx, run).await?;
            let claim = claim_in(&tx, run, d, now, notice).await?;
            tx.commit().await?;
            Ok(claim)
        })
    }

    /// Claims one outbox delivery right before it is sent: the lease check
    /// (fencing) and the delivery's state, in one transaction.
    pub fn claim_send(&self, run: i64, _job: &str, key: &str) -> Result<Claim, StoreError> {
        self.call("claiming a delivery", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            fence(&tx, run).await?;
            let row = tx
                .query_opt(
                    "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = $1",
                    &[&key],
                )
                .await?;
            tx.commit().await?;
            Ok(match row {
                Some(r) if Status::parse(r.get(0)) == Status::Delivered => {
                    Claim::AlreadyDelivered { sent_at: r.get(2) }
                }
                Some(r) => Claim::Send {
                    attempts_before: u32_of(r.get(1)),
                    parts_done: u32_of(r.get(3)),
                },
                None => Claim::Send {
                    attempts_before: 0,
                    parts_done: 0,
                },
            })
        })
    }

    /// Records the result of sending a claimed delivery in run `by_run`.
    pub fn record(
        &self,
        key: &str,
        by_run: i64,
        attempt: &Attempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call("recording a delivery", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT run_id, created_at, rounds FROM deliveries WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .await?
            else {
                return Ok(());
            };
            let (creator, created, rounds): (i64, DateTime<Utc>, i64) =
                (row.get(0), row.get(1), row.get(2));
            let finished_by = (creator != by_run).then_some(by_run);
            match attempt.error {
                None => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'delivered', attempts = attempts + $2, parts_done = $3,
                                last_error = NULL, sent_at = $4, next_attempt_at = NULL, finished_by = $5
                         WHERE key = $1",
                        &[&key, &i64::from(attempt.attempts), &i64::from(attempt.parts_done), &now, &finished_by],
                    )
                    .await?;
                    if finished_by.is_some() {
                        tx.execute(
                            "UPDATE runs SET outcome = 'succeeded', finished_at = COALESCE(finished_at, $2), error = NULL
                             WHERE id = $1 AND outboxed IS NOT NULL AND outcome != 'succeeded'
                               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.run_id = $1 AND NOT d.notice AND d.status != 'delivered')",
                            &[&creator, &now],
                        )
                        .await?;
                    }
                }
                Some(error) => {
                    let retry = attempt
                        .transient
                        .then(|| next_retry(created, u32_of(rounds) + 1, now))
                        .flatten();
                    tx.execute(
                        "UPDATE deliveries SET status = 'failed', attempts = attempts + $2, parts_done = $3,
                                last_error = $4, next_attempt_at = $5, rounds = rounds + 1
                         WHERE key = $1",
                        &[&key, &i64::from(attempt.attempts), &i64::from(attempt.parts_done), &error, &retry],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deliveries of `job` recorded but never confirmed, oldest first.
    pub fn pending(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where("WHERE job = $1 AND status = 'pending' ORDER BY id", &[&job])
    }

    /// Deliveries of `job` to send now, oldest first.
    pub fn due(&self, job: &str, now: DateTime<Utc>) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where(
            "WHERE job = $1 AND (status = 'pending' OR (status = 'failed' AND next_attempt_at <= $2)) ORDER BY id",
            &[&job, &now],
        )
    }

    /// The jobs with a delivery due at `now`.
    pub fn jobs_due(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.call("reading deliveries", async {
            let c = self.client().await?;
            Ok(c.query(
                "SELECT DISTINCT job FROM deliveries
                 WHERE status = 'pending' OR (status = 'failed' AND next_attempt_at <= $1) ORDER BY job",
                &[&now],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    /// Every delivery of `job`, oldest first.
    pub fn deliveries(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where("WHERE job = $1 ORDER BY id", &[&job])
    }

    fn deliveries_where(
        &self,
        clause: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT run_id, key, job, target, recipient, status, attempts, last_error, payload, sent_at, finished_by, next_attempt_at
             FROM deliveries {clause}"
        );
        self.call("reading deliveries", async {
            let c = self.client().await?;
            Ok(c.query(&sql, args)
                .await?
                .iter()
                .map(|r| DeliveryRecord {
                    run_id: r.get(0),
                    key: r.get(1),
                    job: r.get(2),
                    target: r.get(3),
                    recipient: r.get(4),
                    status: Status::parse(r.get(5)),
                    attempts: u32_of(r.get(6)),
                    last_error: r.get(7),
                    payload: r.get(8),
                    sent_at: r.get(9),
                    finished_by: r.get(10),
                    next_attempt_at: r.get(11),
                })
                .collect())
        })
    }

    /// Drops the payloads of deliveries delivered before `before`.
    pub fn prune_payloads(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.call("pruning delivered payloads", async {
            let c = self.client().await?;
            Ok(c.execute(
                "UPDATE deliveries SET payload = NULL
                 WHERE status = 'delivered' AND sent_at < $1 AND payload IS NOT NULL",
                &[&before],
            )
            .await? as usize)
        })
    }

    /// Whether the fire of `job` at `fire` has been dealt with, by any replica.
    pub fn has_run(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        self.call("reading runs", async {
            let c = self.client().await?;
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE job = $1 AND fire_time = $2
                                AND (outboxed IS NOT NULL OR outcome NOT IN ('running', 'skipped', 'interrupted')))",
                &[&job, &fire],
            )
            .await?
            .get(0))
        })
    }

    /// The most recent successful run of `job`, if any.
    pub fn last_success(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .runs_where(
                "WHERE r.job = $1 AND r.outcome = 'succeeded' AND r.window_end IS NOT NULL ORDER BY r.fire_time DESC, r.id DESC LIMIT 1",
                Some(job),
            )?
            .pop())
    }

    /// The most recent runs (of `job`, or of every job), newest first.
    pub fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let clause = match job {
            Some(_) => format!("WHERE r.job = $1 ORDER BY r.id DESC LIMIT {limit}"),
            None => format!("ORDER BY r.id DESC LIMIT {limit}"),
        };
        self.runs_where(&clause, job)
    }

    fn runs_where(&self, clause: &str, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT r.id, r.job, r.fire_time, r.window_start, r.window_end, r.started_at, r.finished_at, r.outcome, r.records, r.error,
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'failed'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'pending'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.finished_by IS NOT NULL AND d.status = 'delivered'),
                    (SELECT MAX(d.finished_by) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.finished_by = r.id),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice AND d.status != 'delivered'),
                    r.replica
             FROM runs r {clause}"
        );
        self.call("reading runs", async {
            let c = self.client().await?;
            let rows = match job {
                Some(j) => c.query(&sql, &[&j]).await?,
                None => c.query(&sql, &[]).await?,
            };
            Ok(rows
                .iter()
                .map(|r| {
                    let n = |i: usize| r.get::<_, i64>(i) as u64;
                    let window = match (r.get(3), r.get(4)) {
                        (Some(s), Some(e)) => Some((s, e)),
                        _ => None,
                    };
                    RunRecord {
                        id: r.get(0),
                        job: r.get(1),
                        fire_time: r.get(2),
                        window,
                        started_at: r.get(5),
                        finished_at: r.get(6),
                        outcome: Outcome::parse(r.get(7)),
                        records: r.get::<_, Option<i64>>(8).map(|n| n as u64),
                        error: r.get(9),
                        deliveries: (n(10), n(11), n(12)),
                        finished_later: (n(13), r.get(14)),
                        finished_for_others: n(15),
                        notices: (n(16), n(17)),
                        replica: r.get(18),
                    }
                })
                .collect())
        })
    }
}

impl PgStore {
    /// Copies a whole SQLite store's runs and deliveries in, ids kept, in
    /// one transaction; refuses a database that already has runs (it would
    /// mix two ledgers). Returns (runs, deliveries) copied.
    pub fn import(
        &self,
        runs: &[super::StoredRun],
        deliveries: &[super::StoredDelivery],
    ) -> Result<(usize, usize), StoreError> {
        self.call("copying a SQLite store in", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let existing: i64 = tx
                .query_one("SELECT COUNT(*) FROM runs", &[])
                .await?
                .get(0);
            if existing > 0 {
                return Err(Fail::Pg(format!(
                    "it already holds {existing} runs: copy into an empty database (a new one, or after DROP of its tables)"
                )));
            }
            let run = tx
                .prepare(
                    "INSERT INTO runs (id, job, fire_time, window_start, window_end, started_at, finished_at,
                                       outcome, records, error, outboxed, replica)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .await?;
            for r in runs {
                tx.execute(
                    &run,
                    &[
                        &r.id,
                        &r.job,
                        &r.fire_time,
                        &r.window.map(|w| w.0),
                        &r.window.map(|w| w.1),
                        &r.started_at,
                        &r.finished_at,
                        &r.outcome,
                        &r.records,
                        &r.error,
                        &r.outboxed,
                        &r.replica,
                    ],
                )
                .await?;
            }
            let delivery = tx
                .prepare(
                    "INSERT INTO deliveries (id, run_id, key, job, window_start, window_end, target, recipient,
                                             status, attempts, parts_done, last_error, payload, created_at,
                                             sent_at, finished_by, next_attempt_at, rounds, notice)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                )
                .await?;
            for d in deliveries {
                tx.execute(
                    &delivery,
                    &[
                        &d.id,
                        &d.run_id,
                        &d.key,
                        &d.job,
                        &d.window.0,
                        &d.window.1,
                        &d.target,
                        &d.recipient,
                        &d.status,
                        &d.attempts,
                        &d.parts_done,
                        &d.last_error,
                        &d.payload,
                        &d.created_at,
                        &d.sent_at,
                        &d.finished_by,
                        &d.next_attempt_at,
                        &d.rounds,
                        &d.notice,
                    ],
                )
                .await?;
            }
            // New rows continue after the copied ids.
            tx.batch_execute(
                "SELECT setval('runs_id_seq', GREATEST((SELECT MAX(id) FROM runs), 1));
                 SELECT setval('deliveries_id_seq', GREATEST((SELECT MAX(id) FROM deliveries), 1));",
            )
            .await?;
            tx.commit().await?;
            Ok((runs.len(), deliveries.len()))
        })
    }
}

/// Fencing: inside the transaction that claims a send, checks that run
/// `run`'s lease is still its replica's (same owner and generation, not
/// expired) and holds the lease row (FOR SHARE) until the commit, so that
/// no other replica can take it in between. A run begun without a lease
/// (a failure notice of a run that never got its job) is not fenced.
async fn fence(tx: &deadpool_postgres::Transaction<'_>, run: i64) -> R<()> {
    let row = tx
        .query_one(
            "SELECT r.job, r.lease_generation,
                    EXISTS (SELECT 1 FROM leases l
                            WHERE l.name = 'job:' || r.job AND l.owner = r.replica
                              AND l.generation = r.lease_generation
                              AND l.expires_at > clock_timestamp()
                            FOR SHARE)
             FROM runs r WHERE r.id = $1",
            &[&run],
        )
        .await?;
    let (job, generation, held): (String, Option<i64>, bool) = (row.get(0), row.get(1), row.get(2));
    if generation.is_some() && !held {
        return Err(Fail::LostLease(job));
    }
    Ok(())
}

/// [`PgStore::claim`] inside a transaction.
async fn claim_in(
    tx: &deadpool_postgres::Transaction<'_>,
    run: i64,
    d: &NewDelivery<'_>,
    now: DateTime<Utc>,
    notice: bool,
) -> R<Claim> {
    let existing = tx
        .query_opt(
            "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = $1 FOR UPDATE",
            &[&d.key],
        )
        .await?;
    Ok(match existing {
        Some(r) if Status::parse(r.get(0)) == Status::Delivered => {
            Claim::AlreadyDelivered { sent_at: r.get(2) }
        }
        Some(r) => {
            tx.execute(
                "UPDATE deliveries SET status = 'pending', payload = $2, next_attempt_at = NULL WHERE key = $1",
                &[&d.key, &d.payload],
            )
            .await?;
            Claim::Send {
                attempts_before: u32_of(r.get(1)),
                parts_done: u32_of(r.get(3)),
            }
        }
        None => {
            // ON CONFLICT: two replicas inserting one key at once (only
            // possible without a lease) leave one row; the loser sends
            // nothing.
            let inserted = tx
                .execute(
                    "INSERT INTO deliveries (run_id, key, job, window_start, window_end, target, recipient, status, payload, created_at, notice)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)
                     ON CONFLICT (key) DO NOTHING",
                    &[&run, &d.key, &d.job, &d.window.0, &d.window.1, &d.target, &d.recipient, &d.payload, &now, &notice],
                )
                .await?;
            if inserted == 0 {
                Claim::AlreadyDelivered { sent_at: None }
            } else {
                Claim::Send {
                    attempts_before: 0,
                    parts_done: 0,
                }
            }
        }
    })
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

/// The variable that points the tests at a Postgres server (`.ci/postgres.sh` sets it).
pub const TEST_URL_VAR: &str = "TRAINWATCH_TEST_PG_URL";

/// For tests: a new, empty database on the server `TRAINWATCH_TEST_PG_URL`
/// names, and its URL. Without that variable it says loudly how to enable
/// the Postgres tests and returns `None`, and under CI (`CI=true`) it
/// panics, so that CI never passes them silently.
pub fn test_database(test: &str) -> Option<SecretString> {
    let Ok(base) = std::env::var(TEST_URL_VAR) else {
        let message = format!(
            "{test}: SKIPPED on Postgres: {TEST_URL_VAR} is not set. Start a throwaway server with \
             `eval \"$(bash .ci/postgres.sh)\"` (installs Debian's postgresql when missing) and run the tests again"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message} (CI=true: the Postgres tests must run in CI)");
        }
        // Straight to stderr, past the test harness's capture: a skipped
        // backend must be seen, not found later in a passing log.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n!!!!! {message}\n");
        return None;
    };
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "tw_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_micros()
    );
    let create = {
        let (base, name) = (base.clone(), name.clone());
        // A thread of its own: the caller may be inside a runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| chain(&e))?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .map_err(|e| chain(&e))
            })
        })
        .join()
        .expect("creating a test database")
    };
    if let Err(e) = create {
        panic!("{TEST_URL_VAR} is set, but creating a test database there failed: {e}");
    }
    let mut url = url::Url::parse(&base).expect("TRAINWATCH_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(SecretString::from(url.to_string()))
}
