//! The state as of an instant, in the backend's own order: each id's
//! newest version before the instant, read from the primary key walked
//! backwards. A large mirror is read in two halves of the key at once, on
//! two threads with two connections that see the same snapshot.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};

use super::{COLUMNS, Shared, version};
use crate::data::HeldState;
use crate::mirror::sort_by_update;
use crate::samsara::Assignment;

/// A mirror of at least this many versions is read in two halves at once.
const SPLIT_FROM: i64 = 100_000;

/// States handed from a reading thread to the caller's at a time.
const BATCH: usize = 1_024;

/// Batches in flight per reading thread: what is held is bounded.
const IN_FLIGHT: usize = 4;

/// Which ids of the key a read walks.
#[derive(Clone, Copy)]
enum Part<'a> {
    All,
    /// Ids at or above the boundary.
    From(&'a str),
    /// Ids below the boundary.
    Below(&'a str),
}

/// Hands `each` every id's newest version before `at` (nanoseconds), in
/// no particular order. With `path` (the mirror's file) and a mirror large
/// enough, two threads read; otherwise this one does. An error from `each`
/// stops the read and is returned.
pub(super) fn newest_before(
    c: &mut Connection,
    path: &Path,
    at: i64,
    each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read(c, path, at, split_from(), each)
}

/// From how many versions a read is split in two on this machine: never
/// on one core.
fn split_from() -> i64 {
    match std::thread::available_parallelism().map_or(1, usize::from) {
        1 => i64::MAX,
        _ => SPLIT_FROM,
    }
}

/// Every id's newest version before `at` (nanoseconds) that `keep` keeps,
/// held and sorted by [`sort_by_update`], and how many states were read.
/// With `path` (the mirror's file) and a mirror large enough, each of two
/// threads reads, keeps and sorts one half of the key, and the two sorted
/// halves are held as they are, read in merged order ([`HeldState`]):
/// nothing crosses between the threads until the end, and no state is
/// moved after its half is sorted.
pub(super) fn kept_before(
    c: &mut Connection,
    path: &Path,
    at: i64,
    keep: &(dyn Fn(&Assignment) -> bool + Sync),
) -> anyhow::Result<(HeldState, u64)> {
    mapped(c, |c| kept(c, path, at, split_from(), keep))
}

/// At most this much of the mirror's file is mapped for a read.
const MAPPED_BYTES: i64 = 1 << 30;

/// `read` with `c` reading the file's pages where they lie in the page
/// cache (SQLite's memory-mapped I/O, `mmap_size`), instead of copying
/// each into SQLite's own cache: a tenth less time for a large state.
/// Mapped pages count in the process's resident memory while mapped, up
/// to the part of the file read: only a read that holds its state
/// ([`kept_before`]), whose memory grows with the state anyway, maps; a
/// read handed on row by row ([`newest_before`]) keeps its memory small.
/// The map is undone after the read. (A mapped file that shrank under a
/// reader would fault; the mirror's file never shrinks: nothing vacuums
/// it.)
fn mapped<T>(
    c: &mut Connection,
    read: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    c.pragma_update(None, "mmap_size", MAPPED_BYTES)?;
    let read = read(c);
    let unmapped = c.pragma_update(None, "mmap_size", 0);
    let read = read?;
    unmapped.context("unmapping the mirror's file")?;
    Ok(read)
}

/// [`kept_before`], in two halves from `split_from` versions.
fn kept(
    c: &mut Connection,
    path: &Path,
    at: i64,
    split_from: i64,
    keep: &(dyn Fn(&Assignment) -> bool + Sync),
) -> anyhow::Result<(HeldState, u64)> {
    let split = split(c, path, split_from, true)?;
    let Some((mut second, boundary)) = split else {
        return whole(c, at, keep);
    };
    // Moved to its thread (a connection is used by one thread at a time).
    let second_ref = &mut second;
    // Set by a half that fails, so that the other stops early.
    let failed = &AtomicBool::new(false);
    let boundary = boundary.as_str();
    let (from, below) = std::thread::scope(|scope| {
        let below = scope.spawn(move || part(second_ref, at, Part::Below(boundary), keep, failed));
        let from = part(c, at, Part::From(boundary), keep, failed);
        let below = below
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (from, below)
    });
    // The read transactions end however the read went: `c` is the
    // mirror's own connection, kept for its next use.
    let ended = c.execute_batch("COMMIT");
    drop(second);
    // A half that stopped for the other's failure has no error of its
    // own: the failure is the other's.
    let (from, below) = (from?, below?);
    ended.context("ending the read")?;
    let (Some((from, read_from)), Some((below, read_below))) = (from, below) else {
        anyhow::bail!("one half of the read stopped, and neither failed");
    };
    Ok((HeldState::merging(from, below), read_from + read_below))
}

/// [`part`] of the whole key, on this thread alone.
fn whole(
    c: &Connection,
    at: i64,
    keep: &(dyn Fn(&Assignment) -> bool + Sync),
) -> anyhow::Result<(HeldState, u64)> {
    let (kept, read) = part(c, at, Part::All, keep, &AtomicBool::new(false))?
        .ok_or_else(|| anyhow::anyhow!("the read stopped, and did not fail"))?;
    Ok((kept.into(), read))
}

/// The states of `which` that `keep` keeps, sorted, and how many were
/// read; `None` when it stopped because `failed` was set (by the other
/// half), which it sets when it fails.
fn part(
    c: &Connection,
    at: i64,
    which: Part<'_>,
    keep: &(dyn Fn(&Assignment) -> bool + Sync),
    failed: &AtomicBool,
) -> anyhow::Result<Option<(Vec<Assignment>, u64)>> {
    let mut kept = Vec::new();
    let mut read = 0;
    let mut stopped = false;
    let walked = walk(c, at, which, &mut |a| {
        if failed.load(Ordering::Relaxed) {
            stopped = true;
            anyhow::bail!("the other half failed");
        }
        read += 1;
        if keep(&a) {
            kept.push(a);
        }
        Ok(())
    });
    if stopped {
        return Ok(None);
    }
    if let Err(e) = walked {
        failed.store(true, Ordering::Relaxed);
        return Err(e);
    }
    sort_by_update(&mut kept);
    Ok(Some((kept, read)))
}

/// [`newest_before`], in two halves from `split_from` versions.
fn read(
    c: &mut Connection,
    path: &Path,
    at: i64,
    split_from: i64,
    each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let split = split(c, path, split_from, false)?;
    let Some((mut second, boundary)) = split else {
        return walk(c, at, Part::All, each);
    };
    let read = both_halves(c, &mut second, &boundary, at, each);
    // The read transactions end however the read went: `c` is the
    // mirror's own connection, kept for its next use.
    let ended = c.execute_batch("COMMIT");
    drop(second);
    read?;
    ended.context("ending the read")?;
    Ok(())
}

/// A second connection (`mapped`: reading through a map of the file, see
/// [`mapped`]) and the median id, both connections in a read transaction
/// of the same snapshot; `None` (nothing left open) when the mirror is
/// small or a commit came between the two transactions' starts.
fn split(
    c: &mut Connection,
    path: &Path,
    split_from: i64,
    mapped: bool,
) -> anyhow::Result<Option<(Connection, String)>> {
    c.execute_batch("BEGIN")?;
    let planned = (|| -> anyhow::Result<Option<(Connection, String)>> {
        let mine = marks(c)?;
        let Some(boundary) = boundary(c, path, mine, split_from)? else {
            return Ok(None);
        };
        let second = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening a second reader of {}", path.display()))?;
        second.busy_timeout(std::time::Duration::from_secs(30))?;
        if mapped {
            // Closed after the read: its map goes with it.
            second.pragma_update(None, "mmap_size", MAPPED_BYTES)?;
        }
        second.execute_batch("BEGIN")?;
        if marks(&second)? != mine {
            // A sync committed in between: one thread reads instead.
            return Ok(None);
        }
        Ok(Some((second, boundary)))
    })();
    match planned {
        Ok(Some(split)) => Ok(Some(split)),
        Ok(None) => {
            c.execute_batch("COMMIT")?;
            Ok(None)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e.context("planning a read in two halves"))
        }
    }
}

