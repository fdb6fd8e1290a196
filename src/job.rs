//! The one place that sequences a run: window → query → fetch → names →
//! reports. The stages do not know about each other; this module does.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::config::{Config, Job};
use crate::learner::LearnerId;
use crate::report::{self, History, JobInfo, Meta, Report, TeamInfo};
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
    /// The job's teams with their members as of the fire instant.
    pub teams: crate::teams::Teams,
    /// For current windows read from the mirror: the states the report is
    /// compared with (`changes`, `due_soon`, `trend`); `None` otherwise.
    pub history: Option<History>,
}

impl JobData {
    /// The assignments a report of this job counts (window rule, deleted ones).
    pub fn included<'a>(&'a self, job: &'a Job) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| report::included(a, &self.window, job.filters.include_deleted))
    }
}

/// Computes the window for a fire at `fire` and fetches it, names included;
/// for a current window read from the mirror, also the states its report is
/// compared with ([`history`]). `last_success_end` feeds `since_last_run`
/// windows (None: no history).
pub async fn fetch(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
) -> anyhow::Result<JobData> {
    fetch_with(config, job, client, fire, last_success_end, true).await
}

/// [`fetch`] without the earlier states: the assignments alone (`export`).
pub async fn fetch_assignments(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
) -> anyhow::Result<JobData> {
    fetch_with(config, job, client, fire, last_success_end, false).await
}

async fn fetch_with(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
    with_history: bool,
) -> anyhow::Result<JobData> {
    let window = window::compute(&job.window, fire, job.timezone, last_success_end)
        .with_context(|| format!("job {}: computing its window", job.name))?;
    if crate::mirror::uses_mirror(config, job)
        && let Some(mut data) = crate::mirror::fetch(config, job, client, fire, window).await?
    {
        if with_history && job.window == window::WindowSpec::Current {
            data.history = Some(
                history(config, job, fire, &data.names, &data.teams).with_context(|| {
                    format!(
                        "job {}: reading what changed since its previous fires",
                        job.name
                    )
                })?,
            );
        }
        return Ok(data);
    }
    let teams = crate::teams::from_api(config, client, crate::teams::Wanted::For(&job.filters))
        .await
        .with_context(|| format!("job {}: resolving its teams", job.name))?;
    let fetched = match crate::export::query_for(&job.filters, &teams, window) {
        Some(query) => client
            .fetch_assignments(&query)
            .await
            .with_context(|| format!("job {}: fetching assignments in {window}", job.name))?,
        // Its teams have nobody in them now: nothing to ask for.
        None => crate::samsara::Fetched::default(),
    };
    let course_ids: Vec<String> = fetched
        .assignments
        .iter()
        .map(|a| a.course.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut names = client
        .names(&course_ids)
        .await
        .with_context(|| format!("job {}: fetching course and learner names", job.name))?;
    names.warnings.extend(teams.warnings.iter().cloned());
    Ok(JobData {
        window,
        assignments: fetched.assignments,
        names,
        stats: fetched.stats,
        teams,
        history: None,
    })
}

/// The job's previous `n` scheduled fires strictly before `fire`, oldest first.
pub fn previous_fires(job: &Job, fire: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut before = fire;
    while out.len() < n {
        // The schedule has whole seconds: a second earlier is strictly before.
        let Some(t) = crate::schedule::latest_fire(
            &job.schedule,
            job.timezone,
            before - chrono::Duration::seconds(1),
        )
        .filter(|t| *t < before) else {
            break;
        };
        out.push(t);
        before = t;
    }
    out.reverse();
    out
}

/// The teams a job's reports are about, from `teams` (resolved for one
/// instant); `None`: one report for the whole job.
pub(crate) fn report_teams<'a>(
    teams: &'a crate::teams::Teams,
    job: &Job,
) -> Vec<Option<&'a crate::teams::Resolved>> {
    if !job.per_team {
        return vec![None];
    }
    teams
        .for_filters(&job.filters)
        .into_iter()
        .map(Some)
        .collect()
}

