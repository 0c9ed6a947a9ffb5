//! The fallback scenario: what a provider outage costs. `mock/fast` is served by Mock A first and
//! Mock B second. Three Switchyard conditions, in interleaved rounds:
//!
//! - **healthy**: both providers up;
//! - **A down**: Mock A answers every request with 503; the dataplane's breaker and the fleet's
//!   health view move A behind B, so requests go straight to B after the first few;
//! - **one failover per request**: the same outage through a dataplane started with
//!   `--ignore-provider-health` (and a retry budget of one retry per request), so every request
//!   tries A, gets its 503 and is served by B: the added latency of one failover is its latency
//!   minus the healthy one, at the same open-loop rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::HeaderValue;
use serde_json::{Value, json};
use switchyard_loadtest::load::{self, Mode, Plan};

use crate::targets::{Mock, Pinning, Switchyard};
use crate::{Round, median, round};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Condition {
    Healthy,
    ADown,
    Failover,
}

impl Condition {
    fn name(self) -> &'static str {
        match self {
            Condition::Healthy => "healthy (both providers up)",
            Condition::ADown => "provider A down (health routing)",
            Condition::Failover => "every request fails over once",
        }
    }
}

const CONDITIONS: [Condition; 3] = [Condition::Healthy, Condition::ADown, Condition::Failover];

pub struct Setup<'a> {
    pub mock_a: &'a Mock,
    pub sy: &'a Switchyard,
    pub pin: &'a Pinning,
    pub key: HeaderValue,
    pub rounds: usize,
    pub duration: f64,
    pub warmup: f64,
    pub connections: usize,
    pub prompt_bytes: usize,
    /// Open-loop rate for the latency figures.
    pub rate: f64,
}

/// Runs the scenario; returns its Markdown table and JSON.
pub async fn run(s: Setup<'_>) -> anyhow::Result<(String, Value)> {
    let (_failover_dp, failover_port) =
        s.sy.extra_dataplane(
            "dataplane-failover",
            &["--ignore-provider-health", "--retry-budget-ratio", "1"],
            s.pin,
        )
        .await?;
    let body = load::chat_body("mock/fast", s.prompt_bytes, false, None);
    let keys = Arc::new(vec![s.key.clone()]);
    let plan = |c: Condition, mode: Mode| -> anyhow::Result<Plan> {
        let port = match c {
            Condition::Failover => failover_port,
            _ => s.sy.port,
        };
        Ok(Plan {
            addr: format!("127.0.0.1:{port}").parse()?,
            path: "/api/v1/chat/completions".into(),
            keys: keys.clone(),
            body: body.clone(),
            stream: false,
            mode,
            connections: s.connections,
            duration: Duration::from_secs_f64(s.duration),
            warmup: Duration::from_secs_f64(s.warmup),
        })
    };
    let mock_a = s.mock_a;
    let set = move |c: Condition| async move {
        let script = match c {
            Condition::Healthy => "{}",
            Condition::ADown | Condition::Failover => r#"{"outage":true}"#,
        };
        mock_a.script(script).await
    };
    let mut max: BTreeMap<Condition, Vec<Round>> = BTreeMap::new();
    let mut lat: BTreeMap<Condition, Vec<Round>> = BTreeMap::new();
    for r in 0..s.rounds {
        for c in CONDITIONS {
            set(c).await?;
            let rec = load::run(plan(c, Mode::Closed)?, Arc::new(AtomicU64::new(0)))
                .await
                .map_err(anyhow::Error::msg)?;
            let res = round(&rec, s.duration);
            eprintln!(
                "fallback throughput round {}/{} {:<32} {:>9.0} req/s  errors {}",
                r + 1,
                s.rounds,
                c.name(),
                res.rps,
                res.errors
            );
            max.entry(c).or_default().push(res);
            let rec = load::run(
                plan(c, Mode::Open { rate: s.rate })?,
                Arc::new(AtomicU64::new(0)),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            let res = round(&rec, s.duration);
            eprintln!(
                "fallback latency round {}/{} {:<32} at {:.0} req/s: p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r + 1,
                s.rounds,
                c.name(),
                s.rate,
                res.p50_ms,
                res.p99_ms,
                res.errors
            );
            lat.entry(c).or_default().push(res);
        }
    }
    set(Condition::Healthy).await?;
    let rps = |c: Condition| median(max[&c].iter().map(|r| r.rps).collect());
    let p50 = |c: Condition| median(lat[&c].iter().map(|r| r.p50_ms).collect());
    let p99 = |c: Condition| median(lat[&c].iter().map(|r| r.p99_ms).collect());
    let errors =
        |c: Condition| -> u64 { max[&c].iter().chain(lat[&c].iter()).map(|r| r.errors).sum() };
    let mut table = String::from(
        "| condition | max req/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for c in CONDITIONS {
        table.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3} | {} |\n",
            c.name(),
            rps(c),
            p50(c),
            p99(c),
            errors(c)
        ));
    }
    let added_p50 = p50(Condition::Failover) - p50(Condition::Healthy);
    let added_p99 = p99(Condition::Failover) - p99(Condition::Healthy);
    let down_ratio = rps(Condition::ADown) / rps(Condition::Healthy);
    table.push_str(&format!(
        "\nOne failover adds **{added_p50:.3} ms** at p50 and {added_p99:.3} ms at p99 (at {:.0} req/s, \
         open loop). With provider A down, throughput is **{down_ratio:.2}×** the healthy figure.\n",
        s.rate
    ));
    let doc = json!({
        "open_loop_rate": s.rate,
        "median": CONDITIONS.iter().map(|c| (c.name().to_owned(), json!({
            "max_rps": rps(*c), "p50_ms": p50(*c), "p99_ms": p99(*c), "errors": errors(*c),
        }))).collect::<serde_json::Map<_, _>>(),
        "failover_added_p50_ms": added_p50,
        "failover_added_p99_ms": added_p99,
        "a_down_rps_over_healthy_rps": down_ratio,
    });
    Ok((table, doc))
}
