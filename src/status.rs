//! A training assignment's status, as the API spells it: an open enum.
//!
//! A leaf, so that the configuration (status filters) and the API client's
//! wire types share it without importing each other; [`crate::samsara`]
//! re-exports it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A training assignment's status: an open enum.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    NotStarted,
    InProgress,
    Completed,
    /// A value this version of trainwatch does not know, kept as sent.
    Other(String),
}

impl Status {
    /// The API's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            known => known.known_spelling(),
        }
    }

    /// The API's spelling, borrowed for the program's life when the status
    /// is a known one: a report's rows take it without a copy each.
    pub fn spelling(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Other(s) => std::borrow::Cow::Owned(s.clone()),
            known => std::borrow::Cow::Borrowed(known.known_spelling()),
        }
    }

    fn known_spelling(&self) -> &'static str {
        match self {
            Self::NotStarted => "notStarted",
            Self::InProgress => "inProgress",
            Self::Completed => "completed",
            // Never asked: the callers match `Other` first.
            Self::Other(_) => "",
        }
    }

    /// Parses the API's spelling; anything else becomes [`Status::Other`].
    pub fn from_wire(s: &str) -> Self {
        match s {
            "notStarted" => Self::NotStarted,
            "inProgress" => Self::InProgress,
            "completed" => Self::Completed,
            other => Self::Other(other.to_string()),
        }
    }

    /// The statuses a filter may name (the ones the API accepts).
    pub const FILTERABLE: [&'static str; 3] = ["notStarted", "inProgress", "completed"];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}
