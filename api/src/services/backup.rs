//! `ClusterService.SaveSnapshot`: a backup of this node's state, streamed.
//!
//! The node writes the whole backup file first (`RaftNode::save_backup`: a checkpoint of one
//! applied index, under the data dir), so that the first message can announce the file's size
//! and SHA-256 as well as what it holds; then it streams the file in chunks of at most
//! [`SNAPSHOT_CHUNK_BYTES`] through a channel of [`SNAPSHOT_CHUNKS_AHEAD`], so a backup of any
//! size holds a few chunks in memory. The file is deleted, and the node's one backup slot
//! freed, when the stream ends or the client goes away.

use std::io::Read;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use warrant_proto::api;
use warrant_raft::{BackupError, SavedBackup};

use crate::{
    context::Context,
    error::{ApiError, Reason},
};

/// The most file bytes in one streamed message: well under every gRPC client's default
/// decoding limit (4 MiB).
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks read ahead of the client: with the chunk size, this node's memory for a save.
pub const SNAPSHOT_CHUNKS_AHEAD: usize = 2;

pub type SaveSnapshotStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::SaveSnapshotChunk, Status>> + Send>>;

type Sender = mpsc::Sender<Result<api::SaveSnapshotChunk, Status>>;

pub(super) async fn save_snapshot(
    context: &Context,
    request: Request<api::SaveSnapshotRequest>,
) -> Result<Response<SaveSnapshotStream>, Status> {
    context.admin(request.metadata()).await?;
    let saved = context.node.save_backup().await.map_err(backup_error)?;
    let (tx, rx) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
    tokio::spawn(async move {
        if tx.send(Ok(first_message(&saved))).await.is_err() {
            return;
        }
        if let Err(e) = stream_file(saved, &tx).await {
            let _ = tx.send(Err(e.into())).await;
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

fn first_message(saved: &SavedBackup) -> api::SaveSnapshotChunk {
    let summary = &saved.summary;
    api::SaveSnapshotChunk {
        summary: Some(api::SnapshotSummary {
            applied_index: summary.index,
            term: summary.term,
            last_seq: summary.last_seq,
            events: summary.events,
            state_digest_hex: hex::encode(summary.state_digest),
            merkle_root_hex: hex::encode(summary.merkle_root),
            size_bytes: saved.size,
            sha256_hex: hex::encode(saved.sha256),
        }),
        data: Vec::new(),
    }
}

/// Sends the file's bytes in order; `saved` (and so the file) goes when this returns.
async fn stream_file(saved: SavedBackup, tx: &Sender) -> Result<(), ApiError> {
    let mut file = std::fs::File::open(saved.path())
        .map_err(|e| ApiError::internal(format!("open the saved backup: {e}")))?;
    loop {
        let (chunk, returned) = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
            let read = (&mut file)
                .take(SNAPSHOT_CHUNK_BYTES as u64)
                .read_to_end(&mut chunk);
            (read.map(|_| chunk), file)
        })
        .await
        .map_err(|e| ApiError::internal(format!("backup read task: {e}")))?;
        file = returned;
        let chunk = chunk.map_err(|e| ApiError::internal(format!("read the saved backup: {e}")))?;
        if chunk.is_empty() {
            return Ok(());
        }
        let message = api::SaveSnapshotChunk {
            summary: None,
            data: chunk,
        };
        if tx.send(Ok(message)).await.is_err() {
            // The client went away.
            return Ok(());
        }
    }
}

fn backup_error(error: BackupError) -> ApiError {
    match error {
        BackupError::Busy => ApiError::new(
            Code::ResourceExhausted,
            Reason::SnapshotSaveBusy,
            "this node is already saving a backup, and saves one at a time; retry when it has \
             finished, or save from another node",
        ),
        BackupError::NothingApplied => ApiError::new(
            Code::FailedPrecondition,
            Reason::NothingToBackUp,
            "this node has applied nothing yet; save from a member of an initialised cluster",
        ),
        other => ApiError::internal(format!("save a backup: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_reason_and_status() {
        let busy = backup_error(BackupError::Busy);
        assert_eq!(
            (busy.code, busy.reason),
            (Code::ResourceExhausted, Reason::SnapshotSaveBusy)
        );
        let empty = backup_error(BackupError::NothingApplied);
        assert_eq!(
            (empty.code, empty.reason),
            (Code::FailedPrecondition, Reason::NothingToBackUp)
        );
    }
}
