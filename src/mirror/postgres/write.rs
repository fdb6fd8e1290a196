//! The Postgres mirror's writes: pages staged with one `UNNEST` insert each,
//! and the commit that moves them in, fenced by the `mirror-sync` lease.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{COLUMNS, PgMirror, ns, ns_opt};
use crate::mirror::{Lists, Reach, SyncStats};
use crate::samsara::Assignment;
use crate::store::postgres::PgStore;

impl PgMirror {
    pub(super) fn stage_page(&self, sync: i64, page: &[Assignment]) -> anyhow::Result<()> {
        // One statement per page: columns as arrays, unnested server-side.
        let mut cols = StagedColumns::default();
        for a in page {
            let at = |what: &str, t: DateTime<Utc>| {
                ns(t).with_context(|| format!("assignment {}: {what}", a.id))
            };
            let opt = |what: &str, t: Option<DateTime<Utc>>| {
                ns_opt(t).with_context(|| format!("assignment {}: {what}", a.id))
            };
            cols.id.push(a.id.to_string());
            cols.updated_at
                .push(at("updatedAtTime", a.updated_at_time)?);
            cols.created_at
                .push(at("createdAtTime", a.created_at_time)?);
            cols.course_id.push(a.course.id.to_string());
            cols.course_revision
                .push(a.course.revision_id.as_deref().map(str::to_owned));
            cols.learner.push(a.learner.as_str().to_string());
            cols.status.push(a.status.as_str().to_string());
            cols.duration_minutes.push(a.duration_minutes);
            cols.created_by
                .push(a.created_by_id.as_deref().map(str::to_owned));
            cols.updated_by
                .push(a.updated_by_id.as_deref().map(str::to_owned));
            cols.due_at.push(opt("dueAtTime", a.due_at_time)?);
            cols.started_at
                .push(opt("startedAtTime", a.started_at_time)?);
            cols.completed_at
                .push(opt("completedAtTime", a.completed_at_time)?);
            cols.deleted_at
                .push(opt("deletedAtTime", a.deleted_at_time)?);
            cols.is_overdue.push(a.is_overdue);
            cols.is_completed_late.push(a.is_completed_late);
            cols.score_percent.push(a.score_percent);
        }
        self.run("storing a page", async {
            let c = self.store.connection().await?;
            c.execute(
                &format!(
                    "INSERT INTO mirror_staging (sync_id, {COLUMNS})
                     SELECT $1, {COLUMNS} FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[],
                        $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::TEXT[],
                        $11::TEXT[], $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[],
                        $16::BOOLEAN[], $17::BOOLEAN[], $18::DOUBLE PRECISION[])
                     WITH ORDINALITY AS u ({COLUMNS}, n) ORDER BY n"
                ),
                &[
                    &sync,
                    &cols.id,
                    &cols.updated_at,
                    &cols.created_at,
                    &cols.course_id,
                    &cols.course_revision,
                    &cols.learner,
                    &cols.status,
                    &cols.duration_minutes,
                    &cols.created_by,
                    &cols.updated_by,
                    &cols.due_at,
                    &cols.started_at,
                    &cols.completed_at,
                    &cols.deleted_at,
                    &cols.is_overdue,
                    &cols.is_completed_late,
                    &cols.score_percent,
                ],
            )
            .await?;
            Ok(())
        })
    }

    pub(super) fn commit_sync(
        &self,
        sync: i64,
        reach: Reach,
        lists: &Lists,
        stats: &SyncStats,
        replace: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let (since, end) = (ns(reach.since)?, ns(reach.end)?);
        let generation = self.store.held_generation(PgStore::SYNC_KEY);
        self.run("committing a sync", async {
            let mut c = self.store.connection().await?;
            let tx = c.transaction().await?;
            // Fencing: only the holder of the sync lease records a reach.
            if let Some(g) = generation {
                let held = tx
                    .query_opt(
                        "SELECT 1 FROM leases WHERE name = 'mirror-sync' AND owner = $1
                           AND generation = $2 AND expires_at > clock_timestamp() FOR SHARE",
                        &[&self.store.replica(), &g],
                    )
                    .await?
                    .is_some();
                if !held {
                    anyhow::bail!(
                        "this replica ({}) lost the sync lease to another replica while it synced; its sync is dropped",
                        self.store.replica()
                    );
                }
            }
            if replace {
                tx.batch_execute(
                    "DELETE FROM mirror_versions; DELETE FROM mirror_courses; DELETE FROM mirror_drivers;
                     DELETE FROM mirror_tags; DELETE FROM mirror_driver_tags; DELETE FROM mirror_reach;",
                )
                .await?;
            }
            let new = tx
                .execute(
                    &format!(
                        "INSERT INTO mirror_versions ({COLUMNS})
                         SELECT {COLUMNS} FROM mirror_staging WHERE sync_id = $1 ORDER BY seq
                         ON CONFLICT (id, updated_at) DO NOTHING"
                    ),
                    &[&sync],
                )
                .await?;
            tx.execute("DELETE FROM mirror_staging WHERE sync_id = $1", &[&sync])
                .await?;
            if let Some(courses) = &lists.courses {
                let up = tx
                    .prepare(
                        "INSERT INTO mirror_courses (id, title, status, category_id, category_name, minutes, seen_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (id) DO UPDATE SET title = excluded.title, status = excluded.status,
                           category_id = excluded.category_id, category_name = excluded.category_name,
                           minutes = excluded.minutes, seen_at = excluded.seen_at",
                    )
                    .await?;
                for k in courses {
                    tx.execute(
                        &up,
                        &[
                            &k.id,
                            &k.title,
                            &k.status,
                            &k.category.as_ref().map(|c| &c.id),
                            &k.category.as_ref().map(|c| &c.name),
                            &k.estimated_time_to_complete_minutes,
                            &end,
                        ],
                    )
                    .await?;
                }
            }
            if let Some(tags) = &lists.tags {
                let up = tx
                    .prepare(
                        "INSERT INTO mirror_tags (id, name, parent_tag_id, seen_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                           parent_tag_id = excluded.parent_tag_id, seen_at = excluded.seen_at",
                    )
                    .await?;
                for t in tags {
                    tx.execute(&up, &[&t.id, &t.name, &t.parent_tag_id, &end])
                        .await?;
                }
            }
            if let Some(drivers) = &lists.drivers {
                let up = tx
                    .prepare(
                        "INSERT INTO mirror_drivers (id, name, username, activation, seen_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, username = excluded.username,
                           activation = excluded.activation, seen_at = excluded.seen_at",
                    )
                    .await?;
                for d in drivers {
                    tx.execute(
                        &up,
                        &[&d.id, &d.name, &d.username, &d.driver_activation_status, &end],
                    )
                    .await?;
                }
                // Tag membership keeps its history, as in SQLite.
                let mut open = std::collections::HashSet::<(String, String)>::new();
                for r in tx
                    .query(
                        "SELECT driver_id, tag_id FROM mirror_driver_tags WHERE valid_to IS NULL",
                        &[],
                    )
                    .await?
                {
                    open.insert((r.get(0), r.get(1)));
                }
                let insert = tx
                    .prepare(
                        "INSERT INTO mirror_driver_tags (driver_id, tag_id, tag_name, parent_tag_id, valid_from)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .await?;
                for d in drivers {
                    for t in &d.tags {
                        if !open.remove(&(d.id.clone(), t.id.clone())) {
                            tx.execute(&insert, &[&d.id, &t.id, &t.name, &t.parent_tag_id, &end])
                                .await?;
                        }
                    }
                }
                let close = tx
                    .prepare(
                        "UPDATE mirror_driver_tags SET valid_to = $3
                         WHERE driver_id = $1 AND tag_id = $2 AND valid_to IS NULL",
                    )
                    .await?;
                for (driver, tag) in open {
                    tx.execute(&close, &[&driver, &tag, &end]).await?;
                }
            }
            tx.execute(
                "INSERT INTO mirror_reach (one, since, reach_end) VALUES (1, $1, $2)
                 ON CONFLICT (one) DO UPDATE SET since = excluded.since, reach_end = excluded.reach_end",
                &[&since, &end],
            )
            .await?;
            tx.execute(
                "UPDATE mirror_syncs SET outcome = 'succeeded', finished_at = $2, versions = $3,
                   new_versions = $4, requests = $5, pages = $6,
                   seconds = EXTRACT(EPOCH FROM ($2 - started_at))::DOUBLE PRECISION, warnings = $7
                 WHERE id = $1",
                &[
                    &sync,
                    &now,
                    &(stats.versions as i64),
                    &(new as i64),
                    &(stats.requests as i64),
                    &(stats.pages as i64),
                    &serde_json::to_string(&lists.warnings)?,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(new)
        })
    }
}

/// A page of versions, column by column, for one `UNNEST` insert.
#[derive(Default)]
struct StagedColumns {
    id: Vec<String>,
    updated_at: Vec<i64>,
    created_at: Vec<i64>,
    course_id: Vec<String>,
    course_revision: Vec<Option<String>>,
    learner: Vec<String>,
    status: Vec<String>,
    duration_minutes: Vec<i64>,
    created_by: Vec<Option<String>>,
    updated_by: Vec<Option<String>>,
    due_at: Vec<Option<i64>>,
    started_at: Vec<Option<i64>>,
    completed_at: Vec<Option<i64>>,
    deleted_at: Vec<Option<i64>>,
    is_overdue: Vec<Option<bool>>,
    is_completed_late: Vec<Option<bool>>,
    score_percent: Vec<Option<f64>>,
}
