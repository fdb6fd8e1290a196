//! The configuration checks that need the rest of trainwatch: templates
//! compiled, and the dry render, every delivery of every job rendered and
//! addressed against synthetic reports, so that what would fail at 08:00 on
//! Monday fails now, in `validate`, at the config line that causes it.
//!
//! [`crate::config`] resolves the file without knowing about templates or
//! reports; it asks a `ConfigCheck` for these checks and reports their
//! problems at the config values concerned. [`load`] and [`load_str`] are the
//! full load every command uses.
//!
//! Compiling a template proves its syntax only; `{{ team.manger }}` compiles
//! and fails when rendered, and `{{ team.manager }}` renders empty for a team
//! without a manager. So each job gets, per team when it fans out, a report
//! with rows (every status, overdue, completed late, an unknown status) and,
//! when the job sends empty reports, one without; the real rollup builds
//! them and the real renderer renders them.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use toml::Spanned;

use crate::config::raw::{RawDelivery, RawJob};
use crate::config::{Config, ConfigCheck, ConfigErrors, Delivery, Job, WhenEmpty};
use crate::data::JobData;
use crate::learner::LearnerId;
use crate::render::{FailureContext, Renderer};
use crate::report::{JobInfo, Report, WindowInfo};
use crate::samsara::{Assignment, FetchStats, Names};
use crate::window::{self, Window};

/// The instant the synthetic reports are built for (a Monday 08:00 in
/// Chicago; any instant would do, a fixed one keeps messages stable).
const FIRE: &str = "2026-01-05T14:00:00Z";

/// Reads and resolves the configuration file at `path`, with every check:
/// what [`crate::config::load`] checks, templates compiled and every
/// delivery rendered.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    crate::config::load_with(path, &Checks)
}

/// [`load`] of configuration text as if read from `path`, taking `${VAR}`
/// values from `env`.
pub fn load_str(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    crate::config::load_str_with(source, path, env, &Checks)
}

/// The checks [`crate::config`] cannot make on its own: Tera and the dry render.
struct Checks;

impl ConfigCheck for Checks {
    fn templates_dir(&self, dir: &Path) -> Option<String> {
        // Every template must compile before anything runs.
        let err = Renderer::new(Some(dir)).err()?;
        let mut message = format!("in templates_dir: {err}");
        for c in crate::errors::causes(&err).skip(1) {
            message.push_str(&format!(": {}", first_line(&c.to_string())));
        }
        Some(message)
    }

    fn template_str(&self, source: &str) -> Result<(), String> {
        Renderer::check_str(source).map_err(|err| {
            std::error::Error::source(&err)
                .map(|c| format!(": {}", first_line(&c.to_string())))
                .unwrap_or_default()
        })
    }

    fn deliveries(
        &self,
        config: &Config,
        raw_jobs: &[&Spanned<RawJob>],
        problem: &mut dyn FnMut(Range<usize>, String),
    ) {
        deliveries(config, raw_jobs, problem);
    }
}

