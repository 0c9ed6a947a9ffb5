//! Chaos over real processes: while clients send a steady load, a part fails (Redis paused,
//! killed, slowed or losing its data, a provider cutting its streams, the control plane
//! partitioned away, clients that stop reading, the dataplane told to stop mid-stream). After
//! each, the same accounting must hold:
//! - no overshoot: the key's spend in the usage ledger stays within its limit;
//! - no lost usage event: every generation a client was given is in the ledger, at the cost
//!   the client was told, and every other admitted request is there too;
//! - every admitted request settled exactly once: the Redis counter equals the ledger to the
//!   picodollar, with nothing left reserved, and no settle gave up;
//! - the gateway keeps serving what it can, and serves everything again once the fault ends.
//!
//! The same harness shows a graceful upgrade of the dataplane binary under 1,000 requests a
//! second failing none. Each test prints its figures (`chaos <fault>: …`); `--no-capture` shows
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::faults::{Fault, FaultProxy};
use support::{Redis, Stack, TempDir, bin, client, eventually, free_port, metric};

/// Requests a second the clients send under each fault, and for how long.
const RATE: u64 = 100;
const RUN: Duration = Duration::from_secs(7);
/// An upgrade's old process accepts for 5 s after SIGQUIT, then drains: the clients go on
/// well past that, to the new process alone.
const UPGRADE_RUN: Duration = Duration::from_secs(15);
/// The last stretch of the run, well after every fault is lifted: everything must be served.
const TAIL: Duration = Duration::from_secs(1);

/// A dataplane on Redis (through a fault-injecting link), a key with a limit the load runs
/// into, and the Redis server itself.
struct Chaos {
    stack: Stack,
    redis: Redis,
    redis_link: FaultProxy,
    secret: String,
    hash: String,
    limit_pico: u64,
    rate: u64,
}

/// How a chaos test's stack is set up.
struct Setup<'a> {
    /// Extra dataplane flags (a later flag does not override an earlier one: say
    /// `--spend-timeout-ms` or `--grace-period-secs` here to replace the default).
    dp_args: &'a [&'a str],
    /// Requests a second the clients send.
    rate: u64,
    /// The key's limit has room for this share of what the clients send.
    room: f64,
    /// The dataplane reaches Redis through the fault-injecting link, or (when the test needs
    /// speed more than faults: the link in this test process is not built for it) directly.
    through_link: bool,
    /// The control plane reconciles the counters with the ledger (and marks them rebuilt).
    reconcile: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            dp_args: &[],
            rate: RATE,
            // Three quarters: the limit is reached late in the run, after the fault.
            room: 0.75,
            through_link: true,
            reconcile: false,
        }
    }
}

impl Chaos {
    async fn start(redis: Redis, dp_args: &[&str]) -> Chaos {
        Self::start_with(
            redis,
            Setup {
                dp_args,
                ..Setup::default()
            },
        )
        .await
    }

