//! The life of a node's signing key in the log: published before it signs anything, retired when
//! it is replaced. A retired key signs nothing new but stays in JWKS until the last token it
//! signed has expired (apply records that expiry on the key's row).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use warrant_identity::query;
use warrant_proto::{api, log};
use warrant_raft::RaftNode;
use warrant_token::NodeSigningKey;

use crate::{error::ApiError, services::Context};

fn node_actor(node_id: u64) -> log::Actor {
    log::Actor {
        kind: log::PrincipalKind::Node as i32,
        id: node_id.to_string(),
        on_behalf_of: vec![],
    }
}

/// The command that publishes `key` for `node_id`. Its idempotency key names the key, so
/// publishing again after a restart is a no-op.
pub fn publish_command(node_id: u64, key: &NodeSigningKey) -> log::Command {
    log::Command {
        idempotency_key: format!("publish-signing-key-{}", key.key_id()),
        request_digest: Sha256::digest(key.public_key()).to_vec(),
        actor: Some(node_actor(node_id)),
        assertion: None,
        credential: None,
        kind: Some(log::command::Kind::PublishSigningKey(
            log::PublishSigningKey {
                key_id: key.key_id().to_string(),
                node_id,
                algorithm: log::SigningAlgorithm::Ed25519 as i32,
                public_key: key.public_key().to_vec(),
            },
        )),
    }
}

/// The command that retires `key_id`, one of `node_id`'s keys.
pub fn retire_command(node_id: u64, key_id: &str) -> log::Command {
    log::Command {
        idempotency_key: format!("retire-signing-key-{key_id}"),
        request_digest: Sha256::digest(key_id.as_bytes()).to_vec(),
        actor: Some(node_actor(node_id)),
        assertion: None,
        credential: None,
        kind: Some(log::command::Kind::RetireSigningKey(
            log::RetireSigningKey {
                key_id: key_id.to_string(),
            },
        )),
    }
}

/// Rotates this node's key: a new key is written to the data directory, published through the
/// log, made current, and the old key retired. Tokens the old key signed keep verifying until
/// they expire; issuances racing the rotation retry with the new key.
pub async fn rotate(context: &Context) -> Result<api::RotateSigningKeyResponse, ApiError> {
    let _one_at_a_time = context.rotation.lock().await;
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
pub async fn retire_earlier_keys(node: &RaftNode, current_key_id: &str) {
    let rows = match query::signing_keys(&node.reader(), crate::http::JWKS_KEYS_MAX) {
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
