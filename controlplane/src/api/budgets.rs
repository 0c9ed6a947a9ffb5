//! `GET /key`'s `budgets` and `effective_budget`, rendered from `Manage::budget_layers`.

use serde_json::{Value, json};

use super::error::ApiError;
use super::{ApiState, iso8601};
use crate::manage::budgets::BudgetLayer;
use crate::store::KeyRow;
use switchyard_policy::Window;

fn layer_json(l: &BudgetLayer) -> Value {
    json!({
        "scope": l.scope,
        "budget_id": l.budget_id,
        "guardrail_id": l.guardrail_id,
        "include_byok": l.include_byok,
        "limit_usd": l.limit.as_usd_f64(),
        "spend_usd": l.spend.as_usd_f64(),
        "remaining_usd": l.remaining.as_usd_f64(),
        "reset_interval": (l.window != Window::Lifetime).then(|| l.window.name()),
        "resets_at": l.resets_at_ms.map(iso8601),
    })
}

/// `(budgets, effective_budget)` for `key`.
pub async fn layers(state: &ApiState, key: &KeyRow) -> Result<(Vec<Value>, Value), ApiError> {
    let (layers, effective) = state.manage.budget_layers(key, crate::now_ms()).await?;
    let effective = effective
        .and_then(|i| layers.get(i))
        .map_or(Value::Null, layer_json);
    Ok((layers.iter().map(layer_json).collect(), effective))
}