/// The narrowings a job's reports are built for: none first, then each
/// distinct `min_days_overdue` of its deliveries, ascending.
pub(crate) fn narrowings(job: &Job) -> Vec<Option<u32>> {
    let distinct: BTreeSet<u32> = job.min_days_overdue.iter().flatten().copied().collect();
    std::iter::once(None)
        .chain(distinct.into_iter().map(Some))
        .collect()
}

/// Reads from the mirror (already synced up to `fire`) the states a
/// current-window report at `fire` is compared with: the report's data as
/// of each of the previous `jobs.trend - 1` scheduled fires within the
/// mirror's reach (reduced to trend points at once, one state in memory at
/// a time), the previous fire's kept whole for `changes`, and the state now
/// of what `changes` and `due_soon` look up.
pub fn history(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    names: &Names,
    teams_now: &crate::teams::Teams,
) -> anyhow::Result<History> {
    let mirror = crate::mirror::open(config)?;
    let mirror = mirror.as_ref();
    let reach_since = mirror.reach()?.map(|r| r.since);
    let within = |t: DateTime<Utc>| reach_since.is_some_and(|since| t >= since);
    let earlier = previous_fires(job, fire, (job.trend as usize).saturating_sub(1).max(1));
    let since = earlier.last().copied();
    let report_names: Vec<Option<String>> = report_teams(teams_now, job)
        .into_iter()
        .map(|t| t.map(|r| r.team.name.clone()))
        .collect();
    let narrowings = narrowings(job);
    let mut history = History {
        since,
        ..History::default()
    };
    let trend_from = earlier
        .len()
        .saturating_sub((job.trend as usize).saturating_sub(1));
    for (i, &at) in earlier.iter().enumerate() {
        if !within(at) {
            continue;
        }
        // Membership as of that instant: a driver who moved teams since
        // counts where they were then.
        let teams_at =
            crate::mirror::teams_at(config, mirror, crate::teams::Wanted::For(&job.filters), at)
                .with_context(|| format!("resolving the teams as of {}", at.to_rfc3339()))?;
        let instant = Window { start: at, end: at };
        let state = match crate::export::query_for(&job.filters, &teams_at, instant) {
            Some(query) => crate::mirror::read::state_as_of(mirror, &query, &names.courses, at)?,
            None => Vec::new(),
        };
        let members = |name: &Option<String>| -> Option<HashSet<LearnerId>> {
            name.as_ref().map(|n| {
                teams_at
                    .get(n)
                    .map(|r| r.members.iter().cloned().collect())
                    .unwrap_or_default()
            })
        };
        if i >= trend_from {
            for name in &report_names {
                let members = members(name);
                for &n in &narrowings {
                    let point = report::trend_point(
                        at,
                        state.iter().filter(|a| {
                            members.as_ref().is_none_or(|m| m.contains(&a.learner))
                                && report::included(a, &instant, job.filters.include_deleted)
                                && report::narrowed(a, at, n)
                        }),
                        job.timezone,
                    );
                    history
                        .trend
                        .entry((name.clone(), n))
                        .or_default()
                        .push(point);
                }
            }
        }
        if Some(at) == since {
            for name in report_names.iter().flatten() {
                let members = members(&Some(name.clone())).unwrap_or_default();
                history.members_since.insert(name.clone(), members);
            }
            history.previous = Some(state);
        }
    }
    // The state now, unfiltered, for how each earlier-overdue one resolved,
    // and every filter but `overdue` for what is due soon.
    let ids: HashSet<&str> = history
        .previous
        .iter()
        .flatten()
        .map(|a| a.id.as_str())
        .collect();
    let now = Window {
        start: fire,
        end: fire,
    };
    let pool = crate::export::query_for(&job.filters, teams_now, now).map(|mut query| {
        query.is_overdue = None;
        query
    });
    let pool = pool
        .as_ref()
        .map(|q| crate::mirror::read::Filter::new(q, &names.courses));
    let mut state_now = HashMap::new();
    for a in mirror.state_at(fire)? {
        if report::is_due_soon(&a, fire, job.due_soon)
            && pool.as_ref().is_some_and(|p| p.passes_as_of(&a, fire))
        {
            history.due_soon.push(a.clone());
        }
        if ids.contains(a.id.as_str()) {
            state_now.insert(a.id.clone(), a);
        }
    }
    history.state_now = state_now;
    Ok(history)
}

