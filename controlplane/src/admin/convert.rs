//! Store rows to `switchyard.admin.v1` messages, and wire enums and JSON text to domain values.
//! Nothing here decides anything: validation stays in the manage layer.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use switchyard_proto::admin::v1 as pb;
use tonic::Status;

use crate::keys::KeyKind;
use crate::manage::Role;
use crate::manage::byok::{ByokPatch, ByokSettings};
use crate::manage::credits::Credits;
use crate::manage::guardrails::GuardrailInput;
use crate::manage::presets::PresetView;
use crate::manage::workspaces::{WorkspaceInput, WorkspaceMember};
use crate::store::{
    AuditRow, ByokRow, GuardrailRow, KeyRow, LedgerRow, MemberRow, OrganizationRow, PresetRow,
    PresetVersionRow, UserRow, WorkspaceRow,
};
use switchyard_policy::Window;

pub fn organization(o: OrganizationRow) -> pb::Organization {
    let kind = if o.is_personal() {
        pb::OrganizationKind::Personal
    } else {
        pb::OrganizationKind::Organization
    };
    pb::Organization {
        id: o.id,
        name: o.name,
        kind: kind.into(),
        owner_user_id: o.owner_user_id.unwrap_or_default(),
        member_cap: o.member_cap,
        filtered_model_catalog: o.filtered_model_catalog,
        enforce_zdr: o.enforce_zdr,
        deny_data_collection: o.deny_data_collection,
        created_at_ms: o.created_at,
    }
}

pub fn user(u: UserRow) -> pb::User {
    pb::User {
        id: u.id,
        email: u.email,
        name: u.name,
        created_at_ms: u.created_at,
    }
}

pub fn member(m: MemberRow) -> pb::Member {
    let role = m.role.parse().map_or(pb::Role::Unspecified, role_out);
    pb::Member {
        organization_id: m.organization_id,
        user_id: m.user_id,
        email: m.email,
        name: m.name,
        role: role.into(),
        created_at_ms: m.created_at,
    }
}

fn role_out(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Member => pb::Role::Member,
    }
}

pub fn workspace_member(m: WorkspaceMember) -> pb::WorkspaceMember {
    pb::WorkspaceMember {
        workspace_id: m.workspace_id,
        user_id: m.user_id,
        role: role_out(m.role).into(),
        created_at_ms: m.created_at,
    }
}

pub fn role(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Member) => Ok(Role::Member),
        _ => Err(Status::invalid_argument(
            "role must be ROLE_ADMIN or ROLE_MEMBER",
        )),
    }
}

pub fn workspace(w: WorkspaceRow) -> pb::Workspace {
    pb::Workspace {
        id: w.id,
        organization_id: w.organization_id,
        name: w.name,
        slug: w.slug,
        description: w.description.unwrap_or_default(),
        is_default: w.is_default,
        created_by: w.created_by.unwrap_or_default(),
        created_at_ms: w.created_at,
        updated_at_ms: w.updated_at.unwrap_or(0),
        settings_json: Value::Object(w.settings).to_string(),
    }
}

