//! The Redis backend: standalone or Cluster through redis-rs, one script call per step, each
//! bounded by a short timeout so an unreachable Redis costs milliseconds, not a hung request.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};
use tokio::sync::OnceCell;

use switchyard_policy::Money;
use switchyard_policy::counters::{EXACT_LUA, holds_key, leases_key};

use super::leases::{LeaseCall, LeaseReply, Release};
use super::{Admission, ReserveRequest, SETTLED_MARKER_MS, SettleRequest, SpendError};

static RESERVE: LazyLock<Script> = LazyLock::new(|| script(include_str!("reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| script(include_str!("settle.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lease.lua")));
/// Corrects a quota counter's tokens, never creating one that has expired.
static ADJUST_QUOTA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 1 then \
           return redis.call('HINCRBY', KEYS[1], 't', ARGV[1]) \
         end return 0",
    )
});

/// A spend script: the exact-arithmetic helpers, the one shared step below, then its body.
fn script(body: &str) -> Script {
    Script::new(&format!("{EXACT_LUA}\n{HOLDS_LUA}\n{body}"))
}

/// Releases a counter's reservations whose time ran out (their dataplane never settled them):
/// each is a member `<generation>:<amount>` of the counter's holds set, scored by its expiry.
const HOLDS_LUA: &str = r"
local function release_stale_holds(counter, holds, now)
  local stale = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  for _, member in ipairs(stale) do
    local amount = string.match(member, ':(%d+)$')
    if amount then exact_decr(counter, 'held', amount) end
  end
  if #stale > 0 then redis.call('ZREMRANGEBYSCORE', holds, '-inf', now) end
end
";

/// How long a counter should live from `now_ms` on (at least a millisecond); `0` for never.
fn ttl_ms(expire_at_ms: Option<i64>, now_ms: i64) -> i64 {
    expire_at_ms.map_or(0, |t| t.saturating_sub(now_ms).max(1))
}

