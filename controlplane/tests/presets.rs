//! Presets over the REST API on a real socket, on SQLite and a throwaway PostgreSQL database:
//! versions, designation, the role rules and OpenRouter's error shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use serde_json::json;

use switchyard_controlplane::testing::{Db, RestServer};

#[tokio::test]
async fn presets_over_rest_on_sqlite() {
    presets_over_rest(Db::Sqlite).await;
}

#[tokio::test]
async fn presets_over_rest_on_postgres() {
    presets_over_rest(Db::Postgres).await;
}

async fn presets_over_rest(db: Db) {
    let s = RestServer::start(db).await;
    let config = json!({
        "model": "mock/fast",
        "provider": { "order": ["mock"] },
        "parameters": { "temperature": 0.2 },
    });

    let (status, created) = s
        .call(
            "admin",
            "POST",
            "/api/v1/presets",
            Some(json!({
                "slug": "support-bot", "name": "Support bot", "config": config,
                "system_prompt": "Be brief.",
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let preset = &created["data"];
    assert_eq!(preset["status"], "active");
    assert_eq!(preset["designated_version"]["version"], 1);
    assert_eq!(preset["designated_version"]["config"], config);
    assert_eq!(preset["designated_version"]["system_prompt"], "Be brief.");
    assert_eq!(
        preset["designated_version_id"],
        preset["designated_version"]["id"]
    );

    // Refusals, in OpenRouter's error shape.
    let (status, body) = s
        .call(
            "admin",
            "POST",
            "/api/v1/presets",
            Some(json!({ "slug": "x", "name": "X", "config": { "model": "a/b", "temp": 1 } })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("temp"));
    let duplicate = json!({ "slug": "support-bot", "name": "Again", "config": { "model": "a/b" } });
    let (status, _) = s
        .call("admin", "POST", "/api/v1/presets", Some(duplicate))
        .await;
    assert_eq!(status, 400, "slugs are unique in the organization");
    let (status, _) = s.call("none", "GET", "/api/v1/presets", None).await;
    assert_eq!(status, 401);
    let (status, _) = s
        .call(
            "inference",
            "POST",
            "/api/v1/presets",
            Some(json!({ "slug": "y", "name": "Y", "config": { "model": "a/b" } })),
        )
        .await;
    assert_eq!(status, 403, "writes need a management key");

    // A member creates only in a workspace they belong to.
    let mine = json!({ "slug": "mine", "name": "Mine", "config": { "models": ["a/b", "c/d"] } });
    let (status, _) = s
        .call("member", "POST", "/api/v1/presets", Some(mine.clone()))
        .await;
    assert_eq!(status, 403, "not a member of the default workspace");
    let mut in_team = mine;
    in_team["workspace_id"] = json!(s.team_workspace);
    let (status, body) = s
        .call("member", "POST", "/api/v1/presets", Some(in_team))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["workspace_id"], json!(s.team_workspace));

    // Members manage their own presets, not others'.
    let rename = json!({ "name": "Renamed" });
    let (status, _) = s
        .call(
            "member",
            "PATCH",
            "/api/v1/presets/support-bot",
            Some(rename.clone()),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = s
        .call("member", "PATCH", "/api/v1/presets/mine", Some(rename))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["name"], "Renamed");

    // Any key of the organization reads, inference keys included.
    let (status, list) = s
        .call("inference", "GET", "/api/v1/presets?limit=1", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total_count"], 2);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["data"][0]["slug"], "mine",
        "most recently updated first"
    );
    let (status, _) = s
        .call("member", "GET", "/api/v1/presets?limit=101", None)
        .await;
    assert_eq!(status, 400);

    // A new version is immutable and designated only when asked.
    let (status, v2) = s
        .call(
            "admin",
            "POST",
            "/api/v1/presets/support-bot/versions",
            Some(json!({ "config": { "model": "mock/slow" } })),
        )
        .await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["data"]["version"], 2);
    let (_, got) = s
        .call("member", "GET", "/api/v1/presets/support-bot", None)
        .await;
    assert_eq!(got["data"]["designated_version"]["version"], 1);
    let (status, got) = s
        .call(
            "admin",
            "PATCH",
            "/api/v1/presets/support-bot",
            Some(json!({ "designated_version": 2, "status": "disabled" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["designated_version"]["id"], v2["data"]["id"]);
    assert_eq!(got["data"]["status"], "disabled");
    assert!(got["data"]["status_updated_at"].is_string());
    let (status, _) = s
        .call(
            "admin",
            "PATCH",
            "/api/v1/presets/support-bot",
            Some(json!({ "status": "deleted" })),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .call(
            "admin",
            "PATCH",
            "/api/v1/presets/support-bot",
            Some(json!({ "designated_version": 9 })),
        )
        .await;
    assert_eq!(status, 400);

    let (status, versions) = s
        .call(
            "inference",
            "GET",
            "/api/v1/presets/support-bot/versions",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(versions["total_count"], 2);
    assert_eq!(versions["data"][0]["version"], 1, "oldest first");
    let (status, v1) = s
        .call(
            "member",
            "GET",
            "/api/v1/presets/support-bot/versions/1",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v1["data"]["config"], config);
    let (status, _) = s
        .call(
            "member",
            "GET",
            "/api/v1/presets/support-bot/versions/9",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .call(
            "member",
            "GET",
            "/api/v1/presets/support-bot/versions/one",
            None,
        )
        .await;
    assert_eq!(status, 400);

    let (status, _) = s
        .call("member", "DELETE", "/api/v1/presets/support-bot", None)
        .await;
    assert_eq!(status, 403);
    let (status, body) = s
        .call("admin", "DELETE", "/api/v1/presets/support-bot", None)
        .await;
    assert_eq!((status, body), (200, json!({ "deleted": true })));
    let (status, _) = s
        .call("admin", "GET", "/api/v1/presets/support-bot", None)
        .await;
    assert_eq!(status, 404);
    let actions: Vec<String> = s
        .store()
        .audit_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for action in [
        "preset.create",
        "preset.version.create",
        "preset.update",
        "preset.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
    s.finish().await;
}
