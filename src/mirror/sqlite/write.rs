//! The SQLite mirror's writes: pages staged, and the one transaction that
//! moves a sync's pages in with its lists and reach (bulk-loaded when the
//! sync is large next to what the mirror holds).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{COLUMNS, SqliteMirror, ns, ns_opt, ts};
use crate::mirror::{Lists, Reach, SyncStats};
use crate::samsara::Assignment;

/// The page cache while a sync commits, in KiB (negative: SQLite's unit).
const COMMIT_CACHE_KIB: i64 = -64 * 1024;
/// From how many staged versions a commit considers building the
/// secondary indexes again rather than updating them (see `commit_sync`).
const REINDEX_AT: i64 = 50_000;
/// SQLite's default page cache, in KiB, restored after a commit.
const DEFAULT_CACHE_KIB: i64 = -2000;

impl SqliteMirror {
    pub(super) fn stage_page(&self, sync: i64, page: &[Assignment]) -> anyhow::Result<()> {
        self.with("storing a page", |c| {
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT INTO mirror_staging (sync_id, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                ))?;
                for a in page {
                    let at = |what: &str, t: DateTime<Utc>| {
                        ns(t).with_context(|| format!("assignment {}: {what}", a.id))
                    };
                    let opt = |what: &str, t: Option<DateTime<Utc>>| {
                        ns_opt(t).with_context(|| format!("assignment {}: {what}", a.id))
                    };
                    insert.execute(params![
                        sync,
                        a.id,
                        at("updatedAtTime", a.updated_at_time)?,
                        at("createdAtTime", a.created_at_time)?,
                        a.course.id,
                        a.course.revision_id,
                        a.learner.as_str(),
                        a.status.as_str(),
                        a.duration_minutes,
                        a.created_by_id,
                        a.updated_by_id,
                        opt("dueAtTime", a.due_at_time)?,
                        opt("startedAtTime", a.started_at_time)?,
                        opt("completedAtTime", a.completed_at_time)?,
                        opt("deletedAtTime", a.deleted_at_time)?,
                        a.is_overdue,
                        a.is_completed_late,
                        a.score_percent,
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub(super) fn commit_staged(
        &self,
        sync: i64,
        reach: Reach,
        lists: &Lists,
        stats: &SyncStats,
        replace: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let (since, end) = (ns(reach.since)?, ns(reach.end)?);
        self.with("committing a sync", |c| {
            c.pragma_update(None, "synchronous", "FULL")?;
            // The commit updates three indexes of up to millions of rows: with
            // SQLite's default 2 MB page cache it rereads the same pages again
            // and again. A bigger cache for the commit only, then given back.
            c.pragma_update(None, "cache_size", COMMIT_CACHE_KIB)?;
            let committed = commit_sync(c, sync, since, end, lists, stats, replace, now);
            c.pragma_update(None, "cache_size", DEFAULT_CACHE_KIB)?;
            let _ = c.execute_batch("PRAGMA shrink_memory");
            c.pragma_update(None, "synchronous", "NORMAL")?;
            // A big sync leaves a WAL as big as what it moved: fold it into
            // the database and truncate it now rather than keep the space
            // (best effort: a reader may hold it, and then it waits for later).
            if committed.as_ref().is_ok_and(|new| *new > 10_000) {
                let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            }
            committed
        })
    }
}

/// The transaction of [`MirrorStore::commit`].
#[allow(clippy::too_many_arguments)] // the commit's whole input, passed through
fn commit_sync(
    c: &mut Connection,
    sync: i64,
    since: i64,
    end: i64,
    lists: &Lists,
    stats: &SyncStats,
    replace: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let tx = c.transaction()?;
    if replace {
        tx.execute_batch(
            "DELETE FROM mirror_versions; DELETE FROM mirror_courses; DELETE FROM mirror_drivers;
             DELETE FROM mirror_tags; DELETE FROM mirror_driver_tags; DELETE FROM mirror_reach;",
        )?;
    }
    // A sync that brings many versions relative to what the mirror holds
    // (a first sync, a rebuild) fills the secondary indexes at random, page
    // after page: dropped and built again from sorted keys is several times
    // faster. Inside the transaction, so readers see both or neither.
    let staged = stats.versions as i64;
    let indexes: Vec<(String, String)> = if staged >= REINDEX_AT
        && (replace
            || 4 * staged
                >= tx.query_row("SELECT COUNT(*) FROM mirror_versions", [], |r| {
                    r.get::<_, i64>(0)
                })?) {
        let mut q = tx.prepare(
            "SELECT name, sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'mirror_versions' AND sql IS NOT NULL",
        )?;
        let found = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (name, _) in &found {
            tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
        }
        found
    } else {
        Vec::new()
    };
    let new = tx.execute(
        &format!(
            // In primary-key order: the B-tree is appended to in runs rather
            // than written at random, the classic bulk load. `rowid` last keeps
            // the first received of exact repeats, as before.
            "INSERT OR IGNORE INTO mirror_versions ({COLUMNS})
                     SELECT {COLUMNS} FROM mirror_staging WHERE sync_id = ?1
                     ORDER BY id, updated_at, rowid"
        ),
        [sync],
    )? as u64;
    for (_, sql) in &indexes {
        tx.execute_batch(sql)?;
    }
    // Only this sync's pages are staged (`begin_sync` drops any others, and
    // one sync runs at a time): emptied whole, SQLite frees the pages at
    // once instead of deleting row by row.
    tx.execute("DELETE FROM mirror_staging", [])?;
    if let Some(courses) = &lists.courses {
        let mut up = tx.prepare_cached(
                    "INSERT INTO mirror_courses (id, title, status, category_id, category_name, minutes, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET title = excluded.title, status = excluded.status,
                       category_id = excluded.category_id, category_name = excluded.category_name,
                       minutes = excluded.minutes, seen_at = excluded.seen_at",
                )?;
        for k in courses {
            up.execute(params![
                k.id,
                k.title,
                k.status,
                k.category.as_ref().map(|c| &c.id),
                k.category.as_ref().map(|c| &c.name),
                k.estimated_time_to_complete_minutes,
                end
            ])?;
        }
    }
    if let Some(tags) = &lists.tags {
        let mut up = tx.prepare_cached(
            "INSERT INTO mirror_tags (id, name, parent_tag_id, seen_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                       parent_tag_id = excluded.parent_tag_id, seen_at = excluded.seen_at",
        )?;
        for t in tags {
            up.execute(params![t.id, t.name, t.parent_tag_id, end])?;
        }
    }
    if let Some(drivers) = &lists.drivers {
        let mut up = tx.prepare_cached(
                    "INSERT INTO mirror_drivers (id, name, username, activation, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, username = excluded.username,
                       activation = excluded.activation, seen_at = excluded.seen_at",
                )?;
        for d in drivers {
            up.execute(params![
                d.id,
                d.name,
                d.username,
                d.driver_activation_status,
                end
            ])?;
        }
        // Tag membership keeps its history: a change closes the old
        // row and opens a new one at this sync's end.
        let mut open = std::collections::HashMap::<(String, String), ()>::new();
        {
            let mut q = tx.prepare(
                "SELECT driver_id, tag_id FROM mirror_driver_tags WHERE valid_to IS NULL",
            )?;
            let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                open.insert(row?, ());
            }
        }
        let mut insert = tx.prepare_cached(
                    "INSERT INTO mirror_driver_tags (driver_id, tag_id, tag_name, parent_tag_id, valid_from)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
        for d in drivers {
            for t in &d.tags {
                if open.remove(&(d.id.clone(), t.id.clone())).is_none() {
                    insert.execute(params![d.id, t.id, t.name, t.parent_tag_id, end])?;
                }
            }
        }
        let mut close = tx.prepare_cached(
            "UPDATE mirror_driver_tags SET valid_to = ?3
                     WHERE driver_id = ?1 AND tag_id = ?2 AND valid_to IS NULL",
        )?;
        for (driver, tag) in open.into_keys() {
            close.execute(params![driver, tag, end])?;
        }
    }
    tx.execute(
                "INSERT INTO mirror_reach (one, since, reach_end) VALUES (1, ?1, ?2)
                 ON CONFLICT (one) DO UPDATE SET since = excluded.since, reach_end = excluded.reach_end",
                params![since, end],
            )?;
    tx.execute(
        "UPDATE mirror_syncs SET outcome = 'succeeded', finished_at = ?2, versions = ?3,
                   new_versions = ?4, requests = ?5, pages = ?6,
                   seconds = (julianday(?2) - julianday(started_at)) * 86400.0, warnings = ?7
                 WHERE id = ?1",
        params![
            sync,
            ts(now),
            stats.versions as i64,
            new as i64,
            stats.requests as i64,
            stats.pages as i64,
            serde_json::to_string(&lists.warnings)?,
        ],
    )?;
    tx.commit()?;
    Ok(new)
}
