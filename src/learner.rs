//! Learner ids in their one canonical form.
//!
//! The stream endpoint filters by `driver-281474` but answers with
//! `{"id": "281474", "type": "driver"}`. Everything inside trainwatch uses the
//! filter form, so a learner named in a team and the same learner in a
//! response compare equal.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A learner id in filter form: `driver-281474`, `user-4392`. Shared: a
/// clone is a count of references, and the mirror hands every assignment
/// of a learner the same one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LearnerId(Arc<str>);

/// The learner types the API documents; others are kept as they come.
const KNOWN_PREFIXES: [&str; 2] = ["driver-", "user-"];

impl LearnerId {
    /// Parses an id as a user writes it in the config: `driver-281474`,
    /// `user-4392`, or a bare number, which means a driver (the common case).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("a learner id cannot be empty".into());
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Ok(Self(format!("driver-{raw}").into()));
        }
        for prefix in KNOWN_PREFIXES {
            if let Some(rest) = raw.strip_prefix(prefix)
                && !rest.is_empty()
                && !rest.contains(',')
                && !rest.contains(char::is_whitespace)
            {
                return Ok(Self(raw.into()));
            }
        }
        Err(format!(
            "`{raw}` is not a learner id: write `driver-<id>` or `user-<id>` (a bare number means a driver)"
        ))
    }

    /// Builds the canonical id from a response's `learner {id, type}`.
    /// An id that already carries a prefix is kept as it is.
    pub fn from_wire(id: &str, kind: &str) -> Self {
        if KNOWN_PREFIXES.iter().any(|p| id.starts_with(p)) {
            return Self(id.into());
        }
        let kind = if kind.is_empty() { "driver" } else { kind };
        // One allocation, the id's own: this runs for every version a sync
        // reads. Joined on the stack when short enough (it always is).
        let mut joined = [0u8; 64];
        let len = kind.len() + 1 + id.len();
        if len <= joined.len() {
            joined[..kind.len()].copy_from_slice(kind.as_bytes());
            joined[kind.len()] = b'-';
            joined[kind.len() + 1..len].copy_from_slice(id.as_bytes());
            if let Ok(s) = std::str::from_utf8(&joined[..len]) {
                return Self(s.into());
            }
        }
        Self(format!("{kind}-{id}").into())
    }

    /// An id already in canonical form, as stored by trainwatch itself (the
    /// mirror); kept exactly as it is, shared when given shared.
    pub fn from_canonical(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The canonical (filter) form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id without its type prefix, as `/fleet/drivers` and `/users` return it.
    pub fn bare(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(_, id)| id)
    }
}

impl fmt::Display for LearnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_form_and_response_form_are_the_same_learner() {
        let from_config = LearnerId::parse("driver-281474").unwrap();
        let from_api = LearnerId::from_wire("281474", "driver");
        assert_eq!(from_config, from_api);
        assert_eq!(LearnerId::parse("281474").unwrap(), from_api);
        assert_eq!(from_api.bare(), "281474");
    }

    #[test]
    fn user_learners_keep_their_type() {
        assert_eq!(LearnerId::from_wire("4392", "user").as_str(), "user-4392");
        assert_eq!(
            LearnerId::from_wire("user-4392", "user").as_str(),
            "user-4392"
        );
        assert_eq!(LearnerId::from_wire("77", "").as_str(), "driver-77");
    }

    #[test]
    fn malformed_ids_are_rejected_with_a_hint() {
        for bad in ["", "bob", "driver-", "driver-1,2", "truck-9"] {
            let err = LearnerId::parse(bad).unwrap_err();
            assert!(err.contains("learner id"), "{bad}: {err}");
        }
    }
}
