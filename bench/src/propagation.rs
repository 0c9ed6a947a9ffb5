//! The propagation scenario: how long a configuration change takes to be served by every
//! dataplane. Three dataplanes of one deployment; the store holds `keys` keys; one key at a time
//! is disabled through the management API, and the clock runs until each of the three dataplanes
//! refuses it (each probed with a chat request every millisecond). Reported per key count: p50,
//! p99 and the largest of `changes` changes, each the slowest dataplane's time.
//!
//! The keys timed are created through the API; the rest of each count is written straight into
//! the control plane's SQLite store (a million API calls would take most of an hour) with a
//! version bump that records no change, which the control plane publishes as a whole snapshot,
//! as it would after an older binary's write. Whole snapshots of that size reach the dataplanes,
//! and are written to their disks, before anything is timed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::median;
use crate::targets::{Pinning, Switchyard};

pub struct Setup<'a> {
    pub sy: &'a Switchyard,
    pub pin: &'a Pinning,
    /// Key counts to measure at, ascending (keys are added between counts).
    pub keys: Vec<usize>,
    pub changes: usize,
}

/// Creates inference keys `from..to` through the management API, 32 at a time; returns each
/// key's secret and hash.
async fn create(sy: &Switchyard, from: usize, to: usize) -> anyhow::Result<Vec<(String, String)>> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/v1/keys", sy.cp_http);
    let mut out = Vec::with_capacity(to - from);
    let mut pending = Vec::new();
    for i in from..to {
        let (client, url) = (client.clone(), url.clone());
        let auth = format!("Bearer {}", sy.management_key);
        pending.push(tokio::spawn(async move {
            let v: Value = client
                .post(url)
                .header("authorization", auth)
                .json(&json!({ "name": format!("propagation-{i}") }))
                .send()
                .await?
                .json()
                .await?;
            let secret = v["key"].as_str().unwrap_or_default().to_owned();
            let hash = v["data"]["hash"].as_str().unwrap_or_default().to_owned();
            anyhow::ensure!(
                !secret.is_empty() && !hash.is_empty(),
                "key not created: {v}"
            );
            anyhow::Ok((secret, hash))
        }));
        if pending.len() == 32 || i + 1 == to {
            for p in pending.drain(..) {
                out.push(p.await??);
            }
        }
    }
    Ok(out)
}

/// The status a dataplane answers a small chat request with `secret`.
async fn probe(client: &reqwest::Client, port: u16, secret: &str) -> u16 {
    client
        .post(format!("http://127.0.0.1:{port}/api/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&json!({
            "model": "mock/fast",
            "max_tokens": 1,
            "messages": [{ "role": "user", "content": "x" }]
        }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Waits until `port` answers `secret` with something `done` accepts; false after `limit`.
async fn until(
    client: &reqwest::Client,
    port: u16,
    secret: &str,
    limit: Duration,
    done: impl Fn(u16) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done(probe(client, port, secret).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

pub async fn run(s: Setup<'_>) -> anyhow::Result<(String, Value)> {
    let (_dp2, port2) = s.sy.extra_dataplane("dp-propagation-2", &[], s.pin).await?;
    let (_dp3, port3) = s.sy.extra_dataplane("dp-propagation-3", &[], s.pin).await?;
    let ports = [s.sy.port, port2, port3];
    let client = reqwest::Client::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut table = String::from(
        "| keys in the store | changes | p50 ms | p99 ms | max ms |\n| ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut doc = Vec::new();
    const CHANGE_LIMIT: Duration = Duration::from_secs(60);
    // A whole snapshot of a million keys is built, sent to three dataplanes and decoded.
    const FILL_LIMIT: Duration = Duration::from_secs(900);
    for &count in &s.keys {
        let started = Instant::now();
        let stored: usize =
            s.sy.store_sql("SELECT count(*) FROM api_keys")?
                .trim()
                .parse()?;
        let fill = count.saturating_sub(stored + s.changes);
        if fill > 0 {
            // Copies of a seeded key's row under random hashes (no secret matches them).
            s.sy.store_sql(&format!(
                "BEGIN; \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {fill}) \
                 INSERT INTO api_keys (hash, kind, name, label, organization_id, workspace_id, \
                   creator_user_id, disabled, include_byok_in_limit, created_at) \
                 SELECT lower(hex(randomblob(32))), k.kind, 'filler', k.label, k.organization_id, \
                   k.workspace_id, k.creator_user_id, 0, 0, k.created_at \
                 FROM n, (SELECT * FROM api_keys ORDER BY created_at LIMIT 1) AS k; \
                 UPDATE config_state SET version = version + 1 WHERE id = 1; \
                 COMMIT;"
            ))?;
        }
        let more = create(s.sy, keys.len(), keys.len() + s.changes).await?;
        keys.extend(more);
        eprintln!(
            "propagation: {count} keys in the store ({fill} written directly, {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        // Every dataplane serves the newest key before anything is timed.
        let Some((newest, _)) = keys.last() else {
            anyhow::bail!("no keys");
        };
        for port in ports {
            anyhow::ensure!(
                until(&client, port, newest, FILL_LIMIT, |st| st == 200).await,
                "dataplane on {port} never served the newest key"
            );
        }
        eprintln!(
            "propagation: every dataplane serves {count} keys ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        if fill > 0 {
            // Each dataplane seals and syncs the whole snapshot to disk in the background (about
            // a CPU-second at a million keys, three of them on this machine's two cores): what
            // is timed is a change in steady state, not that one-off write.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let mut times = Vec::with_capacity(s.changes);
        // The keys just created through the API.
        let victims: Vec<(String, String)> = keys.iter().rev().take(s.changes).cloned().collect();
        for (secret, hash) in &victims {
            for port in ports {
                anyhow::ensure!(
                    until(&client, port, secret, CHANGE_LIMIT, |st| st == 200).await,
                    "key not served before its change"
                );
            }
            let t0 = Instant::now();
            let r = client
                .patch(format!(
                    "http://127.0.0.1:{}/api/v1/keys/{hash}",
                    s.sy.cp_http
                ))
                .bearer_auth(&s.sy.management_key)
                .json(&json!({ "disabled": true }))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "PATCH answered {}", r.status());
            let mut slowest = Duration::ZERO;
            for port in ports {
                anyhow::ensure!(
                    until(&client, port, secret, CHANGE_LIMIT, |st| st != 200).await,
                    "dataplane on {port} still serves a disabled key after 60 s"
                );
                slowest = slowest.max(t0.elapsed());
            }
            times.push(slowest.as_secs_f64() * 1000.0);
        }
        // Disabled keys stay in the store (still counted); the next count adds to them.
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let p99 = sorted[((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
        let max = sorted.last().copied().unwrap_or(f64::NAN);
        let p50 = median(times.clone());
        eprintln!("propagation at {count} keys: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
        table.push_str(&format!(
            "| {count} | {} | {p50:.1} | {p99:.1} | {max:.1} |\n",
            times.len()
        ));
        doc.push(json!({ "keys": count, "changes_ms": times, "p50_ms": p50, "p99_ms": p99, "max_ms": max }));
    }
    Ok((table, json!(doc)))
}
