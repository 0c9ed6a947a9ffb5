//! Configuration reaches every dataplane whatever else is wrong: one tenant's bad record, a
//! control plane whose clock went back. Real processes: a control plane, several dataplanes,
//! the mock providers, `swctl` and the SQLite store on disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Stack, chat_body, client, eventually, libfaketime, served_version, wait_dataplane_ready,
};

/// A chat request through the dataplane on `port`: its status and body.
async fn chat(port: u16, secret: &str) -> (u16, Value) {
    let r = client()
        .post(format!("http://127.0.0.1:{port}/api/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&chat_body("mock/fast"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// `POST`/`PATCH` on the management API with `secret`: status and body.
async fn call(stack: &Stack, method: &str, path: &str, secret: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = client()
        .request(method, format!("{}{path}", stack.api()))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// An organization of its own with an admin, credits, a management key and an inference key:
/// `(management secret, inference secret, inference key hash)`.
fn other_organization(stack: &Stack) -> (String, String, String) {
    stack.swctl(&["create", "org", "Other Co"]);
    stack.swctl(&["create", "user", "bea@other.example", "--name", "Bea"]);
    stack.swctl(&[
        "create",
        "member",
        "bea@other.example",
        "--org",
        "Other Co",
        "--role",
        "admin",
    ]);
    stack.swctl(&[
        "create", "grant", "--org", "Other Co", "--amount", "50", "--reason", "e2e",
    ]);
    let management = stack.swctl(&[
        "create",
        "key",
        "bea ops",
        "--org",
        "Other Co",
        "--user",
        "bea@other.example",
        "--kind",
        "management",
    ]);
    let inference = stack.swctl(&[
        "create",
        "key",
        "bea app",
        "--org",
        "Other Co",
        "--user",
        "bea@other.example",
    ]);
    (
        management["secret"].as_str().unwrap().to_owned(),
        inference["secret"].as_str().unwrap().to_owned(),
        inference["hash"].as_str().unwrap().to_owned(),
    )
}

/// A member (not an admin) of the seeded organization, with a management key of their own.
fn seeded_member(stack: &Stack) -> String {
    let org = stack.swctl(&["get", "orgs"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.swctl(&["create", "user", "mia@example.com", "--name", "Mia"]);
    stack.swctl(&[
        "create",
        "member",
        "mia@example.com",
        "--org",
        &org,
        "--role",
        "member",
    ]);
    let key = stack.swctl(&[
        "create",
        "key",
        "mia ops",
        "--org",
        &org,
        "--user",
        "mia@example.com",
        "--kind",
        "management",
    ]);
    key["secret"].as_str().unwrap().to_owned()
}

/// The scenario that used to freeze the fleet: after a member's out-of-range limit (refused at
/// the API) and a record that fails validation anyway (an older row, written here straight
/// into the store), another organization's new key and disabled key take effect on every
/// dataplane, the bad key alone is refused, and a dataplane started afterwards becomes ready.
#[tokio::test]
async fn one_bad_record_never_stops_configuration_reaching_the_fleet() {
    let stack = Stack::start().await;
    let (_second, second_port) = stack.start_extra_dataplane("second", &[]).await;
    let (other_ops, other_old, other_old_hash) = other_organization(&stack);
    let member = seeded_member(&stack);

    // A limit above the maximum is refused before it is stored, in OpenRouter's shape; twenty
    // million USD, which once overflowed the dataplane, is an ordinary limit.
    let (status, body) = call(
        &stack,
        "POST",
        "/keys",
        &member,
        json!({"name": "x", "limit": 2e9}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000000000")
    );
    let (status, created) = call(
        &stack,
        "POST",
        "/keys",
        &member,
        json!({"name": "big", "limit": 2e7}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (bad_secret, bad_hash) = (
        created["key"].as_str().unwrap().to_owned(),
        created["data"]["hash"].as_str().unwrap().to_owned(),
    );

    // The same key's row as an older control plane might have left it: a limit no parser
    // accepts, and a version bumped with no record of what changed (so the whole snapshot is
    // published). The control plane publishes the row as it is; every dataplane sets it aside.
    let changed = stack.store_sql(&format!(
        "UPDATE api_keys SET limit_usd = '1e6' WHERE hash = '{bad_hash}'; SELECT changes(); \
         UPDATE config_state SET version = version + 1;"
    ));
    assert_eq!(changed.trim(), "1", "the row was changed");

    // Another organization's changes, each published with the bad row in the snapshot.
    let (status, fresh) = call(&stack, "POST", "/keys", &other_ops, json!({"name": "new"})).await;
    assert_eq!(status, 201, "{fresh}");
    let fresh = fresh["key"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &stack,
        "PATCH",
        &format!("/keys/{other_old_hash}"),
        &other_ops,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, 200);

    let (_third, third_port) = stack.start_extra_dataplane("third", &[]).await;
    for port in [stack.dp_port, second_port, third_port] {
        eventually(
            &format!("the other organization's changes at dataplane {port}"),
            Duration::from_secs(20),
            || {
                let (fresh, old) = (fresh.clone(), other_old.clone());
                async move {
                    let served = chat(port, &fresh).await.0 == 200;
                    let disabled = chat(port, &old).await.0 == 401;
                    (served && disabled).then_some(())
                }
            },
        )
        .await;
        let (status, body) = chat(port, &bad_secret).await;
        assert_eq!(status, 403, "the bad record's key is refused: {body}");
        assert_eq!(
            body["error"]["metadata"]["reason"],
            "configuration_quarantined"
        );
        assert_eq!(
            chat(port, &stack.inference_key).await.0,
            200,
            "others serve on"
        );
    }

    // Operators see which records each dataplane set aside.
    let dataplanes = eventually(
        "every dataplane acknowledged",
        Duration::from_secs(10),
        || {
            let dataplanes = stack.swctl(&["get", "dataplanes"]);
            async move {
                let rows = dataplanes.as_array()?.clone();
                (rows.len() == 3
                    && rows
                        .iter()
                        .all(|d| d["quarantined"] == 1 && d["accepted"] == true))
                .then_some(rows)
            }
        },
    )
    .await;
    let record = &dataplanes[0]["quarantined_records"][0];
    assert_eq!(record["kind"], "key");
    assert_eq!(record["id"], bad_hash.as_str());
    let metrics = stack.control_plane_metrics().await;
    assert!(
        metrics.contains("switchyard_snapshot_quarantined_records 1"),
        "{metrics}"
    );
}

/// Snapshot versions come from the store, never the clock: a control plane restarted with its
/// clock more than a year behind still numbers every change above what dataplanes serve.
#[tokio::test]
async fn a_control_plane_restarted_with_its_clock_set_back_still_reaches_every_dataplane() {
    let mut stack = Stack::start().await;
    let (_second, second_port) = stack.start_extra_dataplane("second", &[]).await;
    let before = served_version(stack.dp_port).await.unwrap();

    stack.kill_control_plane();
    stack
        .start_control_plane_with_env(&[
            ("LD_PRELOAD", libfaketime()),
            ("FAKETIME", "-400d".into()),
            // Timers and timeouts keep the real monotonic clock.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ])
        .await;
    let (status, created) = call(
        &stack,
        "POST",
        "/keys",
        &stack.management_key.clone(),
        json!({"name": "after the clock went back"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_owned();
    for port in [stack.dp_port, second_port] {
        wait_dataplane_ready(port).await;
        eventually(
            &format!("the new key at dataplane {port}"),
            Duration::from_secs(20),
            || {
                let secret = secret.clone();
                async move { (chat(port, &secret).await.0 == 200).then_some(()) }
            },
        )
        .await;
        let after = served_version(port).await.unwrap();
        assert!(after > before, "version {after} follows {before}");
    }
    // The control plane really ran a year behind: the key it created says so.
    let created_at = created["data"]["created_at"].as_str().unwrap();
    let created_at = chrono::DateTime::parse_from_rfc3339(created_at).unwrap();
    let behind = chrono::Utc::now().signed_duration_since(created_at);
    assert!(
        behind.num_days() >= 399,
        "the control plane's clock was {behind} behind"
    );
}
