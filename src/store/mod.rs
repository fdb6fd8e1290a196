//! The state store: run history and the delivery ledger, in SQLite (the
//! default, in `state_dir`) or in Postgres (`[store] url`, shared by several
//! replicas; see [`postgres`]).
//!
//! SQLite is embedded (rusqlite, bundled) in `state_dir/trainwatch.db`, WAL
//! journal, `synchronous = FULL` so that a recorded delivery survives a power
//! cut, versioned migrations in [`MIGRATIONS`]. Everything outside this
//! module goes through [`Store`]'s methods, the same on either backend.
//!
//! The ledger is what makes deliveries exactly-once per (job, window,
//! target, recipient): a delivery is claimed under its idempotency key before
//! it is sent, marked delivered right after, and never sent again once
//! delivered. Its payload is stored with it (never a secret: URLs and keys
//! stay in the config), so an interrupted run can be finished later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub mod postgres;

pub use postgres::PG_MIGRATIONS;

/// Schema migrations, applied in order; `PRAGMA user_version` is the count applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs and the delivery ledger.
    "CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        job         TEXT NOT NULL,
        fire_time   TEXT NOT NULL,
        window_start TEXT,
        window_end  TEXT,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT NOT NULL,
        records     INTEGER,
        error       TEXT
    );
    CREATE INDEX runs_by_job ON runs (job, fire_time);
    CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs (id),
        key         TEXT NOT NULL UNIQUE,
        job         TEXT NOT NULL,
        window_start TEXT NOT NULL,
        window_end  TEXT NOT NULL,
        target      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        status      TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        payload     TEXT,
        created_at  TEXT NOT NULL,
        sent_at     TEXT
    );
    CREATE INDEX deliveries_by_status ON deliveries (job, status);",
    // 2: how many parts of a multi-part delivery (a split Slack digest) the
    // receiver has confirmed, so a retry never re-sends them.
    "ALTER TABLE deliveries ADD COLUMN parts_done INTEGER NOT NULL DEFAULT 0;",
    // 3: the durable outbox. A delivery stays with the run that created it
    // (`run_id`); `finished_by` names a later run that delivered it.
    // `next_attempt_at` schedules the service's retry of a transient
    // failure, `rounds` counts those retries; `notice` marks on_failure
    // notices. `runs.outboxed` is how many deliveries a run recorded before
    // its first send (NULL: it never got that far).
    "ALTER TABLE deliveries ADD COLUMN finished_by INTEGER;
    ALTER TABLE deliveries ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE deliveries ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN outboxed INTEGER;
    CREATE INDEX deliveries_by_run ON deliveries (run_id);
    CREATE INDEX deliveries_by_finisher ON deliveries (finished_by);
    CREATE INDEX deliveries_by_sent ON deliveries (status, sent_at);",
    // 4: the mirror: assignment versions, courses, drivers, tags, syncs (src/mirror/sqlite.rs).
    crate::mirror::sqlite::MIGRATION,
    // 5: the replica (hostname:pid or --replica-id) that ran each run.
    "ALTER TABLE runs ADD COLUMN replica TEXT;",
];

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Started and not (yet) finished: the process may have died.
    Running,
    /// Every delivery delivered (or already delivered, or skipped as empty),
    /// possibly finished later by another run.
    Succeeded,
    /// The fetch or rendering failed, or a delivery failed for good.
    Failed,
    /// Stopped by a shutdown with deliveries left pending (sent later).
    Interrupted,
    /// The fire did not run: the previous run of the job was still going.
    Skipped,
}

impl Outcome {
    /// The word stored and shown: `running`, `succeeded`, `failed`, `interrupted`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            "skipped" => Self::Skipped,
            _ => Self::Running,
        }
    }
}

/// The state of one delivery in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Recorded in the outbox, not confirmed sent. After a crash this may
    /// have reached its receiver; it is sent again with the same
    /// idempotency key / Message-ID.
    Pending,
    /// The receiver confirmed it. Never sent again.
    Delivered,
    /// Failed in its last attempt; retried by the service when
    /// `next_attempt_at` is set, and by the next run of its window.
    Failed,
}

impl Status {
    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// How the service retries a delivery that failed transiently (its
/// connection broke, the receiver said "try later") after the run's own
/// retries are spent: the first retry [`RETRY_FIRST`] after the failure,
/// each next one twice as late, at most [`RETRY_MAX_GAP`] apart, and none
/// once the delivery is older than [`RETRY_GIVE_UP`] (it then stays failed,
/// with its last error, and a run of the same window can still send it).
pub const RETRY_FIRST: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
/// The longest wait between two retries of a transiently failed delivery.
pub const RETRY_MAX_GAP: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// A transiently failed delivery older than this is not retried by the service.
pub const RETRY_GIVE_UP: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// When the service next retries a delivery created at `created` that has
/// just failed transiently for the `failures`-th time (1 for the first);
/// `None` once it is past [`RETRY_GIVE_UP`].
pub fn next_retry(
    created: DateTime<Utc>,
    failures: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let doublings = failures.saturating_sub(1).min(16);
    let gap = (RETRY_FIRST * (1i32 << doublings)).min(RETRY_MAX_GAP);
    let at = now + gap;
    (at - created <= RETRY_GIVE_UP).then_some(at)
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub job: String,
    pub fire_time: DateTime<Utc>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub records: Option<u64>,
    pub error: Option<String>,
    /// (delivered, failed, pending) of the deliveries this run created,
    /// whichever run finished them; on_failure notices not included.
    pub deliveries: (u64, u64, u64),
    /// Of those delivered, how many a later run finished, and the last such run.
    pub finished_later: (u64, Option<i64>),
    /// Deliveries of earlier runs that this run finished.
    pub finished_for_others: u64,
    /// (sent, not sent) on_failure notices of this run.
    pub notices: (u64, u64),
    /// The replica that ran it (hostname:pid or `--replica-id`); `None`
    /// for runs recorded before replicas were recorded.
    pub replica: Option<String>,
}

/// A delivery as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// The run that created it (its counts are that run's).
    pub run_id: i64,
    pub key: String,
    pub job: String,
    pub target: String,
    pub recipient: String,
    pub status: Status,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The rendered payload, as the caller serialized it; `None` once
    /// delivered and older than the retention.
    pub payload: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The later run that delivered it, if not its own.
    pub finished_by: Option<i64>,
    /// When the service retries it (a transient failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What a new delivery is about.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub key: &'a str,
    pub job: &'a str,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub target: &'a str,
    pub recipient: &'a str,
    pub payload: &'a str,
}

