//! `[[jobs]]`: each job's window, filters and options.

use super::*;

impl Cx<'_, '_> {
    pub(super) fn job(
        &mut self,
        job: &Spanned<RawJob>,
        default_tz: Tz,
        names: &Names<'_>,
    ) -> Option<Job> {
        let span = job.span();
        let job = job.get_ref();
        let table = "[[jobs]]";
        let name = self.require(&job.name, &span, "name", table).and_then(|n| {
            let text = n.get_ref();
            let valid = !text.is_empty()
                && text != "."
                && text != ".."
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                let shown = self.quote_short(n);
                self.problem(
                    n.span(),
                    format!("job name {shown} is not allowed: it names a folder, so use letters, digits, `_`, `.` and `-`"),
                );
                None
            } else if let Some(problem) = crate::names::path_component_problem(text) {
                let shown = self.quote_short(n);
                self.problem(
                    n.span(),
                    format!("job name {shown} is not allowed: {problem}"),
                );
                None
            } else {
                Some(text.clone())
            }
        });
        let schedule = self
            .require(&job.schedule, &span, "schedule", table)
            .and_then(|s| self.schedule(s));
        let timezone = match &job.timezone {
            Some(tz) => self.timezone(tz),
            None => Some(default_tz),
        };
        let window = self
            .require(&job.window, &span, "window", table)
            .and_then(|w| self.window(w));
        let per_team = job.per_team.as_ref().is_some_and(|p| *p.get_ref());
        let filters = self.filters(job.filters.as_ref(), job.per_team.as_ref(), names);
        let when_empty = match &job.when_empty {
            None => WhenEmpty::Skip,
            Some(w) => match w.get_ref().as_str() {
                "skip" => WhenEmpty::Skip,
                "send" => WhenEmpty::Send,
                _ => {
                    let shown = self.quote(w);
                    self.problem(
                        w.span(),
                        format!("unknown when_empty {shown}: use skip or send"),
                    );
                    WhenEmpty::Skip
                }
            },
        };
        let deliver = self
            .require(&job.deliver, &span, "deliver", table)
            .and_then(|list| {
                if list.get_ref().is_empty() {
                    self.problem(
                        list.span(),
                        "`deliver` is empty: a job needs at least one delivery",
                    );
                    return None;
                }
                self.deliveries(list.get_ref(), "digest", names)
            });
        let on_failure = match &job.on_failure {
            None => Some(Vec::new()),
            Some(list) => self.deliveries(list.get_ref(), "failure", names),
        };
        let source = match &job.source {
            None if self.mirror_enabled => Source::Mirror,
            None => Source::Api,
            Some(s) => match s.get_ref().as_str() {
                "mirror" if self.mirror_enabled => Source::Mirror,
                "mirror" => {
                    self.problem(
                        s.span(),
                        "`source = \"mirror\"` needs the mirror: remove `enabled = false` from [mirror], or use `source = \"api\"`",
                    );
                    Source::Api
                }
                "api" => Source::Api,
                _ => {
                    let shown = self.quote(s);
                    self.problem(
                        s.span(),
                        format!("unknown source {shown}: use mirror or api"),
                    );
                    Source::Api
                }
            },
        };
        if window.as_ref() == Some(&WindowSpec::Current) && source == Source::Api {
            let at = job.window.as_ref().map_or(span.clone(), |w| w.span());
            let why = if self.mirror_enabled {
                "this job has `source = \"api\"`"
            } else {
                "[mirror] has `enabled = false`"
            };
            self.problem(
                at,
                format!("`window = {{ current = true }}` reads the state of every assignment from the mirror, but {why}: enable the mirror and use `source = \"mirror\"`, or give the job a `last`/`previous` window"),
            );
        }
        let due_soon =
            chrono::Duration::from_std(self.duration(&job.due_soon, defaults::DUE_SOON, false))
                .unwrap_or(chrono::Duration::days(7));
        let trend = match &job.trend {
            None => defaults::TREND,
            Some(n) if (1..=MAX_TREND).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                self.problem(
                    n.span(),
                    format!("`trend = {}` is out of range: use 1 to {MAX_TREND} points (this fire and the ones before it)", n.get_ref()),
                );
                defaults::TREND
            }
        };
        let min_days_overdue = job
            .deliver
            .iter()
            .flat_map(|list| list.get_ref())
            .map(|d| match &d.get_ref().min_days_overdue {
                None => None,
                Some(n) if (0..=MAX_DAYS_OVERDUE).contains(n.get_ref()) => Some(*n.get_ref() as u32),
                Some(n) => {
                    self.problem(
                        n.span(),
                        format!("`min_days_overdue = {}` is out of range: use 0 to {MAX_DAYS_OVERDUE} whole days", n.get_ref()),
                    );
                    None
                }
            })
            .collect();
        if let Some(on_failure) = &job.on_failure {
            for d in on_failure.get_ref() {
                if let Some(n) = &d.get_ref().min_days_overdue {
                    self.problem(
                        n.span(),
                        "`min_days_overdue` narrows a report; an `on_failure` notice has none: remove it here",
                    );
                }
            }
        }
        Some(Job {
            name: name?,
            schedule: schedule?,
            timezone: timezone?,
            window: window?,
            filters: filters?,
            per_team,
            when_empty,
            deliver: deliver?,
            on_failure: on_failure?,
            source,
            due_soon,
            trend,
            min_days_overdue,
        })
    }

    pub(super) fn window(&mut self, window: &Spanned<RawWindow>) -> Option<WindowSpec> {
        let span = window.span();
        let w = window.get_ref();
        let forms: Vec<&str> = [
            ("last", w.last.is_some()),
            ("previous", w.previous.is_some()),
            ("since_last_run", w.since_last_run.is_some()),
            ("start/end", w.start.is_some() || w.end.is_some()),
            ("current", w.current.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if let (Some(max), None) = (&w.max, &w.since_last_run) {
            self.problem(max.span(), "`max` only goes with `since_last_run = true`");
        }
        match forms.as_slice() {
            [] => {
                self.problem(
                    span,
                    format!("the window names no form: write one of {WINDOW_FORMS}"),
                );
                None
            }
            ["last"] => {
                let last = w.last.as_ref()?;
                match parse_duration(last.get_ref()) {
                    Ok(d) if !d.is_zero() => Some(WindowSpec::Last(d)),
                    Ok(_) => {
                        self.problem(last.span(), "`last` must be longer than 0");
                        None
                    }
                    Err(message) => {
                        self.problem(last.span(), message);
                        None
                    }
                }
            }
            ["previous"] => {
                let previous = w.previous.as_ref()?;
                match Period::parse(previous.get_ref()) {
                    Some(period) => Some(WindowSpec::Previous(period)),
                    None => {
                        let shown = self.quote(previous);
                        self.problem(
                            previous.span(),
                            format!(
                                "unknown period {shown}: use day, week, month, quarter or year"
                            ),
                        );
                        None
                    }
                }
            }
            ["since_last_run"] => {
                let flag = w.since_last_run.as_ref()?;
                if !*flag.get_ref() {
                    self.problem(
                        flag.span(),
                        format!("`since_last_run = false` is not a window: set it to true, or write one of {WINDOW_FORMS}"),
                    );
                }
                let max = self.duration(&w.max, defaults::SINCE_LAST_RUN_MAX, false);
                flag.get_ref().then_some(WindowSpec::SinceLastRun { max })
            }
            ["current"] => {
                let flag = w.current.as_ref()?;
                if !*flag.get_ref() {
                    self.problem(
                        flag.span(),
                        format!("`current = false` is not a window: set it to true, or write one of {WINDOW_FORMS}"),
                    );
                }
                flag.get_ref().then_some(WindowSpec::Current)
            }
            ["start/end"] => {
                let start = self.require(&w.start, &span, "start", "the fixed window");
                let end = self.require(&w.end, &span, "end", "the fixed window");
                let start = start.and_then(|s| self.datetime(s, "start"));
                let end = end.and_then(|e| self.datetime(e, "end"));
                let (start, end) = (start?, end?);
                if start >= end {
                    self.problem(
                        span,
                        format!(
                            "the window's start ({}) must be before its end ({})",
                            start.to_rfc3339(),
                            end.to_rfc3339()
                        ),
                    );
                    return None;
                }
                Some(WindowSpec::Fixed { start, end })
            }
            several => {
                self.problem(
                    span,
                    format!(
                        "a window takes one form, found {}: write one of {WINDOW_FORMS}",
                        several
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
                None
            }
        }
    }

    /// A TOML offset datetime or an RFC 3339 string, as UTC.
    pub(super) fn datetime(
        &mut self,
        value: &Spanned<toml::Value>,
        key: &str,
    ) -> Option<DateTime<Utc>> {
        let parsed = match value.get_ref() {
            toml::Value::Datetime(dt) => {
                if dt.date.is_none() || dt.time.is_none() {
                    Err(format!(
                        "`{key}` needs a date and a time with an offset, {DATETIME_SHAPE}"
                    ))
                } else if dt.offset.is_none() {
                    Err(format!(
                        "`{key}` has no offset: add `Z` or `±hh:mm`, {DATETIME_SHAPE}"
                    ))
                } else {
                    DateTime::parse_from_rfc3339(&dt.to_string()).map_err(|e| {
                        format!("`{key}` is not a valid datetime ({e}), {DATETIME_SHAPE}")
                    })
                }
            }
            toml::Value::String(s) => DateTime::parse_from_rfc3339(s.trim()).map_err(|e| {
                format!(
                    "`{key}` is not an RFC 3339 datetime with an offset ({e}), {DATETIME_SHAPE}"
                )
            }),
            other => Err(format!(
                "`{key}` must be a datetime, found a {}; {DATETIME_SHAPE}",
                other.type_str()
            )),
        };
        match parsed {
            Ok(dt) => Some(dt.with_timezone(&Utc)),
            Err(message) => {
                self.problem(value.span(), message);
                None
            }
        }
    }

    pub(super) fn filters(
        &mut self,
        filters: Option<&Spanned<RawFilters>>,
        per_team: Option<&Spanned<bool>>,
        names: &Names<'_>,
    ) -> Option<Filters> {
        let mut out = Filters::default();
        let mut complete = true;
        if let Some(f) = filters.map(Spanned::get_ref) {
            if let Some(list) = &f.learners {
                out.learners = self.learner_ids(list);
            }
            out.courses = self.ids(&f.courses, "course");
            out.categories = self.ids(&f.categories, "category");
            let named = f
                .team
                .iter()
                .chain(f.teams.iter().flat_map(|t| t.get_ref()));
            for team in named {
                // A team made from a tag is known only at run time (a
                // name no child tag has fails the run, naming it).
                if names.teams.contains(team.get_ref().as_str()) || names.from_tags {
                    if !out.teams.contains(team.get_ref()) {
                        out.teams.push(team.get_ref().clone());
                    }
                } else {
                    complete = false;
                    self.undefined(team, "team", "[teams]", &names.teams);
                }
            }
            for status in f.status.iter().flat_map(|s| s.get_ref()) {
                if Status::FILTERABLE.contains(&status.get_ref().as_str()) {
                    out.status.push(Status::from_wire(status.get_ref()));
                } else {
                    let shown = self.quote(status);
                    self.problem(
                        status.span(),
                        format!(
                            "unknown status {shown}: use {}",
                            Status::FILTERABLE.join(", ")
                        ),
                    );
                }
            }
            out.overdue = f.overdue.as_ref().map(|o| *o.get_ref());
            out.include_deleted = f.include_deleted.as_ref().is_some_and(|d| *d.get_ref());
        }
        if let Some(flag) = per_team.filter(|p| *p.get_ref()) {
            if names.teams.is_empty() && !names.from_tags {
                complete = false;
                self.problem(
                    flag.span(),
                    "`per_team = true` needs teams: define at least one [teams.NAME] or [teams_from_tags]",
                );
            } else if out.teams.is_empty() {
                // Fanning out with no team filter means every team.
                out.teams = names.teams.iter().map(|t| t.to_string()).collect();
                out.every_team = true;
            }
        }
        complete.then_some(out)
    }

    /// Course or category ids: non-empty strings.
    pub(super) fn ids(&mut self, list: &Strings, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        for id in list.iter().flat_map(|l| l.get_ref()) {
            if id.get_ref().trim().is_empty() {
                self.problem(id.span(), format!("a {what} id cannot be empty"));
            } else {
                out.push(id.get_ref().trim().to_string());
            }
        }
        out
    }

    /// Reports a reference to a `[table.NAME]` that does not exist.
    pub(super) fn undefined(
        &mut self,
        name: &Spanned<String>,
        what: &str,
        table: &str,
        known: &BTreeSet<&str>,
    ) {
        let shown = self.quote(name);
        let mut message = format!("no {what} {shown} in {table}");
        if known.is_empty() {
            message.push_str(" (none is defined)");
        } else {
            let known: Vec<&str> = known.iter().copied().collect();
            message.push_str(&format!(" (defined: {})", known.join(", ")));
            if let Some(close) = closest(name.get_ref(), &known) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
        }
        self.problem(name.span(), message);
    }
}
