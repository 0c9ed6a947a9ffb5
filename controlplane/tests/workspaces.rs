//! Workspaces end to end: the manage layer as an admin, a member and an admin of another
//! organization, then the REST routes over a real socket; each on SQLite and on a throwaway
//! PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::manage::workspaces::WorkspaceInput;
use switchyard_controlplane::manage::{Actor, ManageError, Role};
use switchyard_controlplane::store::{StoreError, WorkspaceRow};
use switchyard_controlplane::testing::{self, Database, Fixture, fixture};
use switchyard_policy::Window;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A key of the fixture's organization, written straight to the store.
async fn add_key(f: &Fixture, workspace_id: &str, user: &str, kind: KeyKind) -> String {
    testing::add_key(&f.store, &f.organization_id, workspace_id, user, kind)
        .await
        .0
}

fn named(name: &str, slug: &str) -> WorkspaceInput {
    WorkspaceInput {
        name: Some(name.into()),
        slug: Some(slug.into()),
        ..WorkspaceInput::default()
    }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, ManageError>) -> String {
    match r {
        Err(ManageError::Invalid(m) | ManageError::Conflict(m)) => m,
        other => panic!("expected a 400-class refusal, got {other:?}"),
    }
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, ManageError>) {
    assert!(matches!(r, Err(ManageError::NotFound(_))), "{r:?}");
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, ManageError>) {
    assert!(matches!(r, Err(ManageError::Forbidden(_))), "{r:?}");
}

/// Team A, created by the admin with settings (the first test shows each is validated).
async fn team_a(f: &Fixture) -> WorkspaceRow {
    f.manage
        .create_workspace(
            &f.admin,
            None,
            &WorkspaceInput {
                description: Some(Some("Team A".into())),
                default_text_model: Some(Some("mock/fast".into())),
                default_provider_sort: Some(Some("price".into())),
                io_logging_sampling_rate: Some(0.5),
                disabled_server_tools: Some(Some(vec!["openrouter:web_search".into()])),
                ..named("Team A", "team-a")
            },
        )
        .await
        .unwrap()
}

/// Team A with the fixture's member in it.
async fn team_a_with_member(f: &Fixture) -> WorkspaceRow {
    let team = team_a(f).await;
    f.manage
        .add_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.member_user))
        .await
        .unwrap();
    team
}

async fn creation_is_validated_and_published(f: &Fixture) {
    let m = &f.manage;
    // Create, with settings validated against the catalogue and the SDK's enums.
    let version = f.publisher.current_version();
    let team = team_a(f).await;
    assert!(!team.is_default);
    assert_eq!(team.created_by.as_deref(), Some(f.admin_user.as_str()));
    assert_eq!(team.settings["default_text_model"], "mock/fast");
    assert!(
        f.publisher.current_version() > version,
        "creation is published"
    );
    assert!(
        is_invalid(
            m.create_workspace(&f.admin, None, &named("Again", "team-a"))
                .await
        )
        .contains("already exists")
    );
    assert!(
        is_invalid(
            m.create_workspace(
                &f.admin,
                None,
                &WorkspaceInput {
                    default_image_model: Some(Some("mock/nope".into())),
                    ..named("X", "x")
                },
            )
            .await
        )
        .contains("not in the catalogue")
    );
    is_invalid(
        m.create_workspace(&f.admin, None, &WorkspaceInput::default())
            .await,
    );
    is_forbidden(
        m.create_workspace(&f.member, None, &named("Mine", "mine"))
            .await,
    );
    // A slug taken between the check and the write is caught by the unique index, which the
    // manage layer turns into a 400: the error must be recognisable through the Any driver.
    let racing = WorkspaceRow {
        id: "ws_racing".into(),
        ..team.clone()
    };
    match f.store.create_workspace(&racing, None).await {
        Err(StoreError::Database(sqlx::Error::Database(db))) => assert!(db.is_unique_violation()),
        other => panic!("expected a unique violation, got {other:?}"),
    }
    // Slugs are unique per organization, not globally.
    m.create_workspace(&f.outsider, None, &named("Theirs", "team-a"))
        .await
        .unwrap();
}