/// The reports of a run: one per team, in name order, when the job fans out
/// (a learner in two teams is in both), otherwise exactly one; and after
/// each, one per distinct `min_days_overdue` of the job's deliveries, built
/// from only the assignments overdue that many whole days (its totals,
/// `changes` and `trend` recomputed on that narrower set). The teams and
/// their members are `data.teams`, resolved for the fire instant; a
/// current-window report read from the mirror also gets `changes`,
/// `due_soon` and `trend`, each with the membership of its own instant.
pub fn reports(
    _config: &Config,
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
    let fire = data.window.end;
    let tz = job.timezone;
    let mut out = Vec::new();
    for resolved in report_teams(&data.teams, job) {
        let team = resolved.map(|r| &r.team);
        let info = team.map(|team| TeamInfo {
            name: team.name.clone(),
            display_name: team
                .display_name
                .clone()
                .unwrap_or_else(|| team.name.clone()),
            manager: team.manager.clone(),
            escalation: team.escalation.clone(),
        });
        let members_now: Option<HashSet<&LearnerId>> = resolved.map(|r| r.members.iter().collect());
        let is_member = |members: &Option<HashSet<&LearnerId>>, a: &Assignment| {
            members.as_ref().is_none_or(|m| m.contains(&a.learner))
        };
        let mine: Vec<&Assignment> = data
            .assignments
            .iter()
            .filter(|a| is_member(&members_now, a))
            .collect();
        for n in narrowings(job) {
            let now: Vec<&Assignment> = mine
                .iter()
                .copied()
                .filter(|a| report::narrowed(a, fire, n))
                .collect();
            let mut report = report::build(now.iter().copied(), &meta(info.clone()), &data.names);
            report.min_days_overdue = n;
            if let Some(history) = &data.history {
                let counted: Vec<&Assignment> = now
                    .iter()
                    .copied()
                    .filter(|a| report::included(a, &data.window, job.filters.include_deleted))
                    .collect();
                if let (Some(since), Some(previous)) = (history.since, &history.previous) {
                    // Membership as of `since`: who has left the team since
                    // shows as "left the report", who joined as new.
                    let members_then: Option<HashSet<&LearnerId>> = team.map(|t| {
                        history
                            .members_since
                            .get(&t.name)
                            .map(|m| m.iter().collect())
                            .unwrap_or_default()
                    });
                    let before: Vec<&Assignment> = previous
                        .iter()
                        .filter(|a| {
                            is_member(&members_then, a)
                                && report::included(a, &data.window, job.filters.include_deleted)
                                && report::narrowed(a, since, n)
                        })
                        .collect();
                    let lookup = |id: &str| history.state_now.get(id);
                    report.changes = Some(report::changes(
                        since,
                        &before,
                        fire,
                        &counted,
                        &lookup,
                        &data.names,
                        tz,
                    ));
                }
                report.due_soon = report::due_soon(
                    history
                        .due_soon
                        .iter()
                        .filter(|a| is_member(&members_now, a) && report::narrowed(a, fire, n)),
                    fire,
                    job.due_soon,
                    &data.names,
                    tz,
                );
                let mut trend = history
                    .trend
                    .get(&(team.map(|t| t.name.clone()), n))
                    .cloned()
                    .unwrap_or_default();
                trend.push(report::trend_point(fire, counted.iter().copied(), tz));
                report.trend = trend;
            }
            out.push(report);
        }
    }
    out
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
    /// Why the run failed before delivering (fetch, render, store), with
    /// causes; or how it failed, or was stopped, while delivering.
    pub error: Option<String>,
    /// Deliveries left pending because a shutdown began (sent at the next start).
    pub left_pending: usize,
    /// Set when the fire was not run here because another replica had
    /// claimed it (its name); `run_id` is then the run that finished what
    /// that replica left pending, or 0 when nothing was.
    pub ran_elsewhere: Option<String>,
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

/// How long a run waits for its job's lock while another process (a manual
/// `run-once`, a second service) runs the same job, before it gives up and
/// is recorded as failed.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a run may do: stop starting sends once a shutdown begins, and how
/// long to wait for its job's lock.
#[derive(Debug, Clone)]
pub struct Control {
    stop: tokio::sync::watch::Receiver<bool>,
    /// How long to wait for the job's lock held by another process.
    pub lock_wait: std::time::Duration,
    /// Set by the service on a shared (Postgres) store: a fire already
    /// claimed by another replica is not run again here.
    pub once_per_fire: bool,
}

impl Default for Control {
    /// Never stopped; waits [`LOCK_WAIT`] for the lock.
    fn default() -> Self {
        Self::new(tokio::sync::watch::channel(false).1, LOCK_WAIT)
    }
}

impl Control {
    /// Stops starting sends once `stop` holds true.
    pub fn new(stop: tokio::sync::watch::Receiver<bool>, lock_wait: std::time::Duration) -> Self {
        Self {
            stop,
            lock_wait,
            once_per_fire: false,
        }
    }

    /// True once a shutdown has begun: no new send may start.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes when a shutdown begins (at once if the signal is gone).
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }
}

