//! What changed, what is coming, how it trends (product.md Part 2): pure
//! functions from state lists to the context's `changes`, `due_soon` and
//! `trend`, and the narrowing of `min_days_overdue`.
//!
//! Every function takes the assignments *of the report* at an instant (the
//! job's filters, its team's members at that instant, the delivery's
//! narrowing already applied by the caller through [`narrowed`]) and never
//! reads a clock or a store, so the same definitions serve the run, the dry
//! render and the tests' second computation.

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::model::{DetailRow, local_rfc3339};
use super::rollup::{days_overdue, detail_row, is_overdue};
use crate::data::TrendPoint;
use crate::samsara::{Assignment, Names, Status};

/// `changes` in the context: the report now against the same report as of
/// the job's previous scheduled fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changes {
    /// The previous scheduled fire (RFC 3339, job's timezone).
    pub since: String,
    /// Overdue assignments in the report as of `since`.
    pub overdue_before: u64,
    /// Overdue assignments in the report now.
    pub overdue_now: u64,
    /// Overdue now, not overdue (or not in the report) at `since`; as of now,
    /// most days overdue first.
    pub newly_overdue: Vec<DetailRow>,
    /// Overdue at `since`, not overdue in the report now; the rows as they
    /// were at `since`, each with `how`.
    pub resolved: Vec<Resolved>,
    /// Assignments in the report now that were not in it at `since`.
    pub new_assignments: u64,
}

/// One entry of `changes.resolved`: the detail row as of `since`, and how it stopped being overdue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The row as it was at `since` (its `days_overdue` as of `since`).
    #[serde(flatten)]
    pub row: DetailRow,
    /// `completed`, `deleted`, `due date moved` or `left the report`.
    pub how: &'static str,
}

/// The resolutions, in the order the built-in templates list them.
pub const HOWS: [&str; 4] = ["completed", "deleted", "due date moved", "left the report"];

/// Whether `a` stays in a report narrowed to `min_days` whole days overdue
/// as of `at` (24-hour periods from `dueAtTime`); everything stays when
/// there is no narrowing. An overdue assignment of an unknown status without
/// a due date counts 0 days, as in the rollup.
pub fn narrowed(a: &Assignment, at: DateTime<Utc>, min_days: Option<u32>) -> bool {
    match min_days {
        None => true,
        Some(n) => {
            is_overdue(a, at)
                && a.due_at_time.map_or(0, |due| days_overdue(due, at)) >= i64::from(n)
        }
    }
}

/// How an assignment overdue at `since` (as `before`) stopped being overdue
/// in the report, judged from its state now (`now`: its newest version
/// before the fire, whatever the filters; `None` if it has none). A deletion
/// wins over anything else, then completion, then a due date moved so that
/// it is no longer overdue; anything else (a team change, a filter it no
/// longer passes, the narrowing) is "left the report".
pub fn how_resolved(
    before: &Assignment,
    now: Option<&Assignment>,
    fire: DateTime<Utc>,
) -> &'static str {
    match now {
        Some(a) if a.deleted_at_time.is_some() => "deleted",
        Some(a) if a.status == Status::Completed => "completed",
        Some(a) if a.due_at_time != before.due_at_time && !is_overdue(a, fire) => "due date moved",
        _ => "left the report",
    }
}

