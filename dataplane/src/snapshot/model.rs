//! Domain types of the snapshot and their validation.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use bytes::Bytes;
use switchyard_proto::config::v1 as pb;

use super::byok::{ByokError, ByokIndex};
use super::limits::{Limit, LimitScope, MemberGuardrail, Policies, Window, parse_nanos_floor};
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
    /// Guardrails, their assignments and workspace budgets; read through
    /// `Snapshot::guardrails_for` and `Snapshot::limits_for`.
    pub policies: Arc<Policies>,
    /// Organizations' own provider credentials, by workspace.
    pub byok: Arc<ByokIndex>,
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
    /// Every credit ever granted (the ledger's sum), in nanodollars, rounded down.
    pub credits_nanos: u64,
}

/// A guardrail: restrictions on models, providers and data retention, and an optional budget.
/// Empty allowlists allow everything.
#[derive(Debug)]
pub struct Guardrail {
    pub id: Arc<str>,
    pub organization_id: Arc<str>,
    pub workspace_id: Arc<str>,
    pub budget: Option<Budget>,
    /// Whether BYOK spend counts toward the budget.
    pub include_byok: bool,
    pub allowed_models: Box<[Box<str>]>,
    pub ignored_models: Box<[Box<str>]>,
    pub allowed_providers: Box<[Box<str>]>,
    pub ignored_providers: Box<[Box<str>]>,
    pub zdr: Zdr,
    /// The workspace's default guardrail, which governs all of its keys.
    pub is_default: bool,
}

/// A spend cap over a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit_nanos: u64,
    pub window: Window,
}

/// Zero-data-retention enforcement per model author group, as OpenRouter groups them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zdr {
    pub anthropic: bool,
    pub openai: bool,
    pub google: bool,
    pub xai: bool,
    pub other: bool,
}

impl Zdr {
    /// Whether requests for `model_id` must use zero-data-retention endpoints. The group is the
    /// model's author, the part of its id before `/`.
    pub fn applies_to(&self, model_id: &str) -> bool {
        let author = model_id.split_once('/').map_or(model_id, |(a, _)| a);
        match author {
            "anthropic" => self.anthropic,
            "openai" => self.openai,
            "google" => self.google,
            // OpenRouter's author slug for xAI.
            "x-ai" | "xai" => self.xai,
            _ => self.other,
        }
    }

    pub fn any(&self) -> bool {
        self.anthropic || self.openai || self.google || self.xai || self.other
    }
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
    /// `<provider>|<upstream model>`: this endpoint's name in the shared provider health.
    pub health_id: Arc<str>,
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
    #[error("guardrail {guardrail:?}: {reason}")]
    BadGuardrail { guardrail: String, reason: String },
    #[error("guardrail assignment of {holder}: {reason}")]
    BadAssignment { holder: String, reason: String },
    #[error("workspace {workspace:?} budget: {reason}")]
    BadBudget { workspace: String, reason: String },
    #[error(transparent)]
    Byok(#[from] ByokError),
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

        let mut organizations = HashMap::with_capacity(resources.organizations.len());
        for o in resources.organizations {
            let credits_nanos = if o.credits_usd.is_empty() {
                0
            } else {
                parse_nanos_floor(&o.credits_usd).map_err(|source| SnapshotError::Money {
                    what: format!("organization {} credits", o.id),
                    source,
                })?
            };
            organizations.insert(
                o.id.clone(),
                Organization {
                    id: o.id,
                    name: o.name,
                    credits_nanos,
                },
            );
        }

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

        let policies = policies(
            PolicyParts {
                guardrails: resources.guardrails,
                key_guardrails: resources.key_guardrails,
                member_guardrails: resources.member_guardrails,
                workspace_budgets: resources.workspace_budgets,
            },
            &organizations,
            &workspaces,
            &keys,
            &mut interner,
        )?;

        let byok = ByokIndex::build(resources.byok_credentials, &workspaces)?;
        let models_document = crate::catalogue::render_models(&models);
        Ok(Snapshot {
            version: snapshot.version,
            keys: Arc::new(keys),
            organizations: Arc::new(organizations),
            workspaces: Arc::new(workspaces),
            models: Arc::new(models),
            policies: Arc::new(policies),
            byok: Arc::new(byok),
            models_document,
        })
    }
}

