//! What this crate reports to the `metrics` facade: a sampler of openraft's `RaftMetrics` watch
//! (term, leadership, commit and applied index), the proposer's queue depth and the databases'
//! size on disk, and the timings taken at the instrumented points (the proposer's batches, the
//! log store's fsyncs, applies, snapshot builds and installs).
//!
//! The API layer installs the Prometheus recorder and serves `/metrics`; until a recorder is
//! installed every call here is a no-op. Every name is a `warrant_` name in base units
//! (Prometheus conventions); no label carries anything that grows with history or principals.
//! Replication lag per peer is not here: its series must disappear with the peer, so the API
//! layer renders it at scrape time from [`crate::RaftNode::status`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use openraft::{RaftMetrics, ServerState};

use crate::types::{MemberNode, NodeId, Raft};

/// How often the sampler sets the gauges even when the Raft metrics did not change: the proposer
/// queue and the databases' size change without Raft noticing.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the databases' size on disk is measured (a walk over their directories): sizes
/// change slowly, and a walk costs a `stat` per file.
pub const STORAGE_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

pub const RAFT_TERM: &str = "warrant_raft_term";
pub const RAFT_HAS_LEADER: &str = "warrant_raft_has_leader";
pub const RAFT_IS_LEADER: &str = "warrant_raft_is_leader";
pub const RAFT_LEADER_CHANGES: &str = "warrant_raft_leader_changes_total";
pub const RAFT_COMMIT_INDEX: &str = "warrant_raft_commit_index";
pub const RAFT_APPLIED_INDEX: &str = "warrant_raft_applied_index";
pub const RAFT_LAST_LOG_INDEX: &str = "warrant_raft_last_log_index";
pub const PROPOSER_BATCH_COMMANDS: &str = "warrant_proposer_batch_commands";
pub const PROPOSER_QUEUE_DEPTH: &str = "warrant_proposer_queue_depth";
pub const STORAGE_FSYNC_SECONDS: &str = "warrant_storage_fsync_duration_seconds";
pub const APPLY_SECONDS: &str = "warrant_apply_duration_seconds";
pub const SNAPSHOT_BUILD_SECONDS: &str = "warrant_snapshot_build_duration_seconds";
pub const SNAPSHOT_INSTALL_SECONDS: &str = "warrant_snapshot_install_duration_seconds";
pub const STORAGE_SIZE_BYTES: &str = "warrant_storage_size_bytes";

/// One batch handed to Raft, of `commands` commands.
pub(crate) fn batch_proposed(commands: usize) {
    ::metrics::histogram!(PROPOSER_BATCH_COMMANDS).record(commands as f64);
}

/// One synced RocksDB write of the log (the append's fsync; truncate and purge too).
pub(crate) fn fsync_finished(elapsed: Duration) {
    ::metrics::histogram!(STORAGE_FSYNC_SECONDS).record(elapsed.as_secs_f64());
}

/// One `apply` of committed entries, decided and written.
pub(crate) fn applied(elapsed: Duration) {
    ::metrics::histogram!(APPLY_SECONDS).record(elapsed.as_secs_f64());
}

/// One snapshot built from a checkpoint.
pub(crate) fn snapshot_built(elapsed: Duration) {
    ::metrics::histogram!(SNAPSHOT_BUILD_SECONDS).record(elapsed.as_secs_f64());
}

/// One snapshot received from the leader, verified and installed.
pub(crate) fn snapshot_installed(elapsed: Duration) {
    ::metrics::histogram!(SNAPSHOT_INSTALL_SECONDS).record(elapsed.as_secs_f64());
}

/// What the sampler reads besides the Raft metrics.
pub(crate) struct SamplerSources {
    pub raft: Raft,
    pub node_id: NodeId,
    /// The proposer's queue, held weakly: the proposer stops when its last real sender goes.
    pub proposer_queue: QueueProbe,
    pub data_dir: PathBuf,
}

/// Reads a queue's depth without keeping it open: its owner (`proposer`) says how.
pub(crate) struct QueueProbe {
    depth: Box<dyn Fn() -> usize + Send + Sync>,
}

impl QueueProbe {
    pub(crate) fn new(depth: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        QueueProbe {
            depth: Box::new(depth),
        }
    }

    /// Commands waiting for a batch; 0 once the queue is gone.
    fn depth(&self) -> usize {
        (self.depth)()
    }
}

/// Starts the sampler; it ends when Raft's metrics channel closes (Raft stopped).
pub(crate) fn spawn_sampler(sources: SamplerSources) {
    tokio::spawn(run_sampler(sources));
}

async fn run_sampler(sources: SamplerSources) {
    let mut watch = sources.raft.metrics();
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    let mut storage_tick = tokio::time::interval(STORAGE_SAMPLE_INTERVAL);
    let mut leaders = LeaderChanges::default();
    loop {
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
            _ = storage_tick.tick() => sample_storage(&sources.data_dir).await,
        }
        let metrics = watch.borrow_and_update().clone();
        if leaders.saw(metrics.current_leader, metrics.current_term) {
            ::metrics::counter!(RAFT_LEADER_CHANGES).increment(1);
        }
        set_raft_gauges(&metrics, sources.node_id);
        ::metrics::gauge!(PROPOSER_QUEUE_DEPTH).set(sources.proposer_queue.depth() as f64);
    }
}

