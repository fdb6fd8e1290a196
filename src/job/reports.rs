//! A run's reports from its data: every report of the run (each team, each
//! narrowing) built in one pass over the state, held or read again from
//! the mirror.

use std::convert::Infallible;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{JobData, narrowings, report_teams};
use crate::config::{Config, Job};
use crate::data::HeldState;
use crate::learner::LearnerId;
use crate::report::{self, JobInfo, Meta, Report, Rollup, TeamInfo, TrendCount};
use crate::samsara::Assignment;

/// The reports of a run: one per team, in name order, when the job fans out
/// (a learner in two teams is in both), otherwise exactly one; and after
/// each, one per distinct `min_days_overdue` of the job's deliveries, built
/// from only the assignments overdue that many whole days (its totals,
/// `changes` and `trend` recomputed on that narrower set). The teams and
/// their members are `data.teams`, resolved for the fire instant; a
/// current-window report read from the mirror also gets `changes`,
/// `due_soon` and `trend`, each with the membership of its own instant.
///
/// Of a held state (`data.assignments`); a streamed one is read by
/// [`reports_holding`].
pub fn reports(
    config: &Config,
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
) -> Vec<Report> {
    reports_keeping(config, job, data, generated_at, report::Keep::ALL)
}

/// [`reports`] with only the lists `keep` asks for (what the job's
/// deliveries read, [`crate::render::Renderer::keeps`]); every total the same.
pub fn reports_keeping(
    _config: &Config,
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
    keep: report::Keep,
) -> Vec<Report> {
    of_held(job, data, generated_at, keep, None)
}

/// The reports of a held state (`data.assignments`): a pass that cannot fail.
fn of_held(
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
    keep: report::Keep,
    held: Option<usize>,
) -> Vec<Report> {
    let Ok(reports) = build(
        job,
        data,
        generated_at,
        keep,
        held,
        Pass::<Infallible>::Held(&data.assignments),
    );
    reports
}

/// [`reports_keeping`]; with `held` `Some(n)`, each report holds only its
/// first `n` rows ([`crate::render::Renderer::rows_held`]), and its
/// files are written from `data` ([`report::RowSource`]). A streamed state
/// ([`JobData::streamed`]) is read once here, for every report together; a
/// read that fails fails the reports (never a partial state reported).
pub fn reports_holding(
    _config: &Config,
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
    keep: report::Keep,
    held: Option<usize>,
) -> anyhow::Result<Vec<Report>> {
    match &data.streamed {
        None => Ok(of_held(job, data, generated_at, keep, held)),
        Some(source) => {
            anyhow::ensure!(
                data.history.as_ref().is_none_or(|h| h.previous.is_none()),
                "a streamed state has no `changes` to compare with: the state must be held"
            );
            build(
                job,
                data,
                generated_at,
                keep,
                held,
                Pass::Once(Box::new(|each| {
                    source.each(&mut |a| {
                        each(&a);
                        Ok(())
                    })
                })),
            )
            .with_context(|| format!("job {}: reading the state as of the fire", job.name))
        }
    }
}

/// How [`build`] reads a state.
enum Pass<'p, E> {
    /// Held: read as often as wanted, so several threads can each fold
    /// some of the reports over the whole of it.
    Held(&'p HeldState),
    /// Handed on once, in order, for every report together.
    Once(Box<OnePass<'p, E>>),
}

/// A read that hands each assignment of a state to its argument, once.
type OnePass<'p, E> = dyn FnOnce(&mut dyn FnMut(&Assignment)) -> Result<(), E> + 'p;

/// A held state at least this large is folded on several threads.
const PARALLEL_FROM: usize = 20_000;

/// The most learner addresses a thread of [`fold_held`] remembers.
const TEAMS_BY_ADDRESS_MAX: usize = 65_536;

/// What adding an assignment to the reports of a run needs: which reports
/// each learner is in, the narrowings, the window.
struct Fold<'a> {
    /// The reports of the whole job (no team).
    whole: Vec<usize>,
    /// Each learner's teams' reports.
    teams_of: FxHashMap<&'a LearnerId, Vec<usize>>,
    narrowings: Vec<Option<u32>>,
    fire: DateTime<Utc>,
    window: &'a crate::window::Window,
    include_deleted: bool,
    trend: bool,
}

