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

/// Why a read could not reach the consistency it asked for.
#[derive(Debug, thiserror::Error)]
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
    #[error("not applied to seq {wanted} within {waited_ms} ms (applied {applied})")]
    Timeout {
        wanted: u64,
        applied: u64,
        waited_ms: u64,
    },
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("open raft log at {path}: {source}")]
    OpenLog {
        path: String,
        source: rocksdb::Error,
    },
    #[error("open state machine: {0}")]
    OpenStateMachine(String),
    #[error("invalid raft config: {0}")]
    Config(String),
    #[error("start raft: {0}")]
    Raft(String),
}
