//! Leadership hand-over, for a leader that is stopping (a rolling restart): the cluster gets a
//! new leader within about one round of votes instead of a lease plus an election timeout plus,
//! often, a second round.
//!
//! openraft 0.9 has no transfer API, and its voters refuse every vote while their *leader
//! lease* runs: `Engine::handle_vote_req` rejects a request while the voter's vote is committed
//! and `now <= vote_last_modified + leader_lease`, with `leader_lease = election_timeout_max`.
//! Every AppendEntries a follower accepts (heartbeats included) touches its
//! `vote_last_modified`; a leader's was last touched when it was elected. So the stopping
//! leader
//! 1. stops making AppendEntries: it proposes nothing and confirms no read index (both answer
//!    NOT_LEADER without a hint, so callers wait for the next leader and retry there; see
//!    `RaftNode::handing_over`), and once a voter has matched its last log index it turns its
//!    heartbeats off (`runtime_config().heartbeat(false)`);
//! 2. asks that voter, the most up-to-date one, to campaign (the `TakeLeadership` peer RPC),
//!    telling it how long its own lease still runs.
//!
//! The voter checks that it follows this leader in this term and holds its whole log. With at
//! most three voters, it and the old leader are a quorum: it calls `trigger().elect()` once the
//! old leader's own lease has run out (at once, unless that leader was elected within the last
//! lease), and the old leader grants. With more voters, or if that campaign did not win, it
//! waits until the lease since its own last AppendEntries has run out (read from its
//! `RaftState::vote_last_modified`, so an AppendEntries still in flight when heartbeats went off
//! counts), when the other followers' leases, renewed by the same heartbeats, have run out too,
//! and campaigns. Its log is at least as long as anyone's, so the round wins. It answers once
//! it leads, or once its wait is over. If anything fails, the old leader simply stops, and an
//! ordinary election follows.

use std::{sync::atomic::Ordering, time::Duration};

use openraft::{RaftMetrics, ServerState};
use tokio::time::Instant;
use warrant_proto::raft::TakeLeadershipReply;

use crate::{
    node::RaftNode,
    types::{MemberNode, NodeId, Succession},
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
    /// This node is the only voter: no one to hand over to.
    OnlyVoter,
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
        let me = self.node_id();
        let membership = metrics.membership_config.membership();
        if !membership.voter_ids().any(|id| id != me) {
            return HandOver::OnlyVoter;
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
        let succession = Succession {
            term,
            last_log_index,
            leader_lease_left: self.own_lease_left().await,
        };
        let wait_max = self.config().election_timeout_max * (CAMPAIGN_WAIT_LEASES + 2);
        let reply = self
            .peers()
            .take_leadership(target, &node.peer_addr, succession, wait_max)
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

    /// How long this node's own lease as a voter still runs: until then it would refuse a
    /// campaign's vote itself. A leader's vote last changed when it was elected.
    async fn own_lease_left(&self) -> Duration {
        let lease = self.config().election_timeout_max;
        let modified = self
            .raft()
            .with_raft_state(|state| state.vote_last_modified())
            .await
            .ok()
            .flatten();
        modified.map_or(Duration::ZERO, |m| {
            (m + lease).saturating_duration_since(Instant::now())
        })
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

    /// The voter's side of a hand-over: campaigns for leader `from`'s succession if this node
    /// follows `from` in its term and holds its log, once enough leases have run out for a
    /// quorum to grant the vote. Answers whether it leads.
    ///
    /// With at most three voters, this node and the old leader are a quorum: the campaign
    /// starts once the leader's own lease has run out (at once, unless it was elected within the
    /// last lease). With more, or if that campaign does not win within a lease, it starts (again)
    /// once this node's lease since its last AppendEntries has run out, which the other
    /// followers' leases did at about the same time.
    pub(crate) async fn take_leadership(
        &self,
        from: NodeId,
        succession: Succession,
    ) -> TakeLeadershipReply {
        let metrics = self.raft().metrics().borrow().clone();
        if let Err(why) = check_succession(&metrics, from, &succession) {
            return refusal(metrics.current_term, why);
        }
        let lease = self.config().election_timeout_max;
        let voters = metrics.membership_config.membership().voter_ids().count();
        if voters <= 3 {
            tokio::time::sleep(succession.leader_lease_left + LEASE_MARGIN).await;
            tracing::info!(
                from,
                term = succession.term,
                "the leader is stopping; campaigning to take over"
            );
            if let Err(fatal) = self.raft().trigger().elect().await {
                return refusal(metrics.current_term, format!("raft stopped: {fatal}"));
            }
            let reply = self.wait_until_leader(succession.term, lease).await;
            if reply.leader {
                return reply;
            }
        }
        if let Err(why) = self.wait_out_lease().await {
            return refusal(metrics.current_term, why);
        }
        tracing::info!(
            from,
            term = succession.term,
            "the followers' leases ran out; campaigning to take over"
        );
        if let Err(fatal) = self.raft().trigger().elect().await {
            return refusal(metrics.current_term, format!("raft stopped: {fatal}"));
        }
        self.wait_until_leader(succession.term, lease * CAMPAIGN_WAIT_LEASES)
            .await
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

    async fn wait_until_leader(&self, old_term: u64, wait_max: Duration) -> TakeLeadershipReply {
        let mut metrics = self.raft().metrics();
        let settled =
            metrics.wait_for(|m| m.current_term > old_term && m.state == ServerState::Leader);
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

/// Whether this node may succeed `from`: it follows `from` in the succession's term and holds
/// its whole log.
fn check_succession(
    m: &RaftMetrics<NodeId, MemberNode>,
    from: NodeId,
    succession: &Succession,
) -> Result<(), String> {
    if m.current_term != succession.term || m.current_leader != Some(from) {
        return Err(format!(
            "this node is in term {} following {:?}, not node {from} in term {}",
            m.current_term, m.current_leader, succession.term
        ));
    }
    let last = m.last_log_index.unwrap_or(0);
    if last < succession.last_log_index {
        return Err(format!(
            "this node's log ends at {last}, before the leader's {}",
            succession.last_log_index
        ));
    }
    Ok(())
}

fn refusal(term: u64, message: String) -> TakeLeadershipReply {
    TakeLeadershipReply {
        leader: false,
        term,
        message,
    }
}
