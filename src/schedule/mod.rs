//! Scheduling: calendars, care plans and their occurrences. Pure functions; the domain layer
//! materialises what they compute.

pub mod calendar;
pub mod marrow;
pub mod plan;
