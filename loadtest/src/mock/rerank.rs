//! The mock's rerank API (`POST /v1/rerank`), in the shape Jina and Together serve (and Cohere's
//! v2 takes): `model`, `query`, `documents` (strings or `{text}` objects), `top_n`,
//! `return_documents`; strict about other members. Scores are deterministic: the share of the
//! query's words a document holds. Results come best first, with `usage.total_tokens`.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, json_response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RerankRequest {
    // Echoed back as the answer's model.
    model: String,
    query: String,
    documents: Vec<Value>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: Option<bool>,
}

fn error(message: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": "invalid_request_error"}}),
    )
}

/// Answers a rerank request.
pub fn respond(body: &[u8], n: u64) -> Response<Body> {
    let request: RerankRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(&e.to_string()),
    };
    if request.query.is_empty() || request.documents.is_empty() {
        return error("query and documents must not be empty");
    }
    let texts: Option<Vec<String>> = request
        .documents
        .iter()
        .map(|d| match d {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("text").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect();
    let Some(texts) = texts else {
        return error("documents must be strings or objects with text");
    };
    let words: Vec<String> = request
        .query
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut scored: Vec<(usize, f64)> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let text = text.to_lowercase();
            let hits = words.iter().filter(|w| text.contains(w.as_str())).count();
            (i, hits as f64 / words.len().max(1) as f64)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(request.top_n.unwrap_or(scored.len()));
    let results: Vec<Value> = scored
        .into_iter()
        .map(|(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if request.return_documents == Some(true) {
                r["document"] = json!({ "text": texts[index] });
            }
            r
        })
        .collect();
    let tokens: u64 = texts
        .iter()
        .map(|t| (t.len() as u64).div_ceil(4))
        .sum::<u64>()
        + (request.query.len() as u64).div_ceil(4);
    json_response(
        StatusCode::OK,
        json!({"id": format!("rerank-mock-{n}"), "model": request.model, "results": results,
               "usage": {"total_tokens": tokens}}),
    )
}
