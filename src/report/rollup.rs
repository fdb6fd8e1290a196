//! The rollup: deduplicated assignments → [`Report`], in one pass.
//!
//! Memory grows with the number of courses and of reported rows; nothing of
//! the raw JSON is kept. Definitions, all reproducible from the raw records
//! and the window end (the "as of" instant):
//! - **in the report**: created or modified in the window `[start, end)`
//!   (the stream's rule), not deleted unless the job includes deleted ones.
//! - **overdue**: `notStarted` or `inProgress` with `dueAtTime` before the
//!   window end; for a status this version does not know, the API's
//!   `isOverdue` flag.
//! - **completed late**: `completed` with `completedAtTime` after `dueAtTime`;
//!   where either is missing, the API's `isCompletedLate` flag.
//! - **days overdue**: whole days (rounded down) from `dueAtTime` to the window end.
//! - **completion rate**: completed / total, `null` when total is 0.
//! - **average score**: mean of the finite `scorePercent` values, `null` when none.
//!
//! The export rows in `assignments` carry `is_overdue` and `is_completed_late`
//! from these same functions, as of the same window end, so every per-row
//! flag agrees with the totals; `warnings` names every id of this report whose
//! name fell back to the id, and why.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rustc_hash::{FxHashMap, FxHashSet};

use super::model::*;
use super::rows::Row;
use crate::learner::LearnerId;
use crate::samsara::{Assignment, Names, Status};
use crate::window::Window;

/// What a report is about, besides its assignments.
#[derive(Debug, Clone)]
pub struct Meta {
    pub job: JobInfo,
    /// For `current` windows, the instant (`start == end`).
    pub window: Window,
    /// The window's kind for the context (`last`, …, `current`).
    pub kind: &'static str,
    pub timezone: Tz,
    pub generated_at: DateTime<Utc>,
    pub team: Option<TeamInfo>,
    /// Keep assignments with `deletedAtTime` (audits); otherwise they are dropped.
    pub include_deleted: bool,
}

/// Label of courses whose category is unknown.
pub const UNCATEGORIZED: &str = "Uncategorized";

/// Whether `a` belongs in a report of `window`: created or modified in it
/// (the stream's own rule, start in, end out), and not deleted unless the
/// job includes deleted assignments.
///
/// For a `current` window (an instant) every assignment's state is in: the
/// mirror has already chosen each one's newest version before the instant.
pub fn included(a: &Assignment, window: &Window, include_deleted: bool) -> bool {
    (window.is_instant()
        || window.contains(a.created_at_time)
        || window.contains(a.updated_at_time))
        && (include_deleted || a.deleted_at_time.is_none())
}

/// Whether `a` is overdue as of `end`.
pub fn is_overdue(a: &Assignment, end: DateTime<Utc>) -> bool {
    match a.status {
        Status::Completed => false,
        Status::NotStarted | Status::InProgress => a.due_at_time.is_some_and(|due| due < end),
        Status::Other(_) => a.is_overdue == Some(true),
    }
}

/// Whether `a` was completed after it was due.
pub fn is_completed_late(a: &Assignment) -> bool {
    if a.status != Status::Completed {
        return false;
    }
    match (a.completed_at_time, a.due_at_time) {
        (Some(done), Some(due)) => done > due,
        _ => a.is_completed_late == Some(true),
    }
}

/// Whole days from `due` to `end`, rounded down.
pub fn days_overdue(due: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    (end - due).num_seconds().div_euclid(86_400)
}

/// The detail row of `a` as of `at` (`days_overdue` set when it is overdue then).
pub(crate) fn detail_row(a: &Assignment, names: &Names, at: DateTime<Utc>, tz: Tz) -> DetailRow {
    detail_row_of(
        a,
        named(&a.learner, names),
        course_named(&a.course.id, names),
        at,
        tz,
    )
}

/// Learner `id` with their name.
fn named(id: &LearnerId, names: &Names) -> Arc<Named> {
    Arc::new(Named {
        id: id.as_str().to_owned(),
        name: names.learner_name(id),
    })
}