/// Renders every delivery of every job in `config` (whose jobs are
/// `raw_jobs`, in the same order), reporting failures at their spans.
fn deliveries(
    config: &Config,
    raw_jobs: &[&Spanned<RawJob>],
    diag: &mut dyn FnMut(Range<usize>, String),
) {
    // A templates_dir that does not compile was reported already.
    let Ok(renderer) = Renderer::new(config.templates_dir.as_deref()) else {
        return;
    };
    let fire: DateTime<Utc> = FIRE.parse().expect("a valid instant");
    for (job, raw) in config.jobs.iter().zip(raw_jobs) {
        let raw = raw.get_ref();
        let window = window::compute(&job.window, fire, job.timezone, None).unwrap_or(Window {
            start: fire - Duration::days(7),
            end: fire,
        });
        let mut datasets = vec![("", synthetic(config, job, window))];
        if job.when_empty == WhenEmpty::Send {
            let mut empty = synthetic(config, job, window);
            empty.assignments.clear();
            datasets.push((" (with nothing to report)", empty));
        }
        let mut reported = BTreeSet::new();
        for (empty, data) in &datasets {
            for report in crate::job::reports(config, job, data, fire) {
                let raw_deliver = raw.deliver.as_ref().map_or(&[][..], |d| d.get_ref());
                for (index, (delivery, raw_delivery)) in
                    job.deliver.iter().zip(raw_deliver).enumerate()
                {
                    // A narrowed delivery gets the report narrowed for it, and only that one.
                    if job.narrowing(index) != report.min_days_overdue {
                        continue;
                    }
                    let mut problems = Vec::new();
                    check_delivery(
                        config,
                        &renderer,
                        &report,
                        delivery,
                        raw_delivery,
                        &mut problems,
                    );
                    for (span, message) in problems {
                        // One report per problem, not one per team.
                        let key = (span.start, message.clone());
                        if reported.insert(key) {
                            let whom = for_whom(&report, empty);
                            // "…for team south, which has no manager" says it already.
                            let whom =
                                if message.contains(&format!("for team {}", whom_name(&report))) {
                                    String::new()
                                } else {
                                    whom
                                };
                            diag(span, format!("{message}{whom}"));
                        }
                    }
                }
            }
        }
        let raw_failure = raw.on_failure.as_ref().map_or(&[][..], |d| d.get_ref());
        for (delivery, raw_delivery) in job.on_failure.iter().zip(raw_failure) {
            if let (Delivery::Email(e), Some(raw_email)) = (delivery, &raw_delivery.get_ref().email)
            {
                let ctx = FailureContext {
                    job: JobInfo::of(job),
                    window: Some(WindowInfo::of(&window, job.timezone, job.window.kind())),
                    generated_at: fire.to_rfc3339(),
                    error: "fetching assignments: HTTP 503 Service Unavailable".into(),
                };
                if let Err(err) = renderer.failure_email(&ctx, e.subject.as_deref()) {
                    let span = raw_email
                        .get_ref()
                        .subject
                        .as_ref()
                        .or(raw_email.get_ref().template.as_ref())
                        .map_or(raw_email.span(), Spanned::span);
                    diag(
                        span,
                        format!("the failure email does not render: {}", causes(&err)),
                    );
                }
            }
        }
    }
}

/// ` (for team north-yard)`: which report a problem showed up in.
fn for_whom(report: &Report, empty: &str) -> String {
    match &report.team {
        Some(team) => format!(" (for team {}{empty})", team.name),
        None if !empty.is_empty() => empty.to_string(),
        None => String::new(),
    }
}

fn whom_name(report: &Report) -> &str {
    report.team.as_ref().map_or("", |t| t.name.as_str())
}

/// Renders one delivery of one report; problems go to `out` with the span
/// of the config value that causes them.
fn check_delivery(
    config: &Config,
    renderer: &Renderer,
    report: &Report,
    delivery: &Delivery,
    raw: &Spanned<RawDelivery>,
    out: &mut Vec<(Range<usize>, String)>,
) {
    let whole = raw.span();
    let raw = raw.get_ref();
    match delivery {
        Delivery::Email(e) => {
            let Some(raw_email) = &raw.email else { return };
            let email = raw_email.get_ref();
            for (field, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
                for address in list.iter().flat_map(|l| l.get_ref()) {
                    if let Some(message) = address_problem(renderer, report, address.get_ref()) {
                        out.push((address.span(), format!("{field} address {message}")));
                    }
                }
            }
            if let Some(subject) = &email.subject
                && let Err(err) = renderer.render_str(subject.get_ref(), report)
            {
                out.push((
                    subject.span(),
                    format!("this subject does not render: {}", causes(&err)),
                ));
            }
            // The subject was checked above; the body templates here.
            if let Err(err) = renderer.email(&e.template, report, Some("")) {
                let span = email
                    .template
                    .as_ref()
                    .map_or(raw_email.span(), Spanned::span);
                out.push((
                    span,
                    format!(
                        "template `{}` does not render: {}",
                        e.template,
                        causes(&err)
                    ),
                ));
            }
        }
        Delivery::Webhook(w) => {
            let Some(hook) = config.webhooks.get(&w.webhook) else {
                return;
            };
            let rendered = renderer
                .webhook(hook.kind, &w.template, report, w.include_assignments)
                .map(drop);
            if let Err(err) = rendered {
                let span = raw
                    .template
                    .as_ref()
                    .or(raw.webhook.as_ref())
                    .map_or(whole, Spanned::span);
                out.push((
                    span,
                    format!(
                        "template `{}` does not render for webhook {}: {}",
                        w.template,
                        w.webhook,
                        causes(&err)
                    ),
                ));
            }
        }
        Delivery::Archive(_) => {
            if let Err(err) = renderer.archive_html(report) {
                let span = raw.archive.as_ref().map_or(whole, Spanned::span);
                out.push((
                    span,
                    format!(
                        "the archive's {} does not render: {}",
                        crate::render::ARCHIVE_TEMPLATE,
                        causes(&err)
                    ),
                ));
            }
        }
    }
}

