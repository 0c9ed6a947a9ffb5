//! The mock's OpenAI embeddings API (`POST /v1/embeddings`): strict about members as OpenAI is
//! (`model`, `input`, `encoding_format`, `dimensions`, `user`), one deterministic vector per
//! input (its values follow from the input's bytes, so equal inputs embed equally), `usage` with
//! the prompt tokens, and base64 vectors when asked.

use base64::Engine as _;
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, json_response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    // A member OpenAI defines, accepted and not read.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

/// Dimensions when the request asks for none.
const DEFAULT_DIMENSIONS: usize = 8;

fn error(message: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

/// Answers an embeddings request.
pub fn respond(body: &[u8], n: u64) -> Response<Body> {
    let request: EmbeddingsRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(&e.to_string()),
    };
    let inputs: Vec<String> = match &request.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        // Token arrays are OpenAI's too; one vector per array.
        Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_array) => {
            list.iter().map(Value::to_string).collect()
        }
        _ => return error("'input' must be a non-empty string or array"),
    };
    if inputs.iter().any(String::is_empty) {
        return error("'input' cannot contain an empty string");
    }
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=4096).contains(&dimensions) {
        return error("'dimensions' must be between 1 and 4096");
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return error(&format!("'encoding_format' {other} is not float or base64")),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector: Vec<f32> = (0..dimensions)
                .map(|d| {
                    let byte = input.as_bytes()[d % input.len()];
                    (f32::from(byte) + d as f32) / 256.0
                })
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|i| (i.len() as u64).div_ceil(4)).sum();
    json_response(
        StatusCode::OK,
        json!({
            "object": "list",
            "id": format!("embd-mock-{n}"),
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    )
}
