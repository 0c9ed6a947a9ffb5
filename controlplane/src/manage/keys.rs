//! API keys: who may create, see and change which, and zero-downtime rotation.

use serde_json::{Value, json};

use super::{Actor, Manage, ManageError, ManageResult, Publish, Role, money, valid_name};
use crate::keys::{self as secrets, KeyKind};
use crate::store::{KeyPatch, KeyRow, NewKey, WorkspaceRow};
use switchyard_policy::Window;

/// A key to create. Members create inference keys for themselves; the operator may create
/// either kind for any member of any organization.
#[derive(Clone, Debug)]
pub struct NewKeyInput {
    pub name: String,
    pub kind: KeyKind,
    /// Workspace id or slug; the organization's Default workspace when absent.
    pub workspace: Option<String>,
    /// Operator only: the organization, and the member who will own the key.
    pub organization_id: Option<String>,
    pub owner_user_id: Option<String>,
    pub limit_usd: Option<f64>,
    pub limit_reset: Option<Window>,
    pub include_byok_in_limit: bool,
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    /// Operator only (members see their own organization).
    pub organization_id: Option<String>,
    pub workspace: Option<String>,
    pub include_disabled: bool,
}

/// A change to a key; nested options tell "unchanged" from "cleared".
#[derive(Clone, Debug, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub limit_usd: Option<Option<f64>>,
    pub limit_reset: Option<Option<Window>>,
    pub include_byok_in_limit: Option<bool>,
    pub workspace: Option<String>,
}

/// Longest rotation grace period.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

/// The audit view of a key: no secret, only its hash and label.
fn audit_view(k: &KeyRow) -> Value {
    json!({
        "hash": k.hash, "label": k.label, "name": k.name, "kind": k.kind.as_str(),
        "workspace_id": k.workspace_id, "disabled": k.disabled, "limit": k.limit_usd,
        "limit_reset": k.limit_reset.map(Window::name), "expires_at": k.expires_at,
        "creator_user_id": k.creator_user_id,
    })
}

impl Manage {
    pub async fn create_key(
        &self,
        actor: &Actor,
        input: NewKeyInput,
    ) -> ManageResult<(KeyRow, String)> {
        let this = self.begin().await?;
        let organization_id = actor.target_organization(input.organization_id.as_deref())?;
        let owner = match (actor, &input.owner_user_id) {
            (Actor::Member { user_id, .. }, None) => user_id.clone(),
            (Actor::Member { user_id, .. }, Some(o)) if o == user_id => user_id.clone(),
            (Actor::Member { .. }, Some(_)) => {
                return Err(ManageError::Forbidden(
                    "Members create keys only for themselves".into(),
                ));
            }
            (Actor::Operator, Some(o)) => o.clone(),
            (Actor::Operator, None) => {
                return Err(ManageError::Invalid(
                    "owner_user_id is required for operator requests".into(),
                ));
            }
        };
        if input.kind == KeyKind::Management && !actor.is_operator() {
            return Err(ManageError::Forbidden(
                "Management keys are issued by operators".into(),
            ));
        }
        if this
            .store
            .membership(&organization_id, &owner)
            .await?
            .is_none()
        {
            return Err(ManageError::Invalid(format!(
                "User {owner} is not a member of organization {organization_id}"
            )));
        }
        let workspace = this
            .usable_workspace(&organization_id, &owner, input.workspace.as_deref())
            .await?;
        let now = crate::now_ms();
        if input.expires_at.is_some_and(|t| t <= now) {
            return Err(ManageError::Invalid(
                "expires_at must be in the future".into(),
            ));
        }
        let generated = secrets::generate();
        let key = NewKey {
            hash: generated.hash,
            kind: input.kind,
            name: valid_name("name", &input.name, 256)?,
            label: generated.label,
            organization_id,
            workspace_id: workspace.id,
            creator_user_id: owner,
            disabled: false,
            limit_usd: input
                .limit_usd
                .map(|l| money("limit", l).map(|m| m.to_string()))
                .transpose()?,
            limit_reset: input.limit_reset,
            include_byok_in_limit: input.include_byok_in_limit,
            expires_at: input.expires_at,
            created_at: now,
            updated_at: None,
            rotated_from: None,
            limit_lineage: None,
        };
        this.store.insert_key(&key).await?;
        this.audit(
            actor,
            Some(&key.organization_id),
            "key.create",
            &key.hash,
            None,
            Some(&audit_view(&key)),
        )
        .await?;
        this.commit(Publish::Keys(vec![key.hash.clone()])).await?;
        Ok((key, generated.secret))
    }

