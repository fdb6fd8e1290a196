//! Deliveries: where rendered reports leave trainwatch.

pub mod email;
