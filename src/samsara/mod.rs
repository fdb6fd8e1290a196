//! The Samsara API client: real HTTP, pagination, chunking, rate limits and retries.
//!
//! This is the only module that speaks HTTP to Samsara, through
//! [`crate::http`]; its requests are paced by a [`RateLimits`] registry
//! its owner passes in ([`crate::ratelimit`]).

mod client;
mod error;
mod fetched;
mod names;
mod query;
mod request;
mod settings;
mod wire;

pub use crate::ratelimit::{Limiter, RateLimits, SlotBook, WallClock, system_clock};
pub use crate::retry::{AttemptFailure, RetryPolicy, parse_retry_after};
pub use client::{COURSE_STATUSES, Client, Observer, StreamError};
pub use error::{ApiError, Endpoint, Place};
pub use fetched::{Dedup, FetchStats, Fetched};
pub use names::Names;
pub use query::{AssignmentQuery, MAX_IDS_PER_LIST};
pub use settings::ClientSettings;
pub use wire::*;
