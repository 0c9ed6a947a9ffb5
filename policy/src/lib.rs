//! Switchyard's rules, in one place for both planes.
//!
//! - [`money`]: one `Money` type (picodollars, checked arithmetic, an explicit maximum);
//! - [`window`]: the periods limits count over;
//! - [`pricing`]: what a generation costs, and the most a request can cost;
//! - [`limits`]: which limits apply to a key (`Snapshot::limits_for`);
//! - [`counters`]: the names of the spend counters in Redis;
//! - [`bearer`]: `Authorization: Bearer` parsing for every listener;
//! - [`snapshot`]: the configuration's domain model, decoded and validated record by record;
//! - [`routing`]: the `provider` preferences, the request members routing reads, and provider
//!   health as both planes see it.
//!
//! The dataplane decodes every snapshot with this crate; the control plane validates every
//! write and everything it publishes with it, and computes reconciliation targets and budget
//! reports from the same `limits_for` the dataplane enforces.

pub mod bearer;
#[cfg(feature = "cli")]
pub mod cli;
pub mod counters;
pub mod limits;
pub mod money;
pub mod pricing;
pub mod routing;
pub mod snapshot;
pub mod window;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use limits::{Ledger, Limit, LimitScope};
pub use money::{MAX_USD, Money, MoneyError};
pub use pricing::{CostBreakdown, Prices, Usage};
pub use snapshot::Snapshot;
pub use window::{Span, Window};
