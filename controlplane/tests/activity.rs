//! Activity over a seeded history, on SQLite and a throwaway PostgreSQL database: `/activity`,
//! exports and the ledger's spend (read from the rollups) equal the generations' recorded costs
//! exactly; a redelivered batch adds nothing; members see the organization's usage but not who
//! spent it, and nothing of another organization; `user` lands in `/external-users`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::json;
use switchyard_controlplane::keys::{self, KeyKind};
use switchyard_controlplane::manage::ManageError;
use switchyard_controlplane::manage::activity::{
    ActivityFilter, ExportGroup, ExportRequest, day_name,
};
use switchyard_controlplane::report;
use switchyard_controlplane::store::Generation;
use switchyard_controlplane::testing::{Db, RestServer, add_key};
use switchyard_policy::{Ledger, Money};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// The injected clock: 2026-03-15T10:00:00Z.
const NOW: i64 = 1_773_568_800_000;
const TODAY: i64 = NOW - 10 * HOUR;

struct Seeded {
    server: RestServer,
    generations: Vec<Generation>,
    admin_key: String,
    member_key: String,
}

/// A history over 40 days: two keys (the admin's in the default workspace, the member's in
/// `team`), two models on two providers, BYOK and not, some unpriced, costs down to the
/// picodollar, three end users; and one generation of another organization.
async fn seed(db: Db) -> Seeded {
    let server = RestServer::start(db).await;
    let f = &server.fixture;
    let admin_key = keys::hash(&f.inference_secret);
    let (member_key, _) = add_key(
        &f.store,
        &f.organization_id,
        &server.team_workspace,
        &f.member_user,
        KeyKind::Inference,
    )
    .await;
    let (other_key, _) = add_key(
        &f.store,
        &f.other_organization_id,
        "ws_other_default",
        &f.outsider_user,
        KeyKind::Inference,
    )
    .await;
    let mut generations = Vec::new();
    for i in 0..400_i64 {
        let member = i % 3 == 0;
        let day = i % 40;
        generations.push(Generation {
            id: format!("gen-{i}"),
            key_hash: if member { &member_key } else { &admin_key }.clone(),
            organization_id: f.organization_id.clone(),
            workspace_id: if member {
                server.team_workspace.clone()
            } else {
                f.default_workspace_id.clone()
            },
            model: if i % 2 == 0 {
                "mock/fast"
            } else {
                "mock/claude"
            }
            .into(),
            provider_id: if i % 2 == 0 {
                "mock-a"
            } else {
                "mock-anthropic"
            }
            .into(),
            // Today's hours too, and a day's last millisecond.
            created_at: TODAY - day * DAY + (i * 7_919_000) % DAY,
            prompt_tokens: 10 + i,
            completion_tokens: 2 * i,
            reasoning_tokens: i % 5,
            cached_tokens: i % 7,
            cost_usd: (i % 11 != 0)
                .then(|| format!("0.{:012}", (i * 982_451_653) % 1_000_000_000_000)),
            is_byok: i % 4 == 1,
            external_user: match i % 5 {
                0 => None,
                1 => Some("alice".into()),
                2 => Some("bob@example.com".into()),
                _ => Some("carol".into()),
            },
            session_id: Some(format!("s-{}", i % 9)),
            http_referer: Some("https://app.example".into()),
            status: if i % 13 == 0 { 502 } else { 200 },
            ..Generation::default()
        });
    }
    generations.push(Generation {
        id: "gen-other".into(),
        key_hash: other_key,
        organization_id: f.other_organization_id.clone(),
        workspace_id: "ws_other_default".into(),
        model: "mock/fast".into(),
        provider_id: "mock-a".into(),
        created_at: TODAY - DAY,
        cost_usd: Some("5".into()),
        external_user: Some("alice".into()),
        ..Generation::default()
    });
    // In groups, as ingest writes them, with one batch redelivered (an ack the dataplane lost).
    let (first, rest) = generations.split_at(150);
    let counts = f
        .store
        .insert_generation_groups(&[first, rest, &first[100..]])
        .await
        .unwrap();
    assert_eq!(counts, vec![150, 251, 0]);
    assert_eq!(f.store.insert_generations(&first[..10]).await.unwrap(), 0);
    Seeded {
        server,
        generations,
        admin_key,
        member_key,
    }
}

