//! `GET /activity` as OpenRouter's SDK reads it, and `GET /activity/export` (a Switchyard
//! extension): the organization's usage over whole UTC days as CSV, a PDF report or JSON (for the
//! console), grouped one way or another.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiQuery, ApiState};
use crate::manage::activity::{ActivityFilter, Export, ExportGroup, ExportLine, ExportRequest};
use crate::report;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    date: Option<String>,
    api_key_hash: Option<String>,
    user_id: Option<String>,
    group_by: Option<String>,
    workspace_id: Option<String>,
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Value>, ApiError> {
    let by_workspace = match q.group_by.as_deref() {
        None => false,
        Some("workspace") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "group_by must be \"workspace\", not {other:?}"
            )));
        }
    };
    let filter = ActivityFilter {
        date: q.date,
        api_key_hash: q.api_key_hash,
        user_id: q.user_id,
        workspace_id: q.workspace_id,
        by_workspace,
    };
    let items = state
        .manage
        .activity(&actor, &filter, crate::now_ms())
        .await?;
    let data: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let mut item = json!({
                "date": i.date,
                "model": i.model,
                "model_permaslug": i.model,
                "endpoint_id": format!("{}:{}", i.model, i.provider_id),
                "provider_name": i.provider_name,
                "usage": i.usage.as_usd_f64(),
                "byok_usage_inference": i.byok_usage.as_usd_f64(),
                "requests": i.totals.requests,
                "prompt_tokens": i.totals.prompt_tokens,
                "completion_tokens": i.totals.completion_tokens,
                "reasoning_tokens": i.totals.reasoning_tokens,
                "cached_tokens": i.totals.cached_tokens,
            });
            if let (Some(workspace), Some(obj)) = (i.workspace_id, item.as_object_mut()) {
                obj.insert("workspace_id".into(), Value::String(workspace));
            }
            item
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    start: Option<String>,
    end: Option<String>,
    group_by: Option<String>,
    api_key_hash: Option<String>,
    user_id: Option<String>,
    workspace_id: Option<String>,
    model: Option<String>,
    user: Option<String>,
}

pub async fn export(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "pdf" | "json") {
        return Err(ApiError::BadRequest(format!(
            "format must be \"csv\", \"pdf\" or \"json\", not {format:?}"
        )));
    }
    let group: ExportGroup = q.group_by.as_deref().unwrap_or("model").parse()?;
    let request = ExportRequest {
        start: q.start,
        end: q.end,
        group,
        api_key_hash: q.api_key_hash,
        user_id: q.user_id,
        workspace_id: q.workspace_id,
        model: q.model,
        external_user: q.user,
    };
    let now = crate::now_ms();
    let export = state
        .manage
        .export_usage(&actor, None, &request, now)
        .await?;
    if format == "json" {
        return Ok(Json(json!({ "data": export_json(&export) })).into_response());
    }
    let (body, content_type) = if format == "pdf" {
        (
            report::pdf(&export, &super::iso8601(now)),
            "application/pdf",
        )
    } else {
        let body = report::csv(&export).map_err(|_| ApiError::Internal)?;
        (body, "text/csv; charset=utf-8")
    };
    let filename = format!(
        "switchyard-usage-{}-{}-by-{}.{format}",
        export.start,
        export.end,
        export.group.as_str()
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn line_json(line: &ExportLine) -> Value {
    let t = &line.totals;
    json!({
        "group": line.group,
        "label": line.label,
        "requests": t.requests,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "cached_tokens": t.cached_tokens,
        // Exact decimal strings, as the CSV has them.
        "usage": line.usage.to_string(),
        "byok_usage": line.byok_usage.to_string(),
    })
}

/// The export as the console reads it: the same numbers as the CSV and the PDF.
fn export_json(export: &Export) -> Value {
    json!({
        "organization_id": export.organization_id,
        "organization_name": export.organization_name,
        "group_by": export.group.as_str(),
        "start": export.start,
        "end": export.end,
        "lines": export.lines.iter().map(line_json).collect::<Vec<_>>(),
        "daily": export.daily.iter().map(|(date, usage)| json!({"date": date, "usage": usage.to_string()})).collect::<Vec<_>>(),
        "total": line_json(&export.total),
    })
}
