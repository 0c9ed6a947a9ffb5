//! The persisted snapshot holds every tenant's BYOK keys and the gateway's provider keys, so it
//! is sealed on disk: AES-256-GCM with a key from `--snapshot-key` / `SWITCHYARD_SNAPSHOT_KEY`
//! or `--snapshot-key-file` (base64, 32 bytes), for example a Kubernetes secret. Without one, a
//! key is generated into the state directory (owner-only), which keeps the snapshot unreadable
//! apart from that file. A file from before sealing (plain protobuf) is still read, and sealed at
//! the next write.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

/// Marks a sealed file: magic, version 1.
const MAGIC: &[u8; 5] = b"SYSN1";
const NONCE_LEN: usize = 12;

pub struct Seal {
    cipher: Aes256Gcm,
}

impl Seal {
    pub fn new(key: [u8; 32]) -> Seal {
        Seal {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// The configured key, else the key file, else the state directory's own (made if absent).
    pub fn from_config(
        key: Option<&str>,
        key_file: Option<&Path>,
        state_dir: &Path,
    ) -> anyhow::Result<Seal> {
        let key = key.map(str::trim).filter(|k| !k.is_empty());
        let text = match (key, key_file) {
            (Some(k), _) => k.trim().to_owned(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("--snapshot-key-file {}: {e}", file.display()))?
                .trim()
                .to_owned(),
            (None, None) => own_key(&state_dir.join("snapshot.key"))?,
        };
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|_| anyhow::anyhow!("the snapshot key is not base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the snapshot key must be 32 bytes"))?;
        Ok(Seal::new(key))
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| SealError::Cipher)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain bytes of a sealed file, or of one written before sealing.
    pub fn open(&self, bytes: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Ok(bytes);
        };
        if rest.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SealError::Damaged)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot seal the snapshot")]
    Cipher,
    #[error("the snapshot file is damaged or sealed with another key")]
    Damaged,
}

/// Reads the state directory's key, or makes one (owner-only).
fn own_key(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!("snapshot key file {}: {e}", path.display())
        }
        Err(_) => {}
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let text = B64.encode(key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    super::store::write_private(path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write snapshot key {}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated a snapshot key; set --snapshot-key-file to keep it elsewhere");
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_another_key() {
        let seal = Seal::new([7; 32]);
        let sealed = seal.seal(b"provider key sk-live-123").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"sk-live"));
        assert_eq!(
            seal.open(sealed.clone()).unwrap(),
            b"provider key sk-live-123"
        );
        assert!(Seal::new([8; 32]).open(sealed).is_err());
        // A file from before sealing is read as it is.
        assert_eq!(seal.open(b"plain".to_vec()).unwrap(), b"plain");
    }
}
