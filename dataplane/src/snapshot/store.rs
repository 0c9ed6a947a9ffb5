//! The one `ArcSwap` that holds the live snapshot, plus its copy on disk.
//!
//! Updates follow prepare-then-publish: decoding may refuse a snapshot (a stale version, no
//! resources) or a key delta (one that does not follow the served version) and leave the live
//! one untouched; records that fail validation are set aside inside an otherwise good snapshot;
//! publishing is a single infallible pointer swap.
//!
//! On disk: the last whole snapshot, and a journal of the key deltas applied since (each sealed
//! on its own, appended), replayed at restore. A whole snapshot starts a new journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;
use prost::Message;
use switchyard_proto::config::v1 as pb;

use switchyard_policy::snapshot::{Snapshot, SnapshotError};

use super::seal::{Seal, SealError};
use crate::dns::Dns;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid snapshot: {0}")]
    Invalid(#[from] SnapshotError),
    #[error("a key delta arrived before any snapshot")]
    NoSnapshot,
    #[error("snapshot version {offered} is not newer than the served version {served}")]
    Stale { offered: u64, served: u64 },
    #[error("persisted snapshot is not decodable: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("persisted snapshot: {0}")]
    Sealed(#[from] SealError),
    #[error("snapshot file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct SnapshotStore {
    current: ArcSwapOption<Snapshot>,
    /// Where the last accepted snapshot is kept for cold starts; `None` disables persistence.
    persist_path: Option<PathBuf>,
    /// Provider hosts' addresses, shared by every snapshot and kept fresh in the background.
    dns: Arc<Dns>,
    /// Seals the on-disk copy, which holds provider credentials.
    seal: Seal,
    /// Key deltas in the journal beside the persisted snapshot.
    journalled: AtomicUsize,
    /// An append to the journal failed: the deltas after it are not on disk.
    journal_broken: AtomicBool,
}

impl SnapshotStore {
    pub fn new(persist_path: Option<PathBuf>, dns: Arc<Dns>, seal: Seal) -> Self {
        SnapshotStore {
            current: ArcSwapOption::empty(),
            persist_path,
            dns,
            seal,
            journalled: AtomicUsize::new(0),
            journal_broken: AtomicBool::new(false),
        }
    }

    /// The live snapshot, or `None` before the first good one: the request path answers 503.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    pub fn version(&self) -> Option<u64> {
        self.current.load().as_ref().map(|s| s.version)
    }

    /// The served version and its epoch.
    pub fn served(&self) -> Option<(String, u64)> {
        self.current
            .load()
            .as_ref()
            .map(|s| (s.epoch.clone(), s.version))
    }

    /// Whether `message` is the version already served (of the same store).
    pub fn serves(&self, message: &pb::Snapshot) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|s| s.version == message.version && s.epoch == message.epoch)
    }

    /// Decodes and validates without touching the live snapshot. Resolves provider hosts,
    /// so call it off the async executor.
    ///
    /// Versions only move forward within one epoch (one control plane store, shared by its
    /// replicas): an older version is refused. A snapshot of another epoch replaces whatever is
    /// served, since its numbers are not comparable.
    pub fn prepare(&self, message: pb::Snapshot) -> Result<Snapshot, StoreError> {
        if let Some(served) = self.current.load().as_ref()
            && served.epoch == message.epoch
            && message.version < served.version
        {
            return Err(StoreError::Stale {
                offered: message.version,
                served: served.version,
            });
        }
        Ok(Snapshot::decode(message, &|host, port| {
            self.dns.resolve(host, port)
        })?)
    }

    /// The served snapshot with a key delta applied, without touching it. Refused unless the
    /// delta follows the served version (then the whole snapshot must be fetched again).
    pub fn prepare_delta(&self, delta: pb::KeyDelta) -> Result<Snapshot, StoreError> {
        let served = self.current.load_full().ok_or(StoreError::NoSnapshot)?;
        Ok(served.apply_key_delta(delta)?)
    }

    /// Makes a prepared snapshot live. Infallible by design.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Some(Arc::new(snapshot)));
    }

    /// Writes an accepted, encoded snapshot to disk atomically (temp file + rename),
    /// owner-only, because it holds provider credentials.
    pub fn persist(&self, encoded: &[u8]) -> Result<(), StoreError> {
        let Some(path) = &self.persist_path else {
            return Ok(());
        };
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Per process: during an upgrade two dataplanes persist side by side.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        let sealed = self.seal.seal(encoded)?;
        write_private(&tmp, &sealed).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        // The deltas journalled were over the previous whole snapshot.
        self.journalled.store(0, Ordering::Relaxed);
        self.journal_broken.store(false, Ordering::Relaxed);
        match std::fs::remove_file(journal_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    /// Whether the served snapshot is more than the persisted whole one: deltas were journalled
    /// since, or an append failed. Persisting the served version whole makes it clean.
    pub fn journal_dirty(&self) -> bool {
        self.journalled.load(Ordering::Relaxed) > 0 || self.journal_broken.load(Ordering::Relaxed)
    }

    /// Key deltas in the journal.
    pub fn journal_len(&self) -> usize {
        self.journalled.load(Ordering::Relaxed)
    }

    /// Whether an append to the journal failed since the last whole snapshot was persisted.
    pub fn journal_broken(&self) -> bool {
        self.journal_broken.load(Ordering::Relaxed)
    }

    /// Appends an applied key delta (encoded) to the journal beside the persisted snapshot, and
    /// returns how many deltas the journal holds. After a failure the journal is broken (what
    /// follows could not be replayed) until the next whole snapshot is persisted.
    pub fn journal(&self, encoded: &[u8]) -> Result<usize, StoreError> {
        let appended = self.append(encoded);
        if appended.is_err() {
            self.journal_broken.store(true, Ordering::Relaxed);
        }
        appended
    }

    fn append(&self, encoded: &[u8]) -> Result<usize, StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.persist_path else {
            return Ok(0);
        };
        let path = journal_path(path);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let sealed = self.seal.seal(encoded)?;
        let len = u32::try_from(sealed.len()).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "key delta too large to journal",
            ))
        })?;
        let mut record = Vec::with_capacity(4 + sealed.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&sealed);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all(&record).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(self.journalled.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Loads the persisted snapshot, if any, so a restarted dataplane serves before the
    /// control plane is back.
    pub fn restore(&self) -> Result<Option<u64>, StoreError> {
        let Some(path) = &self.persist_path else {
            return Ok(None);
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        let message = pb::Snapshot::decode(self.seal.open(bytes)?.as_slice())?;
        // The same rule as for a live update: bad records are set aside, the rest is served.
        let mut snapshot = self.prepare(message)?;
        // Then the deltas applied since, up to the first that cannot be read (a write cut
        // short) or applied; the journal is cut there, so deltas appended from now on follow
        // what is served.
        let journal = std::fs::read(journal_path(path)).unwrap_or_default();
        let mut replayed = 0;
        for entry in journal_entries(&journal) {
            let delta = match self.seal.open(entry.to_vec()) {
                Ok(plain) => pb::KeyDelta::decode(plain.as_slice()).map_err(StoreError::from),
                Err(e) => Err(e.into()),
            };
            match delta.and_then(|d| Ok(snapshot.apply_key_delta(d)?)) {
                Ok(next) => {
                    snapshot = next;
                    self.journalled.fetch_add(1, Ordering::Relaxed);
                    replayed += 4 + entry.len();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "persisted key delta not applied; stopping there");
                    break;
                }
            }
        }
        if replayed < journal.len() {
            let cut = std::fs::OpenOptions::new()
                .write(true)
                .open(journal_path(path))
                .and_then(|f| f.set_len(replayed as u64));
            if let Err(e) = cut {
                tracing::warn!(error = %e, "cannot cut the key delta journal; it is rewritten at the next whole snapshot");
                self.journal_broken.store(true, Ordering::Relaxed);
            }
        }
        for record in snapshot.quarantine.records() {
            tracing::error!(%record, "persisted snapshot record set aside; what depends on it is refused");
        }
        let version = snapshot.version;
        self.publish(snapshot);
        Ok(Some(version))
    }
}