    async fn start_with(redis: Redis, setup: Setup<'_>) -> Chaos {
        let Setup {
            dp_args,
            rate,
            room,
            through_link,
            reconcile,
        } = setup;
        let redis_link = FaultProxy::start(redis.port).await;
        let url = if through_link {
            redis_link.url("redis")
        } else {
            redis.url()
        };
        let mut args = vec!["--spend-backend", "redis", "--redis-url", url.as_str()];
        // Defaults a test may replace with its own.
        for (flag, value) in [("--spend-timeout-ms", "300"), ("--grace-period-secs", "3")] {
            if !dp_args.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(dp_args);
        let direct = redis.url();
        let cp_args = ["--redis-url", direct.as_str()];
        let stack = Stack::start_with_both(&args, if reconcile { &cp_args } else { &[] }).await;
        // The mock reports the most a provider could count, so every charge reaches what was
        // reserved: any under-reservation would show as overshoot.
        stack
            .mock_a
            .script(json!({ "report_most": true, "ttfb_ms": 20 }))
            .await;
        let probe: Value = stack
            .chat(&stack.inference_key, body(false))
            .await
            .json()
            .await
            .unwrap();
        let cost = pico(probe["usage"]["cost"].as_f64().unwrap());
        let limit_pico = ((cost * rate * RUN.as_secs()) as f64 * room) as u64;
        let (secret, hash) = stack.limited_key(limit_pico as f64 / 1e12).await;
        Chaos {
            stack,
            redis,
            redis_link,
            secret,
            hash,
            limit_pico,
            rate,
        }
    }

    /// Sends the load for `RUN` while `fault` runs.
    async fn drive<F: std::future::Future<Output = ()>>(&self, stream: bool, fault: F) -> Tally {
        drive(
            self.url(),
            self.secret.clone(),
            stream,
            self.rate,
            RUN,
            fault,
        )
        .await
    }

    /// Where the clients send their requests.
    fn url(&self) -> String {
        format!("{}/chat/completions", self.stack.api())
    }

    async fn check(&self, name: &str, tally: &Tally) {
        let stack = &self.stack;
        let admitted = tally.seen.len() as u64 + tally.admitted_unseen;
        // Every admitted request reaches the ledger (delivery may lag behind a partition).
        let ledger = eventually(
            &format!("{name}: {admitted} generations in the ledger"),
            Duration::from_secs(60),
            || async {
                let rows = ledger(stack, &self.hash);
                (rows.len() as u64 == admitted).then_some(rows)
            },
        )
        .await;
        for (id, told) in &tally.seen {
            let recorded = ledger.get(id);
            assert!(
                recorded.is_some(),
                "{name}: generation {id} is not in the ledger"
            );
            if let Some(told) = told {
                assert_eq!(
                    recorded,
                    Some(told),
                    "{name}: {id} recorded at another cost"
                );
            }
        }
        let spent: u64 = ledger.values().sum();
        assert!(
            spent <= self.limit_pico,
            "{name}: overshoot: {spent} of a {} limit",
            self.limit_pico
        );
        // Settled exactly once: the counter equals the ledger, and nothing is still held.
        let counter = stack.key_counter(&self.hash).await;
        let redis = &self.redis;
        eventually(
            &format!("{name}: Redis agrees with the ledger"),
            Duration::from_secs(30),
            || {
                let (held, counted) = (redis.hget(&counter, "held"), redis.hget(&counter, "spent"));
                async move { (held.unwrap_or(0) == 0 && counted == Some(spent)).then_some(()) }
            },
        )
        .await;
        let port = stack.dp_port;
        for series in [
            "switchyard_spend_settles_total{outcome=\"failed\"}",
            "switchyard_usage_events_total{outcome=\"dropped\"}",
            "switchyard_usage_events_total{outcome=\"quarantined\"}",
        ] {
            assert_eq!(metric(port, series).await, 0, "{name}: {series}");
        }
        assert_eq!(
            metric(port, "switchyard_spend_charges_capped_total ").await,
            0,
            "{name}: a reservation fell short of a charge"
        );
        eprintln!(
            "chaos {name}: sent {}, statuses {:?} {:?}, transport errors {}, cut streams {}; \
             admitted {admitted}, in the ledger {} (costs match {}); spent {spent} of {} pico \
             ({:.0}%), Redis = ledger, 0 held; after the fault: {} answered, and in the last \
             second {} failed of {}",
            tally.sent,
            tally.statuses,
            tally.errors,
            tally.transport,
            tally.cut,
            ledger.len(),
            tally.seen.iter().filter(|(_, c)| c.is_some()).count(),
            self.limit_pico,
            spent as f64 * 100.0 / self.limit_pico as f64,
            tally.answered_after_fault,
            tally.tail_failed,
            tally.tail_sent,
        );
        assert!(
            tally.answered_after_fault > 0,
            "{name}: nothing answered once the fault was over"
        );
        assert_eq!(
            tally.tail_failed, 0,
            "{name}: still failing after the fault"
        );
    }
}

fn body(stream: bool) -> Value {
    json!({
        "model": "mock/fast",
        "max_tokens": 40,
        "stream": stream,
        "provider": { "only": ["mock-a"] },
        "messages": [{ "role": "user", "content": "Count to three." }]
    })
}

fn pico(usd: f64) -> u64 {
    (usd * 1e12).round() as u64
}

/// A decimal USD amount, exactly, in picodollars.
fn pico_text(usd: &str) -> u64 {
    let (whole, fraction) = usd.split_once('.').unwrap_or((usd, ""));
    let fraction = format!("{fraction:0<12}");
    whole.parse::<u64>().unwrap() * 1_000_000_000_000 + fraction[..12].parse::<u64>().unwrap()
}

/// The usage ledger's generations of key `hash`, with their costs (read from the control
/// plane's store, the source of truth).
fn ledger(stack: &Stack, hash: &str) -> BTreeMap<String, u64> {
    stack
        .store_sql(&format!(
            "SELECT id, coalesce(cost_usd, '0') FROM generations WHERE key_hash = '{hash}'"
        ))
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, cost)| (id.to_owned(), pico_text(cost)))
        .collect()
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    sent: u64,
    statuses: BTreeMap<u16, u64>,
    transport: u64,
    /// Streams that ended without `[DONE]`.
    cut: u64,
    /// Generation ids clients were given, with the cost they were told (none for a cut stream).
    seen: Vec<(String, Option<u64>)>,
    /// Requests admitted whose client got no generation id (an error after admission).
    admitted_unseen: u64,
    tail_sent: u64,
    tail_failed: u64,
    /// Requests sent after the fault was over that were answered as they should be: served, or
    /// refused by a limit the load has used up.
    answered_after_fault: u64,
    /// Error messages clients got, counted.
    errors: BTreeMap<String, u64>,
}

