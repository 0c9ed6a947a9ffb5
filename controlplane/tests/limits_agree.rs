//! One rule for limits, property-based: for generated configurations written through the
//! management API, the budget layers `GET /key` reports and the counters reconciliation keeps
//! are exactly the limits a dataplane enforces (`limits_for` over the published snapshot,
//! decoded as a dataplane decodes it), with the amounts the API accepted to the micro-dollar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::manage::Actor;
use switchyard_controlplane::manage::guardrails::GuardrailInput;
use switchyard_controlplane::manage::keys::NewKeyInput;
use switchyard_controlplane::reconcile;
use switchyard_controlplane::store::default_guardrail_id;
use switchyard_controlplane::testing::{Database, fixture};
use switchyard_policy::snapshot::no_resolver;
use switchyard_policy::{LimitScope, Money, Snapshot, Window};

/// A budget: an amount of USD (cents, to stay exact through f64) and a resetting window.
#[derive(Clone, Debug)]
struct Budget {
    cents: u64,
    window: Window,
    include_byok: bool,
}

#[derive(Clone, Debug)]
struct Config {
    key_limit: Option<(u64, Option<Window>, bool)>,
    /// Each window at most once; amounts made to decrease as the window narrows.
    workspace_budgets: Vec<(Window, u64)>,
    default_guardrail: Option<Budget>,
    member_guardrail: Option<Budget>,
    key_guardrail: Option<Budget>,
    credits_cents: u64,
}

fn resetting() -> impl Strategy<Value = Window> {
    prop_oneof![
        Just(Window::Daily),
        Just(Window::Weekly),
        Just(Window::Monthly)
    ]
}

fn budget() -> impl Strategy<Value = Budget> {
    (1u64..10_000_000_000, resetting(), any::<bool>()).prop_map(|(cents, window, include_byok)| {
        Budget {
            cents,
            window,
            include_byok,
        }
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        proptest::option::of((
            1u64..100_000_000_000,
            proptest::option::of(resetting()),
            any::<bool>(),
        )),
        proptest::collection::btree_set(0usize..4, 0..=4),
        1u64..1_000_000,
        proptest::option::of(budget()),
        proptest::option::of(budget()),
        proptest::option::of(budget()),
        0u64..100_000_000,
    )
        .prop_map(|(key_limit, windows, base, d, m, k, credits_cents)| {
            // Narrower windows get smaller budgets, as the API requires.
            let workspace_budgets = windows
                .into_iter()
                .map(|i| (Window::ALL[i], base * (i as u64 + 1)))
                .collect();
            Config {
                key_limit,
                workspace_budgets,
                default_guardrail: d,
                member_guardrail: m,
                key_guardrail: k,
                credits_cents,
            }
        })
}

fn usd(cents: u64) -> f64 {
    cents as f64 / 100.0
}

fn guardrail_input(b: &Budget, name: &str) -> GuardrailInput {
    GuardrailInput {
        name: Some(name.into()),
        limit_usd: Some(Some(usd(b.cents))),
        reset_interval: Some(Some(b.window.name().into())),
        include_byok_in_budgets: Some(b.include_byok),
        ..GuardrailInput::default()
    }
}

async fn check(c: Config) {
    let db = Database::sqlite();
    let f = fixture(&db.url).await;
    let (m, op, admin) = (&f.manage, Actor::Operator, f.admin.clone());
    let (key, _) = m
        .create_key(
            &op,
            NewKeyInput {
                name: "generated".into(),
                kind: KeyKind::Inference,
                workspace: None,
                organization_id: Some(f.organization_id.clone()),
                owner_user_id: Some(f.member_user.clone()),
                limit_usd: c.key_limit.map(|(cents, _, _)| usd(cents)),
                limit_reset: c.key_limit.and_then(|(_, w, _)| w),
                include_byok_in_limit: c.key_limit.is_some_and(|(_, _, b)| b),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    for (window, cents) in &c.workspace_budgets {
        m.upsert_workspace_budget(&admin, &f.default_workspace_id, *window, usd(*cents), None)
            .await
            .unwrap();
    }
    if let Some(b) = &c.default_guardrail {
        m.update_guardrail(
            &admin,
            &default_guardrail_id(&f.default_workspace_id),
            &guardrail_input(b, "Default"),
        )
        .await
        .unwrap();
    }
    if let Some(b) = &c.member_guardrail {
        let g = m
            .create_guardrail(&admin, &guardrail_input(b, "Member rail"))
            .await
            .unwrap();
        m.assign_guardrail_members(&admin, &g.id, std::slice::from_ref(&f.member_user))
            .await
            .unwrap();
    }
    if let Some(b) = &c.key_guardrail {
        let g = m
            .create_guardrail(&admin, &guardrail_input(b, "Key rail"))
            .await
            .unwrap();
        m.assign_guardrail_keys(&admin, &g.id, std::slice::from_ref(&key.hash))
            .await
            .unwrap();
    }
    if c.credits_cents > 0 {
        m.grant_credits(
            &op,
            Some(&f.organization_id),
            usd(c.credits_cents).min(1e6),
            "test",
        )
        .await
        .unwrap();
    }

    // What a dataplane enforces: the published message, decoded by the dataplanes' decoder.
    let message = f.publisher.subscribe().borrow().as_whole();
    let enforced = Snapshot::decode(message, &no_resolver).unwrap();
    assert!(
        enforced.quarantine.is_empty(),
        "{:?}",
        enforced.quarantine.records()
    );
    let dp_key = enforced.keys.get_hex(&key.hash).unwrap();
    let limits = enforced.limits_for(dp_key);

    // The API's amounts are what is enforced.
    if let Some((cents, window, _)) = c.key_limit {
        let own = limits.iter().find(|l| l.scope == LimitScope::Key).unwrap();
        assert_eq!(own.cap, Money::from_usd_f64(usd(cents)).unwrap());
        assert_eq!(own.window, window.unwrap_or(Window::Lifetime));
    }
    for (window, cents) in &c.workspace_budgets {
        assert!(limits.iter().any(|l| l.scope == LimitScope::Workspace
            && l.window == *window
            && l.cap == Money::from_usd_f64(usd(*cents)).unwrap()));
    }

    // `GET /key`'s layers are the same limits (credits are reported by `GET /credits`).
    let now = switchyard_controlplane::now_ms();
    let (layers, effective) = m.budget_layers(&key, now).await.unwrap();
    let expected: Vec<_> = limits
        .iter()
        .filter(|l| l.scope != LimitScope::Credits)
        .map(|l| {
            (
                l.cap,
                l.window,
                l.include_byok,
                l.guardrail_id().map(str::to_owned),
            )
        })
        .collect();
    let reported: Vec<_> = layers
        .iter()
        .map(|l| (l.limit, l.window, l.include_byok, l.guardrail_id.clone()))
        .collect();
    assert_eq!(reported, expected);
    assert_eq!(effective.is_some(), !layers.is_empty());

    // Reconciliation keeps exactly this key's counters, under the dataplane's names.
    let targets: Vec<String> = reconcile::targets(&f.publisher.current(), now)
        .into_iter()
        .map(|t| t.counter)
        .collect();
    for limit in &limits {
        let counter = limit.counter_key(&dp_key.organization_id, now);
        assert!(targets.contains(&counter), "{counter} is reconciled");
    }
    db.drop().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn layers_and_reconciliation_equal_what_dataplanes_enforce(c in config()) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(check(c));
    }
}
