//! forward (pure part): the request a provider endpoint receives. The network I/O that sends it
//! lives in `http::upstream`; this module decides the bytes and headers.

use pingora_http::RequestHeader;

use crate::reject::{Kind, Reject};
use crate::snapshot::Endpoint;
use crate::stages::request::ChatRequest;
use crate::stages::route::Attempt;

/// Re-emits the client's body for `endpoint`: the provider's own model id replaces the public
/// one, and streams ask for the usage chunk so that streamed requests can be priced. Every
/// other member is copied byte for byte.
pub fn upstream_body(request: &ChatRequest<'_>, endpoint: &Endpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.body_len + endpoint.upstream_model.len() + 48);
    out.push(b'{');
    let mut first = true;
    let mut push_member = |out: &mut Vec<u8>, name: &str, raw: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        // Names came out of valid JSON; re-escaping keeps them valid whatever they hold.
        write_json_string(out, name);
        out.push(b':');
        out.extend_from_slice(raw.as_bytes());
    };
    let mut model_json = Vec::with_capacity(endpoint.upstream_model.len() + 2);
    write_json_string(&mut model_json, &endpoint.upstream_model);
    let model_json = String::from_utf8_lossy(&model_json);
    for (name, value) in &request.fields {
        match name.as_ref() {
            "model" => push_member(&mut out, name, &model_json),
            // Replaced below for streams; OpenAI refuses it on non-stream calls.
            "stream_options" => {}
            _ => push_member(&mut out, name, value.get()),
        }
    }
    if request.stream {
        push_member(&mut out, "stream_options", r#"{"include_usage":true}"#);
    }
    out.push(b'}');
    out
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The upstream request header: the attempt's credential (the gateway's or the organization's
/// own), never the client's.
pub fn upstream_header(
    attempt: &Attempt<'_>,
    body_len: usize,
    stream: bool,
) -> Result<RequestHeader, Reject> {
    let internal = |e: pingora_error::BError| {
        Reject::new(
            Kind::Internal,
            format!("cannot build upstream request: {e}"),
        )
    };
    let endpoint = attempt.endpoint;
    let mut header = RequestHeader::build("POST", endpoint.upstream.chat_path.as_bytes(), Some(6))
        .map_err(internal)?;
    header
        .insert_header("host", &endpoint.upstream.host)
        .map_err(internal)?;
    header
        .insert_header("content-type", "application/json")
        .map_err(internal)?;
    header
        .insert_header("content-length", body_len.to_string())
        .map_err(internal)?;
    header
        .insert_header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .map_err(internal)?;
    if let Some(authorization) = attempt.authorization() {
        header
            .insert_header("authorization", authorization)
            .map_err(internal)?;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SnapshotBuilder;

    #[test]
    fn rewrites_model_and_requests_stream_usage() {
        let snapshot = SnapshotBuilder::new().build();
        let endpoint = &snapshot.models["mock/small"].endpoints[0];
        let body = br#"{"model":"mock/small","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false},"n":1}"#;
        let req = ChatRequest::parse(body).unwrap();
        let out = upstream_body(&req, endpoint);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], endpoint.upstream_model.as_str());
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["n"], 1);
    }

    #[test]
    fn non_stream_body_has_no_stream_options() {
        let snapshot = SnapshotBuilder::new().build();
        let endpoint = &snapshot.models["mock/small"].endpoints[0];
        let req = ChatRequest::parse(br#"{"model":"mock/small","messages":[]}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&upstream_body(&req, endpoint)).unwrap();
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn header_carries_provider_credential_only() {
        let snapshot = SnapshotBuilder::new().build();
        let endpoint = &snapshot.models["mock/small"].endpoints[0];
        let attempt = Attempt {
            endpoint,
            credential: None,
        };
        let h = upstream_header(&attempt, 10, false).unwrap();
        assert_eq!(h.uri.path(), "/v1/chat/completions");
        assert_eq!(
            h.headers.get("authorization").unwrap(),
            "Bearer provider-secret"
        );
    }

    #[test]
    fn byok_attempts_carry_the_organizations_credential() {
        let snapshot = SnapshotBuilder::new()
            .with_byok("own", "mock", |_| {})
            .build();
        let endpoint = &snapshot.models["mock/small"].endpoints[0];
        let attempt = Attempt {
            endpoint,
            credential: snapshot
                .byok
                .of_workspace(crate::testing::WORKSPACE)
                .first(),
        };
        let h = upstream_header(&attempt, 10, true).unwrap();
        assert_eq!(h.headers.get("authorization").unwrap(), "Bearer sk-own");
    }
}
