//! The Pingora adapter: accepts HTTP, dispatches by path, and leaves every decision to the
//! stages. Inference is answered here; `/api/v1/` management calls pass through to the control
//! plane so that one base URL serves everything the SDKs call.

mod chat;
pub mod cors;
mod passthrough;
mod respond;
pub mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;

pub use crate::now_ms;
use chat::Ending;
use respond::{respond, respond_reject};
pub use upstream::Timeouts;

use crate::dialect::Dialect;
use crate::health::Health;
use crate::reject::{Kind, Reject};
use crate::snapshot::{SnapshotStore, Upstream};
use crate::spend::Spend;
use crate::stages::forward::RetryBudget;
use crate::sticky::Sticky;
use crate::usage::UsageSink;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_response_bytes: usize,
    /// Per write to the client (`--client-write-timeout-secs`).
    pub client_write_timeout: std::time::Duration,
    /// Per read of the client's body (`--client-read-timeout-secs`).
    pub client_read_timeout: std::time::Duration,
    /// The whole exchange (`--request-deadline-secs`).
    pub request_deadline: std::time::Duration,
}

pub struct Gateway {
    pub snapshots: Arc<SnapshotStore>,
    pub usage: UsageSink,
    /// Connections to providers and the control plane's REST API.
    pub upstream: Arc<upstream::Client>,
    pub limits: Limits,
    /// The control plane's REST API, for management passthrough.
    pub control_plane_http: Option<Upstream>,
    pub spend: Spend,
    pub health: Arc<Health>,
    pub sticky: Sticky,
    pub retry_budget: RetryBudget,
    /// Retry a request whose connection was lost after it was sent (`--retry-unanswered`).
    pub retry_unanswered: bool,
    /// Route as if every endpoint were up (`--ignore-provider-health`, for measuring failover).
    pub ignore_provider_health: bool,
    /// Who may read the operational endpoints (`--ops-token`).
    pub ops: OpsToken,
    /// Turns true shortly before a shutdown's grace period ends: exchanges still running are
    /// ended then, settled and metered while the usage sender still takes their events, rather
    /// than dropped with the runtime.
    pub cut: tokio::sync::watch::Receiver<bool>,
    /// Origins whose pages may call the management API (`--cors-management-origins`).
    pub cors: cors::ManagementOrigins,
}

/// The operational endpoints' bearer token, kept as its SHA-256 and compared in constant time;
/// without one they are not served.
#[derive(Default)]
pub struct OpsToken(Option<[u8; 32]>);

impl OpsToken {
    /// An empty token would let an empty `Bearer` through: it is refused at start.
    pub fn new(token: Option<&str>) -> anyhow::Result<OpsToken> {
        use sha2::{Digest, Sha256};
        match token.map(str::trim) {
            None => Ok(OpsToken(None)),
            Some("") => anyhow::bail!("--ops-token must not be empty"),
            Some(t) => Ok(OpsToken(Some(Sha256::digest(t.as_bytes()).into()))),
        }
    }

    /// `Ok` when `authorization` carries the token; else what to answer.
    fn admit(&self, authorization: Option<&[u8]>) -> Result<(), Reject> {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let Some(digest) = &self.0 else {
            return Err(Reject::new(Kind::NotFound, "Not found"));
        };
        let presented = authorization.and_then(switchyard_policy::bearer::bearer);
        match presented {
            Some(p) if bool::from(Sha256::digest(p).as_slice().ct_eq(digest)) => Ok(()),
            _ => Err(Reject::new(
                Kind::Unauthenticated,
                "The operational endpoints need the ops token (Authorization: Bearer)",
            )),
        }
    }
}

const KEEPALIVE_SECS: u64 = 60;

