//! Organizations, users and organization membership.

use serde_json::{Value, json};

use super::{Actor, Manage, ManageError, ManageResult, Publish, Role, new_id, valid_name};
use crate::seed::{DEFAULT_MEMBER_CAP, default_workspace, personal_account};
use crate::store::{MemberRow, OrganizationRow, UserRow};

/// A partial update of an organization; `None` leaves a field unchanged.
#[derive(Clone, Debug, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    /// Operator only. 0 means unlimited.
    pub member_cap: Option<i64>,
    pub filtered_model_catalog: Option<bool>,
    /// Privacy: only zero-data-retention endpoints.
    pub enforce_zdr: Option<bool>,
    /// Privacy: only endpoints that neither retain nor train on prompts.
    pub deny_data_collection: Option<bool>,
}

pub fn organization_json(o: &OrganizationRow) -> Value {
    json!({
        "id": o.id, "name": o.name, "kind": o.kind, "member_cap": o.member_cap,
        "is_filtered_model_catalog_enabled": o.filtered_model_catalog,
        "enforce_zdr": o.enforce_zdr, "deny_data_collection": o.deny_data_collection,
    })
}

fn member_json(m: &MemberRow) -> Value {
    json!({ "organization_id": m.organization_id, "user_id": m.user_id, "role": m.role })
}

impl Manage {
    /// Operator only: a new organization with its Default workspace.
    pub async fn create_organization(
        &self,
        actor: &Actor,
        name: &str,
        member_cap: Option<i64>,
    ) -> ManageResult<OrganizationRow> {
        let this = self.begin().await?;
        if !actor.is_operator() {
            return Err(ManageError::Forbidden(
                "Only operators create organizations".into(),
            ));
        }
        let now = crate::now_ms();
        let org = OrganizationRow {
            id: new_id("org"),
            name: valid_name("name", name, 128)?,
            kind: "organization".into(),
            owner_user_id: None,
            member_cap: valid_cap(member_cap.unwrap_or(DEFAULT_MEMBER_CAP))?,
            filtered_model_catalog: false,
            enforce_zdr: false,
            deny_data_collection: false,
            created_at: now,
        };
        this.store.insert_organization(&org).await?;
        this.store
            .insert_workspace(&default_workspace(&new_id("ws"), &org.id, None, now))
            .await?;
        this.audit(
            actor,
            Some(&org.id),
            "organization.create",
            &org.id,
            None,
            Some(&organization_json(&org)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(org)
    }

    /// The operator sees every organization (personal accounts included); a member their own.
    pub async fn organizations(&self, actor: &Actor) -> ManageResult<Vec<OrganizationRow>> {
        let all = self.store.organizations().await?;
        Ok(all.into_iter().filter(|o| actor.sees(&o.id)).collect())
    }

    pub async fn organization(
        &self,
        actor: &Actor,
        id: Option<&str>,
    ) -> ManageResult<OrganizationRow> {
        let id = actor.target_organization(id)?;
        self.store
            .organization(&id)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("Organization {id} not found")))
    }

    /// Admins change their organization's settings; the name and member cap are the operator's.
    pub async fn update_organization(
        &self,
        actor: &Actor,
        id: Option<&str>,
        patch: OrganizationPatch,
    ) -> ManageResult<OrganizationRow> {
        let this = self.begin().await?;
        let before = this.organization(actor, id).await?;
        actor.require_admin(&before.id, "Organization")?;
        if (patch.name.is_some() || patch.member_cap.is_some()) && !actor.is_operator() {
            return Err(ManageError::Forbidden(
                "Only operators change an organization's name or member cap".into(),
            ));
        }
        let mut after = before.clone();
        if let Some(name) = &patch.name {
            after.name = valid_name("name", name, 128)?;
        }
        if let Some(cap) = patch.member_cap {
            after.member_cap = valid_cap(cap)?;
        }
        if let Some(filtered) = patch.filtered_model_catalog {
            after.filtered_model_catalog = filtered;
        }
        if let Some(zdr) = patch.enforce_zdr {
            after.enforce_zdr = zdr;
        }
        if let Some(deny) = patch.deny_data_collection {
            after.deny_data_collection = deny;
        }
        this.store.update_organization(&after).await?;
        this.audit(
            actor,
            Some(&after.id),
            "organization.update",
            &after.id,
            Some(&organization_json(&before)),
            Some(&organization_json(&after)),
        )
        .await?;
        // Names and privacy settings are part of the snapshot.
        this.commit(Publish::Snapshot).await?;
        Ok(after)
    }

