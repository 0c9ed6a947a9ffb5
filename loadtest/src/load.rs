//! The load generator: open-loop (constant arrival rate) or closed-loop (N connections as fast
//! as they go), recording into HdrHistograms.
//!
//! Open loop follows wrk2: each connection owns a fixed schedule (`rate / connections` requests
//! per second, phase-shifted per connection) and latency is measured from the *scheduled* send
//! time. A request that has to wait because the server stalled counts the wait, so a stall
//! cannot hide its queue (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Constant arrival rate, requests per second, across all connections.
    Open { rate: f64 },
    /// Every connection sends its next request as soon as the last one completes.
    Closed,
}

/// One load run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    /// Request path, e.g. `/api/v1/chat/completions`.
    pub path: String,
    /// `Authorization` values, used round-robin; empty sends none.
    pub keys: Arc<Vec<HeaderValue>>,
    pub body: Bytes,
    pub stream: bool,
    pub mode: Mode,
    pub connections: usize,
    pub duration: Duration,
    /// Requests completing before this much time has passed are not recorded.
    pub warmup: Duration,
}

/// What one request produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub status: u16,
    /// Streams: time from send to the first content token.
    pub first_token: Option<Duration>,
    /// Streams: content tokens received.
    pub tokens: u64,
}

const MAX_MICROS: u64 = 3_600_000_000;

/// 1 µs to 1 h at 3 significant digits.
fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| format!("histogram: {e}"))
}

/// Everything recorded by one or more workers.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub latency: Histogram<u64>,
    pub first_token: Histogram<u64>,
    /// Streams: tokens per second after the first token, per request (×1000 for precision).
    pub tokens_per_s_milli: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    pub tokens: u64,
    pub sent: u64,
}

impl Recorder {
    pub fn new() -> Result<Self, String> {
        Ok(Recorder {
            latency: histogram()?,
            first_token: histogram()?,
            tokens_per_s_milli: histogram()?,
            statuses: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            tokens: 0,
            sent: 0,
        })
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

impl Recorder {
    pub fn record(&mut self, latency: Duration, result: &Result<Outcome, String>) {
        self.sent += 1;
        let _ = self.latency.record(micros(latency));
        match result {
            Ok(outcome) => {
                *self.statuses.entry(outcome.status).or_default() += 1;
                self.tokens += outcome.tokens;
                if let Some(first) = outcome.first_token {
                    let _ = self.first_token.record(micros(first));
                    let generating = latency.saturating_sub(first).as_secs_f64();
                    if outcome.tokens > 1 && generating > 0.0 {
                        let rate = (outcome.tokens - 1) as f64 / generating;
                        let _ = self.tokens_per_s_milli.record((rate * 1000.0) as u64 + 1);
                    }
                }
            }
            Err(e) => *self.transport_errors.entry(e.clone()).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.first_token.add(&other.first_token);
        let _ = self.tokens_per_s_milli.add(&other.tokens_per_s_milli);
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.transport_errors {
            *self.transport_errors.entry(k.clone()).or_default() += v;
        }
        self.tokens += other.tokens;
        self.sent += other.sent;
    }
}

/// When one worker sends its requests.
#[derive(Clone, Copy, Debug)]
pub enum Schedule {
    Open {
        start: Instant,
        interval: Duration,
        offset: Duration,
    },
    Closed,
}

impl Schedule {
    fn intended(&self, i: u32) -> Instant {
        match *self {
            Schedule::Open {
                start,
                interval,
                offset,
            } => start + offset + interval * i,
            Schedule::Closed => Instant::now(),
        }
    }
}

/// Something that sends one request at a time: a connection to the target, or a scripted
/// stand-in in tests.
pub trait Send1 {
    fn send(&mut self) -> impl Future<Output = Result<Outcome, String>>;
}

/// Runs one worker: sends per `schedule` until `deadline`, recording what completes after
/// `record_from`. Latency is measured from the intended send time.
pub async fn run_worker<S: Send1>(
    schedule: Schedule,
    deadline: Instant,
    record_from: Instant,
    progress: &AtomicU64,
    sender: &mut S,
) -> Result<Recorder, String> {
    let mut recorder = Recorder::new()?;
    let mut i: u32 = 0;
    loop {
        let intended = schedule.intended(i);
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended).await;
        let result = sender.send().await;
        let done = Instant::now();
        if intended >= record_from {
            recorder.record(done - intended, &result);
        }
        progress.fetch_add(1, Ordering::Relaxed);
        i = i.wrapping_add(1);
    }
    Ok(recorder)
}

/// A chat request body whose user message is `prompt_bytes` long (at least).
pub fn chat_body(model: &str, prompt_bytes: usize, stream: bool, max_tokens: Option<u64>) -> Bytes {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": "x".repeat(prompt_bytes) }],
        "stream": stream,
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = serde_json::json!(n);
    }
    Bytes::from(body.to_string())
}

/// `host:port` and path prefix of an `http://` base URL.
pub fn parse_base_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// targets are supported"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    let path = path.trim_end_matches('/');
    Ok((
        addr,
        if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        },
    ))
}

