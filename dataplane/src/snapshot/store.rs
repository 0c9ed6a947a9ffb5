//! The one `ArcSwap` that holds the live snapshot, plus its copy on disk.
//!
//! Updates follow prepare-then-publish: decoding and validation may fail and leave the live
//! snapshot untouched; publishing is a single infallible pointer swap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prost::Message;
use switchyard_proto::config::v1 as pb;

use super::model::{Snapshot, SnapshotError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid snapshot: {0}")]
    Invalid(#[from] SnapshotError),
    #[error("snapshot version {offered} is older than the served version {served}")]
    Stale { offered: u64, served: u64 },
    #[error("persisted snapshot is not decodable: {0}")]
    Decode(#[from] prost::DecodeError),
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
}

impl SnapshotStore {
    pub fn new(persist_path: Option<PathBuf>) -> Self {
        SnapshotStore {
            current: ArcSwapOption::empty(),
            persist_path,
        }
    }

    /// The live snapshot, or `None` before the first good one: the request path answers 503.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    pub fn version(&self) -> Option<u64> {
        self.current.load().as_ref().map(|s| s.version)
    }

    /// Decodes and validates without touching the live snapshot. Resolves provider hosts,
    /// so call it off the async executor.
    pub fn prepare(&self, message: pb::Snapshot) -> Result<Snapshot, StoreError> {
        if let Some(served) = self.version()
            && message.version < served
        {
            return Err(StoreError::Stale {
                offered: message.version,
                served,
            });
        }
        Ok(Snapshot::try_from(message)?)
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
        let tmp = path.with_extension("tmp");
        write_private(&tmp, encoded).map_err(io)?;
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
        let message = pb::Snapshot::decode(bytes.as_slice())?;
        let snapshot = self.prepare(message)?;
        let version = snapshot.version;
        self.publish(snapshot);
        Ok(Some(version))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
