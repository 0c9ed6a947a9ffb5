//! Spend limits: which budgets a key's requests count against. The dataplane enforces exactly
//! these; the control plane's reconciliation and its `GET /key` budget layers read the same
//! list, so the three can never disagree.
//!
//! A [`Limit`] names one spend counter (`scope`, `id`, `window`) and the cap on it. Two limits
//! share a counter exactly when they share those three values. What each scope counts,
//! following OpenRouter's layering (guardrail budgets are per entity, never a pool shared by
//! everyone the guardrail is assigned to):
//!
//! - `Key`, id = the key's hash (hex): the key's own limit.
//! - `Workspace`, id = the workspace id: everything spent in the workspace (its budgets).
//! - `Member`, id = `<user id>|<guardrail id>`: the member's spend under that guardrail.
//! - `Guardrail`, id = `<guardrail id>|<key hash>`: one key's spend under that guardrail.
//! - `Credits`, id = the organization id: everything the organization ever spent.
//!
//! A guardrail assigned to a member caps that member's total across their keys in the
//! guardrail's workspace (`Member`); one assigned to a key caps that key (`Guardrail`). A
//! workspace's default guardrail caps both: each member's total in the workspace and each key.
//! The guardrail id is folded into the counter's id so that two guardrails with different
//! windows or BYOK rules never share a counter; [`Limit::guardrail_id`] recovers it.

use std::sync::Arc;

use crate::counters::counter_key;
use crate::money::Money;
use crate::snapshot::{ApiKey, Guardrail, Snapshot};
use crate::window::Window;

/// Whose spend a limit counts; see the module documentation for each scope's `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitScope {
    Key,
    Member,
    Workspace,
    Guardrail,
    Credits,
}

impl LimitScope {
    /// A fixed, low-cardinality label (for counter keys and metrics).
    pub fn label(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::Member => "member",
            LimitScope::Workspace => "workspace",
            LimitScope::Guardrail => "guardrail",
            LimitScope::Credits => "credits",
        }
    }
}

/// One spend cap a request must fit under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub scope: LimitScope,
    /// Key hash hex, `<user>|<guardrail>`, workspace id, `<guardrail>|<key hash>` or
    /// organization id, by scope.
    pub id: Arc<str>,
    pub window: Window,
    pub cap: Money,
    /// Whether BYOK spend counts toward the cap.
    pub include_byok: bool,
}

/// The part of the usage ledger a counter must add up to, for reconciliation and reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ledger {
    /// Generations of one key.
    Key(String),
    /// Generations of one member's keys in one workspace.
    Member {
        user_id: String,
        workspace_id: String,
    },
    /// Generations of every key in a workspace.
    Workspace(String),
    /// Generations of every key of an organization.
    Organization(String),
}

impl Limit {
    /// The guardrail that carries this limit, for `Member` and `Guardrail` scopes.
    pub fn guardrail_id(&self) -> Option<&str> {
        match self.scope {
            // Guardrail ids never contain `|` (the snapshot refuses them); user ids might.
            LimitScope::Member => self.id.rsplit_once('|').map(|(_, g)| g),
            LimitScope::Guardrail => self.id.split_once('|').map(|(g, _)| g),
            _ => None,
        }
    }

    /// This limit's counter in the window containing `now_ms`, for a key of `organization_id`.
    pub fn counter_key(&self, organization_id: &str, now_ms: i64) -> String {
        counter_key(
            organization_id,
            self.scope,
            &self.id,
            &self.window.span(now_ms).id,
        )
    }

    /// What this limit's counter sums, for a limit that applies to `key`. A member's guardrail
    /// budgets apply only in the key's workspace, so the member's ledger is that workspace's.
    pub fn ledger(&self, key: &ApiKey) -> Ledger {
        match self.scope {
            LimitScope::Key | LimitScope::Guardrail => Ledger::Key(key.limit_id_hex()),
            LimitScope::Member => Ledger::Member {
                user_id: key.owner_user_id.to_string(),
                workspace_id: key.workspace_id.to_string(),
            },
            LimitScope::Workspace => Ledger::Workspace(key.workspace_id.to_string()),
            LimitScope::Credits => Ledger::Organization(key.organization_id.to_string()),
        }
    }
}

fn push_unique(list: &mut Vec<Arc<Guardrail>>, g: &Arc<Guardrail>) {
    if !list.iter().any(|o| Arc::ptr_eq(o, g)) {
        list.push(g.clone());
    }
}

