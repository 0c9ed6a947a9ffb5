//! meter: what a response cost. Reads the provider's usage from a JSON body or an SSE stream,
//! prices it from the catalogue, and writes OpenRouter's usage fields (`cost`, `is_byok`, token
//! details) and the gateway's generation id into what the client receives.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use switchyard_policy::{Money, Prices, Usage};

use crate::stages::request::RawMembers;

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    /// Rerank providers (Jina's shape) report only the total: all of it is prompt.
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Parses an OpenAI `usage` object (with OpenRouter's `cache_write_tokens`); `None` for `null`
/// or anything unreadable.
pub fn parse_usage(raw: &RawValue) -> Option<Usage> {
    let wire: Option<WireUsage> = serde_json::from_str(raw.get()).ok()?;
    let wire = wire?;
    let prompt_details = wire.prompt_tokens_details;
    let only_total = wire.prompt_tokens == 0 && wire.completion_tokens == 0;
    Some(Usage {
        prompt_tokens: if only_total {
            wire.total_tokens
        } else {
            wire.prompt_tokens
        },
        completion_tokens: wire.completion_tokens,
        cached_tokens: prompt_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_write_tokens: prompt_details
            .as_ref()
            .and_then(|d| d.cache_write_tokens)
            .unwrap_or(0),
        reasoning_tokens: wire
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    })
}

/// Writes OpenRouter's `usage` object as the client receives it. Written by hand rather than
/// through a `serde_json::Value`: this runs for every response.
///
/// `cost` is always a number, as OpenRouter's SDKs parse it (`@openrouter/ai-sdk-provider`
/// rejects `null`): an unpriced endpoint's generation reads 0, and the response says so in
/// its `x-switchyard-cost` header (`Pricing::unpriced`). `cost_details` splits the price
/// into prompt and completion parts (before any cap at the reservation).
pub fn write_usage(out: &mut Vec<u8>, usage: &Usage, pricing: &Pricing<'_>) {
    let mut n = itoa::Buffer::new();
    let mut field = |out: &mut Vec<u8>, name: &[u8], value: u64| {
        out.extend_from_slice(name);
        out.extend_from_slice(n.format(value).as_bytes());
    };
    field(out, b"{\"prompt_tokens\":", usage.prompt_tokens);
    field(out, b",\"completion_tokens\":", usage.completion_tokens);
    field(out, b",\"total_tokens\":", usage.total_tokens());
    field(
        out,
        b",\"prompt_tokens_details\":{\"cached_tokens\":",
        usage.cached_tokens,
    );
    field(out, b",\"cache_write_tokens\":", usage.cache_write_tokens);
    field(
        out,
        b"},\"completion_tokens_details\":{\"reasoning_tokens\":",
        usage.reasoning_tokens,
    );
    // One pricing of the usage: its parts, and the charge (their total, capped).
    let parts = pricing.prices.breakdown(usage);
    let cost = charge(parts.map(|p| p.total()), pricing.ceiling);
    let parts = parts.unwrap_or_default();
    let usd = |out: &mut Vec<u8>, name: &[u8], m: Money| {
        out.extend_from_slice(name);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &m.as_usd_f64());
    };
    usd(out, b"},\"cost\":", cost.unwrap_or(Money::ZERO));
    out.extend_from_slice(if pricing.is_byok {
        b",\"is_byok\":true"
    } else {
        b",\"is_byok\":false"
    });
    usd(
        out,
        b",\"cost_details\":{\"upstream_inference_cost\":",
        parts.total(),
    );
    usd(out, b",\"upstream_inference_prompt_cost\":", parts.prompt);
    usd(
        out,
        b",\"upstream_inference_completions_cost\":",
        parts.completion,
    );
    out.extend_from_slice(b"}}");
}

/// What the meter learned from one response.
#[derive(Clone, Debug, Default)]
pub struct Metered {
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub upstream_id: Option<String>,
    /// Content-bearing stream chunks seen: the completion-token estimate for a cut stream.
    pub content_chunks: u64,
    /// The byte length of a whole (non-stream) response's `choices`: more than the tokens it
    /// holds, so a bound on them when the provider reports no usage.
    pub choices_bytes: Option<u64>,
}

/// The per-response context the meter writes into the client's view.
pub struct Pricing<'a> {
    pub generation_id: &'a str,
    pub prices: &'a Prices,
    /// The most the generation is charged: what admission reserved.
    pub ceiling: Option<Money>,
    pub is_byok: bool,
    /// Public model id, which the client asked for (not the provider's id).
    pub model: &'a str,
    pub provider_name: &'a str,
    /// Unix seconds, the `created` of chunks the gateway writes itself.
    pub created: i64,
}

