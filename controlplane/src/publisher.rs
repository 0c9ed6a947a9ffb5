//! Builds configuration snapshots from the store and pushes each new version to every
//! connected dataplane through a `watch` channel (latest value wins; a slow dataplane skips
//! straight to the newest version).
//!
//! Versions come from the store: every change dataplanes must see bumps the configuration
//! version in its own transaction (`Store::bump_config_version`), and a snapshot carries the
//! version it was built at. Publication is driven from what committed: the writer asks for a
//! snapshot covering its version (`publish_through`), and a follower task rebuilds whenever the
//! stored version is ahead of the published one (a change made by another replica, a build that
//! failed, a writer that went away), so a crash at any point converges. No clock is involved: a
//! control plane restarted with its clock set back, or on another host, numbers on from the store.
//!
//! Every snapshot is decoded with the dataplanes' own decoder (`switchyard_policy`) before it is
//! published: records it would set aside are logged and counted here first, and the decoded
//! snapshot answers reconciliation and budget reports with the rules dataplanes enforce.
//!
//! **Key deltas.** A version whose every change since the published one touched only keys (the
//! store records what each version changed, `config_changes`) is published as a `KeyDelta` of
//! those keys, read by hash: its cost does not grow with the number of keys. Anything else, a
//! gap in the records, or another epoch builds the whole snapshot. A published version carries
//! the last whole snapshot and the recent deltas after it; a subscriber gets the whole snapshot
//! once (at connect, or when it fell behind the deltas kept) and then only deltas. The whole
//! snapshot is brought forward in the background every `COMPACT_AFTER` deltas by applying them
//! to it, so a new subscriber never replays many.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use switchyard_policy::Snapshot;
use switchyard_policy::snapshot::{Api, Quarantined, RecordKind, no_resolver};
use switchyard_proto::config::v1 as pb;
use tokio::sync::{Mutex, watch};

use switchyard_policy::{Money, Window};

use crate::health::FleetHealth;
use crate::keys::KeyKind;
use crate::manage::byok::ByokSettings;
use crate::manage::workspaces::WorkspaceSettings;
use crate::store::{ByokRow, ConfigVersion, GuardrailRow, KeyRow, Store, StoreError};
use crate::vault::Vault;

/// How often the follower compares the stored version with the published one.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// Deltas after the whole snapshot that start bringing it forward (in the background).
const COMPACT_AFTER: usize = 256;
/// Deltas kept at most: a subscriber further behind gets the whole snapshot. Never reached while
/// compaction keeps up; if it falls this far behind, the next change builds a whole snapshot.
const MAX_DELTAS: usize = 1024;
/// A change of more keys than this is published as a whole snapshot.
const MAX_DELTA_KEYS: usize = 10_000;
/// Change records older than this many versions are pruned (a replica further behind rebuilds
/// whole).
const KEEP_CHANGES: u64 = 4096;

/// What a dataplane last said about a version.
#[derive(Clone, Debug)]
pub struct AckRecord {
    pub version: u64,
    pub accepted: bool,
    pub reason: String,
    /// Records of that version the dataplane set aside.
    pub quarantined: Vec<Quarantined>,
    /// Unix ms when the ack arrived.
    pub at_ms: i64,
}

/// A published version: what dataplanes receive, and its decoded form.
pub struct Published {
    pub decoded: Arc<Snapshot>,
    /// The last whole snapshot, at this version or an earlier one.
    pub whole: Arc<pb::Snapshot>,
    /// Recent key deltas in order, the last ending at `version`: they hold at least every
    /// version after `whole`'s.
    pub deltas: Arc<VecDeque<Arc<pb::KeyDelta>>>,
    /// `whole` brought forward to `version`, made the first time it is needed.
    whole_now: OnceLock<Arc<pb::Snapshot>>,
}

impl Published {
    pub fn version(&self) -> u64 {
        self.decoded.version
    }

    /// The store that numbered the version.
    pub fn epoch(&self) -> &str {
        &self.decoded.epoch
    }

    fn whole(message: pb::Snapshot, decoded: Snapshot) -> Published {
        Published {
            decoded: Arc::new(decoded),
            whole: Arc::new(message),
            deltas: Arc::default(),
            whole_now: OnceLock::new(),
        }
    }

