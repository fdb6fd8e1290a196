//! The report data: the one value every template and the `json` webhook body
//! see (product.md, "Report data"). Field names are part of the contract.
//!
//! Timestamps are RFC 3339 strings in the job's timezone (with its offset),
//! except in `assignments`, whose rows are the export rows (UTC).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use super::rows::Row;

/// Everything a template sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub job: JobInfo,
    pub window: WindowInfo,
    /// When the report was built (RFC 3339, job's timezone).
    pub generated_at: String,
    /// Set when fanning out per team; `null` otherwise.
    pub team: Option<TeamInfo>,
    pub totals: Totals,
    /// Count of every status by its API name, unknown ones included.
    pub statuses: BTreeMap<String, u64>,
    /// Sorted by overdue desc, then title, then id.
    pub courses: Vec<CourseSummary>,
    /// Sorted by name, then id; courses without a category are under id "" and name "Uncategorized".
    pub categories: Vec<CategorySummary>,
    /// Overdue assignments, in `outstanding`'s order. Its rows are
    /// `outstanding`'s own, shared (as are `overdue_by_learner`'s).
    #[serde(serialize_with = "unless_details_omitted")]
    pub overdue: Vec<Arc<DetailRow>>,
    /// Every not-completed assignment (overdue or not): most days overdue
    /// first (not overdue last), then the earliest due date (the instant;
    /// none last), learner name, course title, id.
    #[serde(serialize_with = "unless_details_omitted")]
    pub outstanding: Vec<Arc<DetailRow>>,
    /// Every assignment in the report, names resolved (the export rows).
    #[serde(serialize_with = "rows_unless_omitted")]
    pub assignments: Vec<Row>,
    /// Names that could not be fetched and fell back to ids, and why.
    pub warnings: Vec<String>,
    /// `overdue` grouped per learner, the learner with the most days overdue first.
    #[serde(serialize_with = "unless_details_omitted")]
    pub overdue_by_learner: Vec<super::changes::LearnerBlock>,
    /// The delivery's `min_days_overdue` when this report is narrowed to it; null otherwise.
    pub min_days_overdue: Option<u32>,
    /// What changed since the job's previous scheduled fire (current windows
    /// within the mirror's reach); null otherwise.
    #[serde(serialize_with = "unless_details_omitted")]
    pub changes: Option<super::changes::Changes>,
    /// Not completed, not deleted, due in `[fire, fire + jobs.due_soon)` (current windows).
    #[serde(serialize_with = "unless_details_omitted")]
    pub due_soon: Vec<DetailRow>,
    /// Totals as of this and the previous scheduled fires, oldest first (current windows).
    pub trend: Vec<crate::data::TrendPoint>,
    /// Set when `assignments` holds only the report's first rows (no
    /// delivery reads more in memory; the files are written from the
    /// job's state, [`super::RowSource`]): how many rows the report has.
    /// `None`: `assignments` is every row (or none, when nothing reads them).
    #[serde(skip)]
    pub rows_count: Option<u64>,
}

impl Report {
    /// How many rows the report has, whether `assignments` holds them all or
    /// only the first ones.
    pub fn row_count(&self) -> usize {
        self.rows_count.map_or(self.assignments.len(), |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
    }
}

thread_local! {
    /// Set while [`without_rows`] runs on this thread.
    static OMIT_ROWS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while [`without_details`] runs on this thread.
    static OMIT_DETAILS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The report's lists of assignments other than the rows, which grow with
/// the organisation too: [`without_details`] serializes them empty (`null`
/// for `changes`).
pub const DETAIL_FIELDS: [&str; 5] = [
    "overdue",
    "outstanding",
    "overdue_by_learner",
    "due_soon",
    "changes",
];

/// Runs `f` with every [`Report`] serialized on this thread having its
/// [`DETAIL_FIELDS`] empty: for template contexts whose templates never
/// read them (the audit's email and page count, they do not list them).
pub fn without_details<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OMIT_DETAILS.set(self.0);
        }
    }
    let _reset = Reset(OMIT_DETAILS.replace(true));
    f()
}

fn unless_details_omitted<T, S>(value: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + Default,
    S: serde::Serializer,
{
    if OMIT_DETAILS.get() {
        T::default().serialize(s)
    } else {
        value.serialize(s)
    }
}

/// Runs `f` with every [`Report`] serialized on this thread having an empty
/// `assignments`: for template contexts whose templates never read the rows
/// (an organisation's million rows as template values cost gigabytes), and
/// for a JSON body that leaves them out. A flag rather than a second struct,
/// so fields added to `Report` reach every context without a list to update.
pub fn without_rows<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OMIT_ROWS.set(self.0);
        }
    }
    let _reset = Reset(OMIT_ROWS.replace(true));
    f()
}

