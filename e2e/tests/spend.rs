//! Spend limits that never overshoot, through the real gateway with its counters in a Redis of
//! the test's own: 200 concurrent requests against a key whose limit fits k of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Redis, Stack, client, eventually};
use switchyard_policy::counters::counter_key;
use switchyard_policy::{LimitScope, Window};

const REQUESTS: usize = 200;
const FITS: u64 = 20;

/// Two choices on Mock A alone: the reservation must count every choice (`n`), and is priced
/// at Mock A's prices only. Output dominates the cost, so a limit sized in requests' costs
/// fits about as many reservations (the prompt's bound is a token per byte).
fn body() -> Value {
    json!({
        "model": "mock/fast",
        "max_tokens": 200,
        "n": 2,
        "provider": { "only": ["mock-a"] },
        "messages": [{ "role": "user", "content": "Count to three." }]
    })
}

/// The stack with Mock A reporting the most a provider could count for each request (a prompt
/// token per byte, every output token allowed): charges then reach what admission reserved,
/// so any under-reservation shows as overshoot.
async fn most(stack: Stack) -> Stack {
    stack.mock_a.script(json!({ "report_most": true })).await;
    stack
}

/// USD (as the gateway reports it) to exact picodollars.
fn pico(usd: f64) -> u64 {
    (usd * 1e12).round() as u64
}

