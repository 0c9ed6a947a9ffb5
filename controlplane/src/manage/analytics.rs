//! Analytics as OpenRouter's SDK asks for it (`GET /analytics/meta`, `POST /analytics/query`):
//! metrics over dimensions and time buckets, read from the rollups. The same rule as activity:
//! members see the organization's usage; the key and member dimensions (who spent it) are the
//! admins'.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use switchyard_policy::Money;
use switchyard_policy::window::Window;

use super::activity::MAX_EXPORT_DAYS;
use super::{Actor, Manage, ManageError, ManageResult};
use crate::store::{
    COARSE_DIMENSIONS, DAY_MS, Dimension, Resolution, Totals, UsageFilter, UsageQuery,
};

/// A dimension: its name in queries and rows, its label, what it groups the rollups by, and
/// whether only admins may use it.
struct DimensionSpec {
    name: &'static str,
    label: &'static str,
    dimension: Dimension,
    admin_only: bool,
}

const DIMENSIONS: [DimensionSpec; 7] = [
    DimensionSpec {
        name: "model",
        label: "Model",
        dimension: Dimension::Model,
        admin_only: false,
    },
    DimensionSpec {
        name: "provider",
        label: "Provider",
        dimension: Dimension::Provider,
        admin_only: false,
    },
    DimensionSpec {
        name: "workspace_id",
        label: "Workspace",
        dimension: Dimension::Workspace,
        admin_only: false,
    },
    DimensionSpec {
        name: "user",
        label: "End user",
        dimension: Dimension::User,
        admin_only: false,
    },
    DimensionSpec {
        name: "is_byok",
        label: "BYOK",
        dimension: Dimension::Byok,
        admin_only: false,
    },
    DimensionSpec {
        name: "api_key_id",
        label: "API key",
        dimension: Dimension::Key,
        admin_only: true,
    },
    DimensionSpec {
        name: "member_user_id",
        label: "Member",
        dimension: Dimension::Creator,
        admin_only: true,
    },
];

/// `(name, label, display format, is a rate)`.
const METRICS: [(&str, &str, &str, bool); 11] = [
    ("requests", "Requests", "number", false),
    ("prompt_tokens", "Prompt tokens", "number", false),
    ("completion_tokens", "Completion tokens", "number", false),
    ("reasoning_tokens", "Reasoning tokens", "number", false),
    ("cached_tokens", "Cached tokens", "number", false),
    ("total_tokens", "Total tokens", "number", false),
    ("usage", "Spend (credits)", "currency", false),
    ("byok_usage", "Spend (BYOK)", "currency", false),
    ("avg_latency_ms", "Average latency", "latency", true),
    ("avg_ttfb_ms", "Average time to first byte", "latency", true),
    ("error_rate", "Error rate", "percent", true),
];

const GRANULARITIES: [(&str, &str); 4] = [
    ("hour", "Hour"),
    ("day", "Day"),
    ("week", "Week"),
    ("month", "Month"),
];

const OPERATORS: [(&str, &str); 4] = [
    ("eq", "scalar"),
    ("neq", "scalar"),
    ("in", "array"),
    ("not_in", "array"),
];

/// Rows a query returns at most, and by default.
pub const MAX_ROWS: usize = 10_000;
const DEFAULT_ROWS: usize = 1_000;
/// The period when none is given: the last 7 days.
const DEFAULT_DAYS: i64 = 7;

/// `GET /analytics/meta`'s `data`.
pub fn meta() -> Value {
    json!({
        "dimensions": DIMENSIONS.iter().map(|d| json!({"name": d.name, "display_label": d.label})).collect::<Vec<_>>(),
        "granularities": GRANULARITIES.iter().map(|(n, l)| json!({"name": n, "display_label": l})).collect::<Vec<_>>(),
        "metrics": METRICS.iter().map(|(n, l, f, r)| json!({"name": n, "display_label": l, "display_format": f, "is_rate": r})).collect::<Vec<_>>(),
        "operators": OPERATORS.iter().map(|(n, t)| json!({"name": n, "value_type": t})).collect::<Vec<_>>(),
    })
}

