//! The strings a read of the mirror repeats across its rows (course ids
//! and revisions, learners, the users who created and updated), each made
//! once per read and shared by every row that carries it: a state of a
//! million assignments holds thousands of these, not millions.

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// One column's shared strings, for one read. Grows with the distinct
/// values the read meets, and is dropped with it.
#[derive(Default)]
pub(crate) struct Interner {
    set: FxHashSet<Arc<str>>,
    /// The value last asked for: a column often repeats it (the few users
    /// who create assignments, a course's revision), and comparing with it
    /// costs less than hashing.
    last: Option<Arc<str>>,
}

impl Interner {
    /// `s`, shared with every earlier row of this read that had it.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(last) = &self.last
            && **last == *s
        {
            return Arc::clone(last);
        }
        let shared = match self.set.get(s) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared: Arc<str> = Arc::from(s);
                self.set.insert(Arc::clone(&shared));
                shared
            }
        };
        self.last = Some(Arc::clone(&shared));
        shared
    }

    /// [`Interner::get`] of a column that may be null.
    pub(crate) fn get_opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

/// A read's shared strings, a set per kind of column: each set is smaller,
/// and each column's last value is its own.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) course: Interner,
    pub(crate) revision: Interner,
    pub(crate) learner: Interner,
    /// Who created and who last updated: the same people.
    pub(crate) user: Interner,
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
        // Asked again after another value: from the set, not the last.
        assert!(Arc::ptr_eq(&i.get("course-1"), &a));
        assert!(Arc::ptr_eq(&i.get("course-1"), &a));
    }
}
