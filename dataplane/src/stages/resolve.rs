//! resolve: the requested model id → the model and its provider endpoints.

use std::sync::Arc;

use serde_json::json;

use crate::reject::{Kind, Reject};
use crate::snapshot::{Model, Snapshot};

pub fn resolve(snapshot: &Snapshot, model: &str) -> Result<Arc<Model>, Reject> {
    if let Some(found) = snapshot.models.get(model) {
        return Ok(found.clone());
    }
    if snapshot.quarantine.model(model).is_some() {
        return Err(Reject::new(
            Kind::ModelUnavailable,
            format!("{model} is temporarily unavailable: its configuration could not be applied"),
        )
        .with_metadata(json!({ "model": model, "reason": "configuration_quarantined" })));
    }
    Err(Reject::new(
        Kind::UnknownModel,
        format!("{model} is not a valid model ID"),
    )
    .with_metadata(json!({ "model": model })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::testing::SnapshotBuilder;

    #[test]
    fn finds_known_and_refuses_unknown_models() {
        let snapshot = SnapshotBuilder::new().build();
        assert_eq!(resolve(&snapshot, "mock/small").unwrap().id, "mock/small");
        let e = resolve(&snapshot, "nope/nope").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.kind, Kind::UnknownModel);
    }

    #[test]
    fn a_model_set_aside_is_unavailable_not_unknown() {
        let snapshot = SnapshotBuilder::new()
            .with_model("m", &["a"])
            .edit(|r| r.models[1].endpoints[0].base_url = "nope://".into())
            .build();
        let e = resolve(&snapshot, "m").unwrap_err();
        assert_eq!(e.kind, Kind::ModelUnavailable);
        assert_eq!(e.status(), 503);
    }
}
