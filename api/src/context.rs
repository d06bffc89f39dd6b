//! The context every service shares: the node, the authenticator, the signing keys and the
//! cluster's settings, with the steps each RPC is built from (authenticate the caller, pass a
//! read barrier, build and commit a command). A leaf below the services: it imports nothing that
//! imports it back.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use warrant_proto::log;
use warrant_raft::{RaftNode, ReadConsistency, StateReader};

use crate::{
    audit::CheckpointSigner,
    auth::{AuthSource, Authenticator, Caller},
    digest_key::DigestKey,
    error::{ApiError, Reason},
    federation::Federation,
    keys::key_set::SigningKeys,
    receipts::ReceiptQueue,
    validate,
};

/// What every service shares.
pub struct Context {
    pub node: RaftNode,
    pub auth: Authenticator,
    pub signing_keys: SigningKeys,
    /// The `iss` of every token this cluster signs.
    pub issuer: String,
    pub token_ttl_default_s: u32,
    pub session_ttl_default_s: u32,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub clock_leeway_s: u64,
    pub federation: Arc<Federation>,
    /// Whether humans may log in with a local password (development clusters).
    pub allow_local_passwords: bool,
    /// Where the node keeps its signing key, for rotation.
    pub data_dir: std::path::PathBuf,
    /// One key rotation at a time on this node.
    pub rotation: tokio::sync::Mutex<()>,
    /// Hides client secrets in request digests; the same on every member.
    pub digest_key: DigestKey,
    /// ASYNC receipts waiting for commit (`crate::receipts`).
    pub receipts: ReceiptQueue,
    /// This node's signed checkpoints of the audit tree, and the verified tree proofs are
    /// checked against (`crate::audit`).
    pub checkpoints: Arc<CheckpointSigner>,
}

impl Context {
    /// Authenticates the caller against this node's applied state.
    ///
    /// A well-formed credential naming a principal this node does not know may belong to one
    /// registered a moment ago through another node: the authenticator then catches up to the
    /// leader's read index and looks once more, so a client may register on one node and
    /// authenticate on another right away. Nothing else triggers a catch-up.
    pub async fn caller(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        self.auth
            .authenticate(metadata, &NodeSource(&self.node))
            .await
    }

    /// Authenticates an RFC 7523 client assertion passed in a request body (RFC 8693's
    /// `actor_token`), with the same catch-up as [`Context::caller`].
    pub async fn assertion_caller(&self, assertion: &str) -> Result<Caller, ApiError> {
        self.auth
            .authenticate_assertion(assertion, &NodeSource(&self.node))
            .await
    }

    /// Runs `lookup` against this node's applied state. What it looks for may have been
    /// committed through another node a moment ago, so when it fails in a way `retry_if` accepts,
    /// the node catches up to the leader's read index and, if that brought anything new, looks
    /// once more. Apply re-checks whatever the lookup found, so this only spares false refusals.
    pub async fn resolve<T>(
        &self,
        lookup: impl Fn(&StateReader) -> Result<T, ApiError>,
        retry_if: impl Fn(&ApiError) -> bool,
    ) -> Result<T, ApiError> {
        let before = self.node.applied();
        match lookup(&self.node.reader()) {
            Err(e) if retry_if(&e) => {
                match self.node.read_barrier(ReadConsistency::Linearizable).await {
                    Ok(after) if after.seq > before.seq => lookup(&self.node.reader()),
                    _ => Err(e),
                }
            }
            result => result,
        }
    }

    pub async fn admin(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        let caller = self.caller(metadata).await?;
        caller.require_admin()?;
        Ok(caller)
    }

    /// A caller who may run the cluster: membership, keys, compaction.
    pub async fn operations(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        let caller = self.caller(metadata).await?;
        caller.require_operations()?;
        Ok(caller)
    }

    /// A caller who may read the audit trail, digests and projections.
    pub async fn auditor(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        let caller = self.caller(metadata).await?;
        caller.require_auditor()?;
        Ok(caller)
    }

    /// Passes the read barrier for `consistency` and returns a reader over the state.
    pub async fn read(&self, consistency: ReadConsistency) -> Result<StateReader, ApiError> {
        self.node.read_barrier(consistency).await?;
        Ok(self.node.reader())
    }

