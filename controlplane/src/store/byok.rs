//! BYOK provider credentials, envelope-encrypted. The store only moves sealed bytes; sealing and
//! opening happen in the manage layer with the vault.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError, flag};
use crate::vault::Sealed;

#[derive(Clone, Debug)]
pub struct ByokRow {
    pub id: String,
    pub organization_id: String,
    pub workspace_id: String,
    /// One of the SDK's BYOK provider slugs.
    pub provider: String,
    pub name: Option<String>,
    /// A mask of the key (at most its last four characters), safe to show and log.
    pub label: String,
    pub sealed: Sealed,
    /// Restrictions and routing flags, a JSON object with the SDK's field names.
    pub settings: Map<String, Value>,
    pub disabled: bool,
    /// Credentials of one provider are tried in ascending order.
    pub sort_order: i64,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

const COLUMNS: &str = "id, organization_id, workspace_id, provider, name, label, ciphertext, \
    wrapped_key, master_key_id, settings, disabled, sort_order, created_at, updated_at";

fn credential(r: &AnyRow) -> Result<ByokRow, StoreError> {
    let settings: String = r.try_get("settings")?;
    Ok(ByokRow {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        workspace_id: r.try_get("workspace_id")?,
        provider: r.try_get("provider")?,
        name: r.try_get("name")?,
        label: r.try_get("label")?,
        sealed: Sealed {
            ciphertext: r.try_get("ciphertext")?,
            wrapped_key: r.try_get("wrapped_key")?,
            master_key_id: r.try_get("master_key_id")?,
        },
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("BYOK settings: {e}")))?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        sort_order: r.try_get("sort_order")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Inserts a credential after the others of its workspace and provider: `c.sort_order` is
    /// ignored and the stored row is returned.
    pub async fn insert_byok(&self, c: &ByokRow) -> Result<ByokRow, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let next = sqlx::query(
            "SELECT COALESCE(MAX(sort_order) + 1, 0) AS n FROM byok_credentials \
             WHERE workspace_id = $1 AND provider = $2",
        )
        .bind(&c.workspace_id)
        .bind(&c.provider)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        let stored = ByokRow {
            sort_order: next,
            ..c.clone()
        };
        sqlx::query(&format!(
            "INSERT INTO byok_credentials ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&stored.id)
        .bind(&stored.organization_id)
        .bind(&stored.workspace_id)
        .bind(&stored.provider)
        .bind(stored.name.clone())
        .bind(&stored.label)
        .bind(&stored.sealed.ciphertext)
        .bind(&stored.sealed.wrapped_key)
        .bind(&stored.sealed.master_key_id)
        .bind(Value::Object(stored.settings.clone()).to_string())
        .bind(flag(stored.disabled))
        .bind(stored.sort_order)
        .bind(stored.created_at)
        .bind(stored.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn byok(&self, id: &str) -> Result<Option<ByokRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM byok_credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(credential).transpose()
    }

    /// A page of a workspace's credentials, by provider then trial order, and the total count.
    /// `provider` narrows to one provider.
    pub async fn byok_of_workspace(
        &self,
        workspace_id: &str,
        provider: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ByokRow>, i64), StoreError> {
        let provider = provider.unwrap_or("");
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM byok_credentials \
             WHERE workspace_id = $1 AND ($2 = '' OR provider = $2) \
             ORDER BY provider, sort_order, created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(workspace_id)
        .bind(provider)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query(
            "SELECT COUNT(*) AS n FROM byok_credentials \
             WHERE workspace_id = $1 AND ($2 = '' OR provider = $2)",
        )
        .bind(workspace_id)
        .bind(provider)
        .fetch_one(&mut *self.conn().await?)
        .await?
        .try_get::<i64, _>("n")?;
        Ok((
            rows.iter().map(credential).collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Every credential, for master-key rotation.
    pub async fn all_byok(&self) -> Result<Vec<ByokRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM byok_credentials ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(credential).collect()
    }

    /// Writes a credential's mutable fields (name, label, sealed key, settings, disabled).
    /// `false` if it no longer exists.
    pub async fn update_byok(&self, c: &ByokRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE byok_credentials SET name = $1, label = $2, ciphertext = $3, wrapped_key = $4, \
             master_key_id = $5, settings = $6, disabled = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(c.name.clone())
        .bind(&c.label)
        .bind(&c.sealed.ciphertext)
        .bind(&c.sealed.wrapped_key)
        .bind(&c.sealed.master_key_id)
        .bind(Value::Object(c.settings.clone()).to_string())
        .bind(flag(c.disabled))
        .bind(c.updated_at)
        .bind(&c.id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces a credential's wrapped data key, only if it is still `previous_wrapped_key`: a
    /// key rotated meanwhile has a new data key, which the old one must not overwrite. `false`
    /// if the row changed or is gone.
    pub async fn rewrap_byok(
        &self,
        id: &str,
        previous_wrapped_key: &str,
        rewrapped: &Sealed,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE byok_credentials SET wrapped_key = $1, master_key_id = $2 \
             WHERE id = $3 AND wrapped_key = $4 AND ciphertext = $5",
        )
        .bind(&rewrapped.wrapped_key)
        .bind(&rewrapped.master_key_id)
        .bind(id)
        .bind(previous_wrapped_key)
        .bind(&rewrapped.ciphertext)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_byok(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM byok_credentials WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
