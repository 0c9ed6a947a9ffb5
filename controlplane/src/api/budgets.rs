//! The budget layers of `GET /key` (`budgets`, `effective_budget`): every limit enforcement
//! checks for the calling key, in its order — guardrail budgets, workspace budgets, the key's own
//! limit — each with its spend in the current window from the usage ledger.

use serde_json::{Value, json};
use switchyard_proto::spend::Period;

use super::error::ApiError;
use super::{ApiState, iso8601};
use crate::keys::LimitReset;
use crate::store::{GuardrailRow, KeyRow, LedgerScope};

fn period(interval: Option<&str>) -> Period {
    match interval {
        Some("daily") => Period::Daily,
        Some("weekly") => Period::Weekly,
        Some("monthly") => Period::Monthly,
        _ => Period::Lifetime,
    }
}

fn interval_name(p: Period) -> Option<&'static str> {
    match p {
        Period::Daily => Some("daily"),
        Period::Weekly => Some("weekly"),
        Period::Monthly => Some("monthly"),
        Period::Lifetime => None,
    }
}

struct Layer<'a> {
    scope: &'static str,
    budget_id: Option<String>,
    guardrail_id: Option<String>,
    limit_usd: f64,
    period: Period,
    include_byok: bool,
    ledger: LedgerScope<'a>,
}

/// `(budgets, effective_budget)` for `key`.
pub async fn layers(state: &ApiState, key: &KeyRow) -> Result<(Vec<Value>, Value), ApiError> {
    let store = &state.store;
    let mut layers: Vec<Layer<'_>> = Vec::new();
    let usd = |text: &Option<String>| text.as_deref().and_then(|t| t.parse::<f64>().ok());
    let guardrail_layers = |g: &GuardrailRow| -> Option<(f64, Period)> {
        Some((usd(&g.limit_usd)?, period(g.reset_interval.as_deref())))
    };
    let guardrails = store.all_guardrails().await?;
    // The workspace default guardrail binds the member's aggregate and this key.
    if let Some(g) = guardrails
        .iter()
        .find(|g| g.is_default && g.workspace_id == key.workspace_id)
        && let Some((limit_usd, period)) = guardrail_layers(g)
    {
        for (scope, ledger) in [
            (
                "workspace_default_member",
                LedgerScope::Member {
                    user_id: &key.creator_user_id,
                    workspace_id: &key.workspace_id,
                },
            ),
            ("workspace_default_key", LedgerScope::Key(&key.hash)),
        ] {
            layers.push(Layer {
                scope,
                budget_id: None,
                guardrail_id: Some(g.id.clone()),
                limit_usd,
                period,
                include_byok: g.include_byok,
                ledger,
            });
        }
    }
    let members = store.all_member_assignments().await?;
    for m in members.iter().filter(|m| m.user_id == key.creator_user_id) {
        if let Some(g) = guardrails
            .iter()
            .find(|g| g.id == m.guardrail_id && g.workspace_id == key.workspace_id)
            && let Some((limit_usd, period)) = guardrail_layers(g)
        {
            layers.push(Layer {
                scope: "member",
                budget_id: None,
                guardrail_id: Some(g.id.clone()),
                limit_usd,
                period,
                include_byok: g.include_byok,
                ledger: LedgerScope::Member {
                    user_id: &key.creator_user_id,
                    workspace_id: &key.workspace_id,
                },
            });
        }
    }
    if let Some(id) = store.key_guardrail(&key.hash).await?
        && let Some(g) = guardrails.iter().find(|g| g.id == id && !g.is_default)
        && let Some((limit_usd, period)) = guardrail_layers(g)
    {
        layers.push(Layer {
            scope: "api_key",
            budget_id: None,
            guardrail_id: Some(g.id.clone()),
            limit_usd,
            period,
            include_byok: g.include_byok,
            ledger: LedgerScope::Key(&key.hash),
        });
    }
    for b in store.workspace_budgets(&key.workspace_id).await? {
        if let Ok(limit_usd) = b.limit_usd.parse::<f64>() {
            layers.push(Layer {
                scope: "workspace",
                budget_id: Some(b.id.clone()),
                guardrail_id: None,
                limit_usd,
                period: period(Some(&b.reset_interval)),
                include_byok: b.include_byok,
                ledger: LedgerScope::Workspace(&key.workspace_id),
            });
        }
    }
    if let Some(limit_usd) = usd(&key.limit_usd) {
        layers.push(Layer {
            scope: "key_limit",
            budget_id: None,
            guardrail_id: None,
            limit_usd,
            period: match key.limit_reset {
                Some(LimitReset::Daily) => Period::Daily,
                Some(LimitReset::Weekly) => Period::Weekly,
                Some(LimitReset::Monthly) => Period::Monthly,
                None => Period::Lifetime,
            },
            include_byok: key.include_byok_in_limit,
            ledger: LedgerScope::Key(&key.hash),
        });
    }

    let now = crate::now_ms();
    let mut out = Vec::with_capacity(layers.len());
    let mut effective: Option<(f64, usize)> = None;
    for layer in &layers {
        let spend = store
            .ledger_pico(layer.ledger, layer.period.start(now), layer.include_byok)
            .await? as f64
            / 1e12;
        let remaining = layer.limit_usd - spend;
        // The layer that blocks first: one already spent, else the least remaining.
        let rank = if remaining <= 0.0 {
            f64::MIN
        } else {
            remaining
        };
        if effective.is_none_or(|(best, _)| rank < best) {
            effective = Some((rank, out.len()));
        }
        out.push(json!({
            "scope": layer.scope,
            "budget_id": layer.budget_id,
            "guardrail_id": layer.guardrail_id,
            "include_byok": layer.include_byok,
            "limit_usd": layer.limit_usd,
            "spend_usd": spend,
            "remaining_usd": remaining,
            "reset_interval": interval_name(layer.period),
            "resets_at": layer.period.end(now).map(iso8601),
        }));
    }
    let effective = effective
        .and_then(|(_, i)| out.get(i).cloned())
        .unwrap_or(Value::Null);
    Ok((out, effective))
}
