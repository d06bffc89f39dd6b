//! Raft tuning, with defaults for a LAN cluster on busy 2-core machines.

use std::{path::PathBuf, time::Duration};

use crate::{
    peer_auth::{PeerSecurity, SharedSecrets},
    types::NodeId,
};

/// The leader's heartbeat interval. In openraft 0.9 it is also the AppendEntries timeout, and
/// the tick runs every 1.5 intervals, so heartbeats go out every 150 ms. An AppendEntries
/// costs one follower fsync (p50 ~0.2 ms, p99 ~0.9 ms, worst seen 7 ms on this VM's disk) and a
/// loopback round trip, far below 100 ms; one that does time out is resent, and the follower
/// has usually appended it by then, so a slow disk costs a retry, not an election. Shorter would
/// buy little: failover is dominated by the election timeout below.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// The election timeout range. openraft 0.9 has no pre-vote; instead a follower that knows a
/// leader waits its *lease* (`election_timeout_max`) plus its own timeout (drawn once from
/// `[min, max)` at start) after the last message from the leader, and refuses votes while its
/// own lease runs. So a leader's death is noticed after `max + [min, max)` = 0.9–1.2 s of
/// silence (plus up to one 150 ms tick). Measured (3 release nodes, 2 cores, writes through
/// both followers): the first write sent after a SIGKILL of the leader was acknowledged after
/// 0.94–1.24 s (5 trials). With 400–800 ms it was 1.2–1.5 s, but 2.15–2.35 s in the two of
/// five trials that needed a second round (the follower with the shorter log campaigns first
/// and loses, then the other waits its own timeout once more); the old 1000–2000 ms gave
/// 3.7–5.7 s (3–4 s of silence before any election). Against spurious elections: a follower
/// campaigns only after 0.9 s without a single AppendEntries, six heartbeat ticks lost in a row; snapshots are built off the Raft task from a checkpoint and
/// streamed on their own channel, so they do not delay heartbeats, and CPU saturation delays
/// tasks by milliseconds (32 writers saturating both cores for 30 s, 6.1k writes/s, kept
/// term 1). A disk stall long enough to hold a follower's Raft task past 0.9 s (its fsync
/// waiting behind other writeback) is the remaining risk. The Vote RPC timeout is `min`, 300 ms, room for the voter's fsync.
pub const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(300);
/// See [`ELECTION_TIMEOUT_MIN`].
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(600);

/// What a [`crate::RaftNode`] needs to start.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub node_id: NodeId,
    /// The address clients use to reach this node (`host:port`): the leader hint others give.
    pub advertise_addr: String,
    /// The address peers use to reach this node's peer listener (`host:port`).
    pub peer_advertise_addr: String,
    pub data_dir: PathBuf,
    /// How often the leader's tick may send heartbeats (see [`HEARTBEAT_INTERVAL`]).
    pub heartbeat_interval: Duration,
    /// The range each node draws its election timeout from (see [`ELECTION_TIMEOUT_MIN`]).
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_logs_since_last: u64,
    /// Entries kept behind a snapshot so restarted followers catch up by log, not snapshot.
    pub logs_kept_after_snapshot: u64,
    /// The longest a read waits for this node to apply far enough.
    pub read_wait_max: Duration,
    /// How members prove themselves to each other: mutual TLS, or shared secrets on a
    /// plaintext cluster (see `peer_auth`).
    pub peer_security: PeerSecurity,
    /// The storage memory budget in MiB: one block cache shared by both RocksDB databases,
    /// which memtables and index and filter blocks are charged to as well
    /// (see [`crate::STORAGE_CACHE_MIB_DEFAULT`]).
    pub storage_cache_mib: u64,
}

impl RaftConfig {
    /// Defaults for `node_id` with data under `data_dir`: a plaintext cluster with an empty
    /// secret and one address for clients and peers alike, as tests of one process run.
    pub fn new(node_id: NodeId, advertise_addr: String, data_dir: PathBuf) -> Self {
        RaftConfig {
            node_id,
            peer_advertise_addr: advertise_addr.clone(),
            advertise_addr,
            data_dir,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            election_timeout_min: ELECTION_TIMEOUT_MIN,
            election_timeout_max: ELECTION_TIMEOUT_MAX,
            snapshot_logs_since_last: 20_000,
            logs_kept_after_snapshot: 10_000,
            read_wait_max: Duration::from_secs(5),
            peer_security: PeerSecurity::SharedSecrets(SharedSecrets::single("")),
            storage_cache_mib: crate::STORAGE_CACHE_MIB_DEFAULT,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timing_is_one_openraft_accepts() {
        let config = RaftConfig::new(1, "127.0.0.1:1".to_string(), PathBuf::from("/unused"));
        config
            .to_openraft()
            .expect("openraft validates the defaults");
    }

    /// A follower campaigns after `max + [min, max)` of silence from the leader, and the leader
    /// ticks every 1.5 heartbeat intervals: the shortest such silence must span several ticks,
    /// and the longest must stay within the 2 s failover budget.
    #[test]
    fn a_follower_tolerates_several_lost_heartbeats_and_fails_over_within_two_seconds() {
        let tick = HEARTBEAT_INTERVAL * 3 / 2;
        let shortest_silence = ELECTION_TIMEOUT_MAX + ELECTION_TIMEOUT_MIN;
        let longest_silence = ELECTION_TIMEOUT_MAX * 2 + tick;
        assert!(shortest_silence >= tick * 6, "{shortest_silence:?}");
        assert!(
            longest_silence <= Duration::from_secs(2),
            "{longest_silence:?}"
        );
    }
}
