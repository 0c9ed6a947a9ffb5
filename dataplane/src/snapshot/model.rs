//! Domain types of the snapshot and their validation.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use bytes::Bytes;
use switchyard_proto::config::v1 as pb;

use crate::money::{MoneyError, Picodollars};

/// Everything the request path reads, immutable once published. Every part is an `Arc` so a
/// later partial update (say, provider health) can share the rest.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub keys: Arc<HashMap<[u8; 32], Arc<ApiKey>>>,
    pub organizations: Arc<HashMap<String, Organization>>,
    pub workspaces: Arc<HashMap<String, Workspace>>,
    pub models: Arc<HashMap<String, Arc<Model>>>,
    /// `GET /api/v1/models`, rendered once per snapshot rather than once per request.
    pub models_document: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Inference,
    Management,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitReset {
    Never,
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug)]
pub struct ApiKey {
    pub hash: [u8; 32],
    pub hash_hex: String,
    pub kind: KeyKind,
    pub owner_user_id: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub disabled: bool,
    /// Unix milliseconds; `None` never expires.
    pub expires_at_ms: Option<i64>,
    pub limit: Option<Picodollars>,
    pub limit_reset: LimitReset,
    pub include_byok_in_limit: bool,
    pub label: String,
}

#[derive(Debug)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug)]
pub struct Workspace {
    pub id: String,
    pub organization_id: String,
    pub name: String,
}

#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: i64,
    pub context_length: u32,
    /// Ordered by routing preference (lowest priority value first).
    pub endpoints: Vec<Arc<Endpoint>>,
}

/// Per-token (or per-request) prices; `None` means the catalogue gives no price, so any cost
/// that depends on it is unknown rather than zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    pub prompt: Option<Picodollars>,
    pub completion: Option<Picodollars>,
    pub request: Option<Picodollars>,
    pub input_cache_read: Option<Picodollars>,
    pub internal_reasoning: Option<Picodollars>,
}

#[derive(Debug)]
pub struct Endpoint {
    pub provider_id: String,
    /// Display name, as OpenRouter reports `provider`.
    pub provider_name: String,
    pub upstream_model: String,
    pub upstream: Upstream,
    pub prices: Prices,
    pub context_length: u32,
    pub max_output_tokens: u32,
    /// `Authorization` value injected upstream; never the client's.
    pub authorization: Option<String>,
    pub priority: i32,
}

/// A provider's address, resolved and validated before it can reach the request path, because
/// pingora's `HttpPeer::new` would resolve names with blocking DNS and panic on a bad address.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `None` when the host did not resolve: the endpoint stays in the snapshot but is skipped
    /// by routing, so one unresolvable provider cannot make a whole snapshot invalid.
    pub addr: Option<SocketAddr>,
    pub tls: bool,
    /// Host header and TLS SNI.
    pub host: String,
    /// Path of the chat completions call, e.g. `/v1/chat/completions`.
    pub chat_path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot has no resources")]
    MissingResources,
    #[error("key {hash:?}: hash is not 64 lowercase hex digits")]
    BadKeyHash { hash: String },
    #[error("key {hash}: duplicate hash")]
    DuplicateKey { hash: String },
    #[error("key {hash}: kind is unspecified")]
    UnspecifiedKeyKind { hash: String },
    #[error("key {hash}: unknown workspace {workspace}")]
    UnknownWorkspace { hash: String, workspace: String },
    #[error("key {hash}: workspace {workspace} is not in organization {organization}")]
    WorkspaceOutsideOrganization {
        hash: String,
        workspace: String,
        organization: String,
    },
    #[error("workspace {workspace}: unknown organization {organization}")]
    UnknownOrganization {
        workspace: String,
        organization: String,
    },
    #[error("{what}: {source}")]
    Money {
        what: String,
        #[source]
        source: MoneyError,
    },
    #[error("model {model:?}: {reason}")]
    BadModel { model: String, reason: String },
    #[error("model {model}, provider {provider}: base URL {url:?}: {reason}")]
    BadBaseUrl {
        model: String,
        provider: String,
        url: String,
        reason: String,
    },
}

impl TryFrom<pb::Snapshot> for Snapshot {
    type Error = SnapshotError;

