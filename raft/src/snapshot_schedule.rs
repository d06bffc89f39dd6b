//! When this node builds a snapshot: every `interval` applied entries, at a phase of its own.
//!
//! openraft's `SnapshotPolicy::LogsSinceLast(n)` fires at the same log index on every member
//! (each counts from the same starting point and applies the same log), so all of them build at
//! once: a quorum busy scanning its state and writing a file at the same moment. Giving each node
//! a different `n` only moves the coincidence: periods of 5n/4 and 3n/2 meet every 15n/2 entries,
//! and any two fixed periods come close to each other again and again. So the openraft policy is
//! `Never`, and this task triggers the builds on a grid of its own: node `id` builds when its
//! applied index reaches `m·interval + phase(id)` with `phase(id) = (id mod
//! SNAPSHOT_PHASES)·interval / SNAPSHOT_PHASES`. Every node keeps the same period, so the
//! nodes stay `interval / SNAPSHOT_PHASES` entries apart forever.

use crate::types::{NodeId, Raft};

/// Snapshot phases an interval is divided into. Three: the members of a three-node cluster with
/// ids 1, 2 and 3 (the usual numbering) each get a phase of their own, a third of an interval
/// apart; and in any cluster of N ≥ 3 consecutive ids at most ⌈N/3⌉ members share a phase,
/// always fewer than a quorum, so a quorum is never building at the same time.
pub const SNAPSHOT_PHASES: u64 = 3;

/// The applied index at which node `node_id` builds its next snapshot, given its last one.
///
/// The first grid point `m·interval + phase` at least `interval / 2` past the last snapshot (or
/// past 0 when there is none), so one interval in steady state, and after a snapshot installed
/// from the leader at an arbitrary index, at least half and less than one and a half intervals.
/// Never more than 1.5 × `interval` entries pass without a snapshot being due.
pub fn next_snapshot_index(node_id: NodeId, interval: u64, last_snapshot: Option<u64>) -> u64 {
    let interval = interval.max(1);
    let phase = (node_id % SNAPSHOT_PHASES) * (interval / SNAPSHOT_PHASES);
    let earliest = last_snapshot
        .unwrap_or(0)
        .saturating_add(interval.div_ceil(2));
    if earliest <= phase {
        return phase;
    }
    let periods = (earliest - phase).div_ceil(interval);
    phase.saturating_add(periods.saturating_mul(interval))
}

/// Watches this node's applied index and asks openraft for a snapshot when one is due. Ends when
/// Raft shuts down.
pub fn spawn(raft: Raft, node_id: NodeId, interval: u64) {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        // The snapshot index when we last asked, and the applied index from which we ask again if
        // that request produced no snapshot (openraft ignores it while a build runs, and a build
        // can fail): one more interval.
        let mut asked: Option<(Option<u64>, u64)> = None;
        loop {
            let (applied, snapshot) = {
                let m = metrics.borrow_and_update();
                (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            if asked.is_some_and(|(at_snapshot, _)| at_snapshot != snapshot) {
                asked = None;
            }
            if let Some(applied) = applied {
                let due = next_snapshot_index(node_id, interval, snapshot);
                let may_ask = asked.is_none_or(|(_, again_at)| applied >= again_at);
                if applied >= due && may_ask {
                    asked = Some((snapshot, applied.saturating_add(interval)));
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot indexes node `node_id` builds at over `count` snapshots, each build landing
    /// `overshoot` entries after it was due (apply batches and the trigger's latency).
    fn snapshots(node_id: NodeId, interval: u64, overshoot: u64, count: usize) -> Vec<u64> {
        let mut last = None;
        (0..count)
            .map(|_| {
                let at = next_snapshot_index(node_id, interval, last) + overshoot;
                last = Some(at);
                at
            })
            .collect()
    }

    #[test]
    fn three_nodes_stay_a_third_of_an_interval_apart() {
        let interval = 20_000;
        let overshoot = 300;
        let builds: Vec<Vec<u64>> = (1..=3)
            .map(|id| snapshots(id, interval, overshoot, 1000))
            .collect();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let closest = builds[a]
                .iter()
                .flat_map(|x| builds[b].iter().map(move |y| x.abs_diff(*y)))
                .min()
                .expect("snapshots");
            assert!(
                closest >= interval / SNAPSHOT_PHASES - 1,
                "nodes {} and {} built {closest} entries apart",
                a + 1,
                b + 1
            );
        }
    }

    #[test]
    fn steady_state_period_is_one_interval() {
        let builds = snapshots(2, 20_000, 300, 50);
        for pair in builds.windows(2) {
            assert_eq!(pair[1] - pair[0], 20_000);
        }
    }

    #[test]
    fn a_snapshot_is_due_between_half_and_one_and_a_half_intervals_after_the_last() {
        for interval in [1, 2, 3, 7, 50, 20_000] {
            for node_id in 0..7 {
                for last in
                    (0..5 * interval).step_by(usize::try_from(interval / 7 + 1).unwrap_or(1))
                {
                    let due = next_snapshot_index(node_id, interval, Some(last));
                    let gap = due - last;
                    assert!(
                        gap >= interval.div_ceil(2) && gap < interval + interval.div_ceil(2),
                        "interval {interval}, node {node_id}, last {last}: due {due}"
                    );
                    assert_eq!(
                        due % interval,
                        (node_id % SNAPSHOT_PHASES) * (interval / SNAPSHOT_PHASES) % interval,
                        "due {due} is off the node's grid"
                    );
                }
            }
        }
    }

    #[test]
    fn the_first_snapshot_comes_within_one_and_a_half_intervals() {
        for node_id in 1..=5 {
            let due = next_snapshot_index(node_id, 50, None);
            assert!((25..75).contains(&due), "node {node_id}: {due}");
        }
    }

    #[test]
    fn fewer_than_a_quorum_share_a_phase() {
        for members in 3..=9u64 {
            let mut per_phase = [0u64; SNAPSHOT_PHASES as usize];
            for id in 1..=members {
                per_phase[(id % SNAPSHOT_PHASES) as usize] += 1;
            }
            let largest = per_phase.iter().copied().max().expect("phases");
            assert!(
                largest < members / 2 + 1,
                "{members} members: {largest} share a phase"
            );
        }
    }
}
