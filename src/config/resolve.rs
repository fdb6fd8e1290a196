//! Raw structs → typed [`Config`], collecting every semantic problem.
//!
//! Each check reports at the span of the value concerned (or of the table,
//! when a key is missing) and carries on with a default, so one mistake
//! does not hide the next.

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
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diag.push(span, message);
    }

    /// The value of a required key, or a problem at its table's span.
    fn require<'r, T>(
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

    fn quote(&self, value: &Spanned<String>) -> String {
        self.diag.quote(&value.span(), value.get_ref())
    }

    /// Like [`Self::quote`], but a long or multi-line value is shown on one
    /// line and cut short.
    fn quote_short(&self, value: &Spanned<String>) -> String {
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
    fn mirror(&mut self, raw: Option<&Spanned<raw::RawMirror>>) -> MirrorConfig {
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

    fn path(&self, dir: &Spanned<String>) -> PathBuf {
        normalize(&self.base.join(dir.get_ref()))
    }

    fn templates_dir(&mut self, dir: &Spanned<String>) -> PathBuf {
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

    fn timezone(&mut self, tz: &Spanned<String>) -> Option<Tz> {
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
    fn duration(&mut self, value: &Opt<String>, default: Duration, allow_zero: bool) -> Duration {
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
    fn integer<T: TryFrom<i64> + Copy>(
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
    fn http_url(&mut self, value: &Spanned<String>, key: &str, secret: bool) -> Option<Url> {
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

    fn samsara(&mut self, s: &Spanned<raw::RawSamsara>) -> Option<SamsaraConfig> {
        let span = s.span();
        let s = s.get_ref();
        let base_url = match &s.base_url {
            None => {
                Some(Url::parse(defaults::SAMSARA_BASE_URL).expect("the default base URL is valid"))
            }
            Some(value) => self.base_url(value),
        };
        // With sample data the token is optional, even if the folder is wrong:
        // one problem is enough.
        let wants_sample = s
            .sample_data
            .as_ref()
            .is_some_and(|v| !v.get_ref().trim().is_empty());
        let sample_data = s.sample_data.as_ref().and_then(|v| self.sample_data(v));
        let token = match &s.token {
            None if wants_sample => Some(SecretString::from(defaults::SAMPLE_TOKEN)),
            _ => self
                .require(&s.token, &span, "token", "[samsara]")
                .filter(|token| self.header_safe(token, "samsara.token", true))
                .and_then(|token| self.secret(token, "samsara.token")),
        };
        let requests_per_second = self.integer(
            &s.requests_per_second,
            defaults::REQUESTS_PER_SECOND,
            1..=100,
            "requests_per_second",
        );
        let timeout = self.duration(&s.timeout, defaults::REQUEST_TIMEOUT, false);
        if let Some(value) = &s.timeout
            && timeout >= defaults::API_TIMEOUT
        {
            self.problem(
                    value.span(),
                    "`timeout` must be under 90s: the Samsara API gives up on a request after 90 seconds",
                );
        }
        let api_version = s.api_version.as_ref().and_then(|v| {
            let text = v.get_ref().trim();
            if text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
                Some(text.to_string())
            } else {
                let shown = self.quote(v);
                self.problem(
                    v.span(),
                    format!(
                        "api_version {shown} is not a date: write `YYYY-MM-DD`, like `2024-05-01`"
                    ),
                );
                None
            }
        });
        let max_attempts = self.integer(
            &s.max_attempts,
            defaults::MAX_ATTEMPTS,
            1..=100,
            "max_attempts",
        );
        let max_retry_time = self.duration(&s.max_retry_time, defaults::MAX_RETRY_TIME, true);
        let max_fetch_time = self.duration(&s.max_fetch_time, defaults::MAX_FETCH_TIME, false);
        Some(SamsaraConfig {
            base_url: base_url?,
            token: token?,
            requests_per_second,
            timeout,
            api_version,
            max_attempts,
            max_retry_time,
            max_fetch_time,
            sample_data,
        })
    }

    /// `sample_data`: a folder holding at least `courses.json`; `""` is off.
    fn sample_data(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let text = value.get_ref().trim();
        if text.is_empty() {
            return None;
        }
        let path = self.base.join(text);
        let shown = self.quote(value);
        // The resolved path, unless the value came from the environment.
        let resolved = if self.diag.is_substituted(&value.span()) {
            String::new()
        } else {
            format!(" ({})", path.display())
        };
        if !path.is_dir() {
            self.problem(
                value.span(),
                format!(
                    "sample_data {shown} is not a folder{resolved}; relative paths are taken from the config file's folder"
                ),
            );
            return None;
        }
        if !path.join("courses.json").is_file() {
            self.problem(
                value.span(),
                format!(
                    "sample_data {shown} has no courses.json{resolved}: it is not a folder of sample API responses"
                ),
            );
            return None;
        }
        Some(path)
    }

    /// The API base URL, with a trailing slash so that joining a relative
    /// endpoint path keeps any path prefix.
    fn base_url(&mut self, value: &Spanned<String>) -> Option<Url> {
        let mut url = self.http_url(value, "samsara.base_url", false)?;
        if url.query().is_some() || url.fragment().is_some() {
            let shown = self.quote(value);
            self.problem(
                value.span(),
                format!("{shown} must not have a query or fragment"),
            );
            return None;
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
    }

    /// A non-empty secret; never quoted.
    fn secret(&mut self, value: &Spanned<String>, key: &str) -> Option<SecretString> {
        if value.get_ref().trim().is_empty() {
            let from_env = if self.diag.is_substituted(&value.span()) {
                " (its environment variable is empty)"
            } else {
                ""
            };
            self.problem(value.span(), format!("`{key}` is empty{from_env}"));
            return None;
        }
        Some(SecretString::from(value.get_ref().clone()))
    }

    /// Whether `value` can go into a protocol line (an HTTP or mail header,
    /// an SMTP command) as it is: no CR, LF or other control character.
    /// A problem names the key, and quotes the value only if it is not `secret`.
    fn header_safe(&mut self, value: &Spanned<String>, key: &str, secret: bool) -> bool {
        let Some(c) = value.get_ref().chars().find(|c| c.is_control()) else {
            return true;
        };
        let what = match c {
            '\n' | '\r' => "a line break".to_string(),
            other => format!("the control character {other:?}"),
        };
        let shown = if secret {
            format!("`{key}`")
        } else {
            format!("`{key}` {}", self.quote_short(value))
        };
        let hint = if self.diag.is_substituted(&value.span()) {
            " (check its environment variable for a trailing newline)"
        } else {
            ""
        };
        self.problem(
            value.span(),
            format!("{shown} contains {what}: it goes into a protocol header, which cannot hold one{hint}"),
        );
        false
    }

    /// Checks `Name <address>` or `address` structurally.
    fn mailbox(&mut self, value: &Spanned<String>, what: &str) -> bool {
        if is_mailbox(value.get_ref()) {
            return true;
        }
        let shown = self.quote(value);
        self.problem(
            value.span(),
            format!("{what} {shown} is not a mailbox: {MAILBOX_SHAPE}"),
        );
        false
    }

    /// `[store]`: the URL is checked without ever being quoted (it may
    /// hold the password).
    fn store(&mut self, s: &Spanned<raw::RawStore>) -> StoreConfig {
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

    fn smtp(&mut self, s: &Spanned<raw::RawSmtp>) -> Option<SmtpConfig> {
        let span = s.span();
        let s = s.get_ref();
        let host = self
            .require(&s.host, &span, "host", "[smtp]")
            .and_then(|h| {
                if h.get_ref().trim().is_empty() {
                    self.problem(h.span(), "`host` is empty");
                    None
                } else if !self.header_safe(h, "smtp.host", false) {
                    None
                } else {
                    Some(h.get_ref().trim().to_string())
                }
            });
        let security = match &s.security {
            None => SmtpSecurity::StartTls,
            Some(v) => match v.get_ref().as_str() {
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                _ => {
                    let shown = self.quote(v);
                    self.problem(
                        v.span(),
                        format!("unknown security {shown}: use starttls, tls or none"),
                    );
                    SmtpSecurity::StartTls
                }
            },
        };
        let default_port = match security {
            SmtpSecurity::StartTls => defaults::SMTP_PORT_STARTTLS,
            SmtpSecurity::Tls => defaults::SMTP_PORT_TLS,
            SmtpSecurity::None => defaults::SMTP_PORT_PLAIN,
        };
        let port = self.integer(&s.port, default_port, 1..=65535, "port");
        match (&s.username, &s.password) {
            (Some(u), None) => self.problem(
                u.span(),
                "`username` needs a `password` (set both, or neither for a server without AUTH)",
            ),
            (None, Some(p)) => self.problem(
                p.span(),
                "`password` needs a `username` (set both, or neither for a server without AUTH)",
            ),
            _ => {}
        }
        let username = s
            .username
            .as_ref()
            .filter(|u| self.header_safe(u, "smtp.username", false))
            .map(|u| u.get_ref().clone());
        let password = s
            .password
            .as_ref()
            .filter(|p| self.header_safe(p, "smtp.password", true))
            .and_then(|p| self.secret(p, "smtp.password"));
        let from = self
            .require(&s.from, &span, "from", "[smtp]")
            .filter(|f| self.mailbox(f, "from"))
            .map(|f| f.get_ref().trim().to_string());
        let timeout = self.duration(&s.timeout, defaults::SMTP_TIMEOUT, false);
        Some(SmtpConfig {
            host: host?,
            port,
            security,
            username,
            password,
            from: from?,
            timeout,
        })
    }

    fn webhooks(&mut self, raw: &RawConfig) -> Option<BTreeMap<String, Webhook>> {
        let mut out = BTreeMap::new();
        let mut complete = true;
        for (name, hook) in raw.webhooks.iter().flat_map(|w| w.get_ref()) {
            let table = format!("[webhooks.{name}]");
            let span = hook.span();
            if let Some(c) = name.chars().find(|c| c.is_control()) {
                // The name is printed in summaries and logs, one line each.
                self.problem(
                    span.clone(),
                    format!(
                        "webhook name {} is not allowed: it contains the control character {c:?}",
                        shown_name(name)
                    ),
                );
                complete = false;
            }
            let hook = hook.get_ref();
            let kind = self
                .require(&hook.kind, &span, "kind", &table)
                .and_then(|k| match k.get_ref().as_str() {
                    "slack" => Some(WebhookKind::Slack),
                    "msteams" => Some(WebhookKind::MsTeams),
                    "json" => Some(WebhookKind::Json),
                    _ => {
                        let shown = self.quote(k);
                        self.problem(
                            k.span(),
                            format!("unknown webhook kind {shown}: use slack, msteams or json"),
                        );
                        None
                    }
                });
            let key = format!("webhooks.{name}.url");
            let url = self
                .require(&hook.url, &span, "url", &table)
                .filter(|u| self.http_url(u, &key, true).is_some())
                .map(|u| SecretString::from(u.get_ref().trim().to_string()));
            let secret = hook.secret.as_ref().and_then(|s| {
                if kind.is_some_and(|k| k != WebhookKind::Json) {
                    self.problem(
                        s.span(),
                        "`secret` is only used by json webhooks (it signs the body): remove it, or set kind = \"json\"",
                    );
                }
                self.secret(s, &format!("webhooks.{name}.secret"))
            });
            match (kind, url) {
                (Some(kind), Some(url)) => {
                    out.insert(
                        name.clone(),
                        Webhook {
                            name: name.clone(),
                            kind,
                            url,
                            secret,
                        },
                    );
                }
                _ => complete = false,
            }
        }
        complete.then_some(out)
    }

    fn teams(&mut self, raw: &RawConfig) -> Option<BTreeMap<String, Team>> {
        let mut out = BTreeMap::new();
        let mut complete = true;
        for (name, team) in raw.teams.iter().flat_map(|t| t.get_ref()) {
            let table = format!("[teams.{name}]");
            let span = team.span();
            if let Some(problem) = crate::names::path_component_problem(name) {
                // A team's name names its folder in previews and archives.
                self.problem(
                    span.clone(),
                    format!("team name {} is not allowed: {problem}", shown_name(name)),
                );
                complete = false;
            }
            let team = team.get_ref();
            let manager = team
                .manager
                .as_ref()
                .filter(|m| self.mailbox(m, "manager"))
                .map(|m| m.get_ref().trim().to_string());
            let escalation = team
                .escalation
                .as_ref()
                .filter(|m| self.mailbox(m, "escalation"))
                .map(|m| m.get_ref().trim().to_string());
            let members = self.team_members(team, &span, &table);
            match members {
                Some(members) => {
                    out.insert(
                        name.clone(),
                        Team {
                            name: name.clone(),
                            display_name: team
                                .display_name
                                .as_ref()
                                .map(|d| d.get_ref().trim().to_string())
                                .filter(|d| !d.is_empty()),
                            manager,
                            escalation,
                            members,
                        },
                    );
                }
                None => complete = false,
            }
        }
        complete.then_some(out)
    }

    /// Exactly one of `learners`, `tag`, `tag_id`, checked.
    fn team_members(
        &mut self,
        team: &raw::RawTeam,
        span: &Range<usize>,
        table: &str,
    ) -> Option<Members> {
        let given: Vec<(&str, Range<usize>)> = [
            ("learners", team.learners.as_ref().map(Spanned::span)),
            ("tag", team.tag.as_ref().map(Spanned::span)),
            ("tag_id", team.tag_id.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(k, s)| Some((k, s?)))
        .collect();
        match given.as_slice() {
            [] => {
                if !["learners", "tag", "tag_id"]
                    .iter()
                    .any(|k| self.diag.was_pruned(span.start, k))
                {
                    self.problem(
                        span.clone(),
                        format!(
                            "{table} needs its members: `learners = [...]`, `tag = \"Tag name\"` or `tag_id = \"1234\"`"
                        ),
                    );
                }
                None
            }
            [_, second, ..] => {
                let keys: Vec<String> = given.iter().map(|(k, _)| format!("`{k}`")).collect();
                self.problem(
                    second.1.clone(),
                    format!(
                        "{table} has {}: a team takes its members from exactly one of them",
                        keys.join(" and ")
                    ),
                );
                None
            }
            [_] => {
                if let Some(list) = &team.learners {
                    if list.get_ref().is_empty() {
                        self.problem(
                            list.span(),
                            "`learners` is empty: a team needs at least one learner",
                        );
                        return None;
                    }
                    return Some(Members::Learners(self.learner_ids(list)));
                }
                if let Some(tag) = &team.tag {
                    return self.tag_name(tag, "tag").map(Members::Tag);
                }
                let id = team.tag_id.as_ref()?;
                let text = id.get_ref().trim();
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    let shown = self.quote(id);
                    self.problem(
                        id.span(),
                        format!(
                            "`tag_id` {shown} is not a tag id: ids are digits, like `4815` (for a tag's name use `tag`)"
                        ),
                    );
                    return None;
                }
                Some(Members::TagId(text.to_string()))
            }
        }
    }

    /// A tag's name as the config gives it: not empty, no space at either
    /// end (tags are matched by exact name), no control character.
    fn tag_name(&mut self, value: &Spanned<String>, what: &str) -> Option<String> {
        let text = value.get_ref();
        let problem = if text.trim().is_empty() {
            Some(
                "is empty: write the tag's name as Samsara shows it, like `North Yard`".to_string(),
            )
        } else if text.trim() != text {
            Some(format!(
                "{} has a space at its start or end: tags are matched by their exact name",
                self.quote_short(value)
            ))
        } else if text.chars().any(char::is_control) {
            Some(format!(
                "{} holds a control character: no tag name does",
                self.quote_short(value)
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.problem(value.span(), format!("{what} {p}"));
                None
            }
            None => Some(text.clone()),
        }
    }

    /// `[teams_from_tags]`.
    fn teams_from_tags(&mut self, raw: &Spanned<raw::RawTeamsFromTags>) -> Option<TeamsFromTags> {
        let span = raw.span();
        let t = raw.get_ref();
        let parent = self
            .require(&t.parent, &span, "parent", "[teams_from_tags]")
            .and_then(|p| self.tag_name(p, "`parent`"));
        let mut managers = BTreeMap::new();
        let mut complete = true;
        for (tag, manager) in t.managers.iter().flat_map(|m| m.get_ref()) {
            let key = self.tag_name(tag, "the tag");
            let key = key.filter(|k| {
                if k.bytes().all(|b| b.is_ascii_digit()) {
                    let shown = self.quote(tag);
                    self.problem(
                        tag.span(),
                        format!(
                            "{shown} in `teams_from_tags.managers` looks like a tag id: managers are keyed by the tag's name, like `\"North Yard\" = \"Dana Ortiz <dana@example.com>\"`"
                        ),
                    );
                    return false;
                }
                true
            });
            let ok = self.mailbox(manager, "manager");
            match key {
                Some(key) if ok => {
                    managers.insert(key, manager.get_ref().trim().to_string());
                }
                _ => complete = false,
            }
        }
        let escalation = t.escalation.as_ref().map(|e| {
            (
                self.mailbox(e, "escalation"),
                e.get_ref().trim().to_string(),
            )
        });
        if escalation.as_ref().is_some_and(|(ok, _)| !ok) {
            complete = false;
        }
        let parent = parent?;
        complete.then(|| TeamsFromTags {
            parent,
            managers,
            escalation: escalation.map(|(_, e)| e),
        })
    }

    /// Each id parsed; a bad one is reported at its own element.
    fn learner_ids(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<LearnerId> {
        let mut ids = Vec::new();
        for item in list.get_ref() {
            match LearnerId::parse(item.get_ref()) {
                Ok(id) => ids.push(id),
                Err(message) => self.problem(item.span(), message),
            }
        }
        ids
    }

    fn job(&mut self, job: &Spanned<RawJob>, default_tz: Tz, names: &Names<'_>) -> Option<Job> {
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

    fn schedule(&mut self, expr: &Spanned<String>) -> Option<Schedule> {
        let text = expr.get_ref().trim();
        let fields = text.split_whitespace().count();
        let shown = self.quote(expr);
        if fields != 5 && fields != 6 {
            let plural = if fields == 1 { "" } else { "s" };
            self.problem(
                expr.span(),
                format!("schedule {shown} has {fields} field{plural}: {CRON_SHAPE}"),
            );
            return None;
        }
        match crate::schedule::parse(text) {
            Ok(schedule) => Some(Schedule {
                expr: expr.get_ref().clone(),
                ..schedule
            }),
            Err(err) => {
                let message = match cron_field_problem(text) {
                    Some(problem) => format!("schedule {shown}: {problem}"),
                    None => {
                        // No single field is at fault (the combination is):
                        // croner's reason, then the shape.
                        let reason = match &err {
                            croner::errors::CronError::InvalidPattern(m)
                            | croner::errors::CronError::IllegalCharacters(m)
                            | croner::errors::CronError::ComponentError(m) => m
                                .trim_end_matches('.')
                                .replace("CronPattern contains", "it contains"),
                            other => other.to_string(),
                        };
                        format!(
                            "schedule {shown} is not a valid cron expression: {reason}; {CRON_SHAPE}"
                        )
                    }
                };
                self.problem(expr.span(), message);
                None
            }
        }
    }

    fn window(&mut self, window: &Spanned<RawWindow>) -> Option<WindowSpec> {
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
    fn datetime(&mut self, value: &Spanned<toml::Value>, key: &str) -> Option<DateTime<Utc>> {
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

    fn filters(
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
    fn ids(&mut self, list: &Strings, what: &str) -> Vec<String> {
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
    fn undefined(
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

    fn deliveries(
        &mut self,
        list: &[Spanned<RawDelivery>],
        default_template: &str,
        names: &Names<'_>,
    ) -> Option<Vec<Delivery>> {
        let mut out = Vec::new();
        let mut complete = true;
        for delivery in list {
            match self.delivery(delivery, default_template, names) {
                Some(d) => out.push(d),
                None => complete = false,
            }
        }
        complete.then_some(out)
    }

    fn delivery(
        &mut self,
        delivery: &Spanned<RawDelivery>,
        default_template: &str,
        names: &Names<'_>,
    ) -> Option<Delivery> {
        let span = delivery.span();
        let d = delivery.get_ref();
        let targets: Vec<&str> = [
            ("email", d.email.is_some()),
            ("webhook", d.webhook.is_some()),
            ("archive", d.archive.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if d.webhook.is_none() {
            for (key, value_span) in [
                ("template", d.template.as_ref().map(Spanned::span)),
                (
                    "include_assignments",
                    d.include_assignments.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(value_span) = value_span {
                    self.problem(
                        value_span,
                        format!("`{key}` next to the target belongs to webhook deliveries; for email put it inside `email = {{ … }}`"),
                    );
                }
            }
        }
        match targets.as_slice() {
            ["email"] => self
                .email(d.email.as_ref()?, default_template)
                .map(Delivery::Email),
            ["webhook"] => {
                let hook = d.webhook.as_ref()?;
                let known = names.webhooks.contains(hook.get_ref().as_str());
                if !known {
                    self.undefined(hook, "webhook", "[webhooks]", &names.webhooks);
                }
                let template = self.template(d.template.as_ref(), "digest");
                Some(Delivery::Webhook(WebhookDelivery {
                    webhook: hook.get_ref().clone(),
                    template: template?,
                    include_assignments: d
                        .include_assignments
                        .as_ref()
                        .is_some_and(|i| *i.get_ref()),
                }))
                .filter(|_| known)
            }
            ["archive"] => {
                let archive = d.archive.as_ref()?;
                let dir = self.require(
                    &archive.get_ref().dir,
                    &archive.span(),
                    "dir",
                    "the archive delivery",
                )?;
                if dir.get_ref().trim().is_empty() {
                    self.problem(dir.span(), "the archive `dir` is empty");
                    return None;
                }
                Some(Delivery::Archive(ArchiveDelivery {
                    dir: self.path(dir),
                }))
            }
            [] => {
                self.problem(
                    span,
                    "a delivery needs a target: `email = { to = [...] }`, `webhook = \"NAME\"` or `archive = { dir = \"...\" }`",
                );
                None
            }
            several => {
                self.problem(
                    span,
                    format!(
                        "a delivery takes one target, found {}: write one delivery per target",
                        several
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
                None
            }
        }
    }

    fn email(
        &mut self,
        email: &Spanned<raw::RawEmail>,
        default_template: &str,
    ) -> Option<EmailDelivery> {
        let span = email.span();
        let e = email.get_ref();
        let to = self
            .require(&e.to, &span, "to", "the email delivery")
            .and_then(|to| {
                if to.get_ref().is_empty() {
                    self.problem(
                        to.span(),
                        "`to` is empty: an email needs at least one recipient",
                    );
                    None
                } else {
                    self.addresses(&e.to)
                }
            });
        let cc = self.addresses(&e.cc);
        let bcc = self.addresses(&e.bcc);
        let template = self.template(e.template.as_ref(), default_template);
        let attach = e.attach_csv.as_ref().is_some_and(|a| *a.get_ref());
        if let Some(excel) = e.csv_excel.as_ref().filter(|x| *x.get_ref() && !attach) {
            self.problem(
                excel.span(),
                "`csv_excel` shapes the attached CSV, but this email attaches none: add `attach_csv = true`",
            );
        }
        let subject = match &e.subject {
            Some(s) if !self.header_safe(s, "subject", false) => None,
            Some(s) if !self.compiles(s, "subject") => None,
            other => Some(other.as_ref().map(|s| s.get_ref().clone())),
        };
        Some(EmailDelivery {
            to: to?,
            cc: cc?,
            bcc: bcc?,
            subject: subject?,
            template: template?,
            attach_csv: e.attach_csv.as_ref().is_some_and(|a| *a.get_ref()),
            csv_excel: e.csv_excel.as_ref().is_some_and(|x| *x.get_ref()),
        })
    }

    /// Recipients: Tera templates are left to render time; literal
    /// mailboxes are checked now.
    fn addresses(&mut self, list: &Strings) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut complete = true;
        for address in list.iter().flat_map(|l| l.get_ref()) {
            let text = address.get_ref();
            let templated = text.contains("{{") || text.contains("{%");
            if (templated && self.compiles(address, "recipient"))
                || (!templated && self.mailbox(address, "recipient"))
            {
                out.push(text.trim().to_string());
            } else {
                complete = false;
            }
        }
        complete.then_some(out)
    }

    /// Whether a Tera string (a subject, an address) compiles; a problem at
    /// its span if not.
    fn compiles(&mut self, source: &Spanned<String>, what: &str) -> bool {
        match self.check.template_str(source.get_ref()) {
            Ok(()) => true,
            Err(cause) => {
                self.problem(
                    source.span(),
                    format!("this {what} template does not compile{cause}"),
                );
                false
            }
        }
    }

    /// A template name: built in, or a file in `templates_dir`.
    fn template(&mut self, name: Option<&Spanned<String>>, default: &str) -> Option<String> {
        let Some(name) = name else {
            return Some(default.to_string());
        };
        let text = name.get_ref().trim();
        let in_dir = self
            .template_files
            .as_ref()
            .is_some_and(|(_, files)| files.contains(text));
        if BUILTIN_TEMPLATES.contains(&text) || in_dir {
            return Some(text.to_string());
        }
        let shown = self.quote(name);
        let hint = match &self.template_files {
            Some((dir, _)) => format!("or add a file {text}.* to {}", dir.display()),
            None => "or set templates_dir and add a file there".to_string(),
        };
        let mut message = format!(
            "unknown template {shown}: use one of {} {hint}",
            BUILTIN_TEMPLATES.join(", ")
        );
        if let Some(close) = closest(text, &BUILTIN_TEMPLATES) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        self.problem(name.span(), message);
        None
    }
}

/// The cron fields in order, for 5 and for 6 fields: (name, what it takes).
const CRON_FIELDS: [(&str, &str); 6] = [
    ("SEC", "0-59"),
    ("MIN", "0-59"),
    ("HOUR", "0-23"),
    ("DAY", "1-31"),
    ("MONTH", "1-12 or Jan-Dec"),
    ("WEEKDAY", "0-7 or Sun-Sat (0 and 7 are Sunday)"),
];

/// The first cron field that is wrong on its own, quoted as written, with
/// what to write instead: `the WEEKDAY field `Monday` is not a weekday: use
/// `Mon``. `None` when every field parses alone.
fn cron_field_problem(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let roles = &CRON_FIELDS[6 - fields.len()..];
    for (i, (field, (role, takes))) in fields.iter().zip(roles).enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[i] = field;
        if probe[0] == "*" && fields.len() == 6 {
            probe[0] = "0"; // every second parses too, but reads oddly
        }
        if crate::schedule::parse(&probe.join(" ")).is_ok() {
            continue;
        }
        let named = |names: &[&str]| -> Option<String> {
            // `Monday` → `Mon`, `Tues` → `Tue`, `September` → `Sep`, in any case
            // and inside lists and ranges (`Monday-Friday` → `Mon-Fri`).
            let mut changed = false;
            let fixed: String = field
                .split_inclusive([',', '-', '/'])
                .map(|part| {
                    let (word, sep) = match part.char_indices().last() {
                        Some((at, ',' | '-' | '/')) => part.split_at(at),
                        _ => (part, ""),
                    };
                    let lower = word.to_ascii_lowercase();
                    match names
                        .iter()
                        .find(|n| lower.len() > 3 && lower.starts_with(&n.to_ascii_lowercase()))
                    {
                        Some(n) => {
                            changed = true;
                            format!("{n}{sep}")
                        }
                        None => part.to_string(),
                    }
                })
                .collect();
            changed.then_some(fixed)
        };
        let suggestion = match *role {
            "WEEKDAY" => named(&["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
            "MONTH" => named(&[
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ]),
            _ => None,
        };
        let layout = if fields.len() == 6 {
            "SEC MIN HOUR DAY MONTH WEEKDAY"
        } else {
            "MIN HOUR DAY MONTH WEEKDAY"
        };
        return Some(match suggestion {
            Some(fixed) => {
                let mut whole = fields.clone();
                whole[i] = &fixed;
                format!(
                    "the {role} field `{field}` is not valid: use `{fixed}` (names have three letters), as in `{}`",
                    whole.join(" ")
                )
            }
            None => format!(
                "the {role} field `{field}` is not valid: it takes {takes}, `*`, lists `1,3`, ranges `1-5` and steps `*/2` (fields: {layout})"
            ),
        });
    }
    None
}

/// Names defined in `[teams]` and `[webhooks]`, for references from jobs.
struct Names<'r> {
    teams: BTreeSet<&'r str>,
    webhooks: BTreeSet<&'r str>,
    /// `[teams_from_tags]` is set: more teams exist at run time, named after tags.
    from_tags: bool,
}

/// `Name <local@domain>` or `local@domain`, checked structurally only.
/// A mailbox as the sender will parse it (the same parser validates and sends).
fn is_mailbox(text: &str) -> bool {
    crate::mailbox::Mailbox::parse(text).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_with_and_without_a_name_are_accepted() {
        for ok in [
            "ops@example.com",
            "Dana Ortiz <dana.ortiz@example.com>",
            "\"Ortiz, Dana\" <dana@example.com>",
            "<root@localhost>",
            "  training@mail.example.co.uk ",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
    }

    #[test]
    fn things_that_are_not_mailboxes_are_rejected() {
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "a b@example.com",
            "Dana <dana@example.com",
            "dana@example..com",
            "a@b@c",
            "a@example.com, b@example.com",
        ] {
            assert!(!is_mailbox(bad), "{bad}");
        }
    }
}
