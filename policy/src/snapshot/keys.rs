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
#[derive(Clone, Debug)]
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

/// Every key of a snapshot: a sorted base, plus the keys changed since it was built.
///
/// A whole snapshot builds the base alone. A [`KeyDelta`](switchyard_proto::config::v1::KeyDelta)
/// of a few keys makes a new index that shares the base and carries a copy of the small overlay
/// with those keys changed, so applying one costs the same at a thousand keys and at a million.
/// When the overlay outgrows a fraction of the base it is merged into a new base (one pass over
/// the keys, already sorted), which keeps lookups at one probe of a small map and one of the base.
#[derive(Clone, Debug)]
pub struct KeyIndex {
    base: Arc<SortedKeys>,
    /// Keys changed since `base`: `Some` created or replaced, `None` removed.
    overlay: HashMap<[u8; 32], Option<Arc<ApiKey>>, DigestHasher>,
    len: usize,
}

/// The overlay is merged into the base beyond this many keys, or 1/256 of the base if more:
/// cloning the overlay per delta stays in the tens of microseconds, merging stays rare.
const MIN_OVERLAY: usize = 1024;

impl KeyIndex {
    /// Sorts the keys. Hashes must be distinct (the decoder removes duplicates first).
    pub(crate) fn new(keys: Vec<ApiKey>) -> KeyIndex {
        let base = SortedKeys::new(keys);
        KeyIndex {
            len: base.keys.len(),
            base: Arc::new(base),
            overlay: HashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every key once, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ApiKey> {
        let overlay = &self.overlay;
        self.base
            .keys
            .iter()
            .filter(move |k| overlay.is_empty() || !overlay.contains_key(&k.hash))
            .chain(overlay.values().flatten().map(|k| &**k))
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<&ApiKey> {
        if !self.overlay.is_empty()
            && let Some(changed) = self.overlay.get(hash)
        {
            return changed.as_deref();
        }
        self.base.get(hash)
    }

    /// Looks a key up by its hex hash.
    pub fn get_hex(&self, hash: &str) -> Option<&ApiKey> {
        parse_hash(hash).and_then(|h| self.get(&h))
    }

    /// This index with `upserted` keys put in (replacing any of the same hash) and `removed`
    /// hashes taken out. Shares the base unless the overlay has grown enough to merge.
    pub(crate) fn with_changes(&self, upserted: Vec<ApiKey>, removed: &[[u8; 32]]) -> KeyIndex {
        let mut next = self.clone();
        for hash in removed {
            if next.get(hash).is_some() {
                next.len -= 1;
            }
            next.overlay.insert(*hash, None);
        }
        for key in upserted {
            if next.get(&key.hash).is_none() {
                next.len += 1;
            }
            next.overlay.insert(key.hash, Some(Arc::new(key)));
        }
        if next.overlay.len() > MIN_OVERLAY.max(next.base.keys.len() / 256) {
            next = next.merged();
        }
        next
    }

    #[cfg(test)]
    pub(crate) fn overlay_len(&self) -> usize {
        self.overlay.len()
    }

    /// The same keys with the overlay merged into a new base.
    fn merged(&self) -> KeyIndex {
        let mut keys: Vec<ApiKey> = self.iter().cloned().collect();
        keys.sort_unstable_by_key(|k| k.hash);
        KeyIndex::new(keys)
    }
}

/// Hashes a key's SHA-256 by its first eight bytes: digests are uniform already.
#[derive(Clone, Copy, Debug, Default)]
struct DigestHasher;

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = LeadHasher;
    fn build_hasher(&self) -> LeadHasher {
        LeadHasher(0)
    }
}

struct LeadHasher(u64);

impl std::hash::Hasher for LeadHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length, then its bytes: keep the first eight of the bytes.
        if bytes.len() >= 8 {
            let mut head = [0u8; 8];
            head.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(head);
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
}

/// Keys sorted by their SHA-256, with a radix directory over the digests' leading bits.
///
/// Digests are uniform, so a directory of about n/4 buckets (indexed by the top bits) points
/// at a run of ~4 keys. A lookup reads the directory entry, scans that run's leading 8 bytes in
/// a separate packed array (one cache line), and confirms the full digest on the one candidate:
/// three memory touches whatever the size, no hashing, and about 9 bytes per key of index
/// beside the keys themselves (a hash map would waste its empty buckets).
#[derive(Debug)]
struct SortedKeys {
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

impl SortedKeys {
    fn new(mut keys: Vec<ApiKey>) -> SortedKeys {
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
        SortedKeys {
            keys,
            leads,
            directory,
            bits,
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<&ApiKey> {
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
