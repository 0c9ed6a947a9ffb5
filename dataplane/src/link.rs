//! Credentials for the link to the control plane: every gRPC call (snapshot watch, acks, usage
//! batches) carries `authorization: Bearer <dataplane token>`.

use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

#[derive(Clone, Default)]
pub struct ControlPlaneAuth {
    header: Option<MetadataValue<Ascii>>,
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
        Ok(ControlPlaneAuth { header })
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
