//! The management REST API over a real socket, on SQLite and on a throwaway PostgreSQL
//! database: the role matrix (every endpoint under every kind of caller), and the tenancy rules
//! behind it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use serde_json::{Value, json};
use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::manage::guardrails::GuardrailInput;
use switchyard_controlplane::manage::keys::NewKeyInput;
use switchyard_controlplane::manage::{Actor, Manage, Role};
use switchyard_controlplane::seed::{self, default_workspace};
use switchyard_controlplane::store::{Generation, Store, default_guardrail_id};
use switchyard_controlplane::testing::{self, Database};

/// The callers of the matrix, in the order each case runs them: refusals first, so a caller
/// that may change state does so after every caller that must not.
const CALLERS: [&str; 6] = [
    "none",
    "inference",
    "other_org",
    "outsider",
    "member",
    "admin",
];

struct Fixture {
    base: String,
    store: Store,
    org: String,
    keys: HashMap<&'static str, String>,
    /// Ids the cases refer to.
    ids: HashMap<&'static str, String>,
}

async fn management_key(manage: &Manage, org: &str, user: &str) -> String {
    let (_, secret) = manage
        .create_key(
            &Actor::Operator,
            NewKeyInput {
                name: format!("management key of {user}"),
                kind: KeyKind::Management,
                workspace: None,
                organization_id: Some(org.into()),
                owner_user_id: Some(user.into()),
                limit_usd: None,
                limit_reset: None,
                include_byok_in_limit: false,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    secret
}

async fn fixture(url: &str) -> Fixture {
    let f = testing::fixture(url).await;
    let (store, manage, org) = (f.store.clone(), f.manage.clone(), f.organization_id.clone());
    let admin_key = store
        .key(&switchyard_controlplane::keys::hash(&f.management_secret))
        .await
        .unwrap()
        .unwrap();
    let op = Actor::Operator;

    // A member who also belongs to a second workspace, "team".
    let member = manage
        .create_user(&op, "mia@example.com", "Mia Member")
        .await
        .unwrap();
    manage
        .add_member(&op, Some(&org), &member.id, Role::Member)
        .await
        .unwrap();
    let team = default_workspace("ws_team", &org, None, 1);
    let team = switchyard_controlplane::store::WorkspaceRow {
        name: "Team".into(),
        slug: "team".into(),
        is_default: false,
        ..team
    };
    store.insert_workspace(&team).await.unwrap();
    store
        .add_workspace_member(&team.id, &member.id, 1)
        .await
        .unwrap();
    // A member of the organization who is not in "team".
    let outsider = manage
        .create_user(&op, "otto@example.com", "Otto Outsider")
        .await
        .unwrap();
    manage
        .add_member(&op, Some(&org), &outsider.id, Role::Member)
        .await
        .unwrap();
    // The admin of another organization.
    let other_org = manage
        .create_organization(&op, "Other Org", None)
        .await
        .unwrap();
    let other = manage
        .create_user(&op, "olga@example.com", "Olga Other")
        .await
        .unwrap();
    manage
        .add_member(&op, Some(&other_org.id), &other.id, Role::Admin)
        .await
        .unwrap();
    // Someone to invite.
    let invitee = manage
        .create_user(&op, "ivy@example.com", "Ivy")
        .await
        .unwrap();

    let mut keys = HashMap::new();
    keys.insert("admin", f.management_secret.clone());
    keys.insert("inference", f.inference_secret.clone());
    keys.insert("member", management_key(&manage, &org, &member.id).await);
    keys.insert(
        "outsider",
        management_key(&manage, &org, &outsider.id).await,
    );
    keys.insert(
        "other_org",
        management_key(&manage, &other_org.id, &other.id).await,
    );

    let member_actor = Actor::Member {
        user_id: member.id.clone(),
        organization_id: org.clone(),
        role: Role::Member,
        key_hash: "test".into(),
    };
    let inference = |name: &str| NewKeyInput {
        name: name.into(),
        kind: KeyKind::Inference,
        workspace: None,
        organization_id: None,
        owner_user_id: None,
        limit_usd: None,
        limit_reset: None,
        include_byok_in_limit: false,
        expires_at: None,
    };
    let (members_key, _) = manage
        .create_key(&member_actor, inference("mia's"))
        .await
        .unwrap();
    let admin_actor = Actor::Member {
        user_id: admin_key.creator_user_id.clone(),
        organization_id: org.clone(),
        role: Role::Admin,
        key_hash: admin_key.hash.clone(),
    };
    let (doomed, _) = manage
        .create_key(&admin_actor, inference("doomed"))
        .await
        .unwrap();
    let seeded_inference = switchyard_controlplane::keys::hash(&f.inference_secret);

    // One generation by the admin's inference key, one by the member's key.
    let generations: Vec<Generation> = [
        ("gen-admin", &seeded_inference),
        ("gen-member", &members_key.hash),
    ]
    .into_iter()
    .map(|(id, key)| Generation {
        id: id.into(),
        key_hash: key.clone(),
        organization_id: org.clone(),
        workspace_id: members_key.workspace_id.clone(),
        model: "mock/fast".into(),
        ..Generation::default()
    })
    .collect();
    store.insert_generations(&generations).await.unwrap();

    let mut ids = HashMap::new();
    ids.insert("members_key", members_key.hash);
    ids.insert("admins_key", seeded_inference);
    ids.insert("doomed_key", doomed.hash);
    ids.insert("invitee", invitee.id);
    ids.insert("outsider", outsider.id.clone());
    ids.insert("member", member.id.clone());
    ids.insert("other_user", other.id.clone());

    // Guardrails: one to configure and assign, one to delete, and the Default workspace's.
    let default_ws = store.default_workspace(&org).await.unwrap().unwrap();
    for (name, id) in [
        ("Matrix rail", "guardrail"),
        ("Doomed rail", "doomed_guardrail"),
    ] {
        let g = manage
            .create_guardrail(
                &op,
                &GuardrailInput {
                    name: Some(name.into()),
                    workspace: Some(default_ws.id.clone()),
                    ..GuardrailInput::default()
                },
            )
            .await
            .unwrap();
        ids.insert(id, g.id);
    }
    ids.insert("default_guardrail", default_guardrail_id(&default_ws.id));

    let base = format!("{}/api/v1", testing::serve(&manage).await);
    Fixture {
        base,
        store,
        org,
        keys,
        ids,
    }
}

struct Case {
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// Expected status per caller, in `CALLERS` order.
    expect: [u16; 6],
}

fn case(method: &'static str, path: String, body: Option<Value>, expect: [u16; 6]) -> Case {
    Case {
        method,
        path,
        body,
        expect,
    }
}

async fn run_matrix(f: &Fixture) -> usize {
    let id = |k: &str| f.ids[k].clone();
    // Callers:     none inference other_org outsider member admin
    let cases = vec![
        case("GET", "/keys".into(), None, [401, 403, 200, 200, 200, 200]),
        case(
            "POST",
            "/keys".into(),
            Some(json!({"name": "k"})),
            [401, 403, 201, 201, 201, 201],
        ),
        case(
            "POST",
            "/keys".into(),
            Some(json!({"name": "k", "workspace_id": "team"})),
            [401, 403, 404, 403, 201, 201],
        ),
        case(
            "GET",
            format!("/keys/{}", id("admins_key")),
            None,
            [401, 403, 404, 404, 404, 200],
        ),
        case(
            "GET",
            format!("/keys/{}", id("members_key")),
            None,
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "PATCH",
            format!("/keys/{}", id("members_key")),
            Some(json!({"name": "renamed"})),
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "POST",
            format!("/keys/{}/rotate", id("members_key")),
            Some(json!({"grace_seconds": 60})),
            // Only the owner rotates (an admin would get a secret acting as the member).
            [401, 403, 404, 404, 201, 403],
        ),
        case(
            "POST",
            format!("/keys/{}/rotate", id("members_key")),
            Some(json!({"grace_seconds": 60})),
            // Already rotated: rotate the successor instead.
            [401, 403, 404, 404, 400, 403],
        ),
        case(
            "PATCH",
            format!("/keys/{}", id("members_key")),
            Some(json!({"limit": null})),
            // Members cannot lift limits (this key has none, so clearing is a no-op for them).
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "DELETE",
            format!("/keys/{}", id("doomed_key")),
            None,
            [401, 403, 404, 404, 404, 200],
        ),
        case("GET", "/key".into(), None, [401, 200, 200, 200, 200, 200]),
        case(
            "GET",
            "/organization/members".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "POST",
            "/organization/members".into(),
            Some(json!({"user_id": id("invitee"), "role": "member"})),
            [401, 403, 201, 403, 403, 201],
        ),
        case(
            "PATCH",
            format!("/organization/members/{}", id("invitee")),
            Some(json!({"role": "admin"})),
            [401, 403, 200, 403, 403, 200],
        ),
        case(
            "DELETE",
            format!("/organization/members/{}", id("invitee")),
            None,
            [401, 403, 200, 403, 403, 200],
        ),
        case(
            "GET",
            "/organization/settings".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "PATCH",
            "/organization/settings".into(),
            Some(json!({"is_filtered_model_catalog_enabled": true})),
            [401, 403, 200, 403, 403, 200],
        ),
        case(
            "GET",
            "/credits".into(),
            None,
            [401, 403, 200, 403, 403, 200],
        ),
        case(
            "POST",
            "/credits".into(),
            Some(json!({"amount": 25.5, "reason": "invoice 42"})),
            [401, 403, 201, 403, 403, 201],
        ),
        case(
            "GET",
            "/credits/ledger".into(),
            None,
            [401, 403, 200, 403, 403, 200],
        ),
        // Generations: a member sees those of their own keys; admins (and an admin's inference
        // key) see the organization's.
        case(
            "GET",
            "/generation?id=gen-admin".into(),
            None,
            [401, 200, 404, 404, 404, 200],
        ),
        case(
            "GET",
            "/generation?id=gen-member".into(),
            None,
            [401, 200, 404, 404, 200, 200],
        ),
        // Workspaces: "team" holds the member but not the outsider.
        case(
            "GET",
            "/workspaces".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "GET",
            "/workspaces/team".into(),
            None,
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "PATCH",
            "/workspaces/team".into(),
            Some(json!({"description": "the team"})),
            [401, 403, 404, 404, 403, 200],
        ),
        case(
            "POST",
            "/workspaces".into(),
            Some(json!({"name": "Matrix", "slug": "matrix"})),
            [401, 403, 201, 403, 403, 201],
        ),
        case(
            "GET",
            "/workspaces/team/members".into(),
            None,
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "PUT",
            "/workspaces/team/budgets/monthly".into(),
            Some(json!({"limit_usd": 10.0})),
            [401, 403, 404, 404, 403, 200],
        ),
        case(
            "GET",
            "/workspaces/team/budgets".into(),
            None,
            [401, 403, 404, 404, 200, 200],
        ),
        case(
            "POST",
            "/workspaces/team/members/add".into(),
            Some(json!({"user_ids": [id("outsider")]})),
            [401, 403, 404, 404, 403, 200],
        ),
        case(
            "DELETE",
            "/workspaces/matrix".into(),
            None,
            [401, 403, 200, 404, 404, 200],
        ),
        // Guardrails: every member of the organization reads them; admins change and assign
        // them; another organization's are not found.
        case(
            "GET",
            "/guardrails".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "GET",
            "/guardrails?workspace_id=team&limit=10".into(),
            None,
            [401, 403, 404, 200, 200, 200],
        ),
        case(
            "GET",
            "/guardrails?limit=101".into(),
            None,
            [401, 403, 400, 400, 400, 400],
        ),
        case(
            "POST",
            "/guardrails".into(),
            Some(json!({
                "name": "Matrix cap", "limit_usd": 5, "reset_interval": "daily",
                "allowed_models": ["mock/fast"], "ignored_providers": ["mock-b"],
                "enforce_zdr_openai": true,
            })),
            [401, 403, 201, 403, 403, 201],
        ),
        case(
            "POST",
            "/guardrails".into(),
            Some(json!({"name": "Team rail", "workspace_id": "team"})),
            [401, 403, 404, 403, 403, 201],
        ),
        case(
            "POST",
            "/guardrails".into(),
            Some(json!({"name": "Bad", "allowed_models": ["nope/nope"]})),
            [401, 403, 400, 403, 403, 400],
        ),
        case(
            "POST",
            "/guardrails".into(),
            Some(json!({"name": "Bad", "allowed_providers": ["nope"]})),
            [401, 403, 400, 403, 403, 400],
        ),
        case(
            "POST",
            "/guardrails".into(),
            // A limit needs its interval.
            Some(json!({"name": "Bad", "limit_usd": 5})),
            [401, 403, 400, 403, 403, 400],
        ),
        case(
            "POST",
            "/guardrails".into(),
            // Settings the gateway cannot enforce are refused, not ignored.
            Some(json!({"name": "Bad", "content_filters": [{"pattern": "secret"}]})),
            [401, 403, 400, 403, 403, 400],
        ),
        case(
            "GET",
            format!("/guardrails/{}", id("guardrail")),
            None,
            [401, 403, 404, 200, 200, 200],
        ),
        case(
            "GET",
            format!("/guardrails/{}", id("default_guardrail")),
            None,
            [401, 403, 404, 200, 200, 200],
        ),
        case(
            "PATCH",
            format!("/guardrails/{}", id("guardrail")),
            Some(json!({"description": "capped", "limit_usd": 10, "reset_interval": "weekly"})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "PATCH",
            format!("/guardrails/{}", id("guardrail")),
            Some(json!({"reset_interval": "yearly"})),
            [401, 403, 404, 403, 403, 400],
        ),
        case(
            "PATCH",
            format!("/guardrails/{}", id("default_guardrail")),
            Some(json!({"allowed_providers": ["mock-a", "mock-b"]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/keys", id("guardrail")),
            Some(json!({"key_hashes": [id("members_key")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/keys", id("guardrail")),
            Some(json!({"key_hashes": ["ab".repeat(32)]})),
            [401, 403, 404, 403, 403, 400],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/keys", id("default_guardrail")),
            Some(json!({"key_hashes": [id("members_key")]})),
            [401, 403, 404, 403, 403, 400],
        ),
        case(
            "GET",
            format!("/guardrails/{}/assignments/keys", id("guardrail")),
            None,
            [401, 403, 404, 200, 200, 200],
        ),
        case(
            "GET",
            "/guardrails/assignments/keys".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/members", id("guardrail")),
            Some(json!({"member_user_ids": [id("member")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/members", id("guardrail")),
            Some(json!({"member_user_ids": [id("other_user")]})),
            [401, 403, 404, 403, 403, 400],
        ),
        case(
            "GET",
            format!("/guardrails/{}/assignments/members", id("guardrail")),
            None,
            [401, 403, 404, 200, 200, 200],
        ),
        case(
            "GET",
            "/guardrails/assignments/members".into(),
            None,
            [401, 403, 200, 200, 200, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/members", id("doomed_guardrail")),
            Some(json!({"member_user_ids": [id("outsider")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!(
                "/guardrails/{}/assignments/members/remove",
                id("doomed_guardrail")
            ),
            Some(json!({"member_user_ids": [id("outsider")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!("/guardrails/{}/assignments/keys", id("doomed_guardrail")),
            Some(json!({"key_hashes": [id("admins_key")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "POST",
            format!(
                "/guardrails/{}/assignments/keys/remove",
                id("doomed_guardrail")
            ),
            Some(json!({"key_hashes": [id("admins_key")]})),
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "DELETE",
            format!("/guardrails/{}", id("default_guardrail")),
            None,
            [401, 403, 404, 403, 403, 400],
        ),
        case(
            "DELETE",
            format!("/guardrails/{}", id("doomed_guardrail")),
            None,
            [401, 403, 404, 403, 403, 200],
        ),
        case(
            "GET",
            format!("/guardrails/{}", id("doomed_guardrail")),
            None,
            [401, 403, 404, 404, 404, 404],
        ),
    ];
    let c = reqwest::Client::new();
    let mut failures = Vec::new();
    for case in &cases {
        for (i, caller) in CALLERS.iter().enumerate() {
            let url = format!("{}{}", f.base, case.path);
            let mut req = match case.method {
                "GET" => c.get(&url),
                "POST" => c.post(&url),
                "PATCH" => c.patch(&url),
                "PUT" => c.put(&url),
                "DELETE" => c.delete(&url),
                m => panic!("method {m}"),
            };
            if let Some(key) = f.keys.get(caller) {
                req = req.bearer_auth(key);
            }
            if let Some(body) = &case.body {
                req = req.json(body);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status >= 400 {
                // Every refusal is in OpenRouter's shape.
                assert_eq!(
                    body["error"]["code"], status,
                    "{} {} as {caller}: {body}",
                    case.method, case.path
                );
                assert!(body["error"]["message"].is_string());
            }
            if status != case.expect[i] {
                failures.push(format!(
                    "{} {} as {caller}: expected {}, got {status} {body}",
                    case.method, case.path, case.expect[i]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "role matrix:\n{}", failures.join("\n"));
    cases.len() * CALLERS.len()
}

async fn get(f: &Fixture, caller: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", f.base))
        .bearer_auth(&f.keys[caller])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn exercise(url: &str) {
    let f = fixture(url).await;
    let cells = run_matrix(&f).await;
    eprintln!("role matrix: {cells} cells passed");

    // Members see only their own keys; admins see all of the organization's.
    let mine = get(&f, "member", "/keys").await;
    let all = get(&f, "admin", "/keys").await;
    let theirs = get(&f, "other_org", "/keys").await;
    let hashes = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["hash"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(hashes(&mine).contains(&f.ids["members_key"]));
    assert!(!hashes(&mine).contains(&f.ids["admins_key"]));
    assert!(hashes(&all).contains(&f.ids["admins_key"]));
    assert!(hashes(&all).len() > hashes(&mine).len());
    assert!(hashes(&theirs).iter().all(|h| !hashes(&all).contains(h)));

    // A member may tighten their key's limit but not loosen it by another door: a new reset
    // interval (a fresh window) or BYOK spend left out.
    let key = format!("{}/keys/{}", f.base, f.ids["members_key"]);
    let patch = |caller: &str, body: Value| {
        reqwest::Client::new()
            .patch(&key)
            .bearer_auth(&f.keys[caller])
            .json(&body)
            .send()
    };
    let limited = json!({"limit": 5, "limit_reset": "monthly", "include_byok_in_limit": true});
    assert_eq!(patch("admin", limited).await.unwrap().status(), 200);
    for (body, status) in [
        (json!({"limit_reset": "daily"}), 403),
        (json!({"limit_reset": null}), 403),
        (json!({"include_byok_in_limit": false}), 403),
        (
            json!({"limit_reset": "monthly", "include_byok_in_limit": true}),
            200,
        ),
        (json!({"limit": 4}), 200),
        (json!({"limit": 6}), 403),
    ] {
        let r = patch("member", body.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
    }
    assert_eq!(
        patch(
            "admin",
            json!({"limit_reset": "daily", "include_byok_in_limit": false})
        )
        .await
        .unwrap()
        .status(),
        200
    );

    // Both grants landed in the ledger with who and why; the balance adds up.
    let credits = get(&f, "admin", "/credits").await;
    assert_eq!(
        credits["data"]["total_credits"],
        seed::BOOTSTRAP_CREDITS_USD as f64 + 25.5
    );
    assert_eq!(credits["data"]["total_usage"], 0.0);
    let ledger = get(&f, "admin", "/credits/ledger").await;
    assert_eq!(ledger["data"][0]["reason"], "invoice 42");
    assert!(
        ledger["data"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );

    // Guardrails in the SDK's shape: the Default workspace's default guardrail first, as the
    // workspace object names it.
    let listed = get(&f, "admin", "/guardrails").await;
    let workspaces = get(&f, "admin", "/workspaces").await;
    assert_eq!(
        listed["data"][0]["id"],
        workspaces["data"][0]["default_guardrail_id"]
    );
    assert_eq!(listed["data"][0]["id"], f.ids["default_guardrail"]);
    assert_eq!(
        listed["total_count"].as_i64().unwrap(),
        listed["data"].as_array().unwrap().len() as i64
    );
    let g = get(&f, "member", &format!("/guardrails/{}", f.ids["guardrail"])).await["data"].clone();
    assert_eq!(g["name"], "Matrix rail");
    assert_eq!(g["description"], "capped");
    assert_eq!(g["limit_usd"], 10.0);
    assert_eq!(g["reset_interval"], "weekly");
    assert_eq!(g["include_byok_in_budgets"], false);
    assert!(g["workspace_id"].is_string() && g["created_at"].is_string());
    assert!(g["updated_at"].is_string());
    let default = get(
        &f,
        "admin",
        &format!("/guardrails/{}", f.ids["default_guardrail"]),
    )
    .await;
    assert_eq!(
        default["data"]["allowed_providers"],
        json!(["mock-a", "mock-b"])
    );
    // Key assignments: admins see the organization's, members those of their own keys.
    let all = get(&f, "admin", "/guardrails/assignments/keys").await;
    let a = &all["data"][0];
    assert_eq!(all["total_count"], 1);
    assert_eq!(a["key_hash"], f.ids["members_key"]);
    assert_eq!(a["guardrail_id"], f.ids["guardrail"]);
    assert_eq!(a["key_name"], "renamed");
    assert!(a["key_label"].as_str().unwrap().starts_with("sk-sy-v1-"));
    assert!(a["id"].is_string() && a["created_at"].is_string() && a["assigned_by"].is_string());
    assert_eq!(
        get(&f, "member", "/guardrails/assignments/keys").await["total_count"],
        1
    );
    assert_eq!(
        get(&f, "outsider", "/guardrails/assignments/keys").await["total_count"],
        0
    );
    assert_eq!(
        get(&f, "other_org", "/guardrails/assignments/keys").await["total_count"],
        0
    );
    let members = get(&f, "admin", "/guardrails/assignments/members").await;
    assert_eq!(members["total_count"], 1);
    assert_eq!(members["data"][0]["user_id"], f.ids["member"]);
    assert_eq!(members["data"][0]["organization_id"], f.org);
    assert_eq!(
        get(&f, "outsider", "/guardrails/assignments/members").await["total_count"],
        0
    );

    // Members are listed in the SDK's shape, with their role.
    // The seed's admin, the shared fixture's member, and this file's member and outsider.
    let members = get(&f, "admin", "/organization/members").await;
    assert_eq!(members["total_count"], 4);
    assert!(
        members["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "org:admin")
    );

    // Rotation: the old key keeps working through the grace period, with an expiry set.
    let rotated = get(&f, "admin", &format!("/keys/{}", f.ids["members_key"])).await;
    assert!(rotated["data"]["expires_at"].is_string());
    assert_eq!(rotated["data"]["disabled"], false);

    // Everything above was audited, and no secret reached the audit log.
    let audit = f.store.audit_log(Some(&f.org), 1000).await.unwrap();
    for action in [
        "key.create",
        "key.update",
        "key.rotate",
        "key.delete",
        "member.add",
        "member.role",
        "member.remove",
        "credits.grant",
        "organization.update",
        "guardrail.create",
        "guardrail.update",
        "guardrail.delete",
        "guardrail.keys.assign",
        "guardrail.keys.unassign",
        "guardrail.members.assign",
        "guardrail.members.unassign",
    ] {
        assert!(
            audit.iter().any(|a| a.action == action),
            "no audit record of {action}"
        );
    }
    for secret in f.keys.values() {
        assert!(audit.iter().all(|a| {
            !a.before.as_deref().unwrap_or("").contains(secret.as_str())
                && !a.after.as_deref().unwrap_or("").contains(secret.as_str())
        }));
    }
}

#[tokio::test]
async fn role_matrix_sqlite() {
    let db = Database::sqlite();
    exercise(&db.url).await;
    db.drop().await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one, as `.ci/run`
/// ensures). The test creates and drops its own database.
#[tokio::test]
async fn role_matrix_postgres() {
    let db = Database::postgres().await;
    exercise(&db.url).await;
    db.drop().await;
}