    fn try_from(snapshot: pb::Snapshot) -> Result<Self, Self::Error> {
        let resources = snapshot.resources.ok_or(SnapshotError::MissingResources)?;

        let organizations: HashMap<String, Organization> = resources
            .organizations
            .into_iter()
            .map(|o| {
                (
                    o.id.clone(),
                    Organization {
                        id: o.id,
                        name: o.name,
                    },
                )
            })
            .collect();

        let mut workspaces = HashMap::with_capacity(resources.workspaces.len());
        for w in resources.workspaces {
            if !organizations.contains_key(&w.organization_id) {
                return Err(SnapshotError::UnknownOrganization {
                    workspace: w.id,
                    organization: w.organization_id,
                });
            }
            workspaces.insert(
                w.id.clone(),
                Workspace {
                    id: w.id,
                    organization_id: w.organization_id,
                    name: w.name,
                },
            );
        }

        let mut keys = HashMap::with_capacity(resources.keys.len());
        for k in resources.keys {
            let key = ApiKey::try_from(k)?;
            match workspaces.get(&key.workspace_id) {
                None => {
                    return Err(SnapshotError::UnknownWorkspace {
                        hash: key.hash_hex,
                        workspace: key.workspace_id,
                    });
                }
                Some(w) if w.organization_id != key.organization_id => {
                    return Err(SnapshotError::WorkspaceOutsideOrganization {
                        hash: key.hash_hex,
                        workspace: key.workspace_id,
                        organization: key.organization_id,
                    });
                }
                Some(_) => {}
            }
            if keys.contains_key(&key.hash) {
                return Err(SnapshotError::DuplicateKey { hash: key.hash_hex });
            }
            keys.insert(key.hash, Arc::new(key));
        }

        let provider_names: HashMap<String, String> = resources
            .providers
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let mut models = HashMap::with_capacity(resources.models.len());
        for m in resources.models {
            let model = Model::from_proto(m, &provider_names)?;
            if models.contains_key(&model.id) {
                return Err(SnapshotError::BadModel {
                    model: model.id,
                    reason: "duplicate model id".into(),
                });
            }
            models.insert(model.id.clone(), Arc::new(model));
        }

        let models_document = crate::catalogue::render_models(&models);
        Ok(Snapshot {
            version: snapshot.version,
            keys: Arc::new(keys),
            organizations: Arc::new(organizations),
            workspaces: Arc::new(workspaces),
            models: Arc::new(models),
            models_document,
        })
    }
}

impl TryFrom<pb::Key> for ApiKey {
    type Error = SnapshotError;

    fn try_from(k: pb::Key) -> Result<Self, Self::Error> {
        let mut hash = [0u8; 32];
        let well_formed = k.hash.len() == 64
            && k.hash
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && hex::decode_to_slice(&k.hash, &mut hash).is_ok();
        if !well_formed {
            return Err(SnapshotError::BadKeyHash { hash: k.hash });
        }
        let kind = match pb::KeyKind::try_from(k.kind) {
            Ok(pb::KeyKind::Inference) => KeyKind::Inference,
            Ok(pb::KeyKind::Management) => KeyKind::Management,
            _ => return Err(SnapshotError::UnspecifiedKeyKind { hash: k.hash }),
        };
        let limit_reset = match pb::LimitReset::try_from(k.limit_reset) {
            Ok(pb::LimitReset::Daily) => LimitReset::Daily,
            Ok(pb::LimitReset::Weekly) => LimitReset::Weekly,
            Ok(pb::LimitReset::Monthly) => LimitReset::Monthly,
            _ => LimitReset::Never,
        };
        let limit =
            Picodollars::parse_optional(&k.limit_usd).map_err(|source| SnapshotError::Money {
                what: format!("key {} limit", k.hash),
                source,
            })?;
        Ok(ApiKey {
            hash,
            kind,
            owner_user_id: k.owner_user_id,
            organization_id: k.organization_id,
            workspace_id: k.workspace_id,
            disabled: k.disabled,
            expires_at_ms: (k.expires_at_ms > 0).then_some(k.expires_at_ms),
            limit,
            limit_reset,
            include_byok_in_limit: k.include_byok_in_limit,
            label: k.label,
            hash_hex: k.hash,
        })
    }
}

