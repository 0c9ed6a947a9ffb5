//! Presets and their immutable versions.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct PresetRow {
    pub id: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// `active`, `disabled` or `archived`.
    pub status: String,
    pub status_updated_at: Option<i64>,
    pub designated_version_id: Option<String>,
    pub creator_user_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One version of a preset. Versions are never updated, only added (and deleted with their
/// preset).
#[derive(Clone, Debug)]
pub struct PresetVersionRow {
    pub id: String,
    pub preset_id: String,
    /// 1, 2, … within the preset.
    pub version: i64,
    /// `model`/`models`, `provider` and `parameters`, validated by the manage layer.
    pub config: Map<String, Value>,
    pub system_prompt: Option<String>,
    pub creator_id: String,
    pub created_at: i64,
}

const PRESET_COLUMNS: &str = "id, organization_id, workspace_id, slug, name, description, status, \
    status_updated_at, designated_version_id, creator_user_id, created_at, updated_at";

const VERSION_COLUMNS: &str =
    "id, preset_id, version, config, system_prompt, creator_id, created_at";

fn preset(r: &AnyRow) -> Result<PresetRow, StoreError> {
    Ok(PresetRow {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        workspace_id: r.try_get("workspace_id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        status: r.try_get("status")?,
        status_updated_at: r.try_get("status_updated_at")?,
        designated_version_id: r.try_get("designated_version_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn version(r: &AnyRow) -> Result<PresetVersionRow, StoreError> {
    let config: String = r.try_get("config")?;
    Ok(PresetVersionRow {
        id: r.try_get("id")?,
        preset_id: r.try_get("preset_id")?,
        version: r.try_get("version")?,
        config: serde_json::from_str(&config)
            .map_err(|e| StoreError::Corrupt(format!("preset version config: {e}")))?,
        system_prompt: r.try_get("system_prompt")?,
        creator_id: r.try_get("creator_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A unique index refused the row (a duplicate slug or version number).
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Inserts a preset with its first version, designated. `false` if the organization already
    /// has a preset with this slug.
    pub async fn insert_preset(
        &self,
        p: &PresetRow,
        first: &PresetVersionRow,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO presets ({PRESET_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&p.id)
        .bind(&p.organization_id)
        .bind(&p.workspace_id)
        .bind(&p.slug)
        .bind(&p.name)
        .bind(p.description.clone())
        .bind(&p.status)
        .bind(p.status_updated_at)
        .bind(p.designated_version_id.clone())
        .bind(p.creator_user_id.clone())
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        insert_version(&mut tx, first).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn preset_by_slug(
        &self,
        organization_id: &str,
        slug: &str,
    ) -> Result<Option<PresetRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PRESET_COLUMNS} FROM presets WHERE organization_id = $1 AND slug = $2"
        ))
        .bind(organization_id)
        .bind(slug)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(preset).transpose()
    }

    /// A page of an organization's presets, most recently updated first, and the total count.
    pub async fn presets_of_organization(
        &self,
        organization_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PresetRow>, i64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PRESET_COLUMNS} FROM presets WHERE organization_id = $1 \
             ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(organization_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query("SELECT COUNT(*) AS n FROM presets WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((rows.iter().map(preset).collect::<Result<_, _>>()?, total))
    }

    /// Writes a preset's mutable fields (name, description, status, designated version).
    /// `false` if it no longer exists.
    pub async fn update_preset(&self, p: &PresetRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE presets SET name = $1, description = $2, status = $3, status_updated_at = $4, \
             designated_version_id = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&p.name)
        .bind(p.description.clone())
        .bind(&p.status)
        .bind(p.status_updated_at)
        .bind(p.designated_version_id.clone())
        .bind(p.updated_at)
        .bind(&p.id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a preset and all its versions; `false` if it did not exist.
    pub async fn delete_preset(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM preset_versions WHERE preset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM presets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds the next version of a preset: `v.version` is ignored and the stored row (numbered
    /// one past the highest so far) is returned. `designate` also makes it the preset's
    /// designated version. `None` if the preset no longer exists.
    pub async fn add_preset_version(
        &self,
        v: &PresetVersionRow,
        designate: bool,
        now: i64,
    ) -> Result<Option<PresetVersionRow>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        // Touching the preset first takes its row lock (on PostgreSQL), so concurrent additions
        // to one preset number their versions one after the other instead of colliding.
        let touched = sqlx::query(
            "UPDATE presets SET updated_at = $1, \
             designated_version_id = CASE WHEN $2 = 1 THEN $3 ELSE designated_version_id END \
             WHERE id = $4",
        )
        .bind(now)
        .bind(i64::from(designate))
        .bind(&v.id)
        .bind(&v.preset_id)
        .execute(&mut *tx)
        .await?;
        if touched.rows_affected() == 0 {
            return Ok(None);
        }
        let next = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 AS n FROM preset_versions WHERE preset_id = $1",
        )
        .bind(&v.preset_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        let stored = PresetVersionRow {
            version: next,
            ..v.clone()
        };
        insert_version(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// A page of a preset's versions, oldest first, and the total count.
    pub async fn preset_versions(
        &self,
        preset_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PresetVersionRow>, i64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM preset_versions WHERE preset_id = $1 \
             ORDER BY version LIMIT $2 OFFSET $3"
        ))
        .bind(preset_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query("SELECT COUNT(*) AS n FROM preset_versions WHERE preset_id = $1")
            .bind(preset_id)
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((rows.iter().map(version).collect::<Result<_, _>>()?, total))
    }

    /// A version of a preset by its number.
    pub async fn preset_version(
        &self,
        preset_id: &str,
        number: i64,
    ) -> Result<Option<PresetVersionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM preset_versions WHERE preset_id = $1 AND version = $2"
        ))
        .bind(preset_id)
        .bind(number)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(version).transpose()
    }

    /// Every active preset with its designated version, for the snapshot.
    pub async fn active_presets(&self) -> Result<Vec<(PresetRow, PresetVersionRow)>, StoreError> {
        let preset_columns = PRESET_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {preset_columns}, v.id AS v_id, v.preset_id AS v_preset_id, \
             v.version AS v_version, v.config AS v_config, v.system_prompt AS v_system_prompt, \
             v.creator_id AS v_creator_id, v.created_at AS v_created_at \
             FROM presets p JOIN preset_versions v ON v.id = p.designated_version_id \
             WHERE p.status = 'active' ORDER BY p.id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| {
                let config: String = r.try_get("v_config")?;
                Ok((
                    preset(r)?,
                    PresetVersionRow {
                        id: r.try_get("v_id")?,
                        preset_id: r.try_get("v_preset_id")?,
                        version: r.try_get("v_version")?,
                        config: serde_json::from_str(&config).map_err(|e| {
                            StoreError::Corrupt(format!("preset version config: {e}"))
                        })?,
                        system_prompt: r.try_get("v_system_prompt")?,
                        creator_id: r.try_get("v_creator_id")?,
                        created_at: r.try_get("v_created_at")?,
                    },
                ))
            })
            .collect()
    }

    /// A version of a preset by its id.
    pub async fn preset_version_by_id(
        &self,
        preset_id: &str,
        id: &str,
    ) -> Result<Option<PresetVersionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM preset_versions WHERE preset_id = $1 AND id = $2"
        ))
        .bind(preset_id)
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(version).transpose()
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    v: &PresetVersionRow,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO preset_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&v.id)
    .bind(&v.preset_id)
    .bind(v.version)
    .bind(Value::Object(v.config.clone()).to_string())
    .bind(v.system_prompt.clone())
    .bind(&v.creator_id)
    .bind(v.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
