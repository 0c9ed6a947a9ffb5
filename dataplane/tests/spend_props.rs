//! The counter invariant, property-based: for any interleaving of reservations, settles (some
//! lost before reaching the store, some applied but unacknowledged), retries and expiring
//! holds, the final counter lies between the sum of acknowledged charges and the sum of
//! attempted ones; no reservation is granted past the limit; and outstanding holds equal the
//! live reservations. Run on the embedded backend and on a real `redis-server`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use switchyard_dataplane::spend::{
    Admission, Counter, Embedded, RedisSpend, ReserveRequest, SettleRequest, Settlement,
    SpendBackend,
};
use switchyard_policy::Money;

/// Amounts are `n × SCALE + n` picodollars: far beyond 2^53 (where Lua's doubles stop being
/// exact) and `i64::MAX` (where `HINCRBY` stops), with non-zero low digits, so the scripts'
/// exact arithmetic is what is tested. The limit is `Money::MAX`, one billion USD.
const SCALE: u128 = 1_000_000_000_000_000_000;
const LIMIT: u128 = 1_000 * SCALE;
const HOLD_MS: u64 = 50;

fn scaled(n: u64) -> u128 {
    u128::from(n) * SCALE + u128::from(n)
}

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        generation: u8,
        amount: u64,
    },
    /// `delivery`: 0 applied and acknowledged, 1 lost before the store, 2 applied but the
    /// answer lost.
    Settle {
        generation: u8,
        charge: u64,
        delivery: u8,
    },
    Advance {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, 1u64..400).prop_map(|(generation, amount)| Op::Reserve { generation, amount }),
        (0u8..12, 0u64..400, 0u8..3).prop_map(|(generation, charge, delivery)| Op::Settle {
            generation,
            charge,
            delivery
        }),
        (1i64..40).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// Runs `ops` against the counter `key` (fresh for each case).
async fn check(backend: &SpendBackend, ops: &[Op], run: u64) {
    let key = format!("{{org:p}}:sp:key:run{run}:l");
    let key = key.as_str();
    let gen_id = |g: u8| format!("r{run}-g{g}");
    let mut now = 1_000_i64;
    // Generation → (reserved amount, hold expiry), while granted and not known settled.
    let mut holds: HashMap<u8, (u128, i64)> = HashMap::new();
    // What each granted generation reserved, kept after its hold expires (a late settle names
    // it, as the dataplane's hold does).
    let mut reserved_by: HashMap<u8, u128> = HashMap::new();
    let mut settled: HashMap<u8, bool> = HashMap::new();
    let (mut acknowledged, mut attempted) = (0u128, 0u128);
    let read = |now: i64| async move {
        let (spent, held) = backend.read(key, now).await.unwrap();
        (spent.pico(), held.pico())
    };
    for op in ops {
        match *op {
            Op::Reserve { generation, amount } => {
                let amount = scaled(amount);
                if settled.contains_key(&generation) || reserved_by.contains_key(&generation) {
                    continue; // a generation reserves once
                }
                let request = ReserveRequest {
                    generation_id: gen_id(generation),
                    rebuilt_key: None,
                    now_ms: now,
                    hold_ms: HOLD_MS,
                    counters: vec![Counter {
                        key: key.into(),
                        limit: Money::from_pico(LIMIT),
                        amount: Money::from_pico(amount),
                        expire_at_ms: None,
                    }],
                };
                let (spent, held) = read(now).await;
                match backend.reserve(&request).await.unwrap() {
                    Admission::Granted => {
                        assert!(spent + held + amount <= LIMIT, "granted past the limit");
                        holds.insert(generation, (amount, now + HOLD_MS as i64));
                        reserved_by.insert(generation, amount);
                    }
                    Admission::Refused { .. } => {
                        assert!(spent + held + amount > LIMIT, "refused within the limit");
                    }
                }
            }
            Op::Settle {
                generation,
                charge,
                delivery,
            } => {
                let charge = scaled(charge);
                if settled.get(&generation) == Some(&true) {
                    continue;
                }
                let reserved = reserved_by.get(&generation).copied().unwrap_or(0);
                let request = SettleRequest {
                    generation_id: gen_id(generation),
                    settled_key: format!("{{org:p}}:settled:{}", gen_id(generation)),
                    now_ms: now,
                    counters: vec![Settlement {
                        key: key.into(),
                        reserved: Money::from_pico(reserved),
                        charge: Money::from_pico(charge),
                        expire_at_ms: None,
                    }],
                };
                // A retried settle carries the same charge as the first attempt.
                attempted += charge;
                match delivery {
                    0 => {
                        if backend.settle(&request).await.unwrap() {
                            acknowledged += charge;
                        } else {
                            attempted -= charge; // a duplicate: nothing new attempted
                        }
                        settled.insert(generation, true);
                        holds.remove(&generation);
                    }
                    1 => {
                        settled.insert(generation, false);
                    }
                    _ => {
                        backend.settle(&request).await.unwrap();
                        settled.insert(generation, true);
                        holds.remove(&generation);
                    }
                }
            }
            Op::Advance { ms } => now += ms,
        }
        holds.retain(|_, (_, until)| *until > now);
        let (spent, held) = read(now).await;
        assert!(
            acknowledged <= spent && spent <= attempted,
            "{acknowledged} ≤ {spent} ≤ {attempted}"
        );
        let live: u128 = holds.values().map(|h| h.0).sum();
        assert_eq!(held, live, "outstanding holds equal the live reservations");
    }
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> (Redis, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is required");
    let redis = Redis(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (redis, format!("redis://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn counter_invariant_embedded(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let backend = SpendBackend::Embedded(Arc::new(Embedded::default()));
        rt.block_on(check(&backend, &ops, 0));
    }
}

#[test]
fn counter_invariant_redis() {
    let (_redis, url) = redis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(async {
        SpendBackend::Redis(Arc::new(
            RedisSpend::connect(&[url], Duration::from_secs(2))
                .await
                .unwrap(),
        ))
    });
    let run = std::sync::atomic::AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(32));
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            // Each case on its own counter and generation ids.
            let run = run.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rt.block_on(check(&backend, &ops, run));
            Ok(())
        })
        .unwrap();
}