/// Runs `job` as fired at `fire`, never stopped, waiting [`LOCK_WAIT`] for
/// its lock: see [`run_controlled`].
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
    run_controlled(
        config,
        job,
        client,
        renderer,
        store,
        sender,
        fire,
        now,
        &Control::default(),
    )
    .await
}

/// Runs `job` as fired at `fire`: takes its lock (waiting while another
/// process runs it), finishes what earlier runs left pending, fetches,
/// renders every delivery, records them all as pending in one transaction
/// (the outbox), then sends each one not already delivered for this window,
/// recording every result. Once `control` says stop, it starts no new send
/// and leaves the rest pending for the service to finish. Never returns
/// early without recording the run, even one that could not get the lock.
#[allow(clippy::too_many_arguments)]
pub async fn run_controlled<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    client: &Client,
    renderer: &crate::render::Renderer,
    store: &crate::store::Store,
    sender: &S,
    fire: DateTime<Utc>,
    now: impl Fn() -> DateTime<Utc>,
    control: &Control,
) -> anyhow::Result<RunSummary> {
    use crate::store::{Claim, NewDelivery, Outcome};
    // Another process delivering this job now would race us for its claims:
    // wait for it (bounded), and record the fire either way.
    let lock = match store
        .lock_job_waiting(&job.name, control.lock_wait, &control.stop)
        .await
    {
        Ok(lock) => lock,
        Err(e) => {
            let error = format!("{e:#}");
            let run_id = store.begin_run(&job.name, fire, now())?;
            // Stopped while waiting: nothing was recorded for the fire, so
            // catch-up at the next start runs it.
            let outcome = if control.stopping() {
                Outcome::Interrupted
            } else {
                Outcome::Failed
            };
            store.finish_run(run_id, outcome, Some(&error), now())?;
            let mut summary = RunSummary {
                run_id,
                error: Some(error.clone()),
                ..RunSummary::default()
            };
            if !control.stopping() {
                let detail = format!("{error}\nThis fire did not run: nothing was sent for it.");
                let notice = Notice {
                    window: None,
                    fire,
                    error: &detail,
                };
                notify_failure(
                    config,
                    job,
                    renderer,
                    store,
                    sender,
                    notice,
                    &now,
                    &mut summary,
                    None,
                )
                .await?;
            }
            return Ok(summary);
        }
    };
    // Several replicas on one store: the fire runs on whichever claims its
    // (job, fire) row first. The others still finish what a replica that
    // died left pending, under the lease they now hold.
    if control.once_per_fire && !store.claim_fire(&job.name, fire)? {
        let by = store
            .fire_claimed_by(&job.name, fire)?
            .unwrap_or_else(|| "another replica".into());
        tracing::info!(job = %job.name, fire = %fire.to_rfc3339(), replica = %by, "this fire ran on another replica");
        let resumed = resume_locked(config, job, store, sender, &now, control, &lock).await?;
        let mut summary = resumed.unwrap_or_default();
        summary.ran_elsewhere = Some(by);
        return Ok(summary);
    }
    let run_id = store.begin_run(&job.name, fire, now())?;
    let result = async {
        let mut summary = RunSummary {
            run_id,
            ..RunSummary::default()
        };

        // 1. What earlier runs left pending, and transient failures now due.
        let (resumed_lines, mut left) = resume_into(
            config,
            job,
            store,
            sender,
            run_id,
            &now,
            control,
            Some(&lock),
        )
        .await?;
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
            let outbox = crate::outbox::build_with_teams(
                config,
                job,
                data.window,
                &reports,
                &data.teams,
                renderer,
            )?;
            anyhow::Ok((data.window, records, outbox))
        }
        .await;
        let (window, records, outbox) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let error = format!("{e:#}");
                store.finish_run(run_id, Outcome::Failed, Some(&error), now())?;
                summary.error = Some(error.clone());
                let detail = format!("{error}\nNothing was sent for this window.");
                let notice = Notice {
                    window: None,
                    fire,
                    error: &detail,
                };
                notify_failure(
                    config,
                    job,
                    renderer,
                    store,
                    sender,
                    notice,
                    &now,
                    &mut summary,
                    Some(&lock),
                )
                .await?;
                return Ok(summary);
            }
        };
        summary.window = Some(window);
        summary.records = Some(records);
        summary.skipped = outbox.skipped.clone();

        // 3. The outbox: every delivery recorded as pending, in one transaction,
        // before the first is sent; a crash from here on loses nothing.
        let mut todo = Vec::new();
        for item in &outbox.items {
            let key = item.key(&job.name, &window);
            if resumed.contains(&key) {
                continue; // finished above, and listed there
            }
            let stored = serde_json::to_string(&Stored::of(item))?;
            todo.push((item, key, stored));
        }
        let new: Vec<NewDelivery<'_>> = todo
            .iter()
            .map(|(item, key, stored)| NewDelivery {
                key,
                job: &job.name,
                window: (window.start, window.end),
                target: &item.target,
                recipient: &item.recipient,
                payload: stored,
            })
            .collect();
        let claims = store.enqueue(run_id, &new, now())?;

        // 4. Each delivery once per (job, window, target, team, recipient).
        for ((item, key, _), claim) in todo.iter().zip(claims) {
            let outcome = match claim {
                Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
                Claim::Send { .. } if control.stopping() => {
                    left += 1;
                    continue;
                }
                Claim::Send { .. } => {
                    // Fencing: the send is claimed again, alone, right before
                    // it goes, in a transaction that checks this run still
                    // holds the job's lease (a replica stalled past its lease
                    // stops here), and that nobody delivered it meanwhile.
                    lock.guard(std::future::ready(())).await?;
                    match store.claim_send(run_id, &job.name, key)? {
                        Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
                        Claim::Send { parts_done, .. } => {
                            send_and_record(
                                store,
                                sender,
                                item,
                                key,
                                run_id,
                                parts_done,
                                &now,
                                Some(&lock),
                            )
                            .await?
                        }
                    }
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
        if left > 0 {
            // Not a failure to report: the service sends the rest at its next start.
            let error = format!(
                "stopped by a shutdown with {} left pending; they are sent at the next start",
                deliveries_count(left)
            );
            store.finish_run(run_id, Outcome::Interrupted, Some(&error), now())?;
            summary.left_pending = left;
            summary.error = Some(error);
            return Ok(summary);
        }
        let outcome = if summary.failed() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        let error = summary
            .failed()
            .then(|| failure_headline(&summary.deliveries));
        store.finish_run(run_id, outcome, error.as_deref(), now())?;
        if error.is_some() {
            let detail = failure_detail(&summary.deliveries);
            let notice = Notice {
                window: Some(window),
                fire,
                error: &detail,
            };
            notify_failure(
                config,
                job,
                renderer,
                store,
                sender,
                notice,
                &now,
                &mut summary,
                Some(&lock),
            )
            .await?;
        }
        Ok(summary)
    }
    .await;
    if let Err(e) = &result {
        if lost_lease(e) {
            // Another replica owns the job now and finishes this run's
            // deliveries (and settles its outcome); writing one here could
            // overwrite what it recorded.
            tracing::error!(job = %job.name, run = run_id, "{e:#}");
        } else {
            // The store itself failing part-way: still leave an outcome if it can.
            let _ = store.finish_run(run_id, Outcome::Failed, Some(&format!("{e:#}")), now());
        }
    }
    result
}

/// Whether `e` says this replica lost its lease on the job.
pub fn lost_lease(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::store::StoreError>(),
            Some(crate::store::StoreError::LostLease { .. })
        )
    })
}

