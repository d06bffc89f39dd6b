//! Raft tuning, with defaults for a LAN cluster on busy 2-core machines.

use std::{path::PathBuf, time::Duration};

use crate::types::NodeId;

/// What a [`crate::RaftNode`] needs to start.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub node_id: NodeId,
    /// The address peers use to reach this node's Raft service (`host:port`).
    pub advertise_addr: String,
    pub data_dir: PathBuf,
    /// Also the AppendEntries timeout in openraft 0.9, so not too small.
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_logs_since_last: u64,
    /// Entries kept behind a snapshot so restarted followers catch up by log, not snapshot.
    pub logs_kept_after_snapshot: u64,
    /// The longest a read waits for this node to apply far enough.
    pub read_wait_max: Duration,
    /// The peer secret: every peer RPC carries it (metadata `x-warrant-peer-secret`) and every
    /// node checks it. Peers share the public gRPC port, so without it anyone who can reach the
    /// port could forward a command as any actor. Empty only in tests of a single process.
    pub peer_secret: String,
}

impl RaftConfig {
    /// Defaults for `node_id` with data under `data_dir`.
    pub fn new(node_id: NodeId, advertise_addr: String, data_dir: PathBuf) -> Self {
        RaftConfig {
            node_id,
            advertise_addr,
            data_dir,
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            snapshot_logs_since_last: 20_000,
            logs_kept_after_snapshot: 10_000,
            read_wait_max: Duration::from_secs(5),
            peer_secret: String::new(),
        }
    }

    pub(crate) fn to_openraft(&self) -> Result<openraft::Config, String> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "warrant".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: 60_000,
            // Every `snapshot_logs_since_last` entries, staggered per node: `snapshot_schedule`.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            // openraft purges only once this many entries are purgeable: never more than half
            // a snapshot interval, or a small interval would never compact.
            purge_batch_size: (self.snapshot_logs_since_last / 2).clamp(1, 1024),
            max_payload_entries: 256,
            replication_lag_threshold: self.snapshot_logs_since_last.saturating_mul(2),
            ..Default::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}
