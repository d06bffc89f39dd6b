//! Consensus and storage for Warrant.
//!
//! This crate is the runtime around the pure identity model: openraft drives replication, the
//! log store keeps the Raft log in RocksDB (fsynced before openraft hears it is flushed), the
//! state machine applies committed batches through `warrant_identity::apply_batch` and writes
//! events, projection rows and the applied log id in one RocksDB `WriteBatch`, and the proposer
//! batches concurrent commands into one Raft entry (group commit). The peer client and the peer
//! server carry Raft and forwarding between nodes, over mutual TLS on a listener of their own.
//!
//! **API Boundary:** the modules are private; what other crates use is re-exported here. The
//! API layer sees [`RaftNode`] (proposing, the read barrier, membership, status, the service
//! peers call), [`StateReader`], [`ReadConsistency`], [`RaftConfig`] and this crate's errors;
//! [`storage`] is for tests and benchmarks that drive the stores without a node;
//! [`trace_context`] reads and writes W3C trace context in gRPC headers (the API edge reads a
//! call's parent with it).
//!
//! **Architecture Invariant:** nothing outside this crate touches RocksDB or openraft types:
//! no public signature here names a RocksDB type, and errors carry the storage engine's messages
//! as text.

// openraft's storage traits return its `StorageError` (over 200 bytes) by value; our helpers
// return the same type so errors pass through unchanged.
#![allow(clippy::result_large_err)]

/// A crash failpoint named `$name` (one of `chaos::CRASH_POINTS`): with the `chaos` feature,
/// the process aborts here when `FAILPOINTS` arms it; without the feature, nothing at all.
macro_rules! crash_point {
    ($name:expr) => {
        #[cfg(feature = "chaos")]
        fail::fail_point!($name, |_| crate::chaos::crash($name));
    };
}

mod apply_trace;
mod backup;
mod backup_file;
/// Fault injection for chaos-tests/: only in a build with the `chaos` feature.
#[cfg(feature = "chaos")]
pub mod chaos;
mod config;
mod error;
mod limits;
mod log_store;
mod metrics;
mod node;
mod peer_auth;
mod peer_budget;
mod peer_client;
mod peer_server;
mod private_fs;
mod proposer;
mod read_index;
mod snapshot;
mod snapshot_schedule;
mod stamp;
mod state_machine;
mod storage_memory;
pub mod trace_context;
mod transfer;
mod types;

/// Whether this build has the `chaos` feature (failpoints and planted bugs: the module `chaos`).
/// The API's and the node's `chaos` features turn this crate's on, so it answers for the
/// binary: `warrant version` reports it.
pub const CHAOS: bool = cfg!(feature = "chaos");

pub use backup::{
    BACKUP_DIR, BackupError, RESTORE_MEMBERS_MAX, RestoreRequest, Restored, SavedBackup, restore,
};
pub use backup_file::{
    BACKUP_BLOCK_BYTES_MAX, BACKUP_HEADER_LEN, BackupFileError, BackupSummary, BackupVerified,
    verify as verify_backup,
};
pub use config::RaftConfig;
pub use error::{FatalError, MembershipError, ProposeError, ReadError, StartError};
/// The metric names this crate reports, for the API layer's descriptions and tests.
pub mod metric_names {
    pub use crate::metrics::{
        APPLY_SECONDS, PROPOSER_BATCH_COMMANDS, PROPOSER_QUEUE_DEPTH, RAFT_APPLIED_INDEX,
        RAFT_COMMIT_INDEX, RAFT_HAS_LEADER, RAFT_IS_LEADER, RAFT_LAST_LOG_INDEX,
        RAFT_LEADER_CHANGES, RAFT_TERM, SNAPSHOT_BUILD_SECONDS, SNAPSHOT_INSTALL_SECONDS,
        STORAGE_FSYNC_SECONDS, STORAGE_SIZE_BYTES,
    };
}
pub use limits::PROPOSE_WAIT_MAX;
pub use node::{ClusterStatus, MemberStatus, RaftNode, ReadConsistency, ReplicationStatus};
pub use peer_auth::{
    NODE_NAME_DOMAIN, PEER_BUSY, PEER_SECRETS_MAX, PEER_UNAUTHENTICATED, PeerAuthLayer,
    PeerConnInfo, PeerSecurity, PeerTls, SharedSecrets, node_id_of_certificate, node_name,
};
pub use peer_server::PeerServer;
pub use private_fs::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, create_private_dir_all};
pub use proposer::{BATCHES_IN_FLIGHT_MAX, Proposal};
pub use stamp::STAMP_LEAD_MAX_MS;
pub use state_machine::StateReader;
pub use storage_memory::{STORAGE_CACHE_MIB_DEFAULT, STORAGE_CACHE_MIB_MAX, STORAGE_CACHE_MIB_MIN};
pub use transfer::HandOver;
pub use types::{AppliedPosition, MemberNode, NodeId, TypeConfig};

/// The stores and entry types, for tests that exercise storage without a running node
/// (openraft's storage suite, the crash and restart tests) and for benchmarks that load and
/// read a state machine directly (`bench`'s audit fixtures, through
/// `StateMachineStore::apply_batches_with`). The API layer uses none of them.
pub mod storage {
    pub use crate::{
        log_store::LogStore,
        state_machine::{ApplyFn, StateMachineStore},
        storage_memory::{StorageMemory, StorageUsage},
        types::{BatchPayload, BatchResponse, Entry, SnapshotFile},
    };
}
