//! Usage rolled up per hour and per UTC day as generations arrive, in the transaction that
//! records them: activity, exports and reconciliation read these rows, never the whole history.
//! Only generations new to the store are added (ingest is idempotent, and so are the rollups).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sqlx::Row;
use sqlx::any::AnyRow;

use switchyard_policy::{Ledger, Money};

use super::generations::Generation;
use super::{Store, StoreError, flag};

/// The time resolutions usage is rolled up at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    Hour,
    Day,
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// What the coarse rollups (hours, and days without detail) are grouped by. Key, member and
/// end user are left out of them: a batch of usage touches about one coarse row per workspace
/// and model, not one per key and user (kept per hour, they halved ingest on PostgreSQL), and
/// reads that need neither (most activity, organization and workspace spend) scan a few rows
/// per day.
pub const COARSE_DIMENSIONS: [Dimension; 5] = [
    Dimension::Bucket,
    Dimension::Workspace,
    Dimension::Model,
    Dimension::Provider,
    Dimension::Byok,
];

/// The kinds of rollup rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Grain {
    /// Per hour, coarse.
    Hour,
    /// Per UTC day, coarse.
    Day,
    /// Per UTC day, with key and end user too.
    DayDetail,
}

impl Grain {
    fn code(self) -> &'static str {
        match self {
            Grain::Hour => "h",
            Grain::Day => "c",
            Grain::DayDetail => "d",
        }
    }

    fn resolution(self) -> Resolution {
        match self {
            Grain::Hour => Resolution::Hour,
            Grain::Day | Grain::DayDetail => Resolution::Day,
        }
    }

    /// The rows that answer a read at `resolution` that needs `detail` (key, member or end user).
    fn for_read(resolution: Resolution, detail: bool) -> Result<Grain, StoreError> {
        match (resolution, detail) {
            (Resolution::Hour, false) => Ok(Grain::Hour),
            (Resolution::Day, false) => Ok(Grain::Day),
            (Resolution::Day, true) => Ok(Grain::DayDetail),
            (Resolution::Hour, true) => Err(StoreError::Unsupported(
                "usage by key, member or end user is kept per day, not per hour",
            )),
        }
    }
}

impl Resolution {
    pub fn len_ms(self) -> i64 {
        match self {
            Resolution::Hour => HOUR_MS,
            Resolution::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `ms` (Unix days start at UTC midnight).
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.len_ms()) * self.len_ms()
    }

    /// The first bucket start at or after `ms`.
    pub fn ceil(self, ms: i64) -> i64 {
        let floor = self.floor(ms);
        if floor == ms {
            ms
        } else {
            floor.saturating_add(self.len_ms())
        }
    }
}

/// What one rollup row counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub reasoning_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    /// Exact; unpriced generations add nothing.
    pub cost: Money,
    /// Sums, for averages.
    pub latency_ms: i64,
    pub ttfb_ms: i64,
    pub errors: i64,
}

impl Totals {
    fn add_generation(&mut self, g: &Generation, cost: Money) {
        self.requests += 1;
        self.prompt_tokens += g.prompt_tokens;
        self.completion_tokens += g.completion_tokens;
        self.reasoning_tokens += g.reasoning_tokens;
        self.cached_tokens += g.cached_tokens;
        self.cache_write_tokens += g.cache_write_tokens;
        self.cost = self.cost.saturating_add(cost);
        self.latency_ms += g.latency_ms;
        self.ttfb_ms += g.ttfb_ms;
        self.errors += i64::from(g.status >= 400);
    }

    pub fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.cost = self.cost.saturating_add(o.cost);
        self.latency_ms += o.latency_ms;
        self.ttfb_ms += o.ttfb_ms;
        self.errors += o.errors;
    }
}

/// One rollup row's identity: its grain and bucket, and what it is grouped by (borrowed from
/// the generations: ingest aggregates without copying a string per generation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RollupKey<'g> {
    organization_id: &'g str,
    grain: Grain,
    bucket_ms: i64,
    workspace_id: &'g str,
    key_hash: &'g str,
    external_user: &'g str,
    model: &'g str,
    provider_id: &'g str,
    is_byok: bool,
}

