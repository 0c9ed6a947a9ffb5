//! Generation records: one per request, written idempotently from usage events.

use sqlx::any::AnyRow;
use sqlx::{Connection as _, Row};

use super::{Store, StoreError, flag};

#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub id: String,
    pub key_hash: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub model: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub upstream_id: String,
    pub created_at: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Exact decimal USD; `None` when the cost is unknown.
    pub cost_usd: Option<String>,
    pub streamed: bool,
    pub finish_reason: Option<String>,
    pub latency_ms: i64,
    pub ttfb_ms: i64,
    pub status: i64,
    pub cancelled: bool,
    pub is_byok: bool,
    pub app_title: String,
    pub dataplane_id: String,
    /// Every provider attempt, a JSON array in the SDK's `ProviderResponse` shape.
    pub provider_responses: Option<String>,
    pub preset_id: Option<String>,
    pub preset_version: Option<i64>,
    pub session_id: Option<String>,
    pub external_user: Option<String>,
    /// The app's `HTTP-Referer`, as the dataplane recorded it.
    pub http_referer: Option<String>,
}

pub(super) const COLUMNS: &str = "id, key_hash, organization_id, workspace_id, model, provider_id, \
    upstream_model, upstream_id, created_at, prompt_tokens, completion_tokens, cached_tokens, \
    reasoning_tokens, cost_usd, streamed, finish_reason, latency_ms, ttfb_ms, status, cancelled, \
    is_byok, app_title, dataplane_id, provider_responses, preset_id, preset_version, session_id, \
    external_user, cache_write_tokens, http_referer";
const COLUMN_COUNT: usize = 30;
/// 30 columns: within SQLite's and PostgreSQL's bind limits.
const ROWS_PER_INSERT: usize = 200;

/// The insert statement for `rows` rows; a full chunk's is built once per dialect.
fn insert_sql(sqlite: bool, rows: usize) -> std::borrow::Cow<'static, str> {
    static FULL: super::StatementCache = super::StatementCache::new();
    FULL.get(sqlite, rows, ROWS_PER_INSERT, build_insert_sql)
}

fn build_insert_sql(sqlite: bool, rows: usize) -> String {
    let mut sql = format!("INSERT INTO generations ({COLUMNS}) VALUES ");
    super::push_value_rows(&mut sql, sqlite, rows, COLUMN_COUNT);
    // Only the rows new to the store come back: they are the ones the rollups add.
    sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
    sql
}

impl Store {
    /// Records generations; a generation id seen before is ignored (idempotent ingest).
    /// Returns how many were new.
    pub async fn insert_generations(&self, generations: &[Generation]) -> Result<u64, StoreError> {
        Ok(self
            .insert_generation_groups(&[generations])
            .await?
            .into_iter()
            .sum())
    }

    /// Records several groups of generations in one transaction (group commit: one commit, and
    /// each index page touched once, for every group); returns how many of each group were new.
    /// Rows go in multi-row statements of `ROWS_PER_INSERT`, never spanning two groups.
    pub async fn insert_generation_groups(
        &self,
        groups: &[&[Generation]],
    ) -> Result<Vec<u64>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let mut counts = Vec::with_capacity(groups.len());
        // The generations this call records for the first time (a redelivered one adds nothing).
        let mut fresh: Vec<&Generation> = Vec::new();
        for group in groups {
            let mut inserted = 0;
            for chunk in group.chunks(ROWS_PER_INSERT) {
                let sql = insert_sql(self.sqlite, chunk.len());
                let mut query = sqlx::query(&sql);
                for g in chunk {
                    query = query
                        .bind(&g.id)
                        .bind(&g.key_hash)
                        .bind(&g.organization_id)
                        .bind(&g.workspace_id)
                        .bind(&g.model)
                        .bind(&g.provider_id)
                        .bind(&g.upstream_model)
                        .bind(&g.upstream_id)
                        .bind(g.created_at)
                        .bind(g.prompt_tokens)
                        .bind(g.completion_tokens)
                        .bind(g.cached_tokens)
                        .bind(g.reasoning_tokens)
                        .bind(g.cost_usd.clone())
                        .bind(flag(g.streamed))
                        .bind(g.finish_reason.clone())
                        .bind(g.latency_ms)
                        .bind(g.ttfb_ms)
                        .bind(g.status)
                        .bind(flag(g.cancelled))
                        .bind(flag(g.is_byok))
                        .bind(&g.app_title)
                        .bind(&g.dataplane_id)
                        .bind(g.provider_responses.clone())
                        .bind(g.preset_id.clone())
                        .bind(g.preset_version)
                        .bind(g.session_id.clone())
                        .bind(g.external_user.clone())
                        .bind(g.cache_write_tokens)
                        .bind(g.http_referer.clone());
                }
                let new_ids = query.fetch_all(&mut *tx).await?;
                inserted += new_ids.len() as u64;
                let mut new_ids = new_ids
                    .iter()
                    .map(|row| row.try_get::<String, _>("id"))
                    .collect::<Result<std::collections::HashSet<String>, _>>()?;
                // Taken once each: an id twice in one batch was recorded once.
                fresh.extend(chunk.iter().filter(|g| new_ids.remove(&g.id)));
            }
            counts.push(inserted);
        }
        super::rollups::add(&mut tx, self.sqlite, &fresh).await?;
        super::external_users::register(&mut tx, &fresh).await?;
        tx.commit().await?;
        Ok(counts)
    }

    pub async fn generation(&self, id: &str) -> Result<Option<Generation>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM generations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(generation).transpose()
    }
}