fn journal_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".deltas");
    PathBuf::from(name)
}

/// The journal's whole records (a length, then that many bytes); a torn last one is left out.
fn journal_entries(bytes: &[u8]) -> Vec<&[u8]> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*head) as usize;
        let Some(entry) = tail.get(..len) else {
            break;
        };
        entries.push(entry);
        rest = &tail[len..];
    }
    entries
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::testing::{SnapshotBuilder, key_hash};

    fn store(dir: &Path) -> SnapshotStore {
        SnapshotStore::new(
            Some(dir.join("snapshot.pb")),
            Arc::new(Dns::new(Arc::new(|_: &str, _: u16| Vec::new()))),
            Seal::new([7; 32]),
        )
    }

    fn delta(from_version: u64, removed: usize) -> pb::KeyDelta {
        pb::KeyDelta {
            epoch: "e1".into(),
            from_version,
            version: from_version + 1,
            removed: vec![key_hash(removed)],
            ..Default::default()
        }
    }

    /// Applies and journals a delta, as the watcher does.
    fn apply(store: &SnapshotStore, d: pb::KeyDelta) {
        let encoded = d.encode_to_vec();
        let next = store.prepare_delta(d).unwrap();
        store.publish(next);
        store.journal(&encoded).unwrap();
    }

    #[test]
    fn restore_replays_the_journal_and_cuts_what_cannot_be_replayed() {
        let dir = std::env::temp_dir().join(format!("sy-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let message = SnapshotBuilder::new()
            .epoch("e1")
            .version(1)
            .with_inference_key()
            .with_inference_key()
            .with_inference_key()
            .message();
        let first = store(&dir);
        first.publish(first.prepare(message.clone()).unwrap());
        first.persist(&message.encode_to_vec()).unwrap();
        apply(&first, delta(1, 0));
        assert!(first.journal_dirty());

        // A record cut short follows (a crash mid-append); a restart replays what precedes it,
        // cuts the rest, and what it journals from then on is replayed at the next restart.
        let path = journal_path(&dir.join("snapshot.pb"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(b"torn");
        std::fs::write(&path, &bytes).unwrap();
        let second = store(&dir);
        assert_eq!(second.restore().unwrap(), Some(2));
        apply(&second, delta(2, 1));
        let third = store(&dir);
        assert_eq!(third.restore().unwrap(), Some(3));
        let served = third.load().unwrap();
        assert!(served.keys.get_hex(&key_hash(0)).is_none());
        assert!(served.keys.get_hex(&key_hash(1)).is_none());
        assert!(served.keys.get_hex(&key_hash(2)).is_some());

        // A whole snapshot persisted starts the journal afresh.
        third.persist(&message.encode_to_vec()).unwrap();
        assert!(!third.journal_dirty());
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_journal_yields_whole_records_and_leaves_a_torn_last_one_out() {
        let mut bytes = Vec::new();
        for record in [&b"first"[..], b"second"] {
            bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
            bytes.extend_from_slice(record);
        }
        assert_eq!(journal_entries(&bytes), [&b"first"[..], b"second"]);
        // A write cut short: a length with fewer bytes after it, or half a length.
        let mut torn = bytes.clone();
        torn.extend_from_slice(&9u32.to_le_bytes());
        torn.extend_from_slice(b"cut");
        assert_eq!(journal_entries(&torn), [&b"first"[..], b"second"]);
        torn.truncate(bytes.len() + 2);
        assert_eq!(journal_entries(&torn), [&b"first"[..], b"second"]);
        assert!(journal_entries(&[]).is_empty());
    }
}
