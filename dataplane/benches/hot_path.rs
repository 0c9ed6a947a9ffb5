//! Microbenchmarks of the hot-path stages, each beside a baseline in the same run:
//!
//! - key lookup in snapshots of 1k and 1M keys (p99 ratio, per-lookup latency);
//! - request parse + rewrite for 1 KiB and 1 MiB bodies, against a full `serde_json::Value`
//!   round trip (the naive way);
//! - usage extraction from a JSON body and from an SSE stream, against a DOM parse;
//! - snapshot decode + prepare for 1M keys: time, and bytes per key (counted by the allocator).
//!
//! `cargo bench -p switchyard-dataplane --bench hot_path`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The counting allocator below is the only unsafe code in the workspace: a GlobalAlloc impl
// must be unsafe, and it only forwards to mimalloc.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use prost::Message;
use switchyard_dataplane::snapshot::{Snapshot, no_resolver};
use switchyard_dataplane::stages::authenticate::{Purpose, authenticate};
use switchyard_dataplane::stages::forward::{Shaping, upstream_body};
use switchyard_dataplane::stages::meter::{Pricing, SseRelay, rewrite_completion};
use switchyard_dataplane::stages::request::ChatRequest;
use switchyard_dataplane::stages::route::Attempt;
use switchyard_policy::testing::SnapshotBuilder;
use switchyard_policy::{Money, Prices};

/// mimalloc, counting live bytes so that snapshot memory per key can be measured.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bulk_secret(i: usize) -> String {
    format!("bulk-{i}")
}

/// Per-lookup latency distribution: batches of 64 lookups of pseudo-random known keys, for
/// `run` time.
fn lookup_p99(snapshot: &Snapshot, n: usize, run: Duration) -> (f64, f64) {
    let headers: Vec<String> = (0..4096)
        .map(|i| format!("Bearer {}", bulk_secret((i * 7919) % n)))
        .collect();
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let deadline = Instant::now() + run;
    let mut j = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        for _ in 0..64 {
            let header = &headers[j % headers.len()];
            j += 1;
            let _ = black_box(authenticate(
                snapshot,
                Some(header.as_bytes()),
                Purpose::Inference,
                0,
            ));
        }
        h.record((t.elapsed().as_nanos() as u64 / 64).max(1))
            .unwrap();
    }
    (
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    )
}

fn chat_body(bytes: usize) -> Vec<u8> {
    serde_json::json!({
        "model": "mock/small",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "x".repeat(bytes)}],
        "temperature": 0.2, "max_tokens": 256, "stream": false
    })
    .to_string()
    .into_bytes()
}

fn parse_and_rewrite(c: &mut Criterion) {
    let snapshot = SnapshotBuilder::new().build();
    let model = &snapshot.models["mock/small"];
    let endpoint = &model.endpoints[0];
    let attempt = Attempt {
        model,
        endpoint,
        credential: None,
    };
    let mut group = c.benchmark_group("request parse + rewrite");
    for size in [1024usize, 1024 * 1024] {
        let body = chat_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("switchyard (raw members)", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let req = ChatRequest::parse(black_box(body)).unwrap();
                    black_box(upstream_body(&req, Shaping::default(), &attempt))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("baseline (serde_json::Value)", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut v: serde_json::Value = serde_json::from_slice(black_box(body)).unwrap();
                    v["model"] = serde_json::Value::String(endpoint.upstream_model.clone());
                    black_box(serde_json::to_vec(&v).unwrap())
                })
            },
        );
    }
    group.finish();
}

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":9,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