/// The settings fields a workspace request may set, as the SDK names them. Unknown fields are
/// refused so that a misspelt one fails instead of being ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceSettingsPatch {
    #[serde(default, deserialize_with = "present")]
    default_text_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    default_image_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    default_provider_sort: Option<Option<String>>,
    io_logging_sampling_rate: Option<f64>,
    is_data_discount_logging_enabled: Option<bool>,
    is_observability_broadcast_enabled: Option<bool>,
    is_observability_io_logging_enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    io_logging_api_key_ids: Option<Option<Vec<i64>>>,
    #[serde(default, deserialize_with = "present")]
    disabled_server_tools: Option<Option<Vec<String>>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn settings<T: for<'de> Deserialize<'de> + Default>(field: &str, text: &str) -> Result<T, Status> {
    let map = json_object(field, text)?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A workspace creation or change: the named fields, and the settings fields of `settings_json`.
pub fn workspace_input(
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    settings_json: &str,
) -> Result<WorkspaceInput, Status> {
    let s: WorkspaceSettingsPatch = settings("settings_json", settings_json)?;
    Ok(WorkspaceInput {
        name,
        slug,
        // An empty description clears it.
        description: description.map(|d| non_empty(&d).map(str::to_owned)),
        default_text_model: s.default_text_model,
        default_image_model: s.default_image_model,
        default_provider_sort: s.default_provider_sort,
        io_logging_sampling_rate: s.io_logging_sampling_rate,
        is_data_discount_logging_enabled: s.is_data_discount_logging_enabled,
        is_observability_broadcast_enabled: s.is_observability_broadcast_enabled,
        is_observability_io_logging_enabled: s.is_observability_io_logging_enabled,
        io_logging_api_key_ids: s.io_logging_api_key_ids,
        disabled_server_tools: s.disabled_server_tools,
    })
}

pub fn byok(c: ByokRow) -> pb::ByokCredential {
    // Built field by field: the sealed key never leaves the store row.
    pb::ByokCredential {
        id: c.id,
        organization_id: c.organization_id,
        workspace_id: c.workspace_id,
        provider: c.provider,
        name: c.name.unwrap_or_default(),
        label: c.label,
        settings_json: Value::Object(c.settings).to_string(),
        disabled: c.disabled,
        sort_order: c.sort_order,
        created_at_ms: c.created_at,
        updated_at_ms: c.updated_at.unwrap_or(0),
    }
}

/// The settings fields a BYOK request may set, as the SDK names them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByokSettingsPatch {
    #[serde(default, deserialize_with = "present")]
    allowed_api_key_hashes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    allowed_user_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    declared_region: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    declared_zdr: Option<Option<bool>>,
    is_byok_only: Option<bool>,
    is_fallback: Option<bool>,
    is_required: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    requests_per_minute: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    tokens_per_minute: Option<Option<u64>>,
}

pub fn byok_settings(settings_json: &str) -> Result<ByokSettings, Status> {
    let s: ByokSettingsPatch = settings("settings_json", settings_json)?;
    Ok(ByokSettings {
        allowed_api_key_hashes: s.allowed_api_key_hashes.flatten(),
        allowed_models: s.allowed_models.flatten(),
        allowed_user_ids: s.allowed_user_ids.flatten(),
        declared_region: s.declared_region.flatten(),
        declared_zdr: s.declared_zdr.flatten(),
        is_byok_only: s.is_byok_only.unwrap_or(false),
        is_fallback: s.is_fallback.unwrap_or(false),
        is_required: s.is_required.unwrap_or(false),
        requests_per_minute: s.requests_per_minute.flatten().filter(|&n| n > 0),
        tokens_per_minute: s.tokens_per_minute.flatten().filter(|&n| n > 0),
    })
}

pub fn byok_patch(
    name: Option<String>,
    secret: Option<String>,
    disabled: Option<bool>,
    settings_json: Option<&str>,
) -> Result<ByokPatch, Status> {
    let s: ByokSettingsPatch = match settings_json {
        Some(text) => settings("settings_json", text)?,
        None => ByokSettingsPatch::default(),
    };
    Ok(ByokPatch {
        key: secret,
        name: name.map(|n| non_empty(&n).map(str::to_owned)),
        disabled,
        allowed_api_key_hashes: s.allowed_api_key_hashes,
        allowed_models: s.allowed_models,
        allowed_user_ids: s.allowed_user_ids,
        declared_region: s.declared_region,
        declared_zdr: s.declared_zdr,
        is_byok_only: s.is_byok_only,
        is_fallback: s.is_fallback,
        is_required: s.is_required,
        requests_per_minute: s.requests_per_minute,
        tokens_per_minute: s.tokens_per_minute,
    })
}

pub fn key(k: KeyRow) -> pb::Key {
    let kind = match k.kind {
        KeyKind::Inference => pb::KeyKind::Inference,
        KeyKind::Management => pb::KeyKind::Management,
    };
    pb::Key {
        hash: k.hash,
        kind: kind.into(),
        name: k.name,
        label: k.label,
        organization_id: k.organization_id,
        workspace_id: k.workspace_id,
        creator_user_id: k.creator_user_id,
        disabled: k.disabled,
        // Stored as an exact decimal the manage layer wrote, so it always parses.
        limit_usd: k.limit_usd.and_then(|l| l.parse().ok()),
        limit_reset: limit_reset_out(k.limit_reset).into(),
        include_byok_in_limit: k.include_byok_in_limit,
        expires_at_ms: k.expires_at.unwrap_or(0),
        created_at_ms: k.created_at,
        updated_at_ms: k.updated_at.unwrap_or(0),
        rotated_from: k.rotated_from.unwrap_or_default(),
    }
}

