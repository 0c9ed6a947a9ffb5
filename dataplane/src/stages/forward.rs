//! forward: the route's attempts, tried in order until a provider answers. This module decides
//! the bytes and headers each provider receives, and which failures move on to the next
//! attempt; the network I/O is behind [`Transport`] (pingora's connector in `http::upstream`,
//! a scripted fake in tests).
//!
//! A connection failure, a timeout before the response header, a 5xx, a 429, or the provider
//! refusing the credential moves on to the next attempt; any other 4xx is the client's problem
//! and is passed on with the provider's status.

use std::future::Future;
use std::time::Instant;

use pingora_http::RequestHeader;
use serde_json::json;

use crate::reject::{Kind, Reject};
use crate::snapshot::Endpoint;
use crate::stages::request::ChatRequest;
use crate::stages::route::Attempt;

/// How one attempt failed, as the transport saw it.
#[derive(Debug)]
pub enum Failure {
    /// The endpoint's host has no address.
    NoAddress,
    /// No connection could be made.
    Unreachable,
    /// A connect, write or read timed out before the response header.
    TimedOut,
    /// The connection failed after the request was sent, before a response header.
    NoResponse,
    /// The provider answered with a status outside 2xx; its body, bounded.
    Status { status: u16, body: Vec<u8> },
    /// The request could not be built for this endpoint (an unusable header value).
    Request(String),
}

/// Sends one attempt's request and reads the response header.
pub trait Transport {
    /// An open 2xx response, its body still to be read.
    type Response;

    fn send(
        &self,
        attempt: &Attempt<'_>,
        body: Vec<u8>,
        stream: bool,
    ) -> impl Future<Output = Result<Self::Response, Failure>> + Send;
}

/// One attempt made, for provider health and the generation's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tried {
    /// Index into the route's attempts.
    pub attempt: usize,
    /// `None` when the provider answered 2xx; the failure's kind otherwise.
    pub failure: Option<Kind>,
    /// From sending the request to the response header (or the failure).
    pub elapsed_ms: u64,
}

/// The forward stage: tries `attempts` in order, recording each in `tried`, and returns the
/// first open response with the index of the attempt that gave it.
pub async fn forward<T: Transport>(
    transport: &T,
    request: &ChatRequest<'_>,
    attempts: &[Attempt<'_>],
    tried: &mut Vec<Tried>,
) -> Result<(usize, T::Response), Reject> {
    let mut last = None;
    for (index, attempt) in attempts.iter().enumerate() {
        let body = upstream_body(request, attempt.endpoint);
        let sent = Instant::now();
        let outcome = transport.send(attempt, body, request.stream).await;
        let elapsed_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(response) => {
                tried.push(Tried {
                    attempt: index,
                    failure: None,
                    elapsed_ms,
                });
                return Ok((index, response));
            }
            Err(failure) => {
                let reject = classify(attempt, failure);
                tried.push(Tried {
                    attempt: index,
                    failure: Some(reject.kind),
                    elapsed_ms,
                });
                if !reject.kind.retryable() {
                    return Err(reject);
                }
                tracing::warn!(
                    provider = %attempt.endpoint.provider_id,
                    kind = reject.kind.label(),
                    "provider attempt failed; trying the next one"
                );
                last = Some(reject);
            }
        }
    }
    Err(last.unwrap_or_else(|| Reject::new(Kind::UpstreamUnavailable, "No provider available")))
}

