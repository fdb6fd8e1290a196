//! Raw structs → typed [`Config`], collecting every semantic problem.
//!
//! Each check reports at the span of the value concerned (or of the table,
//! when a key is missing) and carries on with a default, so one mistake
//! does not hide the next.
//!
//! One file per section of the config: `samsara`, `smtp`, `webhooks`,
//! `teams`, `jobs` (with `schedule`) and `deliveries`; this one holds the
//! top level, `[server]`, `[store]`, `[mirror]` and the shared helpers.

mod deliveries;
mod jobs;
mod samsara;
mod schedule;
mod smtp;
mod teams;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use secrecy::SecretString;
use toml::Spanned;
use toml::de::DeTable;
use url::Url;

use super::diag::Diag;
use super::raw::{
    self, Opt, RawConfig, RawDelivery, RawFilters, RawJob, RawWindow, Strings, closest,
};
use super::types::*;
use super::{BUILTIN_TEMPLATES, ConfigCheck, env, parse_duration};
use crate::defaults;
use crate::learner::LearnerId;
use crate::mailbox::Mailbox;
use crate::status::Status;
use crate::window::{Period, WindowSpec};

/// At most this many trend points: each costs one read of the mirror's state.
const MAX_TREND: i64 = 52;
/// At most a century of days overdue (as durations are bounded).
const MAX_DAYS_OVERDUE: i64 = 36_525;
const CRON_SHAPE: &str = "expected 5 fields `MIN HOUR DAY MONTH WEEKDAY` (like `0 8 * * Mon`) \
     or 6 with seconds first `SEC MIN HOUR DAY MONTH WEEKDAY` (like `30 0 8 * * Mon`)";
const WINDOW_FORMS: &str = "`{ last = \"7d\" }`, `{ previous = \"week\" }`, \
     `{ since_last_run = true, max = \"30d\" }`, `{ start = …, end = … }` or `{ current = true }`";
const MAILBOX_SHAPE: &str = "write `Name <address@example.com>` or `address@example.com`";
const DATETIME_SHAPE: &str = "like `2026-01-01T00:00:00Z` or `2026-01-01T00:00:00-06:00`";

/// Parses, substitutes, deserializes and resolves; `None` when anything
/// required could not be resolved (the problems are in `diag`).
pub(crate) fn load(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: &dyn ConfigCheck,
    diag: &mut Diag<'_>,
) -> Option<Config> {
    let (mut root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        // The recovered tree holds guesses; checking them would only add
        // confusing follow-up problems to the real ones.
        for err in syntax_errors {
            diag.push(err.span().unwrap_or(0..0), err.message().to_string());
        }
        return None;
    }
    env::substitute(root.get_mut(), env, diag);
    let raw = raw::deserialize(root, diag)?;
    // Paths resolve against the config file's real folder, so the same
    // config gives the same paths (and the same delivery keys) however it
    // was named on the command line.
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let base = std::fs::canonicalize(parent)
        .or_else(|_| std::path::absolute(parent))
        .unwrap_or_else(|_| parent.to_path_buf());
    let mut cx = Cx {
        diag,
        check,
        base,
        template_files: None,
        mirror_enabled: true,
    };
    cx.config(raw, path)
}

struct Cx<'d, 's> {
    diag: &'d mut Diag<'s>,
    /// The checks that need templates and reports ([`crate::check`]).
    check: &'d dyn ConfigCheck,
    /// The config file's folder: relative paths are taken from here.
    base: PathBuf,
    /// Template names found in `templates_dir` (file names up to the first dot).
    template_files: Option<(PathBuf, BTreeSet<String>)>,
    /// `mirror.enabled`, resolved before the jobs (their `source` depends on it).
    mirror_enabled: bool,
}

/// The span of the top-level table.
const ROOT: Range<usize> = 0..0;