pub fn key_kind(value: i32) -> Result<KeyKind, Status> {
    match pb::KeyKind::try_from(value) {
        Ok(pb::KeyKind::Unspecified | pb::KeyKind::Inference) => Ok(KeyKind::Inference),
        Ok(pb::KeyKind::Management) => Ok(KeyKind::Management),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown key kind {value}"
        ))),
    }
}

fn limit_reset_out(reset: Option<Window>) -> pb::LimitReset {
    match reset {
        None | Some(Window::Lifetime) => pb::LimitReset::Never,
        Some(Window::Daily) => pb::LimitReset::Daily,
        Some(Window::Weekly) => pb::LimitReset::Weekly,
        Some(Window::Monthly) => pb::LimitReset::Monthly,
    }
}

/// `None`: leave unchanged (UNSPECIFIED); `Some(None)`: no reset (NEVER).
pub fn limit_reset(value: i32) -> Result<Option<Option<Window>>, Status> {
    match pb::LimitReset::try_from(value) {
        Ok(pb::LimitReset::Unspecified) => Ok(None),
        Ok(pb::LimitReset::Never) => Ok(Some(None)),
        Ok(pb::LimitReset::Daily) => Ok(Some(Some(Window::Daily))),
        Ok(pb::LimitReset::Weekly) => Ok(Some(Some(Window::Weekly))),
        Ok(pb::LimitReset::Monthly) => Ok(Some(Some(Window::Monthly))),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown limit_reset {value}"
        ))),
    }
}

pub fn dataplane(id: String, ack: crate::publisher::AckRecord) -> pb::Dataplane {
    pb::Dataplane {
        id,
        version: ack.version,
        accepted: ack.accepted,
        reason: ack.reason,
        last_ack_at_ms: ack.at_ms,
        quarantined: ack
            .quarantined
            .into_iter()
            .map(|q| pb::QuarantinedRecord {
                kind: q.kind.label().to_owned(),
                id: q.id,
                reason: q.reason,
            })
            .collect(),
    }
}

pub fn credits(owner_id: String, c: Credits) -> pb::Credits {
    pb::Credits {
        owner_id,
        total_credits: c.total_credits,
        total_usage: c.total_usage,
    }
}

pub fn ledger_entry(e: LedgerRow) -> pb::LedgerEntry {
    pb::LedgerEntry {
        id: e.id,
        owner_id: e.owner_id,
        amount_usd: crate::manage::micros_usd(e.amount_micros),
        kind: e.kind,
        reason: e.reason,
        actor: e.actor,
        counterpart_id: e.counterpart_id.unwrap_or_default(),
        created_at_ms: e.created_at,
    }
}

pub fn preset(p: PresetRow) -> pb::Preset {
    pb::Preset {
        id: p.id,
        organization_id: p.organization_id,
        workspace_id: p.workspace_id,
        slug: p.slug,
        name: p.name,
        description: p.description.unwrap_or_default(),
        status: p.status,
        designated_version_id: p.designated_version_id.unwrap_or_default(),
        created_at_ms: p.created_at,
        updated_at_ms: p.updated_at,
        versions: Vec::new(),
        designated_version: 0,
    }
}

pub fn preset_view(v: PresetView) -> pb::Preset {
    let number = v.designated.as_ref().map_or(0, |d| d.version);
    pb::Preset {
        designated_version: number,
        ..preset(v.preset)
    }
}

pub fn preset_version(v: PresetVersionRow) -> pb::PresetVersion {
    pb::PresetVersion {
        id: v.id,
        version: v.version,
        config_json: Value::Object(v.config).to_string(),
        system_prompt: v.system_prompt.unwrap_or_default(),
        creator_id: v.creator_id,
        created_at_ms: v.created_at,
    }
}

pub fn audit_entry(a: AuditRow) -> pb::AuditEntry {
    pb::AuditEntry {
        id: a.id,
        at_ms: a.at,
        actor: a.actor,
        organization_id: a.organization_id.unwrap_or_default(),
        action: a.action,
        target: a.target,
        before_json: a.before.unwrap_or_default(),
        after_json: a.after.unwrap_or_default(),
    }
}

