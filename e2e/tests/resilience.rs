//! The dataplane without its control plane: serving on, restarting cold, keeping usage, and
//! refusing invalid snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::controller::MockController;
use support::{Mock, Process, Stack, TempDir, chat_body, client, eventually, free_port};
use switchyard_proto::config::v1 as pb;

#[tokio::test]
async fn serves_on_when_the_control_plane_dies_and_restarts_cold_from_disk() {
    let mut stack = Stack::start().await;
    stack.kill_control_plane();
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    assert_eq!(r.status(), 200, "the last good snapshot keeps serving");
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The persisted snapshot (it holds provider credentials) is sealed: nothing of it reads.
    let persisted = std::fs::read(
        stack
            .dir
            .0
            .join(format!("dataplane-{}", stack.dp_port))
            .join("snapshot.pb"),
    )
    .unwrap();
    assert!(persisted.starts_with(b"SYSN1"));
    assert!(!persisted.windows(9).any(|w| w == b"mock/fast"));

    // A restarted dataplane serves from the persisted snapshot while the control plane is away.
    stack.stop_dataplane();
    stack.start_dataplane().await;
    stack.wait_ready().await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/smart"))
        .await;
    assert_eq!(r.status(), 200);
    let id2 = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // No usage event was lost: both generations are recorded once the control plane is back.
    stack.start_control_plane().await;
    assert_eq!(stack.generation(&id).await["data"]["model"], "mock/fast");
    assert_eq!(stack.generation(&id2).await["data"]["model"], "mock/smart");
}

/// Key changes reach the dataplane as deltas of those keys (the control plane builds no whole
/// snapshot for them), journalled sealed beside the persisted snapshot: a dataplane restarted
/// cold while the control plane is away serves a key created and refuses a key disabled since
/// its last whole snapshot.
#[tokio::test]
async fn key_deltas_are_served_and_survive_a_cold_restart() {
    let mut stack = Stack::start().await;
    let builds = stack
        .control_plane_metric("switchyard_snapshot_builds_total{outcome=\"ok\"}")
        .await;
    let deltas = stack
        .control_plane_metric("switchyard_snapshot_deltas_total")
        .await;
    let (created, _) = stack.limited_key(5.0).await;
    let (disabled, hash) = stack.limited_key(5.0).await;
    let r = client()
        .patch(format!("{}/keys/{hash}", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("disabled key refused", Duration::from_secs(10), || async {
        (stack.chat(&disabled, chat_body("mock/fast")).await.status() == 401).then_some(())
    })
    .await;
    assert_eq!(
        stack
            .control_plane_metric("switchyard_snapshot_builds_total{outcome=\"ok\"}")
            .await,
        builds,
        "no whole snapshot was built for key changes"
    );
    assert_eq!(
        stack
            .control_plane_metric("switchyard_snapshot_deltas_total")
            .await,
        deltas + 3
    );

    // Written in the background, in order: the three deltas, each a length and a sealed record.
    let records = eventually(
        "three deltas journalled",
        Duration::from_secs(10),
        || async {
            let records = journal(&stack);
            (records.len() == 3).then_some(records)
        },
    )
    .await;
    for record in &records {
        assert!(
            record.starts_with(b"SYSN1"),
            "each journalled delta is sealed"
        );
        assert!(!record.windows(hash.len()).any(|w| w == hash.as_bytes()));
    }

    stack.kill_control_plane();
    stack.stop_dataplane();
    stack.start_dataplane().await;
    stack.wait_ready().await;
    let r = stack.chat(&created, chat_body("mock/fast")).await;
    assert_eq!(
        r.status(),
        200,
        "a key created by a delta is served after a cold start"
    );
    let r = stack.chat(&disabled, chat_body("mock/fast")).await;
    assert_eq!(r.status(), 401, "a key disabled by a delta stays refused");
}

/// The whole records of a dataplane's key delta journal (each a length, then that many bytes).
fn journal(stack: &Stack) -> Vec<Vec<u8>> {
    let path = stack
        .dir
        .0
        .join(format!("dataplane-{}", stack.dp_port))
        .join("snapshot.pb.deltas");
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut records = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some(record) = tail.get(..len) else {
            break;
        };
        records.push(record.to_vec());
        rest = &tail[len..];
    }
    records
}

/// A dataplane that reconnects (here after a restart, serving what it restored from disk) names
/// the version it serves and gets only what changed since: its journal of deltas is never
/// replaced by a whole snapshot. (A restarted control plane does send one: it renumbers the
/// configuration at start, since its catalogue may have changed.)
#[tokio::test]
async fn a_reconnecting_dataplane_is_sent_only_the_deltas_since_its_version() {
    let mut stack = Stack::start().await;
    stack.limited_key(5.0).await;
    eventually("one delta journalled", Duration::from_secs(10), || async {
        (journal(&stack).len() == 1).then_some(())
    })
    .await;
    stack.stop_dataplane();
    stack.start_dataplane().await;
    stack.wait_ready().await;
    let (after, _) = stack.limited_key(5.0).await;
    assert_eq!(
        stack.chat(&after, chat_body("mock/fast")).await.status(),
        200
    );
    eventually("two deltas journalled", Duration::from_secs(10), || async {
        (journal(&stack).len() == 2).then_some(())
    })
    .await;
    // A whole snapshot would have been persisted in the journal's place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        journal(&stack).len(),
        2,
        "no whole snapshot replaced the journal"
    );
}

