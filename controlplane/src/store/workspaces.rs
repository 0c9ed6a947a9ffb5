//! Workspaces, their members and their budgets.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, flag};

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
    pub async fn insert_workspace(&self, w: &WorkspaceRow) -> Result<(), StoreError> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn workspaces(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(workspace).collect()
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_one(&self.pool)
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
        .execute(&self.pool)
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
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