/// Course `id` with its title.
fn course_named(id: &str, names: &Names) -> Arc<CourseRef> {
    Arc::new(CourseRef {
        id: id.to_owned(),
        title: names.course_title(id),
    })
}

/// [`detail_row`] with `a`'s learner and course already named.
fn detail_row_of(
    a: &Assignment,
    learner: Arc<Named>,
    course: Arc<CourseRef>,
    at: DateTime<Utc>,
    tz: Tz,
) -> DetailRow {
    DetailRow {
        assignment_id: a.id.clone(),
        learner,
        course,
        status: a.status.spelling(),
        due_at: a.due_at_time.map(|at| LocalTime { at, tz }),
        days_overdue: is_overdue(a, at)
            .then(|| a.due_at_time.map(|d| days_overdue(d, at)).unwrap_or(0)),
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[derive(Default)]
struct CourseAcc {
    total: u64,
    not_started: u64,
    in_progress: u64,
    completed: u64,
    other: u64,
    overdue: u64,
    completed_late: u64,
    score_sum: f64,
    scores: u64,
    minutes: i64,
    learners: FxHashSet<LearnerId>,
    /// The course with its title, made at its first detail row.
    named: Option<Arc<CourseRef>>,
}

/// Which of a report's lists that grow with the organisation are built:
/// the rows (`assignments`) and the detail lists ([`DETAIL_FIELDS`]).
/// What no delivery of the job reads is left empty, and never costs memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Build `assignments` (the rows).
    pub rows: bool,
    /// Build `overdue`, `outstanding` and `overdue_by_learner` (and, for
    /// the job, read the states `changes` and `due_soon` need).
    pub details: bool,
}

impl Keep {
    /// Everything: what a report for an unknown reader must have.
    pub const ALL: Keep = Keep {
        rows: true,
        details: true,
    };
}

/// Builds the report of `assignments` (already deduplicated by id).
pub fn build<'a>(
    assignments: impl IntoIterator<Item = &'a Assignment>,
    meta: &Meta,
    names: &Names,
) -> Report {
    build_keeping(assignments, meta, names, Keep::ALL)
}

/// [`build`], with only the lists `keep` asks for (the others empty);
/// every total, status, course and category the same.
pub fn build_keeping<'a>(
    assignments: impl IntoIterator<Item = &'a Assignment>,
    meta: &Meta,
    names: &Names,
    keep: Keep,
) -> Report {
    build_holding(assignments, meta, names, keep, None)
}

/// [`build_keeping`]; with `held` `Some(n)`, only the first `n` rows are
/// held in `assignments` (what the deliveries read in memory) and
/// `rows_count` says how many there are: the files that carry every row
/// read them again from the job's state ([`super::RowSource`]).
pub fn build_holding<'a>(
    assignments: impl IntoIterator<Item = &'a Assignment>,
    meta: &Meta,
    names: &Names,
    keep: Keep,
    held: Option<usize>,
) -> Report {
    let mut rollup = Rollup::new(meta, names, keep, held);
    for a in assignments {
        rollup.add(a);
    }
    rollup.finish()
}

/// [`build_holding`] as a fold: a report built one assignment at a time, so
/// that one read of a state feeds every report of a run (each team, each
/// narrowing) and nothing of the state is held. Keys are owned: an
/// assignment handed to [`Rollup::add`] need not outlive the call.
pub struct Rollup<'m> {
    meta: &'m Meta,
    names: &'m Names,
    keep: Keep,
    held: Option<usize>,
    totals: Totals,
    others: FxHashMap<String, u64>,
    courses: FxHashMap<Arc<str>, CourseAcc>,
    /// Each learner, with their name once a detail row names them.
    learners: FxHashMap<LearnerId, Option<Arc<Named>>>,
    /// The not-completed rows, each with its place in the list's order
    /// as far as numbers tell it.
    outstanding: Vec<(Place, Arc<DetailRow>)>,
    rows: Vec<Row>,
}