/// The last snapshot split, per process: its file, marks, versions and
/// median id.
struct Plan {
    path: std::path::PathBuf,
    marks: (i64, i64),
    versions: i64,
    median: Option<String>,
}

static LAST_PLAN: std::sync::Mutex<Option<Plan>> = std::sync::Mutex::new(None);

/// The median id of the snapshot `c` reads (its marks `marks`), when it
/// has at least `split_from` versions. Counting the versions and walking
/// half the key take about 65 ms at 1,500,000 versions: a later read of
/// the same snapshot (another job of the same fire, a trend's earlier
/// instants) takes them from the last plan, since the same marks are the
/// same versions. Whatever the boundary, the two halves cover every id
/// once: a plan that were wrong would cost balance, never a state.
fn boundary(
    c: &Connection,
    path: &Path,
    marks: (i64, i64),
    split_from: i64,
) -> rusqlite::Result<Option<String>> {
    let mut last = LAST_PLAN.lock().unwrap_or_else(|e| e.into_inner());
    let known = last.as_mut().filter(|p| p.path == path && p.marks == marks);
    let plan = match known {
        Some(plan) => plan,
        None => last.insert(Plan {
            path: path.to_path_buf(),
            marks,
            versions: c.query_row("SELECT COUNT(*) FROM mirror_versions", [], |r| r.get(0))?,
            median: None,
        }),
    };
    if plan.versions < split_from {
        return Ok(None);
    }
    if plan.median.is_none() {
        plan.median = Some(c.query_row(
            "SELECT id FROM mirror_versions NOT INDEXED ORDER BY id LIMIT 1 OFFSET ?1",
            [plan.versions / 2],
            |r| r.get(0),
        )?);
    }
    Ok(plan.median.clone())
}

