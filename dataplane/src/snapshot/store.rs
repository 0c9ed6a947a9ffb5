//! The one `ArcSwap` that holds the live snapshot, plus its copy on disk.
//!
//! Updates follow prepare-then-publish: decoding may refuse a snapshot (a stale version, no
//! resources) and leave the live one untouched; records that fail validation are set aside
//! inside an otherwise good snapshot; publishing is a single infallible pointer swap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

impl SnapshotStore {
    pub fn new(persist_path: Option<PathBuf>, dns: Arc<Dns>, seal: Seal) -> Self {
        SnapshotStore {
            current: ArcSwapOption::empty(),
            persist_path,
            dns,
            seal,
        }
    }

    /// The live snapshot, or `None` before the first good one: the request path answers 503.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    pub fn version(&self) -> Option<u64> {
        self.current.load().as_ref().map(|s| s.version)
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
        std::fs::rename(&tmp, path).map_err(io)
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
        let snapshot = self.prepare(message)?;
        for record in snapshot.quarantine.records() {
            tracing::error!(%record, "persisted snapshot record set aside; what depends on it is refused");
        }
        let version = snapshot.version;
        self.publish(snapshot);
        Ok(Some(version))
    }
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
