//! Row mapping written once for both backends: each backend reads a
//! column through [`Columns`] (SQLite's times are RFC 3339 text, Postgres's
//! `timestamptz`; SQLite's flags are integers), and the records are built
//! here from the same `SELECT` lists.

use chrono::{DateTime, Utc};

use super::{Claim, DeliveryRecord, Outcome, RunRecord, Status};

/// One result row, read by column index.
pub(super) trait Columns {
    /// The backend's error for a column that cannot be read as asked.
    type Error;
    /// An integer (ids, counts; SQLite's 0/1 flags too).
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    /// An integer that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// Text.
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    /// Text that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// A time, however the backend stores it.
    fn time(&self, i: usize) -> Result<DateTime<Utc>, Self::Error>;
    /// A time that may be NULL.
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// A run's outcome word; an unknown one is the backend's conversion error.
    fn outcome(&self, i: usize) -> Result<Outcome, Self::Error>;
    /// A delivery's status word; an unknown one is the backend's conversion error.
    fn status(&self, i: usize) -> Result<Status, Self::Error>;
}

/// A count or attempt number as stored (a signed integer) as `u32`, saturating.
pub(super) fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A count as stored as `u64`; a negative one (never written) reads as 0.
fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The columns [`run`] reads, from `runs r` (with the `deliveries d` counts);
/// the caller appends `FROM runs r` and its clause. `NOT d.notice` works on
/// SQLite's integer flag and Postgres's boolean alike.
pub(super) const RUN_COLUMNS: &str = "SELECT r.id, r.job, r.fire_time, r.window_start, r.window_end, r.started_at, r.finished_at, r.outcome, r.records, r.error,
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'delivered'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'failed'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND NOT d.notice AND d.status = 'pending'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.finished_by IS NOT NULL AND d.status = 'delivered'),
       (SELECT MAX(d.finished_by) FROM deliveries d WHERE d.run_id = r.id AND d.status = 'delivered'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.finished_by = r.id),
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice AND d.status = 'delivered'),
       (SELECT COUNT(*) FROM deliveries d WHERE d.run_id = r.id AND d.notice AND d.status != 'delivered'),
       r.replica, r.outboxed";

/// A run from a row of [`RUN_COLUMNS`].
pub(super) fn run<C: Columns>(r: &C) -> Result<RunRecord, C::Error> {
    let n = |i: usize| r.int(i).map(u64_of);
    Ok(RunRecord {
        id: r.int(0)?,
        job: r.text(1)?,
        fire_time: r.time(2)?,
        window: r.opt_time(3)?.zip(r.opt_time(4)?),
        started_at: r.time(5)?,
        finished_at: r.opt_time(6)?,
        outcome: r.outcome(7)?,
        records: r.opt_int(8)?.map(u64_of),
        error: r.opt_text(9)?,
        deliveries: (n(10)?, n(11)?, n(12)?),
        finished_later: (n(13)?, r.opt_int(14)?),
        finished_for_others: n(15)?,
        notices: (n(16)?, n(17)?),
        replica: r.opt_text(18)?,
        outboxed: r.opt_int(19)?.map(u64_of),
    })
}

/// The columns [`delivery`] reads; the caller appends its clause.
pub(super) const DELIVERY_COLUMNS: &str = "SELECT run_id, key, job, target, recipient, status, attempts, last_error, payload, sent_at, finished_by, next_attempt_at
     FROM deliveries";

/// A delivery from a row of [`DELIVERY_COLUMNS`].
pub(super) fn delivery<C: Columns>(r: &C) -> Result<DeliveryRecord, C::Error> {
    Ok(DeliveryRecord {
        run_id: r.int(0)?,
        key: r.text(1)?,
        job: r.text(2)?,
        target: r.text(3)?,
        recipient: r.text(4)?,
        status: r.status(5)?,
        attempts: u32_of(r.int(6)?),
        last_error: r.opt_text(7)?,
        payload: r.opt_text(8)?,
        sent_at: r.opt_time(9)?,
        finished_by: r.opt_int(10)?,
        next_attempt_at: r.opt_time(11)?,
    })
}

/// The columns [`claim`] reads, of the delivery whose key is bound to
/// `key_placeholder`; the caller appends a locking clause if any.
pub(super) fn claim_columns(key_placeholder: &str) -> String {
    format!(
        "SELECT status, attempts, sent_at, parts_done FROM deliveries WHERE key = {key_placeholder}"
    )
}

/// A claim of a delivery not recorded yet: sent from the start.
pub(super) const NEW_CLAIM: Claim = Claim::Send {
    attempts_before: 0,
    parts_done: 0,
};

/// What claiming a recorded delivery finds in its row (from
/// [`claim_columns`]): delivered, or to be sent from the parts already confirmed.
pub(super) fn claim<C: Columns>(r: &C) -> Result<Claim, C::Error> {
    Ok(if r.status(0)? == Status::Delivered {
        Claim::AlreadyDelivered {
            sent_at: r.opt_time(2)?,
        }
    } else {
        Claim::Send {
            attempts_before: u32_of(r.int(1)?),
            parts_done: u32_of(r.int(3)?),
        }
    })
}