async fn visibility_follows_the_caller(f: &Fixture) {
    let m = &f.manage;
    let team = team_a(f).await;
    m.create_workspace(&f.outsider, None, &named("Theirs", "team-a"))
        .await
        .unwrap();
    // Visibility: admins see all, members the Default and their own, others nothing.
    let (all, total) = m.list_workspaces(&f.admin, None, 0, 50).await.unwrap();
    assert_eq!(total, 2);
    assert!(all[0].is_default, "the Default comes first");
    assert_eq!(all[1].id, team.id);
    let (page, total) = m.list_workspaces(&f.admin, None, 1, 1).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    let (mine, total) = m.list_workspaces(&f.member, None, 0, 50).await.unwrap();
    assert_eq!((mine.len(), total), (1, 1));
    is_not_found(m.get_workspace(&f.member, &team.id).await);
    is_not_found(m.get_workspace(&f.outsider, &team.id).await);
    is_not_found(m.list_workspace_members(&f.outsider, &team.id, 0, 50).await);
    is_not_found(m.list_workspaces(&f.member, Some("org_other"), 0, 50).await);
    assert_eq!(
        m.get_workspace(&f.admin, "team-a").await.unwrap().id,
        team.id
    );

    // The helper other modules resolve workspaces with.
    is_forbidden(m.workspace_for_actor(&f.member, Some("team-a")).await);
    assert!(
        m.workspace_for_actor(&f.member, None)
            .await
            .unwrap()
            .is_default
    );
    assert_eq!(
        m.workspace_for_actor(&f.admin, Some("team-a"))
            .await
            .unwrap()
            .id,
        team.id
    );
    is_not_found(m.workspace_for_actor(&f.outsider, Some(&team.id)).await);
    is_invalid(m.workspace_for_actor(&Actor::Operator, None).await);
    assert_eq!(
        m.workspace_for_actor(&Actor::Operator, Some(&team.id))
            .await
            .unwrap()
            .id,
        team.id
    );
}

async fn members_join_all_or_nothing(f: &Fixture) {
    let m = &f.manage;
    let team = team_a(f).await;
    // Members: only the organization's users, and all or nothing.
    assert!(
        is_invalid(
            m.add_workspace_members(
                &f.admin,
                "team-a",
                &[f.member_user.clone(), f.outsider_user.clone()]
            )
            .await
        )
        .contains(&f.outsider_user)
    );
    is_forbidden(
        m.add_workspace_members(&f.member, "default", std::slice::from_ref(&f.member_user))
            .await,
    );
    let added = m
        .add_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.member_user))
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].role, Role::Member);
    assert_eq!(added[0].id, format!("{}:{}", team.id, f.member_user));
    let again = m
        .add_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.member_user))
        .await
        .unwrap();
    assert!(again.is_empty(), "already a member");
    assert_eq!(
        m.get_workspace(&f.member, "team-a").await.unwrap().id,
        team.id
    );
    assert_eq!(
        m.workspace_for_actor(&f.member, Some("team-a"))
            .await
            .unwrap()
            .id,
        team.id
    );
    let (members, total) = m
        .list_workspace_members(&f.member, "team-a", 0, 50)
        .await
        .unwrap();
    assert_eq!(total, 2, "the creator and the added member");
    let roles: Vec<(String, Role)> = members
        .iter()
        .map(|w| (w.user_id.clone(), w.role))
        .collect();
    assert!(roles.contains(&(f.admin_user.clone(), Role::Admin)));
    assert!(roles.contains(&(f.member_user.clone(), Role::Member)));
    let (everyone, total) = m
        .list_workspace_members(&f.admin, "default", 0, 50)
        .await
        .unwrap();
    assert_eq!(
        (everyone.len(), total),
        (2, 2),
        "the Default holds every member"
    );
    assert!(
        is_invalid(
            m.remove_workspace_members(&f.admin, "default", std::slice::from_ref(&f.member_user))
                .await
        )
        .contains("Default")
    );
}

