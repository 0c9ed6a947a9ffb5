//! API key secrets: generation, hashing and display labels.
//!
//! A secret is `sk-sy-v1-` followed by 64 hex digits (256 random bits). Only its SHA-256 (hex)
//! is stored; that hash is also the key's public id.

use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SECRET_PREFIX: &str = "sk-sy-v1-";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Inference,
    Management,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Inference => "inference",
            KeyKind::Management => "management",
        }
    }
}

impl FromStr for KeyKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "inference" => Ok(KeyKind::Inference),
            "management" => Ok(KeyKind::Management),
            _ => Err(()),
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct Generated {
    pub secret: String,
    pub hash: String,
    pub label: String,
}

pub fn generate() -> Generated {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
    Generated {
        hash: hash(&secret),
        label: label(&secret),
        secret,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `sk-sy-v1-abc…xyz`: enough to recognise a key, never enough to use it.
pub fn label(secret: &str) -> String {
    let body = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let head: String = body.chars().take(3).collect();
    let tail: String = body
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{SECRET_PREFIX}{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_labelled() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), SECRET_PREFIX.len() + 64);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.label.starts_with(SECRET_PREFIX));
        assert!(a.label.len() < 20);
        assert!(
            !a.label
                .contains(&a.secret[SECRET_PREFIX.len()..SECRET_PREFIX.len() + 10])
        );
    }
}
