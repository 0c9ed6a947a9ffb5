//! The `provider` object of a chat request (OpenRouter's `ProviderPreferences`), parsed and
//! validated once for both planes: the dataplane reads it from requests, the control plane
//! refuses a preset whose `provider` it could not apply.
//!
//! Every field of the contract (`openrouter==1.3.84`, `components/providerpreferences.py`) is
//! read; an unknown field is refused rather than silently ignored, so that a misspelt preference
//! never routes as if it were absent.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::money::Money;

/// OpenRouter's quantization levels (`components/quantization.py`).
pub const QUANTIZATIONS: [&str; 12] = [
    "int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32",
    "unknown",
];

/// Routing preferences, each `None` where the request (or preset, or workspace) says nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderPreferences {
    /// Providers to try first, in this order.
    pub order: Option<Vec<String>>,
    /// Only these providers.
    pub only: Option<Vec<String>>,
    /// Never these providers.
    pub ignore: Option<Vec<String>>,
    /// `false`: never fall back beyond the first (or ordered) providers.
    pub allow_fallbacks: Option<bool>,
    /// Only endpoints that honour every parameter the request sets.
    pub require_parameters: Option<bool>,
    pub data_collection: Option<DataCollection>,
    /// Only zero-data-retention endpoints.
    pub zdr: Option<bool>,
    pub enforce_distillable_text: Option<bool>,
    pub quantizations: Option<Vec<String>>,
    pub sort: Option<Sort>,
    pub max_price: Option<MaxPrice>,
    /// Tokens per second.
    pub preferred_min_throughput: Option<Cutoffs>,
    /// Seconds.
    pub preferred_max_latency: Option<Cutoffs>,
    /// Provider-specific request members, by provider slug: only the serving provider's are sent.
    pub options: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCollection {
    Allow,
    /// Only providers that neither retain nor train on prompts.
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Price,
    Throughput,
    Latency,
}

