//! The catalogue as routing reads it: models, their provider endpoints, prices and upstream
//! addresses; and `GET /models`, rendered from it once per snapshot.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::money::Money;
use crate::pricing::Prices;
use crate::routing::Quota;
use crate::routing::health::{EndpointHealth, Percentiles};

#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: i64,
    pub context_length: u32,
    /// Ordered by routing preference (lowest priority value first).
    pub endpoints: Vec<Arc<Endpoint>>,
}

#[derive(Debug)]
pub struct Endpoint {
    pub provider_id: String,
    /// Display name, as OpenRouter reports `provider`.
    pub provider_name: String,
    pub upstream_model: String,
    pub upstream: Upstream,
    /// The wire format the endpoint speaks (its provider's).
    pub api: Api,
    /// Path of the call the endpoint's API makes, e.g. `/v1/chat/completions`, and of the
    /// call that streams (the same but for Gemini).
    pub path: String,
    pub stream_path: String,
    pub prices: Prices,
    pub context_length: u32,
    pub max_output_tokens: u32,
    /// `Authorization` value injected upstream; never the client's.
    pub authorization: Option<String>,
    pub priority: i32,
    /// `<provider>|<upstream model>`: this endpoint's name in the shared provider health.
    pub health_id: Arc<str>,
    /// OpenRouter's endpoint tag (`provider` or `provider/variant`).
    pub tag: String,
    pub quantization: Option<String>,
    /// Request parameters this endpoint honours (sorted).
    pub supported_parameters: Box<[Box<str>]>,
    pub data: DataPolicy,
    /// 0: no limit beyond the context length.
    pub max_prompt_tokens: u32,
    pub implicit_caching: bool,
    /// The gateway's own account's limits with the provider (its catalogue entry's).
    pub quota: Quota,
}

/// The wire format a provider's endpoints speak. The dataplane's adapters translate requests,
/// responses, streams and errors between it and OpenAI's chat completions, which the client
/// speaks; the catalogue names it by [`Api::slug`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI's `/chat/completions`, and every provider compatible with it.
    #[default]
    OpenAiChat,
    /// Anthropic's `/v1/messages`.
    AnthropicMessages,
    /// Google's Gemini API: `models/<model>:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// Azure OpenAI: OpenAI's format at deployment URLs (`deployments/<deployment>/…` with an
    /// `api-version`), the key in `api-key`. The endpoint's upstream model is the deployment.
    AzureOpenAi,
}

impl Api {
    pub const ALL: [Api; 4] = [
        Api::OpenAiChat,
        Api::AnthropicMessages,
        Api::Gemini,
        Api::AzureOpenAi,
    ];

    /// The Azure OpenAI API version every call names (the current GA one).
    pub const AZURE_API_VERSION: &'static str = "2024-10-21";

    /// The catalogue's name for it.
    pub fn slug(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai-chat",
            Api::AnthropicMessages => "anthropic-messages",
            Api::Gemini => "gemini",
            Api::AzureOpenAi => "azure-openai",
        }
    }

    pub fn parse(slug: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// The paths of its calls for `model` under a base URL's path (`/v1` → `/v1/messages`):
    /// a whole answer's, then a stream's. Only Gemini's differ; Gemini's and Azure's name the
    /// model (Azure's deployment).
    pub fn paths(self, base_path: &str, model: &str) -> (String, String) {
        let path = match self {
            Api::OpenAiChat => format!("{base_path}/chat/completions"),
            Api::AnthropicMessages => format!("{base_path}/messages"),
            Api::Gemini => {
                return (
                    format!("{base_path}/models/{model}:generateContent"),
                    format!("{base_path}/models/{model}:streamGenerateContent?alt=sse"),
                );
            }
            Api::AzureOpenAi => format!(
                "{base_path}/deployments/{model}/chat/completions?api-version={}",
                Self::AZURE_API_VERSION
            ),
        };
        (path.clone(), path)
    }
}

/// What a provider does with prompts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataPolicy {
    pub trains_on_prompts: bool,
    pub retains_prompts: bool,
    /// Zero data retention: nothing is kept.
    pub zero_data_retention: bool,
}

