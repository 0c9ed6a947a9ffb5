#![recursion_limit = "256"]
//! Switchyard's control plane: the source of truth. It keeps the store, serves the management
//! REST API, builds and pushes configuration snapshots over gRPC, and records usage.

pub mod admin;
pub mod api;
pub mod catalogue;
pub mod config;
pub mod grpc;
pub mod health;
pub mod ingest;
pub mod keys;
pub mod manage;
pub mod publisher;
pub mod reconcile;
pub mod report;
pub mod seed;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod vault;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