/// A generation's recorded cost; one that does not parse (never accepted by ingest, which checks
/// it) counts as unpriced rather than stopping the rollup.
fn cost_of(g: &Generation) -> Money {
    match g.cost_usd.as_deref().map(Money::parse_recorded) {
        Some(Ok(cost)) => cost,
        Some(Err(e)) => {
            tracing::warn!(generation = %g.id, error = %e, "generation cost does not parse; rolled up as unpriced");
            Money::ZERO
        }
        None => Money::ZERO,
    }
}

/// The rollup rows `generations` add to, at every grain.
fn aggregate<'g>(
    generations: impl IntoIterator<Item = &'g Generation>,
) -> BTreeMap<RollupKey<'g>, Totals> {
    let mut rows: BTreeMap<RollupKey<'g>, Totals> = BTreeMap::new();
    for g in generations {
        let cost = cost_of(g);
        for grain in [Grain::Hour, Grain::Day, Grain::DayDetail] {
            let fine = grain == Grain::DayDetail;
            let key = RollupKey {
                organization_id: &g.organization_id,
                grain,
                bucket_ms: grain.resolution().floor(g.created_at),
                workspace_id: &g.workspace_id,
                key_hash: if fine { &g.key_hash } else { "" },
                external_user: if fine {
                    g.external_user.as_deref().unwrap_or("")
                } else {
                    ""
                },
                model: &g.model,
                provider_id: &g.provider_id,
                is_byok: g.is_byok,
            };
            rows.entry(key).or_default().add_generation(g, cost);
        }
    }
    rows
}

const ROLLUP_COLUMNS: &str = "organization_id, span, bucket_ms, workspace_id, key_hash, \
    external_user, model, provider_id, is_byok, requests, prompt_tokens, completion_tokens, \
    reasoning_tokens, cached_tokens, cache_write_tokens, cost_usd, cost_pico, latency_ms, \
    ttfb_ms, errors";
const ROLLUP_COLUMN_COUNT: usize = 20;
const ROLLUP_KEY: &str = "organization_id, span, bucket_ms, workspace_id, key_hash, \
    external_user, model, provider_id, is_byok";
const ROLLUP_ROWS_PER_UPSERT: usize = 200;

/// Adds to existing rows; the picodollars carry into whole dollars at Money's unit
/// (`PICOS_PER_USD`; a test holds this text to it). Both sides read the row as it was before
/// the update, in SQLite as in PostgreSQL.
const ROLLUP_ADD: &str = "requests = usage_rollups.requests + excluded.requests, \
    prompt_tokens = usage_rollups.prompt_tokens + excluded.prompt_tokens, \
    completion_tokens = usage_rollups.completion_tokens + excluded.completion_tokens, \
    reasoning_tokens = usage_rollups.reasoning_tokens + excluded.reasoning_tokens, \
    cached_tokens = usage_rollups.cached_tokens + excluded.cached_tokens, \
    cache_write_tokens = usage_rollups.cache_write_tokens + excluded.cache_write_tokens, \
    cost_usd = usage_rollups.cost_usd + excluded.cost_usd \
        + (usage_rollups.cost_pico + excluded.cost_pico) / 1000000000000, \
    cost_pico = (usage_rollups.cost_pico + excluded.cost_pico) % 1000000000000, \
    latency_ms = usage_rollups.latency_ms + excluded.latency_ms, \
    ttfb_ms = usage_rollups.ttfb_ms + excluded.ttfb_ms, \
    errors = usage_rollups.errors + excluded.errors";

/// The upsert for `rows` rows; a full chunk's is built once per dialect (perf: formatting it
/// for every batch was 2% of ingest).
fn upsert_sql(sqlite: bool, rows: usize) -> std::borrow::Cow<'static, str> {
    static FULL: super::StatementCache = super::StatementCache::new();
    FULL.get(sqlite, rows, ROLLUP_ROWS_PER_UPSERT, build_upsert_sql)
}

fn build_upsert_sql(sqlite: bool, rows: usize) -> String {
    let mut sql = format!("INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) VALUES ");
    super::push_value_rows(&mut sql, sqlite, rows, ROLLUP_COLUMN_COUNT);
    let _ = write!(
        sql,
        " ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {ROLLUP_ADD}"
    );
    sql
}

