//! The rollup checked number by number against a second, deliberately simple
//! computation over the same generated records: duplicates, deletions,
//! unknown statuses, window and due-date boundaries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use trainwatch::learner::LearnerId;
use trainwatch::report::{self, JobInfo, Meta, Report};
use trainwatch::samsara::{Assignment, Category, Course, CourseRef, Dedup, Names, Status};
use trainwatch::window::Window;

/// A tiny deterministic generator (no shared state between tests).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 5, 0, 0).unwrap()
}
fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap()
}

fn base(
    id: &str,
    learner: u64,
    course: &str,
    status: Status,
    updated: DateTime<Utc>,
) -> Assignment {
    Assignment {
        id: id.into(),
        course: CourseRef {
            id: course.into(),
            revision_id: None,
        },
        learner: LearnerId::from_wire(&learner.to_string(), "driver"),
        status,
        created_at_time: updated - Duration::days(3),
        updated_at_time: updated,
        duration_minutes: 0,
        created_by_id: None,
        updated_by_id: None,
        due_at_time: None,
        started_at_time: None,
        completed_at_time: None,
        deleted_at_time: None,
        is_overdue: None,
        is_completed_late: None,
        score_percent: None,
    }
}

/// Raw records as the stream might send them: with older versions of some
/// assignments, deleted ones, unknown statuses, and timestamps on every
/// boundary that matters.
fn generate(seed: u64, n: usize) -> Vec<Assignment> {
    let mut r = Lcg(seed);
    let statuses = [
        Status::NotStarted,
        Status::InProgress,
        Status::Completed,
        Status::Other("expired".into()),
        Status::Other("waived".into()),
    ];
    let span = (end() - start()).num_seconds() as u64;
    let mut out = Vec::new();
    for i in 0..n {
        let updated = match r.next(10) {
            0 => start(),                        // exactly at the start: in
            1 => end(),                          // exactly at the end: out (unless created inside)
            2 => end() + Duration::seconds(5),   // after the window
            3 => start() - Duration::seconds(1), // before the window
            _ => start() + Duration::seconds(r.next(span) as i64),
        };
        let mut a = base(
            &format!("a{}", r.next(n as u64 * 2 / 3 + 1)), // ids repeat: duplicates
            1000 + r.next(40),
            &format!("c{}", r.next(9)),
            statuses[r.next(5) as usize].clone(),
            updated,
        );
        if r.next(4) == 0 {
            a.created_at_time = a.updated_at_time; // created in the same instant
        }
        a.due_at_time = match r.next(6) {
            0 => None,
            1 => Some(end()), // due exactly at the end: not overdue
            2 => Some(end() - Duration::milliseconds(1)), // just overdue: 0 days
            _ => Some(end() - Duration::hours(r.next(24 * 60) as i64) + Duration::hours(24 * 10)),
        };
        if a.status == Status::Completed {
            a.completed_at_time = Some(a.updated_at_time);
            if r.next(3) == 0 {
                a.completed_at_time = None;
                a.is_completed_late = Some(r.next(2) == 0);
            }
        }
        if matches!(a.status, Status::Other(_)) {
            a.is_overdue = Some(r.next(2) == 0);
        }
        if r.next(12) == 0 {
            a.deleted_at_time = Some(a.updated_at_time);
        }
        if r.next(3) > 0 {
            a.score_percent = Some(r.next(101) as f64 / 100.0);
        }
        a.duration_minutes = r.next(120) as i64;
        out.push(a);
        let _ = i;
    }
    out
}

fn names() -> Names {
    let mut names = Names::default();
    for i in 0..7 {
        // c7 and c8 are unknown: their titles fall back to ids.
        let category = (i % 3 != 2).then(|| Category {
            id: format!("k{}", i % 2),
            name: format!("Cat {}", i % 2),
        });
        names.courses.insert(
            format!("c{i}"),
            Course {
                id: format!("c{i}"),
                title: format!("Course {i}"),
                status: None,
                category,
                estimated_time_to_complete_minutes: None,
            },
        );
    }
    for l in 1000..1030 {
        names.learners.insert(
            LearnerId::from_wire(&l.to_string(), "driver"),
            format!("Learner {l}"),
        );
    }
    names
}

fn meta(include_deleted: bool) -> Meta {
    Meta {
        job: JobInfo {
            name: "t".into(),
            schedule: "0 8 * * *".into(),
            timezone: "America/Chicago".into(),
        },
        window: Window {
            start: start(),
            end: end(),
        },
        kind: "fixed",
        timezone: chrono_tz::America::Chicago,
        generated_at: end(),
        team: None,
        include_deleted,
    }
}

