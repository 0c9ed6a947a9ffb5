//! Switchyard's dataplane: the request path of the gateway.
//!
//! `snapshot` holds configuration (its model and rules are `switchyard-policy`'s); `stages` is
//! the request path as plain functions; `http` is the Pingora adapter that calls them; `spend`
//! keeps the counters limits are enforced on; `usage` carries usage events to the control plane.

pub mod config;
pub mod health;
pub mod http;
pub mod link;
pub mod reject;
pub mod snapshot;
pub mod spend;
pub mod stages;
pub mod usage;
