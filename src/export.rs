//! `trainwatch export`: a job's window and filters, fetched, named and
//! written as flat rows (JSON lines or CSV).

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::config::{Config, Job};
use crate::job::Upto;
use crate::samsara::{Assignment, Client, FetchStats};
use crate::window::Window;

pub use crate::report::rows::{CSV_HEADER, Format, Row, write_rows};

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
    use anyhow::Context as _;
    let context = crate::job::Context {
        config,
        job,
        client,
    };
    let data = context.prepare(at, None, at, Upto::Data).await?.data;
    let included: Vec<&Assignment> = data.included(job).collect();
    let rows: Vec<Row> = included
        .iter()
        .map(|a| Row::new(a, &data.names, data.window.end))
        .collect();
    let count = rows.len();
    write_rows(&rows, format, out).context("writing the export")?;
    let mut warnings = data.names.warnings.clone();
    warnings.extend(data.names.fallback_warnings(
        included.iter().map(|a| &a.learner),
        included.iter().map(|a| a.course.id.as_str()),
    ));
    Ok(Summary {
        window: data.window,
        rows: count,
        left_out: data.assignments.len() - count,
        fetch: data.stats,
        warnings,
    })
}