fn cost(g: &Generation) -> Money {
    g.cost_usd
        .as_deref()
        .map_or(Money::ZERO, |c| Money::parse_recorded(c).unwrap())
}

fn sum<'a>(gs: impl Iterator<Item = &'a Generation>) -> Money {
    gs.fold(Money::ZERO, |t, g| t.saturating_add(cost(g)))
}

async fn rollups_equal_the_ledger(s: &Seeded) {
    let f = &s.server.fixture;
    let ours: Vec<&Generation> = s
        .generations
        .iter()
        .filter(|g| g.organization_id == f.organization_id)
        .collect();
    // Lifetime, whole days, and a window starting mid-hour.
    for since in [
        0,
        TODAY - 7 * DAY,
        TODAY - 3 * DAY + 90 * 60_000 + 17,
        TODAY + HOUR,
    ] {
        for include_byok in [false, true] {
            let counted = |g: &&&Generation| g.created_at >= since && (include_byok || !g.is_byok);
            let scopes = [
                (
                    Ledger::Organization(f.organization_id.clone()),
                    sum(ours.iter().filter(counted).copied()),
                ),
                (
                    Ledger::Key(s.member_key.clone()),
                    sum(ours
                        .iter()
                        .filter(counted)
                        .filter(|g| g.key_hash == s.member_key)
                        .copied()),
                ),
                (
                    Ledger::Workspace(f.default_workspace_id.clone()),
                    sum(ours
                        .iter()
                        .filter(counted)
                        .filter(|g| g.workspace_id == f.default_workspace_id)
                        .copied()),
                ),
                (
                    Ledger::Member {
                        user_id: f.member_user.clone(),
                        workspace_id: s.server.team_workspace.clone(),
                    },
                    sum(ours
                        .iter()
                        .filter(counted)
                        .filter(|g| g.key_hash == s.member_key)
                        .copied()),
                ),
            ];
            for (scope, expected) in scopes {
                let got = f
                    .store
                    .ledger_spend(&scope, since, include_byok)
                    .await
                    .unwrap();
                assert_eq!(got, expected, "{scope:?} since {since} byok {include_byok}");
                assert_ne!(expected, Money::ZERO, "{scope:?}: the seed covers it");
            }
        }
    }
}

async fn activity_is_the_last_30_completed_days(s: &Seeded) {
    let f = &s.server.fixture;
    let items = f
        .manage
        .activity(&f.admin, &ActivityFilter::default(), NOW)
        .await
        .unwrap();
    let window = |g: &&Generation| {
        g.organization_id == f.organization_id
            && g.created_at >= TODAY - 30 * DAY
            && g.created_at < TODAY
    };
    let expected: Vec<&Generation> = s.generations.iter().filter(window).collect();
    let mut by_item: BTreeMap<(String, String), (Money, Money, i64, i64)> = BTreeMap::new();
    for g in &expected {
        let date = day_name(g.created_at);
        let e = by_item.entry((date, g.model.clone())).or_default();
        if g.is_byok {
            e.1 = e.1.saturating_add(cost(g));
        } else {
            e.0 = e.0.saturating_add(cost(g));
        }
        e.2 += 1;
        e.3 += g.prompt_tokens;
    }
    assert_eq!(items.len(), by_item.len());
    for item in &items {
        let (usage, byok, requests, prompt) = by_item[&(item.date.clone(), item.model.clone())];
        assert_eq!(
            (
                item.usage,
                item.byok_usage,
                item.totals.requests,
                item.totals.prompt_tokens
            ),
            (usage, byok, requests, prompt),
            "{} {}",
            item.date,
            item.model
        );
        assert!(item.workspace_id.is_none());
    }
    let names: Vec<&str> = items.iter().map(|i| i.provider_name.as_str()).collect();
    assert!(names.contains(&"Mock A") && names.contains(&"Mock Anthropic"));

    // One day, one member's keys, split by workspace.
    let day = TODAY - 4 * DAY;
    let filter = ActivityFilter {
        date: Some(day_name(day)),
        user_id: Some(f.member_user.clone()),
        by_workspace: true,
        ..ActivityFilter::default()
    };
    let items = f.manage.activity(&f.admin, &filter, NOW).await.unwrap();
    let expected: Vec<&Generation> = s
        .generations
        .iter()
        .filter(|g| g.key_hash == s.member_key && g.created_at >= day && g.created_at < day + DAY)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        items.iter().map(|i| i.totals.requests).sum::<i64>(),
        expected.len() as i64
    );
    assert!(
        items
            .iter()
            .all(|i| i.workspace_id.as_deref() == Some(s.server.team_workspace.as_str()))
    );
    // Today and 31 days ago are not among the last 30 completed days.
    for outside in [TODAY, TODAY - 31 * DAY] {
        let filter = ActivityFilter {
            date: Some(day_name(outside)),
            ..ActivityFilter::default()
        };
        assert!(matches!(
            f.manage.activity(&f.admin, &filter, NOW).await,
            Err(ManageError::Invalid(_))
        ));
    }
}