fn rows_unless_omitted<S: serde::Serializer>(rows: &[Row], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq as _;
    if OMIT_ROWS.get() {
        s.serialize_seq(Some(0))?.end()
    } else {
        rows.serialize(s)
    }
}

/// `job` in the context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    pub name: String,
    pub schedule: String,
    /// IANA name, e.g. `America/Chicago`.
    pub timezone: String,
}

impl JobInfo {
    /// The context's view of `job`.
    pub fn of(job: &crate::config::Job) -> Self {
        Self {
            name: job.name.clone(),
            schedule: job.schedule.expr.clone(),
            timezone: job.timezone.name().to_string(),
        }
    }
}

/// `window` in the context: `[start, end)`, or for `current` windows the
/// instant `end` (with `start` null).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowInfo {
    /// `last`, `previous`, `since_last_run`, `fixed` or `current`.
    pub kind: String,
    /// Null for `current` windows.
    pub start: Option<String>,
    pub end: String,
    pub timezone: String,
}

impl WindowInfo {
    /// `window` in the context's form, in `tz`; `kind` as [`crate::window::WindowSpec::kind`] names it.
    pub fn of(window: &crate::window::Window, tz: Tz, kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            start: (!window.is_instant()).then(|| local_rfc3339(window.start, tz)),
            end: local_rfc3339(window.end, tz),
            timezone: tz.name().to_string(),
        }
    }
}

/// An instant as the context shows it: RFC 3339 with `tz`'s offset, to the second.
pub fn local_rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An instant with the timezone it is shown in: serialised (and
/// displayed) as [`local_rfc3339`] writes it. A detail row keeps the
/// instant and writes its text only when a delivery reads the row: a
/// report of half a million rows that no delivery prints formats none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub at: DateTime<Utc>,
    pub tz: Tz,
}

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&local_rfc3339(self.at, self.tz))
    }
}

impl Serialize for LocalTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `team` in the context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamInfo {
    pub name: String,
    /// The team's `display_name`, or its `name` when it has none.
    pub display_name: String,
    /// `Name <address>`, or null.
    pub manager: Option<String>,
    /// `Name <address>` of the team's escalation contact, or null.
    pub escalation: Option<String>,
}

/// `totals` in the context.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub assignments: u64,
    /// Distinct learners.
    pub learners: u64,
    pub not_started: u64,
    pub in_progress: u64,
    pub completed: u64,
    /// Assignments whose status this version does not know (see `statuses`).
    pub other: u64,
    pub overdue: u64,
    pub completed_late: u64,
    /// Assignments with `deletedAtTime` (only non-zero when the job includes deleted ones).
    pub deleted: u64,
    /// completed / assignments in 0..=1; null when there are no assignments.
    pub completion_rate: Option<f64>,
}

/// One entry of `courses`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseSummary {
    pub id: String,
    /// The course title, or its id when unknown.
    pub title: String,
    /// The category name ("Uncategorized" when unknown).
    pub category: String,
    pub category_id: String,
    pub total: u64,
    pub not_started: u64,
    pub in_progress: u64,
    pub completed: u64,
    pub other: u64,
    pub overdue: u64,
    pub completed_late: u64,
    /// completed / total; null when total is 0.
    pub completion_rate: Option<f64>,
    /// Mean `scorePercent` (0..1) over assignments that have one; null when none.
    pub average_score: Option<f64>,
    /// Sum of `durationMinutes`.
    pub minutes: i64,
    /// Distinct learners.
    pub learners: u64,
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategorySummary {
    pub id: String,
    pub name: String,
    pub total: u64,
    pub overdue: u64,
    pub completed: u64,
    pub completion_rate: Option<f64>,
}

/// A learner or course reference with its display name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// A course reference with its title.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseRef {
    pub id: String,
    pub title: String,
}

/// One entry of `overdue` / `outstanding`. The learner and the course are
/// shared by the rows of a report that name them, and a known status is
/// the program's own text: a row costs its id and due instant alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetailRow {
    pub assignment_id: Arc<str>,
    /// `id` in filter form (`driver-281474`); `name` falls back to the id.
    pub learner: Arc<Named>,
    pub course: Arc<CourseRef>,
    pub status: std::borrow::Cow<'static, str>,
    /// RFC 3339 in the job's timezone, or null.
    pub due_at: Option<LocalTime>,
    /// Whole days from `due_at` to the window end; null when not overdue.
    pub days_overdue: Option<i64>,
}