pub fn guardrail(g: GuardrailRow) -> pb::Guardrail {
    pb::Guardrail {
        id: g.id,
        organization_id: g.organization_id,
        workspace_id: g.workspace_id,
        name: g.name,
        description: g.description.unwrap_or_default(),
        // Stored as an exact decimal the manage layer wrote, so it always parses.
        limit_usd: g.limit_usd.and_then(|l| l.parse().ok()),
        reset_interval: g.reset_interval.unwrap_or_default(),
        include_byok_in_budgets: g.include_byok,
        allowed_models: g.allowed_models.unwrap_or_default(),
        ignored_models: g.ignored_models.unwrap_or_default(),
        allowed_providers: g.allowed_providers.unwrap_or_default(),
        ignored_providers: g.ignored_providers.unwrap_or_default(),
        enforce_zdr_anthropic: g.zdr.anthropic,
        enforce_zdr_openai: g.zdr.openai,
        enforce_zdr_google: g.zdr.google,
        enforce_zdr_xai: g.zdr.xai,
        enforce_zdr_other: g.zdr.other,
        is_default: g.is_default,
        created_by: g.created_by.unwrap_or_default(),
        created_at_ms: g.created_at,
        updated_at_ms: g.updated_at.unwrap_or(0),
    }
}

/// A list to create with: empty restricts nothing, and is left at the default.
fn list_field(values: Vec<String>) -> Option<Option<Vec<String>>> {
    (!values.is_empty()).then_some(Some(values))
}

/// A new guardrail; `workspace` is the workspace id the service resolved.
pub fn new_guardrail(r: pb::CreateGuardrailRequest, workspace: String) -> GuardrailInput {
    GuardrailInput {
        name: Some(r.name),
        description: r.description.map(|d| non_empty(&d).map(str::to_owned)),
        workspace: Some(workspace),
        limit_usd: r.limit_usd.map(Some),
        reset_interval: non_empty(&r.reset_interval).map(|i| Some(i.to_owned())),
        include_byok_in_budgets: Some(r.include_byok_in_budgets),
        allowed_models: list_field(r.allowed_models),
        ignored_models: list_field(r.ignored_models),
        allowed_providers: list_field(r.allowed_providers),
        ignored_providers: list_field(r.ignored_providers),
        enforce_zdr: None,
        enforce_zdr_anthropic: r.enforce_zdr_anthropic.map(Some),
        enforce_zdr_openai: r.enforce_zdr_openai.map(Some),
        enforce_zdr_google: r.enforce_zdr_google.map(Some),
        enforce_zdr_xai: r.enforce_zdr_xai.map(Some),
        enforce_zdr_other: r.enforce_zdr_other.map(Some),
        unsupported: Vec::new(),
    }
}

/// A change to a guardrail: absent fields stay as they are.
pub fn guardrail_patch(r: pb::UpdateGuardrailRequest) -> GuardrailInput {
    let (limit_usd, reset_interval) = if r.clear_limit {
        (Some(None), Some(None))
    } else {
        (
            r.limit_usd.map(Some),
            // An empty interval clears it (and so must the limit be cleared with it).
            r.reset_interval.map(|i| non_empty(&i).map(str::to_owned)),
        )
    };
    let list = |l: Option<pb::StringList>| l.map(|l| Some(l.values));
    GuardrailInput {
        name: r.name,
        description: r.description.map(|d| non_empty(&d).map(str::to_owned)),
        workspace: None,
        limit_usd,
        reset_interval,
        include_byok_in_budgets: r.include_byok_in_budgets,
        allowed_models: list(r.allowed_models),
        ignored_models: list(r.ignored_models),
        allowed_providers: list(r.allowed_providers),
        ignored_providers: list(r.ignored_providers),
        enforce_zdr: None,
        enforce_zdr_anthropic: r.enforce_zdr_anthropic.map(Some),
        enforce_zdr_openai: r.enforce_zdr_openai.map(Some),
        enforce_zdr_google: r.enforce_zdr_google.map(Some),
        enforce_zdr_xai: r.enforce_zdr_xai.map(Some),
        enforce_zdr_other: r.enforce_zdr_other.map(Some),
        unsupported: Vec::new(),
    }
}

/// A JSON value from a request field; empty text is `None`.
pub fn json(field: &str, text: &str) -> Result<Option<Value>, Status> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("{field} is not valid JSON: {e}")))
}

/// A JSON object from a request field; empty text is an empty object.
pub fn json_object(field: &str, text: &str) -> Result<Map<String, Value>, Status> {
    match json(field, text)? {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Status::invalid_argument(format!(
            "{field} must be a JSON object"
        ))),
    }
}