/// One HTTP/1.1 keep-alive connection to the target, re-opened after an error.
struct Connection {
    plan: Arc<Plan>,
    next_key: Arc<AtomicU64>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Send1 for Connection {
    async fn send(&mut self) -> Result<Outcome, String> {
        let keys = self.plan.keys.clone();
        let key = if keys.is_empty() {
            None
        } else {
            let n = self.next_key.fetch_add(1, Ordering::Relaxed) as usize;
            keys.get(n % keys.len())
        };
        let plan = self.plan.clone();
        self.request(&plan, key).await
    }
}

impl Connection {
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_ok()
        {
            return self
                .sender
                .as_mut()
                .ok_or_else(|| "connection lost".to_owned());
        }
        self.sender = None;
        let stream = TcpStream::connect(self.plan.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "handshake".to_owned())?;
        tokio::spawn(connection);
        Ok(self.sender.insert(sender))
    }

    async fn request(&mut self, plan: &Plan, key: Option<&HeaderValue>) -> Result<Outcome, String> {
        let started = Instant::now();
        let sender = self.ready().await?;
        let mut request = Request::post(plan.path.as_str())
            .header("host", "switchyard")
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("authorization", key.clone());
        }
        let request = request
            .body(Full::new(plan.body.clone()))
            .map_err(|_| "request".to_owned())?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                return Err("send".into());
            }
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut outcome = Outcome {
            status,
            ..Outcome::default()
        };
        let mut sse = SseCounter::default();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                self.sender = None;
                return Err("body".into());
            };
            if let Some(data) = frame.data_ref()
                && plan.stream
            {
                let new_tokens = sse.push(data);
                if new_tokens > 0 && outcome.first_token.is_none() {
                    outcome.first_token = Some(started.elapsed());
                }
                outcome.tokens += new_tokens;
            }
        }
        Ok(outcome)
    }
}

/// Counts content tokens (non-empty `delta.content` events) in an SSE stream, whatever the
/// read boundaries.
#[derive(Default)]
pub struct SseCounter {
    pending: Vec<u8>,
}

impl SseCounter {
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.pending.extend_from_slice(data);
        let mut tokens = 0;
        let mut consumed = 0;
        while let Some(end) = memchr::memmem::find(&self.pending[consumed..], b"\n\n") {
            let event = &self.pending[consumed..consumed + end];
            if let Some(i) = memchr::memmem::find(event, b"\"content\":\"")
                && event.get(i + 11) != Some(&b'"')
            {
                tokens += 1;
            }
            consumed += end + 2;
        }
        self.pending.drain(..consumed);
        tokens
    }
}

