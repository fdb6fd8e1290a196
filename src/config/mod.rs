//! Configuration: raw TOML → typed values, with every problem reported at once.

mod types;

pub use types::*;
