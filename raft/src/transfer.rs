//! Leadership hand-over, for a leader that is stopping (a rolling restart): the cluster gets a
//! new leader in about one leader lease instead of a lease plus an election timeout plus,
//! often, a second round.
//!
//! openraft 0.9 has no transfer API, and its voters refuse every vote while their *leader
//! lease* runs: `Engine::handle_vote_req` rejects a request while the voter's vote is committed
//! and `now <= vote_last_modified + leader_lease`, with `leader_lease = election_timeout_max`,
//! and every AppendEntries from the leader (heartbeats included) touches `vote_last_modified`.
//! So the stopping leader
//! 1. stops making AppendEntries: it proposes nothing and confirms no read index (both answer
//!    NOT_LEADER without a hint, so callers wait for the next leader and retry there; see
//!    `RaftNode::handing_over`), and once a voter has matched its last log index it turns its
//!    heartbeats off (`runtime_config().heartbeat(false)`);
//! 2. asks that voter, the most up-to-date one, to campaign (the `TakeLeadership` peer RPC).
//!
//! The voter checks that it follows this leader in this term and holds its whole log, waits
//! until the lease since the last AppendEntries it received has run out (read from its own
//! `RaftState::vote_last_modified`, so an AppendEntries still in flight when heartbeats went off
//! is accounted for), then calls `trigger().elect()`. The other voters' leases ran out at about
//! the same time, since they heard the same heartbeats; the old leader's own vote was last
//! modified when it was elected, so it grants at once too. The campaigner's log is at least as
//! long as anyone's, so it wins the first round. It answers once it leads, or once its wait is
//! over. If anything fails, the old leader simply stops, and an ordinary election follows.

use std::{sync::atomic::Ordering, time::Duration};

use openraft::{RaftMetrics, ServerState};
use tokio::time::Instant;
use warrant_proto::raft::TakeLeadershipReply;

use crate::{
    node::RaftNode,
    types::{MemberNode, NodeId},
};

/// How long a stopping leader waits for a voter to match its last log index.
pub const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(2);
/// Waited past the voter's lease, for clocks that tick at slightly different rates.
const LEASE_MARGIN: Duration = Duration::from_millis(30);
/// How long a voter that was asked to take over may take to win, in leader leases, after its
/// own lease ran out: one round of votes needs far less; the rest is room for a slow fsync.
const CAMPAIGN_WAIT_LEASES: u32 = 3;

/// How a hand-over ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOver {
    /// This node did not lead: nothing to hand over.
    NotLeader,
    /// `to` leads now.
    Done { to: NodeId },
    /// No hand-over: the cluster elects a leader the ordinary way once this node stops.
    Failed(String),
}

