//! Reports: assignments → the report data every template sees.

mod model;
mod rollup;

pub use model::*;
pub use rollup::{
    Meta, UNCATEGORIZED, build, days_overdue, included, is_completed_late, is_overdue,
};