pub(super) fn generation(r: &AnyRow) -> Result<Generation, StoreError> {
    Ok(Generation {
        id: r.try_get("id")?,
        key_hash: r.try_get("key_hash")?,
        organization_id: r.try_get("organization_id")?,
        workspace_id: r.try_get("workspace_id")?,
        model: r.try_get("model")?,
        provider_id: r.try_get("provider_id")?,
        upstream_model: r.try_get("upstream_model")?,
        upstream_id: r.try_get("upstream_id")?,
        created_at: r.try_get("created_at")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        cached_tokens: r.try_get("cached_tokens")?,
        cache_write_tokens: r.try_get("cache_write_tokens")?,
        reasoning_tokens: r.try_get("reasoning_tokens")?,
        cost_usd: r.try_get("cost_usd")?,
        streamed: r.try_get::<i64, _>("streamed")? != 0,
        finish_reason: r.try_get("finish_reason")?,
        latency_ms: r.try_get("latency_ms")?,
        ttfb_ms: r.try_get("ttfb_ms")?,
        status: r.try_get("status")?,
        cancelled: r.try_get::<i64, _>("cancelled")? != 0,
        is_byok: r.try_get::<i64, _>("is_byok")? != 0,
        app_title: r.try_get("app_title")?,
        dataplane_id: r.try_get("dataplane_id")?,
        provider_responses: r.try_get("provider_responses")?,
        preset_id: r.try_get("preset_id")?,
        preset_version: r.try_get("preset_version")?,
        session_id: r.try_get("session_id")?,
        external_user: r.try_get("external_user")?,
        http_referer: r.try_get("http_referer")?,
    })
}

/// A key's spend from the usage ledger, USD: all time and in the current UTC day, week
/// (from Monday) and month, split into BYOK and not, as OpenRouter's key object reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeyUsage {
    pub total: f64,
    pub daily: f64,
    pub weekly: f64,
    pub monthly: f64,
    pub byok_total: f64,
    pub byok_daily: f64,
    pub byok_weekly: f64,
    pub byok_monthly: f64,
}

/// Window starts (Unix ms) for [`Store::key_usage`].
#[derive(Clone, Copy, Debug)]
pub struct WindowStarts {
    pub day: i64,
    pub week: i64,
    pub month: i64,
}

impl WindowStarts {
    pub fn at(now_ms: i64) -> WindowStarts {
        use chrono::{Datelike, Duration};
        let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        let day = now.date_naive();
        let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        let first = day.with_day(1).unwrap_or(day);
        let ms = |d: chrono::NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_millis())
        };
        WindowStarts {
            day: ms(day),
            week: ms(monday),
            month: ms(first),
        }
    }
}

impl Store {
    /// Spend per key from the ledger, in one query for a page of keys.
    pub async fn key_usage(
        &self,
        hashes: &[&str],
        starts: WindowStarts,
    ) -> Result<std::collections::HashMap<String, KeyUsage>, StoreError> {
        let mut usage = std::collections::HashMap::new();
        if hashes.is_empty() {
            return Ok(usage);
        }
        let placeholders: Vec<String> = (0..hashes.len()).map(|i| format!("${}", i + 4)).collect();
        let cost = "CAST(cost_usd AS DOUBLE PRECISION)";
        let sql = format!(
            "SELECT key_hash, is_byok, \
             CAST(COALESCE(SUM({cost}), 0) AS DOUBLE PRECISION) AS total, \
             CAST(COALESCE(SUM(CASE WHEN created_at >= $1 THEN {cost} END), 0) AS DOUBLE PRECISION) AS daily, \
             CAST(COALESCE(SUM(CASE WHEN created_at >= $2 THEN {cost} END), 0) AS DOUBLE PRECISION) AS weekly, \
             CAST(COALESCE(SUM(CASE WHEN created_at >= $3 THEN {cost} END), 0) AS DOUBLE PRECISION) AS monthly \
             FROM generations WHERE cost_usd IS NOT NULL AND key_hash IN ({}) GROUP BY key_hash, is_byok",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(starts.day)
            .bind(starts.week)
            .bind(starts.month);
        for h in hashes {
            query = query.bind(*h);
        }
        for row in query.fetch_all(&mut *self.conn().await?).await? {
            let hash: String = row.try_get("key_hash")?;
            let entry: &mut KeyUsage = usage.entry(hash).or_default();
            let (total, daily, weekly, monthly): (f64, f64, f64, f64) = (
                row.try_get("total")?,
                row.try_get("daily")?,
                row.try_get("weekly")?,
                row.try_get("monthly")?,
            );
            if row.try_get::<i64, _>("is_byok")? != 0 {
                entry.byok_total += total;
                entry.byok_daily += daily;
                entry.byok_weekly += weekly;
                entry.byok_monthly += monthly;
            } else {
                entry.total += total;
                entry.daily += daily;
                entry.weekly += weekly;
                entry.monthly += monthly;
            }
        }
        Ok(usage)
    }
}
