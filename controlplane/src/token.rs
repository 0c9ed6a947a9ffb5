//! Shared bearer tokens for the control plane's gRPC ports: the operator token (admin API) and
//! the dataplane token (snapshots, which carry provider credentials, and usage ingest, which
//! bills). Kept only as a SHA-256, so comparing takes the same time whatever is presented.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_policy::bearer::bearer_str;
use tonic::service::Interceptor;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct BearerToken {
    /// What the token is called in refusals ("operator token", "dataplane token").
    what: &'static str,
    digest: [u8; 32],
}

impl BearerToken {
    /// Fails on an empty token, which would let any empty `Bearer` through.
    pub fn new(what: &'static str, token: &str) -> anyhow::Result<BearerToken> {
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "the {what} must not be empty");
        Ok(BearerToken {
            what,
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented[..].ct_eq(&self.digest[..]).into()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_str);
        match presented {
            Some(token) if self.matches(token) => Ok(request),
            Some(_) => Err(Status::unauthenticated(format!("invalid {}", self.what))),
            None => Err(Status::unauthenticated(format!(
                "missing `authorization: Bearer <{}>`",
                self.what
            ))),
        }
    }
}

/// A new token: 256 random bits, hex, after a prefix that tells what it is.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn call(token: &mut BearerToken, header: Option<&str>) -> Result<(), Code> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        token.call(request).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn only_the_token_is_let_through() {
        let mut token = BearerToken::new("operator token", "s3cret").unwrap();
        assert_eq!(call(&mut token, Some("Bearer s3cret")), Ok(()));
        assert_eq!(call(&mut token, Some("bearer s3cret")), Ok(()));
        assert_eq!(
            call(&mut token, Some("Bearer s3cre")),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            call(&mut token, Some("Basic s3cret")),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            call(&mut token, Some("Bearer ")),
            Err(Code::Unauthenticated)
        );
        assert_eq!(call(&mut token, None), Err(Code::Unauthenticated));
        assert!(BearerToken::new("operator token", "  ").is_err());
    }

    #[test]
    fn generated_tokens_differ() {
        let (a, b) = (generate("sy-x"), generate("sy-x"));
        assert_ne!(a, b);
        assert!(a.starts_with("sy-x-") && a.len() > 64);
    }
}