async fn members_see_the_organization_but_not_who_spent(s: &Seeded) {
    let f = &s.server.fixture;
    let all = f
        .manage
        .activity(&f.member, &ActivityFilter::default(), NOW)
        .await
        .unwrap();
    let admin_view = f
        .manage
        .activity(&f.admin, &ActivityFilter::default(), NOW)
        .await
        .unwrap();
    assert_eq!(all, admin_view, "members see the organization's usage");
    for filter in [
        ActivityFilter {
            api_key_hash: Some(s.admin_key.clone()),
            ..ActivityFilter::default()
        },
        ActivityFilter {
            user_id: Some(f.admin_user.clone()),
            ..ActivityFilter::default()
        },
    ] {
        assert!(matches!(
            f.manage.activity(&f.member, &filter, NOW).await,
            Err(ManageError::Forbidden(_))
        ));
    }
    let export = ExportRequest::of;
    assert!(matches!(
        f.manage
            .export_usage(&f.member, None, &export(ExportGroup::ApiKey), NOW)
            .await,
        Err(ManageError::Forbidden(_))
    ));
    // The other organization sees only its own generation.
    let theirs = f
        .manage
        .activity(&f.outsider, &ActivityFilter::default(), NOW)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].usage, Money::parse_recorded("5").unwrap());
    // Nor can anyone name a workspace of another organization.
    let filter = ActivityFilter {
        workspace_id: Some("ws_other_default".into()),
        ..ActivityFilter::default()
    };
    assert!(matches!(
        f.manage.activity(&f.admin, &filter, NOW).await,
        Err(ManageError::NotFound(_))
    ));
}

