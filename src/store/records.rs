//! What the store records and hands back: runs, deliveries, claims, and
//! the retry schedule of a transiently failed delivery.

use chrono::{DateTime, Utc};

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

    /// The outcome a stored word names; an unknown word is an error (a
    /// newer or damaged store), never read as some outcome.
    pub(super) fn parse(s: &str) -> Result<Self, UnknownWord> {
        Ok(match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            "skipped" => Self::Skipped,
            _ => return Err(UnknownWord::new("run outcome", s)),
        })
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
    /// The status a stored word names; an unknown word is an error, never
    /// read as pending (which would send the delivery again).
    pub(super) fn parse(s: &str) -> Result<Self, UnknownWord> {
        Ok(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return Err(UnknownWord::new("delivery status", s)),
        })
    }
}

/// A stored word the store does not know (written by a newer trainwatch,
/// or by hand): reading it is an error naming the column and the word.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {word:?} in the store (written by a newer trainwatch?)")]
pub struct UnknownWord {
    what: &'static str,
    word: String,
}

impl UnknownWord {
    fn new(what: &'static str, word: &str) -> Self {
        Self {
            what,
            word: word.chars().take(40).collect(),
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

/// A run as recorded: what history shows, and (every column of the `runs`
/// row included) what `trainwatch store migrate` copies to another backend.
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
    /// How many deliveries the run recorded in its outbox before its first
    /// send; `None` when it never got that far.
    pub outboxed: Option<u64>,
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

/// What [`Store::claim`](super::Store::claim) and [`Store::enqueue`](super::Store::enqueue) found.
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

/// The result of sending a claimed delivery, for [`Store::record`](super::Store::record).
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
