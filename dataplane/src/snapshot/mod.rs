//! The dataplane's runtime model of configuration: everything a request needs, built from the
//! control plane's protobuf snapshot by a fallible `TryFrom` and then published whole.

mod byok;
mod limits;
mod model;
mod store;
pub mod watch;

pub use byok::{ByokCredential, ByokError, ByokIndex};
pub use limits::{Limit, LimitScope, NANOS_PER_USD, Policies, Window, parse_nanos_floor};
pub use model::{
    ApiKey, Budget, Endpoint, Guardrail, KeyIndex, KeyKind, LimitReset, Model, Organization,
    Prices, Snapshot, SnapshotError, Upstream, Workspace, Zdr,
};
pub use store::{SnapshotStore, StoreError};
