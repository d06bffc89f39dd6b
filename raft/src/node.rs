//! A running Raft node: stores, openraft, the proposer and the read barrier.

use std::{collections::BTreeMap, fs, sync::Arc, time::Duration};

use openraft::{
    BasicNode, ServerState, error::CheckIsLeaderError, error::InitializeError, error::RaftError,
};
use tokio::sync::watch;
use warrant_proto::log;

use crate::{
    config::RaftConfig,
    error::{ProposeError, ReadError, StartError},
    log_store::LogStore,
    network::{NetworkFactory, RaftPeerService},
    proposer::{Proposal, Proposer},
    state_machine::{StateMachineStore, StateReader},
    types::{NodeId, Raft},
};

/// How far this node has applied: the Raft log index and the last event seq.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedPosition {
    pub log_index: u64,
    pub seq: u64,
}

/// How fresh a read must be (architecture.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// This node's applied state, whatever it is.
    Local,
    /// Wait until this node has applied at least this event seq.
    AtLeast(u64),
    /// Confirm leadership with a quorum, then wait until the read index is applied.
    Linearizable,
}

/// One member as the cluster status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub node_id: NodeId,
    pub address: String,
    pub voter: bool,
}

/// A point-in-time view of this node's Raft state.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub role: &'static str,
    pub leader_id: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied: AppliedPosition,
    pub snapshot_index: u64,
    pub members: Vec<MemberStatus>,
}

/// A started node. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    config: Arc<RaftConfig>,
    raft: Raft,
    log_store: LogStore,
    state_machine: StateMachineStore,
    proposer: Proposer,
}

impl RaftNode {
    /// Opens the stores under `config.data_dir` and starts Raft. The node starts uninitialised
    /// unless its data directory already holds a cluster.
    pub async fn start(config: RaftConfig) -> Result<Self, StartError> {
        let openraft_config = config.to_openraft().map_err(StartError::Config)?;
        fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::OpenStateMachine(e.to_string()))?;
        let log_path = config.data_dir.join("raft-log");
        let log_store = LogStore::open(&log_path).map_err(|source| StartError::OpenLog {
            path: log_path.display().to_string(),
            source,
        })?;
        let state_machine = StateMachineStore::open(&config.data_dir)
            .map_err(|e| StartError::OpenStateMachine(e.to_string()))?;
        let network = NetworkFactory::new(config.node_id);
        let raft = Raft::new(
            config.node_id,
            Arc::new(openraft_config),
            network,
            log_store.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let proposer = Proposer::spawn(raft.clone(), state_machine.clone());
        Ok(RaftNode {
            config: Arc::new(config),
            raft,
            log_store,
            state_machine,
            proposer,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Makes this node a one-member cluster if it is not part of one yet. Returns whether it
    /// initialised now. Idempotent: a node that already belongs to a cluster is left alone.
    pub async fn initialize_single(&self) -> Result<bool, StartError> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?
        {
            return Ok(false);
        }
        let members = BTreeMap::from([(
            self.config.node_id,
            BasicNode {
                addr: self.config.advertise_addr.clone(),
            },
        )]);
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }

    /// Waits until some node is leader and this node has applied what it had committed.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ReadError> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| ReadError::NoQuorum(e.to_string()))?;
        metrics
            .current_leader
            .ok_or_else(|| ReadError::NoQuorum("no leader".to_string()))
    }

    /// Proposes one command through the group-commit batcher.
    pub async fn propose(&self, command: log::Command) -> Result<Proposal, ProposeError> {
        self.proposer.propose(command).await
    }

    /// A reader over the applied state. Take it after [`RaftNode::read_barrier`].
    pub fn reader(&self) -> StateReader {
        self.state_machine.reader()
    }

    pub fn applied(&self) -> AppliedPosition {
        *self.state_machine.applied_watch().borrow()
    }

    /// Waits until reading this node's state meets `consistency`. Returns the applied position
    /// the read may rely on.
    pub async fn read_barrier(
        &self,
        consistency: ReadConsistency,
    ) -> Result<AppliedPosition, ReadError> {
        match consistency {
            ReadConsistency::Local => Ok(self.applied()),
            ReadConsistency::AtLeast(seq) => self.wait_applied(|p| p.seq >= seq, seq).await,
            ReadConsistency::Linearizable => {
                let read_wait_max = self.config.read_wait_max;
                let result =
                    tokio::time::timeout(read_wait_max, self.raft.ensure_linearizable()).await;
                match result {
                    Err(_) => Err(ReadError::NoQuorum(format!(
                        "leadership not confirmed within {} ms",
                        read_wait_max.as_millis()
                    ))),
                    Ok(Ok(_)) => Ok(self.applied()),
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                        Err(ReadError::NotLeader {
                            leader_id: forward.leader_id,
                            leader_addr: forward.leader_node.map(|n| n.addr),
                        })
                    }
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                        Err(ReadError::NoQuorum(e.to_string()))
                    }
                    Ok(Err(RaftError::Fatal(fatal))) => Err(ReadError::Stopped(fatal.to_string())),
                }
            }
        }
    }

    async fn wait_applied(
        &self,
        done: impl Fn(&AppliedPosition) -> bool,
        wanted: u64,
    ) -> Result<AppliedPosition, ReadError> {
        let mut watch: watch::Receiver<AppliedPosition> = self.state_machine.applied_watch();
        let read_wait_max = self.config.read_wait_max;
        let waited = tokio::time::timeout(read_wait_max, watch.wait_for(|p| done(p))).await;
        match waited {
            Ok(Ok(position)) => Ok(*position),
            Ok(Err(_)) => Err(ReadError::Stopped("state machine closed".to_string())),
            Err(_) => Err(ReadError::Timeout {
                wanted,
                applied: self.applied().seq,
                waited_ms: u64::try_from(read_wait_max.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    pub fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "LEADER",
            ServerState::Follower => "FOLLOWER",
            ServerState::Candidate => "CANDIDATE",
            ServerState::Learner => "LEARNER",
            ServerState::Shutdown => "SHUTDOWN",
        };
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                node_id: *id,
                address: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let committed_index = self.log_store.committed_index();
        ClusterStatus {
            node_id: self.config.node_id,
            role,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index,
            applied: self.applied(),
            snapshot_index: metrics.snapshot.map(|l| l.index).unwrap_or(0),
            members,
        }
    }

    /// The gRPC service peers call.
    pub fn peer_service(
        &self,
    ) -> warrant_proto::raft::raft_service_server::RaftServiceServer<RaftPeerService> {
        RaftPeerService::new(self.config.node_id, self.raft.clone()).into_server()
    }

    /// Stops Raft. Storage is durable at every acknowledged point, so nothing needs flushing.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}
