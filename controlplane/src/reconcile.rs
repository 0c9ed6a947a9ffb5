//! Reconciliation: the usage ledger is the truth. Periodically, every spend counter the
//! dataplanes keep in Redis is compared with the ledger's sum for its window, and raised to it
//! when it is lower — after Redis lost data, or settles failed while it was away (`fail_open`).
//! Counters are only ever raised: a counter above the ledger holds charges whose usage events
//! are still on their way (spooled), and lowering it could let a limit overshoot.
//!
//! Which counters exist is not decided here: it is `Snapshot::limits_for` over the snapshot last
//! published, the function every dataplane enforces, with each limit's counter name and the part
//! of the ledger it adds up to.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use switchyard_policy::counters::EXACT_LUA;
use switchyard_policy::snapshot::KeyKind;
use switchyard_policy::{Ledger, Snapshot};

use crate::publisher::Publisher;
use crate::store::{Store, StoreError};

static RAISE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{EXACT_LUA}\n{RAISE_LUA}")));

/// KEYS: the counter. ARGV: the ledger's sum (picodollars), the counter's time to live in ms
/// (0 = never), computed from the same clock as the window.
const RAISE_LUA: &str = r"
local current = redis.call('HGET', KEYS[1], 'spent') or '0'
if exact_gt(ARGV[1], current) then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
  if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return 1
end
return 0
";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Connection {
    Standalone(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// One counter to check: its key, the ledger it sums, and its window.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub counter: String,
    pub ledger: Ledger,
    /// The window's start (Unix ms).
    pub since_ms: i64,
    /// When the counter may be dropped; `None` for lifetime counters.
    pub expire_at_ms: Option<i64>,
    pub include_byok: bool,
}

/// Every counter the dataplanes may touch at `now_ms`, once each: the limits of every inference
/// key in `snapshot`.
pub fn targets(snapshot: &Snapshot, now_ms: i64) -> Vec<Target> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for key in snapshot
        .keys
        .iter()
        .filter(|k| k.kind == KeyKind::Inference)
    {
        for limit in snapshot.limits_for(key) {
            let counter = limit.counter_key(&key.organization_id, now_ms);
            if !seen.insert(counter.clone()) {
                continue;
            }
            let span = limit.window.span(now_ms);
            out.push(Target {
                counter,
                ledger: limit.ledger(key),
                since_ms: span.start_ms,
                expire_at_ms: span.expire_at_ms(),
                include_byok: limit.include_byok,
            });
        }
    }
    out
}

pub struct Reconciler {
    store: Store,
    publisher: Arc<Publisher>,
    urls: Vec<String>,
    interval: Duration,
}

impl Reconciler {
    pub fn new(
        store: Store,
        publisher: Arc<Publisher>,
        urls: Vec<String>,
        interval: Duration,
    ) -> Reconciler {
        Reconciler {
            store,
            publisher,
            urls,
            interval,
        }
    }

    /// Runs forever: one pass per interval, reconnecting after failures.
    pub async fn run(self) {
        let mut connection = None;
        loop {
            tokio::time::sleep(self.interval).await;
            if connection.is_none() {
                match self.connect().await {
                    Ok(c) => connection = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation cannot reach Redis");
                        continue;
                    }
                }
            }
            if let Some(c) = connection.as_mut() {
                match self.pass(c, crate::now_ms()).await {
                    Ok(0) => {}
                    Ok(raised) => tracing::info!(raised, "spend counters raised to the ledger"),
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation pass failed");
                        connection = None;
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        match self.urls.as_slice() {
            [one] => {
                let client = redis::Client::open(one.as_str())?;
                Ok(Connection::Standalone(
                    redis::aio::ConnectionManager::new(client).await?,
                ))
            }
            seeds => {
                let client = redis::cluster::ClusterClient::new(seeds.to_vec())?;
                Ok(Connection::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// One pass over every counter of the snapshot last published.
    async fn pass(
        &self,
        connection: &mut Connection,
        now_ms: i64,
    ) -> Result<usize, ReconcileError> {
        let snapshot = self.publisher.current();
        let mut raised = 0;
        for target in targets(&snapshot, now_ms) {
            let ledger = self
                .store
                .ledger_spend(&target.ledger, target.since_ms, target.include_byok)
                .await?;
            if ledger.pico() == 0 {
                continue;
            }
            let ttl_ms = target
                .expire_at_ms
                .map_or(0, |t| t.saturating_sub(now_ms).max(1));
            let mut invocation = RAISE.prepare_invoke();
            invocation
                .key(&target.counter)
                .arg(ledger.pico().to_string())
                .arg(ttl_ms);
            let changed: i64 = match connection {
                Connection::Standalone(c) => invocation.invoke_async(c).await?,
                Connection::Cluster(c) => invocation.invoke_async(c).await?,
            };
            if changed == 1 {
                tracing::info!(counter = %target.counter, %ledger, "counter below the ledger: raised");
                raised += 1;
            }
        }
        Ok(raised)
    }
}
