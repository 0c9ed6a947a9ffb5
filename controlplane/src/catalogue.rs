//! The model catalogue file: providers with their base URLs, and models with their provider
//! endpoints and prices in OpenRouter's `/models` pricing fields (USD per token, as strings).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use switchyard_policy::snapshot::Api;

use crate::store::{CatalogueRows, EndpointRow, EndpointTraits, ModelRow, ProviderRow};

/// The catalogue `make dev` and the tests use: every provider is the mock.
pub const DEV_CATALOGUE: &str = include_str!("../catalogue/dev.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(default, rename = "_comment")]
    _comment: Option<String>,
    providers: Vec<Provider>,
    models: Vec<Model>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provider {
    id: String,
    name: String,
    base_url: String,
    /// The wire format its endpoints speak (`switchyard_policy::snapshot::Api`'s slugs);
    /// `openai-chat` when left out.
    #[serde(default)]
    api: Option<String>,
    /// When this environment variable is set, it replaces `base_url`.
    #[serde(default)]
    base_url_env: Option<String>,
    /// Environment variable holding the provider credential.
    #[serde(default)]
    api_key_env: Option<String>,
    /// The gateway's account's limits with the provider.
    #[serde(default)]
    quota: Quota,
}

/// Per-minute limits of a provider account; absent or 0 means none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Quota {
    #[serde(default)]
    requests_per_minute: u32,
    #[serde(default)]
    tokens_per_minute: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    created: i64,
    context_length: i64,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    provider: String,
    upstream_model: String,
    #[serde(default)]
    priority: i64,
    context_length: i64,
    max_output_tokens: i64,
    pricing: Pricing,
    /// OpenRouter's endpoint tag (`provider` or `provider/variant`); the provider id if absent.
    #[serde(default)]
    tag: Option<String>,
    /// `int4`, `int8`, `fp4`, `fp8`, `fp16`, `bf16`, `fp32`, ...
    #[serde(default)]
    quantization: Option<String>,
    /// The request parameters the endpoint honours; the standard set when left out.
    #[serde(default)]
    supported_parameters: Option<Vec<String>>,
    #[serde(default)]
    max_prompt_tokens: Option<i64>,
    #[serde(default)]
    data_policy: DataPolicy,
    #[serde(default)]
    implicit_caching: bool,
}

/// What the provider does with prompts: what `provider.data_collection` and ZDR route on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataPolicy {
    #[serde(default)]
    trains_on_prompts: bool,
    #[serde(default)]
    retains_prompts: bool,
    #[serde(default)]
    zero_data_retention: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pricing {
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    completion: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    input_cache_read: String,
    #[serde(default)]
    input_cache_write: String,
    #[serde(default)]
    internal_reasoning: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("catalogue: {0}")]
    Invalid(String),
}

