//! `trainwatch export`: a job's window and filters, fetched, named and
//! written as flat rows (JSON lines or CSV).

use std::io::Write;

use chrono::{DateTime, Utc};

use anyhow::Context as _;
use rustc_hash::FxHashSet;

use crate::config::{Config, Job};
use crate::job::Upto;
use crate::learner::LearnerId;
use crate::samsara::{Assignment, Client, FetchStats};
use crate::window::Window;

pub use crate::report::rows::{CSV_HEADER, Format, Row, RowWriter, write_rows};

/// What an export did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub window: Window,
    pub rows: usize,
    /// Fetched assignments left out: deleted (unless the job includes them),
    /// or not created or modified in the window.
    pub left_out: usize,
    pub fetch: FetchStats,
    pub warnings: Vec<String>,
}

/// Fetches `job` as if fired at `at` and writes the rows its report would
/// count to `out`. `export` keeps no run history: a `since_last_run` window
/// reaches back `max`.
pub async fn export(
    config: &Config,
    job: &Job,
    client: &Client,
    at: DateTime<Utc>,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    let context = crate::job::Context {
        config,
        job,
        client,
    };
    let mut data = context.prepare(at, None, at, Upto::Data).await?.data;
    let (window, end) = (data.window, data.window.end);
    let include_deleted = job.filters.include_deleted;
    // Row by row from the state, held or read from the mirror: nothing
    // but the distinct ids (for the warnings) grows with the export.
    let mut writer = RowWriter::new(format, out);
    let mut count = 0usize;
    let mut learners: FxHashSet<LearnerId> = FxHashSet::default();
    let mut courses: FxHashSet<std::sync::Arc<str>> = FxHashSet::default();
    let names = &data.names;
    let mut write = |a: &Assignment| -> anyhow::Result<()> {
        if !crate::report::included(a, &window, include_deleted) {
            return Ok(());
        }
        writer
            .push(&Row::new(a, names, end))
            .context("writing the export")?;
        count += 1;
        if !learners.contains(&a.learner) {
            learners.insert(a.learner.clone());
        }
        if !courses.contains(a.course.id.as_ref()) {
            courses.insert(a.course.id.clone());
        }
        Ok(())
    };
    match &data.streamed {
        Some(source) => source.each(&mut |a| write(&a))?,
        None => data.assignments.iter().try_for_each(&mut write)?,
    }
    writer.finish().context("writing the export")?;
    let mut warnings = data.names.warnings.clone();
    warnings.extend(
        data.names
            .fallback_warnings(&learners, courses.iter().map(|id| &**id)),
    );
    data.settle_counts();
    Ok(Summary {
        window,
        rows: count,
        left_out: data.fetched_count() as usize - count,
        fetch: data.stats,
        warnings,
    })
}
