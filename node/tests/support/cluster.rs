//! Several `warrant server` processes as one cluster on loopback.
//!
//! Nodes are numbered from 1. They start uninitialised; `InitCluster` on node 1 makes them one
//! cluster. Every wait is a bounded poll of a condition.

use std::{collections::BTreeMap, time::Duration};

use tonic::transport::Channel;
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use super::{Node, READY_POLL_INTERVAL, with_auth};

/// How long the cluster may take to elect a leader or converge.
pub const CONVERGE_WAIT_MAX: Duration = Duration::from_secs(60);
/// How many times `digests` converges again when a node moved on before it was digested.
const DIGEST_ROUNDS_MAX: usize = 5;

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    admin_token: String,
}

impl Cluster {
    /// Starts `n` nodes with the default config and makes them one cluster.
    pub async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, toml::Table::new()).await
    }

    /// Starts `n` nodes with `extra` config keys and makes them one cluster.
    pub async fn start_with(n: u64, extra: toml::Table) -> Cluster {
        Cluster::start_with_env(n, extra, Vec::new()).await
    }

    /// [`Cluster::start_with`], every node's process with `env` in its environment.
    pub async fn start_with_env(n: u64, extra: toml::Table, env: Vec<(String, String)>) -> Cluster {
        let admin_token = format!("test-admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            nodes.insert(
                id,
                Node::start_member_with_env(id, &admin_token, extra.clone(), env.clone()).await,
            );
        }
        let members = nodes
            .values()
            .map(|node| api::Member {
                node_id: node.node_id(),
                address: node.addr(),
                voter: true,
                peer_address: node.peer_addr(),
            })
            .collect();
        let first = nodes.get(&1).expect("node 1");
        first
            .cluster()
            .init_cluster(first.admin(api::InitClusterRequest { members }))
            .await
            .expect("InitCluster");
        for node in nodes.values_mut() {
            node.wait_serving().await;
        }
        Cluster { nodes, admin_token }
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.get(&id).expect("a node with this id")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("a node with this id")
    }

    /// Nodes with a running process.
    pub fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| n.pid().is_some())
    }

    /// Waits until every live node in `among` reports the same leader, itself one of them, and
    /// returns it.
    pub async fn leader_among(&self, among: &[u64]) -> u64 {
        let deadline = tokio::time::Instant::now() + CONVERGE_WAIT_MAX;
        loop {
            let mut leaders = Vec::new();
            for id in among {
                leaders.push(
                    status_of(self.node(*id).channel())
                        .await
                        .ok()
                        .and_then(|s| (s.has_leader).then_some(s.leader_id)),
                );
            }
            if let Some(Some(leader)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*leader))
                && among.contains(leader)
            {
                return *leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes {among:?} did not agree on a leader within {CONVERGE_WAIT_MAX:?}: {leaders:?}"
            );
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// The leader, as every live node reports it.
    pub async fn leader(&self) -> u64 {
        let live: Vec<u64> = self.live().map(Node::node_id).collect();
        self.leader_among(&live).await
    }

    /// Waits until every live node has applied the leader's commit index, then returns the
    /// applied index they share.
    pub async fn converged(&self) -> u64 {
        let leader = self.leader().await;
        let deadline = tokio::time::Instant::now() + CONVERGE_WAIT_MAX;
        loop {
            let commit = status_of(self.node(leader).channel())
                .await
                .map(|s| s.committed_index)
                .unwrap_or(u64::MAX);
            let mut applied = Vec::new();
            for node in self.live() {
                applied.push(
                    status_of(node.channel())
                        .await
                        .map(|s| s.applied_index)
                        .unwrap_or(0),
                );
            }
            if applied.iter().all(|a| *a == commit) {
                return commit;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes did not converge on commit index {commit} within {CONVERGE_WAIT_MAX:?}: applied {applied:?}"
            );
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// Starts node `id` uninitialised, adds it as a learner through the leader and waits until it
    /// serves.
    pub async fn add_learner(&mut self, id: u64, extra: toml::Table) {
        let node = Node::start_member(id, &self.admin_token, extra).await;
        let leader = self.leader().await;
        let leader = self.node(leader);
        leader
            .cluster()
            .add_member(leader.admin(api::AddMemberRequest {
                node_id: id,
                address: node.addr(),
                peer_address: node.peer_addr(),
            }))
            .await
            .expect("AddMember");
        self.nodes.insert(id, node);
        self.node_mut(id).wait_serving().await;
    }

    /// Every live node's digest at one applied index they share: (node id, digest). The cluster
    /// writes a few commands of its own (a signing key published, an earlier one retired), so a
    /// node may move on between converging and digesting; the round is then taken again, a
    /// bounded number of times.
    pub async fn digests(&self) -> Vec<(u64, api::DigestResponse)> {
        let mut rounds = Vec::new();
        for _ in 0..DIGEST_ROUNDS_MAX {
            let index = self.converged().await;
            let mut digests = Vec::new();
            for node in self.live() {
                digests.push((node.node_id(), node.digest().await));
            }
            if digests.iter().all(|(_, d)| d.applied_index == index) {
                return digests;
            }
            rounds.push((
                index,
                digests
                    .iter()
                    .map(|(id, d)| (*id, d.applied_index))
                    .collect::<Vec<_>>(),
            ));
        }
        panic!("nodes kept moving on while converged: (index, [(node, digest index)]) {rounds:?}");
    }
}

pub async fn status_of(channel: Channel) -> Result<api::StatusResponse, tonic::Status> {
    ClusterServiceClient::new(channel)
        .status(api::StatusRequest {})
        .await
        .map(tonic::Response::into_inner)
}

/// `message` with the cluster's admin credential.
pub fn admin<T>(admin_token: &str, message: T) -> tonic::Request<T> {
    with_auth(Some(&format!("Bearer {admin_token}")), message)
}
