//! forward's network part: one attempt at a provider endpoint through pingora's pooled
//! connector. What to send and what a failure means are decided in `stages::forward`.

use std::time::Duration;

use bytes::Bytes;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;

use crate::providers::Call;
use crate::snapshot::Upstream;
use crate::stages::forward::{Failure, Transport};
use crate::stages::route::Attempt;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for any single read from a provider, first byte included.
    pub read: Duration,
    /// Longest wait from sending a request to the response header; past it the next
    /// endpoint is tried.
    pub first_byte: Duration,
    pub idle_pool: Duration,
}

/// A pingora peer for a resolved upstream; `None` if its host did not resolve.
pub fn peer(upstream: &Upstream, timeouts: &Timeouts) -> Option<HttpPeer> {
    let mut peer = HttpPeer::new(upstream.addr()?, upstream.tls, upstream.sni().to_owned());
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

/// The forward stage's transport over pingora-core's pooled connector.
pub struct Pingora<'a> {
    pub connector: &'a Connector,
    pub timeouts: &'a Timeouts,
}

fn failure(e: &pingora_error::Error, before_sending: bool) -> Failure {
    match e.etype() {
        pingora_error::ErrorType::ConnectTimedout => Failure::Unreachable,
        pingora_error::ErrorType::ReadTimedout | pingora_error::ErrorType::WriteTimedout => {
            Failure::TimedOut
        }
        _ if before_sending => Failure::Unreachable,
        _ => Failure::NoResponse,
    }
}

impl Transport for Pingora<'_> {
    type Response = Opened;

    /// Sends the request and reads the response header; a non-2xx answer comes back as
    /// `Failure::Status` with its body (bounded), for `forward::classify` to judge.
    async fn send(
        &self,
        attempt: &Attempt<'_>,
        body: Vec<u8>,
        call: Call,
    ) -> Result<Opened, Failure> {
        let header = crate::providers::request_header(attempt, body.len(), call)
            .map_err(|r| Failure::Request(r.message.into_owned()))?;
        let upstream = &attempt.endpoint.upstream;
        let Some(peer) = peer(upstream, self.timeouts) else {
            upstream.addresses.mark_failed();
            return Err(Failure::NoAddress);
        };
        let body = Bytes::from(body);
        let mut session = match self.exchange(&peer, &header, &body).await {
            Ok(session) => session,
            // A pooled connection the provider had already closed, found while writing: the
            // provider never had the whole request, so once more on a new connection. (A
            // connection lost after the whole request went out may have started a generation:
            // that is forward's to judge, under `--retry-unanswered`.)
            Err((Failure::Unreachable, true)) => match self.exchange(&peer, &header, &body).await {
                Ok(session) => session,
                Err((failure, _)) => return Err(failure),
            },
            Err((failure, _)) => {
                if matches!(failure, Failure::Unreachable) {
                    // Perhaps the address moved: look the host up again soon.
                    upstream.addresses.mark_failed();
                }
                return Err(failure);
            }
        };
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .unwrap_or(502);
        if (200..300).contains(&status) {
            return Ok(Opened { session, peer });
        }
        // Read the provider's error (bounded) so the client can be told why.
        let raw = read_capped(&mut session, 64 * 1024)
            .await
            .unwrap_or_default();
        self.connector
            .release_http_session(session, &peer, Some(self.timeouts.idle_pool))
            .await;
        Err(Failure::Status { status, body: raw })
    }
}

impl Pingora<'_> {
    /// Sends the request on a pooled (or new) connection and reads the response header. On
    /// failure, whether the connection was a reused one.
    async fn exchange(
        &self,
        peer: &HttpPeer,
        header: &RequestHeader,
        body: &Bytes,
    ) -> Result<HttpSession, (Failure, bool)> {
        let (mut session, reused) = self
            .connector
            .get_http_session(peer)
            .await
            .map_err(|e| (failure(&e, true), false))?;
        let sent = async {
            session
                .write_request_header(Box::new(header.clone()))
                .await?;
            session.write_request_body(body.clone(), true).await?;
            session.finish_request_body().await?;
            Ok::<_, Box<pingora_error::Error>>(())
        }
        .await;
        if let Err(e) = sent {
            // Not all of the request went out: the provider cannot have started on it.
            session.shutdown().await;
            return Err((failure(&e, true), reused));
        }
        match tokio::time::timeout(self.timeouts.first_byte, session.read_response_header()).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => {
                session.shutdown().await;
                Err((failure(&e, false), reused))
            }
            Err(_) => {
                session.shutdown().await;
                Err((Failure::TimedOut, reused))
            }
        }
    }
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