/// An amount as stored: whole dollars and the picodollars below one.
fn split(cost: Money) -> (i64, i64) {
    let (dollars, picos) = cost.dollars_and_picos();
    // Picos are below 10^12: they always fit.
    (
        i64::try_from(dollars).unwrap_or(i64::MAX),
        i64::try_from(picos).unwrap_or(0),
    )
}

/// Summed columns back to an amount (the picodollars of a sum may exceed a dollar).
fn join(dollars: i64, picos: i64) -> Money {
    Money::from_dollars_and_picos(
        u128::try_from(dollars.max(0)).unwrap_or(0),
        u128::try_from(picos.max(0)).unwrap_or(0),
    )
}

/// Adds `generations` (new to the store) to the rollups, on `conn` (the recording transaction).
pub(super) async fn add(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    generations: &[&Generation],
) -> Result<(), StoreError> {
    let rows: Vec<(RollupKey, Totals)> =
        aggregate(generations.iter().copied()).into_iter().collect();
    for chunk in rows.chunks(ROLLUP_ROWS_PER_UPSERT) {
        let sql = upsert_sql(sqlite, chunk.len());
        let mut query = sqlx::query(&sql);
        for (k, t) in chunk {
            let (usd, pico) = split(t.cost);
            query = query
                .bind(k.organization_id)
                .bind(k.grain.code())
                .bind(k.bucket_ms)
                .bind(k.workspace_id)
                .bind(k.key_hash)
                .bind(k.external_user)
                .bind(k.model)
                .bind(k.provider_id)
                .bind(flag(k.is_byok))
                .bind(t.requests)
                .bind(t.prompt_tokens)
                .bind(t.completion_tokens)
                .bind(t.reasoning_tokens)
                .bind(t.cached_tokens)
                .bind(t.cache_write_tokens)
                .bind(usd)
                .bind(pico)
                .bind(t.latency_ms)
                .bind(t.ttfb_ms)
                .bind(t.errors);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// What usage can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// The bucket's start (with `Resolution::Day`, the UTC date).
    Bucket,
    Workspace,
    Key,
    /// The member who created the key.
    Creator,
    /// The request's `user`.
    User,
    Model,
    Provider,
    Byok,
}

impl Dimension {
    fn expr(self) -> &'static str {
        match self {
            Dimension::Bucket => "CAST(r.bucket_ms AS TEXT)",
            Dimension::Workspace => "r.workspace_id",
            Dimension::Key => "r.key_hash",
            Dimension::Creator => "COALESCE(k.creator_user_id, '')",
            Dimension::User => "r.external_user",
            Dimension::Model => "r.model",
            Dimension::Provider => "r.provider_id",
            Dimension::Byok => "CAST(r.is_byok AS TEXT)",
        }
    }
}

/// Which rollup rows a query reads.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    pub workspace_id: Option<String>,
    pub key_hash: Option<String>,
    /// Keys this member created.
    pub creator_user_id: Option<String>,
    pub external_user: Option<String>,
    pub model: Option<String>,
    pub provider_id: Option<String>,
}

/// A grouped read of the rollups: `[from_ms, to_ms)`, both on `resolution`'s bucket boundaries.
#[derive(Clone, Debug)]
pub struct UsageQuery {
    pub organization_id: String,
    pub resolution: Resolution,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filter: UsageFilter,
    pub group_by: Vec<Dimension>,
}

/// One group: its values, in `group_by`'s order, and what it adds up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub group: Vec<String>,
    pub totals: Totals,
}

