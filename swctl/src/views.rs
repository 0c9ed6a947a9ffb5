//! How each `switchyard.admin.v1` message prints: its columns, in order. Times print as
//! ISO 8601 UTC, enums as their lowercase names, absent values as null (`-` in tables).

use serde_json::{Value, json};
use switchyard_proto::admin::v1 as pb;

use crate::output::Record;

/// Unix milliseconds as ISO 8601 UTC; 0 (none) as null.
pub fn time(ms: i64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

fn text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// A JSON text field as JSON, so JSON and YAML output nest it instead of quoting it.
fn json(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

pub fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Admin) => "admin",
        Ok(pb::Role::Member) => "member",
        _ => "unknown",
    }
}

pub fn limit_reset_name(reset: i32) -> Option<&'static str> {
    match pb::LimitReset::try_from(reset) {
        Ok(pb::LimitReset::Daily) => Some("daily"),
        Ok(pb::LimitReset::Weekly) => Some("weekly"),
        Ok(pb::LimitReset::Monthly) => Some("monthly"),
        _ => None,
    }
}

pub fn organization(o: &pb::Organization) -> Record {
    let kind = match pb::OrganizationKind::try_from(o.kind) {
        Ok(pb::OrganizationKind::Personal) => "personal",
        _ => "organization",
    };
    Record::new()
        .with("id", o.id.as_str())
        .with("name", o.name.as_str())
        .with("kind", kind)
        .with("member_cap", o.member_cap)
        .with("filtered_model_catalog", o.filtered_model_catalog)
        .with("enforce_zdr", o.enforce_zdr)
        .with("deny_data_collection", o.deny_data_collection)
        .with("created_at", time(o.created_at_ms))
}

pub fn user(u: &pb::User) -> Record {
    Record::new()
        .with("id", u.id.as_str())
        .with("email", u.email.as_str())
        .with("name", u.name.as_str())
        .with("created_at", time(u.created_at_ms))
}

pub fn member(m: &pb::Member) -> Record {
    Record::new()
        .with("user_id", m.user_id.as_str())
        .with("email", m.email.as_str())
        .with("name", m.name.as_str())
        .with("role", role_name(m.role))
        .with("joined_at", time(m.created_at_ms))
}

pub fn workspace_member(m: &pb::WorkspaceMember) -> Record {
    Record::new()
        .with("user_id", m.user_id.as_str())
        .with("role", role_name(m.role))
        .with("joined_at", time(m.created_at_ms))
        .detail("workspace_id", m.workspace_id.as_str())
}

pub fn workspace(w: &pb::Workspace) -> Record {
    Record::new()
        .with("id", w.id.as_str())
        .with("slug", w.slug.as_str())
        .with("name", w.name.as_str())
        .with("default", w.is_default)
        .with("description", text(&w.description))
        .with("created_at", time(w.created_at_ms))
        .detail("organization_id", w.organization_id.as_str())
        .detail("settings", json(&w.settings_json))
        .detail("updated_at", time(w.updated_at_ms))
}

pub fn key(k: &pb::Key) -> Record {
    let kind = match pb::KeyKind::try_from(k.kind) {
        Ok(pb::KeyKind::Management) => "management",
        _ => "inference",
    };
    Record::new()
        .with("hash", k.hash.as_str())
        .with("name", k.name.as_str())
        .with("kind", kind)
        .with("label", k.label.as_str())
        .with("disabled", k.disabled)
        .with("limit_usd", k.limit_usd)
        .with("limit_reset", limit_reset_name(k.limit_reset))
        .with("expires_at", time(k.expires_at_ms))
        .with("workspace_id", k.workspace_id.as_str())
        .detail("organization_id", k.organization_id.as_str())
        .detail("creator_user_id", k.creator_user_id.as_str())
        .detail("include_byok_in_limit", k.include_byok_in_limit)
        .detail("created_at", time(k.created_at_ms))
        .detail("updated_at", time(k.updated_at_ms))
        .detail("rotated_from", text(&k.rotated_from))
}

pub fn credits(c: &pb::Credits) -> Record {
    Record::new()
        .with("owner_id", c.owner_id.as_str())
        .with("total_credits_usd", c.total_credits)
        .with("total_usage_usd", c.total_usage)
        .with("balance_usd", c.total_credits - c.total_usage)
}