impl Pricing<'_> {
    /// The charge for `usage`: its price, never above the ceiling.
    pub fn cost(&self, usage: &Usage) -> Option<Money> {
        charge(self.prices.cost(usage), self.ceiling)
    }

    /// Whether the endpoint has no token prices, so every cost the client reads is 0 for want
    /// of one: the response carries `x-switchyard-cost: unpriced`.
    pub fn unpriced(&self) -> bool {
        !self.prices.is_priced()
    }
}

/// What is charged for a generation that costs `cost`: never more than admission reserved, so
/// counters never pass a limit, even when a provider counts beyond what it was asked for (the
/// excess is the operator's, logged by settle).
pub fn charge(cost: Option<Money>, ceiling: Option<Money>) -> Option<Money> {
    match (cost, ceiling) {
        (Some(c), Some(most)) => Some(c.min(most)),
        (cost, _) => cost,
    }
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

impl Delta<'_> {
    /// Whether the delta carries generated text (content, reasoning or a tool call).
    fn has_content(&self) -> bool {
        self.content.as_deref().is_some_and(|c| !c.is_empty())
            || self.reasoning.as_deref().is_some_and(|c| !c.is_empty())
            || self.tool_calls.is_some()
    }
}

/// What the meter needs from a `choices` array, read element by element without collecting.
#[derive(Default)]
struct ChoicesSummary {
    finish_reason: Option<String>,
    content_chunks: u64,
}

impl<'de> Deserialize<'de> for ChoicesSummary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ChoicesSummary;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ChoicesSummary, A::Error> {
                let mut summary = ChoicesSummary::default();
                while let Some(choice) = seq.next_element::<Choice<'de>>()? {
                    if let Some(reason) = choice.finish_reason {
                        summary.finish_reason = Some(reason.into_owned());
                    }
                    if choice.delta.is_some_and(|d| d.has_content()) {
                        summary.content_chunks += 1;
                    }
                }
                Ok(summary)
            }
        }
        d.deserialize_seq(Visit)
    }
}