impl SortBy {
    pub fn parse(text: &str) -> Result<SortBy, String> {
        match text {
            "price" => Ok(SortBy::Price),
            "throughput" => Ok(SortBy::Throughput),
            "latency" => Ok(SortBy::Latency),
            "exacto" => Err(
                "sort \"exacto\" is not supported: this gateway keeps no tool-calling quality \
                 data to rank endpoints by"
                    .to_owned(),
            ),
            other => Err(format!(
                "sort must be one of price, throughput, latency (got {other:?})"
            )),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Price => "price",
            SortBy::Throughput => "throughput",
            SortBy::Latency => "latency",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    /// `false` (`"none"`): the endpoints of every fallback model are sorted together.
    pub partition_by_model: bool,
}

/// Price ceilings. Prompt and completion are USD per million tokens (as OpenRouter takes them),
/// request per request, image per image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxPrice {
    pub prompt: Option<Money>,
    pub completion: Option<Money>,
    pub request: Option<Money>,
    pub image: Option<Money>,
    pub audio: Option<Money>,
}

/// Percentile cutoffs; a bare number is the p50 cutoff.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cutoffs {
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

impl Cutoffs {
    /// `(percentile, cutoff)` for each cutoff set.
    pub fn each(&self) -> impl Iterator<Item = (Percentile, f64)> + '_ {
        [
            (Percentile::P50, self.p50),
            (Percentile::P75, self.p75),
            (Percentile::P90, self.p90),
            (Percentile::P99, self.p99),
        ]
        .into_iter()
        .filter_map(|(p, v)| v.map(|v| (p, v)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P75,
    P90,
    P99,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    order: Option<Vec<String>>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    ignore: Option<Vec<String>>,
    #[serde(default)]
    allow_fallbacks: Option<bool>,
    #[serde(default)]
    require_parameters: Option<bool>,
    #[serde(default)]
    data_collection: Option<String>,
    #[serde(default)]
    zdr: Option<bool>,
    #[serde(default)]
    enforce_distillable_text: Option<bool>,
    #[serde(default)]
    quantizations: Option<Vec<String>>,
    #[serde(default)]
    sort: Option<SortWire>,
    #[serde(default)]
    max_price: Option<MaxPriceWire>,
    #[serde(default)]
    preferred_min_throughput: Option<CutoffsWire>,
    #[serde(default)]
    preferred_max_latency: Option<CutoffsWire>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SortWire {
    By(String),
    Config(SortConfigWire),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SortConfigWire {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    partition: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxPriceWire {
    #[serde(default)]
    prompt: Option<Amount>,
    #[serde(default)]
    completion: Option<Amount>,
    #[serde(default)]
    request: Option<Amount>,
    #[serde(default)]
    image: Option<Amount>,
    #[serde(default)]
    audio: Option<Amount>,
}

/// The SDK sends prices as strings; OpenRouter's documentation shows numbers. Both are taken.
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Number(f64),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CutoffsWire {
    P50(f64),
    Percentiles(PercentilesWire),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentilesWire {
    #[serde(default)]
    p50: Option<f64>,
    #[serde(default)]
    p75: Option<f64>,
    #[serde(default)]
    p90: Option<f64>,
    #[serde(default)]
    p99: Option<f64>,
}

impl ProviderPreferences {
    /// Parses the `provider` member's JSON text (`null` is no preferences). The error says
    /// what is wrong, for the caller to put in context.
    pub fn parse(json: &str) -> Result<ProviderPreferences, String> {
        let wire: Option<Wire> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        match wire {
            None => Ok(ProviderPreferences::default()),
            Some(w) => from_wire(w),
        }
    }

    /// Parses a `provider` object already held as a JSON value (a preset's).
    pub fn from_value(value: &Value) -> Result<ProviderPreferences, String> {
        ProviderPreferences::parse(&value.to_string())
    }

    /// These preferences where they speak, `base`'s elsewhere: a request over its preset, a
    /// preset over the workspace's defaults.
    pub fn over(self, base: &ProviderPreferences) -> ProviderPreferences {
        fn pick<T: Clone>(mine: Option<T>, base: &Option<T>) -> Option<T> {
            mine.or_else(|| base.clone())
        }
        ProviderPreferences {
            order: pick(self.order, &base.order),
            only: pick(self.only, &base.only),
            ignore: pick(self.ignore, &base.ignore),
            allow_fallbacks: pick(self.allow_fallbacks, &base.allow_fallbacks),
            require_parameters: pick(self.require_parameters, &base.require_parameters),
            data_collection: pick(self.data_collection, &base.data_collection),
            zdr: pick(self.zdr, &base.zdr),
            enforce_distillable_text: pick(
                self.enforce_distillable_text,
                &base.enforce_distillable_text,
            ),
            quantizations: pick(self.quantizations, &base.quantizations),
            sort: pick(self.sort, &base.sort),
            max_price: pick(self.max_price, &base.max_price),
            preferred_min_throughput: pick(
                self.preferred_min_throughput,
                &base.preferred_min_throughput,
            ),
            preferred_max_latency: pick(self.preferred_max_latency, &base.preferred_max_latency),
            options: pick(self.options, &base.options),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ProviderPreferences::default()
    }
}

fn from_wire(w: Wire) -> Result<ProviderPreferences, String> {
    let slugs = |name: &str, list: Option<Vec<String>>| -> Result<Option<Vec<String>>, String> {
        match list {
            Some(list) if list.iter().any(|s| s.trim().is_empty()) => Err(format!(
                "{name} must hold provider slugs, not empty strings"
            )),
            other => Ok(other),
        }
    };
    let data_collection = match w.data_collection.as_deref() {
        None => None,
        Some("allow") => Some(DataCollection::Allow),
        Some("deny") => Some(DataCollection::Deny),
        Some(other) => {
            return Err(format!(
                "data_collection must be \"allow\" or \"deny\" (got {other:?})"
            ));
        }
    };
    if let Some(q) = w
        .quantizations
        .iter()
        .flatten()
        .find(|q| !QUANTIZATIONS.contains(&q.as_str()))
    {
        return Err(format!(
            "quantizations must be among {} (got {q:?})",
            QUANTIZATIONS.join(", ")
        ));
    }
    let sort = match w.sort {
        None => None,
        Some(SortWire::By(by)) => Some(Sort {
            by: SortBy::parse(&by)?,
            partition_by_model: true,
        }),
        Some(SortWire::Config(SortConfigWire { by, partition })) => {
            let partition_by_model = match partition.as_deref() {
                None | Some("model") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(format!(
                        "sort.partition must be \"model\" or \"none\" (got {other:?})"
                    ));
                }
            };
            match by {
                None => None,
                Some(by) => Some(Sort {
                    by: SortBy::parse(&by)?,
                    partition_by_model,
                }),
            }
        }
    };
    let max_price = match w.max_price {
        None => None,
        Some(m) => Some(MaxPrice {
            prompt: amount("max_price.prompt", m.prompt)?,
            completion: amount("max_price.completion", m.completion)?,
            request: amount("max_price.request", m.request)?,
            image: amount("max_price.image", m.image)?,
            audio: amount("max_price.audio", m.audio)?,
        }),
    };
    if let Some(options) = &w.options
        && let Some((slug, _)) = options.iter().find(|(_, v)| !v.is_object())
    {
        return Err(format!("options.{slug} must be an object"));
    }
    Ok(ProviderPreferences {
        order: slugs("order", w.order)?,
        only: slugs("only", w.only)?,
        ignore: slugs("ignore", w.ignore)?,
        allow_fallbacks: w.allow_fallbacks,
        require_parameters: w.require_parameters,
        data_collection,
        zdr: w.zdr,
        enforce_distillable_text: w.enforce_distillable_text,
        quantizations: w.quantizations,
        sort,
        max_price,
        preferred_min_throughput: cutoffs("preferred_min_throughput", w.preferred_min_throughput)?,
        preferred_max_latency: cutoffs("preferred_max_latency", w.preferred_max_latency)?,
        options: w.options,
    })
}

fn amount(name: &str, value: Option<Amount>) -> Result<Option<Money>, String> {
    let parsed = match value {
        None => return Ok(None),
        Some(Amount::Text(text)) => Money::parse_usd(text.trim()),
        Some(Amount::Number(n)) => Money::parse_usd(&format_decimal(n)),
    };
    parsed
        .map(Some)
        .map_err(|e| format!("{name} must be a non-negative amount of USD: {e}"))
}

/// A JSON number as a plain decimal (no exponent), for the one money parser.
fn format_decimal(n: f64) -> String {
    if !n.is_finite() || n < 0.0 {
        return n.to_string();
    }
    let text = format!("{n:.12}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_owned()
}

fn cutoffs(name: &str, wire: Option<CutoffsWire>) -> Result<Option<Cutoffs>, String> {
    let c = match wire {
        None => return Ok(None),
        Some(CutoffsWire::P50(v)) => Cutoffs {
            p50: Some(v),
            ..Cutoffs::default()
        },
        Some(CutoffsWire::Percentiles(PercentilesWire { p50, p75, p90, p99 })) => {
            Cutoffs { p50, p75, p90, p99 }
        }
    };
    if c.each().any(|(_, v)| !v.is_finite() || v <= 0.0) {
        return Err(format!("{name} cutoffs must be positive numbers"));
    }
    Ok((c.each().next().is_some()).then_some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_of_the_contract() {
        let p = ProviderPreferences::parse(
            r#"{"order":["mock-b","Mock A"],"only":["mock-b"],"ignore":["x"],
                "allow_fallbacks":false,"require_parameters":true,"data_collection":"deny",
                "zdr":true,"enforce_distillable_text":false,"quantizations":["fp8","bf16"],
                "sort":{"by":"throughput","partition":"none"},
                "max_price":{"prompt":"1.5","completion":2,"request":"0.01","image":0},
                "preferred_min_throughput":{"p90":50},"preferred_max_latency":3,
                "options":{"mock-b":{"top_k":3}}}"#,
        )
        .unwrap();
        assert_eq!(p.order.as_deref().unwrap(), ["mock-b", "Mock A"]);
        assert_eq!(p.allow_fallbacks, Some(false));
        assert_eq!(p.data_collection, Some(DataCollection::Deny));
        assert_eq!(
            p.sort,
            Some(Sort {
                by: SortBy::Throughput,
                partition_by_model: false
            })
        );
        let max = p.max_price.unwrap();
        assert_eq!(max.prompt, Some(Money::parse_usd("1.5").unwrap()));
        assert_eq!(max.completion, Some(Money::parse_usd("2").unwrap()));
        assert_eq!(max.image, Some(Money::ZERO));
        assert_eq!(p.preferred_min_throughput.unwrap().p90, Some(50.0));
        assert_eq!(p.preferred_max_latency.unwrap().p50, Some(3.0));
        assert!(p.options.unwrap()["mock-b"].is_object());
        assert_eq!(
            ProviderPreferences::parse(r#"{"sort":"price"}"#)
                .unwrap()
                .sort
                .unwrap()
                .by,
            SortBy::Price
        );
    }

    #[test]
    fn nulls_are_absent_and_null_is_no_preferences() {
        assert!(ProviderPreferences::parse("null").unwrap().is_empty());
        let p = ProviderPreferences::parse(r#"{"order":null,"sort":null,"zdr":null}"#).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_apply() {
        for bad in [
            r#"{"ordr":["a"]}"#,
            r#"{"order":"a"}"#,
            r#"{"order":[""]}"#,
            r#"{"data_collection":"maybe"}"#,
            r#"{"quantizations":["fp7"]}"#,
            r#"{"sort":"cheapest"}"#,
            r#"{"sort":"exacto"}"#,
            r#"{"sort":{"by":"price","partition":"provider"}}"#,
            r#"{"max_price":{"prompt":"-1"}}"#,
            r#"{"max_price":{"prompt":-1}}"#,
            r#"{"max_price":{"tokens":1}}"#,
            r#"{"preferred_max_latency":0}"#,
            r#"{"preferred_max_latency":{"p50":-2}}"#,
            r#"{"preferred_max_latency":{"p95":2}}"#,
            r#"{"sort":{"by":"price","order":"asc"}}"#,
            r#"{"options":{"a":1}}"#,
            r#"[1]"#,
        ] {
            let e = ProviderPreferences::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_request_overrides_its_preset_field_by_field() {
        let preset =
            ProviderPreferences::parse(r#"{"order":["a"],"sort":"price","zdr":true}"#).unwrap();
        let request = ProviderPreferences::parse(r#"{"order":["b"],"zdr":false}"#).unwrap();
        let merged = request.over(&preset);
        assert_eq!(merged.order.as_deref().unwrap(), ["b"]);
        assert_eq!(merged.zdr, Some(false));
        assert_eq!(merged.sort.unwrap().by, SortBy::Price);
    }
}
