//! The control plane's source of truth, behind portable SQL (SQLite by default, PostgreSQL with
//! the same queries through sqlx's `Any` driver).
//!
//! Portability rules: placeholders are `$1, $2, …` in order of first use; integers are BIGINT and
//! read as `i64`; booleans are BIGINT 0/1; timestamps are Unix milliseconds.

mod byok;
mod catalogue;
mod credits;
mod generations;
mod guardrails;
mod keys;
mod presets;
mod tenancy;
mod workspaces;

use std::path::Path;
use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use byok::ByokRow;
pub use catalogue::{CatalogueRows, EndpointRow, ModelRow, ProviderRow};
pub use credits::LedgerRow;
pub use generations::{Generation, KeyUsage, LedgerScope, WindowStarts};
pub use guardrails::{
    GuardrailRow, KeyAssignmentRow, MemberAssignmentRow, ZdrFlags, default_guardrail_id,
};
pub use keys::{KeyPatch, KeyRow, NewKey};
pub use presets::{PresetRow, PresetVersionRow};
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
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) the database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; one connection avoids SQLITE_BUSY under load.
            .max_connections(if is_sqlite { 1 } else { 16 })
            .connect(url)
            .await?;
        if is_sqlite {
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
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

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Parses a stored enum-like text column.
fn parse_column<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} has unexpected value {value:?}")))
}
