//! The Redis backend: standalone or Cluster through redis-rs, one script call per step, each
//! bounded by a short timeout so an unreachable Redis costs milliseconds, not a hung request.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};

use super::{Admission, ReserveRequest, SettleRequest, SpendError};

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// How long a settled marker is kept: longer than any retry of the same settle.
const SETTLED_MARKER_MS: u64 = 7 * 24 * 3600 * 1000;

#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct RedisSpend {
    connection: Connection,
    timeout: Duration,
}

impl RedisSpend {
    /// Connects to one `redis://` URL, or to a Cluster through several seed URLs.
    pub async fn connect(urls: &[String], timeout: Duration) -> Result<RedisSpend, SpendError> {
        let unavailable = |e: redis::RedisError| SpendError::Unavailable(e.to_string());
        let connection = match urls {
            [] => return Err(SpendError::Unavailable("no Redis URL configured".into())),
            [one] => {
                let client = redis::Client::open(one.as_str()).map_err(unavailable)?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                Connection::Standalone(
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(unavailable)?,
                )
            }
            seeds => {
                let client = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()
                    .map_err(unavailable)?;
                Connection::Cluster(client.get_async_connection().await.map_err(unavailable)?)
            }
        };
        Ok(RedisSpend {
            connection,
            timeout,
        })
    }

    pub async fn reserve(&self, r: &ReserveRequest) -> Result<Admission, SpendError> {
        let mut invocation = RESERVE.prepare_invoke();
        for c in &r.counters {
            invocation.key(&c.key).key(format!("{}:r", c.key));
        }
        invocation
            .arg(&r.generation_id)
            .arg(r.now_ms)
            .arg(r.hold_ms);
        for c in &r.counters {
            invocation
                .arg(c.limit_pico)
                .arg(c.amount_pico)
                .arg(c.expire_at_ms.unwrap_or(0));
        }
        let reply: Vec<Value> = self.run(invocation).await?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Admission::Granted),
            [Value::Int(0), Value::Int(index), spent, held] => Ok(Admission::Refused {
                index: usize::try_from(*index - 1)
                    .map_err(|_| SpendError::Protocol(format!("counter index {index}")))?,
                spent_pico: number(spent)?,
                held_pico: number(held)?,
            }),
            other => Err(SpendError::Protocol(format!("reserve returned {other:?}"))),
        }
    }

    pub async fn settle(&self, s: &SettleRequest) -> Result<bool, SpendError> {
        let mut invocation = SETTLE.prepare_invoke();
        for c in &s.counters {
            invocation.key(&c.key).key(format!("{}:r", c.key));
        }
        invocation.key(&s.settled_key);
        invocation.arg(&s.generation_id).arg(SETTLED_MARKER_MS);
        for c in &s.counters {
            invocation
                .arg(c.reserved_pico)
                .arg(c.charge_pico)
                .arg(c.expire_at_ms.unwrap_or(0));
        }
        let settled: i64 = self.run(invocation).await?;
        Ok(settled == 1)
    }

    pub async fn read(&self, key: &str) -> Result<(u64, u64), SpendError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("spent").arg("held");
        let values: (Option<u64>, Option<u64>) = self.query(&cmd).await?;
        Ok((values.0.unwrap_or(0), values.1.unwrap_or(0)))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, SpendError> {
        let call = async {
            match &self.connection {
                Connection::Standalone(c) => invocation.invoke_async(&mut c.clone()).await,
                Connection::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SpendError::Unavailable(e.to_string())),
            Err(_) => Err(SpendError::Timeout(self.timeout)),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, SpendError> {
        let call = async {
            match &self.connection {
                Connection::Standalone(c) => cmd.query_async(&mut c.clone()).await,
                Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SpendError::Unavailable(e.to_string())),
            Err(_) => Err(SpendError::Timeout(self.timeout)),
        }
    }
}

fn number(v: &Value) -> Result<u64, SpendError> {
    let text = match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => {
            return Err(SpendError::Protocol(format!(
                "expected a number, got {other:?}"
            )));
        }
    };
    // Lua renders large doubles as "1.2e+15"; parse as a float then.
    text.parse::<u64>()
        .or_else(|_| text.parse::<f64>().map(|f| f as u64))
        .map_err(|_| SpendError::Protocol(format!("expected a number, got {text}")))
}