/// How one request ended.
enum Outcome {
    Served {
        id: String,
        cost: Option<u64>,
    },
    /// Refused before admission (a limit reached, spend counters unreachable).
    Refused(u16, String),
    /// Failed after admission: counted, and recorded, without an id for the client.
    Failed(u16, String),
    /// No answer: the connection was refused or broken (what happened, briefly).
    Transport(String),
}

/// Open loop: `rate` requests a second whatever the answers, for `RUN`, with `fault` running
/// alongside.
async fn drive<F: std::future::Future<Output = ()>>(
    url: String,
    secret: String,
    stream: bool,
    rate: u64,
    run: Duration,
    fault: F,
) -> Tally {
    let http = client();
    let start = Instant::now();
    // Its own task, so a fault that blocks (waiting on a process) never holds the clients up.
    let load = tokio::spawn(async move {
        let mut tasks = Vec::new();
        // A batch every 10 ms.
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut due = 0;
        while start.elapsed() < run {
            tick.tick().await;
            let sent_at = start.elapsed();
            let target = (sent_at.as_millis() as u64 + 10) * rate / 1000;
            while due < target {
                due += 1;
                let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
                tasks.push(tokio::spawn(async move {
                    (sent_at, one(&http, &url, &secret, stream).await)
                }));
            }
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    fault.await;
    let fault_over = start.elapsed();
    let mut tally = Tally::default();
    for (sent_at, outcome) in load.await.unwrap() {
        tally.sent += 1;
        let in_tail = sent_at >= run - TAIL;
        tally.tail_sent += u64::from(in_tail);
        let failed = match outcome {
            Outcome::Served { id, cost } => {
                *tally.statuses.entry(200).or_default() += 1;
                tally.cut += u64::from(stream && cost.is_none());
                tally.seen.push((id, cost));
                tally.answered_after_fault += u64::from(sent_at > fault_over);
                false
            }
            Outcome::Refused(status, message) => {
                *tally.statuses.entry(status).or_default() += 1;
                *tally.errors.entry(message).or_default() += 1;
                tally.answered_after_fault += u64::from(sent_at > fault_over && status < 500);
                status >= 500
            }
            Outcome::Failed(status, message) => {
                *tally.statuses.entry(status).or_default() += 1;
                *tally.errors.entry(message).or_default() += 1;
                tally.admitted_unseen += 1;
                true
            }
            Outcome::Transport(what) => {
                tally.transport += 1;
                *tally.errors.entry(what).or_default() += 1;
                true
            }
        };
        tally.tail_failed += u64::from(in_tail && failed);
    }
    tally
}

async fn one(http: &reqwest::Client, url: &str, secret: &str, stream: bool) -> Outcome {
    let response = match http
        .post(url)
        .bearer_auth(secret)
        .json(&body(stream))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Transport(transport_error(&e)),
    };
    let status = response.status().as_u16();
    if status != 200 {
        let v: Value = response.json().await.unwrap_or_default();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        // Refusals happen before admission: limits, and counters that cannot be reached.
        let message = format!("{status} {message}");
        return if matches!(status, 402 | 403) || message.contains("Spend limits") {
            Outcome::Refused(status, message)
        } else {
            Outcome::Failed(status, message)
        };
    }
    if !stream {
        let v = match response.json::<Value>().await {
            Ok(v) => v,
            Err(e) => return Outcome::Transport(transport_error(&e)),
        };
        return Outcome::Served {
            id: v["id"].as_str().unwrap().to_owned(),
            cost: Some(pico(v["usage"]["cost"].as_f64().unwrap())),
        };
    }
    // A stream: keep what arrived even if the connection breaks.
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    if !text.contains("\"id\":\"") {
        return Outcome::Failed(200, "a stream without a generation id".into());
    }
    let id = support::stream_id(&text);
    let done = text.contains("data: [DONE]");
    let cost = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["usage"]["cost"].as_f64())
        .filter(|_| done)
        .map(pico);
    Outcome::Served { id, cost }
}

/// A transport failure's kind and innermost cause, e.g. "connect: Connection refused".
fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{kind}: {cause}")
}

