//! Organizations (and personal accounts), users, memberships and the audit log.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError, flag};

/// An owner of keys and credits: an organization, or a user's personal account.
#[derive(Clone, Debug)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    /// `organization` or `personal`.
    pub kind: String,
    /// The user whose personal account this is.
    pub owner_user_id: Option<String>,
    /// Most members allowed; 0 means unlimited.
    pub member_cap: i64,
    pub filtered_model_catalog: bool,
    /// Privacy: only zero-data-retention endpoints serve the organization's requests.
    pub enforce_zdr: bool,
    /// Privacy: only endpoints that neither retain nor train on prompts.
    pub deny_data_collection: bool,
    pub created_at: i64,
}

impl OrganizationRow {
    pub fn is_personal(&self) -> bool {
        self.kind == "personal"
    }
}

#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

/// A user's membership in an organization, with the user's details.
#[derive(Clone, Debug)]
pub struct MemberRow {
    pub organization_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// One audit record; `before`/`after` are JSON without secrets.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub organization_id: Option<String>,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

const ORGANIZATION_COLUMNS: &str = "id, name, kind, owner_user_id, member_cap, \
    filtered_model_catalog, created_at, enforce_zdr, deny_data_collection";

fn organization(r: &AnyRow) -> Result<OrganizationRow, StoreError> {
    Ok(OrganizationRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        owner_user_id: r.try_get("owner_user_id")?,
        member_cap: r.try_get("member_cap")?,
        filtered_model_catalog: r.try_get::<i64, _>("filtered_model_catalog")? != 0,
        enforce_zdr: r.try_get::<i64, _>("enforce_zdr")? != 0,
        deny_data_collection: r.try_get::<i64, _>("deny_data_collection")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn user(r: &AnyRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn member(r: &AnyRow) -> Result<MemberRow, StoreError> {
    Ok(MemberRow {
        organization_id: r.try_get("organization_id")?,
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organizations")
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    pub async fn insert_organization(&self, o: &OrganizationRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO organizations ({ORGANIZATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&o.id)
        .bind(&o.name)
        .bind(&o.kind)
        .bind(o.owner_user_id.clone())
        .bind(o.member_cap)
        .bind(flag(o.filtered_model_catalog))
        .bind(o.created_at)
        .bind(flag(o.enforce_zdr))
        .bind(flag(o.deny_data_collection))
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub async fn update_organization(&self, o: &OrganizationRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE organizations SET name = $1, member_cap = $2, filtered_model_catalog = $3, \
             enforce_zdr = $4, deny_data_collection = $5 WHERE id = $6",
        )
        .bind(&o.name)
        .bind(o.member_cap)
        .bind(flag(o.filtered_model_catalog))
        .bind(flag(o.enforce_zdr))
        .bind(flag(o.deny_data_collection))
        .bind(&o.id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub async fn organization(&self, id: &str) -> Result<Option<OrganizationRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(organization).transpose()
    }

    pub async fn organizations(&self) -> Result<Vec<OrganizationRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations ORDER BY id"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(organization).collect()
    }

    pub async fn personal_account(
        &self,
        user_id: &str,
    ) -> Result<Option<OrganizationRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE kind = 'personal' AND owner_user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(organization).transpose()
    }

    pub async fn insert_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&u.id)
            .bind(&u.email)
            .bind(&u.name)
            .bind(u.created_at)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT id, email, name, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT id, email, name, created_at FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query("SELECT id, email, name, created_at FROM users ORDER BY id")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(user).collect()
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
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    pub async fn set_membership_role(
        &self,
        organization_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE memberships SET role = $1 WHERE organization_id = $2 AND user_id = $3",
        )
        .bind(role)
        .bind(organization_id)
        .bind(user_id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a membership, and the user's workspace memberships and guardrail assignments in
    /// that organization.
    pub async fn delete_membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "DELETE FROM workspace_members WHERE user_id = $1 AND workspace_id IN \
             (SELECT id FROM workspaces WHERE organization_id = $2)",
        )
        .bind(user_id)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM guardrail_member_assignments WHERE user_id = $1 AND organization_id = $2",
        )
        .bind(user_id)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MemberRow>, StoreError> {
        let row = sqlx::query(
            "SELECT m.organization_id, m.user_id, u.email, u.name, m.role, m.created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 AND m.user_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(member).transpose()
    }

    /// A page of an organization's members, oldest first, and the total count.
    pub async fn members(
        &self,
        organization_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<MemberRow>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT m.organization_id, m.user_id, u.email, u.name, m.role, m.created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 ORDER BY m.created_at, m.user_id LIMIT $2 OFFSET $3",
        )
        .bind(organization_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let total = self.member_count(organization_id).await?;
        Ok((rows.iter().map(member).collect::<Result<_, _>>()?, total))
    }

    pub async fn member_count(&self, organization_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_audit(&self, a: &AuditRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, organization_id, action, target, before_state, after_state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.id)
        .bind(a.at)
        .bind(&a.actor)
        .bind(a.organization_id.clone())
        .bind(&a.action)
        .bind(&a.target)
        .bind(a.before.clone())
        .bind(a.after.clone())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    /// The newest audit records, of one organization or (operator) of all.
    pub async fn audit_log(
        &self,
        organization_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, organization_id, action, target, before_state, after_state \
             FROM audit_log WHERE ($1 = '' OR organization_id = $1) ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(organization_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    organization_id: r.try_get("organization_id")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    before: r.try_get("before_state")?,
                    after: r.try_get("after_state")?,
                })
            })
            .collect()
    }
}
