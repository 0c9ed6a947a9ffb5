//! Switchyard's dataplane: the request path of the gateway.
//!
//! `snapshot` holds configuration (its model and rules are `switchyard-policy`'s); `stages` is
//! the request path as plain functions; `providers` translates each provider's wire format and `dialect` each client's;
//! `http` is the Pingora adapter that calls them; `spend`
//! keeps the counters limits are enforced on; `usage` carries usage events to the control plane;
//! `health` is provider health (this dataplane's breakers, its reports, the fleet's view).

pub mod config;
pub mod dialect;
pub mod dns;
pub mod health;
pub mod http;
pub mod link;
pub mod providers;
pub mod reject;
pub mod snapshot;
pub mod spend;
pub mod stages;
pub mod sticky;
pub mod usage;

/// The wall clock, Unix milliseconds. Read once per request and passed down, so that every rule
/// below it takes time as an argument (and tests give their own).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
