//! The context every service shares: the node, the authenticator, the signing keys and the
//! cluster's settings, with the steps each RPC is built from (authenticate the caller, pass a
//! read barrier, build and commit a command). A leaf below the services: it imports nothing that
//! imports it back.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Code, metadata::MetadataMap};
use warrant_identity::{StateError, StateRead, audit::history, query};
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
    storage::storage,
    validate::{self, AsOfPoint, ReadRequest},
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
    /// The slots `Watch` and `Export` streams hold while they run: `limits::WATCHERS_MAX` per
    /// node, shared by both.
    pub audit_streams: Arc<tokio::sync::Semaphore>,
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
        #[cfg(feature = "chaos")]
        let consistency = crate::chaos::read_consistency(consistency);
        self.node.read_barrier(consistency).await?;
        Ok(self.node.reader())
    }

    /// Passes the read barrier of a Get or List and returns what it reads: the applied state,
    /// or, with `as_of`, the state as it was at that point. The point is resolved after the
    /// barrier, against what this node has applied: a seq past it, or a time later than both
    /// this node's clock and its last applied event, is OUT_OF_RANGE `AS_OF_AHEAD`, never a
    /// guess. A time becomes the last seq stamped at or before it (`history::seq_at_time`).
    pub async fn read_view(&self, read: ReadRequest) -> Result<ReadView, ApiError> {
        let reader = self.read(read.consistency).await?;
        let Some(point) = read.as_of else {
            return Ok(ReadView::live(reader));
        };
        let applied_seq = query::applied_seq(&reader).map_err(storage)?;
        let last_event_unix_ms = event_time_unix_ms(&reader, applied_seq).map_err(storage)?;
        let resolved = resolve_as_of(
            point,
            applied_seq,
            last_event_unix_ms.unwrap_or(0),
            now_unix_ms(),
            |unix_ms| history::seq_at_time(&reader, unix_ms),
        )?;
        Ok(ReadView {
            reader,
            as_of: Some(resolved),
        })
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

/// What a Get or List reads: this node's applied state, or the state as of a past seq
/// (`history::AsOf` over the same reader: versions at or below the applied seq never change, so
/// the live reader answers as-of reads consistently). Every read helper takes it as a
/// `&dyn StateRead`, so each handler reads the same way with or without `as_of`.
pub struct ReadView {
    reader: StateReader,
    as_of: Option<ResolvedAsOf>,
}

/// An as-of point resolved against what the node applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedAsOf {
    /// The state after the event at this seq.
    pub seq: u64,
    /// The time the client asked about, when it named a time rather than a seq.
    pub unix_ms: Option<u64>,
}

impl ReadView {
    /// The applied state, as the barrier left it.
    pub fn live(reader: StateReader) -> Self {
        ReadView {
            reader,
            as_of: None,
        }
    }

    /// The point this view answers at, when it is not the applied state.
    pub fn as_of(&self) -> Option<ResolvedAsOf> {
        self.as_of
    }

    /// The reader below, as applied now: for rows that keep no versions and are read as they
    /// are (the raw event records, the tree), never for projections.
    pub fn live_reader(&self) -> &StateReader {
        &self.reader
    }

    /// The seq this view answers at: the as-of seq, or the applied seq. What a reply's
    /// `applied_seq` names.
    pub fn seq(&self) -> Result<u64, ApiError> {
        match self.as_of {
            Some(as_of) => Ok(as_of.seq),
            None => query::applied_seq(&self.reader).map_err(storage),
        }
    }
}

impl StateRead for ReadView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.as_of {
            None => self.reader.get(key),
            Some(as_of) => history::AsOf::new(&self.reader, as_of.seq).get(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        match self.as_of {
            None => self.reader.scan(prefix, start, limit),
            Some(as_of) => history::AsOf::new(&self.reader, as_of.seq).scan(prefix, start, limit),
        }
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        match self.as_of {
            None => self.reader.last_before(prefix, end),
            Some(as_of) => history::AsOf::new(&self.reader, as_of.seq).last_before(prefix, end),
        }
    }
}

