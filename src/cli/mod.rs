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

mod export;
mod history;
mod mirror;
mod preview;
mod progress;
mod run_once;
mod store;
mod validate;

use crate::config::{Config, Job};
use crate::job::Prepared;
use crate::render::filters::{count, noun_count};
use crate::samsara::{Client, Endpoint, Observer};

use export::export_cmd;
use history::{history, print_last_runs};
use mirror::{mirror_status, print_syncs, sync_cmd, teams_cmd};
use preview::{prepare, print_dry_run, write_preview};
use progress::{Progress, SyncBar};
use run_once::run_once;
use store::store_migrate;
use validate::{load, print_list, print_valid};

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
    /// Log lines as text for people, or JSON for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// This replica's name in the store's runs and leases (several
    /// `trainwatch run` sharing one Postgres store); default `hostname:pid`.
    #[arg(long, global = true, env = "TRAINWATCH_REPLICA_ID")]
    pub replica_id: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// `trainwatch store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the SQLite store in `state_dir` (every run and delivery, ids
    /// kept, delivered keys included so nothing is sent again) into an
    /// empty Postgres database: the one `[store] url` names, or `--to`.
    /// Stop the service first. The mirror is not copied: the first sync on
    /// Postgres reads it again from `mirror.since`.
    Migrate {
        /// The Postgres URL to copy into, when not `[store] url`; leave the
        /// password out of it (see `[store] url` with `${VAR}`), or it shows
        /// in the process list.
        #[arg(long)]
        to: Option<String>,
    },
}

/// Output format of `export` (as [`crate::report::rows::Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl From<Format> for crate::export::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Jsonl => crate::export::Format::Jsonl,
            Format::Csv => crate::export::Format::Csv,
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: fire every job on its schedule (in its timezone),
    /// catch up a fire missed while stopped, never overlap a job with itself,
    /// and stop gracefully on SIGINT or SIGTERM.
    Run,
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
    /// Fetch and render a job; write every rendered output (per team when
    /// fanning out) to a folder. Sends nothing.
    Preview {
        /// The job's name.
        job: String,
        /// Act as if the job fired at this instant (RFC 3339); default now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// The folder to write to (created; files in it are replaced).
        #[arg(long, default_value = "preview")]
        out: PathBuf,
    },
    /// Run one job now, or as if fired at `--at`, and deliver it.
    ///
    /// Each delivery is sent once per (job, window, target, recipient): a
    /// second run for the same window sends nothing and says so, and what an
    /// interrupted run left unconfirmed is sent first. Prints a summary and
    /// exits 1 if any delivery failed for good. With `--dry-run` it fetches
    /// and renders everything and prints what would go to whom instead.
    RunOnce {
        /// The job's name.
        job: String,
        /// Act as if the job fired at this instant (RFC 3339); default now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Fetch and render but send nothing; print what would be sent.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recent runs from the state store: fire time, window, records,
    /// deliveries and outcome, newest first.
    History {
        /// Only this job's runs.
        job: Option<String>,
        /// How many runs at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Write a first configuration for your Samsara organisation, after
    /// checking the API token (SAMSARA_API_TOKEN) and its scopes; lists the
    /// organisation's tags and drivers to help you choose teams.
    Init {
        /// Where to write the configuration (never overwritten).
        #[arg(long, default_value = "config.toml")]
        out: PathBuf,
        /// The Samsara API (EU: <https://api.eu.samsara.com>).
        #[arg(
            long,
            env = "SAMSARA_BASE_URL",
            default_value = crate::defaults::SAMSARA_BASE_URL
        )]
        base_url: url::Url,
    },
    /// Print a shell completion script: `trainwatch completions bash >
    /// /etc/bash_completion.d/trainwatch` (zsh: a file `_trainwatch` in your
    /// $fpath; fish: ~/.config/fish/completions/trainwatch.fish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `trainwatch man > trainwatch.1; man ./trainwatch.1`.
    Man,
    /// The state store: `trainwatch store migrate` copies the SQLite store
    /// in `state_dir` (runs and the delivery ledger) into Postgres.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Bring the mirror (the local copy of the organisation's training
    /// data) up to `--at` (default now): the stream since the last sync
    /// (minus `mirror.overlap`), then courses, drivers and tags. All or
    /// nothing; skipped when the mirror already reaches that instant.
    Sync {
        /// Sync up to this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Print what the mirror holds instead of syncing (as `trainwatch mirror`).
        #[arg(long)]
        status: bool,
        /// Read everything again from `mirror.since` and replace the
        /// mirror's contents (in one transaction: a failed rebuild keeps the old).
        #[arg(long, conflicts_with = "status")]
        rebuild: bool,
    },
    /// What the mirror holds: its reach, counts, the last sync and its size.
    Mirror,
    /// Every team, one line each: name, source (`learners`, `tag NAME`,
    /// `teams_from_tags`), member count and manager, as of `--at` (default
    /// now; from the mirror, synced first, or from the API when the mirror
    /// is off). Check the mapping of tags to teams before the first run.
    Teams {
        /// Membership as of this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Each job with its schedule, timezone and next 3 fire times, in the
    /// job's timezone and in UTC. Reads the configuration only.
    List {
        /// List the fires after this instant instead of now (for tests).
        #[arg(long, value_parser = parse_instant, hide = true)]
        at: Option<DateTime<Utc>>,
    },
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected RFC 3339, such as 2026-03-09T08:00:00-05:00"))
}

