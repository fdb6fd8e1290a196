//! A run's fetched input: the window, the assignments and names, the teams
//! as of the fire, the stream query that was asked, and (for current
//! windows) the earlier states the report is compared with. Also how a
//! job's filters become that query.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Filters};
use crate::learner::LearnerId;
use crate::samsara::{Assignment, AssignmentQuery, FetchStats, Names};
use crate::window::Window;

/// The states a current-window report is compared with, read by the job
/// from the mirror: what `job::reports` needs besides the state now.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The job's previous scheduled fire, if the schedule has one.
    pub since: Option<DateTime<Utc>>,
    /// The job's report data as of `since` (filters applied as of `since`,
    /// every team together); `None` when `since` is before the mirror's
    /// reach (then `changes` is null).
    pub previous: Option<Vec<Assignment>>,
    /// The newest version before the fire of every assignment in
    /// `previous`, whatever the filters (to say how one was resolved).
    pub state_now: HashMap<std::sync::Arc<str>, Assignment>,
    /// The assignments due soon as of the fire with every filter but
    /// `overdue` applied (every team together).
    pub due_soon: Vec<Assignment>,
    /// Earlier trend points, oldest first, per (team, narrowing): the
    /// report's totals as of each earlier scheduled fire within the
    /// mirror's reach.
    pub trend: HashMap<(Option<String>, Option<u32>), Vec<TrendPoint>>,
    /// Each reported team's members as of `since` (teams from tags move).
    pub members_since: HashMap<String, HashSet<crate::learner::LearnerId>>,
}

/// One point of `trend`: the report's totals as of one scheduled fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// The fire instant (RFC 3339, job's timezone).
    pub at: String,
    /// Assignments in the report as of `at`.
    pub assignments: u64,
    /// Of them, overdue as of `at`.
    pub overdue: u64,
    /// Of them, completed.
    pub completed: u64,
    /// completed / assignments; null when there are none.
    pub completion_rate: Option<f64>,
}

/// What one fetch for a job brought back: deduplicated assignments and their names.
#[derive(Debug, Clone)]
pub struct JobData {
    pub window: Window,
    /// Deduplicated, in stream order; not yet filtered by `report::included`.
    pub assignments: HeldState,
    pub names: Names,
    pub stats: FetchStats,
    /// The job's teams with their members as of the fire instant.
    pub teams: crate::teams::Teams,
    /// The stream query the fetch asked (the archive manifest names it);
    /// `None` when the job's teams had nobody in them, so nothing was asked.
    pub query: Option<AssignmentQuery>,
    /// For current windows read from the mirror: the states the report is
    /// compared with (`changes`, `due_soon`, `trend`); `None` otherwise.
    pub history: Option<History>,
    /// When the state is not held but read again at each pass (a current
    /// window from the mirror whose deliveries read no list that grows
    /// with it): where from. `assignments` is then empty, and the counts
    /// are those of the latest pass ([`JobData::settle_counts`]).
    pub streamed: Option<Arc<dyn StateSource>>,
}

/// The order of a held state (what [`crate::mirror::sort_by_update`] sorts
/// by): `updatedAtTime`, then id, distinct per state.
pub(crate) fn by_update(a: &Assignment, b: &Assignment) -> std::cmp::Ordering {
    (a.updated_at_time, &a.id).cmp(&(b.updated_at_time, &b.id))
}

/// A held state: one list, or two each in [`crate::mirror::sort_by_update`]'s
/// order (a SQLite mirror's two halves, read on two threads at once),
/// read as one list in that order. Merging two halves as they are read
/// costs a comparison a state; merging them into a new list once moved
/// every state and held the state twice.
#[derive(Debug, Clone, Default)]
pub struct HeldState {
    first: Vec<Assignment>,
    second: Vec<Assignment>,
}

impl HeldState {
    /// Two lists, each sorted by [`crate::mirror::sort_by_update`], read
    /// as one in that order.
    pub fn merging(first: Vec<Assignment>, second: Vec<Assignment>) -> Self {
        Self { first, second }
    }

    /// The states in order.
    pub fn iter(&self) -> HeldIter<'_> {
        HeldIter {
            first: self.first.iter(),
            second: self.second.iter(),
        }
    }

    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.first.clear();
        self.second.clear();
    }

    /// The states in order, as one list.
    pub fn into_vec(self) -> Vec<Assignment> {
        if self.second.is_empty() {
            return self.first;
        }
        let mut all = Vec::with_capacity(self.len());
        let (mut first, mut second) = (self.first.into_iter(), self.second.into_iter());
        while let (Some(x), Some(y)) = (first.as_slice().first(), second.as_slice().first()) {
            let next = if by_update(x, y).is_le() {
                first.next()
            } else {
                second.next()
            };
            all.extend(next);
        }
        all.extend(first);
        all.extend(second);
        all
    }
}

