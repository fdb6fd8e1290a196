//! The SQLite store's delivery ledger: the outbox, claims, results.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, parse_ts, ts, write_tx};
use crate::store::row;
use crate::store::{Attempt, Claim, DeliveryRecord, NewDelivery, StoreError, next_retry};

impl SqliteStore {
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

    /// Claims one delivery (as [`Store::enqueue`](crate::store::Store::enqueue) does for a whole run):
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

    /// [`Store::claim`](crate::store::Store::claim) for an on_failure notice of `run` (counted apart
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
            Ok(
                c.query_row(&row::claim_columns("?1"), params![key], |r| row::claim(r))
                    .optional()?
                    .unwrap_or(row::NEW_CLAIM),
            )
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
                        .then(|| parse_ts(&created, 1).map(|c| next_retry(c, rounds + 1, now)))
                        .transpose()?
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

    /// The jobs with a delivery [`Store::due`](crate::store::Store::due) at `now`.
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

    /// The deliveries `clause` selects.
    fn deliveries_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!("{} {clause}", row::DELIVERY_COLUMNS);
        self.with("reading deliveries", |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| row::delivery(r))?;
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
}

/// [`Store::claim`](crate::store::Store::claim) inside a write transaction.
fn claim_in(
    tx: &rusqlite::Transaction<'_>,
    run: i64,
    d: &NewDelivery<'_>,
    now: DateTime<Utc>,
    notice: bool,
) -> rusqlite::Result<Claim> {
    let existing = tx
        .query_row(&row::claim_columns("?1"), params![d.key], |r| row::claim(r))
        .optional()?;
    Ok(match existing {
        Some(delivered @ Claim::AlreadyDelivered { .. }) => delivered,
        // An earlier run's: it stays that run's (its counts), sent again now.
        Some(send @ Claim::Send { .. }) => {
            tx.execute(
                "UPDATE deliveries SET status = 'pending', payload = ?2, next_attempt_at = NULL WHERE key = ?1",
                params![d.key, d.payload],
            )?;
            send
        }
        None => {
            tx.execute(
                "INSERT INTO deliveries (run_id, key, job, window_start, window_end, target, recipient, status, payload, created_at, notice)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10)",
                params![run, d.key, d.job, ts(d.window.0), ts(d.window.1), d.target, d.recipient, d.payload, ts(now), notice],
            )?;
            row::NEW_CLAIM
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
