//! Management calls (`/api/v1/…` other than inference) are relayed to the control plane's REST
//! API, the request read whole and the response streamed, so a client needs only the gateway's
//! base URL. The control plane authenticates them; the dataplane never inspects or logs the
//! credential.

use http_body_util::Full;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;

use super::Gateway;
use super::chat::{Ending, read_body};
use super::respond::respond_reject;
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
            // A body over the limit is not read just to refuse it; the connection closes.
            let oversized = reject.kind == Kind::PayloadTooLarge;
            if !oversized {
                let _ = session.drain_request_body().await;
            }
            if respond_reject(session, &reject).await && !oversized {
                Ending::Reusable
            } else {
                Ending::Close
            }
        }
    }
}

fn internal() -> Reject {
    Reject::new(Kind::Internal, "Cannot relay the management call")
}

async fn relay(gw: &Gateway, session: &mut ServerSession) -> Result<Ending, Reject> {
    let unavailable = || Reject::new(Kind::NotReady, "The management API is unavailable");
    let control_plane = gw.control_plane_http.as_ref().ok_or_else(unavailable)?;

    // Management bodies are small JSON: read whole (bounded like inference's), sent in one write.
    let body = read_body(session, gw.limits.max_body_bytes).await?;
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
    let mut request = http::Request::builder()
        .method(downstream.method.clone())
        .uri(path);
    for (name, value) in downstream.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            request = request.header(name, value);
        }
    }
    let request = request
        .header("host", &control_plane.host)
        .body(Full::new(body))
        .map_err(|_| internal())?;

    let mut upstream = gw
        .upstream
        .request(control_plane, request)
        .await
        .map_err(|_| unavailable())?;
    let mut response = ResponseHeader::build(upstream.status, None).map_err(|_| internal())?;
    for (name, value) in upstream.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response
                .append_header(name.clone(), value.clone())
                .map_err(|_| internal())?;
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
        return Ok(Ending::Close);
    }
    loop {
        match upstream.read().await {
            Ok(Some(chunk)) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    return Ok(Ending::Close);
                }
            }
            Ok(None) => break,
            Err(_) => return Ok(Ending::Close),
        }
    }
    upstream.release();
    if session.finish_body().await.is_err() {
        return Ok(Ending::Close);
    }
    Ok(Ending::Reusable)
}
