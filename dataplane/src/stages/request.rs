//! The chat request as the gateway needs it: a shallow parse that keeps every top-level value
//! as borrowed raw JSON, reads only the fields routing and metering need, and can re-emit the
//! body for any provider endpoint without building a JSON DOM of the messages.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use switchyard_policy::routing::ProviderPreferences;

use crate::reject::{Kind, Reject};

/// Most models one request may name (`model` and `models` together).
pub const MAX_MODELS: usize = 8;
/// Longest `session_id`, `user` or `prompt_cache_key` taken (as OpenRouter bounds them).
const MAX_ID_CHARS: usize = 256;
/// The most choices one request may ask for (OpenAI's own maximum).
pub const MAX_CHOICES: u64 = 128;

/// What a request asks a model for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Operation {
    /// A chat completion (`messages`), whatever API the client called it through.
    #[default]
    Chat,
    /// Embeddings of `input` (`/embeddings`): no output tokens, never streamed.
    Embeddings,
    /// `documents` ranked by relevance to `query` (`/rerank`): no output tokens, never
    /// streamed.
    Rerank,
}

/// A request to a model, as every stage reads it: a chat completion, or embeddings.
pub struct ChatRequest<'a> {
    pub operation: Operation,
    /// Top-level members in their original order, values untouched.
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `model` as sent: a model id, perhaps with a `:nitro`/`:floor`/`:free` suffix or an
    /// `@preset/<slug>`; `None` when the request names models otherwise.
    pub model: Option<String>,
    /// `models`: fallbacks, tried in order after `model`.
    pub models: Vec<String>,
    pub stream: bool,
    /// `max_completion_tokens`, or else `max_tokens`, when the client set one.
    pub max_output_tokens: Option<u64>,
    /// `n`: how many choices the provider generates, each up to the output limit.
    pub choices: u64,
    /// Image parts in `messages`, each of which a provider may bill beyond its bytes.
    pub image_parts: u64,
    /// Bytes of inline data (`data:` URLs: images, audio, files) in `messages`, which providers
    /// count by what they hold, not by their length.
    pub inline_data_bytes: u64,
    /// Body length: every prompt token is at least one byte of it (see `admit::bound`).
    pub body_len: usize,
    /// The `provider` object.
    pub provider: ProviderPreferences,
    /// `preset`: a preset's slug.
    pub preset: Option<String>,
    /// Top-level `zdr`.
    pub zdr: Option<bool>,
    /// What sticky routing keys on, and what the generation records.
    pub session_id: Option<String>,
    pub user: Option<String>,
    pub prompt_cache_key: Option<String>,
}

/// A JSON object's top-level members, names and raw values borrowed from the input.
pub struct RawMembers<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(RawMembers(fields))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn bad_request(message: impl Into<Cow<'static, str>>) -> Reject {
    Reject::new(Kind::BadRequest, message)
}

impl<'a> ChatRequest<'a> {
    /// A chat completion request.
    pub fn parse(body: &'a [u8]) -> Result<Self, Reject> {
        Self::parse_as(body, Operation::Chat)
    }

