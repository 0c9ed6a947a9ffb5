//! The credit ledger (exact micro-dollars) and the spend it is measured against.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError};

/// One ledger entry: a grant (positive), or one side of a transfer.
#[derive(Clone, Debug)]
pub struct LedgerRow {
    pub id: String,
    pub owner_id: String,
    pub amount_micros: i64,
    /// `grant`, `transfer_in` or `transfer_out`.
    pub kind: String,
    pub reason: String,
    pub actor: String,
    pub counterpart_id: Option<String>,
    pub created_at: i64,
}

const LEDGER_COLUMNS: &str =
    "id, owner_id, amount_micros, kind, reason, actor, counterpart_id, created_at";

fn ledger(r: &AnyRow) -> Result<LedgerRow, StoreError> {
    Ok(LedgerRow {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        amount_micros: r.try_get("amount_micros")?,
        kind: r.try_get("kind")?,
        reason: r.try_get("reason")?,
        actor: r.try_get("actor")?,
        counterpart_id: r.try_get("counterpart_id")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Appends entries in one transaction (a transfer's two sides land together or not at all).
    pub async fn insert_ledger(&self, entries: &[LedgerRow]) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        for e in entries {
            sqlx::query(&format!(
                "INSERT INTO credit_ledger ({LEDGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&e.id)
            .bind(&e.owner_id)
            .bind(e.amount_micros)
            .bind(&e.kind)
            .bind(&e.reason)
            .bind(&e.actor)
            .bind(e.counterpart_id.clone())
            .bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An owner's ledger, newest first.
    pub async fn ledger(&self, owner_id: &str, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(owner_id)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(ledger).collect()
    }

    /// Total credits of an owner, in micro-dollars.
    pub async fn credits_micros(&self, owner_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) AS total FROM credit_ledger WHERE owner_id = $1",
        )
        .bind(owner_id)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        // PostgreSQL's SUM(BIGINT) is NUMERIC, which sqlx's Any driver cannot read: hence the cast.
        Ok(row.try_get::<i64, _>("total")?)
    }

    /// Every owner's total credits, in micro-dollars, for snapshots.
    pub async fn credits_by_owner(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner_id, CAST(SUM(amount_micros) AS BIGINT) AS total FROM credit_ledger \
             GROUP BY owner_id ORDER BY owner_id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("owner_id")?, r.try_get("total")?)))
            .collect()
    }

    /// Total spend billed to an owner's credits (its generations' cost, BYOK apart: the
    /// provider bills that to the owner directly), in USD.
    pub async fn usage_usd(&self, owner_id: &str) -> Result<f64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CAST(cost_usd AS DOUBLE PRECISION)), 0) AS DOUBLE PRECISION) AS total \
             FROM generations WHERE organization_id = $1 AND cost_usd IS NOT NULL AND is_byok = 0",
        )
        .bind(owner_id)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(row.try_get::<f64, _>("total")?)
    }
}
