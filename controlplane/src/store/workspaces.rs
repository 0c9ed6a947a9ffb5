//! Workspaces, their members and their budgets.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{MemberRow, Store, StoreError, flag, guardrails};

#[derive(Clone, Debug)]
pub struct WorkspaceRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub is_default: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// Observability and routing defaults, a JSON object with the SDK's field names.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

const WORKSPACE_COLUMNS: &str = "id, organization_id, name, slug, description, is_default, \
    created_by, created_at, updated_at, settings";

fn workspace(r: &AnyRow) -> Result<WorkspaceRow, StoreError> {
    let settings: String = r.try_get("settings")?;
    Ok(WorkspaceRow {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        name: r.try_get("name")?,
        slug: r.try_get("slug")?,
        description: r.try_get("description")?,
        is_default: r.try_get::<i64, _>("is_default")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("workspace settings: {e}")))?,
    })
}

impl Store {
    /// Inserts a workspace with its default guardrail, in one transaction.
    pub async fn insert_workspace(&self, w: &WorkspaceRow) -> Result<(), StoreError> {
        self.create_workspace(w, None).await
    }

    pub async fn workspaces(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(workspace).collect()
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(workspace).transpose()
    }

    /// A workspace by id, or by slug within an organization.
    pub async fn workspace_by_ref(
        &self,
        organization_id: &str,
        reference: &str,
    ) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE organization_id = $1 AND (id = $2 OR slug = $2)"
        ))
        .bind(organization_id)
        .bind(reference)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(workspace).transpose()
    }

    pub async fn default_workspace(
        &self,
        organization_id: &str,
    ) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE organization_id = $1 AND is_default = 1"
        ))
        .bind(organization_id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(workspace).transpose()
    }

    /// Adds a user to a workspace; `false` if they already were a member.
    pub async fn add_workspace_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let exists = sqlx::query(
            "SELECT COUNT(*) AS n FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_one(&mut *self.conn().await?)
        .await?
        .try_get::<i64, _>("n")?
            > 0;
        if exists {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO workspace_members (id, workspace_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(format!("{workspace_id}:{user_id}"))
        .bind(workspace_id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(true)
    }

    pub async fn is_workspace_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}

/// A workspace's budget for one interval (`daily`, `weekly`, `monthly` or `lifetime`).
#[derive(Clone, Debug)]
pub struct WorkspaceBudgetRow {
    pub id: String,
    pub workspace_id: String,
    pub reset_interval: String,
    /// Exact decimal USD.
    pub limit_usd: String,
    pub include_byok: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a workspace holds that a deletion would take with it.
#[derive(Clone, Debug, Default)]
pub struct WorkspaceContents {
    pub key_hashes: Vec<String>,
    pub presets: i64,
    pub byok_credentials: i64,
    /// Guardrails besides the workspace's default (which always goes with it): deleting them
    /// lifts restrictions from the keys and members they are assigned to.
    pub guardrails: i64,
}

impl WorkspaceContents {
    pub fn is_empty(&self) -> bool {
        self.key_hashes.is_empty()
            && self.presets == 0
            && self.byok_credentials == 0
            && self.guardrails == 0
    }
}

const BUDGET_COLUMNS: &str =
    "id, workspace_id, reset_interval, limit_usd, include_byok, created_at, updated_at";

fn budget(r: &AnyRow) -> Result<WorkspaceBudgetRow, StoreError> {
    Ok(WorkspaceBudgetRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        reset_interval: r.try_get("reset_interval")?,
        limit_usd: r.try_get("limit_usd")?,
        include_byok: r.try_get::<i64, _>("include_byok")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A workspace member as `MemberRow`, `created_at` being when they joined the workspace.
fn workspace_member(r: &AnyRow) -> Result<MemberRow, StoreError> {
    Ok(MemberRow {
        organization_id: r.try_get("organization_id")?,
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
    })
}

async fn count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &str,
    id: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get::<i64, _>("n")?)
}

impl Store {
    /// Creates a workspace with its default guardrail and makes `member` (its creator) a
    /// member, in one transaction.
    pub async fn create_workspace(
        &self,
        w: &WorkspaceRow,
        member: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO workspaces ({WORKSPACE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&w.id)
        .bind(&w.organization_id)
        .bind(&w.name)
        .bind(&w.slug)
        .bind(w.description.clone())
        .bind(flag(w.is_default))
        .bind(w.created_by.clone())
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(serde_json::Value::Object(w.settings.clone()).to_string())
        .execute(&mut *tx)
        .await?;
        guardrails::insert_default(&mut tx, &w.id, &w.organization_id, w.created_at).await?;
        if let Some(user_id) = member {
            sqlx::query(
                "INSERT INTO workspace_members (id, workspace_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(format!("{}:{user_id}", w.id))
            .bind(&w.id)
            .bind(user_id)
            .bind(w.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a workspace's name, slug, description, settings and `updated_at`.
    pub async fn update_workspace(&self, w: &WorkspaceRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE workspaces SET name = $1, slug = $2, description = $3, settings = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&w.name)
        .bind(&w.slug)
        .bind(w.description.clone())
        .bind(serde_json::Value::Object(w.settings.clone()).to_string())
        .bind(w.updated_at)
        .bind(&w.id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    /// A page of an organization's workspaces, the Default first, then oldest first, and the
    /// total count. With `member`, only the Default and the workspaces that user belongs to.
    pub async fn workspaces_of_organization(
        &self,
        organization_id: &str,
        member: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<WorkspaceRow>, i64), StoreError> {
        const VISIBLE: &str = "organization_id = $1 AND ($2 = '' OR is_default = 1 OR id IN \
             (SELECT workspace_id FROM workspace_members WHERE user_id = $2))";
        let rows = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE {VISIBLE} \
             ORDER BY is_default DESC, created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(organization_id)
        .bind(member.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM workspaces WHERE {VISIBLE}"
        ))
        .bind(organization_id)
        .bind(member.unwrap_or(""))
        .fetch_one(&mut *self.conn().await?)
        .await?
        .try_get::<i64, _>("n")?;
        Ok((rows.iter().map(workspace).collect::<Result<_, _>>()?, total))
    }

    /// Deletes a workspace, refusing (and changing nothing) if it holds keys, presets, BYOK
    /// credentials or guardrails unless `force`, in which case they go with it, as do its
    /// budgets, member rows and default guardrail. Returns what it held, and whether it was deleted. The check and the
    /// deletion share one transaction, so nothing added in between is orphaned.
    pub async fn delete_workspace(
        &self,
        id: &str,
        force: bool,
    ) -> Result<(WorkspaceContents, bool), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let key_hashes =
            sqlx::query("SELECT hash FROM api_keys WHERE workspace_id = $1 ORDER BY hash")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("hash"))
                .collect::<Result<Vec<_>, _>>()?;
        let contents = WorkspaceContents {
            key_hashes,
            presets: count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM presets WHERE workspace_id = $1",
                id,
            )
            .await?,
            byok_credentials: count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM byok_credentials WHERE workspace_id = $1",
                id,
            )
            .await?,
            guardrails: count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM guardrails WHERE workspace_id = $1 AND is_default = 0",
                id,
            )
            .await?,
        };
        if !force && !contents.is_empty() {
            tx.rollback().await?;
            return Ok((contents, false));
        }
        // Children before parents: the foreign keys are enforced on both databases.
        guardrails::delete_of_workspace(&mut tx, id).await?;
        for sql in [
            "DELETE FROM preset_versions WHERE preset_id IN (SELECT id FROM presets WHERE workspace_id = $1)",
            "DELETE FROM presets WHERE workspace_id = $1",
            "DELETE FROM byok_credentials WHERE workspace_id = $1",
            "DELETE FROM api_keys WHERE workspace_id = $1",
            "DELETE FROM workspace_budgets WHERE workspace_id = $1",
            "DELETE FROM workspace_members WHERE workspace_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((contents, done.rows_affected() > 0))
    }

    /// A page of a workspace's members with their organization role, oldest first, and the
    /// total. The Default workspace's members are all of its organization's members.
    pub async fn workspace_members(
        &self,
        w: &WorkspaceRow,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<MemberRow>, i64), StoreError> {
        if w.is_default {
            return self.members(&w.organization_id, offset, limit).await;
        }
        const FROM: &str = "FROM workspace_members wm \
             JOIN memberships m ON m.user_id = wm.user_id JOIN users u ON u.id = wm.user_id \
             WHERE wm.workspace_id = $1 AND m.organization_id = $2";
        let rows = sqlx::query(&format!(
            "SELECT m.organization_id, wm.user_id, u.email, u.name, m.role, wm.created_at {FROM} \
             ORDER BY wm.created_at, wm.user_id LIMIT $3 OFFSET $4"
        ))
        .bind(&w.id)
        .bind(&w.organization_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = sqlx::query(&format!("SELECT COUNT(*) AS n {FROM}"))
            .bind(&w.id)
            .bind(&w.organization_id)
            .fetch_one(&mut *self.conn().await?)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((
            rows.iter()
                .map(workspace_member)
                .collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Adds users to a workspace in one transaction; returns those who were not members yet.
    pub async fn add_workspace_members(
        &self,
        workspace_id: &str,
        user_ids: &[String],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut added = Vec::new();
        for user_id in user_ids {
            let present = sqlx::query(
                "SELECT COUNT(*) AS n FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
            )
            .bind(workspace_id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("n")?
                > 0;
            if present {
                continue;
            }
            sqlx::query(
                "INSERT INTO workspace_members (id, workspace_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(format!("{workspace_id}:{user_id}"))
            .bind(workspace_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            added.push(user_id.clone());
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Removes users from a workspace in one transaction; returns how many were members.
    pub async fn remove_workspace_members(
        &self,
        workspace_id: &str,
        user_ids: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut removed = 0;
        for user_id in user_ids {
            removed += sqlx::query(
                "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
            )
            .bind(workspace_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// How many live (enabled, unexpired) keys a user has in a workspace.
    pub async fn live_keys_in_workspace(
        &self,
        workspace_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE workspace_id = $1 AND creator_user_id = $2 \
             AND disabled = 0 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(workspace_id)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Is `id` a model of the catalogue?
    pub async fn model_exists(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM models WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Every workspace budget, for snapshots.
    pub async fn all_workspace_budgets(&self) -> Result<Vec<WorkspaceBudgetRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BUDGET_COLUMNS} FROM workspace_budgets ORDER BY workspace_id, reset_interval"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(budget).collect()
    }

    pub async fn workspace_budgets(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WorkspaceBudgetRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BUDGET_COLUMNS} FROM workspace_budgets WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace_id)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(budget).collect()
    }

    /// Creates or replaces the budget of `b.reset_interval` (keeping an existing one's id and
    /// `created_at`). BYOK inclusion is workspace-wide: `settings` (which carries it) and
    /// every budget of the workspace are written in the same transaction.
    pub async fn upsert_workspace_budget(
        &self,
        b: &WorkspaceBudgetRow,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<WorkspaceBudgetRow, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("UPDATE workspaces SET settings = $1 WHERE id = $2")
            .bind(serde_json::Value::Object(settings.clone()).to_string())
            .bind(&b.workspace_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE workspace_budgets SET include_byok = $1 WHERE workspace_id = $2")
            .bind(flag(b.include_byok))
            .bind(&b.workspace_id)
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(&format!(
            "SELECT {BUDGET_COLUMNS} FROM workspace_budgets WHERE workspace_id = $1 AND reset_interval = $2"
        ))
        .bind(&b.workspace_id)
        .bind(&b.reset_interval)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(budget)
        .transpose()?;
        let stored = match existing {
            Some(old) => {
                sqlx::query(
                    "UPDATE workspace_budgets SET limit_usd = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(&b.limit_usd)
                .bind(b.updated_at)
                .bind(&old.id)
                .execute(&mut *tx)
                .await?;
                WorkspaceBudgetRow {
                    id: old.id,
                    created_at: old.created_at,
                    ..b.clone()
                }
            }
            None => {
                sqlx::query(&format!(
                    "INSERT INTO workspace_budgets ({BUDGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(&b.id)
                .bind(&b.workspace_id)
                .bind(&b.reset_interval)
                .bind(&b.limit_usd)
                .bind(flag(b.include_byok))
                .bind(b.created_at)
                .bind(b.updated_at)
                .execute(&mut *tx)
                .await?;
                b.clone()
            }
        };
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes the budget of one interval; `false` if there was none.
    pub async fn delete_workspace_budget(
        &self,
        workspace_id: &str,
        reset_interval: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM workspace_budgets WHERE workspace_id = $1 AND reset_interval = $2",
        )
        .bind(workspace_id)
        .bind(reset_interval)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