fn rollup(raw: &[Assignment], include_deleted: bool) -> Report {
    let mut dedup = Dedup::default();
    raw.iter().cloned().for_each(|a| dedup.insert(a));
    let kept = dedup.into_sorted();
    report::build(&kept, &meta(include_deleted), &names())
}

// ---- the reference: plain loops, one question at a time -------------------

/// The latest version of each id (a later record wins a tie).
fn reference_latest(raw: &[Assignment]) -> Vec<Assignment> {
    let mut latest: BTreeMap<String, Assignment> = BTreeMap::new();
    for a in raw {
        let replace = match latest.get(&*a.id) {
            None => true,
            Some(old) => a.updated_at_time >= old.updated_at_time,
        };
        if replace {
            latest.insert(a.id.to_string(), a.clone());
        }
    }
    latest.into_values().collect()
}

fn reference_in_report(raw: &[Assignment], include_deleted: bool) -> Vec<Assignment> {
    reference_latest(raw)
        .into_iter()
        .filter(|a| {
            let inside = |t: DateTime<Utc>| t >= start() && t < end();
            inside(a.created_at_time) || inside(a.updated_at_time)
        })
        .filter(|a| include_deleted || a.deleted_at_time.is_none())
        .collect()
}

fn reference_overdue(a: &Assignment) -> bool {
    if a.status == Status::NotStarted || a.status == Status::InProgress {
        match a.due_at_time {
            Some(due) => due < end(),
            None => false,
        }
    } else if a.status == Status::Completed {
        false
    } else {
        a.is_overdue == Some(true)
    }
}

fn reference_late(a: &Assignment) -> bool {
    if a.status != Status::Completed {
        return false;
    }
    if let (Some(done), Some(due)) = (a.completed_at_time, a.due_at_time) {
        done > due
    } else {
        a.is_completed_late == Some(true)
    }
}

fn count(list: &[&Assignment], f: impl Fn(&Assignment) -> bool) -> u64 {
    list.iter().filter(|a| f(a)).count() as u64
}

