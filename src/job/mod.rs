//! The one place that sequences a run: window → query → fetch → names →
//! reports. The stages do not know about each other; this module does.

use std::collections::{BTreeSet, HashMap, HashSet};

use rustc_hash::FxHashSet;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::config::{Config, Job};
use crate::learner::LearnerId;
use crate::report::{self, History};
use crate::samsara::{Assignment, Client, Names};
use crate::window::{self, Window};

pub use crate::data::JobData;

// Here, not in `data`: which assignments count is the report's rule.
impl JobData {
    /// The assignments a report of this job counts (window rule, deleted ones).
    /// Of a streamed state, none: see [`JobData::included_count`].
    pub fn included<'a>(&'a self, job: &'a Job) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| report::included(a, &self.window, job.filters.include_deleted))
    }

    /// How many assignments a report of this job counts (before teams); of
    /// a streamed state, as its latest pass counted them.
    pub fn included_count(&self, job: &Job) -> u64 {
        match &self.streamed {
            Some(source) => source.counts().included,
            None => self.included(job).count() as u64,
        }
    }
}

mod prepare;
mod reports;
mod run;

pub use crate::ledger::{
    Control, DeliveryLine, DeliveryOutcome, LOCK_WAIT, RunSummary, failure_detail,
    failure_headline, lost_lease, resume_pending,
};
pub use prepare::{Context, Prepared, Upto};
pub use reports::{reports, reports_holding, reports_keeping};
pub use run::{Run, run, run_controlled};

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
    fetch_reading(config, job, client, fire, last_success_end, true).await
}

/// [`fetch`] for reports whose deliveries read no detail list
/// (`details` false, see [`report::Keep`]): the previous fire's state for
/// `changes` and the state now for `due_soon` are then not read at all;
/// `trend` still is.
pub async fn fetch_reading(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
    details: bool,
) -> anyhow::Result<JobData> {
    fetch_with(
        config,
        job,
        client,
        fire,
        last_success_end,
        Some(details),
        true,
    )
    .await
}

/// [`fetch`] without the earlier states: the assignments alone (`export`).
pub async fn fetch_assignments(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
) -> anyhow::Result<JobData> {
    fetch_with(config, job, client, fire, last_success_end, None, true).await
}

