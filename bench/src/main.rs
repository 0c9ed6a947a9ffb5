//! `switchyard-bench` (behind `make bench`): one scenario, one run, three targets side by side —
//! the mock provider directly, nginx `proxy_pass` to it, and Switchyard's full pipeline in front
//! of it. Rounds are interleaved (A B C A B C …) and medians reported, because a 2-core machine
//! is noisy. Results go to `bench/results/<date>.{md,json}` with a machine description.

mod fallback;
mod machine;
mod propagation;
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
    /// The bench's keys carry this limit (USD), so every request also reserves and settles on a
    /// key counter; 0 for keys without a limit.
    #[arg(long, default_value_t = 1_000_000.0)]
    spend_limit_usd: f64,
    /// Which scenarios to run: the side-by-side comparison, the fallback scenario (one
    /// provider of two down), the translation scenario (one model per provider format), the
    /// propagation scenario (a key change until three dataplanes serve it), or all.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Open-loop rate of the fallback scenario's latency rounds, requests per second.
    #[arg(long, default_value_t = 500.0)]
    fallback_rate: f64,
    /// A fixed open-loop rate measured besides 50% of nginx's maximum, requests per second.
    #[arg(long, default_value_t = 2000.0)]
    fixed_rate: f64,
    /// LiteLLM's `litellm` binary (`make bench` installs it pinned in bench/.litellm): measured
    /// beside the others against the same mock.
    #[arg(long)]
    litellm: Option<PathBuf>,
    /// Release binaries built from another commit: their dataplane joins the same stack beside
    /// the configured Switchyard (and, with `--sse-memory`, is measured too), so a change is
    /// measured side by side in one run.
    #[arg(long)]
    baseline_bin_dir: Option<PathBuf>,
    /// Only the configured Switchyard (no per-request and embedded dataplanes beside it).
    #[arg(long)]
    no_variants: bool,
    /// Key counts of the propagation scenario (comma-separated, ascending).
    #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
    propagation_keys: Vec<usize>,
    /// Changes timed at each key count.
    #[arg(long, default_value_t = 20)]
    propagation_changes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Scenario {
    All,
    Compare,
    Fallback,
    Translation,
    Propagation,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Target {
    Direct,
    Nginx,
    /// The stack as configured (`--spend`): Redis counters with budget leases by default.
    Switchyard,
    /// Another dataplane of the same stack reserving per request in Redis (no leases).
    SwitchyardPerRequest,
    /// Another dataplane of the same stack with its counters in process.
    SwitchyardEmbedded,
    /// `--baseline-bin-dir`'s dataplane in the same stack, configured like `Switchyard`.
    SwitchyardBaseline,
    LiteLlm,
}

impl Target {
    fn name(self, spend: targets::SpendStore) -> &'static str {
        match (self, spend) {
            (Target::Direct, _) => "direct (mock)",
            (Target::Nginx, _) => "nginx proxy_pass",
            (Target::Switchyard, targets::SpendStore::Redis) => "switchyard (Redis, leases)",
            (Target::Switchyard, targets::SpendStore::Embedded) => "switchyard (embedded)",
            (Target::SwitchyardPerRequest, _) => "switchyard (Redis, per request)",
            (Target::SwitchyardEmbedded, _) => "switchyard (embedded)",
            (Target::SwitchyardBaseline, _) => "switchyard baseline build",
            (Target::LiteLlm, _) => "LiteLLM proxy",
        }
    }
}

/// One target of the comparison: where it listens and what a request to it carries.
struct Entry {
    target: Target,
    port: u16,
    path: &'static str,
    keys: Arc<Vec<HeaderValue>>,
}

/// The targets of the comparison, and the extra processes they need (stopped on drop).
struct Lineup {
    entries: Vec<Entry>,
    _procs: Vec<targets::Proc>,
    _litellm: Option<targets::LiteLlm>,
}