/// What tells two snapshots of the mirror apart: every commit of a sync
/// (the only writer of `mirror_versions`) marks its own row succeeded in
/// the same transaction, and rows are never removed, so two snapshots with
/// the same marks have the same versions.
fn marks(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(outcome = 'succeeded'), 0) FROM mirror_syncs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Reads the two halves of the key on two threads, handing `each` their
/// states, batch by batch, on this one.
fn both_halves(
    c: &mut Connection,
    second: &mut Connection,
    boundary: &str,
    at: i64,
    each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Vec<Assignment>>>(2 * IN_FLIGHT);
        let readers = [
            (c, Part::From(boundary), tx.clone()),
            (second, Part::Below(boundary), tx),
        ]
        .map(|(conn, part, tx)| scope.spawn(move || batches(conn, at, part, &tx)));
        let mut handed = Ok(());
        for batch in rx.iter() {
            handed = batch.and_then(|batch| batch.into_iter().try_for_each(&mut *each));
            if handed.is_err() {
                break;
            }
        }
        // A reader blocked on a full channel sees it closed and stops.
        drop(rx);
        for reader in readers {
            if let Err(panic) = reader.join() {
                std::panic::resume_unwind(panic);
            }
        }
        handed
    })
}

/// [`walk`] of `part`, sent on in batches; stops when nobody receives.
fn batches(
    c: &mut Connection,
    at: i64,
    part: Part<'_>,
    tx: &mpsc::SyncSender<anyhow::Result<Vec<Assignment>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let read = walk(c, at, part, &mut |a| {
        batch.push(a);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            tx.send(Ok(full))
                .map_err(|_| anyhow::anyhow!("the reader of the other half stopped"))?;
        }
        Ok(())
    });
    // Unsent when the receiver is gone; the receiver then has its own error.
    let _ = match read {
        Ok(()) => tx.send(Ok(batch)),
        Err(e) => tx.send(Err(e)),
    };
}