/// One list, in its own order.
impl From<Vec<Assignment>> for HeldState {
    fn from(first: Vec<Assignment>) -> Self {
        Self {
            first,
            second: Vec::new(),
        }
    }
}

impl PartialEq for HeldState {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for &'a HeldState {
    type Item = &'a Assignment;
    type IntoIter = HeldIter<'a>;
    fn into_iter(self) -> HeldIter<'a> {
        self.iter()
    }
}

/// [`HeldState::iter`].
#[derive(Debug, Clone)]
pub struct HeldIter<'a> {
    first: std::slice::Iter<'a, Assignment>,
    second: std::slice::Iter<'a, Assignment>,
}

impl<'a> Iterator for HeldIter<'a> {
    type Item = &'a Assignment;

    fn next(&mut self) -> Option<&'a Assignment> {
        match (
            self.first.as_slice().first(),
            self.second.as_slice().first(),
        ) {
            (Some(x), Some(y)) if by_update(x, y).is_gt() => self.second.next(),
            (Some(_), _) => self.first.next(),
            (None, _) => self.second.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.first.len() + self.second.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for HeldIter<'_> {}

/// A state read again each time it is needed instead of held: a million
/// assignments cost a pass over the store each, not their memory.
pub trait StateSource: Send + Sync + std::fmt::Debug {
    /// Hands `each`, in the order a held state has (by `updatedAtTime`,
    /// then id), every assignment of the state that passes the job's
    /// filters. A pass that fails part-way returns its error: what `each`
    /// saw is then incomplete.
    fn each(&self, each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>) -> anyhow::Result<()>;
    /// Of the latest completed pass: the states read, those that passed
    /// the filters, and of them those a report counts (deleted ones only
    /// when the job includes them).
    fn counts(&self) -> SourceCounts;
}

/// [`StateSource::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub read: u64,
    pub passed: u64,
    pub included: u64,
}

impl JobData {
    /// The assignments fetched (deduplicated, before the window rule).
    pub fn fetched_count(&self) -> u64 {
        match &self.streamed {
            Some(source) => source.counts().passed,
            None => self.assignments.len() as u64,
        }
    }

    /// After a pass over a streamed state: its counts in `stats`, as a
    /// fetch that held the state would have counted them.
    pub fn settle_counts(&mut self) {
        if let Some(source) = &self.streamed {
            let counts = source.counts();
            self.stats.received = counts.read;
            self.stats.duplicates = counts.read - counts.passed;
        }
    }
}

/// The API query for a job's filters over `window`.
///
/// `learners` and the learners of `team`/`teams` are one list (their union):
/// both say which learners the job is about.
pub fn build_query(config: &Config, filters: &Filters, window: Window) -> AssignmentQuery {
    let mut learners: BTreeSet<LearnerId> = filters.learners.iter().cloned().collect();
    for team in &filters.teams {
        // Teams of tags have members only as of an instant: see `query_for`.
        if let Some(list) = config.teams.get(team).and_then(|t| t.learners()) {
            learners.extend(list.iter().cloned());
        }
    }
    AssignmentQuery {
        learner_ids: learners.into_iter().collect(),
        course_ids: filters.courses.clone(),
        category_ids: filters.categories.clone(),
        status: filters.status.clone(),
        is_overdue: filters.overdue,
        ..AssignmentQuery::new(window.start, window.end)
    }
}

/// The API query for a job's filters over `window`, with the members of
/// its teams as resolved for the fire instant. `None` when the filters name
/// teams and learners and nobody is in them: there is nobody to ask about
/// (an empty `learnerIds` would mean everybody).
pub fn query_for(
    filters: &Filters,
    teams: &crate::teams::Teams,
    window: Window,
) -> Option<AssignmentQuery> {
    let mut learners: BTreeSet<LearnerId> = filters.learners.iter().cloned().collect();
    let named = if filters.every_team {
        teams.names()
    } else {
        filters.teams.clone()
    };
    learners.extend(teams.members_of(&named));
    if learners.is_empty() && (filters.every_team || !filters.teams.is_empty()) {
        return None;
    }
    Some(AssignmentQuery {
        learner_ids: learners.into_iter().collect(),
        course_ids: filters.courses.clone(),
        category_ids: filters.categories.clone(),
        status: filters.status.clone(),
        is_overdue: filters.overdue,
        ..AssignmentQuery::new(window.start, window.end)
    })
}
