//! Guardrails, their assignments and workspace budgets: decoded record by record, and indexed
//! once per snapshot so that a request finds its key's guardrails and limits with a few map
//! lookups.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_proto::config::v1 as pb;

use super::keys::{Interner, KeyIndex, parse_hash};
use super::quarantine::{Quarantine, RecordKind};
use super::{Organization, Workspace};
use crate::limits::{Limit, LimitScope};
use crate::money::Money;
use crate::window::Window;

/// A guardrail: restrictions on models, providers and data retention, and an optional budget.
/// Empty allowlists allow everything.
#[derive(Debug)]
pub struct Guardrail {
    pub id: Arc<str>,
    pub organization_id: Arc<str>,
    pub workspace_id: Arc<str>,
    pub budget: Option<Budget>,
    /// Whether BYOK spend counts toward the budget.
    pub include_byok: bool,
    pub allowed_models: Box<[Box<str>]>,
    pub ignored_models: Box<[Box<str>]>,
    pub allowed_providers: Box<[Box<str>]>,
    pub ignored_providers: Box<[Box<str>]>,
    pub zdr: Zdr,
    /// The workspace's default guardrail, which governs all of its keys.
    pub is_default: bool,
}

/// A spend cap over a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub cap: Money,
    pub window: Window,
}

/// Zero-data-retention enforcement per model author group, as OpenRouter groups them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zdr {
    pub anthropic: bool,
    pub openai: bool,
    pub google: bool,
    pub xai: bool,
    pub other: bool,
}

impl Zdr {
    /// Whether requests for `model_id` must use zero-data-retention endpoints. The group is the
    /// model's author, the part of its id before `/`.
    pub fn applies_to(&self, model_id: &str) -> bool {
        let author = model_id.split_once('/').map_or(model_id, |(a, _)| a);
        match author {
            "anthropic" => self.anthropic,
            "openai" => self.openai,
            "google" => self.google,
            // OpenRouter's author slug for xAI.
            "x-ai" | "xai" => self.xai,
            _ => self.other,
        }
    }

    pub fn any(&self) -> bool {
        self.anthropic || self.openai || self.google || self.xai || self.other
    }
}

/// Who is governed by what. Per-key data lives here only for the few keys that hold guardrails
/// of their own, so `ApiKey` stays small.
#[derive(Debug, Default)]
pub struct Policies {
    pub(crate) guardrails: HashMap<Arc<str>, Arc<Guardrail>>,
    pub(crate) workspaces: HashMap<Arc<str>, WorkspacePolicy>,
    /// By user id; a user's guardrails in every organization they belong to.
    pub(crate) members: HashMap<Arc<str>, Vec<MemberGuardrail>>,
    pub(crate) keys: HashMap<[u8; 32], Box<[Arc<Guardrail>]>>,
}

#[derive(Debug, Default)]
pub(crate) struct WorkspacePolicy {
    pub(crate) default_guardrail: Option<Arc<Guardrail>>,
    /// The workspace's budgets, ready to hand out.
    pub(crate) budgets: Vec<Limit>,
}

#[derive(Debug)]
pub(crate) struct MemberGuardrail {
    pub(crate) guardrail: Arc<Guardrail>,
    /// The member's budget under this guardrail, its id built once here.
    pub(crate) limit: Option<Limit>,
}

impl Policies {
    pub fn guardrail(&self, id: &str) -> Option<&Arc<Guardrail>> {
        self.guardrails.get(id)
    }

    pub fn guardrail_count(&self) -> usize {
        self.guardrails.len()
    }
}

/// A guardrail's reset interval on the wire; unspecified or unknown is `None`.
pub(crate) fn window(w: i32) -> Option<Window> {
    match pb::SpendWindow::try_from(w) {
        Ok(pb::SpendWindow::Daily) => Some(Window::Daily),
        Ok(pb::SpendWindow::Weekly) => Some(Window::Weekly),
        Ok(pb::SpendWindow::Monthly) => Some(Window::Monthly),
        Ok(pb::SpendWindow::Lifetime) => Some(Window::Lifetime),
        // Guessing would misapply a budget: the caller sets the record aside.
        _ => None,
    }
}

/// Ids from a repeated field, each non-empty and listed once.
fn id_list(field: &str, ids: Vec<String>) -> Result<Box<[Box<str>]>, String> {
    let mut out: Vec<Box<str>> = Vec::with_capacity(ids.len());
    for id in ids {
        if id.is_empty() {
            return Err(format!("empty id in {field}"));
        }
        if !out.iter().any(|o| **o == *id) {
            out.push(id.into_boxed_str());
        }
    }
    Ok(out.into_boxed_slice())
}

