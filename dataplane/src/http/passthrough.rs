//! Management calls (`/api/v1/…` other than inference) are relayed to the control plane's REST
//! API, request and response streamed, so a client needs only the gateway's base URL. The
//! control plane authenticates them; the dataplane never inspects or logs the credential.

use pingora_core::protocols::http::ServerSession;
use pingora_http::{RequestHeader, ResponseHeader};

use super::Gateway;
use super::chat::Ending;
use super::respond::respond_reject;
use super::upstream::peer;
use crate::reject::{Kind, Reject};

/// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

pub async fn handle(gw: &Gateway, session: &mut ServerSession) -> Ending {
    match relay(gw, session).await {
        Ok(ending) => ending,
        Err(reject) => {
            let _ = session.drain_request_body().await;
            if respond_reject(session, &reject).await {
                Ending::Reusable
            } else {
                Ending::Close
            }
        }
    }
}

async fn relay(gw: &Gateway, session: &mut ServerSession) -> Result<Ending, Reject> {
    let unavailable = || Reject::new(Kind::NotReady, "The management API is unavailable");
    let control_plane = gw.control_plane_http.as_ref().ok_or_else(unavailable)?;
    let peer = peer(control_plane, &gw.timeouts).ok_or_else(unavailable)?;

    let downstream = session.req_header();
    let origin: Option<String> = downstream
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = downstream
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let internal = |_| Reject::new(Kind::Internal, "Cannot build the management request");
    let mut request =
        RequestHeader::build(downstream.method.clone(), path.as_bytes(), None).map_err(internal)?;
    for (name, value) in downstream.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            request
                .append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    request
        .insert_header("host", &control_plane.host)
        .map_err(internal)?;

    let (mut upstream, _) = gw
        .connector
        .get_http_session(&peer)
        .await
        .map_err(|_| unavailable())?;
    let sent = async {
        upstream.write_request_header(Box::new(request)).await?;
        while let Some(chunk) = session.read_request_body().await? {
            upstream.write_request_body(chunk, false).await?;
        }
        upstream.finish_request_body().await?;
        upstream.read_response_header().await
    }
    .await;
    if sent.is_err() {
        upstream.shutdown().await;
        return Err(unavailable());
    }
    let Some(upstream_header) = upstream.response_header() else {
        upstream.shutdown().await;
        return Err(unavailable());
    };
    let mut response = ResponseHeader::build(upstream_header.status, None).map_err(internal)?;
    for (name, value) in upstream_header.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response
                .append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    if let Some(origin) = gw.cors.allow(origin.as_deref()) {
        super::cors::allow_origin(&mut response, origin);
    }
    if session
        .write_response_header(Box::new(response))
        .await
        .is_err()
    {
        upstream.shutdown().await;
        return Ok(Ending::Close);
    }
    loop {
        match upstream.read_response_body().await {
            Ok(Some(chunk)) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    upstream.shutdown().await;
                    return Ok(Ending::Close);
                }
            }
            Ok(None) => break,
            Err(_) => {
                upstream.shutdown().await;
                return Ok(Ending::Close);
            }
        }
    }
    gw.connector
        .release_http_session(upstream, &peer, Some(gw.timeouts.idle_pool))
        .await;
    if session.finish_body().await.is_err() {
        return Ok(Ending::Close);
    }
    Ok(Ending::Reusable)
}