/// The parameters an endpoint honours when the catalogue does not say: OpenRouter's names for
/// what every OpenAI-compatible chat endpoint takes.
pub const STANDARD_PARAMETERS: [&str; 15] = [
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "parallel_tool_calls",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "structured_outputs",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
];

impl Endpoint {
    /// The most output one request can produce here: the catalogue's max output, or the whole
    /// context when the catalogue does not say.
    pub fn output_cap(&self) -> u64 {
        let cap = if self.max_output_tokens > 0 {
            self.max_output_tokens
        } else {
            self.context_length
        };
        u64::from(cap).max(1)
    }

    /// The path of its embeddings call, for APIs that have one.
    pub fn embeddings_path(&self) -> Option<String> {
        let base = &self.upstream.base_path;
        match self.api {
            Api::OpenAiChat => Some(format!("{base}/embeddings")),
            Api::AzureOpenAi => Some(format!(
                "{base}/deployments/{}/embeddings?api-version={}",
                self.upstream_model,
                Api::AZURE_API_VERSION
            )),
            Api::AnthropicMessages | Api::Gemini => None,
        }
    }

    /// Whether the endpoint honours `parameter` (OpenRouter's name for it).
    pub fn supports(&self, parameter: &str) -> bool {
        self.supported_parameters
            .binary_search_by(|p| (**p).cmp(parameter))
            .is_ok()
    }
}

/// This endpoint's name in provider health.
pub fn health_id(provider_id: &str, upstream_model: &str) -> String {
    format!("{provider_id}|{upstream_model}")
}

/// Gives a host's [`Addresses`] while a snapshot is prepared (off the request path). The
/// dataplane hands out cells it keeps fresh (`dataplane::dns`); the control plane, which only
/// validates, resolves nothing.
pub type Resolver<'a> = &'a dyn Fn(&str, u16) -> Arc<Addresses>;

/// Every address of `host:port` by the system's resolver (blocking; call it off the async
/// executor); none when it fails.
pub fn lookup(host: &str, port: u16) -> Vec<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default()
}

/// Resolves with the system's resolver once, for tools and tests (dataplanes keep theirs fresh).
pub fn system_resolver(host: &str, port: u16) -> Arc<Addresses> {
    Arc::new(Addresses::new(host, port, lookup(host, port)))
}

/// Resolves nothing: for validating a snapshot without network access.
pub fn no_resolver(host: &str, port: u16) -> Arc<Addresses> {
    Arc::new(Addresses::new(host, port, Vec::new()))
}

/// A provider host's addresses: shared by every snapshot that names the host, replaced in place
/// when it is resolved again, and used in turn (each request takes the next), so that every
/// address serves and none is a single point of failure.
pub struct Addresses {
    host: Box<str>,
    port: u16,
    current: ArcSwap<Box<[SocketAddr]>>,
    next: AtomicUsize,
    /// A connection to one of them failed since the last lookup: look again soon.
    failed: AtomicBool,
}

impl std::fmt::Debug for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Addresses")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("current", &self.current.load())
            .finish()
    }
}

impl Addresses {
    pub fn new(host: &str, port: u16, addrs: Vec<SocketAddr>) -> Addresses {
        Addresses {
            host: host.into(),
            port,
            current: ArcSwap::from_pointee(addrs.into_boxed_slice()),
            next: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next address in turn; `None` while the host has not resolved.
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.current.load();
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        addrs.get(i).copied()
    }

    /// Every address now known.
    pub fn all(&self) -> Vec<SocketAddr> {
        self.current.load().to_vec()
    }

    /// What a new lookup found. A failed lookup (nothing found) keeps the addresses known: a
    /// resolver outage must not take a working provider away.
    pub fn update(&self, addrs: Vec<SocketAddr>) {
        if addrs.is_empty() {
            return;
        }
        self.failed.store(false, Ordering::Relaxed);
        if ***self.current.load() != *addrs {
            self.current.store(Arc::new(addrs.into_boxed_slice()));
        }
    }

    /// A connection failed: the host is looked up again at the next chance.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Whether the host should be looked up before the regular refresh: it has no address, or a
    /// connection to it failed.
    pub fn needs_lookup(&self) -> bool {
        self.current.load().is_empty() || self.failed.load(Ordering::Relaxed)
    }
}

/// A provider's address, parsed and resolved before it can reach the request path, because
/// pingora's `HttpPeer::new` would resolve names with blocking DNS and panic on a bad address.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The host's addresses, empty while it has not resolved: the endpoint stays in the snapshot
    /// (attempts at it fail over at once), so one unresolvable provider cannot make a whole
    /// snapshot invalid, and it serves as soon as the host resolves.
    pub addresses: Arc<Addresses>,
    pub tls: bool,
    /// Host header and TLS SNI.
    pub host: String,
    /// The base URL's path, without a trailing slash (`/v1`, or empty): where the API's calls
    /// go under ([`Api::path`]).
    pub base_path: String,
}