/// What is wrong with an address once rendered for `report`, if anything:
/// it does not render, renders empty (a team without a manager), or is not
/// a mailbox.
fn address_problem(renderer: &Renderer, report: &Report, source: &str) -> Option<String> {
    let rendered = match renderer.render_str(source, report) {
        Ok(r) => r,
        Err(err) => return Some(format!("`{source}` does not render: {}", causes(&err))),
    };
    let rendered = rendered.trim();
    if rendered.is_empty() {
        return Some(match &report.team {
            Some(team) if team.manager.is_none() && source.contains("manager") => format!(
                "`{source}` is empty for team {}, which has no `manager`: add \
                 `manager = \"Name <address>\"` to [teams.{}], or leave the team out of \
                 this job's `filters.teams`",
                team.name, team.name
            ),
            Some(team) if team.escalation.is_none() && source.contains("escalation") => format!(
                "`{source}` is empty for team {}, which has no `escalation`: add \
                 `escalation = \"Name <address>\"` to [teams.{}], or leave the team out of \
                 this job's `filters.teams`",
                team.name, team.name
            ),
            _ => format!("`{source}` renders empty"),
        });
    }
    if crate::mailbox::Mailbox::parse(rendered).is_err() {
        return Some(format!(
            "`{source}` renders `{rendered}`, which is not a mailbox: write `Name <address@example.com>` or `address@example.com`"
        ));
    }
    None
}

/// What went wrong, on one line: the innermost cause's first line (Tera
/// adds a code frame below it) without Tera's `error: ` prefix, after the
/// template location Tera's frame points at (`weekly.html:1:35`), if any.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let chain: Vec<String> = crate::errors::causes(err).map(|c| c.to_string()).collect();
    let innermost = chain.last().expect("the error itself");
    match innermost
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
    {
        Some(at) => {
            let first = first_line(innermost);
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // An inline template (an address, a subject) is quoted already.
            if at.starts_with("__tera") {
                first.to_string()
            } else {
                format!("{}: {first}", at.trim())
            }
        }
        // Not Tera's (a missing file, JSON a template broke): every level.
        None => chain
            .iter()
            .map(|c| first_line(c))
            .collect::<Vec<_>>()
            .join(": "),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim_end()
}

/// Synthetic data for `job` in `window`: for each learner the job can see
/// (its teams', its learner filter's, or one stand-in), an overdue
/// assignment, one in progress, one completed late and one with a status
/// this version does not know.
fn synthetic(config: &Config, job: &Job, window: Window) -> JobData {
    let teams = synthetic_teams(config, job);
    let mut learners: Vec<LearnerId> = teams
        .iter()
        .flat_map(|t| t.members.iter().take(2).cloned())
        .chain(job.filters.learners.iter().take(2).cloned())
        .collect();
    learners.sort();
    learners.dedup();
    if learners.is_empty() {
        learners.push(LearnerId::from_wire("1", "driver"));
    }
    let course = job
        .filters
        .courses
        .first()
        .cloned()
        .unwrap_or_else(|| "course-1".into());
    let at = |t: DateTime<Utc>| t.to_rfc3339();
    let inside = window.start + (window.end - window.start) / 2;
    let mut assignments = Vec::new();
    for (i, learner) in learners.iter().enumerate() {
        for (n, (status, due, completed)) in [
            ("notStarted", Some(window.end - Duration::days(12)), None),
            ("inProgress", Some(window.end + Duration::days(3)), None),
            (
                "completed",
                Some(inside - Duration::days(1)),
                Some(inside - Duration::hours(1)),
            ),
            ("expired", None, None),
        ]
        .into_iter()
        .enumerate()
        {
            let wire = serde_json::json!({
                "id": format!("synthetic-{i}-{n}"),
                "course": {"id": course},
                "learner": {"id": learner.as_str(), "type": "driver"},
                "status": status,
                "createdAtTime": at(inside - Duration::hours(2)),
                "updatedAtTime": at(inside),
                "durationMinutes": 15,
                "dueAtTime": due.map(at),
                "completedAtTime": completed.map(at),
                "scorePercent": completed.map(|_| 0.9),
            });
            if let Ok(a) = serde_json::from_value::<Assignment>(wire) {
                assignments.push(a);
            }
        }
    }
    let mut names = Names {
        learners: learners
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), format!("Learner {}", i + 1)))
            .collect(),
        ..Names::default()
    };
    if let Ok(c) = serde_json::from_value(serde_json::json!({
        "id": course,
        "title": "Sample course",
        "category": {"id": "cat-1", "name": "Safety"},
    })) {
        names.courses.insert(course.clone(), c);
    }
    let history = (job.window == crate::window::WindowSpec::Current)
        .then(|| synthetic_history(job, window.end, &assignments, &teams));
    JobData {
        window,
        assignments: assignments.into(),
        names,
        stats: FetchStats::default(),
        teams,
        query: None,
        history,
        streamed: None,
    }
}