/// Redis stops answering for two seconds (SIGSTOP: connections open, nothing answered), as in
/// a long fork or a stalled host. Admission fails closed meanwhile; holds that may have been
/// taken are released, and settles wait for Redis and then apply once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused() {
    let chaos = Chaos::start(Redis::start(), &[]).await;
    let fault = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        chaos.redis.pause(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        chaos.redis.pause(false);
    };
    let tally = chaos.drive(false, fault).await;
    chaos.check("redis paused 2 s", &tally).await;
}

/// Redis killed (SIGKILL) and restarted a second later from its append-only file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed() {
    let mut chaos = Chaos::start(Redis::start_durable(), &[]).await;
    let (url, secret, rate) = (chaos.url(), chaos.secret.clone(), chaos.rate);
    let redis = &mut chaos.redis;
    let fault = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| redis.restart());
    };
    let tally = drive(url, secret, false, rate, RUN, fault).await;
    chaos.check("redis killed 1 s", &tally).await;
}

/// Redis loses its data after the key's limit was used up (killed and restarted empty, as a
/// Redis without persistence does): every counter is gone, but so is the control plane's mark
/// that they were rebuilt, so dataplanes refuse until it has raised them to the ledger again,
/// within a second or two, and then refuse by the limit as before. Nothing is admitted on an
/// empty counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loses_its_data() {
    let mut chaos = Chaos::start_with(
        Redis::start(),
        Setup {
            // Used up half way through the run.
            room: 0.5,
            reconcile: true,
            ..Setup::default()
        },
    )
    .await;
    let (url, secret, rate) = (chaos.url(), chaos.secret.clone(), chaos.rate);
    let redis = &mut chaos.redis;
    let fault = async {
        tokio::time::sleep(Duration::from_millis(4500)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::block_in_place(|| redis.restart());
    };
    let tally = drive(url, secret, false, rate, RUN, fault).await;
    chaos.check("redis loses its data", &tally).await;
}

