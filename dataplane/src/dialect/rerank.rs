//! `POST /rerank`: OpenRouter's rerank API, read as it is (another operation of the same stages,
//! `request::Operation::Rerank`) and sent to providers' `/rerank` (the shape Cohere, Jina and
//! Together share: `model`, `query`, `documents`, `top_n`). Providers answer with each result's
//! index and score; the answer the client reads echoes each result's document from the request,
//! as OpenRouter's does.

use serde_json::{Map, Value, json};

use crate::stages::request::ChatRequest;

/// The members a rerank provider takes besides `model`; no other is sent.
pub const MEMBERS: [&str; 3] = ["query", "documents", "top_n"];

/// The provider's answer (as the meter wrote it) with every result's `document`, taken from the
/// request where the provider left it out.
pub fn completion(answer: &[u8], request: &ChatRequest<'_>) -> Option<Vec<u8>> {
    let mut v: Map<String, Value> = serde_json::from_slice(answer).ok()?;
    let documents: Vec<Value> = request
        .member("documents")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    if let Some(results) = v.get_mut("results").and_then(Value::as_array_mut) {
        for result in results {
            let echoed = result
                .get("index")
                .and_then(Value::as_u64)
                .and_then(|i| documents.get(usize::try_from(i).ok()?));
            let (Some(object), Some(document)) = (result.as_object_mut(), echoed) else {
                continue;
            };
            if !object.get("document").is_some_and(Value::is_object) {
                let document = match document {
                    Value::String(text) => json!({ "text": text }),
                    other => other.clone(),
                };
                object.insert("document".into(), document);
            }
        }
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_echo_their_documents() {
        let body = br#"{"model":"m","query":"q","documents":["first",{"text":"second","image":"https://x/y.png"}]}"#;
        let request =
            ChatRequest::parse_as(body, crate::stages::request::Operation::Rerank).unwrap();
        let answer = br#"{"id":"gen-1","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1,"document":{"text":"kept"}},{"index":7,"relevance_score":0.0}],"usage":{"total_tokens":3}}"#;
        let v: Value = serde_json::from_slice(&completion(answer, &request).unwrap()).unwrap();
        assert_eq!(
            v["results"][0]["document"],
            json!({"text": "second", "image": "https://x/y.png"})
        );
        assert_eq!(v["results"][1]["document"], json!({"text": "kept"}));
        assert!(
            v["results"][2].get("document").is_none(),
            "an index past the documents"
        );
        assert_eq!(v["usage"]["total_tokens"], 3);
    }
}
