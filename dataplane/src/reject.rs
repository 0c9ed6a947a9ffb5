//! Why a request was refused, and the one place that turns that into an HTTP response in
//! OpenRouter's error shape: `{"error":{"code":<status>,"message":…,"metadata":…}}`.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Value, json};

/// Who caused a refusal: the client, a provider, or the gateway itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Downstream,
    Upstream,
    Internal,
}

/// A fixed, low-cardinality classification (usable as a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    BadRequest,
    UnknownModel,
    PayloadTooLarge,
    ClientTimeout,
    NotReady,
    /// A guardrail forbids the request (model, provider or data-retention restriction).
    GuardrailRefused,
    /// The key's configuration (or a record it depends on) failed validation at this dataplane
    /// and was set aside: the key is refused until it is corrected.
    KeyQuarantined,
    /// The model's configuration failed validation at this dataplane: it is unavailable.
    ModelUnavailable,
    /// The organization's credits cannot cover the request.
    PaymentRequired,
    /// The spend store is unreachable and the policy is to fail closed.
    SpendUnavailable,
    UpstreamRefused,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::NotFound => "not_found",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::BadRequest => "bad_request",
            Kind::UnknownModel => "unknown_model",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::ClientTimeout => "client_timeout",
            Kind::NotReady => "not_ready",
            Kind::GuardrailRefused => "guardrail_refused",
            Kind::KeyQuarantined => "key_quarantined",
            Kind::ModelUnavailable => "model_unavailable",
            Kind::PaymentRequired => "payment_required",
            Kind::SpendUnavailable => "spend_unavailable",
            Kind::UpstreamRefused => "upstream_refused",
            Kind::UpstreamUnavailable => "upstream_unavailable",
            Kind::UpstreamTimeout => "upstream_timeout",
            Kind::Internal => "internal",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::Unauthenticated => 401,
            Kind::Forbidden | Kind::GuardrailRefused | Kind::KeyQuarantined => 403,
            Kind::BadRequest | Kind::UnknownModel => 400,
            Kind::PayloadTooLarge => 413,
            Kind::ClientTimeout => 408,
            Kind::NotReady | Kind::SpendUnavailable | Kind::ModelUnavailable => 503,
            Kind::PaymentRequired => 402,
            // A provider's own 4xx keeps the provider's status; see `Reject::upstream_status`.
            Kind::UpstreamRefused | Kind::UpstreamUnavailable | Kind::Internal => 502,
            Kind::UpstreamTimeout => 408,
        }
    }

    pub fn source(self) -> Source {
        match self {
            Kind::UpstreamRefused | Kind::UpstreamUnavailable | Kind::UpstreamTimeout => {
                Source::Upstream
            }
            Kind::Internal
            | Kind::NotReady
            | Kind::SpendUnavailable
            | Kind::KeyQuarantined
            | Kind::ModelUnavailable => Source::Internal,
            _ => Source::Downstream,
        }
    }

    /// Whether trying another provider endpoint may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, Kind::UpstreamUnavailable | Kind::UpstreamTimeout)
    }
}

#[derive(Debug)]
pub struct Reject {
    pub kind: Kind,
    pub message: Cow<'static, str>,
    pub metadata: Option<Value>,
    /// For provider errors passed on to the client: the provider's status.
    pub upstream_status: Option<u16>,
}

impl Reject {
    pub fn new(kind: Kind, message: impl Into<Cow<'static, str>>) -> Self {
        Reject {
            kind,
            message: message.into(),
            metadata: None,
            upstream_status: None,
        }
    }

    /// A guardrail's refusal: 403, the metadata naming the guardrail and a fixed reason label.
    pub fn guardrail(
        guardrail_id: &str,
        reason: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Reject::new(Kind::GuardrailRefused, message)
            .with_metadata(json!({ "guardrail_id": guardrail_id, "reason": reason }))
    }

    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    pub fn status(&self) -> u16 {
        self.upstream_status.unwrap_or(self.kind.status())
    }

    /// The response body. Never includes request headers, so credentials cannot leak here.
    pub fn body(&self) -> Bytes {
        let status = self.status();
        let body = json!({
            "error": {
                "code": status,
                "message": self.message,
                "metadata": self.metadata,
            }
        });
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openrouter_shape() {
        let r = Reject::new(Kind::UnknownModel, "nope/nope is not a valid model ID");
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["message"], "nope/nope is not a valid model ID");
        assert!(v["error"]["metadata"].is_null());
    }

    #[test]
    fn guardrail_refusals_are_403_naming_the_guardrail() {
        let r = Reject::guardrail("gr_1", "model_not_allowed", "not allowed");
        assert_eq!(r.status(), 403);
        assert_eq!(r.kind.label(), "guardrail_refused");
        assert_eq!(r.kind.source(), Source::Downstream);
        assert!(!r.kind.retryable());
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["error"]["code"], 403);
        assert_eq!(v["error"]["metadata"]["guardrail_id"], "gr_1");
        assert_eq!(v["error"]["metadata"]["reason"], "model_not_allowed");
    }

    #[test]
    fn upstream_status_wins() {
        let mut r = Reject::new(Kind::UpstreamRefused, "rate limited");
        r.upstream_status = Some(429);
        assert_eq!(r.status(), 429);
        assert_eq!(r.kind.source(), Source::Upstream);
    }
}