/// Where a detail row goes in `outstanding`, as far as numbers tell: most
/// days overdue first (not overdue last), then the earliest due date (none
/// last). Names and ids break what this leaves tied. Kept beside the row,
/// so that sorting compares numbers in place rather than reading two rows.
type Place = (std::cmp::Reverse<Option<i64>>, bool, Option<DateTime<Utc>>);

impl<'m> Rollup<'m> {
    /// An empty report of `meta`, with the lists `keep` asks for and, with
    /// `held` `Some(n)`, only the first `n` rows held.
    pub fn new(meta: &'m Meta, names: &'m Names, keep: Keep, held: Option<usize>) -> Self {
        Self {
            meta,
            names,
            keep,
            held,
            totals: Totals::default(),
            others: FxHashMap::default(),
            courses: FxHashMap::default(),
            learners: FxHashMap::default(),
            outstanding: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Counts `a` (deduplicated by id: each assignment once), when the
    /// window rule lets it in.
    pub fn add(&mut self, a: &Assignment) {
        let meta = self.meta;
        if !included(a, &meta.window, meta.include_deleted) {
            return;
        }
        let end = meta.window.end;
        let totals = &mut self.totals;
        if a.deleted_at_time.is_some() {
            totals.deleted += 1;
        }
        let overdue = is_overdue(a, end);
        let late = is_completed_late(a);
        let c = match self.courses.get_mut(a.course.id.as_ref()) {
            Some(c) => c,
            None => self.courses.entry(a.course.id.clone()).or_default(),
        };
        c.total += 1;
        let counter = match &a.status {
            Status::NotStarted => (&mut c.not_started, &mut totals.not_started),
            Status::InProgress => (&mut c.in_progress, &mut totals.in_progress),
            Status::Completed => (&mut c.completed, &mut totals.completed),
            Status::Other(s) => {
                match self.others.get_mut(s.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        self.others.insert(s.clone(), 1);
                    }
                }
                (&mut c.other, &mut totals.other)
            }
        };
        *counter.0 += 1;
        *counter.1 += 1;
        if overdue {
            c.overdue += 1;
            totals.overdue += 1;
        }
        if late {
            c.completed_late += 1;
            totals.completed_late += 1;
        }
        if let Some(score) = a.score_percent.filter(|s| s.is_finite()) {
            c.score_sum += score;
            c.scores += 1;
        }
        c.minutes = c.minutes.saturating_add(a.duration_minutes);
        if !c.learners.contains(&a.learner) {
            c.learners.insert(a.learner.clone());
        }
        let person = match self.learners.get_mut(&a.learner) {
            Some(person) => person,
            None => self.learners.entry(a.learner.clone()).or_default(),
        };
        totals.assignments += 1;

        if self.keep.details && a.status != Status::Completed {
            // Each learner and course named once per report, then shared.
            let names = self.names;
            let learner = person.get_or_insert_with(|| named(&a.learner, names));
            let course = c
                .named
                .get_or_insert_with(|| course_named(&a.course.id, names));
            let row = detail_row_of(
                a,
                Arc::clone(learner),
                Arc::clone(course),
                end,
                meta.timezone,
            );
            let place = (
                std::cmp::Reverse(row.days_overdue),
                a.due_at_time.is_none(),
                a.due_at_time,
            );
            self.outstanding.push((place, Arc::new(row)));
        }
        if self.keep.rows && self.held.is_none_or(|n| self.rows.len() < n) {
            self.rows.push(Row::new(a, self.names, end));
        }
    }

    /// The report of everything added.
    pub fn finish(self) -> Report {
        let Self {
            meta,
            names,
            keep,
            held,
            mut totals,
            others,
            courses,
            learners,
            mut outstanding,
            rows,
        } = self;
        let local = |t: DateTime<Utc>| local_rfc3339(t, meta.timezone);
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        // Counted in `totals` above; spelled as the API does once, not per assignment.
        for (status, n) in [
            (Status::NotStarted, totals.not_started),
            (Status::InProgress, totals.in_progress),
            (Status::Completed, totals.completed),
        ] {
            if n > 0 {
                statuses.insert(status.to_string(), n);
            }
        }
        for (other, n) in others {
            *statuses.entry(other).or_default() += n;
        }
        totals.learners = learners.len() as u64;
        let learners = learners.keys();
        // Every id of this report that is shown as an id, and why.
        let mut warnings = names.warnings.clone();
        warnings.extend(names.fallback_warnings(learners, courses.keys().map(|id| &**id)));
        totals.completion_rate = rate(totals.completed, totals.assignments);

        let mut course_rows: Vec<CourseSummary> = courses
            .into_iter()
            .map(|(id, c)| {
                let known = names.courses.get(&*id);
                let category = known.and_then(|k| k.category.as_ref());
                CourseSummary {
                    title: names.course_title(&id),
                    id: id.to_string(),
                    category: category
                        .map(|k| k.name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| UNCATEGORIZED.to_string()),
                    category_id: category.map(|k| k.id.clone()).unwrap_or_default(),
                    total: c.total,
                    not_started: c.not_started,
                    in_progress: c.in_progress,
                    completed: c.completed,
                    other: c.other,
                    overdue: c.overdue,
                    completed_late: c.completed_late,
                    completion_rate: rate(c.completed, c.total),
                    average_score: (c.scores > 0).then(|| c.score_sum / c.scores as f64),
                    minutes: c.minutes,
                    learners: c.learners.len() as u64,
                }
            })
            .collect();
        course_rows.sort_by(|a, b| {
            b.overdue
                .cmp(&a.overdue)
                .then_with(|| a.title.cmp(&b.title))
                .then_with(|| a.id.cmp(&b.id))
        });

        let mut categories: BTreeMap<(String, String), CategorySummary> = BTreeMap::new();
        for c in &course_rows {
            let k = categories
                .entry((c.category.clone(), c.category_id.clone()))
                .or_insert_with(|| CategorySummary {
                    id: c.category_id.clone(),
                    name: c.category.clone(),
                    total: 0,
                    overdue: 0,
                    completed: 0,
                    completion_rate: None,
                });
            k.total += c.total;
            k.overdue += c.overdue;
            k.completed += c.completed;
        }
        let categories = categories
            .into_values()
            .map(|mut k| {
                k.completion_rate = rate(k.completed, k.total);
                k
            })
            .collect();

        // Assignment ids are distinct (deduplicated), so the order is total and
        // an unstable sort gives the same list, faster and without a buffer.
        outstanding.sort_unstable_by(|(x, a), (y, b)| {
            x.cmp(y)
                .then_with(|| a.learner.name.cmp(&b.learner.name))
                .then_with(|| a.course.title.cmp(&b.course.title))
                .then_with(|| a.assignment_id.cmp(&b.assignment_id))
        });
        let outstanding: Vec<Arc<DetailRow>> =
            outstanding.into_iter().map(|(_, row)| row).collect();
        // The same rows, shared: a count of references, not a copy.
        let overdue: Vec<Arc<DetailRow>> = outstanding
            .iter()
            .filter(|r| r.days_overdue.is_some())
            .cloned()
            .collect();

        // Every row counted is a row: the count of those not held.
        let rows_count = held.filter(|_| keep.rows).map(|_| totals.assignments);
        Report {
            job: meta.job.clone(),
            window: WindowInfo::of(&meta.window, meta.timezone, meta.kind),
            generated_at: local(meta.generated_at),
            team: meta.team.clone(),
            totals,
            statuses,
            courses: course_rows,
            categories,
            overdue_by_learner: super::changes::by_learner(&overdue),
            overdue,
            outstanding,
            assignments: rows,
            warnings,
            min_days_overdue: None,
            changes: None,
            due_soon: Vec::new(),
            trend: Vec::new(),
            rows_count,
        }
    }
}
