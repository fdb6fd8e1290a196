//! The mirror in SQLite, in the state store's file (`state_dir/trainwatch.db`).
//!
//! Its tables come from one migration of the store (in
//! `store::MIGRATIONS`). The mirror keeps its own connection, so a long sync
//! never holds the run ledger's.
//!
//! Times are stored as integer nanoseconds since the epoch: exact for what
//! the API sends, and ordered as numbers, so the indexes serve window
//! queries (`updated_at`, `created_at`) and state-as-of queries (the primary
//! key `(id, updated_at)`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::intern::Shared;
use super::{Lists, MirrorStatus, MirrorStore, Reach, StateOrder, SyncRecord, SyncStats};
use crate::learner::LearnerId;
use crate::samsara::{Assignment, Category, Course, CourseRef, Driver, Status, Tag, TagRef};

mod state;
mod write;

/// The columns of a version, in table order (after `sync_id` in staging).
const COLUMNS: &str = "id, updated_at, created_at, course_id, course_revision, learner, status, \
     duration_minutes, created_by, updated_by, due_at, started_at, completed_at, deleted_at, \
     is_overdue, is_completed_late, score_percent";

/// The mirror in SQLite.
#[derive(Debug)]
pub struct SqliteMirror {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Nanoseconds since the epoch; an error for instants SQLite's integers cannot hold.
fn ns(t: DateTime<Utc>) -> anyhow::Result<i64> {
    t.timestamp_nanos_opt()
        .with_context(|| format!("{t} is outside the years 1677–2262 the mirror can store"))
}

fn ns_opt(t: Option<DateTime<Utc>>) -> anyhow::Result<Option<i64>> {
    t.map(ns).transpose()
}

fn from_ns(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A stored version back as the API sent it; its repeated strings shared
/// through `shared`.
fn version(r: &Row<'_>, shared: &mut Shared) -> rusqlite::Result<Assignment> {
    let t = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(from_ns))
    };
    let text = |i: usize| -> rusqlite::Result<Option<&str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
    Ok(Assignment {
        id: std::sync::Arc::from(r.get_ref(0)?.as_str()?),
        updated_at_time: from_ns(r.get(1)?),
        created_at_time: from_ns(r.get(2)?),
        course: CourseRef {
            id: shared.course.get(r.get_ref(3)?.as_str()?),
            revision_id: shared.revision.get_opt(text(4)?),
        },
        learner: LearnerId::from_canonical(shared.learner.get(r.get_ref(5)?.as_str()?)),
        // Read in place: a String per row for three known words is waste.
        status: Status::from_wire(r.get_ref(6)?.as_str()?),
        duration_minutes: r.get(7)?,
        created_by_id: shared.user.get_opt(text(8)?),
        updated_by_id: shared.user.get_opt(text(9)?),
        due_at_time: t(10)?,
        started_at_time: t(11)?,
        completed_at_time: t(12)?,
        deleted_at_time: t(13)?,
        is_overdue: r.get(14)?,
        is_completed_late: r.get(15)?,
        score_percent: r.get(16)?,
    })
}

impl SqliteMirror {
    /// Opens the mirror in `state_dir/trainwatch.db`, migrating the store first.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        // Jobs starting at once must not migrate a new database twice at once.
        static MIGRATING: Mutex<()> = Mutex::new(());
        let path = {
            let _one = MIGRATING.lock().unwrap_or_else(|e| e.into_inner());
            crate::store::SqliteStore::open(state_dir)?
                .path()
                .to_path_buf()
        };
        let conn = Connection::open(&path)
            .with_context(|| format!("opening the mirror in {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Staged pages need no fsync each: a crash loses the sync anyway.
        // The commit that makes a sync visible is made with FULL (below).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn with<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).with_context(|| format!("mirror in {}: {doing}", self.path.display()))
    }
}

fn sync_record(r: &Row<'_>) -> rusqlite::Result<SyncRecord> {
    let warnings: Option<String> = r.get(12)?;
    Ok(SyncRecord {
        id: r.get(0)?,
        started_at: parse_ts(&r.get::<_, String>(1)?),
        finished_at: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
        start: from_ns(r.get(3)?),
        end: from_ns(r.get(4)?),
        outcome: r.get(5)?,
        stats: SyncStats {
            versions: r.get::<_, i64>(6)? as u64,
            new_versions: r.get::<_, i64>(7)? as u64,
            requests: r.get::<_, i64>(8)? as u64,
            pages: r.get::<_, i64>(9)? as u64,
        },
        seconds: r.get(10)?,
        error: r.get(11)?,
        warnings: warnings
            .and_then(|w| serde_json::from_str(&w).ok())
            .unwrap_or_default(),
    })
}

const SYNC_COLUMNS: &str = "id, started_at, finished_at, range_start, range_end, outcome, versions, \
     new_versions, requests, pages, seconds, error, warnings";

impl MirrorStore for SqliteMirror {
    fn location(&self) -> PathBuf {
        self.path.clone()
    }

