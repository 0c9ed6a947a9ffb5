//! The gRPC side of the control plane: snapshot streams to dataplanes and usage ingest.

use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};

use futures::Stream;
use switchyard_proto::config::v1 as config;
use switchyard_proto::config::v1::config_service_server::ConfigService;
use switchyard_proto::usage::v1 as usage;
use switchyard_proto::usage::v1::usage_service_server::UsageService;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::ingest::Ingest;
use crate::publisher::{AckRecord, Publisher, quarantined};
use crate::store::{Generation, Store};

pub struct ConfigApi {
    pub publisher: Arc<Publisher>,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<config::Snapshot, Status>> + Send>>;
type UpdateStream = Pin<Box<dyn Stream<Item = Result<config::ConfigUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigService for ConfigApi {
    type WatchStream = SnapshotStream;
    type SubscribeStream = UpdateStream;

    async fn watch(
        &self,
        request: Request<config::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        tracing::info!(
            dataplane = %request.dataplane_id,
            known_version = request.known_version,
            "dataplane connected"
        );
        // WatchStream yields the current snapshot at once, then every newer one, whole: this
        // stream's dataplanes know no deltas. Made off the executor (it may copy every key).
        let stream = WatchStream::new(self.publisher.subscribe())
            .then(|published| tokio::task::spawn_blocking(move || published.as_whole()))
            .filter_map(|whole| whole.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn subscribe(
        &self,
        request: Request<config::WatchRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        use config::config_update::Update;
        let request = request.into_inner();
        tracing::info!(
            dataplane = %request.dataplane_id,
            known_version = request.known_version,
            known_epoch = %request.known_epoch,
            "dataplane subscribed"
        );
        // Each watch yields its current value at once, then every newer one; a health view
        // never waits behind a snapshot build, nor a snapshot behind health. Snapshots go whole
        // at first (unless the dataplane serves a version the deltas kept start from), then as
        // the key deltas since the version last sent, or whole where deltas cannot bridge.
        let sent = Arc::new(StdMutex::new(
            (!request.known_epoch.is_empty())
                .then(|| (request.known_epoch.clone(), request.known_version)),
        ));
        let snapshots = futures::StreamExt::flatten(
            WatchStream::new(self.publisher.subscribe()).then(move |published| {
                let sent = sent.clone();
                async move {
                    let since = sent.lock().ok().and_then(|s| s.clone());
                    let updates = tokio::task::spawn_blocking(move || {
                        let updates =
                            published.updates_since(since.as_ref().map(|(e, v)| (e.as_str(), *v)));
                        // Nothing sent: the dataplane is there or ahead, and stays the base.
                        let now = if updates.is_empty() {
                            since
                        } else {
                            Some((published.epoch().to_owned(), published.version()))
                        };
                        (updates, now)
                    })
                    .await;
                    // A failed task sends nothing and forgets the base: the next version goes
                    // whole.
                    let (updates, now) = updates.unwrap_or_default();
                    if let Ok(mut sent) = sent.lock() {
                        *sent = now;
                    }
                    tokio_stream::iter(updates.into_iter().map(|update| {
                        Ok(config::ConfigUpdate {
                            update: Some(update),
                        })
                    }))
                }
            }),
        );
        let health = WatchStream::new(self.publisher.health.subscribe()).map(|view| {
            Ok(config::ConfigUpdate {
                update: Some(Update::Health(config::HealthView::clone(&view))),
            })
        });
        Ok(Response::new(Box::pin(snapshots.merge(health))))
    }

    async fn report_health(
        &self,
        request: Request<config::HealthReport>,
    ) -> Result<Response<config::HealthReportAck>, Status> {
        self.publisher
            .health
            .ingest(&request.into_inner(), crate::now_ms());
        Ok(Response::new(config::HealthReportAck {}))
    }

    async fn ack(
        &self,
        request: Request<config::AckRequest>,
    ) -> Result<Response<config::AckResponse>, Status> {
        let ack = request.into_inner();
        if ack.accepted {
            tracing::debug!(dataplane = %ack.dataplane_id, version = ack.version, "snapshot applied");
        } else {
            tracing::error!(dataplane = %ack.dataplane_id, version = ack.version, reason = %ack.reason, "snapshot rejected by dataplane");
        }
        let quarantined: Vec<_> = ack
            .quarantined
            .into_iter()
            .filter_map(quarantined)
            .collect();
        for record in &quarantined {
            tracing::error!(dataplane = %ack.dataplane_id, version = ack.version, %record, "dataplane set a record aside");
        }
        self.publisher.record_ack(
            ack.dataplane_id,
            AckRecord {
                version: ack.version,
                accepted: ack.accepted,
                reason: ack.reason,
                quarantined,
                at_ms: crate::now_ms(),
            },
        );
        Ok(Response::new(config::AckResponse {}))
    }
}

pub struct UsageApi {
    ingest: Ingest,
}

impl UsageApi {
    /// Starts the ingest writer (group commit) on the current runtime.
    pub fn new(store: Store) -> UsageApi {
        UsageApi {
            ingest: Ingest::start(store),
        }
    }
}

#[tonic::async_trait]
impl UsageService for UsageApi {
    async fn report(
        &self,
        request: Request<usage::UsageBatch>,
    ) -> Result<Response<usage::UsageAck>, Status> {
        let batch = request.into_inner();
        let mut generations = Vec::with_capacity(batch.events.len());
        let mut rejected = Vec::new();
        // One malformed event is refused on its own: the rest of the batch is recorded.
        for event in batch.events {
            let generation_id = event.generation_id.clone();
            match generation(event) {
                Ok(g) => generations.push(g),
                Err(reason) => {
                    tracing::error!(dataplane = %batch.dataplane_id, %reason, "usage event refused");
                    rejected.push(usage::RejectedEvent {
                        generation_id,
                        reason,
                    });
                }
            }
        }
        let total = generations.len() as u32;
        let recorded = self.ingest.record(generations).await.map_err(|e| {
            tracing::error!(error = %e, "usage batch not recorded");
            Status::unavailable("usage store unavailable")
        })? as u32;
        Ok(Response::new(usage::UsageAck {
            recorded,
            duplicates: total - recorded,
            rejected,
        }))
    }
}

fn generation(e: usage::UsageEvent) -> Result<Generation, String> {
    if !e.generation_id.starts_with("gen-") || e.generation_id.len() > 128 {
        return Err(format!("invalid generation id {:?}", e.generation_id));
    }
    if e.key_hash.len() != 64 {
        return Err(format!("generation {}: invalid key hash", e.generation_id));
    }
    // The ledger, the rollups and reconciliation all add this up: it must be an amount.
    if !e.cost_usd.is_empty() && switchyard_policy::Money::parse_recorded(&e.cost_usd).is_err() {
        return Err(format!("generation {}: invalid cost", e.generation_id));
    }
    let provider_responses = (!e.provider_responses.is_empty()).then(|| {
        let attempts: Vec<serde_json::Value> = e
            .provider_responses
            .iter()
            .map(|a| {
                serde_json::json!({
                    "status": (a.status > 0).then_some(a.status),
                    "provider_name": a.provider_name,
                    "provider_slug": a.provider_id,
                    "endpoint_id": a.endpoint_tag,
                    "model_permaslug": a.model,
                    "upstream_model": a.upstream_model,
                    "latency": a.latency_ms,
                    "is_byok": a.is_byok,
                })
            })
            .collect();
        serde_json::Value::Array(attempts).to_string()
    });
    Ok(Generation {
        provider_responses,
        preset_id: (!e.preset_id.is_empty()).then_some(e.preset_id),
        preset_version: (e.preset_version > 0)
            .then(|| i64::try_from(e.preset_version).unwrap_or(i64::MAX)),
        session_id: (!e.session_id.is_empty()).then_some(e.session_id),
        external_user: (!e.external_user.is_empty()).then_some(e.external_user),
        http_referer: (!e.http_referer.is_empty()).then_some(e.http_referer),
        id: e.generation_id,
        key_hash: e.key_hash,
        organization_id: e.organization_id,
        workspace_id: e.workspace_id,
        model: e.model,
        provider_id: e.provider_id,
        upstream_model: e.upstream_model,
        upstream_id: e.upstream_id,
        created_at: e.created_at_ms,
        prompt_tokens: i64::from(e.prompt_tokens),
        completion_tokens: i64::from(e.completion_tokens),
        cached_tokens: i64::from(e.cached_tokens),
        cache_write_tokens: i64::from(e.cache_write_tokens),
        reasoning_tokens: i64::from(e.reasoning_tokens),
        cost_usd: (!e.cost_usd.is_empty()).then_some(e.cost_usd),
        streamed: e.streamed,
        finish_reason: (!e.finish_reason.is_empty()).then_some(e.finish_reason),
        latency_ms: i64::from(e.latency_ms),
        ttfb_ms: i64::from(e.time_to_first_byte_ms),
        status: i64::from(e.status),
        cancelled: e.cancelled,
        is_byok: e.is_byok,
        app_title: e.app_title,
        dataplane_id: e.dataplane_id,
    })
}
