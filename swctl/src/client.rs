//! The connection to the control plane's operator API: TLS when the URL is `https://`, and the
//! operator token on every call.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use switchyard_proto::admin::v1::admin_service_client::AdminServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

pub type Admin = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Where the token comes from: given, or read from a file.
#[derive(Clone, Debug)]
pub enum TokenSource {
    Value(String),
    File(PathBuf),
}

impl TokenSource {
    fn read(&self) -> anyhow::Result<String> {
        let token = match self {
            TokenSource::Value(v) => v.clone(),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?,
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            bail!("the operator token is empty");
        }
        Ok(token)
    }
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub async fn connect(
    server: &str,
    token: Option<&TokenSource>,
    ca_cert: Option<&PathBuf>,
) -> anyhow::Result<Admin> {
    let Some(token) = token else {
        bail!(
            "no operator token: pass --token, --token-file or SWITCHYARD_OPERATOR_TOKEN (the \
             control plane writes a generated one to <data dir>/controlplane/operator.token)"
        );
    };
    let mut header: AsciiMetadataValue = format!("Bearer {}", token.read()?)
        .parse()
        .context("the operator token has characters a header cannot carry")?;
    header.set_sensitive(true);
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server URL {server:?}"))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60));
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| {
                    format!("cannot read the CA certificate {}", path.display())
                })?;
                tls.ca_certificate(Certificate::from_pem(pem))
            }
            None => tls.with_native_roots(),
        };
        endpoint = endpoint.tls_config(tls).context("invalid TLS settings")?;
    } else if ca_cert.is_some() {
        bail!("--ca-cert needs an https:// server URL");
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    Ok(AdminServiceClient::with_interceptor(
        channel,
        Bearer(header),
    ))
}
