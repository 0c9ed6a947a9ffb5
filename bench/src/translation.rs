//! The translation scenario: what speaking a provider's own format costs. Switchyard only, the
//! same client request (OpenAI chat completions) in interleaved rounds, to a model whose
//! provider speaks OpenAI's format (`mock/fast`), Anthropic's Messages API (`mock/claude`) and
//! Gemini's API (`mock/gemini`), each on the same mock binary: the difference is the request,
//! response (or stream) translation and the mock's own encoding of each format.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::HeaderValue;
use serde_json::{Value, json};
use switchyard_loadtest::load::{self, Mode, Plan};

use crate::targets::Switchyard;
use crate::{Round, median, round};

/// (provider format, model) in the order the rounds go.
const FORMATS: [(&str, &str); 3] = [
    ("OpenAI chat completions", "mock/fast"),
    ("Anthropic Messages", "mock/claude"),
    ("Gemini generateContent", "mock/gemini"),
];

pub struct Setup<'a> {
    pub sy: &'a Switchyard,
    pub keys: Arc<Vec<HeaderValue>>,
    pub rounds: usize,
    pub duration: f64,
    pub warmup: f64,
    pub connections: usize,
    pub prompt_bytes: usize,
    pub stream: bool,
}

/// Runs the scenario; returns its Markdown table and JSON.
pub async fn run(s: Setup<'_>) -> anyhow::Result<(String, Value)> {
    let mut results: BTreeMap<usize, Vec<Round>> = BTreeMap::new();
    for r in 0..s.rounds {
        for (i, (format, model)) in FORMATS.iter().enumerate() {
            let plan = Plan {
                addr: format!("127.0.0.1:{}", s.sy.port).parse()?,
                path: "/api/v1/chat/completions".into(),
                keys: s.keys.clone(),
                body: load::chat_body(model, s.prompt_bytes, s.stream, None),
                stream: s.stream,
                mode: Mode::Closed,
                connections: s.connections,
                duration: Duration::from_secs_f64(s.duration),
                warmup: Duration::from_secs_f64(s.warmup),
            };
            let rec = load::run(plan, Arc::new(AtomicU64::new(0)))
                .await
                .map_err(anyhow::Error::msg)?;
            let res = round(&rec, s.duration);
            eprintln!(
                "translation round {}/{} {:<24} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r + 1,
                s.rounds,
                format,
                res.rps,
                res.p50_ms,
                res.p99_ms,
                res.errors
            );
            results.entry(i).or_default().push(res);
        }
    }
    let rps = |i: usize| median(results[&i].iter().map(|r| r.rps).collect());
    let p50 = |i: usize| median(results[&i].iter().map(|r| r.p50_ms).collect());
    let p99 = |i: usize| median(results[&i].iter().map(|r| r.p99_ms).collect());
    let errors = |i: usize| results[&i].iter().map(|r| r.errors).sum::<u64>();
    let mut table = String::from(
        "| provider format | model | max req/s | p50 ms | p99 ms | ÷ OpenAI-format req/s | errors |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut doc = serde_json::Map::new();
    for (i, (format, model)) in FORMATS.iter().enumerate() {
        let ratio = rps(i) / rps(0);
        table.push_str(&format!(
            "| {format} | `{model}` | {:.0} | {:.3} | {:.3} | {ratio:.2} | {} |\n",
            rps(i),
            p50(i),
            p99(i),
            errors(i),
        ));
        doc.insert(
            (*format).to_owned(),
            json!({"model": model, "max_rps": rps(i), "p50_ms": p50(i), "p99_ms": p99(i),
                   "rps_over_openai_format": ratio, "errors": errors(i),
                   "rounds": results[&i].iter().map(|r| json!({"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms})).collect::<Vec<_>>()}),
        );
    }
    Ok((table, Value::Object(doc)))
}
