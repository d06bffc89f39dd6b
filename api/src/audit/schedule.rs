//! The signer's task: verify the tree at start (from the record's frontier, a bounded step at
//! a time), then sign every CHECKPOINT_INTERVAL when the tree grew. It stops with the server.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tonic::Code;

use super::{rules::SignerState, signer::CheckpointSigner};
use crate::limits::CHECKPOINT_INTERVAL;

/// How long a signer whose tree is behind its record (a rollback) or unreadable waits before
/// looking again: the node catches up from the leader meanwhile.
pub const CATCH_UP_RETRY: Duration = Duration::from_secs(1);

/// Runs until `stop`.
pub async fn run(signer: Arc<CheckpointSigner>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !catch_up(&signer, &mut stop).await {
            return;
        }
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if signer.state() == SignerState::Ready && signer.grew() {
            match signer.sign_fresh().await {
                Ok(checkpoint) => {
                    tracing::debug!(tree_size = checkpoint.tree_size, "scheduled checkpoint")
                }
                // No leader or quorum yet: the next tick tries again.
                Err(e) if e.code == Code::Unavailable => {
                    tracing::debug!(error = %e, "scheduled checkpoint postponed")
                }
                Err(e) => tracing::warn!(error = %e, "scheduled checkpoint failed"),
            }
        }
    }
}

/// Verifies until the signer is ready, corrupt (nothing more to do), or `stop`; a rollback
/// waits for the node to catch up. Returns false on stop.
async fn catch_up(signer: &CheckpointSigner, stop: &mut watch::Receiver<bool>) -> bool {
    let mut reported = false;
    loop {
        match signer.state() {
            SignerState::Ready | SignerState::Corrupt { .. } => return true,
            SignerState::Verifying | SignerState::Rollback { .. } => {}
        }
        match signer.step().await {
            Ok(false) => continue,
            Ok(true) => {
                if signer.state() == SignerState::Ready {
                    tracing::info!(
                        "audit tree verified against the event records; signing checkpoints"
                    );
                }
                continue;
            }
            Err(e) => {
                if !reported && e.code != Code::DataLoss {
                    tracing::warn!(error = %e, "audit tree not verified yet; retrying");
                    reported = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CATCH_UP_RETRY) => {}
            _ = stop.wait_for(|stop| *stop) => return false,
        }
    }
}
