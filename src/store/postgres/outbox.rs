//! The delivery ledger on Postgres: the outbox, claims (fenced by the
//! run's lease), results.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::{Fail, PgStore, R};
use crate::store::row::{self, u32_of};
use crate::store::{Attempt, Claim, DeliveryRecord, NewDelivery, StoreError, next_retry};

impl PgStore {
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
            let found = tx.query_opt(&row::claim_columns("$1"), &[&key]).await?;
            tx.commit().await?;
            Ok(match found {
                Some(r) => row::claim(&r)?,
                None => row::NEW_CLAIM,
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

    /// The deliveries `clause` selects.
    fn deliveries_where(
        &self,
        clause: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!("{} {clause}", row::DELIVERY_COLUMNS);
        self.call("reading deliveries", async {
            let c = self.client().await?;
            let rows = c.query(&sql, args).await?;
            Ok(rows.iter().map(row::delivery).collect::<Result<_, _>>()?)
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
            &format!("{} FOR UPDATE", row::claim_columns("$1")),
            &[&d.key],
        )
        .await?;
    Ok(match existing.as_ref().map(row::claim).transpose()? {
        Some(delivered @ Claim::AlreadyDelivered { .. }) => delivered,
        // An earlier run's: it stays that run's (its counts), sent again now.
        Some(send @ Claim::Send { .. }) => {
            tx.execute(
                "UPDATE deliveries SET status = 'pending', payload = $2, next_attempt_at = NULL WHERE key = $1",
                &[&d.key, &d.payload],
            )
            .await?;
            send
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
                row::NEW_CLAIM
            }
        }
    })
}
