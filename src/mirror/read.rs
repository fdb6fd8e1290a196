//! A job's data read from the mirror, after a sync up to its fire instant.
//!
//! For the Part 1 window kinds the rule is the API's own, so the numbers are
//! the same either way: the versions created or modified in `[start, end)`
//! that pass the filters (as the stream endpoint applies them, to each
//! version), then the newest per id. For `current` windows: per id the
//! newest version before the fire instant, then the filters on that state
//! (overdue as of the fire instant, from `dueAtTime`).

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::MirrorStore;
use crate::config::{Config, Job, Source};
use crate::data::{HeldState, JobData, SourceCounts, StateSource, query_for};
use crate::learner::LearnerId;
use crate::samsara::{Assignment, AssignmentQuery, Client, Course, Dedup, FetchStats, Names};
use crate::window::{Window, WindowSpec};

/// Whether `job` reads from the mirror (`source = "mirror"` and the mirror enabled).
pub fn uses_mirror(config: &Config, job: &Job) -> bool {
    config.mirror.enabled && job.source == Source::Mirror
}

/// The job's data from the mirror, synced up to `fire` first. `None` when
/// the window starts before `mirror.since`, which the mirror cannot answer
/// exactly: the caller reads that window from the API instead. Without
/// `hold`, a current window's state is not read here but at each pass over
/// it ([`JobData::streamed`]), unless the job reports on more than
/// [`STREAMED_TEAMS_MAX`] teams.
pub async fn fetch(
    config: &Config,
    job: &Job,
    client: &Client,
    fire: DateTime<Utc>,
    window: Window,
    hold: bool,
) -> anyhow::Result<Option<JobData>> {
    let current = job.window == WindowSpec::Current;
    if !current && window.start < config.mirror.since {
        tracing::info!(
            job = %job.name,
            "the window starts before mirror.since ({}): reading it from the API",
            config.mirror.since
        );
        return Ok(None);
    }
    let mirror = super::open(config)?;
    let report = super::sync(mirror.as_ref(), client, &config.mirror, fire, None)
        .await
        .with_context(|| {
            format!(
                "job {}: fetching assignments: bringing the mirror up to {fire}",
                job.name
            )
        })?;
    let mirror_arc = mirror;
    let mirror = mirror_arc.as_ref();
    let mut names = names(mirror)?;
    // Membership as of the fire instant, from the tags just synced.
    let teams = super::teams_at(
        config,
        mirror,
        crate::teams::Wanted::For(&job.filters),
        fire,
    )
    .with_context(|| format!("job {}: resolving its teams", job.name))?;
    names.warnings.extend(teams.warnings.iter().cloned());
    let query = query_for(&job.filters, &teams, window);
    let mut streamed: Option<Arc<dyn StateSource>> = None;
    // Each reported team's files are another read of the whole state.
    let reported = teams.reported(job.per_team, &job.filters).len();
    let (assignments, received) = if let Some(query) = &query
        && current
        && !hold
        && reported <= STREAMED_TEAMS_MAX
    {
        // Counted as the first pass reads it.
        streamed = Some(Arc::new(MirrorState {
            mirror: Arc::clone(&mirror_arc),
            query: query.clone(),
            courses: names.courses.clone(),
            at: fire,
            include_deleted: job.filters.include_deleted,
            counts: Mutex::new(SourceCounts::default()),
            first: Mutex::new(None),
        }));
        (HeldState::default(), 0)
    } else if let Some(query) = &query
        && current
    {
        let mut received = 0;
        // A read that fails part-way fails the run: never a partial state reported as whole.
        let kept = state_as_of_counting(mirror, query, &names.courses, fire, &mut received)
            .with_context(|| format!("job {}: reading the state as of {fire}", job.name))?;
        (kept, received)
    } else if let Some(query) = &query {
        let (assignments, received) = window_assignments(mirror, query, &names.courses)?;
        (assignments.into(), received)
    } else {
        // The job's teams have nobody in them at the fire instant.
        (HeldState::default(), 0)
    };
    let stats = FetchStats {
        queries: 1,
        pages: report.stats.pages,
        received,
        duplicates: received - assignments.len() as u64,
    };
    let window = if current {
        Window {
            start: fire,
            end: fire,
        }
    } else {
        window
    };
    Ok(Some(JobData {
        window,
        assignments,
        names,
        stats,
        teams,
        query,
        history: None,
        streamed,
    }))
}

/// The most teams a job may report on for its state to be read at each
/// pass rather than held: every team's files (its archive, its email's
/// CSV) read the whole state again, so a job of many teams holds it once
/// instead.
pub const STREAMED_TEAMS_MAX: usize = 8;

/// A current window's state read again from the mirror at each pass:
/// the state as of `at` in the mirror's order, filtered as
/// [`state_as_of`] filters it.
pub struct MirrorState {
    mirror: Arc<dyn MirrorStore>,
    query: AssignmentQuery,
    courses: HashMap<String, Course>,
    at: DateTime<Utc>,
    include_deleted: bool,
    counts: Mutex<SourceCounts>,
    /// The fingerprint of the first pass: every later one must read the same states.
    first: Mutex<Option<u64>>,
}

