//! The state store: run history and the delivery ledger, in SQLite.
//!
//! Embedded (rusqlite, bundled) in `state_dir/trainwatch.db`, WAL journal,
//! `synchronous = FULL` so that a recorded delivery survives a power cut.
//! Versioned migrations in [`MIGRATIONS`]. Everything outside this module
//! goes through [`Store`]'s few methods, so a server database could back it
//! later without touching the callers.
//!
//! The ledger is what makes deliveries exactly-once per (job, window,
//! target, recipient): a delivery is claimed under its idempotency key before
//! it is sent, marked delivered right after, and never sent again once
//! delivered. Its payload is stored with it (never a secret: URLs and keys
//! stay in the config), so an interrupted run can be finished later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

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
    // 3: the mirror: assignment versions, courses, drivers, tags, syncs (src/mirror/sqlite.rs).
    crate::mirror::sqlite::MIGRATION,
];

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Started and not (yet) finished: the process may have died.
    Running,
    /// Every delivery delivered (or already delivered, or skipped as empty).
    Succeeded,
    /// The fetch or rendering failed, or a delivery failed for good.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }
}

/// The state of one delivery in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Claimed, not confirmed sent. After a crash this may have reached its
    /// receiver; it is sent again with the same idempotency key / Message-ID.
    Pending,
    /// The receiver confirmed it. Never sent again.
    Delivered,
    /// Failed for good in its last run (a later run tries again).
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
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
    /// (delivered, failed, pending) deliveries claimed by this run.
    pub deliveries: (u64, u64, u64),
}

/// A delivery as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub run_id: i64,
    pub key: String,
    pub job: String,
    pub target: String,
    pub recipient: String,
    pub status: Status,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The rendered payload, as the caller serialized it.
    pub payload: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
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

/// What [`Store::claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Delivered before (by this or an earlier run): do not send.
    AlreadyDelivered { sent_at: Option<DateTime<Utc>> },
    /// Claimed for the given run: send it (from part `parts_done` on), then
    /// record the result.
    Send {
        attempts_before: u32,
        parts_done: u32,
    },
}

/// Held while a job runs: no other trainwatch process can run the same job
/// on the same `state_dir` until it is dropped (the OS releases it if the
/// process dies).
#[derive(Debug)]
pub struct JobLock {
    _file: std::fs::File,
}

/// A store failure, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {doing}: {source}")]
pub struct StoreError {
    path: PathBuf,
    doing: &'static str,
    source: rusqlite::Error,
}

