//! The dataplane's runtime model of configuration: everything a request needs, built from the
//! control plane's protobuf snapshot by a fallible `TryFrom` and then published whole.

mod model;
mod store;
pub mod watch;

pub use model::{
    ApiKey, Endpoint, KeyIndex, KeyKind, LimitReset, Model, Organization, Prices, Snapshot,
    SnapshotError, Upstream, Workspace,
};
pub use store::{SnapshotStore, StoreError};