/// What [`Store::claim`] and [`Store::enqueue`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Delivered before (by this or an earlier run): do not send.
    AlreadyDelivered { sent_at: Option<DateTime<Utc>> },
    /// Pending: send it (from part `parts_done` on), then record the result.
    Send {
        attempts_before: u32,
        parts_done: u32,
    },
}

/// The result of sending a claimed delivery, for [`Store::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt<'a> {
    /// Attempts made now.
    pub attempts: u32,
    /// Parts the receiver has confirmed in all.
    pub parts_done: u32,
    /// `None` when delivered; the error otherwise.
    pub error: Option<&'a str>,
    /// Whether the failure is worth retrying later (the service schedules it).
    pub transient: bool,
}

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

/// A store failure, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite (or the file system under it) failed.
    #[error("state store {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        source: rusqlite::Error,
    },
    /// The database was written by a newer trainwatch: one sentence, no
    /// SQLite error under it, because SQLite did nothing wrong.
    #[error(
        "state store {path} was written by a newer trainwatch (schema version {found}; this one knows versions up to {known}): upgrade trainwatch, or point state_dir at another folder"
    )]
    NewerSchema {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    /// Anything else under the store (creating its folder).
    #[error("state store {path}: {message}")]
    Other { path: PathBuf, message: String },
    /// Postgres failed; `url` is the store's URL without its password.
    #[error("state store {url}: {doing}: {message}")]
    Postgres {
        url: String,
        doing: &'static str,
        message: String,
    },
    /// The Postgres schema was written by a newer trainwatch.
    #[error(
        "state store {url} was written by a newer trainwatch (schema version {found}; this one knows versions up to {known}): upgrade trainwatch, or point [store] url at another database"
    )]
    PostgresNewerSchema {
        url: String,
        found: usize,
        known: usize,
    },
    /// This replica's lease on the job was taken by another replica (it
    /// stalled past `store.lease`): it must send nothing more for the job.
    #[error(
        "job {job}: this replica ({replica}) lost its lease on the job to another replica; it sends nothing more, the other finishes the run"
    )]
    LostLease { job: String, replica: String },
}

/// The SQLite store. One connection behind a mutex: every operation is a
/// short transaction, and runs are few.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    replica: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How long a connection waits for another process's write to finish
/// before a statement fails with "database is locked".
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A write transaction that takes the write lock at `BEGIN`, waiting up to
/// [`BUSY_TIMEOUT`] for it. A deferred one would start as a reader and fail
/// at once (SQLITE_BUSY, no waiting) when it tries to write after another
/// process has written since it read.
fn write_tx(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
}

