//! BYOK credentials over the REST API on a real socket, on SQLite and a throwaway PostgreSQL
//! database: sealed at rest, never returned, role rules; and the public providers list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use serde_json::json;

use switchyard_controlplane::keys;
use switchyard_controlplane::testing::{Db, RestServer};

const SECRET: &str = "sk-proj-secret0123456789abcdefWXYZ";

#[tokio::test]
async fn byok_over_rest_on_sqlite() {
    byok_over_rest(Db::Sqlite).await;
}

#[tokio::test]
async fn byok_over_rest_on_postgres() {
    byok_over_rest(Db::Postgres).await;
}

async fn byok_over_rest(db: Db) {
    let s = RestServer::start(db).await;
    let inference_hash = keys::hash(&s.keys["inference"]);

    let (status, created) = s
        .call(
            "admin",
            "POST",
            "/api/v1/byok",
            Some(json!({
                "provider": "openai", "key": SECRET, "name": "Prod",
                "allowed_api_key_hashes": [inference_hash],
                "allowed_models": ["openai/gpt-4o"], "declared_region": "europe",
                "is_required": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    assert!(!created.to_string().contains("secret0123"), "never echoed");
    assert!(data.get("key").is_none());
    assert_eq!(data["label"], "sk-...WXYZ");
    assert_eq!(data["provider"], "openai");
    assert_eq!(data["allowed_api_key_hashes"], json!([inference_hash]));
    assert_eq!(data["allowed_user_ids"], json!(null));
    assert_eq!(data["declared_region"], "europe");
    assert_eq!(data["declared_zdr"], json!(null));
    assert_eq!(data["is_required"], true);
    assert_eq!(data["is_fallback"], false);
    assert_eq!(data["disabled"], false);
    assert_eq!(data["sort_order"], 0);
    assert!(data["workspace_id"].is_string() && data["created_at"].is_string());
    let id = data["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/byok/{id}");

    // Validation.
    for (body, why) in [
        (
            json!({ "provider": "nope", "key": "k" }),
            "unknown provider",
        ),
        (json!({ "provider": "openai", "key": " " }), "empty key"),
        (
            json!({ "provider": "openai", "key": "k".repeat(4097) }),
            "key too long",
        ),
        (
            json!({ "provider": "openai", "key": "k", "allowed_api_key_hashes": ["0".repeat(64)] }),
            "a hash of no key of the organization",
        ),
        (
            json!({ "provider": "openai", "key": "k", "allowed_api_key_hashes": [] }),
            "an empty allowlist",
        ),
        (
            json!({ "provider": "openai", "key": "k", "allowed_user_ids": ["user_stranger"] }),
            "a user outside the organization",
        ),
        (
            json!({ "provider": "openai", "key": "k", "is_byok_only": true, "is_fallback": true }),
            "byok-only fallback",
        ),
        (json!({ "provider": "openai" }), "no key"),
    ] {
        let (status, body) = s.call("admin", "POST", "/api/v1/byok", Some(body)).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"]["code"], 400);
    }
    // A workspace outside the caller's organization is not found, like any other id.
    let body = json!({ "provider": "openai", "key": "k", "workspace_id": "ws_elsewhere" });
    let (status, body) = s.call("admin", "POST", "/api/v1/byok", Some(body)).await;
    assert_eq!(status, 404, "{body}");

    // Members read the credentials of workspaces they belong to (here only `team`): others are
    // not found. Only admins write; inference keys do neither.
    assert_eq!(s.call("member", "GET", "/api/v1/byok", None).await.0, 404);
    assert_eq!(s.call("member", "GET", &path, None).await.0, 404);
    let (status, team) = s
        .call(
            "admin",
            "POST",
            "/api/v1/byok",
            Some(json!({ "provider": "openai", "key": "sk-team-0001", "workspace_id": s.team_workspace })),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    let team_path = format!("/api/v1/byok/{}", team["data"]["id"].as_str().unwrap());
    let team_list = format!("/api/v1/byok?workspace_id={}", s.team_workspace);
    let (status, list) = s.call("member", "GET", &team_list, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["total_count"], 1);
    assert_eq!(list["data"][0]["id"], team["data"]["id"]);
    assert_eq!(s.call("member", "GET", &team_path, None).await.0, 200);
    let (status, _) = s
        .call(
            "member",
            "POST",
            "/api/v1/byok",
            Some(json!({ "provider": "openai", "key": "sk-member" })),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .call(
            "member",
            "PATCH",
            &team_path,
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s.call("member", "DELETE", &team_path, None).await;
    assert_eq!(status, 403);
    assert_eq!(s.call("admin", "DELETE", &team_path, None).await.0, 200);
    let (status, _) = s.call("inference", "GET", "/api/v1/byok", None).await;
    assert_eq!(status, 403);
    let (status, _) = s.call("none", "GET", "/api/v1/byok", None).await;
    assert_eq!(status, 401);

    // Filters and paging.
    let (_, second) = s
        .call(
            "admin",
            "POST",
            "/api/v1/byok",
            Some(json!({ "provider": "openai", "key": "sk-second-key-0000000001", "is_fallback": true })),
        )
        .await;
    assert_eq!(second["data"]["sort_order"], 1, "tried after the first");
    let (_, list) = s
        .call("admin", "GET", "/api/v1/byok?provider=anthropic", None)
        .await;
    assert_eq!(list["total_count"], 0);
    let (_, list) = s
        .call(
            "admin",
            "GET",
            "/api/v1/byok?provider=openai&limit=1&offset=1",
            None,
        )
        .await;
    assert_eq!(list["total_count"], 2);
    assert_eq!(list["data"][0]["id"], second["data"]["id"]);
    let other = format!("/api/v1/byok?workspace_id={}", s.team_workspace);
    let (_, list) = s.call("admin", "GET", &other, None).await;
    assert_eq!(list["total_count"], 0, "another workspace's credentials");

    // Updates: a new key is relabelled, `null` clears, absent leaves unchanged.
    let (status, updated) = s
        .call(
            "admin",
            "PATCH",
            &path,
            Some(json!({
                "key": "sk-rotated-key-after-leak-9876", "allowed_models": null,
                "declared_zdr": true, "name": null,
            })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let data = &updated["data"];
    assert_eq!(data["label"], "sk-...9876");
    assert!(!updated.to_string().contains("rotated-key"));
    assert_eq!(data["allowed_models"], json!(null));
    assert_eq!(data["declared_zdr"], true);
    assert_eq!(data["name"], json!(null));
    assert_eq!(data["declared_region"], "europe");
    assert_eq!(data["allowed_api_key_hashes"], json!([inference_hash]));
    let (status, _) = s
        .call(
            "admin",
            "PATCH",
            &path,
            Some(json!({ "is_fallback": true, "is_byok_only": true })),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = s.call("admin", "DELETE", &path, None).await;
    assert_eq!((status, body), (200, json!({ "deleted": true })));
    let (status, _) = s.call("admin", "GET", &path, None).await;
    assert_eq!(status, 404);

    // Nothing in the audit log or the table holds a raw key.
    let audit = s.store().audit_log(None, 100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "byok.update"));
    let logged: String = audit
        .iter()
        .map(|a| format!("{:?}{:?}", a.before, a.after))
        .collect();
    assert!(!logged.contains("secret0123") && !logged.contains("rotated-key"));
    assert!(
        logged.contains("sk-...WXYZ"),
        "the audit log shows the label"
    );
    s.finish().await;
}

#[tokio::test]
async fn providers_are_public() {
    let s = RestServer::start(Db::Sqlite).await;
    for caller in ["none", "inference", "member"] {
        let (status, body) = s.call(caller, "GET", "/api/v1/providers", None).await;
        assert_eq!(status, 200);
        let data = body["data"].as_array().unwrap();
        assert!(!data.is_empty());
        for p in data {
            assert!(p["name"].is_string() && p["slug"].is_string());
            assert!(p["privacy_policy_url"].is_null());
            assert!(p.get("base_url").is_none() && p.get("api_key_env").is_none());
        }
    }
}
