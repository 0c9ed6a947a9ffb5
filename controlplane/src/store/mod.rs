//! The control plane's source of truth, behind portable SQL (SQLite by default, PostgreSQL with
//! the same queries through sqlx's `Any` driver).
//!
//! Portability rules: placeholders are `$1, $2, …` in order of first use; integers are BIGINT and
//! read as `i64`; booleans are BIGINT 0/1; timestamps are Unix milliseconds.
//!
//! Writes that belong together run in one transaction: [`Store::begin`] returns a handle bound
//! to it, whose every query (its own nested transactions become savepoints) runs inside, and
//! [`Store::commit`] ends it. A change that dataplanes must see also bumps the configuration
//! version in that transaction ([`Store::bump_config_version`]), so publication follows from
//! what committed and nothing can come apart.

mod byok;
mod catalogue;
mod credits;
mod external_users;
mod generations;
mod guardrails;
mod keys;
mod presets;
mod rollups;
mod tenancy;
mod workspaces;

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub use byok::ByokRow;
pub use catalogue::{CatalogueRows, EndpointRow, EndpointTraits, ModelRow, ProviderRow};
pub use credits::LedgerRow;
pub use external_users::{ExternalUserRow, external_user_problem};
pub use generations::{Generation, KeyUsage, WindowStarts};
pub use guardrails::{
    GuardrailRow, KeyAssignmentRow, MemberAssignmentRow, ZdrFlags, default_guardrail_id,
};
pub use keys::{KeyPatch, KeyRow, NewKey};
pub use presets::{PresetRow, PresetVersionRow};
pub use rollups::{
    COARSE_DIMENSIONS, DAY_MS, Dimension, Resolution, Totals, UsageFilter, UsageQuery, UsageRow,
};
pub use tenancy::{AuditRow, MemberRow, OrganizationRow, UserRow};
pub use workspaces::{WorkspaceBudgetRow, WorkspaceContents, WorkspaceRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the transaction has already ended")]
    TransactionEnded,
    /// A read the store does not keep what it needs for.
    #[error("not kept: {0}")]
    Unsupported(&'static str),
}

type SharedTransaction = Arc<Mutex<Option<Transaction<'static, Any>>>>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite takes its write lock when a transaction begins (`BEGIN IMMEDIATE`), so that two
    /// processes' transactions wait for each other instead of failing when one upgrades.
    sqlite: bool,
    /// Set on a handle bound to a transaction: every query runs in it.
    tx: Option<SharedTransaction>,
    /// On a transaction's handles: the configuration version it bumped to (0: none yet).
    bumped: Arc<AtomicU64>,
    /// On a transaction's handles: what it changed that dataplanes must see.
    changed: Arc<StdMutex<Changed>>,
}

/// What a transaction changed that dataplanes must see: nothing yet, only some keys (sent as a
/// key delta), or anything else (the whole snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Changed {
    #[default]
    Nothing,
    Keys(BTreeSet<String>),
    Anything,
}

impl Changed {
    /// Both changes: keys and keys are keys, anything else is anything.
    pub fn add(&mut self, other: Changed) {
        *self = match (std::mem::take(self), other) {
            (Changed::Nothing, c) | (c, Changed::Nothing) => c,
            (Changed::Keys(mut a), Changed::Keys(b)) => {
                a.extend(b);
                Changed::Keys(a)
            }
            _ => Changed::Anything,
        };
    }
}

/// A connection to run one query on: a pooled one, or the bound transaction's.
pub(crate) enum Conn<'a> {
    Pooled(PoolConnection<Any>),
    Tx(MappedMutexGuard<'a, Transaction<'static, Any>>),
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Tx(t) => t,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Tx(t) => t,
        }
    }
}

/// The configuration version and the store's epoch: what numbers snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigVersion {
    pub version: u64,
    /// Random, set when the store was created; shared by every replica using it.
    pub epoch: String,
}

