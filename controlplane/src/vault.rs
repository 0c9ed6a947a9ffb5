//! Envelope encryption for BYOK credentials: each record is sealed under its own random data key
//! (AES-256-GCM), and only that data key, wrapped by a master key, is stored beside it. Rotating
//! the master key re-wraps data keys without touching the sealed credentials.
//!
//! Master keys are 32 random bytes, base64, read from a file or an environment variable. A key's
//! id is the first 8 bytes of its SHA-256, so a record names the master key that wraps it.
//!
//! Both layers authenticate the record's id as associated data: sealed material copied onto
//! another record (another organization's, say) fails to open instead of decrypting there.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key is not 32 bytes of base64")]
    BadMasterKey,
    #[error("no master key with id {0}")]
    UnknownMasterKey(String),
    #[error("sealed data is damaged or was sealed under another key")]
    Damaged,
}

/// A credential as stored: ciphertext and wrapped data key (both `nonce || ciphertext`, base64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: String,
    pub wrapped_key: String,
    pub master_key_id: String,
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The current master key, plus retired ones still able to unwrap until everything is re-wrapped.
pub struct Vault {
    current: MasterKey,
    retired: Vec<MasterKey>,
}

impl Vault {
    /// `current` and `retired` are base64 master keys.
    pub fn new(current: &str, retired: &[String]) -> Result<Vault, VaultError> {
        Ok(Vault {
            current: master(current)?,
            retired: retired
                .iter()
                .map(|k| master(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// A fresh random master key, base64.
    pub fn generate_master_key() -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        B64.encode(bytes)
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the record `record_id`, which must be given again to open it.
    pub fn seal(&self, plaintext: &str, record_id: &str) -> Result<Sealed, VaultError> {
        let data_key = Aes256Gcm::generate_key(OsRng);
        let ciphertext = encrypt(&Aes256Gcm::new(&data_key), plaintext.as_bytes(), record_id)?;
        let wrapped_key = encrypt(&self.current.cipher, data_key.as_slice(), record_id)?;
        Ok(Sealed {
            ciphertext,
            wrapped_key,
            master_key_id: self.current.id.clone(),
        })
    }

    pub fn open(&self, sealed: &Sealed, record_id: &str) -> Result<String, VaultError> {
        let data_key = self.unwrap_data_key(sealed, record_id)?;
        let plain = decrypt(
            &Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key)),
            &sealed.ciphertext,
            record_id,
        )?;
        String::from_utf8(plain).map_err(|_| VaultError::Damaged)
    }

    /// The same record with its data key wrapped by the current master key; `None` if it already
    /// is.
    pub fn rewrap(&self, sealed: &Sealed, record_id: &str) -> Result<Option<Sealed>, VaultError> {
        if sealed.master_key_id == self.current.id {
            return Ok(None);
        }
        let data_key = self.unwrap_data_key(sealed, record_id)?;
        Ok(Some(Sealed {
            ciphertext: sealed.ciphertext.clone(),
            wrapped_key: encrypt(&self.current.cipher, &data_key, record_id)?,
            master_key_id: self.current.id.clone(),
        }))
    }

    fn unwrap_data_key(&self, sealed: &Sealed, record_id: &str) -> Result<Vec<u8>, VaultError> {
        let master = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|m| m.id == sealed.master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(sealed.master_key_id.clone()))?;
        let key = decrypt(&master.cipher, &sealed.wrapped_key, record_id)?;
        if key.len() != 32 {
            return Err(VaultError::Damaged);
        }
        Ok(key)
    }
}

fn master(text: &str) -> Result<MasterKey, VaultError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| VaultError::BadMasterKey)?;
    if bytes.len() != 32 {
        return Err(VaultError::BadMasterKey);
    }
    Ok(MasterKey {
        id: hex::encode(&Sha256::digest(&bytes)[..8]),
        cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
    })
}

fn encrypt(cipher: &Aes256Gcm, plain: &[u8], aad: &str) -> Result<String, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plain,
        aad: aad.as_bytes(),
    };
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .map_err(|_| VaultError::Damaged)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(B64.encode(out))
}

fn decrypt(cipher: &Aes256Gcm, text: &str, aad: &str) -> Result<Vec<u8>, VaultError> {
    let bytes = B64.decode(text).map_err(|_| VaultError::Damaged)?;
    if bytes.len() < NONCE_LEN {
        return Err(VaultError::Damaged);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let payload = Payload {
        msg: sealed,
        aad: aad.as_bytes(),
    };
    cipher
        .decrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| VaultError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rewraps_under_a_new_master_key() {
        let old = Vault::generate_master_key();
        let new = Vault::generate_master_key();
        let v1 = Vault::new(&old, &[]).unwrap();
        let sealed = v1.seal("sk-provider-secret", "byok_1").unwrap();
        assert!(!sealed.ciphertext.contains("sk-provider-secret"));
        assert_eq!(v1.open(&sealed, "byok_1").unwrap(), "sk-provider-secret");

        let v2 = Vault::new(&new, std::slice::from_ref(&old)).unwrap();
        let rewrapped = v2.rewrap(&sealed, "byok_1").unwrap().unwrap();
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_eq!(rewrapped.master_key_id, v2.current_key_id());
        assert!(v2.rewrap(&rewrapped, "byok_1").unwrap().is_none());

        // After rotation the old master key is no longer needed.
        let v3 = Vault::new(&new, &[]).unwrap();
        assert_eq!(v3.open(&rewrapped, "byok_1").unwrap(), "sk-provider-secret");
        assert!(matches!(
            v3.open(&sealed, "byok_1"),
            Err(VaultError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let v = Vault::new(&Vault::generate_master_key(), &[]).unwrap();
        let mut sealed = v.seal("secret", "byok_1").unwrap();
        // Sealed material moved to another record does not open there.
        assert!(matches!(
            v.open(&sealed, "byok_2"),
            Err(VaultError::Damaged)
        ));
        sealed.ciphertext = v.seal("other", "byok_1").unwrap().ciphertext;
        assert!(v.open(&sealed, "byok_1").is_err());
        assert!(Vault::new("short", &[]).is_err());
    }
}
