//! The mirror: a local, incrementally synced copy of the organisation's
//! training data, kept in the store (product.md Part 2, "The mirror").
//!
//! - [`MirrorStore`] is the narrow interface every backend implements
//!   (SQLite today, in [`sqlite`]; a server database later): stage a sync's
//!   pages, commit or abandon them, and answer the two queries reports need
//!   (every version touched in a window; the state of every assignment as
//!   of an instant).
//! - [`sync()`] brings the mirror up to an instant through the Samsara client:
//!   one sync at a time per store, all or nothing.
//! - [`read`] answers a job's window and filters from the mirror, exactly as
//!   the API would for the Part 1 window kinds, and the `current` window.

mod intern;
pub mod postgres;
pub mod read;
pub mod sqlite;
pub mod sync;
pub mod teams;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::data::{HeldState, by_update};
use crate::samsara::{Assignment, Course, Driver, Tag};

pub use read::{fetch, uses_mirror};
pub use sqlite::SqliteMirror;
pub use sync::{SyncListener, SyncOutcome, SyncProgress, SyncReport, on_sync_end, rebuild, sync};
pub use teams::teams_at;

/// How far the mirror reaches: every version with an `updatedAtTime` (or a
/// `createdAtTime`) in `[since, end)` has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// `mirror.since` of the syncs so far (the earliest).
    pub since: DateTime<Utc>,
    /// The end of the last completed sync (exclusive).
    pub end: DateTime<Utc>,
}

/// What a completed sync stores besides its staged versions.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    /// Every course (all statuses); `None` when the token may not read them
    /// (the mirror keeps what it had).
    pub courses: Option<Vec<Course>>,
    /// Every driver, active and deactivated, with their tags; `None` as above.
    pub drivers: Option<Vec<Driver>>,
    /// Every tag; `None` as above.
    pub tags: Option<Vec<Tag>>,
    /// What could not be read and why.
    pub warnings: Vec<String>,
}

/// Counts of one sync, as recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStats {
    /// Versions received (duplicates and overlap included).
    pub versions: u64,
    /// Versions the mirror did not have before.
    pub new_versions: u64,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Stream pages read.
    pub pages: u64,
}