/// A filter of `POST /analytics/query`: a dimension compared with a value or a list of them.
#[derive(Clone, Debug)]
pub struct AnalyticsFilter {
    pub field: String,
    pub operator: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct AnalyticsQuery {
    pub metrics: Vec<String>,
    pub dimensions: Vec<String>,
    pub filters: Vec<AnalyticsFilter>,
    pub granularity: Option<String>,
    /// `[start, end)`, Unix ms.
    pub time_range: Option<(i64, i64)>,
    /// A metric, a dimension or `time_bucket`; descending when true.
    pub order_by: Option<(String, bool)>,
    pub limit: Option<usize>,
    /// At most this many groups (by the first metric's total), each with all its time buckets.
    pub group_limit: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AnalyticsResult {
    pub rows: Vec<Map<String, Value>>,
    pub truncated: bool,
    pub warnings: Vec<String>,
}

fn dimension(name: &str) -> ManageResult<&'static DimensionSpec> {
    DIMENSIONS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ManageError::Invalid(format!("unknown dimension {name:?}")))
}

/// The start of the bucket of `granularity` holding `ms` (weeks start on Monday, UTC).
fn bucket(granularity: &str, ms: i64) -> i64 {
    // Days, weeks and months are the spend limits' windows (policy's one calendar rule).
    let window = match granularity {
        "hour" => return Resolution::Hour.floor(ms),
        "week" => Window::Weekly,
        "month" => Window::Monthly,
        _ => Window::Daily,
    };
    window.span(ms).start_ms
}

/// What a group adds up to: totals, and spend split by who paid.
#[derive(Clone, Copy, Default)]
struct Sums {
    totals: Totals,
    usage: Money,
    byok_usage: Money,
}

fn metric(name: &str, s: &Sums) -> Value {
    let t = &s.totals;
    let per_request = |sum: i64| {
        if t.requests == 0 {
            0.0
        } else {
            sum as f64 / t.requests as f64
        }
    };
    match name {
        "requests" => json!(t.requests),
        "prompt_tokens" => json!(t.prompt_tokens),
        "completion_tokens" => json!(t.completion_tokens),
        "reasoning_tokens" => json!(t.reasoning_tokens),
        "cached_tokens" => json!(t.cached_tokens),
        "total_tokens" => json!(t.prompt_tokens + t.completion_tokens),
        "usage" => json!(s.usage.as_usd_f64()),
        "byok_usage" => json!(s.byok_usage.as_usd_f64()),
        "avg_latency_ms" => json!(per_request(t.latency_ms)),
        "avg_ttfb_ms" => json!(per_request(t.ttfb_ms)),
        "error_rate" => json!(per_request(t.errors)),
        _ => Value::Null,
    }
}

/// Orders JSON values: numbers by value, anything else by its text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a
            .map(Value::to_string)
            .unwrap_or_default()
            .cmp(&b.map(Value::to_string).unwrap_or_default()),
    }
}