/// The link to Redis slowed: first to 80 ms a round trip (inside the 300 ms answer timeout:
/// served, later), then to a second (beyond it: refused, holds released).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slowed() {
    let chaos = Chaos::start(Redis::start(), &[]).await;
    let fault = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        chaos.redis_link.set(Fault::Slow(Duration::from_millis(40)));
        tokio::time::sleep(Duration::from_secs(2)).await;
        chaos
            .redis_link
            .set(Fault::Slow(Duration::from_millis(500)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        chaos.redis_link.set(Fault::Pass);
    };
    let tally = chaos.drive(false, fault).await;
    chaos.check("redis slowed 80 ms then 1 s", &tally).await;
}

/// The provider resets its streams after three chunks for two seconds: those clients get what
/// was generated and the error, and are charged for that much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_resets_mid_stream() {
    let chaos = Chaos::start(Redis::start(), &[]).await;
    let mock = &chaos.stack.mock_a;
    let fault = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        mock.script(json!({ "report_most": true, "ttfb_ms": 20, "cut_after_chunks": 3 }))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        mock.script(json!({ "report_most": true, "ttfb_ms": 20 }))
            .await;
    };
    let tally = chaos.drive(true, fault).await;
    assert!(tally.cut > 0, "streams were cut");
    chaos.check("provider resets streams 2 s", &tally).await;
}

/// The control plane partitioned away for three seconds (nothing crosses; connections stay
/// open), then every connection reset: the dataplane serves from its snapshot, keeps usage
/// events until the link is back, and delivers them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_partitioned() {
    let mut chaos = Chaos::start(Redis::start(), &[]).await;
    let link = FaultProxy::start(chaos.stack.cp_grpc).await;
    chaos.stack.stop_dataplane();
    chaos.stack.dp_control_plane = Some(link.url("http"));
    chaos.stack.start_dataplane().await;
    chaos.stack.wait_ready().await;
    let fault = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        link.set(Fault::Partition);
        tokio::time::sleep(Duration::from_secs(3)).await;
        link.set(Fault::Reset);
        tokio::time::sleep(Duration::from_millis(200)).await;
        link.set(Fault::Pass);
    };
    let tally = chaos.drive(false, fault).await;
    chaos.check("control plane partitioned 3 s", &tally).await;
}

/// Clients that start a long stream and stop reading, alongside the load: each is cut off
/// after the write timeout and settled for what was generated, while the rest is served.
/// (They use another key: a stream that long does not fit the load key's limit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stop_reading() {
    let chaos = Chaos::start(Redis::start(), &["--client-write-timeout-secs", "1"]).await;
    // Long streams for the stalled clients (the load's requests ask for 40 tokens).
    chaos
        .stack
        .mock_a
        .script(json!({ "report_most": true, "ttfb_ms": 20, "completion_tokens": 100_000 }))
        .await;
    let stalled = async {
        let mut held = Vec::new();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            held.push(stalled_client(&chaos).await);
        }
        held
    };
    let (tally, held) = tokio::join!(chaos.drive(false, async {}), stalled);
    chaos.check("4 clients stop reading", &tally).await;
    for (id, _) in &held {
        let g = chaos.stack.generation(id).await;
        assert_eq!(g["data"]["cancelled"], true, "{g}");
    }
}

/// A stream far larger than socket buffers, on the stack's unlimited key, whose client stops
/// reading once it has the generation id.
async fn stalled_client(chaos: &Chaos) -> (String, tokio::net::TcpStream) {
    let mut body = body(true);
    body["max_tokens"] = json!(100_000);
    chaos
        .stack
        .stalled_stream(&chaos.stack.inference_key, &body)
        .await
}

/// SIGTERM to the dataplane while streams run: they finish (or are ended at the grace
/// period's end) and are settled and recorded; the dataplane is started again and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_streams() {
    let mut chaos = Chaos::start(Redis::start(), &[]).await;
    // Streams of about half a second, so many are in flight at the signal.
    chaos
        .stack
        .mock_a
        .script(json!({ "report_most": true, "ttfb_ms": 20, "inter_token_ms": 12 }))
        .await;
    let (url, secret, rate) = (chaos.url(), chaos.secret.clone(), chaos.rate);
    let stack = &mut chaos.stack;
    let fault = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stack.dataplane.as_ref().unwrap().signal("TERM");
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(stack.restart_dataplane_after_its_exit())
        });
        stack.wait_ready().await;
    };
    let tally = drive(url, secret, true, rate, RUN, fault).await;
    chaos.check("SIGTERM during streams", &tally).await;
}