impl Guardrail {
    fn from_proto(g: pb::Guardrail, interner: &mut Interner) -> Result<Self, String> {
        // `|` separates the parts of the spend counter ids built from guardrail ids.
        if g.id.is_empty() || g.id.contains('|') {
            return Err("id must be non-empty and free of `|`".into());
        }
        let budget = if g.limit_usd.is_empty() {
            None
        } else {
            let cap = Money::parse_usd(&g.limit_usd).map_err(|e| format!("limit: {e}"))?;
            let window = window(g.reset_interval).ok_or_else(|| {
                format!(
                    "a limit needs a known reset interval (got {})",
                    g.reset_interval
                )
            })?;
            Some(Budget { cap, window })
        };
        Ok(Guardrail {
            allowed_models: id_list("allowed_models", g.allowed_models)?,
            ignored_models: id_list("ignored_models", g.ignored_models)?,
            allowed_providers: id_list("allowed_providers", g.allowed_providers)?,
            ignored_providers: id_list("ignored_providers", g.ignored_providers)?,
            organization_id: interner.intern(g.organization_id),
            workspace_id: interner.intern(g.workspace_id),
            budget,
            include_byok: g.include_byok,
            zdr: Zdr {
                anthropic: g.enforce_zdr_anthropic,
                openai: g.enforce_zdr_openai,
                google: g.enforce_zdr_google,
                xai: g.enforce_zdr_xai,
                other: g.enforce_zdr_other,
            },
            is_default: g.is_default,
            id: interner.intern(g.id),
        })
    }
}

/// The snapshot's guardrail and budget resources, taken out of `Resources` together.
pub(crate) struct PolicyParts {
    pub(crate) guardrails: Vec<pb::Guardrail>,
    pub(crate) key_guardrails: Vec<pb::KeyGuardrails>,
    pub(crate) member_guardrails: Vec<pb::MemberGuardrails>,
    pub(crate) workspace_budgets: Vec<pb::WorkspaceBudget>,
}

