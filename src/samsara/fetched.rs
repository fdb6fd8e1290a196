//! What a fetch returns: the assignments, deduplicated, and its counts.

use std::collections::HashMap;

use super::wire::Assignment;

/// The assignments of a fetch, deduplicated, with what it took to get them.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// One per assignment id, the latest `updatedAtTime` winning; in stream
    /// order (by `updatedAtTime`, then id).
    pub assignments: Vec<Assignment>,
    pub stats: FetchStats,
}

/// Counts of a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Split queries the fetch needed (1 unless an id list was longer than 100).
    pub queries: usize,
    /// Pages received.
    pub pages: u64,
    /// Records received, duplicates included.
    pub received: u64,
    /// Records that were an older or repeated version of another.
    pub duplicates: u64,
}

/// Keeps one version of each assignment: the latest `updatedAtTime`, and on a
/// tie the one received last.
#[derive(Debug, Default)]
pub struct Dedup {
    by_id: HashMap<std::sync::Arc<str>, Assignment>,
}

impl Dedup {
    /// Offers one received record.
    pub fn insert(&mut self, a: Assignment) {
        match self.by_id.get(&a.id) {
            Some(kept) if kept.updated_at_time > a.updated_at_time => {}
            _ => {
                self.by_id.insert(a.id.clone(), a);
            }
        }
    }

    /// Distinct assignments so far.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The kept versions in stream order (by `updatedAtTime`, then id).
    pub fn into_sorted(self) -> Vec<Assignment> {
        let mut v: Vec<_> = self.by_id.into_values().collect();
        v.sort_by(|a, b| (a.updated_at_time, &a.id).cmp(&(b.updated_at_time, &b.id)));
        v
    }
}