    /// Admins (and the operator) list every key of the organization; members their own.
    pub async fn keys(
        &self,
        actor: &Actor,
        filter: &KeyFilter,
        offset: i64,
        limit: i64,
    ) -> ManageResult<Vec<KeyRow>> {
        let organization_id = actor.target_organization(filter.organization_id.as_deref())?;
        if offset < 0 {
            return Err(ManageError::Invalid("offset must not be negative".into()));
        }
        let workspace = match &filter.workspace {
            Some(w) => Some(
                self.store
                    .workspace_by_ref(&organization_id, w)
                    .await?
                    .ok_or_else(|| ManageError::NotFound(format!("Workspace {w} not found")))?
                    .id,
            ),
            None => None,
        };
        let own_only = match actor {
            Actor::Member { user_id, role, .. } if *role != Role::Admin => Some(user_id.as_str()),
            _ => None,
        };
        Ok(self
            .store
            .keys_of_organization(
                &organization_id,
                workspace.as_deref(),
                own_only,
                filter.include_disabled,
                offset,
                limit.clamp(1, 1000),
            )
            .await?)
    }

    /// A key the actor may see: admins any of their organization's, members their own. Anything
    /// else is "not found", so hashes cannot be probed.
    pub async fn key(&self, actor: &Actor, hash: &str) -> ManageResult<KeyRow> {
        let not_found = || ManageError::NotFound(format!("Key {hash} not found"));
        let key = self.store.key(hash).await?.ok_or_else(not_found)?;
        let visible = match actor {
            Actor::Operator => true,
            Actor::Member {
                organization_id,
                user_id,
                role,
                ..
            } => {
                *organization_id == key.organization_id
                    && (*role == Role::Admin || *user_id == key.creator_user_id)
            }
        };
        if visible { Ok(key) } else { Err(not_found()) }
    }

