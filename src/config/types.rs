//! The resolved configuration: typed values the rest of trainwatch uses.
//!
//! These are produced by [`super::load`] from the raw TOML; nothing outside
//! the config module sees a raw string that still needs checking.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use url::Url;

use crate::learner::LearnerId;
use crate::mailbox::Mailbox;
pub use crate::schedule::Schedule;
use crate::status::Status;
use crate::window::WindowSpec;

/// The whole configuration file, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Default timezone for schedules and calendar windows.
    pub timezone: Tz,
    /// Run history, delivery ledger; relative paths are taken from the config file's folder.
    pub state_dir: PathBuf,
    /// Files here override the built-in templates by name.
    pub templates_dir: Option<PathBuf>,
    /// A missed fire younger than this runs once at start; zero turns it off.
    pub catch_up: Duration,
    /// How long the ledger keeps a delivered payload (its key stays for
    /// ever); zero drops it as soon as the outbox pass runs.
    pub retention: Duration,
    pub server: Option<ServerConfig>,
    /// Where runs and the delivery ledger are kept.
    pub store: StoreConfig,
    pub samsara: SamsaraConfig,
    pub smtp: Option<SmtpConfig>,
    pub webhooks: BTreeMap<String, Webhook>,
    pub teams: BTreeMap<String, Team>,
    /// `[teams_from_tags]`: teams made at run time, one per child tag of a parent tag.
    pub teams_from_tags: Option<TeamsFromTags>,
    pub jobs: Vec<Job>,
    /// `[mirror]`: the local copy of the organisation's training data.
    pub mirror: MirrorConfig,
}

/// `[mirror]`: the local, incrementally synced copy (see [`crate::mirror`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// Off: every job queries the API directly (Part 1).
    pub enabled: bool,
    /// How far back the first sync reaches.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Each sync re-reads this much before the previous sync's end.
    pub overlap: Duration,
    /// How often `trainwatch run` syncs between runs; zero: only before runs.
    pub refresh: Duration,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            since: chrono::DateTime::from_timestamp(crate::defaults::MIRROR_SINCE_UNIX, 0)
                .expect("2020-01-01 is a valid instant"),
            overlap: crate::defaults::MIRROR_OVERLAP,
            refresh: crate::defaults::MIRROR_REFRESH,
        }
    }
}

/// Where a job's data comes from (`jobs.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The mirror, synced up to the fire instant first.
    Mirror,
    /// A direct query of the API over the window (Part 1).
    Api,
}

impl Config {
    /// The job called `name`, if any.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The webhook `[webhooks.NAME]` a delivery names. Validation makes sure
    /// it exists; an error here names it (`no webhook `NAME``).
    pub fn webhook(&self, name: &str) -> anyhow::Result<&Webhook> {
        use anyhow::Context as _;
        self.webhooks
            .get(name)
            .with_context(|| format!("no webhook `{name}`"))
    }
}

/// `[store]`: SQLite in `state_dir` (no `url`), or a Postgres database
/// shared by several replicas.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` (a secret: it may hold the password); `None` for SQLite.
    pub url: Option<SecretString>,
    /// How long a replica's hold on a running job lasts without renewal
    /// before another replica may take the job over (Postgres only).
    pub lease: Duration,
}

impl Default for StoreConfig {
    /// SQLite, and the default lease of two minutes.
    fn default() -> Self {
        Self {
            url: None,
            lease: crate::defaults::LEASE,
        }
    }
}

/// `[server]`: the optional health and metrics listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

/// `[samsara]`: where and how to call the API.
#[derive(Debug, Clone)]
pub struct SamsaraConfig {
    /// `https://api.samsara.com` by default; EU or a loopback URL in tests.
    pub base_url: Url,
    pub token: SecretString,
    /// Requests per second allowed on each endpoint (5 for the training endpoints).
    pub requests_per_second: u32,
    /// Timeout of one request; below the API's own 90 s.
    pub timeout: Duration,
    /// Sent as `X-Samsara-Version` when set (`YYYY-MM-DD`).
    pub api_version: Option<String>,
    /// Attempts per request, the first included, for retryable failures.
    pub max_attempts: u32,
    /// Total time one request may spend retrying before it fails.
    pub max_retry_time: Duration,
    /// Total time one fetch (every page, every split query, retries
    /// included) may take before the run fails: bounds an endless cursor.
    pub max_fetch_time: Duration,
    /// A folder of sample API responses (with a `courses.json`) to serve on
    /// loopback instead of calling `base_url`; see [`crate::sample`]. When
    /// set, `token` is optional (a placeholder is used when absent).
    pub sample_data: Option<PathBuf>,
}