/// Runs a plan against a real target; `progress` counts completed requests as they finish.
pub async fn run(plan: Plan, progress: Arc<AtomicU64>) -> Result<Recorder, String> {
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + plan.warmup + plan.duration;
    let record_from = start + plan.warmup;
    let connections = plan.connections.max(1);
    let next_key = Arc::new(AtomicU64::new(0));
    let plan = Arc::new(plan);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let schedule = match plan.mode {
            Mode::Open { rate } => {
                let interval = Duration::from_secs_f64(connections as f64 / rate.max(0.001));
                Schedule::Open {
                    start,
                    interval,
                    offset: interval.mul_f64(c as f64 / connections as f64),
                }
            }
            Mode::Closed => Schedule::Closed,
        };
        let plan = plan.clone();
        let progress = progress.clone();
        let next_key = next_key.clone();
        tasks.push(tokio::spawn(async move {
            if matches!(schedule, Schedule::Closed) {
                tokio::time::sleep_until(start).await;
            }
            let mut connection = Connection {
                plan,
                next_key,
                sender: None,
            };
            run_worker(schedule, deadline, record_from, &progress, &mut connection).await
        }));
    }
    let mut total = Recorder::new()?;
    for task in tasks {
        let recorder = task.await.map_err(|e| format!("worker failed: {e}"))??;
        total.merge(&recorder);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers after `normal` (at once if zero), except that one request stalls for 500 ms.
    struct Stalling {
        calls: u32,
        stall_at: u32,
        normal: Duration,
    }

    impl Send1 for Stalling {
        async fn send(&mut self) -> Result<Outcome, String> {
            self.calls += 1;
            if self.calls == self.stall_at {
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else if self.normal.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.normal).await;
            }
            Ok(Outcome {
                status: 200,
                ..Outcome::default()
            })
        }
    }

    /// 1000 requests/s for 2 s with a 500 ms stall: the 500 requests due during the stall queue
    /// behind it, and the ~400 of them due in its first 400 ms waited at least 100 ms, so they
    /// must be recorded as slow. A closed-loop (coordinated) measurement of the same stall
    /// records exactly one slow request.
    #[tokio::test(start_paused = true)]
    async fn open_loop_counts_the_queue_behind_a_stall() {
        let start = Instant::now();
        let schedule = Schedule::Open {
            start,
            interval: Duration::from_millis(1),
            offset: Duration::ZERO,
        };
        let progress = AtomicU64::new(0);
        let mut sender = Stalling {
            calls: 0,
            stall_at: 1000,
            normal: Duration::ZERO,
        };
        let r = run_worker(
            schedule,
            start + Duration::from_secs(2),
            start,
            &progress,
            &mut sender,
        )
        .await
        .unwrap();
        assert_eq!(r.sent, 2000);
        assert_eq!(r.statuses.get(&200), Some(&2000));
        let slow = r.latency.count_between(100_000, MAX_MICROS);
        assert!(
            (395..=405).contains(&slow),
            "{slow} requests recorded as slow"
        );
        assert!(r.latency.value_at_quantile(0.99) >= 400_000);
        assert!(r.latency.max() >= 500_000);

        // The same stall measured closed-loop hides the queue: one slow sample.
        let mut sender = Stalling {
            calls: 0,
            stall_at: 1000,
            normal: Duration::from_millis(1),
        };
        let r = run_worker(
            Schedule::Closed,
            Instant::now() + Duration::from_secs(2),
            Instant::now(),
            &progress,
            &mut sender,
        )
        .await
        .unwrap();
        assert_eq!(r.latency.count_between(100_000, MAX_MICROS), 1);
    }

    #[test]
    fn counts_tokens_across_split_reads() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" b\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{}}\n\n",
            "data: [DONE]\n\n",
        );
        for split in 1..stream.len() {
            let mut counter = SseCounter::default();
            let n: u64 = stream
                .as_bytes()
                .chunks(split)
                .map(|c| counter.push(c))
                .sum();
            assert_eq!(n, 2, "split {split}");
        }
    }
}
