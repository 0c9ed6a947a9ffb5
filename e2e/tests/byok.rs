//! BYOK through the real gateway: a workspace's own provider key is sent instead of the
//! gateway's, the response and the ledger mark the spend as BYOK, and that spend counts on a
//! key's limit only when `include_byok_in_limit` says so, never against credits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Redis, Stack, client, eventually};

const OWN_KEY: &str = "sk-own-provider-key-0123456789";

/// Output dominates the cost, so with mocks reporting the most a provider could count, a limit
/// sized in requests fits about as many reservations.
fn body() -> Value {
    json!({
        "model": "mock/fast",
        "max_tokens": 200,
        "messages": [{ "role": "user", "content": "Count to three." }]
    })
}

fn pico(usd: f64) -> u64 {
    (usd * 1e12).round() as u64
}

async fn post(stack: &Stack, path: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{}{path}", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.unwrap()
}

async fn get(stack: &Stack, path: &str) -> Value {
    client()
        .get(format!("{}{path}", stack.api()))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A key with `limit` USD; returns its secret and hash once the dataplane serves it.
async fn key(stack: &Stack, limit: f64, include_byok: bool) -> (String, String) {
    let created = post(
        stack,
        "/keys",
        json!({ "name": "byok", "limit": limit, "include_byok_in_limit": include_byok }),
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_owned();
    stack.wait_key_live(&secret).await;
    (secret, created["data"]["hash"].as_str().unwrap().to_owned())
}

/// `n` requests one after another: the costs of those served (each checked to be BYOK and sent
/// with the workspace's own key) and the bodies of those refused.
async fn run(stack: &Stack, secret: &str, n: usize) -> (Vec<u64>, Vec<Value>) {
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let r = stack.chat(secret, body()).await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        match status {
            200 => {
                assert_eq!(v["usage"]["is_byok"], true, "{v}");
                let seen = stack.mock_a.last_request().await;
                assert_eq!(seen["authorization"], format!("Bearer {OWN_KEY}"));
                served.push(pico(v["usage"]["cost"].as_f64().unwrap()));
            }
            403 => refused.push(v),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    (served, refused)
}

#[tokio::test]
async fn byok_spend_counts_only_where_limits_include_it() {
    let redis = Redis::start();
    let url = redis.url();
    let stack = Stack::start_with(&["--spend-backend", "redis", "--redis-url", url.as_str()]).await;
    for mock in [&stack.mock_a, &stack.mock_b] {
        mock.script(json!({ "report_most": true })).await;
    }
    let org = get(&stack, "/key").await["data"]["organization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let credits_counter = format!("{{org:{org}}}:sp:credits:{org}:l");

    // The price of one request on the gateway's own credential.
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(probe["usage"]["is_byok"], false);
    assert_eq!(
        stack.mock_a.last_request().await["authorization"],
        Value::Null,
        "the dev catalogue's mock needs no gateway credential"
    );
    let cost = pico(probe["usage"]["cost"].as_f64().unwrap());
    // The probe is billed to credits: the counter (named right) holds exactly its cost.
    eventually("probe settled on credits", Duration::from_secs(10), || {
        let settled = redis.hget(&credits_counter, "held") == Some(0)
            && redis.hget(&credits_counter, "spent") == Some(cost);
        async move { settled.then_some(()) }
    })
    .await;
    // The probe is the only spend billed to credits, once the ledger has it.
    let stack_ref = &stack;
    eventually(
        "probe in the ledger",
        Duration::from_secs(15),
        || async move {
            let usage = get(stack_ref, "/credits").await["data"]["total_usage"].as_f64()?;
            (pico(usage) == cost).then_some(())
        },
    )
    .await;

    // A key whose limit cannot take a single request: refused while requests bill credits.
    let (excluded, excluded_hash) = key(&stack, 0.000001, false).await;
    assert_eq!(stack.chat(&excluded, body()).await.status(), 403);

    // The workspace's own keys for both of mock/fast's providers, required: every attempt is
    // BYOK, so credits and the BYOK-excluding limit reserve nothing.
    for provider in ["mock-a", "mock-b"] {
        let created = post(
            &stack,
            "/byok",
            json!({ "provider": provider, "key": OWN_KEY, "is_required": true }),
        )
        .await;
        assert!(created["data"]["label"].as_str().unwrap().ends_with("6789"));
        assert!(
            !created.to_string().contains(OWN_KEY),
            "the key is never returned"
        );
    }
    let e = excluded.clone();
    eventually("credentials live", Duration::from_secs(10), || {
        let e = e.clone();
        let stack = &stack;
        async move { (stack.chat(&e, body()).await.status() == 200).then_some(()) }
    })
    .await;
    let (served, refused) = run(&stack, &excluded, 5).await;
    assert_eq!((served.len(), refused.len()), (5, 0), "{refused:?}");

    // `include_byok_in_limit`: the same spend counts, and the limit holds exactly.
    let fits = 3;
    let limit_pico = cost * fits + cost / 2;
    let (included, included_hash) = key(&stack, limit_pico as f64 / 1e12, true).await;
    let (served, refused) = run(&stack, &included, 6).await;
    let spent: u64 = served.iter().sum();
    eprintln!(
        "include_byok_in_limit: served {}, refused {}, spent {spent} pico of a {limit_pico} pico limit",
        served.len(),
        refused.len()
    );
    assert!(!served.is_empty() && served.len() as u64 <= fits);
    assert!(spent <= limit_pico);
    for v in &refused {
        assert_eq!(v["error"]["metadata"]["limit"], "key", "{v}");
    }
    let counter = format!("{{org:{org}}}:sp:key:{included_hash}:l");
    eventually("holds settled", Duration::from_secs(10), || {
        let held = redis.hget(&counter, "held");
        async move { (held == Some(0)).then_some(()) }
    })
    .await;
    assert_eq!(
        redis.hget(&counter, "spent"),
        Some(spent),
        "counter = charges"
    );
    // Named like `counter`, which exists: the excluded key's counter was never touched.
    let excluded_counter = format!("{{org:{org}}}:sp:key:{excluded_hash}:l");
    assert_eq!(redis.hget(&excluded_counter, "spent"), None);
    // Credits paid for none of it: not on the counter, not in the ledger's credit usage.
    assert_eq!(redis.hget(&credits_counter, "spent"), Some(cost));

    // The ledger has it all as BYOK usage, and `limit_remaining` follows the key's rule.
    let path = format!("/keys/{included_hash}");
    eventually("BYOK usage in the ledger", Duration::from_secs(15), || {
        let path = path.clone();
        async move {
            let v = get(stack_ref, &path).await;
            let byok = pico(v["data"]["byok_usage"].as_f64()?);
            let remaining = pico(v["data"]["limit_remaining"].as_f64()?);
            let limit = pico(v["data"]["limit"].as_f64()?);
            (byok == spent && v["data"]["usage"].as_f64()? == 0.0 && remaining == limit - spent)
                .then_some(())
        }
    })
    .await;
    let path = format!("/keys/{excluded_hash}");
    let v = eventually("excluded key's BYOK usage", Duration::from_secs(15), || {
        let path = path.clone();
        async move {
            let v = get(stack_ref, &path).await;
            (pico(v["data"]["byok_usage"].as_f64()?) == 6 * cost).then_some(v)
        }
    })
    .await;
    assert_eq!(
        pico(v["data"]["limit_remaining"].as_f64().unwrap()),
        pico(v["data"]["limit"].as_f64().unwrap()),
        "BYOK spend leaves an excluding limit untouched"
    );
    let usage_after = get(&stack, "/credits").await["data"]["total_usage"]
        .as_f64()
        .unwrap();
    assert_eq!(pico(usage_after), cost, "credits paid for the probe only");
}

/// A credential that is not required leaves the gateway's credential as the next attempt: when
/// the provider refuses the organization's key, the request still succeeds, billed normally.
#[tokio::test]
async fn a_refused_own_key_falls_back_to_the_gateway_credential() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({ "reject_authorization": format!("Bearer {OWN_KEY}") }))
        .await;
    post(
        &stack,
        "/byok",
        json!({ "provider": "mock-a", "key": OWN_KEY }),
    )
    .await;
    // Once the credential is live, each request costs two provider calls: the refused own key,
    // then the gateway's credential.
    let stack_ref = &stack;
    let v = eventually("credential live", Duration::from_secs(10), || async move {
        let before = stack_ref.mock_a.requests().await;
        let r = stack_ref.chat(&stack_ref.inference_key, body()).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (stack_ref.mock_a.requests().await == before + 2).then_some(v)
    })
    .await;
    assert_eq!(
        v["usage"]["is_byok"], false,
        "served on the gateway's credential"
    );
    assert_eq!(
        stack.mock_a.last_request().await["authorization"],
        Value::Null
    );
    assert!(
        !stack.dataplane.as_ref().unwrap().log().contains(OWN_KEY),
        "the key never reaches the logs"
    );
}
