//! CORS, so that browser clients (the official TypeScript SDK in a page) can call the gateway.
//! Inference is open to every origin, as OpenRouter's is: it is authorized by the bearer key,
//! never by cookies. Management calls pass only for the origins an operator lists
//! (`--cors-management-origins`), since a management key in a page of another site is rarely
//! intended.

use pingora_http::ResponseHeader;

/// Request headers a browser may send on inference (the SDKs' and OpenRouter's app headers;
/// Anthropic's SDK sends its key and version as headers of their own).
const INFERENCE_HEADERS: &str = "authorization, content-type, http-referer, x-title, \
    x-openrouter-title, x-session-id, x-api-key, anthropic-version, anthropic-beta, \
    anthropic-dangerous-direct-browser-access, x-stainless-arch, x-stainless-lang, x-stainless-os, \
    x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, \
    x-stainless-runtime-version, x-stainless-timeout";
const INFERENCE_METHODS: &str = "GET, POST, OPTIONS";
const MANAGEMENT_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// How long a browser may cache a preflight's answer.
const MAX_AGE_SECS: &str = "86400";

/// Which origins may call the management API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ManagementOrigins {
    #[default]
    None,
    Any,
    Listed(Vec<String>),
}

impl ManagementOrigins {
    /// From `--cors-management-origins`: origins such as `https://console.example.com`, or `*`.
    pub fn parse(origins: &[String]) -> ManagementOrigins {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            ManagementOrigins::Any
        } else if origins.is_empty() {
            ManagementOrigins::None
        } else {
            ManagementOrigins::Listed(origins)
        }
    }

    /// The `Access-Control-Allow-Origin` value for a management call from `origin`, if allowed.
    pub fn allow<'o>(&self, origin: Option<&'o str>) -> Option<&'o str> {
        let origin = origin?;
        match self {
            ManagementOrigins::None => None,
            ManagementOrigins::Any => Some(origin),
            ManagementOrigins::Listed(list) => list.iter().any(|o| o == origin).then_some(origin),
        }
    }
}

/// Whether `path` is inference (open to every origin) rather than management.
pub fn is_inference(path: &str) -> bool {
    super::dialect_of(path).is_some()
        || matches!(path, "/api/v1/models" | "/v1/models")
        || path.ends_with("/chat/completions")
}

/// Adds the header every inference response carries.
pub fn allow_any(header: &mut ResponseHeader) {
    let _ = header.insert_header("access-control-allow-origin", "*");
}

/// Adds the headers a management response carries for an allowed `origin`.
pub fn allow_origin(header: &mut ResponseHeader, origin: &str) {
    let _ = header.insert_header("access-control-allow-origin", origin);
    let _ = header.append_header("vary", "Origin");
}

/// The answer to a preflight (`OPTIONS`) for `path` from `origin`: 204, with the grants the
/// path allows (none for a management path from an origin not listed, which the browser then
/// refuses).
pub fn preflight(
    path: &str,
    origin: Option<&str>,
    management: &ManagementOrigins,
) -> Option<ResponseHeader> {
    let mut h = ResponseHeader::build(204, Some(6)).ok()?;
    let _ = h.insert_header("content-length", "0");
    if is_inference(path) {
        allow_any(&mut h);
        let _ = h.insert_header("access-control-allow-methods", INFERENCE_METHODS);
        let _ = h.insert_header("access-control-allow-headers", INFERENCE_HEADERS);
    } else if let Some(origin) = management.allow(origin) {
        allow_origin(&mut h, origin);
        let _ = h.insert_header("access-control-allow-methods", MANAGEMENT_METHODS);
        let _ = h.insert_header(
            "access-control-allow-headers",
            "authorization, content-type",
        );
    } else {
        return Some(h);
    }
    let _ = h.insert_header("access-control-max-age", MAX_AGE_SECS);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'h>(h: &'h ResponseHeader, name: &str) -> Option<&'h str> {
        h.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn inference_is_open_and_management_only_to_listed_origins() {
        let listed = ManagementOrigins::parse(&["https://console.example/".into()]);
        let page = Some("https://app.example");
        let h = preflight("/api/v1/chat/completions", page, &listed).unwrap();
        assert_eq!(h.status, 204);
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert!(
            get(&h, "access-control-allow-headers")
                .unwrap()
                .contains("x-title")
        );
        let h = preflight("/api/v1/keys", page, &listed).unwrap();
        assert_eq!(get(&h, "access-control-allow-origin"), None);
        let h = preflight("/api/v1/keys", Some("https://console.example"), &listed).unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://console.example")
        );
        assert!(
            get(&h, "access-control-allow-methods")
                .unwrap()
                .contains("PATCH")
        );
        let any = ManagementOrigins::parse(&["*".into()]);
        assert_eq!(any.allow(page), page);
        assert_eq!(ManagementOrigins::parse(&[]).allow(page), None);
    }
}
