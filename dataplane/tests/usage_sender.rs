//! The usage sender against a real gRPC server standing in for the control plane: batches that
//! are too large or hold a malformed event neither lose nor block the others, and events wait on
//! disk while the control plane is down, then arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_dataplane::link::ControlPlaneAuth;
use switchyard_dataplane::usage::{SenderConfig, UsageSender, UsageSink, read_quarantine};
use switchyard_proto::usage::v1::usage_service_server::{UsageService, UsageServiceServer};
use switchyard_proto::usage::v1::{RejectedEvent, UsageAck, UsageBatch, UsageEvent};
use tonic::{Request, Response, Status};

/// Records what it is sent; refuses `gen-bad…` events one by one, as the control plane does;
/// answers `Unavailable` while down.
#[derive(Clone, Default)]
struct FakeControlPlane {
    received: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl UsageService for FakeControlPlane {
    async fn report(&self, request: Request<UsageBatch>) -> Result<Response<UsageAck>, Status> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        let mut rejected = Vec::new();
        let mut received = self.received.lock().unwrap();
        for e in request.into_inner().events {
            if e.generation_id.starts_with("gen-bad") {
                rejected.push(RejectedEvent {
                    generation_id: e.generation_id,
                    reason: "malformed".into(),
                });
            } else {
                received.push(e.generation_id);
            }
        }
        Ok(Response::new(UsageAck {
            rejected,
            ..Default::default()
        }))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `fake` with a decode limit of `max_bytes`, as the control plane's 4 MiB, smaller.
async fn serve(fake: FakeControlPlane, max_bytes: usize) -> String {
    let port = free_port();
    let service = UsageServiceServer::new(fake).max_decoding_message_size(max_bytes);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(([127, 0, 0, 1], port).into()),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("http://127.0.0.1:{port}")
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sy-sender-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Running {
    sink: UsageSink,
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

fn start(url: String, spool_dir: PathBuf) -> Running {
    let (sink, rx) = UsageSink::new(10_000, "dp-test");
    let config = SenderConfig {
        control_plane: url,
        auth: ControlPlaneAuth::resolve(Some("token"), &spool_dir).unwrap(),
        dataplane_id: "dp-test".into(),
        batch_size: 500,
        flush_interval: Duration::from_millis(20),
        spool_dir,
        spool_max_bytes: 64 * 1024 * 1024,
        drain_period: Duration::from_millis(100),
    };
    let sender = UsageSender::new(config, rx, sink.counters.clone());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let done = tokio::spawn(sender.run(shutdown));
    Running { sink, stop, done }
}

fn event(id: String) -> UsageEvent {
    UsageEvent {
        generation_id: id,
        // A client's long title: bounded by the sink, still a few hundred bytes an event.
        app_title: "t".repeat(10_000),
        ..Default::default()
    }
}

async fn wait_for(fake: &FakeControlPlane, n: usize) -> BTreeSet<String> {
    for _ in 0..500 {
        let got: BTreeSet<String> = fake.received.lock().unwrap().iter().cloned().collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "only {} of {n} events arrived",
        fake.received.lock().unwrap().len()
    );
}

#[tokio::test]
async fn an_oversized_batch_is_split_and_a_malformed_event_quarantined_losing_nothing_else() {
    let fake = FakeControlPlane::default();
    // 500 events of ~600 bytes are ~300 KB: over a 64 KiB limit, so batches must be split.
    let url = serve(fake.clone(), 64 * 1024).await;
    let dir = scratch("split");
    let running = start(url, dir.clone());
    let mut expected = BTreeSet::new();
    for i in 0..1000 {
        let id = if i == 321 {
            "gen-bad-321".to_owned()
        } else {
            format!("gen-{i:04}")
        };
        if i != 321 {
            expected.insert(id.clone());
        }
        running.sink.emit(event(id));
    }
    let got = wait_for(&fake, expected.len()).await;
    assert_eq!(got, expected);
    let counters = running.sink.counters.clone();
    let _ = running.stop.send(true);
    running.done.await.unwrap();
    assert_eq!(counters.quarantined.load(Ordering::Relaxed), 1);
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
    let quarantined = read_quarantine(&dir).unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].generation_id, "gen-bad-321");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_wait_on_disk_while_the_control_plane_is_down_then_arrive() {
    let fake = FakeControlPlane::default();
    fake.down.store(true, Ordering::SeqCst);
    let url = serve(fake.clone(), 4 * 1024 * 1024).await;
    let dir = scratch("down");
    let running = start(url, dir.clone());
    let expected: BTreeSet<String> = (0..300).map(|i| format!("gen-{i:04}")).collect();
    for id in &expected {
        running.sink.emit(event(id.clone()));
    }
    // Down: nothing arrives, and the events go to the spool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.received.lock().unwrap().is_empty());
    assert!(running.sink.counters.spooled.load(Ordering::Relaxed) > 0);
    // Back: the backoff retries and everything arrives.
    fake.down.store(false, Ordering::SeqCst);
    assert_eq!(wait_for(&fake, expected.len()).await, expected);
    let _ = running.stop.send(true);
    running.done.await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
