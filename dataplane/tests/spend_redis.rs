//! The spend scripts against a real `redis-server` started on a free port (never the shared
//! 6379), beside the embedded backend with the same requests: the same answers, no overshoot,
//! idempotent settles, expiring reservations, and prompt recovery when Redis comes back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use switchyard_dataplane::spend::{
    Admission, Counter, Embedded, FailurePolicy, Hold, RedisSpend, ReserveRequest, SettleRequest,
    Settlement, Spend, SpendBackend, SpendError, Verdict,
};
use switchyard_policy::{Money, Window};

fn m(pico: u128) -> Money {
    Money::from_pico(pico)
}

/// A counter's (spent, held) in picodollars.
async fn read(backend: &SpendBackend, key: &str, now_ms: i64) -> (u128, u128) {
    let (spent, held) = backend.read(key, now_ms).await.unwrap();
    (spent.pico(), held.pico())
}

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
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
            .expect("redis-server is required (apt-get install redis-server)");
        // Owned from here on, so a failed start still kills and reaps it (Drop).
        let redis = Redis { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const KEY: &str = "{org:o1}:sp:key:k1:l";
const CREDITS: &str = "{org:o1}:sp:credits:o1:l";

fn reserve_request(generation: &str, now_ms: i64, amount: u128, limit: u128) -> ReserveRequest {
    ReserveRequest {
        generation_id: generation.into(),
        rebuilt_key: None,
        now_ms,
        hold_ms: 60_000,
        counters: vec![
            Counter {
                key: KEY.into(),
                limit: m(limit),
                amount: m(amount),
                expire_at_ms: None,
            },
            Counter {
                key: CREDITS.into(),
                limit: Money::MAX,
                amount: m(amount),
                expire_at_ms: None,
            },
        ],
    }
}

fn settle_request(generation: &str, now_ms: i64, reserved: u128, charge: u128) -> SettleRequest {
    SettleRequest {
        generation_id: generation.into(),
        settled_key: format!("{{org:o1}}:settled:{generation}"),
        now_ms,
        counters: [KEY, CREDITS]
            .into_iter()
            .map(|key| Settlement {
                key: key.into(),
                reserved: m(reserved),
                charge: m(charge),
                expire_at_ms: None,
            })
            .collect(),
    }
}

/// 200 concurrent reservations against a limit that fits `k`: exactly `k` granted, and once
/// settled the counters equal the sum of the charges.
async fn concurrency(backend: SpendBackend) {
    const AMOUNT: u128 = 1_000_000_000; // 0.001 USD worst case
    const CHARGE: u128 = 400_000_000; // actual cost
    let k = 37u128;
    let limit = AMOUNT * k + AMOUNT / 2;
    let backend = Arc::new(backend);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let generation = format!("gen-{i}");
                let admission = backend
                    .reserve(&reserve_request(&generation, 1_000, AMOUNT, limit))
                    .await
                    .unwrap();
                (generation, admission)
            })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        let (generation, admission) = t.await.unwrap();
        if admission == Admission::Granted {
            granted.push(generation);
        }
    }
    assert_eq!(
        granted.len() as u128,
        k,
        "exactly the reservations that fit"
    );
    let (_, held) = read(&backend, KEY, 1_000).await;
    assert_eq!(held, AMOUNT * k);
    for g in &granted {
        assert!(
            backend
                .settle(&settle_request(g, 2_000, AMOUNT, CHARGE))
                .await
                .unwrap()
        );
        // Settling twice never double-charges.
        assert!(
            !backend
                .settle(&settle_request(g, 2_001, AMOUNT, CHARGE))
                .await
                .unwrap()
        );
    }
    assert_eq!(read(&backend, KEY, 3_000).await, (CHARGE * k, 0));
    assert_eq!(read(&backend, CREDITS, 3_000).await, (CHARGE * k, 0));
    assert!(CHARGE * k <= limit);
}

#[tokio::test]
async fn concurrent_reservations_never_overshoot_on_redis() {
    let redis = Redis::start(free_port());
    let backend = RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
        .await
        .unwrap();
    concurrency(SpendBackend::Redis(Arc::new(backend))).await;
}

#[tokio::test]
async fn concurrent_reservations_never_overshoot_embedded() {
    concurrency(SpendBackend::Embedded(Arc::new(Embedded::default()))).await;
}

