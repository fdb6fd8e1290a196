//! The SQLite store in `state_dir/trainwatch.db`: opening and migrating
//! it, and the one connection every operation goes through. Runs, the
//! outbox and the job locks are in the files beside this one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, TransactionBehavior};

use super::row::Columns;
use super::{Outcome, Status, StoreError, replica_id};

mod locks;
mod migrations;
mod outbox;
mod runs;

pub use migrations::MIGRATIONS;

/// The SQLite store. One connection behind a mutex: every operation is a
/// short transaction, and runs are few.
#[derive(Debug)]
pub struct SqliteStore {
    /// Private to the store (its tests read pragmas through it).
    pub(in crate::store) conn: Mutex<Connection>,
    path: PathBuf,
    /// The name runs are recorded under; [`super::Store::open_config`] sets it.
    pub(in crate::store) replica: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored time; one that is not RFC 3339 (a damaged or hand-edited
/// store) is an error for column `i`, never read as some other time.
fn parse_ts(s: &str, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
}

/// A stored word read through `parse`, its error reported for column `i`.
fn word<T>(
    s: &str,
    i: usize,
    parse: fn(&str) -> Result<T, super::records::UnknownWord>,
) -> rusqlite::Result<T> {
    parse(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// How long a connection waits for another process's write to finish
/// before a statement fails with "database is locked".
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A write transaction that takes the write lock at `BEGIN`, waiting up to
/// [`BUSY_TIMEOUT`] for it. A deferred one would start as a reader and fail
/// at once (SQLITE_BUSY, no waiting) when it tries to write after another
/// process has written since it read.
fn write_tx(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
}

impl SqliteStore {
    /// Opens (creating, and migrating) `state_dir/trainwatch.db`. Any
    /// number of processes may open one database at once: the migrations
    /// run once, in one exclusive transaction, and the others wait for it.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("trainwatch.db");
        let err = |doing| {
            let path = path.clone();
            move |source| StoreError::Sqlite {
                path,
                doing,
                source,
            }
        };
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Io {
            path: path.clone(),
            doing: "creating state_dir",
            source,
        })?;
        let mut conn = Connection::open(&path).map_err(err("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("configuring"))?;
        enable_wal(&conn).map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("configuring"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("configuring"))?;
        let newer = |found: usize| StoreError::NewerSchema {
            path: path.clone(),
            found,
            known: MIGRATIONS.len(),
        };
        let version = schema_version(&conn).map_err(err("reading the schema version"))?;
        if version > MIGRATIONS.len() {
            return Err(newer(version));
        }
        if version < MIGRATIONS.len() {
            // Exclusive, and the version read again inside: of several
            // processes starting together, one migrates, the others wait
            // and then find nothing left to do.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(err("migrating"))?;
            let version = schema_version(&tx).map_err(err("migrating"))?;
            if version > MIGRATIONS.len() {
                return Err(newer(version));
            }
            for sql in &MIGRATIONS[version..] {
                tx.execute_batch(sql).map_err(err("migrating"))?;
            }
            tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
                .map_err(err("migrating"))?;
            tx.commit().map_err(err("migrating"))?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            replica: replica_id(None),
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection; its failure says what it was `doing`.
    fn with<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            doing,
            source,
        })
    }
}

/// Switches `conn` to WAL, waiting for other processes doing the same. The
/// switch needs an exclusive lock, and SQLite does not always call the busy
/// handler for it (it returns SQLITE_BUSY at once when waiting could
/// deadlock), so processes opening a fresh database together retry here,
/// for at most [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// The count of migrations applied (`PRAGMA user_version`).
pub(in crate::store) fn schema_version(c: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

/// SQLite's columns: times as RFC 3339 text (an unreadable one is an
/// error), flags and counts as integers.
impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn time(&self, i: usize) -> rusqlite::Result<DateTime<Utc>> {
        parse_ts(&self.get::<_, String>(i)?, i)
    }
    fn opt_time(&self, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
        self.get::<_, Option<String>>(i)?
            .map(|s| parse_ts(&s, i))
            .transpose()
    }
    fn outcome(&self, i: usize) -> rusqlite::Result<Outcome> {
        word(&self.get::<_, String>(i)?, i, Outcome::parse)
    }
    fn status(&self, i: usize) -> rusqlite::Result<Status> {
        word(&self.get::<_, String>(i)?, i, Status::parse)
    }
}
