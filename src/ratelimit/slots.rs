//! The request slots of one token, shared by every process on one state store.
//!
//! A rate limit per process lets three processes on one token send three
//! times the allowed rate. Here the limiter's state — GCRA's "theoretical
//! arrival time" (TAT) of the next request, per (base URL, endpoint, token)
//! — lives in one SQLite table that every process books its slots from, one
//! `BEGIN IMMEDIATE` transaction per request.
//!
//! It is a small database of its own beside the state store
//! (`state_dir/ratelimit.db`), not a table of `trainwatch.db`: a mirror
//! sync's long commit holds that file's write lock for seconds, and would
//! stall every other process's next request. The whole interface is one
//! table and two functions ([`SqliteSlots::open`], [`SlotBook::book`]), so a
//! Postgres store can hold the same table (`SELECT … FOR UPDATE`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{RateLimits, SlotBook};

/// The slot table: one row per key, the TAT in nanoseconds since the epoch.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS rate_slots (
    key    TEXT PRIMARY KEY,
    tat_ns INTEGER NOT NULL
) WITHOUT ROWID";

/// How long a booking waits for another process's booking (microseconds
/// each) before it fails and the limiter falls back to its own pacing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored TAT further ahead than this is not believed (the wall clock went
/// back, or the row was written by hand): the slot starts from now instead,
/// so no process ever waits longer than this for one request.
const MAX_AHEAD: Duration = Duration::from_secs(600);

/// The slot book in `state_dir/ratelimit.db`.
#[derive(Debug)]
pub struct SqliteSlots {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteSlots {
    /// Opens (creating) `state_dir/ratelimit.db`.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let path = state_dir.join("ratelimit.db");
        let doing = |what: &str| format!("rate-limit slots {}: {what}", path.display());
        std::fs::create_dir_all(state_dir).with_context(|| doing("creating state_dir"))?;
        let conn = Connection::open(&path).with_context(|| doing("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .with_context(|| doing("configuring"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(|| doing("enabling WAL"))?;
        // A slot lost to a power cut costs nothing: no fsync per request.
        conn.pragma_update(None, "synchronous", "OFF")
            .with_context(|| doing("configuring"))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| doing("creating the table"))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SlotBook for SqliteSlots {
    fn book(&self, key: &str, period: Duration, now_ns: i64) -> Result<i64, String> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let run = |conn: &mut Connection| -> rusqlite::Result<i64> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tat: Option<i64> = tx
                .prepare_cached("SELECT tat_ns FROM rate_slots WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?;
            let slot = next_slot(tat, now_ns);
            let period_ns = i64::try_from(period.as_nanos()).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO rate_slots (key, tat_ns) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET tat_ns = excluded.tat_ns",
            )?
            .execute(params![key, slot.saturating_add(period_ns)])?;
            tx.commit()?;
            Ok(slot)
        };
        run(&mut conn).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// The rate limits of a process on `state_dir`'s store: shared with every
/// other process on it and on `token`. When state_dir does not exist yet the
/// process paces alone ([`RateLimits::local`]); when the slot book cannot
/// be opened too, with a warning. Build it once per process and pass it on.
pub fn shared_limits(state_dir: &Path, token: &SecretString) -> Arc<RateLimits> {
    // A command that keeps no state (`export`, `preview`) does not create
    // state_dir just for this (an export leaves nothing behind but its
    // output). Once anything has run there, state_dir exists and is shared.
    if !state_dir.is_dir() {
        return RateLimits::local();
    }
    match SqliteSlots::open(state_dir) {
        Ok(book) => Arc::new(RateLimits::shared(Arc::new(book), token.expose_secret())),
        Err(e) => {
            tracing::warn!(
                "{e:#}; pacing this process alone, other processes on the token may cause 429s"
            );
            RateLimits::local()
        }
    }
}

/// GCRA with a burst of one: the next slot is the stored TAT, or now when
/// that has passed (or is not believable, see [`MAX_AHEAD`]).
fn next_slot(tat: Option<i64>, now_ns: i64) -> i64 {
    let max_ahead = MAX_AHEAD.as_nanos() as i64;
    match tat {
        Some(t) if t > now_ns && t - now_ns <= max_ahead => t,
        _ => now_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn three_connections_on_one_file_get_evenly_spaced_slots() {
        // Three connections are three processes as far as SQLite is concerned.
        let dir = tempfile::tempdir().unwrap();
        let books: Vec<_> = (0..3)
            .map(|_| SqliteSlots::open(dir.path()).unwrap())
            .collect();
        let period = Duration::from_millis(200);
        let now = 1_700_000_000_000 * MS;
        let mut slots = Vec::new();
        for round in 0..4 {
            for book in &books {
                // Everyone asks at the same instant.
                slots.push(book.book("k", period, now + round).unwrap());
            }
        }
        let expected: Vec<i64> = (0..12).map(|i| now + i * 200 * MS).collect();
        assert_eq!(slots, expected);
    }

    #[test]
    fn keys_are_paced_apart_and_an_idle_key_starts_now() {
        let dir = tempfile::tempdir().unwrap();
        let book = SqliteSlots::open(dir.path()).unwrap();
        let p = Duration::from_millis(200);
        assert_eq!(book.book("a", p, 1_000 * MS).unwrap(), 1_000 * MS);
        assert_eq!(book.book("b", p, 1_000 * MS).unwrap(), 1_000 * MS);
        assert_eq!(book.book("a", p, 1_000 * MS).unwrap(), 1_200 * MS);
        // Long after: the slot is now, not a backlog of missed slots.
        assert_eq!(book.book("a", p, 5_000 * MS).unwrap(), 5_000 * MS);
    }

    #[test]
    fn a_slot_far_in_the_future_is_not_believed() {
        let now = 1_000 * MS;
        assert_eq!(next_slot(Some(now + 3_600_000 * MS), now), now);
        assert_eq!(next_slot(Some(now + 300 * MS), now), now + 300 * MS);
        assert_eq!(next_slot(Some(now - 1), now), now);
        assert_eq!(next_slot(None, now), now);
    }
}
