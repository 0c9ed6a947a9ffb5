//! Writing gateway-made responses to the client.

use bytes::Bytes;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;

use crate::dialect::Dialect;
use crate::reject::Reject;

/// Writes a complete response. Returns false when the client is gone, so the caller does not
/// offer the connection for reuse.
pub async fn respond(
    session: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Bytes,
) -> bool {
    match header(status, content_type, Some(body.len())) {
        Some(h) => write(session, h, body).await,
        None => false,
    }
}

/// Writes a complete response under `header`; false when the client is gone.
pub async fn write(session: &mut ServerSession, header: ResponseHeader, body: Bytes) -> bool {
    if session
        .write_response_header(Box::new(header))
        .await
        .is_err()
    {
        return false;
    }
    session.write_response_body(body, true).await.is_ok()
}

pub async fn respond_reject(session: &mut ServerSession, reject: &Reject) -> bool {
    respond_reject_as(session, reject, Dialect::OpenAiChat).await
}

/// A refusal in the error shape of the API the client called.
pub async fn respond_reject_as(
    session: &mut ServerSession,
    reject: &Reject,
    dialect: Dialect,
) -> bool {
    tracing::debug!(
        kind = reject.kind.label(),
        status = reject.status(),
        message = %reject.message,
        "request refused"
    );
    let body = dialect.error_body(reject);
    respond(session, reject.status(), "application/json", body).await
}

/// A response header; `content_length: None` means a chunked (streamed) body.
pub fn header(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
) -> Option<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(5)).ok()?;
    h.insert_header("content-type", content_type).ok()?;
    // Every response the gateway makes itself is inference's or an error: open to every origin.
    super::cors::allow_any(&mut h);
    match content_length {
        Some(len) => h.insert_header("content-length", len.to_string()).ok()?,
        None => h.insert_header("transfer-encoding", "chunked").ok()?,
    }
    Some(h)
}