#[tokio::test]
async fn both_backends_answer_alike() {
    let redis = Redis::start(free_port());
    let remote = SpendBackend::Redis(Arc::new(
        RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
            .await
            .unwrap(),
    ));
    let local = SpendBackend::Embedded(Arc::new(Embedded::default()));
    // A scripted sequence: reservations that fit and do not, settles, an expired hold.
    for backend in [&remote, &local] {
        let mut answers = Vec::new();
        answers.push(
            backend
                .reserve(&reserve_request("a", 0, 60, 100))
                .await
                .unwrap(),
        );
        answers.push(
            backend
                .reserve(&reserve_request("b", 0, 60, 100))
                .await
                .unwrap(),
        );
        answers.push(Admission::Granted);
        backend
            .settle(&settle_request("a", 10, 60, 25))
            .await
            .unwrap();
        answers.push(
            backend
                .reserve(&reserve_request("c", 20, 75, 100))
                .await
                .unwrap(),
        );
        // "c" never settles: after its hold time the budget frees up again.
        answers.push(
            backend
                .reserve(&reserve_request("d", 60_021, 75, 100))
                .await
                .unwrap(),
        );
        assert_eq!(
            answers,
            vec![
                Admission::Granted,
                Admission::Refused {
                    index: 0,
                    spent: Money::ZERO,
                    held: m(60)
                },
                Admission::Granted,
                Admission::Granted,
                Admission::Granted,
            ]
        );
        assert_eq!(read(backend, KEY, 60_022).await, (25, 75));
    }
}

#[tokio::test]
async fn redis_down_is_a_prompt_error_and_recovery_is_immediate() {
    let port = free_port();
    let redis = Redis::start(port);
    let backend = RedisSpend::connect(&[redis.url()], Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        backend
            .reserve(&reserve_request("a", 0, 1, 100))
            .await
            .unwrap(),
        Admission::Granted
    );
    drop(redis);
    let err = backend
        .reserve(&reserve_request("b", 0, 1, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SpendError::Unavailable(_) | SpendError::Interrupted(_) | SpendError::Timeout(_)
        ),
        "{err}"
    );
    let _redis = Redis::start(port);
    // The connection manager reconnects by itself; the first calls after a restart may still
    // see the broken connection.
    let mut recovered = false;
    for _ in 0..50 {
        if backend
            .reserve(&reserve_request("c", 0, 1, 100))
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "service recovers once Redis is back");
}

/// Where the control plane marks rebuilt counters, a Redis that lost the mark (its data) grants
/// nothing and reserves nothing until the mark is back: empty counters would let a limit start
/// over.
#[tokio::test]
async fn without_the_rebuilt_mark_nothing_is_reserved() {
    let redis = Redis::start(free_port());
    let backend = SpendBackend::Redis(Arc::new(
        RedisSpend::connect(&[redis.url()], Duration::from_secs(2))
            .await
            .unwrap(),
    ));
    let mark = switchyard_policy::counters::rebuilt_key("o1");
    let marked = |generation: &str| ReserveRequest {
        rebuilt_key: Some(mark.clone()),
        ..reserve_request(generation, 1_000, 60, 100)
    };
    let err = backend.reserve(&marked("g1")).await.unwrap_err();
    assert!(matches!(err, SpendError::NotRebuilt), "{err}");
    assert!(!err.may_have_run());
    assert_eq!(read(&backend, KEY, 1_000).await, (0, 0));
    let set = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SET", &mark, "1"])
        .output()
        .unwrap();
    assert!(set.status.success());
    assert_eq!(
        backend.reserve(&marked("g2")).await.unwrap(),
        Admission::Granted
    );
    assert_eq!(read(&backend, KEY, 1_000).await, (0, 60));
}