impl std::fmt::Debug for MirrorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorState")
            .field("mirror", &self.mirror.location())
            .field("at", &self.at)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl StateSource for MirrorState {
    fn each(&self, each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let filter = Filter::new(&self.query, &self.courses);
        let instant = Window {
            start: self.at,
            end: self.at,
        };
        let mut counts = SourceCounts::default();
        // Which versions passed, in order: a later pass that reads others
        // (a sync's overlap or a rebuild committed meanwhile) fails.
        let mut fingerprint = rustc_hash::FxHasher::default();
        self.mirror.state_ordered_each(self.at, &mut |a| {
            counts.read += 1;
            if filter.passes_as_of(&a, self.at) {
                (&a.id, a.updated_at_time).hash(&mut fingerprint);
                counts.passed += 1;
                counts.included +=
                    u64::from(crate::report::included(&a, &instant, self.include_deleted));
                each(a)?;
            }
            Ok(())
        })?;
        let fingerprint = fingerprint.finish();
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        match *first {
            None => *first = Some(fingerprint),
            Some(f) => anyhow::ensure!(
                f == fingerprint,
                "the mirror's state as of {} changed between two reads of this run \
                 (a sync or a rebuild committed meanwhile): nothing is made of the second",
                self.at.to_rfc3339()
            ),
        }
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        Ok(())
    }

    fn counts(&self) -> SourceCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The API's answer to `query`, from the mirror: versions created or
/// modified in the window, filtered one by one, newest per id. Returns the
/// assignments and the number of versions that passed the filters.
pub fn window_assignments(
    mirror: &dyn MirrorStore,
    query: &AssignmentQuery,
    courses: &HashMap<String, Course>,
) -> anyhow::Result<(Vec<Assignment>, u64)> {
    let filter = Filter::new(query, courses);
    let mut dedup = Dedup::default();
    let mut received = 0;
    for a in mirror.versions_in(query.start, query.end)? {
        if filter.passes(&a, Overdue::Flag) {
            received += 1;
            dedup.insert(a);
        }
    }
    Ok((dedup.into_sorted(), received))
}

/// The state as of `at` of every assignment that passes `query`'s filters
/// (the `overdue` filter as of `at`, from `dueAtTime`): what a current
/// window at `at` reports, before teams.
pub fn state_as_of(
    mirror: &dyn MirrorStore,
    query: &AssignmentQuery,
    courses: &HashMap<String, Course>,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<Assignment>> {
    Ok(state_as_of_counting(mirror, query, courses, at, &mut 0)?.into_vec())
}

/// [`state_as_of`], counting in `received` every assignment read. The
/// filters are applied as the mirror reads each state, so only what
/// passes is held; sorted as [`MirrorStore::state_at`] sorts (filtering
/// first keeps the same order, the sort key being distinct per id).
fn state_as_of_counting(
    mirror: &dyn MirrorStore,
    query: &AssignmentQuery,
    courses: &HashMap<String, Course>,
    at: DateTime<Utc>,
    received: &mut u64,
) -> anyhow::Result<HeldState> {
    let filter = Filter::new(query, courses);
    let (kept, read) = mirror.state_kept(at, &|a| filter.passes_as_of(a, at))?;
    *received += read;
    Ok(kept)
}

/// Course titles and categories and learner names, from the mirror.
pub fn names(mirror: &dyn MirrorStore) -> anyhow::Result<Names> {
    let courses = mirror
        .courses()?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let learners = mirror
        .drivers_at(DateTime::<Utc>::MAX_UTC)?
        .into_iter()
        .filter(|d| !d.name.is_empty())
        .map(|d| (LearnerId::from_wire(&d.id, "driver"), d.name))
        .collect();
    Ok(Names {
        courses,
        learners,
        warnings: mirror.warnings()?,
        ..Names::default()
    })
}

/// How the `overdue` filter is read.
#[derive(Clone, Copy)]
enum Overdue {
    /// The API's stored `isOverdue` flag, as the stream endpoint filters.
    Flag,
    /// Computed as of an instant from `dueAtTime` (current windows).
    AsOf(DateTime<Utc>),
}

/// A query's filters, applied to one version at a time.
pub struct Filter<'a> {
    query: &'a AssignmentQuery,
    learners: FxHashSet<&'a LearnerId>,
    courses: FxHashSet<&'a str>,
    categories: FxHashSet<&'a str>,
    known: &'a HashMap<String, Course>,
}

impl<'a> Filter<'a> {
    /// The filters of `query`; `known` gives each course's category.
    pub fn new(query: &'a AssignmentQuery, known: &'a HashMap<String, Course>) -> Self {
        Self {
            query,
            learners: query.learner_ids.iter().collect(),
            courses: query.course_ids.iter().map(String::as_str).collect(),
            categories: query.category_ids.iter().map(String::as_str).collect(),
            known,
        }
    }

    /// Whether `a` (its state as of `at`) passes, `overdue` as of `at` from `dueAtTime`.
    pub fn passes_as_of(&self, a: &Assignment, at: DateTime<Utc>) -> bool {
        self.passes(a, Overdue::AsOf(at))
    }

    fn passes(&self, a: &Assignment, overdue: Overdue) -> bool {
        let q = self.query;
        (self.learners.is_empty() || self.learners.contains(&a.learner))
            && (self.courses.is_empty() || self.courses.contains(a.course.id.as_ref()))
            && (self.categories.is_empty()
                || self
                    .known
                    .get(&*a.course.id)
                    .and_then(|c| c.category.as_ref())
                    .is_some_and(|k| self.categories.contains(k.id.as_str())))
            && (q.status.is_empty() || q.status.contains(&a.status))
            && q.is_overdue.is_none_or(|want| {
                let is = match overdue {
                    Overdue::Flag => a.is_overdue == Some(true),
                    Overdue::AsOf(at) => crate::report::is_overdue(a, at),
                };
                is == want
            })
    }
}
