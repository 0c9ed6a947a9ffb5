//! Test support: a builder for valid snapshots (and their protobuf form), shared by both planes'
//! unit tests and the dataplane's benches.

use sha2::{Digest, Sha256};
use switchyard_proto::config::v1 as pb;

use crate::snapshot::{Snapshot, system_resolver};
use crate::window::Window;

pub const ORG: &str = "org-test";
pub const WORKSPACE: &str = "ws-test";
/// The owner of the builder's keys.
pub const USER: &str = "user-test";
/// The id `with_default_guardrail` gives the workspace's default guardrail.
pub const DEFAULT_GUARDRAIL: &str = "gr_default_ws-test";

/// The hash (hex) of the `n`th key added with `with_inference_key` and its siblings.
pub fn key_hash(n: usize) -> String {
    hex::encode(Sha256::digest(format!("sk-sy-v1-test-{n}").as_bytes()))
}

fn spend_window(window: Window) -> pb::SpendWindow {
    match window {
        Window::Daily => pb::SpendWindow::Daily,
        Window::Weekly => pb::SpendWindow::Weekly,
        Window::Monthly => pb::SpendWindow::Monthly,
        Window::Lifetime => pb::SpendWindow::Lifetime,
    }
}

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
                ..Default::default()
            }],
            workspaces: vec![pb::Workspace {
                id: WORKSPACE.into(),
                organization_id: ORG.into(),
                name: "Default".into(),
                ..Default::default()
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
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        SnapshotBuilder {
            message: pb::Snapshot {
                version: 1,
                created_at_ms: 0,
                epoch: String::new(),
                resources: Some(resources),
                spend_counters_marked: false,
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
            owner_user_id: USER.into(),
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

    fn resources(&mut self) -> &mut pb::Resources {
        self.message.resources.get_or_insert_with(Default::default)
    }

    fn keys(&mut self) -> &mut Vec<pb::Key> {
        &mut self.resources().keys
    }

    /// Adds an inference key with custom settings (a limit, another owner or workspace).
    pub fn with_inference_key_where(self, edit: impl FnOnce(&mut pb::Key)) -> Self {
        self.key(pb::KeyKind::Inference, edit)
    }

    /// Adds a workspace to the organization.
    pub fn with_workspace(mut self, id: &str) -> Self {
        self.resources().workspaces.push(pb::Workspace {
            id: id.into(),
            organization_id: ORG.into(),
            name: id.into(),
            ..Default::default()
        });
        self
    }

    /// Adds a model served by one endpoint per provider, preferred in the order given.
    pub fn with_model(mut self, id: &str, providers: &[&str]) -> Self {
        let endpoints = providers
            .iter()
            .zip(0..)
            .map(|(provider, priority)| pb::Endpoint {
                provider_id: (*provider).into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                upstream_model: format!("{provider}-model"),
                price: Some(pb::Price {
                    prompt: "0.000001".into(),
                    completion: "0.000002".into(),
                    ..Default::default()
                }),
                context_length: 8192,
                max_output_tokens: 1024,
                priority,
                ..Default::default()
            })
            .collect();
        self.resources().models.push(pb::Model {
            id: id.into(),
            name: id.into(),
            context_length: 8192,
            endpoints,
            ..Default::default()
        });
        self
    }

    /// Adds a BYOK credential for `provider` in the test workspace (key `sk-<id>`), unrestricted
    /// until `edit` says otherwise.
    pub fn with_byok(
        mut self,
        id: &str,
        provider: &str,
        edit: impl FnOnce(&mut pb::ByokCredential),
    ) -> Self {
        let mut credential = pb::ByokCredential {
            id: id.into(),
            organization_id: ORG.into(),
            workspace_id: WORKSPACE.into(),
            provider_id: provider.into(),
            api_key: format!("sk-{id}"),
            ..Default::default()
        };
        edit(&mut credential);
        self.resources().byok_credentials.push(credential);
        self
    }

    /// Adds an active preset (its version 1, with `config` as JSON) to a workspace of the test
    /// organization.
    pub fn with_preset(mut self, slug: &str, workspace_id: &str, config: &str) -> Self {
        self.resources().presets.push(pb::Preset {
            id: format!("preset-{slug}"),
            organization_id: ORG.into(),
            workspace_id: workspace_id.into(),
            slug: slug.into(),
            version_id: format!("presetv-{slug}-1"),
            version: 1,
            config_json: config.into(),
            system_prompt: String::new(),
        });
        self
    }

    /// Edits the last model added: its endpoints, in the order given to `with_model`.
    pub fn edit_endpoints(mut self, edit: impl FnOnce(&mut [pb::Endpoint])) -> Self {
        if let Some(m) = self.resources().models.last_mut() {
            edit(&mut m.endpoints);
        }
        self
    }

    /// Adds a guardrail in the test workspace, unrestricted until `edit` says otherwise.
    pub fn with_guardrail(mut self, id: &str, edit: impl FnOnce(&mut pb::Guardrail)) -> Self {
        let mut g = pb::Guardrail {
            id: id.into(),
            organization_id: ORG.into(),
            workspace_id: WORKSPACE.into(),
            ..Default::default()
        };
        edit(&mut g);
        self.resources().guardrails.push(g);
        self
    }

    /// Adds the test workspace's default guardrail (`DEFAULT_GUARDRAIL`).
    pub fn with_default_guardrail(self, edit: impl FnOnce(&mut pb::Guardrail)) -> Self {
        self.with_guardrail(DEFAULT_GUARDRAIL, |g| {
            g.is_default = true;
            edit(g);
        })
    }

    /// Assigns a guardrail to the last key added.
    pub fn assign_guardrail_to_last_key(mut self, guardrail_id: &str) -> Self {
        let hash = self
            .keys()
            .last()
            .map(|k| k.hash.clone())
            .unwrap_or_default();
        let assignments = &mut self.resources().key_guardrails;
        match assignments.iter_mut().find(|a| a.key_hash == hash) {
            Some(a) => a.guardrail_ids.push(guardrail_id.into()),
            None => assignments.push(pb::KeyGuardrails {
                key_hash: hash,
                guardrail_ids: vec![guardrail_id.into()],
            }),
        }
        self
    }

    /// Assigns a guardrail to a member of the test organization.
    pub fn assign_guardrail_to_member(mut self, user_id: &str, guardrail_id: &str) -> Self {
        self.resources()
            .member_guardrails
            .push(pb::MemberGuardrails {
                organization_id: ORG.into(),
                user_id: user_id.into(),
                guardrail_ids: vec![guardrail_id.into()],
            });
        self
    }

    /// Adds a budget to a workspace.
    pub fn with_workspace_budget(
        mut self,
        workspace_id: &str,
        window: Window,
        limit_usd: &str,
        include_byok: bool,
    ) -> Self {
        self.resources()
            .workspace_budgets
            .push(pb::WorkspaceBudget {
                workspace_id: workspace_id.into(),
                interval: spend_window(window) as i32,
                limit_usd: limit_usd.into(),
                include_byok,
            });
        self
    }

    /// Sets the organization's credits granted, in USD.
    pub fn with_credits(mut self, usd: &str) -> Self {
        for o in &mut self.resources().organizations {
            if o.id == ORG {
                o.credits_usd = usd.into();
            }
        }
        self
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
                owner_user_id: USER.into(),
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

    /// Sets the epoch (the control plane store that numbered the version).
    pub fn epoch(mut self, epoch: &str) -> Self {
        self.message.epoch = epoch.into();
        self
    }

    /// Edits the protobuf directly, to make records the builder would not.
    pub fn edit(mut self, edit: impl FnOnce(&mut pb::Resources)) -> Self {
        edit(self.resources());
        self
    }

    /// The decoded snapshot, quarantined records included (see `Snapshot::quarantine`).
    pub fn build(self) -> Snapshot {
        self.build_with_secret().0
    }

    /// The snapshot and the secret of the last key added.
    pub fn build_with_secret(self) -> (Snapshot, String) {
        let secret = self.secret.clone().unwrap_or_default();
        match Snapshot::decode(self.message, &system_resolver) {
            Ok(s) => (s, secret),
            Err(e) => unreachable!("the builder always sets resources: {e}"),
        }
    }
}

/// An endpoint of `provider` at `prices`, for tests of one stage: no address, the standard
/// parameters, no data retention promises.
pub fn endpoint(
    provider: &str,
    prices: crate::Prices,
    max_output_tokens: u32,
) -> crate::snapshot::Endpoint {
    use crate::snapshot::{DataPolicy, Endpoint, STANDARD_PARAMETERS, Upstream, no_resolver};
    let upstream = match Upstream::parse("http://127.0.0.1:9/v1", &no_resolver) {
        Ok(u) => u,
        Err(e) => unreachable!("a fixed, valid base URL: {e}"),
    };
    Endpoint {
        provider_id: provider.into(),
        provider_name: provider.into(),
        upstream_model: "m".into(),
        path: crate::snapshot::Api::OpenAiChat
            .paths(&upstream.base_path, "m")
            .0,
        stream_path: crate::snapshot::Api::OpenAiChat
            .paths(&upstream.base_path, "m")
            .1,
        api: crate::snapshot::Api::OpenAiChat,
        upstream,
        prices,
        context_length: 8192,
        max_output_tokens,
        authorization: None,
        priority: 0,
        health_id: std::sync::Arc::from(format!("{provider}|m")),
        tag: provider.into(),
        quantization: None,
        supported_parameters: STANDARD_PARAMETERS.iter().map(|p| Box::from(*p)).collect(),
        data: DataPolicy::default(),
        max_prompt_tokens: 0,
        implicit_caching: false,
        quota: crate::routing::Quota::default(),
    }
}