async fn updates_are_for_admins_and_keep_slugs_unique(f: &Fixture) {
    let m = &f.manage;
    team_a_with_member(f).await;
    // Updates: admins only; the Default keeps its slug; slugs stay unique.
    is_forbidden(
        m.update_workspace(
            &f.member,
            "team-a",
            &WorkspaceInput {
                name: Some("Nope".into()),
                ..Default::default()
            },
        )
        .await,
    );
    let version = f.publisher.current_version();
    let renamed = m
        .update_workspace(
            &f.admin,
            "team-a",
            &WorkspaceInput {
                name: Some("Team B".into()),
                slug: Some("team-x".into()),
                default_text_model: Some(None),
                is_observability_io_logging_enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.slug.as_str(), renamed.name.as_str()),
        ("team-x", "Team B")
    );
    assert!(renamed.updated_at.is_some());
    assert_eq!(renamed.settings["default_text_model"], Value::Null);
    assert_eq!(
        renamed.settings["default_provider_sort"], "price",
        "untouched fields stay"
    );
    assert!(
        f.publisher.current_version() > version,
        "updates are published"
    );
    is_invalid(
        m.update_workspace(
            &f.admin,
            "default",
            &WorkspaceInput {
                slug: Some("main".into()),
                ..Default::default()
            },
        )
        .await,
    );
    m.update_workspace(
        &f.admin,
        "default",
        &WorkspaceInput {
            name: Some("Main".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        is_invalid(
            m.update_workspace(
                &f.admin,
                "team-x",
                &WorkspaceInput {
                    slug: Some("default".into()),
                    ..Default::default()
                }
            )
            .await
        )
        .contains("already exists")
    );
    is_invalid(
        m.update_workspace(
            &f.admin,
            "team-x",
            &WorkspaceInput {
                io_logging_sampling_rate: Some(0.0),
                ..Default::default()
            },
        )
        .await,
    );
}

async fn budgets_narrow_with_the_interval(f: &Fixture) {
    let m = &f.manage;
    team_a_with_member(f).await;
    // Budgets: admins write, the workspace's members read, limits narrow with the interval.
    let (daily, byok) = m
        .upsert_workspace_budget(&f.admin, "team-a", Window::Daily, 10.0, None)
        .await
        .unwrap();
    assert_eq!((daily.limit_usd.as_str(), byok), ("10", false));
    m.upsert_workspace_budget(&f.admin, "team-a", Window::Monthly, 100.0, None)
        .await
        .unwrap();
    assert!(
        is_invalid(
            m.upsert_workspace_budget(&f.admin, "team-a", Window::Weekly, 5.0, None)
                .await
        )
        .contains("strictly decrease")
    );
    is_invalid(
        m.upsert_workspace_budget(&f.admin, "team-a", Window::Lifetime, 50.0, None)
            .await,
    );
    is_invalid(
        m.upsert_workspace_budget(&f.admin, "team-a", Window::Lifetime, 0.0, None)
            .await,
    );
    let (weekly, byok) = m
        .upsert_workspace_budget(&f.admin, "team-a", Window::Weekly, 50.5, Some(true))
        .await
        .unwrap();
    assert!(byok && weekly.include_byok);
    let (replaced, _) = m
        .upsert_workspace_budget(&f.admin, "team-a", Window::Daily, 20.0, None)
        .await
        .unwrap();
    assert_eq!(replaced.id, daily.id, "an upsert keeps the budget's id");
    assert_eq!(replaced.limit_usd, "20");
    is_forbidden(
        m.upsert_workspace_budget(&f.member, "team-a", Window::Lifetime, 500.0, None)
            .await,
    );
    let budgets = m.list_workspace_budgets(&f.member, "team-a").await.unwrap();
    assert_eq!(budgets.budgets.len(), 3);
    assert!(budgets.include_byok_in_budgets);
    assert!(
        budgets.budgets.iter().all(|b| b.include_byok),
        "BYOK inclusion is workspace-wide"
    );
    let (got, _) = m
        .get_workspace_budget(&f.member, "team-a", Window::Weekly)
        .await
        .unwrap();
    assert_eq!(got.limit_usd, "50.5");
    is_not_found(
        m.get_workspace_budget(&f.member, "team-a", Window::Lifetime)
            .await,
    );
    is_not_found(m.list_workspace_budgets(&f.outsider, "team-a").await);
    is_forbidden(
        m.delete_workspace_budget(&f.member, "team-a", Window::Daily)
            .await,
    );
    m.delete_workspace_budget(&f.admin, "team-a", Window::Daily)
        .await
        .unwrap();
    m.delete_workspace_budget(&f.admin, "team-a", Window::Daily)
        .await
        .unwrap();
    assert_eq!(
        m.list_workspace_budgets(&f.admin, "team-a")
            .await
            .unwrap()
            .budgets
            .len(),
        2
    );
}

async fn a_member_with_a_live_key_stays(f: &Fixture) {
    let m = &f.manage;
    let team = team_a_with_member(f).await;
    // Removing a member with a live key in the workspace is refused.
    add_key(f, &team.id, &f.member_user, KeyKind::Inference).await;
    assert!(
        is_invalid(
            m.remove_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.member_user))
                .await
        )
        .contains("active API keys")
    );
    assert_eq!(
        m.remove_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.admin_user))
            .await
            .unwrap(),
        1
    );
}

