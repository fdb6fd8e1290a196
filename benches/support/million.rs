//! The generated organisation the million-assignment benches share
//! (`trend_million`, `audit_million`, `daemon_rss_after_run`), staged into a
//! SQLite mirror page by page as a sync stages it: every assignment has one
//! version, half of them a second one a few weeks later (started, completed
//! or deleted), 40 courses, 5,000 drivers. Included with `#[path]`.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use trainwatch::mirror::{Lists, MirrorStore, Reach, SqliteMirror, SyncStats};
use trainwatch::samsara::Assignment;

/// Fills the mirror in `state` with `total` assignments created over the
/// `span_seconds` after `created_from`, committed with the reach
/// `[since, end)`; returns the versions staged.
pub fn fill(
    state: &Path,
    total: usize,
    created_from: DateTime<Utc>,
    span_seconds: i64,
    since: DateTime<Utc>,
    end: DateTime<Utc>,
) -> u64 {
    let rfc = |t: DateTime<Utc>| t.to_rfc3339();
    let mirror = SqliteMirror::open(state).unwrap();
    let sync = mirror.begin_sync(since, end, end).unwrap();
    let mut versions = 0u64;
    for page_start in (0..total).step_by(10_000) {
        let mut page: Vec<Assignment> = Vec::with_capacity(20_000);
        for i in page_start..(page_start + 10_000).min(total) {
            let created = created_from + Duration::seconds((i as i64 * 7919) % span_seconds);
            let due = created + Duration::days(((i * 31) % 60) as i64);
            let base = json!({
                "id": format!("a-{i:07}"),
                "course": {"id": format!("course-{}", i % 40)},
                "learner": {"id": (i % 5000).to_string(), "type": "driver"},
                "status": "notStarted",
                "createdAtTime": rfc(created),
                "updatedAtTime": rfc(created),
                "durationMinutes": 0,
                "dueAtTime": rfc(due),
            });
            page.push(serde_json::from_value(base.clone()).unwrap());
            if i % 2 == 0 {
                let later = created + Duration::days(((i * 13) % 50) as i64 + 1);
                let mut next = base;
                next["updatedAtTime"] = json!(rfc(later));
                match i % 6 {
                    0 => next["status"] = json!("inProgress"),
                    2 => {
                        next["status"] = json!("completed");
                        next["completedAtTime"] = json!(rfc(later));
                    }
                    _ => next["deletedAtTime"] = json!(rfc(later)),
                }
                page.push(serde_json::from_value(next).unwrap());
            }
        }
        versions += page.len() as u64;
        mirror.stage(sync, &page).unwrap();
    }
    mirror
        .commit(
            sync,
            Reach { since, end },
            &Lists::default(),
            &SyncStats::default(),
            false,
            end,
        )
        .unwrap();
    versions
}
