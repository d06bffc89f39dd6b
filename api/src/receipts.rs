//! The ASYNC receipt queue: receipts decided on this node, replied at once and committed after
//! the reply, in batches (`RecordAccessDecisions`, proposed as this node).
//!
//! **Never drops.** The queue is bounded ([`RECEIPT_QUEUE_MAX`]). An ASYNC Authorize reserves
//! its slot before it decides ([`ReceiptQueue::reserve`]): when the queue is full it waits up to
//! [`RECEIPT_QUEUE_WAIT_MAX`] for room, then is refused (`RECEIPT_QUEUE_FULL`) with nothing
//! decided, so no decision is ever replied without a slot for its receipt. The drain task
//! ([`ReceiptDrain::run`]) retries each batch with the same idempotency key until it commits: a
//! retry after an unknown outcome commits once. What a crash loses is what is queued and not yet
//! committed, at most [`RECEIPT_QUEUE_MAX`] receipts; a stopping node commits what is queued for
//! at most [`RECEIPT_DRAIN_ON_STOP_MAX`] and logs how many it left.

use std::{future::Future, time::Duration};

use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tonic::Code;
use warrant_proto::log;
use warrant_raft::RaftNode;

use crate::{
    error::{ApiError, Reason},
    keys::commands::node_actor,
    limits::{
        RECEIPT_BATCH_LINGER, RECEIPT_DRAIN_ON_STOP_MAX, RECEIPT_QUEUE_MAX, RECEIPT_QUEUE_WAIT_MAX,
        RECEIPT_RETRY_BACKOFF_MAX, RECEIPT_RETRY_BACKOFF_MIN, RECEIPTS_PER_RECORD_MAX,
        RECEIPTS_RECORD_BYTES_MAX,
    },
};

/// Where the drain commits its batches: the Raft node (a fake in tests).
pub trait Recorder: Sync {
    /// Proposes `command` and returns its outcome, or why none is known.
    fn record(
        &self,
        command: log::Command,
    ) -> impl Future<Output = Result<log::Outcome, String>> + Send;
}

impl Recorder for RaftNode {
    async fn record(&self, command: log::Command) -> Result<log::Outcome, String> {
        self.propose(command)
            .await
            .map(|proposal| proposal.outcome)
            .map_err(|e| e.to_string())
    }
}

/// The sending side, shared by every ASYNC Authorize on this node.
pub struct ReceiptQueue {
    sender: mpsc::Sender<log::AccessDecided>,
    wait_max: Duration,
}

/// Room for one receipt, reserved before the decision is made.
pub struct ReceiptSlot(mpsc::OwnedPermit<log::AccessDecided>);

impl ReceiptSlot {
    /// Queues `receipt` in the reserved room: never waits, never fails.
    pub fn push(self, receipt: log::AccessDecided) {
        self.0.send(receipt);
    }
}

/// The queue with this node's bounds ([`RECEIPT_QUEUE_MAX`], [`RECEIPT_QUEUE_WAIT_MAX`]).
pub fn queue() -> (ReceiptQueue, ReceiptDrain) {
    queue_with(RECEIPT_QUEUE_MAX, RECEIPT_QUEUE_WAIT_MAX)
}

/// A queue of `capacity` receipts whose callers wait up to `wait_max` for room.
pub fn queue_with(capacity: usize, wait_max: Duration) -> (ReceiptQueue, ReceiptDrain) {
    let (sender, receiver) = mpsc::channel(capacity);
    (
        ReceiptQueue { sender, wait_max },
        ReceiptDrain {
            receiver,
            carry: None,
            pending: Vec::new(),
        },
    )
}

impl ReceiptQueue {
    /// Reserves room for one receipt, waiting up to the queue's bound when it is full.
    pub async fn reserve(&self) -> Result<ReceiptSlot, ApiError> {
        match tokio::time::timeout(self.wait_max, self.sender.clone().reserve_owned()).await {
            Ok(Ok(permit)) => Ok(ReceiptSlot(permit)),
            Ok(Err(_closed)) => Err(ApiError::new(
                Code::Unavailable,
                Reason::NodeStopped,
                "this node is stopping and takes no more ASYNC receipts: retry on another node",
            )),
            Err(_elapsed) => Err(ApiError::new(
                Code::ResourceExhausted,
                Reason::ReceiptQueueFull,
                format!(
                    "{} ASYNC receipts are waiting for commit on this node and none left in {} \
                     ms; nothing was decided: retry with backoff, on another node, or with \
                     audit SYNC",
                    self.sender.max_capacity(),
                    self.wait_max.as_millis()
                ),
            )),
        }
    }
}

/// The receiving side, owned by the drain task.
pub struct ReceiptDrain {
    receiver: mpsc::Receiver<log::AccessDecided>,
    /// A receipt taken from the queue that did not fit the last batch: it starts the next.
    carry: Option<log::AccessDecided>,
    /// The batch being committed, kept until it is, so a stop in the middle finishes it.
    pending: Vec<log::AccessDecided>,
}