async fn exports_add_up_to_the_ledger(s: &Seeded) {
    let f = &s.server.fixture;
    let start = TODAY - 35 * DAY;
    let end = TODAY - DAY;
    let in_range: Vec<&Generation> = s
        .generations
        .iter()
        .filter(|g| {
            g.organization_id == f.organization_id
                && g.created_at >= start
                && g.created_at < end + DAY
        })
        .collect();
    let credit = sum(in_range.iter().filter(|g| !g.is_byok).copied());
    let byok = sum(in_range.iter().filter(|g| g.is_byok).copied());
    for group in [
        ExportGroup::Model,
        ExportGroup::ApiKey,
        ExportGroup::Creator,
        ExportGroup::Workspace,
        ExportGroup::User,
        ExportGroup::Day,
    ] {
        let request = ExportRequest {
            start: Some(day_name(start)),
            end: Some(day_name(end)),
            ..ExportRequest::of(group)
        };
        let export = f
            .manage
            .export_usage(&f.admin, None, &request, NOW)
            .await
            .unwrap();
        assert_eq!(export.total.usage, credit, "{group:?}");
        assert_eq!(export.total.byok_usage, byok, "{group:?}");
        assert_eq!(export.total.totals.requests, in_range.len() as i64);
        let lines = export
            .lines
            .iter()
            .fold(Money::ZERO, |t, l| t.saturating_add(l.usage));
        assert_eq!(lines, credit, "{group:?}: lines add up to the total");
        assert_eq!(export.daily.len(), 35);
        let daily = export
            .daily
            .iter()
            .fold(Money::ZERO, |t, (_, m)| t.saturating_add(*m));
        assert_eq!(daily, credit, "{group:?}: the chart adds up too");
        // The CSV says the same, to the picodollar.
        let csv = String::from_utf8(report::csv(&export).unwrap()).unwrap();
        let last = csv.lines().last().unwrap();
        let cells: Vec<&str> = last.split(',').collect();
        assert_eq!(cells[0], "total");
        assert_eq!(Money::parse_recorded(cells[7]).unwrap(), credit);
        assert_eq!(Money::parse_recorded(cells[8]).unwrap(), byok);
        match group {
            ExportGroup::User => {
                let users: Vec<&str> = export.lines.iter().map(|l| l.group.as_str()).collect();
                assert_eq!(users, ["", "alice", "bob@example.com", "carol"]);
            }
            ExportGroup::Creator => {
                let labels: Vec<&str> = export.lines.iter().map(|l| l.label.as_str()).collect();
                assert!(labels.contains(&"member@example.com"), "{labels:?}");
            }
            _ => {}
        }
    }
}

