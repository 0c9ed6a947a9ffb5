//! Spend limits: which budgets a key's requests count against, resolved from the snapshot.
//!
//! A [`Limit`] names one spend counter (`scope`, `id`, `window`) and the cap on it. The spend
//! subsystem keeps one counter per distinct `(scope, id, window)`; this module only decides
//! which counters a key touches, so two limits share a counter exactly when they share those
//! three values.
//!
//! What each limit counts, following OpenRouter's layering (guardrail budgets are per entity,
//! never a pool shared by everyone the guardrail is assigned to):
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

use std::collections::HashMap;
use std::sync::Arc;

use super::model::{ApiKey, Guardrail, LimitReset, Snapshot};
use crate::money::MoneyError;

/// The period a limit counts spend over: UTC calendar periods, weeks starting on Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Daily,
    Weekly,
    Monthly,
    /// Never resets.
    Lifetime,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
            Window::Lifetime => "lifetime",
        }
    }
}

/// Whose spend a limit counts; see the module documentation for each scope's `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitScope {
    Key,
    Member,
    Workspace,
    Guardrail,
    Credits,
}

impl LimitScope {
    /// A fixed, low-cardinality label (for counter keys and metrics).
    pub fn as_str(self) -> &'static str {
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
    /// The cap in nanodollars (10⁻⁹ USD), rounded down from the configured amount.
    pub limit_nanos: u64,
    /// Whether BYOK spend counts toward the cap.
    pub include_byok: bool,
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
}

/// Nanodollars per USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Parses a decimal USD string (`"12.5"`) into nanodollars. Digits past the ninth decimal are
/// below a nanodollar and are dropped, so a limit rounds down and never allows more than was
/// configured. Signs, exponents and anything but digits and one dot are refused.
pub fn parse_nanos_floor(text: &str) -> Result<u64, MoneyError> {
    let malformed = || MoneyError::Malformed(text.to_owned());
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(malformed());
    }
    let overflow = || MoneyError::Overflow(text.to_owned());
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let frac = frac.as_bytes();
    let mut nanos = 0u64;
    for i in 0..9 {
        let digit = frac.get(i).map_or(0, |b| u64::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    whole
        .checked_mul(NANOS_PER_USD)
        .and_then(|w| w.checked_add(nanos))
        .ok_or_else(overflow)
}

/// Who is governed by what, indexed once per snapshot so that a request resolves its key's
/// guardrails and limits with a few map lookups. Per-key data lives here only for the few keys
/// that hold guardrails of their own, so `ApiKey` stays small.
#[derive(Debug, Default)]
pub struct Policies {
    pub(super) guardrails: HashMap<Arc<str>, Arc<Guardrail>>,
    pub(super) workspaces: HashMap<Arc<str>, WorkspacePolicy>,
    /// By user id; a user's guardrails in every organization they belong to.
    pub(super) members: HashMap<Arc<str>, Vec<MemberGuardrail>>,
    pub(super) keys: HashMap<[u8; 32], Box<[Arc<Guardrail>]>>,
}

#[derive(Debug, Default)]
pub(super) struct WorkspacePolicy {
    pub(super) default_guardrail: Option<Arc<Guardrail>>,
    /// The workspace's budgets, ready to hand out.
    pub(super) budgets: Vec<Limit>,
}

#[derive(Debug)]
pub(super) struct MemberGuardrail {
    pub(super) guardrail: Arc<Guardrail>,
    /// The member's budget under this guardrail, its id built once here.
    pub(super) limit: Option<Limit>,
}

impl Policies {
    pub fn guardrail(&self, id: &str) -> Option<&Arc<Guardrail>> {
        self.guardrails.get(id)
    }

    pub fn guardrail_count(&self) -> usize {
        self.guardrails.len()
    }
}

fn push_unique(list: &mut Vec<Arc<Guardrail>>, g: &Arc<Guardrail>) {
    if !list.iter().any(|o| Arc::ptr_eq(o, g)) {
        list.push(g.clone());
    }
}

fn hex_of<'a>(cache: &'a mut Option<String>, key: &ApiKey) -> &'a str {
    cache.get_or_insert_with(|| key.hash_hex())
}

