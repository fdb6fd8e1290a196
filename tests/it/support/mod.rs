//! The one harness of the integration tests (zero2prod's `spawn_app`): a
//! [`TestRun`] builder that sets up what a test needs — the bundled sample
//! or generated data served in the API's wire format, a temporary state
//! dir, fast retries, a local SMTP server, wiremock, and a Postgres
//! database when `TRAINWATCH_TEST_PG_URL` is set — so a new test is a few
//! lines:
//!
//! ```ignore
//! let run = TestRun::sample().smtp().start().await;
//! let summary = run.job("monthly-audit", fire).await;
//! ```
//!
//! [`service`] drives the real binary as a service.

pub mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tempfile::TempDir;
use trainwatch::config::{self, Config, Delivery};
use trainwatch::deliver::dispatch::Dispatcher;
use trainwatch::deliver::webhook::WebhookSender;
use trainwatch::job;
use trainwatch::render::Renderer;
use trainwatch::retry::RetryPolicy;
use trainwatch::sample::{SampleContent, SampleServer};
use trainwatch::samsara::{Client, RateLimits};
use trainwatch::store::Store;
use wiremock::MockServer;

use crate::smtp_support::{Script, TestSmtp};

/// The package root (where `sample/`, `config.toml` and `tests/` are).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled sample's config file.
pub fn sample_config_path() -> PathBuf {
    root().join("sample/config.toml")
}

/// Retries that take milliseconds, not seconds: up to `max_attempts`,
/// 10–100 ms apart, `Retry-After` honoured up to 5 s, within a minute.
pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        max_elapsed: Duration::from_secs(60),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A fresh Postgres database for `test` when `TRAINWATCH_TEST_PG_URL` is
/// set; otherwise `None` after saying loudly that the test is skipped
/// (and failing under `CI=true`).
pub fn postgres(test: &str) -> Option<SecretString> {
    trainwatch::store::postgres::test_database(test)
}

/// Where a run's training data comes from.
enum Data {
    /// The bundled sample (`sample/config.toml` and `sample/api`).
    Sample,
    /// Generated data served by the sample server's machinery.
    Generated(SampleContent),
}

type MakeConfig<'a> = Box<dyn FnOnce(&Path, &str) -> Config + 'a>;

/// Builds a [`TestRun`]: start from [`TestRun::sample`] or
/// [`TestRun::generated`], add peers, then [`Builder::start`].
pub struct Builder<'a> {
    data: Data,
    smtp: Option<Script>,
    wiremock: bool,
    postgres: Option<String>,
    retry: RetryPolicy,
    config: Option<MakeConfig<'a>>,
}

/// One test's world: its config, a temporary dir for state and output,
/// and the local peers it asked for. Everything stops when it drops.
pub struct TestRun {
    /// The config under test: state in `dir/state`, archives in `dir/audit`,
    /// mail (when asked for) to [`TestRun::smtp`].
    pub config: Config,
    /// The temporary dir; removed at drop.
    pub dir: TempDir,
    /// The local SMTP server, when asked for.
    pub smtp: Option<TestSmtp>,
    /// The server of generated data, when the run has some.
    pub server: Option<SampleServer>,
    /// A wiremock server, when asked for.
    pub wiremock: Option<MockServer>,
    /// A fresh Postgres database, when asked for and `TRAINWATCH_TEST_PG_URL` is set.
    pub pg: Option<SecretString>,
    /// The retry policy of deliveries (fast).
    pub retry: RetryPolicy,
}