impl Fold<'_> {
    /// Adds `a` to the reports of teams `first..` (each with its
    /// narrowings) that `rollups` and `points` hold, and to no other.
    fn add(&self, a: &Assignment, first: usize, rollups: &mut [Rollup], points: &mut [TrendCount]) {
        self.add_in(a, self.teams(&a.learner), first, rollups, points);
    }

    /// The reports of `learner`'s teams.
    fn teams(&self, learner: &LearnerId) -> &[usize] {
        self.teams_of.get(learner).map_or(&[], Vec::as_slice)
    }

    /// [`Fold::add`] of an assignment whose learner's teams' reports are `mine`.
    fn add_in(
        &self,
        a: &Assignment,
        mine: &[usize],
        first: usize,
        rollups: &mut [Rollup],
        points: &mut [TrendCount],
    ) {
        let per = self.narrowings.len();
        let teams = first..first + rollups.len() / per;
        for &k in self.whole.iter().chain(mine) {
            if !teams.contains(&k) {
                continue;
            }
            for (j, &n) in self.narrowings.iter().enumerate() {
                if report::narrowed(a, self.fire, n) {
                    let i = (k - first) * per + j;
                    rollups[i].add(a);
                    if self.trend && report::included(a, self.window, self.include_deleted) {
                        points[i].add(a, self.fire);
                    }
                }
            }
        }
    }
}

