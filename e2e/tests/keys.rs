//! Key lifecycle and the split between management and inference keys, through the gateway's
//! single base URL (management calls pass through to the control plane).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Stack, chat_body, client, eventually, expect_error};

#[tokio::test]
async fn key_lifecycle_create_use_disable_refuse_delete() {
    let stack = Stack::start().await;
    let c = client();
    let api = stack.api();

    let r = c
        .post(format!("{api}/keys"))
        .bearer_auth(&stack.management_key)
        .json(&json!({"name": "ci", "limit": 5.5, "limit_reset": "monthly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let hash = created["data"]["hash"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk-sy-v1-") && secret.len() >= 9 + 32);
    assert_eq!(created["data"]["limit"], 5.5);
    assert_eq!(created["data"]["limit_reset"], "monthly");
    let label = created["data"]["label"].as_str().unwrap();
    assert!(
        !label.contains(&secret[9..30]),
        "label must not reveal the secret"
    );

    // The new key works as soon as the snapshot reaches the dataplane.
    let key = secret.clone();
    eventually("new key accepted", Duration::from_secs(10), || {
        let stack = &stack;
        let key = key.clone();
        async move { (stack.chat(&key, chat_body("mock/fast")).await.status() == 200).then_some(()) }
    })
    .await;

    // The list shows it, never its secret.
    let list = c
        .get(format!("{api}/keys"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap();
    let list_text = list.text().await.unwrap();
    assert!(list_text.contains(&hash));
    assert!(!list_text.contains(&secret));

    let r = c
        .patch(format!("{api}/keys/{hash}"))
        .bearer_auth(&stack.management_key)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["disabled"], true);

    // Refused once the change reaches the dataplane (how fast is measured by the bench).
    eventually("disabled key refused", Duration::from_secs(10), || {
        let stack = &stack;
        let key = key.clone();
        async move { (stack.chat(&key, chat_body("mock/fast")).await.status() == 401).then_some(()) }
    })
    .await;

    // Disabled keys are hidden unless asked for.
    let v: Value = c
        .get(format!("{api}/keys"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["hash"] == hash.as_str())
    );
    let v: Value = c
        .get(format!("{api}/keys?include_disabled=true"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["hash"] == hash.as_str())
    );

    let r = c
        .delete(format!("{api}/keys/{hash}"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"deleted": true}));
    let r = c
        .get(format!("{api}/keys/{hash}"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap();
    expect_error(r, 404).await;
}

#[tokio::test]
async fn inference_keys_cannot_manage_and_bad_input_is_refused() {
    let stack = Stack::start().await;
    let c = client();
    let api = stack.api();
    let r = c
        .get(format!("{api}/keys"))
        .bearer_auth(&stack.inference_key)
        .send()
        .await
        .unwrap();
    expect_error(r, 403).await;
    let r = c.get(format!("{api}/keys")).send().await.unwrap();
    expect_error(r, 401).await;
    let r = c
        .get(format!("{api}/keys"))
        .bearer_auth("sk-sy-v1-nope")
        .send()
        .await
        .unwrap();
    expect_error(r, 401).await;

    for (body, why) in [
        (json!({}), "missing name"),
        (json!({"name": ""}), "empty name"),
        (json!({"name": "x", "limit": -1}), "negative limit"),
        (
            json!({"name": "x", "limit_reset": "hourly"}),
            "unknown reset",
        ),
        (json!({"name": "x", "expires_at": "yesterday"}), "bad date"),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "past date",
        ),
    ] {
        let r = c
            .post(format!("{api}/keys"))
            .bearer_auth(&stack.management_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{why}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 400, "{why}");
    }
    // A workspace outside the caller's organization is not found, like any id of another one.
    let r = c
        .post(format!("{api}/keys"))
        .bearer_auth(&stack.management_key)
        .json(&json!({"name": "x", "workspace_id": "ws_elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(format!("{api}/keys"))
        .bearer_auth(&stack.management_key)
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    expect_error(r, 400).await;

    // GET /key describes the calling key, whatever its kind.
    let v: Value = c
        .get(format!("{api}/key"))
        .bearer_auth(&stack.inference_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["is_management_key"], false);
    let v: Value = c
        .get(format!("{api}/key"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["is_management_key"], true);
}
