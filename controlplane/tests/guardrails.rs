//! Guardrails through the manage layer: default guardrails for every workspace (including those
//! that existed before migration 0003), the lifecycle and its validation, key and member
//! assignments and what removes them, and what the snapshot carries; each on SQLite and on a
//! throwaway PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::manage::guardrails::GuardrailInput;
use switchyard_controlplane::manage::keys::NewKeyInput;
use switchyard_controlplane::manage::workspaces::WorkspaceInput;
use switchyard_controlplane::manage::{Actor, Manage, ManageError};
use switchyard_controlplane::publisher::Publisher;
use switchyard_controlplane::store::{Store, default_guardrail_id};
use switchyard_controlplane::testing::{self, Database};
use switchyard_policy::Window;
use switchyard_proto::config::v1 as pb;

/// The shared fixture under the names these tests use.
struct Fixture {
    manage: Manage,
    store: Store,
    publisher: Arc<Publisher>,
    org: String,
    default_ws: String,
    admin: Actor,
    member: Actor,
    member_user: String,
    other_admin: Actor,
    other_user: String,
}

async fn fixture(url: &str) -> Fixture {
    let f = testing::fixture(url).await;
    Fixture {
        manage: f.manage,
        store: f.store,
        publisher: f.publisher,
        org: f.organization_id,
        default_ws: f.default_workspace_id,
        admin: f.admin,
        member: f.member,
        member_user: f.member_user,
        other_admin: f.outsider,
        other_user: f.outsider_user,
    }
}

fn named(name: &str) -> GuardrailInput {
    GuardrailInput {
        name: Some(name.into()),
        ..GuardrailInput::default()
    }
}