/// The REST API as the SDK calls it: `/activity`, the CSV export and `/external-users`.
async fn rest(s: &Seeded) {
    let server = &s.server;
    let f = &server.fixture;
    // For the files (CSV, PDF); JSON calls go through `RestServer::call`.
    let get = |who: &str, path: &str| {
        server
            .client
            .get(format!("{}/api/v1{path}", server.base))
            .bearer_auth(&server.keys[who])
            .send()
    };
    // The seed's dates are relative to NOW; the REST API runs on the real clock, so a generation
    // of yesterday goes in for it.
    let yesterday = switchyard_controlplane::now_ms() - DAY;
    f.store
        .insert_generations(&[Generation {
            id: "gen-rest".into(),
            key_hash: s.admin_key.clone(),
            organization_id: f.organization_id.clone(),
            workspace_id: f.default_workspace_id.clone(),
            model: "mock/fast".into(),
            provider_id: "mock-a".into(),
            created_at: yesterday,
            prompt_tokens: 7,
            cost_usd: Some("0.25".into()),
            external_user: Some("dave".into()),
            ..Generation::default()
        }])
        .await
        .unwrap();
    let (status, activity) = server
        .call("member", "GET", "/api/v1/activity?group_by=workspace", None)
        .await;
    assert_eq!(status, 200, "{activity}");
    let item = activity["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["prompt_tokens"] == 7)
        .unwrap_or_else(|| panic!("{activity}"));
    assert_eq!(item["usage"], 0.25);
    assert_eq!(item["workspace_id"], f.default_workspace_id.as_str());
    assert_eq!(item["provider_name"], "Mock A");
    for field in ["endpoint_id", "model_permaslug", "date"] {
        assert!(item[field].is_string(), "{field}");
    }
    let by_key = format!("/api/v1/activity?api_key_hash={}", s.admin_key);
    assert_eq!(server.call("member", "GET", &by_key, None).await.0, 403);
    let (status, bad) = server
        .call("admin", "GET", "/api/v1/activity?date=yesterday", None)
        .await;
    assert_eq!((status, &bad["error"]["code"]), (400, &json!(400)));
    let (status, _) = server
        .call("inference", "GET", "/api/v1/activity", None)
        .await;
    assert_eq!(status, 403, "management keys only");

    let export = get("admin", "/activity/export?format=csv&group_by=user")
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("by-user.csv")
    );
    let csv = export.text().await.unwrap();
    assert!(csv.starts_with("user,label,requests"), "{csv}");
    assert!(
        csv.lines().any(|l| l.starts_with("dave,dave,1,7,")),
        "{csv}"
    );
    let pdf = get("member", "/activity/export?format=pdf&group_by=day")
        .await
        .unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));

    let (_, meta) = server
        .call("member", "GET", "/api/v1/analytics/meta", None)
        .await;
    assert!(
        meta["data"]["metrics"].as_array().unwrap().len() > 5,
        "{meta}"
    );
    let query = json!({"metrics": ["requests", "prompt_tokens"], "dimensions": ["user"],
                       "filters": [{"field": "user", "operator": "eq", "value": "dave"}]});
    let (_, answer) = server
        .call("member", "POST", "/api/v1/analytics/query", Some(query))
        .await;
    assert_eq!(
        answer["data"]["data"],
        json!([{"user": "dave", "requests": 1, "prompt_tokens": 7}]),
        "{answer}"
    );
    assert_eq!(answer["data"]["metadata"]["row_count"], 1);

    // `user` strings were registered as they arrived, per organization.
    let (_, listed) = server
        .call("member", "GET", "/api/v1/external-users", None)
        .await;
    let users: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob@example.com", "carol", "dave"]);
    assert_eq!(listed["total_count"], 4);
    let erin = || Some(json!({"user": "erin"}));
    let users_path = "/api/v1/external-users";
    assert_eq!(
        server.call("admin", "POST", users_path, erin()).await.0,
        201
    );
    assert_eq!(
        server.call("admin", "POST", users_path, erin()).await.0,
        409
    );
    let frank = Some(json!({"user": "frank"}));
    assert_eq!(
        server.call("member", "POST", users_path, frank).await.0,
        403
    );
    let padded = Some(json!({"user": " padded"}));
    assert_eq!(
        server.call("admin", "POST", users_path, padded).await.0,
        400
    );
    let (_, updated) = server
        .call(
            "admin",
            "PATCH",
            "/api/v1/external-users/bob%40example.com",
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(updated["data"]["is_active"], false);
    assert_eq!(updated["data"]["user"], "bob@example.com");
    let (_, active) = server
        .call(
            "admin",
            "GET",
            "/api/v1/external-users?limit=2&offset=1",
            None,
        )
        .await;
    assert_eq!(active["total_count"], 4, "alice, carol, dave, erin");
    assert_eq!(active["data"][0]["user"], "carol");
    let erin_path = "/api/v1/external-users/erin";
    assert_eq!(server.call("admin", "DELETE", erin_path, None).await.0, 204);
    assert_eq!(server.call("admin", "GET", erin_path, None).await.0, 404);
    // The generation keeps what the request said.
    let g = f.store.generation("gen-3").await.unwrap().unwrap();
    assert_eq!(g.external_user.as_deref(), Some("carol"));
    assert_eq!(g.session_id.as_deref(), Some("s-3"));
    assert_eq!(g.http_referer.as_deref(), Some("https://app.example"));
}

