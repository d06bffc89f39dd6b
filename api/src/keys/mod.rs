//! The life of a node's signing key: published through the log before it signs anything (the
//! publish loop), rotated on request, and retired when it is replaced, or at start when a crash
//! left an earlier key unretired. A retired key signs nothing new but stays in JWKS until the
//! last token it signed has expired (apply records that expiry on the key's row). The in-memory
//! set of keys this node signs with is [`key_set::SigningKeys`]; the log commands are in
//! [`commands`].

pub mod commands;
pub mod compromise;
pub mod key_set;

use std::{sync::Arc, time::Duration};

use warrant_identity::query;
use warrant_proto::{api, log};
use warrant_raft::RaftNode;
use warrant_token::NodeSigningKey;

use crate::{
    context::{Context, derived_idempotency_key},
    error::ApiError,
};
use commands::{publish_command, retire_command};

/// Rotates this node's key: a new key is written to the data directory, published through the
/// log, made current, and the old key retired. Tokens the old key signed keep verifying until
/// they expire; issuances racing the rotation retry with the new key.
pub async fn rotate(context: &Context) -> Result<api::RotateSigningKeyResponse, ApiError> {
    let _one_at_a_time = context.rotation.lock().await;
    rotate_locked(context).await
}

/// Rotates this node's key if it still signs with `key_id`, which was marked compromised.
/// Returns the new key id, or `None` when the node had already rotated away from it (two
/// issuances that met the mark at once rotate once).
pub async fn rotate_away_from(context: &Context, key_id: &str) -> Result<Option<String>, ApiError> {
    let _one_at_a_time = context.rotation.lock().await;
    if context.signing_keys.current().key_id() != key_id {
        return Ok(None);
    }
    let rotated = rotate_locked(context).await?;
    Ok(Some(rotated.new_key_id))
}

/// [`rotate`], for a caller holding the rotation lock.
async fn rotate_locked(context: &Context) -> Result<api::RotateSigningKeyResponse, ApiError> {
    let node_id = context.node.node_id();
    let data_dir = context.data_dir.clone();
    let new = tokio::task::spawn_blocking(move || NodeSigningKey::rotate(&data_dir))
        .await
        .map_err(|e| ApiError::internal(format!("rotate signing key: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let new = Arc::new(new);
    context.commit(publish_command(node_id, &new)).await?;
    let old = context.signing_keys.install(new.clone());
    let accepted = context
        .commit(retire_command(node_id, old.key_id()))
        .await?;
    tracing::info!(
        new_key_id = new.key_id(),
        retired_key_id = old.key_id(),
        "signing key rotated"
    );
    Ok(api::RotateSigningKeyResponse {
        new_key_id: new.key_id().to_string(),
        retired_key_id: old.key_id().to_string(),
        seq: accepted.seq,
    })
}

/// Retires every published key of this node other than `current_key_id`: keys a crash left
/// between publication and retirement, or keys of a data directory whose key file was replaced.
async fn retire_earlier_keys(node: &RaftNode, current_key_id: &str) {
    let rows = match query::unretired_signing_keys(&node.reader(), crate::limits::JWKS_KEYS_MAX) {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "read signing keys to retire earlier ones");
            return;
        }
    };
    for row in rows {
        let Some(key) = row.key else { continue };
        if key.node_id != node.node_id() || key.key_id == current_key_id || row.retired {
            continue;
        }
        match node
            .propose(retire_command(node.node_id(), &key.key_id))
            .await
        {
            Ok(_) => tracing::info!(key_id = %key.key_id, "retired an earlier signing key"),
            Err(error) => {
                tracing::warn!(key_id = %key.key_id, %error, "retiring an earlier signing key failed")
            }
        }
    }
}

/// Publishes this node's public key through the log once a leader exists, then retires the
/// node's earlier keys. Retries until it succeeds or `stop` is set: a node whose key is
/// unpublished cannot issue. Returns whether the key was published (false: the node stopped).
///
/// A retry after an unknown outcome goes with the same idempotency key (it commits once). Apply
/// keeps a refusal under its key, so a retry after a refusal goes under a key of its own
/// (`…/retry-<n>`), decided afresh: at most one refusal per backoff interval is recorded.
pub async fn publish(
    node: &RaftNode,
    key: &NodeSigningKey,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let first = publish_command(node.node_id(), key);
    let mut command = first.clone();
    let mut refusals = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        if node.wait_for_leader(Duration::from_secs(5)).await.is_ok() {
            if matches!(
                query::signing_key(&node.reader(), key.key_id()),
                Ok(Some(_))
            ) {
                break;
            }
            match node.propose(command.clone()).await {
                Ok(proposal) => match proposal.outcome.result {
                    Some(log::outcome::Result::Accepted(_)) => break,
                    other => {
                        tracing::error!(outcome = ?other, "publishing the signing key was rejected");
                        refusals += 1;
                        command.idempotency_key = derived_idempotency_key(
                            &first.idempotency_key,
                            &format!("retry-{refusals}"),
                        );
                    }
                },
                Err(e) => tracing::warn!(error = %e, "publishing the signing key failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    tracing::info!(key_id = key.key_id(), "signing key published");
    retire_earlier_keys(node, key.key_id()).await;
    true
}
