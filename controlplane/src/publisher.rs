//! Builds configuration snapshots from the store and pushes each new version to every
//! connected dataplane through a `watch` channel (latest value wins; a slow dataplane skips
//! straight to the newest version).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use switchyard_proto::config::v1 as pb;
use tokio::sync::{Mutex, watch};

use crate::keys::{KeyKind, LimitReset};
use crate::manage::byok::ByokSettings;
use crate::store::{ByokRow, GuardrailRow, Store, StoreError};
use crate::vault::Vault;

/// What a dataplane last said about a version.
#[derive(Clone, Debug)]
pub struct AckRecord {
    pub version: u64,
    pub accepted: bool,
    pub reason: String,
}

pub struct Publisher {
    store: Store,
    /// Opens BYOK credentials for the snapshot; the store holds them sealed.
    vault: Arc<Vault>,
    tx: watch::Sender<Arc<pb::Snapshot>>,
    /// Serialises builds so versions increase in the order changes were made.
    last_version: Mutex<u64>,
    /// Publish requests issued, and the highest one a published snapshot is known to cover:
    /// concurrent changes share one rebuild instead of one each.
    requested: AtomicU64,
    covered: AtomicU64,
    acks: StdMutex<HashMap<String, AckRecord>>,
}

impl Publisher {
    pub async fn start(store: Store, vault: Arc<Vault>) -> Result<Arc<Publisher>, StoreError> {
        let version = next_version(0);
        let snapshot = build(&store, &vault, version).await?;
        let (tx, _) = watch::channel(Arc::new(snapshot));
        Ok(Arc::new(Publisher {
            store,
            vault,
            tx,
            last_version: Mutex::new(version),
            requested: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            acks: StdMutex::new(HashMap::new()),
        }))
    }

    /// Called after every committed change; returns once a published snapshot includes it.
    ///
    /// Each call takes a ticket after its change committed. A build notes the highest ticket
    /// issued *before* it reads the store, so every change with a ticket up to that one is in
    /// it; callers whose ticket is already covered return without building again.
    ///
    /// The build runs on its own task, so a caller that goes away (a client disconnect) cannot
    /// leave a committed change unpublished; `retry_unpublished` covers builds that failed.
    pub async fn publish(self: &Arc<Self>) -> Result<u64, StoreError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let this = self.clone();
        match tokio::spawn(async move { this.publish_through(ticket).await }).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Corrupt(format!(
                "snapshot build task failed: {e}"
            ))),
        }
    }

    /// Rebuilds every second while some committed change is not yet in a published snapshot
    /// (a build failed, say, because the database was briefly unavailable).
    pub async fn retry_unpublished(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let requested = self.requested.load(Ordering::SeqCst);
            if self.covered.load(Ordering::SeqCst) < requested
                && let Err(e) = self.publish_through(requested).await
            {
                tracing::error!(error = %e, "snapshot rebuild failed; retrying");
            }
        }
    }

    async fn publish_through(&self, ticket: u64) -> Result<u64, StoreError> {
        let mut last = self.last_version.lock().await;
        if self.covered.load(Ordering::SeqCst) >= ticket {
            return Ok(*last);
        }
        let through = self.requested.load(Ordering::SeqCst);
        let version = next_version(*last);
        let snapshot = build(&self.store, &self.vault, version).await?;
        *last = version;
        self.tx.send_replace(Arc::new(snapshot));
        self.covered.store(through, Ordering::SeqCst);
        tracing::debug!(version, "snapshot published");
        Ok(version)
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<pb::Snapshot>> {
        self.tx.subscribe()
    }

    pub fn current_version(&self) -> u64 {
        self.tx.borrow().version
    }

    pub fn record_ack(&self, dataplane_id: String, record: AckRecord) {
        if let Ok(mut acks) = self.acks.lock() {
            acks.insert(dataplane_id, record);
        }
    }

    pub fn acks(&self) -> HashMap<String, AckRecord> {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Versions are wall-clock milliseconds, bumped past the last one: they keep increasing across
/// control-plane restarts, so dataplanes never mistake a new snapshot for a stale one.
fn next_version(last: u64) -> u64 {
    let now = u64::try_from(crate::now_ms()).unwrap_or(0);
    now.max(last + 1)
}

async fn build(store: &Store, vault: &Vault, version: u64) -> Result<pb::Snapshot, StoreError> {
    let credits: HashMap<String, i64> = store.credits_by_owner().await?.into_iter().collect();
    let organizations = store
        .organizations()
        .await?
        .into_iter()
        .map(|o| pb::Organization {
            credits_usd: credits
                .get(&o.id)
                .map(|&micros| micros_text(micros))
                .unwrap_or_default(),
            id: o.id,
            name: o.name,
        })
        .collect();
    let workspaces = store
        .workspaces()
        .await?
        .into_iter()
        .map(|w| pb::Workspace {
            id: w.id,
            organization_id: w.organization_id,
            name: w.name,
        })
        .collect();
    let keys = store
        .all_keys()
        .await?
        .into_iter()
        .map(|k| pb::Key {
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
            limit_reset: match k.limit_reset {
                None => pb::LimitReset::Never,
                Some(LimitReset::Daily) => pb::LimitReset::Daily,
                Some(LimitReset::Weekly) => pb::LimitReset::Weekly,
                Some(LimitReset::Monthly) => pb::LimitReset::Monthly,
            } as i32,
            include_byok_in_limit: k.include_byok_in_limit,
            label: k.label,
        })
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
            api: pb::ProviderApi::OpenaiChat as i32,
        })
        .collect();
    let guardrails = store
        .all_guardrails()
        .await?
        .into_iter()
        .map(guardrail)
        .collect::<Result<Vec<_>, _>>()?;
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
        .map(|b| {
            Ok(pb::WorkspaceBudget {
                interval: spend_window(&b.reset_interval).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "budget {} has interval {:?}",
                        b.id, b.reset_interval
                    ))
                })? as i32,
                workspace_id: b.workspace_id,
                limit_usd: b.limit_usd,
                include_byok: b.include_byok,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let byok_credentials = store
        .all_byok()
        .await?
        .into_iter()
        .filter(|c| !c.disabled)
        .filter_map(|c| byok_credential(c, vault))
        .collect();
    Ok(pb::Snapshot {
        version,
        created_at_ms: crate::now_ms(),
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
        }),
    })
}

