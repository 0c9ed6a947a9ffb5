//! External users: the `user` strings an organization's requests carry, registered when first
//! seen (and by hand), so they can be listed, looked up and deactivated. A registration is
//! bookkeeping only; it never decides whether a request is served.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::generations::Generation;
use super::{Store, StoreError, flag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUserRow {
    pub organization_id: String,
    pub user: String,
    pub is_active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The contract's rule for a `user` string: 1 to 512 characters, no NUL, no surrounding
/// whitespace. `None` when it holds, else why not.
pub fn external_user_problem(user: &str) -> Option<&'static str> {
    let chars = user.chars().count();
    if chars == 0 || chars > 512 {
        Some("user must be 1 to 512 characters")
    } else if user.contains('\0') {
        Some("user must not contain NUL")
    } else if user.trim() != user {
        Some("user must not start or end with whitespace")
    } else {
        None
    }
}

fn row(r: &AnyRow) -> Result<ExternalUserRow, StoreError> {
    Ok(ExternalUserRow {
        organization_id: r.try_get("organization_id")?,
        user: r.try_get("user_id")?,
        is_active: r.try_get::<i64, _>("is_active")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "organization_id, user_id, is_active, created_at, updated_at";

/// Registers the users `generations` name, at their first generation's time, on `conn` (the
/// recording transaction); ones already registered are left as they are.
pub(super) async fn register(
    conn: &mut sqlx::AnyConnection,
    generations: &[&Generation],
) -> Result<(), StoreError> {
    let mut first_seen: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for g in generations {
        if let Some(user) = g.external_user.as_deref()
            && external_user_problem(user).is_none()
        {
            let at = first_seen
                .entry((g.organization_id.as_str(), user))
                .or_insert(g.created_at);
            *at = (*at).min(g.created_at);
        }
    }
    for ((organization_id, user), at) in first_seen {
        sqlx::query(&format!(
            "INSERT INTO external_users ({COLUMNS}) VALUES ($1, $2, 1, $3, $3) \
             ON CONFLICT (organization_id, user_id) DO NOTHING"
        ))
        .bind(organization_id)
        .bind(user)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A page of an organization's registrations (by user), and how many match in all.
    pub async fn external_users(
        &self,
        organization_id: &str,
        user: Option<&str>,
        include_inactive: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ExternalUserRow>, i64), StoreError> {
        let filter =
            "organization_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = 1 OR is_active = 1)";
        let user = user.unwrap_or("");
        let mut conn = self.conn().await?;
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM external_users WHERE {filter}"
        ))
        .bind(organization_id)
        .bind(user)
        .bind(flag(include_inactive))
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM external_users WHERE {filter} ORDER BY user_id LIMIT $4 OFFSET $5"
        ))
        .bind(organization_id)
        .bind(user)
        .bind(flag(include_inactive))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        let rows = rows.iter().map(row).collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn external_user(
        &self,
        organization_id: &str,
        user: &str,
    ) -> Result<Option<ExternalUserRow>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM external_users WHERE organization_id = $1 AND user_id = $2"
        ))
        .bind(organization_id)
        .bind(user)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        found.as_ref().map(row).transpose()
    }

    /// Registers `user`; `false` if it already was.
    pub async fn insert_external_user(
        &self,
        organization_id: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO external_users ({COLUMNS}) VALUES ($1, $2, 1, $3, $3) \
             ON CONFLICT (organization_id, user_id) DO NOTHING"
        ))
        .bind(organization_id)
        .bind(user)
        .bind(now_ms)
        .execute(&mut *self.conn().await?)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Activates or deactivates a registration; `false` if there is none.
    pub async fn set_external_user_active(
        &self,
        organization_id: &str,
        user: &str,
        active: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE external_users SET is_active = $3, updated_at = $4 \
             WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization_id)
        .bind(user)
        .bind(flag(active))
        .bind(now_ms)
        .execute(&mut *self.conn().await?)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Removes a registration (its generations keep their `user`); `false` if there was none.
    pub async fn delete_external_user(
        &self,
        organization_id: &str,
        user: &str,
    ) -> Result<bool, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM external_users WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user)
                .execute(&mut *self.conn().await?)
                .await?
                .rows_affected();
        Ok(deleted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_strings_follow_the_contract() {
        assert!(external_user_problem("alice@example.com").is_none());
        assert!(external_user_problem(&"é".repeat(512)).is_none());
        for bad in ["", " alice", "alice\n", "a\0b"] {
            assert!(external_user_problem(bad).is_some(), "{bad:?}");
        }
        assert!(external_user_problem(&"x".repeat(513)).is_some());
    }
}
