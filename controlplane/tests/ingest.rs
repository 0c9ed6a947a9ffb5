//! Usage ingest with group commit: batches sent at once are recorded exactly once each, every
//! one acknowledged with its own count; a batch the store refuses fails alone. On SQLite and on
//! a throwaway PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_controlplane::ingest::Ingest;
use switchyard_controlplane::store::{Generation, Store};
use switchyard_controlplane::testing::Database;

fn batch(sender: usize, events: usize) -> Vec<Generation> {
    (0..events)
        .map(|i| Generation {
            id: format!("gen-{sender}-{i}"),
            key_hash: format!("{:064x}", sender),
            organization_id: "org".into(),
            workspace_id: "ws".into(),
            model: "mock/fast".into(),
            cost_usd: Some("0.000002".into()),
            prompt_tokens: 3,
            ..Generation::default()
        })
        .collect()
}

async fn counted(store: &Store, ids: impl Iterator<Item = String>) -> usize {
    let mut found = 0;
    for id in ids {
        found += usize::from(store.generation(&id).await.unwrap().is_some());
    }
    found
}

async fn concurrent_batches_are_each_recorded_once(url: &str) {
    let store = Store::open(url).await.unwrap();
    let ingest = Ingest::start(store.clone());
    // Sixteen dataplanes at once, one of them resending another's batch (an ack it lost).
    let mut tasks = Vec::new();
    for sender in 0..16 {
        let ingest = ingest.clone();
        let source = if sender == 15 { 3 } else { sender };
        tasks.push(tokio::spawn(async move {
            ingest.record(batch(source, 300)).await
        }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += t.await.unwrap().unwrap();
    }
    assert_eq!(recorded, 15 * 300, "the resent batch counts once");
    let ids = (0..15).flat_map(|s| (0..300).map(move |i| format!("gen-{s}-{i}")));
    assert_eq!(counted(&store, ids).await, 15 * 300);
    assert_eq!(ingest.record(Vec::new()).await.unwrap(), 0);
}

/// PostgreSQL refuses a NUL in text: that batch fails, the batches written with it do not.
async fn a_refused_batch_fails_alone(url: &str) {
    let store = Store::open(url).await.unwrap();
    let ingest = Ingest::start(store.clone());
    let mut tasks = Vec::new();
    for sender in 100..108 {
        let ingest = ingest.clone();
        let mut generations = batch(sender, 50);
        if sender == 104 {
            generations[7].app_title = "nul\0here".into();
        }
        tasks.push((
            sender,
            tokio::spawn(async move { ingest.record(generations).await }),
        ));
    }
    for (sender, t) in tasks {
        let result = t.await.unwrap();
        if sender == 104 {
            assert!(result.is_err(), "the refused batch fails");
        } else {
            assert_eq!(result.unwrap(), 50, "batch {sender}");
        }
    }
    assert_eq!(
        counted(&store, (0..50).map(|i| format!("gen-104-{i}"))).await,
        0,
        "nothing of the refused batch is half-written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_on_sqlite() {
    let db = Database::sqlite();
    concurrent_batches_are_each_recorded_once(&db.url).await;
    db.drop().await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_on_postgres() {
    let db = Database::postgres().await;
    concurrent_batches_are_each_recorded_once(&db.url).await;
    a_refused_batch_fails_alone(&db.url).await;
    db.drop().await;
}
