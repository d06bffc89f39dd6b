//! Consensus and storage for Warrant.
//!
//! This crate is the runtime around the pure identity model: openraft drives replication, the
//! [`log_store`] keeps the Raft log in RocksDB (fsynced before openraft hears it is flushed), the
//! [`state_machine`] applies committed batches through `warrant_identity::apply_batch` and writes
//! events, projection rows and the applied log id in one RocksDB `WriteBatch`, and the
//! [`proposer`] batches concurrent commands into one Raft entry (group commit).
//!
//! **Architecture Invariant:** nothing outside this crate touches RocksDB or openraft types;
//! callers see [`RaftNode`], [`StateReader`] and this crate's errors.

// openraft's storage traits return its `StorageError` (over 200 bytes) by value; our helpers
// return the same type so errors pass through unchanged.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod error;
pub mod log_store;
pub mod network;
pub mod node;
pub mod peer_service;
pub mod proposer;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use config::RaftConfig;
pub use error::{MembershipError, ProposeError, ReadError, StartError};
pub use node::{
    AppliedPosition, ClusterStatus, MemberStatus, RaftNode, ReadConsistency, ReplicationStatus,
};
pub use proposer::Proposal;
pub use state_machine::StateReader;
pub use types::{NodeId, TypeConfig};