fn check_against_reference(raw: &[Assignment], include_deleted: bool) {
    let report = rollup(raw, include_deleted);
    let all = reference_in_report(raw, include_deleted);
    let all_refs: Vec<&Assignment> = all.iter().collect();

    // Totals.
    let t = &report.totals;
    assert_eq!(t.assignments, all.len() as u64);
    assert_eq!(
        t.learners,
        all.iter()
            .map(|a| &a.learner)
            .collect::<BTreeSet<_>>()
            .len() as u64
    );
    assert_eq!(
        t.not_started,
        count(&all_refs, |a| a.status == Status::NotStarted)
    );
    assert_eq!(
        t.in_progress,
        count(&all_refs, |a| a.status == Status::InProgress)
    );
    assert_eq!(
        t.completed,
        count(&all_refs, |a| a.status == Status::Completed)
    );
    assert_eq!(
        t.other,
        count(&all_refs, |a| matches!(a.status, Status::Other(_)))
    );
    assert_eq!(t.overdue, count(&all_refs, reference_overdue));
    assert_eq!(t.completed_late, count(&all_refs, reference_late));
    assert_eq!(t.deleted, count(&all_refs, |a| a.deleted_at_time.is_some()));
    let expected_rate = if all.is_empty() {
        None
    } else {
        Some(t.completed as f64 / all.len() as f64)
    };
    assert_eq!(t.completion_rate, expected_rate);
    assert_eq!(
        t.not_started + t.in_progress + t.completed + t.other,
        t.assignments
    );

    // Unknown statuses are counted under their own names.
    for status in ["expired", "waived", "notStarted", "inProgress", "completed"] {
        let n = count(&all_refs, |a| a.status.as_str() == status);
        assert_eq!(
            report.statuses.get(status).copied().unwrap_or(0),
            n,
            "{status}"
        );
    }

    // Courses.
    let course_ids: BTreeSet<&str> = all.iter().map(|a| a.course.id.as_ref()).collect();
    assert_eq!(report.courses.len(), course_ids.len());
    for id in course_ids {
        let mine: Vec<&Assignment> = all.iter().filter(|a| &*a.course.id == id).collect();
        let c = report.courses.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.total, mine.len() as u64, "{id}");
        assert_eq!(
            c.not_started,
            count(&mine, |a| a.status == Status::NotStarted),
            "{id}"
        );
        assert_eq!(
            c.in_progress,
            count(&mine, |a| a.status == Status::InProgress),
            "{id}"
        );
        assert_eq!(
            c.completed,
            count(&mine, |a| a.status == Status::Completed),
            "{id}"
        );
        assert_eq!(
            c.other,
            count(&mine, |a| matches!(a.status, Status::Other(_))),
            "{id}"
        );
        assert_eq!(c.overdue, count(&mine, reference_overdue), "{id}");
        assert_eq!(c.completed_late, count(&mine, reference_late), "{id}");
        assert_eq!(
            c.minutes,
            mine.iter().map(|a| a.duration_minutes).sum::<i64>(),
            "{id}"
        );
        assert_eq!(
            c.learners,
            mine.iter()
                .map(|a| &a.learner)
                .collect::<BTreeSet<_>>()
                .len() as u64
        );
        let scores: Vec<f64> = mine.iter().filter_map(|a| a.score_percent).collect();
        let avg = if scores.is_empty() {
            None
        } else {
            Some(scores.iter().sum::<f64>() / scores.len() as f64)
        };
        match (c.average_score, avg) {
            (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{id}: {x} vs {y}"),
            (x, y) => assert_eq!(x, y, "{id}"),
        }
        let expected_title = if id == "c7" || id == "c8" {
            id.to_string()
        } else {
            format!("Course {}", &id[1..])
        };
        assert_eq!(c.title, expected_title);
    }
    // Sorted by overdue desc, then title.
    for pair in report.courses.windows(2) {
        assert!(
            pair[0].overdue > pair[1].overdue
                || (pair[0].overdue == pair[1].overdue && pair[0].title <= pair[1].title)
        );
    }

    // Categories add up to the totals.
    assert_eq!(
        report.categories.iter().map(|k| k.total).sum::<u64>(),
        t.assignments
    );
    assert_eq!(
        report.categories.iter().map(|k| k.overdue).sum::<u64>(),
        t.overdue
    );
    assert_eq!(
        report.categories.iter().map(|k| k.completed).sum::<u64>(),
        t.completed
    );

    // Overdue rows: one per overdue assignment, days from due to end, sorted.
    let overdue: Vec<&Assignment> = all.iter().filter(|a| reference_overdue(a)).collect();
    assert_eq!(report.overdue.len(), overdue.len());
    let by_id: HashMap<&str, &Assignment> = overdue.iter().map(|a| (a.id.as_ref(), *a)).collect();
    for row in &report.overdue {
        let a = by_id[row.assignment_id.as_ref()];
        let expected_days = match a.due_at_time {
            Some(due) => ((end() - due).num_seconds() as f64 / 86400.0).floor() as i64,
            None => 0,
        };
        assert_eq!(
            row.days_overdue,
            Some(expected_days),
            "{}",
            row.assignment_id
        );
        assert_eq!(row.learner.id, a.learner.as_str());
    }
    for pair in report.overdue.windows(2) {
        assert!(pair[0].days_overdue >= pair[1].days_overdue);
    }
    // Outstanding rows: every assignment not completed.
    assert_eq!(report.outstanding.len() as u64, t.assignments - t.completed);
    // Every assignment is listed once.
    assert_eq!(report.assignments.len() as u64, t.assignments);
    let ids: BTreeSet<_> = report
        .assignments
        .iter()
        .map(|r| &r.assignment_id)
        .collect();
    assert_eq!(ids.len(), report.assignments.len());
}

#[test]
fn every_number_matches_the_reference_on_generated_data() {
    for seed in 1..=20 {
        let raw = generate(seed, 400);
        check_against_reference(&raw, false);
        check_against_reference(&raw, true);
    }
}

#[test]
fn the_generated_data_really_has_the_hard_cases() {
    let raw = generate(7, 400);
    let latest = reference_latest(&raw);
    assert!(latest.len() < raw.len(), "duplicates");
    assert!(
        latest.iter().any(|a| a.deleted_at_time.is_some()),
        "deletions"
    );
    assert!(
        latest.iter().any(|a| matches!(a.status, Status::Other(_))),
        "unknown statuses"
    );
    assert!(
        latest
            .iter()
            .any(|a| a.updated_at_time == start() && a.created_at_time == start())
    );
    assert!(
        latest
            .iter()
            .any(|a| a.updated_at_time == end() && a.created_at_time == end())
    );
    assert!(latest.iter().any(|a| a.due_at_time == Some(end())));
}

fn one(a: Assignment) -> Report {
    rollup(&[a], false)
}