/// "1 delivery", "2 deliveries".
fn deliveries_count(n: usize) -> String {
    if n == 1 {
        "1 delivery".to_string()
    } else {
        format!("{n} deliveries")
    }
}

fn went_out(o: &DeliveryOutcome) -> bool {
    matches!(
        o,
        DeliveryOutcome::Delivered { .. }
            | DeliveryOutcome::AlreadyDelivered
            | DeliveryOutcome::AlreadyArchived
    )
}

/// One line for history and the log: how many deliveries failed, how many went out.
pub fn failure_headline(lines: &[DeliveryLine]) -> String {
    let failed = lines
        .iter()
        .filter(|d| matches!(d.outcome, DeliveryOutcome::Failed { .. }))
        .count();
    let sent = lines.iter().filter(|d| went_out(&d.outcome)).count();
    format!(
        "{failed} of {} failed, {sent} went out",
        deliveries_count(lines.len())
    )
}

/// What a failure notice says: the headline, then every delivery that did
/// not go out (with its error) and every one that did.
pub fn failure_detail(lines: &[DeliveryLine]) -> String {
    let describe = |d: &DeliveryLine| match &d.team {
        Some(team) => format!("{} → {} (team {team})", d.target, d.recipient),
        None => format!("{} → {}", d.target, d.recipient),
    };
    let mut out = failure_headline(lines);
    out.push_str(".\nNot sent:");
    for d in lines {
        if let DeliveryOutcome::Failed { error, .. } = &d.outcome {
            out.push_str(&format!("\n  - {}: {error}", describe(d)));
        }
    }
    let sent: Vec<String> = lines
        .iter()
        .filter(|d| went_out(&d.outcome))
        .map(|d| format!("\n  - {}", describe(d)))
        .collect();
    if sent.is_empty() {
        out.push_str("\nSent: none.");
    } else {
        out.push_str("\nSent:");
        out.extend(sent);
    }
    out
}