const SUMS: &str = "CAST(COALESCE(SUM(r.requests), 0) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(r.prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(r.completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(r.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
    CAST(COALESCE(SUM(r.cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(r.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(r.cost_usd), 0) AS BIGINT) AS cost_usd, \
    CAST(COALESCE(SUM(r.cost_pico), 0) AS BIGINT) AS cost_pico, \
    CAST(COALESCE(SUM(r.latency_ms), 0) AS BIGINT) AS latency_ms, \
    CAST(COALESCE(SUM(r.ttfb_ms), 0) AS BIGINT) AS ttfb_ms, \
    CAST(COALESCE(SUM(r.errors), 0) AS BIGINT) AS errors";

fn totals(row: &AnyRow) -> Result<Totals, StoreError> {
    Ok(Totals {
        requests: row.try_get("requests")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        cache_write_tokens: row.try_get("cache_write_tokens")?,
        cost: join(row.try_get("cost_usd")?, row.try_get("cost_pico")?),
        latency_ms: row.try_get("latency_ms")?,
        ttfb_ms: row.try_get("ttfb_ms")?,
        errors: row.try_get("errors")?,
    })
}

impl Store {
    /// Usage grouped as `query` asks, from the rollups; groups in ascending order of their values.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let f = &query.filter;
        let detail = query
            .group_by
            .iter()
            .any(|d| !COARSE_DIMENSIONS.contains(d))
            || f.key_hash.is_some()
            || f.creator_user_id.is_some()
            || f.external_user.is_some();
        let grain = Grain::for_read(query.resolution, detail)?;
        let mut binds: Vec<String> = vec![query.organization_id.clone(), grain.code().to_owned()];
        let mut filters = String::new();
        for (column, value) in [
            ("r.workspace_id", &f.workspace_id),
            ("r.key_hash", &f.key_hash),
            ("k.creator_user_id", &f.creator_user_id),
            ("r.external_user", &f.external_user),
            ("r.model", &f.model),
            ("r.provider_id", &f.provider_id),
        ] {
            if let Some(value) = value {
                binds.push(value.clone());
                let _ = write!(filters, " AND {column} = ${}", binds.len() + 2);
            }
        }
        let dims: Vec<String> = query
            .group_by
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{} AS g{i}", d.expr()))
            .collect();
        let mut select = dims.join(", ");
        if !select.is_empty() {
            select.push_str(", ");
        }
        let group = if dims.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = (0..dims.len()).map(|i| format!("g{i}")).collect();
            format!(" GROUP BY {0} ORDER BY {0}", names.join(", "))
        };
        // Keys' creators only when a member is asked about.
        let join = if query.group_by.contains(&Dimension::Creator) || f.creator_user_id.is_some() {
            "LEFT JOIN api_keys k ON k.hash = r.key_hash"
        } else {
            ""
        };
        // $1, $2: organization and grain; $3, $4: the range; then the filters' values.
        let sql = format!(
            "SELECT {select}{SUMS} FROM usage_rollups r {join} \
             WHERE r.organization_id = $1 AND r.span = $2 \
             AND r.bucket_ms >= $3 AND r.bucket_ms < $4{filters}{group}"
        );
        let mut q = sqlx::query(&sql)
            .bind(binds[0].clone())
            .bind(binds[1].clone())
            .bind(query.from_ms)
            .bind(query.to_ms);
        for value in &binds[2..] {
            q = q.bind(value.clone());
        }
        let mut out = Vec::new();
        for row in q.fetch_all(&mut *self.conn().await?).await? {
            let totals = totals(&row)?;
            // An ungrouped sum over no rows is one row of zeros: no group at all.
            if dims.is_empty() && totals.requests == 0 {
                continue;
            }
            let group = (0..dims.len())
                .map(|i| row.try_get::<String, _>(format!("g{i}").as_str()))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(UsageRow { group, totals });
        }
        Ok(out)
    }

    /// Exact spend in a part of the ledger since `since_ms`, from the rollups: whole days from
    /// the first day boundary at or after it, hours before that, and the generations of the
    /// part-hour before the first hour boundary (for a key or member, of the part-day). Every
    /// limit window starts on a day, so that part is empty today.
    pub async fn ledger_spend(
        &self,
        scope: &Ledger,
        since_ms: i64,
        include_byok: bool,
    ) -> Result<Money, StoreError> {
        let hour = Resolution::Hour.ceil(since_ms);
        let day = Resolution::Day.ceil(since_ms);
        let by_key = matches!(scope, Ledger::Key(_) | Ledger::Member { .. });
        let days = if by_key { Grain::DayDetail } else { Grain::Day };
        let mut total = self
            .rollup_spend(scope, days, day, i64::MAX, include_byok)
            .await?;
        // Hours know workspaces, not keys: a key's or member's part-day is read from its
        // generations (their index is by key and time), only a window's first day at most.
        if by_key && since_ms < day {
            return Ok(total.saturating_add(
                self.generation_spend(scope, since_ms, day, include_byok)
                    .await?,
            ));
        }
        if hour < day {
            total = total.saturating_add(
                self.rollup_spend(scope, Grain::Hour, hour, day, include_byok)
                    .await?,
            );
        }
        if since_ms < hour {
            total = total.saturating_add(
                self.generation_spend(scope, since_ms, hour, include_byok)
                    .await?,
            );
        }
        Ok(total)
    }

    async fn rollup_spend(
        &self,
        scope: &Ledger,
        grain: Grain,
        from_ms: i64,
        to_ms: i64,
        include_byok: bool,
    ) -> Result<Money, StoreError> {
        let (filter, first, second) = ledger_filter(scope);
        // The scope's organization first, so the primary key (organization, span, bucket)
        // finds the rows.
        let organization = match scope {
            Ledger::Organization(_) => "$1",
            Ledger::Key(_) => "(SELECT organization_id FROM api_keys WHERE hash = $1)",
            Ledger::Workspace(_) | Ledger::Member { .. } => {
                "(SELECT organization_id FROM workspaces WHERE id = $1)"
            }
        };
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS BIGINT) AS cost_usd, \
             CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS cost_pico \
             FROM usage_rollups WHERE organization_id = {organization} AND span = $3 \
             AND bucket_ms >= $4 AND bucket_ms < $5 AND {filter} AND ($6 = 1 OR is_byok = 0)"
        ))
        .bind(first)
        .bind(second)
        .bind(grain.code())
        .bind(from_ms)
        .bind(to_ms)
        .bind(flag(include_byok))
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(join(row.try_get("cost_usd")?, row.try_get("cost_pico")?))
    }

    /// The recorded costs of generations in `[from_ms, to_ms)`, summed exactly in Rust.
    pub(super) async fn generation_spend(
        &self,
        scope: &Ledger,
        from_ms: i64,
        to_ms: i64,
        include_byok: bool,
    ) -> Result<Money, StoreError> {
        let (filter, first, second) = ledger_filter(scope);
        let rows = sqlx::query(&format!(
            "SELECT cost_usd FROM generations WHERE {filter} AND created_at >= $3 \
             AND created_at < $4 AND cost_usd IS NOT NULL AND ($5 = 1 OR is_byok = 0)"
        ))
        .bind(first)
        .bind(second)
        .bind(from_ms)
        .bind(to_ms)
        .bind(flag(include_byok))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut total = Money::ZERO;
        for row in rows {
            let cost: String = row.try_get("cost_usd")?;
            let cost = Money::parse_recorded(&cost)
                .map_err(|e| StoreError::Corrupt(format!("generation cost: {e}")))?;
            total = total.saturating_add(cost);
        }
        Ok(total)
    }

    /// Adds the generations recorded before the rollups existed, once: the first replica to get
    /// here marks it done in the same transaction, so no other adds them again.
    pub async fn backfill_rollups(&self, now_ms: i64) -> Result<u64, StoreError> {
        let tx = self.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO rollup_backfill (id, done_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(now_ms)
        .execute(&mut *tx.conn().await?)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(0);
        }
        const PAGE: i64 = 10_000;
        let mut after = String::new();
        let mut added = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {} FROM generations WHERE id > $1 ORDER BY id LIMIT $2",
                super::generations::COLUMNS
            ))
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&mut *tx.conn().await?)
            .await?;
            let page = rows
                .iter()
                .map(super::generations::generation)
                .collect::<Result<Vec<_>, _>>()?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let refs: Vec<&Generation> = page.iter().collect();
            add(&mut *tx.conn().await?, self.sqlite, &refs).await?;
            added += page.len() as u64;
        }
        tx.commit().await?;
        Ok(added)
    }
}

