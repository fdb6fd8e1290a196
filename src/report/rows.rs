//! The report's rows: one flat record per assignment, names resolved, the
//! same in a template's `assignments`, a CSV attachment, an archive and
//! `trainwatch export`; and their JSON-lines and CSV forms.

use std::borrow::Cow;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::samsara::{Assignment, Names};

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// One exported assignment, names resolved; flat so that CSV and JSON agree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub assignment_id: String,
    pub learner_id: String,
    pub learner_name: String,
    pub course_id: String,
    pub course_title: String,
    pub category_id: String,
    pub category_name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Overdue as of the window end, by the rollup's own definition, so
    /// the column agrees with the totals beside it.
    pub is_overdue: bool,
    /// Completed after it was due, by the rollup's own definition.
    pub is_completed_late: bool,
    pub score_percent: Option<f64>,
    pub duration_minutes: i64,
}

impl Row {
    /// The row for `a`, with names from `names` (ids where a name is
    /// unknown) and its flags as of `as_of` (the window end): the same
    /// [`crate::report::is_overdue`] and [`crate::report::is_completed_late`]
    /// the totals use, never the API's flags at fetch time.
    pub fn new(a: &Assignment, names: &Names, as_of: DateTime<Utc>) -> Self {
        let course = names.courses.get(&*a.course.id);
        let category = course.and_then(|c| c.category.as_ref());
        Self {
            assignment_id: a.id.to_string(),
            learner_id: a.learner.to_string(),
            learner_name: names.learner_name(&a.learner),
            course_id: a.course.id.to_string(),
            course_title: names.course_title(&a.course.id),
            category_id: category.map(|c| c.id.clone()).unwrap_or_default(),
            category_name: category.map(|c| c.name.clone()).unwrap_or_default(),
            status: a.status.to_string(),
            created_at: a.created_at_time,
            updated_at: a.updated_at_time,
            due_at: a.due_at_time,
            started_at: a.started_at_time,
            completed_at: a.completed_at_time,
            deleted_at: a.deleted_at_time,
            is_overdue: crate::report::is_overdue(a, as_of),
            is_completed_late: crate::report::is_completed_late(a),
            score_percent: a.score_percent,
            duration_minutes: a.duration_minutes,
        }
    }
}

/// Writes rows (held, or built as they are read) as JSON lines or CSV.
pub fn write_rows<R: std::borrow::Borrow<Row>>(
    rows: impl IntoIterator<Item = R>,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut writer = RowWriter::new(format, out);
    for row in rows {
        writer.push(row.borrow())?;
    }
    writer.finish()
}

/// Rows written one at a time as JSON lines or CSV: the bytes
/// [`write_rows`] writes for them.
pub enum RowWriter<'w> {
    Jsonl(&'w mut dyn Write),
    Csv(Box<CsvRows<&'w mut dyn Write>>),
}

impl<'w> RowWriter<'w> {
    /// Rows to come, written to `out` as `format` says.
    pub fn new(format: Format, out: &'w mut dyn Write) -> Self {
        match format {
            Format::Jsonl => Self::Jsonl(out),
            Format::Csv => Self::Csv(Box::new(CsvRows::new(out))),
        }
    }

    /// Writes `row`.
    pub fn push(&mut self, row: &Row) -> anyhow::Result<()> {
        match self {
            Self::Jsonl(out) => {
                serde_json::to_writer(&mut **out, row)?;
                out.write_all(b"\n")?;
                Ok(())
            }
            Self::Csv(csv) => csv.push(row),
        }
    }

    /// Ends the rows (a CSV's header alone when none came), flushed.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Jsonl(out) => Ok(out.flush()?),
            Self::Csv(csv) => csv.finish(),
        }
    }
}

/// CSV rows written one at a time: the bytes [`write_rows`] writes for them.
pub struct CsvRows<W: Write> {
    w: csv::Writer<W>,
    any: bool,
}

impl<W: Write> CsvRows<W> {
    /// A CSV of rows to come, written to `out`.
    pub fn new(out: W) -> Self {
        Self {
            w: csv::Writer::from_writer(out),
            any: false,
        }
    }

    /// Writes `row` (the header with the first).
    pub fn push(&mut self, row: &Row) -> anyhow::Result<()> {
        self.w.serialize(CsvRow::of(row))?;
        self.any = true;
        Ok(())
    }

    /// Ends the CSV: the header alone when no row came, then flushed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        if !self.any {
            self.w.write_record(CSV_HEADER)?;
        }
        self.w.flush()?;
        let mut out = self.w.into_inner().map_err(|e| e.into_error())?;
        out.flush()?;
        Ok(())
    }
}

/// A [`Row`] as CSV writes it: every text column neutralised against
/// spreadsheet formulas ([`crate::names::csv_text`]); numbers, timestamps
/// and flags as they are. JSON keeps the raw values.
#[derive(Serialize)]
struct CsvRow<'a> {
    assignment_id: Cow<'a, str>,
    learner_id: Cow<'a, str>,
    learner_name: Cow<'a, str>,
    course_id: Cow<'a, str>,
    course_title: Cow<'a, str>,
    category_id: Cow<'a, str>,
    category_name: Cow<'a, str>,
    status: Cow<'a, str>,
    created_at: &'a DateTime<Utc>,
    updated_at: &'a DateTime<Utc>,
    due_at: &'a Option<DateTime<Utc>>,
    started_at: &'a Option<DateTime<Utc>>,
    completed_at: &'a Option<DateTime<Utc>>,
    deleted_at: &'a Option<DateTime<Utc>>,
    is_overdue: bool,
    is_completed_late: bool,
    score_percent: Option<f64>,
    duration_minutes: i64,
}

impl<'a> CsvRow<'a> {
    fn of(row: &'a Row) -> Self {
        use crate::names::csv_text;
        Self {
            assignment_id: csv_text(&row.assignment_id),
            learner_id: csv_text(&row.learner_id),
            learner_name: csv_text(&row.learner_name),
            course_id: csv_text(&row.course_id),
            course_title: csv_text(&row.course_title),
            category_id: csv_text(&row.category_id),
            category_name: csv_text(&row.category_name),
            status: csv_text(&row.status),
            created_at: &row.created_at,
            updated_at: &row.updated_at,
            due_at: &row.due_at,
            started_at: &row.started_at,
            completed_at: &row.completed_at,
            deleted_at: &row.deleted_at,
            is_overdue: row.is_overdue,
            is_completed_late: row.is_completed_late,
            score_percent: row.score_percent,
            duration_minutes: row.duration_minutes,
        }
    }
}

/// The CSV header, in [`Row`]'s field order.
pub const CSV_HEADER: [&str; 18] = [
    "assignment_id",
    "learner_id",
    "learner_name",
    "course_id",
    "course_title",
    "category_id",
    "category_name",
    "status",
    "created_at",
    "updated_at",
    "due_at",
    "started_at",
    "completed_at",
    "deleted_at",
    "is_overdue",
    "is_completed_late",
    "score_percent",
    "duration_minutes",
];
