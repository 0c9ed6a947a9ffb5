//! First start on an empty store: one organization, its Default workspace, an admin user, a
//! management key and an inference key. The two secrets are written once to a file only the
//! owner can read, because they are never recoverable from the store afterwards.

use std::path::Path;

use crate::keys::{self, KeyKind};
use crate::store::{NewKey, Store, StoreError, WorkspaceRow};

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
        .insert_organization(&organization_id, "Default Organization", now)
        .await?;
    store
        .insert_user(&user_id, "admin@localhost", "Administrator", now)
        .await?;
    store
        .insert_membership(&organization_id, &user_id, "admin", now)
        .await?;
    store
        .insert_workspace(
            &WorkspaceRow {
                id: workspace_id.clone(),
                organization_id: organization_id.clone(),
                name: "Default".into(),
                is_default: true,
            },
            "default",
            now,
        )
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
