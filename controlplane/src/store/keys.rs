//! API keys as stored: hash (id), settings, owner. Secrets are never stored.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError, flag, parse_column};
use crate::keys::KeyKind;
use switchyard_policy::Window;

#[derive(Clone, Debug)]
pub struct KeyRow {
    pub hash: String,
    pub kind: KeyKind,
    pub name: String,
    pub label: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub creator_user_id: String,
    pub disabled: bool,
    /// Exact decimal USD.
    pub limit_usd: Option<String>,
    /// `None`: the limit never resets.
    pub limit_reset: Option<Window>,
    pub include_byok_in_limit: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<String>,
    /// The first key of this key's rotation line (`None`: this key): key-scoped limits count
    /// on it, so rotating never starts them afresh.
    pub limit_lineage: Option<String>,
}

pub type NewKey = KeyRow;

/// A partial update: `None` leaves a field unchanged; `Some(None)` clears a nullable one.
#[derive(Clone, Debug, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub limit_usd: Option<Option<String>>,
    pub limit_reset: Option<Option<Window>>,
    pub include_byok_in_limit: Option<bool>,
    pub workspace_id: Option<String>,
    /// Set by rotation: the grace period's end (never extends an earlier expiry).
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "hash, kind, name, label, organization_id, workspace_id, creator_user_id, \
    disabled, limit_usd, limit_reset, include_byok_in_limit, expires_at, created_at, updated_at, \
    rotated_from, limit_lineage";

fn key(r: &AnyRow) -> Result<KeyRow, StoreError> {
    let kind: String = r.try_get("kind")?;
    let limit_reset: Option<String> = r.try_get("limit_reset")?;
    Ok(KeyRow {
        hash: r.try_get("hash")?,
        kind: parse_column("kind", &kind)?,
        name: r.try_get("name")?,
        label: r.try_get("label")?,
        organization_id: r.try_get("organization_id")?,
        workspace_id: r.try_get("workspace_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        limit_usd: r.try_get("limit_usd")?,
        limit_reset: limit_reset
            .as_deref()
            .map(|v| parse_column("limit_reset", v))
            .transpose()?,
        include_byok_in_limit: r.try_get::<i64, _>("include_byok_in_limit")? != 0,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        rotated_from: r.try_get("rotated_from")?,
        limit_lineage: r.try_get("limit_lineage")?,
    })
}

impl Store {
    pub async fn insert_key(&self, k: &NewKey) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&k.hash)
        .bind(k.kind.as_str())
        .bind(&k.name)
        .bind(&k.label)
        .bind(&k.organization_id)
        .bind(&k.workspace_id)
        .bind(&k.creator_user_id)
        .bind(flag(k.disabled))
        .bind(k.limit_usd.clone())
        .bind(k.limit_reset.map(Window::name))
        .bind(flag(k.include_byok_in_limit))
        .bind(k.expires_at)
        .bind(k.created_at)
        .bind(k.updated_at)
        .bind(k.rotated_from.clone())
        .bind(k.limit_lineage.clone())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub async fn key(&self, hash: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(key).transpose()
    }

    /// An organization's keys, newest first. `workspace_id` narrows to one workspace.
    pub async fn keys_of_organization(
        &self,
        organization_id: &str,
        workspace_id: Option<&str>,
        creator_user_id: Option<&str>,
        include_disabled: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE organization_id = $1 \
             AND ($2 = '' OR workspace_id = $2) AND ($3 = '' OR creator_user_id = $3) \
             AND ($4 = 1 OR disabled = 0) \
             ORDER BY created_at DESC, hash LIMIT $5 OFFSET $6"
        ))
        .bind(organization_id)
        .bind(workspace_id.unwrap_or(""))
        .bind(creator_user_id.unwrap_or(""))
        .bind(flag(include_disabled))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(key).collect()
    }

    /// Every key, by hash. Read in pages, each on a connection of its own: SQLite's pool has one
    /// connection, and a million keys in one query would hold it past other requests' acquire
    /// timeout. (Pages are separate reads, as the snapshot's tables already are: a key written
    /// meanwhile is published again in the next version.)
    pub async fn all_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        const PAGE: i64 = 10_000;
        let mut keys = Vec::new();
        let mut after = String::new();
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE hash > $1 ORDER BY hash LIMIT $2"
            ))
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&mut *self.conn().await?)
            .await?;
            let full = i64::try_from(rows.len()).ok() == Some(PAGE);
            for row in &rows {
                keys.push(key(row)?);
            }
            match keys.last() {
                Some(last) if full => after.clone_from(&last.hash),
                _ => return Ok(keys),
            }
        }
    }

    /// Applies a patch; returns the updated key, or `None` if it does not exist.
    pub async fn update_key(
        &self,
        hash: &str,
        patch: &KeyPatch,
        now: i64,
    ) -> Result<Option<KeyRow>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(mut k) = row.as_ref().map(key).transpose()? else {
            return Ok(None);
        };
        if let Some(name) = &patch.name {
            k.name = name.clone();
        }
        if let Some(disabled) = patch.disabled {
            k.disabled = disabled;
        }
        if let Some(limit) = &patch.limit_usd {
            k.limit_usd = limit.clone();
        }
        if let Some(reset) = patch.limit_reset {
            k.limit_reset = reset;
        }
        if let Some(include) = patch.include_byok_in_limit {
            k.include_byok_in_limit = include;
        }
        if let Some(workspace) = &patch.workspace_id {
            k.workspace_id = workspace.clone();
        }
        if let Some(at) = patch.expires_at {
            k.expires_at = Some(k.expires_at.map_or(at, |t| t.min(at)));
        }
        k.updated_at = Some(now);
        sqlx::query(
            "UPDATE api_keys SET name = $1, disabled = $2, limit_usd = $3, limit_reset = $4, \
             include_byok_in_limit = $5, workspace_id = $6, updated_at = $7, expires_at = $8 \
             WHERE hash = $9",
        )
        .bind(&k.name)
        .bind(flag(k.disabled))
        .bind(k.limit_usd.clone())
        .bind(k.limit_reset.map(Window::name))
        .bind(flag(k.include_byok_in_limit))
        .bind(&k.workspace_id)
        .bind(now)
        .bind(k.expires_at)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(k))
    }

    /// Whether a key was already replaced by rotation.
    pub async fn has_successor(&self, hash: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE rotated_from = $1")
            .bind(hash)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Deletes a key and its guardrail assignment in one transaction.
    pub async fn delete_key(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(self.delete_key_counting_assignments(hash).await?.is_some())
    }

    /// Deletes a key with its guardrail assignment; `None` when there was no such key, else how
    /// many assignments went with it.
    pub async fn delete_key_counting_assignments(
        &self,
        hash: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let assignments = sqlx::query("DELETE FROM guardrail_key_assignments WHERE key_hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let done = sqlx::query("DELETE FROM api_keys WHERE hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((done.rows_affected() > 0).then_some(assignments))
    }
}