    /// What a subscriber needs to reach this version, given the version it was last sent:
    /// nothing (it is there, or ahead), the deltas since, or this version whole. May copy every
    /// key (see `whole_now`): call it off the async executor.
    pub fn updates_since(&self, sent: Option<(&str, u64)>) -> Vec<pb::config_update::Update> {
        use pb::config_update::Update;
        if let Some((epoch, version)) = sent
            && epoch == self.epoch()
        {
            if version >= self.version() {
                return Vec::new();
            }
            if let Some(i) = self.deltas.iter().position(|d| d.from_version == version) {
                return self
                    .deltas
                    .range(i..)
                    .map(|d| Update::KeyDelta(pb::KeyDelta::clone(d)))
                    .collect();
            }
        }
        // This very version: a dataplane ahead of the last whole snapshot (reconnecting, or
        // coming from another replica) would refuse an older one.
        vec![Update::Snapshot(Box::new(pb::Snapshot::clone(
            &self.whole_now(),
        )))]
    }

    /// This version as one whole snapshot: the last whole one with the deltas after it applied,
    /// made once per version (a copy of every key) and shared by every subscriber that needs it.
    pub fn whole_now(&self) -> Arc<pb::Snapshot> {
        if self
            .deltas
            .back()
            .is_none_or(|d| d.version <= self.whole.version)
        {
            return self.whole.clone();
        }
        self.whole_now
            .get_or_init(|| {
                let mut message = pb::Snapshot::clone(&self.whole);
                let after: Vec<&pb::KeyDelta> = self
                    .deltas
                    .iter()
                    .filter(|d| d.version > message.version)
                    .map(|d| &**d)
                    .collect();
                apply_deltas(&mut message, &after);
                Arc::new(message)
            })
            .clone()
    }

    /// `whole_now`, owned: for subscribers that know no deltas, and tests.
    pub fn as_whole(&self) -> pb::Snapshot {
        pb::Snapshot::clone(&self.whole_now())
    }
}

/// Applies key deltas, in order, to a whole snapshot message.
fn apply_deltas(message: &mut pb::Snapshot, deltas: &[&pb::KeyDelta]) {
    let Some(last) = deltas.last() else {
        return;
    };
    // The last state of every key touched: one pass over the keys, whatever the deltas' count.
    let mut latest: HashMap<&str, Option<&pb::Key>> = HashMap::new();
    for d in deltas {
        for hash in &d.removed {
            latest.insert(hash, None);
        }
        for k in &d.upserted {
            latest.insert(&k.hash, Some(k));
        }
    }
    let resources = message.resources.get_or_insert_default();
    resources
        .keys
        .retain(|k| !latest.contains_key(k.hash.as_str()));
    resources
        .keys
        .extend(latest.values().flatten().map(|k| pb::Key::clone(k)));
    message.version = last.version;
    message.created_at_ms = last.created_at_ms;
}

/// Counts for `/metrics`.
#[derive(Default)]
pub struct PublisherMetrics {
    pub builds: AtomicU64,
    pub build_failures: AtomicU64,
    pub acks_accepted: AtomicU64,
    pub acks_rejected: AtomicU64,
    /// Versions published as a key delta (`builds` counts whole snapshots).
    pub deltas: AtomicU64,
    pub compactions: AtomicU64,
}

pub struct Publisher {
    store: Store,
    /// Opens BYOK credentials for the snapshot; the store holds them sealed.
    vault: Arc<Vault>,
    spend_counters_marked: bool,
    tx: watch::Sender<Arc<Published>>,
    /// One build at a time per control plane.
    building: Mutex<()>,
    acks: StdMutex<HashMap<String, AckRecord>>,
    pub metrics: PublisherMetrics,
    /// The fleet's provider health, streamed beside the snapshots.
    pub health: Arc<FleetHealth>,
    /// The newest whole snapshot brought forward by compaction, for the next version to carry.
    compacted: StdMutex<Option<Arc<pb::Snapshot>>>,
    compacting: Arc<AtomicBool>,
}

impl Publisher {
    pub async fn start(store: Store, vault: Arc<Vault>) -> Result<Arc<Publisher>, StoreError> {
        Self::start_with(store, vault, false).await
    }