impl Model {
    fn from_proto(
        m: pb::Model,
        provider_names: &HashMap<String, String>,
    ) -> Result<Self, SnapshotError> {
        if m.id.is_empty() {
            return Err(SnapshotError::BadModel {
                model: m.id,
                reason: "empty model id".into(),
            });
        }
        if m.endpoints.is_empty() {
            return Err(SnapshotError::BadModel {
                model: m.id,
                reason: "no provider endpoints".into(),
            });
        }
        let mut endpoints = Vec::with_capacity(m.endpoints.len());
        for e in m.endpoints {
            let name = provider_names.get(&e.provider_id).cloned();
            endpoints.push(Arc::new(endpoint(&m.id, e, name)?));
        }
        endpoints.sort_by_key(|e| e.priority);
        Ok(Model {
            id: m.id,
            name: m.name,
            description: m.description,
            created: m.created,
            context_length: m.context_length,
            endpoints,
        })
    }
}

fn endpoint(
    model: &str,
    e: pb::Endpoint,
    provider_name: Option<String>,
) -> Result<Endpoint, SnapshotError> {
    let upstream = Upstream::parse(&e.base_url).map_err(|reason| SnapshotError::BadBaseUrl {
        model: model.to_owned(),
        provider: e.provider_id.clone(),
        url: e.base_url.clone(),
        reason,
    })?;
    let price = e.price.unwrap_or_default();
    let parse = |field: &str, text: &str| {
        Picodollars::parse_optional(text).map_err(|source| SnapshotError::Money {
            what: format!("model {model}, provider {}: price {field}", e.provider_id),
            source,
        })
    };
    let prices = Prices {
        prompt: parse("prompt", &price.prompt)?,
        completion: parse("completion", &price.completion)?,
        request: parse("request", &price.request)?,
        input_cache_read: parse("input_cache_read", &price.input_cache_read)?,
        internal_reasoning: parse("internal_reasoning", &price.internal_reasoning)?,
    };
    Ok(Endpoint {
        upstream_model: if e.upstream_model.is_empty() {
            model.to_owned()
        } else {
            e.upstream_model
        },
        provider_name: provider_name.unwrap_or_else(|| e.provider_id.clone()),
        provider_id: e.provider_id,
        upstream,
        prices,
        context_length: e.context_length,
        max_output_tokens: e.max_output_tokens,
        authorization: (!e.api_key.is_empty()).then(|| format!("Bearer {}", e.api_key)),
        priority: e.priority,
    })
}

impl Upstream {
    /// Parses an OpenAI-style base URL (`http(s)://host[:port][/prefix]`) and resolves its host.
    /// This runs while a snapshot is prepared, off the request path.
    pub fn parse(base_url: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(rest) = base_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("scheme must be http or https".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("missing or invalid host".into());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?;
                (h, port)
            }
            _ => (authority, default_port),
        };
        let host_only = host.trim_start_matches('[').trim_end_matches(']');
        if host_only.is_empty() {
            return Err("missing host".into());
        }
        let addr = match (host_only, port).to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                tracing::warn!(host = host_only, error = %e, "provider host does not resolve; endpoint unavailable");
                None
            }
        };
        Ok(Upstream {
            addr,
            tls,
            host: if port == default_port {
                host_only.to_owned()
            } else {
                authority.to_owned()
            },
            chat_path: format!("{path}/chat/completions"),
        })
    }

    /// SNI name: the host without a port.
    pub fn sni(&self) -> &str {
        match self.host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let u = Upstream::parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(u.addr.unwrap().port(), 9000);
        assert!(!u.tls);
        assert_eq!(u.host, "127.0.0.1:9000");
        assert_eq!(u.chat_path, "/v1/chat/completions");
        assert_eq!(u.sni(), "127.0.0.1");

        let u = Upstream::parse("http://localhost/").unwrap();
        assert_eq!(u.addr.unwrap().port(), 80);
        assert_eq!(u.chat_path, "/chat/completions");
        assert_eq!(u.host, "localhost");
    }

    #[test]
    fn rejects_bad_base_urls() {
        assert!(Upstream::parse("ftp://x/v1").is_err());
        assert!(Upstream::parse("http:///v1").is_err());
        assert!(Upstream::parse("http://127.0.0.1:notaport/v1").is_err());
        assert!(Upstream::parse("http://user@127.0.0.1/v1").is_err());
    }

    #[test]
    fn unresolvable_host_makes_the_endpoint_unavailable_not_the_snapshot_invalid() {
        let u = Upstream::parse("https://no-such-host.invalid/v1").unwrap();
        assert!(u.addr.is_none());
    }
}