/// An enabled credential, opened. One that cannot be opened (its master key is gone, its
/// settings are damaged) is left out and logged, never sent half-formed: requests then use the
/// gateway's own credential, or none where the organization requires its own.
fn byok_credential(c: ByokRow, vault: &Vault) -> Option<pb::ByokCredential> {
    let settings = match ByokSettings::of(&c) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(id = %c.id, error = %e, "BYOK credential left out of the snapshot");
            return None;
        }
    };
    let api_key = match vault.open(&c.sealed, &c.id) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(id = %c.id, error = %e, "BYOK credential cannot be opened; left out of the snapshot");
            return None;
        }
    };
    Some(pb::ByokCredential {
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
    })
}

fn spend_window(interval: &str) -> Option<pb::SpendWindow> {
    match interval {
        "daily" => Some(pb::SpendWindow::Daily),
        "weekly" => Some(pb::SpendWindow::Weekly),
        "monthly" => Some(pb::SpendWindow::Monthly),
        "lifetime" => Some(pb::SpendWindow::Lifetime),
        _ => None,
    }
}

fn guardrail(g: GuardrailRow) -> Result<pb::Guardrail, StoreError> {
    let reset_interval = match &g.reset_interval {
        None => pb::SpendWindow::Unspecified,
        Some(i) => spend_window(i).ok_or_else(|| {
            StoreError::Corrupt(format!("guardrail {} has reset interval {i:?}", g.id))
        })?,
    };
    Ok(pb::Guardrail {
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
    })
}

/// Micro-dollars as an exact decimal USD string. A negative sum (more transferred out than
/// ever granted) cannot be spent from, so it is sent as zero.
fn micros_text(micros: i64) -> String {
    let micros = micros.max(0);
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn clamp(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_become_exact_decimal_usd() {
        assert_eq!(micros_text(0), "0");
        assert_eq!(micros_text(25_500_000), "25.5");
        assert_eq!(micros_text(1), "0.000001");
        assert_eq!(micros_text(1_000_000_000), "1000");
        assert_eq!(micros_text(-5), "0");
    }
}