    /// `spend_counters_marked`: this control plane rebuilds the Redis spend counters and marks
    /// them (`reconcile`), so dataplanes admit only on marked counters.
    pub async fn start_with(
        store: Store,
        vault: Arc<Vault>,
        spend_counters_marked: bool,
    ) -> Result<Arc<Publisher>, StoreError> {
        let first = build(&store, &vault, spend_counters_marked).await?;
        let (tx, _) = watch::channel(Arc::new(first));
        Ok(Arc::new(Publisher {
            store,
            vault,
            spend_counters_marked,
            tx,
            building: Mutex::new(()),
            acks: StdMutex::new(HashMap::new()),
            metrics: PublisherMetrics::default(),
            health: Arc::new(FleetHealth::default()),
            compacted: StdMutex::new(None),
            compacting: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// Returns once a published snapshot includes configuration version `version` (one a write
    /// committed): at once if one does, else after building one. The build runs on its own task,
    /// so a caller that goes away cannot leave it half done (the follower would finish it).
    pub async fn publish_through(self: &Arc<Self>, version: u64) -> Result<u64, StoreError> {
        if self.current_version() >= version {
            return Ok(self.current_version());
        }
        let this = self.clone();
        match tokio::spawn(async move { this.rebuild_if_behind(version).await }).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Corrupt(format!(
                "snapshot build task failed: {e}"
            ))),
        }
    }

    /// Follows the store for as long as the process runs: whenever the stored configuration is
    /// ahead of the published one (another replica's change, a failed build), rebuilds.
    pub async fn follow(self: Arc<Self>) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let stored = match self.store.config_version().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the configuration version");
                    continue;
                }
            };
            if self.is_behind(&stored)
                && let Err(e) = self.rebuild_if_behind(stored.version).await
            {
                tracing::error!(error = %e, "snapshot rebuild failed; retrying");
            }
        }
    }

    fn is_behind(&self, stored: &ConfigVersion) -> bool {
        let current = self.tx.borrow();
        current.version() < stored.version || current.epoch() != stored.epoch
    }

    async fn rebuild_if_behind(self: &Arc<Self>, version: u64) -> Result<u64, StoreError> {
        let _building = self.building.lock().await;
        if self.current_version() >= version {
            return Ok(self.current_version());
        }
        let current = self.tx.borrow().clone();
        let built = match self.delta(&current).await {
            Ok(Some(published)) => {
                self.metrics.deltas.fetch_add(1, Ordering::Relaxed);
                Ok(published)
            }
            Ok(None) => build(&self.store, &self.vault, self.spend_counters_marked)
                .await
                .inspect(|_| {
                    self.metrics.builds.fetch_add(1, Ordering::Relaxed);
                }),
            Err(e) => Err(e),
        };
        match built {
            Ok(published) => {
                let version = published.version();
                let whole_version = published.whole.version;
                let since_whole = published
                    .deltas
                    .iter()
                    .filter(|d| d.version > whole_version)
                    .count();
                self.tx.send_replace(Arc::new(published));
                tracing::debug!(version, "snapshot published");
                if since_whole >= COMPACT_AFTER {
                    self.compact();
                }
                if version / 256 > current.version() / 256
                    && let Err(e) = self
                        .store
                        .prune_changes(version.saturating_sub(KEEP_CHANGES))
                        .await
                {
                    tracing::warn!(error = %e, "cannot prune configuration change records");
                }
                Ok(version)
            }
            Err(e) => {
                self.metrics.build_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The stored version as a key delta over `current`, when every change since touched only
    /// keys; `None` when the whole snapshot must be built.
    async fn delta(&self, current: &Published) -> Result<Option<Published>, StoreError> {
        let stored = self.store.config_version().await?;
        if stored.epoch != current.epoch() || stored.version <= current.version() {
            return Ok(None);
        }
        let Some(hashes) = self
            .store
            .keys_changed_between(current.version(), stored.version)
            .await?
        else {
            return Ok(None);
        };
        if hashes.len() > MAX_DELTA_KEYS {
            return Ok(None);
        }
        let mut upserted = Vec::with_capacity(hashes.len());
        let mut removed = Vec::new();
        for hash in &hashes {
            match self.store.key(hash).await? {
                Some(row) => upserted.push(key_message(row)),
                None => removed.push(hash.clone()),
            }
        }
        let delta = pb::KeyDelta {
            epoch: stored.epoch,
            from_version: current.version(),
            version: stored.version,
            created_at_ms: crate::now_ms(),
            upserted,
            removed,
        };
        let decoded = match current.decoded.apply_key_delta(delta.clone()) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(error = %e, "key delta not applicable; building the whole snapshot");
                return Ok(None);
            }
        };
        log_set_aside(&decoded, stored.version, |id| hashes.contains(id));
        let mut whole = current.whole.clone();
        if let Ok(mut compacted) = self.compacted.lock()
            && let Some(c) = compacted.take()
            && c.epoch == whole.epoch
            && c.version > whole.version
        {
            whole = c;
        }
        let mut deltas = VecDeque::clone(&current.deltas);
        deltas.push_back(Arc::new(delta));
        // Older deltas are dropped first, never one after the whole snapshot.
        while deltas.len() > MAX_DELTAS {
            match deltas.front() {
                Some(d) if d.version <= whole.version => {
                    deltas.pop_front();
                }
                // Compaction has not kept up: the whole snapshot, built afresh, replaces all.
                _ => return Ok(None),
            }
        }
        Ok(Some(Published {
            decoded: Arc::new(decoded),
            whole,
            deltas: Arc::new(deltas),
            whole_now: OnceLock::new(),
        }))
    }

    /// Brings the whole snapshot forward over the deltas after it, on a blocking thread (it
    /// copies every key); the next version published carries it.
    fn compact(self: &Arc<Self>) {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Lets the next compaction start however this one ends.
        struct Done(Arc<AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let done = Done(self.compacting.clone());
        let current = self.tx.borrow().clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _done = done;
            let message = current.whole_now();
            if let Ok(mut compacted) = this.compacted.lock() {
                *compacted = Some(message);
            }
            this.metrics.compactions.fetch_add(1, Ordering::Relaxed);
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    pub fn current_version(&self) -> u64 {
        self.tx.borrow().version()
    }

    /// The snapshot last published, decoded as dataplanes decode it.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().decoded.clone()
    }

    pub fn record_ack(&self, dataplane_id: String, record: AckRecord) {
        let counter = if record.accepted {
            &self.metrics.acks_accepted
        } else {
            &self.metrics.acks_rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut acks) = self.acks.lock() {
            acks.insert(dataplane_id, record);
        }
    }

    pub fn acks(&self) -> HashMap<String, AckRecord> {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Builds the snapshot of the store's current configuration version, and decodes it as every
/// dataplane will.
async fn build(
    store: &Store,
    vault: &Vault,
    spend_counters_marked: bool,
) -> Result<Published, StoreError> {
    // Read first: everything committed up to this version is in what follows (a later commit
    // may be too; the follower then publishes again under its number).
    let ConfigVersion { version, epoch } = store.config_version().await?;
    let mut message = snapshot(store, vault, version, epoch).await?;
    message.spend_counters_marked = spend_counters_marked;
    let copy = message.clone();
    let decoded = tokio::task::spawn_blocking(move || Snapshot::decode(copy, &no_resolver))
        .await
        .map_err(|e| StoreError::Corrupt(format!("snapshot decoding failed: {e}")))?
        .map_err(|e| StoreError::Corrupt(format!("built snapshot: {e}")))?;
    log_set_aside(&decoded, version, |_| true);
    Ok(Published::whole(message, decoded))
}

/// The API refuses what would fail here; a record that still does (an older row, a bug) is set
/// aside by every dataplane, and what depends on it is refused. `of` picks the records to log
/// by id (a delta logs only its own keys').
fn log_set_aside(decoded: &Snapshot, version: u64, of: impl Fn(&str) -> bool) {
    for record in decoded.quarantine.records().iter().filter(|r| of(&r.id)) {
        tracing::error!(version, %record, "snapshot record will be set aside by dataplanes");
    }
}

/// A quarantined record as a dataplane reported it.
pub fn quarantined(record: pb::QuarantinedRecord) -> Option<Quarantined> {
    Some(Quarantined {
        kind: RecordKind::from_label(&record.kind)?,
        id: record.id,
        reason: record.reason,
    })
}

async fn snapshot(
    store: &Store,
    vault: &Vault,
    version: u64,
    epoch: String,
) -> Result<pb::Snapshot, StoreError> {
    let credits: HashMap<String, i64> = store.credits_by_owner().await?.into_iter().collect();
    let organizations = store
        .organizations()
        .await?
        .into_iter()
        .map(|o| pb::Organization {
            credits_usd: credits
                .get(&o.id)
                // A negative sum (more transferred out than ever granted) cannot be spent from.
                .map(|&micros| Money::from_micros(u64::try_from(micros).unwrap_or(0)).to_string())
                .unwrap_or_default(),
            id: o.id,
            name: o.name,
            enforce_zdr: o.enforce_zdr,
            deny_data_collection: o.deny_data_collection,
        })
        .collect();
    let mut workspaces = Vec::new();
    for w in store.workspaces().await? {
        // Settings the API wrote are readable; a damaged row loses only its routing defaults
        // (logged), never its place in the snapshot.
        let settings = WorkspaceSettings::of(&w).unwrap_or_else(|e| {
            tracing::error!(workspace = %w.id, error = %e, "workspace routing defaults left out");
            WorkspaceSettings::default()
        });
        workspaces.push(pb::Workspace {
            id: w.id,
            organization_id: w.organization_id,
            name: w.name,
            default_provider_sort: settings.default_provider_sort.unwrap_or_default(),
            default_text_model: settings.default_text_model.unwrap_or_default(),
        });
    }
    let presets = store
        .active_presets()
        .await?
        .into_iter()
        .map(|(p, v)| pb::Preset {
            id: p.id,
            organization_id: p.organization_id,
            workspace_id: p.workspace_id,
            slug: p.slug,
            version_id: v.id,
            version: u64::try_from(v.version).unwrap_or(0),
            config_json: serde_json::Value::Object(v.config).to_string(),
            system_prompt: v.system_prompt.unwrap_or_default(),
        })
        .collect();
    let keys = store
        .all_keys()
        .await?
        .into_iter()
        .map(key_message)
        .collect();
    let catalogue = store.catalogue().await?;
    let providers: HashMap<&str, _> = catalogue
        .providers
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let mut models = Vec::with_capacity(catalogue.models.len());
    for m in &catalogue.models {
        let mut endpoints = Vec::with_capacity(m.endpoints.len());
        for e in &m.endpoints {
            let provider = providers.get(e.provider_id.as_str()).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "model {} names unknown provider {}",
                    m.id, e.provider_id
                ))
            })?;
            let api_key = if provider.api_key_env.is_empty() {
                String::new()
            } else {
                std::env::var(&provider.api_key_env).unwrap_or_default()
            };
            endpoints.push(pb::Endpoint {
                provider_id: e.provider_id.clone(),
                base_url: provider.base_url.clone(),
                upstream_model: e.upstream_model.clone(),
                price: Some(pb::Price {
                    prompt: e.price_prompt.clone(),
                    completion: e.price_completion.clone(),
                    request: e.price_request.clone(),
                    image: e.price_image.clone(),
                    input_cache_read: e.price_input_cache_read.clone(),
                    input_cache_write: e.price_input_cache_write.clone(),
                    internal_reasoning: e.price_internal_reasoning.clone(),
                }),
                context_length: clamp(e.context_length),
                max_output_tokens: clamp(e.max_output_tokens),
                api_key,
                priority: i32::try_from(e.priority).unwrap_or(i32::MAX),
                tag: e.traits.tag.clone().unwrap_or_default(),
                quantization: e.traits.quantization.clone().unwrap_or_default(),
                supported_parameters: e.traits.supported_parameters.clone().unwrap_or_default(),
                trains_on_prompts: e.traits.trains_on_prompts,
                retains_prompts: e.traits.retains_prompts,
                zero_data_retention: e.traits.zero_data_retention,
                max_prompt_tokens: clamp(e.traits.max_prompt_tokens.unwrap_or(0)),
                implicit_caching: e.traits.implicit_caching,
            });
        }
        models.push(pb::Model {
            id: m.id.clone(),
            name: m.name.clone(),
            context_length: clamp(m.context_length),
            endpoints,
            created: m.created,
            description: m.description.clone(),
        });
    }
    let providers = catalogue
        .providers
        .iter()
        .map(|p| pb::Provider {
            id: p.id.clone(),
            name: p.name.clone(),
            api: match Api::parse(&p.api) {
                Some(Api::OpenAiChat) => pb::ProviderApi::OpenaiChat as i32,
                Some(Api::AnthropicMessages) => pb::ProviderApi::AnthropicMessages as i32,
                Some(Api::Gemini) => pb::ProviderApi::Gemini as i32,
                Some(Api::AzureOpenAi) => pb::ProviderApi::AzureOpenai as i32,
                // The catalogue is validated before it is stored; a row written otherwise gets
                // a value no dataplane knows, so its endpoints are set aside, not misread.
                None => -1,
            },
            requests_per_minute: u32::try_from(p.requests_per_minute).unwrap_or(0),
            tokens_per_minute: u64::try_from(p.tokens_per_minute).unwrap_or(0),
        })
        .collect();
    let guardrails = store
        .all_guardrails()
        .await?
        .into_iter()
        .map(guardrail)
        .collect();
    // A key holds one guardrail today; the message carries a list so that it may hold more.
    let mut key_guardrails: Vec<pb::KeyGuardrails> = Vec::new();
    for (key_hash, guardrail_id) in store.all_key_assignments().await? {
        match key_guardrails.last_mut() {
            Some(last) if last.key_hash == key_hash => last.guardrail_ids.push(guardrail_id),
            _ => key_guardrails.push(pb::KeyGuardrails {
                key_hash,
                guardrail_ids: vec![guardrail_id],
            }),
        }
    }
    // Rows come ordered by organization and user, so each member's are adjacent.
    let mut member_guardrails: Vec<pb::MemberGuardrails> = Vec::new();
    for a in store.all_member_assignments().await? {
        match member_guardrails.last_mut() {
            Some(last)
                if last.organization_id == a.organization_id && last.user_id == a.user_id =>
            {
                last.guardrail_ids.push(a.guardrail_id);
            }
            _ => member_guardrails.push(pb::MemberGuardrails {
                organization_id: a.organization_id,
                user_id: a.user_id,
                guardrail_ids: vec![a.guardrail_id],
            }),
        }
    }
    let workspace_budgets = store
        .all_workspace_budgets()
        .await?
        .into_iter()
        .map(|b| pb::WorkspaceBudget {
            // An unknown interval is sent unspecified: dataplanes set the budget aside and
            // block its workspace, as they would any invalid record.
            interval: Window::from_name(&b.reset_interval)
                .map_or(pb::SpendWindow::Unspecified, Window::to_proto)
                as i32,
            workspace_id: b.workspace_id,
            limit_usd: b.limit_usd,
            include_byok: b.include_byok,
        })
        .collect();
    let byok_credentials = store
        .all_byok()
        .await?
        .into_iter()
        .filter(|c| !c.disabled)
        .map(|c| byok_credential(c, vault))
        .collect();
    Ok(pb::Snapshot {
        version,
        epoch,
        created_at_ms: crate::now_ms(),
        spend_counters_marked: false,
        resources: Some(pb::Resources {
            keys,
            organizations,
            workspaces,
            models,
            providers,
            guardrails,
            key_guardrails,
            member_guardrails,
            workspace_budgets,
            byok_credentials,
            presets,
        }),
    })
}