fn key_window(reset: LimitReset) -> Window {
    match reset {
        LimitReset::Daily => Window::Daily,
        LimitReset::Weekly => Window::Weekly,
        LimitReset::Monthly => Window::Monthly,
        LimitReset::Never => Window::Lifetime,
    }
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
        // Encoded at most once: the ids of key-scoped limits contain the key's hash.
        let mut hash_hex: Option<String> = None;

        if let Some(limit) = key.limit {
            out.push(Limit {
                scope: LimitScope::Key,
                id: Arc::from(hex_of(&mut hash_hex, key)),
                window: key_window(key.limit_reset),
                // Picodollars to nanodollars, rounding down like every other limit.
                limit_nanos: limit.0 / 1000,
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
                limit_nanos: b.limit_nanos,
                include_byok: d.include_byok,
            });
            out.push(Limit {
                scope: LimitScope::Guardrail,
                id: Arc::from(format!("{}|{}", d.id, hex_of(&mut hash_hex, key))),
                window: b.window,
                limit_nanos: b.limit_nanos,
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
                        limit_nanos: b.limit_nanos,
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
                limit_nanos: org.credits_nanos,
                // Credits pay for OpenRouter-billed inference only; BYOK spend is the
                // customer's own provider bill.
                include_byok: false,
            });
        }
        out
    }

    /// The key's member's guardrails that apply in the key's workspace.
    fn member_guardrails<'a>(
        &'a self,
        key: &'a ApiKey,
    ) -> impl Iterator<Item = &'a MemberGuardrail> {
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

    #[test]
    fn usd_parses_to_nanos_rounding_down() {
        assert_eq!(parse_nanos_floor("0").unwrap(), 0);
        assert_eq!(parse_nanos_floor("12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_nanos_floor(".25").unwrap(), 250_000_000);
        assert_eq!(parse_nanos_floor("3.").unwrap(), 3_000_000_000);
        assert_eq!(parse_nanos_floor("0.000000001").unwrap(), 1);
        // Below a nanodollar: dropped, never rounded up.
        assert_eq!(parse_nanos_floor("0.0000000019").unwrap(), 1);
        assert_eq!(parse_nanos_floor("1.9999999999999").unwrap(), 1_999_999_999);
        assert_eq!(
            parse_nanos_floor("18446744073.709551615").unwrap(),
            u64::MAX
        );
        assert!(matches!(
            parse_nanos_floor("18446744073.709551616"),
            Err(MoneyError::Overflow(_))
        ));
        for bad in ["", ".", "-1", "+1", "1e3", "1.2.3", " 1", "1,5", "0x10"] {
            assert!(
                matches!(parse_nanos_floor(bad), Err(MoneyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    use crate::snapshot::SnapshotError;
    use crate::testing::{DEFAULT_GUARDRAIL, SnapshotBuilder, USER, WORKSPACE, key_hash};
    use switchyard_proto::config::v1 as pb;

    fn hash(n: usize) -> [u8; 32] {
        let mut h = [0u8; 32];
        hex::decode_to_slice(key_hash(n), &mut h).unwrap();
        h
    }

    fn ids(guardrails: &[Arc<Guardrail>]) -> Vec<&str> {
        guardrails.iter().map(|g| &*g.id).collect()
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
                id: Arc::from(crate::testing::ORG),
                window: Window::Lifetime,
                limit_nanos: 0,
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
        let limit = |scope, id: &str, window, limit_nanos, include_byok| Limit {
            scope,
            id: Arc::from(id),
            window,
            limit_nanos,
            include_byok,
        };
        use LimitScope::*;
        assert_eq!(
            s.limits_for(key),
            [
                limit(Key, &h, Window::Daily, 1_500_000_000, true),
                limit(Workspace, WORKSPACE, Window::Monthly, 500_000_000_000, true),
                limit(Workspace, WORKSPACE, Window::Daily, 20_500_000_000, false),
                limit(
                    Member,
                    &format!("{USER}|{DEFAULT_GUARDRAIL}"),
                    Window::Weekly,
                    10_000_000_000,
                    false
                ),
                limit(
                    Guardrail,
                    &format!("{DEFAULT_GUARDRAIL}|{h}"),
                    Window::Weekly,
                    10_000_000_000,
                    false
                ),
                limit(
                    Member,
                    &format!("{USER}|gr_member"),
                    Window::Daily,
                    5_000_000_000,
                    true
                ),
                // 1.5 nanodollars round down to 1.
                limit(Guardrail, &format!("gr_key|{h}"), Window::Monthly, 1, false),
                limit(
                    Credits,
                    crate::testing::ORG,
                    Window::Lifetime,
                    100_250_000_000,
                    false
                ),
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
        assert_eq!(limits[0].limit_nanos, 2_000_000_000);
    }

    fn rejected(builder: SnapshotBuilder) -> String {
        match crate::snapshot::Snapshot::try_from(builder.message()) {
            Ok(_) => panic!("snapshot was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn invalid_guardrails_reject_the_snapshot() {
        let cases: Vec<(SnapshotBuilder, &str)> = vec![
            (
                SnapshotBuilder::new().with_guardrail("g", |g| g.workspace_id = "nope".into()),
                "guardrail \"g\": unknown workspace nope",
            ),
            (
                SnapshotBuilder::new().with_guardrail("g", |g| g.organization_id = "other".into()),
                "guardrail \"g\": workspace ws-test is not in organization other",
            ),
            (
                SnapshotBuilder::new()
                    .with_guardrail("g", |_| {})
                    .with_guardrail("g", |_| {}),
                "guardrail \"g\": duplicate guardrail id",
            ),
            (
                SnapshotBuilder::new().with_guardrail("", |_| {}),
                "guardrail \"\": id must be non-empty and free of `|`",
            ),
            (
                SnapshotBuilder::new().with_guardrail("a|b", |_| {}),
                "guardrail \"a|b\": id must be non-empty and free of `|`",
            ),
            (
                SnapshotBuilder::new().with_guardrail("g", |g| g.limit_usd = "5".into()),
                "guardrail \"g\": a limit needs a known reset interval (got 0)",
            ),
            (
                SnapshotBuilder::new().with_guardrail("g", |g| {
                    g.limit_usd = "5".into();
                    g.reset_interval = 99;
                }),
                "guardrail \"g\": a limit needs a known reset interval (got 99)",
            ),
            (
                SnapshotBuilder::new().with_guardrail("g", budget("-5", pb::SpendWindow::Daily)),
                "guardrail g limit: `-5` is not a non-negative decimal amount of USD",
            ),
            (
                SnapshotBuilder::new().with_guardrail("g", |g| g.allowed_models = vec!["".into()]),
                "guardrail \"g\": empty id in allowed_models",
            ),
            (
                SnapshotBuilder::new()
                    .with_default_guardrail(|_| {})
                    .with_guardrail("second", |g| g.is_default = true),
                "guardrail \"second\": workspace ws-test has a second default guardrail",
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(rejected(builder), expected);
        }
    }

    #[test]
    fn invalid_assignments_reject_the_snapshot() {
        let h = key_hash(0);
        let cases: Vec<(SnapshotBuilder, String)> = vec![
            (
                SnapshotBuilder::new()
                    .with_inference_key()
                    .assign_guardrail_to_last_key("missing"),
                format!("guardrail assignment of key {h}: unknown guardrail missing"),
            ),
            (
                SnapshotBuilder::new()
                    .with_default_guardrail(|_| {})
                    .with_inference_key()
                    .assign_guardrail_to_last_key(DEFAULT_GUARDRAIL),
                format!(
                    "guardrail assignment of key {h}: guardrail {DEFAULT_GUARDRAIL} is a \
                     workspace default and cannot be assigned"
                ),
            ),
            (
                SnapshotBuilder::new()
                    .with_guardrail("g", |_| {})
                    .assign_guardrail_to_member(USER, "g")
                    .assign_guardrail_to_member("", "g"),
                "guardrail assignment of member  of org-test: unknown organization or empty user id"
                    .into(),
            ),
            (
                SnapshotBuilder::new().assign_guardrail_to_member(USER, "missing"),
                format!(
                    "guardrail assignment of member {USER} of org-test: unknown guardrail missing"
                ),
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(rejected(builder), expected);
        }

        // A key of another organization cannot hold this organization's guardrail.
        let mut message = SnapshotBuilder::new()
            .with_guardrail("g", |_| {})
            .with_inference_key()
            .message();
        let r = message.resources.as_mut().unwrap();
        r.organizations.push(pb::Organization {
            id: "org-2".into(),
            ..Default::default()
        });
        r.workspaces.push(pb::Workspace {
            id: "ws-2".into(),
            organization_id: "org-2".into(),
            ..Default::default()
        });
        r.keys[0].organization_id = "org-2".into();
        r.keys[0].workspace_id = "ws-2".into();
        r.key_guardrails.push(pb::KeyGuardrails {
            key_hash: h.clone(),
            guardrail_ids: vec!["g".into()],
        });
        let err = crate::snapshot::Snapshot::try_from(message.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("guardrail assignment of key {h}: guardrail g is not in organization org-2")
        );
        // Unknown and malformed keys.
        let r = message.resources.as_mut().unwrap();
        r.key_guardrails[0].key_hash = "ab".repeat(32);
        assert!(matches!(
            crate::snapshot::Snapshot::try_from(message.clone()),
            Err(SnapshotError::BadAssignment { reason, .. }) if reason == "unknown key"
        ));
        message.resources.as_mut().unwrap().key_guardrails[0].key_hash = "XYZ".into();
        assert!(matches!(
            crate::snapshot::Snapshot::try_from(message),
            Err(SnapshotError::BadAssignment { reason, .. }) if reason == "malformed key hash"
        ));
    }

    #[test]
    fn invalid_budgets_and_credits_reject_the_snapshot() {
        assert_eq!(
            rejected(SnapshotBuilder::new().with_workspace_budget(
                "nope",
                Window::Daily,
                "1",
                false
            )),
            "workspace \"nope\" budget: unknown workspace"
        );
        assert_eq!(
            rejected(
                SnapshotBuilder::new()
                    .with_workspace_budget(WORKSPACE, Window::Daily, "1", false)
                    .with_workspace_budget(WORKSPACE, Window::Daily, "2", false)
            ),
            "workspace \"ws-test\" budget: two daily budgets"
        );
        assert_eq!(
            rejected(SnapshotBuilder::new().with_workspace_budget(
                WORKSPACE,
                Window::Daily,
                "",
                false
            )),
            "workspace ws-test daily budget: `` is not a non-negative decimal amount of USD"
        );
        let mut message = SnapshotBuilder::new().message();
        message
            .resources
            .as_mut()
            .unwrap()
            .workspace_budgets
            .push(pb::WorkspaceBudget {
                workspace_id: WORKSPACE.into(),
                interval: 0,
                limit_usd: "1".into(),
                include_byok: false,
            });
        assert_eq!(
            crate::snapshot::Snapshot::try_from(message)
                .unwrap_err()
                .to_string(),
            "workspace \"ws-test\" budget: unknown interval 0"
        );
        assert_eq!(
            rejected(SnapshotBuilder::new().with_credits("1e6")),
            "organization org-test credits: `1e6` is not a non-negative decimal amount of USD"
        );
    }

    #[test]
    fn guardrail_ids_are_recovered_from_folded_ids() {
        let limit = |scope, id: &str| Limit {
            scope,
            id: Arc::from(id),
            window: Window::Daily,
            limit_nanos: 1,
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
