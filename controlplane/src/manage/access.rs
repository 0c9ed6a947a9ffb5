//! Reads the REST and gRPC handlers need beyond the management resources: who is calling, a
//! generation's record, key usage, the public catalogue, the audit log. They live here, beside
//! the rules on who may see what, so no handler reads the store on its own.

use std::collections::HashMap;

use switchyard_policy::bearer::bearer_str;

use super::{Actor, Manage, ManageError, ManageResult, Role};
use crate::keys;
use crate::store::{AuditRow, CatalogueRows, Generation, KeyRow, KeyUsage, WindowStarts};

impl Manage {
    /// The live key an `Authorization: Bearer` header names. Unknown, disabled and expired keys
    /// get one answer, so a caller cannot probe which.
    pub async fn caller(&self, authorization: Option<&str>, now_ms: i64) -> ManageResult<KeyRow> {
        let secret = authorization
            .and_then(bearer_str)
            .ok_or_else(|| ManageError::Unauthenticated("No auth credentials found".into()))?;
        self.store
            .key(&keys::hash(secret))
            .await?
            .filter(|k| !k.disabled && k.expires_at.is_none_or(|t| t > now_ms))
            .ok_or_else(|| ManageError::Unauthenticated("User not found.".into()))
    }

    /// The actor a key acts as: its user, with the role the user has in the key's organization
    /// today (a demoted or removed member loses the power at once).
    pub async fn actor(&self, key: &KeyRow) -> ManageResult<Actor> {
        let role = self
            .store
            .membership(&key.organization_id, &key.creator_user_id)
            .await?
            .and_then(|m| m.role.parse::<Role>().ok())
            .ok_or_else(|| {
                ManageError::Forbidden(
                    "This key's user is no longer a member of its organization".into(),
                )
            })?;
        Ok(Actor::Member {
            user_id: key.creator_user_id.clone(),
            organization_id: key.organization_id.clone(),
            role,
            key_hash: key.hash.clone(),
        })
    }

    /// A generation the calling key may see, with its provider's display name: members see
    /// their own keys' generations, admins their organization's; anything else is "not found".
    pub async fn generation(
        &self,
        caller: &KeyRow,
        id: &str,
    ) -> ManageResult<(Generation, String)> {
        let not_found = || ManageError::NotFound(format!("Generation {id} not found"));
        let g = self.store.generation(id).await?.ok_or_else(not_found)?;
        if g.organization_id != caller.organization_id {
            return Err(not_found());
        }
        if g.key_hash != caller.hash {
            let is_admin = self
                .store
                .membership(&caller.organization_id, &caller.creator_user_id)
                .await?
                .is_some_and(|m| m.role == Role::Admin.as_str());
            let same_owner = self
                .store
                .key(&g.key_hash)
                .await?
                .is_some_and(|k| k.creator_user_id == caller.creator_user_id);
            if !is_admin && !same_owner {
                return Err(not_found());
            }
        }
        let provider_name = self
            .store
            .catalogue()
            .await?
            .providers
            .into_iter()
            .find(|p| p.id == g.provider_id)
            .map_or_else(|| g.provider_id.clone(), |p| p.name);
        Ok((g, provider_name))
    }

    /// Spend per key from the usage ledger, for keys the caller already may see.
    pub async fn key_usage(
        &self,
        keys: &[KeyRow],
        now_ms: i64,
    ) -> ManageResult<HashMap<String, KeyUsage>> {
        let hashes: Vec<&str> = keys.iter().map(|k| k.hash.as_str()).collect();
        Ok(self
            .store
            .key_usage(&hashes, WindowStarts::at(now_ms))
            .await?)
    }

    /// The model catalogue: public, as on OpenRouter (`GET /models`, `GET /providers`).
    pub async fn catalogue(&self) -> ManageResult<CatalogueRows> {
        Ok(self.store.catalogue().await?)
    }

    /// The audit log: every organization's for the operator, an admin's own organization's.
    pub async fn audit_log(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        limit: i64,
    ) -> ManageResult<Vec<AuditRow>> {
        let organization = match actor {
            Actor::Operator => organization_id.map(str::to_owned),
            Actor::Member { .. } => {
                let own = actor.target_organization(organization_id)?;
                actor.require_admin(&own, "Organization")?;
                Some(own)
            }
        };
        Ok(self.store.audit_log(organization.as_deref(), limit).await?)
    }
}
