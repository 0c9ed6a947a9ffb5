//! The chat request as the gateway needs it: a shallow parse that keeps every top-level value
//! as borrowed raw JSON, reads only the fields routing and metering need, and can re-emit the
//! body for any provider endpoint without building a JSON DOM of the messages.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::reject::{Kind, Reject};

pub struct ChatRequest<'a> {
    /// Top-level members in their original order, values untouched.
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: String,
    pub stream: bool,
    /// `max_completion_tokens`, or else `max_tokens`, when the client set one.
    pub max_output_tokens: Option<u64>,
    /// Body length, the basis of the prompt-size estimate when a provider reports no usage.
    pub body_len: usize,
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
    pub fn parse(body: &'a [u8]) -> Result<Self, Reject> {
        let RawMembers(fields) = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                bad_request("Request body must be a JSON object")
            } else {
                bad_request(format!("Request body is not valid JSON: {e}"))
            }
        })?;
        let mut model = None;
        let mut stream = false;
        let mut max_tokens = None;
        let mut max_completion_tokens = None;
        for (name, value) in &fields {
            match name.as_ref() {
                "model" => {
                    let m: String = serde_json::from_str(value.get())
                        .map_err(|_| bad_request("`model` must be a string"))?;
                    model = Some(m);
                }
                "stream" => {
                    stream = serde_json::from_str::<Option<bool>>(value.get())
                        .map_err(|_| bad_request("`stream` must be a boolean"))?
                        .unwrap_or(false);
                }
                "max_tokens" => max_tokens = parse_count(value, "max_tokens")?,
                "max_completion_tokens" => {
                    max_completion_tokens = parse_count(value, "max_completion_tokens")?
                }
                "messages" if !value.get().starts_with('[') => {
                    return Err(bad_request("`messages` must be an array"));
                }
                _ => {}
            }
        }
        let model = match model {
            Some(m) if !m.trim().is_empty() => m,
            _ => return Err(bad_request("`model` is required")),
        };
        if !fields.iter().any(|(name, _)| name == "messages") {
            return Err(bad_request("`messages` is required"));
        }
        Ok(ChatRequest {
            fields,
            model,
            stream,
            max_output_tokens: max_completion_tokens.or(max_tokens),
            body_len: body.len(),
        })
    }

    /// A conservative prompt-token estimate from the body's size (about 4 bytes per token),
    /// for when a provider does not report usage.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        (self.body_len as u64).div_ceil(4)
    }
}

fn parse_count(value: &RawValue, name: &'static str) -> Result<Option<u64>, Reject> {
    serde_json::from_str::<Option<u64>>(value.get())
        .map_err(|_| bad_request(format!("`{name}` must be a non-negative integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_routing_fields_and_keeps_the_rest_raw() {
        let body = br#"{"model":"a/b","messages":[{"role":"user","content":"hi \"x\""}],"stream":true,"max_tokens":7,"temperature":0.5}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert_eq!(r.model, "a/b");
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
            br#"{"model":"","messages":[]}"#,
            br#"{"model":7,"messages":[]}"#,
            br#"{"model":"a/b"}"#,
            br#"{"model":"a/b","messages":"hi"}"#,
            br#"{"model":"a/b","messages":[],"stream":"yes"}"#,
            br#"{"model":"a/b","messages":[],"max_tokens":-1}"#,
        ] {
            let e = ChatRequest::parse(body).err().unwrap();
            assert_eq!(e.status(), 400, "{}", String::from_utf8_lossy(body));
        }
    }
}
