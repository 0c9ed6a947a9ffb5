//! First start on an empty store: one organization, its Default workspace, an admin user, a
//! management key and an inference key. The two secrets are written once to a file only the
//! owner can read, because they are never recoverable from the store afterwards.

use std::path::Path;

use crate::keys::{self, KeyKind};
use crate::store::{LedgerRow, NewKey, OrganizationRow, Store, StoreError, UserRow, WorkspaceRow};

pub struct Seeded {
    pub management_key: String,
    pub inference_key: String,
}

pub async fn seed_if_empty(store: &Store) -> Result<Option<Seeded>, StoreError> {
    if !store.is_empty().await? {
        return Ok(None);
    }
    let now = crate::now_ms();
    let organization_id = format!("org_{}", uuid::Uuid::now_v7().simple());
    let user_id = format!("user_{}", uuid::Uuid::now_v7().simple());
    let workspace_id = format!("ws_{}", uuid::Uuid::now_v7().simple());
    store
        .insert_organization(&OrganizationRow {
            id: organization_id.clone(),
            name: "Default Organization".into(),
            kind: "organization".into(),
            owner_user_id: None,
            member_cap: DEFAULT_MEMBER_CAP,
            filtered_model_catalog: false,
            enforce_zdr: false,
            deny_data_collection: false,
            created_at: now,
        })
        .await?;
    store
        .insert_user(&UserRow {
            id: user_id.clone(),
            email: "admin@localhost".into(),
            name: "Administrator".into(),
            created_at: now,
        })
        .await?;
    store
        .insert_organization(&personal_account(&user_id, "Administrator", now))
        .await?;
    store
        .insert_membership(&organization_id, &user_id, "admin", now)
        .await?;
    store
        .insert_workspace(&default_workspace(
            &workspace_id,
            &organization_id,
            Some(&user_id),
            now,
        ))
        .await?;
    store
        .add_workspace_member(&workspace_id, &user_id, now)
        .await?;
    // Requests spend credits: the first organization starts with some, in the ledger like any
    // grant, so a fresh gateway answers instead of refusing with 402.
    store
        .insert_ledger(&[LedgerRow {
            id: format!("credit_{}", uuid::Uuid::now_v7().simple()),
            owner_id: organization_id.clone(),
            amount_micros: BOOTSTRAP_CREDITS_USD * 1_000_000,
            kind: "grant".into(),
            reason: "bootstrap credits at first start".into(),
            actor: "seed".into(),
            counterpart_id: None,
            created_at: now,
        }])
        .await?;
    let mut secrets = Vec::new();
    for (kind, name) in [
        (KeyKind::Management, "Bootstrap management key"),
        (KeyKind::Inference, "Bootstrap inference key"),
    ] {
        let generated = keys::generate();
        store
            .insert_key(&NewKey {
                hash: generated.hash,
                kind,
                name: name.into(),
                label: generated.label,
                organization_id: organization_id.clone(),
                workspace_id: workspace_id.clone(),
                creator_user_id: user_id.clone(),
                disabled: false,
                limit_usd: None,
                limit_reset: None,
                include_byok_in_limit: false,
                expires_at: None,
                created_at: now,
                updated_at: None,
                rotated_from: None,
                limit_lineage: None,
            })
            .await?;
        secrets.push(generated.secret);
    }
    let inference_key = secrets.pop().unwrap_or_default();
    let management_key = secrets.pop().unwrap_or_default();
    Ok(Some(Seeded {
        management_key,
        inference_key,
    }))
}

/// Credits the seeded organization starts with, USD.
pub const BOOTSTRAP_CREDITS_USD: i64 = 1000;

/// OpenRouter's default member cap per organization (0 means unlimited).
pub const DEFAULT_MEMBER_CAP: i64 = 10;

/// A user's personal account: an owner of keys and credits with that one member.
pub fn personal_account(user_id: &str, name: &str, now: i64) -> OrganizationRow {
    OrganizationRow {
        id: format!("personal-{user_id}"),
        name: name.to_owned(),
        kind: "personal".into(),
        owner_user_id: Some(user_id.to_owned()),
        member_cap: 1,
        filtered_model_catalog: false,
        enforce_zdr: false,
        deny_data_collection: false,
        created_at: now,
    }
}

/// Every organization's Default workspace, which all its members join.
pub fn default_workspace(
    id: &str,
    organization_id: &str,
    created_by: Option<&str>,
    now: i64,
) -> WorkspaceRow {
    WorkspaceRow {
        id: id.to_owned(),
        organization_id: organization_id.to_owned(),
        name: "Default".into(),
        slug: "default".into(),
        description: None,
        is_default: true,
        created_by: created_by.map(str::to_owned),
        created_at: now,
        updated_at: None,
        settings: serde_json::Map::new(),
    }
}

/// Writes the bootstrap secrets as shell exports, mode 0600.
pub fn write_credentials(path: &Path, seeded: &Seeded) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(
        file,
        "# Switchyard bootstrap keys, written once at first start. Keep them, then delete this file.\n\
         SWITCHYARD_MANAGEMENT_KEY={}\nSWITCHYARD_INFERENCE_KEY={}",
        seeded.management_key, seeded.inference_key
    )
}
