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
    pub keys: Arc<KeyIndex>,
    pub organizations: Arc<HashMap<String, Organization>>,
    pub workspaces: Arc<HashMap<String, Workspace>>,
    pub models: Arc<HashMap<String, Arc<Model>>>,
    /// `GET /api/v1/models`, rendered once per snapshot rather than once per request.
    pub models_document: Bytes,
}

/// Keys sorted by their SHA-256, with a radix directory over the digests' leading bits.
///
/// Digests are uniform, so a directory of about n/4 buckets (indexed by the top bits) points
/// at a run of ~4 keys. A lookup reads the directory entry, scans that run's leading 8 bytes in
/// a separate packed array (one cache line), and confirms the full digest on the one candidate:
/// three memory touches whatever the size, no hashing, and about 9 bytes per key of index
/// beside the keys themselves (a hash map would waste its empty buckets).
#[derive(Debug)]
pub struct KeyIndex {
    keys: Vec<ApiKey>,
    /// `leads[i]` is the first 8 bytes (big-endian) of `keys[i].hash`.
    leads: Vec<u64>,
    /// `directory[b]..directory[b + 1]` is the range of keys whose top `bits` bits equal `b`.
    directory: Vec<u32>,
    bits: u32,
}

fn lead(hash: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(head)
}

