//! Wire types of the Samsara API, as its published spec and SDKs describe them.
//!
//! Tolerant where the API is open (unknown fields are ignored, unknown status
//! values are kept as they are), strict where the numbers depend on it: a
//! missing `id`, `learner`, `status`, `updatedAtTime` or `durationMinutes` is
//! a malformed response, never a silently skipped record.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
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

/// `course` of an assignment: the id and revision, no title. Shared
/// strings, as the few other ids many assignments repeat: the mirror hands
/// every assignment of a course the same ones.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseRef {
    #[serde(deserialize_with = "shared")]
    pub id: Arc<str>,
    #[serde(default, deserialize_with = "shared_opt")]
    pub revision_id: Option<Arc<str>>,
}

/// A string borrowed from the body when it holds no escapes.
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

/// A shared string, in one allocation.
fn shared<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
    Ok(Arc::from(&*Borrowed::deserialize(d)?.0))
}

fn shared_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
    Ok(Option::<Borrowed>::deserialize(d)?.map(|s| Arc::from(&*s.0)))
}

/// `learner` of an assignment as sent: a bare id and a type, borrowed from
/// the body when they hold no escapes (one allocation per learner: the
/// canonical id).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct WireLearner<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", default, borrow)]
    kind: Cow<'a, str>,
}

fn learner_id<'de, D: Deserializer<'de>>(d: D) -> Result<LearnerId, D::Error> {
    let l = WireLearner::deserialize(d)?;
    if l.id.is_empty() {
        return Err(serde::de::Error::custom("learner.id is empty"));
    }
    Ok(LearnerId::from_wire(&l.id, &l.kind))
}

/// An RFC 3339 instant in the form the API writes (`2026-03-02T14:05:09.123Z`:
/// UTC, 0 to 9 fraction digits), parsed directly: chrono's general parser
/// is most of a page's parse time. `None` for any other form, which then
/// goes through chrono's parser, so what is accepted and how is unchanged.
fn api_instant(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let digit = |i: usize| -> Option<u32> {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day, hour, minute, second) = (two(5)?, two(8)?, two(11)?, two(14)?, two(17)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut n = 0u32;
            for d in digits {
                let d = d.wrapping_sub(b'0');
                if d >= 10 {
                    return None;
                }
                n = n * 10 + u32::from(d);
            }
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // A leap second (`:60`) is left to chrono, which has its own rule for it.
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// An instant as chrono's serde reads one, with [`api_instant`]'s fast path.
struct WireInstant(DateTime<Utc>);

impl<'de> Deserialize<'de> for WireInstant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WireInstant;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 formatted date and time string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<WireInstant, E> {
                match api_instant(s) {
                    Some(t) => Ok(WireInstant(t)),
                    None => s
                        .parse::<DateTime<FixedOffset>>()
                        .map(|t| WireInstant(t.with_timezone(&Utc)))
                        .map_err(E::custom),
                }
            }
        }
        d.deserialize_str(Visitor)
    }
}

fn instant<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    WireInstant::deserialize(d).map(|t| t.0)
}

fn optional_instant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<WireInstant>::deserialize(d)?.map(|t| t.0))
}

/// One training assignment from `/training-assignments/stream`.
///
/// The learner is held in its canonical filter form (`driver-281474`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Shared: a report's detail row takes it without a copy.
    #[serde(deserialize_with = "shared")]
    pub id: Arc<str>,
    pub course: CourseRef,
    #[serde(deserialize_with = "learner_id")]
    pub learner: LearnerId,
    pub status: Status,
    #[serde(deserialize_with = "instant")]
    pub created_at_time: DateTime<Utc>,
    #[serde(deserialize_with = "instant")]
    pub updated_at_time: DateTime<Utc>,
    /// Time spent, in minutes.
    pub duration_minutes: i64,
    #[serde(default, deserialize_with = "shared_opt")]
    pub created_by_id: Option<Arc<str>>,
    #[serde(default, deserialize_with = "shared_opt")]
    pub updated_by_id: Option<Arc<str>>,
    #[serde(default, deserialize_with = "optional_instant")]
    pub due_at_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "optional_instant")]
    pub started_at_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "optional_instant")]
    pub completed_at_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "optional_instant")]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives chrono's answer for every string it takes, and
    /// leaves to chrono what it does not take.
    #[test]
    fn api_instants_parse_as_chrono_parses_them() {
        let mut cases = vec![
            "2026-03-02T14:05:09.123Z".to_string(),
            "2026-03-02T14:05:09Z".into(),
            "2024-02-29T23:59:59.999999999Z".into(),
            "2023-02-29T00:00:00Z".into(),
            "2026-13-02T00:00:00Z".into(),
            "2026-03-02T24:00:00Z".into(),
            "2026-03-02T23:60:00Z".into(),
            "2026-12-31T23:59:60Z".into(),
            "2026-03-02T14:05:09.1234567891Z".into(),
            "2026-03-02T14:05:09.Z".into(),
            "2026-03-02T14:05:09.12a3Z".into(),
            "2026-03-02t14:05:09Z".into(),
            "2026-03-02T14:05:09z".into(),
            "2026-03-02 14:05:09Z".into(),
            "2026-03-02T14:05:09+02:00".into(),
            "0000-01-01T00:00:00Z".into(),
            "9999-12-31T23:59:59.5Z".into(),
            "+2026-03-02T14:05:09Z".into(),
            "2026-3-02T14:05:09Z".into(),
            "２026-03-02T14:05:09Z".into(),
            "".into(),
        ];
        // Every field at and around its bounds.
        for (y, mo, d, h, mi, s, frac) in [
            (1970, 1, 1, 0, 0, 0, ""),
            (2000, 2, 29, 12, 30, 30, ".5"),
            (2100, 2, 29, 1, 2, 3, ".01"),
            (2026, 4, 31, 9, 9, 9, ".000001"),
            (2026, 0, 10, 9, 9, 9, ""),
            (2026, 10, 0, 9, 9, 9, ""),
        ] {
            cases.push(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z"
            ));
        }
        for case in cases {
            let chrono = case
                .parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc))
                .ok();
            if let Some(fast) = api_instant(&case) {
                assert_eq!(Some(fast), chrono, "{case}");
            }
            let json = serde_json::to_string(&case).unwrap();
            let ours = serde_json::from_str::<WireInstant>(&json).map(|t| t.0).ok();
            assert_eq!(ours, chrono, "{case}");
        }
    }

    #[test]
    fn a_learner_with_escapes_in_its_id_is_read_as_sent() {
        let l: WireLearner =
            serde_json::from_str(r#"{"id": "28\u00314", "type": "driver"}"#).unwrap();
        assert_eq!(LearnerId::from_wire(&l.id, &l.kind).as_str(), "driver-2814");
    }
}
