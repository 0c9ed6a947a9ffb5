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
            known_epoch: String::new(),
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
        known_epoch: String::new(),
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

/// PEM files for a CA, a server certificate for `localhost` and a client certificate, both
/// signed by the CA.
struct Pki {
    dir: support::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = support::TempDir::new("pki");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.0.join(name), text).unwrap();
        write("ca.pem", ca.pem());
        for (name, host) in [("server", "localhost"), ("client", "dataplane")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![host.to_owned()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }
}

/// Snapshots carry every tenant's provider keys: the link can be TLS with client certificates,
/// and then a caller without a certificate from the CA gets nothing, token or not.
#[tokio::test]
async fn the_link_runs_over_mutual_tls() {
    let pki = Pki::new();
    let cp_args = [
        "--grpc-tls-cert".to_owned(),
        pki.path("server.pem"),
        "--grpc-tls-key".to_owned(),
        pki.path("server.key"),
        "--grpc-tls-client-ca".to_owned(),
        pki.path("ca.pem"),
    ];
    let dp_args = [
        "--control-plane-ca".to_owned(),
        pki.path("ca.pem"),
        "--control-plane-tls-cert".to_owned(),
        pki.path("client.pem"),
        "--control-plane-tls-key".to_owned(),
        pki.path("client.key"),
    ];
    let cp: Vec<&str> = cp_args.iter().map(String::as_str).collect();
    let dp: Vec<&str> = dp_args.iter().map(String::as_str).collect();
    // The dataplane gets its snapshot over mutual TLS, and serves.
    let stack = Stack::start_with_both(&dp, &cp).await;
    assert_eq!(
        stack
            .chat(&stack.inference_key, support::chat_body("mock/fast"))
            .await
            .status(),
        200
    );
    let token = std::fs::read_to_string(stack.dir.0.join("controlplane/dataplane.token")).unwrap();
    let watch = |endpoint: tonic::transport::Endpoint| {
        let token = token.clone();
        async move {
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
            let mut config = ConfigServiceClient::new(channel);
            let mut request = tonic::Request::new(pb::WatchRequest {
                dataplane_id: "intruder".into(),
                known_version: 0,
                known_epoch: String::new(),
            });
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", token.trim()).parse().unwrap(),
            );
            config
                .watch(request)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let url = format!("https://localhost:{}", stack.cp_grpc);
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(pki.path("ca.pem")).unwrap());
    // With the token but no client certificate: refused.
    let without = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))
        .unwrap();
    assert!(watch(without).await.is_err());
    // Cleartext: refused.
    let plain =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", stack.cp_grpc))
            .unwrap();
    assert!(watch(plain).await.is_err());
}