impl Upstream {
    /// Parses an OpenAI-style base URL (`http(s)://host[:port][/prefix]`) and resolves its host.
    pub fn parse(base_url: &str, resolve: Resolver<'_>) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(rest) = base_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("scheme must be http or https".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("missing or invalid host".into());
        }
        let default_port = if tls { 443 } else { 80 };
        // `host`, `host:port`, `[v6]` or `[v6]:port`; the host keeps its brackets for Host.
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| "unclosed [ in host".to_owned())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err("junk after ]".into()),
            };
            (&authority[..v6.len() + 2], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
                None => (authority, default_port),
            }
        };
        let host_only = host.trim_start_matches('[').trim_end_matches(']');
        if host_only.is_empty() {
            return Err("missing host".into());
        }
        Ok(Upstream {
            addresses: resolve(host_only, port),
            tls,
            host: if port == default_port {
                host.to_owned()
            } else {
                format!("{host}:{port}")
            },
            base_path: path.to_owned(),
        })
    }

    /// The address the next connection goes to.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addresses.pick()
    }

    /// SNI name: the host without a port or brackets.
    pub fn sni(&self) -> &str {
        let host = match self.host.rsplit_once(':') {
            Some((h, p)) if !self.host.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// `GET /api/v1/models` as OpenRouter's SDK reads it, rendered once per snapshot version so a
/// dataplane answers it without the control plane.
pub fn render_models(models: &HashMap<String, Arc<Model>>) -> Bytes {
    let mut sorted: Vec<&Arc<Model>> = models.values().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let data: Vec<Value> = sorted.iter().map(|m| model_json(m)).collect();
    let document = json!({
        "data": data,
        "links": { "next": null },
        "total_count": data.len(),
    });
    Bytes::from(document.to_string())
}

/// A model's supported parameters: those any of its endpoints honours.
pub fn supported_parameters(m: &Model) -> Vec<&str> {
    let mut all: Vec<&str> = m
        .endpoints
        .iter()
        .flat_map(|e| e.supported_parameters.iter().map(|p| &**p))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn price(p: Option<Money>) -> Value {
    p.map_or(Value::Null, |p| Value::String(p.to_string()))
}

/// Prices as OpenRouter's API writes them: decimal strings, `"-1"` for an unknown prompt or
/// completion price ("0" would claim the model is free).
fn pricing_json(prices: &Prices) -> Value {
    let mut pricing = json!({
        "prompt": price(prices.prompt).as_str().unwrap_or("-1"),
        "completion": price(prices.completion).as_str().unwrap_or("-1"),
    });
    for (name, value) in [
        ("request", prices.request),
        ("image", prices.image),
        ("input_cache_read", prices.input_cache_read),
        ("input_cache_write", prices.input_cache_write),
        ("internal_reasoning", prices.internal_reasoning),
    ] {
        if let Some(v) = value {
            pricing[name] = Value::String(v.to_string());
        }
    }
    pricing
}

fn model_json(m: &Model) -> Value {
    // The model's public price is its preferred endpoint's.
    let top = m.endpoints.first();
    let pricing = pricing_json(&top.map(|e| e.prices).unwrap_or_default());
    let max_output = top.map(|e| e.max_output_tokens).filter(|&n| n > 0);
    json!({
        "id": m.id,
        "canonical_slug": m.id,
        "name": m.name,
        "created": m.created,
        "description": m.description,
        "context_length": m.context_length,
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "modality": "text->text",
            "instruct_type": null,
            "tokenizer": "Other",
        },
        "pricing": pricing,
        "top_provider": {
            "is_moderated": false,
            "context_length": top.map(|e| e.context_length),
            "max_completion_tokens": max_output,
        },
        "per_request_limits": null,
        "supported_parameters": supported_parameters(m),
        "default_parameters": null,
        "supported_voices": null,
        "links": { "details": format!("/api/v1/models/{}/endpoints", m.id) },
    })
}

/// One endpoint as `GET /models/{author}/{slug}/endpoints` and `GET /endpoints/zdr` report it
/// (the SDK's `PublicEndpoint`), with the fleet's health where there is any.
pub fn endpoint_json(m: &Model, e: &Endpoint, health: Option<&EndpointHealth>) -> Value {
    let percentiles = |p: Option<Percentiles>| match p {
        None => Value::Null,
        Some(p) => json!({ "p50": p.p50, "p75": p.p75, "p90": p.p90, "p99": p.p99 }),
    };
    let tool_choice = e.supports("tool_choice");
    json!({
        "name": format!("{} | {}", e.provider_name, m.id),
        "model_id": m.id,
        "model_name": m.name,
        "provider_name": e.provider_name,
        "tag": e.tag,
        "context_length": e.context_length,
        "max_completion_tokens": (e.max_output_tokens > 0).then_some(e.max_output_tokens),
        "max_prompt_tokens": (e.max_prompt_tokens > 0).then_some(e.max_prompt_tokens),
        "pricing": pricing_json(&e.prices),
        "quantization": e.quantization,
        "service_tier": null,
        "status": if health.is_some_and(|h| h.outage) { -1 } else { 0 },
        "supported_parameters": e.supported_parameters,
        "supports_implicit_caching": e.implicit_caching,
        "supports_diarization": false,
        "supports_tool_choice": {
            "auto": tool_choice, "function": tool_choice, "none": tool_choice,
            "required": tool_choice,
        },
        "native_tools": {},
        "latency_last_30m": percentiles(health.and_then(|h| h.latency_ms)),
        "throughput_last_30m": percentiles(health.and_then(|h| h.throughput)),
        "uptime_last_1d": health.and_then(|h| h.uptime_1d),
        "uptime_last_30m": health.and_then(|h| h.uptime_30m),
        "uptime_last_5m": health.and_then(|h| h.uptime_5m),
    })
}

/// `GET /models/{author}/{slug}/endpoints`: the model and each of its endpoints.
pub fn render_endpoints(m: &Model, health: &dyn Fn(&str) -> Option<EndpointHealth>) -> Value {
    let endpoints: Vec<Value> = m
        .endpoints
        .iter()
        .map(|e| endpoint_json(m, e, health(&e.health_id).as_ref()))
        .collect();
    let mut model = model_json(m);
    json!({
        "data": {
            "id": m.id,
            "name": m.name,
            "created": m.created,
            "description": m.description,
            "architecture": model["architecture"].take(),
            "endpoints": endpoints,
        }
    })
}

/// `GET /endpoints/zdr`: every zero-data-retention endpoint of the catalogue.
pub fn render_zdr_endpoints(
    models: &HashMap<String, Arc<Model>>,
    health: &dyn Fn(&str) -> Option<EndpointHealth>,
) -> Value {
    let mut ordered: Vec<&Arc<Model>> = models.values().collect();
    ordered.sort_by(|a, b| a.id.cmp(&b.id));
    let data: Vec<Value> = ordered
        .into_iter()
        .flat_map(|m| {
            m.endpoints
                .iter()
                .filter(|e| e.data.zero_data_retention)
                .map(|e| endpoint_json(m, e, health(&e.health_id).as_ref()))
        })
        .collect();
    json!({ "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Upstream, String> {
        Upstream::parse(url, &system_resolver)
    }

    #[test]
    fn azure_names_the_deployment_and_the_api_version() {
        let u = Upstream::parse("https://res.openai.azure.com/openai", &no_resolver).unwrap();
        let (path, stream_path) = Api::AzureOpenAi.paths(&u.base_path, "gpt-4o-prod");
        assert_eq!(
            path,
            "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(path, stream_path);
        let mut e = crate::testing::endpoint("azure", Prices::default(), 0);
        e.api = Api::AzureOpenAi;
        e.upstream = u;
        e.upstream_model = "emb-prod".into();
        assert_eq!(
            e.embeddings_path().as_deref(),
            Some("/openai/deployments/emb-prod/embeddings?api-version=2024-10-21")
        );
        e.api = Api::Gemini;
        assert_eq!(e.embeddings_path(), None);
    }

    #[test]
    fn api_slugs_round_trip() {
        for api in Api::ALL {
            assert_eq!(Api::parse(api.slug()), Some(api));
        }
        assert_eq!(Api::parse("openai"), None);
    }

    #[test]
    fn parses_base_urls() {
        let u = parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(u.addr().unwrap().port(), 9000);
        assert!(!u.tls);
        assert_eq!(u.host, "127.0.0.1:9000");
        assert_eq!(u.base_path, "/v1");
        assert_eq!(
            Api::OpenAiChat.paths(&u.base_path, "m").0,
            "/v1/chat/completions"
        );
        assert_eq!(
            Api::AnthropicMessages.paths(&u.base_path, "m").1,
            "/v1/messages"
        );
        assert_eq!(
            Api::Gemini.paths(&u.base_path, "g-1"),
            (
                "/v1/models/g-1:generateContent".to_owned(),
                "/v1/models/g-1:streamGenerateContent?alt=sse".to_owned()
            )
        );
        assert_eq!(u.sni(), "127.0.0.1");

        let u = parse("http://localhost/").unwrap();
        assert_eq!(u.addr().unwrap().port(), 80);
        assert_eq!(
            Api::OpenAiChat.paths(&u.base_path, "m").0,
            "/chat/completions"
        );
        assert_eq!(u.host, "localhost");
    }

    #[test]
    fn parses_ipv6_base_urls() {
        let u = parse("http://[::1]:9000/v1").unwrap();
        assert_eq!(u.addr().unwrap().port(), 9000);
        assert_eq!(u.host, "[::1]:9000");
        assert_eq!(u.sni(), "::1");
        let u = parse("http://[::1]/v1").unwrap();
        assert_eq!(u.addr().unwrap().port(), 80);
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.sni(), "::1");
        assert!(parse("http://[::1/v1").is_err());
    }

    #[test]
    fn rejects_bad_base_urls() {
        assert!(parse("ftp://x/v1").is_err());
        assert!(parse("http:///v1").is_err());
        assert!(parse("http://127.0.0.1:notaport/v1").is_err());
        assert!(parse("http://user@127.0.0.1/v1").is_err());
    }

    #[test]
    fn unresolvable_hosts_and_validation_leave_the_address_empty() {
        assert!(
            parse("https://no-such-host.invalid/v1")
                .unwrap()
                .addr()
                .is_none()
        );
        let u = Upstream::parse("https://api.example.com/v1", &no_resolver).unwrap();
        assert!(u.addr().is_none());
        assert_eq!(u.sni(), "api.example.com");
    }

    #[test]
    fn addresses_take_turns_and_survive_a_failed_lookup() {
        let a: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let cell = Addresses::new("h", 443, vec![a, b]);
        let picks: Vec<_> = (0..4).filter_map(|_| cell.pick()).collect();
        assert_eq!(picks, [a, b, a, b]);
        cell.mark_failed();
        assert!(cell.needs_lookup());
        // The resolver is down: the known addresses stay.
        cell.update(Vec::new());
        assert_eq!(cell.all(), [a, b]);
        cell.update(vec![b]);
        assert_eq!(cell.all(), [b]);
        assert!(!cell.needs_lookup());
        let empty = Addresses::new("h", 443, Vec::new());
        assert!(empty.pick().is_none() && empty.needs_lookup());
    }
}
