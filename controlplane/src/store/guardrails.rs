//! Guardrails and their assignments to keys and members.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError, flag};

/// The id of a workspace's default guardrail, derived from the workspace's as OpenRouter does.
pub fn default_guardrail_id(workspace_id: &str) -> String {
    format!("gr_default_{workspace_id}")
}

#[derive(Clone, Debug, PartialEq)]
pub struct GuardrailRow {
    pub id: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    /// Exact decimal USD; set exactly when `reset_interval` is.
    pub limit_usd: Option<String>,
    /// `daily`, `weekly` or `monthly`.
    pub reset_interval: Option<String>,
    pub include_byok: bool,
    /// `None` (or empty) allows every model / provider.
    pub allowed_models: Option<Vec<String>>,
    pub ignored_models: Option<Vec<String>>,
    pub allowed_providers: Option<Vec<String>>,
    pub ignored_providers: Option<Vec<String>>,
    pub zdr: ZdrFlags,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

/// Zero-data-retention enforcement per model author group; `None` is "not set" (off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZdrFlags {
    pub anthropic: Option<bool>,
    pub openai: Option<bool>,
    pub google: Option<bool>,
    pub xai: Option<bool>,
    pub other: Option<bool>,
}

impl GuardrailRow {
    /// A workspace's default guardrail as first created: no restrictions, no budget.
    pub fn default_for(workspace_id: &str, organization_id: &str, now: i64) -> GuardrailRow {
        GuardrailRow {
            id: default_guardrail_id(workspace_id),
            organization_id: organization_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            name: "Default".into(),
            description: None,
            is_default: true,
            limit_usd: None,
            reset_interval: None,
            include_byok: false,
            allowed_models: None,
            ignored_models: None,
            allowed_providers: None,
            ignored_providers: None,
            zdr: ZdrFlags::default(),
            created_by: None,
            created_at: now,
            updated_at: None,
        }
    }
}

/// A key's guardrail assignment, with the key's name and label for listings.
#[derive(Clone, Debug)]
pub struct KeyAssignmentRow {
    pub id: String,
    pub guardrail_id: String,
    pub key_hash: String,
    pub key_name: String,
    pub key_label: String,
    pub assigned_by: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct MemberAssignmentRow {
    pub id: String,
    pub guardrail_id: String,
    pub organization_id: String,
    pub user_id: String,
    pub assigned_by: Option<String>,
    pub created_at: i64,
}

const GUARDRAIL_COLUMNS: &str = "id, organization_id, workspace_id, name, description, \
    is_default, limit_usd, reset_interval, include_byok, allowed_models, ignored_models, \
    allowed_providers, ignored_providers, enforce_zdr_anthropic, enforce_zdr_openai, \
    enforce_zdr_google, enforce_zdr_xai, enforce_zdr_other, created_by, created_at, updated_at";

fn list_column(r: &AnyRow, column: &str) -> Result<Option<Vec<String>>, StoreError> {
    let text: Option<String> = r.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("guardrail {column}: {e}")))
    })
    .transpose()
}

fn list_text(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref()
        .map(|l| serde_json::Value::from(l.clone()).to_string())
}

