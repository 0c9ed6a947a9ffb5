//! `switchyard-mock`: a scriptable OpenAI-compatible provider for tests, demos and benches.
//!
//! ```sh
//! switchyard-mock --listen 127.0.0.1:9000 --ttfb-ms 20 --inter-token-ms 5
//! curl -s localhost:9000/v1/chat/completions -d '{"model":"m","messages":[]}'
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use switchyard_loadtest::mock::{MockState, Script, bind, serve};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard-mock",
    version,
    about = "Scriptable mock OpenAI-compatible provider"
)]
struct Args {
    #[arg(long, env = "SWITCHYARD_MOCK_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Latency to the first byte, milliseconds.
    #[arg(long, default_value_t = 0)]
    ttfb_ms: u64,
    /// Delay between streamed tokens, milliseconds.
    #[arg(long, default_value_t = 0)]
    inter_token_ms: u64,
    /// Completion tokens per response.
    #[arg(long, default_value_t = 16)]
    completion_tokens: u64,
    /// Fraction of requests that fail with --error-status.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, default_value_t = 500)]
    error_status: u16,
    /// Answer every request with 503.
    #[arg(long)]
    outage: bool,
    /// Cut streams after this many tokens.
    #[arg(long)]
    cut_after_chunks: Option<u64>,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let script = Script {
        ttfb_ms: args.ttfb_ms,
        inter_token_ms: args.inter_token_ms,
        completion_tokens: args.completion_tokens,
        error_rate: args.error_rate,
        error_status: args.error_status,
        outage: args.outage,
        cut_after_chunks: args.cut_after_chunks,
        ..Script::default()
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchyard-mock: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = Arc::new(MockState::new(script));
    let result = runtime.block_on(async move {
        let listener = bind(args.listen).await?;
        eprintln!(
            "switchyard-mock listening on http://{}/v1",
            listener.local_addr()?
        );
        serve(listener, state).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-mock: {e}");
            ExitCode::FAILURE
        }
    }
}
