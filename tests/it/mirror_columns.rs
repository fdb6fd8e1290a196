//! Every column of a version comes back from the SQLite mirror exactly as
//! it was staged, whichever way it went in (a first sync's load table, a
//! later sync's staging) and wherever it sat in a multi-row insert (a full
//! statement of many versions, or one of the versions left over after them):
//! unknown statuses, empty and non-ASCII text, absent values, the extreme
//! instants and numbers the columns can hold.

use chrono::{DateTime, Duration, TimeZone, Utc};
use trainwatch::learner::LearnerId;
use trainwatch::mirror::{Lists, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::samsara::{Assignment, CourseRef, Status};

/// More than two full multi-row statements and a remainder, in one page.
const PER_SYNC: usize = 2 * 64 + 37;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

/// The latest instant the mirror holds (nanoseconds in an `i64`).
fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::MAX)
}

/// The earliest.
fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::MIN)
}

/// Version `i` of sync `round`: each column cycles through odd values on
/// its own period, so neighbours in one statement differ in every column.
fn version(round: usize, i: usize) -> Assignment {
    let texts = [
        "plain",
        "",
        "Zoë Ångström ñ 東京 🚚",
        "quote \" and ' and \\ and ; DROP TABLE x; --",
        "tab\tnewline\nnul-free",
        "?1 ?17 ?18 :name @x $y",
    ];
    let text = |k: usize| texts[k % texts.len()].to_string();
    let instants = [
        latest(),
        earliest(),
        DateTime::from_timestamp_nanos(0),
        DateTime::from_timestamp_nanos(-1),
        t0() + Duration::nanoseconds(123_456_789),
    ];
    let instant = |k: usize| instants[k % instants.len()];
    let maybe = |k: usize| (!k.is_multiple_of(3)).then(|| instant(k));
    let statuses = [
        Status::NotStarted,
        Status::InProgress,
        Status::Completed,
        Status::Other("someNewStatus".into()),
        Status::Other(String::new()),
        Status::Other("ÉTAT-inconnu ✓".into()),
    ];
    let minutes = [0, -1, i64::MAX, i64::MIN, 42];
    let scores = [
        Some(0.0),
        None,
        Some(99.999_999_999_9),
        Some(f64::MAX),
        Some(f64::MIN_POSITIVE),
        Some(-12.5),
    ];
    let flags = [None, Some(true), Some(false), Some(true)];
    Assignment {
        id: format!("{}-{round}-{i:03}", text(i)).into(),
        course: CourseRef {
            id: text(i + 1).into(),
            revision_id: (!i.is_multiple_of(4)).then(|| text(i + 2).into()),
        },
        learner: LearnerId::from_canonical(format!("driver-{}", text(i + 3))),
        status: statuses[i % statuses.len()].clone(),
        // Never the latest instant: every version sorts before a read's end.
        created_at_time: instant(i + 2),
        updated_at_time: t0() + Duration::nanoseconds((i * 1_000_003) as i64)
            - Duration::days(40_000 * (i % 2) as i64),
        duration_minutes: minutes[i % minutes.len()],
        created_by_id: (i % 5 != 1).then(|| text(i + 4).into()),
        updated_by_id: (i.is_multiple_of(2)).then(|| text(i + 5).into()),
        due_at_time: maybe(i),
        started_at_time: maybe(i + 1),
        completed_at_time: maybe(i + 2),
        deleted_at_time: maybe(i + 4),
        is_overdue: flags[i % flags.len()],
        is_completed_late: flags[(i + 1) % flags.len()],
        score_percent: scores[i % scores.len()],
    }
}

fn sync(mirror: &SqliteMirror, start: DateTime<Utc>, all: &[Assignment]) {
    let sync = mirror.begin_sync(start, t0(), t0()).unwrap();
    mirror.stage(sync, all).unwrap();
    let stats = SyncStats {
        versions: all.len() as u64,
        ..SyncStats::default()
    };
    let reach = Reach {
        since: earliest(),
        end: t0(),
    };
    let new = mirror
        .commit(sync, reach, &Lists::default(), &stats, false, t0())
        .unwrap();
    assert_eq!(new, all.len() as u64);
}

/// Everything the mirror holds, in the order reads give it.
fn held(mirror: &SqliteMirror) -> Vec<Assignment> {
    mirror.versions_in(earliest(), latest()).unwrap()
}

fn sorted(mut v: Vec<Assignment>) -> Vec<Assignment> {
    v.sort_by(|a, b| (a.updated_at_time, &a.id).cmp(&(b.updated_at_time, &b.id)));
    v
}

#[test]
fn every_column_round_trips_through_both_ways_in() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = SqliteMirror::open(dir.path()).unwrap();
    // A first sync: the load table, renamed in.
    let first: Vec<Assignment> = (0..PER_SYNC).map(|i| version(1, i)).collect();
    sync(&mirror, earliest(), &first);
    assert_eq!(held(&mirror), sorted(first.clone()));
    // A later sync (it starts after the mirror's start): staging, copied in.
    let second: Vec<Assignment> = (0..PER_SYNC).map(|i| version(2, i)).collect();
    sync(&mirror, earliest() + Duration::days(1), &second);
    let both: Vec<Assignment> = first.into_iter().chain(second).collect();
    assert_eq!(held(&mirror), sorted(both));
}
