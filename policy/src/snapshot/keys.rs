//! API keys as the request path reads them, and the index that finds one by its hash.

use std::collections::HashMap;
use std::sync::Arc;

use crate::money::Money;
use crate::window::Window;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Inference,
    Management,
}

/// Kept small because a snapshot may hold millions: ids shared by many keys (owner,
/// organization, workspace) are interned `Arc<str>`s, and the hash is stored once, as bytes.
#[derive(Debug)]
pub struct ApiKey {
    pub hash: [u8; 32],
    pub kind: KeyKind,
    pub owner_user_id: Arc<str>,
    pub organization_id: Arc<str>,
    pub workspace_id: Arc<str>,
    pub disabled: bool,
    /// Unix milliseconds; `None` never expires.
    pub expires_at_ms: Option<i64>,
    /// The key's own spend limit, over `limit_window`.
    pub limit: Option<Money>,
    pub limit_window: Window,
    pub include_byok_in_limit: bool,
    /// The first key of this key's rotation line, when it is not this one: key-scoped limits
    /// count on it (boxed: most keys were never rotated).
    pub lineage: Option<Box<[u8; 32]>>,
}

impl ApiKey {
    /// The hash as lowercase hex: the key's id in the API and in usage events.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// What key-scoped limits count on, as lowercase hex: the first key of the rotation line.
    pub fn limit_id_hex(&self) -> String {
        hex::encode(self.lineage.as_deref().unwrap_or(&self.hash))
    }
}

/// A key hash as 64 lowercase hex digits.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    let well_formed = text.len() == 64
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(text, &mut hash).is_ok();
    well_formed.then_some(hash)
}

/// Keys sorted by their SHA-256, with a radix directory over the digests' leading bits.
///
/// Digests are uniform, so a directory of about n/4 buckets (indexed by the top bits) points
/// at a run of ~4 keys. A lookup reads the directory entry, scans that run's leading 8 bytes in
/// a separate packed array (one cache line), and confirms the full digest on the one candidate:
/// three memory touches whatever the size, no hashing, and about 9 bytes per key of index
/// beside the keys themselves (a hash map would waste its empty buckets).
#[derive(Debug)]
pub struct KeyIndex {
    keys: Vec<ApiKey>,
    /// `leads[i]` is the first 8 bytes (big-endian) of `keys[i].hash`.
    leads: Vec<u64>,
    /// `directory[b]..directory[b + 1]` is the range of keys whose top `bits` bits equal `b`.
    directory: Vec<u32>,
    bits: u32,
}

fn lead(hash: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(head)
}

impl KeyIndex {
    /// Sorts the keys. Hashes must be distinct (the decoder removes duplicates first).
    pub(crate) fn new(mut keys: Vec<ApiKey>) -> KeyIndex {
        keys.sort_unstable_by_key(|k| k.hash);
        keys.dedup_by_key(|k| k.hash);
        keys.shrink_to_fit();
        let leads: Vec<u64> = keys.iter().map(|k| lead(&k.hash)).collect();
        // About four keys per bucket; at least one bit so the shift below stays in range.
        let bits = (usize::BITS - (keys.len() / 4).leading_zeros()).clamp(1, 31);
        let buckets = 1usize << bits;
        let mut directory = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets as u64 {
            while i < leads.len() && (leads[i] >> (64 - bits)) < b {
                i += 1;
            }
            directory.push(i as u32);
        }
        directory.push(leads.len() as u32);
        KeyIndex {
            keys,
            leads,
            directory,
            bits,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ApiKey> {
        self.keys.iter()
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<&ApiKey> {
        let lead = lead(hash);
        let bucket = (lead >> (64 - self.bits)) as usize;
        let start = *self.directory.get(bucket)? as usize;
        let end = *self.directory.get(bucket + 1)? as usize;
        let run = self.leads.get(start..end)?;
        run.iter()
            .position(|&l| l == lead)
            .map(|i| start + i)
            .and_then(|i| {
                // Equal leads are possible in principle; check every one of them.
                self.keys[i..end]
                    .iter()
                    .take_while(|k| self::lead(&k.hash) == lead)
                    .find(|k| k.hash == *hash)
            })
    }

    /// Looks a key up by its hex hash.
    pub fn get_hex(&self, hash: &str) -> Option<&ApiKey> {
        parse_hash(hash).and_then(|h| self.get(&h))
    }
}

/// Shares one allocation among equal strings while a snapshot is built.
#[derive(Default)]
pub(crate) struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    pub(crate) fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.0.get(&s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s.as_str());
        self.0.insert(s, shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key(hash: [u8; 32]) -> ApiKey {
        ApiKey {
            hash,
            kind: KeyKind::Inference,
            owner_user_id: Arc::from("u"),
            organization_id: Arc::from("o"),
            workspace_id: Arc::from("w"),
            disabled: false,
            expires_at_ms: None,
            limit: None,
            limit_window: Window::Lifetime,
            include_byok_in_limit: false,
            lineage: None,
        }
    }

    #[test]
    fn key_index_finds_every_key_and_nothing_else() {
        for n in [0usize, 1, 2, 3, 10, 1000] {
            let hashes: Vec<[u8; 32]> = (0..n)
                .map(|i| Sha256::digest(format!("k{i}").as_bytes()).into())
                .collect();
            let index = KeyIndex::new(hashes.iter().copied().map(key).collect());
            assert_eq!(index.len(), n);
            for h in &hashes {
                assert_eq!(index.get(h).map(|k| k.hash), Some(*h));
            }
            let missing: [u8; 32] = Sha256::digest(b"missing").into();
            assert!(index.get(&missing).is_none());
            assert!(index.get(&[0u8; 32]).is_none());
            assert!(index.get(&[0xffu8; 32]).is_none());
        }
        // Skewed hashes (not digests) still work, just with a longer search.
        let skewed: Vec<[u8; 32]> = (0..100u8)
            .map(|i| {
                let mut h = [0u8; 32];
                h[31] = i;
                h
            })
            .collect();
        let index = KeyIndex::new(skewed.iter().copied().map(key).collect());
        assert!(skewed.iter().all(|h| index.get(h).is_some()));
    }

    #[test]
    fn hashes_are_64_lowercase_hex_digits() {
        let h = "ab".repeat(32);
        assert_eq!(parse_hash(&h), Some([0xab; 32]));
        assert_eq!(parse_hash(&"AB".repeat(32)), None);
        assert_eq!(parse_hash("abcd"), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }
}
