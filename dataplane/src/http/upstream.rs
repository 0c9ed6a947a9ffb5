//! forward's network part: one attempt at a provider endpoint over hyper's HTTP/1 client, on
//! connections kept idle per address between requests. What to send and what a failure means
//! are decided in `stages::forward`.
//!
//! Why hyper rather than pingora-core's connector (measured side by side, issue 14; the figures
//! are in docs/request-path.md): pingora's HTTP/1 client writes a request's header and body in
//! two writes, and holds a 64 KiB body buffer per response for as long as it streams; hyper
//! writes both in one `writev` and reads into a buffer that starts at 8 KiB. Pingora still
//! serves the client side.
//!
//! The pool is lock-free: a map of addresses behind an `ArcSwap` (replaced only when an address
//! is first seen) and a bounded queue of idle connections per address and TLS name. Each
//! connection has one task of hyper's, which reads and writes its socket; a request borrows the
//! connection's sender and gives it back once its response has been read to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

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
    /// How long a connection may sit idle in the pool.
    pub idle_pool: Duration,
}

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections kept per address and TLS name: enough for a burst's worth of concurrency
/// to find a warm connection, few enough that a provider is not held to thousands of sockets.
const IDLE_PER_ADDRESS: usize = 512;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections to one address under one TLS name (or in plain text).
struct Pool {
    tls: bool,
    sni: Box<str>,
    idle: ArrayQueue<Idle>,
    /// Seconds since the client started when a request last used it, for the sweep.
    used_at: AtomicU64,
}

impl Pool {
    fn serves(&self, tls: bool, sni: &str) -> bool {
        self.tls == tls && (!tls || &*self.sni == sni)
    }
}

/// The upstream HTTP client: connections to providers (and the control plane's REST API).
pub struct Client {
    pools: ArcSwap<HashMap<SocketAddr, Vec<Arc<Pool>>>>,
    tls: TlsConnector,
    timeouts: Timeouts,
    started: Instant,
}

