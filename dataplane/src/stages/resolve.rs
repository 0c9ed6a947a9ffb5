//! resolve: the requested model id → the model and its provider endpoints.

use std::sync::Arc;

use serde_json::json;

use crate::reject::{Kind, Reject};
use crate::snapshot::{Model, Snapshot};

pub fn resolve(snapshot: &Snapshot, model: &str) -> Result<Arc<Model>, Reject> {
    snapshot.models.get(model).cloned().ok_or_else(|| {
        Reject::new(
            Kind::UnknownModel,
            format!("{model} is not a valid model ID"),
        )
        .with_metadata(json!({ "model": model }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SnapshotBuilder;

    #[test]
    fn finds_known_and_refuses_unknown_models() {
        let snapshot = SnapshotBuilder::new().build();
        assert_eq!(resolve(&snapshot, "mock/small").unwrap().id, "mock/small");
        let e = resolve(&snapshot, "nope/nope").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.kind, Kind::UnknownModel);
    }
}