impl Manage {
    /// Runs `query` over the organization's rollups at `now_ms` (the default period's end).
    pub async fn analytics(
        &self,
        actor: &Actor,
        query: &AnalyticsQuery,
        now_ms: i64,
    ) -> ManageResult<AnalyticsResult> {
        let organization = self.organization(actor, None).await?;
        let admin = actor.is_admin_of(&organization.id);
        if query.metrics.is_empty() {
            return Err(ManageError::Invalid(
                "metrics must name at least one".into(),
            ));
        }
        for m in &query.metrics {
            if !METRICS.iter().any(|(name, ..)| name == m) {
                return Err(ManageError::Invalid(format!("unknown metric {m:?}")));
            }
        }
        let granularity = query.granularity.as_deref();
        if let Some(g) = granularity
            && !GRANULARITIES.iter().any(|(name, _)| *name == g)
        {
            return Err(ManageError::Invalid(format!(
                "granularity must be hour, day, week or month; not {g:?}"
            )));
        }
        let limit = query.limit.unwrap_or(DEFAULT_ROWS);
        if limit == 0 || limit > MAX_ROWS {
            return Err(ManageError::Invalid(format!(
                "limit must be 1 to {MAX_ROWS}"
            )));
        }
        let requested: Vec<&DimensionSpec> = query
            .dimensions
            .iter()
            .map(|d| dimension(d))
            .collect::<ManageResult<_>>()?;
        let filtered: Vec<(&DimensionSpec, &AnalyticsFilter)> = query
            .filters
            .iter()
            .map(|f| Ok((dimension(&f.field)?, f)))
            .collect::<ManageResult<_>>()?;
        for f in &query.filters {
            let arity_ok = match f.operator.as_str() {
                "eq" | "neq" => f.values.len() == 1,
                "in" | "not_in" => true,
                other => {
                    return Err(ManageError::Invalid(format!(
                        "operator must be eq, neq, in or not_in; not {other:?}"
                    )));
                }
            };
            if !arity_ok {
                return Err(ManageError::Invalid(format!(
                    "{} takes one value",
                    f.operator
                )));
            }
        }
        if !admin
            && (requested.iter().any(|d| d.admin_only)
                || filtered.iter().any(|(d, _)| d.admin_only))
        {
            return Err(ManageError::Forbidden(
                "Only organization admins can break usage down by API key or member".into(),
            ));
        }

        let mut warnings = Vec::new();
        // By default the last 7 UTC days, today included, in whole days.
        let tomorrow = Resolution::Day.floor(now_ms) + DAY_MS;
        let (start, end) = query
            .time_range
            .unwrap_or((tomorrow - DEFAULT_DAYS * DAY_MS, tomorrow));
        if end <= start {
            return Err(ManageError::Invalid(
                "time_range must end after it starts".into(),
            ));
        }
        if (end - start) / DAY_MS >= MAX_EXPORT_DAYS {
            return Err(ManageError::Invalid(format!(
                "time_range covers at most {MAX_EXPORT_DAYS} days"
            )));
        }
        // Rollups hold whole hours and days: the range is widened to the buckets it touches.
        let day_aligned =
            Resolution::Day.floor(start) == start && Resolution::Day.floor(end) == end;
        let span = if granularity == Some("hour") || !day_aligned {
            Resolution::Hour
        } else {
            Resolution::Day
        };
        if span == Resolution::Hour
            && let Some(d) = requested
                .iter()
                .chain(filtered.iter().map(|(d, _)| d))
                .find(|d| !COARSE_DIMENSIONS.contains(&d.dimension))
        {
            return Err(ManageError::Invalid(format!(
                "{} is kept per day: use a range of whole UTC days and day, week or month granularity",
                d.name
            )));
        }
        let (from_ms, to_ms) = (span.floor(start), span.ceil(end));
        if (from_ms, to_ms) != (start, end) {
            warnings.push(format!(
                "time_range widened to whole {}s: {} to {}",
                if span == Resolution::Hour {
                    "hour"
                } else {
                    "day"
                },
                super::super::api::iso8601(from_ms),
                super::super::api::iso8601(to_ms)
            ));
        }

        // Read grouped by everything the answer and the filters need, then filter and fold.
        let mut columns: Vec<&DimensionSpec> = Vec::new();
        for d in requested
            .iter()
            .copied()
            .chain(filtered.iter().map(|(d, _)| *d))
        {
            if !columns.iter().any(|c| c.name == d.name) {
                columns.push(d);
            }
        }
        let byok_column = columns.iter().position(|c| c.name == "is_byok");
        let mut group_by = vec![Dimension::Bucket];
        group_by.extend(columns.iter().map(|c| c.dimension));
        if byok_column.is_none() {
            group_by.push(Dimension::Byok);
        }
        let rows = self
            .store
            .usage(&UsageQuery {
                organization_id: organization.id.clone(),
                resolution: span,
                from_ms,
                to_ms,
                filter: UsageFilter::default(),
                group_by,
            })
            .await?;
        let mut groups: BTreeMap<(i64, Vec<String>), Sums> = BTreeMap::new();
        'rows: for row in rows {
            let values = &row.group[1..];
            for (d, f) in &filtered {
                let Some(i) = columns.iter().position(|c| c.name == d.name) else {
                    continue;
                };
                let value = display(d, &values[i]);
                let hit = f.values.contains(&value);
                let keep = match f.operator.as_str() {
                    "eq" | "in" => hit,
                    _ => !hit,
                };
                if !keep {
                    continue 'rows;
                }
            }
            let byok = values[byok_column.unwrap_or(columns.len())] == "1";
            let at: i64 = row.group[0].parse().unwrap_or_default();
            let time = granularity.map_or(0, |g| bucket(g, at));
            let key: Vec<String> = requested
                .iter()
                .map(|d| {
                    let i = columns.iter().position(|c| c.name == d.name).unwrap_or(0);
                    display(d, &values[i])
                })
                .collect();
            let sums = groups.entry((time, key)).or_default();
            super::activity::add_paid(
                (&mut sums.usage, &mut sums.byok_usage, &mut sums.totals),
                byok,
                &row.totals,
            );
        }