/// The reports of `data`, whose state `pass` hands on.
fn build<E>(
    job: &Job,
    data: &JobData,
    generated_at: DateTime<Utc>,
    keep: report::Keep,
    held: Option<usize>,
    pass: Pass<'_, E>,
) -> Result<Vec<Report>, E> {
    let fire = data.window.end;
    let tz = job.timezone;
    let include_deleted = job.filters.include_deleted;
    let teams = report_teams(&data.teams, job);
    let metas: Vec<Meta> = teams
        .iter()
        .map(|resolved| Meta {
            job: JobInfo::of(job),
            window: data.window,
            kind: job.window.kind(),
            timezone: job.timezone,
            generated_at,
            team: resolved.map(|r| {
                let team = &r.team;
                TeamInfo {
                    name: team.name.clone(),
                    display_name: team
                        .display_name
                        .clone()
                        .unwrap_or_else(|| team.name.clone()),
                    manager: team.manager.clone(),
                    escalation: team.escalation.clone(),
                }
            }),
            include_deleted,
        })
        .collect();
    let members_now: Vec<Option<FxHashSet<&LearnerId>>> = teams
        .iter()
        .map(|resolved| resolved.map(|r| r.members.iter().collect()))
        .collect();
    let mut teams_of: FxHashMap<&LearnerId, Vec<usize>> = FxHashMap::default();
    for (k, members) in members_now.iter().enumerate() {
        for &learner in members.iter().flatten() {
            teams_of.entry(learner).or_default().push(k);
        }
    }
    let fold = Fold {
        // Which reports each learner is in: those of the whole job, and their teams'.
        whole: (0..teams.len())
            .filter(|&k| members_now[k].is_none())
            .collect(),
        teams_of,
        narrowings: narrowings(job),
        fire,
        window: &data.window,
        include_deleted,
        trend: data.history.is_some(),
    };
    let per = fold.narrowings.len();
    let mut rollups: Vec<Rollup> = metas
        .iter()
        .flat_map(|meta| (0..per).map(move |_| Rollup::new(meta, &data.names, keep, held)))
        .collect();
    let mut points = vec![TrendCount::default(); rollups.len()];
    let finished: Vec<(Report, TrendCount)> = match pass {
        Pass::Once(pass) => {
            pass(&mut |a| fold.add(a, 0, &mut rollups, &mut points))?;
            finish(rollups, points)
        }
        Pass::Held(state) => {
            // Several teams' reports over a large state: each thread folds
            // (and finishes) the reports of some teams over the whole of it.
            let threads = if state.len() < PARALLEL_FROM {
                1
            } else {
                std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(teams.len())
            };
            fold_held(&fold, state, rollups, points, threads)
        }
    };

    let is_member = |members: &Option<FxHashSet<&LearnerId>>, a: &Assignment| {
        members.as_ref().is_none_or(|m| m.contains(&a.learner))
    };
    let mut out = Vec::with_capacity(finished.len());
    for (i, (mut report, point)) in finished.into_iter().enumerate() {
        let (k, n) = (i / per, fold.narrowings[i % per]);
        let team = teams[k].map(|r| &r.team);
        report.min_days_overdue = n;
        if let Some(history) = &data.history {
            if let (Some(since), Some(previous)) = (history.since, &history.previous) {
                let counted: Vec<&Assignment> = data
                    .assignments
                    .iter()
                    .filter(|a| {
                        is_member(&members_now[k], a)
                            && report::narrowed(a, fire, n)
                            && report::included(a, &data.window, include_deleted)
                    })
                    .collect();
                // Membership as of `since`: who has left the team since
                // shows as "left the report", who joined as new.
                let members_then: Option<FxHashSet<&LearnerId>> = team.map(|t| {
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
                            && report::included(a, &data.window, include_deleted)
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
                    .filter(|a| is_member(&members_now[k], a) && report::narrowed(a, fire, n)),
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
            trend.push(point.point(fire, tz));
            report.trend = trend;
        }
        out.push(report);
    }
    Ok(out)
}

/// The reports of `rollups` (each team's narrowings together) over
/// `state`, folded on `threads` threads (this one among them), each the
/// reports of some contiguous teams over the whole state. Each report
/// still sees every assignment in the state's order, so its numbers are
/// those of one thread, to the bit.
fn fold_held(
    fold: &Fold<'_>,
    state: &HeldState,
    mut rollups: Vec<Rollup>,
    mut points: Vec<TrendCount>,
    threads: usize,
) -> Vec<(Report, TrendCount)> {
    let per = fold.narrowings.len();
    let (teams, threads) = (rollups.len() / per, threads.max(1));
    // Split from the end: the first threads take one team more.
    let mut groups = Vec::with_capacity(threads);
    for t in (0..threads).rev() {
        let size = teams / threads + usize::from(t < teams % threads);
        let at = rollups.len() - size * per;
        groups.push((at / per, rollups.split_off(at), points.split_off(at)));
    }
    groups.reverse();
    let fold_group = |(first, mut rollups, mut points): (usize, Vec<Rollup>, Vec<TrendCount>)| {
        // Each learner's teams by the address of the learner's id: a read
        // of the mirror shares one id among its rows, and the state is
        // borrowed for the whole fold, so an address is one learner's
        // throughout. Comparing addresses instead of ids is most of the
        // lookup's cost saved; a state whose ids are not shared (from the
        // API) stops adding at `TEAMS_BY_ADDRESS_MAX`.
        let mut by_address: FxHashMap<(usize, usize), &[usize]> = FxHashMap::default();
        for a in state {
            let id = a.learner.as_str();
            let address = (id.as_ptr() as usize, id.len());
            let mine = match by_address.get(&address) {
                Some(&mine) => mine,
                None => {
                    let mine = fold.teams(&a.learner);
                    if by_address.len() < TEAMS_BY_ADDRESS_MAX {
                        by_address.insert(address, mine);
                    }
                    mine
                }
            };
            fold.add_in(a, mine, first, &mut rollups, &mut points);
        }
        finish(rollups, points)
    };
    std::thread::scope(|scope| {
        let mut groups = groups.into_iter();
        let mine = groups.next();
        let others: Vec<_> = groups.map(|g| scope.spawn(move || fold_group(g))).collect();
        let mut out = mine.map(fold_group).unwrap_or_default();
        for other in others {
            match other.join() {
                Ok(reports) => out.extend(reports),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Each report of `rollups`, with its trend count.
fn finish(rollups: Vec<Rollup>, points: Vec<TrendCount>) -> Vec<(Report, TrendCount)> {
    rollups
        .into_iter()
        .map(Rollup::finish)
        .zip(points)
        .collect()
}
