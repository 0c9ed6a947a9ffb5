//! The audit log: who did what, when, with the state before and after. Callers pass JSON views
//! that never contain secrets (key hashes and masked labels only).

use serde_json::Value;

use super::{Actor, Manage, ManageResult, new_id};
use crate::store::AuditRow;

impl Manage {
    /// Records one management action, in the same transaction as the change (call it on a
    /// `Manage` from `begin`): the change and its record commit together or not at all.
    pub async fn audit(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        action: &str,
        target: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> ManageResult<()> {
        let row = AuditRow {
            id: new_id("audit"),
            at: crate::now_ms(),
            actor: actor.audit_name(),
            organization_id: organization_id.map(str::to_owned),
            action: action.to_owned(),
            target: target.to_owned(),
            before: before.map(Value::to_string),
            after: after.map(Value::to_string),
        };
        self.store.insert_audit(&row).await?;
        tracing::info!(actor = %row.actor, action, target, "management action");
        Ok(())
    }
}