fn flag_column(r: &AnyRow, column: &str) -> Result<Option<bool>, StoreError> {
    Ok(r.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}

fn guardrail(r: &AnyRow) -> Result<GuardrailRow, StoreError> {
    Ok(GuardrailRow {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        workspace_id: r.try_get("workspace_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        is_default: r.try_get::<i64, _>("is_default")? != 0,
        limit_usd: r.try_get("limit_usd")?,
        reset_interval: r.try_get("reset_interval")?,
        include_byok: r.try_get::<i64, _>("include_byok")? != 0,
        allowed_models: list_column(r, "allowed_models")?,
        ignored_models: list_column(r, "ignored_models")?,
        allowed_providers: list_column(r, "allowed_providers")?,
        ignored_providers: list_column(r, "ignored_providers")?,
        zdr: ZdrFlags {
            anthropic: flag_column(r, "enforce_zdr_anthropic")?,
            openai: flag_column(r, "enforce_zdr_openai")?,
            google: flag_column(r, "enforce_zdr_google")?,
            xai: flag_column(r, "enforce_zdr_xai")?,
            other: flag_column(r, "enforce_zdr_other")?,
        },
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn key_assignment(r: &AnyRow) -> Result<KeyAssignmentRow, StoreError> {
    Ok(KeyAssignmentRow {
        id: r.try_get("id")?,
        guardrail_id: r.try_get("guardrail_id")?,
        key_hash: r.try_get("key_hash")?,
        key_name: r.try_get("name")?,
        key_label: r.try_get("label")?,
        assigned_by: r.try_get("assigned_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn member_assignment(r: &AnyRow) -> Result<MemberAssignmentRow, StoreError> {
    Ok(MemberAssignmentRow {
        id: r.try_get("id")?,
        guardrail_id: r.try_get("guardrail_id")?,
        organization_id: r.try_get("organization_id")?,
        user_id: r.try_get("user_id")?,
        assigned_by: r.try_get("assigned_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn opt_flag(b: Option<bool>) -> Option<i64> {
    b.map(flag)
}

/// Writes a guardrail row within a transaction (or on the pool).
async fn insert<'e, E>(executor: E, g: &GuardrailRow) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO guardrails ({GUARDRAIL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    ))
    .bind(&g.id)
    .bind(&g.organization_id)
    .bind(&g.workspace_id)
    .bind(&g.name)
    .bind(g.description.clone())
    .bind(flag(g.is_default))
    .bind(g.limit_usd.clone())
    .bind(g.reset_interval.clone())
    .bind(flag(g.include_byok))
    .bind(list_text(&g.allowed_models))
    .bind(list_text(&g.ignored_models))
    .bind(list_text(&g.allowed_providers))
    .bind(list_text(&g.ignored_providers))
    .bind(opt_flag(g.zdr.anthropic))
    .bind(opt_flag(g.zdr.openai))
    .bind(opt_flag(g.zdr.google))
    .bind(opt_flag(g.zdr.xai))
    .bind(opt_flag(g.zdr.other))
    .bind(g.created_by.clone())
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts a workspace's default guardrail inside the transaction creating the workspace.
pub(super) async fn insert_default(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace_id: &str,
    organization_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    insert(
        &mut **tx,
        &GuardrailRow::default_for(workspace_id, organization_id, now),
    )
    .await
}

/// Removes a workspace's guardrails and every assignment that refers to them or to the
/// workspace's keys, inside the transaction deleting the workspace.
pub(super) async fn delete_of_workspace(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace_id: &str,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM guardrail_key_assignments WHERE guardrail_id IN \
         (SELECT id FROM guardrails WHERE workspace_id = $1)",
        "DELETE FROM guardrail_key_assignments WHERE key_hash IN \
         (SELECT hash FROM api_keys WHERE workspace_id = $1)",
        "DELETE FROM guardrail_member_assignments WHERE guardrail_id IN \
         (SELECT id FROM guardrails WHERE workspace_id = $1)",
        "DELETE FROM guardrails WHERE workspace_id = $1",
    ] {
        sqlx::query(sql)
            .bind(workspace_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    pub async fn insert_guardrail(&self, g: &GuardrailRow) -> Result<(), StoreError> {
        insert(&mut *self.conn().await?, g).await
    }

    pub async fn guardrail(&self, id: &str) -> Result<Option<GuardrailRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GUARDRAIL_COLUMNS} FROM guardrails WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(guardrail).transpose()
    }

    /// Every guardrail, for snapshots.
    pub async fn all_guardrails(&self) -> Result<Vec<GuardrailRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GUARDRAIL_COLUMNS} FROM guardrails ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(guardrail).collect()
    }

    /// A page of a workspace's guardrails, the default first, then oldest first, and the total.
    pub async fn guardrails_of_workspace(
        &self,
        workspace_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<GuardrailRow>, i64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GUARDRAIL_COLUMNS} FROM guardrails WHERE workspace_id = $1 \
             ORDER BY is_default DESC, created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(workspace_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query("SELECT COUNT(*) AS n FROM guardrails WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((rows.iter().map(guardrail).collect::<Result<_, _>>()?, total))
    }

    /// Writes every field but the id, organization, workspace, default flag and creation.
    pub async fn update_guardrail(&self, g: &GuardrailRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE guardrails SET name = $1, description = $2, limit_usd = $3, \
             reset_interval = $4, include_byok = $5, allowed_models = $6, ignored_models = $7, \
             allowed_providers = $8, ignored_providers = $9, enforce_zdr_anthropic = $10, \
             enforce_zdr_openai = $11, enforce_zdr_google = $12, enforce_zdr_xai = $13, \
             enforce_zdr_other = $14, updated_at = $15 WHERE id = $16",
        )
        .bind(&g.name)
        .bind(g.description.clone())
        .bind(g.limit_usd.clone())
        .bind(g.reset_interval.clone())
        .bind(flag(g.include_byok))
        .bind(list_text(&g.allowed_models))
        .bind(list_text(&g.ignored_models))
        .bind(list_text(&g.allowed_providers))
        .bind(list_text(&g.ignored_providers))
        .bind(opt_flag(g.zdr.anthropic))
        .bind(opt_flag(g.zdr.openai))
        .bind(opt_flag(g.zdr.google))
        .bind(opt_flag(g.zdr.xai))
        .bind(opt_flag(g.zdr.other))
        .bind(g.updated_at)
        .bind(&g.id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a guardrail and its assignments in one transaction; returns how many key and
    /// member assignments went with it, and whether it existed.
    pub async fn delete_guardrail(&self, id: &str) -> Result<(u64, u64, bool), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let keys = sqlx::query("DELETE FROM guardrail_key_assignments WHERE guardrail_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let members =
            sqlx::query("DELETE FROM guardrail_member_assignments WHERE guardrail_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let done = sqlx::query("DELETE FROM guardrails WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((keys, members, done.rows_affected() > 0))
    }

    /// Assigns keys to a guardrail in one transaction, replacing any guardrail they held (a key
    /// holds one). Returns the keys whose assignment changed.
    pub async fn assign_keys(
        &self,
        guardrail_id: &str,
        key_hashes: &[String],
        assigned_by: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut changed = Vec::new();
        for hash in key_hashes {
            let current: Option<String> = sqlx::query(
                "SELECT guardrail_id FROM guardrail_key_assignments WHERE key_hash = $1",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("guardrail_id"))
            .transpose()?;
            if current.as_deref() == Some(guardrail_id) {
                continue;
            }
            sqlx::query("DELETE FROM guardrail_key_assignments WHERE key_hash = $1")
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO guardrail_key_assignments (key_hash, id, guardrail_id, assigned_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(format!("gka_{}", uuid::Uuid::now_v7().simple()))
            .bind(guardrail_id)
            .bind(assigned_by.map(str::to_owned))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            changed.push(hash.clone());
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Removes keys' assignments to one guardrail; returns how many there were.
    pub async fn unassign_keys(
        &self,
        guardrail_id: &str,
        key_hashes: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut removed = 0;
        for hash in key_hashes {
            removed += sqlx::query(
                "DELETE FROM guardrail_key_assignments WHERE guardrail_id = $1 AND key_hash = $2",
            )
            .bind(guardrail_id)
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// The guardrail a key holds, if any.
    pub async fn key_guardrail(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT guardrail_id FROM guardrail_key_assignments WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        Ok(row.map(|r| r.try_get("guardrail_id")).transpose()?)
    }

    /// A page of an organization's key assignments, oldest first, and the total: of one
    /// guardrail when given, and only keys created by `owner` when given.
    pub async fn key_assignments(
        &self,
        organization_id: &str,
        guardrail_id: Option<&str>,
        owner: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<KeyAssignmentRow>, i64), StoreError> {
        const FROM: &str = "FROM guardrail_key_assignments a \
             JOIN guardrails g ON g.id = a.guardrail_id JOIN api_keys k ON k.hash = a.key_hash \
             WHERE g.organization_id = $1 AND ($2 = '' OR a.guardrail_id = $2) \
             AND ($3 = '' OR k.creator_user_id = $3)";
        let rows = sqlx::query(&format!(
            "SELECT a.id, a.guardrail_id, a.key_hash, k.name, k.label, a.assigned_by, \
             a.created_at {FROM} ORDER BY a.created_at, a.id LIMIT $4 OFFSET $5"
        ))
        .bind(organization_id)
        .bind(guardrail_id.unwrap_or(""))
        .bind(owner.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query(&format!("SELECT COUNT(*) AS n {FROM}"))
            .bind(organization_id)
            .bind(guardrail_id.unwrap_or(""))
            .bind(owner.unwrap_or(""))
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((
            rows.iter().map(key_assignment).collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Every key assignment as `(key hash, guardrail id)`, for snapshots.
    pub async fn all_key_assignments(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_hash, guardrail_id FROM guardrail_key_assignments ORDER BY key_hash",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key_hash")?, r.try_get("guardrail_id")?)))
            .collect()
    }

    /// Assigns members to a guardrail in one transaction; returns those not assigned before.
    pub async fn assign_members(
        &self,
        guardrail_id: &str,
        organization_id: &str,
        user_ids: &[String],
        assigned_by: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut added = Vec::new();
        for user_id in user_ids {
            let present = sqlx::query(
                "SELECT COUNT(*) AS n FROM guardrail_member_assignments \
                 WHERE guardrail_id = $1 AND user_id = $2",
            )
            .bind(guardrail_id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("n")?
                > 0;
            if present {
                continue;
            }
            sqlx::query(
                "INSERT INTO guardrail_member_assignments (id, guardrail_id, organization_id, \
                 user_id, assigned_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(format!("gma_{}", uuid::Uuid::now_v7().simple()))
            .bind(guardrail_id)
            .bind(organization_id)
            .bind(user_id)
            .bind(assigned_by.map(str::to_owned))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            added.push(user_id.clone());
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Removes members' assignments to one guardrail; returns how many there were.
    pub async fn unassign_members(
        &self,
        guardrail_id: &str,
        user_ids: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut removed = 0;
        for user_id in user_ids {
            removed += sqlx::query(
                "DELETE FROM guardrail_member_assignments WHERE guardrail_id = $1 AND user_id = $2",
            )
            .bind(guardrail_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// A page of an organization's member assignments, oldest first, and the total: of one
    /// guardrail when given, and of one user when given.
    pub async fn member_assignments(
        &self,
        organization_id: &str,
        guardrail_id: Option<&str>,
        user_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<MemberAssignmentRow>, i64), StoreError> {
        const FROM: &str = "FROM guardrail_member_assignments \
             WHERE organization_id = $1 AND ($2 = '' OR guardrail_id = $2) \
             AND ($3 = '' OR user_id = $3)";
        let rows = sqlx::query(&format!(
            "SELECT id, guardrail_id, organization_id, user_id, assigned_by, created_at {FROM} \
             ORDER BY created_at, id LIMIT $4 OFFSET $5"
        ))
        .bind(organization_id)
        .bind(guardrail_id.unwrap_or(""))
        .bind(user_id.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query(&format!("SELECT COUNT(*) AS n {FROM}"))
            .bind(organization_id)
            .bind(guardrail_id.unwrap_or(""))
            .bind(user_id.unwrap_or(""))
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((
            rows.iter()
                .map(member_assignment)
                .collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Every member assignment, for snapshots.
    pub async fn all_member_assignments(&self) -> Result<Vec<MemberAssignmentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, guardrail_id, organization_id, user_id, assigned_by, created_at \
             FROM guardrail_member_assignments ORDER BY organization_id, user_id, created_at, id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(member_assignment).collect()
    }

    /// Is `id` a provider of the catalogue?
    pub async fn provider_exists(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM providers WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