/// The upgrade test's load: 1,000 requests a second on release builds (`make upgrade-test`);
/// debug builds (`make test`) on two cores serve about half that with every process of the
/// stack on them, so they send 250. `SWITCHYARD_UPGRADE_RATE` sets it.
fn upgrade_rate() -> u64 {
    std::env::var("SWITCHYARD_UPGRADE_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 250 } else { 1000 })
}

/// A graceful upgrade under load: a second dataplane binary started with `--upgrade` takes the
/// listening socket over from the running one (sent SIGQUIT), which finishes what it has and
/// exits. Not one request sent meanwhile fails (15,000 at 1,000 a second on release builds),
/// and the accounting holds across the two processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_upgrade_under_load_fails_no_request() {
    let rate = upgrade_rate();
    let mut chaos = Chaos::start_with(
        Redis::start(),
        Setup {
            // A timeout that a loaded debug build on two cores meets, and the default drain.
            dp_args: &["--spend-timeout-ms", "2000", "--grace-period-secs", "5"],
            rate,
            // Room for all of it (the room is counted in `RUN`s).
            room: 3.0,
            through_link: false,
            ..Setup::default()
        },
    )
    .await;
    let (url, secret) = (chaos.url(), chaos.secret.clone());
    let stack = &mut chaos.stack;
    let socket = stack
        .dir
        .0
        .join(format!("dataplane-{}/upgrade.sock", stack.dp_port));
    let fault = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let old = stack.dataplane.take().unwrap();
        stack.start_dataplane_with(&["--upgrade"]);
        // The new process is waiting for the listeners once its socket exists.
        eventually("the new dataplane waits", Duration::from_secs(10), || {
            let exists = socket.exists();
            async move { exists.then_some(()) }
        })
        .await;
        old.signal("QUIT");
        let mut old = old;
        let status = tokio::task::block_in_place(|| old.wait_exit(Duration::from_secs(30)));
        assert!(
            status.is_some_and(|s| s.success()),
            "the old dataplane exits cleanly: {status:?}"
        );
    };
    let tally = drive(url, secret, false, rate, UPGRADE_RUN, fault).await;
    let elapsed = UPGRADE_RUN.as_secs_f64();
    eprintln!(
        "upgrade: {} requests in {elapsed:.0} s ({:.0}/s): {:?} {:?}, {} transport errors",
        tally.sent,
        tally.sent as f64 / elapsed,
        tally.statuses,
        tally.errors,
        tally.transport
    );
    assert_eq!(tally.transport, 0, "a connection was refused or broken");
    assert_eq!(
        tally.statuses.get(&200).copied(),
        Some(tally.sent),
        "every request served: {:?}",
        tally.statuses
    );
    // Both processes served: the new one only part of it.
    let served_by_new = metric(
        chaos.stack.dp_port,
        "switchyard_usage_events_total{outcome=\"emitted\"}",
    )
    .await;
    eprintln!("upgrade: the new dataplane served {served_by_new} of them");
    assert!(
        served_by_new > 0 && served_by_new < tally.sent,
        "the new dataplane served {served_by_new} of {}",
        tally.sent
    );
    chaos
        .check(&format!("graceful upgrade at {rate}/s"), &tally)
        .await;
}

/// Two processes on embedded counters would each admit against their own: `--upgrade` is
/// refused with what to do instead.
#[test]
fn an_upgrade_on_embedded_counters_is_refused() {
    let dir = TempDir::new("upgrade-embedded");
    let out = std::process::Command::new(bin("switchyard-dataplane"))
        .args(["--upgrade", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&dir.0)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("--spend-backend redis"), "{said}");
}