/// The SQLite store. One connection behind a mutex: every operation is a
/// short transaction, and runs are few.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Store {
    /// Opens (creating, and migrating) `state_dir/trainwatch.db`.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("trainwatch.db");
        let err = |doing| {
            let path = path.clone();
            move |source| StoreError {
                path,
                doing,
                source,
            }
        };
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError {
            path: path.clone(),
            doing: "creating state_dir",
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let mut conn = Connection::open(&path).map_err(err("opening"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("configuring"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("configuring"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("configuring"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err("reading the schema version"))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError {
                path,
                doing: "checking the schema version",
                source: rusqlite::Error::InvalidParameterName(format!(
                    "the database is at version {version}, newer than this trainwatch knows ({}); upgrade trainwatch",
                    MIGRATIONS.len()
                )),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(err("migrating"))?;
            tx.execute_batch(sql).map_err(err("migrating"))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(err("migrating"))?;
            tx.commit().map_err(err("migrating"))?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes `job`'s run lock (`state_dir/locks/JOB.lock`), so that two
    /// processes (the service and a manual `run-once`, say) never deliver
    /// the same job at once. An error when another process holds it.
    pub fn lock_job(&self, job: &str) -> anyhow::Result<JobLock> {
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
        match file.try_lock() {
            Ok(()) => Ok(JobLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "job {job} is running in another trainwatch process using the same state_dir ({} is locked); try again when it has finished",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    fn with<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| StoreError {
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
                "INSERT INTO runs (job, fire_time, started_at, outcome) VALUES (?1, ?2, ?3, 'running')",
                params![job, ts(fire), ts(now)],
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

    /// Claims a delivery for `run` under its key: [`Claim::AlreadyDelivered`]
    /// if it was delivered before, otherwise it is (re)recorded as pending
    /// with this payload and the caller sends it.
    pub fn claim(
        &self,
        run: i64,
        d: &NewDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.with("claiming a delivery", |c| {
            let tx = c.transaction()?;
            let existing: Option<(String, u32, Option<String>, u32)> = tx
                .query_row(
                    "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = ?1",
                    params![d.key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let claim = match existing {
                Some((status, _, sent_at, _)) if Status::parse(&status) == Status::Delivered => Claim::AlreadyDelivered {
                    sent_at: sent_at.as_deref().map(parse_ts),
                },
                Some((_, attempts, _, parts_done)) => {
                    tx.execute(
                        "UPDATE deliveries SET run_id = ?2, status = 'pending', payload = ?3 WHERE key = ?1",
                        params![d.key, run, d.payload],
                    )?;
                    Claim::Send {
                        attempts_before: attempts,
                        parts_done,
                    }
                }
                None => {
                    tx.execute(
                        "INSERT INTO deliveries (run_id, key, job, window_start, window_end, target, recipient, status, payload, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9)",
                        params![run, d.key, d.job, ts(d.window.0), ts(d.window.1), d.target, d.recipient, d.payload, ts(now)],
                    )?;
                    Claim::Send {
                        attempts_before: 0,
                        parts_done: 0,
                    }
                }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    /// Records the result of sending a claimed delivery: its attempts, and
    /// how many of its parts the receiver has confirmed in all.
    pub fn record(
        &self,
        key: &str,
        attempts: u32,
        parts_done: u32,
        result: Result<(), &str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("recording a delivery", |c| {
            match result {
                Ok(()) => c.execute(
                    "UPDATE deliveries SET status = ?4, attempts = attempts + ?2, parts_done = ?5, last_error = NULL, sent_at = ?3 WHERE key = ?1",
                    params![key, attempts, ts(now), Status::Delivered.as_str(), parts_done],
                )?,
                Err(e) => c.execute(
                    "UPDATE deliveries SET status = ?4, attempts = attempts + ?2, parts_done = ?5, last_error = ?3 WHERE key = ?1",
                    params![key, attempts, e, Status::Failed.as_str(), parts_done],
                )?,
            };
            Ok(())
        })
    }

    /// Deliveries of `job` claimed but never confirmed (the process stopped
    /// before it knew), oldest first.
    pub fn pending(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where("WHERE job = ?1 AND status = 'pending' ORDER BY id", job)
    }

    /// Every delivery of `job`, oldest first.
    pub fn deliveries(&self, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries_where("WHERE job = ?1 ORDER BY id", job)
    }

    fn deliveries_where(&self, clause: &str, job: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT run_id, key, job, target, recipient, status, attempts, last_error, payload, sent_at FROM deliveries {clause}"
        );
        self.with("reading deliveries", |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![job], |r| {
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
                })
            })?;
            rows.collect()
        })
    }

    /// Whether `job` has a run recorded for the fire at `fire` (any outcome).
    pub fn has_run(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with("reading runs", |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE job = ?1 AND fire_time = ?2)",
                params![job, ts(fire)],
                |r| r.get(0),
            )
        })
    }

    /// The most recent successful run of `job`, if any.
    pub fn last_success(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.runs_where("WHERE r.job = ?1 AND r.outcome = 'succeeded' ORDER BY r.fire_time DESC, r.id DESC LIMIT 1", Some(job))?.pop())
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
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'delivered'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'failed'),
                    (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'pending')
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
                    deliveries: (
                        r.get::<_, i64>(10)? as u64,
                        r.get::<_, i64>(11)? as u64,
                        r.get::<_, i64>(12)? as u64,
                    ),
                })
            };
            match job {
                Some(j) => stmt.query_map(params![j], map)?.collect(),
                None => stmt.query_map([], map)?.collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
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
        let dir = tempfile::tempdir().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        {
            let store = Store::open(dir.path()).unwrap();
            let run = store.begin_run("weekly", now, now).unwrap();
            assert_eq!(
                store.claim(run, &delivery("k1"), now).unwrap(),
                Claim::Send {
                    attempts_before: 0,
                    parts_done: 0
                }
            );
            store.record("k1", 2, 1, Ok(()), now).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let run = store.begin_run("weekly", now, now).unwrap();
        assert_eq!(
            store.claim(run, &delivery("k1"), now).unwrap(),
            Claim::AlreadyDelivered { sent_at: Some(now) }
        );
        assert_eq!(store.deliveries("weekly").unwrap()[0].attempts, 2);
    }

    #[test]
    fn a_failed_delivery_is_tried_again_and_a_claimed_one_is_pending_until_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let run = store.begin_run("weekly", now, now).unwrap();
        store.claim(run, &delivery("k1"), now).unwrap();
        store.claim(run, &delivery("k2"), now).unwrap();
        store
            .record("k1", 3, 2, Err("part 3 of 4: 400 invalid_blocks"), now)
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

    #[test]
    fn runs_are_listed_newest_first_with_their_delivery_counts_and_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (t("2026-03-02T14:00:00Z"), t("2026-03-09T14:00:00Z"));
        let r1 = store.begin_run("weekly", a, a).unwrap();
        store.set_window(r1, (a, b), 12).unwrap();
        store.claim(r1, &delivery("k1"), a).unwrap();
        store.record("k1", 1, 1, Ok(()), a).unwrap();
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

    #[test]
    fn a_job_cannot_be_locked_twice_until_the_first_lock_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = Store::open(dir.path()).unwrap();
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

    #[test]
    fn the_database_is_in_wal_mode_at_the_latest_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer than this trainwatch knows"), "{err}");
    }
}