fn stream_body(tokens: usize) -> Vec<u8> {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for _ in 0..tokens {
        s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"},\"finish_reason\":null}]}\n\n");
    }
    s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":100,\"total_tokens\":103}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn usage_extraction(c: &mut Criterion) {
    let prices = Prices {
        prompt: Some(Money::from_pico(1000)),
        completion: Some(Money::from_pico(2000)),
        ..Prices::default()
    };
    let pricing = Pricing {
        ceiling: None,
        generation_id: "gen-1",
        prices: &prices,
        is_byok: false,
        model: "mock/small",
        provider_name: "Mock",
        created: 1,
    };
    let mut group = c.benchmark_group("usage extraction");
    group.bench_function("json: switchyard rewrite_completion", |b| {
        b.iter(|| {
            black_box(rewrite_completion(
                black_box(COMPLETION.as_bytes()),
                &pricing,
            ))
        })
    });
    group.bench_function("json: baseline serde_json::Value round trip", |b| {
        b.iter(|| {
            let mut v: serde_json::Value = serde_json::from_str(black_box(COMPLETION)).unwrap();
            v["id"] = "gen-1".into();
            v["usage"]["cost"] = 0.00001.into();
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    let stream = stream_body(100);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("sse 100 tokens: switchyard SseRelay (4 KiB reads)", |b| {
        b.iter(|| {
            let mut relay = SseRelay::new();
            let mut out = Vec::with_capacity(stream.len() + 1024);
            for chunk in stream.chunks(4096) {
                relay.push(chunk, &pricing, &mut out);
            }
            black_box(out)
        })
    });
    group.bench_function("sse 100 tokens: baseline Value per event", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(stream.len() + 1024);
            for event in stream
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"data: {"))
            {
                let mut v: serde_json::Value = serde_json::from_slice(&event[6..]).unwrap();
                v["id"] = "gen-1".into();
                out.extend_from_slice(b"data: ");
                serde_json::to_writer(&mut out, &v).unwrap();
                out.extend_from_slice(b"\n\n");
            }
            black_box(out)
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    parse_and_rewrite(&mut criterion);
    usage_extraction(&mut criterion);

    println!("\n== snapshot decode + prepare, 1M keys ==");
    let message = SnapshotBuilder::new().with_many_keys(1_000_000).message();
    let encoded = message.encode_to_vec();
    drop(message);
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let decoded = switchyard_proto::config::v1::Snapshot::decode(encoded.as_slice()).unwrap();
    let decode_time = t.elapsed();
    let t = Instant::now();
    let big = Snapshot::decode(decoded, &no_resolver).unwrap();
    let prepare_time = t.elapsed();
    let bytes_per_key = (LIVE.load(Ordering::Relaxed) - before) as f64 / 1_000_000.0;
    println!(
        "encoded {:.1} MiB; decode {:?}; prepare {:?}; live snapshot memory {:.0} bytes per key (target ≤ 256)",
        encoded.len() as f64 / 1048576.0,
        decode_time,
        prepare_time,
        bytes_per_key
    );

    println!("\n== key lookup (authenticate: SHA-256 + map lookup), per lookup ==");
    // Interleaved rounds (1k, 1M, 1k, 1M, …), median of each: the machine is noisy.
    let small = SnapshotBuilder::new().with_many_keys(1_000).build();
    let (mut small_p99s, mut big_p99s, mut small_p50s, mut big_p50s) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..7 {
        let (p50, p99) = lookup_p99(&small, 1_000, Duration::from_millis(300));
        small_p50s.push(p50);
        small_p99s.push(p99);
        let (p50, p99) = lookup_p99(&big, 1_000_000, Duration::from_millis(300));
        big_p50s.push(p50);
        big_p99s.push(p99);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (small_p99, big_p99) = (median(small_p99s), median(big_p99s));
    println!(
        "1k keys: p50 {:.0} ns, p99 {small_p99:.0} ns",
        median(small_p50s)
    );
    println!(
        "1M keys: p50 {:.0} ns, p99 {big_p99:.0} ns",
        median(big_p50s)
    );
    println!(
        "p99 ratio 1M ÷ 1k: {:.2} (target ≤ 1.1)",
        big_p99 / small_p99
    );
}
