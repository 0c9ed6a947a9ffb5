//! Follows the control plane's config stream on a background task, with backoff: acknowledges
//! or rejects every snapshot version it is offered (whole, or as a key delta over the served
//! one), and swaps in every fleet health view. A control plane too old to stream health (no
//! `Subscribe`) is followed with `Watch`.

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message;
use std::time::Duration;

use switchyard_proto::config::v1 as pb;
use switchyard_proto::config::v1::config_service_client::ConfigServiceClient;

use crate::health::Health;
use crate::link::ControlPlaneAuth;
use switchyard_proto::config::v1::config_update::Update;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::Channel;

use super::store::{SnapshotStore, StoreError};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Largest snapshot accepted (about 1M keys take 100 MiB encoded).
const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024 * 1024;
/// Key deltas journalled beside the persisted snapshot before this dataplane asks for the whole
/// snapshot again (by reconnecting without its version), which starts a new journal.
const MAX_JOURNAL: usize = 4096;

pub struct Watcher {
    pub store: Arc<SnapshotStore>,
    pub control_plane: String,
    pub auth: ControlPlaneAuth,
    pub dataplane_id: String,
    /// Where the fleet's health views go.
    pub health: Arc<Health>,
}

impl Watcher {
    /// Runs until `shutdown` flips to true. Never returns an error: a lost control plane only
    /// means the last good snapshot keeps serving.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (disk, writes) = mpsc::unbounded_channel();
        tokio::spawn(write_to_disk(self.store.clone(), writes));
        let mut backoff = MIN_BACKOFF;
        let mut want_whole = false;
        loop {
            let mut received = false;
            let outcome = tokio::select! {
                outcome = self.follow(&disk, &mut received, &mut want_whole) => outcome,
                _ = shutdown.changed() => return,
            };
            if received {
                // The link worked until now: reconnect promptly.
                backoff = MIN_BACKOFF;
            }
            match outcome {
                Ok(()) => tracing::warn!("control plane closed the snapshot stream; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "snapshot stream unavailable");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Follows one stream until it ends. A key delta that cannot be applied, or a journal that
    /// is full, ends it with `want_whole` set: the next stream starts from the whole snapshot.
    async fn follow(
        &self,
        disk: &Disk,
        received: &mut bool,
        want_whole: &mut bool,
    ) -> Result<(), tonic::Status> {
        let channel = self
            .auth
            .endpoint(&self.control_plane)
            .map_err(tonic::Status::invalid_argument)?
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        // Snapshots of millions of keys are far beyond tonic's default 4 MiB message limit.
        let mut client = ConfigServiceClient::with_interceptor(channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_SNAPSHOT_BYTES);
        let (known_epoch, known_version) = match self.store.served() {
            Some(served) if !*want_whole => served,
            _ => (String::new(), 0),
        };
        *want_whole = false;
        let request = pb::WatchRequest {
            dataplane_id: self.dataplane_id.clone(),
            known_version,
            known_epoch,
        };
        match client.subscribe(request.clone()).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                while let Some(update) = stream.message().await? {
                    *received = true;
                    match update.update {
                        Some(Update::Snapshot(message)) => {
                            self.apply(&channel, disk, *message).await;
                        }
                        Some(Update::KeyDelta(delta)) => {
                            let follow_on = self.apply_delta(&channel, disk, delta).await;
                            if !follow_on {
                                *want_whole = true;
                                return Ok(());
                            }
                        }
                        Some(Update::Health(view)) => self.health.apply_fleet(&view),
                        None => {}
                    }
                }
                Ok(())
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!("control plane streams no health; following snapshots only");
                let mut stream = client.watch(request).await?.into_inner();
                while let Some(message) = stream.message().await? {
                    *received = true;
                    self.apply(&channel, disk, message).await;
                }
                Ok(())
            }
            Err(status) => Err(status),
        }
    }

    async fn apply(&self, channel: &Channel, disk: &Disk, message: pb::Snapshot) {
        let version = message.version;
        if self.store.serves(&message) {
            // The version served, whole (asked for after a full or broken journal): kept on
            // disk in place of the last whole one and its journal. Waited for, so that the next
            // delta finds the journal fresh rather than asking again.
            if self.store.journal_dirty()
                && let Ok(encoded) =
                    tokio::task::spawn_blocking(move || message.encode_to_vec()).await
            {
                let (written, done) = oneshot::channel();
                if disk.send(DiskWrite::Whole(encoded, Some(written))).is_ok() {
                    let _ = done.await;
                }
            }
            return;
        }
        let store = self.store.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            // Encoded before `prepare` consumes the message; it is what gets persisted.
            let encoded = message.encode_to_vec();
            let snapshot = store.prepare(message)?;
            Ok::<_, StoreError>((snapshot, encoded))
        })
        .await;
        let mut quarantined = Vec::new();
        let verdict = match prepared {
            Ok(Ok((snapshot, encoded))) => {
                for record in snapshot.quarantine.records() {
                    tracing::error!(version, %record, "snapshot record set aside; what depends on it is refused");
                    quarantined.push(pb::QuarantinedRecord {
                        kind: record.kind.label().to_owned(),
                        id: record.id.clone(),
                        reason: record.reason.clone(),
                    });
                }
                self.store.publish(snapshot);
                tracing::info!(
                    version,
                    quarantined = quarantined.len(),
                    "snapshot published"
                );
                let _ = disk.send(DiskWrite::Whole(encoded, None));
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("snapshot preparation failed: {e}")),
        };
        if let Err(reason) = &verdict {
            tracing::error!(version, %reason, "snapshot rejected; keeping the last good one");
        }
        let ack = pb::AckRequest {
            dataplane_id: self.dataplane_id.clone(),
            version,
            accepted: verdict.is_ok(),
            reason: verdict.err().unwrap_or_default(),
            quarantined,
        };
        self.ack(channel, ack).await;
    }

    /// Applies a key delta over the served snapshot, journals it and acknowledges it. `false`
    /// when this stream should be left for one that starts whole: the delta does not follow
    /// the served version, or the journal is full.
    async fn apply_delta(&self, channel: &Channel, disk: &Disk, delta: pb::KeyDelta) -> bool {
        let version = delta.version;
        if let Some((epoch, served)) = self.store.served()
            && epoch == delta.epoch
            && served >= version
        {
            return true;
        }
        let store = self.store.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let encoded = delta.encode_to_vec();
            let keys: HashSet<String> = delta.upserted.iter().map(|k| k.hash.clone()).collect();
            let snapshot = store.prepare_delta(delta)?;
            Ok::<_, StoreError>((snapshot, encoded, keys))
        })
        .await;
        let (snapshot, encoded, keys) = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(e)) => {
                // Not acknowledged as rejected: the whole snapshot follows at once.
                tracing::warn!(version, error = %e, "key delta not applied; asking for the whole snapshot");
                return false;
            }
            Err(e) => {
                tracing::error!(version, error = %e, "key delta preparation failed");
                return false;
            }
        };
        // The ack lists every record the served version sets aside, as for a whole snapshot;
        // the log names only this delta's.
        let quarantined: Vec<pb::QuarantinedRecord> = snapshot
            .quarantine
            .records()
            .iter()
            .map(|record| {
                if keys.contains(&record.id) {
                    tracing::error!(version, %record, "snapshot record set aside; what depends on it is refused");
                }
                pb::QuarantinedRecord {
                    kind: record.kind.label().to_owned(),
                    id: record.id.clone(),
                    reason: record.reason.clone(),
                }
            })
            .collect();
        self.store.publish(snapshot);
        tracing::debug!(version, keys = keys.len(), "key delta published");
        let _ = disk.send(DiskWrite::Delta(encoded));
        self.ack(
            channel,
            pb::AckRequest {
                dataplane_id: self.dataplane_id.clone(),
                version,
                accepted: true,
                reason: String::new(),
                quarantined,
            },
        )
        .await;
        // A journal that is full, or broken (a delta not on disk would be missing at a cold
        // start): the whole snapshot is asked for, to be persisted in its place.
        self.store.journal_len() < MAX_JOURNAL && !self.store.journal_broken()
    }

    async fn ack(&self, channel: &Channel, ack: pb::AckRequest) {
        let version = ack.version;
        if let Err(e) = ConfigServiceClient::with_interceptor(channel.clone(), self.auth.clone())
            .ack(ack)
            .await
        {
            tracing::warn!(version, error = %e, "could not acknowledge snapshot");
        }
    }
}

