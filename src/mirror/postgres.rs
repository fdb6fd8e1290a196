//! The mirror in Postgres, in the store's database (`[store] url`).
//!
//! The same tables and rules as [`super::sqlite`] (times as nanoseconds
//! since the epoch; staged pages moved in by one transaction), plus what
//! several replicas need: one sync at a time across hosts, by a lease in
//! the store (`mirror-sync`) that a dead or stalled replica loses, and a
//! commit fenced by that lease, so a replica that stalled past it cannot
//! record a reach over the sync of the one that took over.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio_postgres::Row;

use super::intern::Shared;
use super::{Lists, MirrorStatus, MirrorStore, Reach, StateOrder, SyncLock, SyncRecord, SyncStats};
use crate::learner::LearnerId;
use crate::samsara::{Assignment, Category, Course, CourseRef, Driver, Status, Tag, TagRef};
use crate::store::postgres::PgStore;

mod write;

/// The columns of a version, in table order.
const COLUMNS: &str = "id, updated_at, created_at, course_id, course_revision, learner, status, \
     duration_minutes, created_by, updated_by, due_at, started_at, completed_at, deleted_at, \
     is_overdue, is_completed_late, score_percent";

const SYNC_COLUMNS: &str = "id, started_at, finished_at, range_start, range_end, outcome, versions, \
     new_versions, requests, pages, seconds, error, warnings";

/// The mirror in Postgres.
#[derive(Debug)]
pub struct PgMirror {
    store: PgStore,
}

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

/// The version in row `r`; its repeated strings shared through `shared`.
fn version(r: &Row, shared: &mut Shared) -> Assignment {
    let t = |i: usize| r.get::<_, Option<i64>>(i).map(from_ns);
    Assignment {
        id: std::sync::Arc::from(r.get::<_, &str>(0)),
        updated_at_time: from_ns(r.get(1)),
        created_at_time: from_ns(r.get(2)),
        course: CourseRef {
            id: shared.course.get(r.get(3)),
            revision_id: shared.revision.get_opt(r.get(4)),
        },
        learner: LearnerId::from_canonical(shared.learner.get(r.get(5))),
        status: Status::from_wire(r.get::<_, &str>(6)),
        duration_minutes: r.get(7),
        created_by_id: shared.user.get_opt(r.get(8)),
        updated_by_id: shared.user.get_opt(r.get(9)),
        due_at_time: t(10),
        started_at_time: t(11),
        completed_at_time: t(12),
        deleted_at_time: t(13),
        is_overdue: r.get(14),
        is_completed_late: r.get(15),
        score_percent: r.get(16),
    }
}

fn sync_record(r: &Row) -> SyncRecord {
    let warnings: Option<String> = r.get(12);
    SyncRecord {
        id: r.get(0),
        started_at: r.get(1),
        finished_at: r.get(2),
        start: from_ns(r.get(3)),
        end: from_ns(r.get(4)),
        outcome: r.get(5),
        stats: SyncStats {
            versions: r.get::<_, i64>(6) as u64,
            new_versions: r.get::<_, i64>(7) as u64,
            requests: r.get::<_, i64>(8) as u64,
            pages: r.get::<_, i64>(9) as u64,
        },
        seconds: r.get(10),
        error: r.get(11),
        warnings: warnings
            .and_then(|w| serde_json::from_str(&w).ok())
            .unwrap_or_default(),
    }
}

impl PgMirror {
    /// Opens the mirror in the Postgres store at `url`, migrating it first.
    pub fn open(url: &SecretString, lease: Duration, replica: String) -> anyhow::Result<Self> {
        Ok(Self {
            store: PgStore::open(url, lease, replica)?,
        })
    }

    fn run<T>(
        &self,
        doing: &str,
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.store
            .run(f)
            .with_context(|| format!("mirror in {}: {doing}", self.store.url()))
    }
}

impl MirrorStore for PgMirror {
    fn location(&self) -> std::path::PathBuf {
        // Names the store for the in-process sync lock and messages; no file.
        std::path::PathBuf::from(self.store.url())
    }

    fn try_lock_sync(&self) -> anyhow::Result<SyncLock> {
        Ok(match self.store.try_lock_sync()? {
            Some(guard) => SyncLock::Held(Box::new(guard)),
            None => SyncLock::Busy,
        })
    }