/// What a failure notice is about.
struct Notice<'a> {
    window: Option<Window>,
    fire: DateTime<Utc>,
    error: &'a str,
}

/// Sends the job's `on_failure` notices for run `summary.run_id`, each
/// recorded in the ledger under a key of (run, notice), so a notice is never
/// sent twice for one run (and one cut off is finished like any delivery).
/// Their outcomes join the summary; their own failure cannot be reported
/// anywhere but there and the log.
#[allow(clippy::too_many_arguments)]
async fn notify_failure<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    renderer: &crate::render::Renderer,
    store: &crate::store::Store,
    sender: &S,
    notice: Notice<'_>,
    now: &impl Fn() -> DateTime<Utc>,
    summary: &mut RunSummary,
    lock: Option<&crate::store::JobLock>,
) -> anyhow::Result<()> {
    use crate::store::{Claim, NewDelivery};
    let ctx = crate::render::FailureContext {
        job: JobInfo::of(job),
        window: notice
            .window
            .map(|w| crate::report::WindowInfo::of(&w, job.timezone, job.window.kind())),
        generated_at: crate::report::local_rfc3339(now(), job.timezone),
        error: notice.error.to_string(),
    };
    let items = match crate::outbox::failure(config, job, renderer, &ctx) {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(job = %job.name, "cannot render the on_failure messages: {e:#}");
            return Ok(());
        }
    };
    let window = notice
        .window
        .map_or((notice.fire, notice.fire), |w| (w.start, w.end));
    for item in items {
        let key = crate::deliver::archive::sha256_hex(
            format!(
                "on_failure\n{}\n{}\n{}\n{}\n{}",
                job.name, summary.run_id, item.delivery, item.target, item.recipient
            )
            .as_bytes(),
        );
        let stored = serde_json::to_string(&Stored::of(&item))?;
        let d = NewDelivery {
            key: &key,
            job: &job.name,
            window,
            target: &item.target,
            recipient: &item.recipient,
            payload: &stored,
        };
        let outcome = match store.claim_notice(summary.run_id, &d, now())? {
            Claim::AlreadyDelivered { .. } => DeliveryOutcome::AlreadyDelivered,
            Claim::Send { parts_done, .. } => {
                send_and_record(
                    store,
                    sender,
                    &item,
                    &key,
                    summary.run_id,
                    parts_done,
                    now,
                    lock,
                )
                .await?
            }
        };
        if let DeliveryOutcome::Failed { error, .. } = &outcome {
            tracing::error!(job = %job.name, target = %item.target, "on_failure notification failed: {error}");
        }
        summary.deliveries.push(DeliveryLine {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            team: None,
            recipient: item.recipient.clone(),
            outcome,
            resumed: false,
        });
    }
    Ok(())
}