async fn analytics_add_up_to_the_ledger(s: &Seeded) {
    use switchyard_controlplane::manage::analytics::{AnalyticsFilter, AnalyticsQuery};
    let f = &s.server.fixture;
    let (start, end) = (TODAY - 10 * DAY, TODAY);
    let ours = |g: &&Generation| {
        g.organization_id == f.organization_id && g.created_at >= start && g.created_at < end
    };
    let query = AnalyticsQuery {
        metrics: vec!["requests".into(), "usage".into(), "byok_usage".into()],
        dimensions: vec!["model".into()],
        granularity: Some("day".into()),
        time_range: Some((start, end)),
        ..AnalyticsQuery::default()
    };
    let result = f.manage.analytics(&f.member, &query, NOW).await.unwrap();
    assert!(result.warnings.is_empty() && !result.truncated);
    let requests: i64 = result
        .rows
        .iter()
        .map(|r| r["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(requests, s.generations.iter().filter(ours).count() as i64);
    let usage: f64 = result
        .rows
        .iter()
        .map(|r| r["usage"].as_f64().unwrap())
        .sum();
    let expected = sum(s.generations.iter().filter(ours).filter(|g| !g.is_byok));
    assert!(
        (usage - expected.as_usd_f64()).abs() < 1e-9,
        "{usage} vs {expected}"
    );
    let pairs: std::collections::BTreeSet<(i64, &str)> = s
        .generations
        .iter()
        .filter(ours)
        .map(|g| (g.created_at.div_euclid(DAY), g.model.as_str()))
        .collect();
    assert_eq!(result.rows.len(), pairs.len(), "one row per day and model");
    assert!(result.rows.iter().all(|r| r["time_bucket"].is_string()));

    // Filters: two end users, not one provider; and the busiest model only, busiest first.
    let query = AnalyticsQuery {
        metrics: vec!["requests".into()],
        dimensions: vec!["user".into()],
        filters: vec![
            AnalyticsFilter {
                field: "user".into(),
                operator: "in".into(),
                values: vec!["alice".into(), "carol".into()],
            },
            AnalyticsFilter {
                field: "provider".into(),
                operator: "neq".into(),
                values: vec!["mock-anthropic".into()],
            },
        ],
        time_range: Some((start, end)),
        order_by: Some(("requests".into(), true)),
        ..AnalyticsQuery::default()
    };
    let result = f.manage.analytics(&f.admin, &query, NOW).await.unwrap();
    let want = |user: &str| {
        s.generations
            .iter()
            .filter(ours)
            .filter(|g| {
                g.external_user.as_deref() == Some(user) && g.provider_id != "mock-anthropic"
            })
            .count() as i64
    };
    let got: BTreeMap<String, i64> = result
        .rows
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("alice".into(), want("alice")),
            ("carol".into(), want("carol"))
        ])
    );
    assert!(result.rows[0]["requests"].as_i64() >= result.rows[1]["requests"].as_i64());
    let top = AnalyticsQuery {
        metrics: vec!["requests".into()],
        dimensions: vec!["model".into()],
        granularity: Some("week".into()),
        group_limit: Some(1),
        time_range: Some((start, end)),
        ..AnalyticsQuery::default()
    };
    let result = f.manage.analytics(&f.admin, &top, NOW).await.unwrap();
    let models: std::collections::BTreeSet<&str> = result
        .rows
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 1);
    // A range off the hour is widened, and says so.
    let odd = AnalyticsQuery {
        metrics: vec!["requests".into()],
        time_range: Some((start + 17 * 60_000, end)),
        ..AnalyticsQuery::default()
    };
    let result = f.manage.analytics(&f.admin, &odd, NOW).await.unwrap();
    assert_eq!(result.warnings.len(), 1, "{:?}", result.warnings);
    // Who spent it is the admins'.
    let by_key = AnalyticsQuery {
        metrics: vec!["usage".into()],
        dimensions: vec!["api_key_id".into()],
        ..AnalyticsQuery::default()
    };
    assert!(matches!(
        f.manage.analytics(&f.member, &by_key, NOW).await,
        Err(ManageError::Forbidden(_))
    ));
    assert_eq!(
        f.manage
            .analytics(&f.admin, &by_key, NOW)
            .await
            .unwrap()
            .rows
            .len(),
        2
    );
    for bad in [
        AnalyticsQuery {
            metrics: vec!["nope".into()],
            ..AnalyticsQuery::default()
        },
        AnalyticsQuery {
            metrics: vec![],
            ..AnalyticsQuery::default()
        },
        AnalyticsQuery {
            metrics: vec!["requests".into()],
            granularity: Some("minute".into()),
            ..AnalyticsQuery::default()
        },
    ] {
        assert!(matches!(
            f.manage.analytics(&f.admin, &bad, NOW).await,
            Err(ManageError::Invalid(_))
        ));
    }
}