    fn reach(&self) -> anyhow::Result<Option<Reach>> {
        self.with("reading its reach", |c| {
            Ok(c.query_row(
                "SELECT since, reach_end FROM mirror_reach WHERE one = 1",
                [],
                |r| {
                    Ok(Reach {
                        since: from_ns(r.get(0)?),
                        end: from_ns(r.get(1)?),
                    })
                },
            )
            .optional()?)
        })
    }

    fn begin_sync(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let (start, end) = (ns(start)?, ns(end)?);
        self.with("starting a sync", |c| {
            let tx = c.transaction()?;
            // What a sync killed part-way left staged is never committed: drop it.
            tx.execute("DELETE FROM mirror_staging", [])?;
            tx.execute(
                "UPDATE mirror_syncs SET outcome = 'interrupted' WHERE outcome = 'running'",
                [],
            )?;
            tx.execute(
                "INSERT INTO mirror_syncs (started_at, range_start, range_end, outcome) VALUES (?1, ?2, ?3, 'running')",
                params![ts(now), start, end],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    fn stage(&self, sync: i64, page: &[Assignment]) -> anyhow::Result<()> {
        self.stage_page(sync, page)
    }

    fn commit(
        &self,
        sync: i64,
        reach: Reach,
        lists: &Lists,
        stats: &SyncStats,
        replace: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        self.commit_staged(sync, reach, lists, stats, replace, now)
    }

    fn fail(
        &self,
        sync: i64,
        error: &str,
        stats: &SyncStats,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.with("recording a failed sync", |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM mirror_staging WHERE sync_id = ?1", [sync])?;
            tx.execute(
                "UPDATE mirror_syncs SET outcome = 'failed', finished_at = ?2, versions = ?3,
                   requests = ?4, pages = ?5,
                   seconds = (julianday(?2) - julianday(started_at)) * 86400.0, error = ?6
                 WHERE id = ?1",
                params![
                    sync,
                    ts(now),
                    stats.versions as i64,
                    stats.requests as i64,
                    stats.pages as i64,
                    error
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn versions_in(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Assignment>> {
        let (start, end) = (ns(start)?, ns(end)?);
        self.with("reading a window", |c| {
            // Two index ranges (SQLite's OR optimisation), one pass each.
            let mut q = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM mirror_versions
                 WHERE (updated_at >= ?1 AND updated_at < ?2) OR (created_at >= ?1 AND created_at < ?2)
                 ORDER BY updated_at, id"
            ))?;
            let mut shared = Shared::default();
            let rows = q.query_map(params![start, end], |r| version(r, &mut shared))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn state_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Assignment>> {
        super::collect_state(self, at)
    }

    /// Per id, the row of the newest version before `at`: as stored, from
    /// the primary key walked backwards, in two halves on two threads when
    /// the mirror is large (`sqlite/state.rs`); by update, from `GROUP BY`
    /// with `MAX` (SQLite takes bare columns from the MAX row), sorted by
    /// SQLite's sorter (which spills to temporary files
    /// past its cache), ids in BINARY collation: `sort_by_update`'s bytes.
    fn state_read(
        &self,
        at: DateTime<Utc>,
        order: StateOrder,
        each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let at = ns(at)?;
        match order {
            StateOrder::AsStored => self.with(order.reading(), |c| {
                state::newest_before(c, &self.path, at, each)
            }),
            StateOrder::ByUpdate => self.with(order.reading(), |c| {
                let mut q = c.prepare_cached(&format!(
                    "SELECT * FROM (SELECT {COLUMNS}, MAX(updated_at) FROM mirror_versions
                     WHERE updated_at < ?1 GROUP BY id) ORDER BY updated_at, id"
                ))?;
                let mut rows = q.query([at])?;
                let mut shared = Shared::default();
                while let Some(r) = rows.next()? {
                    each(version(r, &mut shared)?)?;
                }
                Ok(())
            }),
        }
    }

    fn state_kept(
        &self,
        at: DateTime<Utc>,
        keep: &(dyn Fn(&Assignment) -> bool + Sync),
    ) -> anyhow::Result<(crate::data::HeldState, u64)> {
        let at = ns(at)?;
        self.with(StateOrder::ByUpdate.reading(), |c| {
            state::kept_before(c, &self.path, at, keep)
        })
    }

    fn courses(&self) -> anyhow::Result<Vec<Course>> {
        self.with("reading courses", |c| {
            let mut q = c.prepare_cached(
                "SELECT id, title, status, category_id, category_name, minutes FROM mirror_courses ORDER BY id",
            )?;
            let rows = q.query_map([], |r| {
                let category_id: Option<String> = r.get(3)?;
                let category_name: Option<String> = r.get(4)?;
                Ok(Course {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    status: r.get(2)?,
                    category: category_id.map(|id| Category {
                        id,
                        name: category_name.unwrap_or_default(),
                    }),
                    estimated_time_to_complete_minutes: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn drivers_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Driver>> {
        // Instants past what nanoseconds hold mean "now and ever after".
        let at = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        self.with("reading drivers", |c| {
            let mut tags: std::collections::HashMap<String, Vec<TagRef>> = Default::default();
            {
                let mut q = c.prepare_cached(
                    "SELECT driver_id, tag_id, tag_name, parent_tag_id FROM mirror_driver_tags
                     WHERE valid_from <= ?1 AND (valid_to IS NULL OR valid_to > ?1) ORDER BY tag_id",
                )?;
                let rows = q.query_map([at], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        TagRef {
                            id: r.get(1)?,
                            name: r.get(2)?,
                            parent_tag_id: r.get(3)?,
                        },
                    ))
                })?;
                for row in rows {
                    let (driver, tag) = row?;
                    tags.entry(driver).or_default().push(tag);
                }
            }
            let mut q = c.prepare_cached(
                "SELECT id, name, username, activation FROM mirror_drivers ORDER BY id",
            )?;
            let rows = q.query_map([], |r| {
                Ok(Driver {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    username: r.get(2)?,
                    driver_activation_status: r.get(3)?,
                    tags: Vec::new(),
                })
            })?;
            let mut drivers = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            for d in &mut drivers {
                d.tags = tags.remove(&d.id).unwrap_or_default();
            }
            Ok(drivers)
        })
    }

    fn tags_known_since(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.with("reading the start of the tag history", |c| {
            let first: Option<i64> =
                c.query_row("SELECT MIN(valid_from) FROM mirror_driver_tags", [], |r| {
                    r.get(0)
                })?;
            Ok(first.map(DateTime::from_timestamp_nanos))
        })
    }

    fn tags(&self) -> anyhow::Result<Vec<Tag>> {
        self.with("reading tags", |c| {
            let mut q =
                c.prepare_cached("SELECT id, name, parent_tag_id FROM mirror_tags ORDER BY id")?;
            let rows = q.query_map([], |r| {
                Ok(Tag {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    parent_tag_id: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn warnings(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .syncs(50)?
            .into_iter()
            .find(|s| s.outcome == "succeeded")
            .map(|s| s.warnings)
            .unwrap_or_default())
    }

    fn syncs(&self, limit: usize) -> anyhow::Result<Vec<SyncRecord>> {
        self.with("reading syncs", |c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {SYNC_COLUMNS} FROM mirror_syncs ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = q.query_map([limit as i64], sync_record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn status(&self) -> anyhow::Result<MirrorStatus> {
        let reach = self.reach()?;
        let syncs = self.syncs(1)?;
        let (versions, assignments, courses, drivers, tags, last_success) =
            self.with("counting", |c| {
                let count = |sql: &str| -> rusqlite::Result<u64> {
                    c.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64)
                };
                let last = c
                    .query_row(
                        &format!(
                            "SELECT {SYNC_COLUMNS} FROM mirror_syncs WHERE outcome = 'succeeded' ORDER BY id DESC LIMIT 1"
                        ),
                        [],
                        sync_record,
                    )
                    .optional()?;
                Ok((
                    count("SELECT COUNT(*) FROM mirror_versions")?,
                    count("SELECT COUNT(*) FROM (SELECT DISTINCT id FROM mirror_versions)")?,
                    count("SELECT COUNT(*) FROM mirror_courses")?,
                    count("SELECT COUNT(*) FROM mirror_drivers")?,
                    count("SELECT COUNT(*) FROM mirror_tags")?,
                    last,
                ))
            })?;
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok()
            })
            .map(|m| m.len())
            .sum();
        Ok(MirrorStatus {
            reach,
            versions,
            assignments,
            courses,
            drivers,
            tags,
            last_sync: syncs.into_iter().next(),
            last_success,
            bytes,
        })
    }
}