/// The id key-scoped limits count on (the key's rotation line's first hash), encoded once.
fn hex_of<'a>(cache: &'a mut Option<String>, key: &ApiKey) -> &'a str {
    cache.get_or_insert_with(|| key.limit_id_hex())
}

impl Snapshot {
    /// The guardrails governing a key, most general first: its workspace's default, then its
    /// member's (those in the key's workspace), then the key's own; each at most once.
    pub fn guardrails_for(&self, key: &ApiKey) -> Vec<Arc<Guardrail>> {
        let p = &self.policies;
        let mut out = Vec::new();
        if let Some(d) = p
            .workspaces
            .get(&*key.workspace_id)
            .and_then(|w| w.default_guardrail.as_ref())
        {
            out.push(d.clone());
        }
        for m in self.member_guardrails(key) {
            push_unique(&mut out, &m.guardrail);
        }
        if let Some(own) = self.key_guardrails(key) {
            for g in own {
                push_unique(&mut out, g);
            }
        }
        out
    }

    /// Every spend limit a request with `key` must fit under: the key's own limit, its
    /// workspace's budgets, its guardrails' budgets and its organization's credits. See the
    /// module documentation for what each one counts.
    pub fn limits_for(&self, key: &ApiKey) -> Vec<Limit> {
        let p = &self.policies;
        let workspace = p.workspaces.get(&*key.workspace_id);
        let mut out = Vec::with_capacity(4);
        // Encoded at most once: the ids of key-scoped limits contain the key's lineage hash.
        let mut hash_hex: Option<String> = None;

        if let Some(cap) = key.limit {
            out.push(Limit {
                scope: LimitScope::Key,
                id: Arc::from(hex_of(&mut hash_hex, key)),
                window: key.limit_window,
                cap,
                include_byok: key.include_byok_in_limit,
            });
        }
        if let Some(w) = workspace {
            out.extend(w.budgets.iter().cloned());
        }
        if let Some(d) = workspace.and_then(|w| w.default_guardrail.as_ref())
            && let Some(b) = d.budget
        {
            out.push(Limit {
                scope: LimitScope::Member,
                id: Arc::from(format!("{}|{}", key.owner_user_id, d.id)),
                window: b.window,
                cap: b.cap,
                include_byok: d.include_byok,
            });
            out.push(Limit {
                scope: LimitScope::Guardrail,
                id: Arc::from(format!("{}|{}", d.id, hex_of(&mut hash_hex, key))),
                window: b.window,
                cap: b.cap,
                include_byok: d.include_byok,
            });
        }
        for m in self.member_guardrails(key) {
            if let Some(limit) = &m.limit
                && !out
                    .iter()
                    .any(|l| l.scope == limit.scope && l.id == limit.id)
            {
                out.push(limit.clone());
            }
        }
        if let Some(own) = self.key_guardrails(key) {
            for g in own.iter().filter(|g| !g.is_default) {
                if let Some(b) = g.budget {
                    out.push(Limit {
                        scope: LimitScope::Guardrail,
                        id: Arc::from(format!("{}|{}", g.id, hex_of(&mut hash_hex, key))),
                        window: b.window,
                        cap: b.cap,
                        include_byok: g.include_byok,
                    });
                }
            }
        }
        if let Some(org) = self.organizations.get(&*key.organization_id) {
            out.push(Limit {
                scope: LimitScope::Credits,
                id: key.organization_id.clone(),
                window: Window::Lifetime,
                cap: org.credits,
                // Credits pay for inference the gateway bills; BYOK spend is the customer's
                // own provider bill.
                include_byok: false,
            });
        }
        out
    }

