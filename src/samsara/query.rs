//! The stream query and its split into requests the API accepts.

use chrono::{DateTime, SecondsFormat, Utc};

use super::Status;
use crate::learner::LearnerId;

/// The API takes at most this many ids per list parameter.
pub const MAX_IDS_PER_LIST: usize = 100;

/// Every parameter of `GET /training-assignments/stream`.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentQuery {
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Exclusive; always sent (without it the stream never ends).
    pub end: DateTime<Utc>,
    pub learner_ids: Vec<LearnerId>,
    pub course_ids: Vec<String>,
    pub category_ids: Vec<String>,
    pub status: Vec<Status>,
    pub is_overdue: Option<bool>,
}

impl AssignmentQuery {
    /// A query for everything in `[start, end)`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            start,
            end,
            learner_ids: Vec::new(),
            course_ids: Vec::new(),
            category_ids: Vec::new(),
            status: Vec::new(),
            is_overdue: None,
        }
    }

    /// Splits the query so that no list is longer than [`MAX_IDS_PER_LIST`]:
    /// every combination of chunks when several lists are long. Duplicate ids
    /// are dropped first, so chunks of one list never overlap.
    pub fn split(&self) -> Vec<AssignmentQuery> {
        let learners = chunks(unique(&self.learner_ids));
        let courses = chunks(unique(&self.course_ids));
        let categories = chunks(unique(&self.category_ids));
        let mut out = Vec::with_capacity(learners.len() * courses.len() * categories.len());
        for l in &learners {
            for c in &courses {
                for k in &categories {
                    out.push(AssignmentQuery {
                        learner_ids: l.clone(),
                        course_ids: c.clone(),
                        category_ids: k.clone(),
                        ..self.clone()
                    });
                }
            }
        }
        out
    }

    /// The query string: lists as one comma-separated value each
    /// (`style: form, explode: false`), times in RFC 3339 with milliseconds.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut p = vec![
            ("startTime", time(&self.start)),
            ("endTime", time(&self.end)),
        ];
        let mut list = |name, items: Vec<&str>| {
            if !items.is_empty() {
                p.push((name, items.join(",")));
            }
        };
        list(
            "learnerIds",
            self.learner_ids.iter().map(LearnerId::as_str).collect(),
        );
        list(
            "courseIds",
            self.course_ids.iter().map(String::as_str).collect(),
        );
        list(
            "categoryIds",
            self.category_ids.iter().map(String::as_str).collect(),
        );
        list("status", self.status.iter().map(Status::as_str).collect());
        if let Some(overdue) = self.is_overdue {
            p.push(("isOverdue", overdue.to_string()));
        }
        p
    }
}

fn unique<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Chunks of at most [`MAX_IDS_PER_LIST`]; an empty list is one empty chunk
/// (no filter on that parameter).
fn chunks<T: Clone>(items: Vec<T>) -> Vec<Vec<T>> {
    if items.is_empty() {
        return vec![Vec::new()];
    }
    items.chunks(MAX_IDS_PER_LIST).map(<[T]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> AssignmentQuery {
        AssignmentQuery::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-02-01T00:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn lists_are_one_comma_separated_value_and_end_time_is_always_sent() {
        let mut query = q();
        query.learner_ids = vec![
            LearnerId::parse("1").unwrap(),
            LearnerId::parse("2").unwrap(),
        ];
        query.status = vec![Status::NotStarted, Status::InProgress];
        query.is_overdue = Some(true);
        assert_eq!(
            query.params(),
            vec![
                ("startTime", "2026-01-01T00:00:00.000Z".to_string()),
                ("endTime", "2026-02-01T00:00:00.000Z".to_string()),
                ("learnerIds", "driver-1,driver-2".to_string()),
                ("status", "notStarted,inProgress".to_string()),
                ("isOverdue", "true".to_string()),
            ]
        );
    }

    #[test]
    fn long_lists_split_into_every_combination_of_chunks() {
        let mut query = q();
        query.learner_ids = (0..250)
            .map(|i| LearnerId::parse(&i.to_string()).unwrap())
            .collect();
        query.course_ids = (0..101).map(|i| format!("c{i}")).collect();
        let parts = query.split();
        assert_eq!(parts.len(), 3 * 2);
        assert!(
            parts
                .iter()
                .all(|p| p.learner_ids.len() <= 100 && p.course_ids.len() <= 100)
        );
        // Every (learner, course) pair is asked for exactly once.
        let mut pairs = std::collections::HashSet::new();
        for p in &parts {
            for l in &p.learner_ids {
                for c in &p.course_ids {
                    assert!(pairs.insert((l.clone(), c.clone())));
                }
            }
        }
        assert_eq!(pairs.len(), 250 * 101);
    }

    #[test]
    fn duplicate_ids_are_asked_for_once() {
        let mut query = q();
        query.course_ids = vec!["a".into(), "b".into(), "a".into()];
        assert_eq!(query.split()[0].course_ids, vec!["a", "b"]);
    }
}