/// What a current-window job is compared with, made up so that every part
/// of `changes` and `trend` has something to render: the overdue ones were
/// not overdue a week before, one assignment that was overdue then has been
/// completed, and every report has an earlier trend point.
fn synthetic_history(
    job: &Job,
    fire: DateTime<Utc>,
    assignments: &[Assignment],
    teams: &crate::teams::Teams,
) -> crate::report::History {
    let since = fire - Duration::days(7);
    let mut previous: Vec<Assignment> = assignments
        .iter()
        .filter(|a| !crate::report::is_overdue(a, fire))
        .cloned()
        .collect();
    let mut state_now = std::collections::HashMap::new();
    if let Some(first) = assignments.first() {
        let mut then = first.clone();
        then.id = "synthetic-resolved".into();
        then.status = crate::status::Status::NotStarted;
        then.due_at_time = Some(since - Duration::days(40));
        then.completed_at_time = None;
        let mut now = then.clone();
        now.status = crate::status::Status::Completed;
        now.completed_at_time = Some(fire - Duration::days(1));
        previous.push(then);
        state_now.insert(now.id.clone(), now);
    }
    let mut trend = std::collections::HashMap::new();
    let mut members_since = std::collections::HashMap::new();
    for team in crate::job::report_teams(teams, job) {
        let name = team.map(|t| t.team.name.clone());
        if let Some(t) = team {
            members_since.insert(t.team.name.clone(), t.members.iter().cloned().collect());
        }
        for n in crate::job::narrowings(job) {
            let point = crate::report::trend_point(since, previous.iter(), job.timezone);
            trend.insert((name.clone(), n), vec![point]);
        }
    }
    crate::report::History {
        since: Some(since),
        previous: Some(previous),
        state_now,
        due_soon: assignments
            .iter()
            .filter(|a| crate::report::is_due_soon(a, fire, job.due_soon))
            .cloned()
            .collect(),
        trend,
        members_since,
    }
}

/// The job's teams with stand-in members: a listed team's own learners, a
/// tag's team two stand-ins. A team made from a tag is known only at run
/// time; one stands in for them all, with the first manager of
/// `teams_from_tags.managers` (one without a manager is skipped at run
/// time by design, so none is checked).
fn synthetic_teams(config: &Config, job: &Job) -> crate::teams::Teams {
    use crate::config::Members;
    use crate::teams::{Resolved, Teams};
    let mut teams = Teams::default();
    let stand_ins = |n: usize| -> BTreeSet<LearnerId> {
        (0..2)
            .map(|i| LearnerId::from_wire(&format!("9{n}{i}"), "driver"))
            .collect()
    };
    let wanted: Vec<&crate::config::Team> = config
        .teams
        .values()
        .filter(|t| job.filters.every_team || job.filters.teams.contains(&t.name))
        .collect();
    for (n, team) in wanted.into_iter().enumerate() {
        let members = match &team.members {
            Members::Learners(list) => list.iter().cloned().collect(),
            _ => stand_ins(n),
        };
        teams.insert(Resolved {
            team: team.clone(),
            members,
            source: String::new(),
        });
    }
    if let Some(from) = &config.teams_from_tags {
        let mut names: Vec<String> = job
            .filters
            .teams
            .iter()
            .filter(|t| !config.teams.contains_key(*t))
            .cloned()
            .collect();
        let first = from.managers.iter().next();
        if names.is_empty() && job.filters.every_team {
            names.push(first.map_or_else(
                || "from-tags".to_string(),
                |(tag, _)| crate::names::path_component(tag),
            ));
        }
        for (n, name) in names.into_iter().enumerate() {
            let Some((_, manager)) = first else { continue };
            teams.insert(Resolved {
                team: crate::config::Team {
                    name,
                    display_name: None,
                    manager: Some(manager.clone()),
                    escalation: from.escalation.clone(),
                    members: Members::FromTags(String::new()),
                },
                members: stand_ins(100 + n),
                source: "teams_from_tags".into(),
            });
        }
    }
    teams
}