impl ApiKey {
    fn from_proto(k: pb::Key, interner: &mut Interner) -> Result<Self, SnapshotError> {
        let Some(hash) = parse_hash(&k.hash) else {
            return Err(SnapshotError::BadKeyHash { hash: k.hash });
        };
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

/// A key hash as 64 lowercase hex digits.
pub(super) fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    let well_formed = text.len() == 64
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(text, &mut hash).is_ok();
    well_formed.then_some(hash)
}

fn window(w: i32) -> Option<Window> {
    match pb::SpendWindow::try_from(w) {
        Ok(pb::SpendWindow::Daily) => Some(Window::Daily),
        Ok(pb::SpendWindow::Weekly) => Some(Window::Weekly),
        Ok(pb::SpendWindow::Monthly) => Some(Window::Monthly),
        Ok(pb::SpendWindow::Lifetime) => Some(Window::Lifetime),
        // Unspecified, or a window this dataplane does not know: guessing would misapply a
        // budget, so the caller refuses the snapshot.
        _ => None,
    }
}

/// Ids from a repeated field, each non-empty and listed once.
fn id_list(
    guardrail: &str,
    field: &str,
    ids: Vec<String>,
) -> Result<Box<[Box<str>]>, SnapshotError> {
    let mut out: Vec<Box<str>> = Vec::with_capacity(ids.len());
    for id in ids {
        if id.is_empty() {
            return Err(SnapshotError::BadGuardrail {
                guardrail: guardrail.to_owned(),
                reason: format!("empty id in {field}"),
            });
        }
        if !out.iter().any(|o| **o == *id) {
            out.push(id.into_boxed_str());
        }
    }
    Ok(out.into_boxed_slice())
}

impl Guardrail {
    fn from_proto(g: pb::Guardrail, interner: &mut Interner) -> Result<Self, SnapshotError> {
        let bad = |reason: String| SnapshotError::BadGuardrail {
            guardrail: g.id.clone(),
            reason,
        };
        // `|` separates the parts of the spend counter ids built from guardrail ids.
        if g.id.is_empty() || g.id.contains('|') {
            return Err(bad("id must be non-empty and free of `|`".into()));
        }
        let budget = if g.limit_usd.is_empty() {
            None
        } else {
            let limit_nanos =
                parse_nanos_floor(&g.limit_usd).map_err(|source| SnapshotError::Money {
                    what: format!("guardrail {} limit", g.id),
                    source,
                })?;
            let window = window(g.reset_interval).ok_or_else(|| {
                bad(format!(
                    "a limit needs a known reset interval (got {})",
                    g.reset_interval
                ))
            })?;
            Some(Budget {
                limit_nanos,
                window,
            })
        };
        Ok(Guardrail {
            allowed_models: id_list(&g.id, "allowed_models", g.allowed_models)?,
            ignored_models: id_list(&g.id, "ignored_models", g.ignored_models)?,
            allowed_providers: id_list(&g.id, "allowed_providers", g.allowed_providers)?,
            ignored_providers: id_list(&g.id, "ignored_providers", g.ignored_providers)?,
            organization_id: interner.intern(g.organization_id),
            workspace_id: interner.intern(g.workspace_id),
            budget,
            include_byok: g.include_byok,
            zdr: Zdr {
                anthropic: g.enforce_zdr_anthropic,
                openai: g.enforce_zdr_openai,
                google: g.enforce_zdr_google,
                xai: g.enforce_zdr_xai,
                other: g.enforce_zdr_other,
            },
            is_default: g.is_default,
            id: interner.intern(g.id),
        })
    }
}

/// The snapshot's guardrail and budget resources, taken out of `Resources` together.
struct PolicyParts {
    guardrails: Vec<pb::Guardrail>,
    key_guardrails: Vec<pb::KeyGuardrails>,
    member_guardrails: Vec<pb::MemberGuardrails>,
    workspace_budgets: Vec<pb::WorkspaceBudget>,
}

/// Validates guardrails, their assignments and workspace budgets against the rest of the
/// snapshot, and indexes them for `Snapshot::guardrails_for` and `Snapshot::limits_for`.
fn policies(
    parts: PolicyParts,
    organizations: &HashMap<String, Organization>,
    workspaces: &HashMap<String, Workspace>,
    keys: &KeyIndex,
    interner: &mut Interner,
) -> Result<Policies, SnapshotError> {
    let mut p = Policies::default();

    for g in parts.guardrails {
        let g = Arc::new(Guardrail::from_proto(g, interner)?);
        let id = g.id.clone();
        let bad = |reason: String| SnapshotError::BadGuardrail {
            guardrail: id.to_string(),
            reason,
        };
        match workspaces.get(&*g.workspace_id) {
            None => return Err(bad(format!("unknown workspace {}", g.workspace_id))),
            Some(w) if *w.organization_id != *g.organization_id => {
                return Err(bad(format!(
                    "workspace {} is not in organization {}",
                    g.workspace_id, g.organization_id
                )));
            }
            Some(_) => {}
        }
        if g.is_default {
            let w = p.workspaces.entry(g.workspace_id.clone()).or_default();
            if w.default_guardrail.is_some() {
                return Err(bad(format!(
                    "workspace {} has a second default guardrail",
                    g.workspace_id
                )));
            }
            w.default_guardrail = Some(g.clone());
        }
        if p.guardrails.insert(g.id.clone(), g.clone()).is_some() {
            return Err(bad("duplicate guardrail id".into()));
        }
    }

    // An assigned guardrail must exist, belong to the holder's organization, and not be a
    // default (which already governs its whole workspace).
    let assignable = |holder: &str, id: &str, organization: &str| {
        let bad = |reason: String| SnapshotError::BadAssignment {
            holder: holder.to_owned(),
            reason,
        };
        match p.guardrails.get(id) {
            None => Err(bad(format!("unknown guardrail {id}"))),
            Some(g) if *g.organization_id != *organization => Err(bad(format!(
                "guardrail {id} is not in organization {organization}"
            ))),
            Some(g) if g.is_default => Err(bad(format!(
                "guardrail {id} is a workspace default and cannot be assigned"
            ))),
            Some(g) => Ok(g.clone()),
        }
    };

    let mut key_guardrails = HashMap::with_capacity(parts.key_guardrails.len());
    for a in parts.key_guardrails {
        let holder = format!("key {}", a.key_hash);
        let bad = |reason: String| SnapshotError::BadAssignment {
            holder: holder.clone(),
            reason,
        };
        let hash = parse_hash(&a.key_hash).ok_or_else(|| bad("malformed key hash".into()))?;
        let key = keys.get(&hash).ok_or_else(|| bad("unknown key".into()))?;
        let mut held: Vec<Arc<Guardrail>> = Vec::with_capacity(a.guardrail_ids.len());
        for id in &a.guardrail_ids {
            let g = assignable(&holder, id, &key.organization_id)?;
            if !held.iter().any(|h| Arc::ptr_eq(h, &g)) {
                held.push(g);
            }
        }
        if key_guardrails
            .insert(hash, held.into_boxed_slice())
            .is_some()
        {
            return Err(bad("listed twice".into()));
        }
    }

    let mut members: HashMap<Arc<str>, Vec<MemberGuardrail>> = HashMap::new();
    for a in parts.member_guardrails {
        let holder = format!("member {} of {}", a.user_id, a.organization_id);
        if a.user_id.is_empty() || !organizations.contains_key(&a.organization_id) {
            return Err(SnapshotError::BadAssignment {
                holder,
                reason: "unknown organization or empty user id".into(),
            });
        }
        let user = interner.intern(a.user_id);
        let held = members.entry(user.clone()).or_default();
        for id in &a.guardrail_ids {
            let g = assignable(&holder, id, &a.organization_id)?;
            if held.iter().any(|m| Arc::ptr_eq(&m.guardrail, &g)) {
                continue;
            }
            let limit = g.budget.map(|b| Limit {
                scope: LimitScope::Member,
                id: Arc::from(format!("{user}|{}", g.id)),
                window: b.window,
                limit_nanos: b.limit_nanos,
                include_byok: g.include_byok,
            });
            held.push(MemberGuardrail {
                guardrail: g,
                limit,
            });
        }
    }

    for b in parts.workspace_budgets {
        let bad = |reason: String| SnapshotError::BadBudget {
            workspace: b.workspace_id.clone(),
            reason,
        };
        if !workspaces.contains_key(&b.workspace_id) {
            return Err(bad("unknown workspace".into()));
        }
        let window =
            window(b.interval).ok_or_else(|| bad(format!("unknown interval {}", b.interval)))?;
        let limit_nanos =
            parse_nanos_floor(&b.limit_usd).map_err(|source| SnapshotError::Money {
                what: format!("workspace {} {} budget", b.workspace_id, window.as_str()),
                source,
            })?;
        let id = interner.intern(b.workspace_id.clone());
        let w = p.workspaces.entry(id.clone()).or_default();
        if w.budgets.iter().any(|l| l.window == window) {
            return Err(bad(format!("two {} budgets", window.as_str())));
        }
        w.budgets.push(Limit {
            scope: LimitScope::Workspace,
            id,
            window,
            limit_nanos,
            include_byok: b.include_byok,
        });
    }

    p.keys = key_guardrails;
    p.members = members;
    Ok(p)
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
    let upstream_model = if e.upstream_model.is_empty() {
        model.to_owned()
    } else {
        e.upstream_model
    };
    Ok(Endpoint {
        health_id: Arc::from(crate::health::endpoint_id(&e.provider_id, &upstream_model)),
        upstream_model,
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
