//! route: which provider endpoints to try, in order.
//!
//! Today this is the catalogue's priority order among the endpoints the guardrails allow.
//! Health- and price-aware ordering will reorder this list without changing its callers.

use std::sync::Arc;

use crate::snapshot::{Endpoint, Model};

/// Upper bound on attempts per request, so one request cannot walk a long catalogue.
pub const MAX_ATTEMPTS: usize = 3;

/// The endpoints to try, in order: those at the `allowed` indices of the model's endpoints.
pub fn candidates<'a>(
    model: &'a Model,
    allowed: &'a [usize],
) -> impl Iterator<Item = &'a Arc<Endpoint>> + Clone {
    allowed
        .iter()
        .filter_map(|&i| model.endpoints.get(i))
        .take(MAX_ATTEMPTS)
}