#[async_trait]
impl HttpServerApp for Gateway {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            _ => return None,
        }
        let keepalive = (!*shutdown.borrow()).then_some(KEEPALIVE_SECS);
        session.set_keepalive(keepalive);
        // A client that stops reading (or sending) must not pin this task: each write and
        // read waits at most this long, and the exchange then ends and is settled.
        session.set_write_timeout(Some(self.limits.client_write_timeout));
        session.set_read_timeout(Some(self.limits.client_read_timeout));
        match self.dispatch(&mut session).await {
            Ending::Reusable => {}
            Ending::Close => return None,
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, settings)),
            _ => None,
        }
    }
}

/// The API an inference path serves (`/api/v1/<call>`, or `/v1/<call>` as OpenAI's SDKs call
/// it), if it is one: the one list of them, for dispatch and for CORS.
pub fn dialect_of(path: &str) -> Option<Dialect> {
    let call = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/v1/"))?;
    Some(match call {
        "chat/completions" => Dialect::OpenAiChat,
        "messages" => Dialect::AnthropicMessages,
        "responses" => Dialect::OpenAiResponses,
        "completions" => Dialect::OpenAiCompletions,
        "embeddings" => Dialect::OpenAiEmbeddings,
        "rerank" => Dialect::Rerank,
        _ => return None,
    })
}

/// `/api/v1/presets/<slug>/chat/completions` → the slug.
fn preset_path(path: &str) -> Option<&str> {
    let slug = path
        .strip_prefix("/api/v1/presets/")
        .or_else(|| path.strip_prefix("/v1/presets/"))?
        .strip_suffix("/chat/completions")?;
    (!slug.is_empty() && !slug.contains('/')).then_some(slug)
}

