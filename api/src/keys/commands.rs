//! The log commands of a signing key's life: publish and retire. Their idempotency keys name the
//! key, so a node that publishes or retires again after a restart changes nothing.

use sha2::{Digest, Sha256};
use warrant_proto::log;
use warrant_token::NodeSigningKey;

/// A node acting for itself: its own id, in decimal.
pub fn node_actor(node_id: u64) -> log::Actor {
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