    /// A request for `operation`: chat needs `messages`, embeddings `input`.
    pub fn parse_as(body: &'a [u8], operation: Operation) -> Result<Self, Reject> {
        let RawMembers(fields) = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                bad_request("Request body must be a JSON object")
            } else {
                bad_request(format!("Request body is not valid JSON: {e}"))
            }
        })?;
        let mut request = ChatRequest {
            operation,
            fields: Vec::new(),
            model: None,
            models: Vec::new(),
            stream: false,
            max_output_tokens: None,
            choices: 1,
            image_parts: 0,
            inline_data_bytes: 0,
            body_len: body.len(),
            provider: ProviderPreferences::default(),
            preset: None,
            zdr: None,
            session_id: None,
            user: None,
            prompt_cache_key: None,
        };
        let mut max_tokens = None;
        let mut max_completion_tokens = None;
        let mut has_messages = false;
        let mut has_input = false;
        let (mut has_query, mut has_documents) = (false, false);
        for (name, value) in &fields {
            let raw = value.get();
            match name.as_ref() {
                "model" => {
                    request.model = serde_json::from_str::<Option<String>>(raw)
                        .map_err(|_| bad_request("`model` must be a string"))?
                        .filter(|m| !m.trim().is_empty());
                }
                "models" => {
                    request.models = serde_json::from_str::<Option<Vec<String>>>(raw)
                        .map_err(|_| bad_request("`models` must be an array of model ids"))?
                        .unwrap_or_default();
                    if request.models.iter().any(|m| m.trim().is_empty()) {
                        return Err(bad_request("`models` must not hold empty model ids"));
                    }
                }
                "stream" => {
                    request.stream = serde_json::from_str::<Option<bool>>(raw)
                        .map_err(|_| bad_request("`stream` must be a boolean"))?
                        .unwrap_or(false);
                }
                "max_tokens" => max_tokens = parse_count(value, "max_tokens")?,
                "max_completion_tokens" => {
                    max_completion_tokens = parse_count(value, "max_completion_tokens")?
                }
                "messages" => {
                    if !raw.starts_with('[') {
                        return Err(bad_request("`messages` must be an array"));
                    }
                    has_messages = true;
                    request.image_parts = image_parts(raw);
                    request.inline_data_bytes = inline_data_bytes(raw);
                }
                // Members of the other operations: a chat request's are the provider's matter.
                "query" if operation == Operation::Rerank => {
                    if !raw.starts_with('"') {
                        return Err(bad_request("`query` must be a string"));
                    }
                    has_query = true;
                }
                "documents" if operation == Operation::Rerank => {
                    if !raw.starts_with('[') {
                        return Err(bad_request("`documents` must be an array"));
                    }
                    has_documents = true;
                }
                "input" if operation == Operation::Embeddings => {
                    if !(raw.starts_with('[') || raw.starts_with('"')) {
                        return Err(bad_request("`input` must be a string or an array"));
                    }
                    has_input = true;
                }
                "n" => {
                    let n = parse_count(value, "n")?.unwrap_or(1);
                    if !(1..=MAX_CHOICES).contains(&n) {
                        return Err(bad_request(format!(
                            "`n` must be between 1 and {MAX_CHOICES}"
                        )));
                    }
                    request.choices = n;
                }
                "provider" => {
                    request.provider = ProviderPreferences::parse(raw)
                        .map_err(|e| bad_request(format!("Invalid `provider`: {e}")))?;
                }
                "preset" => request.preset = parse_id(value, "preset")?,
                "session_id" => request.session_id = parse_id(value, "session_id")?,
                "user" => request.user = parse_id(value, "user")?,
                "prompt_cache_key" => {
                    request.prompt_cache_key = parse_id(value, "prompt_cache_key")?
                }
                "zdr" => {
                    request.zdr = serde_json::from_str::<Option<bool>>(raw)
                        .map_err(|_| bad_request("`zdr` must be a boolean"))?;
                }
                _ => {}
            }
        }
        match operation {
            Operation::Chat if !has_messages => {
                return Err(bad_request("`messages` is required"));
            }
            Operation::Embeddings if !has_input => {
                return Err(bad_request("`input` is required"));
            }
            Operation::Rerank if !(has_query && has_documents) => {
                return Err(bad_request("`query` and `documents` are required"));
            }
            Operation::Embeddings | Operation::Rerank if request.stream => {
                return Err(bad_request("Embeddings and reranking are not streamed"));
            }
            Operation::Chat | Operation::Embeddings | Operation::Rerank => {}
        }
        if request.models.len() + usize::from(request.model.is_some()) > MAX_MODELS {
            return Err(bad_request(format!(
                "A request may name at most {MAX_MODELS} models (`model` and `models` together)"
            )));
        }
        request.max_output_tokens = match operation {
            Operation::Chat => max_completion_tokens.or(max_tokens),
            // Embeddings and rankings produce no tokens: admission reserves the prompt only.
            Operation::Embeddings | Operation::Rerank => Some(0),
        };
        request.fields = fields;
        Ok(request)
    }

    /// The raw value of a top-level member, if the request has it.
    pub fn member(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// A conservative prompt-token estimate from the body's size (about 4 bytes per token),
    /// for when a provider does not report usage.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        (self.body_len as u64).div_ceil(4)
    }
}

/// An optional identifier: a string of at most `MAX_ID_CHARS` characters.
fn parse_id(value: &RawValue, name: &'static str) -> Result<Option<String>, Reject> {
    match serde_json::from_str::<Option<String>>(value.get()) {
        Ok(Some(id)) if id.chars().count() > MAX_ID_CHARS => Err(bad_request(format!(
            "`{name}` must be at most {MAX_ID_CHARS} characters"
        ))),
        Ok(id) => Ok(id.filter(|id| !id.is_empty())),
        Err(_) => Err(bad_request(format!("`{name}` must be a string"))),
    }
}

/// Image parts in raw `messages`: members named `image_url`, counted in the text without
/// parsing it (a message whose text mentions `"image_url":` counts too, which only makes the
/// bound larger).
fn image_parts(messages: &str) -> u64 {
    messages
        .match_indices("\"image_url\"")
        .filter(|(at, name)| messages[at + name.len()..].trim_start().starts_with(':'))
        .count() as u64
}