/// Sends, under run `run_id`, what earlier runs of `job` left pending and
/// the transient failures whose retry is due; once `control` says stop, the
/// rest stay pending. Returns (key, line) of each sent, and how many were left.
#[allow(clippy::too_many_arguments)] // the run's world, and the lock that fences its sends
async fn resume_into<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    run_id: i64,
    now: &impl Fn() -> DateTime<Utc>,
    control: &Control,
    lock: Option<&crate::store::JobLock>,
) -> anyhow::Result<(Vec<(String, DeliveryLine)>, usize)> {
    use crate::store::{Attempt, Claim, NewDelivery};
    let mut lines = Vec::new();
    let mut left = 0;
    for pending in store.due(&job.name, now())? {
        if control.stopping() {
            left += 1;
            continue;
        }
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
                        send_and_record(
                            store,
                            sender,
                            &item,
                            &pending.key,
                            run_id,
                            parts_done,
                            now,
                            lock,
                        )
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
                let attempt = Attempt {
                    attempts: 0,
                    parts_done: 0,
                    error: Some(error),
                    transient: false,
                };
                store.record(&pending.key, run_id, &attempt, now())?;
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
    Ok((lines, left))
}

/// The service's outbox pass for `job`: finishes the deliveries earlier
/// runs left pending and retries transient failures now due, as a run of
/// its own (fired `now`). `None` when there was nothing due, or when another
/// run of the job holds its lock (that run finishes them itself, or the
/// next pass does).
pub async fn resume_pending<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    now: impl Fn() -> DateTime<Utc>,
    control: &Control,
) -> anyhow::Result<Option<RunSummary>> {
    if store.due(&job.name, now())?.is_empty() {
        return Ok(None);
    }
    let Some(lock) = store.try_lock_job(&job.name)? else {
        return Ok(None);
    };
    resume_locked(config, job, store, sender, &now, control, &lock).await
}

