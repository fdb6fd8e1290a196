//! A hand-built report for the rendering tests: a team, three courses in two
//! categories, overdue rows whose names are HTML- and JSON-special or
//! non-ASCII, and a null completion rate. Its window crosses the end of
//! daylight saving time in America/Chicago.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use trainwatch::export::Row;
use trainwatch::report::*;

/// A name with everything HTML, Slack and JSON treat specially.
pub const NASTY: &str = r#"O'Brien & <Sons> "Ltd"\"#;
/// A name outside ASCII.
pub const ACCENTED: &str = "Zoë Ångström";
/// A course title with markup in it.
pub const COURSE: &str = "Hazmat <Level 2> & Spills";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The fixture report.
pub fn report() -> Report {
    let courses = vec![
        course(
            "course-hazmat",
            COURSE,
            "Safety",
            "cat-safety",
            4,
            1,
            1,
            2,
            3,
            Some(0.25),
            Some(0.9),
        ),
        course(
            "course-hos",
            "Hours of Service",
            "Compliance",
            "cat-compliance",
            3,
            1,
            0,
            2,
            1,
            Some(1.0 / 3.0),
            None,
        ),
        course(
            "course-pretrip",
            "Pre-trip Inspection",
            "Safety",
            "cat-safety",
            2,
            0,
            0,
            2,
            0,
            Some(1.0),
            Some(0.755),
        ),
    ];
    let overdue: Vec<Arc<DetailRow>> = [
        detail(
            "a-1",
            "driver-281474",
            NASTY,
            "course-hazmat",
            COURSE,
            "notStarted",
            "2026-10-02T09:00:00-05:00",
            31,
        ),
        detail(
            "a-2",
            "driver-46282156",
            ACCENTED,
            "course-hazmat",
            COURSE,
            "inProgress",
            "2026-10-20T09:00:00-05:00",
            13,
        ),
        detail(
            "a-3",
            "driver-77",
            "Dana Ortiz",
            "course-hos",
            "Hours of Service",
            "notStarted",
            "2026-10-30T09:00:00-05:00",
            2,
        ),
        detail(
            "a-4",
            "driver-281474",
            NASTY,
            "course-hazmat",
            COURSE,
            "inProgress",
            "2026-11-01T09:00:00-06:00",
            0,
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let assignments = vec![
        row(
            "a-1",
            "driver-281474",
            NASTY,
            "course-hazmat",
            COURSE,
            "notStarted",
            Some("2026-10-02T14:00:00Z"),
            None,
            Some(true),
        ),
        row(
            "a-2",
            "driver-46282156",
            ACCENTED,
            "course-hazmat",
            COURSE,
            "inProgress",
            Some("2026-10-20T14:00:00Z"),
            None,
            Some(true),
        ),
        row(
            "a-5",
            "driver-46282156",
            ACCENTED,
            "course-pretrip",
            "Pre-trip Inspection",
            "completed",
            Some("2026-10-28T14:00:00Z"),
            Some("2026-10-27T16:30:00Z"),
            Some(false),
        ),
        row(
            "a-6",
            "driver-77",
            "Dana Ortiz",
            "course-hos",
            "Hours of Service",
            "completed",
            None,
            Some("2026-11-01T07:30:00Z"),
            None,
        ),
    ];
    Report {
        job: JobInfo {
            name: "weekly-overdue".into(),
            schedule: "0 8 * * Mon".into(),
            timezone: "America/Chicago".into(),
        },
        window: WindowInfo {
            kind: "previous".into(),
            start: Some("2026-10-26T00:00:00-05:00".into()),
            end: "2026-11-02T00:00:00-06:00".into(),
            timezone: "America/Chicago".into(),
        },
        generated_at: "2026-11-02T08:00:00-06:00".into(),
        team: Some(TeamInfo {
            name: format!("North Yard & {NASTY}"),
            display_name: format!("North Yard & {NASTY}"),
            manager: Some("Dana Ortiz <dana.ortiz@example.com>".into()),
            escalation: Some("Fleet Safety <safety@example.com>".into()),
        }),
        totals: Totals {
            assignments: 9,
            learners: 3,
            not_started: 2,
            in_progress: 1,
            completed: 6,
            other: 0,
            overdue: 4,
            completed_late: 1,
            deleted: 0,
            completion_rate: None,
        },
        statuses: BTreeMap::from([
            ("completed".to_string(), 6),
            ("inProgress".to_string(), 1),
            ("notStarted".to_string(), 2),
        ]),
        courses,
        categories: vec![
            CategorySummary {
                id: "cat-compliance".into(),
                name: "Compliance".into(),
                total: 3,
                overdue: 1,
                completed: 2,
                completion_rate: Some(2.0 / 3.0),
            },
            CategorySummary {
                id: "cat-safety".into(),
                name: "Safety".into(),
                total: 6,
                overdue: 3,
                completed: 4,
                completion_rate: None,
            },
        ],
        outstanding: overdue.clone(),
        overdue_by_learner: by_learner(&overdue),
        changes: Some(Changes {
            since: "2026-10-26T08:00:00-05:00".into(),
            overdue_before: 3,
            overdue_now: overdue.len() as u64,
            newly_overdue: vec![(*overdue[0]).clone()],
            resolved: vec![
                Resolved {
                    row: detail(
                        "a-9",
                        "driver-12",
                        ACCENTED,
                        "course-hos",
                        "Hours of Service",
                        "notStarted",
                        "2026-10-01T09:00:00-05:00",
                        25,
                    ),
                    how: "completed",
                },
                Resolved {
                    row: detail(
                        "a-10",
                        "driver-13",
                        NASTY,
                        "course-hazmat",
                        COURSE,
                        "inProgress",
                        "2026-10-20T09:00:00-05:00",
                        6,
                    ),
                    how: "due date moved",
                },
            ],
            new_assignments: 2,
        }),
        due_soon: vec![DetailRow {
            days_overdue: None,
            ..detail(
                "a-11",
                "driver-12",
                ACCENTED,
                "course-hazmat",
                COURSE,
                "notStarted",
                "2026-11-05T09:00:00-06:00",
                0,
            )
        }],
        trend: vec![
            trend_point("2026-10-19T08:00:00-05:00", 8, 2, 5),
            trend_point("2026-10-26T08:00:00-05:00", 9, 3, 5),
            trend_point("2026-11-02T08:00:00-06:00", 9, 4, 6),
        ],
        min_days_overdue: None,
        overdue,
        assignments,
        warnings: vec!["learner driver-77: name not found, the id is shown".into()],
        rows_count: None,
    }
}

/// A trend point of the fixture.
pub fn trend_point(at: &str, assignments: u64, overdue: u64, completed: u64) -> TrendPoint {
    TrendPoint {
        at: at.into(),
        assignments,
        overdue,
        completed,
        completion_rate: Some(completed as f64 / assignments as f64),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn course(
    id: &str,
    title: &str,
    category: &str,
    category_id: &str,
    total: u64,
    not_started: u64,
    in_progress: u64,
    completed: u64,
    overdue: u64,
    completion_rate: Option<f64>,
    average_score: Option<f64>,
) -> CourseSummary {
    CourseSummary {
        id: id.into(),
        title: title.into(),
        category: category.into(),
        category_id: category_id.into(),
        total,
        not_started,
        in_progress,
        completed,
        other: 0,
        overdue,
        completed_late: u64::from(completed > 1),
        completion_rate,
        average_score,
        minutes: 15 * total as i64,
        learners: total,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn detail(
    id: &str,
    learner_id: &str,
    learner: &str,
    course_id: &str,
    course: &str,
    status: &str,
    due_at: &str,
    days_overdue: i64,
) -> DetailRow {
    DetailRow {
        assignment_id: id.into(),
        learner: Arc::new(Named {
            id: learner_id.into(),
            name: learner.into(),
        }),
        course: Arc::new(CourseRef {
            id: course_id.into(),
            title: course.into(),
        }),
        status: status.to_owned().into(),
        // The fixture's job shows Chicago's clock: the same text back.
        due_at: Some(LocalTime {
            at: utc(due_at),
            tz: chrono_tz::America::Chicago,
        }),
        days_overdue: Some(days_overdue),
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    id: &str,
    learner_id: &str,
    learner: &str,
    course_id: &str,
    course: &str,
    status: &str,
    due_at: Option<&str>,
    completed_at: Option<&str>,
    is_overdue: Option<bool>,
) -> Row {
    Row {
        assignment_id: id.into(),
        learner_id: learner_id.into(),
        learner_name: learner.into(),
        course_id: course_id.into(),
        course_title: course.into(),
        category_id: "cat-safety".into(),
        category_name: "Safety".into(),
        status: status.into(),
        created_at: utc("2026-09-01T12:00:00Z"),
        updated_at: utc("2026-10-28T12:00:00Z"),
        due_at: due_at.map(utc),
        started_at: None,
        completed_at: completed_at.map(utc),
        deleted_at: None,
        is_overdue: is_overdue == Some(true),
        is_completed_late: false,
        score_percent: completed_at.map(|_| 0.875),
        duration_minutes: 15,
    }
}

/// The fixture with `n` courses, each with something overdue.
pub fn with_courses(n: usize) -> Report {
    let mut report = report();
    report.courses = (0..n)
        .map(|i| {
            course(
                &format!("course-{i}"),
                &format!("Course {i:03} & <friends> with a fairly long title to fill the line"),
                "Safety",
                "cat-safety",
                10,
                3,
                2,
                5,
                (n - i) as u64,
                Some(0.5),
                None,
            )
        })
        .collect();
    report
}

/// The fixture with `n` overdue rows.
pub fn with_overdue(n: usize) -> Report {
    let mut report = report();
    report.overdue = (0..n)
        .map(|i| {
            let name = if i % 2 == 0 { NASTY } else { ACCENTED };
            detail(
                &format!("a-{i}"),
                &format!("driver-{i}"),
                &format!("{name} {i}"),
                "course-hazmat",
                COURSE,
                "notStarted",
                "2026-10-02T09:00:00-05:00",
                (n - i) as i64,
            )
        })
        .map(Arc::new)
        .collect();
    report.totals.overdue = n as u64;
    report
}