impl RaftNode {
    /// If this node leads, makes its most up-to-date other voter the leader, within
    /// [`RaftNode::hand_over_wait_max`]. From the call on, this node proposes nothing and
    /// confirms no read index, hand-over or not: it is about to stop.
    pub async fn hand_over_leadership(&self) -> HandOver {
        let metrics = self.raft().metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            return HandOver::NotLeader;
        }
        self.handing_over().store(true, Ordering::Release);
        let wait_max = self.hand_over_wait_max();
        match tokio::time::timeout(wait_max, self.hand_over(metrics.current_term)).await {
            Ok(outcome) => outcome,
            Err(_) => HandOver::Failed(format!(
                "no other voter took over within {} ms",
                wait_max.as_millis()
            )),
        }
    }

    /// The longest [`RaftNode::hand_over_leadership`] takes: a voter catching up, its lease
    /// running out, and its campaign.
    pub fn hand_over_wait_max(&self) -> Duration {
        CATCH_UP_WAIT_MAX + self.config().election_timeout_max * (CAMPAIGN_WAIT_LEASES + 2)
    }

    async fn hand_over(&self, term: u64) -> HandOver {
        let Some((target, node, last_log_index)) = self.caught_up_voter().await else {
            return HandOver::Failed(format!(
                "no other voter matched this node's log within {} ms",
                CATCH_UP_WAIT_MAX.as_millis()
            ));
        };
        // From here on nothing renews the followers' lease.
        self.raft().runtime_config().heartbeat(false);
        let wait_max = self.config().election_timeout_max * (CAMPAIGN_WAIT_LEASES + 2);
        let reply = self
            .peers()
            .take_leadership(target, &node.peer_addr, term, last_log_index, wait_max)
            .await;
        match reply {
            Ok(reply) if reply.leader => HandOver::Done { to: target },
            Ok(reply) => HandOver::Failed(format!(
                "node {target} did not take over (term {}): {}",
                reply.term, reply.message
            )),
            Err(why) => HandOver::Failed(format!("node {target} could not be asked: {why}")),
        }
    }

    /// The other voter that has matched this leader's last log index, once one has (waiting
    /// at most [`CATCH_UP_WAIT_MAX`]): with its member record and that index.
    async fn caught_up_voter(&self) -> Option<(NodeId, MemberNode, u64)> {
        let me = self.node_id();
        let mut metrics = self.raft().metrics();
        let found = metrics.wait_for(|m| caught_up(m, me).is_some());
        let _ = tokio::time::timeout(CATCH_UP_WAIT_MAX, found).await;
        let m = metrics.borrow().clone();
        let target = caught_up(&m, me)?;
        let node = m.membership_config.membership().get_node(&target)?.clone();
        Some((target, node, m.last_log_index.unwrap_or(0)))
    }

    /// The voter's side of a hand-over: campaigns for leader `from`'s succession once the lease
    /// has run out, if this node follows `from` in `term` and holds its log up to
    /// `last_log_index`. Answers whether it leads.
    pub(crate) async fn take_leadership(
        &self,
        from: NodeId,
        term: u64,
        last_log_index: u64,
    ) -> TakeLeadershipReply {
        let metrics = self.raft().metrics().borrow().clone();
        let refuse = |message: String| TakeLeadershipReply {
            leader: false,
            term: metrics.current_term,
            message,
        };
        if metrics.current_term != term || metrics.current_leader != Some(from) {
            return refuse(format!(
                "this node is in term {} following {:?}, not node {from} in term {term}",
                metrics.current_term, metrics.current_leader
            ));
        }
        if metrics.last_log_index.unwrap_or(0) < last_log_index {
            return refuse(format!(
                "this node's log ends at {}, before the leader's {last_log_index}",
                metrics.last_log_index.unwrap_or(0)
            ));
        }
        if let Err(why) = self.wait_out_lease().await {
            return refuse(why);
        }
        tracing::info!(
            from,
            term,
            "the leader is stopping; campaigning to take over"
        );
        if let Err(fatal) = self.raft().trigger().elect().await {
            return refuse(format!("raft stopped: {fatal}"));
        }
        self.wait_until_leader(term).await
    }

    /// Waits until the leader lease since the last AppendEntries this node received has run out
    /// (plus [`LEASE_MARGIN`]), while no AppendEntries renews it.
    async fn wait_out_lease(&self) -> Result<(), String> {
        let lease = self.config().election_timeout_max;
        let deadline = Instant::now() + lease * CAMPAIGN_WAIT_LEASES;
        loop {
            let modified = self
                .raft()
                .with_raft_state(|state| state.vote_last_modified())
                .await
                .map_err(|fatal| format!("raft stopped: {fatal}"))?;
            let Some(modified) = modified else {
                return Ok(());
            };
            let expires = modified + lease + LEASE_MARGIN;
            if expires <= Instant::now() {
                return Ok(());
            }
            if expires > deadline {
                return Err(format!(
                    "the leader lease kept being renewed for {} ms: the leader still sends \
                     AppendEntries",
                    (lease * CAMPAIGN_WAIT_LEASES).as_millis()
                ));
            }
            tokio::time::sleep_until(expires).await;
        }
    }

    async fn wait_until_leader(&self, old_term: u64) -> TakeLeadershipReply {
        let wait_max = self.config().election_timeout_max * CAMPAIGN_WAIT_LEASES;
        let mut metrics = self.raft().metrics();
        let settled = metrics.wait_for(|m| {
            m.current_term > old_term
                && (m.state == ServerState::Leader || m.current_leader.is_some())
        });
        let _ = tokio::time::timeout(wait_max, settled).await;
        let m = metrics.borrow().clone();
        let leader = m.state == ServerState::Leader;
        TakeLeadershipReply {
            leader,
            term: m.current_term,
            message: if leader {
                String::new()
            } else {
                format!(
                    "not elected within {} ms; state {:?}, leader {:?}",
                    wait_max.as_millis(),
                    m.state,
                    m.current_leader
                )
            },
        }
    }
}

/// The lowest-id voter other than `me` whose replication has matched the leader's last log
/// index, as the leader's metrics say.
fn caught_up(m: &RaftMetrics<NodeId, MemberNode>, me: NodeId) -> Option<NodeId> {
    let last = m.last_log_index.unwrap_or(0);
    let replication = m.replication.as_ref()?;
    m.membership_config.membership().voter_ids().find(|id| {
        *id != me
            && replication
                .get(id)
                .copied()
                .flatten()
                .is_some_and(|matched| matched.index >= last)
    })
}
