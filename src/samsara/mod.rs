//! The Samsara API client: real HTTP, pagination, chunking, rate limits and retries.

mod wire;

pub use wire::*;
