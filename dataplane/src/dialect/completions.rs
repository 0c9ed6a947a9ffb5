//! `POST /completions`: OpenAI's legacy text completions. The prompt becomes one user message
//! (one prompt per request: a batch of prompts, `suffix`, `echo` and `best_of` have no chat
//! equivalent and are refused with a 400); the answer's message text becomes `choices[].text`,
//! in whole answers and stream chunks alike (`object: "text_completion"`), usage and cost as in
//! chat.

use serde_json::{Map, Value, json};

use super::{bad, object};
use crate::reject::Reject;
use crate::stages::meter::EventSplitter;

/// Members a completions request carries to the chat request as they are.
const PASSED: [&str; 20] = [
    "model",
    "models",
    "provider",
    "route",
    "session_id",
    "preset",
    "plugins",
    "transforms",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stream",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
];

/// A completions request as the chat request every stage reads; a 400 saying what is wrong.
pub fn request(body: &[u8]) -> Result<Vec<u8>, Reject> {
    let body = object(body)?;
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(list)) if list.len() == 1 && list[0].is_string() => {
            list[0].as_str().unwrap_or_default().to_owned()
        }
        Some(Value::Array(_)) => {
            return Err(bad(
                "prompt: one prompt per request (a batch has no chat equivalent)",
            ));
        }
        _ => return Err(bad("prompt: a string is required")),
    };
    for (name, refused) in [
        ("suffix", body.get("suffix").is_some_and(|v| !v.is_null())),
        ("echo", body.get("echo") == Some(&Value::Bool(true))),
        (
            "best_of",
            body.get("best_of")
                .and_then(Value::as_u64)
                .is_some_and(|b| b > 1),
        ),
    ] {
        if refused {
            return Err(bad(format!("{name} is not supported")));
        }
    }
    let mut out = Map::new();
    for name in PASSED {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(k) = body.get("logprobs").and_then(Value::as_u64) {
        out.insert("logprobs".into(), json!(true));
        out.insert("top_logprobs".into(), json!(k));
    }
    out.insert(
        "messages".into(),
        json!([{ "role": "user", "content": prompt }]),
    );
    serde_json::to_vec(&out).map_err(|e| bad(format!("request: {e}")))
}

/// A chat completion or chunk (a JSON object), as the meter wrote it, in the completions shape:
/// each choice's message (or delta) text as `text`; the rest (id, model, provider, usage) as
/// it is.
fn text_completion(chat: &Value) -> Value {
    let choices: Vec<Value> = chat["choices"]
        .as_array()
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    let text = c["message"]["content"]
                        .as_str()
                        .or_else(|| c["delta"]["content"].as_str())
                        .unwrap_or("");
                    json!({"text": text, "index": c["index"], "logprobs": null,
                           "finish_reason": c["finish_reason"]})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = chat.clone();
    out["object"] = json!("text_completion");
    out["choices"] = Value::Array(choices);
    out
}

/// A chat completion as a text completion; `None` when it is not a JSON object.
pub fn completion(chat: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(chat).ok()?;
    if !v.is_object() {
        return None;
    }
    serde_json::to_vec(&text_completion(&v)).ok()
}

/// Rewrites the relay's chunk events as text-completion events; `[DONE]`, comments and the
/// error chunk's `error` member pass as they are.
#[derive(Default)]
pub struct StreamEncoder {
    events: EventSplitter,
}

impl StreamEncoder {
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.events.feed(input, |event| {
            match event
                .strip_prefix(b"data: ")
                .and_then(|d| serde_json::from_slice::<Value>(d.trim_ascii()).ok())
            {
                Some(chunk) if chunk.is_object() => {
                    out.extend_from_slice(b"data: ");
                    // Writing into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut *out, &text_completion(&chunk));
                }
                _ => out.extend_from_slice(event),
            }
            out.extend_from_slice(b"\n\n");
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_becomes_one_user_message() {
        let body = br#"{"model":"mock/fast","prompt":["Once upon"],"max_tokens":5,"logprobs":2,"stream":true,"provider":{"sort":"price"}}"#;
        let v: Value = serde_json::from_slice(&request(body).unwrap()).unwrap();
        assert_eq!(
            v["messages"],
            json!([{"role": "user", "content": "Once upon"}])
        );
        assert_eq!(
            (v["max_tokens"].as_u64(), v["stream"].as_bool()),
            (Some(5), Some(true))
        );
        assert_eq!(
            (v["logprobs"].as_bool(), v["top_logprobs"].as_u64()),
            (Some(true), Some(2))
        );
        assert_eq!(v["provider"]["sort"], "price");
        assert!(v.get("prompt").is_none());
        for refused in [
            &br#"{"model":"m","prompt":["a","b"]}"#[..],
            br#"{"model":"m","prompt":"a","suffix":"z"}"#,
            br#"{"model":"m","prompt":"a","echo":true}"#,
            br#"{"model":"m","prompt":"a","best_of":3}"#,
            br#"{"model":"m"}"#,
        ] {
            assert_eq!(request(refused).unwrap_err().status(), 400);
        }
    }

    /// Found by the coverage-guided fuzzer: an answer that is JSON but not an object passes
    /// untranslated instead of panicking.
    #[test]
    fn an_answer_that_is_not_an_object_is_left_as_it_is() {
        for body in [&b"7"[..], b"[1]", b"\"x\"", b"null"] {
            assert!(completion(body).is_none());
        }
        assert_eq!(
            crate::dialect::Dialect::OpenAiCompletions.completion(
                b"7".to_vec(),
                &crate::stages::request::ChatRequest::parse(br#"{"messages":[]}"#).unwrap()
            ),
            b"7"
        );
    }

    #[test]
    fn answers_and_chunks_take_the_text_completion_shape() {
        let chat = br#"{"id":"gen-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"cost":0.5}}"#;
        let v: Value = serde_json::from_slice(&completion(chat).unwrap()).unwrap();
        assert_eq!(v["object"], "text_completion");
        assert_eq!(
            v["choices"][0],
            json!({"text": "Hi", "index": 0, "logprobs": null, "finish_reason": "stop"})
        );
        assert_eq!(v["usage"]["cost"], 0.5);

        let stream = concat!(
            "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            ": keep-alive\n\n",
            "data: [DONE]\n\n",
        );
        let mut out = Vec::new();
        let mut encoder = StreamEncoder::default();
        for piece in stream.as_bytes().chunks(9) {
            encoder.push(piece, &mut out);
        }
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first["object"], "text_completion");
        assert_eq!(first["choices"][0]["text"], "Hi");
        assert_eq!(&events[1..], [": keep-alive", "data: [DONE]"]);
    }
}