/// [`resume_pending`] with the job's lock already held.
async fn resume_locked<S: crate::deliver::Sender>(
    config: &Config,
    job: &Job,
    store: &crate::store::Store,
    sender: &S,
    now: &impl Fn() -> DateTime<Utc>,
    control: &Control,
    lock: &crate::store::JobLock,
) -> anyhow::Result<Option<RunSummary>> {
    use crate::store::Outcome;
    if store.due(&job.name, now())?.is_empty() {
        return Ok(None);
    }
    let run_id = store.begin_run(&job.name, now(), now())?;
    let (lines, left) =
        resume_into(config, job, store, sender, run_id, now, control, Some(lock)).await?;
    let mut summary = RunSummary {
        run_id,
        deliveries: lines.into_iter().map(|(_, l)| l).collect(),
        left_pending: left,
        ..RunSummary::default()
    };
    let (outcome, note) = if left > 0 {
        let note = format!(
            "stopped by a shutdown with {} left pending; they are sent at the next start",
            deliveries_count(left)
        );
        summary.error = Some(note.clone());
        (Outcome::Interrupted, note)
    } else if summary.failed() {
        (
            Outcome::Failed,
            format!(
                "finishing earlier runs' deliveries: {}",
                failure_headline(&summary.deliveries)
            ),
        )
    } else {
        (
            Outcome::Succeeded,
            format!(
                "finished {} of earlier runs",
                deliveries_count(summary.deliveries.len())
            ),
        )
    };
    store.finish_run(run_id, outcome, Some(&note), now())?;
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

/// Sends one claimed delivery as run `by_run` and records the result (a
/// transient failure is scheduled for the service to retry).
#[allow(clippy::too_many_arguments)]
async fn send_and_record<S: crate::deliver::Sender>(
    store: &crate::store::Store,
    sender: &S,
    item: &crate::outbox::Outgoing,
    key: &str,
    by_run: i64,
    parts_done: u32,
    now: &impl Fn() -> DateTime<Utc>,
    lock: Option<&crate::store::JobLock>,
) -> anyhow::Result<DeliveryOutcome> {
    use crate::deliver::Sent;
    use tracing::Instrument as _;
    // Retry warnings say which delivery they are about (never its URL).
    let span = tracing::warn_span!("delivery", target = %item.target, recipient = %item.recipient);
    let send = sender.send(item, key, parts_done).instrument(span);
    let dispatched = match lock {
        // A stall past the lease drops the send before another byte goes:
        // the replica that owns the job now sends it.
        Some(lock) => lock.guard(send).await?,
        None => send.await,
    };
    let attempted = dispatched.attempted;
    let error = attempted.result.as_ref().err().map(ToString::to_string);
    // An existing snapshot counts as delivered: it is what this run would have written.
    store.record(
        key,
        by_run,
        &crate::store::Attempt {
            attempts: attempted.attempts,
            parts_done: dispatched.parts_done,
            error: error.as_deref(),
            transient: attempted
                .result
                .as_ref()
                .err()
                .is_some_and(|e| e.is_transient()),
        },
        now(),
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

impl Stored {
    fn of(item: &crate::outbox::Outgoing) -> Self {
        Self {
            kind: item.kind.to_string(),
            target: item.target.clone(),
            webhook: item.webhook.clone(),
            team: item.team.clone(),
            recipient: item.recipient.clone(),
            summary: item.summary.clone(),
            payload: item.payload.clone(),
        }
    }
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
