//! The members of a chat request, as routing and forwarding see them: which ones the gateway
//! consumes, which are parameters an endpoint may or may not honour (in OpenRouter's
//! `supported_parameters` vocabulary), and which are the OpenAI chat format's own.

/// Members the gateway consumes. They steer routing, or they are OpenRouter features a provider
/// has never heard of: none is ever sent upstream.
pub const GATEWAY_MEMBERS: [&str; 20] = [
    "cache_control",
    "debug",
    "deferred_tools",
    "image_config",
    "include_reasoning",
    "models",
    "plugins",
    "preset",
    "prompt_cache_options",
    "provider",
    "reasoning",
    "route",
    "session_id",
    "stop_server_tools_when",
    "trace",
    "transforms",
    "usage",
    "zdr",
    // `model` and `stream_options` are rewritten for each endpoint, never copied.
    "model",
    "stream_options",
];

/// Members of the OpenAI chat format that are not tunable parameters: every OpenAI-compatible
/// endpoint takes them as they are.
const OPENAI_MEMBERS: [&str; 14] = [
    "audio",
    "function_call",
    "functions",
    "messages",
    "metadata",
    "modalities",
    "n",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "user",
];

/// The OpenRouter parameter a request member sets, if it is one. `structured_outputs` is not a
/// member of its own: a `response_format` of type `json_schema` needs it (see [`needs`]).
pub fn parameter_of(member: &str) -> Option<&'static str> {
    Some(match member {
        "temperature" => "temperature",
        "top_p" => "top_p",
        "top_k" => "top_k",
        "min_p" => "min_p",
        "top_a" => "top_a",
        "frequency_penalty" => "frequency_penalty",
        "presence_penalty" => "presence_penalty",
        "repetition_penalty" => "repetition_penalty",
        "max_tokens" | "max_completion_tokens" => "max_tokens",
        "logit_bias" => "logit_bias",
        "logprobs" => "logprobs",
        "top_logprobs" => "top_logprobs",
        "seed" => "seed",
        "response_format" => "response_format",
        "stop" => "stop",
        "tools" => "tools",
        "tool_choice" => "tool_choice",
        "parallel_tool_calls" => "parallel_tool_calls",
        "reasoning" | "reasoning_effort" => "reasoning",
        "include_reasoning" => "include_reasoning",
        "web_search_options" => "web_search_options",
        "verbosity" => "verbosity",
        _ => return None,
    })
}

/// The parameters a member with this raw JSON value needs an endpoint to honour: its own, and
/// `structured_outputs` for a JSON-schema response format. A `null` value sets nothing.
pub fn needs(member: &str, raw: &str) -> impl Iterator<Item = &'static str> {
    let set = raw.trim() != "null";
    let own = parameter_of(member).filter(|_| set);
    let structured =
        (set && member == "response_format" && is_json_schema(raw)).then_some("structured_outputs");
    own.into_iter().chain(structured)
}

fn is_json_schema(raw: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .is_some_and(|v| v["type"] == "json_schema")
}

/// Parameters an endpoint must honour whatever `require_parameters` says: a request with tools
/// goes only to endpoints that take tools (OpenRouter's rule; dropping them would change the
/// answer, not just its style).
pub fn always_needed(parameter: &str) -> bool {
    matches!(parameter, "tools" | "tool_choice")
}

/// Members a provider option (`provider.options.<slug>`) may not set: the request's frame, the
/// gateway's own members, and what bounds the cost the gateway reserved (`max_tokens`, `n`).
pub fn option_allowed(member: &str) -> bool {
    !GATEWAY_MEMBERS.contains(&member)
        && !matches!(
            member,
            "messages" | "stream" | "max_tokens" | "max_completion_tokens" | "n"
        )
}

/// What becomes of a request member on its way to an OpenAI-compatible endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Sent as it is.
    Send,
    /// Consumed by the gateway, or a parameter the endpoint does not honour, or unknown to the
    /// format: not sent.
    Drop,
}

/// Whether `member` goes to an OpenAI-compatible endpoint that honours `supports`.
pub fn disposition(member: &str, supports: impl Fn(&str) -> bool) -> Disposition {
    if GATEWAY_MEMBERS.contains(&member) {
        return Disposition::Drop;
    }
    if let Some(parameter) = parameter_of(member) {
        return if supports(parameter) {
            Disposition::Send
        } else {
            Disposition::Drop
        };
    }
    if OPENAI_MEMBERS.contains(&member) {
        Disposition::Send
    } else {
        Disposition::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_members_never_go_upstream_and_parameters_need_support() {
        let supports = |p: &str| p == "temperature" || p == "max_tokens";
        for member in [
            "provider",
            "models",
            "preset",
            "transforms",
            "usage",
            "plugins",
        ] {
            assert_eq!(disposition(member, supports), Disposition::Drop, "{member}");
        }
        assert_eq!(disposition("temperature", supports), Disposition::Send);
        assert_eq!(
            disposition("max_completion_tokens", supports),
            Disposition::Send
        );
        assert_eq!(disposition("top_k", supports), Disposition::Drop);
        assert_eq!(disposition("messages", supports), Disposition::Send);
        assert_eq!(disposition("user", supports), Disposition::Send);
        assert_eq!(disposition("made_up", supports), Disposition::Drop);
    }

    #[test]
    fn a_json_schema_response_format_needs_structured_outputs() {
        let needed: Vec<_> = needs(
            "response_format",
            r#"{"type":"json_schema","json_schema":{}}"#,
        )
        .collect();
        assert_eq!(needed, ["response_format", "structured_outputs"]);
        let needed: Vec<_> = needs("response_format", r#"{"type":"json_object"}"#).collect();
        assert_eq!(needed, ["response_format"]);
        assert_eq!(needs("temperature", "null").count(), 0);
        assert_eq!(needs("messages", "[]").count(), 0);
    }
}