impl SqliteStore {
    /// Opens (creating, and migrating) `state_dir/trainwatch.db`. Any
    /// number of processes may open one database at once: the migrations
    /// run once, in one exclusive transaction, and the others wait for it.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("trainwatch.db");
        let err = |doing| {
            let path = path.clone();
            move |source| StoreError::Sqlite {
                path,
                doing,
                source,
            }
        };
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Other {
            path: path.clone(),
            message: format!("creating state_dir: {e}"),
        })?;
        let mut conn = Connection::open(&path).map_err(err("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("configuring"))?;
        enable_wal(&conn).map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("configuring"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("configuring"))?;
        let newer = |found: usize| StoreError::NewerSchema {
            path: path.clone(),
            found,
            known: MIGRATIONS.len(),
        };
        let version = schema_version(&conn).map_err(err("reading the schema version"))?;
        if version > MIGRATIONS.len() {
            return Err(newer(version));
        }
        if version < MIGRATIONS.len() {
            // Exclusive, and the version read again inside: of several
            // processes starting together, one migrates, the others wait
            // and then find nothing left to do.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(err("migrating"))?;
            let version = schema_version(&tx).map_err(err("migrating"))?;
            if version > MIGRATIONS.len() {
                return Err(newer(version));
            }
            for sql in &MIGRATIONS[version..] {
                tx.execute_batch(sql).map_err(err("migrating"))?;
            }
            tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
                .map_err(err("migrating"))?;
            tx.commit().map_err(err("migrating"))?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            replica: replica_id(None),
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_file(&self, job: &str) -> anyhow::Result<(std::fs::File, PathBuf)> {
        use anyhow::Context as _;
        let dir = self.path.parent().unwrap_or(Path::new(".")).join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{job}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((file, path))
    }

    /// Takes `job`'s run lock (`state_dir/locks/JOB.lock`), so that two
    /// processes (the service and a manual `run-once`, say) never deliver
    /// the same job at once. An error when another process holds it.
    pub fn lock_job(&self, job: &str) -> anyhow::Result<JobLock> {
        match self.try_lock_job(job)? {
            Some(lock) => Ok(lock),
            None => anyhow::bail!(
                "job {job} is running in another trainwatch process using the same state_dir ({} is locked); try again when it has finished",
                self.lock_file(job)?.1.display()
            ),
        }
    }

    /// Takes `job`'s run lock if it is free; `None` when another run holds it.
    pub fn try_lock_job(&self, job: &str) -> anyhow::Result<Option<JobLock>> {
        use anyhow::Context as _;
        let (file, path) = self.lock_file(job)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(JobLock::file(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Takes `job`'s run lock, waiting up to `max_wait` (on tokio's clock)
    /// while another process holds it, or until `stop` turns true. An error
    /// saying how long it waited when it could not.
    pub async fn lock_job_waiting(
        &self,
        job: &str,
        max_wait: std::time::Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<JobLock> {
        use anyhow::Context as _;
        /// How often a waiting run tries the lock again.
        const POLL: std::time::Duration = std::time::Duration::from_millis(200);
        let (file, path) = self.lock_file(job)?;
        let started = tokio::time::Instant::now();
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(JobLock::file(file)),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            let waited = started.elapsed();
            if waited >= max_wait || *stop.borrow() {
                anyhow::bail!(
                    "job {job} was running in another trainwatch process using the same state_dir ({} is locked) for all of the {}s this run waited{}",
                    path.display(),
                    waited.as_secs(),
                    if *stop.borrow() {
                        " before the shutdown"
                    } else {
                        ""
                    }
                );
            }
            if !said {
                tracing::warn!(
                    job,
                    max_wait_s = max_wait.as_secs(),
                    "the job is running in another trainwatch process; waiting for it"
                );
                said = true;
            }
            tokio::time::sleep(POLL.min(max_wait - waited)).await;
        }
    }

    fn with<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            doing,
            source,
        })
    }

    /// Records the start of a run; returns its id.
    pub fn begin_run(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.with("recording a run", |c| {
            c.execute(
                "INSERT INTO runs (job, fire_time, started_at, outcome, replica) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![job, ts(fire), ts(now), self.replica],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records a fire that did not run (its job was still running), so
    /// that history shows it.
    pub fn record_skipped(
        &self,
        job: &str,
        fire: DateTime<Utc>,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.with("recording a skipped fire", |c| {
            c.execute(
                "INSERT INTO runs (job, fire_time, started_at, finished_at, outcome, error, replica) VALUES (?1, ?2, ?3, ?3, 'skipped', ?4, ?5)",
                params![job, ts(fire), ts(now), why, self.replica],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records the window and record count of a run once it has fetched.
    pub fn set_window(
        &self,
        run: i64,
        window: (DateTime<Utc>, DateTime<Utc>),
        records: u64,
    ) -> Result<(), StoreError> {
        self.with("recording a run's window", |c| {
            c.execute(
                "UPDATE runs SET window_start = ?2, window_end = ?3, records = ?4 WHERE id = ?1",
                params![run, ts(window.0), ts(window.1), records as i64],
            )?;
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
        self.with("finishing a run", |c| {
            c.execute(
                "UPDATE runs SET outcome = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![run, outcome.as_str(), error, ts(now)],
            )?;
            Ok(())
        })
    }

    /// The outbox: records every delivery of `run` in one transaction,
    /// before the first is sent. A key delivered before comes back
    /// [`Claim::AlreadyDelivered`]; one pending or failed (an earlier run of
    /// the same window) is pending again, with this payload, and stays that
    /// run's; a new one is pending and this run's. One [`Claim`] per item, in order.
    pub fn enqueue(
        &self,
        run: i64,
        items: &[NewDelivery<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.with("recording a run's outbox", |c| {
            let tx = write_tx(c)?;
            let mut claims = Vec::with_capacity(items.len());
            for d in items {
                claims.push(claim_in(&tx, run, d, now, false)?);
            }
            tx.execute(
                "UPDATE runs SET outboxed = ?2 WHERE id = ?1",
                params![run, items.len() as i64],
            )?;
            tx.commit()?;
            Ok(claims)
        })
    }

    /// Claims one delivery (as [`Store::enqueue`] does for a whole run):
    /// [`Claim::AlreadyDelivered`] if it was delivered before, otherwise it
    /// is (re)recorded as pending with this payload and the caller sends it.
    /// The delivery stays with the run that created it.
    pub fn claim(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.claim_as(run, d, now, false)
    }

    /// [`Store::claim`] for an on_failure notice of `run` (counted apart
    /// from the run's deliveries).
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
        self.with("claiming a delivery", |c| {
            let tx = write_tx(c)?;
            let claim = claim_in(&tx, run, d, now, notice)?;
            tx.commit()?;
            Ok(claim)
        })
    }

    /// Claims, right before sending it, a delivery recorded in an outbox:
    /// [`Claim::AlreadyDelivered`] when another process delivered it since.
    pub fn claim_send(&self, _run: i64, _job: &str, key: &str) -> Result<Claim, StoreError> {
        self.with("claiming a delivery", |c| {
            let row: Option<(String, u32, Option<String>, u32)> = c
                .query_row(
                    "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            Ok(match row {
                Some((status, _, sent_at, _)) if Status::parse(&status) == Status::Delivered => {
                    Claim::AlreadyDelivered {
                        sent_at: sent_at.as_deref().map(parse_ts),
                    }
                }
                Some((_, attempts, _, parts_done)) => Claim::Send {
                    attempts_before: attempts,
                    parts_done,
                },
                None => Claim::Send {
                    attempts_before: 0,
                    parts_done: 0,
                },
            })
        })
    }

    /// With the job's lock held, a fire is this process's unless it was dealt with.
    pub fn claim_fire(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(!self.has_run(job, fire)?)
    }

    /// The replica of the latest run recorded for the fire of `job` at `fire`.
    pub fn fire_claimed_by(
        &self,
        job: &str,
        fire: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.with("reading runs", |c| {
            c.query_row(
                "SELECT replica FROM runs WHERE job = ?1 AND fire_time = ?2 ORDER BY id DESC LIMIT 1",
                params![job, ts(fire)],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    /// Records the result of sending a claimed delivery in run `by_run`.
    /// Delivered by a run other than the one that created it, it is marked
    /// finished by `by_run`, and once that run has nothing left pending or
    /// failed, its outcome becomes succeeded. A transient failure is
    /// scheduled for the service to retry ([`next_retry`]).
    pub fn record(
        &self,
        key: &str,
        by_run: i64,
        attempt: &Attempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("recording a delivery", |c| {
            let tx = write_tx(c)?;
            let Some((creator, created, rounds)) = tx
                .query_row(
                    "SELECT run_id, created_at, rounds FROM deliveries WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?)),
                )
                .optional()?
            else {
                return Ok(());
            };
            let finished_by = (creator != by_run).then_some(by_run);
            match attempt.error {
                None => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'delivered', attempts = attempts + ?2, parts_done = ?3,
                                last_error = NULL, sent_at = ?4, next_attempt_at = NULL, finished_by = ?5
                         WHERE key = ?1",
                        params![key, attempt.attempts, attempt.parts_done, ts(now), finished_by],
                    )?;
                    if finished_by.is_some() {
                        settle(&tx, creator, now)?;
                    }
                }
                Some(error) => {
                    let retry = attempt
                        .transient
                        .then(|| next_retry(parse_ts(&created), rounds + 1, now))
                        .flatten();
                    tx.execute(
                        "UPDATE deliveries SET status = 'failed', attempts = attempts + ?2, parts_done = ?3,
                                last_error = ?4, next_attempt_at = ?5, rounds = rounds + 1
                         WHERE key = ?1",
                        params![key, attempt.attempts, attempt.parts_done, error, retry.map(ts)],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Deliveries of `job` recorded but never confirmed (the process
    /// stopped first), oldest first.
    pub fn pending(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where(
            "WHERE job = ?1 AND status = 'pending' ORDER BY id",
            params![job],
        )
    }

    /// Deliveries of `job` the service should send now: every pending one,
    /// and every transient failure whose retry is due at `now`; oldest first.
    pub fn due(&self, job: &str, now: DateTime<Utc>) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where(
            "WHERE job = ?1 AND (status = 'pending' OR (status = 'failed' AND next_attempt_at <= ?2)) ORDER BY id",
            params![job, ts(now)],
        )
    }

    /// The jobs with a delivery [`Store::due`] at `now`.
    pub fn jobs_due(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.with("reading deliveries", |c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT job FROM deliveries
                 WHERE status = 'pending' OR (status = 'failed' AND next_attempt_at <= ?1) ORDER BY job",
            )?;
            stmt.query_map(params![ts(now)], |r| r.get(0))?.collect()
        })
    }

    /// Every delivery of `job`, oldest first.
    pub fn deliveries(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where("WHERE job = ?1 ORDER BY id", params![job])
    }

    fn deliveries_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT run_id, key, job, target, recipient, status, attempts, last_error, payload, sent_at, finished_by, next_attempt_at
             FROM deliveries {clause}"
        );
        self.with("reading deliveries", |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| {
                Ok(DeliveryRecord {
                    run_id: r.get(0)?,
                    key: r.get(1)?,
                    job: r.get(2)?,
                    target: r.get(3)?,
                    recipient: r.get(4)?,
                    status: Status::parse(&r.get::<_, String>(5)?),
                    attempts: r.get(6)?,
                    last_error: r.get(7)?,
                    payload: r.get(8)?,
                    sent_at: r.get::<_, Option<String>>(9)?.as_deref().map(parse_ts),
                    finished_by: r.get(10)?,
                    next_attempt_at: r.get::<_, Option<String>>(11)?.as_deref().map(parse_ts),
                })
            })?;
            rows.collect()
        })
    }

    /// Drops the payloads of deliveries delivered before `before` (the
    /// retention): the keys stay, so nothing is ever sent twice, but the
    /// ledger stops growing by a rendered report per delivery. Returns how
    /// many payloads were dropped.
    pub fn prune_payloads(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.with("pruning delivered payloads", |c| {
            c.execute(
                "UPDATE deliveries SET payload = NULL
                 WHERE status = 'delivered' AND sent_at < ?1 AND payload IS NOT NULL",
                params![ts(before)],
            )
        })
    }

    /// Whether the fire of `job` at `fire` has been dealt with: a run that
    /// recorded its outbox, or ended succeeded or failed. A run killed or
    /// stopped before it recorded its outbox, or a skipped fire, does not
    /// count, so catch-up runs that fire again.
    pub fn has_run(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with("reading runs", |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE job = ?1 AND fire_time = ?2
                                AND (outboxed IS NOT NULL OR outcome NOT IN ('running', 'skipped', 'interrupted')))",
                params![job, ts(fire)],
                |r| r.get(0),
            )
        })
    }

    /// The most recent successful run of `job`, if any.
    pub fn last_success(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .runs_where(
                "WHERE r.job = ?1 AND r.outcome = 'succeeded' AND r.window_end IS NOT NULL ORDER BY r.fire_time DESC, r.id DESC LIMIT 1",
                Some(job),
            )?
            .pop())
    }

    /// The most recent runs (of `job`, or of every job), newest first.
    pub fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let clause = match job {
            Some(_) => format!("WHERE r.job = ?1 ORDER BY r.id DESC LIMIT {limit}"),
            None => format!("ORDER BY r.id DESC LIMIT {limit}"),
        };
        self.runs_where(&clause, job)
    }

    fn runs_where(&self, clause: &str, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT r.id, r.job, r.fire_time, r.window_start, r.window_end, r.started_at, r.finished_at, r.outcome, r.records, r.error,
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice = 0 AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice = 0 AND d.status = 'failed'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice = 0 AND d.status = 'pending'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.finished_by IS NOT NULL AND d.status = 'delivered'),
                    (SELECT MAX(d.finished_by) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.finished_by = r.id),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice = 1 AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice = 1 AND d.status != 'delivered'),
                    r.replica
             FROM runs r {clause}"
        );
        self.with("reading runs", |c| {
            let mut stmt = c.prepare(&sql)?;
            let map = |r: &rusqlite::Row<'_>| {
                let window = match (
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ) {
                    (Some(s), Some(e)) => Some((parse_ts(&s), parse_ts(&e))),
                    _ => None,
                };
                let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
                Ok(RunRecord {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    fire_time: parse_ts(&r.get::<_, String>(2)?),
                    window,
                    started_at: parse_ts(&r.get::<_, String>(5)?),
                    finished_at: r.get::<_, Option<String>>(6)?.as_deref().map(parse_ts),
                    outcome: Outcome::parse(&r.get::<_, String>(7)?),
                    records: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
                    error: r.get(9)?,
                    deliveries: (n(10)?, n(11)?, n(12)?),
                    finished_later: (n(13)?, r.get(14)?),
                    finished_for_others: n(15)?,
                    notices: (n(16)?, n(17)?),
                    replica: r.get(18)?,
                })
            };
            match job {
                Some(j) => stmt.query_map(params![j], map)?.collect(),
                None => stmt.query_map([], map)?.collect(),
            }
        })
    }
}

/// A run as stored, every column, for moving a store to another backend.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub job: String,
    pub fire_time: DateTime<Utc>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub records: Option<i64>,
    pub error: Option<String>,
    pub outboxed: Option<i64>,
    pub replica: Option<String>,
}

/// A delivery as stored, every column, for moving a store to another backend.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub id: i64,
    pub run_id: i64,
    pub key: String,
    pub job: String,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub target: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub parts_done: i64,
    pub last_error: Option<String>,
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub finished_by: Option<i64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub rounds: i64,
    pub notice: bool,
}

impl SqliteStore {
    /// Every run and delivery, in id order (for `trainwatch store migrate`).
    pub fn export(&self) -> Result<(Vec<StoredRun>, Vec<StoredDelivery>), StoreError> {
        self.with("reading the whole store", |c| {
            let t = |s: Option<String>| s.as_deref().map(parse_ts);
            let runs = c
                .prepare(
                    "SELECT id, job, fire_time, window_start, window_end, started_at, finished_at, outcome,
                            records, error, outboxed, replica FROM runs ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(StoredRun {
                        id: r.get(0)?,
                        job: r.get(1)?,
                        fire_time: parse_ts(&r.get::<_, String>(2)?),
                        window: t(r.get(3)?).zip(t(r.get(4)?)),
                        started_at: parse_ts(&r.get::<_, String>(5)?),
                        finished_at: t(r.get(6)?),
                        outcome: r.get(7)?,
                        records: r.get(8)?,
                        error: r.get(9)?,
                        outboxed: r.get(10)?,
                        replica: r.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let deliveries = c
                .prepare(
                    "SELECT id, run_id, key, job, window_start, window_end, target, recipient, status, attempts,
                            parts_done, last_error, payload, created_at, sent_at, finished_by, next_attempt_at,
                            rounds, notice FROM deliveries ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(StoredDelivery {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        key: r.get(2)?,
                        job: r.get(3)?,
                        window: (
                            parse_ts(&r.get::<_, String>(4)?),
                            parse_ts(&r.get::<_, String>(5)?),
                        ),
                        target: r.get(6)?,
                        recipient: r.get(7)?,
                        status: r.get(8)?,
                        attempts: r.get(9)?,
                        parts_done: r.get(10)?,
                        last_error: r.get(11)?,
                        payload: r.get(12)?,
                        created_at: parse_ts(&r.get::<_, String>(13)?),
                        sent_at: t(r.get(14)?),
                        finished_by: r.get(15)?,
                        next_attempt_at: t(r.get(16)?),
                        rounds: r.get(17)?,
                        notice: r.get(18)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((runs, deliveries))
        })
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

/// Switches `conn` to WAL, waiting for other processes doing the same. The
/// switch needs an exclusive lock, and SQLite does not always call the busy
/// handler for it (it returns SQLITE_BUSY at once when waiting could
/// deadlock), so processes opening a fresh database together retry here,
/// for at most [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
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
    pub fn lock_job(&self, job: &str) -> anyhow::Result<JobLock> {
        both!(self.lock_job(job))
    }

    /// Takes `job`'s run lock if it is free; `None` when another run holds it.
    pub fn try_lock_job(&self, job: &str) -> anyhow::Result<Option<JobLock>> {
        both!(self.try_lock_job(job))
    }

    /// Takes `job`'s run lock, waiting up to `max_wait` (on tokio's clock)
    /// while another process holds it, or until `stop` turns true.
    pub async fn lock_job_waiting(
        &self,
        job: &str,
        max_wait: std::time::Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<JobLock> {
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

fn schema_version(c: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

/// [`Store::claim`] inside a write transaction.
fn claim_in(
    tx: &rusqlite::Transaction<'_>,
    run: i64,
    d: &NewDelivery<'_>,
    now: DateTime<Utc>,
    notice: bool,
) -> rusqlite::Result<Claim> {
    let existing: Option<(String, u32, Option<String>, u32)> = tx
        .query_row(
            "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = ?1",
            params![d.key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    Ok(match existing {
        Some((status, _, sent_at, _)) if Status::parse(&status) == Status::Delivered => {
            Claim::AlreadyDelivered {
                sent_at: sent_at.as_deref().map(parse_ts),
            }
        }
        // An earlier run's: it stays that run's (its counts), sent again now.
        Some((_, attempts, _, parts_done)) => {
            tx.execute(
                "UPDATE deliveries SET status = 'pending', payload = ?2, next_attempt_at = NULL WHERE key = ?1",
                params![d.key, d.payload],
            )?;
            Claim::Send {
                attempts_before: attempts,
                parts_done,
            }
        }
        None => {
            tx.execute(
                "INSERT INTO deliveries (run_id, key, job, window_start, window_end, target, recipient, status, payload, created_at, notice)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10)",
                params![run, d.key, d.job, ts(d.window.0), ts(d.window.1), d.target, d.recipient, d.payload, ts(now), notice],
            )?;
            Claim::Send {
                attempts_before: 0,
                parts_done: 0,
            }
        }
    })
}

/// Once a run that recorded its outbox has every delivery delivered (some
/// by later runs), it succeeded: whatever cut it off or failed in it has
/// been made good. Its error is kept in history's "finished later" instead.
fn settle(tx: &rusqlite::Transaction<'_>, run: i64, now: DateTime<Utc>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE runs SET outcome = 'succeeded', finished_at = COALESCE(finished_at, ?2), error = NULL
         WHERE id = ?1 AND outboxed IS NOT NULL AND outcome != 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.run_id = ?1 AND d.notice = 0 AND d.status != 'delivered')",
        params![run, ts(now)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a parameterised test keeps its store: a SQLite folder, or a
    /// fresh Postgres database (when `TRAINWATCH_TEST_PG_URL` is set).
    enum Place {
        Sqlite(tempfile::TempDir),
        Postgres(secrecy::SecretString),
    }

    impl Place {
        /// Opens the store there (again: another process, or another replica).
        fn open(&self) -> Result<Store, StoreError> {
            match self {
                Self::Sqlite(dir) => Store::open(dir.path()),
                Self::Postgres(url) => postgres::PgStore::open(
                    url,
                    std::time::Duration::from_secs(120),
                    replica_id(None),
                )
                .map(Store::Postgres),
            }
        }
    }

    /// Every backend the test runs on: SQLite always, Postgres when configured.
    fn places(test: &str) -> Vec<Place> {
        let mut out = vec![Place::Sqlite(tempfile::tempdir().unwrap())];
        out.extend(postgres::test_database(test).map(Place::Postgres));
        out
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn ok(attempts: u32, parts_done: u32) -> Attempt<'static> {
        Attempt {
            attempts,
            parts_done,
            error: None,
            transient: false,
        }
    }

    fn delivery<'a>(key: &'a str) -> NewDelivery<'a> {
        NewDelivery {
            key,
            job: "weekly",
            window: (t("2026-03-02T06:00:00Z"), t("2026-03-09T05:00:00Z")),
            target: "email overdue",
            recipient: "dana@example.com",
            payload: "{}",
        }
    }

    #[test]
    fn a_delivered_key_is_never_claimed_for_sending_again_even_after_reopening() {
        for place in
            places("a_delivered_key_is_never_claimed_for_sending_again_even_after_reopening")
        {
            let now = t("2026-03-09T14:00:00Z");
            {
                let store = place.open().unwrap();
                let run = store.begin_run("weekly", now, now).unwrap();
                assert_eq!(
                    store.claim(run, &delivery("k1"), now).unwrap(),
                    Claim::Send {
                        attempts_before: 0,
                        parts_done: 0
                    }
                );
                store.record("k1", run, &ok(2, 1), now).unwrap();
            }
            let store = place.open().unwrap();
            let run = store.begin_run("weekly", now, now).unwrap();
            assert_eq!(
                store.claim(run, &delivery("k1"), now).unwrap(),
                Claim::AlreadyDelivered { sent_at: Some(now) }
            );
            assert_eq!(store.deliveries("weekly").unwrap()[0].attempts, 2);
        }
    }

    #[test]
    fn a_failed_delivery_is_tried_again_and_a_claimed_one_is_pending_until_recorded() {
        for place in
            places("a_failed_delivery_is_tried_again_and_a_claimed_one_is_pending_until_recorded")
        {
            let store = place.open().unwrap();
            let now = t("2026-03-09T14:00:00Z");
            let run = store.begin_run("weekly", now, now).unwrap();
            store.claim(run, &delivery("k1"), now).unwrap();
            store.claim(run, &delivery("k2"), now).unwrap();
            store
                .record(
                    "k1",
                    run,
                    &Attempt {
                        attempts: 3,
                        parts_done: 2,
                        error: Some("part 3 of 4: 400 invalid_blocks"),
                        transient: false,
                    },
                    now,
                )
                .unwrap();
            assert_eq!(
                store
                    .pending("weekly")
                    .unwrap()
                    .iter()
                    .map(|d| d.key.as_str())
                    .collect::<Vec<_>>(),
                ["k2"]
            );
            let again = store.begin_run("weekly", now, now).unwrap();
            assert_eq!(
                store.claim(again, &delivery("k1"), now).unwrap(),
                Claim::Send {
                    attempts_before: 3,
                    parts_done: 2
                },
                "a retry starts after the parts already confirmed"
            );
        }
    }

    #[test]
    fn runs_are_listed_newest_first_with_their_delivery_counts_and_last_success() {
        for place in
            places("runs_are_listed_newest_first_with_their_delivery_counts_and_last_success")
        {
            let store = place.open().unwrap();
            let (a, b) = (t("2026-03-02T14:00:00Z"), t("2026-03-09T14:00:00Z"));
            let r1 = store.begin_run("weekly", a, a).unwrap();
            store.set_window(r1, (a, b), 12).unwrap();
            store.claim(r1, &delivery("k1"), a).unwrap();
            store.record("k1", r1, &ok(1, 1), a).unwrap();
            store.finish_run(r1, Outcome::Succeeded, None, a).unwrap();
            let r2 = store.begin_run("weekly", b, b).unwrap();
            store
                .finish_run(r2, Outcome::Failed, Some("fetch failed"), b)
                .unwrap();
            let runs = store.runs(Some("weekly"), 10).unwrap();
            assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [r2, r1]);
            assert_eq!(runs[1].deliveries, (1, 0, 0));
            assert_eq!(runs[1].records, Some(12));
            assert_eq!(runs[0].error.as_deref(), Some("fetch failed"));
            assert_eq!(store.last_success("weekly").unwrap().unwrap().id, r1);
            assert!(store.has_run("weekly", a).unwrap());
            assert!(
                !store
                    .has_run("weekly", a + chrono::TimeDelta::seconds(1))
                    .unwrap()
            );
            assert!(store.last_success("other").unwrap().is_none());
        }
    }

    #[test]
    fn a_job_cannot_be_locked_twice_until_the_first_lock_is_dropped() {
        for place in places("a_job_cannot_be_locked_twice_until_the_first_lock_is_dropped") {
            let store = place.open().unwrap();
            let other = place.open().unwrap();
            let held = store.lock_job("weekly").unwrap();
            let err = other.lock_job("weekly").unwrap_err().to_string();
            assert!(
                err.contains("job weekly is running in another trainwatch process"),
                "{err}"
            );
            assert!(other.lock_job("daily").is_ok(), "other jobs are free");
            drop(held);
            assert!(other.lock_job("weekly").is_ok());
        }
    }

    #[test]
    fn the_database_is_in_wal_mode_at_the_latest_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_database_from_a_newer_trainwatch_is_refused_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("trainwatch.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            std::error::Error::source(&err).is_none(),
            "one sentence, no cause under it"
        );
        let err = err.to_string();
        assert_eq!(
            err,
            format!(
                "state store {} was written by a newer trainwatch (schema version 99; this one knows versions up to {}): upgrade trainwatch, or point state_dir at another folder",
                dir.path().join("trainwatch.db").display(),
                MIGRATIONS.len()
            )
        );
        assert!(!err.contains("Invalid parameter name"), "{err}");
    }

    fn failed(error: &str, transient: bool) -> Attempt<'_> {
        Attempt {
            attempts: 6,
            parts_done: 0,
            error: Some(error),
            transient,
        }
    }

    fn keys(records: &[DeliveryRecord]) -> Vec<&str> {
        records.iter().map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn the_outbox_records_every_delivery_pending_before_any_is_sent() {
        for place in places("the_outbox_records_every_delivery_pending_before_any_is_sent") {
            let store = place.open().unwrap();
            let now = t("2026-03-09T14:00:00Z");
            let run = store.begin_run("weekly", now, now).unwrap();
            let claims = store
                .enqueue(run, &[delivery("k1"), delivery("k2"), delivery("k3")], now)
                .unwrap();
            assert!(claims.iter().all(|c| matches!(c, Claim::Send { .. })));
            assert_eq!(keys(&store.pending("weekly").unwrap()), ["k1", "k2", "k3"]);
            assert_eq!(store.runs(None, 1).unwrap()[0].deliveries, (0, 0, 3));
            assert!(
                store.has_run("weekly", now).unwrap(),
                "a run that recorded its outbox has dealt with its fire"
            );
        }
    }

    #[test]
    fn a_run_killed_before_its_outbox_does_not_count_as_having_run_its_fire() {
        for place in places("a_run_killed_before_its_outbox_does_not_count_as_having_run_its_fire")
        {
            let store = place.open().unwrap();
            let fire = t("2026-03-09T14:00:00Z");
            store.begin_run("weekly", fire, fire).unwrap();
            store
                .record_skipped("weekly", fire, "skipped: still going", fire)
                .unwrap();
            let stopped = store.begin_run("weekly", fire, fire).unwrap();
            store
                .finish_run(stopped, Outcome::Interrupted, Some("stopped waiting"), fire)
                .unwrap();
            assert!(!store.has_run("weekly", fire).unwrap());
            let failed = store.begin_run("weekly", fire, fire).unwrap();
            store
                .finish_run(failed, Outcome::Failed, Some("fetch failed"), fire)
                .unwrap();
            assert!(store.has_run("weekly", fire).unwrap());
        }
    }

    #[test]
    fn counts_stay_with_the_run_that_created_them_and_it_succeeds_once_finished_later() {
        for place in
            places("counts_stay_with_the_run_that_created_them_and_it_succeeds_once_finished_later")
        {
            let store = place.open().unwrap();
            let now = t("2026-03-09T14:00:00Z");
            let first = store.begin_run("weekly", now, now).unwrap();
            store
                .enqueue(
                    first,
                    &[delivery("k1"), delivery("k2"), delivery("k3")],
                    now,
                )
                .unwrap();
            store.record("k1", first, &ok(1, 1), now).unwrap();
            // The process dies here: k2 and k3 stay pending.
            let later = now + chrono::TimeDelta::minutes(1);
            let second = store.begin_run("weekly", later, later).unwrap();
            assert_eq!(keys(&store.due("weekly", later).unwrap()), ["k2", "k3"]);
            store.record("k2", second, &ok(1, 1), later).unwrap();
            let runs = store.runs(None, 10).unwrap();
            assert_eq!(runs[1].outcome, Outcome::Running, "k3 is still pending");
            store.record("k3", second, &ok(1, 1), later).unwrap();
            store
                .finish_run(second, Outcome::Succeeded, None, later)
                .unwrap();

            let runs = store.runs(None, 10).unwrap();
            let (second_rec, first_rec) = (&runs[0], &runs[1]);
            assert_eq!(first_rec.deliveries, (3, 0, 0));
            assert_eq!(first_rec.finished_later, (2, Some(second)));
            assert_eq!(first_rec.outcome, Outcome::Succeeded);
            assert_eq!(first_rec.finished_at, Some(later));
            assert_eq!(second_rec.deliveries, (0, 0, 0));
            assert_eq!(second_rec.finished_for_others, 2);
            let ledger = store.deliveries("weekly").unwrap();
            assert!(ledger.iter().all(|d| d.run_id == first));
            assert_eq!(
                ledger.iter().map(|d| d.finished_by).collect::<Vec<_>>(),
                [None, Some(second), Some(second)]
            );
        }
    }

    #[test]
    fn a_transient_failure_is_due_again_later_and_a_permanent_one_is_not() {
        for place in places("a_transient_failure_is_due_again_later_and_a_permanent_one_is_not") {
            let store = place.open().unwrap();
            let now = t("2026-03-09T14:00:00Z");
            let run = store.begin_run("weekly", now, now).unwrap();
            store
                .enqueue(run, &[delivery("k1"), delivery("k2")], now)
                .unwrap();
            store
                .record("k1", run, &failed("421 try later", true), now)
                .unwrap();
            store
                .record("k2", run, &failed("550 no such user", false), now)
                .unwrap();
            assert!(store.due("weekly", now).unwrap().is_empty());
            assert!(store.jobs_due(now).unwrap().is_empty());
            let retry = now + RETRY_FIRST;
            let due = store.due("weekly", retry).unwrap();
            assert_eq!(keys(&due), ["k1"]);
            assert_eq!(due[0].next_attempt_at, Some(retry));
            assert_eq!(store.jobs_due(retry).unwrap(), ["weekly"]);
            // The second failure waits twice as long.
            store
                .record("k1", run, &failed("421 try later", true), retry)
                .unwrap();
            assert_eq!(
                store.deliveries("weekly").unwrap()[0].next_attempt_at,
                Some(retry + RETRY_FIRST * 2)
            );
        }
    }

    #[test]
    fn retries_back_off_doubling_up_to_an_hour_and_stop_after_a_day() {
        let created = t("2026-03-09T14:00:00Z");
        let gaps: Vec<i64> = (1..=8)
            .map(|n| (next_retry(created, n, created).unwrap() - created).num_minutes())
            .collect();
        assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60, 60]);
        let late = created + chrono::TimeDelta::hours(23) + chrono::TimeDelta::minutes(30);
        assert_eq!(
            next_retry(created, 30, late),
            None,
            "an hour from now is past the day"
        );
        assert_eq!(
            next_retry(created, u32::MAX, created),
            Some(created + RETRY_MAX_GAP)
        );
    }

    #[test]
    fn delivered_payloads_older_than_the_retention_are_dropped_and_their_keys_still_block_a_resend()
    {
        for place in places(
            "delivered_payloads_older_than_the_retention_are_dropped_and_their_keys_still_block_a_resend",
        ) {
            let store = place.open().unwrap();
            let old = t("2026-01-01T00:00:00Z");
            let now = t("2026-06-01T00:00:00Z");
            let run = store.begin_run("weekly", old, old).unwrap();
            store
                .enqueue(run, &[delivery("k1"), delivery("k2"), delivery("k3")], old)
                .unwrap();
            store.record("k1", run, &ok(1, 1), old).unwrap();
            store.record("k2", run, &ok(1, 1), now).unwrap();
            let pruned = store
                .prune_payloads(now - chrono::TimeDelta::days(90))
                .unwrap();
            assert_eq!(pruned, 1);
            let payloads: Vec<_> = store
                .deliveries("weekly")
                .unwrap()
                .into_iter()
                .map(|d| d.payload.is_some())
                .collect();
            assert_eq!(
                payloads,
                [false, true, true],
                "the recent one and the pending one keep theirs"
            );
            let again = store.begin_run("weekly", now, now).unwrap();
            assert_eq!(
                store.claim(again, &delivery("k1"), now).unwrap(),
                Claim::AlreadyDelivered { sent_at: Some(old) }
            );
        }
    }

    #[test]
    fn failure_notices_are_kept_apart_from_the_runs_deliveries() {
        for place in places("failure_notices_are_kept_apart_from_the_runs_deliveries") {
            let store = place.open().unwrap();
            let now = t("2026-03-09T14:00:00Z");
            let run = store.begin_run("weekly", now, now).unwrap();
            store.enqueue(run, &[delivery("k1")], now).unwrap();
            store
                .record("k1", run, &failed("550 no such user", false), now)
                .unwrap();
            store.claim_notice(run, &delivery("n1"), now).unwrap();
            store.record("n1", run, &ok(1, 1), now).unwrap();
            assert_eq!(
                store.claim_notice(run, &delivery("n1"), now).unwrap(),
                Claim::AlreadyDelivered { sent_at: Some(now) },
                "a notice is never sent twice for one run"
            );
            let record = &store.runs(None, 1).unwrap()[0];
            assert_eq!(record.deliveries, (0, 1, 0));
            assert_eq!(record.notices, (1, 0));
        }
    }

    #[test]
    fn processes_opening_a_fresh_database_together_migrate_it_once_and_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (dir.path().to_path_buf(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for handle in opened {
            assert_eq!(handle.join().unwrap(), Ok(()));
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_waits_for_a_job_locked_by_another_process_and_gives_up_when_told() {
        for place in
            places("a_run_waits_for_a_job_locked_by_another_process_and_gives_up_when_told")
        {
            let store = place.open().unwrap();
            let other = place.open().unwrap();
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let wait = std::time::Duration::from_secs(60);

            let held = other.lock_job("weekly").unwrap();
            let release = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                drop(held);
            });
            let started = tokio::time::Instant::now();
            store
                .lock_job_waiting("weekly", wait, &stopped)
                .await
                .expect("the lock, once the other process let go");
            let waited = started.elapsed();
            assert!(
                waited >= std::time::Duration::from_secs(5)
                    && waited < std::time::Duration::from_secs(6),
                "{waited:?}"
            );
            release.await.unwrap();

            let _held = other.lock_job("daily").unwrap();
            let err = store
                .lock_job_waiting("daily", wait, &stopped)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("job daily was running in another trainwatch process")
                    && err.contains("for all of the 60s this run waited"),
                "{err}"
            );
        }
    }

    /// A Postgres store on `url` as replica `replica`, with a lease of `lease_ms`.
    fn pg(url: &secrecy::SecretString, replica: &str, lease_ms: u64) -> Store {
        Store::Postgres(
            postgres::PgStore::open(
                url,
                std::time::Duration::from_millis(lease_ms),
                replica.to_string(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_replica_stalled_past_its_lease_is_fenced_and_another_takes_the_job_over() {
        let Some(url) = postgres::test_database("lease_fencing") else {
            return;
        };
        let (a, b) = (pg(&url, "replica-a", 1000), pg(&url, "replica-b", 1000));
        let now = t("2026-03-09T14:00:00Z");
        let lock_a = a.lock_job("weekly").unwrap();
        assert!(b.try_lock_job("weekly").unwrap().is_none(), "a holds it");
        let err = b.lock_job("weekly").unwrap_err().to_string();
        assert!(err.contains("replica-a holds the job's lease"), "{err}");
        let run = a.begin_run("weekly", now, now).unwrap();
        a.enqueue(run, &[delivery("k1"), delivery("k2")], now)
            .unwrap();
        assert!(matches!(
            a.claim_send(run, "weekly", "k1").unwrap(),
            Claim::Send { .. }
        ));
        a.record("k1", run, &ok(1, 1), now).unwrap();

        // a stalls: its renewals stop (as under SIGSTOP), the lease runs out.
        if let Store::Postgres(p) = &a {
            p.execute_for_tests(
                "UPDATE leases SET expires_at = clock_timestamp() - INTERVAL '1 second'",
            )
            .unwrap();
        }
        let lock_b = b
            .try_lock_job("weekly")
            .unwrap()
            .expect("the expired lease");
        let err = a.claim_send(run, "weekly", "k2").unwrap_err();
        assert!(
            matches!(err, StoreError::LostLease { ref job, .. } if job == "weekly"),
            "{err}"
        );
        assert!(
            a.claim(run, &delivery("k2"), now).is_err(),
            "no claim of any kind"
        );
        // b finishes a's run under its own lease; a's run then succeeded.
        let by_b = b.begin_run("weekly", now, now).unwrap();
        assert_eq!(keys(&b.due("weekly", now).unwrap()), ["k2"]);
        assert!(matches!(
            b.claim(by_b, &delivery("k2"), now).unwrap(),
            Claim::Send { .. }
        ));
        b.record("k2", by_b, &ok(1, 1), now).unwrap();
        let runs = b.runs(Some("weekly"), 10).unwrap();
        assert_eq!(runs[1].id, run);
        assert_eq!(runs[1].outcome, Outcome::Succeeded);
        assert_eq!(runs[1].replica.as_deref(), Some("replica-a"));
        assert_eq!(runs[0].replica.as_deref(), Some("replica-b"));
        assert_eq!(runs[0].finished_for_others, 1);
        drop(lock_b);
        // a's late release does not free b's later generation.
        drop(lock_a);
        assert!(a.try_lock_job("weekly").unwrap().is_some(), "released by b");
    }

    #[test]
    fn a_held_lease_is_renewed_and_not_lost_while_its_holder_is_alive() {
        let Some(url) = postgres::test_database("lease_renewal") else {
            return;
        };
        let (a, b) = (pg(&url, "replica-a", 1000), pg(&url, "replica-b", 1000));
        let lock = a.lock_job("weekly").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert!(lock.held());
        assert!(
            b.try_lock_job("weekly").unwrap().is_none(),
            "renewed past two lease lengths"
        );
    }

    #[test]
    fn replicas_racing_for_one_fire_let_exactly_one_run_it() {
        let Some(url) = postgres::test_database("fire_race") else {
            return;
        };
        let fire = t("2026-03-09T14:00:00Z");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let won: Vec<bool> = (0..6)
            .map(|i| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let store = pg(&url, &format!("replica-{i}"), 60_000);
                    barrier.wait();
                    // As the service does: the job's lease, then the claim.
                    let _lock = loop {
                        match store.try_lock_job("weekly").unwrap() {
                            Some(lock) => break lock,
                            None => std::thread::sleep(std::time::Duration::from_millis(5)),
                        }
                    };
                    let won = store.claim_fire("weekly", fire).unwrap();
                    if won {
                        let run = store.begin_run("weekly", fire, fire).unwrap();
                        store.enqueue(run, &[delivery("k1")], fire).unwrap();
                    }
                    won
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let store = pg(&url, "reader", 60_000);
        assert!(!store.claim_fire("weekly", fire).unwrap());
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(
            store.fire_claimed_by("weekly", fire).unwrap(),
            Some(format!("replica-{winner}"))
        );
    }

    #[test]
    fn a_fire_whose_run_died_before_its_outbox_can_be_claimed_again() {
        let Some(url) = postgres::test_database("fire_reclaim") else {
            return;
        };
        let fire = t("2026-03-09T14:00:00Z");
        let (a, b) = (pg(&url, "replica-a", 60_000), pg(&url, "replica-b", 60_000));
        assert!(a.claim_fire("weekly", fire).unwrap());
        a.begin_run("weekly", fire, fire).unwrap();
        // a dies here, before its outbox.
        assert!(b.claim_fire("weekly", fire).unwrap());
        let run = b.begin_run("weekly", fire, fire).unwrap();
        b.enqueue(run, &[delivery("k1")], fire).unwrap();
        assert!(!a.claim_fire("weekly", fire).unwrap());
    }

    #[test]
    fn replicas_opening_a_fresh_postgres_database_together_migrate_it_once() {
        let Some(url) = postgres::test_database("migrate_together") else {
            return;
        };
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let opened: Vec<_> = (0..6)
            .map(|i| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    postgres::PgStore::open(
                        &url,
                        std::time::Duration::from_secs(60),
                        format!("r{i}"),
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in opened {
            assert_eq!(h.join().unwrap(), Ok(()));
        }
        let store =
            postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into()).unwrap();
        assert_eq!(store.schema_version().unwrap(), PG_MIGRATIONS.len());
    }

    #[test]
    fn a_postgres_schema_from_a_newer_trainwatch_is_refused_and_no_password_is_shown() {
        let Some(url) = postgres::test_database("newer_schema") else {
            return;
        };
        let store =
            postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into()).unwrap();
        store
            .execute_for_tests("UPDATE trainwatch_schema SET version = 99")
            .unwrap();
        let err = postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("was written by a newer trainwatch (schema version 99; this one knows versions up to"),
            "{err}"
        );
        // A wrong password: the error names the server, never the password.
        let mut wrong = url::Url::parse(secrecy::ExposeSecret::expose_secret(&url)).unwrap();
        wrong.set_port(Some(1)).unwrap();
        wrong.set_password(Some("hunter2-secret")).unwrap();
        let err = postgres::PgStore::open(
            &secrecy::SecretString::from(wrong.to_string()),
            std::time::Duration::from_secs(60),
            "r".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains("***") && err.contains("check that the server is up"),
            "{err}"
        );
    }
}