/// Decodes guardrails, their assignments and workspace budgets against the rest of the
/// snapshot. A record that fails is set aside and whoever it governs is blocked: a guardrail's
/// whole workspace when it is the default or its workspace is known, a key or member whose
/// assignment names a guardrail that is missing or set aside, a workspace whose budget is bad.
pub(crate) fn decode(
    parts: PolicyParts,
    organizations: &HashMap<String, Organization>,
    workspaces: &HashMap<String, Workspace>,
    keys: &KeyIndex,
    interner: &mut Interner,
    q: &mut Quarantine,
) -> Policies {
    let mut p = Policies::default();
    // Guardrail ids that were set aside: an assignment naming one blocks its holder.
    let mut poisoned: HashMap<String, ()> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for g in &parts.guardrails {
        *seen.entry(g.id.clone()).or_default() += 1;
    }

    for g in parts.guardrails {
        let id = g.id.clone();
        let workspace = workspaces.get(&g.workspace_id);
        let mut set_aside = |q: &mut Quarantine, reason: String| {
            q.record(RecordKind::Guardrail, &id, reason);
            if let Some(w) = workspace {
                // Whatever the guardrail restricted in its workspace is unknown now.
                q.block_workspace(Arc::from(w.id.as_str()), RecordKind::Guardrail, &id);
            }
            poisoned.insert(id.clone(), ());
        };
        if seen.get(&id).copied().unwrap_or(0) > 1 {
            set_aside(q, "duplicate guardrail id".into());
            continue;
        }
        match workspace {
            None => {
                set_aside(q, format!("unknown workspace {}", g.workspace_id));
                continue;
            }
            Some(w) if w.organization_id != g.organization_id => {
                set_aside(
                    q,
                    format!(
                        "workspace {} is not in organization {}",
                        g.workspace_id, g.organization_id
                    ),
                );
                continue;
            }
            Some(_) => {}
        }
        let is_default = g.is_default;
        let workspace_id = g.workspace_id.clone();
        let guardrail = match Guardrail::from_proto(g, interner) {
            Ok(g) => Arc::new(g),
            Err(reason) => {
                set_aside(q, reason);
                continue;
            }
        };
        if is_default {
            let w = p
                .workspaces
                .entry(guardrail.workspace_id.clone())
                .or_default();
            if w.default_guardrail.is_some() {
                // Neither can be trusted to be the one meant: the workspace is blocked.
                set_aside(
                    q,
                    format!("workspace {workspace_id} has a second default guardrail"),
                );
                continue;
            }
            w.default_guardrail = Some(guardrail.clone());
        }
        p.guardrails.insert(guardrail.id.clone(), guardrail);
    }

    // An assigned guardrail must exist, belong to the holder's organization, and not be a
    // default (which already governs its whole workspace).
    let assignable = |id: &str, organization: &str| match p.guardrails.get(id) {
        _ if poisoned.contains_key(id) => Err(format!("guardrail {id} was set aside")),
        None => Err(format!("unknown guardrail {id}")),
        Some(g) if *g.organization_id != *organization => Err(format!(
            "guardrail {id} is not in organization {organization}"
        )),
        Some(g) if g.is_default => Err(format!(
            "guardrail {id} is a workspace default and cannot be assigned"
        )),
        Some(g) => Ok(g.clone()),
    };

    let mut key_guardrails: HashMap<[u8; 32], Box<[Arc<Guardrail>]>> =
        HashMap::with_capacity(parts.key_guardrails.len());
    for a in parts.key_guardrails {
        let Some(hash) = parse_hash(&a.key_hash) else {
            q.record(RecordKind::KeyGuardrails, &a.key_hash, "malformed key hash");
            continue;
        };
        let Some(key) = keys.get(&hash) else {
            // No such key: nothing can authenticate with it, so nothing to block.
            q.record(RecordKind::KeyGuardrails, &a.key_hash, "unknown key");
            continue;
        };
        let mut held: Vec<Arc<Guardrail>> = Vec::with_capacity(a.guardrail_ids.len());
        let mut failure = None;
        for id in &a.guardrail_ids {
            match assignable(id, &key.organization_id) {
                Ok(g) if held.iter().any(|h| Arc::ptr_eq(h, &g)) => {}
                Ok(g) => held.push(g),
                Err(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        if failure.is_none() && key_guardrails.contains_key(&hash) {
            failure = Some("listed twice".into());
        }
        match failure {
            Some(reason) => {
                q.record(RecordKind::KeyGuardrails, &a.key_hash, reason);
                q.block_key(hash, RecordKind::KeyGuardrails, &a.key_hash);
            }
            None => {
                key_guardrails.insert(hash, held.into_boxed_slice());
            }
        }
    }

    let mut members: HashMap<Arc<str>, Vec<MemberGuardrail>> = HashMap::new();
    for a in parts.member_guardrails {
        let holder = format!("{}|{}", a.organization_id, a.user_id);
        if a.user_id.is_empty() || !organizations.contains_key(&a.organization_id) {
            q.record(
                RecordKind::MemberGuardrails,
                &holder,
                "unknown organization or empty user id",
            );
            continue;
        }
        let user = interner.intern(a.user_id);
        let mut resolved = Vec::with_capacity(a.guardrail_ids.len());
        let mut failure = None;
        for id in &a.guardrail_ids {
            match assignable(id, &a.organization_id) {
                Ok(g) => resolved.push(g),
                Err(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            q.record(RecordKind::MemberGuardrails, &holder, reason);
            let organization = interner.intern(a.organization_id);
            q.block_member(organization, user, RecordKind::MemberGuardrails, &holder);
            continue;
        }
        let held = members.entry(user.clone()).or_default();
        for g in resolved {
            if held.iter().any(|m| Arc::ptr_eq(&m.guardrail, &g)) {
                continue;
            }
            let limit = g.budget.map(|b| Limit {
                scope: LimitScope::Member,
                id: Arc::from(format!("{user}|{}", g.id)),
                window: b.window,
                cap: b.cap,
                include_byok: g.include_byok,
            });
            held.push(MemberGuardrail {
                guardrail: g,
                limit,
            });
        }
    }

    for b in parts.workspace_budgets {
        let interval =
            window(b.interval).map_or_else(|| b.interval.to_string(), |w| w.name().into());
        let id = format!("{}|{interval}", b.workspace_id);
        if !workspaces.contains_key(&b.workspace_id) {
            q.record(RecordKind::WorkspaceBudget, &id, "unknown workspace");
            continue;
        }
        let workspace = interner.intern(b.workspace_id.clone());
        let decoded = match window(b.interval) {
            None => Err(format!("unknown interval {}", b.interval)),
            Some(window) => Money::parse_usd(&b.limit_usd)
                .map(|cap| (window, cap))
                .map_err(|e| format!("limit: {e}")),
        };
        let w = p.workspaces.entry(workspace.clone()).or_default();
        let failure = match decoded {
            Err(reason) => Some(reason),
            Ok((window, _)) if w.budgets.iter().any(|l| l.window == window) => {
                Some(format!("two {} budgets", window.name()))
            }
            Ok((window, cap)) => {
                w.budgets.push(Limit {
                    scope: LimitScope::Workspace,
                    id: workspace.clone(),
                    window,
                    cap,
                    include_byok: b.include_byok,
                });
                None
            }
        };
        if let Some(reason) = failure {
            q.record(RecordKind::WorkspaceBudget, &id, reason);
            q.block_workspace(workspace, RecordKind::WorkspaceBudget, &id);
        }
    }

    p.keys = key_guardrails;
    p.members = members;
    p
}