    /// Proposes `command` and returns its acceptance, or maps its rejection to an error. Its
    /// fields are checked first, by the rules apply checks again, so a malformed request is
    /// refused here, with the field's reason, before anything reaches the log. A command that
    /// may be retried names its idempotency key in the error (see [`retry_with_key`]).
    pub async fn commit(&self, command: log::Command) -> Result<log::Accepted, ApiError> {
        if let Some(kind) = &command.kind {
            validate::command_fields(kind, crate::auth::now_unix_s())?;
        }
        let key = command.idempotency_key.clone();
        let proposal = self
            .node
            .propose(command)
            .await
            .map_err(|e| retry_with_key(ApiError::from(e), &key))?;
        match proposal.outcome.result {
            Some(log::outcome::Result::Accepted(accepted)) => Ok(accepted),
            Some(log::outcome::Result::Rejected(rejected)) => {
                Err(ApiError::from_rejected(rejected))
            }
            None => Err(ApiError::internal("apply returned an empty outcome")),
        }
    }
}

/// A command that failed before its outcome was known, or was never proposed, may be sent
/// again: the error names the idempotency key it went with (metadata `idempotency_key`), which
/// the node chose when the client sent none. Retried with it, a command that did commit
/// returns its first outcome instead of committing twice.
pub fn retry_with_key(error: ApiError, idempotency_key: &str) -> ApiError {
    match error.reason {
        Reason::OutcomeUnknown | Reason::NotLeader | Reason::Overloaded | Reason::NodeStopped => {
            error.with("idempotency_key", idempotency_key)
        }
        _ => error,
    }
}

/// The idempotency key of a new attempt at a command that apply refused under `key`. A refusal
/// is stored under its key (a retry replays it), so an attempt that should be decided afresh
/// (an issuance with a new signing key, another publication of a node's key) needs a key of
/// its own, derived so that every node derives the same one: `key/suffix`, or, when that would
/// be longer than allowed, the SHA-256 of `key` in hex, then `/suffix`.
pub fn derived_idempotency_key(key: &str, suffix: &str) -> String {
    let derived = format!("{key}/{suffix}");
    if derived.len() <= warrant_identity::limits::IDEMPOTENCY_KEY_LEN_MAX {
        return derived;
    }
    format!("{}/{suffix}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// This node's state as the authenticator reads it.
struct NodeSource<'a>(&'a RaftNode);

impl AuthSource for NodeSource<'_> {
    type State = StateReader;

    fn state(&self) -> StateReader {
        self.0.reader()
    }

    async fn catch_up(&self) -> bool {
        let before = self.0.applied();
        matches!(
            self.0.read_barrier(ReadConsistency::Linearizable).await,
            Ok(after) if after.seq > before.seq
        )
    }
}

/// Builds a command. The request digest covers the RPC name and the request as the client sent
/// it, minus its idempotency key, so a retry matches and a changed request does not.
pub fn command(
    caller: &Caller,
    idempotency_key: &str,
    method: &str,
    request_without_key: &impl Message,
    kind: log::command::Kind,
) -> log::Command {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0u8]);
    hasher.update(request_without_key.encode_to_vec());
    let idempotency_key = if idempotency_key.is_empty() {
        format!("auto-{}", uuid::Uuid::new_v4())
    } else {
        idempotency_key.to_string()
    };
    log::Command {
        idempotency_key,
        request_digest: hasher.finalize().to_vec(),
        actor: Some(caller.actor()),
        assertion: caller.assertion(),
        credential: caller.credential(),
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn derived_keys_are_valid_and_the_same_everywhere() {
        let kid = "k".repeat(43);
        let short = derived_idempotency_key("client-key", &format!("rekey-{kid}"));
        assert_eq!(short, format!("client-key/rekey-{kid}"));
        let long_key = "x".repeat(warrant_identity::limits::IDEMPOTENCY_KEY_LEN_MAX);
        let long = derived_idempotency_key(&long_key, &format!("rekey-{kid}"));
        assert_eq!(
            long,
            derived_idempotency_key(&long_key, &format!("rekey-{kid}"))
        );
        assert_ne!(long, short);
        for key in [short, long] {
            warrant_identity::limits::validate_idempotency_key("k", &key).expect("valid");
        }
    }

    #[test]
    fn a_retryable_failure_names_the_key_to_retry_with() {
        for reason in [
            Reason::OutcomeUnknown,
            Reason::NotLeader,
            Reason::Overloaded,
            Reason::NodeStopped,
        ] {
            let error = retry_with_key(ApiError::new(Code::Unavailable, reason, "x"), "auto-1");
            assert_eq!(
                error.metadata,
                vec![("idempotency_key", "auto-1".to_string())],
                "{reason:?}"
            );
        }
        // A refusal is final: retrying the same command cannot change it.
        let refused = retry_with_key(
            ApiError::new(Code::NotFound, Reason::AgentNotFound, "no agent"),
            "auto-1",
        );
        assert!(refused.metadata.is_empty());
    }
}