/// `security` of `[smtp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    None,
}

/// `[smtp]`: the mail server.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// `Name <address>` or a bare address.
    pub from: Mailbox,
    pub timeout: Duration,
}

/// `kind` of a webhook: one of [`crate::sink::SINKS`].
pub use crate::sink::WebhookKind;

/// `[webhooks.NAME]`.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub kind: WebhookKind,
    /// Webhook URLs carry their own credentials: kept secret.
    pub url: SecretString,
    /// HMAC key for `X-Trainwatch-Signature` (json webhooks).
    pub secret: Option<SecretString>,
}

/// `[teams.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    /// How people read the team's name ("North Yard"), if it is not `name`.
    pub display_name: Option<String>,
    /// `Name <address>` of the team's manager, if any.
    pub manager: Option<String>,
    /// `Name <address>` of whom overdue escalations go to, if anyone.
    pub escalation: Option<String>,
    /// Who its members are: a list, or a tag resolved as of each fire instant.
    pub members: Members,
}

/// Where a team's members come from (exactly one per team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// `learners = [...]`: a fixed list.
    Learners(Vec<LearnerId>),
    /// `tag = "North Yard"`: drivers with the tag of this name or a descendant.
    Tag(String),
    /// `tag_id = "4815"`: drivers with this tag or a descendant.
    TagId(String),
    /// Made by `[teams_from_tags]` for the child tag with this id.
    FromTags(String),
}

impl Team {
    /// The fixed learner list, if the team has one (not a tag).
    pub fn learners(&self) -> Option<&[LearnerId]> {
        match &self.members {
            Members::Learners(list) => Some(list),
            _ => None,
        }
    }
}

/// `[teams_from_tags]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsFromTags {
    /// The parent tag's name; each of its child tags is a team.
    pub parent: String,
    /// Child tag name → the team's manager (`Name <address>`).
    pub managers: BTreeMap<String, String>,
    /// The escalation mailbox of every team made from tags.
    pub escalation: Option<String>,
}

/// `when_empty` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenEmpty {
    Skip,
    Send,
}

/// A job's `filters`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub learners: Vec<LearnerId>,
    pub courses: Vec<String>,
    pub categories: Vec<String>,
    /// Names of teams (from `team` and `teams`), defined in `[teams]` or
    /// (known only at run time) made by `[teams_from_tags]`.
    pub teams: Vec<String>,
    /// `per_team` without a team filter: every team, those made from tags
    /// at run time included.
    pub every_team: bool,
    pub status: Vec<Status>,
    pub overdue: Option<bool>,
    pub include_deleted: bool,
}

/// `[[jobs]]`.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub schedule: Schedule,
    /// The job's own timezone, or the top-level one.
    pub timezone: Tz,
    pub window: WindowSpec,
    pub filters: Filters,
    pub per_team: bool,
    pub when_empty: WhenEmpty,
    pub deliver: Vec<Delivery>,
    pub on_failure: Vec<Delivery>,
    /// Where its data comes from.
    pub source: Source,
    /// `due_soon` lists what falls due in `[fire, fire + due_soon)`.
    pub due_soon: chrono::Duration,
    /// Points of `trend`: this fire and the `trend - 1` before it.
    pub trend: u32,
    /// `min_days_overdue` of each `deliver` entry, by index (`None`: not narrowed).
    pub min_days_overdue: Vec<Option<u32>>,
}

impl Job {
    /// The `min_days_overdue` of delivery `index` of `deliver`, if it narrows.
    pub fn narrowing(&self, index: usize) -> Option<u32> {
        self.min_days_overdue.get(index).copied().flatten()
    }
}

/// One entry of `deliver` or `on_failure`.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Email(EmailDelivery),
    Webhook(WebhookDelivery),
    Archive(ArchiveDelivery),
}

/// `{ email = { … } }`. Addresses and subject are Tera templates over the report context.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailDelivery {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// `None`: the template's default subject.
    pub subject: Option<String>,
    /// Template name (`overdue`, `digest`, `audit`, or one from `templates_dir`).
    pub template: String,
    pub attach_csv: bool,
    /// The attached CSV for Excel: a UTF-8 byte order mark and CRLF line ends.
    pub csv_excel: bool,
}

/// `{ webhook = "NAME", template = "…" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// A key of `[webhooks]`.
    pub webhook: String,
    pub template: String,
    /// Put every assignment in the body (left out by default).
    pub include_assignments: bool,
}

/// `{ archive = { dir = "…" } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveDelivery {
    pub dir: PathBuf,
}
