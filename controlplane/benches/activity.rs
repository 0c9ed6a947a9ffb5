//! Activity, export and ledger reads over a large history, from the rollups beside a full scan
//! of the generations: `cargo bench -p switchyard-controlplane --bench activity`.
//!
//! `ACTIVITY_GENERATIONS` (default 1,000,000; give 10000000 for the 10M figure) generations over
//! 60 days are recorded through the ingest path (so the rollups are built as in production) into
//! a throwaway SQLite database, or PostgreSQL with `ACTIVITY_DB=postgres`. Traffic is shaped like
//! a team's: 200 keys in 10 workspaces, 1,000 end users each on one key, each key on 3 of 20
//! models. Then, each timed over several runs (median printed):
//! - `GET /activity` (30 days by day, model and endpoint) from the rollups, and the same totals
//!   by a GROUP BY over the generations;
//! - an export by model over 30 days, both ways;
//! - the organization's lifetime spend (what reconciliation and `/credits` read), both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use sqlx::Row;
use switchyard_controlplane::manage::activity::{ActivityFilter, ExportGroup, ExportRequest};
use switchyard_controlplane::store::{Generation, Store};
use switchyard_controlplane::testing::{self, Database};
use switchyard_policy::{Ledger, Money};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY: i64 = 86_400_000;
/// The injected clock: 2026-03-15T00:00:00Z.
const NOW: i64 = 1_773_532_800_000;
const BATCH: usize = 5_000;

fn generation(i: usize, n: usize, organization_id: &str, workspaces: &[String]) -> Generation {
    let user = i % 1_000;
    let key = user % 200;
    let model = (key * 7 + i % 3) % 20;
    Generation {
        id: format!("gen-{i:012}"),
        key_hash: format!("{key:064x}"),
        organization_id: organization_id.to_owned(),
        workspace_id: workspaces[key % workspaces.len()].clone(),
        model: format!("vendor/model-{model}"),
        provider_id: format!("provider-{}", model % 5),
        upstream_model: format!("model-{model}"),
        // Spread evenly over the 60 days before NOW.
        created_at: NOW - 60 * DAY + (i as i64) * (60 * DAY / n as i64),
        prompt_tokens: 1_000 + (i % 500) as i64,
        completion_tokens: 200 + (i % 300) as i64,
        cost_usd: Some(format!("0.000{:09}", (i * 7_919) % 1_000_000_000)),
        external_user: Some(format!("user-{user}")),
        latency_ms: 800,
        ttfb_ms: 120,
        status: 200,
        is_byok: i.is_multiple_of(10),
        ..Generation::default()
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

async fn timed<F, Fut, T>(runs: usize, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(f().await);
        times.push(started.elapsed());
    }
    (median(times), last.unwrap())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::var("ACTIVITY_GENERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let postgres = std::env::var("ACTIVITY_DB").is_ok_and(|v| v == "postgres");
    let database = if postgres {
        Database::postgres().await
    } else {
        Database::sqlite()
    };
    let fixture = testing::fixture(&database.url).await;
    let store: &Store = &fixture.store;
    let org = fixture.organization_id.clone();
    let workspaces: Vec<String> = (0..10).map(|w| format!("ws-{w}")).collect();

    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Generation> = (i..(i + BATCH).min(n))
            .map(|j| generation(j, n, &org, &workspaces))
            .collect();
        store.insert_generations(&batch).await.unwrap();
        i += BATCH;
    }
    let load = started.elapsed();
    let rollup_rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM usage_rollups")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    println!(
        "{} generations recorded with their rollups in {:.1} s ({:.0}/s; {} rollup rows), {}",
        n,
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        rollup_rows,
        if postgres { "PostgreSQL" } else { "SQLite" }
    );

    let from = NOW - 30 * DAY;
    // GET /activity, from the rollups (through the manage layer, as the API calls it).
    let filter = ActivityFilter::default();
    let (activity, items) =
        timed(5, || fixture.manage.activity(&fixture.admin, &filter, NOW)).await;
    let items = items.unwrap();
    // A GROUP BY over the organization's generations of the 30 days; returns the groups.
    let scan = |select: &'static str, group: &'static str| {
        let org = org.clone();
        async move {
            sqlx::query(&format!(
                "SELECT {select}, COUNT(*) AS requests, \
                 SUM(CAST(cost_usd AS DOUBLE PRECISION)) AS cost FROM generations \
                 WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3 \
                 GROUP BY {group}"
            ))
            .bind(org)
            .bind(from)
            .bind(NOW)
            .fetch_all(store.pool())
            .await
            .unwrap()
            .len()
        }
    };
    let (activity_scan, scanned) = timed(3, || {
        scan(
            "created_at / 86400000 AS day, model, provider_id, is_byok, \
             CAST(SUM(prompt_tokens) AS BIGINT) AS prompt",
            "created_at / 86400000, model, provider_id, is_byok",
        )
    })
    .await;
    let requests: i64 = items.iter().map(|i| i.totals.requests).sum();
    println!(
        "activity (30 days):     rollups {:>9.1} ms ({} items, {} requests)   full scan {:>9.1} ms ({} groups)   scan / rollups {:.0}x",
        ms(activity),
        items.len(),
        requests,
        ms(activity_scan),
        scanned,
        activity_scan.as_secs_f64() / activity.as_secs_f64()
    );

    let request = ExportRequest::of(ExportGroup::Model);
    let (export, exported) = timed(5, || {
        fixture
            .manage
            .export_usage(&fixture.admin, None, &request, NOW)
    })
    .await;
    let exported = exported.unwrap();
    let (export_scan, _) = timed(3, || scan("model", "model")).await;
    println!(
        "export by model (30 d): rollups {:>9.1} ms ({} lines, {} USD)   full scan {:>9.1} ms   scan / rollups {:.0}x",
        ms(export),
        exported.lines.len(),
        exported.total.usage,
        ms(export_scan),
        export_scan.as_secs_f64() / export.as_secs_f64()
    );

    let scope = Ledger::Organization(org.clone());
    let (ledger, spent) = timed(5, || store.ledger_spend(&scope, 0, false)).await;
    let spent = spent.unwrap();
    // What every reconciliation pass did before the rollups: every priced generation, summed
    // exactly.
    let (ledger_scan, scanned) = timed(3, || async {
        let rows = sqlx::query(
            "SELECT cost_usd FROM generations WHERE organization_id = $1 AND cost_usd IS NOT NULL \
             AND is_byok = 0",
        )
        .bind(&org)
        .fetch_all(store.pool())
        .await
        .unwrap();
        rows.iter().fold(Money::ZERO, |t, r| {
            t.saturating_add(
                Money::parse_recorded(&r.try_get::<String, _>("cost_usd").unwrap()).unwrap(),
            )
        })
    })
    .await;
    assert_eq!(spent, scanned, "the rollups and the generations agree");
    println!(
        "lifetime spend (exact): rollups {:>9.1} ms ({spent} USD)   full scan {:>9.1} ms   scan / rollups {:.0}x",
        ms(ledger),
        ms(ledger_scan),
        ledger_scan.as_secs_f64() / ledger.as_secs_f64()
    );
    store.pool().close().await;
    database.drop().await;
}
