//! The one place that sequences a run: window → query → fetch → names →
//! reports. The stages do not know about each other; this module does.

use std::collections::{BTreeSet, HashSet};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::config::{Config, Job};
use crate::export::build_query;
use crate::report::{self, JobInfo, Meta, Report, TeamInfo};
use crate::samsara::{Assignment, Client, FetchStats, Names};
use crate::window::{self, Window};

/// What one fetch for a job brought back: deduplicated assignments and their names.
#[derive(Debug, Clone)]
pub struct JobData {
    pub window: Window,
    /// Deduplicated, in stream order; not yet filtered by [`report::included`].
    pub assignments: Vec<Assignment>,
    pub names: Names,
    pub stats: FetchStats,
}

impl JobData {
    /// The assignments a report of this job counts (window rule, deleted ones).
    pub fn included<'a>(&'a self, job: &'a Job) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| report::included(a, &self.window, job.filters.include_deleted))
    }
}

/// Computes the window for a fire at `fire` and fetches it, names included.
/// `last_success_end` feeds `since_last_run` windows (None: no history).
pub async fn fetch(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
) -> anyhow::Result<JobData> {
    let window = window::compute(&job.window, fire, job.timezone, last_success_end)
        .with_context(|| format!("job {}: computing its window", job.name))?;
    if crate::mirror::uses_mirror(config, job)
        && let Some(data) = crate::mirror::fetch(config, job, client, fire, window).await?
    {
        return Ok(data);
    }
    let query = build_query(config, &job.filters, window);
    let fetched = client
        .fetch_assignments(&query)
        .await
        .with_context(|| format!("job {}: fetching assignments in {window}", job.name))?;
    let course_ids: Vec<String> = fetched
        .assignments
        .iter()
        .map(|a| a.course.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names = client
        .names(&course_ids)
        .await
        .with_context(|| format!("job {}: fetching course and learner names", job.name))?;
    Ok(JobData {
        window,
        assignments: fetched.assignments,
        names,
        stats: fetched.stats,
    })
}

/// The reports of a run: one per team, in name order, when the job fans out
/// (a learner in two teams is in both), otherwise exactly one.
pub fn reports(
    config: &Config,
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
) -> Vec<Report> {
    let meta = |team: Option<TeamInfo>| Meta {
        job: JobInfo::of(job),
        window: data.window,
        kind: job.window.kind(),
        timezone: job.timezone,
        generated_at,
        team,
        include_deleted: job.filters.include_deleted,
    };
    if !job.per_team {
        return vec![report::build(&data.assignments, &meta(None), &data.names)];
    }
    let mut teams: Vec<&String> = job.filters.teams.iter().collect();
    teams.sort();
    teams.dedup();
    teams
        .into_iter()
        .filter_map(|name| config.teams.get(name))
        .map(|team| {
            let members: HashSet<_> = team.learners.iter().collect();
            let mine = data
                .assignments
                .iter()
                .filter(|a| members.contains(&a.learner));
            let info = TeamInfo {
                name: team.name.clone(),
                manager: team.manager.clone(),
            };
            report::build(mine, &meta(Some(info)), &data.names)
        })
        .collect()
}

/// How one delivery of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// Sent now (after this many attempts).
    Delivered { attempts: u32 },
    /// Already delivered by an earlier run for the same window: not sent again.
    AlreadyDelivered,
    /// The snapshot for this window existed: left untouched.
    AlreadyArchived,
    /// Failed for good (permanent, or out of retries).
    Failed { attempts: u32, error: String },
}

/// One line of a run's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryLine {
    /// `email`, `slack`, `msteams`, `json` or `archive`.
    pub kind: String,
    pub target: String,
    pub team: Option<String>,
    pub recipient: String,
    pub outcome: DeliveryOutcome,
    /// True when this finished a delivery an earlier, interrupted run had started.
    pub resumed: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub run_id: i64,
    pub window: Option<Window>,
    /// Assignments the reports counted.
    pub records: Option<u64>,
    pub deliveries: Vec<DeliveryLine>,
    pub skipped: Vec<crate::outbox::Skipped>,
    /// Why the run failed before delivering (fetch, render, store), with causes.
    pub error: Option<String>,
}