/// What a failed attempt means for the request: a retryable `Reject` moves on to the next
/// attempt; any other is the request's answer.
pub fn classify(attempt: &Attempt<'_>, failure: Failure) -> Reject {
    let endpoint = attempt.endpoint;
    let provider = |kind: Kind, message: String| {
        Reject::new(kind, message).with_metadata(json!({ "provider_name": endpoint.provider_name }))
    };
    let (status, raw) = match failure {
        Failure::NoAddress => {
            return Reject::new(
                Kind::UpstreamUnavailable,
                format!(
                    "Provider {} has no resolvable address",
                    endpoint.provider_id
                ),
            );
        }
        Failure::Unreachable => {
            return provider(
                Kind::UpstreamUnavailable,
                format!("Provider {} is unreachable", endpoint.provider_name),
            );
        }
        Failure::TimedOut => {
            return provider(
                Kind::UpstreamTimeout,
                format!("Provider {} timed out", endpoint.provider_name),
            );
        }
        Failure::NoResponse => {
            return provider(
                Kind::UpstreamUnavailable,
                format!(
                    "Provider {} failed before responding",
                    endpoint.provider_name
                ),
            );
        }
        Failure::Request(reason) => {
            tracing::error!(provider = %endpoint.provider_id, %reason, "cannot build the provider request");
            return provider(
                Kind::UpstreamUnavailable,
                format!("Provider {} cannot be called", endpoint.provider_name),
            );
        }
        Failure::Status { status, body } => (status, body),
    };
    if matches!(status, 401 | 403 | 407) {
        // The credential was refused. That is not the client's fault, and the provider's
        // message may quote part of the credential: log it, answer 502 (after the next attempt,
        // if there is one).
        let whose = match attempt.credential {
            Some(c) => {
                tracing::error!(provider = %endpoint.provider_id, status, byok_id = %c.id, "provider refused a BYOK credential");
                "the organization's BYOK credential"
            }
            None => {
                tracing::error!(provider = %endpoint.provider_id, status, "provider refused the gateway's credential");
                "the gateway's credentials"
            }
        };
        return provider(
            Kind::UpstreamUnavailable,
            format!("Provider {} refused {whose}", endpoint.provider_name),
        );
    }
    let message = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("Provider returned error {status}"));
    let metadata = json!({
        "provider_name": endpoint.provider_name,
        "raw": String::from_utf8_lossy(&raw),
    });
    let kind = if status == 429 || status >= 500 {
        Kind::UpstreamUnavailable
    } else {
        Kind::UpstreamRefused
    };
    let mut reject = Reject::new(kind, message).with_metadata(metadata);
    if kind == Kind::UpstreamRefused || status == 429 {
        reject.upstream_status = Some(status);
    }
    reject
}

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
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use switchyard_policy::testing::SnapshotBuilder;

    /// Answers each send with the next scripted outcome (`Ok(provider id)` for a 2xx) and
    /// records which provider each attempt went to.
    struct Scripted {
        outcomes: Mutex<VecDeque<Result<(), Failure>>>,
        sent_to: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(outcomes: Vec<Result<(), Failure>>) -> Scripted {
            Scripted {
                outcomes: Mutex::new(outcomes.into()),
                sent_to: Mutex::new(Vec::new()),
            }
        }
    }

    impl Transport for Scripted {
        type Response = String;

        async fn send(
            &self,
            attempt: &Attempt<'_>,
            body: Vec<u8>,
            _stream: bool,
        ) -> Result<String, Failure> {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["model"], attempt.endpoint.upstream_model.as_str());
            let provider = attempt.endpoint.provider_id.clone();
            self.sent_to.lock().unwrap().push(provider.clone());
            let next = self.outcomes.lock().unwrap().pop_front().unwrap();
            next.map(|()| provider)
        }
    }

    fn status(status: u16, body: &str) -> Result<(), Failure> {
        Err(Failure::Status {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    /// Runs the forward stage over model `m` on providers a, b, c with `outcomes`.
    fn run(
        outcomes: Vec<Result<(), Failure>>,
    ) -> (Result<String, Reject>, Vec<String>, Vec<Tried>) {
        let snapshot = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b", "c"])
            .build();
        let model = &snapshot.models["m"];
        let key = snapshot.keys.iter().next().unwrap();
        let attempts = crate::stages::route::plan(model, &[0, 1, 2], key, &[]);
        let request = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap();
        let transport = Scripted::new(outcomes);
        let mut tried = Vec::new();
        let result = futures_lite(forward(&transport, &request, &attempts, &mut tried)).map(
            |(index, provider)| {
                assert_eq!(attempts[index].endpoint.provider_id, provider);
                provider
            },
        );
        let sent = transport.sent_to.lock().unwrap().clone();
        (result, sent, tried)
    }

    fn futures_lite<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn retryable_failures_move_on_to_the_next_attempt() {
        let (result, sent, tried) = run(vec![
            Err(Failure::Unreachable),
            status(503, r#"{"error":{"message":"overloaded"}}"#),
            Ok(()),
        ]);
        assert_eq!(result.unwrap(), "c");
        assert_eq!(sent, ["a", "b", "c"]);
        let failures: Vec<Option<Kind>> = tried.iter().map(|t| t.failure).collect();
        assert_eq!(
            failures,
            [
                Some(Kind::UpstreamUnavailable),
                Some(Kind::UpstreamUnavailable),
                None
            ]
        );
    }

    #[test]
    fn a_client_error_is_passed_on_without_trying_further() {
        let (result, sent, tried) = run(vec![status(
            400,
            r#"{"error":{"message":"bad temperature"}}"#,
        )]);
        let reject = result.unwrap_err();
        assert_eq!(reject.status(), 400);
        assert_eq!(reject.message, "bad temperature");
        assert_eq!(sent, ["a"]);
        assert_eq!(tried.len(), 1);
    }

    #[test]
    fn rate_limits_timeouts_and_refused_credentials_are_retried() {
        let (result, sent, _) = run(vec![
            status(429, "slow down"),
            Err(Failure::TimedOut),
            status(401, r#"{"error":{"message":"bad key sk-123"}}"#),
        ]);
        let reject = result.unwrap_err();
        // The last failure answers: a refused credential is the gateway's problem (502), and the
        // provider's message, which may quote the credential, is not passed on.
        assert_eq!(reject.status(), 502);
        assert!(!reject.message.contains("sk-123"));
        assert_eq!(sent, ["a", "b", "c"]);
        let (result, _, _) = run(vec![
            status(429, "slow down"),
            Err(Failure::TimedOut),
            Err(Failure::NoAddress),
        ]);
        assert_eq!(result.unwrap_err().kind, Kind::UpstreamUnavailable);
    }

    #[test]
    fn a_provider_429_keeps_its_status_when_it_is_the_last_answer() {
        let snapshot = SnapshotBuilder::new().build();
        let endpoint = &snapshot.models["mock/small"].endpoints[0];
        let attempt = Attempt {
            endpoint,
            credential: None,
        };
        let reject = classify(
            &attempt,
            Failure::Status {
                status: 429,
                body: vec![],
            },
        );
        assert!(reject.kind.retryable());
        assert_eq!(reject.status(), 429);
        let reject = classify(
            &attempt,
            Failure::Status {
                status: 500,
                body: vec![],
            },
        );
        assert_eq!((reject.status(), reject.kind.retryable()), (502, true));
    }

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
                .of_workspace(switchyard_policy::testing::WORKSPACE)
                .first(),
        };
        let h = upstream_header(&attempt, 10, true).unwrap();
        assert_eq!(h.headers.get("authorization").unwrap(), "Bearer sk-own");
    }
}