    /// The key's member's guardrails that apply in the key's workspace.
    fn member_guardrails<'a>(
        &'a self,
        key: &'a ApiKey,
    ) -> impl Iterator<Item = &'a crate::snapshot::guardrails::MemberGuardrail> {
        self.policies
            .members
            .get(&*key.owner_user_id)
            .into_iter()
            .flatten()
            .filter(|m| *m.guardrail.workspace_id == *key.workspace_id)
    }

    fn key_guardrails(&self, key: &ApiKey) -> Option<&[Arc<Guardrail>]> {
        // Most keys hold no guardrail of their own: skip hashing when nobody does.
        if self.policies.keys.is_empty() {
            return None;
        }
        self.policies.keys.get(&key.hash).map(|g| &**g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{DEFAULT_GUARDRAIL, ORG, SnapshotBuilder, USER, WORKSPACE, key_hash};
    use switchyard_proto::config::v1 as pb;

    fn hash(n: usize) -> [u8; 32] {
        let mut h = [0u8; 32];
        hex::decode_to_slice(key_hash(n), &mut h).unwrap();
        h
    }

    fn ids(guardrails: &[Arc<Guardrail>]) -> Vec<&str> {
        guardrails.iter().map(|g| &*g.id).collect()
    }

    fn usd(text: &str) -> Money {
        Money::parse_usd(text).unwrap()
    }

    fn budget(limit: &str, window: pb::SpendWindow) -> impl FnOnce(&mut pb::Guardrail) {
        let limit = limit.to_owned();
        move |g| {
            g.limit_usd = limit;
            g.reset_interval = window as i32;
        }
    }

    #[test]
    fn a_key_is_governed_by_its_default_member_and_own_guardrails_once_each() {
        let s = SnapshotBuilder::new()
            .with_workspace("ws-team")
            .with_default_guardrail(|_| {})
            .with_guardrail("gr_member", |_| {})
            .with_guardrail("gr_key", |_| {})
            .with_guardrail("gr_team", |g| g.workspace_id = "ws-team".into())
            .with_guardrail("gr_other_user", |_| {})
            .assign_guardrail_to_member(USER, "gr_member")
            .assign_guardrail_to_member(USER, "gr_key")
            .assign_guardrail_to_member(USER, "gr_team")
            .assign_guardrail_to_member("someone-else", "gr_other_user")
            .with_inference_key()
            .assign_guardrail_to_last_key("gr_key")
            .assign_guardrail_to_last_key("gr_key")
            .with_inference_key_where(|k| k.workspace_id = "ws-team".into())
            .build();
        assert!(s.quarantine.is_empty(), "{:?}", s.quarantine.records());
        let key = s.keys.get(&hash(0)).unwrap();
        assert_eq!(
            ids(&s.guardrails_for(key)),
            [DEFAULT_GUARDRAIL, "gr_member", "gr_key"],
            "member guardrails of other workspaces do not apply; duplicates are dropped"
        );
        // The team workspace has no default guardrail; the member's team guardrail applies.
        let team_key = s.keys.get(&hash(1)).unwrap();
        assert_eq!(ids(&s.guardrails_for(team_key)), ["gr_team"]);
        assert_eq!(s.policies.guardrail_count(), 5);
        assert!(s.policies.guardrail("gr_key").is_some());
    }

    #[test]
    fn a_key_without_guardrails_has_only_its_credit_limit() {
        let s = SnapshotBuilder::new().with_inference_key().build();
        let key = s.keys.get(&hash(0)).unwrap();
        assert!(s.guardrails_for(key).is_empty());
        assert_eq!(
            s.limits_for(key),
            [Limit {
                scope: LimitScope::Credits,
                id: Arc::from(ORG),
                window: Window::Lifetime,
                cap: Money::ZERO,
                include_byok: false,
            }]
        );
    }

    #[test]
    fn limits_cover_the_key_workspace_guardrails_and_credits() {
        let s = SnapshotBuilder::new()
            .with_credits("100.25")
            .with_workspace_budget(WORKSPACE, Window::Monthly, "500", true)
            .with_workspace_budget(WORKSPACE, Window::Daily, "20.5", false)
            .with_default_guardrail(budget("10", pb::SpendWindow::Weekly))
            .with_guardrail("gr_member", |g| {
                budget("5", pb::SpendWindow::Daily)(g);
                g.include_byok = true;
            })
            .with_guardrail("gr_nobudget", |_| {})
            .with_guardrail("gr_key", budget("0.0000000015", pb::SpendWindow::Monthly))
            .assign_guardrail_to_member(USER, "gr_member")
            .assign_guardrail_to_member(USER, "gr_nobudget")
            .with_inference_key_where(|k| {
                k.limit_usd = "1.5".into();
                k.limit_reset = pb::LimitReset::Daily as i32;
                k.include_byok_in_limit = true;
            })
            .assign_guardrail_to_last_key("gr_key")
            .build();
        let key = s.keys.get(&hash(0)).unwrap();
        let h = key_hash(0);
        let limit = |scope, id: &str, window, cap: &str, include_byok| Limit {
            scope,
            id: Arc::from(id),
            window,
            cap: usd(cap),
            include_byok,
        };
        use LimitScope::*;
        let member_default = format!("{USER}|{DEFAULT_GUARDRAIL}");
        let key_default = format!("{DEFAULT_GUARDRAIL}|{h}");
        let member_own = format!("{USER}|gr_member");
        let key_own = format!("gr_key|{h}");
        assert_eq!(
            s.limits_for(key),
            [
                limit(Key, &h, Window::Daily, "1.5", true),
                limit(Workspace, WORKSPACE, Window::Monthly, "500", true),
                limit(Workspace, WORKSPACE, Window::Daily, "20.5", false),
                limit(Member, &member_default, Window::Weekly, "10", false),
                limit(Guardrail, &key_default, Window::Weekly, "10", false),
                limit(Member, &member_own, Window::Daily, "5", true),
                // Exact to the picodollar: no rounding to a coarser unit.
                limit(Guardrail, &key_own, Window::Monthly, "0.0000000015", false),
                limit(Credits, ORG, Window::Lifetime, "100.25", false),
            ]
        );
        let limits = s.limits_for(key);
        let folded: Vec<Option<&str>> = limits.iter().map(Limit::guardrail_id).collect();
        assert_eq!(
            folded,
            [
                None,
                None,
                None,
                Some(DEFAULT_GUARDRAIL),
                Some(DEFAULT_GUARDRAIL),
                Some("gr_member"),
                Some("gr_key"),
                None
            ]
        );
    }

    #[test]
    fn a_keys_own_limit_without_reset_is_a_lifetime_limit() {
        let s = SnapshotBuilder::new()
            .with_inference_key_where(|k| k.limit_usd = "2".into())
            .build();
        let limits = s.limits_for(s.keys.get(&hash(0)).unwrap());
        assert_eq!(limits[0].scope, LimitScope::Key);
        assert_eq!(limits[0].window, Window::Lifetime);
        assert_eq!(limits[0].cap, usd("2"));
    }

    #[test]
    fn each_limit_names_its_counter_and_the_ledger_it_adds_up_to() {
        let s = SnapshotBuilder::new()
            .with_workspace_budget(WORKSPACE, Window::Monthly, "500", false)
            .with_default_guardrail(budget("10", pb::SpendWindow::Weekly))
            .with_inference_key_where(|k| k.limit_usd = "2".into())
            .build();
        let key = s.keys.get(&hash(0)).unwrap();
        let h = key_hash(0);
        // 2026-11-23T12:00:00Z, a Monday.
        let now = 1_795_435_200_000;
        let named: Vec<(String, Ledger)> = s
            .limits_for(key)
            .iter()
            .map(|l| (l.counter_key(&key.organization_id, now), l.ledger(key)))
            .collect();
        let member = Ledger::Member {
            user_id: USER.into(),
            workspace_id: WORKSPACE.into(),
        };
        assert_eq!(
            named,
            [
                (
                    format!("{{org:{ORG}}}:sp:key:{h}:l"),
                    Ledger::Key(h.clone())
                ),
                (
                    format!("{{org:{ORG}}}:sp:workspace:{WORKSPACE}:m20261101"),
                    Ledger::Workspace(WORKSPACE.into())
                ),
                (
                    format!("{{org:{ORG}}}:sp:member:{USER}|{DEFAULT_GUARDRAIL}:w20261123"),
                    member
                ),
                (
                    format!("{{org:{ORG}}}:sp:guardrail:{DEFAULT_GUARDRAIL}|{h}:w20261123"),
                    Ledger::Key(h.clone())
                ),
                (
                    format!("{{org:{ORG}}}:sp:credits:{ORG}:l"),
                    Ledger::Organization(ORG.into())
                ),
            ]
        );
    }

    #[test]
    fn guardrail_ids_are_recovered_from_folded_ids() {
        let limit = |scope, id: &str| Limit {
            scope,
            id: Arc::from(id),
            window: Window::Daily,
            cap: Money::from_pico(1),
            include_byok: false,
        };
        assert_eq!(
            limit(LimitScope::Member, "user_1|gr_1").guardrail_id(),
            Some("gr_1")
        );
        assert_eq!(
            limit(LimitScope::Guardrail, "gr_1|abcd").guardrail_id(),
            Some("gr_1")
        );
        assert_eq!(limit(LimitScope::Key, "abcd").guardrail_id(), None);
        assert_eq!(limit(LimitScope::Workspace, "ws|x").guardrail_id(), None);
    }
}
