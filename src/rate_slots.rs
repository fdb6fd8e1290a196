//! The shared slot book's old path, kept so that callers outside this room
//! (tests, benches) still find it; the book lives in [`crate::ratelimit`].

pub use crate::ratelimit::{SqliteSlots, shared_limits};