/// The PDF report of a query says what its CSV says: the totals read back from the PDF's text
/// (`pdftotext`) equal the CSV's and the ledger's, and its first page renders (`pdftoppm`) with
/// ink on it, the chart's bars among it.
async fn the_pdf_agrees_with_the_csv(s: &Seeded) {
    let f = &s.server.fixture;
    let request = ExportRequest {
        start: Some(day_name(TODAY - 30 * DAY)),
        end: Some(day_name(TODAY - DAY)),
        ..ExportRequest::of(ExportGroup::Day)
    };
    let export = f
        .manage
        .export_usage(&f.admin, None, &request, NOW)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(switchyard_controlplane::testing::unique("pdf"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.pdf");
    std::fs::write(&file, report::pdf(&export, "2026-03-15T10:00:00.000Z")).unwrap();
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is required");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("Usage report") && text.contains(&f.organization_id),
        "{text}"
    );
    let total: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("Total"))
        .unwrap_or_else(|| panic!("no total in {text}"))
        .split_whitespace()
        .collect();
    let csv = String::from_utf8(report::csv(&export).unwrap()).unwrap();
    let csv_total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(total.len(), 5, "{text}");
    assert_eq!(total[1], csv_total[2], "requests");
    assert_eq!(total[3], csv_total[7], "usage");
    assert_eq!(total[4], csv_total[8], "BYOK usage");
    assert_eq!(Money::parse_recorded(total[3]).unwrap(), export.total.usage);
    // Every day of the period is a table row (30 days: more than one page).
    let rows = text
        .lines()
        .filter(|l| l.trim_start().starts_with("2026-"))
        .count();
    assert!(rows >= 30, "{rows} day rows");

    let rendered = std::process::Command::new("pdftoppm")
        .args(["-r", "30", "-f", "1", "-l", "1"])
        .arg(&file)
        .arg(dir.join("page"))
        .status()
        .expect("pdftoppm (poppler-utils) is required");
    assert!(rendered.success());
    let ppm = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ppm"))
        .unwrap();
    let image = std::fs::read(ppm).unwrap();
    // P6, width, height, 255, then RGB bytes.
    let mut fields = 0;
    let mut start = 0;
    for (i, b) in image.iter().enumerate() {
        if b.is_ascii_whitespace() && i > 0 && !image[i - 1].is_ascii_whitespace() {
            fields += 1;
            if fields == 4 {
                start = i + 1;
                break;
            }
        }
    }
    let pixels: Vec<&[u8]> = image[start..].chunks(3).collect();
    let ink = pixels.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    let blue = pixels
        .iter()
        .filter(|p| p[2] > 150 && p[0] < 100 && p[1] < 150)
        .count();
    assert!(
        ink * 100 > pixels.len(),
        "{ink} of {} pixels inked",
        pixels.len()
    );
    assert!(blue > 20, "the chart's bars: {blue} blue pixels");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store whose rollups were lost (or predate them) gets them back from the generations, once.
async fn backfill_rebuilds_the_rollups(s: &Seeded) {
    let f = &s.server.fixture;
    let scope = Ledger::Organization(f.organization_id.clone());
    let before = f.store.ledger_spend(&scope, 0, true).await.unwrap();
    f.store.clear_rollups_for_test().await.unwrap();
    assert_eq!(
        f.store.ledger_spend(&scope, 0, true).await.unwrap(),
        Money::ZERO
    );
    assert!(f.store.backfill_rollups(NOW).await.unwrap() > 400);
    assert_eq!(f.store.backfill_rollups(NOW).await.unwrap(), 0, "once");
    assert_eq!(f.store.ledger_spend(&scope, 0, true).await.unwrap(), before);
}

async fn run(db: Db) {
    let s = seed(db).await;
    rollups_equal_the_ledger(&s).await;
    activity_is_the_last_30_completed_days(&s).await;
    members_see_the_organization_but_not_who_spent(&s).await;
    exports_add_up_to_the_ledger(&s).await;
    analytics_add_up_to_the_ledger(&s).await;
    the_pdf_agrees_with_the_csv(&s).await;
    rest(&s).await;
    backfill_rebuilds_the_rollups(&s).await;
    s.server.finish().await;
}

#[tokio::test]
async fn activity_on_sqlite() {
    run(Db::Sqlite).await;
}

#[tokio::test]
async fn activity_on_postgres() {
    run(Db::Postgres).await;
}