/// One sync as recorded in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRecord {
    /// Its number in the store, increasing.
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None`: running, or killed).
    pub finished_at: Option<DateTime<Utc>>,
    /// The stream range read, `[start, end)`: its start.
    pub start: DateTime<Utc>,
    /// The stream range's end (exclusive): the reach once it succeeded.
    pub end: DateTime<Utc>,
    /// `running` (or killed), `interrupted`, `succeeded` or `failed`.
    pub outcome: String,
    /// What it read and stored.
    pub stats: SyncStats,
    /// How long it took, once ended.
    pub seconds: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Lists it could not read (token scopes).
    pub warnings: Vec<String>,
}

/// `trainwatch mirror`: what the mirror holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorStatus {
    /// `None` until a sync has completed.
    pub reach: Option<Reach>,
    /// Assignment versions stored.
    pub versions: u64,
    /// Distinct assignments.
    pub assignments: u64,
    /// Courses stored (every status).
    pub courses: u64,
    /// Drivers stored (active and deactivated).
    pub drivers: u64,
    /// Tags stored.
    pub tags: u64,
    /// The most recent sync, whatever its outcome.
    pub last_sync: Option<SyncRecord>,
    /// The most recent successful sync.
    pub last_success: Option<SyncRecord>,
    /// Bytes of the database file (the mirror shares it with the run history).
    pub bytes: u64,
}

/// The mirror's storage. Every method is one short transaction except
/// [`MirrorStore::commit`], which moves a sync's staged pages in at once.
pub trait MirrorStore: Send + Sync {
    /// Where the mirror lives, for messages and the sync lock.
    fn location(&self) -> std::path::PathBuf;
    /// The reach of the last completed sync, if any.
    fn reach(&self) -> anyhow::Result<Option<Reach>>;
    /// Starts recording a sync of `[start, end)`; drops what interrupted
    /// syncs left staged. Returns the sync's id.
    fn begin_sync(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64>;
    /// Stages one page of versions for sync `sync` (invisible to queries).
    fn stage(&self, sync: i64, page: &[Assignment]) -> anyhow::Result<()>;
    /// In one transaction: moves the staged versions in (an exact repeat of
    /// `(id, updatedAtTime)` stored once), stores the lists, records `reach`
    /// and the sync's outcome. With `replace`, everything the mirror held is
    /// dropped first, in the same transaction (a rebuild). Returns the number
    /// of new versions.
    fn commit(
        &self,
        sync: i64,
        reach: Reach,
        lists: &Lists,
        stats: &SyncStats,
        replace: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64>;
    /// Records a failed sync and drops its staged versions; the reach is untouched.
    fn fail(
        &self,
        sync: i64,
        error: &str,
        stats: &SyncStats,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;
    /// Every stored version created or modified in `[start, end)` (the
    /// stream's rule), in `updatedAtTime` order.
    fn versions_in(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Assignment>>;
    /// For every assignment, its newest version with `updatedAtTime` before `at`.
    fn state_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Assignment>>;
    /// [`MirrorStore::state_at`] one assignment at a time, in `order`,
    /// handed to `each` as it is read: nothing of the state is held. An
    /// error from `each` stops the read and is returned; a read that fails
    /// part-way returns its error after `each` saw only some of the state,
    /// so a caller must treat what it gathered as incomplete. `each` must
    /// not use this mirror (the SQLite mirror's connection is held).
    /// Both backends read row by row (sorting, for [`StateOrder::ByUpdate`],
    /// spills to disk past their memory budget); the default, for
    /// wrappers, collects (already in [`StateOrder::ByUpdate`]).
    fn state_read(
        &self,
        at: DateTime<Utc>,
        order: StateOrder,
        each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let _ = order;
        for a in self.state_at(at)? {
            each(a)?;
        }
        Ok(())
    }
    /// [`MirrorStore::state_read`] in the backend's own order.
    fn state_each(
        &self,
        at: DateTime<Utc>,
        each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.state_read(at, StateOrder::AsStored, each)
    }
    /// [`MirrorStore::state_read`] in [`MirrorStore::state_at`]'s order: a
    /// state written out row by row in the order a held one has.
    fn state_ordered_each(
        &self,
        at: DateTime<Utc>,
        each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.state_read(at, StateOrder::ByUpdate, each)
    }
    /// The state as of `at`, only the assignments `keep` keeps, held in
    /// [`StateOrder::ByUpdate`] order, and how many states were read (kept
    /// or not). `keep` may be called on several threads at once. The
    /// default reads [`MirrorStore::state_each`] and sorts what it kept;
    /// SQLite reads a large mirror's two halves on two threads, each
    /// keeping and sorting its own, held as they are ([`HeldState`]).
    fn state_kept(
        &self,
        at: DateTime<Utc>,
        keep: &(dyn Fn(&Assignment) -> bool + Sync),
    ) -> anyhow::Result<(HeldState, u64)> {
        let mut kept = Vec::new();
        let mut read = 0;
        self.state_each(at, &mut |a| {
            read += 1;
            if keep(&a) {
                kept.push(a);
            }
            Ok(())
        })?;
        sort_by_update(&mut kept);
        Ok((kept.into(), read))
    }
    /// Every course stored.
    fn courses(&self) -> anyhow::Result<Vec<Course>>;
    /// Every driver stored, with the tags they had as of `at`.
    fn drivers_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Driver>>;
    /// Every tag stored.
    fn tags(&self) -> anyhow::Result<Vec<Tag>>;
    /// Since when drivers' tags are known (the first sync that stored any):
    /// [`MirrorStore::drivers_at`] an earlier instant has no tags to give.
    fn tags_known_since(&self) -> anyhow::Result<Option<DateTime<Utc>>>;
    /// The warnings of the last completed sync (names it could not read).
    fn warnings(&self) -> anyhow::Result<Vec<String>>;
    /// The most recent syncs, newest first.
    fn syncs(&self, limit: usize) -> anyhow::Result<Vec<SyncRecord>>;
    /// Counts, reach and the last syncs.
    fn status(&self) -> anyhow::Result<MirrorStatus>;
    /// The store's own lock that lets one sync run at a time across
    /// replicas on several hosts: [`SyncLock::None`] when the store has
    /// none (SQLite: a lock file beside it does), [`SyncLock::Busy`] while
    /// another holds it.
    fn try_lock_sync(&self) -> anyhow::Result<SyncLock> {
        Ok(SyncLock::None)
    }
}

/// What [`MirrorStore::try_lock_sync`] found.
pub enum SyncLock {
    /// The store has no lock of its own.
    None,
    /// Taken: one sync at a time until this is dropped.
    Held(Box<dyn Send>),
    /// Another process holds it.
    Busy,
}

/// The mirror of `config`'s store (SQLite in `state_dir`, or Postgres with
/// `[store] url`), opened and migrated.
pub fn open(config: &crate::config::Config) -> anyhow::Result<Arc<dyn MirrorStore>> {
    Ok(match &config.store.url {
        Some(url) => Arc::new(postgres::PgMirror::open(
            url,
            config.store.lease,
            crate::store::replica_id(None),
        )?),
        None => Arc::new(SqliteMirror::open(&config.state_dir)?),
    })
}

/// `state_at` of a backend that reads row by row: every state, in
/// (updatedAt, id) order.
fn collect_state(mirror: &dyn MirrorStore, at: DateTime<Utc>) -> anyhow::Result<Vec<Assignment>> {
    Ok(mirror.state_kept(at, &|_| true)?.0.into_vec())
}

/// The order [`MirrorStore::state_read`] hands a state on in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOrder {
    /// The backend's own, in no promised order (SQLite reads a large
    /// mirror in two halves at once): the cheapest read.
    AsStored,
    /// By `updatedAtTime`, then id in byte order, as [`sort_by_update`]
    /// sorts: the order of a held state.
    ByUpdate,
}

impl StateOrder {
    /// What a read in this order is doing, for its error messages.
    pub fn reading(self) -> &'static str {
        match self {
            Self::AsStored => "reading the state as of an instant",
            Self::ByUpdate => "reading the state as of an instant, in order",
        }
    }
}

/// Sorts states as [`MirrorStore::state_at`] gives them: by `updatedAtTime`,
/// then id (distinct per state, so the order is total). An assignment is
/// a few hundred bytes: the sort orders indices and then moves each
/// element once along its cycle, instead of moving elements at every swap.
pub fn sort_by_update(v: &mut [Assignment]) {
    let Ok(n) = u32::try_from(v.len()) else {
        // Past what u32 indices hold: the plain sort, slower but the same order.
        v.sort_unstable_by(by_update);
        return;
    };
    // The instants beside the indices, so that comparing two reads
    // neither assignment (ids are read only to break a tie).
    let mut keys: Vec<(DateTime<Utc>, u32)> = v
        .iter()
        .zip(0..n)
        .map(|(a, i)| (a.updated_at_time, i))
        .collect();
    keys.sort_unstable_by(|&(x, i), &(y, j)| {
        x.cmp(&y)
            .then_with(|| v[i as usize].id.cmp(&v[j as usize].id))
    });
    let mut order: Vec<u32> = keys.into_iter().map(|(_, i)| i).collect();
    // Position k takes the element at `order[k]`; a placed position is marked `order[k] = k`.
    for start in 0..v.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = at as u32;
            if from == start || from == at {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sorting_by_update_through_indices_or_holding_two_sorted_parts_gives_the_plain_sorts_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [0, 1, 2, 3, 10, 257, 2_000] {
            let v: Vec<Assignment> = (0..n)
                .map(|i| {
                    // Few distinct instants: many ties, broken by id.
                    let minute = rng.random_range(0..(n / 4 + 1));
                    serde_json::from_value(serde_json::json!({
                        "id": format!("a-{:05}", rng.random_range(0..1_000_000) * 10 + i % 10),
                        "course": {"id": "c"},
                        "learner": {"id": "1", "type": "driver"},
                        "status": "notStarted",
                        "createdAtTime": "2026-01-01T00:00:00Z",
                        "updatedAtTime": format!("2026-01-01T{:02}:{:02}:00Z", minute / 60 % 24, minute % 60),
                        "durationMinutes": i,
                    }))
                    .unwrap()
                })
                .collect();
            let mut plain = v.clone();
            plain.sort_by(|a, b| (a.updated_at_time, &a.id).cmp(&(b.updated_at_time, &b.id)));
            let mut ours = v.clone();
            sort_by_update(&mut ours);
            assert_eq!(ours, plain, "{n} states");

            // Any two parts, each sorted, held together: read, and as one
            // list, in the same order.
            let (mut a, mut b): (Vec<_>, Vec<_>) =
                v.into_iter().partition(|_| rng.random_bool(0.3));
            sort_by_update(&mut a);
            sort_by_update(&mut b);
            let held = crate::data::HeldState::merging(a, b);
            assert_eq!(held.len(), plain.len());
            assert!(
                held.iter().eq(plain.iter()),
                "{n} states in two parts, read"
            );
            assert_eq!(held.iter().len(), plain.len());
            assert_eq!(
                held.into_vec(),
                plain,
                "{n} states in two parts, as one list"
            );
        }
    }
}