        if let Some(n) = query.group_limit {
            let first = query.metrics[0].as_str();
            let mut by_group: HashMap<&Vec<String>, Sums> = HashMap::new();
            for ((_, key), sums) in &groups {
                let g = by_group.entry(key).or_default();
                g.totals.add(&sums.totals);
                g.usage = g.usage.saturating_add(sums.usage);
                g.byok_usage = g.byok_usage.saturating_add(sums.byok_usage);
            }
            let mut ranked: Vec<(&Vec<String>, Value)> = by_group
                .iter()
                .map(|(k, s)| (*k, metric(first, s)))
                .collect();
            ranked.sort_by(|a, b| compare(Some(&b.1), Some(&a.1)).then(a.0.cmp(b.0)));
            let kept: Vec<Vec<String>> = ranked.iter().take(n).map(|(k, _)| (*k).clone()).collect();
            groups.retain(|(_, key), _| kept.contains(key));
        }

        let mut out: Vec<Map<String, Value>> = groups
            .into_iter()
            .map(|((time, key), sums)| {
                let mut row = Map::new();
                if granularity.is_some() {
                    row.insert(
                        "time_bucket".into(),
                        Value::String(super::super::api::iso8601(time)),
                    );
                }
                for (d, value) in requested.iter().zip(key) {
                    row.insert(d.name.into(), Value::String(value));
                }
                for m in &query.metrics {
                    row.insert(m.clone(), metric(m, &sums));
                }
                row
            })
            .collect();
        if let Some((field, descending)) = &query.order_by {
            let known = field == "time_bucket"
                || query.metrics.contains(field)
                || query.dimensions.contains(field);
            if !known {
                return Err(ManageError::Invalid(format!(
                    "order_by must name a requested metric or dimension, or time_bucket; not {field:?}"
                )));
            }
            out.sort_by(|a, b| {
                let o = compare(a.get(field), b.get(field));
                if *descending { o.reverse() } else { o }
            });
        }
        let truncated = out.len() > limit;
        out.truncate(limit);
        Ok(AnalyticsResult {
            rows: out,
            truncated,
            warnings,
        })
    }
}

/// A dimension's value as rows show it and filters compare it.
fn display(d: &DimensionSpec, value: &str) -> String {
    if d.name == "is_byok" {
        (value == "1").to_string()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_calendar() {
        // 2026-03-15 (a Sunday) 10:30 UTC.
        let t = 1_773_570_600_000;
        assert_eq!(bucket("hour", t), 1_773_568_800_000);
        assert_eq!(bucket("day", t), 1_773_532_800_000);
        assert_eq!(bucket("week", t), 1_773_532_800_000 - 6 * DAY_MS);
        assert_eq!(bucket("month", t), 1_772_323_200_000);
    }

    #[test]
    fn meta_lists_what_queries_accept() {
        let m = meta();
        for key in ["dimensions", "granularities", "metrics", "operators"] {
            assert!(!m[key].as_array().unwrap().is_empty(), "{key}");
        }
    }
}
