//! Reconciliation: the usage ledger is the truth. Periodically, every spend counter the
//! dataplanes keep in Redis is compared with the ledger's sum for its window, and raised to it
//! when it is lower — after Redis lost data, or settles failed while it was away (`fail_open`).
//! Counters are only ever raised: a counter above the ledger holds charges whose usage events
//! are still on their way (spooled), and lowering it could let a limit overshoot.
//!
//! Each pass then marks every organization's counters as rebuilt (`counters::rebuilt_key`), and
//! the marks are looked at every second: a Redis that lost its data lost them too, and
//! dataplanes admit only on marked counters (`Snapshot::spend_counters_marked`), so a limit never
//! starts over from an empty counter. A missing mark starts a pass at once.
//!
//! Which counters exist is not decided here: it is `Snapshot::limits_for` over the snapshot last
//! published, the function every dataplane enforces, with each limit's counter name and the part
//! of the ledger it adds up to.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use switchyard_policy::counters::{EXACT_LUA, rebuilt_key};
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

    /// Runs forever, reconnecting after failures: a pass every `interval` (the first one is
    /// `first_pass`, at start), and one at once whenever an organization's rebuilt mark is
    /// missing (Redis lost its data, or the organization is new): dataplanes refuse (or, failing
    /// open, do not count) its requests until the mark is back.
    pub async fn run(self) {
        let mut connection = None;
        let mut next_pass = tokio::time::Instant::now() + self.interval;
        loop {
            if connection.is_none() {
                match self.connect().await {
                    Ok(c) => connection = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation cannot reach Redis");
                        tokio::time::sleep(MARK_CHECK).await;
                        continue;
                    }
                }
            }
            if let Some(c) = connection.as_mut() {
                let outcome = async {
                    let due = tokio::time::Instant::now() >= next_pass;
                    let unmarked = if due { 0 } else { self.unmarked(c).await? };
                    if !due && unmarked == 0 {
                        return Ok(None);
                    }
                    if unmarked > 0 {
                        tracing::warn!(unmarked, "spend counters not marked rebuilt (Redis lost data, or new organizations): rebuilding now");
                    }
                    self.pass(c, crate::now_ms()).await.map(Some)
                }
                .await;
                match outcome {
                    Ok(None) => {}
                    Ok(Some(raised)) => {
                        next_pass = tokio::time::Instant::now() + self.interval;
                        if raised > 0 {
                            tracing::info!(raised, "spend counters raised to the ledger");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation pass failed");
                        connection = None;
                    }
                }
            }
            tokio::time::sleep(MARK_CHECK).await;
        }
    }

    /// One pass now, for the control plane's start: dataplanes find their counters marked as
    /// soon as they are served a snapshot saying marks are needed.
    pub async fn first_pass(&self) -> Result<usize, ReconcileError> {
        let mut connection = self.connect().await?;
        self.pass(&mut connection, crate::now_ms()).await
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
        // A walk over every key (a million in a large deployment takes a tenth of a second):
        // off the executor, which serves the management API meanwhile.
        let walked = snapshot.clone();
        let targets = tokio::task::spawn_blocking(move || targets(&walked, now_ms))
            .await
            .map_err(|e| StoreError::Corrupt(format!("reconciliation targets: {e}")))?;
        let mut raised = 0;
        for target in targets {
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
        // Every counter is at least the ledger now: mark each organization's as rebuilt.
        for organization in organizations(&snapshot) {
            let mut set = redis::cmd("SET");
            set.arg(rebuilt_key(organization)).arg(now_ms);
            let () = match connection {
                Connection::Standalone(c) => set.query_async(c).await?,
                Connection::Cluster(c) => set.query_async(c).await?,
            };
        }
        Ok(raised)
    }

    /// How many organizations' rebuilt marks are missing (one `EXISTS` each).
    async fn unmarked(&self, connection: &mut Connection) -> Result<usize, ReconcileError> {
        let snapshot = self.publisher.current();
        let mut missing = 0;
        for organization in organizations(&snapshot) {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(rebuilt_key(organization));
            let found: i64 = match connection {
                Connection::Standalone(c) => exists.query_async(c).await?,
                Connection::Cluster(c) => exists.query_async(c).await?,
            };
            missing += usize::from(found == 0);
        }
        Ok(missing)
    }
}

/// How often the rebuilt marks are looked at.
const MARK_CHECK: Duration = Duration::from_secs(1);

/// Every organization of the snapshot: its map, not a walk over the keys (this runs every
/// second, `MARK_CHECK`). One without inference keys has no counters, and its mark is harmless.
fn organizations(snapshot: &Snapshot) -> impl Iterator<Item = &str> {
    snapshot.organizations.keys().map(String::as_str)
}
