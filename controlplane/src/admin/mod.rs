//! The operator gRPC API (`switchyard.admin.v1`), which `swctl` speaks. It listens apart from
//! the dataplane gRPC port (by default on loopback only), requires the operator token on every
//! call, and only translates: each RPC calls one [`Manage`] operation as [`Actor::Operator`].
//!
//! ```sh
//! switchyard-controlplane --operator-token "$TOKEN" --admin-listen 127.0.0.1:50052
//! swctl --token "$TOKEN" get orgs
//! ```
//!
//! [`Actor::Operator`]: crate::manage::Actor::Operator

mod convert;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use switchyard_proto::admin::v1::admin_service_server::AdminServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};

pub use service::AdminApi;

use crate::manage::{Manage, ManageError};
use crate::token::BearerToken;

/// The operator token.
pub type OperatorToken = BearerToken;

/// A new operator token: 256 random bits, hex, with a prefix that tells what it is.
pub fn generate_token() -> String {
    crate::token::generate("sy-operator")
}

/// The one place manage errors become gRPC statuses. `conflict` is the code a conflict takes in
/// this RPC: ALREADY_EXISTS for creations, FAILED_PRECONDITION for changes of existing state.
pub(crate) fn status(e: ManageError, conflict: Code) -> Status {
    match e {
        ManageError::Unauthenticated(m) => Status::unauthenticated(m),
        ManageError::Invalid(m) => Status::invalid_argument(m),
        ManageError::Forbidden(m) => Status::permission_denied(m),
        ManageError::NotFound(m) => Status::not_found(m),
        ManageError::Conflict(m) => Status::new(conflict, m),
        ManageError::Exists(m) => Status::already_exists(m),
        ManageError::InsufficientCredits(m) => Status::failed_precondition(m),
        ManageError::Store(e) => {
            // Logged here, once; the client gets no internals.
            tracing::error!(error = %e, "admin request failed in the store");
            Status::internal("internal error")
        }
        ManageError::Vault(e) => {
            tracing::error!(error = %e, "admin request failed in the vault");
            Status::internal("internal error")
        }
    }
}

/// PEM files of the admin listener's certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The admin API, configured and ready to bind. Building it reads the TLS files, so that a
/// bad certificate fails the control plane's start rather than the first connection.
pub struct AdminServer {
    manage: Manage,
    addr: SocketAddr,
    builder: Server,
    tls: bool,
    token: OperatorToken,
}

impl AdminServer {
    pub fn new(
        manage: Manage,
        addr: SocketAddr,
        tls: Option<&TlsFiles>,
        token: OperatorToken,
    ) -> anyhow::Result<AdminServer> {
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            let cert = std::fs::read(&tls.cert)
                .with_context(|| format!("cannot read {}", tls.cert.display()))?;
            let key = std::fs::read(&tls.key)
                .with_context(|| format!("cannot read {}", tls.key.display()))?;
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .context("invalid admin TLS certificate or key")?;
        }
        Ok(AdminServer {
            manage,
            addr,
            builder,
            tls: tls.is_some(),
            token,
        })
    }

    /// Binds and serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let AdminServer {
            manage,
            addr,
            mut builder,
            tls,
            token,
        } = self;
        let incoming =
            TcpIncoming::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(admin = %addr, tls, "operator API ready");
        builder
            .add_service(AdminServiceServer::with_interceptor(
                AdminApi::new(manage),
                token,
            ))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("admin gRPC server failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_errors_map_to_fixed_codes_and_hide_internals() {
        let s = status(ManageError::Conflict("dup".into()), Code::AlreadyExists);
        assert_eq!((s.code(), s.message()), (Code::AlreadyExists, "dup"));
        let s = status(
            ManageError::InsufficientCredits("poor".into()),
            Code::AlreadyExists,
        );
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s = status(
            ManageError::Store(crate::store::StoreError::Corrupt("secret detail".into())),
            Code::AlreadyExists,
        );
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
    }
}
