//! Wire types of the Samsara API, as its published spec and SDKs describe them.
//!
//! Tolerant where the API is open (unknown fields are ignored, unknown status
//! values are kept as they are), strict where the numbers depend on it: a
//! missing `id`, `learner`, `status`, `updatedAtTime` or `durationMinutes` is
//! a malformed response, never a silently skipped record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::learner::LearnerId;

pub use crate::status::Status;

/// `{"data": [...], "pagination": {...}}`: one page of any list endpoint.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

/// The cursor of a page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// May be empty (or absent) on the last page.
    #[serde(default)]
    pub end_cursor: String,
    pub has_next_page: bool,
}

/// `course` of an assignment: the id and revision, no title.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseRef {
    pub id: String,
    #[serde(default)]
    pub revision_id: Option<String>,
}

/// `learner` of an assignment as sent: a bare id and a type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct WireLearner {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
}

fn learner_id<'de, D: Deserializer<'de>>(d: D) -> Result<LearnerId, D::Error> {
    let l = WireLearner::deserialize(d)?;
    if l.id.is_empty() {
        return Err(serde::de::Error::custom("learner.id is empty"));
    }
    Ok(LearnerId::from_wire(&l.id, &l.kind))
}

/// One training assignment from `/training-assignments/stream`.
///
/// The learner is held in its canonical filter form (`driver-281474`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub id: String,
    pub course: CourseRef,
    #[serde(deserialize_with = "learner_id")]
    pub learner: LearnerId,
    pub status: Status,
    pub created_at_time: DateTime<Utc>,
    pub updated_at_time: DateTime<Utc>,
    /// Time spent, in minutes.
    pub duration_minutes: i64,
    #[serde(default)]
    pub created_by_id: Option<String>,
    #[serde(default)]
    pub updated_by_id: Option<String>,
    #[serde(default)]
    pub due_at_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deleted_at_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_overdue: Option<bool>,
    #[serde(default)]
    pub is_completed_late: Option<bool>,
    #[serde(default)]
    pub score_percent: Option<f64>,
}

/// A course's category.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Category {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// One course from `/training-courses`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Course {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub estimated_time_to_complete_minutes: Option<i64>,
}

/// One driver from `/fleet/drivers` (only what names need).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub driver_activation_status: Option<String>,
    /// The driver's tags (`/fleet/drivers` returns them with each driver).
    #[serde(default)]
    pub tags: Vec<TagRef>,
}

/// A tag as a driver carries it: `{id, name, parentTagId}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagRef {
    /// The tag's id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its parent's id, absent at the top.
    #[serde(default)]
    pub parent_tag_id: Option<String>,
}

/// One tag from `/tags` (members are not kept: drivers carry their tags).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// The tag's id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Absent for a top-level tag.
    #[serde(default)]
    pub parent_tag_id: Option<String>,
}
