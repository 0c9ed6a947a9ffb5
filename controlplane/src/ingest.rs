//! Usage ingest with group commit: every dataplane's batches that arrive while one is being
//! written are written together, in one transaction. A fleet's batches then cost one commit
//! (one WAL sync) and one write of each index page they share, not one each: SQLite rewrote
//! about 800 pages per 512-event batch, most of them the same leaves of the per-key index.
//!
//! Each batch is still acknowledged with its own count, only after the transaction that holds
//! it committed. If a group fails, each of its batches is written again on its own, so one
//! batch the store refuses never fails the others.

use tokio::sync::{mpsc, oneshot};

use crate::store::{Generation, Store, StoreError};

/// Events written in one transaction at most; a larger backlog is written in several.
const MAX_GROUP_EVENTS: usize = 16_384;
/// Batches waiting for the writer before senders wait for room.
const QUEUE: usize = 256;

struct Job {
    generations: Vec<Generation>,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The handle batches are recorded through; the writer task runs until every handle is gone.
#[derive(Clone)]
pub struct Ingest {
    jobs: mpsc::Sender<Job>,
}

impl Ingest {
    pub fn start(store: Store) -> Ingest {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, queue));
        Ingest { jobs }
    }

    /// Records a batch of generations (ids seen before are ignored); returns how many were new,
    /// once they are committed.
    pub async fn record(&self, generations: Vec<Generation>) -> Result<u64, StoreError> {
        if generations.is_empty() {
            return Ok(0);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { generations, reply })
            .await
            .map_err(|_| StoreError::Corrupt("usage ingest has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("usage ingest has stopped".into()))?
    }
}

async fn write(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut events = first.generations.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    events += job.generations.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<&[Generation]> = group.iter().map(|j| j.generations.as_slice()).collect();
        match store.insert_generation_groups(&batches).await {
            Ok(counts) => {
                for (job, count) in group.into_iter().zip(counts) {
                    let _ = job.reply.send(Ok(count));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(job) = group.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = group.len(), "usage group not recorded; writing its batches one by one");
                for job in group {
                    let result = store.insert_generations(&job.generations).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