    pub async fn update_key(
        &self,
        actor: &Actor,
        hash: &str,
        update: KeyUpdate,
    ) -> ManageResult<KeyRow> {
        let this = self.begin().await?;
        let before = this.key(actor, hash).await?;
        if let Actor::Member { key_hash, .. } = actor
            && *key_hash == before.hash
            && update.disabled == Some(true)
        {
            return Err(ManageError::Invalid("A key cannot disable itself".into()));
        }
        if !actor.is_admin_of(&before.organization_id) {
            let re_enables = before.disabled && update.disabled == Some(false);
            let loosens_limit = match (&update.limit_usd, &before.limit_usd) {
                (Some(None), Some(_)) => true,
                (Some(Some(new)), Some(old)) => {
                    money("limit", *new)? > super::stored_money("key limit", old)?
                }
                _ => false,
            };
            // A new reset interval counts in a fresh window (a spent key would spend again), and
            // BYOK spend left out of a limit leaves it more room.
            let limited = before.limit_usd.is_some();
            let resets_anew = limited
                && update
                    .limit_reset
                    .is_some_and(|reset| reset != before.limit_reset);
            let drops_byok = limited
                && before.include_byok_in_limit
                && update.include_byok_in_limit == Some(false);
            if re_enables || loosens_limit || resets_anew || drops_byok {
                return Err(ManageError::Forbidden(
                    "Only admins re-enable keys, raise or remove their limits, change when they \
                     reset, or leave BYOK spend out of them"
                        .into(),
                ));
            }
        }
        let workspace_id = match update.workspace.as_deref() {
            Some(w) => Some(
                this.usable_workspace(&before.organization_id, &before.creator_user_id, Some(w))
                    .await?
                    .id,
            ),
            None => None,
        };
        let patch = KeyPatch {
            name: update
                .name
                .as_deref()
                .map(|n| valid_name("name", n, 256))
                .transpose()?,
            disabled: update.disabled,
            limit_usd: update
                .limit_usd
                .map(|l| {
                    l.map(|v| money("limit", v).map(|m| m.to_string()))
                        .transpose()
                })
                .transpose()?,
            limit_reset: update.limit_reset,
            include_byok_in_limit: update.include_byok_in_limit,
            workspace_id,
            expires_at: None,
        };
        let after = this
            .store
            .update_key(hash, &patch, crate::now_ms())
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("Key {hash} not found")))?;
        this.audit(
            actor,
            Some(&after.organization_id),
            "key.update",
            hash,
            Some(&audit_view(&before)),
            Some(&audit_view(&after)),
        )
        .await?;
        this.commit(Publish::Keys(vec![after.hash.clone()])).await?;
        Ok(after)
    }

    pub async fn delete_key(&self, actor: &Actor, hash: &str) -> ManageResult<()> {
        let this = self.begin().await?;
        let before = this.key(actor, hash).await?;
        if let Actor::Member { key_hash, .. } = actor
            && *key_hash == before.hash
        {
            return Err(ManageError::Invalid("A key cannot delete itself".into()));
        }
        // Its guardrail assignment goes with it, and assignments are in the whole snapshot.
        let publish = match this.store.delete_key_counting_assignments(hash).await? {
            None => return Err(ManageError::NotFound(format!("Key {hash} not found"))),
            Some(0) => Publish::Keys(vec![before.hash.clone()]),
            Some(_) => Publish::Snapshot,
        };
        this.audit(
            actor,
            Some(&before.organization_id),
            "key.delete",
            hash,
            Some(&audit_view(&before)),
            None,
        )
        .await?;
        this.commit(publish).await?;
        Ok(())
    }

    /// Issues a new key with the same settings; the old one keeps working for `grace_seconds`
    /// and then expires, so clients can switch over without a failed request.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        hash: &str,
        grace_seconds: u64,
    ) -> ManageResult<(KeyRow, String)> {
        let this = self.begin().await?;
        let old = this.key(actor, hash).await?;
        // Rotation hands out a working secret that acts as the key's owner: only the owner (or
        // the operator) may ask for one, even an admin who can see the key.
        if actor.user_id().is_some_and(|u| u != old.creator_user_id) {
            return Err(ManageError::Forbidden(
                "Only a key's owner can rotate it".into(),
            ));
        }
        if this.store.has_successor(&old.hash).await? {
            return Err(ManageError::Conflict(
                "This key was already rotated; rotate its successor instead".into(),
            ));
        }
        if grace_seconds > MAX_GRACE_SECONDS {
            return Err(ManageError::Invalid(format!(
                "grace_seconds must be at most {MAX_GRACE_SECONDS}"
            )));
        }
        if old.disabled {
            return Err(ManageError::Invalid(
                "A disabled key cannot be rotated".into(),
            ));
        }
        let now = crate::now_ms();
        let generated = secrets::generate();
        let new = NewKey {
            hash: generated.hash,
            label: generated.label,
            created_at: now,
            updated_at: None,
            rotated_from: Some(old.hash.clone()),
            limit_lineage: Some(
                old.limit_lineage
                    .clone()
                    .unwrap_or_else(|| old.hash.clone()),
            ),
            ..old.clone()
        };
        this.store.insert_key(&new).await?;
        // The successor takes over the key's guardrail, as it takes its other settings (an
        // assignment is in the whole snapshot, not in a key delta).
        let mut publish = Publish::Keys(vec![old.hash.clone(), new.hash.clone()]);
        if let Some(guardrail_id) = this.store.key_guardrail(&old.hash).await? {
            publish = Publish::Snapshot;
            this.store
                .assign_keys(
                    &guardrail_id,
                    std::slice::from_ref(&new.hash),
                    actor.user_id(),
                    now,
                )
                .await?;
        }
        let grace_end = now.saturating_add(i64::try_from(grace_seconds * 1000).unwrap_or(i64::MAX));
        let patch = KeyPatch {
            expires_at: Some(grace_end),
            ..KeyPatch::default()
        };
        let old_after = this
            .store
            .update_key(&old.hash, &patch, now)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("Key {hash} not found")))?;
        this.audit(
            actor,
            Some(&new.organization_id),
            "key.rotate",
            &old.hash,
            Some(&audit_view(&old)),
            Some(&json!({ "old": audit_view(&old_after), "new": audit_view(&new) })),
        )
        .await?;
        this.commit(publish).await?;
        Ok((new, generated.secret))
    }

    /// The workspace a key of `owner` may live in: the requested one (id or slug) or the
    /// Default.
    async fn usable_workspace(
        &self,
        organization_id: &str,
        owner: &str,
        requested: Option<&str>,
    ) -> ManageResult<WorkspaceRow> {
        let workspace = match requested {
            Some(w) => self.store.workspace_by_ref(organization_id, w).await?,
            None => self.store.default_workspace(organization_id).await?,
        }
        .ok_or_else(|| {
            ManageError::NotFound(format!(
                "Workspace {} not found",
                requested.unwrap_or("(default)")
            ))
        })?;
        // The key's owner must belong to the workspace, unless the owner is an admin (who may
        // use any of the organization's workspaces).
        let owner_is_admin = self
            .store
            .membership(organization_id, owner)
            .await?
            .is_some_and(|m| m.role == Role::Admin.as_str());
        if !owner_is_admin && !self.store.is_workspace_member(&workspace.id, owner).await? {
            return Err(ManageError::Forbidden(format!(
                "You are not a member of workspace {}",
                workspace.slug
            )));
        }
        Ok(workspace)
    }
}
