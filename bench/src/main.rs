//! `switchyard-bench` (behind `make bench`): one scenario, one run, three targets side by side —
//! the mock provider directly, nginx `proxy_pass` to it, and Switchyard's full pipeline in front
//! of it. Rounds are interleaved (A B C A B C …) and medians reported, because a 2-core machine
//! is noisy. Results go to `bench/results/<date>.{md,json}` with a machine description.

mod fallback;
mod machine;
mod sse_memory;
mod targets;
mod translation;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use http::HeaderValue;
use serde_json::{Value, json};
use switchyard_loadtest::load::{self, Mode, Plan, Recorder};
use targets::Pinning;

#[derive(Parser, Clone)]
#[command(
    name = "switchyard-bench",
    about = "Switchyard vs nginx vs direct, side by side"
)]
struct Args {
    /// Directory holding the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Interleaved rounds per phase.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measured seconds per round.
    #[arg(long, default_value_t = 4.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connections for the maximum-throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 1024)]
    prompt_bytes: usize,
    #[arg(long)]
    stream: bool,
    /// Worker threads (nginx worker processes) for each proxy.
    #[arg(long, default_value_t = 1)]
    proxy_threads: usize,
    /// Inference keys to create and use round-robin (1 = the bootstrap key).
    #[arg(long, default_value_t = 1)]
    keys: usize,
    /// Pin proxies to this CPU list (taskset), everything else to --other-cpus.
    #[arg(long, default_value = "1")]
    proxy_cpus: String,
    #[arg(long, default_value = "0")]
    other_cpus: String,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Instead of the throughput and latency phases, hold this many SSE streams open through
    /// each proxy and report resident memory per stream.
    #[arg(long)]
    sse_memory: Option<usize>,
    /// Where Switchyard keeps spend counters: its own redis-server (the production shape) or
    /// in process.
    #[arg(long, value_enum, default_value = "redis")]
    spend: targets::SpendStore,
    /// Spend-limited scenario: the bench's keys carry this limit (USD), so every request also
    /// reserves and settles on a key counter.
    #[arg(long)]
    spend_limit_usd: Option<f64>,
    /// Which scenarios to run: the side-by-side comparison, the fallback scenario (one
    /// provider of two down), the translation scenario (one model per provider format), or all.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Open-loop rate of the fallback scenario's latency rounds, requests per second.
    #[arg(long, default_value_t = 500.0)]
    fallback_rate: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Scenario {
    All,
    Compare,
    Fallback,
    Translation,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Target {
    Direct,
    Nginx,
    Switchyard,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct (mock)",
            Target::Nginx => "nginx proxy_pass",
            Target::Switchyard => "switchyard",
        }
    }
}