/// [`fetch`], [`fetch_reading`] or [`fetch_assignments`]; without `hold`, a
/// current window's state from the mirror is read at each pass over it
/// instead of held ([`JobData::streamed`]).
pub(crate) async fn fetch_with(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    last_success_end: Option<DateTime<Utc>>,
    // `None`: no history; `Some(details)`: with the states detail lists need when `details`.
    with_history: Option<bool>,
    hold: bool,
) -> anyhow::Result<JobData> {
    let window = window::compute(&job.window, fire, job.timezone, last_success_end)
        .with_context(|| format!("job {}: computing its window", job.name))?;
    if crate::mirror::uses_mirror(config, job)
        && let Some(mut data) =
            crate::mirror::fetch(config, job, client, fire, window, hold).await?
    {
        if let Some(details) = with_history
            && job.window == window::WindowSpec::Current
        {
            data.history = Some(
                history_reading(config, job, fire, &data.names, &data.teams, details)
                    .with_context(|| {
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
    let query = crate::data::query_for(&job.filters, &teams, window);
    let fetched = match &query {
        Some(query) => client
            .fetch_assignments(query)
            .await
            .with_context(|| format!("job {}: fetching assignments in {window}", job.name))?,
        // Its teams have nobody in them now: nothing to ask for.
        None => crate::samsara::Fetched::default(),
    };
    let course_ids: Vec<String> = fetched
        .assignments
        .iter()
        .map(|a| a.course.id.to_string())
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
        assignments: fetched.assignments.into(),
        names,
        stats: fetched.stats,
        teams,
        query,
        history: None,
        streamed: None,
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
    teams.reported(job.per_team, &job.filters)
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
/// mirror's reach (counted into trend points as the mirror hands each
/// state on, nothing of it held), the previous fire's kept whole for
/// `changes`, and the state now of what `changes` and `due_soon` look up.
pub fn history(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    names: &Names,
    teams_now: &crate::teams::Teams,
) -> anyhow::Result<History> {
    history_reading(config, job, fire, names, teams_now, true)
}

/// [`history`]; without `details`, only the trend points: `previous`,
/// `state_now` and `due_soon` stay empty and are never read (no delivery
/// of the job reads `changes` or `due_soon`).
pub fn history_reading(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    names: &Names,
    teams_now: &crate::teams::Teams,
    details: bool,
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
    let include_deleted = job.filters.include_deleted;
    for (i, &at) in earlier.iter().enumerate() {
        let in_trend = i >= trend_from;
        let is_since = Some(at) == since;
        if !within(at) || !(in_trend || is_since) {
            continue;
        }
        // Membership as of that instant: a driver who moved teams since
        // counts where they were then.
        let teams_at =
            crate::mirror::teams_at(config, mirror, crate::teams::Wanted::For(&job.filters), at)
                .with_context(|| format!("resolving the teams as of {}", at.to_rfc3339()))?;
        let instant = Window { start: at, end: at };
        let members: Vec<Option<FxHashSet<&LearnerId>>> = report_names
            .iter()
            .map(|name| {
                name.as_ref().map(|n| {
                    teams_at
                        .get(n)
                        .map(|r| r.members.iter().collect())
                        .unwrap_or_default()
                })
            })
            .collect();
        let keep_previous = details && is_since;
        let mut counts = vec![report::TrendCount::default(); members.len() * narrowings.len()];
        let mut previous = Vec::new();
        let query = crate::data::query_for(&job.filters, &teams_at, instant);
        if let Some(query) = query.filter(|_| in_trend || keep_previous) {
            let filter = crate::mirror::read::Filter::new(&query, &names.courses);
            mirror.state_each(at, &mut |a| {
                if !filter.passes_as_of(&a, at) {
                    return Ok(());
                }
                if in_trend && report::included(&a, &instant, include_deleted) {
                    for (k, m) in members.iter().enumerate() {
                        if m.as_ref().is_none_or(|m| m.contains(&a.learner)) {
                            for (j, &n) in narrowings.iter().enumerate() {
                                if report::narrowed(&a, at, n) {
                                    counts[k * narrowings.len() + j].add(&a, at);
                                }
                            }
                        }
                    }
                }
                if keep_previous {
                    previous.push(a);
                }
                Ok(())
            })?;
        }
        if in_trend {
            for (k, name) in report_names.iter().enumerate() {
                for (j, &n) in narrowings.iter().enumerate() {
                    let point = counts[k * narrowings.len() + j].point(at, job.timezone);
                    history
                        .trend
                        .entry((name.clone(), n))
                        .or_default()
                        .push(point);
                }
            }
        }
        if is_since {
            for (name, m) in report_names.iter().zip(&members) {
                if let (Some(name), Some(m)) = (name, m) {
                    let m: HashSet<LearnerId> = m.iter().map(|&l| l.clone()).collect();
                    history.members_since.insert(name.clone(), m);
                }
            }
            if details {
                // In the order the mirror's whole state has (the sort key is distinct per id).
                crate::mirror::sort_by_update(&mut previous);
                history.previous = Some(previous);
            }
        }
    }
    if !details {
        return Ok(history);
    }
    // The state now, unfiltered, for how each earlier-overdue one resolved,
    // and every filter but `overdue` for what is due soon.
    let ids: FxHashSet<&str> = history
        .previous
        .iter()
        .flatten()
        .map(|a| a.id.as_ref())
        .collect();
    let now = Window {
        start: fire,
        end: fire,
    };
    let pool = crate::data::query_for(&job.filters, teams_now, now).map(|mut query| {
        query.is_overdue = None;
        query
    });
    let pool = pool
        .as_ref()
        .map(|q| crate::mirror::read::Filter::new(q, &names.courses));
    let mut state_now = HashMap::new();
    let mut due_soon = Vec::new();
    mirror.state_each(fire, &mut |a| {
        if report::is_due_soon(&a, fire, job.due_soon)
            && pool.as_ref().is_some_and(|p| p.passes_as_of(&a, fire))
        {
            due_soon.push(a.clone());
        }
        if ids.contains(a.id.as_ref()) {
            state_now.insert(a.id.clone(), a);
        }
        Ok(())
    })?;
    crate::mirror::sort_by_update(&mut due_soon);
    history.due_soon = due_soon;
    history.state_now = state_now;
    Ok(history)
}