/// `changes` from the report's assignments as of `since` (`before`) and as
/// of `fire` (`now`); `state_now` finds any assignment's newest version
/// before `fire` (unfiltered), to say how a resolved one was resolved.
/// `overdue` in the report means overdue by the rollup's definition, as of
/// each instant.
pub fn changes<'a>(
    since: DateTime<Utc>,
    before: &[&'a Assignment],
    fire: DateTime<Utc>,
    now: &[&'a Assignment],
    state_now: &dyn Fn(&str) -> Option<&'a Assignment>,
    names: &Names,
    tz: Tz,
) -> Changes {
    let overdue_then: Vec<&Assignment> = before
        .iter()
        .copied()
        .filter(|a| is_overdue(a, since))
        .collect();
    let overdue_now: Vec<&Assignment> = now
        .iter()
        .copied()
        .filter(|a| is_overdue(a, fire))
        .collect();
    let then_ids: FxHashSet<&str> = overdue_then.iter().map(|a| a.id.as_ref()).collect();
    let now_ids: FxHashSet<&str> = overdue_now.iter().map(|a| a.id.as_ref()).collect();
    let before_ids: FxHashSet<&str> = before.iter().map(|a| a.id.as_ref()).collect();

    let mut newly_overdue: Vec<DetailRow> = overdue_now
        .iter()
        .filter(|a| !then_ids.contains(a.id.as_ref()))
        .map(|a| detail_row(a, names, fire, tz))
        .collect();
    sort_rows(&mut newly_overdue);

    let mut resolved: Vec<Resolved> = overdue_then
        .iter()
        .filter(|a| !now_ids.contains(a.id.as_ref()))
        .map(|a| Resolved {
            row: detail_row(a, names, since, tz),
            how: how_resolved(a, state_now(&a.id), fire),
        })
        .collect();
    let rank = |how: &str| HOWS.iter().position(|h| *h == how).unwrap_or(HOWS.len());
    resolved.sort_by(|a, b| {
        rank(a.how)
            .cmp(&rank(b.how))
            .then_with(|| a.row.learner.name.cmp(&b.row.learner.name))
            .then_with(|| a.row.course.title.cmp(&b.row.course.title))
            .then_with(|| a.row.assignment_id.cmp(&b.row.assignment_id))
    });

    Changes {
        since: local_rfc3339(since, tz),
        overdue_before: overdue_then.len() as u64,
        overdue_now: overdue_now.len() as u64,
        newly_overdue,
        resolved,
        new_assignments: now
            .iter()
            .filter(|a| !before_ids.contains(a.id.as_ref()))
            .count() as u64,
    }
}

/// Whether `a` is due soon as of `fire`: not completed, not deleted, due in
/// `[fire, fire + horizon)`.
pub fn is_due_soon(a: &Assignment, fire: DateTime<Utc>, horizon: Duration) -> bool {
    a.status != Status::Completed
        && a.deleted_at_time.is_none()
        && a.due_at_time
            .is_some_and(|due| due >= fire && due < fire + horizon)
}

/// `due_soon`: of `pool` (the report's assignments with every filter but
/// `overdue` applied), those due soon, soonest first.
pub fn due_soon<'a>(
    pool: impl IntoIterator<Item = &'a Assignment>,
    fire: DateTime<Utc>,
    horizon: Duration,
    names: &Names,
    tz: Tz,
) -> Vec<DetailRow> {
    let mut rows: Vec<(DateTime<Utc>, DetailRow)> = pool
        .into_iter()
        .filter(|a| is_due_soon(a, fire, horizon))
        .map(|a| {
            (
                a.due_at_time.unwrap_or(fire),
                detail_row(a, names, fire, tz),
            )
        })
        .collect();
    rows.sort_by(|(x, a), (y, b)| {
        x.cmp(y)
            .then_with(|| a.learner.name.cmp(&b.learner.name))
            .then_with(|| a.course.title.cmp(&b.course.title))
            .then_with(|| a.assignment_id.cmp(&b.assignment_id))
    });
    rows.into_iter().map(|(_, row)| row).collect()
}

/// The trend point of a report whose assignments as of `at` are `members`.
pub fn trend_point<'a>(
    at: DateTime<Utc>,
    members: impl IntoIterator<Item = &'a Assignment>,
    tz: Tz,
) -> TrendPoint {
    let mut count = TrendCount::default();
    for a in members {
        count.add(a, at);
    }
    count.point(at, tz)
}

/// A [`TrendPoint`] counted one assignment at a time, as a state is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrendCount {
    assignments: u64,
    overdue: u64,
    completed: u64,
}

impl TrendCount {
    /// Counts `a`, overdue as of `at`.
    pub fn add(&mut self, a: &Assignment, at: DateTime<Utc>) {
        self.assignments += 1;
        self.overdue += u64::from(is_overdue(a, at));
        self.completed += u64::from(a.status == Status::Completed);
    }

    /// The point at `at` (shown in `tz`) of what was counted.
    pub fn point(&self, at: DateTime<Utc>, tz: Tz) -> TrendPoint {
        let Self {
            assignments,
            overdue,
            completed,
        } = *self;
        TrendPoint {
            at: local_rfc3339(at, tz),
            assignments,
            overdue,
            completed,
            completion_rate: (assignments > 0).then(|| completed as f64 / assignments as f64),
        }
    }
}

