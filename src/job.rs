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
        job: JobInfo {
            name: job.name.clone(),
            schedule: job.schedule.expr.clone(),
            timezone: job.timezone.name().to_string(),
        },
        window: data.window,
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