fn inference(name: &str) -> NewKeyInput {
    NewKeyInput {
        name: name.into(),
        kind: KeyKind::Inference,
        workspace: None,
        organization_id: None,
        owner_user_id: None,
        limit_usd: None,
        limit_reset: None,
        include_byok_in_limit: false,
        expires_at: None,
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, ManageError>) -> String {
    match r {
        Err(ManageError::Invalid(m)) => m,
        other => panic!("expected 400, got {other:?}"),
    }
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, ManageError>) {
    assert!(
        matches!(r, Err(ManageError::Forbidden(_))),
        "expected 403, got {r:?}"
    );
}

fn not_found<T: std::fmt::Debug>(r: Result<T, ManageError>) {
    assert!(
        matches!(r, Err(ManageError::NotFound(_))),
        "expected 404, got {r:?}"
    );
}

fn snapshot(f: &Fixture) -> pb::Resources {
    f.publisher
        .subscribe()
        .borrow()
        .as_whole()
        .resources
        .unwrap_or_default()
}

async fn every_workspace_has_an_unrestricted_default_guardrail(f: &Fixture) {
    let m = &f.manage;
    let team = m
        .create_workspace(
            &f.admin,
            None,
            &WorkspaceInput {
                name: Some("Team".into()),
                slug: Some("team".into()),
                ..WorkspaceInput::default()
            },
        )
        .await
        .unwrap();
    for ws in [&f.default_ws, &team.id] {
        let id = default_guardrail_id(ws);
        let g = m.get_guardrail(&f.member, &id).await.unwrap();
        assert!(g.is_default);
        assert_eq!(g.workspace_id, *ws);
        assert!(g.limit_usd.is_none() && g.allowed_models.is_none());
        let (page, total) = m.list_guardrails(&f.admin, Some(ws), 0, 50).await.unwrap();
        assert_eq!((page[0].id.as_str(), total), (id.as_str(), 1));
    }
    // The listing defaults to the Default workspace's guardrails.
    let (page, _) = m.list_guardrails(&f.member, None, 0, 50).await.unwrap();
    assert_eq!(page[0].id, default_guardrail_id(&f.default_ws));
    // Another organization's guardrails are not found, its workspaces neither.
    not_found(
        m.get_guardrail(&f.other_admin, &default_guardrail_id(&f.default_ws))
            .await,
    );
    not_found(m.list_guardrails(&f.other_admin, Some("team"), 0, 50).await);
    // The default is updated, never deleted or assigned.
    let updated = m
        .update_guardrail(
            &f.admin,
            &default_guardrail_id(&team.id),
            &GuardrailInput {
                ignored_providers: Some(Some(vec!["mock-b".into()])),
                ..GuardrailInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.ignored_providers, Some(vec!["mock-b".to_owned()]));
    assert!(updated.updated_at.is_some());
    invalid(
        m.delete_guardrail(&f.admin, &default_guardrail_id(&team.id))
            .await,
    );
    invalid(
        m.assign_guardrail_members(
            &f.admin,
            &default_guardrail_id(&team.id),
            std::slice::from_ref(&f.member_user),
        )
        .await,
    );
    // A workspace whose only guardrail is its default deletes without force; one holding
    // another guardrail needs force, and its guardrails go with it.
    let empty = m
        .create_workspace(
            &f.admin,
            None,
            &WorkspaceInput {
                name: Some("Empty".into()),
                slug: Some("empty".into()),
                ..WorkspaceInput::default()
            },
        )
        .await
        .unwrap();
    m.delete_workspace(&f.admin, &empty.id, false)
        .await
        .unwrap();
    let held = m
        .create_guardrail(
            &f.admin,
            &GuardrailInput {
                workspace: Some("team".into()),
                ..named("Team only")
            },
        )
        .await
        .unwrap();
    let refusal = match m.delete_workspace(&f.admin, &team.id, false).await {
        Err(ManageError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert!(refusal.contains("1 guardrail(s)"), "{refusal}");
    let contents = m.delete_workspace(&f.admin, &team.id, true).await.unwrap();
    assert_eq!(contents.guardrails, 1);
    assert!(f.store.guardrail(&held.id).await.unwrap().is_none());
    assert!(
        f.store
            .guardrail(&default_guardrail_id(&team.id))
            .await
            .unwrap()
            .is_none()
    );
}

async fn lifecycle_and_validation(f: &Fixture) {
    let m = &f.manage;
    forbidden(m.create_guardrail(&f.member, &named("Nope")).await);
    invalid(
        m.create_guardrail(&f.admin, &GuardrailInput::default())
            .await,
    );
    let unknown_model = invalid(
        m.create_guardrail(
            &f.admin,
            &GuardrailInput {
                allowed_models: Some(Some(vec!["nope/nope".into()])),
                ..named("Bad")
            },
        )
        .await,
    );
    assert_eq!(
        unknown_model,
        "allowed_models: model \"nope/nope\" is not in the catalogue"
    );
    let unknown_provider = invalid(
        m.create_guardrail(
            &f.admin,
            &GuardrailInput {
                ignored_providers: Some(Some(vec!["nope".into()])),
                ..named("Bad")
            },
        )
        .await,
    );
    assert_eq!(
        unknown_provider,
        "ignored_providers: provider \"nope\" is not in the catalogue"
    );
    not_found(
        m.create_guardrail(
            &f.admin,
            &GuardrailInput {
                workspace: Some("no-such-workspace".into()),
                ..named("Bad")
            },
        )
        .await,
    );

    let g = m
        .create_guardrail(
            &f.admin,
            &GuardrailInput {
                description: Some(Some("caps the team".into())),
                limit_usd: Some(Some(25.0)),
                reset_interval: Some(Some("monthly".into())),
                include_byok_in_budgets: Some(true),
                allowed_models: Some(Some(vec!["mock/fast".into(), "mock/smart".into()])),
                allowed_providers: Some(Some(vec!["mock-a".into()])),
                enforce_zdr_other: Some(Some(true)),
                ..named("Team cap")
            },
        )
        .await
        .unwrap();
    assert!(g.id.starts_with("gr_") && !g.is_default);
    assert_eq!(g.workspace_id, f.default_ws);
    assert_eq!(m.get_guardrail(&f.member, &g.id).await.unwrap(), g);
    not_found(m.get_guardrail(&f.other_admin, &g.id).await);
    forbidden(m.update_guardrail(&f.member, &g.id, &named("x")).await);
    not_found(m.update_guardrail(&f.other_admin, &g.id, &named("x")).await);

    // Lists are replaced whole; a null clears.
    let g2 = m
        .update_guardrail(
            &f.admin,
            &g.id,
            &GuardrailInput {
                allowed_models: Some(Some(vec!["mock/free".into()])),
                allowed_providers: Some(None),
                ..GuardrailInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(g2.allowed_models, Some(vec!["mock/free".to_owned()]));
    assert_eq!(g2.allowed_providers, None);
    assert_eq!(g2.limit_usd.as_deref(), Some("25"));
    invalid(
        m.update_guardrail(
            &f.admin,
            &g.id,
            &GuardrailInput {
                reset_interval: Some(None),
                ..GuardrailInput::default()
            },
        )
        .await,
    );

    forbidden(m.delete_guardrail(&f.member, &g.id).await);
    not_found(m.delete_guardrail(&f.other_admin, &g.id).await);
    m.delete_guardrail(&f.admin, &g.id).await.unwrap();
    not_found(m.get_guardrail(&f.admin, &g.id).await);

    let audit = f.store.audit_log(Some(&f.org), 1000).await.unwrap();
    for action in ["guardrail.create", "guardrail.update", "guardrail.delete"] {
        assert!(audit.iter().any(|a| a.action == action), "{action}");
    }
}

async fn assignments(f: &Fixture) {
    let m = &f.manage;
    let g1 = m.create_guardrail(&f.admin, &named("One")).await.unwrap();
    let g2 = m.create_guardrail(&f.admin, &named("Two")).await.unwrap();
    let (mine, _) = m.create_key(&f.member, inference("mine")).await.unwrap();
    let (admins, _) = m.create_key(&f.admin, inference("admin's")).await.unwrap();
    let keys = vec![mine.hash.clone(), admins.hash.clone()];

    forbidden(m.assign_guardrail_keys(&f.member, &g1.id, &keys).await);
    not_found(m.assign_guardrail_keys(&f.other_admin, &g1.id, &keys).await);
    let unknown = invalid(
        m.assign_guardrail_keys(&f.admin, &g1.id, &["ab".repeat(32)])
            .await,
    );
    assert!(unknown.starts_with("Unknown API keys: abab"), "{unknown}");
    invalid(m.assign_guardrail_keys(&f.admin, &g1.id, &[]).await);
    assert_eq!(
        m.assign_guardrail_keys(&f.admin, &g1.id, &keys)
            .await
            .unwrap(),
        2
    );
    // Assigning again changes nothing; a key holds one guardrail, so g2 replaces g1.
    assert_eq!(
        m.assign_guardrail_keys(&f.admin, &g1.id, &keys)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        m.assign_guardrail_keys(&f.admin, &g2.id, std::slice::from_ref(&mine.hash))
            .await
            .unwrap(),
        1
    );
    let (all, total) = m.list_key_assignments(&f.admin, None, 0, 50).await.unwrap();
    assert_eq!(total, 2);
    let held: HashMap<&str, &str> = all
        .iter()
        .map(|a| (a.key_hash.as_str(), a.guardrail_id.as_str()))
        .collect();
    assert_eq!(held[mine.hash.as_str()], g2.id);
    assert_eq!(held[admins.hash.as_str()], g1.id);
    // Members see the assignments of their own keys only.
    let (visible, total) = m
        .list_key_assignments(&f.member, None, 0, 50)
        .await
        .unwrap();
    assert_eq!((visible.len(), total), (1, 1));
    assert_eq!(visible[0].key_hash, mine.hash);
    assert_eq!(visible[0].key_name, "mine");
    let (of_g1, total) = m
        .list_key_assignments(&f.admin, Some(&g1.id), 0, 50)
        .await
        .unwrap();
    assert_eq!(
        (of_g1[0].key_hash.as_str(), total),
        (admins.hash.as_str(), 1)
    );
    assert_eq!(of_g1[0].assigned_by.as_deref(), f.admin.user_id());
    not_found(
        m.list_key_assignments(&f.other_admin, Some(&g1.id), 0, 50)
            .await,
    );

    // Rotation hands the key's guardrail to its successor.
    let (successor, _) = m.rotate_key(&f.member, &mine.hash, 60).await.unwrap();
    assert_eq!(
        f.store.key_guardrail(&successor.hash).await.unwrap(),
        Some(g2.id.clone())
    );

    // Members: each must belong to the organization; several guardrails per member.
    let outsider = invalid(
        m.assign_guardrail_members(&f.admin, &g1.id, std::slice::from_ref(&f.other_user))
            .await,
    );
    assert!(outsider.contains(&f.other_user), "{outsider}");
    forbidden(
        m.assign_guardrail_members(&f.member, &g1.id, std::slice::from_ref(&f.member_user))
            .await,
    );
    for g in [&g1, &g2] {
        assert_eq!(
            m.assign_guardrail_members(&f.admin, &g.id, std::slice::from_ref(&f.member_user))
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(
        m.assign_guardrail_members(&f.admin, &g1.id, std::slice::from_ref(&f.member_user))
            .await
            .unwrap(),
        0
    );
    let (members, total) = m
        .list_member_assignments(&f.member, None, 0, 50)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert!(members.iter().all(|a| a.user_id == f.member_user));
    assert!(members.iter().all(|a| a.organization_id == f.org));

    // What dataplanes see.
    let r = snapshot(f);
    let key_of = |hash: &str| {
        r.key_guardrails
            .iter()
            .find(|k| k.key_hash == hash)
            .map(|k| k.guardrail_ids.clone())
    };
    assert_eq!(key_of(&admins.hash), Some(vec![g1.id.clone()]));
    assert_eq!(key_of(&successor.hash), Some(vec![g2.id.clone()]));
    let member = r
        .member_guardrails
        .iter()
        .find(|m| m.user_id == f.member_user)
        .unwrap();
    assert_eq!(member.organization_id, f.org);
    let mut held = member.guardrail_ids.clone();
    held.sort();
    let mut expected = vec![g1.id.clone(), g2.id.clone()];
    expected.sort();
    assert_eq!(held, expected);

    // Unassigning counts what was there.
    assert_eq!(
        m.unassign_guardrail_keys(&f.admin, &g1.id, &keys)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        m.unassign_guardrail_members(&f.admin, &g1.id, std::slice::from_ref(&f.member_user))
            .await
            .unwrap(),
        1
    );
    // Deleting a key, a guardrail or a membership removes the assignments they held.
    m.delete_key(&f.admin, &successor.hash).await.unwrap();
    assert!(
        f.store
            .key_guardrail(&successor.hash)
            .await
            .unwrap()
            .is_none()
    );
    m.assign_guardrail_keys(&f.admin, &g1.id, std::slice::from_ref(&admins.hash))
        .await
        .unwrap();
    m.delete_guardrail(&f.admin, &g1.id).await.unwrap();
    assert!(f.store.key_guardrail(&admins.hash).await.unwrap().is_none());
    m.remove_member(&Actor::Operator, Some(&f.org), &f.member_user)
        .await
        .unwrap();
    let (left, _) = m
        .list_member_assignments(&f.admin, None, 0, 50)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(snapshot(f).member_guardrails.is_empty());

    let audit = f.store.audit_log(Some(&f.org), 1000).await.unwrap();
    for action in [
        "guardrail.keys.assign",
        "guardrail.keys.unassign",
        "guardrail.members.assign",
        "guardrail.members.unassign",
    ] {
        assert!(audit.iter().any(|a| a.action == action), "{action}");
    }
}

async fn snapshots_carry_guardrails_budgets_and_credits(f: &Fixture) {
    let m = &f.manage;
    m.update_guardrail(
        &f.admin,
        &default_guardrail_id(&f.default_ws),
        &GuardrailInput {
            limit_usd: Some(Some(12.5)),
            reset_interval: Some(Some("weekly".into())),
            ignored_models: Some(Some(vec!["mock/unpriced".into()])),
            enforce_zdr: Some(Some(true)),
            enforce_zdr_google: Some(Some(false)),
            ..GuardrailInput::default()
        },
    )
    .await
    .unwrap();
    m.upsert_workspace_budget(&f.admin, &f.default_ws, Window::Lifetime, 99.0, Some(true))
        .await
        .unwrap();
    m.grant_credits(&Actor::Operator, Some(&f.org), 30.25, "test")
        .await
        .unwrap();
    let r = snapshot(f);
    let g = r
        .guardrails
        .iter()
        .find(|g| g.id == default_guardrail_id(&f.default_ws))
        .unwrap();
    assert!(g.is_default);
    assert_eq!(g.organization_id, f.org);
    assert_eq!(g.limit_usd, "12.5");
    assert_eq!(g.reset_interval, pb::SpendWindow::Weekly as i32);
    assert_eq!(g.ignored_models, ["mock/unpriced"]);
    assert!(g.allowed_models.is_empty());
    assert!(g.enforce_zdr_anthropic && g.enforce_zdr_openai && g.enforce_zdr_xai);
    assert!(g.enforce_zdr_other && !g.enforce_zdr_google);
    let budget = r
        .workspace_budgets
        .iter()
        .find(|b| b.workspace_id == f.default_ws)
        .unwrap();
    assert_eq!(budget.interval, pb::SpendWindow::Lifetime as i32);
    assert_eq!(budget.limit_usd, "99");
    assert!(budget.include_byok);
    let org = r.organizations.iter().find(|o| o.id == f.org).unwrap();
    // The ledger's sum: this grant, and whatever the seed granted.
    let granted = f.store.credits_micros(&f.org).await.unwrap();
    assert!(granted >= 30_250_000);
    assert_eq!(
        org.credits_usd.parse::<f64>().unwrap(),
        granted as f64 / 1e6
    );
    // An organization without a ledger has no credits.
    let other = r
        .organizations
        .iter()
        .find(|o| Some(o.id.as_str()) == f.other_admin.organization_id())
        .unwrap();
    assert_eq!(other.credits_usd, "");
}

/// Migration 0003 gives workspaces that existed before it their default guardrail.
async fn migration_backfills_defaults(url: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(testing::unique("switchyard-migrations"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for name in ["0001_init.sql", "0002_tenancy.sql"] {
        std::fs::copy(source.join(name), dir.join(name)).unwrap();
    }
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ('org_old', 'Old', 1)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, name, slug, is_default, created_at) \
         VALUES ('ws_old', 'org_old', 'Default', 'default', 1, 7)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);

    let store = Store::open(url).await.unwrap();
    let g = store
        .guardrail(&default_guardrail_id("ws_old"))
        .await
        .unwrap()
        .unwrap();
    assert!(g.is_default && !g.include_byok);
    assert_eq!(
        (g.organization_id.as_str(), g.workspace_id.as_str()),
        ("org_old", "ws_old")
    );
    assert_eq!(g.created_at, 7);
    assert!(g.limit_usd.is_none() && g.ignored_providers.is_none());
}

/// Each behaviour on its own fixture, on SQLite and on a throwaway PostgreSQL database (needs
/// a server: `SWITCHYARD_TEST_POSTGRES`, default the local one).
macro_rules! on_both_databases {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let db = super::Database::sqlite();
                    super::$behaviour(&super::fixture(&db.url).await).await;
                    db.drop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let db = super::Database::postgres().await;
                    super::$behaviour(&super::fixture(&db.url).await).await;
                    db.drop().await;
                }
            )*
        }
    };
}

on_both_databases!(
    every_workspace_has_an_unrestricted_default_guardrail,
    lifecycle_and_validation,
    snapshots_carry_guardrails_budgets_and_credits,
    assignments,
);

#[tokio::test]
async fn migration_backfills_defaults_on_sqlite() {
    let db = Database::sqlite();
    migration_backfills_defaults(&db.url).await;
    db.drop().await;
}

#[tokio::test]
async fn migration_backfills_defaults_on_postgres() {
    let db = Database::postgres().await;
    migration_backfills_defaults(&db.url).await;
    db.drop().await;
}
