//! Reconciliation: the usage ledger is the truth. Periodically, every spend counter the
//! dataplanes keep in Redis is compared with the ledger's sum for its window, and raised to it
//! when it is lower — after Redis lost data, or settles failed while it was away (`fail_open`).
//! Counters are only ever raised: a counter above the ledger holds charges whose usage events
//! are still on their way (spooled), and lowering it could let a limit overshoot.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use switchyard_proto::spend::{Period, counter_key};

use crate::keys::LimitReset;
use crate::store::{LedgerScope, Store, StoreError};

static RAISE: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_LUA));

const RAISE_LUA: &str = r"
local current = redis.call('HGET', KEYS[1], 'spent') or '0'
if tonumber(ARGV[1]) > tonumber(current) then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
  if ARGV[2] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
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

/// One counter to check: its key, the ledger scope it sums, and its window.
struct Target {
    organization_id: String,
    scope: &'static str,
    id: String,
    ledger: LedgerOwner,
    period: Period,
    include_byok: bool,
}

enum LedgerOwner {
    Key(String),
    Workspace(String),
    Organization(String),
    Member {
        user_id: String,
        workspace_id: String,
    },
}

pub struct Reconciler {
    store: Store,
    urls: Vec<String>,
    interval: Duration,
}

impl Reconciler {
    pub fn new(store: Store, urls: Vec<String>, interval: Duration) -> Reconciler {
        Reconciler {
            store,
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

    /// One pass over every limited key, workspace budget, guardrail budget (per key and per
    /// member) and organization's credits.
    async fn pass(
        &self,
        connection: &mut Connection,
        now_ms: i64,
    ) -> Result<usize, ReconcileError> {
        let mut raised = 0;
        for target in self.targets().await? {
            let (window, expire) = target.period.window(now_ms);
            let since = target.period.start(now_ms);
            let scope = match &target.ledger {
                LedgerOwner::Key(h) => LedgerScope::Key(h),
                LedgerOwner::Workspace(w) => LedgerScope::Workspace(w),
                LedgerOwner::Organization(o) => LedgerScope::Organization(o),
                LedgerOwner::Member {
                    user_id,
                    workspace_id,
                } => LedgerScope::Member {
                    user_id,
                    workspace_id,
                },
            };
            let ledger = self
                .store
                .ledger_pico(scope, since, target.include_byok)
                .await?;
            if ledger == 0 {
                continue;
            }
            let key = counter_key(&target.organization_id, target.scope, &target.id, &window);
            let mut invocation = RAISE.prepare_invoke();
            invocation.key(&key).arg(ledger).arg(expire.unwrap_or(0));
            let changed: i64 = match connection {
                Connection::Standalone(c) => invocation.invoke_async(c).await?,
                Connection::Cluster(c) => invocation.invoke_async(c).await?,
            };
            if changed == 1 {
                tracing::info!(%key, ledger, "counter below the ledger: raised");
                raised += 1;
            }
        }
        Ok(raised)
    }

    async fn targets(&self) -> Result<Vec<Target>, StoreError> {
        let mut targets = Vec::new();
        for k in self.store.all_keys().await? {
            if k.limit_usd.is_none() {
                continue;
            }
            targets.push(Target {
                organization_id: k.organization_id.clone(),
                scope: "key",
                id: k.hash.clone(),
                ledger: LedgerOwner::Key(k.hash.clone()),
                period: match k.limit_reset {
                    Some(LimitReset::Daily) => Period::Daily,
                    Some(LimitReset::Weekly) => Period::Weekly,
                    Some(LimitReset::Monthly) => Period::Monthly,
                    None => Period::Lifetime,
                },
                include_byok: k.include_byok_in_limit,
            });
        }
        let workspaces = self.store.workspaces().await?;
        for b in self.store.all_workspace_budgets().await? {
            let Some(ws) = workspaces.iter().find(|w| w.id == b.workspace_id) else {
                continue;
            };
            let period = match b.reset_interval.as_str() {
                "daily" => Period::Daily,
                "weekly" => Period::Weekly,
                "monthly" => Period::Monthly,
                _ => Period::Lifetime,
            };
            targets.push(Target {
                organization_id: ws.organization_id.clone(),
                scope: "workspace",
                id: ws.id.clone(),
                ledger: LedgerOwner::Workspace(ws.id.clone()),
                period,
                include_byok: b.include_byok,
            });
        }
        // Guardrail budgets count per key and per member (see the dataplane's `limits_for`):
        // a default guardrail binds every key and member of its workspace, another one those
        // assigned to it.
        let keys = self.store.all_keys().await?;
        let key_assignments = self.store.all_key_assignments().await?;
        let member_assignments = self.store.all_member_assignments().await?;
        for g in self.store.all_guardrails().await? {
            let (Some(_), Some(interval)) = (&g.limit_usd, &g.reset_interval) else {
                continue;
            };
            let period = match interval.as_str() {
                "daily" => Period::Daily,
                "weekly" => Period::Weekly,
                _ => Period::Monthly,
            };
            let (bound_keys, bound_users): (Vec<String>, Vec<String>) = if g.is_default {
                let in_workspace = keys.iter().filter(|k| k.workspace_id == g.workspace_id);
                let hashes = in_workspace.clone().map(|k| k.hash.clone()).collect();
                let mut users: Vec<String> =
                    in_workspace.map(|k| k.creator_user_id.clone()).collect();
                users.sort();
                users.dedup();
                (hashes, users)
            } else {
                (
                    key_assignments
                        .iter()
                        .filter(|(_, gid)| *gid == g.id)
                        .map(|(hash, _)| hash.clone())
                        .collect(),
                    member_assignments
                        .iter()
                        .filter(|m| m.guardrail_id == g.id)
                        .map(|m| m.user_id.clone())
                        .collect(),
                )
            };
            for hash in bound_keys {
                targets.push(Target {
                    organization_id: g.organization_id.clone(),
                    scope: "guardrail",
                    id: format!("{}|{hash}", g.id),
                    ledger: LedgerOwner::Key(hash),
                    period,
                    include_byok: g.include_byok,
                });
            }
            for user_id in bound_users {
                targets.push(Target {
                    organization_id: g.organization_id.clone(),
                    scope: "member",
                    id: format!("{user_id}|{}", g.id),
                    ledger: LedgerOwner::Member {
                        user_id,
                        workspace_id: g.workspace_id.clone(),
                    },
                    period,
                    include_byok: g.include_byok,
                });
            }
        }
        for o in self.store.organizations().await? {
            targets.push(Target {
                organization_id: o.id.clone(),
                scope: "credits",
                id: o.id.clone(),
                ledger: LedgerOwner::Organization(o.id.clone()),
                period: Period::Lifetime,
                include_byok: false,
            });
        }
        Ok(targets)
    }
}