impl Store {
    /// Forgets the rollups and that they were backfilled, for tests of the backfill.
    #[cfg(any(test, feature = "testing"))]
    pub async fn clear_rollups_for_test(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        sqlx::query("DELETE FROM usage_rollups")
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM rollup_backfill")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The rows of the ledger a scope covers: $1 and $2 select them.
fn ledger_filter(scope: &Ledger) -> (&'static str, &str, &str) {
    match scope {
        // A key's limit counts on its whole rotation line.
        Ledger::Key(h) => (
            "key_hash IN (SELECT hash FROM api_keys WHERE COALESCE(limit_lineage, hash) = $1) \
             AND $2 = ''",
            h,
            "",
        ),
        Ledger::Workspace(w) => ("workspace_id = $1 AND $2 = ''", w, ""),
        Ledger::Organization(o) => ("organization_id = $1 AND $2 = ''", o, ""),
        Ledger::Member {
            user_id,
            workspace_id,
        } => (
            "workspace_id = $1 AND key_hash IN \
             (SELECT hash FROM api_keys WHERE creator_user_id = $2)",
            workspace_id,
            user_id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_utc_hours_and_days() {
        let t = 1_767_323_045_678; // 2026-01-02T03:04:05.678Z
        assert_eq!(Resolution::Hour.floor(t), 1_767_322_800_000);
        assert_eq!(Resolution::Day.floor(t), 1_767_312_000_000);
        assert_eq!(Resolution::Day.ceil(t), 1_767_312_000_000 + DAY_MS);
        assert_eq!(Resolution::Day.ceil(1_767_312_000_000), 1_767_312_000_000);
        assert_eq!(Resolution::Hour.floor(-1), -HOUR_MS);
    }

    #[test]
    fn costs_split_and_join_exactly() {
        // The upsert's carry is Money's unit.
        let unit = switchyard_policy::money::PICOS_PER_USD;
        assert!(
            ROLLUP_ADD.contains(&format!("/ {unit}")) && ROLLUP_ADD.contains(&format!("% {unit}"))
        );
        for text in [
            "0",
            "0.000000000001",
            "1.999999999999",
            "123456.5",
            "1000000000",
        ] {
            let m = Money::parse_recorded(text).unwrap();
            let (usd, pico) = split(m);
            assert!(pico < 1_000_000_000_000);
            assert_eq!(join(usd, pico), m, "{text}");
        }
    }

    #[test]
    fn generations_roll_up_per_hour_and_day() {
        let g = |id: &str, at: i64, cost: Option<&str>, user: Option<&str>| Generation {
            id: id.into(),
            organization_id: "o".into(),
            workspace_id: "w".into(),
            key_hash: "k".into(),
            model: "m".into(),
            provider_id: "p".into(),
            created_at: at,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_usd: cost.map(str::to_owned),
            external_user: user.map(str::to_owned),
            status: 200,
            ..Generation::default()
        };
        let day = 1_767_312_000_000;
        let generations = [
            g("a", day + 10, Some("0.5"), None),
            g("b", day + HOUR_MS + 1, Some("0.000000000001"), None),
            g("c", day + 2, None, None),
            g("d", day + 3, Some("1"), Some("alice")),
        ];
        let rows = aggregate(&generations);
        let find = |grain, bucket, user: &str| {
            rows.iter()
                .find(|(k, _)| k.grain == grain && k.bucket_ms == bucket && k.external_user == user)
                .map(|(_, t)| *t)
                .unwrap()
        };
        let day_total = find(Grain::DayDetail, day, "");
        assert_eq!(day_total.requests, 3);
        assert_eq!(day_total.prompt_tokens, 30);
        assert_eq!(
            day_total.cost,
            Money::parse_recorded("0.500000000001").unwrap()
        );
        // Coarse rows are not split by end user (nor key).
        assert_eq!(find(Grain::Hour, day, "").requests, 3);
        assert_eq!(find(Grain::Hour, day + HOUR_MS, "").requests, 1);
        assert_eq!(find(Grain::Day, day, "").requests, 4);
        assert_eq!(
            find(Grain::DayDetail, day, "alice").cost,
            Money::parse_recorded("1").unwrap()
        );
        assert_eq!(rows.len(), 5);
    }
}
