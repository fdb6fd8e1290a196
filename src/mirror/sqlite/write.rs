//! The SQLite mirror's writes: pages staged, and the one transaction that
//! moves a sync's pages in with its lists and reach. A sync that reads
//! everything again (a first sync, a rebuild) stages into a load table
//! shaped like `mirror_versions`, which the commit renames into its place
//! (no second copy); any other
//! stages into `mirror_staging`, copied in by the commit (bulk-loaded when
//! the sync is large next to what the mirror holds). Versions go in
//! [`ROWS`] to a statement.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{CachedStatement, Connection, Transaction, TransactionBehavior, params};

use super::{COLUMNS, SqliteMirror, ns, ns_opt, ts};
use crate::mirror::{Lists, Reach, SyncStats};
use crate::samsara::Assignment;

/// The page cache while a sync commits, in KiB (negative: SQLite's unit).
const COMMIT_CACHE_KIB: i64 = -64 * 1024;
/// From how many staged versions a commit considers building the
/// secondary indexes again rather than updating them (see `commit_sync`).
const REINDEX_AT: i64 = 50_000;
/// Pages of WAL after which a sync's writes checkpoint (16 MB of 4 KiB pages).
const STAGING_CHECKPOINT_PAGES: i64 = 4096;
/// SQLite's default page cache, in KiB, restored after a commit.
const DEFAULT_CACHE_KIB: i64 = -2000;

