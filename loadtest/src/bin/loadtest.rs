//! `switchyard-loadtest`: load-test an OpenAI-compatible gateway (or a provider) honestly.
//!
//! ```sh
//! switchyard-loadtest --url $OPENAI_BASE_URL --key $OPENAI_API_KEY --mode open --rate 500 \
//!     --duration 10 --json results.json --svg latency.svg
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use http::HeaderValue;
use indicatif::{ProgressBar, ProgressStyle};
use switchyard_loadtest::load::{self, Mode, Plan};
use switchyard_loadtest::report;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    /// Constant arrival rate (--rate); latency from each request's scheduled time.
    Open,
    /// As fast as --connections connections go.
    Closed,
}

#[derive(Parser)]
#[command(
    name = "switchyard-loadtest",
    version,
    about = "Load-test an OpenAI-compatible chat endpoint"
)]
struct Args {
    /// Base URL, e.g. http://127.0.0.1:8080/api/v1 (`/chat/completions` is appended).
    #[arg(long, env = "OPENAI_BASE_URL")]
    url: String,
    /// API key; repeat for several (used round-robin).
    #[arg(long = "key", env = "OPENAI_API_KEY", value_delimiter = ',')]
    keys: Vec<String>,
    /// File with one API key per line (e.g. 10k keys), used round-robin.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    #[arg(long, default_value = "mock/fast")]
    model: String,
    #[arg(long)]
    stream: bool,
    /// Size of the user message in bytes (1024 = 1 KiB … 1048576 = 1 MiB).
    #[arg(long, default_value_t = 1024)]
    prompt_bytes: usize,
    #[arg(long)]
    max_tokens: Option<u64>,
    #[arg(long, value_enum, default_value_t = ModeArg::Closed)]
    mode: ModeArg,
    /// Requests per second, for --mode open.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unrecorded seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG latency percentile plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Worker threads for the generator itself.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let (addr, prefix) = load::parse_base_url(&args.url)?;
    let mut keys = args.keys.clone();
    if let Some(path) = &args.keys_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    let keys = keys
        .iter()
        .map(|k| {
            HeaderValue::from_str(&format!("Bearer {k}"))
                .map_err(|_| "a key is not a valid header value".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plan = Plan {
        addr,
        path: format!("{prefix}/chat/completions"),
        keys: Arc::new(keys),
        body: load::chat_body(&args.model, args.prompt_bytes, args.stream, args.max_tokens),
        stream: args.stream,
        mode: match args.mode {
            ModeArg::Open => Mode::Open { rate: args.rate },
            ModeArg::Closed => Mode::Closed,
        },
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n);
    }
    let runtime = runtime.enable_all().build().map_err(|e| e.to_string())?;
    let progress = Arc::new(AtomicU64::new(0));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new((args.warmup + args.duration).ceil() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len}s {msg}",
            )
            .map_err(|e| e.to_string())?,
        );
        bar
    };
    let recorder = runtime.block_on(async {
        let ticker = {
            let bar = bar.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    bar.set_position(started.elapsed().as_secs());
                    bar.set_message(format!("{} requests", progress.load(Ordering::Relaxed)));
                }
            })
        };
        let recorder = load::run(plan.clone(), progress.clone()).await;
        ticker.abort();
        recorder
    })?;
    bar.finish_and_clear();
    let doc = report::json(&plan, &recorder, &args.url);
    println!("{}", report::summary(&doc));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let mut series = vec![("latency", &recorder.latency)];
        if args.stream {
            series.push(("time to first token", &recorder.first_token));
        }
        report::plot_svg(path, &format!("{} — {}", args.url, args.model), &series)?;
    }
    Ok(())
}