impl ReceiptDrain {
    /// Commits receipts as `node_id` until `stop` is set; then takes no more, commits what is
    /// queued for at most [`RECEIPT_DRAIN_ON_STOP_MAX`], and logs how many were left.
    pub async fn run(
        mut self,
        recorder: impl Recorder,
        node_id: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        tokio::select! {
            () = self.drain(&recorder, node_id) => return,
            _ = stop.wait_for(|stop| *stop) => {}
        }
        let left = self
            .finish(&recorder, node_id, RECEIPT_DRAIN_ON_STOP_MAX)
            .await;
        if left == 0 {
            tracing::info!("every queued ASYNC receipt was committed before stopping");
        } else {
            tracing::error!(
                left,
                "stopping with ASYNC receipts queued and not committed: they are lost"
            );
        }
    }

    /// Closes the queue, commits what it holds within `bound`, and returns how many receipts
    /// are left uncommitted.
    pub async fn finish(
        &mut self,
        recorder: &impl Recorder,
        node_id: u64,
        bound: Duration,
    ) -> usize {
        self.receiver.close();
        let _ = tokio::time::timeout(bound, self.drain(recorder, node_id)).await;
        self.pending.len() + usize::from(self.carry.is_some()) + self.receiver.len()
    }

    /// Commits batch after batch until the queue is closed and empty.
    async fn drain(&mut self, recorder: &impl Recorder, node_id: u64) {
        loop {
            if self.pending.is_empty() {
                match self.next_batch().await {
                    Some(batch) => self.pending = batch,
                    None => return,
                }
            }
            commit_until_done(recorder, record_command(node_id, &self.pending)).await;
            self.pending.clear();
        }
    }

    /// Waits for one receipt, then takes what is already queued behind it, up to
    /// [`RECEIPTS_PER_RECORD_MAX`] receipts and [`RECEIPTS_RECORD_BYTES_MAX`] bytes. `None`
    /// when the queue is closed and empty.
    async fn next_batch(&mut self) -> Option<Vec<log::AccessDecided>> {
        if self.carry.is_none() {
            self.carry = Some(self.receiver.recv().await?);
        }
        // A short wait lets the receipts decided meanwhile share the entry: each entry costs
        // every node a replication round, an fsync and an apply, whatever it holds. Not when
        // the batch is already full, nor when stopping. The first receipt waits in `carry`, so
        // a stop that cancels this wait loses nothing.
        if self.receiver.len() + 1 < RECEIPTS_PER_RECORD_MAX && !self.receiver.is_closed() {
            tokio::time::sleep(RECEIPT_BATCH_LINGER).await;
        }
        let first = self.carry.take()?;
        let mut bytes = first.encoded_len();
        let mut batch = vec![first];
        while batch.len() < RECEIPTS_PER_RECORD_MAX {
            let Ok(next) = self.receiver.try_recv() else {
                break;
            };
            let next_bytes = next.encoded_len();
            if RECEIPTS_RECORD_BYTES_MAX < bytes + next_bytes {
                self.carry = Some(next);
                break;
            }
            bytes += next_bytes;
            batch.push(next);
        }
        Some(batch)
    }
}

/// The command that records `batch` as `node_id`. Its idempotency key names the first receipt
/// (decision ids are UUIDv7s this node chose, never reused), so every retry is the same command.
pub fn record_command(node_id: u64, batch: &[log::AccessDecided]) -> log::Command {
    let record = log::RecordAccessDecisions {
        decisions: batch.to_vec(),
    };
    let first = batch.first().map_or("", |it| it.decision_id.as_str());
    log::Command {
        idempotency_key: format!("receipts-{first}"),
        request_digest: Sha256::digest(record.encode_to_vec()).to_vec(),
        actor: Some(node_actor(node_id)),
        assertion: None,
        credential: None,
        kind: Some(log::command::Kind::RecordAccessDecisions(record)),
    }
}

/// Proposes `command` until it is accepted, backing off between attempts. Always with the same
/// idempotency key: after an unknown outcome the retry returns the first outcome. A refusal is
/// a bug (apply never refuses a node's receipts, and the edge checked every receipt's fields):
/// it is logged and retried, so the queue fills and pushes back rather than losing receipts.
async fn commit_until_done(recorder: &impl Recorder, command: log::Command) {
    let mut backoff = RECEIPT_RETRY_BACKOFF_MIN;
    loop {
        match recorder.record(command.clone()).await {
            Ok(log::Outcome {
                result: Some(log::outcome::Result::Accepted(_)),
            }) => return,
            Ok(refused) => tracing::error!(
                idempotency_key = %command.idempotency_key,
                outcome = ?refused,
                "recording ASYNC receipts was refused; retrying"
            ),
            Err(error) => tracing::warn!(
                idempotency_key = %command.idempotency_key,
                %error,
                "recording ASYNC receipts failed; retrying with the same idempotency key"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECEIPT_RETRY_BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests;