/// Empty strings in requests mean "not given".
pub fn non_empty(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_round_trip_and_unknown_values_are_refused() {
        assert_eq!(role(pb::Role::Admin.into()).unwrap(), Role::Admin);
        assert!(role(pb::Role::Unspecified.into()).is_err());
        assert!(role(99).is_err());
        assert_eq!(
            limit_reset(pb::LimitReset::Unspecified.into()).unwrap(),
            None
        );
        assert_eq!(
            limit_reset(pb::LimitReset::Never.into()).unwrap(),
            Some(None)
        );
        assert_eq!(
            limit_reset(pb::LimitReset::Weekly.into()).unwrap(),
            Some(Some(Window::Weekly))
        );
        assert_eq!(key_kind(0).unwrap(), KeyKind::Inference);
        assert!(key_kind(7).is_err());
    }

    #[test]
    fn settings_fields_are_typed_and_unknown_ones_refused() {
        let input = workspace_input(
            None,
            None,
            Some(String::new()),
            r#"{"default_text_model": null, "io_logging_sampling_rate": 0.5}"#,
        )
        .unwrap();
        assert_eq!(input.description, Some(None));
        assert_eq!(input.default_text_model, Some(None));
        assert_eq!(input.default_image_model, None);
        assert_eq!(input.io_logging_sampling_rate, Some(0.5));
        assert!(workspace_input(None, None, None, r#"{"defualt_text_model": "a/b"}"#).is_err());
        assert!(workspace_input(None, None, None, r#"{"io_logging_sampling_rate": "x"}"#).is_err());
        let byok = byok_settings(r#"{"is_fallback": true, "allowed_models": ["a/b"]}"#).unwrap();
        assert!(byok.is_fallback);
        assert_eq!(byok.allowed_models, Some(vec!["a/b".to_owned()]));
        assert!(byok_settings(r#"{"secret": "x"}"#).is_err());
        let patch = byok_patch(None, None, None, Some(r#"{"declared_region": null}"#)).unwrap();
        assert_eq!(patch.declared_region, Some(None));
        assert_eq!(patch.allowed_models, None);
    }

    #[test]
    fn guardrail_requests_leave_absent_fields_alone() {
        let input = new_guardrail(
            pb::CreateGuardrailRequest {
                name: "cap".into(),
                limit_usd: Some(5.0),
                reset_interval: "daily".into(),
                allowed_models: vec!["mock/fast".into()],
                ..Default::default()
            },
            "ws_1".into(),
        );
        assert_eq!(input.workspace.as_deref(), Some("ws_1"));
        assert_eq!(input.limit_usd, Some(Some(5.0)));
        assert_eq!(input.reset_interval, Some(Some("daily".into())));
        assert_eq!(input.allowed_models, Some(Some(vec!["mock/fast".into()])));
        assert_eq!(input.ignored_models, None);
        assert_eq!(input.enforce_zdr_openai, None);

        let patch = guardrail_patch(pb::UpdateGuardrailRequest {
            id: "gr_1".into(),
            limit_usd: Some(1.0),
            clear_limit: true,
            allowed_providers: Some(pb::StringList { values: vec![] }),
            enforce_zdr_xai: Some(true),
            ..Default::default()
        });
        assert_eq!(
            (patch.limit_usd, patch.reset_interval),
            (Some(None), Some(None))
        );
        assert_eq!(patch.allowed_providers, Some(Some(vec![])));
        assert_eq!(patch.allowed_models, None);
        assert_eq!(patch.enforce_zdr_xai, Some(Some(true)));
        assert_eq!(patch.name, None);

        let g = guardrail(crate::store::GuardrailRow {
            limit_usd: Some("12.5".into()),
            reset_interval: Some("weekly".into()),
            ..crate::store::GuardrailRow::default_for("ws_1", "o1", 7)
        });
        assert_eq!(g.limit_usd, Some(12.5));
        assert_eq!(g.reset_interval, "weekly");
        assert!(g.is_default && g.allowed_models.is_empty());
        assert_eq!(g.created_at_ms, 7);
    }

    #[test]
    fn json_fields_must_be_objects() {
        assert!(json_object("settings_json", "").unwrap().is_empty());
        assert_eq!(json_object("s", r#"{"a":1}"#).unwrap().len(), 1);
        assert!(json_object("s", "[1]").is_err());
        assert!(json_object("s", "{").is_err());
    }
}