/// Each id's newest version before `at` among the ids of `part`: the
/// primary key walked backwards, so each id's versions come newest first;
/// the first before `at` is its state, and the others are passed over on
/// their id alone, never built. Several times cheaper than SQLite's
/// `GROUP BY` with `MAX`, which copies every column of each newer version.
fn walk(
    c: &Connection,
    at: i64,
    part: Part<'_>,
    each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (range, boundary) = match part {
        Part::All => ("", None),
        Part::From(b) => ("AND id >= ?2", Some(b)),
        Part::Below(b) => ("AND id < ?2", Some(b)),
    };
    let mut q = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mirror_versions NOT INDEXED WHERE updated_at < ?1 {range}
         ORDER BY id DESC, updated_at DESC"
    ))?;
    let mut rows = match boundary {
        None => q.query([at])?,
        Some(b) => q.query(rusqlite::params![at, b])?,
    };
    let mut last: Vec<u8> = Vec::new();
    let mut shared = Shared::default();
    while let Some(r) = rows.next()? {
        let id = r.get_ref(0)?.as_bytes()?;
        if id == last.as_slice() {
            continue;
        }
        last.clear();
        last.extend_from_slice(id);
        each(version(r, &mut shared)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{Lists, MirrorStore as _, Reach, SqliteMirror, SyncStats};
    use chrono::{DateTime, Duration, TimeZone, Utc};

    const STATUSES: [&str; 3] = ["notStarted", "inProgress", "completed"];

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    /// Ids `a-0000`..: each with one to three versions an hour apart.
    fn mirror(dir: &Path, ids: usize) -> SqliteMirror {
        let mirror = SqliteMirror::open(dir).unwrap();
        let page: Vec<Assignment> = (0..ids)
            .flat_map(|i| {
                (0..=i % 3).map(move |v| {
                    let status = STATUSES[v];
                    let at = t0() + Duration::minutes(i as i64) + Duration::hours(v as i64);
                    serde_json::from_value(serde_json::json!({
                        "id": format!("a-{i:04}"),
                        "course": {"id": "c"},
                        "learner": {"id": "1", "type": "driver"},
                        "status": status,
                        "createdAtTime": t0().to_rfc3339(),
                        "updatedAtTime": at.to_rfc3339(),
                        "durationMinutes": v,
                    }))
                    .unwrap()
                })
            })
            .collect();
        sync(&mirror, t0() + Duration::days(1), &page);
        mirror
    }

    /// One sync of `m` from `t0()` to `end` that stages `page` and commits.
    fn sync(m: &SqliteMirror, end: DateTime<Utc>, page: &[Assignment]) {
        let sync = m.begin_sync(t0(), end, end).unwrap();
        if !page.is_empty() {
            m.stage(sync, page).unwrap();
        }
        let reach = Reach { since: t0(), end };
        m.commit(
            sync,
            reach,
            &Lists::default(),
            &SyncStats::default(),
            false,
            end,
        )
        .unwrap();
    }

    /// The states `read` hands on, as (id, updated, status), sorted.
    fn states(m: &SqliteMirror, at: DateTime<Utc>, split_from: i64) -> Vec<(String, i64, String)> {
        let mut c = m.conn.lock().unwrap();
        let mut out = Vec::new();
        let at = at.timestamp_nanos_opt().unwrap();
        read(&mut c, &m.path, at, split_from, &mut |a| {
            let updated = a.updated_at_time.timestamp_nanos_opt().unwrap();
            out.push((a.id.to_string(), updated, a.status.as_str().to_owned()));
            Ok(())
        })
        .unwrap();
        out.sort();
        out
    }

    /// The second computation of `mirror(_, ids)`'s state `minutes` after
    /// `t0()`: the newest version before it, per id, in id order.
    fn expected(ids: usize, minutes: i64) -> Vec<(String, i64, String)> {
        (0..ids)
            .filter_map(|i| {
                let v = (0..=i % 3)
                    .rev()
                    .find(|&v| (i + 60 * v) < minutes as usize)?;
                let updated = t0() + Duration::minutes(i as i64) + Duration::hours(v as i64);
                Some((
                    format!("a-{i:04}"),
                    updated.timestamp_nanos_opt().unwrap(),
                    STATUSES[v].to_owned(),
                ))
            })
            .collect()
    }

    /// What `kept` keeps of the states that are not in progress, as
    /// (id, updated, status) in its order, and how many it read.
    #[allow(clippy::type_complexity)]
    fn kept_not_in_progress(
        m: &SqliteMirror,
        at: DateTime<Utc>,
        split_from: i64,
    ) -> anyhow::Result<(Vec<(String, i64, String)>, u64)> {
        let mut c = m.conn.lock().unwrap();
        let at = at.timestamp_nanos_opt().unwrap();
        let (kept, read) = kept(&mut c, &m.path, at, split_from, &|a| {
            a.status.as_str() != "inProgress"
        })?;
        let kept = kept
            .iter()
            .map(|a| {
                let updated = a.updated_at_time.timestamp_nanos_opt().unwrap();
                (a.id.to_string(), updated, a.status.as_str().to_owned())
            })
            .collect();
        Ok((kept, read))
    }

    #[test]
    fn a_half_that_fails_fails_the_kept_read_and_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let ids = 5_000;
        let m = mirror(dir.path(), ids);
        let end = t0() + Duration::days(10);
        // A version no state can be built from, in the lower half, then in the upper.
        for (id, other) in [("a-0100", "a-4900"), ("a-4900", "a-0100")] {
            m.conn
                .lock()
                .unwrap()
                .execute_batch(&format!(
                    "UPDATE mirror_versions SET duration_minutes = 'many' WHERE id = '{id}';
                     UPDATE mirror_versions SET duration_minutes = 1 WHERE id = '{other}';"
                ))
                .unwrap();
            let err = kept_not_in_progress(&m, end, 1).unwrap_err();
            assert!(format!("{err:#}").contains("duration_minutes"), "{err:#}");
        }
        m.conn
            .lock()
            .unwrap()
            .execute_batch("UPDATE mirror_versions SET duration_minutes = 1 WHERE id = 'a-4900'")
            .unwrap();
        // No read transaction left open: the next sync commits and is read.
        sync(&m, end, &[]);
        assert_eq!(kept_not_in_progress(&m, end, 1).unwrap().1, ids as u64);
    }

    /// Whether this process maps `path` now.
    #[cfg(target_os = "linux")]
    fn maps(path: &Path) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = path.to_str().unwrap();
        maps.lines().any(|l| l.ends_with(path))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_held_read_maps_the_mirrors_file_and_leaves_no_map_behind() {
        let dir = tempfile::tempdir().unwrap();
        let m = mirror(dir.path(), 2_000);
        let path = m.path.clone();
        let end = t0() + Duration::days(10);
        // Into the file, as a large sync's commit moves it: what is still
        // in the WAL is read from there, which is never mapped.
        m.conn
            .lock()
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        assert!(!maps(&path), "not mapped before a read");
        for split_from in [1, i64::MAX] {
            let mut c = m.conn.lock().unwrap();
            let at = end.timestamp_nanos_opt().unwrap();
            let mapped_while_reading = std::sync::atomic::AtomicBool::new(false);
            let (kept, _) = mapped(&mut c, |c| {
                kept(c, &path, at, split_from, &|_| {
                    if maps(&path) {
                        mapped_while_reading.store(true, Ordering::Relaxed);
                    }
                    true
                })
            })
            .unwrap();
            assert_eq!(kept.len(), 2_000);
            assert!(mapped_while_reading.into_inner(), "read through a map");
            assert!(!maps(&path), "no map left after the read");
        }
        // Through the mirror's own read, as a run reads.
        m.state_kept(end, &|_| true).unwrap();
        assert!(!maps(&path), "no map left after state_kept");
        // A read handed on row by row maps nothing: its memory stays
        // small. As a run reads it, and in two halves.
        let mut mapped_while_reading = false;
        m.state_each(end, &mut |_| {
            mapped_while_reading |= maps(&path);
            Ok(())
        })
        .unwrap();
        let mut c = m.conn.lock().unwrap();
        let at = end.timestamp_nanos_opt().unwrap();
        read(&mut c, &path, at, 1, &mut |_| {
            mapped_while_reading |= maps(&path);
            Ok(())
        })
        .unwrap();
        assert!(!mapped_while_reading, "a state handed on is read unmapped");
    }

    #[test]
    fn two_halves_hand_on_or_keep_each_ids_newest_version_before_the_instant_once() {
        let dir = tempfile::tempdir().unwrap();
        let ids = 1_000;
        let m = mirror(dir.path(), ids);
        // Before, inside and after the ids' versions.
        for minutes in [30, 500, 700, 5_000] {
            let at = t0() + Duration::minutes(minutes);
            let expect = expected(ids, minutes);
            assert_eq!(states(&m, at, 1), expect, "in two halves, as of {at}");
            assert_eq!(
                states(&m, at, i64::MAX),
                expect,
                "on one thread, as of {at}"
            );

            // Kept: those not in progress, in update order.
            let read = expect.len() as u64;
            let mut kept: Vec<_> = expect
                .into_iter()
                .filter(|(_, _, status)| status != "inProgress")
                .collect();
            kept.sort_by(|(a, x, _), (b, y, _)| (x, a).cmp(&(y, b)));
            let halves = kept_not_in_progress(&m, at, 1).unwrap();
            assert_eq!(
                halves,
                (kept.clone(), read),
                "kept in two halves, as of {at}"
            );
            let one = kept_not_in_progress(&m, at, i64::MAX).unwrap();
            assert_eq!(one, (kept, read), "kept on one thread, as of {at}");
        }
    }

    #[test]
    fn an_error_in_two_halves_stops_the_read_and_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let m = mirror(dir.path(), 5_000);
        let at = (t0() + Duration::days(10)).timestamp_nanos_opt().unwrap();
        {
            let mut c = m.conn.lock().unwrap();
            let mut handed = 0;
            let err = read(&mut c, &m.path, at, 1, &mut |_| {
                handed += 1;
                anyhow::ensure!(handed < 1_500, "the caller gave up");
                Ok(())
            })
            .unwrap_err();
            assert_eq!(handed, 1_500, "nothing handed on after the error");
            assert!(format!("{err:#}").contains("the caller gave up"), "{err:#}");
        }
        // No read transaction left open: the mirror's own connection
        // commits the next sync, and reads it.
        let end = t0() + Duration::days(10);
        sync(&m, end, &[]);
        assert_eq!(states(&m, end, 1).len(), 5_000);
    }

    #[test]
    fn a_sync_committed_between_two_read_transactions_changes_the_marks() {
        let dir = tempfile::tempdir().unwrap();
        let m = mirror(dir.path(), 200);
        let c = m.conn.lock().unwrap();
        c.execute_batch("BEGIN").unwrap();
        let first = marks(&c).unwrap();
        let reader = || {
            let second =
                Connection::open_with_flags(&m.path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            second.execute_batch("BEGIN").unwrap();
            second
        };
        assert_eq!(
            marks(&reader()).unwrap(),
            first,
            "nothing committed: the same"
        );
        // Another process's sync commits while `c`'s snapshot stays open.
        let other = SqliteMirror::open(dir.path()).unwrap();
        sync(&other, t0() + Duration::days(2), &[]);
        assert_ne!(
            marks(&reader()).unwrap(),
            first,
            "a commit in between: told apart"
        );
        assert_eq!(marks(&c).unwrap(), first, "the first snapshot unchanged");
        c.execute_batch("COMMIT").unwrap();
    }
}