impl Client {
    /// Trusts the system's roots and, if given, the CA certificates in `extra_roots` (PEM), for
    /// providers behind a private CA.
    pub fn new(timeouts: Timeouts, extra_roots: Option<&Path>) -> anyhow::Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = extra_roots {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("--upstream-ca-file {}: {e}", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--upstream-ca-file {} holds no certificate",
                path.display()
            );
            for cert in certs {
                roots.add(cert)?;
            }
        } else if added == 0 {
            tracing::warn!(
                "no system CA certificates found (install ca-certificates): https providers will fail"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            pools: ArcSwap::default(),
            tls: TlsConnector::from(Arc::new(config)),
            timeouts,
            started: Instant::now(),
        })
    }

    fn pool(&self, addr: SocketAddr, tls: bool, sni: &str) -> Arc<Pool> {
        let now = self.started.elapsed().as_secs();
        if let Some(pool) = self
            .pools
            .load()
            .get(&addr)
            .and_then(|pools| pools.iter().find(|p| p.serves(tls, sni)))
        {
            // Written once a second at most, not by every request on every core.
            if pool.used_at.load(Ordering::Relaxed) != now {
                pool.used_at.store(now, Ordering::Relaxed);
            }
            return pool.clone();
        }
        // An address seen for the first time: the map is copied, once per address.
        let fresh = Arc::new(Pool {
            tls,
            sni: sni.into(),
            idle: ArrayQueue::new(IDLE_PER_ADDRESS),
            used_at: AtomicU64::new(now),
        });
        let mut chosen = fresh.clone();
        self.pools.rcu(|pools| {
            let mut pools = HashMap::clone(pools);
            let lane = pools.entry(addr).or_default();
            match lane.iter().find(|p| p.serves(tls, sni)) {
                Some(pool) => chosen = pool.clone(),
                None => {
                    lane.push(fresh.clone());
                    chosen = fresh.clone();
                }
            }
            pools
        });
        chosen
    }

    /// A pooled connection that is still open and not past its idle time.
    async fn checkout(&self, pool: &Pool) -> Option<Sender> {
        while let Some(Idle { mut sender, since }) = pool.idle.pop() {
            if since.elapsed() >= self.timeouts.idle_pool || sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Given back the moment its response ended: its task may not have run since.
            if let Ok(Ok(())) = tokio::time::timeout(self.timeouts.connect, sender.ready()).await {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self, addr: SocketAddr, pool: &Pool) -> Result<Sender, Failure> {
        let connecting = async {
            let tcp = TcpStream::connect(addr).await.ok()?;
            let _ = tcp.set_nodelay(true);
            if pool.tls {
                let name = rustls::pki_types::ServerName::try_from(pool.sni.to_string()).ok()?;
                let tls = self.tls.connect(name, tcp).await.ok()?;
                handshake(tls).await
            } else {
                handshake(tcp).await
            }
        };
        match tokio::time::timeout(self.timeouts.connect, connecting).await {
            Ok(Some(sender)) => Ok(sender),
            _ => Err(Failure::Unreachable),
        }
    }

    /// Sends `request` to `upstream` and reads the response header. A non-2xx answer is a
    /// response like any other here.
    pub async fn request(
        &self,
        upstream: &Upstream,
        mut request: http::Request<Full<Bytes>>,
    ) -> Result<Opened, Failure> {
        let Some(addr) = upstream.addr() else {
            upstream.addresses.mark_failed();
            return Err(Failure::NoAddress);
        };
        let pool = self.pool(addr, upstream.tls, upstream.sni());
        // A pooled connection the provider had already closed fails before the request goes
        // out: once more on a new connection. (A connection lost after the request went out
        // may have started a generation: that is forward's to judge, under
        // `--retry-unanswered`.)
        let mut pooled = self.checkout(&pool).await;
        loop {
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(sender) => sender,
                None => match self.connect(addr, &pool).await {
                    Ok(sender) => sender,
                    Err(failure) => {
                        // Perhaps the address moved: look the host up again soon.
                        upstream.addresses.mark_failed();
                        return Err(failure);
                    }
                },
            };
            let sent =
                tokio::time::timeout(self.timeouts.first_byte, sender.try_send_request(request))
                    .await;
            match sent {
                Ok(Ok(response)) => {
                    let (head, body) = response.into_parts();
                    return Ok(Opened {
                        status: head.status.as_u16(),
                        headers: head.headers,
                        body,
                        sender,
                        pool,
                        read_timeout: self.timeouts.read,
                        ended: false,
                    });
                }
                Ok(Err(mut failed)) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    Some(_) => return Err(Failure::Unreachable),
                    None => return Err(Failure::NoResponse),
                },
                Err(_) => return Err(Failure::TimedOut),
            }
        }
    }

    /// Drops idle connections past their idle time, and pools of addresses unused for ten
    /// idle times (an address DNS no longer gives).
    pub fn sweep(&self) {
        let now = self.started.elapsed().as_secs();
        let forget_after = self.timeouts.idle_pool.as_secs().max(1) * 10;
        let forgettable = |pool: &Pool| {
            pool.idle.is_empty()
                && now.saturating_sub(pool.used_at.load(Ordering::Relaxed)) > forget_after
        };
        let pools = self.pools.load();
        let mut forgotten = false;
        for pool in pools.values().flatten() {
            for _ in 0..pool.idle.len() {
                let Some(idle) = pool.idle.pop() else { break };
                if idle.since.elapsed() < self.timeouts.idle_pool && !idle.sender.is_closed() {
                    let _ = pool.idle.push(idle);
                }
            }
            forgotten |= forgettable(pool);
        }
        if forgotten {
            self.pools.rcu(|pools| {
                let mut kept = HashMap::clone(pools);
                kept.retain(|_, lane| {
                    lane.retain(|p| !forgettable(p));
                    !lane.is_empty()
                });
                kept
            });
        }
    }

    /// Sweeps every few seconds until shutdown.
    pub async fn run_sweeper(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let every = (self.timeouts.idle_pool / 4).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.sweep(),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Idle connections pooled, over every address.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.pools
            .load()
            .values()
            .flatten()
            .map(|p| p.idle.len())
            .sum()
    }
}