impl Gateway {
    async fn dispatch(&self, session: &mut ServerSession) -> Ending {
        let header = session.req_header();
        let method = header.method.as_str();
        let path = header.uri.path();
        let dialect = dialect_of(path);
        match (method, path) {
            ("OPTIONS", _) => {
                let origin = header.headers.get("origin").and_then(|v| v.to_str().ok());
                let Some(answer) = cors::preflight(path, origin, &self.cors) else {
                    return Ending::Close;
                };
                let _ = session.drain_request_body().await;
                ending(
                    session
                        .write_response_header(Box::new(answer))
                        .await
                        .is_ok()
                        && session.finish_body().await.is_ok(),
                )
            }
            ("POST", _) if dialect.is_some() => {
                chat::handle(self, session, None, dialect.unwrap_or_default()).await
            }
            ("POST", p) if preset_path(p).is_some() => {
                let slug = preset_path(p).map(str::to_owned);
                chat::handle(self, session, slug, Dialect::OpenAiChat).await
            }
            ("GET", "/api/v1/models" | "/v1/models") => self.models(session).await,
            ("GET", "/health/live") => {
                ending(respond(session, 200, "text/plain", Bytes::from_static(b"ok\n")).await)
            }
            ("GET", "/health/ready") => self.ready(session).await,
            ("GET", "/health/providers" | "/metrics") => {
                let authorization = header
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes());
                if let Err(reject) = self.ops.admit(authorization) {
                    return self.refuse(session, reject).await;
                }
                if path == "/metrics" {
                    let body = Bytes::from(self.metrics());
                    ending(respond(session, 200, "text/plain; version=0.0.4", body).await)
                } else {
                    // The fleet's view and this dataplane's breakers, as routing sees them.
                    let body = Bytes::from(self.health.status_json().to_string());
                    ending(respond(session, 200, "application/json", body).await)
                }
            }
            (_, p) if p.starts_with("/api/v1/") => passthrough::handle(self, session).await,
            (_, _) if dialect.is_some() => {
                self.refuse(session, Reject::new(Kind::MethodNotAllowed, "Use POST"))
                    .await
            }
            _ => {
                let reject = Reject::new(Kind::NotFound, "Not found");
                self.refuse(session, reject).await
            }
        }
    }

    /// Prometheus text: spend outcomes (one series per outcome, so fail-open and fail-closed
    /// decisions are visible) and the usage pipeline.
    fn metrics(&self) -> String {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.spend.metrics;
        let u = &self.usage.counters;
        let mut out = String::with_capacity(1024);
        let _ = writeln!(out, "# TYPE switchyard_spend_admissions_total counter");
        for (outcome, v) in [
            ("granted", &s.granted),
            ("refused", &s.refused),
            ("unavailable_refused", &s.unavailable_refused),
            ("unavailable_served", &s.unavailable_served),
        ] {
            let _ = writeln!(
                out,
                "switchyard_spend_admissions_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE switchyard_spend_settles_total counter");
        for (outcome, v) in [
            ("settled", &s.settled),
            ("duplicate", &s.settle_duplicates),
            ("failed", &s.settle_failed),
        ] {
            let _ = writeln!(
                out,
                "switchyard_spend_settles_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE switchyard_spend_lease_admissions_total counter"
        );
        for (path, v) in [("local", &s.lease_local), ("redis", &s.lease_remote)] {
            let _ = writeln!(
                out,
                "switchyard_spend_lease_admissions_total{{path=\"{path}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE switchyard_spend_lease_flushes_total counter");
        for (outcome, v) in [
            ("sent", &s.lease_flushes),
            ("failed", &s.lease_flush_failed),
        ] {
            let _ = writeln!(
                out,
                "switchyard_spend_lease_flushes_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE switchyard_spend_charges_capped_total counter");
        let _ = writeln!(
            out,
            "switchyard_spend_charges_capped_total {}",
            s.charges_capped.load(Relaxed)
        );
        let _ = writeln!(out, "# TYPE switchyard_usage_events_total counter");
        for (outcome, v) in [
            ("emitted", &u.emitted),
            ("dropped", &u.dropped),
            ("sent", &u.sent),
            ("spooled", &u.spooled),
            ("quarantined", &u.quarantined),
        ] {
            let _ = writeln!(
                out,
                "switchyard_usage_events_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        out
    }

    async fn refuse(&self, session: &mut ServerSession, reject: Reject) -> Ending {
        let _ = session.drain_request_body().await;
        ending(respond_reject(session, &reject).await)
    }

    async fn ready(&self, session: &mut ServerSession) -> Ending {
        match self.snapshots.version() {
            Some(version) => {
                let body = format!("{{\"ready\":true,\"snapshot_version\":{version}}}");
                ending(respond(session, 200, "application/json", Bytes::from(body)).await)
            }
            None => {
                let reject = Reject::new(Kind::NotReady, "No configuration snapshot loaded yet");
                ending(respond_reject(session, &reject).await)
            }
        }
    }

    async fn models(&self, session: &mut ServerSession) -> Ending {
        match self.snapshots.load() {
            Some(snapshot) => ending(
                respond(
                    session,
                    200,
                    "application/json",
                    snapshot.models_document.clone(),
                )
                .await,
            ),
            None => {
                let reject = Reject::new(Kind::NotReady, "Gateway has no configuration yet");
                ending(respond_reject(session, &reject).await)
            }
        }
    }
}

fn ending(delivered: bool) -> Ending {
    if delivered {
        Ending::Reusable
    } else {
        Ending::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operational_endpoints_need_the_ops_token() {
        let none = OpsToken::new(None).unwrap();
        assert_eq!(none.admit(Some(b"Bearer x")).unwrap_err().status(), 404);
        assert!(OpsToken::new(Some(" ")).is_err());
        let ops = OpsToken::new(Some("s3cret")).unwrap();
        assert!(ops.admit(Some(b"Bearer s3cret")).is_ok());
        for wrong in [
            None,
            Some(&b"Bearer s3cre"[..]),
            Some(b"s3cret"),
            Some(b"Bearer "),
        ] {
            assert_eq!(ops.admit(wrong).unwrap_err().status(), 401);
        }
    }
}
