//! `GET /analytics/meta` and `POST /analytics/query` as OpenRouter's SDK calls them.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiState};
use crate::manage::analytics::{self, AnalyticsFilter, AnalyticsQuery};

pub async fn meta(Manager(_, _actor): Manager) -> Json<Value> {
    Json(json!({ "data": analytics::meta() }))
}

/// A filter's value: one, or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum FilterValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(f64),
    Flag(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(t) => t,
            Scalar::Number(n) => n.to_string(),
            Scalar::Flag(b) => b.to_string(),
        }
    }
}

/// A filter as the SDK sends it; `include_unset` is accepted and has no effect (every
/// dimension here always has a value, `""` when the request gave none).
#[derive(Deserialize)]
pub struct Filter {
    field: String,
    operator: String,
    value: FilterValue,
}

#[derive(Deserialize)]
pub struct OrderBy {
    direction: String,
    field: String,
}

#[derive(Deserialize)]
pub struct TimeRange {
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    metrics: Vec<String>,
    #[serde(default)]
    dimensions: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    granularity: Option<String>,
    group_limit: Option<usize>,
    limit: Option<usize>,
    order_by: Option<OrderBy>,
    time_range: Option<TimeRange>,
    classifier_dimensions: Option<Value>,
    classifier_filters: Option<Value>,
}

fn instant(name: &str, text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::BadRequest(format!("time_range.{name} must be an ISO 8601 date-time"))
        })
}

pub async fn query(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<QueryBody>,
) -> Result<Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    let time_range = match &body.time_range {
        Some(r) => Some((instant("start", &r.start)?, instant("end", &r.end)?)),
        None => None,
    };
    let order_by = match body.order_by {
        Some(o) => {
            let descending = match o.direction.as_str() {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "order_by.direction must be asc or desc, not {other:?}"
                    )));
                }
            };
            Some((o.field, descending))
        }
        None => None,
    };
    let query = AnalyticsQuery {
        metrics: body.metrics,
        dimensions: body.dimensions,
        filters: body
            .filters
            .into_iter()
            .map(|f| AnalyticsFilter {
                field: f.field,
                operator: f.operator,
                values: match f.value {
                    FilterValue::One(v) => vec![v.text()],
                    FilterValue::Many(vs) => vs.into_iter().map(Scalar::text).collect(),
                },
            })
            .collect(),
        granularity: body.granularity,
        time_range,
        order_by,
        limit: body.limit,
        group_limit: body.group_limit,
    };
    let mut result = state
        .manage
        .analytics(&actor, &query, crate::now_ms())
        .await?;
    if body.classifier_dimensions.is_some() || body.classifier_filters.is_some() {
        result
            .warnings
            .push("classifiers are not recorded by this gateway; ignored".into());
    }
    let row_count = result.rows.len();
    let mut data = json!({
        "data": result.rows,
        "metadata": {
            "query_time_ms": started.elapsed().as_secs_f64() * 1000.0,
            "row_count": row_count,
            "truncated": result.truncated,
        },
    });
    if !result.warnings.is_empty()
        && let Some(obj) = data.as_object_mut()
    {
        obj.insert("warnings".into(), json!(result.warnings));
    }
    Ok(Json(json!({ "data": data })))
}