/// A key as the snapshot (or a key delta) carries it.
fn key_message(k: KeyRow) -> pb::Key {
    pb::Key {
        hash: k.hash,
        kind: match k.kind {
            KeyKind::Inference => pb::KeyKind::Inference,
            KeyKind::Management => pb::KeyKind::Management,
        } as i32,
        owner_user_id: k.creator_user_id,
        organization_id: k.organization_id,
        workspace_id: k.workspace_id,
        disabled: k.disabled,
        expires_at_ms: k.expires_at.unwrap_or(0),
        limit_usd: k.limit_usd.unwrap_or_default(),
        limit_reset: k.limit_reset.unwrap_or(Window::Lifetime).to_limit_reset() as i32,
        include_byok_in_limit: k.include_byok_in_limit,
        label: k.label,
        limit_lineage: k.limit_lineage.unwrap_or_default(),
    }
}

/// An enabled credential, opened. One that cannot be opened (its master key is gone) or whose
/// settings are damaged is still sent, with no key, so that dataplanes never send it but keep
/// what it forbids: dropping it would put the workspace's traffic on the gateway's key and
/// credits. Damaged settings forbid the most (`is_byok_only`).
fn byok_credential(c: ByokRow, vault: &Vault) -> pb::ByokCredential {
    let settings = ByokSettings::of(&c).unwrap_or_else(|e| {
        tracing::error!(id = %c.id, error = %e, "BYOK credential settings damaged; sent unusable, as byok-only");
        ByokSettings {
            is_byok_only: true,
            ..ByokSettings::default()
        }
    });
    let api_key = vault.open(&c.sealed, &c.id).unwrap_or_else(|e| {
        tracing::error!(id = %c.id, error = %e, "BYOK credential cannot be opened; sent unusable");
        String::new()
    });
    pb::ByokCredential {
        id: c.id,
        organization_id: c.organization_id,
        workspace_id: c.workspace_id,
        provider_id: c.provider,
        api_key,
        sort_order: c.sort_order,
        allowed_models: settings.allowed_models.unwrap_or_default(),
        allowed_key_hashes: settings.allowed_api_key_hashes.unwrap_or_default(),
        allowed_user_ids: settings.allowed_user_ids.unwrap_or_default(),
        is_fallback: settings.is_fallback,
        is_required: settings.is_required,
        is_byok_only: settings.is_byok_only,
        requests_per_minute: settings.requests_per_minute.unwrap_or(0),
        tokens_per_minute: settings.tokens_per_minute.unwrap_or(0),
    }
}

