//! forward (network part): one attempt at a provider endpoint through pingora's pooled
//! connector. The request body is built per attempt, so a retry on another endpoint can send a
//! different body.

use std::time::Duration;

use bytes::Bytes;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use serde_json::json;

use crate::reject::{Kind, Reject};
use crate::snapshot::Upstream;
use crate::stages::forward;
use crate::stages::route::Attempt;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for any single read from a provider, first byte included.
    pub read: Duration,
    pub idle_pool: Duration,
}

/// A pingora peer for a resolved upstream; `None` if its host did not resolve.
pub fn peer(upstream: &Upstream, timeouts: &Timeouts) -> Option<HttpPeer> {
    let mut peer = HttpPeer::new(upstream.addr?, upstream.tls, upstream.sni().to_owned());
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(timeouts.read);
    peer.options.write_timeout = Some(timeouts.read);
    peer.options.idle_timeout = Some(timeouts.idle_pool);
    Some(peer)
}

/// An upstream response whose header has been read and is a success.
pub struct Opened {
    pub session: HttpSession,
    pub peer: HttpPeer,
}

/// Sends the request and reads the response header. A provider 5xx, 429, timeout or connection
/// failure comes back as a retryable `Reject`; a provider 4xx is the client's problem and
/// is passed on with the provider's status.
pub async fn open(
    connector: &Connector,
    attempt: &Attempt<'_>,
    body: Vec<u8>,
    stream: bool,
    timeouts: &Timeouts,
) -> Result<Opened, Reject> {
    let endpoint = attempt.endpoint;
    let header = forward::upstream_header(attempt, body.len(), stream)?;
    let unavailable = |what: &str, e: &pingora_error::Error| {
        let kind = if matches!(
            e.etype(),
            pingora_error::ErrorType::ReadTimedout
                | pingora_error::ErrorType::WriteTimedout
                | pingora_error::ErrorType::ConnectTimedout
        ) {
            Kind::UpstreamTimeout
        } else {
            Kind::UpstreamUnavailable
        };
        Reject::new(kind, format!("Provider {} {what}", endpoint.provider_name))
            .with_metadata(json!({ "provider_name": endpoint.provider_name }))
    };
    let peer = peer(&endpoint.upstream, timeouts).ok_or_else(|| {
        Reject::new(
            Kind::UpstreamUnavailable,
            format!(
                "Provider {} has no resolvable address",
                endpoint.provider_id
            ),
        )
    })?;
    let (mut session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| unavailable("is unreachable", &e))?;
    let sent = async {
        session.write_request_header(Box::new(header)).await?;
        session.write_request_body(Bytes::from(body), true).await?;
        session.finish_request_body().await?;
        session.read_response_header().await
    }
    .await;
    if let Err(e) = sent {
        session.shutdown().await;
        return Err(unavailable("failed before responding", &e));
    }
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .unwrap_or(502);
    if (200..300).contains(&status) {
        return Ok(Opened { session, peer });
    }
    // Read the provider's error (bounded) so the client sees why.
    let raw = read_capped(&mut session, 64 * 1024)
        .await
        .unwrap_or_default();
    connector
        .release_http_session(session, &peer, Some(timeouts.idle_pool))
        .await;
    let raw_text = String::from_utf8_lossy(&raw).into_owned();
    let message = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("Provider returned error {status}"));
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
        return Err(Reject::new(
            Kind::UpstreamUnavailable,
            format!("Provider {} refused {whose}", endpoint.provider_name),
        )
        .with_metadata(json!({ "provider_name": endpoint.provider_name })));
    }
    let metadata = json!({ "provider_name": endpoint.provider_name, "raw": raw_text });
    let kind = if status == 429 || status >= 500 {
        Kind::UpstreamUnavailable
    } else {
        Kind::UpstreamRefused
    };
    let mut reject = Reject::new(kind, message).with_metadata(metadata);
    if kind == Kind::UpstreamRefused || status == 429 {
        reject.upstream_status = Some(status);
    }
    Err(reject)
}

/// Reads a whole response body, up to `cap` bytes; `None` if it is longer or the read fails.
pub async fn read_capped(session: &mut HttpSession, cap: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match session.read_response_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body),
            Err(_) => return None,
        }
    }
}