    fn reach(&self) -> anyhow::Result<Option<Reach>> {
        self.run("reading its reach", async {
            let c = self.store.connection().await?;
            Ok(c.query_opt(
                "SELECT since, reach_end FROM mirror_reach WHERE one = 1",
                &[],
            )
            .await?
            .map(|r| Reach {
                since: from_ns(r.get(0)),
                end: from_ns(r.get(1)),
            }))
        })
    }

    fn begin_sync(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let (start, end) = (ns(start)?, ns(end)?);
        self.run("starting a sync", async {
            let mut c = self.store.connection().await?;
            let tx = c.transaction().await?;
            // Under the sync lease: anything staged is from a sync that died
            // or lost the lease (its commit is fenced), never committed.
            tx.execute("DELETE FROM mirror_staging", &[]).await?;
            tx.execute(
                "UPDATE mirror_syncs SET outcome = 'interrupted' WHERE outcome = 'running'",
                &[],
            )
            .await?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO mirror_syncs (started_at, range_start, range_end, outcome, replica)
                     VALUES ($1, $2, $3, 'running', $4) RETURNING id",
                    &[&now, &start, &end, &self.store.replica()],
                )
                .await?
                .get(0);
            tx.commit().await?;
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
        self.commit_sync(sync, reach, lists, stats, replace, now)
    }

    fn fail(
        &self,
        sync: i64,
        error: &str,
        stats: &SyncStats,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.run("recording a failed sync", async {
            let mut c = self.store.connection().await?;
            let tx = c.transaction().await?;
            tx.execute("DELETE FROM mirror_staging WHERE sync_id = $1", &[&sync])
                .await?;
            tx.execute(
                "UPDATE mirror_syncs SET outcome = 'failed', finished_at = $2, versions = $3,
                   requests = $4, pages = $5,
                   seconds = EXTRACT(EPOCH FROM ($2 - started_at))::DOUBLE PRECISION, error = $6
                 WHERE id = $1",
                &[
                    &sync,
                    &now,
                    &(stats.versions as i64),
                    &(stats.requests as i64),
                    &(stats.pages as i64),
                    &error,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn versions_in(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Assignment>> {
        let (start, end) = (ns(start)?, ns(end)?);
        self.run("reading a window", async {
            let c = self.store.connection().await?;
            let mut shared = Shared::default();
            Ok(c.query(
                &format!(
                    "SELECT {COLUMNS} FROM mirror_versions
                     WHERE (updated_at >= $1 AND updated_at < $2) OR (created_at >= $1 AND created_at < $2)
                     ORDER BY updated_at, id"
                ),
                &[&start, &end],
            )
            .await?
            .iter()
            .map(|r| version(r, &mut shared))
            .collect())
        })
    }

    fn state_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Assignment>> {
        super::collect_state(self, at)
    }

    /// Row by row off the wire (the portal streams), never the whole state;
    /// by update, sorted by the server (spilling past `work_mem`), ids in
    /// the "C" collation: `sort_by_update`'s bytes.
    fn state_read(
        &self,
        at: DateTime<Utc>,
        order: StateOrder,
        each: &mut dyn FnMut(Assignment) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt as _;
        let at = ns(at)?;
        let state = format!(
            "SELECT DISTINCT ON (id) {COLUMNS} FROM mirror_versions
             WHERE updated_at < $1 ORDER BY id, updated_at DESC"
        );
        let sql = match order {
            StateOrder::AsStored => state,
            StateOrder::ByUpdate => {
                format!("SELECT * FROM ({state}) s ORDER BY updated_at, id COLLATE \"C\"")
            }
        };
        self.run(order.reading(), async {
            let c = self.store.connection().await?;
            let rows = c
                .query_raw(&sql, [&at as &(dyn tokio_postgres::types::ToSql + Sync)])
                .await?;
            futures::pin_mut!(rows);
            let mut shared = Shared::default();
            while let Some(r) = rows.try_next().await? {
                each(version(&r, &mut shared))?;
            }
            Ok(())
        })
    }

    fn courses(&self) -> anyhow::Result<Vec<Course>> {
        self.run("reading courses", async {
            let c = self.store.connection().await?;
            Ok(c.query(
                "SELECT id, title, status, category_id, category_name, minutes FROM mirror_courses ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                let category_id: Option<String> = r.get(3);
                let category_name: Option<String> = r.get(4);
                Course {
                    id: r.get(0),
                    title: r.get(1),
                    status: r.get(2),
                    category: category_id.map(|id| Category {
                        id,
                        name: category_name.unwrap_or_default(),
                    }),
                    estimated_time_to_complete_minutes: r.get(5),
                }
            })
            .collect())
        })
    }

    fn drivers_at(&self, at: DateTime<Utc>) -> anyhow::Result<Vec<Driver>> {
        let at = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        self.run("reading drivers", async {
            let c = self.store.connection().await?;
            let mut tags: std::collections::HashMap<String, Vec<TagRef>> = Default::default();
            for r in c
                .query(
                    "SELECT driver_id, tag_id, tag_name, parent_tag_id FROM mirror_driver_tags
                     WHERE valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1) ORDER BY tag_id",
                    &[&at],
                )
                .await?
            {
                tags.entry(r.get(0)).or_default().push(TagRef {
                    id: r.get(1),
                    name: r.get(2),
                    parent_tag_id: r.get(3),
                });
            }
            let mut drivers: Vec<Driver> = c
                .query(
                    "SELECT id, name, username, activation FROM mirror_drivers ORDER BY id",
                    &[],
                )
                .await?
                .iter()
                .map(|r| Driver {
                    id: r.get(0),
                    name: r.get(1),
                    username: r.get(2),
                    driver_activation_status: r.get(3),
                    tags: Vec::new(),
                })
                .collect();
            for d in &mut drivers {
                d.tags = tags.remove(&d.id).unwrap_or_default();
            }
            Ok(drivers)
        })
    }

    fn tags(&self) -> anyhow::Result<Vec<Tag>> {
        self.run("reading tags", async {
            let c = self.store.connection().await?;
            Ok(c.query(
                "SELECT id, name, parent_tag_id FROM mirror_tags ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|r| Tag {
                id: r.get(0),
                name: r.get(1),
                parent_tag_id: r.get(2),
            })
            .collect())
        })
    }

    fn tags_known_since(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.run("reading the start of the tag history", async {
            let c = self.store.connection().await?;
            let first: Option<i64> = c
                .query_one("SELECT MIN(valid_from) FROM mirror_driver_tags", &[])
                .await?
                .get(0);
            Ok(first.map(from_ns))
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
        self.run("reading syncs", async {
            let c = self.store.connection().await?;
            Ok(c.query(
                &format!("SELECT {SYNC_COLUMNS} FROM mirror_syncs ORDER BY id DESC LIMIT $1"),
                &[&(limit as i64)],
            )
            .await?
            .iter()
            .map(sync_record)
            .collect())
        })
    }

    fn status(&self) -> anyhow::Result<MirrorStatus> {
        let reach = self.reach()?;
        let last_sync = self.syncs(1)?.into_iter().next();
        self.run("counting", async {
            let c = self.store.connection().await?;
            let count = async |sql: &str| -> anyhow::Result<u64> {
                Ok(c.query_one(sql, &[]).await?.get::<_, i64>(0) as u64)
            };
            let last_success = c
                .query_opt(
                    &format!(
                        "SELECT {SYNC_COLUMNS} FROM mirror_syncs WHERE outcome = 'succeeded' ORDER BY id DESC LIMIT 1"
                    ),
                    &[],
                )
                .await?
                .as_ref()
                .map(sync_record);
            Ok(MirrorStatus {
                reach,
                versions: count("SELECT COUNT(*) FROM mirror_versions").await?,
                assignments: count("SELECT COUNT(DISTINCT id) FROM mirror_versions").await?,
                courses: count("SELECT COUNT(*) FROM mirror_courses").await?,
                drivers: count("SELECT COUNT(*) FROM mirror_drivers").await?,
                tags: count("SELECT COUNT(*) FROM mirror_tags").await?,
                last_sync,
                last_success,
                bytes: count(
                    "SELECT (pg_total_relation_size('mirror_versions') + pg_total_relation_size('mirror_driver_tags'))::BIGINT",
                )
                .await?,
            })
        })
    }
}