/// Resolves an as-of point against a node that applied up to `applied_seq`, whose last event
/// is stamped `last_event_unix_ms`, at wall-clock `now_unix_ms`. A seq past the applied one is
/// ahead. A time is ahead only when it is later than both the node's clock and its last event:
/// stamps never go down, so every event stamped at or before an earlier time is already here
/// (for a time between the last event and the clock, the barrier the client chose decides how
/// current "here" is, as for any read).
pub fn resolve_as_of(
    point: AsOfPoint,
    applied_seq: u64,
    last_event_unix_ms: u64,
    now_unix_ms: u64,
    seq_at_time: impl FnOnce(u64) -> Result<u64, StateError>,
) -> Result<ResolvedAsOf, ApiError> {
    match point {
        AsOfPoint::Seq(seq) if applied_seq < seq => Err(ApiError::new(
            Code::OutOfRange,
            Reason::AsOfAhead,
            format!(
                "read.as_of.seq {seq} is past this node's applied seq {applied_seq}; allowed: 0 \
                 to {applied_seq}, or raise the read barrier so the node catches up first"
            ),
        )
        .with("applied_seq", applied_seq.to_string())),
        AsOfPoint::Seq(seq) => Ok(ResolvedAsOf { seq, unix_ms: None }),
        AsOfPoint::Time { unix_ms } if now_unix_ms.max(last_event_unix_ms) < unix_ms => {
            Err(ApiError::new(
                Code::OutOfRange,
                Reason::AsOfAhead,
                format!(
                    "read.as_of.time_unix_ms {unix_ms} is later than this node's clock \
                     ({now_unix_ms}) and its last applied event (seq {applied_seq}, stamped \
                     {last_event_unix_ms}): the state then is not known yet"
                ),
            )
            .with("applied_seq", applied_seq.to_string()))
        }
        AsOfPoint::Time { unix_ms } => {
            let seq = seq_at_time(unix_ms).map_err(storage)?;
            if applied_seq < seq {
                return Err(ApiError::internal(format!(
                    "the time index names seq {seq} for {unix_ms}, past the applied seq {applied_seq}"
                )));
            }
            Ok(ResolvedAsOf {
                seq,
                unix_ms: Some(unix_ms),
            })
        }
    }
}

/// The stamp of the event at `seq`, if there is one.
pub fn event_time_unix_ms(state: &dyn StateRead, seq: u64) -> Result<Option<u64>, StateError> {
    if seq == 0 {
        return Ok(None);
    }
    let events = query::events(state, seq, 1)?;
    Ok(events
        .first()
        .filter(|event| event.seq == seq)
        .map(|event| event.time_unix_ms))
}

/// This node's wall clock, in Unix milliseconds.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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

    fn no_time_index(_: u64) -> Result<u64, StateError> {
        panic!("a seq needs no time index")
    }

    #[test]
    fn an_as_of_seq_up_to_the_applied_one_is_answered_and_past_it_is_ahead() {
        for seq in [0, 1, 10] {
            let resolved = resolve_as_of(AsOfPoint::Seq(seq), 10, 5_000, 9_000, no_time_index)
                .expect("in range");
            assert_eq!(resolved, ResolvedAsOf { seq, unix_ms: None });
        }
        let ahead =
            resolve_as_of(AsOfPoint::Seq(11), 10, 5_000, 9_000, no_time_index).expect_err("ahead");
        assert_eq!(
            (ahead.code, ahead.reason),
            (Code::OutOfRange, Reason::AsOfAhead)
        );
        assert!(
            ahead.message.contains("applied seq 10"),
            "{}",
            ahead.message
        );
        assert_eq!(ahead.metadata, vec![("applied_seq", "10".to_string())]);
    }

    #[test]
    fn an_as_of_time_maps_to_the_last_seq_stamped_at_or_before_it() {
        let resolved = resolve_as_of(AsOfPoint::Time { unix_ms: 4_000 }, 10, 5_000, 9_000, |t| {
            assert_eq!(t, 4_000);
            Ok(7)
        })
        .expect("past");
        assert_eq!(
            resolved,
            ResolvedAsOf {
                seq: 7,
                unix_ms: Some(4_000)
            }
        );
        // Between the last event and the clock: the applied state is the answer.
        let idle = resolve_as_of(AsOfPoint::Time { unix_ms: 8_000 }, 10, 5_000, 9_000, |_| {
            Ok(10)
        })
        .expect("idle cluster");
        assert_eq!(idle.seq, 10);
        // A clock behind the leader's stamps still answers up to the last event.
        let behind = resolve_as_of(AsOfPoint::Time { unix_ms: 5_000 }, 10, 5_000, 1_000, |_| {
            Ok(10)
        })
        .expect("at the last stamp");
        assert_eq!(behind.seq, 10);
    }

    #[test]
    fn an_as_of_time_in_the_future_is_ahead_and_a_broken_index_is_internal() {
        let ahead = resolve_as_of(AsOfPoint::Time { unix_ms: 9_001 }, 10, 5_000, 9_000, |_| {
            panic!("not looked up")
        })
        .expect_err("future");
        assert_eq!(
            (ahead.code, ahead.reason),
            (Code::OutOfRange, Reason::AsOfAhead)
        );
        assert!(ahead.message.contains("seq 10"), "{}", ahead.message);
        let broken = resolve_as_of(AsOfPoint::Time { unix_ms: 1 }, 10, 5_000, 9_000, |_| Ok(11))
            .expect_err("index past applied");
        assert_eq!(broken.reason, Reason::Internal);
        let failed = resolve_as_of(AsOfPoint::Time { unix_ms: 1 }, 10, 5_000, 9_000, |_| {
            Err(StateError::Storage("io".to_string()))
        })
        .expect_err("storage");
        assert_eq!(failed.reason, Reason::Internal);
    }

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