impl RunSummary {
    /// True when the run failed or any delivery failed for good.
    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self
                .deliveries
                .iter()
                .any(|d| matches!(d.outcome, DeliveryOutcome::Failed { .. }))
    }
}

/// What the ledger keeps of an outgoing item: everything but secrets.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    kind: String,
    target: String,
    webhook: Option<String>,
    team: Option<String>,
    recipient: String,
    summary: String,
    payload: crate::outbox::Payload,
}

/// Runs `job` as fired at `fire`: finishes deliveries an interrupted earlier
/// run left pending, fetches, renders every delivery, then sends each one
/// not already delivered for this window, recording every step in `store`.
/// Never returns early without recording the run's outcome.
#[allow(clippy::too_many_arguments)] // the run's whole world, passed in (nothing global)
pub async fn run<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    client: &Client,
    renderer: &crate::render::Renderer,
    store: &crate::store::Store,
    sender: &S,
    fire: DateTime<Utc>,
    now: impl Fn() -> DateTime<Utc>,
) -> anyhow::Result<RunSummary> {
    use crate::store::{Claim, NewDelivery, Outcome};
    // Another process delivering this job now would race us for its claims.
    let _lock = store.lock_job(&job.name)?;
    let run_id = store.begin_run(&job.name, fire, now())?;
    let mut summary = RunSummary {
        run_id,
        ..RunSummary::default()
    };

    // 1. What an interrupted run left claimed but unconfirmed.
    let resumed_lines = resume_into(config, job, store, sender, run_id, &now).await?;
    let resumed: std::collections::HashSet<String> =
        resumed_lines.iter().map(|(k, _)| k.clone()).collect();
    summary
        .deliveries
        .extend(resumed_lines.into_iter().map(|(_, line)| line));

    // 2. Fetch and render everything before sending anything.
    let prepared = async {
        let data = fetch(config, job, client, fire, last_success_end(store, job)?).await?;
        let records = data.included(job).count() as u64;
        store.set_window(run_id, (data.window.start, data.window.end), records)?;
        let reports = reports(config, job, &data, now());
        let outbox = crate::outbox::build(config, job, data.window, &reports, renderer)?;
        anyhow::Ok((data.window, records, outbox))
    }
    .await;
    let (window, records, outbox) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let error = format!("{e:#}");
            store.finish_run(run_id, Outcome::Failed, Some(&error), now())?;
            summary.error = Some(error.clone());
            notify_failure(
                config,
                job,
                renderer,
                sender,
                None,
                &error,
                now(),
                &mut summary,
            )
            .await;
            return Ok(summary);
        }
    };
    summary.window = Some(window);
    summary.records = Some(records);
    summary.skipped = outbox.skipped.clone();

    // 3. Each delivery once per (job, window, target, team, recipient).
    for item in &outbox.items {
        let key = item.key(&job.name, &window);
        if resumed.contains(&key) {
            continue; // finished above, and listed there
        }
        let stored = serde_json::to_string(&Stored {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            webhook: item.webhook.clone(),
            team: item.team.clone(),
            recipient: item.recipient.clone(),
            summary: item.summary.clone(),
            payload: item.payload.clone(),
        })?;
        let d = NewDelivery {
            key: &key,
            job: &job.name,
            window: (window.start, window.end),
            target: &item.target,
            recipient: &item.recipient,
            payload: &stored,
        };
        let outcome = match store.claim(run_id, &d, now())? {
            Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
            Claim::Send { parts_done, .. } => {
                send_and_record(store, sender, item, &key, parts_done, now()).await?
            }
        };
        summary.deliveries.push(DeliveryLine {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            team: item.team.clone(),
            recipient: item.recipient.clone(),
            outcome,
            resumed: false,
        });
    }
    let outcome = if summary.failed() {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    };
    let error = summary.failed().then(|| {
        let n = summary
            .deliveries
            .iter()
            .filter(|d| matches!(d.outcome, DeliveryOutcome::Failed { .. }))
            .count();
        format!("{n} of {} deliveries failed", summary.deliveries.len())
    });
    store.finish_run(run_id, outcome, error.as_deref(), now())?;
    if let Some(error) = error {
        let failures: Vec<String> = summary
            .deliveries
            .iter()
            .filter_map(|d| match &d.outcome {
                DeliveryOutcome::Failed { error, .. } => {
                    Some(format!("{} → {}: {error}", d.target, d.recipient))
                }
                _ => None,
            })
            .collect();
        let detail = format!("{error}:\n{}", failures.join("\n"));
        notify_failure(
            config,
            job,
            renderer,
            sender,
            Some(window),
            &detail,
            now(),
            &mut summary,
        )
        .await;
    }
    Ok(summary)
}