#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
enum Target {
    Standalone(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// Connects on first use, on the runtime that serves requests (the dataplane is built before its
/// runtimes exist), and again after a failed attempt; the connection then reconnects by itself.
#[derive(Clone)]
pub struct RedisSpend {
    target: Target,
    connection: Arc<OnceCell<Connection>>,
    timeout: Duration,
}

impl RedisSpend {
    /// One `redis://` URL, or several seed URLs of a Cluster. Fails only on malformed URLs.
    pub fn new(urls: &[String], timeout: Duration) -> Result<RedisSpend, SpendError> {
        let invalid = |e: redis::RedisError| SpendError::Unavailable(e.to_string());
        let target = match urls {
            [] => return Err(SpendError::Unavailable("no Redis URL configured".into())),
            [one] => Target::Standalone(redis::Client::open(one.as_str()).map_err(invalid)?),
            seeds => Target::Cluster(Box::new(
                redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()
                    .map_err(invalid)?,
            )),
        };
        Ok(RedisSpend {
            target,
            connection: Arc::new(OnceCell::new()),
            timeout,
        })
    }

    /// `new`, then connects at once (for tests and tools that want an early error).
    pub async fn connect(urls: &[String], timeout: Duration) -> Result<RedisSpend, SpendError> {
        let spend = RedisSpend::new(urls, timeout)?;
        spend.connection().await?;
        Ok(spend)
    }

    async fn connection(&self) -> Result<Connection, SpendError> {
        let unavailable = |e: redis::RedisError| SpendError::Unavailable(e.to_string());
        let connect = async {
            match &self.target {
                Target::Standalone(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout));
                    ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Connection::Standalone)
                        .map_err(unavailable)
                }
                Target::Cluster(client) => client
                    .get_async_connection()
                    .await
                    .map(Connection::Cluster)
                    .map_err(unavailable),
            }
        };
        let bounded = async {
            tokio::time::timeout(self.timeout, connect)
                .await
                .map_err(|_| SpendError::Timeout(self.timeout))?
        };
        self.connection.get_or_try_init(|| bounded).await.cloned()
    }

    /// Takes one request and `tokens` from quota counter `key` (see `quota.lua`).
    pub async fn take_quota(
        &self,
        key: &str,
        quota: switchyard_policy::routing::Quota,
        tokens: u64,
        ttl_ms: i64,
    ) -> Result<bool, SpendError> {
        let mut invocation = super::quota::TAKE.prepare_invoke();
        invocation
            .key(key)
            .arg(tokens)
            .arg(quota.requests_per_minute)
            .arg(quota.tokens_per_minute)
            .arg(ttl_ms.max(1));
        let taken: i64 = self.run(invocation).await?;
        Ok(taken == 1)
    }

    /// Adds `delta` (possibly negative) to quota counter `key`'s tokens, if it still exists.
    pub async fn adjust_quota_tokens(&self, key: &str, delta: i64) -> Result<(), SpendError> {
        let mut invocation = ADJUST_QUOTA.prepare_invoke();
        invocation.key(key).arg(delta);
        let _: i64 = self.run(invocation).await?;
        Ok(())
    }

    pub async fn reserve(&self, r: &ReserveRequest) -> Result<Admission, SpendError> {
        let mut invocation = RESERVE.prepare_invoke();
        for c in &r.counters {
            invocation.key(&c.key).key(holds_key(&c.key));
        }
        if let Some(mark) = &r.rebuilt_key {
            invocation.key(mark);
        }
        invocation
            .arg(&r.generation_id)
            .arg(r.now_ms)
            .arg(r.hold_ms);
        for c in &r.counters {
            invocation
                .arg(c.limit.pico().to_string())
                .arg(c.amount.pico().to_string())
                .arg(ttl_ms(c.expire_at_ms, r.now_ms));
        }
        let reply: Vec<Value> = self.run(invocation).await?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Admission::Granted),
            [Value::Int(-1)] => Err(SpendError::NotRebuilt),
            [Value::Int(0), Value::Int(index), spent, held] => Ok(Admission::Refused {
                index: usize::try_from(*index - 1)
                    .map_err(|_| SpendError::Protocol(format!("counter index {index}")))?,
                spent: amount(spent)?,
                held: amount(held)?,
            }),
            other => Err(SpendError::Protocol(format!("reserve returned {other:?}"))),
        }
    }

    pub async fn settle(&self, s: &SettleRequest) -> Result<bool, SpendError> {
        let mut invocation = SETTLE.prepare_invoke();
        for c in &s.counters {
            invocation.key(&c.key).key(holds_key(&c.key));
        }
        invocation.key(&s.settled_key);
        invocation.arg(&s.generation_id).arg(SETTLED_MARKER_MS);
        for c in &s.counters {
            invocation
                .arg(c.reserved.pico().to_string())
                .arg(c.charge.pico().to_string())
                .arg(ttl_ms(c.expire_at_ms, s.now_ms));
        }
        let settled: i64 = self.run(invocation).await?;
        Ok(settled == 1)
    }

    /// One `lease.lua` call: charges, releases and grants on one organization's counters.
    pub async fn lease(&self, call: &LeaseCall) -> Result<LeaseReply, SpendError> {
        let mut invocation = LEASE.prepare_invoke();
        for op in &call.ops {
            invocation
                .key(&op.key)
                .key(holds_key(&op.key))
                .key(leases_key(&op.key));
        }
        if let Some(mark) = &call.rebuilt_key {
            invocation.key(mark);
        }
        invocation
            .arg(call.ops.len())
            .arg(call.now_ms)
            .arg(call.lease_ms)
            .arg(call.seq)
            .arg(call.share.max(1));
        for op in &call.ops {
            invocation
                .arg(&op.field)
                .arg(op.limit.pico().to_string())
                .arg(op.charge)
                .arg(match op.release {
                    Release::Amount(a) => a.to_string(),
                    Release::All => "all".to_owned(),
                })
                .arg(op.need)
                .arg(op.want.max(op.need))
                .arg(ttl_ms(op.expire_at_ms, call.now_ms));
        }
        let reply: Vec<Value> = self.run(invocation).await?;
        match reply.as_slice() {
            [Value::Int(-1)] => Err(SpendError::NotRebuilt),
            [Value::Int(0), Value::Int(index), spent, held] => Ok(LeaseReply::Refused {
                index: usize::try_from(*index - 1)
                    .map_err(|_| SpendError::Protocol(format!("counter index {index}")))?,
                spent: amount(spent)?,
                held: amount(held)?,
            }),
            [Value::Int(1), rest @ ..] if rest.len() == 2 * call.ops.len() => rest
                .chunks(2)
                .map(|pair| match pair {
                    [Value::Int(grant), free] => Ok((
                        u64::try_from(*grant)
                            .map_err(|_| SpendError::Protocol(format!("grant {grant}")))?,
                        amount(free)?,
                    )),
                    other => Err(SpendError::Protocol(format!("lease returned {other:?}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(LeaseReply::Granted),
            other => Err(SpendError::Protocol(format!("lease returned {other:?}"))),
        }
    }

    /// Settled spend and live reservations, leases included (holds and leases past their
    /// expiry, which the next reserve or lease call would release, are not counted), as the
    /// embedded backend reports them.
    pub async fn read(&self, key: &str, now_ms: i64) -> Result<(Money, Money), SpendError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("spent").arg("held");
        let (spent, held): (Option<String>, Option<String>) = self.query(&cmd).await?;
        let mut expired = redis::cmd("ZRANGEBYSCORE");
        expired.arg(holds_key(key)).arg("-inf").arg(now_ms);
        let expired: Vec<String> = self.query(&expired).await?;
        let mut leases = redis::cmd("HVALS");
        leases.arg(leases_key(key));
        let leases: Vec<String> = self.query(&leases).await?;
        // Leases read "amount:expiry:seq".
        let lapsed = leases.iter().filter_map(|v| {
            let mut parts = v.split(':');
            let amount = parts.next()?.parse::<u128>().ok()?;
            let until = parts.next()?.parse::<i64>().ok()?;
            (until <= now_ms).then_some(amount)
        });
        let expired = expired
            .iter()
            .filter_map(|m| m.rsplit_once(':').and_then(|(_, a)| a.parse::<u128>().ok()))
            .chain(lapsed)
            .fold(Money::ZERO, |sum, a| {
                sum.saturating_add(Money::from_pico(a))
            });
        let parse = |v: Option<String>| match v {
            None => Ok(Money::ZERO),
            Some(text) => parse_amount(&text),
        };
        Ok((parse(spent)?, parse(held)?.saturating_sub(expired)))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, SpendError> {
        let connection = self.connection().await?;
        let call = async {
            match connection {
                Connection::Standalone(mut c) => invocation.invoke_async(&mut c).await,
                Connection::Cluster(mut c) => invocation.invoke_async(&mut c).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SpendError::Interrupted(e.to_string())),
            Err(_) => Err(SpendError::Timeout(self.timeout)),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, SpendError> {
        let connection = self.connection().await?;
        let call = async {
            match connection {
                Connection::Standalone(mut c) => cmd.query_async(&mut c).await,
                Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SpendError::Interrupted(e.to_string())),
            Err(_) => Err(SpendError::Timeout(self.timeout)),
        }
    }
}

/// An amount the scripts returned: a decimal string of picodollars.
fn amount(v: &Value) -> Result<Money, SpendError> {
    match v {
        Value::BulkString(b) => parse_amount(&String::from_utf8_lossy(b)),
        Value::SimpleString(s) => parse_amount(s),
        Value::Int(i) => parse_amount(&i.to_string()),
        other => Err(SpendError::Protocol(format!(
            "expected an amount, got {other:?}"
        ))),
    }
}

fn parse_amount(text: &str) -> Result<Money, SpendError> {
    text.parse::<u128>()
        .map(Money::from_pico)
        .map_err(|_| SpendError::Protocol(format!("expected an amount, got {text:?}")))
}
