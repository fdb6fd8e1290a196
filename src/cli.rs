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
use crate::render::filters::{count, noun_count};
use crate::samsara::{Client, Endpoint, Observer};

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
            default_value = "https://api.samsara.com"
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
            return crate::init::run(out, base_url.clone(), now).await;
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
    let limits = crate::rate_slots::shared_limits(&config.state_dir, &settings.token);
    let mut client = Client::with_limits(settings, limits).context("creating the HTTP client")?;
    if let Some(p) = Progress::start() {
        client = client.observed(p);
    }
    Ok((client, server))
}

/// Runs and delivers `job` as fired at `fire`, prints the summary.
async fn run_once(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use crate::job::DeliveryOutcome;
    let renderer = crate::render::Renderer::new(config.templates_dir.as_deref())
        .context("loading the templates")?;
    let store = crate::store::Store::open_config(config, replica)?;
    let (client, _server) = client(config).await?;
    // Someone is waiting at a terminal: a server that is not there fails
    // the delivery at once (the service retries it; see the README).
    let dispatcher = crate::deliver::dispatch::Dispatcher::new(config)?.refused_is_final(true);
    let summary = crate::job::run(
        config,
        job,
        &client,
        &renderer,
        &store,
        &dispatcher,
        fire,
        Utc::now,
    )
    .await?;
    dispatcher.close().await;

    let local = fire.with_timezone(&job.timezone);
    println!(
        "job {} fired at {} ({})",
        job.name,
        local.to_rfc3339(),
        job.timezone
    );
    if let Some(w) = summary.window {
        println!(
            "window {}: {} reported",
            w.in_zone(job.timezone),
            count(summary.records.unwrap_or(0) as usize, "assignment")
        );
    }
    let rows: Vec<[String; 5]> = summary
        .deliveries
        .iter()
        .map(|d| {
            let (outcome, attempts) = match &d.outcome {
                DeliveryOutcome::Delivered { attempts } => {
                    ("delivered".to_string(), attempts.to_string())
                }
                DeliveryOutcome::AlreadyDelivered => ("already delivered".to_string(), "-".into()),
                DeliveryOutcome::AlreadyArchived => ("already archived".to_string(), "-".into()),
                DeliveryOutcome::Failed { attempts, error } => {
                    (format!("FAILED: {error}"), attempts.to_string())
                }
            };
            let target = if d.resumed {
                format!("{} (resumed)", d.target)
            } else {
                d.target.clone()
            };
            [
                target,
                d.team.clone().unwrap_or_else(|| "-".into()),
                d.recipient.clone(),
                attempts,
                outcome,
            ]
        })
        .collect();
    print_table(
        ["TARGET", "TEAM", "RECIPIENT", "ATTEMPTS", "OUTCOME"],
        &rows,
    );
    for s in &summary.skipped {
        println!("skipped {}: {}", s.team.as_deref().unwrap_or("-"), s.reason);
    }
    if let Some(error) = &summary.error {
        eprintln!("error: job {} failed: {error}", job.name);
    }
    let refused = summary.deliveries.iter().any(|d| {
        matches!(&d.outcome, DeliveryOutcome::Failed { error, .. } if error.contains(crate::deliver::REFUSED))
    });
    if refused {
        eprintln!("{}", refused_hint(&job.name));
    }
    println!(
        "run {} {} (history in {})",
        summary.run_id,
        if summary.failed() {
            "failed"
        } else {
            "succeeded"
        },
        store.describe()
    );
    Ok(if summary.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// What to do when nothing listens where a delivery goes.
fn refused_hint(job: &str) -> String {
    format!(
        "hint: nothing accepted the connection, so nothing was retried.\n\
         - to see what would be sent without sending it: `trainwatch run-once {job} --dry-run`,\n  \
         or `trainwatch preview {job}` to write every message to files;\n\
         - to try real deliveries locally: `docker compose up -d mailpit` (see docker-compose.yml),\n  \
         then set [smtp] host = \"127.0.0.1\", port = 1025, security = \"none\" and read the mail\n  \
         at http://127.0.0.1:8025."
    )
}

/// Prints the recent runs recorded in the store.
fn history(config: &Config, job: Option<&str>, limit: usize) -> anyhow::Result<ExitCode> {
    let db = config.state_dir.join("trainwatch.db");
    if config.store.url.is_none() && !db.exists() {
        println!("no runs recorded yet ({} does not exist)", db.display());
        return Ok(ExitCode::SUCCESS);
    }
    let store = crate::store::Store::open_config(config, None)?;
    let runs = store.runs(job, limit)?;
    if runs.is_empty() {
        println!(
            "no runs recorded{}",
            job.map(|j| format!(" for job {j}")).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            // Times in the job's timezone when the job is still configured.
            let tz = config.job(&r.job).map_or(chrono_tz::UTC, |j| j.timezone);
            let local =
                |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
            let outcome = match r.outcome {
                crate::store::Outcome::Running if r.finished_at.is_none() => {
                    "running or interrupted".to_string()
                }
                crate::store::Outcome::Running => "running".to_string(),
                crate::store::Outcome::Succeeded => match r.finished_later {
                    (0, _) | (_, None) => "succeeded".to_string(),
                    (n, Some(by)) => format!("succeeded ({n} finished later, by run {by})"),
                },
                crate::store::Outcome::Failed => {
                    format!("failed: {}", r.error.as_deref().unwrap_or(""))
                }
                crate::store::Outcome::Interrupted => {
                    format!("interrupted: {}", r.error.as_deref().unwrap_or(""))
                }
                crate::store::Outcome::Skipped => r.error.clone().unwrap_or_default(),
            };
            let (delivered, failed, pending) = r.deliveries;
            let mut deliveries = format!("{delivered} sent, {failed} failed, {pending} pending");
            if r.finished_later.0 > 0 && r.outcome != crate::store::Outcome::Succeeded {
                deliveries.push_str(&format!("; {} finished later", r.finished_later.0));
            }
            if r.finished_for_others > 0 {
                deliveries.push_str(&format!(
                    "; finished {} of earlier runs",
                    r.finished_for_others
                ));
            }
            match r.notices {
                (0, 0) => {}
                (sent, 0) => deliveries.push_str(&format!(
                    "; {} sent",
                    count(sent as usize, "failure notice")
                )),
                (_, unsent) => deliveries.push_str(&format!(
                    "; {} NOT sent",
                    count(unsent as usize, "failure notice")
                )),
            }
            [
                r.id.to_string(),
                r.job.clone(),
                local(r.fire_time),
                r.window
                    .map(|(s, e)| format!("{} → {}", local(s), local(e)))
                    .unwrap_or_else(|| "-".into()),
                r.records.map_or("-".into(), |n| n.to_string()),
                deliveries,
                r.finished_at
                    .map(|f| {
                        format!(
                            "{:.1}s",
                            (f - r.started_at).num_milliseconds() as f64 / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                outcome,
            ]
        })
        .collect();
    let header = [
        "RUN",
        "JOB",
        "FIRED",
        "WINDOW",
        "RECORDS",
        "DELIVERIES",
        "TOOK",
        "OUTCOME",
    ];
    if store.shared() {
        // Several replicas write one store: say which one ran each run.
        let rows: Vec<[String; 9]> = rows
            .into_iter()
            .zip(&runs)
            .map(|(row, r)| {
                let [id, job, rest @ ..] = row;
                let replica = r.replica.clone().unwrap_or_else(|| "-".into());
                let [a, b, c, d, e, f] = rest;
                [id, job, replica, a, b, c, d, e, f]
            })
            .collect();
        let [id, job, rest @ ..] = header;
        let [a, b, c, d, e, f] = rest;
        print_table([id, job, "REPLICA", a, b, c, d, e, f], &rows);
    } else {
        print_table(header, &rows);
    }
    // Syncs belong to no job: listed under the runs of all jobs only.
    if job.is_none() {
        print_syncs(config)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sync`: brings the mirror up to `to` and says what it took.
async fn sync_cmd(config: &Config, to: DateTime<Utc>, rebuild: bool) -> anyhow::Result<ExitCode> {
    if !config.mirror.enabled {
        eprintln!(
            "error: the mirror is off in {} ([mirror] enabled = false): nothing to sync",
            config.path.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let (settings, _server) = crate::sample::client_settings(&config.samsara).await?;
    let limits = crate::rate_slots::shared_limits(&config.state_dir, &settings.token);
    let client = Client::with_limits(settings, limits).context("creating the HTTP client")?;
    let mirror = crate::mirror::open(config)?;
    let first = rebuild || mirror.reach()?.is_none();
    let progress = SyncBar::start(first);
    let shown = progress
        .as_ref()
        .map(|p| p as &dyn crate::mirror::SyncProgress);
    let report = if rebuild {
        crate::mirror::rebuild(mirror.as_ref(), &client, &config.mirror, to, shown).await
    } else {
        crate::mirror::sync(mirror.as_ref(), &client, &config.mirror, to, shown).await
    };
    drop(progress);
    let report = report?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    match report.range {
        None => println!(
            "mirror already reaches {}: nothing to sync",
            report.reach.end.to_rfc3339()
        ),
        Some((start, end)) => println!(
            "synced [{}, {}): {} received, {} new, {} in {:.1}s",
            start.to_rfc3339(),
            end.to_rfc3339(),
            count(report.stats.versions as usize, "version"),
            report.stats.new_versions,
            count(report.stats.requests as usize, "request"),
            report.seconds
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `mirror` (and `sync --status`): reach, counts, last sync, size.
/// `trainwatch teams`: every team as of `at`, one line each.
async fn teams_cmd(config: &Config, at: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    use crate::teams::Wanted;
    let (settings, _server) = crate::sample::client_settings(&config.samsara).await?;
    let client = Client::new(settings).context("creating the HTTP client")?;
    let teams = if config.mirror.enabled {
        let mirror = crate::mirror::open(config)?;
        if crate::teams::needs_tags(config, Wanted::All) {
            crate::mirror::sync(mirror.as_ref(), &client, &config.mirror, at, None)
                .await
                .with_context(|| format!("bringing the mirror up to {}", at.to_rfc3339()))?;
        }
        crate::mirror::teams_at(config, mirror.as_ref(), Wanted::All, at)?
    } else {
        crate::teams::from_api(config, &client, Wanted::All).await?
    };
    for w in &teams.warnings {
        tracing::warn!("{w}");
    }
    if teams.iter().next().is_none() {
        println!(
            "no teams: add [teams.NAME] or [teams_from_tags] to {}",
            config.path.display()
        );
    }
    for line in crate::teams::lines(&teams) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn mirror_status(config: &Config) -> anyhow::Result<ExitCode> {
    let db = config.state_dir.join("trainwatch.db");
    if !db.exists() {
        println!(
            "the mirror is empty ({} does not exist): run `trainwatch sync`",
            db.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mirror = crate::mirror::open(config)?;
    let s = mirror.status()?;
    println!("mirror in {}", db.display());
    match s.reach {
        Some(r) => println!("reach: [{}, {})", r.since.to_rfc3339(), r.end.to_rfc3339()),
        None => println!("reach: none yet (no sync has completed)"),
    }
    println!(
        "holds: {} of {}, {}, {}, {}",
        count(s.versions as usize, "version"),
        count(s.assignments as usize, "assignment"),
        count(s.courses as usize, "course"),
        count(s.drivers as usize, "driver"),
        count(s.tags as usize, "tag"),
    );
    let describe = |r: &crate::mirror::SyncRecord| {
        format!(
            "#{} {} at {}: [{}, {}), {} received, {} new, {}, {}{}",
            r.id,
            r.outcome,
            r.started_at.to_rfc3339(),
            r.start.to_rfc3339(),
            r.end.to_rfc3339(),
            r.stats.versions,
            r.stats.new_versions,
            count(r.stats.requests as usize, "request"),
            r.seconds
                .map_or("-".to_string(), |secs| format!("{secs:.1}s")),
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    };
    match &s.last_sync {
        Some(r) => println!("last sync: {}", describe(r)),
        None => println!("last sync: none"),
    }
    if let Some(r) = &s.last_success
        && s.last_sync.as_ref().is_some_and(|l| l.id != r.id)
    {
        println!("last success: {}", describe(r));
    }
    println!(
        "size: {:.1} MB (the database file, run history included)",
        s.bytes as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// The mirror's recent syncs, above the runs in `history`.
fn print_syncs(config: &Config) -> anyhow::Result<()> {
    if !config.mirror.enabled {
        return Ok(());
    }
    let syncs = crate::mirror::open(config)?.syncs(5)?;
    if syncs.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 7]> = syncs
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                format!("→ {}", r.end.format("%Y-%m-%d %H:%M UTC")),
                format!("{} ({} new)", r.stats.versions, r.stats.new_versions),
                r.stats.requests.to_string(),
                r.seconds.map_or("-".into(), |s| format!("{s:.1}s")),
                match r.outcome.as_str() {
                    "running" => "running or interrupted".to_string(),
                    "failed" => format!("failed: {}", r.error.as_deref().unwrap_or("")),
                    other => other.to_string(),
                },
            ]
        })
        .collect();
    println!();
    print_table(
        [
            "SYNC", "STARTED", "REACH", "VERSIONS", "REQUESTS", "TOOK", "OUTCOME",
        ],
        &rows,
    );
    Ok(())
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

/// `list`: one row per upcoming fire, the job's name, schedule and timezone
/// on its first row.
fn print_list(config: &Config, now: DateTime<Utc>) {
    const FIRES: usize = 3;
    let mut rows: Vec<[String; 5]> = Vec::new();
    for job in &config.jobs {
        let fires = crate::schedule::next_fires(&job.schedule, job.timezone, now, FIRES);
        let mut cells = fires.iter().map(|t| {
            [
                t.with_timezone(&job.timezone)
                    .format("%Y-%m-%d %a %H:%M:%S %Z")
                    .to_string(),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ]
        });
        let [local, utc] = cells
            .next()
            .unwrap_or_else(|| ["never".to_string(), "-".to_string()]);
        rows.push([
            job.name.clone(),
            job.schedule.expr.clone(),
            job.timezone.to_string(),
            local,
            utc,
        ]);
        rows.extend(
            cells.map(|[local, utc]| [String::new(), String::new(), String::new(), local, utc]),
        );
    }
    print_table(
        ["JOB", "SCHEDULE", "TIMEZONE", "NEXT (LOCAL)", "UTC"],
        &rows,
    );
}

/// `trainwatch store migrate`: the SQLite store in `state_dir`, copied into Postgres.
fn store_migrate(
    config: &Config,
    to: Option<String>,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = match (to, &config.store.url) {
        (Some(to), _) => secrecy::SecretString::from(to),
        (None, Some(url)) => url.clone(),
        (None, None) => {
            eprintln!(
                "error: nowhere to copy to: set [store] url in {} (or give --to postgres://…)",
                config.path.display()
            );
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let db = config.state_dir.join("trainwatch.db");
    if !db.exists() {
        eprintln!(
            "error: there is no SQLite store to copy: {} does not exist",
            db.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let sqlite = crate::store::SqliteStore::open(&config.state_dir)?;
    let (runs, deliveries) = sqlite.export()?;
    let pending = deliveries.iter().filter(|d| d.status == "pending").count();
    let pg = crate::store::postgres::PgStore::open(
        &url,
        config.store.lease,
        crate::store::replica_id(replica),
    )?;
    let (r, d) = pg.import(&runs, &deliveries)?;
    println!(
        "copied {} and {} from {} into {}",
        count(r, "run"),
        noun_count(d as i128, "delivery", Some("deliveries")),
        db.display(),
        pg.url()
    );
    if pending > 0 {
        println!(
            "{} pending: the first replica to start sends them",
            noun_count(pending as i128, "delivery", Some("deliveries"))
        );
    }
    println!(
        "the mirror is not copied: the first sync on Postgres reads it again from mirror.since"
    );
    Ok(ExitCode::SUCCESS)
}

/// On a shared (Postgres) store: each job's last run, whichever replica ran it.
fn print_last_runs(config: &Config) -> anyhow::Result<()> {
    let store = crate::store::Store::open_config(config, None)?;
    let mut rows: Vec<[String; 4]> = Vec::new();
    for job in &config.jobs {
        let last = store.runs(Some(&job.name), 1)?.pop();
        rows.push(match last {
            Some(r) => [
                job.name.clone(),
                r.fire_time
                    .with_timezone(&job.timezone)
                    .format("%Y-%m-%d %a %H:%M:%S %Z")
                    .to_string(),
                r.replica.unwrap_or_else(|| "-".into()),
                format!("{:?}", r.outcome).to_lowercase(),
            ],
            None => [job.name.clone(), "never".into(), "-".into(), "-".into()],
        });
    }
    println!();
    print_table(["JOB", "LAST FIRE", "REPLICA", "OUTCOME"], &rows);
    Ok(())
}

/// A fetched, rolled-up and rendered run.
struct Prepared {
    fire: DateTime<Utc>,
    data: crate::job::JobData,
    outbox: crate::outbox::Outbox,
}

async fn prepare(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Prepared> {
    let renderer = crate::render::Renderer::new(config.templates_dir.as_deref())
        .context("loading the templates")?;
    let (client, _server) = client(config).await?;
    let data = crate::job::fetch(config, job, &client, fire, None).await?;
    for w in &data.names.warnings {
        tracing::warn!("{w}");
    }
    let reports = crate::job::reports(config, job, &data, now);
    let outbox = crate::outbox::build_with_teams(
        config,
        job,
        data.window,
        &reports,
        &data.teams,
        &renderer,
    )?;
    Ok(Prepared { fire, data, outbox })
}

/// Writes exactly what the job's deliveries would send, under
/// `out/<job>/[<team>/]`, and says where: an email as `email.html`,
/// `email.txt`, `email.eml` (and its attachment and inline images, such as
/// `trend.png`), each Slack message as one
/// Block Kit object (`slack.json`, or `slack-1.json`, `slack-2.json`, … for
/// a split digest), a Teams card as `msteams.json`, a JSON body as
/// `body.json`, and an archive as the snapshot folder `archive/` (manifest
/// and `SHA256SUMS` included) written by the archive delivery's own code.
/// Kinds the job does not deliver get no file.
fn write_preview(job: &Job, run: &Prepared, out: &Path) -> anyhow::Result<()> {
    use crate::outbox::Payload;
    let root = out.join(&job.name);
    let written: std::cell::RefCell<Vec<PathBuf>> = Default::default();
    let write = |path: PathBuf, bytes: &[u8]| -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file =
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        let mut file = std::io::BufWriter::new(file);
        file.write_all(bytes)
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        written.borrow_mut().push(path);
        Ok(())
    };
    let json = |value: &serde_json::Value| -> anyhow::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        Ok(bytes)
    };
    let items = &run.outbox.items;
    for item in items {
        let dir = match &item.team {
            // Config team names are checked at load; names from data are not.
            Some(t) => root.join(crate::names::path_component(t)),
            None => root.clone(),
        };
        // Numbered only when the job has several deliveries of one kind.
        let repeated = items
            .iter()
            .filter(|i| i.team == item.team && i.kind == item.kind)
            .count()
            > 1;
        let name = |file: &str| match repeated {
            true => dir.join(format!("{}-{file}", item.delivery + 1)),
            false => dir.join(file),
        };
        match &item.payload {
            Payload::Email(email) => {
                write(name("email.html"), email.html.as_bytes())?;
                write(name("email.txt"), email.text.as_bytes())?;
                write(name("email.eml"), &email.to_eml()?)?;
                if let Some((file, bytes)) = &email.attachment {
                    write(name(file), bytes)?;
                }
                // The inline images (the trend chart) beside it, named by
                // their Content-ID; `email.eml` shows them in place.
                for image in &email.inline {
                    write(
                        name(&crate::names::path_component(&image.content_id)),
                        &image.bytes,
                    )?;
                }
            }
            Payload::Slack(messages) if messages.len() == 1 => {
                write(name("slack.json"), &json(&messages[0])?)?
            }
            Payload::Slack(messages) => {
                for (part, message) in messages.iter().enumerate() {
                    write(name(&format!("slack-{}.json", part + 1)), &json(message)?)?;
                }
            }
            Payload::MsTeams(card) => write(name("msteams.json"), &json(card)?)?,
            Payload::Json(body) => write(name("body.json"), &json(body)?)?,
            Payload::Archive {
                files, manifest, ..
            } => {
                let folder = name("archive");
                // A snapshot is never overwritten; a preview's is, so it
                // shows this run. Only a folder that is a snapshot goes.
                if folder.join("manifest.json").is_file() {
                    std::fs::remove_dir_all(&folder)
                        .with_context(|| format!("replacing {}", folder.display()))?;
                }
                crate::deliver::archive::write_snapshot(&folder, files, manifest.clone())
                    .with_context(|| format!("writing {}", folder.display()))?;
                let mut names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
                names.extend(["manifest.json", "SHA256SUMS"]);
                written
                    .borrow_mut()
                    .extend(names.into_iter().map(|f| folder.join(f)));
            }
        }
    }
    let written = written.into_inner();
    println!(
        "{}: window {} ({}), {} fetched, {} reported",
        job.name,
        run.data.window.in_zone(job.timezone),
        job.timezone,
        count(run.data.assignments.len(), "assignment"),
        count(run.data.included(job).count(), "assignment"),
    );
    for s in &run.outbox.skipped {
        println!(
            "  skipped {}: {}",
            s.team.as_deref().unwrap_or(&job.name),
            s.reason
        );
    }
    println!(
        "wrote {} under {}:",
        count(written.len(), "file"),
        root.display()
    );
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}

/// What a run would send, to whom; never a secret.
fn print_dry_run(job: &Job, run: &Prepared) {
    let local = run.fire.with_timezone(&job.timezone);
    println!(
        "job {} as if fired at {} ({})",
        job.name,
        local.to_rfc3339(),
        job.timezone
    );
    println!(
        "window {}: {} fetched in {} ({} merged), {} reported",
        run.data.window.in_zone(job.timezone),
        count(run.data.assignments.len(), "assignment"),
        count(run.data.stats.pages as usize, "page"),
        count(run.data.stats.duplicates as usize, "duplicate"),
        count(run.data.included(job).count(), "assignment"),
    );
    let rows: Vec<[String; 5]> = run
        .outbox
        .items
        .iter()
        .map(|i| {
            [
                i.kind.to_string(),
                i.team.clone().unwrap_or_else(|| "-".into()),
                i.recipient.clone(),
                i.summary.clone(),
                human_size(i.size()),
            ]
        })
        .collect();
    print_table(["DELIVERY", "TEAM", "TO", "WHAT", "SIZE"], &rows);
    for s in &run.outbox.skipped {
        println!("skipped {}: {}", s.team.as_deref().unwrap_or("-"), s.reason);
    }
    println!("dry run: nothing was sent");
}

fn human_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
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

/// What `validate` says of a config that loaded.
fn print_valid(path: &Path, c: &Config) {
    // Teams made from tags exist only at run time: say where they come from.
    let from_tags = c
        .teams_from_tags
        .as_ref()
        .map(|t| {
            format!(
                " and one per child tag of `{}` (see `trainwatch teams`)",
                crate::names::one_line(&t.parent)
            )
        })
        .unwrap_or_default();
    println!(
        "{}: OK ({}, {}{from_tags}, {})",
        path.display(),
        count(c.jobs.len(), "job"),
        count(c.teams.len(), "team"),
        count(c.webhooks.len(), "webhook"),
    );
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
    let (client, _server) = client(config).await?;
    let summary = match out {
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut builder = tempfile::Builder::new();
            // The file is the user's, like any they create: 0666 less their
            // umask, not the 0600 of a temporary file.
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let mut tmp = builder
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
            let summary = export::export(config, job, &client, at, format, &mut buffered).await?;
            buffered
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            summary
        }
        None => {
            // One write per buffer, not one per line (stdout is line-buffered).
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export::export(config, job, &client, at, format, &mut out).await?
        }
    };
    for w in &summary.warnings {
        tracing::warn!("{w}");
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "{} in {} ({}, {}, {} merged, {} deleted or outside the window left out){}",
            count(summary.rows, "assignment"),
            summary.window.in_zone(job.timezone),
            count(summary.fetch.pages as usize, "page"),
            noun_count(summary.fetch.queries as i128, "query", Some("queries")),
            count(summary.fetch.duplicates as usize, "duplicate"),
            summary.left_out,
            out.map(|p| format!(" → {}", p.display()))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A sync's versions, pages and rate on a terminal (with an ETA for a first
/// sync, from how far through its range the stream is); nothing in a pipe.
struct SyncBar {
    bar: ProgressBar,
    first: bool,
    started: Instant,
}

impl SyncBar {
    fn start(first: bool) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("syncing…");
        Some(Self {
            bar,
            first,
            started: Instant::now(),
        })
    }
}

impl Drop for SyncBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        let _ = std::io::stderr().flush();
    }
}

impl crate::mirror::SyncProgress for SyncBar {
    fn page(&self, pages: u64, versions: u64, fraction: f64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let eta = if self.first && fraction > 0.0 {
            let left = secs * (1.0 - fraction) / fraction;
            format!(" · {:.0}% · ETA {}", fraction * 100.0, human_duration(left))
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "{pages} pages · {versions} versions ({:.0}/s){eta}",
            versions as f64 / secs
        ));
    }
}

fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
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
}

impl Drop for Progress {
    /// The spinner goes when the client that reports to it goes.
    fn drop(&mut self) {
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