impl SqliteMirror {
    pub(super) fn stage_page(&self, sync: i64, page: &[Assignment]) -> anyhow::Result<()> {
        self.with("storing a page", |c| {
            // The mirror's connection writes only in syncs. A checkpoint
            // (two fsyncs, and every page written a second time) each 4 MB
            // of WAL, SQLite's default, was a large part of staging: each
            // 16 MB instead. Durability is the same (checkpoints only move
            // committed pages), and the WAL stays smaller than what a
            // commit writes anyway before its own checkpoint.
            c.pragma_update(None, "wal_autocheckpoint", STAGING_CHECKPOINT_PAGES)?;
            stage_batch(c, sync, page)
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

/// Versions per multi-row insert: one statement stores this many, so the
/// work SQLite does per statement run (open the table's cursor, begin and
/// end the statement, reset) is paid once per [`ROWS`] versions rather than
/// once per version. 17 parameters each: far below SQLite's limit.
const ROWS: usize = 64;

/// `INSERT` of `rows` versions into `table`: each row's columns bound as
/// `?(17 r + 1)`..`?(17 r + 17)`; into staging, the sync first as `?1` and
/// every column one further.
fn insert_sql(table: &str, rows: usize, or_ignore: bool) -> String {
    let staging = !or_ignore;
    let mut sql = String::with_capacity(64 + rows * 120);
    sql.push_str(if or_ignore {
        "INSERT OR IGNORE INTO \""
    } else {
        "INSERT INTO \""
    });
    sql.push_str(table);
    sql.push_str("\" (");
    if staging {
        sql.push_str("sync_id, ");
    }
    sql.push_str(COLUMNS);
    sql.push_str(") VALUES ");
    let shift = usize::from(staging);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        if staging {
            sql.push_str("?1, ");
        }
        for c in 1..=COLUMN_COUNT {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(r * COLUMN_COUNT + c + shift).to_string());
        }
        sql.push(')');
    }
    sql
}

/// How many columns [`COLUMNS`] names.
const COLUMN_COUNT: usize = 17;

/// One staging transaction: `page` into the sync's load table or staging.
fn stage_batch(c: &mut Connection, sync: i64, page: &[Assignment]) -> anyhow::Result<()> {
    // Immediate: it reads (where to stage) before it writes.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match target(&tx, sync)? {
        Target::Load(table) => {
            // In key order: the B-tree is appended to in runs. Stable,
            // so of exact repeats the first received is inserted first
            // and kept (`OR IGNORE`), as the staging path keeps it.
            let mut sorted: Vec<&Assignment> = page.iter().collect();
            sorted.sort_by(|a, b| {
                (a.id.as_ref(), a.updated_at_time).cmp(&(b.id.as_ref(), b.updated_at_time))
            });
            insert_all(&tx, &table, None, sorted.into_iter(), page.len())?;
        }
        Target::Staging => {
            insert_all(&tx, "mirror_staging", Some(sync), page.iter(), page.len())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Inserts `count` versions, in the order given, into `table`: [`ROWS`]
/// to a statement, the rest one by one. Into staging (`sync` given) every
/// version is inserted; into a load table, exact repeats after the first
/// are ignored.
fn insert_all<'a>(
    tx: &Transaction<'_>,
    table: &str,
    sync: Option<i64>,
    mut versions: impl Iterator<Item = &'a Assignment>,
    count: usize,
) -> anyhow::Result<()> {
    let mut one = tx.prepare_cached(&insert_sql(table, 1, sync.is_none()))?;
    let mut many = tx.prepare_cached(&insert_sql(table, ROWS, sync.is_none()))?;
    let shift = usize::from(sync.is_some());
    if let Some(sync) = sync {
        one.raw_bind_parameter(1, sync)?;
        many.raw_bind_parameter(1, sync)?;
    }
    for _ in 0..count / ROWS {
        for r in 0..ROWS {
            let a = versions.next().context("fewer versions than counted")?;
            bind_version(&mut many, shift + r * COLUMN_COUNT, a)?;
        }
        many.raw_execute()?;
    }
    for a in versions {
        bind_version(&mut one, shift, a)?;
        one.raw_execute()?;
    }
    Ok(())
}

/// Binds one version's [`COLUMNS`] as parameters `after + 1`..`after + 17`:
/// `&str`s straight from the page.
fn bind_version(
    insert: &mut CachedStatement<'_>,
    after: usize,
    a: &Assignment,
) -> anyhow::Result<()> {
    let at = |what: &str, t: DateTime<Utc>| {
        ns(t).with_context(|| format!("assignment {}: {what}", a.id))
    };
    let opt = |what: &str, t: Option<DateTime<Utc>>| {
        ns_opt(t).with_context(|| format!("assignment {}: {what}", a.id))
    };
    insert.raw_bind_parameter(after + 1, a.id.as_ref())?;
    insert.raw_bind_parameter(after + 2, at("updatedAtTime", a.updated_at_time)?)?;
    insert.raw_bind_parameter(after + 3, at("createdAtTime", a.created_at_time)?)?;
    insert.raw_bind_parameter(after + 4, a.course.id.as_ref())?;
    insert.raw_bind_parameter(after + 5, a.course.revision_id.as_deref())?;
    insert.raw_bind_parameter(after + 6, a.learner.as_str())?;
    insert.raw_bind_parameter(after + 7, a.status.as_str())?;
    insert.raw_bind_parameter(after + 8, a.duration_minutes)?;
    insert.raw_bind_parameter(after + 9, a.created_by_id.as_deref())?;
    insert.raw_bind_parameter(after + 10, a.updated_by_id.as_deref())?;
    insert.raw_bind_parameter(after + 11, opt("dueAtTime", a.due_at_time)?)?;
    insert.raw_bind_parameter(after + 12, opt("startedAtTime", a.started_at_time)?)?;
    insert.raw_bind_parameter(after + 13, opt("completedAtTime", a.completed_at_time)?)?;
    insert.raw_bind_parameter(after + 14, opt("deletedAtTime", a.deleted_at_time)?)?;
    insert.raw_bind_parameter(after + 15, a.is_overdue)?;
    insert.raw_bind_parameter(after + 16, a.is_completed_late)?;
    insert.raw_bind_parameter(after + 17, a.score_percent)?;
    Ok(())
}

/// Where a sync's pages are staged.
enum Target {
    /// A table shaped like `mirror_versions` that the commit makes the
    /// mirror by renaming it (a sync that reads everything again).
    Load(String),
    /// `mirror_staging`, moved in by the commit.
    Staging,
}

/// The load table of sync `sync`: its name carries the sync, so what a
/// killed sync left is never mistaken for this one's.
fn load_table(sync: i64) -> String {
    format!("{LOAD_PREFIX}{sync}")
}

/// The name every load table starts with.
const LOAD_PREFIX: &str = "mirror_load_";

fn table_exists(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Drops the load tables of syncs other than `keep` (killed or failed ones).
fn drop_loads(tx: &Transaction<'_>, keep: Option<&str>) -> rusqlite::Result<()> {
    let names = {
        let mut q = tx.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?1) = ?2",
        )?;
        q.query_map(params![LOAD_PREFIX.len() as i64, LOAD_PREFIX], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    for name in names.iter().filter(|n| Some(n.as_str()) != keep) {
        tx.execute_batch(&format!("DROP TABLE \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(())
}

/// Where sync `sync` stages: decided at its first page and kept for the
/// rest. A sync that reads everything again (a first sync, a rebuild)
/// stages into a load table of its own, created from `mirror_versions`'
/// own stored definition (so the two cannot differ): the commit renames it
/// rather than copying a million rows again. Any other stages into
/// `mirror_staging`.
fn target(tx: &Transaction<'_>, sync: i64) -> anyhow::Result<Target> {
    let load = load_table(sync);
    if table_exists(tx, &load)? {
        return Ok(Target::Load(load));
    }
    let started: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM mirror_staging WHERE sync_id = ?1)",
        [sync],
        |r| r.get(0),
    )?;
    if started {
        return Ok(Target::Staging);
    }
    // The first page of this sync: what killed syncs left goes.
    drop_loads(tx, None)?;
    // Everything the mirror holds is read again: the mirror is empty, or
    // the sync starts at or before its reach (a rebuild, a `since` moved
    // earlier). The commit renames (empty, or replaced) or copies.
    let whole: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM mirror_versions)
             OR COALESCE((SELECT range_start FROM mirror_syncs WHERE id = ?1)
                <= (SELECT since FROM mirror_reach WHERE one = 1), 0)",
        [sync],
        |r| r.get(0),
    )?;
    if !whole {
        return Ok(Target::Staging);
    }
    let sql: String = tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'mirror_versions'",
        [],
        |r| r.get(0),
    )?;
    // The first `mirror_versions` in the text is the table's name
    // (`CREATE TABLE mirror_versions (`, quoted once it has been renamed).
    tx.execute_batch(&sql.replacen("mirror_versions", &load, 1))?;
    Ok(Target::Load(load))
}

/// Makes sync's load table the mirror: renamed in place of an empty (or
/// replaced) `mirror_versions`, its indexes built after from sorted keys;
/// otherwise copied in. Returns the new versions.
fn move_load_in(
    tx: &Transaction<'_>,
    load: &str,
    stats: &SyncStats,
    replace: bool,
) -> anyhow::Result<u64> {
    let empty: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM mirror_versions)",
        [],
        |r| r.get(0),
    )?;
    if !(replace || empty) {
        // Already in key order, exact repeats already dropped.
        let new = copy_in(
            tx,
            &format!("SELECT {COLUMNS} FROM \"{load}\""),
            [],
            stats,
            false,
        )?;
        tx.execute_batch(&format!("DROP TABLE \"{load}\""))?;
        return Ok(new);
    }
    let new: i64 = tx.query_row(&format!("SELECT COUNT(*) FROM \"{load}\""), [], |r| {
        r.get(0)
    })?;
    let indexes = {
        let mut q = tx.prepare(
            "SELECT sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'mirror_versions' AND sql IS NOT NULL",
        )?;
        q.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.execute_batch(&format!(
        "DROP TABLE mirror_versions; ALTER TABLE \"{load}\" RENAME TO mirror_versions;"
    ))?;
    create_indexes(tx, indexes.iter())?;
    Ok(new as u64)
}

/// Copies the rows `select` gives into `mirror_versions` (emptied first
/// with `replace`). Returns the new versions.
fn copy_in(
    tx: &Transaction<'_>,
    select: &str,
    params: impl rusqlite::Params,
    stats: &SyncStats,
    replace: bool,
) -> anyhow::Result<u64> {
    if replace {
        tx.execute("DELETE FROM mirror_versions", [])?;
    }
    // A sync that brings many versions relative to what the mirror holds
    // (a `since` moved earlier) fills the secondary indexes at random, page
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
        &format!("INSERT OR IGNORE INTO mirror_versions ({COLUMNS}) {select}"),
        params,
    )? as u64;
    create_indexes(tx, indexes.iter().map(|(_, sql)| sql))?;
    Ok(new)
}

