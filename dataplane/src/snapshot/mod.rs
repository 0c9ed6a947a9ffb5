//! Configuration on the dataplane: the live snapshot in one `ArcSwap` (`store`), kept current by
//! following the control plane's stream (`watch`). The domain model itself, and the validation
//! that sets bad records aside, are `switchyard_policy::snapshot`, shared with the control plane.

pub mod seal;
mod store;
pub mod watch;

pub use store::{SnapshotStore, StoreError};
pub use switchyard_policy::snapshot::*;