/// Runs the command. `now` is the clock, read once by the caller.
pub async fn run(cli: Cli, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    // These need no config: they make one, or describe the CLI itself.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            clap_complete::generate(*shell, &mut command, "trainwatch", &mut out);
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("writing the manual page")?;
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Init { out, base_url } => {
            use crate::init::Outcome;
            return Ok(match crate::init::run(out, base_url.clone(), now).await? {
                Outcome::Written => ExitCode::SUCCESS,
                Outcome::Usage => ExitCode::from(EXIT_USAGE),
                Outcome::Failed => ExitCode::from(EXIT_FAILED),
            });
        }
        _ => {}
    }
    // Every command needs a valid config; for `validate` that is the whole job.
    let config = match load(&cli.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let usage = || Ok(ExitCode::from(EXIT_USAGE));
    match cli.command {
        Command::Validate => {
            print_valid(&cli.config, &config);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            crate::service::run_as(config, cli.replica_id.as_deref(), crate::service::signals())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            job,
            at,
            format,
            out,
        } => {
            let Some(job) = find_job(&config, &job) else {
                return usage();
            };
            export_cmd(&config, job, at.unwrap_or(now), format, out.as_deref()).await
        }
        Command::Preview { job, at, out } => {
            let Some(job) = find_job(&config, &job) else {
                return usage();
            };
            let run = prepare(&config, job, at.unwrap_or(now), now).await?;
            write_preview(job, &run, &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RunOnce { job, at, dry_run } => {
            let Some(job) = find_job(&config, &job) else {
                return usage();
            };
            if dry_run {
                let run = prepare(&config, job, at.unwrap_or(now), now).await?;
                print_dry_run(job, &run);
                return Ok(ExitCode::SUCCESS);
            }
            run_once(&config, job, at.unwrap_or(now), cli.replica_id.as_deref()).await
        }
        Command::History { job, limit } => history(&config, job.as_deref(), limit),
        Command::Sync { status: true, .. } | Command::Mirror => mirror_status(&config),
        Command::Teams { at } => teams_cmd(&config, at.unwrap_or(now)).await,
        Command::Sync {
            at,
            status: false,
            rebuild,
        } => sync_cmd(&config, at.unwrap_or(now), rebuild).await,
        Command::List { at } => {
            print_list(&config, at.unwrap_or(now));
            if config.store.url.is_some() {
                print_last_runs(&config)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            command: StoreCommand::Migrate { to },
        } => store_migrate(&config, to, cli.replica_id.as_deref()),
        Command::Completions { .. } | Command::Man | Command::Init { .. } => {
            unreachable!("answered before the config is loaded")
        }
    }
}

/// A client for the config's Samsara, or for its sample data when
/// `samsara.sample_data` is set (the server lives as long as the guard).
async fn client(config: &Config) -> anyhow::Result<(Client, Option<crate::sample::SampleServer>)> {
    let (settings, server) = crate::sample::client_settings(&config.samsara).await?;
    let limits = crate::ratelimit::shared_limits(&config.state_dir, &settings.token);
    let mut client = Client::with_limits(settings, limits).context("creating the HTTP client")?;
    if let Some(p) = Progress::start() {
        client = client.observed(p);
    }
    Ok((client, server))
}

/// Prints left-aligned columns.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
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
