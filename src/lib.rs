//! donorcare: an encrypted case system for the long-term care of donors and their families.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod error;
pub mod policy;
pub mod schedule;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod web;

/// mimalloc rather than the system allocator: a request allocates many small strings, and
/// glibc's allocator spent about a tenth of the case view's time (benches/http.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
