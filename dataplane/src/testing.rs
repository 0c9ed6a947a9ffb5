//! Test support: a builder for valid snapshots (and their protobuf form), shared by unit
//! tests and benches.

use sha2::{Digest, Sha256};
use switchyard_proto::config::v1 as pb;

use crate::snapshot::Snapshot;

pub const ORG: &str = "org-test";
pub const WORKSPACE: &str = "ws-test";

pub struct SnapshotBuilder {
    message: pb::Snapshot,
    secret: Option<String>,
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotBuilder {
    /// One organization, one workspace and a `mock/small` model on one endpoint.
    pub fn new() -> Self {
        let price = pb::Price {
            prompt: "0.000001".into(),
            completion: "0.000002".into(),
            ..Default::default()
        };
        let resources = pb::Resources {
            organizations: vec![pb::Organization {
                id: ORG.into(),
                name: "Test".into(),
            }],
            workspaces: vec![pb::Workspace {
                id: WORKSPACE.into(),
                organization_id: ORG.into(),
                name: "Default".into(),
            }],
            models: vec![pb::Model {
                id: "mock/small".into(),
                name: "Mock Small".into(),
                context_length: 8192,
                endpoints: vec![pb::Endpoint {
                    provider_id: "mock".into(),
                    base_url: "http://127.0.0.1:9/v1".into(),
                    upstream_model: "mock-small-1".into(),
                    price: Some(price),
                    context_length: 8192,
                    max_output_tokens: 1024,
                    api_key: "provider-secret".into(),
                    priority: 0,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        SnapshotBuilder {
            message: pb::Snapshot {
                version: 1,
                created_at_ms: 0,
                resources: Some(resources),
            },
            secret: None,
        }
    }

    fn key(mut self, kind: pb::KeyKind, edit: impl FnOnce(&mut pb::Key)) -> Self {
        let n = self.keys().len();
        let secret = format!("sk-sy-v1-test-{n}");
        let mut key = pb::Key {
            hash: hex::encode(Sha256::digest(secret.as_bytes())),
            kind: kind as i32,
            owner_user_id: "user-test".into(),
            organization_id: ORG.into(),
            workspace_id: WORKSPACE.into(),
            label: format!("sk-sy-v1-test…{n}"),
            ..Default::default()
        };
        edit(&mut key);
        self.keys().push(key);
        self.secret = Some(secret);
        self
    }

    fn keys(&mut self) -> &mut Vec<pb::Key> {
        &mut self
            .message
            .resources
            .get_or_insert_with(Default::default)
            .keys
    }

    pub fn with_inference_key(self) -> Self {
        self.key(pb::KeyKind::Inference, |_| {})
    }

    pub fn with_management_key(self) -> Self {
        self.key(pb::KeyKind::Management, |_| {})
    }

    pub fn with_disabled_key(self) -> Self {
        self.key(pb::KeyKind::Inference, |k| k.disabled = true)
    }

    pub fn with_key_expiring_at(self, ms: i64) -> Self {
        self.key(pb::KeyKind::Inference, |k| k.expires_at_ms = ms)
    }

    /// Adds `n` inference keys with distinct hashes (for lookup benchmarks).
    pub fn with_many_keys(mut self, n: usize) -> Self {
        let keys = self.keys();
        keys.reserve(n);
        for i in 0..n {
            keys.push(pb::Key {
                hash: hex::encode(Sha256::digest(format!("bulk-{i}").as_bytes())),
                kind: pb::KeyKind::Inference as i32,
                owner_user_id: "user-test".into(),
                organization_id: ORG.into(),
                workspace_id: WORKSPACE.into(),
                ..Default::default()
            });
        }
        self
    }

    pub fn version(mut self, version: u64) -> Self {
        self.message.version = version;
        self
    }

    pub fn message(self) -> pb::Snapshot {
        self.message
    }

    pub fn build(self) -> Snapshot {
        self.build_with_secret().0
    }

    /// The snapshot and the secret of the last key added.
    pub fn build_with_secret(self) -> (Snapshot, String) {
        let secret = self.secret.clone().unwrap_or_default();
        match Snapshot::try_from(self.message) {
            Ok(s) => (s, secret),
            Err(e) => unreachable!("the builder makes valid snapshots: {e}"),
        }
    }
}
