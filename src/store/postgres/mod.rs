//! The store on Postgres (`[store] url`): the same runs and delivery ledger
//! as SQLite, shared by several replicas, plus what sharing needs: job
//! leases that a stalled or dead replica loses, a claim per (job, fire) so
//! each fire runs once, and fencing (every claim of a send checks, in its
//! own transaction, that the run's lease is still this replica's).
//!
//! tokio-postgres with a deadpool pool, driven on a runtime of its own (one
//! worker thread): the store's interface is synchronous, like SQLite's, and
//! a call blocks its caller for one round trip, as a SQLite write does.
//! Timestamps are `timestamptz`; lease times are the database's clock, so
//! replicas with skewed clocks still agree on who holds a lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret as _, SecretString};

use super::row::Columns;
use super::{Outcome, Status, StoreError};

mod leases;
mod migrations;
mod outbox;
mod runs;
mod testing;

pub use leases::LeaseGuard;
pub use migrations::PG_MIGRATIONS;
pub use testing::{TEST_URL_VAR, test_database};

/// The advisory lock that serialises migrations across replicas starting together.
const MIGRATION_LOCK: i64 = 0x7472_6169_6e77_7463; // "trainwtc"

/// How long a call waits for a free connection, and for a new one.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The Postgres store.
pub struct PgStore {
    /// The runtime that drives the connections (`None` once dropped).
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    /// The URL without its password, for messages.
    url: String,
    replica: String,
    lease: Duration,
    /// Generation of each job lease this process holds now.
    held: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another
        // runtime (where the service drops its store).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // A password may also come as a query parameter.
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "postgres URL (unreadable, not shown)".into(),
    }
}

/// An error and its causes on one line (tokio-postgres puts the server's
/// message in the cause). None of them carries the password.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::errors::chain(e)
}

/// An error inside a call: the database's (on one line), a lease this
/// replica lost (the job's name), or a copy into a database that has runs.
enum Fail {
    Pg(String),
    LostLease(String),
    NotEmpty(i64),
}

impl<E: std::error::Error + 'static> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail::Pg(chain(&e))
    }
}

type R<T> = Result<T, Fail>;

