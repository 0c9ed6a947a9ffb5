//! route: which provider endpoints to try, in order.
//!
//! Today this is the catalogue's priority order. Health- and price-aware ordering and
//! guardrail allowlists will narrow and reorder this list without changing its callers.

use std::sync::Arc;

use crate::snapshot::{Endpoint, Model};

/// Upper bound on attempts per request, so one request cannot walk a long catalogue.
pub const MAX_ATTEMPTS: usize = 3;

pub fn candidates(model: &Model) -> impl Iterator<Item = &Arc<Endpoint>> {
    model.endpoints.iter().take(MAX_ATTEMPTS)
}
