//! Errors this crate reports to the API layer.
//!
//! They follow openraft's split: an error the caller can act on (not the leader, no quorum, a
//! deadline) versus a fatal one (the node stopped). The API layer maps each variant to a gRPC
//! status and a stable reason code.

use crate::types::NodeId;

/// Why a command could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader. Nothing was proposed; the caller may retry on the leader.
    #[error("not the leader; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The proposal queue is full. Nothing was proposed.
    #[error("proposal queue is full ({queue_len_max} commands waiting)")]
    Overloaded { queue_len_max: usize },
    /// The command was handed to Raft but its fate is unknown (leadership lost, node stopping).
    /// A retry with the same idempotency key is safe.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// The node has stopped.
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why a read could not reach the consistency it asked for. `Clone`: one failed read-index round
/// answers every read that waited for it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReadError {
    /// This node cannot confirm it is the leader, and follower reads ask the leader.
    #[error("not the leader; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// No quorum confirmed leadership in time: answering would risk a stale read.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The node did not apply far enough within the wait limit.
    #[error(
        "not applied to {wanted} within {waited_ms} ms (applied log index {applied_index}, seq {applied_seq})"
    )]
    Timeout {
        /// What the read needed, e.g. `seq 17` or `log index 42`.
        wanted: String,
        applied_index: u64,
        applied_seq: u64,
        waited_ms: u64,
    },
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why Raft stopped on its own: a storage error (a full disk, an I/O error) or a panic in its
/// core. The node commits and applies nothing more; only a restart recovers it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("raft stopped on a fatal error: {reason}")]
pub struct FatalError {
    /// openraft's account of the error, with the storage engine's message.
    pub reason: String,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The storage engine's own message is kept as text, so callers never see its types.
    #[error("open raft log at {path}: {reason}")]
    OpenLog { path: String, reason: String },
    #[error("open state machine: {0}")]
    OpenStateMachine(String),
    #[error("invalid raft config: {0}")]
    Config(String),
    #[error("start raft: {0}")]
    Raft(String),
}

/// Why a membership change (or cluster initialisation) was refused.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Membership changes run on the leader.
    #[error("not the leader; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// `init` was asked for a membership other than the one the cluster already has.
    #[error("the cluster is already initialised with members {current}")]
    AlreadyInitialized { current: String },
    #[error("{0}")]
    Invalid(String),
    /// The node is not in the membership (or not as a learner, for a promotion).
    #[error("{0}")]
    NotFound(String),
    #[error("node {node_id} is already a member")]
    AlreadyMember { node_id: NodeId },
    /// A learner that is still far behind is not made a voter: it would weaken the quorum.
    #[error(
        "learner {node_id} is {lag} entries behind the leader; it is promoted once at most {lag_max} behind"
    )]
    LearnerBehind {
        node_id: NodeId,
        lag: u64,
        lag_max: u64,
    },
    /// Another membership change has not finished yet.
    #[error("another membership change is in progress: {0}")]
    InProgress(String),
    #[error("no quorum committed the change: {0}")]
    NoQuorum(String),
    #[error("raft node stopped: {0}")]
    Stopped(String),
}
