//! Switchyard's dataplane: the request path of the gateway.
//!
//! `snapshot` holds configuration; `stages` is the request path as plain functions; `http` is
//! the Pingora adapter that calls them; `usage` carries usage events to the control plane.

pub mod catalogue;
pub mod config;
pub mod health;
pub mod http;
pub mod link;
pub mod money;
pub mod reject;
pub mod snapshot;
pub mod spend;
pub mod stages;
pub mod usage;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
