//! The budget layers of `GET /key` (`budgets`, `effective_budget`): every limit enforcement
//! checks for a key, with its spend in the current window from the usage ledger. The layers are
//! `Snapshot::limits_for` over the snapshot last published, the list every dataplane enforces,
//! so what a key is told and what stops it are one rule.

use switchyard_policy::{Limit, LimitScope, Money, Snapshot, Window};

use super::{Manage, ManageResult};
use crate::store::KeyRow;

/// One limit on a key, with what it has used and has left.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetLayer {
    /// `key_limit`, `workspace`, `workspace_default_member`, `workspace_default_key`, `member`
    /// (a guardrail assigned to the key's owner) or `api_key` (one assigned to the key).
    pub scope: &'static str,
    /// A workspace budget's id.
    pub budget_id: Option<String>,
    pub guardrail_id: Option<String>,
    pub include_byok: bool,
    pub limit: Money,
    pub spend: Money,
    /// What is left (never below zero).
    pub remaining: Money,
    pub window: Window,
    /// When the window ends (Unix ms); `None` for lifetime limits.
    pub resets_at_ms: Option<i64>,
}

/// The layer label of a limit on a key: guardrail scopes split by whether the guardrail is its
/// workspace's default. Credits are not a budget layer (`GET /credits` reports them).
pub fn layer_scope(snapshot: &Snapshot, limit: &Limit) -> Option<&'static str> {
    let is_default = || {
        limit
            .guardrail_id()
            .and_then(|id| snapshot.policies.guardrail(id))
            .is_some_and(|g| g.is_default)
    };
    Some(match limit.scope {
        LimitScope::Key => "key_limit",
        LimitScope::Workspace => "workspace",
        LimitScope::Member if is_default() => "workspace_default_member",
        LimitScope::Member => "member",
        LimitScope::Guardrail if is_default() => "workspace_default_key",
        LimitScope::Guardrail => "api_key",
        LimitScope::Credits => return None,
    })
}

impl Manage {
    /// Every budget layer on `key` at `now_ms`, and the index of the effective one: the first
    /// exhausted, else the one with least left.
    pub async fn budget_layers(
        &self,
        key: &KeyRow,
        now_ms: i64,
    ) -> ManageResult<(Vec<BudgetLayer>, Option<usize>)> {
        let snapshot = self.publisher.current();
        let Some(enforced) = snapshot.keys.get_hex(&key.hash) else {
            return Ok((Vec::new(), None));
        };
        let workspace_budgets = self.store.workspace_budgets(&key.workspace_id).await?;
        let mut layers = Vec::new();
        for limit in snapshot.limits_for(enforced) {
            let Some(scope) = layer_scope(&snapshot, &limit) else {
                continue;
            };
            let span = limit.window.span(now_ms);
            let spend = self
                .store
                .ledger_spend(&limit.ledger(enforced), span.start_ms, limit.include_byok)
                .await?;
            let budget_id = (limit.scope == LimitScope::Workspace)
                .then(|| {
                    workspace_budgets
                        .iter()
                        .find(|b| b.reset_interval == limit.window.name())
                        .map(|b| b.id.clone())
                })
                .flatten();
            layers.push(BudgetLayer {
                scope,
                budget_id,
                guardrail_id: limit.guardrail_id().map(str::to_owned),
                include_byok: limit.include_byok,
                limit: limit.cap,
                spend,
                remaining: limit.cap.saturating_sub(spend),
                window: limit.window,
                resets_at_ms: span.end_ms,
            });
        }
        let effective = layers
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (l.remaining, *i))
            .map(|(i, _)| i);
        Ok((layers, effective))
    }
}
