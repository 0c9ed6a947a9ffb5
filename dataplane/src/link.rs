//! Credentials for the link to the control plane: every gRPC call (snapshot watch, acks, usage
//! batches, health reports) carries `authorization: Bearer <dataplane token>`, over TLS when the
//! control plane's address is `https://` (trusting `--control-plane-ca`, presenting
//! `--control-plane-tls-cert` / `--control-plane-tls-key` where the control plane asks for a
//! client certificate). Snapshots carry every tenant's provider keys: in production the link is
//! TLS, mutual where the network is shared.

use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

#[derive(Clone, Default)]
pub struct ControlPlaneAuth {
    header: Option<MetadataValue<Ascii>>,
    tls: Option<ClientTlsConfig>,
}

/// PEM files for TLS to the control plane.
#[derive(Clone, Debug, Default)]
pub struct LinkTls {
    /// The CA that signed the control plane's certificate (the system roots when absent).
    pub ca: Option<std::path::PathBuf>,
    /// This dataplane's client certificate and key, for mutual TLS.
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl ControlPlaneAuth {
    /// The configured token, else the one a control plane sharing `data_dir` generated. Without
    /// either, calls go out bare and the control plane refuses them, which the link logs.
    pub fn resolve(configured: Option<&str>, data_dir: &Path) -> Result<ControlPlaneAuth, String> {
        let token = match configured {
            Some(t) => Some(t.trim().to_owned()),
            None => std::fs::read_to_string(data_dir.join("controlplane/dataplane.token"))
                .ok()
                .map(|t| t.trim().to_owned()),
        };
        let header = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "the control plane token has characters a header cannot carry")?,
            ),
            None => None,
        };
        Ok(ControlPlaneAuth { header, tls: None })
    }

    /// TLS for `https://` control plane addresses.
    pub fn with_tls(mut self, files: &LinkTls) -> Result<ControlPlaneAuth, String> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &files.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err("a client certificate needs its key, and a key its certificate".into());
            }
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// The gRPC endpoint for `url`, with TLS when it is `https://`.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("invalid control plane address {url}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        match (&self.tls, url.starts_with("https://")) {
            (Some(tls), true) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS to the control plane: {e}")),
            (None, true) => endpoint
                .tls_config(ClientTlsConfig::new().with_enabled_roots())
                .map_err(|e| format!("TLS to the control plane: {e}")),
            (_, false) => Ok(endpoint),
        }
    }

    pub fn is_set(&self) -> bool {
        self.header.is_some()
    }
}

/// Never prints the token.
impl std::fmt::Debug for ControlPlaneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneAuth")
            .field("token", &if self.is_set() { "<set>" } else { "<none>" })
            .finish()
    }
}

impl Interceptor for ControlPlaneAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_token_wins_and_is_sent() {
        let dir = std::env::temp_dir().join(format!("sy-link-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("controlplane")).unwrap();
        std::fs::write(dir.join("controlplane/dataplane.token"), "from-file\n").unwrap();
        let mut auth = ControlPlaneAuth::resolve(Some("configured"), &dir).unwrap();
        let sent = auth.call(Request::new(())).unwrap();
        assert_eq!(
            sent.metadata().get("authorization").unwrap(),
            "Bearer configured"
        );
        let mut auth = ControlPlaneAuth::resolve(None, &dir).unwrap();
        let sent = auth.call(Request::new(())).unwrap();
        assert_eq!(
            sent.metadata().get("authorization").unwrap(),
            "Bearer from-file"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let auth = ControlPlaneAuth::resolve(None, &dir).unwrap();
        assert!(!auth.is_set());
        assert!(ControlPlaneAuth::resolve(Some("bad\ntoken"), &dir).is_err());
    }
}
