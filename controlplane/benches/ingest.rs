//! Usage ingest on one core: `cargo bench -p switchyard-controlplane --bench ingest`.
//!
//! Batches of usage events as dataplanes send them (512 each, realistic fields, one provider
//! attempt each) through the gRPC service's handler (`UsageApi::report`: validation, conversion,
//! the group-committed insert), on a single-threaded runtime, into a throwaway SQLite database
//! and a throwaway PostgreSQL database (the local server, or `SWITCHYARD_TEST_POSTGRES`): from
//! one dataplane (each batch sent when the last is acknowledged) and from a fleet of
//! `INGEST_SENDERS` (8) sending at once. Prints events per second for each; the goal is at
//! least 50,000.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use switchyard_controlplane::grpc::UsageApi;
use switchyard_controlplane::store::Store;
use switchyard_controlplane::testing::Database;
use switchyard_proto::usage::v1::usage_service_server::UsageService;
use switchyard_proto::usage::v1::{ProviderAttempt, UsageBatch, UsageEvent};

/// The control plane's allocator, so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 512;

fn batch(start: usize) -> UsageBatch {
    UsageBatch {
        dataplane_id: "dataplane-bench".into(),
        events: (start..start + BATCH)
            .map(|i| UsageEvent {
                generation_id: format!("gen-bench-{i:012}"),
                key_hash: format!("{:064x}", i % 1000),
                organization_id: "org-bench".into(),
                workspace_id: "ws-bench".into(),
                model: "openai/gpt-4o-mini".into(),
                provider_id: "openai".into(),
                upstream_model: "gpt-4o-mini".into(),
                upstream_id: format!("chatcmpl-{i}"),
                created_at_ms: 1_790_000_000_000 + i as i64,
                prompt_tokens: 1_200,
                completion_tokens: 300,
                cost_usd: "0.000360000000".into(),
                finish_reason: "stop".into(),
                latency_ms: 840,
                time_to_first_byte_ms: 120,
                status: 200,
                dataplane_id: "dataplane-bench".into(),
                provider_responses: vec![ProviderAttempt {
                    provider_id: "openai".into(),
                    provider_name: "OpenAI".into(),
                    model: "openai/gpt-4o-mini".into(),
                    upstream_model: "gpt-4o-mini".into(),
                    status: 200,
                    latency_ms: 840,
                    is_byok: false,
                    endpoint_tag: "openai".into(),
                }],
                ..Default::default()
            })
            .collect(),
    }
}

async fn run(name: &str, db: &Database, events: usize, senders: usize) {
    let api = std::rc::Rc::new(UsageApi::new(Store::open(&db.url).await.unwrap()));
    // Built beforehand: the dataplanes' encoding is not the control plane's cost.
    let mut batches: Vec<Vec<UsageBatch>> = (0..senders).map(|_| Vec::new()).collect();
    for b in 0..events / BATCH {
        batches[b % senders].push(batch(b * BATCH));
    }
    let started = Instant::now();
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|mine| {
            let api = api.clone();
            tokio::task::spawn_local(async move {
                let mut recorded = 0u64;
                for b in mine {
                    let ack = api
                        .report(tonic::Request::new(b))
                        .await
                        .unwrap()
                        .into_inner();
                    recorded += u64::from(ack.recorded);
                }
                recorded
            })
        })
        .collect();
    let mut recorded = 0u64;
    for t in tasks {
        recorded += t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(recorded as usize, events / BATCH * BATCH);
    println!(
        "{name:<10} {senders:>2} sender(s) {recorded} events in {seconds:.2} s: {:>7.0} events/s (batches of {BATCH}, one core)",
        recorded as f64 / seconds
    );
}

fn main() {
    let events: usize = std::env::var("INGEST_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let senders: usize = std::env::var("INGEST_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        for senders in [1, senders] {
            let sqlite = Database::sqlite();
            run("sqlite", &sqlite, events, senders).await;
            sqlite.drop().await;
            let postgres = Database::postgres().await;
            run("postgres", &postgres, events, senders).await;
            postgres.drop().await;
        }
    });
}
