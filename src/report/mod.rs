//! Reports: assignments → the report data every template sees.

mod model;

pub use model::*;