#[test]
fn a_record_modified_exactly_at_the_start_is_in_and_exactly_at_the_end_is_out() {
    let mut at_start = base("s", 1, "c1", Status::NotStarted, start());
    at_start.created_at_time = start() - Duration::days(100);
    assert_eq!(one(at_start).totals.assignments, 1);
    let mut at_end = base("e", 1, "c1", Status::NotStarted, end());
    at_end.created_at_time = end();
    assert_eq!(one(at_end).totals.assignments, 0);
    let mut created_inside = base("i", 1, "c1", Status::NotStarted, end() + Duration::days(1));
    created_inside.created_at_time = end() - Duration::seconds(1);
    assert_eq!(
        one(created_inside).totals.assignments,
        1,
        "created in the window: in"
    );
}

#[test]
fn due_exactly_at_the_window_end_is_not_yet_overdue() {
    let mut a = base(
        "x",
        1,
        "c1",
        Status::InProgress,
        start() + Duration::days(1),
    );
    a.due_at_time = Some(end());
    assert_eq!(one(a.clone()).totals.overdue, 0);
    a.due_at_time = Some(end() - Duration::milliseconds(1));
    let r = one(a.clone());
    assert_eq!(r.totals.overdue, 1);
    assert_eq!(r.overdue[0].days_overdue, Some(0));
    a.due_at_time = Some(end() - Duration::hours(49));
    assert_eq!(one(a).overdue[0].days_overdue, Some(2));
}

#[test]
fn the_newer_version_of_an_assignment_wins_whatever_the_order() {
    let old = base(
        "d",
        1,
        "c1",
        Status::InProgress,
        start() + Duration::days(1),
    );
    let new = base("d", 1, "c1", Status::Completed, start() + Duration::days(2));
    for raw in [vec![old.clone(), new.clone()], vec![new, old]] {
        let r = rollup(&raw, false);
        assert_eq!(r.totals.assignments, 1);
        assert_eq!(r.totals.completed, 1);
    }
}

#[test]
fn an_empty_report_has_no_rates_rather_than_nan() {
    let r = rollup(&[], false);
    assert_eq!(r.totals.assignments, 0);
    assert_eq!(r.totals.completion_rate, None);
    assert!(r.courses.is_empty() && r.categories.is_empty());
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("NaN"), "{json}");
}

#[test]
fn a_course_with_no_scores_has_no_average_and_unknown_categories_are_grouped() {
    let a = base("x", 1, "c2", Status::Completed, start() + Duration::days(1)); // c2: no category
    let r = one(a);
    assert_eq!(r.courses[0].average_score, None);
    assert_eq!(r.courses[0].category, report::UNCATEGORIZED);
    assert_eq!(r.categories[0].name, report::UNCATEGORIZED);
    assert_eq!(r.categories[0].completion_rate, Some(1.0));
}

#[test]
fn learner_ids_are_in_filter_form_and_names_fall_back_to_ids() {
    let a = base(
        "x",
        1999,
        "c1",
        Status::NotStarted,
        start() + Duration::days(1),
    );
    let r = one(a);
    let row = &r.outstanding[0];
    assert_eq!(row.learner.id, "driver-1999");
    assert_eq!(row.learner.name, "driver-1999");
    let b = base(
        "y",
        1001,
        "c1",
        Status::NotStarted,
        start() + Duration::days(1),
    );
    assert_eq!(one(b).outstanding[0].learner.name, "Learner 1001");
}

/// Outstanding rows not yet overdue go by due date, the instant: two due
/// in the hour Chicago repeats when daylight saving time ends (01:30 CDT,
/// then 01:10 CST, 40 minutes later) keep that order, which their local
/// texts ("…T01:10:00-06:00" < "…T01:30:00-05:00") would reverse.
#[test]
fn outstanding_rows_due_in_the_repeated_hour_go_by_the_instant() {
    let mut first = base("b-first", 1, "c1", Status::NotStarted, start());
    first.due_at_time = Some(Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap());
    let mut second = base("a-second", 2, "c1", Status::NotStarted, start());
    second.due_at_time = Some(Utc.with_ymd_and_hms(2026, 11, 1, 7, 10, 0).unwrap());
    let report = rollup(&[second, first], false);
    let rows: Vec<(&str, Option<String>)> = report
        .outstanding
        .iter()
        .map(|r| (r.assignment_id.as_ref(), r.due_at.map(|d| d.to_string())))
        .collect();
    let due = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        [
            ("b-first", due("2026-11-01T01:30:00-05:00")),
            ("a-second", due("2026-11-01T01:10:00-06:00")),
        ]
    );
}