impl Cx<'_, '_> {
    pub(super) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diag.push(span, message);
    }

    /// The value of a required key, or a problem at its table's span.
    pub(super) fn require<'r, T>(
        &mut self,
        value: &'r Opt<T>,
        table: &Range<usize>,
        key: &str,
        table_name: &str,
    ) -> Option<&'r Spanned<T>> {
        if value.is_none() && !self.diag.was_pruned(table.start, key) {
            self.problem(
                table.clone(),
                format!("missing required key `{key}` in {table_name}"),
            );
        }
        value.as_ref()
    }

    pub(super) fn quote(&self, value: &Spanned<String>) -> String {
        self.diag.quote(&value.span(), value.get_ref())
    }

    /// Like [`Self::quote`], but a long or multi-line value is shown on one
    /// line and cut short.
    pub(super) fn quote_short(&self, value: &Spanned<String>) -> String {
        if self.diag.is_substituted(&value.span()) {
            self.quote(value)
        } else {
            shown_name(value.get_ref())
        }
    }

    fn config(&mut self, raw: RawConfig, path: &Path) -> Option<Config> {
        let timezone = raw
            .timezone
            .as_ref()
            .and_then(|tz| self.timezone(tz))
            .unwrap_or(Tz::UTC);
        let state_dir = raw
            .state_dir
            .as_ref()
            .map_or_else(|| self.base.join("state"), |d| self.path(d));
        if state_dir.exists() && !state_dir.is_dir() {
            // Every run would fail to open its database there; say so now.
            let (span, shown) = match &raw.state_dir {
                Some(d) if self.diag.is_substituted(&d.span()) => {
                    (d.span(), format!("state_dir {}", self.quote(d)))
                }
                Some(d) => (
                    d.span(),
                    format!(
                        "state_dir {} ({})",
                        self.quote_short(d),
                        state_dir.display()
                    ),
                ),
                None => (
                    ROOT,
                    format!("state_dir (by default {})", state_dir.display()),
                ),
            };
            self.problem(
                span,
                format!(
                    "{shown} exists and is not a folder: runs keep their database there, so point state_dir at a folder"
                ),
            );
        }
        let templates_dir = raw.templates_dir.as_ref().map(|d| self.templates_dir(d));
        let catch_up = self.duration(&raw.catch_up, defaults::CATCH_UP, true);
        let retention = self.duration(&raw.retention, defaults::RETENTION, true);
        let server = raw.server.as_ref().and_then(|s| {
            let listen = self.require(&s.get_ref().listen, &s.span(), "listen", "[server]")?;
            match listen.get_ref().trim().parse::<SocketAddr>() {
                Ok(listen) => Some(ServerConfig { listen }),
                Err(_) => {
                    let shown = self.quote(listen);
                    self.problem(
                        listen.span(),
                        format!("{shown} is not a socket address: write `IP:PORT`, like `127.0.0.1:9464`"),
                    );
                    None
                }
            }
        });
        let store = raw
            .store
            .as_ref()
            .map(|s| self.store(s))
            .unwrap_or_default();
        let samsara = match &raw.samsara {
            Some(s) => self.samsara(s),
            None => {
                if !self.diag.was_pruned(ROOT.start, "samsara") {
                    self.problem(ROOT, "missing [samsara] table: it needs at least `token`");
                }
                None
            }
        };
        let smtp = raw.smtp.as_ref().and_then(|s| self.smtp(s));
        let webhooks = self.webhooks(&raw);
        let teams = self.teams(&raw);
        let teams_from_tags = raw
            .teams_from_tags
            .as_ref()
            .map(|t| self.teams_from_tags(t));
        let team_names: BTreeSet<&str> = raw
            .teams
            .iter()
            .flat_map(|t| t.get_ref().keys())
            .map(String::as_str)
            .collect();
        let webhook_names: BTreeSet<&str> = raw
            .webhooks
            .iter()
            .flat_map(|w| w.get_ref().keys())
            .map(String::as_str)
            .collect();
        let names = Names {
            teams: team_names,
            webhooks: webhook_names,
            from_tags: raw.teams_from_tags.is_some(),
        };

        let mirror = self.mirror(raw.mirror.as_ref());
        self.mirror_enabled = mirror.enabled;
        let mut jobs = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut resolved_all = true;
        for job in raw.jobs.iter().flat_map(|j| j.get_ref()) {
            if let Some(name) = &job.get_ref().name {
                let offset = name.span().start;
                if let Some(first) = seen.get(name.get_ref()) {
                    let line = self.diag.line_of(*first);
                    let shown = self.quote(name);
                    self.problem(
                        name.span(),
                        format!("job name {shown} is already used by the job at line {line}: job names must be unique"),
                    );
                } else {
                    seen.insert(name.get_ref().clone(), offset);
                }
            }
            match self.job(job, timezone, &names) {
                Some(job) => jobs.push(job),
                None => resolved_all = false,
            }
        }

        let first_email = raw
            .jobs
            .iter()
            .flat_map(|j| j.get_ref())
            .flat_map(|j| {
                let j = j.get_ref();
                j.deliver
                    .iter()
                    .chain(&j.on_failure)
                    .flat_map(|d| d.get_ref())
            })
            .find(|d| d.get_ref().email.is_some());
        if let (Some(delivery), None) = (first_email, &raw.smtp)
            && !self.diag.was_pruned(ROOT.start, "smtp")
        {
            self.problem(
                delivery.span(),
                "email deliveries need an [smtp] table with at least `host` and `from`",
            );
        }

        let samsara = samsara?;
        if !resolved_all || (first_email.is_some() && smtp.is_none()) {
            return None;
        }
        let config = Config {
            path: path.to_path_buf(),
            timezone,
            state_dir,
            templates_dir,
            catch_up,
            retention,
            server,
            store,
            samsara,
            smtp,
            webhooks: webhooks?,
            teams: teams?,
            teams_from_tags: match teams_from_tags {
                None => None,
                Some(t) => Some(t?),
            },
            jobs,
            mirror,
        };
        // Rendering is worth trying only on a config without other problems.
        if self.diag.is_empty() {
            let raw_jobs: Vec<_> = raw.jobs.iter().flat_map(|j| j.get_ref()).collect();
            let diag = &mut *self.diag;
            self.check
                .deliveries(&config, &raw_jobs, &mut |span, message| {
                    diag.push(span, message)
                });
        }
        Some(config)
    }

    /// `[mirror]`, defaults for what is left out.
    pub(super) fn mirror(&mut self, raw: Option<&Spanned<raw::RawMirror>>) -> MirrorConfig {
        let defaults = MirrorConfig::default();
        let Some(raw) = raw else {
            return defaults;
        };
        let m = raw.get_ref();
        MirrorConfig {
            enabled: m.enabled.as_ref().is_none_or(|e| *e.get_ref()),
            since: m
                .since
                .as_ref()
                .and_then(|s| self.datetime(s, "since"))
                .unwrap_or(defaults.since),
            overlap: self.duration(&m.overlap, defaults.overlap, true),
            refresh: self.duration(&m.refresh, defaults.refresh, true),
        }
    }

    pub(super) fn path(&self, dir: &Spanned<String>) -> PathBuf {
        normalize(&self.base.join(dir.get_ref()))
    }

    pub(super) fn templates_dir(&mut self, dir: &Spanned<String>) -> PathBuf {
        let path = self.path(dir);
        match std::fs::read_dir(&path) {
            Ok(entries) => {
                let names = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.split('.').next().map(str::to_string)
                    })
                    .collect();
                self.template_files = Some((path.clone(), names));
                // Every template must compile before anything runs.
                if let Some(message) = self.check.templates_dir(&path) {
                    self.problem(dir.span(), message);
                }
            }
            Err(err) => {
                self.problem(
                    dir.span(),
                    format!("cannot read templates_dir {}: {err}", path.display()),
                );
                self.template_files = Some((path.clone(), BTreeSet::new()));
            }
        }
        path
    }

    pub(super) fn timezone(&mut self, tz: &Spanned<String>) -> Option<Tz> {
        match tz.get_ref().parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect();
                let mut message = format!(
                    "unknown timezone {}: use an IANA name like `America/Chicago` or `UTC`",
                    self.quote(tz)
                );
                if let Some(close) = closest(tz.get_ref(), &names) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.problem(tz.span(), message);
                None
            }
        }
    }

    /// A duration or its default; `allow_zero` for "0 = off" settings.
    pub(super) fn duration(
        &mut self,
        value: &Opt<String>,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.problem(value.span(), "this duration must be longer than 0");
                default
            }
            Ok(d) => d,
            Err(message) => {
                self.problem(value.span(), message);
                default
            }
        }
    }

    /// An integer in `range`, or its default.
    pub(super) fn integer<T: TryFrom<i64> + Copy>(
        &mut self,
        value: &Opt<i64>,
        default: T,
        range: std::ops::RangeInclusive<i64>,
        key: &str,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        let n = *value.get_ref();
        match T::try_from(n) {
            Ok(v) if range.contains(&n) => v,
            _ => {
                self.problem(
                    value.span(),
                    format!("`{key}` must be from {} to {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// An http(s) URL with a host. `secret` URLs are never quoted.
    pub(super) fn http_url(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        secret: bool,
    ) -> Option<Url> {
        let shown = if secret {
            format!("`{key}`")
        } else {
            self.quote(value)
        };
        let url = match Url::parse(value.get_ref().trim()) {
            Ok(url) => url,
            Err(err) => {
                self.problem(value.span(), format!("{shown} is not a valid URL: {err}"));
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            self.problem(
                value.span(),
                format!("{shown} must be an http:// or https:// URL with a host"),
            );
            return None;
        }
        Some(url)
    }

    /// `[store]`: the URL is checked without ever being quoted (it may
    /// hold the password).
    pub(super) fn store(&mut self, s: &Spanned<raw::RawStore>) -> StoreConfig {
        let s = s.get_ref();
        let lease = self.duration(&s.lease, StoreConfig::default().lease, false);
        if lease < Duration::from_secs(1)
            && let Some(l) = &s.lease
        {
            self.problem(
                l.span(),
                "`lease` must be at least 1s: it is renewed every third of it",
            );
        }
        let url = s.url.as_ref().and_then(|u| {
            let text = u.get_ref().trim();
            if text.is_empty() && !self.diag.is_substituted(&u.span()) {
                return None; // `url = ""` is the SQLite default, as if left out
            }
            if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                self.problem(
                    u.span(),
                    "`url` must be a postgres:// or postgresql:// URL (leave it out to keep the SQLite store in state_dir)",
                );
                return None;
            }
            if let Err(e) = text.parse::<tokio_postgres::Config>() {
                // tokio-postgres' parse errors name the option, never its value.
                self.problem(u.span(), format!("`url` is not a valid Postgres URL: {e}"));
                return None;
            }
            self.secret(u, "store.url")
        });
        StoreConfig { url, lease }
    }
}

/// Names defined in `[teams]` and `[webhooks]`, for references from jobs.
struct Names<'r> {
    teams: BTreeSet<&'r str>,
    webhooks: BTreeSet<&'r str>,
    /// `[teams_from_tags]` is set: more teams exist at run time, named after tags.
    from_tags: bool,
}

/// `a/b/../c/./d` → `a/c/d`, lexically (no file system access, so it works
/// for folders that do not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A name from the config for a message: quoted, on one line, and cut after
/// 40 characters, so a 5,000-character name does not fill the screen.
fn shown_name(name: &str) -> String {
    const SHOWN: usize = 40;
    let line = crate::names::one_line(name);
    match line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("`{}…`", &line[..cut]),
        None => format!("`{line}`"),
    }
}