async fn concurrency(stack: &Stack, redis: Option<&Redis>) {
    let api = stack.api();
    // The mock reports the most a provider could count (a prompt token per byte, every output
    // token allowed), so charges reach what admission reserved: any under-reservation would
    // show as overshoot. Every request overlaps the others: the mock holds each for a while.
    stack
        .mock_a
        .script(json!({ "ttfb_ms": 300, "report_most": true }))
        .await;
    // The price of one request, from a probe with the bootstrap key.
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    let cost = pico(probe["usage"]["cost"].as_f64().unwrap());
    assert!(cost > 0);
    // A key whose limit fits FITS requests (and half of one more).
    let limit_pico = cost * FITS + cost / 2;
    let (secret, hash) = stack.limited_key(limit_pico as f64 / 1e12).await;

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let secret = secret.clone();
            let url = format!("{api}/chat/completions");
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth(secret)
                    .json(&body())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                (status, v)
            })
        })
        .collect();
    let mut served = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            200 => served.push(pico(v["usage"]["cost"].as_f64().unwrap())),
            402 | 403 => {
                assert!(v["error"]["metadata"]["limit"].is_string(), "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    let spent: u64 = served.iter().sum();
    eprintln!(
        "served {}, refused {refused}, spent {spent} pico of a {limit_pico} pico limit",
        served.len()
    );
    assert!(served.len() as u64 <= FITS, "at most k succeed");
    assert!(
        served.len() as u64 >= FITS / 2,
        "reservations do not starve the limit"
    );
    assert!(spent <= limit_pico, "final spend within the limit");
    // Settles never charge beyond a reservation; that none had to be capped shows each
    // reservation was a true bound of what the provider reported.
    assert_eq!(
        metric(stack, "switchyard_spend_charges_capped_total ").await,
        0,
        "a reservation fell short of what the provider counted"
    );

    // The usage ledger (the control plane's truth) reports the same spend on the key object.
    let url = format!("{api}/keys/{hash}");
    let management = stack.management_key.clone();
    eventually("key usage from the ledger", Duration::from_secs(15), || {
        let (url, management) = (url.clone(), management.clone());
        async move {
            let v: Value = client()
                .get(url)
                .bearer_auth(management)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let usage = pico(v["data"]["usage"].as_f64()?);
            let remaining = pico(v["data"]["limit_remaining"].as_f64()?);
            // Limits are kept to the micro-dollar, so compare with the key's own limit.
            let limit = pico(v["data"]["limit"].as_f64()?);
            (usage == spent && remaining == limit - spent).then_some(())
        }
    })
    .await;

    // `GET /key` lists the layers enforcement checks; here the key's own limit is the one.
    let me: Value = client()
        .get(format!("{api}/key"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let effective = &me["data"]["effective_budget"];
    assert_eq!(effective["scope"], "key_limit", "{me}");
    assert_eq!(pico(effective["spend_usd"].as_f64().unwrap()), spent);
    assert_eq!(
        pico(effective["remaining_usd"].as_f64().unwrap()),
        pico(effective["limit_usd"].as_f64().unwrap()) - spent
    );
    assert_eq!(me["data"]["budgets"].as_array().unwrap().len(), 1);

    if let Some(redis) = redis {
        // Once settled, the counter equals the sum of what was charged, exactly.
        let key = stack.key_counter(&hash).await;
        eventually("every hold settled", Duration::from_secs(10), || {
            let held = redis.hget(&key, "held");
            async move { (held == Some(0)).then_some(()) }
        })
        .await;
        assert_eq!(
            redis.hget(&key, "spent"),
            Some(spent),
            "counter equals the ledger"
        );
    }
}

#[tokio::test]
async fn concurrent_requests_never_overshoot_a_key_limit_on_redis() {
    let redis = Redis::start();
    let url = redis.url();
    // About overshoot, not latency: a generous answer timeout keeps a loaded CI machine's slow
    // script answers from turning into fail-closed 503s.
    let stack = Stack::start_with(&[
        "--spend-backend",
        "redis",
        "--redis-url",
        url.as_str(),
        "--spend-timeout-ms",
        "2000",
    ])
    .await;
    concurrency(&stack, Some(&redis)).await;
}

#[tokio::test]
async fn concurrent_requests_never_overshoot_a_key_limit_embedded() {
    let stack = most(Stack::start().await).await;
    concurrency(&stack, None).await;
}

/// A provider that ignores `max_tokens` counts far beyond what admission reserved: the tenant
/// is charged the reservation and no more (the limit holds), and the excess is counted.
#[tokio::test]
async fn a_provider_that_ignores_max_tokens_is_charged_no_more_than_was_reserved() {
    let stack = Stack::start().await;
    let (secret, hash) = stack.limited_key(1.0).await;
    stack
        .mock_a
        .script(json!({ "ignore_max_tokens": true, "completion_tokens": 5000 }))
        .await;
    let v: Value = stack.chat(&secret, body()).await.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 10_000, "{v}");
    let charged = pico(v["usage"]["cost"].as_f64().unwrap());
    // Mock A's completion price is 0.6 USD per million tokens.
    let full = 10_000 * 600_000;
    assert!(charged > 0 && charged < full / 10, "charged {charged} pico");
    assert_eq!(
        metric(&stack, "switchyard_spend_charges_capped_total ").await,
        1
    );
    let url = format!("{}/keys/{hash}", stack.api());
    let management = stack.management_key.clone();
    eventually(
        "the ledger holds the capped charge",
        Duration::from_secs(15),
        || {
            let (url, management) = (url.clone(), management.clone());
            async move {
                let v: Value = client()
                    .get(url)
                    .bearer_auth(management)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (pico(v["data"]["usage"].as_f64()?) == charged).then_some(())
            }
        },
    )
    .await;
}

/// Rotating a key keeps its limit's count: the successor's spend adds to its predecessor's,
/// so rotation is no way around a limit.
#[tokio::test]
async fn a_rotated_key_keeps_counting_on_its_limit() {
    let stack = most(Stack::start().await).await;
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    let cost = probe["usage"]["cost"]
        .as_f64()
        .unwrap_or_else(|| panic!("the probe has no cost: {probe}"));
    let (secret, hash) = stack.limited_key(cost * 1.5).await;
    assert_eq!(stack.chat(&secret, body()).await.status(), 200);
    assert_eq!(stack.chat(&secret, body()).await.status(), 403);
    let rotated: Value = client()
        .post(format!("{}/keys/{hash}/rotate", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&json!({ "grace_seconds": 0 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let successor = rotated["key"].as_str().unwrap().to_owned();
    stack.wait_key_live(&successor).await;
    let r = stack.chat(&successor, body()).await;
    assert_eq!(r.status(), 403, "the successor spent past the limit");
}

/// A provider that answers without `usage` is still charged: the prompt's bound and, for the
/// whole response it sent, a token per byte of its choices (at most the output bound).
#[tokio::test]
async fn a_response_without_usage_is_charged_within_its_bound() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({ "usage": false, "completion_tokens": 40 }))
        .await;
    let v: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    assert!(v.get("usage").is_none_or(|u| u.is_null()), "{v}");
    let g = stack.generation(v["id"].as_str().unwrap()).await;
    let completion = g["data"]["tokens_completion"].as_u64().unwrap();
    // The 40 generated tokens are 40 words of text: more bytes than tokens, within the bound.
    assert!((40..=400).contains(&completion), "{g}");
    assert!(g["data"]["tokens_prompt"].as_u64().unwrap() > 0);
    assert!(g["data"]["total_cost"].as_f64().unwrap() > 0.0);
}

async fn metric(stack: &Stack, series: &str) -> u64 {
    support::metric(stack.dp_port, series).await
}

/// Redis killed under the gateway, reserving per request: fail_closed answers 503 in
/// OpenRouter's shape, fail_open serves and counts it; both say so in their metrics and recover
/// as soon as Redis is back.
#[tokio::test]
async fn a_redis_outage_follows_the_configured_policy() {
    for policy in ["fail-closed", "fail-open"] {
        let mut redis = Redis::start();
        let url = redis.url();
        let stack = Stack::start_with(&[
            "--spend-backend",
            "redis",
            "--redis-url",
            url.as_str(),
            "--spend-failure-policy",
            policy,
            "--spend-timeout-ms",
            "200",
            "--spend-leases",
            "false",
        ])
        .await;
        assert_eq!(stack.chat(&stack.inference_key, body()).await.status(), 200);

        redis.kill();
        let r = stack.chat(&stack.inference_key, body()).await;
        if policy == "fail-closed" {
            let message = support::expect_error(r, 503).await;
            assert!(message.contains("Spend limits"), "{message}");
            assert_eq!(
                metric(
                    &stack,
                    "switchyard_spend_admissions_total{outcome=\"unavailable_refused\"}"
                )
                .await,
                1
            );
        } else {
            assert_eq!(r.status(), 200);
            assert_eq!(
                metric(
                    &stack,
                    "switchyard_spend_admissions_total{outcome=\"unavailable_served\"}"
                )
                .await,
                1
            );
        }

        redis.restart();
        // Recovered means admitted through Redis again (fail_open would serve regardless).
        let key = stack.inference_key.clone();
        eventually(
            &format!("{policy}: counted in Redis again once it is back"),
            Duration::from_secs(10),
            || {
                let key = key.clone();
                let stack = &stack;
                async move {
                    let served = stack.chat(&key, body()).await.status() == 200;
                    let granted = metric(
                        stack,
                        "switchyard_spend_admissions_total{outcome=\"granted\"}",
                    )
                    .await;
                    (served && granted >= 2).then_some(())
                }
            },
        )
        .await;
    }
}

/// With budget leases, a Redis outage is served from the escrow this dataplane already holds
/// (failing closed or not: every request is still counted), and once Redis is back the counter
/// equals the ledger exactly. When the escrow is used up or lapses, the policy applies as above.
#[tokio::test]
async fn a_redis_outage_is_served_from_a_live_lease_and_counted_once_redis_is_back() {
    let mut redis = Redis::start();
    let url = redis.url();
    let stack = Stack::start_with_both(
        &[
            "--spend-backend",
            "redis",
            "--redis-url",
            url.as_str(),
            "--spend-timeout-ms",
            "200",
        ],
        &[
            "--redis-url",
            url.as_str(),
            "--reconcile-interval-secs",
            "1",
        ],
    )
    .await;
    let (secret, hash) = stack.limited_key(1.0).await;
    let cost = |v: &Value| pico(v["usage"]["cost"].as_f64().unwrap());
    // Steady traffic for a while: the lease grows to a few ticks of it (an idle key's lease
    // goes back, so escrow is there only while traffic is).
    let mut spent = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(400);
    while tokio::time::Instant::now() < until {
        let r = stack.chat(&secret, body()).await;
        assert_eq!(r.status(), 200);
        spent += cost(&r.json().await.unwrap());
    }
    let local = "switchyard_spend_lease_admissions_total{path=\"local\"}";
    let before = metric(&stack, local).await;
    redis.kill();
    let r = stack.chat(&secret, body()).await;
    assert_eq!(r.status(), 200, "served from escrow while Redis is away");
    spent += cost(&r.json().await.unwrap());
    assert_eq!(
        metric(&stack, local).await,
        before + 1,
        "admitted without a Redis call"
    );
    redis.restart();
    // The restarted Redis lost everything: the control plane rebuilds the counters from the
    // ledger (dataplanes wait for its mark), and what the dataplane charged meanwhile reaches
    // the ledger once: the counter ends where the ledger is, not above, not below.
    let key = stack.key_counter(&hash).await;
    eventually("counter equals the ledger", Duration::from_secs(20), || {
        let (held, counted) = (redis.hget(&key, "held"), redis.hget(&key, "spent"));
        async move { (held.unwrap_or(0) == 0 && counted == Some(spent)).then_some(()) }
    })
    .await;
}

/// Guardrails and budgets through the gateway: a key's guardrail allowlist refuses other models
/// with a 403 naming the guardrail, and a workspace budget smaller than a request refuses it.
/// (Credits running out is a 402; `stages::admit` tests that rendering.)
#[tokio::test]
async fn guardrails_budgets_and_credits_refuse_in_openrouter_terms() {
    let stack = most(Stack::start().await).await;
    let api = stack.api();
    let c = client();
    let post = |path: &str, body: Value| {
        c.post(format!("{api}{path}"))
            .bearer_auth(&stack.management_key)
            .json(&body)
            .send()
    };
    let key: Value = post("/keys", json!({ "name": "guarded" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (secret, hash) = (
        key["key"].as_str().unwrap().to_owned(),
        key["data"]["hash"].as_str().unwrap().to_owned(),
    );
    let guardrail: Value = post(
        "/guardrails",
        json!({ "name": "smart only", "allowed_models": ["mock/smart"] }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = guardrail["data"]["id"].as_str().unwrap().to_owned();
    let r = post(
        &format!("/guardrails/{id}/assignments/keys"),
        json!({ "key_hashes": [hash] }),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let body =
        |model: &str| json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
    let s = secret.clone();
    let refusal = eventually("guardrail applied", Duration::from_secs(10), || {
        let s = s.clone();
        let stack = &stack;
        async move {
            let r = stack.chat(&s, body("mock/fast")).await;
            (r.status() == 403).then_some(r)
        }
    })
    .await;
    let v: Value = refusal.json().await.unwrap();
    assert_eq!(v["error"]["code"], 403);
    assert_eq!(v["error"]["metadata"]["guardrail_id"], id.as_str());
    assert_eq!(stack.chat(&secret, body("mock/smart")).await.status(), 200);

    // A workspace budget smaller than one request's worst case refuses with 403.
    let ws: Value = post("/workspaces", json!({ "name": "Tight", "slug": "tight" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_id = ws["data"]["id"].as_str().unwrap().to_owned();
    let r = c
        .put(format!("{api}/workspaces/{ws_id}/budgets/daily"))
        .bearer_auth(&stack.management_key)
        .json(&json!({ "limit_usd": 0.000001 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let tight: Value = post("/keys", json!({ "name": "tight", "workspace_id": ws_id }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tight = tight["key"].as_str().unwrap().to_owned();
    let v = eventually("workspace budget applied", Duration::from_secs(10), || {
        let tight = tight.clone();
        let stack = &stack;
        async move {
            let r = stack.chat(&tight, body("mock/smart")).await;
            if r.status() == 403 {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        }
    })
    .await;
    assert_eq!(v["error"]["metadata"]["limit"], "workspace");
}

/// Starts `n` requests and returns once the provider holds all of them.
async fn in_flight(
    stack: &Stack,
    secret: &str,
    n: u64,
) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    let before = stack.mock_a.requests().await;
    let tasks = (0..n)
        .map(|_| {
            let (secret, url) = (
                secret.to_owned(),
                format!("{}/chat/completions", stack.api()),
            );
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth(secret)
                    .json(&body())
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json().await.unwrap())
            })
        })
        .collect();
    eventually(
        "requests at the provider",
        Duration::from_secs(10),
        || async move { (stack.mock_a.requests().await >= before + n).then_some(()) },
    )
    .await;
    tasks
}

async fn patch_key(stack: &Stack, hash: &str, body: Value) {
    let r = client()
        .patch(format!("{}/keys/{hash}", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Changes while requests are in flight: a disabled key's requests already at the provider
/// finish and are charged while new ones get 401; a limit lowered below what is committed
/// refuses new requests at once; and the counters still equal what was charged.
#[tokio::test]
async fn keys_disabled_or_limited_mid_flight() {
    let redis = Redis::start();
    let url = redis.url();
    let stack =
        most(Stack::start_with(&["--spend-backend", "redis", "--redis-url", url.as_str()]).await)
            .await;
    stack
        .mock_a
        .script(json!({ "ttfb_ms": 400, "report_most": true }))
        .await;

    for change in ["disable", "lower limit"] {
        let (secret, hash) = stack.limited_key(1.0).await;
        let tasks = in_flight(&stack, &secret, 5).await;
        let (patch, refused_with) = match change {
            "disable" => (json!({ "disabled": true }), 401),
            _ => (json!({ "limit": 0.000001 }), 403),
        };
        patch_key(&stack, &hash, patch).await;
        // Probes sent before the change reaches the dataplane are served and charged too.
        let probes = Arc::new(AtomicU64::new(0));
        let s = secret.clone();
        eventually(
            &format!("{change}: new requests refused"),
            Duration::from_secs(5),
            || {
                let (s, probes) = (s.clone(), probes.clone());
                let stack = &stack;
                async move {
                    let r = stack.chat(&s, body()).await;
                    let status = r.status().as_u16();
                    if status == 200 {
                        let v: Value = r.json().await.ok()?;
                        probes.fetch_add(pico(v["usage"]["cost"].as_f64()?), Ordering::SeqCst);
                    }
                    (status == refused_with).then_some(())
                }
            },
        )
        .await;
        let mut charged = probes.load(Ordering::SeqCst);
        for t in tasks {
            let (status, v) = t.await.unwrap();
            assert_eq!(status, 200, "{change}: in-flight requests finish: {v}");
            charged += pico(v["usage"]["cost"].as_f64().unwrap());
        }
        let key = stack.key_counter(&hash).await;
        eventually(
            &format!("{change}: settled"),
            Duration::from_secs(10),
            || {
                let settled = redis.hget(&key, "held") == Some(0)
                    && redis.hget(&key, "spent") == Some(charged);
                async move { settled.then_some(()) }
            },
        )
        .await;
    }
}

/// A stream its client abandons is charged for what was generated: the counter ends equal to
/// the generation's recorded cost, with nothing left reserved.
#[tokio::test]
async fn a_stream_cut_by_its_client_is_charged_for_what_was_generated() {
    use futures::StreamExt;
    let redis = Redis::start();
    let url = redis.url();
    let stack =
        most(Stack::start_with(&["--spend-backend", "redis", "--redis-url", url.as_str()]).await)
            .await;
    let (secret, hash) = stack.limited_key(1.0).await;
    stack
        .mock_a
        .script(json!({ "completion_tokens": 400, "inter_token_ms": 10 }))
        .await;
    let mut stream_body = body();
    stream_body["stream"] = json!(true);
    stream_body["max_tokens"] = json!(400);
    let r = stack.chat(&secret, stream_body).await;
    assert_eq!(r.status(), 200);
    let mut chunks = r.bytes_stream();
    let mut seen = String::new();
    while seen.matches("data:").count() < 5 {
        let chunk = chunks.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(chunks); // the client goes away mid-stream
    let first = seen.split("data:").nth(1).unwrap().trim();
    let first: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let id = first["id"].as_str().unwrap().to_owned();

    let generation = stack.generation(&id).await;
    let cost = pico(generation["data"]["total_cost"].as_f64().unwrap());
    assert!(cost > 0, "what was generated is charged: {generation}");
    let key = stack.key_counter(&hash).await;
    eventually("cut stream settled", Duration::from_secs(10), || {
        let settled =
            redis.hget(&key, "held") == Some(0) && redis.hget(&key, "spent") == Some(cost);
        async move { settled.then_some(()) }
    })
    .await;
}

/// Redis loses everything (killed, restarted empty): the control plane's reconciliation
/// restores each counter from the usage ledger, exactly.
#[tokio::test]
async fn reconciliation_restores_exact_spend_after_redis_loses_it() {
    let mut redis = Redis::start();
    let url = redis.url();
    let stack = Stack::start_with_both(
        &["--spend-backend", "redis", "--redis-url", url.as_str()],
        &[
            "--redis-url",
            url.as_str(),
            "--reconcile-interval-secs",
            "1",
        ],
    )
    .await;
    let (secret, hash) = stack.limited_key(1.0).await;
    // A guardrail budget bound to the key and to its member, so those counters exist too.
    let api = stack.api();
    let c = client();
    let me: Value = c
        .get(format!("{api}/key"))
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (org, user) = (
        me["data"]["organization_id"].as_str().unwrap().to_owned(),
        me["data"]["creator_user_id"].as_str().unwrap().to_owned(),
    );
    let guardrail: Value = c
        .post(format!("{api}/guardrails"))
        .bearer_auth(&stack.management_key)
        .json(&json!({ "name": "monthly cap", "limit_usd": 50.0, "reset_interval": "monthly" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = guardrail["data"]["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        ("keys", json!({ "key_hashes": [hash] })),
        ("members", json!({ "member_user_ids": [user] })),
    ] {
        let r = c
            .post(format!("{api}/guardrails/{g}/assignments/{path}"))
            .bearer_auth(&stack.management_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let month = Window::Monthly.span(now_ms).id;
    let counters = [
        stack.key_counter(&hash).await,
        counter_key(&org, LimitScope::Guardrail, &format!("{g}|{hash}"), &month),
        counter_key(&org, LimitScope::Member, &format!("{user}|{g}"), &month),
    ];
    let mut charged = 0;
    for _ in 0..5 {
        let v: Value = stack.chat(&secret, body()).await.json().await.unwrap();
        charged += pico(v["usage"]["cost"].as_f64().unwrap());
    }
    eventually("settled", Duration::from_secs(10), || {
        let settled = redis.hget(&counters[0], "held") == Some(0)
            && redis.hget(&counters[0], "spent") == Some(charged);
        async move { settled.then_some(()) }
    })
    .await;

    redis.restart(); // nothing persisted: every counter is gone
    assert!(counters.iter().all(|k| redis.hget(k, "spent").is_none()));
    // The ledger holds this key's five generations this month, by this member: each counter
    // (key, guardrail per key, guardrail per member) comes back to exactly their sum.
    eventually(
        "every counter restored from the ledger",
        Duration::from_secs(15),
        || {
            let restored = counters
                .iter()
                .all(|k| redis.hget(k, "spent") == Some(charged));
            async move { restored.then_some(()) }
        },
    )
    .await;
}

/// A single node's in-process counters survive a dataplane restart: a key that used its limit
/// before the restart is still refused after it.
#[tokio::test]
async fn embedded_counters_survive_a_dataplane_restart() {
    let mut stack = most(Stack::start().await).await;
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    let cost = probe["usage"]["cost"].as_f64().unwrap();
    let (secret, _) = stack.limited_key(cost * 3.5).await;
    for _ in 0..3 {
        assert_eq!(stack.chat(&secret, body()).await.status(), 200);
    }
    assert_eq!(
        stack.chat(&secret, body()).await.status(),
        403,
        "the limit holds"
    );

    stack.stop_dataplane();
    stack.start_dataplane().await;
    stack.wait_ready().await;
    let r = stack.chat(&secret, body()).await;
    assert_eq!(r.status(), 403, "still spent after the restart");
}

/// A limit raised while a request holds the whole budget: new requests are admitted as soon as
/// the new limit reaches the dataplane, and the counter still equals what was charged.
#[tokio::test]
async fn a_limit_raised_mid_flight_admits_new_requests() {
    let redis = Redis::start();
    let url = redis.url();
    let stack =
        most(Stack::start_with(&["--spend-backend", "redis", "--redis-url", url.as_str()]).await)
            .await;
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    let cost = probe["usage"]["cost"].as_f64().unwrap();
    // Room for one request's worst case, not two.
    let (secret, hash) = stack.limited_key(cost * 1.9).await;
    stack
        .mock_a
        .script(json!({ "ttfb_ms": 400, "report_most": true }))
        .await;
    let tasks = in_flight(&stack, &secret, 1).await;
    assert_eq!(
        stack.chat(&secret, body()).await.status(),
        403,
        "the budget is held by the request in flight"
    );
    patch_key(&stack, &hash, json!({ "limit": 1.0 })).await;
    let admitted = Arc::new(AtomicU64::new(0));
    let s = secret.clone();
    eventually("raised limit admits", Duration::from_secs(5), || {
        let (s, admitted) = (s.clone(), admitted.clone());
        let stack = &stack;
        async move {
            let r = stack.chat(&s, body()).await;
            if r.status() != 200 {
                return None;
            }
            let v: Value = r.json().await.ok()?;
            admitted.fetch_add(pico(v["usage"]["cost"].as_f64()?), Ordering::SeqCst);
            Some(())
        }
    })
    .await;
    let mut charged = admitted.load(Ordering::SeqCst);
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        charged += pico(v["usage"]["cost"].as_f64().unwrap());
    }
    let key = stack.key_counter(&hash).await;
    eventually("settled", Duration::from_secs(10), || {
        let settled =
            redis.hget(&key, "held") == Some(0) && redis.hget(&key, "spent") == Some(charged);
        async move { settled.then_some(()) }
    })
    .await;
}