/// An HTTP/1.1 connection over `io`, its task spawned (it ends with the connection).
async fn handshake<T>(io: T) -> Option<Sender>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .ok()?;
    tokio::spawn(async move {
        // Its end is seen by the sender (closed); nothing more to do with the error here.
        let _ = connection.await;
    });
    Some(sender)
}

/// Why reading a response body failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no data from the provider within the read timeout")]
    TimedOut,
    #[error("{0}")]
    Broken(#[from] hyper::Error),
}

/// An upstream response whose header has been read.
pub struct Opened {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    sender: Sender,
    pool: Arc<Pool>,
    read_timeout: Duration,
    ended: bool,
}

impl Opened {
    /// The next piece of the body; `None` at its end. Each wait is bounded by the read timeout.
    pub async fn read(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            let frame = tokio::time::timeout(self.read_timeout, self.body.frame())
                .await
                .map_err(|_| ReadError::TimedOut)?;
            match frame {
                None => {
                    self.ended = true;
                    return Ok(None);
                }
                Some(frame) => {
                    // Trailers carry nothing the gateway relays.
                    if let Ok(data) = frame?.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body, up to `cap` bytes; `None` if it is longer or the read fails.
    pub async fn read_capped(&mut self, cap: usize) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.read().await.ok()? {
            if body.len() + chunk.len() > cap {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(body)
    }

    /// Gives the connection back to its pool if the response was read to its end; otherwise
    /// (and on drop) it is closed, as a half-read response leaves it unusable.
    pub fn release(self) {
        if self.ended && !self.sender.is_closed() {
            let idle = Idle {
                sender: self.sender,
                since: Instant::now(),
            };
            // A full pool closes it.
            let _ = self.pool.idle.push(idle);
        }
    }
}

impl Transport for Client {
    type Response = Opened;

    /// Sends the request and reads the response header; a non-2xx answer comes back as
    /// `Failure::Status` with its body (bounded), for `forward::classify` to judge.
    async fn send(
        &self,
        attempt: &Attempt<'_>,
        body: Vec<u8>,
        call: Call,
    ) -> Result<Opened, Failure> {
        let head = crate::providers::request_header(attempt, body.len(), call)
            .map_err(|r| Failure::Request(r.message.into_owned()))?;
        let request = http::Request::from_parts(head, Full::new(Bytes::from(body)));
        let mut opened = self.request(&attempt.endpoint.upstream, request).await?;
        if (200..300).contains(&opened.status) {
            // Nothing reads the provider's header here, and its values are slices of the
            // connection's first read buffer: held, they pin those 8 KiB for the whole of a
            // stream while hyper reads into a new buffer (heaptrack, one per held stream).
            opened.headers = HeaderMap::new();
            return Ok(opened);
        }
        // Read the provider's error (bounded) so the client can be told why.
        let raw = opened.read_capped(64 * 1024).await.unwrap_or_default();
        let status = opened.status;
        opened.release();
        Err(Failure::Status { status, body: raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use hyper::service::service_fn;
    use switchyard_policy::snapshot::Addresses;
    use tokio::net::TcpListener;

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Keeps connections open between requests.
        KeepAlive,
        /// Closes each connection after one response, without saying so.
        OneAndClose,
        /// Never answers.
        Silent,
    }

    struct Server {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
    }

    /// A provider on loopback answering `{"n":<request number>}`, in TLS under `tls`'s
    /// certificate if given.
    async fn server(serve: Serve, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        async move {
                            if let Serve::Silent = serve {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                            }
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                format!("{{\"n\":{n}}}"),
                            ))))
                        }
                    });
                    let keep_alive = !matches!(serve, Serve::OneAndClose);
                    let builder = {
                        let mut b = hyper::server::conn::http1::Builder::new();
                        b.keep_alive(keep_alive);
                        b
                    };
                    match tls {
                        Some(tls) => {
                            let io = tls.accept(tcp).await.unwrap();
                            let _ = builder.serve_connection(TokioIo::new(io), service).await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Server { addr, accepted }
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(2),
            first_byte: Duration::from_millis(300),
            idle_pool: Duration::from_secs(30),
        }
    }

    fn upstream(scheme: &str, host: &str, addr: SocketAddr) -> Upstream {
        let base = format!("{scheme}://{host}:{}/v1", addr.port());
        Upstream::parse(&base, &|host, port| {
            Arc::new(Addresses::new(host, port, vec![addr]))
        })
        .unwrap()
    }

    fn get(upstream: &Upstream) -> http::Request<Full<Bytes>> {
        http::Request::post("/v1/chat/completions")
            .header("host", &upstream.host)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    async fn body(client: &Client, upstream: &Upstream) -> String {
        let mut opened = client.request(upstream, get(upstream)).await.unwrap();
        assert_eq!(opened.status, 200);
        let body = opened.read_capped(1024).await.unwrap();
        opened.release();
        String::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_is_read_to_the_end() {
        let server = server(Serve::KeepAlive, None).await;
        let client = Client::new(timeouts(), None).unwrap();
        let upstream = upstream("http", "127.0.0.1", server.addr);
        assert_eq!(body(&client, &upstream).await, r#"{"n":0}"#);
        assert_eq!(body(&client, &upstream).await, r#"{"n":1}"#);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.idle(), 1);

        // A response dropped unread leaves its connection unusable: it is closed, not pooled.
        let opened = client.request(&upstream, get(&upstream)).await.unwrap();
        drop(opened);
        assert_eq!(client.idle(), 0);
        assert_eq!(body(&client, &upstream).await, r#"{"n":3}"#);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_provider_closed_is_replaced_without_a_failure() {
        let server = server(Serve::OneAndClose, None).await;
        let client = Client::new(timeouts(), None).unwrap();
        let upstream = upstream("http", "127.0.0.1", server.addr);
        for n in 0..5 {
            assert_eq!(body(&client, &upstream).await, format!("{{\"n\":{n}}}"));
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn idle_connections_past_their_time_are_swept() {
        let server = server(Serve::KeepAlive, None).await;
        let mut t = timeouts();
        t.idle_pool = Duration::ZERO;
        let client = Client::new(t, None).unwrap();
        let upstream = upstream("http", "127.0.0.1", server.addr);
        body(&client, &upstream).await;
        assert_eq!(client.idle(), 1);
        client.sweep();
        assert_eq!(client.idle(), 0);
        // Nor is one past its time used: a new connection serves.
        body(&client, &upstream).await;
        body(&client, &upstream).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn failures_are_told_apart() {
        let client = Client::new(timeouts(), None).unwrap();
        // Nothing listens: nothing was sent.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = upstream("http", "127.0.0.1", closed.local_addr().unwrap());
        drop(closed);
        assert!(matches!(
            client.request(&gone, get(&gone)).await,
            Err(Failure::Unreachable)
        ));
        assert!(gone.addresses.needs_lookup());
        // Sent, and no answer within the first-byte timeout.
        let silent = server(Serve::Silent, None).await;
        let silent = upstream("http", "127.0.0.1", silent.addr);
        assert!(matches!(
            client.request(&silent, get(&silent)).await,
            Err(Failure::TimedOut)
        ));
    }

    #[tokio::test]
    async fn tls_providers_are_verified_against_the_roots_given() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["provider.test".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = server(Serve::KeepAlive, Some(acceptor)).await;
        let upstream = upstream("https", "provider.test", server.addr);

        let dir = std::env::temp_dir().join(format!("upstream-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let trusting = Client::new(timeouts(), Some(&ca_file)).unwrap();
        assert_eq!(body(&trusting, &upstream).await, r#"{"n":0}"#);
        assert_eq!(body(&trusting, &upstream).await, r#"{"n":1}"#);

        // Without the CA the certificate is refused: nothing is sent.
        let system_only = Client::new(timeouts(), None).unwrap();
        assert!(matches!(
            system_only.request(&upstream, get(&upstream)).await,
            Err(Failure::Unreachable)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Client::new(timeouts(), Some(&ca_file)).is_err());
    }
}