/// Direct, nginx and the configured Switchyard; with Redis counters also a per-request and an
/// embedded dataplane of the same stack; LiteLLM when `--litellm` names its binary.
async fn lineup(
    args: &Args,
    dir: &std::path::Path,
    pin: &Pinning,
    (mock, nginx, sy): (&targets::Mock, &targets::Nginx, &targets::Switchyard),
    keys: Arc<Vec<HeaderValue>>,
) -> anyhow::Result<Lineup> {
    let none = || Arc::new(Vec::new());
    let mut entries = vec![
        Entry {
            target: Target::Direct,
            port: mock.port,
            path: "/v1/chat/completions",
            keys: none(),
        },
        Entry {
            target: Target::Nginx,
            port: nginx.port,
            path: "/v1/chat/completions",
            keys: none(),
        },
        Entry {
            target: Target::Switchyard,
            port: sy.port,
            path: "/api/v1/chat/completions",
            keys: keys.clone(),
        },
    ];
    let mut procs = Vec::new();
    if args.spend == targets::SpendStore::Redis && !args.no_variants {
        let (proc, port) = sy
            .extra_dataplane("dp-per-request", &["--spend-leases", "false"], pin)
            .await?;
        procs.push(proc);
        entries.push(Entry {
            target: Target::SwitchyardPerRequest,
            port,
            path: "/api/v1/chat/completions",
            keys: keys.clone(),
        });
        let (proc, port) = sy
            .extra_dataplane_without("dp-embedded", &["--spend-backend", "--redis-url"], &[], pin)
            .await?;
        procs.push(proc);
        entries.push(Entry {
            target: Target::SwitchyardEmbedded,
            port,
            path: "/api/v1/chat/completions",
            keys: keys.clone(),
        });
    }
    if let Some(bin_dir) = &args.baseline_bin_dir {
        let (proc, port) = sy
            .extra_dataplane_from(bin_dir, "dp-baseline", &[], &[], pin)
            .await?;
        procs.push(proc);
        entries.push(Entry {
            target: Target::SwitchyardBaseline,
            port,
            path: "/api/v1/chat/completions",
            keys: keys.clone(),
        });
    }
    let litellm = match &args.litellm {
        Some(binary) => match targets::litellm(binary, dir, mock.port, pin).await {
            Ok(l) => {
                entries.push(Entry {
                    target: Target::LiteLlm,
                    port: l.port,
                    path: "/v1/chat/completions",
                    keys: none(),
                });
                Some(l)
            }
            Err(e) => {
                eprintln!("LiteLLM left out of this run: {e:#}");
                None
            }
        },
        None => None,
    };
    Ok(Lineup {
        entries,
        _procs: procs,
        _litellm: litellm,
    })
}

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
        return sse_memory_phase(&args, &pin, (&mock, &nginx, &sy), streams).await;
    }
    let limit = (args.spend_limit_usd > 0.0).then_some(args.spend_limit_usd);
    let keys = if args.keys > 1 || limit.is_some() {
        let mut keys = Vec::new();
        if limit.is_none() {
            keys.push(sy.inference_key.clone());
        }
        let wanted = args.keys - keys.len();
        keys.extend(create_keys(sy.cp_http, &sy.management_key, wanted, limit).await?);
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
        let lineup = lineup(&args, &dir, &pin, (&mock, &nginx, &sy), keys.clone()).await?;
        let (table, part) = compare(&args, &lineup).await?;
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
    if runs(Scenario::Propagation) {
        let (table, part) = propagation::run(propagation::Setup {
            sy: &sy,
            pin: &pin,
            keys: args.propagation_keys.clone(),
            changes: args.propagation_changes,
        })
        .await?;
        tables.push(format!(
            "### Propagation: a key disabled through the API until all 3 dataplanes refuse it\n\n{table}"
        ));
        doc["propagation"] = part;
    }
    let table = tables.join("\n");
    let scenario = format!(
        "chat {}, {} B prompt, {} key(s) round-robin{}; spend counters: {}; {} interleaved rounds × {} s \
         (+{} s warm-up); {} connections; proxies: {} worker(s){}",
        if args.stream { "stream" } else { "non-stream" },
        args.prompt_bytes,
        args.keys,
        match limit {
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

/// The side-by-side comparison: maximum throughput (closed loop) of every target, then latency
/// open loop at 50% of nginx's maximum and at `--fixed-rate` (latency from each request's
/// scheduled send, so no coordinated omission), for every target whose maximum exceeds the
/// rate. Returns the table and its JSON.
async fn compare(args: &Args, lineup: &Lineup) -> anyhow::Result<(String, Value)> {
    let body = load::chat_body("mock/fast", args.prompt_bytes, args.stream, None);
    let name = |t: Target| t.name(args.spend);
    let plan_for = |e: &Entry, mode: Mode| -> anyhow::Result<Plan> {
        Ok(Plan {
            addr: format!("127.0.0.1:{}", e.port).parse()?,
            path: e.path.into(),
            keys: e.keys.clone(),
            body: body.clone(),
            stream: args.stream,
            mode,
            connections: args.connections,
            duration: Duration::from_secs_f64(args.duration),
            warmup: Duration::from_secs_f64(args.warmup),
        })
    };
    let measure = async |e: &Entry, mode: Mode| -> anyhow::Result<Round> {
        let rec = load::run(plan_for(e, mode)?, Arc::new(AtomicU64::new(0)))
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(round(&rec, args.duration))
    };

    // Phase 1: maximum throughput, closed loop.
    let mut max: BTreeMap<Target, Vec<Round>> = BTreeMap::new();
    for r in 0..args.rounds {
        for e in &lineup.entries {
            let res = measure(e, Mode::Closed).await?;
            eprintln!(
                "throughput round {}/{} {:<32} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r + 1,
                args.rounds,
                name(e.target),
                res.rps,
                res.p50_ms,
                res.p99_ms,
                res.errors
            );
            max.entry(e.target).or_default().push(res);
        }
    }
    let rps = |t: Target| {
        max.get(&t)
            .map_or(f64::NAN, |rs| median(rs.iter().map(|r| r.rps).collect()))
    };
    let nginx_max = rps(Target::Nginx);

    // Phases 2 and 3: latency at fixed rates, open loop.
    let rates = [(nginx_max * 0.5).max(1.0), args.fixed_rate];
    let mut lat: [BTreeMap<Target, Vec<Round>>; 2] = Default::default();
    for (phase, &rate) in rates.iter().enumerate() {
        for r in 0..args.rounds {
            // A target that cannot reach the rate would only measure its queue.
            for e in lineup.entries.iter().filter(|e| rps(e.target) > rate * 1.1) {
                let res = measure(e, Mode::Open { rate }).await?;
                eprintln!(
                    "latency round {}/{} {:<32} at {:.0} req/s: p50 {:.3} ms  p99 {:.3} ms  errors {}",
                    r + 1,
                    args.rounds,
                    name(e.target),
                    rate,
                    res.p50_ms,
                    res.p99_ms,
                    res.errors
                );
                lat[phase].entry(e.target).or_default().push(res);
            }
        }
    }
    let p = |phase: usize, t: Target, f: fn(&Round) -> f64| {
        lat[phase]
            .get(&t)
            .map_or(f64::NAN, |rs| median(rs.iter().map(f).collect()))
    };
    let added = |phase: usize, t: Target| {
        p(phase, t, |r| r.p99_ms) - p(phase, Target::Direct, |r| r.p99_ms)
    };
    let errors = |t: Target| {
        max.get(&t)
            .into_iter()
            .chain(lat.iter().filter_map(|m| m.get(&t)))
            .flatten()
            .map(|r| r.errors)
            .sum::<u64>()
    };
    let cell = |v: f64, digits: usize| {
        if v.is_nan() {
            "—".to_owned()
        } else {
            format!("{v:.digits$}")
        }
    };

    let mut table = format!(
        "| target | max req/s | ÷ nginx | p50 ms @{r0:.0}/s | p99 ms @{r0:.0}/s | p99 added @{r0:.0}/s | \
         p99 ms @{r1:.0}/s | p99 added @{r1:.0}/s | errors |\n",
        r0 = rates[0],
        r1 = rates[1],
    );
    table.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for e in &lineup.entries {
        let t = e.target;
        let direct = t == Target::Direct;
        table.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
            name(t),
            rps(t),
            cell(rps(t) / nginx_max, 2),
            cell(p(0, t, |r| r.p50_ms), 3),
            cell(p(0, t, |r| r.p99_ms), 3),
            if direct {
                "—".to_owned()
            } else {
                cell(added(0, t), 3)
            },
            cell(p(1, t, |r| r.p99_ms), 3),
            if direct {
                "—".to_owned()
            } else {
                cell(added(1, t), 3)
            },
            errors(t),
        ));
    }
    let sy = Target::Switchyard;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let ratios = json!({
        "switchyard_rps_over_nginx_rps": ratio(rps(sy), nginx_max),
        "switchyard_per_request_rps_over_nginx_rps": ratio(rps(Target::SwitchyardPerRequest), nginx_max),
        "switchyard_embedded_rps_over_nginx_rps": ratio(rps(Target::SwitchyardEmbedded), nginx_max),
        "switchyard_rps_over_litellm_rps": ratio(rps(sy), rps(Target::LiteLlm)),
        "switchyard_rps_over_baseline_rps": ratio(rps(sy), rps(Target::SwitchyardBaseline)),
        "switchyard_p99_added_over_baseline_p99_added_fixed_rate": ratio(added(1, sy), added(1, Target::SwitchyardBaseline)),
        "switchyard_rps_over_direct_rps": ratio(rps(sy), rps(Target::Direct)),
        "nginx_rps_over_direct_rps": ratio(nginx_max, rps(Target::Direct)),
        "switchyard_p99_added_over_nginx_p99_added": ratio(added(0, sy), added(0, Target::Nginx)),
        "switchyard_p99_added_over_nginx_p99_added_fixed_rate": ratio(added(1, sy), added(1, Target::Nginx)),
    });
    let r = |k: &str| ratios[k].as_f64().unwrap_or(f64::NAN);
    table.push_str(&format!(
        "\nRatios: switchyard ÷ nginx req/s **{}** (target ≥ 1.0; per request {}, embedded {}); \
         switchyard ÷ LiteLLM req/s **{}**; p99 added over direct, switchyard ÷ nginx: **{}** at \
         {:.0} req/s (50% of nginx max), **{}** at {:.0} req/s (target ≤ 1.5).\n",
        cell(r("switchyard_rps_over_nginx_rps"), 2),
        cell(r("switchyard_per_request_rps_over_nginx_rps"), 2),
        cell(r("switchyard_embedded_rps_over_nginx_rps"), 2),
        cell(r("switchyard_rps_over_litellm_rps"), 1),
        cell(r("switchyard_p99_added_over_nginx_p99_added"), 2),
        rates[0],
        cell(r("switchyard_p99_added_over_nginx_p99_added_fixed_rate"), 2),
        rates[1],
    ));
    if args.baseline_bin_dir.is_some() {
        table.push_str(&format!(
            "Against the baseline build, same stack: switchyard ÷ baseline req/s **{}**, p99 added \
             at {:.0} req/s **{}**.\n",
            cell(r("switchyard_rps_over_baseline_rps"), 2),
            rates[1],
            cell(
                r("switchyard_p99_added_over_baseline_p99_added_fixed_rate"),
                2
            ),
        ));
    }
    let rounds_json = |m: &BTreeMap<Target, Vec<Round>>| -> Value {
        m.iter()
            .map(|(t, rs)| (name(*t).to_owned(), json!(rs.iter().map(|r| json!({"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors})).collect::<Vec<_>>())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let doc = json!({
        "open_loop_rates": rates,
        "median": lineup.entries.iter().map(|e| (name(e.target).to_owned(), json!({
            "max_rps": rps(e.target),
            "p50_ms": p(0, e.target, |r| r.p50_ms),
            "p99_ms": p(0, e.target, |r| r.p99_ms),
            "p99_ms_fixed_rate": p(1, e.target, |r| r.p99_ms),
        }))).collect::<serde_json::Map<_, _>>(),
        "ratios": ratios,
        "throughput_rounds": rounds_json(&max),
        "latency_rounds": rounds_json(&lat[0]),
        "latency_rounds_fixed_rate": rounds_json(&lat[1]),
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
    args: &Args,
    pin: &Pinning,
    (mock, nginx, sy): (&targets::Mock, &targets::Nginx, &targets::Switchyard),
    streams: usize,
) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/__mock/script", mock.port))
        .body(r#"{"completion_tokens": 600, "inter_token_ms": 200}"#)
        .send()
        .await?;
    let mut lineup = vec![
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
    ];
    let _baseline = match &args.baseline_bin_dir {
        Some(bin_dir) => {
            let (proc, port) = sy
                .extra_dataplane_from(bin_dir, "dp-baseline", &[], &[], pin)
                .await?;
            lineup.push((
                "switchyard baseline build",
                port,
                "/api/v1/chat/completions",
                Some(sy.inference_key.as_str()),
                vec![proc.id()],
            ));
            Some(proc)
        }
        None => None,
    };
    for (name, port, path, key, pids) in lineup {
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