/// A window rolling over, with the clock injected: a daily limit exhausted at 23:59:59 UTC is
/// fresh at 00:00:00, on both backends. The injected clock is years from the real one on purpose:
/// Redis is given expiries as spans from the injected time, never as absolute times it would
/// compare with its own clock.
#[tokio::test]
async fn a_daily_window_rolls_over_at_utc_midnight() {
    let redis = Redis::start(free_port());
    let remote = SpendBackend::Redis(Arc::new(
        RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
            .await
            .unwrap(),
    ));
    let local = SpendBackend::Embedded(Arc::new(Embedded::default()));
    for (before, label) in [
        (1_795_651_199_000, "2026-11-25T23:59:59Z"),
        (1_164_585_599_000, "2006-11-26T23:59:59Z, long past"),
        (4_320_259_199_000, "2106-11-25T23:59:59Z, far ahead"),
    ] {
        let after = before + 1_000; // 00:00:00 the next day
        for backend in [&remote, &local] {
            let request = |generation: &str, now: i64| {
                let span = Window::Daily.span(now);
                ReserveRequest {
                    generation_id: format!("{before}-{generation}"),
                    rebuilt_key: None,
                    now_ms: now,
                    hold_ms: 60_000,
                    counters: vec![Counter {
                        key: format!("{{org:o1}}:sp:key:k1:{}", span.id),
                        limit: m(100),
                        amount: m(80),
                        expire_at_ms: span.expire_at_ms(),
                    }],
                }
            };
            assert_eq!(
                backend.reserve(&request("a", before)).await.unwrap(),
                Admission::Granted,
                "{label}"
            );
            assert!(
                matches!(
                    backend.reserve(&request("b", before)).await.unwrap(),
                    Admission::Refused { .. }
                ),
                "{label}: the day's limit holds"
            );
            assert_eq!(
                backend.reserve(&request("c", after)).await.unwrap(),
                Admission::Granted,
                "{label}: a new day starts from zero"
            );
        }
        // The counter lives for the rest of its day plus a day of grace, measured on the
        // injected clock: one second and a day from 23:59:59.
        let key = format!("{{org:o1}}:sp:key:k1:{}", Window::Daily.span(before).id);
        let client = redis::Client::open(redis.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        let expected = 86_401_000;
        assert!(
            ttl > expected - 10_000 && ttl <= expected,
            "{label}: PTTL {ttl}, expected about {expected}"
        );
    }
}

/// Amounts past where Lua's doubles are exact (2^53 picodollars, about 9,007 USD) and past
/// `HINCRBY`'s `i64` (about 9.2 million USD) are added and compared exactly.
#[tokio::test]
async fn large_amounts_are_exact_on_both_backends() {
    let redis = Redis::start(free_port());
    let remote = SpendBackend::Redis(Arc::new(
        RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
            .await
            .unwrap(),
    ));
    let local = SpendBackend::Embedded(Arc::new(Embedded::default()));
    let limit = Money::MAX.pico(); // one billion USD
    let amount = limit / 2 + 1; // one picodollar more than half
    for backend in [&remote, &local] {
        assert_eq!(
            backend
                .reserve(&reserve_request("x", 0, amount, limit))
                .await
                .unwrap(),
            Admission::Granted
        );
        // Exactly one picodollar too many: a double would round this away.
        assert!(matches!(
            backend
                .reserve(&reserve_request("y", 0, amount - 1, limit))
                .await
                .unwrap(),
            Admission::Refused { .. }
        ));
        assert_eq!(
            backend
                .reserve(&reserve_request("z", 0, amount - 2, limit))
                .await
                .unwrap(),
            Admission::Granted
        );
        assert_eq!(read(backend, KEY, 1).await, (0, limit));
        backend
            .settle(&settle_request("x", 1, amount, amount - 7))
            .await
            .unwrap();
        assert_eq!(read(backend, KEY, 2).await, (amount - 7, amount - 2));
    }
}

/// Sends `signal` (STOP, CONT) to the Redis process: a pause, as a long fork or a stalled host.
fn signal(redis: &Redis, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), redis.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A reserve that times out while Redis is paused still runs when Redis resumes. Failing closed,
/// the request was refused, so whatever the script held must be released; otherwise a few 503s
/// during a pause lock the key out for the whole hold period (15 minutes by default).
#[tokio::test]
async fn a_reserve_that_timed_out_while_failing_closed_holds_nothing_afterwards() {
    let redis = Redis::start(free_port());
    let backend = RedisSpend::connect(&[redis.url()], Duration::from_millis(200))
        .await
        .unwrap();
    let spend = Spend {
        backend: SpendBackend::Redis(Arc::new(backend)),
        policy: FailurePolicy::FailClosed,
        metrics: Default::default(),
        hold_ms: 900_000,
        quotas: Default::default(),
    };
    let now = 1_000;
    // A first request loads the scripts into Redis, as any serving dataplane has.
    let warm = reserve_request("g0", now, 1, 100);
    assert_eq!(
        spend.backend.reserve(&warm).await.unwrap(),
        Admission::Granted
    );
    assert!(
        spend
            .backend
            .settle(&settle_request("g0", now, 1, 0))
            .await
            .unwrap()
    );
    let hold = Hold {
        generation_id: "g1".into(),
        settled_key: "{org:o1}:settled:g1".into(),
        rebuilt_key: None,
        counters: reserve_request("g1", now, 60, 100).counters,
        include_byok: vec![true, true],
        worst: m(60),
    };
    signal(&redis, "STOP");
    let verdict = spend.admit(hold, now).await;
    signal(&redis, "CONT");
    assert!(matches!(verdict, Verdict::Unavailable), "{verdict:?}");
    // The queued reserve has run by now or will: wait for the counters to settle down.
    let mut last = (0, 0);
    for _ in 0..100 {
        last = read(&spend.backend, KEY, now).await;
        if last == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, (0, 0), "(spent, held) after the refused request");
    // And the key's whole limit is there for the next request.
    assert_eq!(
        spend
            .backend
            .reserve(&reserve_request("g2", now, 100, 100))
            .await
            .unwrap(),
        Admission::Granted
    );
}
