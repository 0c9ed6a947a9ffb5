//! Organizations, users, memberships and workspaces.

use sqlx::Row;

use super::{Store, StoreError, flag};

#[derive(Clone, Debug)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct WorkspaceRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub is_default: bool,
}

impl Store {
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organizations")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    pub async fn insert_organization(
        &self,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_user(
        &self,
        id: &str,
        email: &str,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(email)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_membership(
        &self,
        organization_id: &str,
        user_id: &str,
        role: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(organization_id)
        .bind(user_id)
        .bind(role)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_workspace(
        &self,
        w: &WorkspaceRow,
        slug: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workspaces (id, organization_id, name, slug, is_default, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(&w.organization_id)
        .bind(&w.name)
        .bind(slug)
        .bind(flag(w.is_default))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn organizations(&self) -> Result<Vec<OrganizationRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name FROM organizations ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OrganizationRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    pub async fn workspaces(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let rows =
            sqlx::query("SELECT id, organization_id, name, is_default FROM workspaces ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(workspace).collect()
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, organization_id, name, is_default FROM workspaces WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workspace).transpose()
    }

    pub async fn default_workspace(
        &self,
        organization_id: &str,
    ) -> Result<Option<WorkspaceRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, organization_id, name, is_default FROM workspaces WHERE organization_id = $1 AND is_default = 1",
        )
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workspace).transpose()
    }
}

fn workspace(r: &sqlx::any::AnyRow) -> Result<WorkspaceRow, StoreError> {
    Ok(WorkspaceRow {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        name: r.try_get("name")?,
        is_default: r.try_get::<i64, _>("is_default")? != 0,
    })
}