/// Bytes of `"data:…"` strings in raw `messages` (base64 holds no quote or backslash, so each
/// ends at the next quote).
fn inline_data_bytes(messages: &str) -> u64 {
    let mut total = 0u64;
    let mut rest = messages;
    while let Some(start) = rest.find("\"data:") {
        let after = &rest[start + 1..];
        let len = after.find('"').unwrap_or(after.len());
        total = total.saturating_add(len as u64);
        rest = &after[len..];
    }
    total
}

fn parse_count(value: &RawValue, name: &'static str) -> Result<Option<u64>, Reject> {
    serde_json::from_str::<Option<u64>>(value.get())
        .map_err(|_| bad_request(format!("`{name}` must be a non-negative integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_requires_its_own_members_only() {
        let chat = br#"{"model":"m","messages":[],"input":5,"documents":"x","query":1}"#;
        assert!(
            ChatRequest::parse(chat).is_ok(),
            "other operations' members are not chat's"
        );
        let embeddings =
            ChatRequest::parse_as(br#"{"model":"m","input":["a"]}"#, Operation::Embeddings)
                .unwrap();
        assert_eq!(embeddings.max_output_tokens, Some(0));
        for (body, op) in [
            (&br#"{"model":"m","input":5}"#[..], Operation::Embeddings),
            (br#"{"model":"m","messages":[]}"#, Operation::Embeddings),
            (
                br#"{"model":"m","input":"a","stream":true}"#,
                Operation::Embeddings,
            ),
            (br#"{"model":"m","query":"q"}"#, Operation::Rerank),
            (
                br#"{"model":"m","query":"q","documents":"d"}"#,
                Operation::Rerank,
            ),
        ] {
            let refused = ChatRequest::parse_as(body, op).err().map(|r| r.status());
            assert_eq!(refused, Some(400), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn counts_image_parts_and_inline_data() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"say \"image_url\" twice"},{"type":"image_url","image_url" : {"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert_eq!(r.image_parts, 2);
        assert_eq!(
            r.inline_data_bytes,
            "data:image/png;base64,AAAA".len() as u64
        );
    }

    #[test]
    fn reads_routing_fields_and_keeps_the_rest_raw() {
        let body = br#"{"model":"a/b","messages":[{"role":"user","content":"hi \"x\""}],"stream":true,"max_tokens":7,"temperature":0.5}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert_eq!(r.model.as_deref(), Some("a/b"));
        assert!(r.stream);
        assert_eq!(r.max_output_tokens, Some(7));
        assert_eq!(r.fields.len(), 5);
        assert_eq!(
            r.fields[1].1.get(),
            r#"[{"role":"user","content":"hi \"x\""}]"#
        );
    }

    #[test]
    fn refuses_bad_bodies_with_400() {
        for body in [
            &b"{not json"[..],
            b"[1,2]",
            b"{}",
            br#"{"model":7,"messages":[]}"#,
            br#"{"models":"a/b","messages":[]}"#,
            br#"{"models":["a/b",""],"messages":[]}"#,
            br#"{"models":["1","2","3","4","5","6","7","8","9"],"messages":[]}"#,
            br#"{"model":"a/b","messages":[],"provider":{"sort":"cheapest"}}"#,
            br#"{"model":"a/b","messages":[],"zdr":"yes"}"#,
            br#"{"model":"a/b","messages":[],"session_id":7}"#,
            br#"{"model":"a/b"}"#,
            br#"{"model":"a/b","messages":"hi"}"#,
            br#"{"model":"a/b","messages":[],"stream":"yes"}"#,
            br#"{"model":"a/b","messages":[],"max_tokens":-1}"#,
        ] {
            let e = ChatRequest::parse(body).err().unwrap();
            assert_eq!(e.status(), 400, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn reads_the_routing_members() {
        let body = br#"{"models":["a/b","c/d"],"messages":[],"provider":{"order":["x"]},
            "preset":"fast","session_id":"s1","user":"u1","prompt_cache_key":"k","zdr":true}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert_eq!(r.model, None);
        assert_eq!(r.models, ["a/b", "c/d"]);
        assert_eq!(r.provider.order.as_deref().unwrap(), ["x"]);
        assert_eq!(r.preset.as_deref(), Some("fast"));
        assert_eq!(r.session_id.as_deref(), Some("s1"));
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.prompt_cache_key.as_deref(), Some("k"));
        assert_eq!(r.zdr, Some(true));
        // A model of "" or null names no model (the workspace's default may apply).
        let r = ChatRequest::parse(br#"{"model":"","messages":[]}"#).unwrap();
        assert_eq!(r.model, None);
    }
}