fn summarize_choices(raw: &RawValue) -> ChoicesSummary {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

/// Rewrites a non-stream chat completion: gateway id, public model id, provider, and the
/// priced usage object. Returns `None` when the body is not a JSON object, so the caller can
/// pass it through untouched.
pub fn rewrite_completion(body: &[u8], pricing: &Pricing<'_>) -> Option<(Vec<u8>, Metered)> {
    rewrite_answer(body, pricing, Shape::Completion)
}

/// Rewrites an embeddings or rerank answer as [`rewrite_completion`] does a completion.
pub fn rewrite_result(body: &[u8], pricing: &Pricing<'_>) -> Option<(Vec<u8>, Metered)> {
    rewrite_answer(body, pricing, Shape::Result)
}

fn rewrite_answer(body: &[u8], pricing: &Pricing<'_>, shape: Shape) -> Option<(Vec<u8>, Metered)> {
    let members: Vec<(Cow<'_, str>, &RawValue)> = parse_members(body)?;
    let mut metered = Metered::default();
    for (name, value) in &members {
        match name.as_ref() {
            "usage" => metered.usage = parse_usage(value),
            "id" => metered.upstream_id = serde_json::from_str(value.get()).ok(),
            "choices" => {
                metered.finish_reason = summarize_choices(value).finish_reason;
                metered.choices_bytes = Some(value.get().len() as u64);
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    write_members(&mut out, &members, pricing, metered.usage.as_ref(), shape);
    Some((out, metered))
}

fn parse_members(body: &[u8]) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    let RawMembers(members) = serde_json::from_slice(body).ok()?;
    Some(members)
}

/// What is being written: the SDKs' schemas differ on `system_fingerprint`, which a whole
/// completion must carry (`null` allowed) and a chunk may carry only as a string.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Completion,
    Chunk,
    /// An embeddings or rerank answer: no fingerprint of its own.
    Result,
}

/// Writes an object with `id`, `model`, `provider` and `usage` replaced (or added) and every
/// other member copied raw; `system_fingerprint` as `shape` requires.
fn write_members(
    out: &mut Vec<u8>,
    members: &[(Cow<'_, str>, &RawValue)],
    pricing: &Pricing<'_>,
    usage: Option<&Usage>,
    shape: Shape,
) {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    let mut wrote_usage = false;
    let mut wrote_provider = false;
    let mut wrote_fingerprint = false;
    for (name, value) in members {
        if name == "system_fingerprint" {
            if shape == Shape::Chunk && value.get() == "null" {
                continue;
            }
            wrote_fingerprint = true;
        }
        sep(out);
        write_string(out, name);
        out.push(b':');
        match name.as_ref() {
            "id" => write_string(out, pricing.generation_id),
            "model" => write_string(out, pricing.model),
            "provider" => {
                wrote_provider = true;
                write_string(out, pricing.provider_name);
            }
            "usage" => {
                wrote_usage = true;
                match usage {
                    Some(u) => write_usage(out, u, pricing),
                    None => out.extend_from_slice(value.get().as_bytes()),
                }
            }
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    if shape == Shape::Completion && !wrote_fingerprint {
        sep(out);
        out.extend_from_slice(b"\"system_fingerprint\":null");
    }
    if !wrote_provider {
        sep(out);
        out.extend_from_slice(b"\"provider\":");
        write_string(out, pricing.provider_name);
    }
    if let (false, Some(u)) = (wrote_usage, usage) {
        sep(out);
        out.extend_from_slice(b"\"usage\":");
        write_usage(out, u, pricing);
    }
    out.push(b'}');
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Relays an SSE stream event by event, whatever the read boundaries: each complete `data:`
/// event is rewritten (gateway id, public model, priced usage) and anything else (comments,
/// `[DONE]`, unparseable data) passes through unchanged. Output is produced as soon as an event
/// completes, so nothing is buffered beyond one event.
pub struct SseRelay {
    pending: Vec<u8>,
    /// Where the search for the next event end resumes, so a long event split over many reads
    /// is not rescanned from its start each time.
    scanned: usize,
    pub state: StreamState,
}

/// Longest single SSE event accepted from a provider; beyond it the stream is treated as broken
/// rather than buffered without bound.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// What the relay has learned from the events so far.
#[derive(Default)]
pub struct StreamState {
    pub metered: Metered,
    pub saw_done: bool,
}

impl Default for SseRelay {
    fn default() -> Self {
        Self::new()
    }
}

impl SseRelay {
    pub fn new() -> Self {
        SseRelay {
            pending: Vec::new(),
            scanned: 0,
            state: StreamState::default(),
        }
    }

    /// Feeds bytes read from the provider; appends what the client should receive to `out`.
    /// False when an event grew past `MAX_EVENT_BYTES`: the stream should be abandoned.
    pub fn push(&mut self, input: &[u8], pricing: &Pricing<'_>, out: &mut Vec<u8>) -> bool {
        self.pending.extend_from_slice(input);
        let mut consumed = 0;
        // An event end is at most 4 bytes (`\r\n\r\n`): resume a little before the old end.
        let mut from = self.scanned.saturating_sub(3);
        while let Some((end, sep_len)) = find_event_end(&self.pending[from..]) {
            let event_end = from + end;
            let event = &self.pending[consumed..event_end];
            self.state.relay_event(event, pricing, out);
            out.extend_from_slice(b"\n\n");
            consumed = event_end + sep_len;
            from = consumed;
        }
        self.pending.drain(..consumed);
        self.scanned = self.pending.len();
        self.pending.len() <= MAX_EVENT_BYTES
    }

    /// Ends a stream the provider cut off before `[DONE]`, as OpenRouter reports a mid-stream
    /// failure: a chunk with `finish_reason: "error"` and an `error` member, after whatever was
    /// already relayed. The generation's finish reason becomes `error`.
    pub fn fail(&mut self, pricing: &Pricing<'_>, out: &mut Vec<u8>) {
        self.finish(pricing, out);
        if self.state.saw_done {
            return;
        }
        let chunk = serde_json::json!({
            "id": pricing.generation_id,
            "object": "chat.completion.chunk",
            "created": pricing.created,
            "model": pricing.model,
            "choices": [{ "index": 0, "delta": {}, "finish_reason": "error" }],
            "error": {
                "code": 502,
                "message": format!("Provider {} stream was cut off", pricing.provider_name),
                "metadata": { "error_type": "provider_unavailable" },
            },
        });
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
        self.state.metered.finish_reason = Some("error".into());
    }

    /// Flushes a trailing event that the provider ended without a blank line.
    pub fn finish(&mut self, pricing: &Pricing<'_>, out: &mut Vec<u8>) {
        if self.pending.iter().all(u8::is_ascii_whitespace) {
            self.pending.clear();
            return;
        }
        let event = std::mem::take(&mut self.pending);
        self.scanned = 0;
        self.state.relay_event(&event, pricing, out);
        out.extend_from_slice(b"\n\n");
    }
}

impl StreamState {
    fn relay_event(&mut self, event: &[u8], pricing: &Pricing<'_>, out: &mut Vec<u8>) {
        let data = event
            .strip_prefix(b"data: ")
            .or_else(|| event.strip_prefix(b"data:"));
        let Some(data) = data else {
            out.extend_from_slice(event);
            return;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.saw_done = true;
            out.extend_from_slice(event);
            return;
        }
        let Some(members) = parse_members(data) else {
            out.extend_from_slice(event);
            return;
        };
        let mut usage = None;
        for (name, value) in &members {
            match name.as_ref() {
                "usage" => usage = parse_usage(value),
                "id" if self.metered.upstream_id.is_none() => {
                    self.metered.upstream_id = serde_json::from_str(value.get()).ok();
                }
                "choices" => self.observe_choices(value),
                _ => {}
            }
        }
        if usage.is_some() {
            self.metered.usage = usage;
        }
        out.extend_from_slice(b"data: ");
        write_members(out, &members, pricing, usage.as_ref(), Shape::Chunk);
    }

    fn observe_choices(&mut self, value: &RawValue) {
        let summary = summarize_choices(value);
        if summary.finish_reason.is_some() {
            self.metered.finish_reason = summary.finish_reason;
        }
        self.metered.content_chunks += summary.content_chunks;
    }
}

/// Splits bytes into SSE events whatever the read boundaries: an event that needs more than one
/// read waits here. The provider decoders and the client dialects' encoders read through it.
#[derive(Default)]
pub struct EventSplitter {
    pending: Vec<u8>,
}

impl EventSplitter {
    /// Appends `input` and calls `each` with every event it completes, in order, until `each`
    /// returns false.
    pub fn feed(&mut self, input: &[u8], mut each: impl FnMut(&[u8]) -> bool) {
        self.pending.extend_from_slice(input);
        let mut consumed = 0;
        while let Some((end, sep)) = find_event_end(&self.pending[consumed..]) {
            let go_on = each(&self.pending[consumed..consumed + end]);
            consumed += end + sep;
            if !go_on {
                break;
            }
        }
        self.pending.drain(..consumed);
    }

    /// The bytes of an event not yet ended.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Takes what is left: a last event the stream ended without a blank line.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Finds the end of the first complete event: a blank line, `\n\n` or `\r\n\r\n`. The end of
/// the event and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let i = from + i;
        match buf.get(i + 1) {
            Some(b'\n') => return Some((trim_cr(buf, i), i + 2 - trim_cr(buf, i))),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => {
                return Some((trim_cr(buf, i), i + 3 - trim_cr(buf, i)));
            }
            _ => from = i + 1,
        }
    }
    None
}

fn trim_cr(buf: &[u8], newline: usize) -> usize {
    if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn prices() -> Prices {
        Prices {
            prompt: Some(Money::from_pico(1_000)),
            completion: Some(Money::from_pico(2_000)),
            input_cache_read: Some(Money::from_pico(100)),
            ..Default::default()
        }
    }

    fn pricing(prices: &Prices) -> Pricing<'_> {
        Pricing {
            generation_id: "gen-1",
            prices,
            ceiling: None,
            is_byok: false,
            model: "mock/small",
            provider_name: "Mock",
            created: 1,
        }
    }

    #[test]
    fn rewrites_a_completion() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;
        let p = prices();
        let (out, metered) = rewrite_completion(body, &pricing(&p)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "gen-1");
        assert_eq!(v["model"], "mock/small");
        assert_eq!(v["provider"], "Mock");
        assert_eq!(v["usage"]["cost"], 0.00000002);
        assert_eq!(v["usage"]["is_byok"], false);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
        assert_eq!(metered.finish_reason.as_deref(), Some("stop"));
        assert_eq!(metered.upstream_id.as_deref(), Some("chatcmpl-1"));
    }

    /// `@openrouter/sdk` requires `system_fingerprint` in a completion (`null` allowed) and
    /// takes it in a chunk only as a string.
    #[test]
    fn system_fingerprint_takes_the_shape_the_sdks_require() {
        let p = prices();
        let (out, _) = rewrite_completion(br#"{"id":"x","choices":[]}"#, &pricing(&p)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["system_fingerprint"].is_null() && v.get("system_fingerprint").is_some());
        let (out, _) =
            rewrite_completion(br#"{"id":"x","system_fingerprint":"fp"}"#, &pricing(&p)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap()["system_fingerprint"],
            "fp"
        );
        let mut relay = SseRelay::new();
        let mut out = Vec::new();
        relay.push(
            b"data: {\"id\":\"x\",\"system_fingerprint\":null,\"choices\":[]}\n\n",
            &pricing(&p),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("system_fingerprint"), "{text}");
    }

    /// `@openrouter/ai-sdk-provider` parses `cost` as a number: never `null`.
    #[test]
    fn unknown_price_gives_zero_cost() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        let p = Prices::default();
        assert!(pricing(&p).unpriced());
        let (out, _) = rewrite_completion(body, &pricing(&p)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["usage"]["cost"], 0.0);
        assert_eq!(v["usage"]["cost_details"]["upstream_inference_cost"], 0.0);
        assert!(!pricing(&prices()).unpriced());
    }

    #[test]
    fn cache_reads_and_writes_are_reported_and_priced() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":30,"cache_write_tokens":50}}}"#;
        let mut p = prices();
        p.input_cache_write = Some(Money::from_pico(1_250));
        let (out, metered) = rewrite_completion(body, &pricing(&p)).unwrap();
        let usage = metered.usage.unwrap();
        assert_eq!((usage.cached_tokens, usage.cache_write_tokens), (30, 50));
        let v: Value = serde_json::from_slice(&out).unwrap();
        let u = &v["usage"];
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 30);
        assert_eq!(u["prompt_tokens_details"]["cache_write_tokens"], 50);
        let prompt = Money::from_pico(20 * 1_000 + 30 * 100 + 50 * 1_250).as_usd_f64();
        let completion = Money::from_pico(10 * 2_000).as_usd_f64();
        assert_eq!(u["cost_details"]["upstream_inference_prompt_cost"], prompt);
        assert_eq!(
            u["cost_details"]["upstream_inference_completions_cost"],
            completion
        );
        assert_eq!(
            u["cost"].as_f64().unwrap(),
            Money::from_pico(20 * 1_000 + 30 * 100 + 50 * 1_250 + 10 * 2_000).as_usd_f64()
        );
    }

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\r\n\r\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn relays_a_stream_split_at_every_byte() {
        let p = prices();
        for split in 1..STREAM.len() {
            let mut relay = SseRelay::new();
            let mut out = Vec::new();
            for chunk in STREAM.as_bytes().chunks(split) {
                relay.push(chunk, &pricing(&p), &mut out);
            }
            relay.finish(&pricing(&p), &mut out);
            assert!(relay.state.saw_done);
            assert_eq!(relay.state.metered.content_chunks, 2, "split {split}");
            assert_eq!(relay.state.metered.finish_reason.as_deref(), Some("stop"));
            let usage = relay.state.metered.usage.unwrap();
            assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 2));
            let text = String::from_utf8(out).unwrap();
            let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
            assert_eq!(events.len(), 6);
            let last: Value = serde_json::from_str(&events[4]["data: ".len()..]).unwrap();
            assert_eq!(last["id"], "gen-1");
            assert_eq!(last["usage"]["cost"], 0.000000007);
            assert_eq!(events[2], ": keep-alive");
            assert_eq!(events[5], "data: [DONE]");
        }
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_chunk() {
        let p = prices();
        let mut relay = SseRelay::new();
        let mut out = Vec::new();
        let cut = &STREAM[..STREAM.find(": keep-alive").unwrap()];
        relay.push(cut.as_bytes(), &pricing(&p), &mut out);
        relay.fail(&pricing(&p), &mut out);
        assert_eq!(relay.state.metered.finish_reason.as_deref(), Some("error"));
        let text = String::from_utf8(out).unwrap();
        let last = text.split("\n\n").filter(|e| !e.is_empty()).last().unwrap();
        let v: Value = serde_json::from_str(&last["data: ".len()..]).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "error");
        assert_eq!(v["error"]["code"], 502);
        assert_eq!(v["id"], "gen-1");

        // A stream that reached [DONE] gets no error chunk, whatever happened after.
        let mut relay = SseRelay::new();
        let mut out = Vec::new();
        relay.push(STREAM.as_bytes(), &pricing(&p), &mut out);
        relay.fail(&pricing(&p), &mut out);
        assert_eq!(relay.state.metered.finish_reason.as_deref(), Some("stop"));
    }
}
