//! The subcommands and their output. `main` parses arguments and calls [`run`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{self, Config, Job};
use crate::export::{self, Format};
use crate::samsara::{Client, ClientSettings, Endpoint, Observer};

/// Exit code: a run or a delivery failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;

/// trainwatch: scheduled Samsara training reports.
#[derive(Debug, Parser)]
#[command(name = "trainwatch", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "TRAINWATCH_CONFIG",
        default_value = "config.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration: keys, environment variables, cron, timezones,
    /// windows, templates and delivery targets. Prints every problem with
    /// file:line:col; exits 2 if there is any.
    Validate,
    /// Fetch a job's window with its filters and write the deduplicated
    /// assignments, names resolved.
    Export {
        /// The job's name.
        job: String,
        /// Act as if the job fired at this instant (RFC 3339); default now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here (atomically) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected RFC 3339, such as 2026-03-09T08:00:00-05:00"))
}

/// Runs the command. `now` is the clock, read once by the caller.
pub async fn run(cli: Cli, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate => Ok(validate(&cli.config)),
        Command::Export {
            job,
            at,
            format,
            out,
        } => {
            let config = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let Some(job) = find_job(&config, &job) else {
                return Ok(ExitCode::from(EXIT_USAGE));
            };
            export_cmd(&config, job, at.unwrap_or(now), format, out.as_deref()).await
        }
    }
}

/// Loads the config, printing every problem on failure.
fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{}", count(errors.problems.len(), "problem"));
        ExitCode::from(EXIT_USAGE)
    })
}

fn validate(path: &Path) -> ExitCode {
    match load(path) {
        Ok(c) => {
            println!(
                "{}: OK ({}, {}, {})",
                path.display(),
                count(c.jobs.len(), "job"),
                count(c.teams.len(), "team"),
                count(c.webhooks.len(), "webhook"),
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn find_job<'a>(config: &'a Config, name: &str) -> Option<&'a Job> {
    let job = config.job(name);
    if job.is_none() {
        let names: Vec<_> = config.jobs.iter().map(|j| j.name.as_str()).collect();
        eprintln!(
            "error: no job named `{name}` in {} (jobs: {})",
            config.path.display(),
            names.join(", ")
        );
    }
    job
}

async fn export_cmd(
    config: &Config,
    job: &Job,
    at: DateTime<Utc>,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let progress = Progress::start();
    let mut client = Client::new(ClientSettings::from_config(&config.samsara))
        .context("creating the HTTP client")?;
    if let Some(p) = &progress {
        client = client.observed(p.clone());
    }
    let summary = match out {
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let summary =
                export::export(config, job, &client, at, format, tmp.as_file_mut()).await?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            summary
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            export::export(config, job, &client, at, format, &mut lock).await?
        }
    };
    if let Some(p) = progress {
        p.finish();
    }
    for w in &summary.warnings {
        tracing::warn!("{w}");
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "{} in {} ({}, {}, {} duplicates merged, {} deleted or outside the window left out){}",
            count(summary.rows, "assignment"),
            summary.window,
            count(summary.fetch.pages as usize, "page"),
            count(summary.fetch.queries, "query"),
            summary.fetch.duplicates,
            summary.left_out,
            out.map(|p| format!(" → {}", p.display()))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn count(n: usize, what: &str) -> String {
    match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "query") => format!("{n} queries"),
        _ => format!("{n} {what}s"),
    }
}

/// Pages, records and request rate on a terminal; nothing in a pipe or log.
struct Progress {
    bar: ProgressBar,
    pages: AtomicU64,
    records: AtomicU64,
    requests: AtomicU64,
    started: Instant,
}

impl Progress {
    fn start() -> Option<Arc<Self>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("fetching…");
        Some(Arc::new(Self {
            bar,
            pages: AtomicU64::new(0),
            records: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    fn update(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let requests = self.requests.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "{} pages · {} records · {} requests ({:.1}/s)",
            self.pages.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
            requests,
            requests as f64 / secs,
        ));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        let _ = std::io::stderr().flush();
    }
}

impl Observer for Progress {
    fn on_send(&self, _endpoint: Endpoint) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.update();
    }

    fn on_page(&self, endpoint: Endpoint, records: usize) {
        if endpoint == Endpoint::TrainingAssignments {
            self.pages.fetch_add(1, Ordering::Relaxed);
            self.records.fetch_add(records as u64, Ordering::Relaxed);
            self.update();
        }
    }
}