impl Catalogue {
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let catalogue: Catalogue = serde_json::from_str(text)?;
        catalogue.validate()?;
        Ok(catalogue)
    }

    fn validate(&self) -> Result<(), CatalogueError> {
        let invalid = |m: String| Err(CatalogueError::Invalid(m));
        let mut providers = HashSet::new();
        for p in &self.providers {
            if !providers.insert(p.id.as_str()) {
                return invalid(format!("provider {} is listed twice", p.id));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return invalid(format!("provider {}: base_url must be http(s)", p.id));
            }
            if let Some(api) = &p.api
                && Api::parse(api).is_none()
            {
                let known: Vec<&str> = Api::ALL.iter().map(|a| a.slug()).collect();
                return invalid(format!(
                    "provider {}: api {api:?} is none of {}",
                    p.id,
                    known.join(", ")
                ));
            }
        }
        let mut models = HashSet::new();
        for m in &self.models {
            if !models.insert(m.id.as_str()) {
                return invalid(format!("model {} is listed twice", m.id));
            }
            if m.endpoints.is_empty() {
                return invalid(format!("model {} has no endpoints", m.id));
            }
            let mut seen = HashSet::new();
            for e in &m.endpoints {
                if !providers.contains(e.provider.as_str()) {
                    return invalid(format!("model {}: unknown provider {}", m.id, e.provider));
                }
                if e.data_policy.zero_data_retention
                    && (e.data_policy.retains_prompts || e.data_policy.trains_on_prompts)
                {
                    return invalid(format!(
                        "model {}, provider {}: zero data retention contradicts retaining or \
                         training on prompts",
                        m.id, e.provider
                    ));
                }
                if let Some(q) = &e.quantization
                    && !QUANTIZATIONS.contains(&q.as_str())
                {
                    return invalid(format!(
                        "model {}, provider {}: unknown quantization {q:?}",
                        m.id, e.provider
                    ));
                }
                if !seen.insert(e.provider.as_str()) {
                    return invalid(format!(
                        "model {}: provider {} listed twice",
                        m.id, e.provider
                    ));
                }
                for (field, price) in [
                    ("prompt", &e.pricing.prompt),
                    ("completion", &e.pricing.completion),
                    ("request", &e.pricing.request),
                    ("image", &e.pricing.image),
                    ("input_cache_read", &e.pricing.input_cache_read),
                    ("input_cache_write", &e.pricing.input_cache_write),
                    ("internal_reasoning", &e.pricing.internal_reasoning),
                ] {
                    if !price.is_empty() && !is_decimal(price) {
                        return invalid(format!(
                            "model {}, provider {}: price {field} {price:?} is not a decimal string",
                            m.id, e.provider
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows to store, with environment overrides applied to base URLs.
    pub fn rows(&self, env: &HashMap<String, String>) -> CatalogueRows {
        let providers = self
            .providers
            .iter()
            .map(|p| ProviderRow {
                id: p.id.clone(),
                name: p.name.clone(),
                base_url: p
                    .base_url_env
                    .as_ref()
                    .and_then(|var| env.get(var))
                    .cloned()
                    .unwrap_or_else(|| p.base_url.clone()),
                api: p
                    .api
                    .clone()
                    .unwrap_or_else(|| Api::OpenAiChat.slug().to_owned()),
                api_key_env: p.api_key_env.clone().unwrap_or_default(),
                requests_per_minute: i64::from(p.quota.requests_per_minute),
                tokens_per_minute: i64::try_from(p.quota.tokens_per_minute).unwrap_or(i64::MAX),
            })
            .collect();
        let models = self
            .models
            .iter()
            .map(|m| ModelRow {
                id: m.id.clone(),
                name: m.name.clone(),
                description: m.description.clone(),
                created: m.created,
                context_length: m.context_length,
                endpoints: m
                    .endpoints
                    .iter()
                    .map(|e| EndpointRow {
                        provider_id: e.provider.clone(),
                        upstream_model: e.upstream_model.clone(),
                        price_prompt: e.pricing.prompt.clone(),
                        price_completion: e.pricing.completion.clone(),
                        price_request: e.pricing.request.clone(),
                        price_image: e.pricing.image.clone(),
                        price_input_cache_read: e.pricing.input_cache_read.clone(),
                        price_input_cache_write: e.pricing.input_cache_write.clone(),
                        price_internal_reasoning: e.pricing.internal_reasoning.clone(),
                        context_length: e.context_length,
                        max_output_tokens: e.max_output_tokens,
                        priority: e.priority,
                        traits: EndpointTraits {
                            tag: e.tag.clone(),
                            quantization: e.quantization.clone(),
                            supported_parameters: e.supported_parameters.clone(),
                            max_prompt_tokens: e.max_prompt_tokens,
                            trains_on_prompts: e.data_policy.trains_on_prompts,
                            retains_prompts: e.data_policy.retains_prompts,
                            zero_data_retention: e.data_policy.zero_data_retention,
                            implicit_caching: e.implicit_caching,
                        },
                    })
                    .collect(),
            })
            .collect();
        CatalogueRows { providers, models }
    }
}

/// OpenRouter's quantization levels (`components/quantization.py`).
const QUANTIZATIONS: [&str; 12] = [
    "int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32",
    "unknown",
];

/// A non-negative decimal with at most 12 decimal places (what the dataplane can price).
fn is_decimal(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    !(whole.is_empty() && frac.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.trim_end_matches('0').len() <= 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogues_are_valid() {
        let dev = Catalogue::parse(DEV_CATALOGUE).unwrap();
        assert!(dev.models.len() >= 3);
        assert!(dev.models.iter().any(|m| m.endpoints.len() >= 2));
        let production = Catalogue::parse(include_str!("../catalogue/production.json")).unwrap();
        assert!(
            production
                .providers
                .iter()
                .all(|p| p.base_url.starts_with("https://"))
        );
    }

    #[test]
    fn env_overrides_base_url() {
        let dev = Catalogue::parse(DEV_CATALOGUE).unwrap();
        let env = HashMap::from([(
            "SWITCHYARD_MOCK_URL".to_owned(),
            "http://127.0.0.1:1234/v1".to_owned(),
        )]);
        let rows = dev.rows(&env);
        assert_eq!(rows.providers[0].base_url, "http://127.0.0.1:1234/v1");
    }

    #[test]
    fn refuses_bad_catalogues() {
        let bad = r#"{"providers":[{"id":"p","name":"P","base_url":"http://x"}],
            "models":[{"id":"m","name":"M","created":0,"context_length":1,
            "endpoints":[{"provider":"p","upstream_model":"m","context_length":1,"max_output_tokens":1,
            "pricing":{"prompt":"1e-6"}}]}]}"#;
        assert!(matches!(
            Catalogue::parse(bad),
            Err(CatalogueError::Invalid(_))
        ));
        let unknown = bad
            .replace(r#""provider":"p""#, r#""provider":"q""#)
            .replace("1e-6", "0.1");
        assert!(matches!(
            Catalogue::parse(&unknown),
            Err(CatalogueError::Invalid(_))
        ));
    }
}