impl PgStore {
    /// Connects to `url` (TLS with rustls when it says `sslmode=require`)
    /// and migrates its schema under an advisory lock; refuses a schema
    /// newer than this trainwatch knows.
    pub fn open(url: &SecretString, lease: Duration, replica: String) -> Result<Self, StoreError> {
        let shown = redact(url.expose_secret());
        let fail = |doing: &'static str, message: String| StoreError::Postgres {
            url: shown.clone(),
            doing,
            message,
        };
        let mut config: tokio_postgres::Config = url
            .expose_secret()
            .parse()
            .map_err(|e: tokio_postgres::Error| fail("reading the URL", chain(&e)))?;
        // A replica stalled inside a transaction (SIGSTOP between two
        // statements) would hold its row locks, and with them the lease row
        // every other replica needs, for as long as it stays stalled. The
        // server ends such a session after a third of the lease (our
        // transactions last milliseconds), so the lease can be taken over.
        let idle = (lease / 3).max(Duration::from_millis(500));
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={} -c client_min_messages=warning",
            config.get_options().unwrap_or_default(),
            idle.as_millis()
        );
        config.options(options.trim());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trainwatch-store")
            .enable_all()
            .build()
            .map_err(|e| fail("starting its runtime", e.to_string()))?;
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| fail("setting up TLS", e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Manager::from_config(
                    config,
                    tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                    manager_config,
                )
            }
            _ => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let pool = {
            let _entered = rt.enter();
            Pool::builder(manager)
                .max_size(8)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(POOL_WAIT))
                .create_timeout(Some(POOL_WAIT))
                .build()
                .map_err(|e| fail("creating the connection pool", chain(&e)))?
        };
        let store = Self {
            handle: rt.handle().clone(),
            rt: Some(rt),
            pool,
            url: shown.clone(),
            replica,
            lease,
            held: Arc::default(),
        };
        match store.block(store.migrate()) {
            Ok(None) => Ok(store),
            Ok(Some(found)) => Err(StoreError::PostgresNewerSchema {
                url: shown,
                found,
                known: PG_MIGRATIONS.len(),
            }),
            Err(Fail::NotEmpty(runs)) => Err(StoreError::NotEmpty { url: shown, runs }),
            Err(Fail::Pg(m) | Fail::LostLease(m)) => Err(fail(
                "connecting and migrating its schema",
                format!("{m} (check that the server is up and [store] url is right)"),
            )),
        }
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name this process records its runs and leases under.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runs `f` to completion on the store's runtime, blocking the caller
    /// (which may be inside another runtime: the future is polled here,
    /// its I/O driven by the store's own worker).
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        let _entered = self.handle.enter();
        futures::executor::block_on(f)
    }

    /// Runs `f` and maps its failure to a [`StoreError`] saying what it was doing.
    fn call<T, F: std::future::Future<Output = R<T>>>(
        &self,
        doing: &'static str,
        f: F,
    ) -> Result<T, StoreError> {
        self.block(f).map_err(|e| match e {
            Fail::Pg(message) => StoreError::Postgres {
                url: self.url.clone(),
                doing,
                message,
            },
            Fail::LostLease(job) => StoreError::LostLease {
                job,
                replica: self.replica.clone(),
            },
            Fail::NotEmpty(runs) => StoreError::NotEmpty {
                url: self.url.clone(),
                runs,
            },
        })
    }

    async fn client(&self) -> R<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// `Some(version)` when the schema is newer than this trainwatch knows.
    async fn migrate(&self) -> R<Option<usize>> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = async {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS trainwatch_schema (version INTEGER NOT NULL);
                 INSERT INTO trainwatch_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM trainwatch_schema);",
            )
            .await?;
            let version: i32 = c
                .query_one("SELECT version FROM trainwatch_schema", &[])
                .await?
                .get(0);
            let version = usize::try_from(version).unwrap_or(usize::MAX);
            if version > PG_MIGRATIONS.len() {
                return Ok(Some(version));
            }
            if version < PG_MIGRATIONS.len() {
                let tx = c.transaction().await?;
                for sql in &PG_MIGRATIONS[version..] {
                    tx.batch_execute(sql).await?;
                }
                tx.execute(
                    "UPDATE trainwatch_schema SET version = $1",
                    &[&(PG_MIGRATIONS.len() as i32)],
                )
                .await?;
                tx.commit().await?;
            }
            R::Ok(None)
        }
        .await;
        // Unlocked on every path; a dropped connection would unlock it too.
        let _ = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        result
    }

    /// The schema version recorded in the database (for tests and `store status`).
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.call("reading the schema version", async {
            let c = self.client().await?;
            let v: i32 = c
                .query_one("SELECT version FROM trainwatch_schema", &[])
                .await?
                .get(0);
            Ok(usize::try_from(v).unwrap_or(usize::MAX))
        })
    }

    /// Runs one SQL statement (for tests that age a lease or fake a newer schema).
    pub fn execute_for_tests(&self, sql: &str) -> Result<u64, StoreError> {
        self.call("running a statement", async {
            Ok(self.client().await?.execute(sql, &[]).await?)
        })
    }

    /// Runs `f` on the store's runtime (for the mirror), blocking the caller.
    pub(crate) fn run<T>(
        &self,
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.block(f)
    }

    /// A pooled connection (for the mirror).
    pub(crate) async fn connection(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("{}: connecting: {}", self.url, chain(&e)))
    }
}

/// Postgres's columns, as the schema declares them (`timestamptz` times).
impl Columns for tokio_postgres::Row {
    type Error = tokio_postgres::Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, Self::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.try_get(i)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>, Self::Error> {
        self.try_get(i)
    }
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, Self::Error> {
        self.try_get(i)
    }
    fn outcome(&self, i: usize) -> Result<Outcome, Self::Error> {
        self.try_get::<_, Word<Outcome>>(i).map(|w| w.0)
    }
    fn status(&self, i: usize) -> Result<Status, Self::Error> {
        self.try_get::<_, Word<Status>>(i).map(|w| w.0)
    }
}

/// A stored word (`text`) read as the store's enum; an unknown one is a
/// conversion error naming the word, never a guess.
struct Word<T>(T);

/// The enums stored as words, and how each is read.
trait Stored: Sized {
    fn parse(s: &str) -> Result<Self, super::records::UnknownWord>;
}
impl Stored for Outcome {
    fn parse(s: &str) -> Result<Self, super::records::UnknownWord> {
        Outcome::parse(s)
    }
}
impl Stored for Status {
    fn parse(s: &str) -> Result<Self, super::records::UnknownWord> {
        Status::parse(s)
    }
}

impl<'a, T: Stored> tokio_postgres::types::FromSql<'a> for Word<T> {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        Ok(Word(T::parse(s)?))
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}