/// A guardrail as the snapshot carries it. An unknown reset interval is sent unspecified, which
/// dataplanes refuse for a guardrail with a limit (setting it aside, blocking its workspace).
fn guardrail(g: GuardrailRow) -> pb::Guardrail {
    let reset_interval = g
        .reset_interval
        .as_deref()
        .and_then(Window::from_name)
        .map_or(pb::SpendWindow::Unspecified, Window::to_proto);
    pb::Guardrail {
        id: g.id,
        organization_id: g.organization_id,
        workspace_id: g.workspace_id,
        limit_usd: g.limit_usd.unwrap_or_default(),
        reset_interval: reset_interval as i32,
        include_byok: g.include_byok,
        allowed_models: g.allowed_models.unwrap_or_default(),
        ignored_models: g.ignored_models.unwrap_or_default(),
        allowed_providers: g.allowed_providers.unwrap_or_default(),
        ignored_providers: g.ignored_providers.unwrap_or_default(),
        enforce_zdr_anthropic: g.zdr.anthropic.unwrap_or(false),
        enforce_zdr_openai: g.zdr.openai.unwrap_or(false),
        enforce_zdr_google: g.zdr.google.unwrap_or(false),
        enforce_zdr_xai: g.zdr.xai.unwrap_or(false),
        enforce_zdr_other: g.zdr.other.unwrap_or(false),
        is_default: g.is_default,
    }
}