const TARGETS: [Target; 3] = [Target::Direct, Target::Nginx, Target::Switchyard];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The generator gets its own runtime threads on the non-proxy CPUs (inherited affinity).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub(crate) struct Round {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub(crate) fn round(r: &Recorder, seconds: f64) -> Round {
    let ok: u64 = r
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    Round {
        rps: ok as f64 / seconds,
        p50_ms: r.latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: r.latency.value_at_quantile(0.99) as f64 / 1000.0,
        errors: r.sent - ok,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let pin = if args.no_pin
        || std::process::Command::new("taskset")
            .arg("-V")
            .output()
            .is_err()
    {
        Pinning {
            proxy_cpus: None,
            other_cpus: None,
        }
    } else {
        Pinning {
            proxy_cpus: Some(args.proxy_cpus.clone()),
            other_cpus: Some(args.other_cpus.clone()),
        }
    };
    if let Some(cpus) = &pin.other_cpus {
        // Keep the load generator off the proxies' CPUs too.
        let _ = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
            .output();
    }
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bin_dir = args.bin_dir.canonicalize().with_context(|| {
        format!(
            "{} missing: build with `cargo build --release --workspace --bins`",
            args.bin_dir.display()
        )
    })?;

    let mock = targets::mock(&bin_dir, &dir, "mock", &pin).await?;
    // Switchyard's second provider, for the fallback scenario.
    let mock_b = targets::mock(&bin_dir, &dir, "mock-b", &pin).await?;
    let nginx = targets::nginx(&dir, mock.port, args.proxy_threads, &pin).await?;
    let sy = targets::switchyard(
        &bin_dir,
        &dir,
        (mock.port, mock_b.port),
        args.proxy_threads,
        &pin,
        args.spend,
    )
    .await?;
    if let Some(streams) = args.sse_memory {
        return sse_memory_phase(&mock, &nginx, &sy, streams).await;
    }
    let keys = if args.keys > 1 || args.spend_limit_usd.is_some() {
        let mut keys = Vec::new();
        if args.spend_limit_usd.is_none() {
            keys.push(sy.inference_key.clone());
        }
        let wanted = args.keys - keys.len();
        keys.extend(
            create_keys(sy.cp_http, &sy.management_key, wanted, args.spend_limit_usd).await?,
        );
        // Let the snapshot with every key reach the dataplane.
        tokio::time::sleep(Duration::from_secs(1)).await;
        keys
    } else {
        vec![sy.inference_key.clone()]
    };
    let keys: Vec<HeaderValue> = keys
        .iter()
        .map(|k| HeaderValue::from_str(&format!("Bearer {k}")))
        .collect::<Result<_, _>>()?;
    let keys = Arc::new(keys);

    let mut tables = Vec::new();
    let mut doc = json!({});
    let runs = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;
    if runs(Scenario::Compare) {
        let (table, part) = compare(&args, &mock, &nginx, &sy, keys.clone()).await?;
        tables.push(table);
        doc = part;
    }
    if runs(Scenario::Translation) {
        let (table, part) = translation::run(translation::Setup {
            sy: &sy,
            keys: keys.clone(),
            rounds: args.rounds,
            duration: args.duration,
            warmup: args.warmup,
            connections: args.connections,
            prompt_bytes: args.prompt_bytes,
            stream: args.stream,
        })
        .await?;
        tables.push(format!(
            "### Translation: the same chat request to a model of each provider format; Switchyard only\n\n{table}"
        ));
        doc["translation"] = part;
    }
    if runs(Scenario::Fallback) {
        let (table, part) = fallback::run(fallback::Setup {
            mock_a: &mock,
            sy: &sy,
            pin: &pin,
            key: keys[0].clone(),
            rounds: args.rounds,
            duration: args.duration,
            warmup: args.warmup,
            connections: args.connections,
            prompt_bytes: args.prompt_bytes,
            rate: args.fallback_rate,
        })
        .await?;
        tables.push(format!(
            "### Fallback: `mock/fast` on Mock A, then Mock B; Switchyard only\n\n{table}"
        ));
        doc["fallback"] = part;
    }
    let table = tables.join("\n");
    let scenario = format!(
        "chat {}, {} B prompt, {} key(s) round-robin{}; spend counters: {}; {} interleaved rounds × {} s \
         (+{} s warm-up); {} connections; proxies: {} worker(s){}",
        if args.stream { "stream" } else { "non-stream" },
        args.prompt_bytes,
        args.keys,
        match args.spend_limit_usd {
            Some(l) => format!(", each limited to {l} USD"),
            None => String::new(),
        },
        match args.spend {
            targets::SpendStore::Redis => "Redis (own redis-server on the proxy core)",
            targets::SpendStore::Embedded => "in process",
        },
        args.rounds,
        args.duration,
        args.warmup,
        args.connections,
        args.proxy_threads,
        match &pin.proxy_cpus {
            Some(c) => format!(
                " pinned to CPU {c} (with Switchyard's control plane), generator and mock on CPU {}",
                pin.other_cpus.clone().unwrap_or_default()
            ),
            None => String::new(),
        },
    );
    let machine = machine::describe();
    println!("\n{scenario}\n\n{table}");

    std::fs::create_dir_all(&args.out)?;
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string();
    let md = format!(
        "# Bench {stamp}\n\nScenario: {scenario}.\n\nMachine: {}\n\nCommand: `make bench` (`{}`)\n\n{table}",
        machine["summary"].as_str().unwrap_or_default(),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    std::fs::write(args.out.join(format!("{stamp}.md")), md)?;
    doc["date"] = json!(stamp);
    doc["scenario"] = json!(scenario);
    doc["machine"] = machine;
    std::fs::write(
        args.out.join(format!("{stamp}.json")),
        serde_json::to_string_pretty(&doc)?,
    )?;
    eprintln!(
        "results written to {}/{stamp}.{{md,json}}",
        args.out.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The side-by-side comparison: maximum throughput (closed loop) and latency at half of nginx's
/// maximum (open loop), direct vs nginx vs Switchyard. Returns the table and its JSON.
async fn compare(
    args: &Args,
    mock: &targets::Mock,
    nginx: &targets::Nginx,
    sy: &targets::Switchyard,
    keys: Arc<Vec<HeaderValue>>,
) -> anyhow::Result<(String, Value)> {
    let body = load::chat_body("mock/fast", args.prompt_bytes, args.stream, None);
    let plan_for = |target: Target, mode: Mode, connections: usize| -> anyhow::Result<Plan> {
        let (port, path, keys) = match target {
            Target::Direct => (mock.port, "/v1/chat/completions", Arc::new(Vec::new())),
            Target::Nginx => (nginx.port, "/v1/chat/completions", Arc::new(Vec::new())),
            Target::Switchyard => (sy.port, "/api/v1/chat/completions", keys.clone()),
        };
        Ok(Plan {
            addr: format!("127.0.0.1:{port}").parse()?,
            path: path.into(),
            keys,
            body: body.clone(),
            stream: args.stream,
            mode,
            connections,
            duration: Duration::from_secs_f64(args.duration),
            warmup: Duration::from_secs_f64(args.warmup),
        })
    };

    // Phase 1: maximum throughput, closed loop.
    let mut max: BTreeMap<Target, Vec<Round>> = BTreeMap::new();
    for r in 0..args.rounds {
        for target in TARGETS {
            let plan = plan_for(target, Mode::Closed, args.connections)?;
            let rec = load::run(plan, Arc::new(AtomicU64::new(0)))
                .await
                .map_err(anyhow::Error::msg)?;
            let res = round(&rec, args.duration);
            eprintln!(
                "throughput round {}/{} {:<18} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r + 1,
                args.rounds,
                target.name(),
                res.rps,
                res.p50_ms,
                res.p99_ms,
                res.errors
            );
            max.entry(target).or_default().push(res);
        }
    }
    let rps = |t: Target| median(max[&t].iter().map(|r| r.rps).collect());
    let nginx_max = rps(Target::Nginx);

    // Phase 2: latency at half of nginx's maximum rate, open loop (no coordinated omission).
    let rate = (nginx_max * 0.5).max(1.0);
    let mut lat: BTreeMap<Target, Vec<Round>> = BTreeMap::new();
    for r in 0..args.rounds {
        for target in TARGETS {
            let plan = plan_for(target, Mode::Open { rate }, args.connections)?;
            let rec = load::run(plan, Arc::new(AtomicU64::new(0)))
                .await
                .map_err(anyhow::Error::msg)?;
            let res = round(&rec, args.duration);
            eprintln!(
                "latency round {}/{} {:<18} at {:.0} req/s: p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r + 1,
                args.rounds,
                target.name(),
                rate,
                res.p50_ms,
                res.p99_ms,
                res.errors
            );
            lat.entry(target).or_default().push(res);
        }
    }
    let p99 = |t: Target| median(lat[&t].iter().map(|r| r.p99_ms).collect());
    let p50 = |t: Target| median(lat[&t].iter().map(|r| r.p50_ms).collect());
    let errors = |t: Target| {
        max[&t]
            .iter()
            .chain(lat[&t].iter())
            .map(|r| r.errors)
            .sum::<u64>()
    };
    let added = |t: Target| p99(t) - p99(Target::Direct);

    let mut table = String::new();
    table.push_str(
        "| target | max req/s | p50 ms | p99 ms | p99 added over direct, ms | errors |\n",
    );
    table.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for t in TARGETS {
        table.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3} | {} | {} |\n",
            t.name(),
            rps(t),
            p50(t),
            p99(t),
            if t == Target::Direct {
                "—".to_owned()
            } else {
                format!("{:.3}", added(t))
            },
            errors(t),
        ));
    }
    let ratios = json!({
        "switchyard_rps_over_nginx_rps": rps(Target::Switchyard) / nginx_max,
        "switchyard_rps_over_direct_rps": rps(Target::Switchyard) / rps(Target::Direct),
        "nginx_rps_over_direct_rps": nginx_max / rps(Target::Direct),
        "switchyard_p99_added_over_nginx_p99_added": added(Target::Switchyard) / added(Target::Nginx),
    });
    table.push_str(&format!(
        "\nRatios: switchyard ÷ nginx req/s **{:.2}** (target ≥ 1.0); switchyard ÷ direct req/s {:.2}; \
         p99 added at {:.0} req/s (50% of nginx max), switchyard ÷ nginx **{:.2}** (target ≤ 1.5).\n",
        ratios["switchyard_rps_over_nginx_rps"].as_f64().unwrap_or(f64::NAN),
        ratios["switchyard_rps_over_direct_rps"].as_f64().unwrap_or(f64::NAN),
        rate,
        ratios["switchyard_p99_added_over_nginx_p99_added"].as_f64().unwrap_or(f64::NAN),
    ));
    let rounds_json = |m: &BTreeMap<Target, Vec<Round>>| -> Value {
        m.iter()
            .map(|(t, rs)| (t.name().to_owned(), json!(rs.iter().map(|r| json!({"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors})).collect::<Vec<_>>())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let doc = json!({
        "open_loop_rate": rate,
        "median": TARGETS.iter().map(|t| (t.name().to_owned(), json!({"max_rps": rps(*t), "p50_ms": p50(*t), "p99_ms": p99(*t)}))).collect::<serde_json::Map<_, _>>(),
        "ratios": ratios,
        "throughput_rounds": rounds_json(&max),
        "latency_rounds": rounds_json(&lat),
    });
    Ok((table, doc))
}

/// Creates `n` inference keys through the management API, 32 at a time.
async fn create_keys(
    cp_http: u16,
    management_key: &str,
    n: usize,
    limit_usd: Option<f64>,
) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{cp_http}/api/v1/keys");
    let mut keys = Vec::with_capacity(n);
    let mut pending = Vec::new();
    for i in 0..n {
        let client = client.clone();
        let url = url.clone();
        let auth = format!("Bearer {management_key}");
        pending.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("authorization", auth)
                .json(&json!({"name": format!("bench-{i}"), "limit": limit_usd}))
                .send()
                .await?;
            let v: Value = r.json().await?;
            anyhow::Ok(v["key"].as_str().unwrap_or_default().to_owned())
        }));
        if pending.len() == 32 || i + 1 == n {
            for p in pending.drain(..) {
                keys.push(p.await??);
            }
        }
    }
    eprintln!("created {} keys", keys.len());
    Ok(keys)
}

/// Resident memory per open stream through nginx and Switchyard, the mock trickling tokens.
async fn sse_memory_phase(
    mock: &targets::Mock,
    nginx: &targets::Nginx,
    sy: &targets::Switchyard,
    streams: usize,
) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/__mock/script", mock.port))
        .body(r#"{"completion_tokens": 600, "inter_token_ms": 200}"#)
        .send()
        .await?;
    for (name, port, path, key, pids) in [
        (
            "nginx proxy_pass",
            nginx.port,
            "/v1/chat/completions",
            None,
            nginx.worker_pids(),
        ),
        (
            "switchyard",
            sy.port,
            "/api/v1/chat/completions",
            Some(sy.inference_key.as_str()),
            vec![sy.dataplane_pid()],
        ),
    ] {
        let before: u64 = pids
            .iter()
            .map(|p| sse_memory::rss_bytes(*p).unwrap_or(0))
            .sum();
        let open = sse_memory::open_streams(port, path, key, streams).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after: u64 = pids
            .iter()
            .map(|p| sse_memory::rss_bytes(*p).unwrap_or(0))
            .sum();
        let per = after.saturating_sub(before) as f64 / open.len() as f64;
        println!(
            "{name}: {} streams open; RSS {:.1} MiB -> {:.1} MiB; {:.1} KiB per stream (target ≤ 32 KiB)",
            open.len(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per / 1024.0
        );
        drop(open);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}