/// Sends the job's `on_failure` messages; their outcomes join the summary
/// (their own failure cannot be reported anywhere but there and the log).
#[allow(clippy::too_many_arguments)]
async fn notify_failure<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    renderer: &crate::render::Renderer,
    sender: &S,
    window: Option<Window>,
    error: &str,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) {
    use crate::deliver::Sent;
    let ctx = crate::render::FailureContext {
        job: JobInfo::of(job),
        window: window.map(|w| crate::report::WindowInfo::of(&w, job.timezone, job.window.kind())),
        generated_at: crate::report::local_rfc3339(now, job.timezone),
        error: error.to_string(),
    };
    let items = match crate::outbox::failure(config, job, renderer, &ctx) {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(job = %job.name, "cannot render the on_failure messages: {e:#}");
            return;
        }
    };
    for item in items {
        let key = format!("on_failure-{}-{}", summary.run_id, item.delivery);
        let attempted = sender.send(&item, &key, 0).await.attempted;
        let outcome = match attempted.result {
            Ok(Sent::Delivered | Sent::AlreadyArchived) => DeliveryOutcome::Delivered {
                attempts: attempted.attempts,
            },
            Err(e) => {
                tracing::error!(job = %job.name, target = %item.target, "on_failure notification failed: {e}");
                DeliveryOutcome::Failed {
                    attempts: attempted.attempts,
                    error: e.to_string(),
                }
            }
        };
        summary.deliveries.push(DeliveryLine {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            team: None,
            recipient: item.recipient.clone(),
            outcome,
            resumed: false,
        });
    }
}

