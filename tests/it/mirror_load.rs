//! A sync that reads everything again (a first sync, a rebuild) stages
//! into a load table that its commit renames into the mirror's place. That
//! path must keep the mirror's guarantees: until the commit, and after a
//! failed or killed sync, the mirror answers exactly as before; what it
//! leaves behind is dropped; and its result equals the staging path's.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use trainwatch::mirror::{Lists, MirrorStatus, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::samsara::Assignment;

const ASSIGNMENTS: usize = 3_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn end() -> DateTime<Utc> {
    t0() + Duration::days(400)
}

/// Two versions per assignment (the second `shift` later than otherwise),
/// in random-looking id order, and a later exact repeat of some `(id,
/// updatedAtTime)` with another status.
fn versions(status_of_second: &str, shift: Duration) -> Vec<Assignment> {
    let mut out = Vec::new();
    for k in 0..ASSIGNMENTS {
        let i = (k * 7919) % ASSIGNMENTS;
        let created = t0() + Duration::seconds((i as i64 * 104_729) % (300 * 86_400));
        let later = created + Duration::days((i % 40) as i64 + 1) + shift;
        out.push(version(i, created, created, "notStarted"));
        out.push(version(i, created, later, status_of_second));
    }
    for i in (0..ASSIGNMENTS).step_by(97) {
        let created = t0() + Duration::seconds((i as i64 * 104_729) % (300 * 86_400));
        out.push(version(i, created, created, "inProgress"));
    }
    out
}

fn version(i: usize, created: DateTime<Utc>, updated: DateTime<Utc>, status: &str) -> Assignment {
    serde_json::from_value(json!({
        "id": format!("{:08x}-b", (i as u64).wrapping_mul(2_654_435_761) % (1 << 32)),
        "course": {"id": format!("c{}", i % 7)},
        "learner": {"id": (i % 300).to_string(), "type": "driver"},
        "status": status,
        "createdAtTime": created.to_rfc3339(),
        "updatedAtTime": updated.to_rfc3339(),
        "durationMinutes": i % 50,
        "dueAtTime": (created + Duration::days(20)).to_rfc3339(),
    }))
    .unwrap()
}

/// Begins a sync of `[start, end)` and stages `all` in pages of 100.
fn stage(mirror: &SqliteMirror, start: DateTime<Utc>, all: &[Assignment]) -> i64 {
    let sync = mirror.begin_sync(start, end(), end()).unwrap();
    for page in all.chunks(100) {
        mirror.stage(sync, page).unwrap();
    }
    sync
}

fn commit(mirror: &SqliteMirror, sync: i64, n: usize, replace: bool) -> u64 {
    let stats = SyncStats {
        versions: n as u64,
        ..SyncStats::default()
    };
    let reach = Reach {
        since: t0(),
        end: end(),
    };
    mirror
        .commit(sync, reach, &Lists::default(), &stats, replace, end())
        .unwrap()
}

/// Everything a reader can ask, at a few instants and windows.
fn answers(mirror: &SqliteMirror) -> (Vec<Vec<Assignment>>, u64, u64) {
    let mut out = Vec::new();
    for days in [0, 3, 45, 150, 299, 340, 400] {
        let at = t0() + Duration::days(days) + Duration::hours(5);
        out.push(mirror.state_at(at).unwrap());
        out.push(mirror.versions_in(at, at + Duration::days(30)).unwrap());
    }
    let MirrorStatus {
        versions,
        assignments,
        ..
    } = mirror.status().unwrap();
    (out, versions, assignments)
}

fn tables(dir: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(dir.join("trainwatch.db")).unwrap();
    let mut q = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn indexes(dir: &std::path::Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(dir.join("trainwatch.db")).unwrap();
    let mut q = c
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mirror_versions'
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_first_sync_renamed_in_answers_as_the_staging_path_does() {
    let all = versions("completed", Duration::zero());
    let (load_dir, staged_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let load = SqliteMirror::open(load_dir.path()).unwrap();
    let staged = SqliteMirror::open(staged_dir.path()).unwrap();
    let (tables_before, indexes_before) = (tables(load_dir.path()), indexes(load_dir.path()));

    // One first sync (the load path), against one version at a time
    // committed by syncs that start after the reach's start (the staging path).
    let sync = stage(&load, t0(), &all);
    assert_eq!(
        commit(&load, sync, all.len(), false),
        2 * ASSIGNMENTS as u64
    );
    for (n, v) in all.iter().enumerate() {
        let start = if n == 0 {
            t0()
        } else {
            t0() + Duration::days(1)
        };
        let sync = stage(&staged, start, std::slice::from_ref(v));
        commit(&staged, sync, 1, false);
    }
    let got = answers(&load);
    assert_eq!(got, answers(&staged));
    assert_eq!(got.1, 2 * ASSIGNMENTS as u64, "exact repeats stored once");
    assert!(
        got.0
            .iter()
            .flatten()
            .all(|a| a.status.as_str() != "inProgress"),
        "the first received of an exact repeat is kept"
    );
    assert_eq!(tables(load_dir.path()), tables_before, "no table left over");
    assert_eq!(indexes(load_dir.path()), indexes_before, "the same indexes");
}

#[test]
fn a_rebuild_that_fails_or_is_killed_after_staging_leaves_the_mirror_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = SqliteMirror::open(dir.path()).unwrap();
    let first = versions("completed", Duration::zero());
    let sync = stage(&mirror, t0(), &first);
    commit(&mirror, sync, first.len(), false);
    let before = answers(&mirror);
    let tables_before = tables(dir.path());

    // A rebuild with other data, staged whole: nothing of it shows.
    let other = versions("canceled", Duration::hours(1));
    let sync = stage(&mirror, t0(), &other);
    assert!(
        tables(dir.path()).len() > tables_before.len(),
        "the rebuild stages into a load table"
    );
    assert_eq!(answers(&mirror), before, "staged, not committed");
    // It fails: still the old mirror, and the next sync drops what it left.
    mirror
        .fail(sync, "the stream broke", &SyncStats::default(), end())
        .unwrap();
    assert_eq!(answers(&mirror), before, "failed");

    // Another is killed after staging (the process ends without a word).
    let sync = stage(&mirror, t0(), &other);
    drop(mirror);
    let mirror = SqliteMirror::open(dir.path()).unwrap();
    assert_eq!(answers(&mirror), before, "killed");
    assert!(mirror.reach().unwrap().is_some());

    // The next rebuild completes: the other data, and nothing left over.
    let next = stage(&mirror, t0(), &other);
    assert!(next > sync);
    commit(&mirror, next, other.len(), true);
    let after = answers(&mirror);
    assert_ne!(after, before);
    assert!(
        after
            .0
            .iter()
            .flatten()
            .all(|a| a.status.as_str() != "completed"),
        "the rebuild replaced the old versions"
    );
    assert_eq!(after.1, 2 * ASSIGNMENTS as u64);
    assert_eq!(tables(dir.path()), tables_before, "no table left over");

    // A sync over the same range that does not replace keeps both.
    let sync = stage(&mirror, t0(), &first);
    assert_eq!(
        commit(&mirror, sync, first.len(), false),
        ASSIGNMENTS as u64
    );
    assert_eq!(mirror.status().unwrap().versions, 3 * ASSIGNMENTS as u64);
    assert_eq!(tables(dir.path()), tables_before, "no table left over");
}