    /// Operator only: a user, with their personal account.
    pub async fn create_user(
        &self,
        actor: &Actor,
        email: &str,
        name: &str,
    ) -> ManageResult<UserRow> {
        let this = self.begin().await?;
        if !actor.is_operator() {
            return Err(ManageError::Forbidden("Only operators create users".into()));
        }
        let email = valid_email(email)?;
        if this.store.user_by_email(&email).await?.is_some() {
            return Err(ManageError::Conflict(format!(
                "A user with email {email} already exists"
            )));
        }
        let now = crate::now_ms();
        let user = UserRow {
            id: new_id("user"),
            email,
            name: valid_name("name", name, 128)?,
            created_at: now,
        };
        this.store.insert_user(&user).await?;
        let personal = personal_account(&user.id, &user.name, now);
        this.store.insert_organization(&personal).await?;
        this.store
            .insert_membership(&personal.id, &user.id, Role::Admin.as_str(), now)
            .await?;
        this.store
            .insert_workspace(&default_workspace(
                &new_id("ws"),
                &personal.id,
                Some(&user.id),
                now,
            ))
            .await?;
        if let Some(ws) = this.store.default_workspace(&personal.id).await? {
            this.store
                .add_workspace_member(&ws.id, &user.id, now)
                .await?;
        }
        this.audit(
            actor,
            None,
            "user.create",
            &user.id,
            None,
            Some(&json!({ "id": user.id, "email": user.email, "name": user.name })),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(user)
    }

    /// Operator: every user. Members: the users of their organization.
    pub async fn users(&self, actor: &Actor) -> ManageResult<Vec<UserRow>> {
        match actor.organization_id() {
            None => Ok(self.store.users().await?),
            Some(org) => {
                let (members, _) = self.store.members(org, 0, i64::MAX).await?;
                Ok(members
                    .into_iter()
                    .map(|m| UserRow {
                        id: m.user_id,
                        email: m.email,
                        name: m.name,
                        created_at: m.created_at,
                    })
                    .collect())
            }
        }
    }

    /// Admins and operators add an existing user, within the member cap; they join the Default
    /// workspace at once.
    pub async fn add_member(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        user_id: &str,
        role: Role,
    ) -> ManageResult<MemberRow> {
        let this = self.begin().await?;
        let org = this.organization(actor, organization_id).await?;
        actor.require_admin(&org.id, "Organization")?;
        if org.is_personal() {
            return Err(ManageError::Invalid(
                "A personal account has no other members".into(),
            ));
        }
        this.lock_organization(&org.id).await?;
        let user = this
            .store
            .user(user_id)
            .await?
            .ok_or_else(|| ManageError::Invalid(format!("User {user_id} does not exist")))?;
        if this.store.membership(&org.id, &user.id).await?.is_some() {
            return Err(ManageError::Conflict(format!(
                "User {} is already a member",
                user.id
            )));
        }
        if org.member_cap > 0 && this.store.member_count(&org.id).await? >= org.member_cap {
            return Err(ManageError::Invalid(format!(
                "The organization has reached its member cap of {}",
                org.member_cap
            )));
        }
        let now = crate::now_ms();
        this.store
            .insert_membership(&org.id, &user.id, role.as_str(), now)
            .await?;
        if let Some(ws) = this.store.default_workspace(&org.id).await? {
            this.store
                .add_workspace_member(&ws.id, &user.id, now)
                .await?;
        }
        let member = this.member(&org.id, &user.id).await?;
        this.audit(
            actor,
            Some(&org.id),
            "member.add",
            &user.id,
            None,
            Some(&member_json(&member)),
        )
        .await?;
        this.commit(Publish::No).await?;
        Ok(member)
    }

    pub async fn set_member_role(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        user_id: &str,
        role: Role,
    ) -> ManageResult<MemberRow> {
        let this = self.begin().await?;
        let org = this.organization(actor, organization_id).await?;
        actor.require_admin(&org.id, "Organization")?;
        this.lock_organization(&org.id).await?;
        let before = this.member(&org.id, user_id).await?;
        if role == Role::Member && before.role == Role::Admin.as_str() {
            this.keep_an_admin(&org.id, user_id).await?;
        }
        this.store
            .set_membership_role(&org.id, user_id, role.as_str())
            .await?;
        let after = this.member(&org.id, user_id).await?;
        this.audit(
            actor,
            Some(&org.id),
            "member.role",
            user_id,
            Some(&member_json(&before)),
            Some(&member_json(&after)),
        )
        .await?;
        this.commit(Publish::No).await?;
        Ok(after)
    }

    /// Removes a member. Their keys stay (they bill the organization) but stop managing, because
    /// a management key acts only while its user is a member.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        user_id: &str,
    ) -> ManageResult<()> {
        let this = self.begin().await?;
        let org = this.organization(actor, organization_id).await?;
        actor.require_admin(&org.id, "Organization")?;
        if org.is_personal() {
            return Err(ManageError::Invalid(
                "A personal account's owner cannot be removed".into(),
            ));
        }
        this.lock_organization(&org.id).await?;
        let before = this.member(&org.id, user_id).await?;
        if before.role == Role::Admin.as_str() {
            this.keep_an_admin(&org.id, user_id).await?;
        }
        this.store.delete_membership(&org.id, user_id).await?;
        this.audit(
            actor,
            Some(&org.id),
            "member.remove",
            user_id,
            Some(&member_json(&before)),
            None,
        )
        .await?;
        // The member's guardrail assignments went with the membership.
        this.commit(Publish::Snapshot).await?;
        Ok(())
    }

    pub async fn members(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<MemberRow>, i64)> {
        let org = self.organization(actor, organization_id).await?;
        Ok(self.store.members(&org.id, offset, limit).await?)
    }

    async fn member(&self, organization_id: &str, user_id: &str) -> ManageResult<MemberRow> {
        self.store
            .membership(organization_id, user_id)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("Member {user_id} not found")))
    }

    /// Refuses to leave an organization without an admin.
    async fn keep_an_admin(&self, organization_id: &str, leaving: &str) -> ManageResult<()> {
        let (members, _) = self.store.members(organization_id, 0, i64::MAX).await?;
        let others = members
            .iter()
            .filter(|m| m.role == Role::Admin.as_str() && m.user_id != leaving)
            .count();
        if others == 0 {
            return Err(ManageError::Invalid(
                "An organization must keep at least one admin".into(),
            ));
        }
        Ok(())
    }
}

fn valid_cap(cap: i64) -> ManageResult<i64> {
    if !(0..=1_000_000).contains(&cap) {
        return Err(ManageError::Invalid(
            "member_cap must be between 0 (unlimited) and 1000000".into(),
        ));
    }
    Ok(cap)
}

fn valid_email(email: &str) -> ManageResult<String> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if !valid {
        return Err(ManageError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    Ok(email)
}
