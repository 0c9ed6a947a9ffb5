//! Spend limits that never overshoot when the counters are shared: three dataplane processes on
//! one Redis, and dataplanes on a three-master Redis Cluster. 200 concurrent requests, spread
//! round-robin over the dataplanes, against a key whose limit fits k of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Process, Redis, RedisCluster, Stack, client, eventually};

const REQUESTS: usize = 200;
const FITS: u64 = 20;

/// On Mock A alone, with output dominating the cost: the reservation (a prompt token per byte,
/// every output token allowed) is then close to what a mock reporting the most charges, so a
/// limit sized in requests fits about as many reservations.
fn body() -> Value {
    json!({
        "model": "mock/fast",
        "max_tokens": 200,
        "provider": { "only": ["mock-a"] },
        "messages": [{ "role": "user", "content": "Count to three." }]
    })
}

/// USD (as the gateway reports it) to exact picodollars.
fn pico(usd: f64) -> u64 {
    (usd * 1e12).round() as u64
}

/// The stack's own dataplane and `extra` more with the same flags, all on one control plane;
/// returns the extra processes (killed when dropped) and every dataplane's API base URL.
async fn dataplanes(stack: &Stack, extra: usize, dp_args: &[&str]) -> (Vec<Process>, Vec<String>) {
    let mut processes = Vec::new();
    let mut apis = vec![stack.api()];
    for i in 0..extra {
        let (process, port) = stack
            .start_extra_dataplane(&format!("dataplane-extra-{i}"), dp_args)
            .await;
        processes.push(process);
        apis.push(format!("http://127.0.0.1:{port}/api/v1"));
    }
    (processes, apis)
}

/// 200 concurrent requests, round-robin over `apis`, against a key whose limit fits FITS:
/// at most FITS served, at least FITS / 2, spend within the limit, and once every hold is
/// settled the shared counter (`hget(key, field)`) equals the sum charged, exactly.
async fn no_overshoot(stack: &Stack, apis: &[String], hget: impl Fn(&str, &str) -> Option<u64>) {
    let c = client();
    // Mock A reports the most a provider could count: any under-reservation would overshoot.
    stack.mock_a.script(json!({ "report_most": true })).await;
    // The price of one request, from a probe with the bootstrap key.
    let probe: Value = stack
        .chat(&stack.inference_key, body())
        .await
        .json()
        .await
        .unwrap();
    let cost = pico(probe["usage"]["cost"].as_f64().unwrap());
    assert!(cost > 0);
    // Every dataplane serves (and so connects to Redis) once before the burst, so none comes to
    // it late, and all price a request alike.
    for api in apis {
        let r = c
            .post(format!("{api}/chat/completions"))
            .bearer_auth(&stack.inference_key)
            .json(&body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "warm-up on {api}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(pico(v["usage"]["cost"].as_f64().unwrap()), cost, "{api}");
    }
    // A key whose limit fits FITS requests (and half of one more).
    let limit_pico = cost * FITS + cost / 2;
    let created: Value = c
        .post(format!("{}/keys", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&json!({ "name": "limited", "limit": limit_pico as f64 / 1e12 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let hash = created["data"]["hash"].as_str().unwrap().to_owned();
    // Live on every dataplane: authenticated (not 401) by a request that resolves no model, so
    // nothing is reserved or charged.
    for api in apis {
        let (api, secret) = (api.clone(), secret.clone());
        eventually(
            &format!("limited key live on {api}"),
            Duration::from_secs(5),
            || {
                let (api, secret) = (api.clone(), secret.clone());
                async move {
                    let r = client()
                        .post(format!("{api}/chat/completions"))
                        .bearer_auth(secret)
                        .json(&json!({
                            "model": "no-such/model",
                            "messages": [{ "role": "user", "content": "hi" }]
                        }))
                        .send()
                        .await
                        .ok()?;
                    (r.status().as_u16() != 401).then_some(())
                }
            },
        )
        .await;
    }
    // Every request overlaps the others: the mock holds each for a while.
    stack
        .mock_a
        .script(json!({ "ttfb_ms": 300, "report_most": true }))
        .await;

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let secret = secret.clone();
            let dp = i % apis.len();
            let url = format!("{}/chat/completions", apis[dp]);
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
                (dp, status, v)
            })
        })
        .collect();
    let mut served = Vec::new();
    let mut served_by = vec![0usize; apis.len()];
    let mut refused = 0;
    for t in tasks {
        let (dp, status, v) = t.await.unwrap();
        match status {
            200 => {
                served.push(pico(v["usage"]["cost"].as_f64().unwrap()));
                served_by[dp] += 1;
            }
            402 | 403 => {
                assert!(v["error"]["metadata"]["limit"].is_string(), "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other} from dataplane {dp}: {v}"),
        }
    }
    let spent: u64 = served.iter().sum();
    eprintln!(
        "{} dataplane(s): served {} (per dataplane {served_by:?}), refused {refused}, \
         spent {spent} pico of a {limit_pico} pico limit",
        apis.len(),
        served.len()
    );
    assert_eq!(served.len() + refused, REQUESTS);
    assert!(served.len() as u64 <= FITS, "at most k succeed");
    assert!(
        served.len() as u64 >= FITS / 2,
        "reservations do not starve the limit"
    );
    assert!(spent <= limit_pico, "final spend within the limit");

    // Once settled, the shared counter equals the sum of what was charged, exactly.
    let key = stack.key_counter(&hash).await;
    eventually("every hold settled", Duration::from_secs(10), || {
        let held = hget(&key, "held");
        async move { (held == Some(0)).then_some(()) }
    })
    .await;
    assert_eq!(
        hget(&key, "spent"),
        Some(spent),
        "counter equals the ledger"
    );
}

/// These tests are about overshoot, not latency: 200 requests at once on a loaded two-core
/// machine with debug builds can take longer than the default 100 ms for a script's answer,
/// and fail closed with 503s that say nothing about overshoot.
const TIMEOUT: [&str; 2] = ["--spend-timeout-ms", "2000"];

#[tokio::test]
async fn three_dataplanes_sharing_one_redis_never_overshoot_a_key_limit() {
    let redis = Redis::start();
    let url = redis.url();
    let args = [
        "--spend-backend",
        "redis",
        "--redis-url",
        url.as_str(),
        TIMEOUT[0],
        TIMEOUT[1],
    ];
    let stack = Stack::start_with(&args).await;
    let (_extra, apis) = dataplanes(&stack, 2, &args).await;
    no_overshoot(&stack, &apis, |key, field| redis.hget(key, field)).await;
}

#[tokio::test]
async fn a_dataplane_on_a_redis_cluster_never_overshoots_a_key_limit() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let args = [
        "--spend-backend",
        "redis",
        "--redis-url",
        urls.as_str(),
        TIMEOUT[0],
        TIMEOUT[1],
    ];
    let stack = Stack::start_with(&args).await;
    no_overshoot(&stack, &[stack.api()], |key, field| {
        cluster.hget(key, field)
    })
    .await;
}

#[tokio::test]
async fn three_dataplanes_on_a_redis_cluster_never_overshoot_a_key_limit() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let args = [
        "--spend-backend",
        "redis",
        "--redis-url",
        urls.as_str(),
        TIMEOUT[0],
        TIMEOUT[1],
    ];
    let stack = Stack::start_with(&args).await;
    let (_extra, apis) = dataplanes(&stack, 2, &args).await;
    no_overshoot(&stack, &apis, |key, field| cluster.hget(key, field)).await;
}
