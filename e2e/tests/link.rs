//! The control plane's dataplane port: snapshots carry provider credentials and usage events
//! bill, so both services refuse callers without the dataplane token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Stack;
use switchyard_proto::config::v1 as pb;
use switchyard_proto::config::v1::config_service_client::ConfigServiceClient;
use switchyard_proto::usage::v1::usage_service_client::UsageServiceClient;
use switchyard_proto::usage::v1::{UsageBatch, UsageEvent};
use tonic::Code;

#[tokio::test]
async fn the_dataplane_port_requires_the_dataplane_token() {
    let stack = Stack::start().await;
    // The stack's dataplane found the generated token in the shared data dir and is serving.
    assert_eq!(
        stack
            .chat(&stack.inference_key, support::chat_body("mock/fast"))
            .await
            .status(),
        200
    );
    let url = format!("http://127.0.0.1:{}", stack.cp_grpc);
    let token = std::fs::read_to_string(stack.dir.0.join("controlplane/dataplane.token")).unwrap();

    for presented in [None, Some("Bearer wrong-token".to_owned())] {
        let mut config = ConfigServiceClient::connect(url.clone()).await.unwrap();
        let mut request = tonic::Request::new(pb::WatchRequest {
            dataplane_id: "intruder".into(),
            known_version: 0,
        });
        if let Some(p) = &presented {
            request
                .metadata_mut()
                .insert("authorization", p.parse().unwrap());
        }
        let Err(refused) = config.watch(request).await else {
            panic!("watch accepted without the token")
        };
        assert_eq!(refused.code(), Code::Unauthenticated, "{presented:?}");

        let mut usage = UsageServiceClient::connect(url.clone()).await.unwrap();
        let mut request = tonic::Request::new(UsageBatch::default());
        if let Some(p) = &presented {
            request
                .metadata_mut()
                .insert("authorization", p.parse().unwrap());
        }
        let Err(refused) = usage.report(request).await else {
            panic!("report accepted without the token")
        };
        assert_eq!(refused.code(), Code::Unauthenticated, "{presented:?}");
    }

    // With the token, a watch is served a snapshot.
    let mut config = ConfigServiceClient::connect(url).await.unwrap();
    let mut request = tonic::Request::new(pb::WatchRequest {
        dataplane_id: "e2e".into(),
        known_version: 0,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let mut stream = config.watch(request).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some());

    // One malformed event in a batch is refused on its own; the others are recorded.
    let event = |id: &str, key_hash: &str| UsageEvent {
        generation_id: id.into(),
        key_hash: key_hash.into(),
        organization_id: "org-e2e".into(),
        model: "mock/fast".into(),
        cost_usd: "0.000001".into(),
        ..Default::default()
    };
    let mut usage = UsageServiceClient::connect(format!("http://127.0.0.1:{}", stack.cp_grpc))
        .await
        .unwrap();
    let mut request = tonic::Request::new(UsageBatch {
        dataplane_id: "e2e".into(),
        events: vec![
            event("gen-e2e-1", &"a".repeat(64)),
            event("gen-e2e-2", "not-a-hash"),
            event("gen-e2e-3", &"b".repeat(64)),
        ],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let ack = usage.report(request).await.unwrap().into_inner();
    assert_eq!(ack.recorded, 2);
    assert_eq!(ack.rejected.len(), 1);
    assert_eq!(ack.rejected[0].generation_id, "gen-e2e-2");
}
