//! BYOK credentials: an organization's own provider keys, scoped to a workspace. Routing sends
//! the requests they apply to with them instead of the gateway's credential, and those requests'
//! spend is BYOK spend.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchyard_proto::config::v1 as pb;

use crate::routing::Quota;

use super::Workspace;
use super::keys::{ApiKey, parse_hash};
use super::quarantine::{Quarantine, RecordKind};

/// One credential. Deliberately not `Debug`-derived: it holds a raw key.
pub struct ByokCredential {
    pub id: Arc<str>,
    pub provider_id: Box<str>,
    /// `Bearer <key>`, checked to be a valid header value when the snapshot was built; empty
    /// when the credential is unusable.
    pub authorization: Box<str>,
    /// Whether it may be sent. An unusable credential (its key cannot travel in a header, a
    /// restriction of it is malformed) is never sent, but its `is_required` and `is_byok_only`
    /// still take the gateway's credential away: dropping it must not loosen anything.
    pub usable: bool,
    /// Empty lists restrict nothing.
    pub allowed_models: Box<[Box<str>]>,
    pub allowed_key_hashes: Box<[[u8; 32]]>,
    pub allowed_user_ids: Box<[Box<str>]>,
    pub is_fallback: bool,
    pub is_required: bool,
    pub is_byok_only: bool,
    /// The organization's account's own limits with the provider.
    pub quota: Quota,
}

impl fmt::Debug for ByokCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByokCredential")
            .field("id", &self.id)
            .field("provider_id", &self.provider_id)
            .field("usable", &self.usable)
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

    /// Whether this request may be sent with this credential: it is usable, and its model, its
    /// key and the key's owner are all allowed.
    pub fn applies_to(&self, model: &str, key: &ApiKey) -> bool {
        self.usable
            && self.covers_model(model)
            && (self.allowed_key_hashes.is_empty() || self.allowed_key_hashes.contains(&key.hash))
            && (self.allowed_user_ids.is_empty()
                || self
                    .allowed_user_ids
                    .iter()
                    .any(|u| **u == *key.owner_user_id))
    }

    /// Whether this credential takes the gateway's own credential away for `model`.
    pub fn excludes_gateway_for(&self, model: &str) -> bool {
        self.is_byok_only || (self.is_required && self.covers_model(model))
    }
}

/// Credentials by workspace, each workspace's ordered by provider, then try order.
#[derive(Debug, Default)]
pub struct ByokIndex(HashMap<Arc<str>, Box<[ByokCredential]>>);

impl ByokIndex {
    /// A workspace's credentials; empty for most workspaces, found with one hash lookup.
    pub fn of_workspace(&self, workspace_id: &str) -> &[ByokCredential] {
        self.0.get(workspace_id).map_or(&[], |c| c)
    }

    pub(crate) fn decode(
        credentials: Vec<pb::ByokCredential>,
        workspaces: &HashMap<String, Workspace>,
        q: &mut Quarantine,
    ) -> ByokIndex {
        let mut by_workspace: HashMap<Arc<str>, Vec<(i64, ByokCredential)>> = HashMap::new();
        for c in credentials {
            match workspaces.get(&c.workspace_id) {
                // A credential of no known workspace can apply to no request.
                None => {
                    q.record(
                        RecordKind::ByokCredential,
                        &c.id,
                        format!("unknown workspace {}", c.workspace_id),
                    );
                    continue;
                }
                Some(w) if w.organization_id != c.organization_id => {
                    q.record(
                        RecordKind::ByokCredential,
                        &c.id,
                        format!(
                            "workspace {} is not in organization {}",
                            c.workspace_id, c.organization_id
                        ),
                    );
                    q.block_workspace(
                        Arc::from(c.workspace_id.as_str()),
                        RecordKind::ByokCredential,
                        &c.id,
                    );
                    continue;
                }
                Some(_) => {}
            }
            let authorization = format!("Bearer {}", c.api_key);
            let mut problem = None;
            if c.api_key.is_empty() || http::HeaderValue::from_str(&authorization).is_err() {
                // A JSON service-account file, say: not a bearer token.
                problem = Some("key is not usable as a bearer token");
            }
            let allowed_key_hashes: Option<Box<[[u8; 32]]>> =
                c.allowed_key_hashes.iter().map(|h| parse_hash(h)).collect();
            if allowed_key_hashes.is_none() {
                // Dropping a bad hash could turn a restriction into none.
                problem = Some("allowed_key_hashes names a malformed hash");
            }
            if let Some(reason) = problem {
                q.record(RecordKind::ByokCredential, &c.id, reason);
            }
            let usable = problem.is_none();
            let credential = ByokCredential {
                id: Arc::from(c.id.as_str()),
                provider_id: c.provider_id.into(),
                authorization: if usable {
                    authorization.into()
                } else {
                    Box::from("")
                },
                usable,
                allowed_models: c.allowed_models.into_iter().map(Into::into).collect(),
                allowed_key_hashes: allowed_key_hashes.unwrap_or_default(),
                allowed_user_ids: c.allowed_user_ids.into_iter().map(Into::into).collect(),
                is_fallback: c.is_fallback,
                is_required: c.is_required,
                is_byok_only: c.is_byok_only,
                quota: Quota {
                    requests_per_minute: c.requests_per_minute,
                    tokens_per_minute: c.tokens_per_minute,
                },
            };
            by_workspace
                .entry(Arc::from(c.workspace_id.as_str()))
                .or_default()
                .push((c.sort_order, credential));
        }
        ByokIndex(
            by_workspace
                .into_iter()
                .map(|(workspace, mut credentials)| {
                    credentials.sort_by(|(a_order, a), (b_order, b)| {
                        (&a.provider_id, a_order, &a.id).cmp(&(&b.provider_id, b_order, &b.id))
                    });
                    (workspace, credentials.into_iter().map(|(_, c)| c).collect())
                })
                .collect(),
        )
    }
}
