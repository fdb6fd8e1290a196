//! The SQLite store's runs: recording them, claiming fires, reading
//! history, and the whole store read out for `trainwatch store migrate`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, ts};
use crate::store::row::{self, Columns as _};
use crate::store::{Outcome, RunRecord, StoreError, StoredDelivery};

impl SqliteStore {
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

    /// The runs `clause` selects (`?1` is `job` when given).
    fn runs_where(&self, clause: &str, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!("{} FROM runs r {clause}", row::RUN_COLUMNS);
        self.with("reading runs", |c| {
            let mut stmt = c.prepare(&sql)?;
            match job {
                Some(j) => stmt.query_map(params![j], |r| row::run(r))?.collect(),
                None => stmt.query_map([], |r| row::run(r))?.collect(),
            }
        })
    }

    /// Every run and delivery, in id order (for `trainwatch store migrate`).
    pub fn export(&self) -> Result<(Vec<RunRecord>, Vec<StoredDelivery>), StoreError> {
        let runs = self.runs_where("ORDER BY r.id", None)?;
        self.with("reading the whole store", |c| {
            let deliveries = c
                .prepare(
                    "SELECT id, run_id, key, job, window_start, window_end, target, recipient, status, attempts,
                            parts_done, last_error, payload, created_at, sent_at, finished_by, next_attempt_at,
                            rounds, notice FROM deliveries ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(StoredDelivery {
                        id: r.int(0)?,
                        run_id: r.int(1)?,
                        key: r.text(2)?,
                        job: r.text(3)?,
                        window: (r.time(4)?, r.time(5)?),
                        target: r.text(6)?,
                        recipient: r.text(7)?,
                        status: r.text(8)?,
                        attempts: r.int(9)?,
                        parts_done: r.int(10)?,
                        last_error: r.opt_text(11)?,
                        payload: r.opt_text(12)?,
                        created_at: r.time(13)?,
                        sent_at: r.opt_time(14)?,
                        finished_by: r.opt_int(15)?,
                        next_attempt_at: r.opt_time(16)?,
                        rounds: r.int(17)?,
                        notice: r.get(18)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((runs, deliveries))
        })
    }
}
