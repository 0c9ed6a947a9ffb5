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
        leases: None,
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
        leased: Vec::new(),
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

/// Budget leases over a real Redis: several dataplanes (each a `Spend` with its own leases and
/// background task) on one counter.
mod leases {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use switchyard_dataplane::spend::leases::{LeaseCall, LeaseOp, LeaseReply, Release};
    use switchyard_dataplane::spend::{LeaseConfig, Leases, SpendMetrics};
    use switchyard_dataplane::usage::UsageSink;
    use switchyard_proto::usage::v1::UsageEvent;

    use super::*;

    /// The injected clock every plane and its lease task read.
    static CLOCK: AtomicI64 = AtomicI64::new(1_000_000);

    fn clock() -> i64 {
        CLOCK.load(Ordering::SeqCst)
    }

    /// A request's worst case, picodollars.
    const AMOUNT: u128 = 1_000_000;

    /// How long Redis keeps an unrenewed lease in these tests.
    const HOLD: Duration = Duration::from_secs(20);

    struct Plane {
        spend: Arc<Spend>,
        usage: UsageSink,
        /// Usage events as the control plane would receive them: the ledger.
        ledger: Arc<Mutex<Vec<UsageEvent>>>,
        stop: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn plane(redis: &Redis, name: &str) -> Plane {
        let backend = Arc::new(
            RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
                .await
                .unwrap(),
        );
        let metrics = Arc::new(SpendMetrics::default());
        let config = LeaseConfig {
            tick: Duration::from_millis(10),
            hold: HOLD,
            ..LeaseConfig::default()
        };
        let leases = Arc::new(Leases::new(
            backend.clone(),
            name,
            config,
            metrics.clone(),
            clock(),
        ));
        let (usage, mut rx) = UsageSink::new(1 << 20, name);
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let sink = ledger.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                sink.lock().unwrap().push(event);
            }
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(leases.clone().run(
            usage.clone(),
            clock,
            Duration::from_millis(600),
            stopped,
        ));
        Plane {
            spend: Arc::new(Spend {
                backend: SpendBackend::Redis(backend),
                policy: FailurePolicy::FailClosed,
                metrics,
                hold_ms: 60_000,
                quotas: Default::default(),
                leases: Some(leases),
            }),
            usage,
            ledger,
            stop,
            task,
        }
    }

    fn hold(generation: &str, limit: u128) -> Hold {
        Hold {
            generation_id: generation.into(),
            settled_key: format!("{{org:o1}}:settled:{generation}"),
            rebuilt_key: None,
            counters: reserve_request(generation, clock(), AMOUNT, limit).counters,
            include_byok: vec![true, true],
            worst: m(AMOUNT),
            leased: Vec::new(),
        }
    }

    fn event(generation: &str, cost: u128) -> UsageEvent {
        UsageEvent {
            generation_id: generation.into(),
            cost_usd: m(cost).to_string(),
            ..Default::default()
        }
    }

    fn ledger_sum(planes: &[&Plane]) -> u128 {
        planes
            .iter()
            .flat_map(|p| p.ledger.lock().unwrap().clone())
            .map(|e| Money::parse_recorded(&e.cost_usd).unwrap().pico())
            .sum()
    }

