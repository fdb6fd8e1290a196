//! Reports: assignments → the report data every template sees.

mod changes;
mod model;
mod rollup;
pub mod rows;
mod source;

pub use crate::data::{History, TrendPoint};

pub use changes::{
    Changes, HOWS, LearnerBlock, Resolved, TrendCount, by_learner, changes, due_soon, how_resolved,
    is_due_soon, narrowed, trend_point,
};

pub use model::*;
pub use rollup::{
    Keep, Meta, Rollup, UNCATEGORIZED, build, build_holding, build_keeping, days_overdue, included,
    is_completed_late, is_overdue,
};
pub use source::{RowSource, Rows};
