//! Course titles and learner names for one run, and what could not be named.

use std::collections::HashMap;

use super::wire::Course;
use crate::learner::LearnerId;

/// Course titles and categories, and learner names, for one run.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub courses: HashMap<String, Course>,
    pub learners: HashMap<LearnerId, String>,
    /// What could not be named and why (the names fall back to ids).
    pub warnings: Vec<String>,
    /// `/fleet/drivers` was refused (no scope): every learner shows its id.
    pub learners_unavailable: bool,
    /// `/training-courses` was refused (no scope): every course shows its id.
    pub courses_unavailable: bool,
}

/// The most ids one fallback warning lists; the rest are counted.
const MAX_IDS_IN_WARNING: usize = 50;

impl Names {
    /// The learner's name, or its id (filter form) when unknown or empty.
    pub fn learner_name(&self, id: &LearnerId) -> String {
        self.learners
            .get(id)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The course's title, or its id when unknown or empty.
    pub fn course_title(&self, id: &str) -> String {
        self.courses
            .get(id)
            .map(|c| c.title.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| id.to_string())
    }

    /// One warning per reason a name fell back to its id, naming the ids
    /// (sorted, at most 50 each, the rest counted) among `learners` and
    /// `courses`: not found in the endpoint, found with an empty name, or
    /// the endpoint refused. Empty when every name was found.
    pub fn fallback_warnings<'a>(
        &self,
        learners: impl IntoIterator<Item = &'a LearnerId>,
        courses: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        use std::collections::BTreeSet;
        let mut missing_learners = BTreeSet::new();
        let mut unnamed_learners = BTreeSet::new();
        for id in learners {
            match self.learners.get(id) {
                Some(name) if !name.is_empty() => {}
                Some(_) => {
                    unnamed_learners.insert(id.to_string());
                }
                None => {
                    missing_learners.insert(id.to_string());
                }
            }
        }
        let mut missing_courses = BTreeSet::new();
        let mut untitled_courses = BTreeSet::new();
        for id in courses {
            match self.courses.get(id) {
                Some(c) if !c.title.is_empty() => {}
                Some(_) => {
                    untitled_courses.insert(id.to_string());
                }
                None => {
                    missing_courses.insert(id.to_string());
                }
            }
        }
        let learners_why = if self.learners_unavailable {
            "learner names could not be read (GET /fleet/drivers was refused, see above)"
        } else {
            "learners not found in /fleet/drivers (active or deactivated)"
        };
        let courses_why = if self.courses_unavailable {
            "course titles could not be read (GET /training-courses was refused, see above)"
        } else {
            "courses not found in /training-courses"
        };
        [
            (learners_why, missing_learners),
            (
                "learners with an empty name in /fleet/drivers",
                unnamed_learners,
            ),
            (courses_why, missing_courses),
            (
                "courses with an empty title in /training-courses",
                untitled_courses,
            ),
        ]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(why, ids)| {
            let shown: Vec<String> = ids
                .iter()
                .take(MAX_IDS_IN_WARNING)
                .map(|id| crate::names::one_line(id).into_owned())
                .collect();
            let more = ids.len().saturating_sub(MAX_IDS_IN_WARNING);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{why}, shown by id: {}{more}", shown.join(", "))
        })
        .collect()
    }
}