/// Sends what earlier, interrupted runs of `job` left claimed but never
/// confirmed, under run `run_id`. Returns (key, line) of each.
async fn resume_into<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    run_id: i64,
    now: &impl Fn() -> DateTime<Utc>,
) -> anyhow::Result<Vec<(String, DeliveryLine)>> {
    use crate::store::{Claim, NewDelivery};
    let mut lines = Vec::new();
    for pending in store.pending(&job.name)? {
        let line = match pending
            .payload
            .as_deref()
            .map(serde_json::from_str::<Stored>)
        {
            Some(Ok(stored)) => {
                let item = restore(config, stored);
                let d = NewDelivery {
                    key: &pending.key,
                    job: &job.name,
                    window: (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
                    target: &pending.target,
                    recipient: &pending.recipient,
                    payload: pending.payload.as_deref().unwrap_or_default(),
                };
                match store.claim(run_id, &d, now())? {
                    Claim::AlreadyDelivered { .. } => None,
                    Claim::Send { parts_done, .. } => Some(
                        send_and_record(store, sender, &item, &pending.key, parts_done, now())
                            .await?,
                    ),
                }
                .map(|outcome| DeliveryLine {
                    kind: item.kind.to_string(),
                    target: item.target.clone(),
                    team: item.team.clone(),
                    recipient: item.recipient.clone(),
                    outcome,
                    resumed: true,
                })
            }
            _ => {
                let error = "its stored payload cannot be read (written by another version?)";
                store.record(&pending.key, 0, 0, Err(error), now())?;
                Some(DeliveryLine {
                    kind: pending
                        .target
                        .split(' ')
                        .next()
                        .unwrap_or("unknown")
                        .to_string(),
                    target: pending.target.clone(),
                    team: None,
                    recipient: pending.recipient.clone(),
                    outcome: DeliveryOutcome::Failed {
                        attempts: 0,
                        error: error.into(),
                    },
                    resumed: true,
                })
            }
        };
        lines.extend(line.map(|l| (pending.key.clone(), l)));
    }

    Ok(lines)
}

/// At a daemon's start: finishes the deliveries interrupted runs of `job`
/// left pending, as a run of its own (fired `now`). `None` when there were none.
pub async fn resume_pending<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    now: impl Fn() -> DateTime<Utc>,
) -> anyhow::Result<Option<RunSummary>> {
    use crate::store::Outcome;
    if store.pending(&job.name)?.is_empty() {
        return Ok(None);
    }
    let _lock = store.lock_job(&job.name)?;
    let run_id = store.begin_run(&job.name, now(), now())?;
    let lines = resume_into(config, job, store, sender, run_id, &now).await?;
    let summary = RunSummary {
        run_id,
        deliveries: lines.into_iter().map(|(_, l)| l).collect(),
        ..RunSummary::default()
    };
    let failed = summary.failed();
    let note = format!(
        "resumed {} interrupted deliveries",
        summary.deliveries.len()
    );
    store.finish_run(
        run_id,
        if failed {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        },
        Some(&note),
        now(),
    )?;
    Ok(Some(summary))
}

/// The end of the last successful run's window (for `since_last_run`).
fn last_success_end(
    store: &crate::store::Store,
    job: &Job,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(store
        .last_success(&job.name)?
        .and_then(|r| r.window)
        .map(|(_, end)| end))
}

async fn send_and_record<S: crate::deliver::Sender>(
    store: &crate::store::Store,
    sender: &S,
    item: &crate::outbox::Outgoing,
    key: &str,
    parts_done: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<DeliveryOutcome> {
    use crate::deliver::Sent;
    use tracing::Instrument as _;
    // Retry warnings say which delivery they are about (never its URL).
    let span = tracing::warn_span!("delivery", target = %item.target, recipient = %item.recipient);
    let dispatched = sender.send(item, key, parts_done).instrument(span).await;
    let attempted = dispatched.attempted;
    let error = attempted.result.as_ref().err().map(ToString::to_string);
    // An existing snapshot counts as delivered: it is what this run would have written.
    store.record(
        key,
        attempted.attempts,
        dispatched.parts_done,
        error.as_deref().map_or(Ok(()), Err),
        now,
    )?;
    Ok(match attempted.result {
        Ok(Sent::Delivered) => DeliveryOutcome::Delivered {
            attempts: attempted.attempts,
        },
        Ok(Sent::AlreadyArchived) => DeliveryOutcome::AlreadyArchived,
        Err(e) => DeliveryOutcome::Failed {
            attempts: attempted.attempts,
            error: e.to_string(),
        },
    })
}

/// An outgoing item rebuilt from the ledger, its URL and key looked up in
/// the config again (they are never stored).
fn restore(config: &Config, s: Stored) -> crate::outbox::Outgoing {
    let hook = s.webhook.as_ref().and_then(|w| config.webhooks.get(w));
    let kind = match s.kind.as_str() {
        "email" => "email",
        "slack" => "slack",
        "msteams" => "msteams",
        "archive" => "archive",
        _ => "json",
    };
    crate::outbox::Outgoing {
        delivery: 0,
        kind,
        target: s.target,
        webhook: s.webhook,
        team: s.team,
        recipient: s.recipient,
        summary: s.summary,
        payload: s.payload,
        url: hook.map(|h| h.url.clone()),
        secret: hook.and_then(|h| h.secret.clone()),
    }
}