    /// Admits and settles with `workers` concurrent clients until each is refused once;
    /// returns what was charged.
    async fn drive(plane: &Plane, name: &str, workers: usize, limit: u128) -> (u128, u64) {
        let charged = Arc::new(AtomicU64::new(0));
        let granted = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let spend = plane.spend.clone();
                let usage = plane.usage.clone();
                let charged = charged.clone();
                let granted = granted.clone();
                let name = name.to_owned();
                tokio::spawn(async move {
                    for i in 0u128.. {
                        let generation = format!("{name}-{w}-{i}");
                        match spend.admit(hold(&generation, limit), clock()).await {
                            Verdict::Admitted(h) => {
                                tokio::task::yield_now().await;
                                // Deterministic costs between 1 and the worst case.
                                let cost = (i * 7_919 + w as u128 * 104_729) % AMOUNT + 1;
                                charged.fetch_add(u64::try_from(cost).unwrap(), Ordering::SeqCst);
                                granted.fetch_add(1, Ordering::SeqCst);
                                spend.settle(
                                    h,
                                    m(cost),
                                    false,
                                    clock(),
                                    Some(event(&generation, cost)),
                                    &usage,
                                );
                            }
                            Verdict::Refused { .. } => return,
                            Verdict::Unavailable => panic!("Redis is up"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (
            u128::from(charged.load(Ordering::SeqCst)),
            granted.load(Ordering::SeqCst),
        )
    }

    async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
        for _ in 0..500 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    /// Three dataplanes spend one key's limit to exhaustion, concurrently: most admissions never
    /// touch Redis, nothing overshoots, and once settled the counter, the charges and the ledger
    /// agree to the picodollar; idle leases go back, so nothing stays held. Prints the budget
    /// left unspent when every client had been refused (the stranded budget).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_dataplanes_on_leases_never_overshoot_and_agree_with_the_ledger() {
        let redis = Redis::start(free_port());
        let limit = AMOUNT * 2_000;
        let planes = [
            plane(&redis, "dp-a").await,
            plane(&redis, "dp-b").await,
            plane(&redis, "dp-c").await,
        ];
        let (a, b, c) = tokio::join!(
            drive(&planes[0], "a", 64, limit),
            drive(&planes[1], "b", 64, limit),
            drive(&planes[2], "c", 16, limit),
        );
        let charged = a.0 + b.0 + c.0;
        let granted = a.1 + b.1 + c.1;
        let refs: Vec<&Plane> = planes.iter().collect();
        eventually("every usage event left", async || {
            planes
                .iter()
                .map(|p| p.ledger.lock().unwrap().len() as u64)
                .sum::<u64>()
                == granted
        })
        .await;
        let backend = &planes[0].spend.backend;
        eventually("idle leases went back", async || {
            read(backend, KEY, clock()).await.1 == 0 && read(backend, CREDITS, clock()).await.1 == 0
        })
        .await;
        let (spent, _) = read(backend, KEY, clock()).await;
        assert_eq!(spent, charged, "the counter holds every charge once");
        assert_eq!(
            ledger_sum(&refs),
            charged,
            "the ledger holds every charge once"
        );
        assert_eq!(read(backend, CREDITS, clock()).await.0, charged);
        assert!(spent <= limit, "overshoot: {spent} > {limit}");
        let (local, remote): (u64, u64) = planes.iter().fold((0, 0), |(l, r), p| {
            (
                l + p.spend.metrics.lease_local.load(Ordering::Relaxed),
                r + p.spend.metrics.lease_remote.load(Ordering::Relaxed),
            )
        });
        assert!(
            local > remote,
            "most admissions are local: {local} local, {remote} via Redis"
        );
        let stranded = limit - spent;
        println!(
            "granted {granted} ({local} from escrow, {remote} via Redis); spent {spent} of \
             {limit}; unspent when all were refused: {stranded} pico = {:.2} worst cases",
            stranded as f64 / AMOUNT as f64
        );
        // Every client stops at its first refusal, which comes once less than a worst case is
        // free; escrow other dataplanes still held then is the stranded part.
        assert!(stranded < AMOUNT * 16, "stranded {stranded}");
        for p in planes {
            let _ = p.stop.send(true);
            p.task.await.unwrap();
        }
    }

    /// A dataplane killed while holding a lease (its task gone, nothing flushed, its clients cut)
    /// causes no overshoot: its lease counts as held for the hold period, the others then spend
    /// the rest, and the ledger stays within the limit and never above the counter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dataplane_killed_while_holding_a_lease_causes_no_overshoot() {
        let redis = Redis::start(free_port());
        let limit = AMOUNT * 400;
        let doomed = plane(&redis, "dp-doomed").await;
        let survivor = plane(&redis, "dp-survivor").await;
        // The doomed one takes a lease and spends from it; some requests stay in flight.
        let mut in_flight = Vec::new();
        for i in 0..40 {
            let generation = format!("doomed-{i}");
            let Verdict::Admitted(h) = doomed.spend.admit(hold(&generation, limit), clock()).await
            else {
                panic!("admitted")
            };
            if i % 4 == 0 {
                in_flight.push(h);
            } else {
                doomed.spend.settle(
                    h,
                    m(AMOUNT / 2),
                    false,
                    clock(),
                    Some(event(&generation, AMOUNT / 2)),
                    &doomed.usage,
                );
            }
        }
        // Killed: the task stops without a last flush, the requests in flight never settle.
        doomed.task.abort();
        drop(in_flight);
        let (_, held) = read(&survivor.spend.backend, KEY, clock()).await;
        assert!(held > 0, "the doomed lease still counts");
        let before = drive(&survivor, "s", 8, limit).await;
        // The survivor, alive, has flushed its charges (its events are out) when the hold
        // period of the doomed lease is over: then it may spend what the doomed one held.
        eventually("the survivor's first events left", async || {
            survivor.ledger.lock().unwrap().len() as u64 == before.1
        })
        .await;
        CLOCK.fetch_add(HOLD.as_millis() as i64 + 1_000, Ordering::SeqCst);
        let after = drive(&survivor, "s2", 8, limit).await;
        let granted = before.1 + after.1;
        eventually("the survivor's events left", async || {
            survivor.ledger.lock().unwrap().len() as u64 == granted
        })
        .await;
        eventually("the survivor's leases went back", async || {
            read(&survivor.spend.backend, KEY, clock()).await.1 == 0
        })
        .await;
        let (spent, _) = read(&survivor.spend.backend, KEY, clock()).await;
        let ledger = ledger_sum(&[&doomed, &survivor]);
        assert!(ledger <= limit, "overshoot: ledger {ledger} > {limit}");
        assert!(spent <= limit, "overshoot: counter {spent} > {limit}");
        // What the doomed plane sent to the ledger had reached the counter (events leave after
        // their charges); what it had not flushed never reached the ledger either.
        assert!(spent >= ledger, "counter {spent} below ledger {ledger}");
        assert!(after.1 > 0, "the lapsed lease was spent by the survivor");
        let _ = survivor.stop.send(true);
        survivor.task.await.unwrap();
    }

    /// A dataplane stalled past its lease's local life before flushing (a pause, a partition
    /// from Redis) still has its reservations and charges counted: Redis keeps the lease for the
    /// hold period, so another dataplane cannot spend that budget meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn charges_not_yet_flushed_when_a_lease_lapses_here_still_count() {
        let redis = Redis::start(free_port());
        let limit = AMOUNT * 400;
        let stalled = plane(&redis, "dp-stalled").await;
        let other = plane(&redis, "dp-other").await;
        let first = drive(&stalled, "a", 8, limit).await;
        // At once, before its last charges are flushed: past ttl + grace, within the hold.
        CLOCK.fetch_add(16_000, Ordering::SeqCst);
        let second = drive(&other, "b", 8, limit).await;
        eventually("every event left", async || {
            stalled.ledger.lock().unwrap().len() as u64 == first.1
                && other.ledger.lock().unwrap().len() as u64 == second.1
        })
        .await;
        let ledger = ledger_sum(&[&stalled, &other]);
        assert_eq!(ledger, first.0 + second.0);
        assert!(ledger <= limit, "overshoot: ledger {ledger} > {limit}");
        for p in [stalled, other] {
            let _ = p.stop.send(true);
            p.task.await.unwrap();
        }
        assert_eq!(
            read(
                &SpendBackend::Redis(Arc::new(
                    RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
                        .await
                        .unwrap()
                )),
                KEY,
                clock()
            )
            .await
            .0,
            ledger
        );
    }

    /// A lowered limit is not spent from escrow granted under the higher one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lowered_limit_is_not_spent_from_an_older_lease() {
        let redis = Redis::start(free_port());
        let p = plane(&redis, "dp").await;
        let Verdict::Admitted(h) = p.spend.admit(hold("g1", AMOUNT * 1_000), clock()).await else {
            panic!("admitted")
        };
        p.spend.settle(
            h,
            m(AMOUNT),
            false,
            clock(),
            Some(event("g1", AMOUNT)),
            &p.usage,
        );
        // The lease holds more than one request's worth; the limit drops to what is spent.
        let verdict = p.spend.admit(hold("g2", AMOUNT), clock()).await;
        assert!(matches!(verdict, Verdict::Refused { .. }), "{verdict:?}");
        let _ = p.stop.send(true);
        p.task.await.unwrap();
    }

    /// A flush whose answer was lost is sent again under the same number and applied once.
    #[tokio::test]
    async fn a_retried_flush_is_applied_once() {
        let redis = Redis::start(free_port());
        let backend = RedisSpend::connect(&[redis.url()], Duration::from_millis(500))
            .await
            .unwrap();
        let op = |charge, need, want| LeaseOp {
            key: KEY.into(),
            field: "dp:1".into(),
            limit: m(1_000),
            charge,
            release: Release::Amount(0),
            need,
            want,
            expire_at_ms: None,
        };
        let call = |op: LeaseOp, seq| LeaseCall {
            ops: vec![op],
            rebuilt_key: None,
            now_ms: 1_000,
            lease_ms: 15_000,
            seq,
            share: 4,
        };
        // Needs 100, wants 500: gets 100 plus a quarter of the remaining 900.
        let granted = backend.lease(&call(op(0, 100, 500), 0)).await.unwrap();
        assert_eq!(granted, LeaseReply::Granted(vec![(325, m(675))]));
        for _ in 0..2 {
            backend.lease(&call(op(40, 0, 0), 7)).await.unwrap();
        }
        assert_eq!(
            backend.read(KEY, 1_000).await.unwrap(),
            (m(40), m(285)),
            "charged once: the lease shrank by the charge"
        );
        // More than is free: refused, nothing granted.
        let refused = backend.lease(&call(op(0, 700, 700), 0)).await.unwrap();
        assert_eq!(
            refused,
            LeaseReply::Refused {
                index: 0,
                spent: m(40),
                held: m(285)
            }
        );
        // Ending the lease returns all of it.
        let end = LeaseOp {
            release: Release::All,
            ..op(0, 0, 0)
        };
        backend.lease(&call(end, 8)).await.unwrap();
        assert_eq!(
            backend.read(KEY, 1_000).await.unwrap(),
            (m(40), Money::ZERO)
        );
        // A lease that lapses is released by the next call on the counter.
        backend.lease(&call(op(0, 100, 100), 0)).await.unwrap();
        assert_eq!(backend.read(KEY, 1_000).await.unwrap().1, m(100));
        assert_eq!(backend.read(KEY, 16_000).await.unwrap().1, Money::ZERO);
    }
}
