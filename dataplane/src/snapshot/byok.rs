//! BYOK credentials: an organization's own provider keys, scoped to a workspace. Routing sends
//! the requests they apply to with them instead of the gateway's credential, and those requests'
//! spend is BYOK spend (see `stages::route`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchyard_proto::config::v1 as pb;

use super::model::{ApiKey, Workspace, parse_hash};

/// One credential. Deliberately not `Debug`-derived: it holds a raw key.
pub struct ByokCredential {
    pub id: Arc<str>,
    pub provider_id: Box<str>,
    /// `Bearer <key>`, checked to be a valid header value when the snapshot was built.
    pub authorization: Box<str>,
    /// Empty lists restrict nothing.
    pub allowed_models: Box<[Box<str>]>,
    pub allowed_key_hashes: Box<[[u8; 32]]>,
    pub allowed_user_ids: Box<[Box<str>]>,
    pub is_fallback: bool,
    pub is_required: bool,
    pub is_byok_only: bool,
}

impl fmt::Debug for ByokCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByokCredential")
            .field("id", &self.id)
            .field("provider_id", &self.provider_id)
            .field("is_fallback", &self.is_fallback)
            .field("is_required", &self.is_required)
            .field("is_byok_only", &self.is_byok_only)
            .finish_non_exhaustive()
    }
}

impl ByokCredential {
    /// Whether requests for `model` belong to this credential (its `allowed_models`).
    pub fn covers_model(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| **m == *model)
    }

    /// Whether this request may be sent with this credential: its model, its key and the key's
    /// owner are all allowed.
    pub fn applies_to(&self, model: &str, key: &ApiKey) -> bool {
        self.covers_model(model)
            && (self.allowed_key_hashes.is_empty() || self.allowed_key_hashes.contains(&key.hash))
            && (self.allowed_user_ids.is_empty()
                || self
                    .allowed_user_ids
                    .iter()
                    .any(|u| **u == *key.owner_user_id))
    }
}

/// Credentials by workspace, each workspace's ordered by provider, then try order.
#[derive(Debug, Default)]
pub struct ByokIndex(HashMap<Arc<str>, Box<[ByokCredential]>>);

#[derive(Debug, thiserror::Error)]
pub enum ByokError {
    #[error("BYOK credential {id}: unknown workspace {workspace}")]
    UnknownWorkspace { id: String, workspace: String },
    #[error("BYOK credential {id}: workspace {workspace} is not in organization {organization}")]
    WorkspaceOutsideOrganization {
        id: String,
        workspace: String,
        organization: String,
    },
}

impl ByokIndex {
    /// A workspace's credentials; empty for most workspaces, found with one hash lookup.
    pub fn of_workspace(&self, workspace_id: &str) -> &[ByokCredential] {
        self.0.get(workspace_id).map_or(&[], |c| c)
    }

    pub fn build(
        credentials: Vec<pb::ByokCredential>,
        workspaces: &HashMap<String, Workspace>,
    ) -> Result<ByokIndex, ByokError> {
        let mut by_workspace: HashMap<Arc<str>, Vec<(i64, ByokCredential)>> = HashMap::new();
        for c in credentials {
            match workspaces.get(&c.workspace_id) {
                None => {
                    return Err(ByokError::UnknownWorkspace {
                        id: c.id,
                        workspace: c.workspace_id,
                    });
                }
                Some(w) if w.organization_id != c.organization_id => {
                    return Err(ByokError::WorkspaceOutsideOrganization {
                        id: c.id,
                        workspace: c.workspace_id,
                        organization: c.organization_id,
                    });
                }
                Some(_) => {}
            }
            let authorization = format!("Bearer {}", c.api_key);
            // A key that cannot travel in a header (a JSON service-account file, say) is left
            // out rather than failing the whole snapshot; requests use the gateway's credential.
            if c.api_key.is_empty() || http::HeaderValue::from_str(&authorization).is_err() {
                tracing::warn!(id = %c.id, provider = %c.provider_id, "BYOK credential is not usable as a bearer token; ignored");
                continue;
            }
            let allowed_key_hashes: Option<Box<[[u8; 32]]>> =
                c.allowed_key_hashes.iter().map(|h| parse_hash(h)).collect();
            // Dropping a bad hash could turn a restriction into none; drop the credential.
            let Some(allowed_key_hashes) = allowed_key_hashes else {
                tracing::warn!(id = %c.id, "BYOK credential names a malformed key hash; ignored");
                continue;
            };
            let credential = ByokCredential {
                id: Arc::from(c.id.as_str()),
                provider_id: c.provider_id.into(),
                authorization: authorization.into(),
                allowed_models: c.allowed_models.into_iter().map(Into::into).collect(),
                allowed_key_hashes,
                allowed_user_ids: c.allowed_user_ids.into_iter().map(Into::into).collect(),
                is_fallback: c.is_fallback,
                is_required: c.is_required,
                is_byok_only: c.is_byok_only,
            };
            by_workspace
                .entry(Arc::from(c.workspace_id.as_str()))
                .or_default()
                .push((c.sort_order, credential));
        }
        Ok(ByokIndex(
            by_workspace
                .into_iter()
                .map(|(workspace, mut credentials)| {
                    credentials.sort_by(|(a_order, a), (b_order, b)| {
                        (&a.provider_id, a_order, &a.id).cmp(&(&b.provider_id, b_order, &b.id))
                    });
                    (workspace, credentials.into_iter().map(|(_, c)| c).collect())
                })
                .collect(),
        ))
    }
}