pub fn ledger_entry(e: &pb::LedgerEntry) -> Record {
    Record::new()
        .with("id", e.id.as_str())
        .with("amount_usd", e.amount_usd)
        .with("kind", e.kind.as_str())
        .with("reason", e.reason.as_str())
        .with("actor", e.actor.as_str())
        .with("counterpart_id", text(&e.counterpart_id))
        .with("created_at", time(e.created_at_ms))
        .detail("owner_id", e.owner_id.as_str())
}

pub fn preset(p: &pb::Preset) -> Record {
    let versions: Vec<Value> = p
        .versions
        .iter()
        .map(|v| serde_json::to_value(preset_version(v)).unwrap_or(Value::Null))
        .collect();
    let mut record = Record::new()
        .with("slug", p.slug.as_str())
        .with("name", p.name.as_str())
        .with("status", p.status.as_str())
        .with("designated_version", p.designated_version)
        .with("workspace_id", p.workspace_id.as_str())
        .with("updated_at", time(p.updated_at_ms))
        .detail("id", p.id.as_str())
        .detail("description", text(&p.description))
        .detail("designated_version_id", text(&p.designated_version_id))
        .detail("created_at", time(p.created_at_ms));
    if !versions.is_empty() {
        record = record.detail("versions", versions);
    }
    record
}

pub fn preset_version(v: &pb::PresetVersion) -> Record {
    Record::new()
        .with("version", v.version)
        .with("id", v.id.as_str())
        .with("created_at", time(v.created_at_ms))
        .detail("config", json(&v.config_json))
        .detail("system_prompt", text(&v.system_prompt))
        .detail("creator_id", v.creator_id.as_str())
}

pub fn byok(c: &pb::ByokCredential) -> Record {
    Record::new()
        .with("id", c.id.as_str())
        .with("provider", c.provider.as_str())
        .with("name", text(&c.name))
        .with("label", c.label.as_str())
        .with("disabled", c.disabled)
        .with("sort_order", c.sort_order)
        .with("workspace_id", c.workspace_id.as_str())
        .detail("settings", json(&c.settings_json))
        .detail("created_at", time(c.created_at_ms))
        .detail("updated_at", time(c.updated_at_ms))
}

pub fn guardrail(g: &pb::Guardrail) -> Record {
    let zdr = serde_json::json!({
        "anthropic": g.enforce_zdr_anthropic,
        "openai": g.enforce_zdr_openai,
        "google": g.enforce_zdr_google,
        "xai": g.enforce_zdr_xai,
        "other": g.enforce_zdr_other,
    });
    Record::new()
        .with("id", g.id.as_str())
        .with("name", g.name.as_str())
        .with("default", g.is_default)
        .with("limit_usd", g.limit_usd)
        .with("reset", text(&g.reset_interval))
        .with("workspace_id", g.workspace_id.as_str())
        .detail("organization_id", g.organization_id.as_str())
        .detail("description", text(&g.description))
        .detail("include_byok_in_budgets", g.include_byok_in_budgets)
        .detail("allowed_models", g.allowed_models.clone())
        .detail("ignored_models", g.ignored_models.clone())
        .detail("allowed_providers", g.allowed_providers.clone())
        .detail("ignored_providers", g.ignored_providers.clone())
        .detail("enforce_zdr", zdr)
        .detail("created_by", text(&g.created_by))
        .detail("created_at", time(g.created_at_ms))
        .detail("updated_at", time(g.updated_at_ms))
}

pub fn audit(a: &pb::AuditEntry) -> Record {
    Record::new()
        .with("at", time(a.at_ms))
        .with("actor", a.actor.as_str())
        .with("action", a.action.as_str())
        .with("target", a.target.as_str())
        .with("organization_id", text(&a.organization_id))
        .detail("id", a.id.as_str())
        .detail("before", json(&a.before_json))
        .detail("after", json(&a.after_json))
}

pub fn dataplane(d: &pb::Dataplane) -> Record {
    let quarantined: Vec<Value> = d
        .quarantined
        .iter()
        .map(|q| json!({ "kind": q.kind, "id": q.id, "reason": q.reason }))
        .collect();
    Record::new()
        .with("id", d.id.as_str())
        .with("version", d.version)
        .with("accepted", d.accepted)
        .with("last_ack", time(d.last_ack_at_ms))
        .with("quarantined", d.quarantined.len())
        .detail("reason", text(&d.reason))
        .detail("quarantined_records", quarantined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_and_zero_as_none() {
        assert_eq!(time(0), Value::Null);
        assert_eq!(time(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