async fn deletion_keeps_the_default_and_takes_keys_only_when_forced(f: &Fixture) {
    let m = &f.manage;
    let team = team_a_with_member(f).await;
    m.upsert_workspace_budget(&f.admin, "team-a", Window::Daily, 10.0, None)
        .await
        .unwrap();
    let member_key = add_key(f, &team.id, &f.member_user, KeyKind::Inference).await;
    // Deletion: never the Default, not while it holds keys unless forced.
    is_invalid(m.delete_workspace(&f.admin, "default", true).await);
    is_forbidden(m.delete_workspace(&f.member, "team-a", true).await);
    is_not_found(m.delete_workspace(&f.outsider, &team.id, true).await);
    let refusal = is_invalid(m.delete_workspace(&f.admin, "team-a", false).await);
    assert!(
        refusal.contains("1 API key") && refusal.contains("force=true"),
        "{refusal}"
    );
    assert!(
        f.store.key(&member_key).await.unwrap().is_some(),
        "a refusal changes nothing"
    );
    let version = f.publisher.current_version();
    let held = m.delete_workspace(&f.admin, "team-a", true).await.unwrap();
    assert_eq!(held.key_hashes, vec![member_key.clone()]);
    assert!(
        f.publisher.current_version() > version,
        "deletion is published"
    );
    assert!(
        f.store.key(&member_key).await.unwrap().is_none(),
        "its keys go with it"
    );
    assert!(f.store.workspace(&team.id).await.unwrap().is_none());
    assert!(
        f.store
            .workspace_budgets(&team.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !f.store
            .is_workspace_member(&team.id, &f.member_user)
            .await
            .unwrap()
    );
    is_not_found(m.get_workspace(&f.admin, &team.id).await);
    let audit = f
        .store
        .audit_log(Some(&f.organization_id), 100)
        .await
        .unwrap();
    let deletion = audit
        .iter()
        .find(|a| a.action == "workspace.delete" && a.target == team.id)
        .unwrap();
    assert!(deletion.before.as_deref().unwrap().contains(&member_key));
    assert!(deletion.after.is_none());
}

async fn a_key_cannot_delete_its_own_workspace(f: &Fixture) {
    let m = &f.manage;
    // A key cannot delete the workspace it lives in.
    let empty = m
        .create_workspace(&f.admin, None, &named("Empty", "empty"))
        .await
        .unwrap();
    let own_key = add_key(f, &empty.id, &f.admin_user, KeyKind::Management).await;
    let in_it = Actor::Member {
        user_id: f.admin_user.clone(),
        organization_id: f.organization_id.clone(),
        role: Role::Admin,
        key_hash: own_key,
    };
    assert!(is_invalid(m.delete_workspace(&in_it, "empty", true).await).contains("calling key"));
    m.delete_workspace(&f.admin, "empty", true).await.unwrap();
}

async fn every_mutation_is_audited(f: &Fixture) {
    let m = &f.manage;
    let team = team_a_with_member(f).await;
    m.update_workspace(
        &f.admin,
        "team-a",
        &WorkspaceInput {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    m.upsert_workspace_budget(&f.admin, "team-a", Window::Daily, 10.0, None)
        .await
        .unwrap();
    m.delete_workspace_budget(&f.admin, "team-a", Window::Daily)
        .await
        .unwrap();
    m.remove_workspace_members(&f.admin, "team-a", std::slice::from_ref(&f.member_user))
        .await
        .unwrap();
    m.delete_workspace(&f.admin, &team.id, false).await.unwrap();
    // Every mutation is audited, with its before and after.
    let audit = f
        .store
        .audit_log(Some(&f.organization_id), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for action in [
        "workspace.create",
        "workspace.update",
        "workspace.delete",
        "workspace.members.add",
        "workspace.members.remove",
        "workspace.budget.upsert",
        "workspace.budget.delete",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

/// A request over a plain socket (the crate has no HTTP client); returns status and JSON body.
async fn call(
    addr: std::net::SocketAddr,
    secret: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text[9..12].parse().unwrap();
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn rest_routes(f: &Fixture) {
    let base = testing::serve(&f.manage).await;
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let key = f.management_secret.as_str();

    let (status, body) = call(
        addr,
        key,
        "POST",
        "/api/v1/workspaces",
        Some(r#"{"name":"Research","slug":"research","default_provider_sort":"throughput","io_logging_api_key_ids":[1,2]}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let w = &body["data"];
    let id = w["id"].as_str().unwrap().to_owned();
    assert_eq!(w["slug"], "research");
    assert_eq!(w["default_provider_sort"], "throughput");
    assert_eq!(w["io_logging_api_key_ids"], serde_json::json!([1, 2]));
    assert_eq!(w["io_logging_sampling_rate"], 1.0);
    assert_eq!(w["default_guardrail_id"], format!("gr_default_{id}"));
    assert_eq!(w["disabled_server_tools"], Value::Null);
    assert_eq!(w["include_byok_in_budgets"], false);
    assert!(w["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, body) = call(
        addr,
        key,
        "GET",
        "/api/v1/workspaces?offset=0&limit=50",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 2);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, _) = call(addr, key, "GET", "/api/v1/workspaces?limit=500", None).await;
    assert_eq!(status, 400);

    let (status, body) = call(
        addr,
        key,
        "PATCH",
        "/api/v1/workspaces/research",
        Some(r#"{"description":"R&D"}"#),
    )
    .await;
    assert_eq!(
        (status, body["data"]["description"].as_str()),
        (200, Some("R&D"))
    );

    let (status, body) = call(addr, key, "GET", "/api/v1/workspaces/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));

    let (status, body) = call(
        addr,
        key,
        "POST",
        &format!("/api/v1/workspaces/{id}/members/add"),
        Some(&format!(r#"{{"user_ids":["{}"]}}"#, f.member_user)),
    )
    .await;
    assert_eq!(
        (status, body["added_count"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(body["data"][0]["role"], "member");
    let (status, body) = call(
        addr,
        key,
        "GET",
        &format!("/api/v1/workspaces/{id}/members"),
        None,
    )
    .await;
    assert_eq!((status, body["total_count"].as_i64()), (200, Some(2)));
    let (status, body) = call(
        addr,
        key,
        "POST",
        "/api/v1/workspaces/research/members/remove",
        Some(&format!(r#"{{"user_ids":["{}"]}}"#, f.member_user)),
    )
    .await;
    assert_eq!((status, body["removed_count"].as_i64()), (200, Some(1)));

    let (status, body) = call(
        addr,
        key,
        "PUT",
        "/api/v1/workspaces/research/budgets/lifetime",
        Some(r#"{"limit_usd":250,"include_byok_in_budgets":true}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["reset_interval"],
        Value::Null,
        "lifetime reads as null"
    );
    assert_eq!(body["data"]["limit_usd"], 250.0);
    assert_eq!(body["include_byok_in_budgets"], true);
    let (status, body) = call(
        addr,
        key,
        "GET",
        "/api/v1/workspaces/research/budgets",
        None,
    )
    .await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, _) = call(
        addr,
        key,
        "GET",
        "/api/v1/workspaces/research/budgets/yearly",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        addr,
        key,
        "GET",
        "/api/v1/workspaces/research/budgets/daily",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        addr,
        key,
        "DELETE",
        "/api/v1/workspaces/research/budgets/lifetime",
        None,
    )
    .await;
    assert_eq!((status, body["deleted"].as_bool()), (200, Some(true)));

    let (status, body) = call(addr, key, "DELETE", "/api/v1/workspaces/default", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        addr,
        key,
        "DELETE",
        &format!("/api/v1/workspaces/{id}?force=true"),
        None,
    )
    .await;
    assert_eq!((status, body["deleted"].as_bool()), (200, Some(true)));
    let (status, body) = call(addr, key, "GET", "/api/v1/workspaces", None).await;
    assert_eq!((status, body["total_count"].as_i64()), (200, Some(1)));
}

/// Each rule on its own fixture, on SQLite and on a throwaway PostgreSQL database (needs a
/// server: `SWITCHYARD_TEST_POSTGRES`, default the local one).
macro_rules! on_both_databases {
    ($($rule:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $rule() {
                    let db = super::Database::sqlite();
                    super::$rule(&super::fixture(&db.url).await).await;
                    db.drop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $rule() {
                    let db = super::Database::postgres().await;
                    super::$rule(&super::fixture(&db.url).await).await;
                    db.drop().await;
                }
            )*
        }
    };
}

on_both_databases!(
    creation_is_validated_and_published,
    visibility_follows_the_caller,
    members_join_all_or_nothing,
    updates_are_for_admins_and_keep_slugs_unique,
    budgets_narrow_with_the_interval,
    a_member_with_a_live_key_stays,
    deletion_keeps_the_default_and_takes_keys_only_when_forced,
    a_key_cannot_delete_its_own_workspace,
    every_mutation_is_audited,
    rest_routes,
);