/// Sets the gauges one `RaftMetrics` value determines.
fn set_raft_gauges(metrics: &RaftMetrics<NodeId, MemberNode>, node_id: NodeId) {
    let running = metrics.state != ServerState::Shutdown;
    let leader = metrics.current_leader.filter(|_| running);
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    ::metrics::gauge!(RAFT_TERM).set(metrics.current_term as f64);
    ::metrics::gauge!(RAFT_HAS_LEADER).set(flag(leader.is_some()));
    ::metrics::gauge!(RAFT_IS_LEADER).set(flag(leader == Some(node_id)));
    let index = |log_id: Option<openraft::LogId<NodeId>>| log_id.map(|l| l.index).unwrap_or(0);
    ::metrics::gauge!(RAFT_LAST_LOG_INDEX).set(metrics.last_log_index.unwrap_or(0) as f64);
    ::metrics::gauge!(RAFT_APPLIED_INDEX).set(index(metrics.last_applied) as f64);
    // openraft 0.9's metrics carry no commit index on followers; what this node knows committed
    // is at least what it applied, and on the leader its quorum-acknowledged index.
    let committed = index(metrics.last_applied).max(
        metrics
            .replication
            .as_ref()
            .map(|_| quorum_matched(metrics))
            .unwrap_or(0),
    );
    ::metrics::gauge!(RAFT_COMMIT_INDEX).set(committed as f64);
}

/// On the leader: the highest index a majority of voters have matched.
fn quorum_matched(metrics: &RaftMetrics<NodeId, MemberNode>) -> u64 {
    let Some(replication) = &metrics.replication else {
        return 0;
    };
    let membership = metrics.membership_config.membership();
    let mut matched: Vec<u64> = membership
        .voter_ids()
        .map(|id| {
            replication
                .get(&id)
                .copied()
                .flatten()
                .map(|l| l.index)
                .unwrap_or(0)
        })
        .collect();
    if matched.is_empty() {
        return 0;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[matched.len() / 2]
}

/// Counts leader changes: every leader seen that differs from the last one seen, or the same
/// node elected again in a later term (it restarted, or lost and regained leadership).
#[derive(Default)]
struct LeaderChanges {
    last: Option<(NodeId, u64)>,
}

impl LeaderChanges {
    /// Whether `leader` (in `term`) is a change from the last leader seen.
    fn saw(&mut self, leader: Option<NodeId>, term: u64) -> bool {
        let Some(leader) = leader else {
            return false;
        };
        let seen = (leader, term);
        let changed = match self.last {
            None => true,
            Some((last_leader, last_term)) => last_leader != leader || last_term < seen.1,
        };
        if changed {
            self.last = Some(seen);
        }
        changed
    }
}

/// Sets the databases' size on disk: everything RocksDB keeps in their directories (SST files,
/// the WAL, manifests), which is what fills the disk.
async fn sample_storage(data_dir: &Path) {
    let dirs = [
        ("raft_log", data_dir.join("raft-log")),
        ("state", data_dir.join("sm")),
    ];
    let sizes = tokio::task::spawn_blocking(move || {
        dirs.map(|(db, dir)| (db, directory_bytes(&dir, DIRECTORY_DEPTH_MAX)))
    })
    .await;
    if let Ok(sizes) = sizes {
        for (db, bytes) in sizes {
            ::metrics::gauge!(STORAGE_SIZE_BYTES, "db" => db).set(bytes as f64);
        }
    }
}

/// How deep the size walk descends: the state machine keeps generations one level down, and
/// RocksDB nests nothing deeper.
const DIRECTORY_DEPTH_MAX: u32 = 3;

/// The bytes of the regular files under `dir`, at most `depth` levels down; unreadable entries
/// count as empty (a generation being replaced vanishes under the walk).
fn directory_bytes(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(meta) if meta.is_dir() && 0 < depth => directory_bytes(&entry.path(), depth - 1),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_change_is_a_new_leader_or_the_same_one_in_a_later_term() {
        let mut changes = LeaderChanges::default();
        let seen: Vec<bool> = [
            (None, 1),
            (Some(1), 1),
            (Some(1), 1),
            (None, 2),
            (Some(2), 2),
            (Some(2), 3),
            (Some(2), 3),
        ]
        .into_iter()
        .map(|(leader, term)| changes.saw(leader, term))
        .collect();
        assert_eq!(seen, [false, true, false, false, true, true, false]);
    }

    #[test]
    fn directory_bytes_sums_files_at_every_level_within_the_depth() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("a"), [0u8; 10]).expect("write");
        std::fs::create_dir_all(dir.path().join("gen-2/deeper")).expect("mkdir");
        std::fs::write(dir.path().join("gen-2/b"), [0u8; 5]).expect("write");
        std::fs::write(dir.path().join("gen-2/deeper/c"), [0u8; 3]).expect("write");
        assert_eq!(directory_bytes(dir.path(), 3), 18);
        assert_eq!(directory_bytes(dir.path(), 1), 15);
        assert_eq!(directory_bytes(dir.path(), 0), 10);
        assert_eq!(directory_bytes(&dir.path().join("missing"), 3), 0);
    }
}
