//! A large commit into the SQLite mirror (a first sync, a rebuild) takes
//! the bulk path: the secondary indexes are dropped and built again inside
//! the commit's transaction. The mirror must answer exactly as one filled by
//! small commits, keep the first received of exact repeats, and keep its
//! indexes as they were.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use trainwatch::mirror::{Lists, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::samsara::Assignment;

/// More than any commit threshold: the bulk path is taken.
const ASSIGNMENTS: usize = 30_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

/// Two versions per assignment, then an exact repeat of some `(id,
/// updatedAtTime)` with another status, received later (must be ignored).
fn versions() -> Vec<Assignment> {
    let mut out = Vec::new();
    for i in 0..ASSIGNMENTS {
        let created = t0() + Duration::seconds((i as i64 * 7919) % (300 * 86_400));
        let later = created + Duration::days((i % 40) as i64 + 1);
        for (updated, status) in [(created, "notStarted"), (later, "completed")] {
            out.push(version(i, created, updated, status));
        }
    }
    for i in (0..ASSIGNMENTS).step_by(97) {
        let created = t0() + Duration::seconds((i as i64 * 7919) % (300 * 86_400));
        out.push(version(i, created, created, "inProgress"));
    }
    out
}

fn version(i: usize, created: DateTime<Utc>, updated: DateTime<Utc>, status: &str) -> Assignment {
    serde_json::from_value(json!({
        "id": format!("a-{i:06}"),
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

/// Stages `all` in pages of `commit_every` versions, each page its own sync.
fn fill(mirror: &SqliteMirror, all: &[Assignment], commit_every: usize, replace: bool) {
    let end = t0() + Duration::days(400);
    for chunk in all.chunks(commit_every) {
        let sync = mirror.begin_sync(t0(), end, end).unwrap();
        for page in chunk.chunks(100) {
            mirror.stage(sync, page).unwrap();
        }
        let stats = SyncStats {
            versions: chunk.len() as u64,
            ..SyncStats::default()
        };
        let reach = Reach { since: t0(), end };
        mirror
            .commit(sync, reach, &Lists::default(), &stats, replace, end)
            .unwrap();
    }
}

#[test]
fn a_bulk_commit_answers_as_small_commits_do_and_keeps_its_indexes() {
    let all = versions();
    let (bulk_dir, small_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bulk = SqliteMirror::open(bulk_dir.path()).unwrap();
    let small = SqliteMirror::open(small_dir.path()).unwrap();
    let before = indexes(bulk_dir.path());
    assert!(before.len() >= 2, "the window indexes exist: {before:?}");

    fill(&bulk, &all, all.len(), false);
    fill(&small, &all, 1_000, false);
    assert_eq!(indexes(bulk_dir.path()), before, "the same indexes after");
    let (b, s) = (bulk.status().unwrap(), small.status().unwrap());
    assert_eq!(
        b.versions,
        2 * ASSIGNMENTS as u64,
        "exact repeats stored once"
    );
    assert_eq!((b.versions, b.assignments), (s.versions, s.assignments));

    for days in [0, 3, 45, 150, 299, 340] {
        let at = t0() + Duration::days(days) + Duration::hours(5);
        let state = bulk.state_at(at).unwrap();
        assert_eq!(state, small.state_at(at).unwrap(), "state as of {at}");
        assert!(
            state.iter().all(|a| a.status.as_str() != "inProgress"),
            "the first received of an exact repeat is kept"
        );
        let window = (at, at + Duration::days(30));
        let got = bulk.versions_in(window.0, window.1).unwrap();
        assert_eq!(got, small.versions_in(window.0, window.1).unwrap());
        let by_hand = all
            .iter()
            .filter(|a| a.status.as_str() != "inProgress")
            .filter(|a| {
                let inside = |t| t >= window.0 && t < window.1;
                inside(a.updated_at_time) || inside(a.created_at_time)
            })
            .count();
        assert_eq!(
            got.len(),
            by_hand,
            "versions in [{}, {})",
            window.0,
            window.1
        );
    }

    // A rebuild (everything again, replacing) takes the same path.
    // Without the first 1,000 assignments: what it no longer has is gone.
    let rest = &all[2_000..];
    fill(&bulk, rest, all.len(), true);
    assert_eq!(indexes(bulk_dir.path()), before);
    let distinct: std::collections::BTreeSet<_> = rest
        .iter()
        .map(|a| (a.id.clone(), a.updated_at_time))
        .collect();
    assert_eq!(bulk.status().unwrap().versions, distinct.len() as u64);
    let ids: std::collections::BTreeSet<_> = distinct.iter().map(|(id, _)| id.clone()).collect();
    let state = bulk.state_at(t0() + Duration::days(400)).unwrap();
    assert_eq!(
        state.len(),
        ids.len(),
        "what the rebuild did not read is gone"
    );
}
