//! Quarantine: records of a snapshot that failed validation, set aside one by one so that the
//! rest of the snapshot is published.
//!
//! Setting a record aside must never loosen anything, so what depends on it fails closed:
//! - an invalid key, or a key whose organization, workspace, member assignment, guardrail or
//!   workspace budget is invalid, is *blocked*: it authenticates, and is refused with a reason;
//! - an invalid model, or a model left without a valid endpoint, is unavailable;
//! - an invalid endpoint is left out of its model's routes;
//! - an unusable BYOK credential keeps its restrictions (`is_byok_only`, `is_required`) but is
//!   never sent (see `ByokCredential::usable`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::keys::ApiKey;

/// The kind of a snapshot record, with a fixed label for acks and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Organization,
    Workspace,
    Key,
    Model,
    Endpoint,
    Guardrail,
    KeyGuardrails,
    MemberGuardrails,
    WorkspaceBudget,
    ByokCredential,
    /// A preset's designated version: requests naming the preset are refused.
    Preset,
    /// A workspace's routing default: left out, nothing is refused.
    WorkspaceDefaults,
}

impl RecordKind {
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Organization => "organization",
            RecordKind::Workspace => "workspace",
            RecordKind::Key => "key",
            RecordKind::Model => "model",
            RecordKind::Endpoint => "endpoint",
            RecordKind::Guardrail => "guardrail",
            RecordKind::KeyGuardrails => "key_guardrails",
            RecordKind::MemberGuardrails => "member_guardrails",
            RecordKind::WorkspaceBudget => "workspace_budget",
            RecordKind::ByokCredential => "byok_credential",
            RecordKind::Preset => "preset",
            RecordKind::WorkspaceDefaults => "workspace_defaults",
        }
    }

    pub fn from_label(label: &str) -> Option<RecordKind> {
        use RecordKind::*;
        [
            Organization,
            Workspace,
            Key,
            Model,
            Endpoint,
            Guardrail,
            KeyGuardrails,
            MemberGuardrails,
            WorkspaceBudget,
            ByokCredential,
            Preset,
            WorkspaceDefaults,
        ]
        .into_iter()
        .find(|k| k.label() == label)
    }
}

/// One record set aside, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub kind: RecordKind,
    pub id: String,
    pub reason: String,
}

impl fmt::Display for Quarantined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind.label(), self.id, self.reason)
    }
}

/// Why a key is refused: the record it depends on that was set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub kind: RecordKind,
    pub id: Arc<str>,
}

#[derive(Clone, Debug, Default)]
pub struct Quarantine {
    records: Vec<Quarantined>,
    keys: HashMap<[u8; 32], Blocked>,
    /// By (organization, user).
    members: HashMap<(Arc<str>, Arc<str>), Blocked>,
    workspaces: HashMap<Arc<str>, Blocked>,
    organizations: HashMap<Arc<str>, Blocked>,
    models: HashMap<String, Blocked>,
}

impl Quarantine {
    /// Every record set aside, in the order found.
    pub fn records(&self) -> &[Quarantined] {
        &self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Why requests with `key` must be refused, if anything it depends on was set aside. Costs
    /// nothing when nothing is quarantined.
    pub fn blocking(&self, key: &ApiKey) -> Option<&Blocked> {
        if self.records.is_empty() {
            return None;
        }
        self.keys
            .get(&key.hash)
            .or_else(|| self.workspaces.get(&*key.workspace_id))
            .or_else(|| self.organizations.get(&*key.organization_id))
            .or_else(|| {
                self.members
                    .get(&(key.organization_id.clone(), key.owner_user_id.clone()))
            })
    }

    /// Why a model is unavailable, if its record (or every endpoint of it) was set aside.
    pub fn model(&self, id: &str) -> Option<&Blocked> {
        self.models.get(id)
    }

    pub(crate) fn record(&mut self, kind: RecordKind, id: &str, reason: impl Into<String>) {
        self.records.push(Quarantined {
            kind,
            id: id.to_owned(),
            reason: reason.into(),
        });
    }

    fn cause(kind: RecordKind, id: &str) -> Blocked {
        Blocked {
            kind,
            id: Arc::from(id),
        }
    }

    pub(crate) fn block_key(&mut self, hash: [u8; 32], kind: RecordKind, id: &str) {
        self.keys
            .entry(hash)
            .or_insert_with(|| Self::cause(kind, id));
    }

    /// Forgets what the keys' own records caused (before changed records of them are decoded):
    /// their records and their blocks, unless a key's guardrail assignment also blocks it.
    /// `keys` pairs each hash with its id (the hex hash).
    pub(crate) fn forget_keys(&mut self, keys: &[([u8; 32], &str)]) {
        if self.records.is_empty() {
            return;
        }
        let ids: std::collections::HashSet<&str> = keys.iter().map(|(_, id)| *id).collect();
        self.records
            .retain(|r| !(r.kind == RecordKind::Key && ids.contains(r.id.as_str())));
        for (hash, id) in keys {
            if self
                .keys
                .get(hash)
                .is_some_and(|b| b.kind == RecordKind::Key)
            {
                self.keys.remove(hash);
                if self
                    .records
                    .iter()
                    .any(|r| r.kind == RecordKind::KeyGuardrails && r.id == *id)
                {
                    self.block_key(*hash, RecordKind::KeyGuardrails, id);
                }
            }
        }
    }

    pub(crate) fn block_member(
        &mut self,
        organization: Arc<str>,
        user: Arc<str>,
        kind: RecordKind,
        id: &str,
    ) {
        self.members
            .entry((organization, user))
            .or_insert_with(|| Self::cause(kind, id));
    }

    pub(crate) fn block_workspace(&mut self, workspace: Arc<str>, kind: RecordKind, id: &str) {
        self.workspaces
            .entry(workspace)
            .or_insert_with(|| Self::cause(kind, id));
    }

    pub(crate) fn block_organization(
        &mut self,
        organization: Arc<str>,
        kind: RecordKind,
        id: &str,
    ) {
        self.organizations
            .entry(organization)
            .or_insert_with(|| Self::cause(kind, id));
    }

    pub(crate) fn block_model(&mut self, model: &str, kind: RecordKind, id: &str) {
        self.models
            .entry(model.to_owned())
            .or_insert_with(|| Self::cause(kind, id));
    }
}
