//! Runs on Postgres: fire claims, recording runs, reading history, and a
//! SQLite store's runs and deliveries copied in.

use chrono::{DateTime, Utc};

use super::{Fail, PgStore};
use crate::store::row;
use crate::store::{Outcome, RunRecord, StoreError, StoredDelivery};

impl PgStore {
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

    /// The runs `clause` selects (`$1` is `job` when given).
    fn runs_where(&self, clause: &str, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!("{} FROM runs r {clause}", row::RUN_COLUMNS);
        self.call("reading runs", async {
            let c = self.client().await?;
            let rows = match job {
                Some(j) => c.query(&sql, &[&j]).await?,
                None => c.query(&sql, &[]).await?,
            };
            Ok(rows.iter().map(row::run).collect::<Result<_, _>>()?)
        })
    }

    /// Copies a whole SQLite store's runs and deliveries in, ids kept, in
    /// one transaction; refuses a database that already has runs (it would
    /// mix two ledgers). Returns (runs, deliveries) copied.
    pub fn import(
        &self,
        runs: &[RunRecord],
        deliveries: &[StoredDelivery],
    ) -> Result<(usize, usize), StoreError> {
        self.call("copying a SQLite store in", async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let existing: i64 = tx
                .query_one("SELECT COUNT(*) FROM runs", &[])
                .await?
                .get(0);
            if existing > 0 {
                return Err(Fail::NotEmpty(existing));
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
                        &r.outcome.as_str(),
                        &r.records.map(|n| n as i64),
                        &r.error,
                        &r.outboxed.map(|n| n as i64),
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