/// What goes to disk, in the order applied: a whole snapshot (encoded; told when written), or a
/// key delta to append to the journal.
enum DiskWrite {
    Whole(Vec<u8>, Option<oneshot::Sender<()>>),
    Delta(Vec<u8>),
}

type Disk = mpsc::UnboundedSender<DiskWrite>;

/// Writes snapshots and journal entries in order, off the stream: a million-key snapshot takes
/// a second to seal and sync, and the deltas after it are served meanwhile. Writes queued before
/// a newer whole snapshot are skipped.
async fn write_to_disk(store: Arc<SnapshotStore>, mut writes: mpsc::UnboundedReceiver<DiskWrite>) {
    while let Some(first) = writes.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = writes.try_recv() {
            batch.push(next);
        }
        if let Some(last_whole) = batch
            .iter()
            .rposition(|w| matches!(w, DiskWrite::Whole(..)))
        {
            batch.drain(..last_whole);
        }
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            for write in batch {
                match write {
                    DiskWrite::Whole(encoded, written) => {
                        if let Err(e) = store.persist(&encoded) {
                            tracing::warn!(error = %e, "could not persist snapshot");
                        }
                        if let Some(written) = written {
                            let _ = written.send(());
                        }
                    }
                    DiskWrite::Delta(encoded) => {
                        if let Err(e) = store.journal(&encoded) {
                            tracing::warn!(error = %e, "could not journal key delta");
                        }
                    }
                }
            }
        })
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "snapshot writer failed");
        }
    }
}