impl TestRun {
    /// A run of the bundled sample config on the sample data.
    pub fn sample() -> Builder<'static> {
        Builder::new(Data::Sample)
    }

    /// A run on generated data; give it a config with [`Builder::config`].
    pub fn generated<'a>(content: SampleContent) -> Builder<'a> {
        Builder::new(Data::Generated(content))
    }

    /// The temporary dir's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The wiremock server (the run was built with [`Builder::wiremock`]).
    pub fn wiremock(&self) -> &MockServer {
        self.wiremock
            .as_ref()
            .expect("TestRun built without .wiremock()")
    }

    /// The local SMTP server (the run was built with [`Builder::smtp`]).
    pub fn smtp(&self) -> &TestSmtp {
        self.smtp.as_ref().expect("TestRun built without .smtp()")
    }

    /// The server of generated data (the run was built with [`TestRun::generated`]).
    pub fn server(&self) -> &SampleServer {
        self.server
            .as_ref()
            .expect("TestRun built without generated data")
    }

    /// The base URL of generated data.
    pub fn uri(&self) -> &str {
        self.server().base_url.as_str()
    }

    /// A client to the generated data: fast retries, its own rate limits.
    pub fn client(&self) -> Client {
        crate::common::client(self.uri())
    }

    /// Opens the run's store (SQLite in `state_dir`).
    pub fn store(&self) -> Store {
        Store::open(&self.config.state_dir).unwrap()
    }

    /// Runs job `name` of [`TestRun::config`] once for `fire`, delivering for real.
    pub async fn job(&self, name: &str, fire: DateTime<Utc>, store: &Store) -> job::RunSummary {
        self.job_with(&self.config, name, fire, store).await
    }

    /// Runs job `name` of `config` (a changed copy of the run's) once for
    /// `fire`: sample data when the run has no generated data, a webhook
    /// sender with its own pacing, deliveries retried fast.
    pub async fn job_with(
        &self,
        config: &Config,
        name: &str,
        fire: DateTime<Utc>,
        store: &Store,
    ) -> job::RunSummary {
        let job = config.job(name).unwrap();
        let (client, _server) = self.data_client(config).await;
        let dispatcher = self.dispatcher(config);
        let summary = job::run(
            config,
            job,
            &client,
            &Renderer::new(None).unwrap(),
            store,
            &dispatcher,
            fire,
            Utc::now,
        )
        .await
        .unwrap();
        dispatcher.close().await;
        summary
    }

    /// A client to the run's data as `config` says: the generated data, or
    /// the bundled sample (served while the second value lives). Its own
    /// rate limits, so runs in parallel do not pace each other.
    pub async fn data_client(&self, config: &Config) -> (Client, Option<SampleServer>) {
        if self.server.is_some() {
            return (self.client(), None);
        }
        let (settings, server) = trainwatch::sample::client_settings(&config.samsara)
            .await
            .unwrap();
        let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();
        (client, server)
    }

    /// Senders for `config`: its SMTP server, webhooks with their own
    /// pacing and a 5 s timeout, the run's fast retries.
    pub fn dispatcher(&self, config: &Config) -> Dispatcher {
        let webhooks = WebhookSender::with_settings(
            Some(Duration::from_secs(5)),
            Arc::new(RateLimits::default()),
        )
        .unwrap();
        Dispatcher::with_parts(config, None, webhooks, self.retry.clone()).unwrap()
    }
}

impl<'a> Builder<'a> {
    fn new(data: Data) -> Self {
        Self {
            data,
            smtp: None,
            wiremock: false,
            postgres: None,
            // Deliveries: one retry, so a refusal shows as `attempts: 2`.
            retry: fast_retry(2),
            config: None,
        }
    }

    /// A local SMTP server that accepts everything; the config's mail goes there.
    pub fn smtp(self) -> Self {
        self.smtp_script(Script::default())
    }

    /// A local SMTP server answering as `script` says.
    pub fn smtp_script(mut self, script: Script) -> Self {
        self.smtp = Some(script);
        self
    }

    /// A wiremock server ([`TestRun::wiremock`]).
    pub fn wiremock(mut self) -> Self {
        self.wiremock = true;
        self
    }

    /// A fresh Postgres database named after `test`, when `TRAINWATCH_TEST_PG_URL` is set.
    pub fn postgres(mut self, test: &str) -> Self {
        self.postgres = Some(test.to_string());
        self
    }

    /// The config, made from the temporary dir and the data's base URL
    /// (generated data; the sample brings its own config).
    pub fn config(mut self, make: impl FnOnce(&Path, &str) -> Config + 'a) -> Self {
        self.config = Some(Box::new(make));
        self
    }

    /// Starts the peers and resolves the config.
    pub async fn start(self) -> TestRun {
        let dir = tempfile::tempdir().unwrap();
        let smtp = match self.smtp {
            Some(script) => Some(TestSmtp::start(script).await),
            None => None,
        };
        let wiremock = if self.wiremock {
            Some(MockServer::start().await)
        } else {
            None
        };
        let pg = self.postgres.as_deref().and_then(postgres);
        let (server, mut config) = match self.data {
            Data::Sample => {
                let mut config = match self.config {
                    Some(make) => make(dir.path(), ""),
                    None => config::load(&sample_config_path()).unwrap(),
                };
                config.state_dir = dir.path().join("state");
                for job in &mut config.jobs {
                    for d in &mut job.deliver {
                        if let Delivery::Archive(a) = d {
                            a.dir = dir.path().join("audit");
                        }
                    }
                }
                (None, config)
            }
            Data::Generated(content) => {
                let server = SampleServer::start_with(content).await.unwrap();
                let make = self
                    .config
                    .expect("a TestRun on generated data needs .config(..)");
                let config = make(dir.path(), server.base_url.as_str());
                (Some(server), config)
            }
        };
        if let Some(smtp) = &smtp {
            config.smtp = Some(smtp.config("127.0.0.1"));
        }
        TestRun {
            config,
            dir,
            smtp,
            server,
            wiremock,
            pg,
            retry: self.retry,
        }
    }
}
