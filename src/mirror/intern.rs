//! The strings a read of the mirror repeats across its rows (course ids
//! and revisions, learners, the users who created and updated), each made
//! once per read and shared by every row that carries it: a state of a
//! million assignments holds thousands of these, not millions.

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// One read's shared strings. Grows with the distinct values the read
/// meets, and is dropped with it.
#[derive(Default)]
pub(crate) struct Interner(FxHashSet<Arc<str>>);

impl Interner {
    /// `s`, shared with every earlier row of this read that had it.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// [`Interner::get`] of a column that may be null.
    pub(crate) fn get_opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_are_one_allocation_and_distinct_ones_stay_apart() {
        let mut i = Interner::default();
        let (a, b, c) = (i.get("course-1"), i.get("course-1"), i.get("course-2"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((&*a, &*c), ("course-1", "course-2"));
        assert_eq!(i.get_opt(None), None);
        assert!(Arc::ptr_eq(&i.get_opt(Some("course-2")).unwrap(), &c));
    }
}