fn clamp(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(vault: &Vault, settings: serde_json::Value) -> ByokRow {
        let serde_json::Value::Object(settings) = settings else {
            panic!("settings are an object");
        };
        ByokRow {
            id: "c1".into(),
            organization_id: "o1".into(),
            workspace_id: "w1".into(),
            provider: "openai".into(),
            name: None,
            label: "…abcd".into(),
            sealed: vault.seal("sk-abcd", "c1").unwrap(),
            settings,
            disabled: false,
            sort_order: 0,
            created_at: 0,
            updated_at: None,
        }
    }

    #[test]
    fn a_credential_that_cannot_be_opened_keeps_its_restrictions_without_a_key() {
        let sealed_by = Vault::new(&Vault::generate_master_key(), &[]).unwrap();
        let other = Vault::new(&Vault::generate_master_key(), &[]).unwrap();
        let c = byok_credential(row(&sealed_by, json!({ "is_required": true })), &other);
        assert_eq!(c.api_key, "");
        assert!(c.is_required);
        // The same record opened by its own vault carries the key.
        let c = byok_credential(row(&sealed_by, json!({ "is_required": true })), &sealed_by);
        assert_eq!(c.api_key, "sk-abcd");
    }

    #[test]
    fn damaged_settings_forbid_the_gateways_key() {
        let vault = Vault::new(&Vault::generate_master_key(), &[]).unwrap();
        let c = byok_credential(row(&vault, json!({ "is_byok_only": "yes" })), &vault);
        assert!(c.is_byok_only);
        assert!(c.allowed_models.is_empty());
    }
}