/// Every SQLite connection's settings. Usage ingest writes every generation with its indexes: a
/// 64 MiB page cache, memory-mapped reads and a checkpoint every 10,000 pages (not 1,000) took
/// `cargo bench --bench ingest` from 22,500 to about 29,000 events/s.
const SQLITE_PRAGMAS: [&str; 6] = [
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA cache_size = -65536",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA temp_store = MEMORY",
];

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) the database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; one connection avoids SQLITE_BUSY under load.
            .max_connections(if is_sqlite { 1 } else { 16 })
            // A query waiting this long for a connection is stuck, not busy.
            .acquire_timeout(Duration::from_secs(10))
            // SQLite's settings are per connection: every connection the pool opens (it replaces
            // them over time) gets them, not only the first.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        // The configuration version starts at 0 in a new store, under a new epoch.
        sqlx::query(
            "INSERT INTO config_state (id, version, epoch) VALUES (1, 0, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .execute(&pool)
        .await?;
        let store = Store {
            pool,
            sqlite: is_sqlite,
            tx: None,
            bumped: Arc::default(),
            changed: Arc::default(),
        };
        if !is_sqlite {
            // Rollup rows are updated in place by every usage batch: room on their pages lets
            // PostgreSQL update them without new index entries (HOT updates; +3-7% ingest).
            // Set once: the ALTER locks the table, so a restarting replica does not repeat it.
            let set: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM pg_class WHERE relname = 'usage_rollups' \
                 AND 'fillfactor=50' = ANY(reloptions)",
            )
            .fetch_one(&store.pool)
            .await?
            .try_get("n")?;
            if set == 0 {
                sqlx::query("ALTER TABLE usage_rollups SET (fillfactor = 50)")
                    .execute(&store.pool)
                    .await?;
            }
        }
        // Once per store: history recorded before the rollups existed is added to them.
        let added = store
            .backfill_rollups(chrono::Utc::now().timestamp_millis())
            .await?;
        if added > 0 {
            tracing::info!(generations = added, "usage rollups backfilled");
        }
        Ok(store)
    }

    /// A handle whose queries all run in one new transaction, until `commit`. Dropped without
    /// `commit`, the transaction rolls back. On a handle already bound to a transaction, another
    /// handle on the same one.
    pub async fn begin(&self) -> Result<Store, StoreError> {
        if self.tx.is_some() {
            return Ok(self.clone());
        }
        let tx = if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        };
        Ok(Store {
            pool: self.pool.clone(),
            sqlite: self.sqlite,
            tx: Some(Arc::new(Mutex::new(Some(tx)))),
            bumped: Arc::default(),
            changed: Arc::default(),
        })
    }

    /// Whether this handle is bound to a transaction.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Commits the transaction this handle is bound to.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let Some(shared) = &self.tx else {
            return Ok(());
        };
        let tx = shared
            .lock()
            .await
            .take()
            .ok_or(StoreError::TransactionEnded)?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        match &self.tx {
            None => Ok(Conn::Pooled(self.pool.acquire().await?)),
            Some(shared) => MutexGuard::try_map(shared.lock().await, Option::as_mut)
                .map(Conn::Tx)
                .map_err(|_| StoreError::TransactionEnded),
        }
    }

    /// Marks a change dataplanes must see: the configuration version, incremented in the
    /// current transaction, is the version of the first snapshot that includes it.
    pub async fn bump_config_version(&self) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *self.conn().await?)
        .await?;
        let version: i64 = row.try_get("version")?;
        let version = u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("config version {version}")))?;
        self.bumped.store(version, Ordering::SeqCst);
        Ok(version)
    }

    /// Notes what this transaction changes for dataplanes; `record_changes` writes it down.
    pub fn note_change(&self, change: Changed) {
        if let Ok(mut changed) = self.changed.lock() {
            changed.add(change);
        }
    }

    /// Records what the bumped version changed (see `note_change`), in this transaction.
    /// Without a note, or with one that cannot be read, it records "anything": the whole
    /// snapshot is always a correct publication.
    pub async fn record_changes(&self) -> Result<(), StoreError> {
        let Some(version) = self.bumped_version() else {
            return Ok(());
        };
        let changed = self.changed.lock().map(|c| c.clone()).unwrap_or_default();
        let key_hashes = match changed {
            Changed::Keys(hashes) if !hashes.is_empty() => {
                Some(hashes.into_iter().collect::<Vec<_>>().join(" "))
            }
            _ => None,
        };
        sqlx::query("INSERT INTO config_changes (version, key_hashes) VALUES ($1, $2)")
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(key_hashes)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    /// What each version in `after+1 ..= through` changed, when every one of them changed only
    /// keys: the union of their hashes. `None` when any changed anything else or left no record.
    pub async fn keys_changed_between(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Option<BTreeSet<String>>, StoreError> {
        let (Ok(after), Ok(through)) = (i64::try_from(after), i64::try_from(through)) else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT version, key_hashes FROM config_changes \
             WHERE version > $1 AND version <= $2 ORDER BY version",
        )
        .bind(after)
        .bind(through)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        if i64::try_from(rows.len()).ok() != Some(through - after) {
            return Ok(None);
        }
        let mut hashes = BTreeSet::new();
        for row in rows {
            let Some(list): Option<String> = row.try_get("key_hashes")? else {
                return Ok(None);
            };
            hashes.extend(list.split(' ').filter(|h| !h.is_empty()).map(str::to_owned));
        }
        Ok(Some(hashes))
    }

    /// Forgets the change records of versions up to `version`.
    pub async fn prune_changes(&self, version: u64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM config_changes WHERE version <= $1")
            .bind(i64::try_from(version).unwrap_or(0))
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    /// The configuration version this transaction bumped to, if it did.
    pub fn bumped_version(&self) -> Option<u64> {
        Some(self.bumped.load(Ordering::SeqCst)).filter(|&v| v > 0)
    }

    /// The latest committed configuration version and the store's epoch.
    pub async fn config_version(&self) -> Result<ConfigVersion, StoreError> {
        let row = sqlx::query("SELECT version, epoch FROM config_state WHERE id = 1")
            .fetch_one(&mut *self.conn().await?)
            .await?;
        let version: i64 = row.try_get("version")?;
        Ok(ConfigVersion {
            version: u64::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("config version {version}")))?,
            epoch: row.try_get("epoch")?,
        })
    }

    /// Takes the organization's row lock until the transaction ends, so that checks and writes
    /// on it (member cap, last admin, credit balance) are serialised across every control
    /// plane sharing the database. A no-op update: PostgreSQL locks the row, SQLite the
    /// database.
    pub async fn lock_organization(&self, organization_id: &str) -> Result<bool, StoreError> {
        let locked = sqlx::query("UPDATE organizations SET created_at = created_at WHERE id = $1")
            .bind(organization_id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(locked.rows_affected() == 1)
    }

    /// The default embedded database under `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("switchyard.db").display()
        )
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A multi-row statement built once per dialect for its full chunk size (other sizes, a
/// batch's last chunk, are built each time).
struct StatementCache([std::sync::OnceLock<String>; 2]);

impl StatementCache {
    const fn new() -> StatementCache {
        StatementCache([std::sync::OnceLock::new(), std::sync::OnceLock::new()])
    }

    fn get(
        &'static self,
        sqlite: bool,
        rows: usize,
        full: usize,
        build: fn(bool, usize) -> String,
    ) -> std::borrow::Cow<'static, str> {
        if rows == full {
            let sql = self.0[usize::from(sqlite)].get_or_init(|| build(sqlite, rows));
            return std::borrow::Cow::Borrowed(sql.as_str());
        }
        std::borrow::Cow::Owned(build(sqlite, rows))
    }
}

/// `(…),(…)` for a multi-row INSERT of `rows` rows of `columns` parameters each. SQLite gets
/// anonymous parameters, bound in order: with `$N` names, sqlx asks SQLite each parameter's
/// name, a scan of the name list, so binding a 5,600-parameter statement was quadratic (80% of
/// the control plane's CPU at 3,000 generations a second, measured with perf).
fn push_value_rows(sql: &mut String, sqlite: bool, rows: usize, columns: usize) {
    use std::fmt::Write as _;
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push(',');
            }
            if sqlite {
                sql.push('?');
            } else {
                let _ = write!(sql, "${}", row * columns + col + 1);
            }
        }
        sql.push(')');
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Parses a stored enum-like text column.
fn parse_column<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} has unexpected value {value:?}")))
}