impl KeyIndex {
    /// Sorts the keys; a duplicate hash is an error, reported with that hash.
    fn new(mut keys: Vec<ApiKey>) -> Result<KeyIndex, [u8; 32]> {
        keys.sort_unstable_by_key(|k| k.hash);
        if let Some(pair) = keys.windows(2).find(|w| w[0].hash == w[1].hash) {
            return Err(pair[0].hash);
        }
        keys.shrink_to_fit();
        let leads: Vec<u64> = keys.iter().map(|k| lead(&k.hash)).collect();
        // About four keys per bucket; at least one bit so the shift below stays in range.
        let bits = (usize::BITS - (keys.len() / 4).leading_zeros()).clamp(1, 31);
        let buckets = 1usize << bits;
        let mut directory = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets as u64 {
            while i < leads.len() && (leads[i] >> (64 - bits)) < b {
                i += 1;
            }
            directory.push(i as u32);
        }
        directory.push(leads.len() as u32);
        Ok(KeyIndex {
            keys,
            leads,
            directory,
            bits,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<&ApiKey> {
        let lead = lead(hash);
        let bucket = (lead >> (64 - self.bits)) as usize;
        let start = *self.directory.get(bucket)? as usize;
        let end = *self.directory.get(bucket + 1)? as usize;
        let run = self.leads.get(start..end)?;
        run.iter()
            .position(|&l| l == lead)
            .map(|i| start + i)
            .and_then(|i| {
                // Equal leads are possible in principle; check every one of them.
                self.keys[i..end]
                    .iter()
                    .take_while(|k| self::lead(&k.hash) == lead)
                    .find(|k| k.hash == *hash)
            })
    }
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

/// Kept small because a snapshot may hold millions: ids shared by many keys (owner,
/// organization, workspace) are interned `Arc<str>`s, and the hash is stored once, as bytes.
#[derive(Debug)]
pub struct ApiKey {
    pub hash: [u8; 32],
    pub kind: KeyKind,
    pub owner_user_id: Arc<str>,
    pub organization_id: Arc<str>,
    pub workspace_id: Arc<str>,
    pub disabled: bool,
    /// Unix milliseconds; `None` never expires.
    pub expires_at_ms: Option<i64>,
    pub limit: Option<Picodollars>,
    pub limit_reset: LimitReset,
    pub include_byok_in_limit: bool,
}

impl ApiKey {
    /// The hash as lowercase hex: the key's id in the API and in usage events.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// Shares one allocation among equal strings while a snapshot is built.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.0.get(&s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s.as_str());
        self.0.insert(s, shared.clone());
        shared
    }
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

        let mut keys = Vec::with_capacity(resources.keys.len());
        let mut interner = Interner::default();
        for k in resources.keys {
            let key = ApiKey::from_proto(k, &mut interner)?;
            match workspaces.get(&*key.workspace_id) {
                None => {
                    return Err(SnapshotError::UnknownWorkspace {
                        hash: key.hash_hex(),
                        workspace: key.workspace_id.to_string(),
                    });
                }
                Some(w) if *w.organization_id != *key.organization_id => {
                    return Err(SnapshotError::WorkspaceOutsideOrganization {
                        hash: key.hash_hex(),
                        workspace: key.workspace_id.to_string(),
                        organization: key.organization_id.to_string(),
                    });
                }
                Some(_) => {}
            }
            keys.push(key);
        }
        let keys = KeyIndex::new(keys).map_err(|hash| SnapshotError::DuplicateKey {
            hash: hex::encode(hash),
        })?;

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

impl ApiKey {
    fn from_proto(k: pb::Key, interner: &mut Interner) -> Result<Self, SnapshotError> {
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
            owner_user_id: interner.intern(k.owner_user_id),
            organization_id: interner.intern(k.organization_id),
            workspace_id: interner.intern(k.workspace_id),
            disabled: k.disabled,
            expires_at_ms: (k.expires_at_ms > 0).then_some(k.expires_at_ms),
            limit,
            limit_reset,
            include_byok_in_limit: k.include_byok_in_limit,
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
        // `host`, `host:port`, `[v6]` or `[v6]:port`; the host keeps its brackets for Host.
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| "unclosed [ in host".to_owned())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err("junk after ]".into()),
            };
            (&authority[..v6.len() + 2], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
                None => (authority, default_port),
            }
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
                host.to_owned()
            } else {
                format!("{host}:{port}")
            },
            chat_path: format!("{path}/chat/completions"),
        })
    }

    /// SNI name: the host without a port or brackets.
    pub fn sni(&self) -> &str {
        let host = match self.host.rsplit_once(':') {
            Some((h, p)) if !self.host.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        };
        host.trim_start_matches('[').trim_end_matches(']')
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
    fn parses_ipv6_base_urls() {
        let u = Upstream::parse("http://[::1]:9000/v1").unwrap();
        assert_eq!(u.addr.unwrap().port(), 9000);
        assert_eq!(u.host, "[::1]:9000");
        assert_eq!(u.sni(), "::1");
        let u = Upstream::parse("http://[::1]/v1").unwrap();
        assert_eq!(u.addr.unwrap().port(), 80);
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.sni(), "::1");
        assert!(Upstream::parse("http://[::1/v1").is_err());
    }

    #[test]
    fn rejects_bad_base_urls() {
        assert!(Upstream::parse("ftp://x/v1").is_err());
        assert!(Upstream::parse("http:///v1").is_err());
        assert!(Upstream::parse("http://127.0.0.1:notaport/v1").is_err());
        assert!(Upstream::parse("http://user@127.0.0.1/v1").is_err());
    }

    fn key(hash: [u8; 32]) -> ApiKey {
        ApiKey {
            hash,
            kind: KeyKind::Inference,
            owner_user_id: Arc::from("u"),
            organization_id: Arc::from("o"),
            workspace_id: Arc::from("w"),
            disabled: false,
            expires_at_ms: None,
            limit: None,
            limit_reset: LimitReset::Never,
            include_byok_in_limit: false,
        }
    }

    #[test]
    fn key_index_finds_every_key_and_nothing_else() {
        use sha2::{Digest, Sha256};
        for n in [0usize, 1, 2, 3, 10, 1000] {
            let hashes: Vec<[u8; 32]> = (0..n)
                .map(|i| Sha256::digest(format!("k{i}").as_bytes()).into())
                .collect();
            let index = KeyIndex::new(hashes.iter().copied().map(key).collect()).unwrap();
            assert_eq!(index.len(), n);
            for h in &hashes {
                assert_eq!(index.get(h).map(|k| k.hash), Some(*h));
            }
            let missing: [u8; 32] = Sha256::digest(b"missing").into();
            assert!(index.get(&missing).is_none());
            assert!(index.get(&[0u8; 32]).is_none());
            assert!(index.get(&[0xffu8; 32]).is_none());
        }
        // Skewed hashes (not digests) still work, just with a longer search.
        let skewed: Vec<[u8; 32]> = (0..100u8)
            .map(|i| {
                let mut h = [0u8; 32];
                h[31] = i;
                h
            })
            .collect();
        let index = KeyIndex::new(skewed.iter().copied().map(key).collect()).unwrap();
        assert!(skewed.iter().all(|h| index.get(h).is_some()));
        assert_eq!(
            KeyIndex::new(vec![key([1; 32]), key([1; 32])]).unwrap_err(),
            [1; 32]
        );
    }

    #[test]
    fn unresolvable_host_makes_the_endpoint_unavailable_not_the_snapshot_invalid() {
        let u = Upstream::parse("https://no-such-host.invalid/v1").unwrap();
        assert!(u.addr.is_none());
    }
}