/// Builds indexes (`CREATE INDEX` statements) from a table's every row,
/// with SQLite's default page cache rather than the commit's: the sort
/// behind each works in runs of about the cache's size, and small runs
/// sort in the CPU's caches before they are merged, where one run of the
/// whole index (a million keys in random order, `created_at`) took twice
/// as long. Index pages are written in key order, needing little cache.
fn create_indexes<'a>(
    tx: &Transaction<'_>,
    sqls: impl Iterator<Item = &'a String>,
) -> rusqlite::Result<()> {
    tx.pragma_update(None, "cache_size", DEFAULT_CACHE_KIB)?;
    for sql in sqls {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "cache_size", COMMIT_CACHE_KIB)
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
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let load = load_table(sync);
    let loaded = table_exists(&tx, &load)?;
    if replace {
        tx.execute_batch(
            "DELETE FROM mirror_courses; DELETE FROM mirror_drivers;
             DELETE FROM mirror_tags; DELETE FROM mirror_driver_tags; DELETE FROM mirror_reach;",
        )?;
    }
    let new = if loaded {
        move_load_in(&tx, &load, stats, replace)?
    } else {
        copy_in(
            &tx,
            // In primary-key order: the B-tree is appended to in runs rather
            // than written at random, the classic bulk load. `rowid` last
            // keeps the first received of exact repeats, as before.
            &format!(
                "SELECT {COLUMNS} FROM mirror_staging WHERE sync_id = ?1
                 ORDER BY id, updated_at, rowid"
            ),
            [sync],
            stats,
            replace,
        )?
    };
    // What syncs killed before their commit left in load tables.
    drop_loads(&tx, None)?;
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