#[tokio::test]
async fn a_stream_in_flight_at_sigterm_finishes_and_is_metered() {
    // A grace period far longer than the 20-token stream, so that the drain, not the machine's
    // speed, is what this tests.
    let mut stack = Stack::start_with(&["--grace-period-secs", "10"]).await;
    stack
        .mock_a
        .script(serde_json::json!({"completion_tokens": 20, "inter_token_ms": 20}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = serde_json::json!(true);
    let response = stack.chat(&stack.inference_key, body).await;
    assert_eq!(response.status(), 200);
    // SIGTERM while the provider is still generating (20 tokens, 20 ms apart).
    stack.dataplane.as_ref().unwrap().signal("TERM");
    let text = response.text().await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream completes during the drain"
    );
    let id = support::stream_id(&text);
    // Its usage event was delivered (or spooled and delivered by the next start).
    stack.restart_dataplane_after_its_exit().await;
    let g = stack.generation(&id).await;
    assert_eq!(g["data"]["tokens_completion"], 20);
}

/// A request that settles during the shutdown drain is in the embedded counters the dataplane
/// saves: its spend is not forgotten by the next start.
#[tokio::test]
async fn spend_settled_during_the_drain_is_saved() {
    let mut stack = Stack::start_with(&["--grace-period-secs", "10"]).await;
    let (secret, hash) = stack.limited_key(1.0).await;
    // A stream that outlasts the signal by over a second: it settles during the drain.
    stack
        .mock_a
        .script(serde_json::json!({"completion_tokens": 16, "inter_token_ms": 100}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = serde_json::json!(true);
    let response = stack.chat(&secret, body).await;
    assert_eq!(response.status(), 200);
    stack.dataplane.as_ref().unwrap().signal("TERM");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let id = support::stream_id(&text);
    stack.restart_dataplane_after_its_exit().await;
    let g = stack.generation(&id).await;
    let cost = (g["data"]["total_cost"].as_f64().unwrap() * 1e12).round() as u128;
    assert!(cost > 0);
    let file = stack
        .dir
        .0
        .join(format!("dataplane-{}", stack.dp_port))
        .join("spend.json");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let spent = saved
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["key"]
                .as_str()
                .unwrap()
                .contains(&format!(":sp:key:{hash}:"))
        })
        .map(|c| c["spent"].as_u64().unwrap() as u128);
    assert_eq!(spent, Some(cost), "the key's counter as saved: {saved}");
}

/// A stream that would outlast the shutdown's grace period is ended (with an error event)
/// before the grace period ends, and settled and metered like any other, instead of being
/// dropped with the runtime.
#[tokio::test]
async fn a_stream_outlasting_the_grace_period_is_ended_settled_and_metered() {
    use futures::StreamExt;
    let mut stack = Stack::start_with(&["--grace-period-secs", "3"]).await;
    // 200 tokens, 100 ms apart: twenty seconds, far past the grace period.
    stack
        .mock_a
        .script(serde_json::json!({"completion_tokens": 200, "inter_token_ms": 100}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = serde_json::json!(true);
    let response = stack.chat(&stack.inference_key, body).await;
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\"id\":\"gen-") {
        text.push_str(&String::from_utf8_lossy(
            &chunks.next().await.unwrap().unwrap(),
        ));
    }
    stack.dataplane.as_ref().unwrap().signal("TERM");
    while let Some(Ok(chunk)) = chunks.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("\"finish_reason\":\"error\""),
        "the stream ends with an error event"
    );
    let id = support::stream_id(&text);
    stack.restart_dataplane_after_its_exit().await;
    let g = stack.generation(&id).await;
    assert_eq!(g["data"]["cancelled"], true, "{g}");
    let completion = g["data"]["tokens_completion"].as_u64().unwrap();
    assert!((1..200).contains(&completion), "{completion}");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let mut stack = Stack::start().await;
    let dp = stack.dataplane.as_mut().unwrap();
    dp.signal("TERM");
    let status = dp
        .wait_exit(Duration::from_secs(30))
        .expect("dataplane exits after SIGTERM");
    assert!(status.success(), "clean exit, got {status}");
    assert!(dp.log().contains("SIGTERM received"));
}

fn snapshot(version: u64, mock_url: &str, key_hash: &str) -> pb::Snapshot {
    pb::Snapshot {
        version,
        epoch: "e2e".into(),
        created_at_ms: 0,
        spend_counters_marked: false,
        resources: Some(pb::Resources {
            organizations: vec![pb::Organization {
                id: "org".into(),
                name: "Org".into(),
                // Requests spend credits: without any, every request is a 402.
                credits_usd: "100".into(),
                ..Default::default()
            }],
            workspaces: vec![pb::Workspace {
                id: "ws".into(),
                organization_id: "org".into(),
                name: "Default".into(),
                ..Default::default()
            }],
            keys: vec![pb::Key {
                hash: key_hash.into(),
                kind: pb::KeyKind::Inference as i32,
                owner_user_id: "user".into(),
                organization_id: "org".into(),
                workspace_id: "ws".into(),
                ..Default::default()
            }],
            models: vec![pb::Model {
                id: "mock/fast".into(),
                name: "Fast".into(),
                context_length: 1000,
                endpoints: vec![pb::Endpoint {
                    provider_id: "mock".into(),
                    base_url: format!("{mock_url}/v1"),
                    upstream_model: "m".into(),
                    price: Some(pb::Price {
                        prompt: "0.000001".into(),
                        completion: "0.000002".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            providers: vec![],
            ..Default::default()
        }),
    }
}

/// A dataplane fed by a mock control plane, serving `snapshot(10)`: what a test pushes next
/// and what the dataplane answers.
struct Fed {
    _dir: TempDir,
    _mock: Mock,
    _dataplane: Process,
    controller: MockController,
    mock_url: String,
    port: u16,
    client: reqwest::Client,
}

const SECRET: &str = "sk-sy-v1-test";
const SECOND_SECRET: &str = "sk-sy-v1-second";

impl Fed {
    async fn start(name: &str) -> Fed {
        let dir = TempDir::new(name);
        let mock = Mock::start("mock", &dir.0).await;
        let grpc_port = free_port();
        let controller = MockController::start(SocketAddr::from(([127, 0, 0, 1], grpc_port))).await;
        let hash = sha256_hex(SECRET).expect("sha256sum is available");
        controller.push(snapshot(10, &mock.url, &hash));
        let port = free_port();
        let dataplane = Process::spawn(
            "dataplane",
            "switchyard-dataplane",
            &[
                "--data-dir".into(),
                dir.0.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--control-plane".into(),
                format!("http://127.0.0.1:{grpc_port}"),
                "--control-plane-http".into(),
                "http://127.0.0.1:9".into(),
            ],
            &[],
            &dir.0,
        );
        let fed = Fed {
            mock_url: mock.url.clone(),
            _dir: dir,
            _mock: mock,
            _dataplane: dataplane,
            controller,
            port,
            client: client(),
        };
        eventually("snapshot 10 served", Duration::from_secs(20), || async {
            (fed.chat(SECRET).await.0 == 200).then_some(())
        })
        .await;
        fed
    }

    /// A chat request with `secret`: the status and the body.
    async fn chat(&self, secret: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!(
                "http://127.0.0.1:{}/api/v1/chat/completions",
                self.port
            ))
            .bearer_auth(secret)
            .json(&chat_body("mock/fast"))
            .send()
            .await;
        match r {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
            Err(_) => (0, Value::Null),
        }
    }

    async fn ack(&self, version: u64) -> pb::AckRequest {
        eventually(
            &format!("version {version} acknowledged"),
            Duration::from_secs(10),
            || {
                let acks = self.controller.acks();
                async move { acks.into_iter().find(|a| a.version == version) }
            },
        )
        .await
    }

    async fn served_version(&self) -> Value {
        let ready: Value = self
            .client
            .get(format!("http://127.0.0.1:{}/health/ready", self.port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready["snapshot_version"].clone()
    }
}

/// One invalid record is set aside; everything else in that version is served: a key added in
/// the same version works, and the key whose record is invalid is refused with a reason.
#[tokio::test]
async fn an_invalid_record_is_set_aside_and_the_rest_published() {
    let fed = Fed::start("quarantine").await;
    let hash = sha256_hex(SECRET).unwrap();
    let mut next = snapshot(11, &fed.mock_url, &hash);
    let resources = next.resources.as_mut().unwrap();
    let mut second = resources.keys[0].clone();
    second.hash = sha256_hex(SECOND_SECRET).unwrap();
    resources.keys.push(second);
    // The first key names a workspace that does not exist.
    resources.keys[0].workspace_id = "ws-missing".into();
    fed.controller.push(next);

    let ack = fed.ack(11).await;
    assert!(ack.accepted, "the version is published: {}", ack.reason);
    let quarantined: Vec<(&str, &str, &str)> = ack
        .quarantined
        .iter()
        .map(|q| (q.kind.as_str(), q.id.as_str(), q.reason.as_str()))
        .collect();
    assert_eq!(
        quarantined,
        [("key", hash.as_str(), "unknown workspace ws-missing")]
    );
    assert_eq!(fed.served_version().await, 11);
    assert_eq!(fed.chat(SECOND_SECRET).await.0, 200, "the new key works");
    let (status, body) = fed.chat(SECRET).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["metadata"]["reason"],
        "configuration_quarantined"
    );
    assert_eq!(body["error"]["metadata"]["record"], "key");
}

/// Versions only move forward within one store: an older one is refused, and the last good
/// one keeps serving.
#[tokio::test]
async fn an_older_version_is_refused_and_the_newer_one_kept() {
    let fed = Fed::start("stale").await;
    let hash = sha256_hex(SECRET).unwrap();
    let mut older = snapshot(9, &fed.mock_url, &hash);
    older.resources.as_mut().unwrap().keys.clear();
    fed.controller.push(older);
    let ack = fed.ack(9).await;
    assert!(!ack.accepted);
    assert!(ack.reason.contains("not newer"), "reason: {}", ack.reason);
    assert_eq!(fed.served_version().await, 10);
    assert_eq!(
        fed.chat(SECRET).await.0,
        200,
        "the last good snapshot serves"
    );
}

/// A snapshot numbered by another store (a new epoch) replaces what is served, whatever its
/// number: versions of different stores are not comparable.
#[tokio::test]
async fn a_snapshot_of_another_epoch_replaces_what_is_served() {
    let fed = Fed::start("epoch").await;
    let hash = sha256_hex(SECRET).unwrap();
    let mut other = snapshot(3, &fed.mock_url, &hash);
    other.epoch = "another-store".into();
    other.resources.as_mut().unwrap().keys[0].disabled = true;
    fed.controller.push(other);
    assert!(fed.ack(3).await.accepted);
    assert_eq!(fed.served_version().await, 3);
    assert_eq!(
        fed.chat(SECRET).await.0,
        401,
        "the new store's key is disabled"
    );
}

/// SHA-256 via the system's `sha256sum`, to keep the test independent of the code under test.
fn sha256_hex(text: &str) -> Option<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}