fn sort_rows<R: Borrow<DetailRow>>(rows: &mut [R]) {
    rows.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        b.days_overdue
            .cmp(&a.days_overdue)
            .then_with(|| a.learner.name.cmp(&b.learner.name))
            .then_with(|| a.course.title.cmp(&b.course.title))
            .then_with(|| a.assignment_id.cmp(&b.assignment_id))
    });
}

/// The learners of a report with their overdue rows, one block per person,
/// the most days overdue first (for templates that group by learner).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerBlock {
    /// `id` in filter form, `name` falls back to the id.
    pub learner: Arc<super::model::Named>,
    /// Most days overdue of their rows.
    pub max_days_overdue: i64,
    /// Their overdue rows, most days first (the report's own, shared).
    pub rows: Vec<Arc<DetailRow>>,
}

/// `overdue_by_learner`: `overdue` grouped per learner, the learner with the
/// most days overdue first (then by name).
pub fn by_learner(overdue: &[Arc<DetailRow>]) -> Vec<LearnerBlock> {
    let mut blocks: Vec<LearnerBlock> = Vec::new();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for row in overdue {
        let i = *index.entry(row.learner.id.as_str()).or_insert_with(|| {
            blocks.push(LearnerBlock {
                learner: row.learner.clone(),
                max_days_overdue: 0,
                rows: Vec::new(),
            });
            blocks.len() - 1
        });
        let block = &mut blocks[i];
        block.max_days_overdue = block.max_days_overdue.max(row.days_overdue.unwrap_or(0));
        block.rows.push(Arc::clone(row));
    }
    for block in &mut blocks {
        sort_rows(&mut block.rows);
    }
    blocks.sort_by(|a, b| {
        b.max_days_overdue
            .cmp(&a.max_days_overdue)
            .then_with(|| a.learner.name.cmp(&b.learner.name))
            .then_with(|| a.learner.id.cmp(&b.learner.id))
    });
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const SINCE: &str = "2026-11-16T14:00:00Z";
    const FIRE: &str = "2026-11-23T14:00:00Z";

    fn a(id: &str, learner: &str, status: &str, due: &str) -> Assignment {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "course": {"id": "c"},
            "learner": {"id": learner, "type": "driver"},
            "status": status,
            "createdAtTime": "2026-01-01T00:00:00Z",
            "updatedAtTime": "2026-01-01T00:00:00Z",
            "durationMinutes": 0,
            "dueAtTime": due,
        }))
        .unwrap()
    }

    /// The report's members at an instant: the team's learners then.
    fn members<'a>(all: &'a [Assignment], team: &[&str]) -> Vec<&'a Assignment> {
        all.iter()
            .filter(|x| team.contains(&x.learner.as_str()))
            .collect()
    }

    #[test]
    fn a_learner_who_left_the_team_resolves_as_left_and_one_who_joined_is_newly_overdue() {
        let state = vec![
            a("stays", "1", "notStarted", "2026-11-01T00:00:00Z"),
            a("leaver", "2", "notStarted", "2026-11-01T00:00:00Z"),
            a("joiner", "3", "inProgress", "2026-11-01T00:00:00Z"),
        ];
        // Team membership at each instant: 2 left, 3 joined in between.
        let before = members(&state, &["driver-1", "driver-2"]);
        let now = members(&state, &["driver-1", "driver-3"]);
        let lookup = |id: &str| state.iter().find(|x| &*x.id == id);

        let c = changes(
            t(SINCE),
            &before,
            t(FIRE),
            &now,
            &lookup,
            &Names::default(),
            chrono_tz::America::Chicago,
        );

        assert_eq!((c.overdue_before, c.overdue_now), (2, 2));
        let newly: Vec<&str> = c
            .newly_overdue
            .iter()
            .map(|r| r.assignment_id.as_ref())
            .collect();
        assert_eq!(newly, ["joiner"]);
        let resolved: Vec<(&str, &str)> = c
            .resolved
            .iter()
            .map(|r| (r.row.assignment_id.as_ref(), r.how))
            .collect();
        assert_eq!(resolved, [("leaver", "left the report")]);
        assert_eq!(c.new_assignments, 1);
        assert_eq!(c.since, "2026-11-16T08:00:00-06:00");
    }

    #[test]
    fn a_deletion_wins_over_completion_and_a_moved_due_date_must_end_the_overdue() {
        let before = a("x", "1", "notStarted", "2026-11-01T00:00:00Z");
        let mut deleted_and_done = before.clone();
        deleted_and_done.status = Status::Completed;
        deleted_and_done.deleted_at_time = Some(t("2026-11-20T00:00:00Z"));
        let mut moved_out = before.clone();
        moved_out.due_at_time = Some(t("2026-12-01T00:00:00Z"));
        let mut moved_still_late = before.clone();
        moved_still_late.due_at_time = Some(t("2026-11-10T00:00:00Z"));
        let mut expired = before.clone();
        expired.status = Status::Other("expired".into());

        let fire = t(FIRE);
        assert_eq!(
            how_resolved(&before, Some(&deleted_and_done), fire),
            "deleted"
        );
        assert_eq!(
            how_resolved(&before, Some(&moved_out), fire),
            "due date moved"
        );
        assert_eq!(
            how_resolved(&before, Some(&moved_still_late), fire),
            "left the report"
        );
        assert_eq!(
            how_resolved(&before, Some(&expired), fire),
            "left the report"
        );
        assert_eq!(how_resolved(&before, None, fire), "left the report");
    }

    #[test]
    fn narrowing_counts_whole_24_hour_periods_from_the_due_date() {
        let fire = t(FIRE);
        let exactly_30 = a("x", "1", "notStarted", "2026-10-24T14:00:00Z");
        let a_second_short = a("y", "1", "notStarted", "2026-10-24T14:00:01Z");
        let done = a("z", "1", "completed", "2026-01-01T00:00:00Z");

        assert!(narrowed(&exactly_30, fire, Some(30)));
        assert!(!narrowed(&a_second_short, fire, Some(30)));
        assert!(narrowed(&a_second_short, fire, Some(29)));
        assert!(
            !narrowed(&done, fire, Some(0)),
            "only overdue ones, even at 0 days"
        );
        assert!(narrowed(&done, fire, None), "no narrowing keeps everything");
    }

    #[test]
    fn due_soon_is_half_open_and_leaves_out_completed_and_deleted() {
        let fire = t(FIRE);
        let mut deleted = a("deleted", "1", "notStarted", "2026-11-24T00:00:00Z");
        deleted.deleted_at_time = Some(t("2026-11-20T00:00:00Z"));
        let pool = [
            a("at-fire", "1", "notStarted", FIRE),
            a("just-before", "1", "notStarted", "2026-11-23T13:59:59Z"),
            a("last-second", "1", "inProgress", "2026-11-30T13:59:59Z"),
            a("at-horizon", "1", "notStarted", "2026-11-30T14:00:00Z"),
            a("done", "1", "completed", "2026-11-24T00:00:00Z"),
            deleted,
        ];

        let rows = due_soon(
            &pool,
            fire,
            Duration::days(7),
            &Names::default(),
            chrono_tz::UTC,
        );

        let ids: Vec<&str> = rows.iter().map(|r| r.assignment_id.as_ref()).collect();
        assert_eq!(ids, ["at-fire", "last-second"]);
        assert!(rows.iter().all(|r| r.days_overdue.is_none()));
    }

    #[test]
    fn learner_blocks_put_the_most_overdue_person_first_with_their_rows() {
        let row = |id: &str, learner: &str, days: i64| {
            Arc::new(DetailRow {
                assignment_id: id.into(),
                learner: Arc::new(super::super::model::Named {
                    id: learner.into(),
                    name: learner.into(),
                }),
                course: Arc::new(super::super::model::CourseRef {
                    id: id.into(),
                    title: id.into(),
                }),
                status: "notStarted".into(),
                due_at: None,
                days_overdue: Some(days),
            })
        };
        let blocks = by_learner(&[row("a", "Ann", 5), row("b", "Bob", 40), row("c", "Ann", 12)]);

        let shape: Vec<(&str, i64, usize)> = blocks
            .iter()
            .map(|b| (b.learner.name.as_str(), b.max_days_overdue, b.rows.len()))
            .collect();
        assert_eq!(shape, [("Bob", 40, 1), ("Ann", 12, 2)]);
        assert_eq!(
            &*blocks[1].rows[0].assignment_id, "c",
            "most days first within a block"
        );
    }
}
