//! Routing through the whole gateway, with two mock providers that refuse any request member
//! OpenAI does not define: every field of the `provider` object, model fallbacks, presets in all
//! four forms, ZDR from the request, a guardrail and the organization, sticky sessions, the
//! circuit breaker, and an outage on three dataplanes.
//!
//! The dev catalogue: `mock/fast` is on Mock A (priority 0, $0.15/$0.60 per million, fp8,
//! retains prompts) and Mock B (priority 1, $0.20/$0.80, bf16, ZDR); `mock/smart` on Mock B
//! (priority 0, reasoning) and Mock A; `mock/free` on Mock A only, at no charge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Stack, client, eventually, expect_error};

/// Members only the gateway understands: each request carries them, and the strict mocks would
/// refuse any that leaked.
fn with_gateway_members(mut body: Value) -> Value {
    let extra = json!({
        "transforms": [],
        "usage": { "include": true },
        "route": "fallback",
        "plugins": [],
        "trace": { "trace_id": "t-1" },
        "debug": { "echo_upstream_body": false },
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn ask(model: &str, provider: Value) -> Value {
    with_gateway_members(json!({
        "model": model,
        "messages": [{ "role": "user", "content": "Hello" }],
        "provider": provider,
    }))
}

async fn send(stack: &Stack, key: &str, body: Value) -> (u16, Value) {
    let r = stack.chat(key, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn management(stack: &Stack, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = client()
        .request(method, format!("{}{path}", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

#[tokio::test]
async fn every_provider_preference_routes_and_nothing_of_the_gateways_leaks_upstream() {
    let stack = Stack::start().await;
    let key = stack.inference_key.clone();
    // (model, provider object, extra request members, who serves or the refusal's reason)
    let cases: Vec<(&str, Value, Value, Result<&str, &str>)> = vec![
        ("mock/fast", json!({}), json!({}), Ok("Mock A")),
        (
            "mock/fast",
            json!({ "order": ["mock-b"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "order": ["Mock B", "mock-a"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "only": ["mock-b"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "ignore": ["mock-a"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "quantizations": ["bf16"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "quantizations": ["int4"] }),
            json!({}),
            Err("quantizations"),
        ),
        (
            "mock/fast",
            json!({ "data_collection": "deny" }),
            json!({}),
            Ok("Mock B"),
        ),
        ("mock/fast", json!({ "zdr": true }), json!({}), Ok("Mock B")),
        ("mock/fast", json!({}), json!({ "zdr": true }), Ok("Mock B")),
        (
            "mock/fast",
            json!({ "max_price": { "prompt": 0.16 } }),
            json!({}),
            Ok("Mock A"),
        ),
        (
            "mock/fast",
            json!({ "max_price": { "prompt": "0.1" } }),
            json!({}),
            Err("max_price"),
        ),
        (
            "mock/fast",
            json!({ "max_price": { "completion": 0.7 }, "order": ["mock-b"] }),
            json!({}),
            Ok("Mock A"),
        ),
        (
            "mock/fast",
            json!({ "sort": "price" }),
            json!({}),
            Ok("Mock A"),
        ),
        (
            "mock/fast",
            json!({ "sort": { "by": "price", "partition": "none" } }),
            json!({}),
            Ok("Mock A"),
        ),
        (
            "mock/fast",
            json!({ "require_parameters": true }),
            json!({ "top_k": 3 }),
            Err("require_parameters"),
        ),
        // Without require_parameters, the parameter no endpoint takes is dropped, not sent.
        (
            "mock/fast",
            json!({}),
            json!({ "top_k": 3, "temperature": 0.2 }),
            Ok("Mock A"),
        ),
        (
            "mock/smart",
            json!({ "require_parameters": true, "order": ["mock-a"] }),
            json!({ "reasoning": { "effort": "low" } }),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "enforce_distillable_text": true }),
            json!({}),
            Err("enforce_distillable_text"),
        ),
        ("mock/fast:floor", json!({}), json!({}), Ok("Mock A")),
        ("mock/fast:nitro", json!({}), json!({}), Ok("Mock A")),
        ("mock/fast:free", json!({}), json!({}), Err("free")),
        (
            "mock/fast",
            json!({ "allow_fallbacks": false, "order": ["mock-b"] }),
            json!({}),
            Ok("Mock B"),
        ),
        (
            "mock/fast",
            json!({ "preferred_max_latency": { "p90": 10 }, "preferred_min_throughput": 1 }),
            json!({}),
            Ok("Mock A"),
        ),
    ];
    for (model, provider, extra, expected) in cases {
        let mut body = ask(model, provider.clone());
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, v) = send(&stack, &key, body).await;
        match expected {
            Ok(name) => {
                assert_eq!(status, 200, "{model} {provider}: {v}");
                assert_eq!(v["provider"], name, "{model} {provider}");
            }
            Err(reason) => {
                assert_eq!(status, 404, "{model} {provider}: {v}");
                assert_eq!(v["error"]["metadata"]["reason"], reason, "{v}");
            }
        }
    }
    // What the last providers saw: their own model id and members, and nothing of the gateway.
    let seen = stack.mock_b.last_request().await["body"].clone();
    assert_eq!(seen["model"], "mock-fast-1");
    for member in [
        "provider",
        "models",
        "transforms",
        "usage",
        "route",
        "plugins",
        "trace",
    ] {
        assert!(seen.get(member).is_none(), "{member} leaked: {seen}");
    }
    // The reasoning request reached Mock B as OpenAI's `reasoning_effort`.
    let (status, _) = send(
        &stack,
        &key,
        json!({ "model": "mock/smart", "messages": [], "reasoning": { "effort": "high" } }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stack.mock_b.last_request().await["body"]["reasoning_effort"],
        "high"
    );
    // `provider.options` reach only the provider they name (Mock A takes `top_k`, like vLLM).
    stack.mock_a.script(json!({ "accept": ["top_k"] })).await;
    let body = ask(
        "mock/fast",
        json!({ "options": { "mock-a": { "top_k": 5 }, "mock-b": { "min_p": 0.1 } } }),
    );
    let (status, v) = send(&stack, &key, body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(stack.mock_a.last_request().await["body"]["top_k"], 5);
    // A bad `provider` object is the client's error, named.
    let (status, v) = send(
        &stack,
        &key,
        ask("mock/fast", json!({ "sort": "cheapest" })),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("provider"));
    // Nothing that leaked was refused by either mock.
    for mock in [&stack.mock_a, &stack.mock_b] {
        let stats = mock.stats().await;
        assert_eq!(stats["refused_unrecognized"], 0, "{stats}");
    }
}

#[tokio::test]
async fn allow_fallbacks_false_never_leaves_the_providers_named() {
    let stack = Stack::start().await;
    stack.mock_b.script(json!({ "outage": true })).await;
    let before = stack.mock_a.requests().await;
    let body = ask(
        "mock/fast",
        json!({ "order": ["mock-b"], "allow_fallbacks": false }),
    );
    let (status, v) = send(&stack, &stack.inference_key, body).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(
        stack.mock_a.requests().await,
        before,
        "Mock A must not serve a request that allows only Mock B"
    );
    // With fallbacks allowed, Mock A serves.
    let (status, v) = send(
        &stack,
        &stack.inference_key,
        ask("mock/fast", json!({ "order": ["mock-b"] })),
    )
    .await;
    assert_eq!((status, v["provider"].as_str()), (200, Some("Mock A")));
}

#[tokio::test]
async fn a_request_lost_after_it_was_sent_is_retried_only_when_configured() {
    // Mock A reads the request and closes the connection without answering: it may have
    // started (and may bill) a generation, so by default nothing else is tried.
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({ "drop_connection": true }))
        .await;
    let b_before = stack.mock_b.requests().await;
    let body = ask("mock/fast", json!({ "order": ["mock-a", "mock-b"] }));
    let (status, v) = send(&stack, &stack.inference_key, body.clone()).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(stack.mock_b.requests().await, b_before);
    drop(stack);
    // An operator who prefers a double bill to an error turns retries on.
    let stack = Stack::start_with(&["--retry-unanswered"]).await;
    stack
        .mock_a
        .script(json!({ "drop_connection": true }))
        .await;
    let (status, v) = send(&stack, &stack.inference_key, body).await;
    assert_eq!(
        (status, v["provider"].as_str()),
        (200, Some("Mock B")),
        "{v}"
    );
}

#[tokio::test]
async fn model_fallbacks_serve_when_a_models_providers_all_fail() {
    let stack = Stack::start().await;
    stack.mock_a.script(json!({ "outage": true })).await;
    // mock/free is only on Mock A: it fails, and mock/fast is served by Mock B.
    for body in [
        json!({ "model": "mock/free", "models": ["mock/fast"], "messages": [] }),
        json!({ "models": ["mock/free", "mock/fast"], "messages": [] }),
    ] {
        let (status, v) = send(&stack, &stack.inference_key, body).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["model"], "mock/fast",
            "the response names the model that served"
        );
        assert_eq!(v["provider"], "Mock B");
        let generation = stack.generation(v["id"].as_str().unwrap()).await;
        let data = &generation["data"];
        assert_eq!(data["model"], "mock/fast");
        let attempts: Vec<(Value, Value, Value)> = data["provider_responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["model_permaslug"].clone(),
                    a["provider_name"].clone(),
                    a["status"].clone(),
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [
                (json!("mock/free"), json!("Mock A"), json!(503)),
                (json!("mock/fast"), json!("Mock A"), json!(503)),
                (json!("mock/fast"), json!("Mock B"), json!(200)),
            ]
        );
    }
    // A fallback model that does not exist is the client's error.
    let (status, _) = send(
        &stack,
        &stack.inference_key,
        json!({ "model": "mock/fast", "models": ["nope/nope"], "messages": [] }),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn presets_apply_in_all_four_forms_and_generations_record_them() {
    let stack = Stack::start().await;
    let created = management(
        &stack,
        reqwest::Method::POST,
        "/presets",
        json!({
            "slug": "concise",
            "name": "Concise",
            "config": {
                "model": "mock/smart",
                "provider": { "order": ["mock-a"] },
                "parameters": { "temperature": 0.3, "seed": 11 },
            },
            "system_prompt": "Answer in one word.",
        }),
    )
    .await;
    let preset_id = created["data"]["id"].as_str().unwrap().to_owned();
    let hello = json!([{ "role": "user", "content": "Hello" }]);
    let key = stack.inference_key.clone();
    // The snapshot carrying the preset reaches the dataplane shortly after the write.
    let first = eventually("the preset is served", Duration::from_secs(10), || {
        let body = json!({ "model": "@preset/concise", "messages": hello });
        let stack = &stack;
        let key = key.clone();
        async move {
            let (status, v) = send(stack, &key, body).await;
            (status == 200).then_some(v)
        }
    })
    .await;
    assert_eq!(first["model"], "mock/smart");
    assert_eq!(first["provider"], "Mock A", "the preset's provider order");
    let seen = stack.mock_a.last_request().await["body"].clone();
    assert_eq!(seen["messages"][0]["role"], "system");
    assert_eq!(seen["messages"][0]["content"], "Answer in one word.");
    assert_eq!(seen["messages"][1]["content"], "Hello");
    assert_eq!(
        (seen["temperature"].clone(), seen["seed"].clone()),
        (json!(0.3), json!(11))
    );
    let g = stack.generation(first["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["preset_id"], preset_id.as_str());
    assert_eq!(g["data"]["preset_version"], 1);

    // model@preset: the request's model, the preset's everything else.
    let (status, v) = send(
        &stack,
        &key,
        json!({ "model": "mock/fast@preset/concise", "messages": hello }),
    )
    .await;
    assert_eq!((status, v["model"].as_str()), (200, Some("mock/fast")));
    // The `preset` member, the request's own temperature winning over the preset's.
    let (status, v) = send(
        &stack,
        &key,
        json!({ "model": "mock/fast", "preset": "concise", "temperature": 0.9, "messages": hello }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let seen = stack.mock_a.last_request().await["body"].clone();
    assert_eq!(
        (seen["temperature"].clone(), seen["seed"].clone()),
        (json!(0.9), json!(11))
    );
    // The preset's own endpoint.
    let r = client()
        .post(format!("{}/presets/concise/chat/completions", stack.api()))
        .bearer_auth(&key)
        .json(&json!({ "messages": hello }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "mock/smart");
    // A new designated version takes over; generations record its number.
    management(
        &stack,
        reqwest::Method::POST,
        "/presets/concise/versions",
        json!({ "config": { "model": "mock/fast" }, "designate": true }),
    )
    .await;
    let v = eventually("version 2 is served", Duration::from_secs(10), || {
        let stack = &stack;
        let key = key.clone();
        let body = json!({ "model": "@preset/concise", "messages": hello });
        async move {
            let (_, v) = send(stack, &key, body).await;
            (v["model"] == "mock/fast").then_some(v)
        }
    })
    .await;
    let g = stack.generation(v["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["preset_version"], 2);
    // An unknown preset is named in a 404.
    let message = expect_error(
        stack
            .chat(&key, json!({ "model": "@preset/nope", "messages": hello }))
            .await,
        404,
    )
    .await;
    assert!(message.contains("nope"), "{message}");
}

#[tokio::test]
async fn zero_data_retention_from_the_request_a_guardrail_and_the_organization() {
    let stack = Stack::start().await;
    let key = stack.inference_key.clone();
    let (_, v) = send(&stack, &key, ask("mock/fast", json!({ "zdr": true }))).await;
    assert_eq!(v["provider"], "Mock B");

    // A guardrail enforcing ZDR for the model's author group ("other" for mock/*), on a key.
    let created = management(
        &stack,
        reqwest::Method::POST,
        "/keys",
        json!({ "name": "zdr key" }),
    )
    .await;
    let (secret, hash) = (
        created["key"].as_str().unwrap().to_owned(),
        created["data"]["hash"].as_str().unwrap().to_owned(),
    );
    let guardrail = management(
        &stack,
        reqwest::Method::POST,
        "/guardrails",
        json!({ "name": "zdr only", "enforce_zdr_other": true }),
    )
    .await;
    let id = guardrail["data"]["id"].as_str().unwrap().to_owned();
    management(
        &stack,
        reqwest::Method::POST,
        &format!("/guardrails/{id}/assignments/keys"),
        json!({ "key_hashes": [hash] }),
    )
    .await;
    eventually(
        "the guardrail narrows to ZDR",
        Duration::from_secs(10),
        || {
            let stack = &stack;
            let secret = secret.clone();
            async move {
                let (status, v) = send(stack, &secret, ask("mock/fast", json!({}))).await;
                (status == 200 && v["provider"] == "Mock B").then_some(())
            }
        },
    )
    .await;
    // The other key is not narrowed.
    let (_, v) = send(&stack, &key, ask("mock/fast", json!({}))).await;
    assert_eq!(v["provider"], "Mock A");

    // The organization's setting narrows every key, and a request cannot loosen it.
    let settings = management(
        &stack,
        reqwest::Method::PATCH,
        "/organization/settings",
        json!({ "enforce_zdr": true }),
    )
    .await;
    assert_eq!(settings["data"]["enforce_zdr"], true);
    eventually(
        "the organization narrows to ZDR",
        Duration::from_secs(10),
        || {
            let stack = &stack;
            let key = key.clone();
            async move {
                let (_, v) = send(stack, &key, ask("mock/fast", json!({ "zdr": false }))).await;
                (v["provider"] == "Mock B").then_some(())
            }
        },
    )
    .await;
    // With the only ZDR provider down, ZDR traffic fails rather than reach Mock A.
    stack.mock_b.script(json!({ "outage": true })).await;
    let before = stack.mock_a.requests().await;
    let (status, v) = send(&stack, &key, ask("mock/fast", json!({}))).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(stack.mock_a.requests().await, before);
    // ZDR endpoints are listed.
    let zdr: Value = client()
        .get(format!("{}/endpoints/zdr", stack.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<(&str, &str)> = zdr["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["model_id"].as_str().unwrap(), e["tag"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("mock/fast", "mock-b"), ("mock/smart", "mock-b")]);
}

#[tokio::test]
async fn sessions_stick_to_the_endpoint_that_served_them() {
    let stack = Stack::start().await;
    let key = stack.inference_key.clone();
    let body = |session: &str, provider: Value| json!({ "model": "mock/fast", "session_id": session, "messages": [], "provider": provider });
    let (_, v) = send(&stack, &key, body("s-1", json!({ "order": ["mock-b"] }))).await;
    assert_eq!(v["provider"], "Mock B");
    for _ in 0..3 {
        let (_, v) = send(&stack, &key, body("s-1", json!({}))).await;
        assert_eq!(v["provider"], "Mock B", "session s-1 sticks to Mock B");
    }
    let (_, v) = send(&stack, &key, body("s-2", json!({}))).await;
    assert_eq!(v["provider"], "Mock A", "another session balances as usual");
    // The x-session-id header, prompt_cache_key and user key sessions too.
    let r = client()
        .post(format!("{}/chat/completions", stack.api()))
        .bearer_auth(&key)
        .header("x-session-id", "s-1")
        .json(&json!({ "model": "mock/fast", "messages": [] }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["provider"], "Mock B");
    let (_, v) = send(
        &stack,
        &key,
        json!({ "model": "mock/fast", "user": "u-1", "messages": [], "provider": { "order": ["mock-b"] } }),
    )
    .await;
    assert_eq!(v["provider"], "Mock B");
    let (_, v) = send(
        &stack,
        &key,
        json!({ "model": "mock/fast", "user": "u-1", "messages": [] }),
    )
    .await;
    assert_eq!(v["provider"], "Mock B");
    // The sticky endpoint failing is no error: the session moves on.
    stack.mock_b.script(json!({ "outage": true })).await;
    let (status, v) = send(&stack, &key, body("s-1", json!({}))).await;
    assert_eq!((status, v["provider"].as_str()), (200, Some("Mock A")));
    let (_, v) = send(&stack, &key, body("s-1", json!({}))).await;
    assert_eq!(v["provider"], "Mock A", "and sticks to where it moved");
    // The generation records the session.
    let g = stack.generation(v["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["session_id"], "s-1");
}

async fn providers_view(port: u16) -> Value {
    support::ops_get(port, "/health/providers")
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_breaker_opens_on_failures_probes_and_closes() {
    let stack =
        Stack::start_with(&["--breaker-failures", "2", "--breaker-cooldown-ms", "4000"]).await;
    let key = stack.inference_key.clone();
    stack.mock_a.script(json!({ "outage": true })).await;
    let a_before = stack.mock_a.requests().await;
    for _ in 0..2 {
        let (status, v) = send(&stack, &key, ask("mock/fast", json!({}))).await;
        assert_eq!((status, v["provider"].as_str()), (200, Some("Mock B")));
    }
    let view = providers_view(stack.dp_port).await;
    assert_eq!(
        view["local"]["mock-a|mock-fast-1"]["breaker"], "open",
        "{view}"
    );
    // The operational endpoints are for the operator's token only.
    let anonymous = client()
        .get(format!("{}/health/providers", stack.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(stack.mock_a.requests().await, a_before + 2);
    // Open: Mock A is tried only after Mock B, which serves. A slow machine may pass the
    // cool-down meanwhile: then one request, and only one, probes Mock A (and fails over).
    for _ in 0..3 {
        let (status, v) = send(&stack, &key, ask("mock/fast", json!({}))).await;
        assert_eq!((status, v["provider"].as_str()), (200, Some("Mock B")));
    }
    let a_open = stack.mock_a.requests().await;
    assert!(
        (a_before + 2..=a_before + 3).contains(&a_open),
        "Mock A saw {} requests while its breaker was open",
        a_open - a_before - 2
    );
    // Mock A recovers; after the cool-down one request probes it, and the breaker closes.
    stack.mock_a.script(json!({})).await;
    eventually(
        "the probe closes the breaker",
        Duration::from_secs(15),
        || {
            let stack = &stack;
            let key = key.clone();
            async move {
                let (_, v) = send(stack, &key, ask("mock/fast", json!({}))).await;
                (v["provider"] == "Mock A").then_some(())
            }
        },
    )
    .await;
    let view = providers_view(stack.dp_port).await;
    assert_eq!(
        view["local"]["mock-a|mock-fast-1"]["breaker"], "closed",
        "{view}"
    );
}

#[tokio::test]
async fn latency_and_throughput_from_the_fleet_sort_and_steer() {
    let stack =
        Stack::start_with_both(&["--health-report-ms", "100"], &["--health-push-ms", "200"]).await;
    let key = stack.inference_key.clone();
    // Mock A is slow to answer; Mock B is quick.
    stack.mock_a.script(json!({ "ttfb_ms": 300 })).await;
    for provider in ["mock-a", "mock-b"] {
        for _ in 0..3 {
            let (status, _) = send(
                &stack,
                &key,
                ask("mock/fast", json!({ "only": [provider] })),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    let port = stack.dp_port;
    let view = eventually(
        "the fleet's figures arrive",
        Duration::from_secs(15),
        || async move {
            let v = providers_view(port).await;
            let e = &v["fleet"]["endpoints"];
            (e["mock-a|mock-fast-1"]["latency_last_30m"].is_object()
                && e["mock-b|mock-fast-1"]["latency_last_30m"].is_object())
            .then_some(v)
        },
    )
    .await;
    let e = &view["fleet"]["endpoints"];
    assert!(
        e["mock-a|mock-fast-1"]["latency_last_30m"]["p50"]
            .as_f64()
            .unwrap()
            > e["mock-b|mock-fast-1"]["latency_last_30m"]["p50"]
                .as_f64()
                .unwrap()
    );
    for provider in [
        json!({ "sort": "latency" }),
        json!({ "sort": "throughput" }),
        json!({ "preferred_max_latency": 0.2 }),
        json!({ "preferred_max_latency": { "p50": 0.2, "p90": 0.25 } }),
        json!({ "preferred_min_throughput": 200 }),
    ] {
        let (status, v) = send(&stack, &key, ask("mock/fast", provider.clone())).await;
        assert_eq!(
            (status, v["provider"].as_str()),
            (200, Some("Mock B")),
            "{provider}"
        );
    }
    // The endpoints API reports the same figures, with the catalogue's traits.
    let endpoints: Value = client()
        .get(format!("{}/models/mock/fast/endpoints", stack.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = endpoints["data"]["endpoints"].as_array().unwrap();
    assert_eq!(list[0]["tag"], "mock-a");
    assert_eq!(list[0]["quantization"], "fp8");
    assert!(list[0]["latency_last_30m"]["p50"].as_f64().unwrap() >= 200.0);
    assert_eq!(list[1]["quantization"], "bf16");
    assert!(list[1]["throughput_last_30m"]["p50"].is_number());
}

/// One provider's hard outage with a healthy alternative, under load through three dataplanes:
/// no client sees an error, and the fleet's view of the outage reaches every dataplane (printed
/// for the note; never asserted as a time).
#[tokio::test]
async fn an_outage_on_three_dataplanes_costs_no_client_an_error() {
    let stack = Stack::start().await;
    let (_dp2, port2) = stack.start_extra_dataplane("dp-2", &[]).await;
    let (_dp3, port3) = stack.start_extra_dataplane("dp-3", &[]).await;
    let ports = [stack.dp_port, port2, port3];
    let key = stack.inference_key.clone();
    let served = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for port in ports {
        for _ in 0..2 {
            let (served, errors, stop, key) =
                (served.clone(), errors.clone(), stop.clone(), key.clone());
            load.push(tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let r = c
                        .post(format!("http://127.0.0.1:{port}/api/v1/chat/completions"))
                        .bearer_auth(&key)
                        .json(&json!({ "model": "mock/fast", "messages": [] }))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => served.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            eprintln!(
                                "client error: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            );
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("client error: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_before = stack.mock_a.requests().await;
    let outage_at = Instant::now();
    stack.mock_a.script(json!({ "outage": true })).await;
    let mut seen_after = Vec::new();
    for port in ports {
        let t = eventually(
            "the fleet view shows the outage",
            Duration::from_secs(20),
            || async move {
                let v = providers_view(port).await;
                (v["fleet"]["endpoints"]["mock-a|mock-fast-1"]["outage"] == true).then(Instant::now)
            },
        )
        .await;
        seen_after.push(t.duration_since(outage_at));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failed_attempts = stack.mock_a.requests().await - a_before;
    let slowest = seen_after.iter().max().unwrap();
    println!(
        "outage propagation: the fleet view marked Mock A down on all 3 dataplanes within {} ms \
         of the outage (per dataplane: {:?} ms); {} requests served, {} client errors, {} \
         attempts reached the failed provider",
        slowest.as_millis(),
        seen_after
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>(),
        served.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        failed_attempts,
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no client saw an error");
    assert!(served.load(Ordering::Relaxed) > 0);
}

/// The minute a quota counts in, on the test's clock (the dataplane's is the same machine's).
fn minute_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        / 60_000
}

/// Runs `check` until it completes within one wall-clock minute (quota counters are per minute,
/// and a minute that turns mid-check starts them afresh), at most three times.
async fn within_one_minute<F, Fut>(mut check: F)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for round in 0..3 {
        let start = minute_now();
        let passed = check(round).await;
        if minute_now() == start {
            assert!(passed, "the quota did not steer");
            return;
        }
    }
    panic!("three minute boundaries in three tries");
}

/// The dev catalogue with a quota of 2 requests a minute on the gateway's Mock A account.
fn catalogue_with_mock_a_quota(dir: &support::TempDir) -> String {
    let mut catalogue: Value =
        serde_json::from_str(include_str!("../../controlplane/catalogue/dev.json")).unwrap();
    assert_eq!(catalogue["providers"][0]["id"], "mock-a");
    catalogue["providers"][0]["quota"] = json!({ "requests_per_minute": 2 });
    let path = dir.0.join("catalogue.json");
    std::fs::write(&path, catalogue.to_string()).unwrap();
    path.display().to_string()
}

/// Within one minute Mock A's account takes at most two requests (fewer if an earlier round
/// already used some of this minute's) from all of `ports`, and Mock B serves the rest: Mock A
/// never sees a third, so it never has to answer 429.
async fn mock_a_takes_two_a_minute(stack: &Stack, ports: &[u16]) {
    within_one_minute(|round| {
        let key = stack.inference_key.clone();
        async move {
            let a_before = stack.mock_a.requests().await;
            let mut by_b = 0;
            for port in ports.iter().cycle().take(6) {
                let r = client()
                    .post(format!("http://127.0.0.1:{port}/api/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&ask("mock/fast", json!({})))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "round {round}");
                let v: Value = r.json().await.unwrap();
                by_b += usize::from(v["provider"] == "Mock B");
            }
            let a_seen = stack.mock_a.requests().await - a_before;
            a_seen <= 2 && by_b >= 4
        }
    })
    .await;
}

#[tokio::test]
async fn provider_quotas_are_shared_by_the_fleet_through_redis() {
    let redis = support::Redis::start();
    let url = redis.url();
    let dir = support::TempDir::new("quota-catalogue");
    let catalogue = catalogue_with_mock_a_quota(&dir);
    // A generous answer timeout: on a loaded machine a dataplane's first Redis call (connect,
    // load the scripts) must not turn into a fail-closed 503.
    let args = [
        "--spend-backend",
        "redis",
        "--redis-url",
        url.as_str(),
        "--spend-timeout-ms",
        "5000",
    ];
    let stack = Stack::start_with_both(&args, &["--catalogue", catalogue.as_str()]).await;
    let (_other, other_port) = stack.start_extra_dataplane("dp-quota", &args).await;
    mock_a_takes_two_a_minute(&stack, &[stack.dp_port, other_port]).await;
}

#[tokio::test]
async fn provider_quotas_steer_to_the_next_account_before_a_429() {
    let dir = support::TempDir::new("quota-catalogue");
    let catalogue = catalogue_with_mock_a_quota(&dir);
    let stack = Stack::start_with_both(&[], &["--catalogue", catalogue.as_str()]).await;
    let key = stack.inference_key.clone();
    mock_a_takes_two_a_minute(&stack, &[stack.dp_port]).await;

    // A BYOK credential's own quota: one request a minute on the organization's Mock B account,
    // then the gateway's account on Mock B.
    let created = management(
        &stack,
        reqwest::Method::POST,
        "/byok",
        json!({ "provider": "mock-b", "key": "sk-own-mock-b", "requests_per_minute": 1 }),
    )
    .await;
    assert_eq!(created["data"]["requests_per_minute"], 1);
    eventually(
        "the credential reaches the dataplane",
        Duration::from_secs(10),
        || {
            let stack = &stack;
            let key = key.clone();
            async move {
                let (_, v) = send(
                    stack,
                    &key,
                    ask("mock/smart", json!({ "only": ["mock-b"] })),
                )
                .await;
                (v["usage"]["is_byok"] == true).then_some(())
            }
        },
    )
    .await;
    within_one_minute(|_| {
        let stack = &stack;
        let key = key.clone();
        async move {
            // The credential's one request of this minute may be spent already: two in a row
            // must include the gateway's account.
            let mut byok = Vec::new();
            for _ in 0..2 {
                let (status, v) = send(
                    stack,
                    &key,
                    ask("mock/smart", json!({ "only": ["mock-b"] })),
                )
                .await;
                assert_eq!(status, 200, "{v}");
                byok.push(v["usage"]["is_byok"].as_bool().unwrap());
            }
            byok.iter().filter(|b| **b).count() <= 1
        }
    })
    .await;
}
