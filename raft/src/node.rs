//! A running Raft node: stores, openraft, the proposer, forwarding, the read barrier and
//! membership changes. The service peers call is built in [`crate::peer_server`], which
//! depends on this module and not the reverse.
//!
//! Any node serves any request. A follower forwards a write to the leader (at most
//! [`FORWARD_HOPS_MAX`] nodes deep) and waits until it has applied the write itself, so a client
//! that reads back from the node it wrote through sees its write. A LINEARIZABLE read on a
//! follower asks the leader for a read index (which the leader confirms with a quorum), then
//! waits until this node has applied that index. Concurrent LINEARIZABLE reads share read-index
//! rounds ([`crate::read_index`]): one batcher for rounds this node confirms as leader (its own
//! reads and its followers' `ReadIndex` requests), one for rounds it asks of the leader.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use openraft::{
    ChangeMembers, ServerState,
    error::{
        ChangeMembershipError, CheckIsLeaderError, ClientWriteError, Fatal, InitializeError,
        RaftError,
    },
};
use tokio::{sync::watch, time::Instant};
use tracing::Instrument as _;
use warrant_proto::log;

use crate::{
    config::RaftConfig,
    error::{FatalError, MembershipError, ProposeError, ReadError, StartError},
    limits::{FORWARD_HOPS_MAX, PROPOSE_WAIT_MAX},
    log_store::LogStore,
    peer_auth::PeerSecurity,
    peer_client::{ForwardError, PeerClientFactory},
    proposer::{Proposal, Proposer},
    read_index::{ReadIndexBatcher, RoundResult, WaitError},
    snapshot_schedule,
    state_machine::{StateMachineStore, StateReader},
    types::{AppliedPosition, MemberNode, NodeId, Raft},
};

/// The longest a membership change waits to be committed.
pub const MEMBERSHIP_WAIT_MAX: Duration = Duration::from_secs(30);
/// The longest `compact` waits for a snapshot to be built and the log purged behind it.
pub const COMPACT_WAIT_MAX: Duration = Duration::from_secs(600);
/// A learner is made a voter only once it is at most this many entries behind the leader.
pub const PROMOTE_LAG_MAX: u64 = 1000;
/// How long a write waits for openraft to name a new leader, after the one it knew could not be
/// reached or while none is known, before it answers NOT_LEADER, in `election_timeout_max`s. A
/// dead leader is noticed after its lease plus a follower's own election timeout, 0.9–1.2 s of
/// silence with the default 300–600 ms (see `config::ELECTION_TIMEOUT_MIN`), and an election that
/// needs a second round adds one more timeout and a vote: 4 × 600 ms = 2.4 s covers both, and a
/// cluster that has lost its quorum still answers well within [`PROPOSE_WAIT_MAX`].
pub const LEADER_CHANGE_WAIT_ELECTION_TIMEOUTS: u32 = 4;
/// A write is proposed again after at most this many leader changes. One is the usual failover;
/// more means leadership is moving faster than writes commit, and the client is better told.
pub const LEADER_CHANGES_MAX: u32 = 3;
/// Pause between attempts to find a leader that confirms a read index.
const READ_INDEX_RETRY: Duration = Duration::from_millis(50);

/// How fresh a read must be.
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
    /// Where clients reach it.
    pub address: String,
    /// Where its peers reach it.
    pub peer_address: String,
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
    /// The log is compacted up to here.
    pub purged_index: u64,
    /// On the leader: how far each other member has replicated.
    pub replication: Vec<ReplicationStatus>,
    pub initialized: bool,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Batches this node stamped with a bound instead of its wall clock, which was too far
    /// ahead of the time it vouches for (`STAMP_LEAD_MAX_MS`): non-zero means check NTP.
    pub stamps_bounded: u64,
}

/// How far one member has replicated, as the leader knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationStatus {
    pub node_id: NodeId,
    pub matched_index: u64,
    pub lag: u64,
}

/// A started node. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    config: Arc<RaftConfig>,
    raft: Raft,
    log_store: LogStore,
    state_machine: StateMachineStore,
    proposer: Proposer,
    /// Counted by the proposer's stamper; read by `status`.
    stamps_bounded: Arc<AtomicU64>,
    peers: PeerClientFactory,
    read_rounds: ReadRounds,
    /// Set while this node hands its leadership over ([`crate::transfer`]): it proposes
    /// nothing and confirms no read index, so that no AppendEntries renews its followers' lease.
    handing_over: Arc<AtomicBool>,
    /// The one backup save this node runs at a time (`crate::backup`).
    backup_slot: Arc<tokio::sync::Semaphore>,
}

/// The node's read-index batchers. Two, so that a round never waits behind a round of the other
/// kind: a leader's round never goes over the network to another node, so a follower's
/// `ReadIndex` request served by it can never come back to the follower and wait behind itself.
#[derive(Clone)]
struct ReadRounds {
    /// Rounds this node confirms as leader with a heartbeat quorum: its own reads while it
    /// leads, and the `ReadIndex` requests of its followers.
    leader: ReadIndexBatcher,
    /// Rounds asked of the leader with one `ReadIndex` RPC: this node's reads while it follows.
    follower: ReadIndexBatcher,
}

impl ReadRounds {
    fn new(
        raft: &Raft,
        peers: &PeerClientFactory,
        node_id: NodeId,
        wait_max: Duration,
        handing_over: &Arc<AtomicBool>,
    ) -> Self {
        let leader_raft = raft.clone();
        let leader_handing_over = handing_over.clone();
        let leader = ReadIndexBatcher::new(Box::new(move || {
            let raft = leader_raft.clone();
            let handing_over = leader_handing_over.clone();
            Box::pin(async move {
                if handing_over.load(Ordering::Acquire) {
                    return Err(ReadError::NotLeader {
                        leader_id: None,
                        leader_addr: None,
                    });
                }
                confirm_leadership(&raft, wait_max).await
            })
        }));
        let follower_raft = raft.clone();
        let peers = peers.clone();
        let leader_rounds = leader.clone();
        let follower = ReadIndexBatcher::new(Box::new(move || {
            let raft = follower_raft.clone();
            let peers = peers.clone();
            let leader_rounds = leader_rounds.clone();
            Box::pin(async move {
                match remote_leader(&raft, node_id) {
                    Some((leader_id, addr)) => peers.read_index(leader_id, &addr, wait_max).await,
                    // This node became the leader since the read chose this batcher.
                    None => leader_rounds.read_index().await.map_err(wait_error),
                }
            })
        }));
        ReadRounds { leader, follower }
    }
}

/// A read index confirmed by a heartbeat quorum of this node's followers, if it leads.
async fn confirm_leadership(raft: &Raft, wait_max: Duration) -> RoundResult {
    let confirmed = tokio::time::timeout(wait_max, raft.get_read_log_id()).await;
    match confirmed {
        Err(_) => Err(ReadError::NoQuorum(format!(
            "leadership not confirmed within {} ms",
            wait_max.as_millis()
        ))),
        Ok(Ok((read_log_id, _))) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
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

/// A batcher's refusal as a read error. A full batcher is reported as no quorum: the node cannot
/// confirm reads as fast as they arrive.
fn wait_error(error: WaitError) -> ReadError {
    match error {
        WaitError::Full { waiters_max } => ReadError::NoQuorum(format!(
            "{waiters_max} reads are already waiting for a read index"
        )),
        WaitError::Round(e) => e,
    }
}

/// The leader a node's metrics name, and the term they are in: a write that found no leader, or
/// could not reach this one, waits for this to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaderSeen {
    leader: Option<NodeId>,
    term: u64,
}

impl LeaderSeen {
    fn now(raft: &Raft) -> Self {
        LeaderSeen::from_metrics(&raft.metrics().borrow())
    }

    /// A leader re-elected in a later term (it restarted) counts as a change.
    fn from_metrics(metrics: &openraft::RaftMetrics<NodeId, MemberNode>) -> Self {
        LeaderSeen {
            leader: metrics.current_leader,
            term: metrics.current_term,
        }
    }
}

/// The leader `raft` knows of, with its peer address, unless that is `node_id` itself.
fn remote_leader(raft: &Raft, node_id: NodeId) -> Option<(NodeId, String)> {
    let metrics = raft.metrics().borrow().clone();
    let leader = metrics.current_leader?;
    if leader == node_id {
        return None;
    }
    let addr = metrics
        .membership_config
        .membership()
        .get_node(&leader)?
        .peer_addr
        .clone();
    Some((leader, addr))
}

impl RaftNode {
    /// Opens the stores under `config.data_dir` and starts Raft. The node starts uninitialised
    /// unless its data directory already holds a cluster.
    pub async fn start(config: RaftConfig) -> Result<Self, StartError> {
        #[cfg(feature = "chaos")]
        crate::chaos::start()?;
        let openraft_config = config.to_openraft().map_err(StartError::Config)?;
        let memory = crate::storage_memory::StorageMemory::new(config.storage_cache_mib)
            .map_err(StartError::Config)?;
        crate::private_fs::create_private_dir_all(&config.data_dir)
            .map_err(|e| StartError::OpenStateMachine(e.to_string()))?;
        let log_path = config.data_dir.join("raft-log");
        let log_store = LogStore::open(&log_path, &memory)?;
        let state_machine = StateMachineStore::open(&config.data_dir, &memory)
            .map_err(|e| StartError::OpenStateMachine(e.to_string()))?;
        let peers = PeerClientFactory::new(config.node_id, config.peer_security.clone());
        let raft = Raft::new(
            config.node_id,
            Arc::new(openraft_config),
            peers.clone(),
            log_store.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let stamps_bounded = Arc::new(AtomicU64::new(0));
        let proposer = Proposer::spawn(raft.clone(), state_machine.clone(), stamps_bounded.clone());
        let handing_over = Arc::new(AtomicBool::new(false));
        let read_rounds = ReadRounds::new(
            &raft,
            &peers,
            config.node_id,
            config.read_wait_max,
            &handing_over,
        );
        crate::metrics::spawn_sampler(crate::metrics::SamplerSources {
            raft: raft.clone(),
            node_id: config.node_id,
            proposer_queue: proposer.queue_probe(),
            data_dir: config.data_dir.clone(),
        });
        snapshot_schedule::spawn(
            raft.clone(),
            config.node_id,
            config.snapshot_logs_since_last,
        );
        Ok(RaftNode {
            config: Arc::new(config),
            raft,
            log_store,
            state_machine,
            proposer,
            stamps_bounded,
            peers,
            read_rounds,
            handing_over,
            backup_slot: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Whether this node leads now, as its Raft metrics say (not a confirmed leadership: for
    /// decisions that only need a local view).
    pub fn is_leader(&self) -> bool {
        self.raft().metrics().borrow().current_leader == Some(self.node_id())
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn state_machine(&self) -> &StateMachineStore {
        &self.state_machine
    }

    pub(crate) fn backup_slot(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.backup_slot
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub(crate) fn snapshot_dir(&self) -> &Path {
        self.state_machine.snapshot_dir()
    }

    pub(crate) fn read_wait_max(&self) -> Duration {
        self.config.read_wait_max
    }

    pub(crate) fn peer_security(&self) -> &PeerSecurity {
        &self.config.peer_security
    }

    pub(crate) fn config(&self) -> &RaftConfig {
        &self.config
    }

    pub(crate) fn peers(&self) -> &PeerClientFactory {
        &self.peers
    }

    pub(crate) fn handing_over(&self) -> &AtomicBool {
        &self.handing_over
    }

    /// The leader this node knows of, with its address, unless that is this node.
    fn remote_leader(&self) -> Option<(NodeId, String)> {
        remote_leader(&self.raft, self.config.node_id)
    }

    fn leader_hint(&self) -> (Option<NodeId>, Option<String>) {
        let metrics = self.raft.metrics().borrow().clone();
        let addr = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        (metrics.current_leader, addr)
    }

    /// Whether this node belongs to a cluster (has a log or has voted), as Raft's core knows
    /// it now; false when the core has stopped.
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
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
            MemberNode {
                addr: self.config.advertise_addr.clone(),
                peer_addr: self.config.peer_advertise_addr.clone(),
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

    /// Commits one command: through this node's group-commit batcher when it leads, otherwise
    /// forwarded to the leader. Returns once the command is applied on this node.
    ///
    /// A write rides through a leader change: while no leader is known, when the node it tried
    /// was not the leader, or when the leader could not be reached at all, nothing was proposed,
    /// so it waits for openraft to name another leader and proposes again (at most
    /// [`LEADER_CHANGES_MAX`] times, each wait bounded by
    /// [`LEADER_CHANGE_WAIT_ELECTION_TIMEOUTS`] election timeouts, all within
    /// [`PROPOSE_WAIT_MAX`]). A failure after the command may have been sent is never retried
    /// here: it is reported as an unknown outcome.
    #[tracing::instrument(name = "raft.propose", skip_all)]
    pub async fn propose(&self, command: log::Command) -> Result<Proposal, ProposeError> {
        let deadline = Instant::now() + PROPOSE_WAIT_MAX;
        let proposed = self.propose_across_leader_changes(command, deadline);
        match tokio::time::timeout_at(deadline, proposed).await {
            Ok(result) => result,
            Err(_) => Err(ProposeError::Indeterminate(format!(
                "not committed within {} ms; retry with the same idempotency key",
                PROPOSE_WAIT_MAX.as_millis()
            ))),
        }
    }

    /// Proposes `command` until it commits, fails in a way that may have proposed it, or runs out
    /// of leader changes or time.
    ///
    /// Proposing again is safe even if an earlier attempt did reach a leader: every command
    /// carries an idempotency key, and apply answers a key it has already accepted with the
    /// first outcome and adds no event (`identity::apply`, `envelope::replay`); a rejected
    /// command writes nothing, so deciding it again changes nothing either. Here it is only
    /// done after attempts that proposed nothing (`NotLeader`, a connection never made).
    async fn propose_across_leader_changes(
        &self,
        command: log::Command,
        deadline: Instant,
    ) -> Result<Proposal, ProposeError> {
        let mut changes = 0;
        loop {
            let tried = LeaderSeen::now(&self.raft);
            let wait_max = deadline.saturating_duration_since(Instant::now());
            let not_proposed = match self.propose_once(command.clone(), 0, wait_max).await {
                Err(error @ ProposeError::NotLeader { .. }) => error,
                result => return result,
            };
            let wait = self
                .leader_change_wait_max()
                .min(deadline.saturating_duration_since(Instant::now()));
            if changes == LEADER_CHANGES_MAX || !self.wait_for_leader_change(tried, wait).await {
                return Err(not_proposed);
            }
            changes += 1;
        }
    }

    /// How long one wait for a leader change may take (see
    /// [`LEADER_CHANGE_WAIT_ELECTION_TIMEOUTS`]).
    fn leader_change_wait_max(&self) -> Duration {
        self.config.election_timeout_max * LEADER_CHANGE_WAIT_ELECTION_TIMEOUTS
    }

    /// Waits at most `wait_max` for the metrics to name a leader other than `tried`. Returns
    /// whether they did.
    async fn wait_for_leader_change(&self, tried: LeaderSeen, wait_max: Duration) -> bool {
        let mut metrics = self.raft.metrics();
        let changed = metrics.wait_for(|m| {
            let seen = LeaderSeen::from_metrics(m);
            seen.leader.is_some() && seen != tried
        });
        matches!(tokio::time::timeout(wait_max, changed).await, Ok(Ok(_)))
    }

    /// Proposes a command that has already passed through `hops` nodes: once, with no wait for
    /// a leader change (the node the client talks to does that, in [`RaftNode::propose`]).
    #[tracing::instrument(name = "raft.propose", skip_all, fields(hops))]
    pub(crate) async fn propose_hops(
        &self,
        command: log::Command,
        hops: u32,
    ) -> Result<Proposal, ProposeError> {
        self.propose_once(command, hops, PROPOSE_WAIT_MAX).await
    }

    /// One attempt: forward to the leader this node knows of, or propose here. `wait_max` is
    /// the forwarded call's deadline.
    async fn propose_once(
        &self,
        command: log::Command,
        hops: u32,
        wait_max: Duration,
    ) -> Result<Proposal, ProposeError> {
        let may_forward = hops < FORWARD_HOPS_MAX;
        if may_forward && let Some((leader_id, addr)) = self.remote_leader() {
            return self
                .forward(leader_id, &addr, command, hops + 1, wait_max)
                .await;
        }
        if self.handing_over.load(Ordering::Acquire) {
            // Handing leadership over: the caller waits for the next leader and proposes there.
            return Err(ProposeError::NotLeader {
                leader_id: None,
                leader_addr: None,
            });
        }
        match self.proposer.propose(command.clone()).await {
            // Leadership moved between the check and the proposal.
            Err(ProposeError::NotLeader {
                leader_id: Some(leader_id),
                leader_addr: Some(addr),
            }) if may_forward && leader_id != self.config.node_id => {
                self.forward(leader_id, &addr, command, hops + 1, wait_max)
                    .await
            }
            result => result,
        }
    }

    async fn forward(
        &self,
        leader_id: NodeId,
        addr: &str,
        command: log::Command,
        hops: u32,
        wait_max: Duration,
    ) -> Result<Proposal, ProposeError> {
        let forwarded = self
            .peers
            .forward(leader_id, addr, command, hops, wait_max)
            .await;
        let proposal = match forwarded {
            Ok(proposal) => proposal,
            Err(ForwardError::Failed(error)) => return Err(error),
            // Nothing left this node, so nothing was proposed: report it as "not the leader",
            // without naming the node that cannot be reached.
            Err(ForwardError::NotSent(why)) => {
                tracing::debug!(leader_id, reason = %why, "leader unreachable; nothing proposed");
                return Err(ProposeError::NotLeader {
                    leader_id: None,
                    leader_addr: None,
                });
            }
        };
        if hops == 1 {
            // The node the client talks to: make the write visible here before answering, so
            // the client reads its own write from this node. The write is committed either way;
            // if this node lags too far, it still answers and reads use AT_LEAST.
            let index = proposal.log_index;
            let _ = self
                .wait_applied(|p| p.log_index >= index, || format!("log index {index}"))
                .instrument(tracing::info_span!("raft.wait_applied", log_index = index))
                .await;
        }
        Ok(proposal)
    }

    /// A reader over the applied state. Take it after [`RaftNode::read_barrier`].
    pub fn reader(&self) -> StateReader {
        self.state_machine.reader()
    }

    pub fn applied(&self) -> AppliedPosition {
        *self.state_machine.applied_watch().borrow()
    }

    /// Watches this node's applied position: it changes after every apply and snapshot install,
    /// so a reader that follows the log (the audit `Watch`) waits on it instead of polling.
    pub fn applied_watch(&self) -> watch::Receiver<AppliedPosition> {
        self.state_machine.applied_watch()
    }

    /// Waits until reading this node's state meets `consistency`. Returns the applied position
    /// the read may rely on.
    pub async fn read_barrier(
        &self,
        consistency: ReadConsistency,
    ) -> Result<AppliedPosition, ReadError> {
        match consistency {
            ReadConsistency::Local => Ok(self.applied()),
            ReadConsistency::AtLeast(seq) => {
                self.wait_applied(|p| p.seq >= seq, || format!("seq {seq}"))
                    .await
            }
            ReadConsistency::Linearizable => {
                let index = self.read_index().await?;
                self.wait_applied(|p| p.log_index >= index, || format!("log index {index}"))
                    .await
            }
        }
    }

    /// A log index that every write acknowledged before now is at or below, confirmed by a
    /// quorum: the leader's own, or asked of the leader by a follower, in a round shared with
    /// the reads that arrived meanwhile. Retries across leader changes until the read wait
    /// limit; never answers from an unconfirmed leader.
    async fn read_index(&self) -> Result<u64, ReadError> {
        let read_wait_max = self.config.read_wait_max;
        let deadline = tokio::time::Instant::now() + read_wait_max;
        let mut last_error;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.read_index_once()).await;
            match attempt {
                Err(_) => {
                    return Err(ReadError::NoQuorum(format!(
                        "no leader confirmed a read index within {} ms",
                        read_wait_max.as_millis()
                    )));
                }
                Ok(Ok(index)) => return Ok(index),
                // Too many reads waiting: retrying would only add to them.
                Ok(Err(e @ WaitError::Full { .. })) => return Err(wait_error(e)),
                Ok(Err(WaitError::Round(e @ ReadError::Stopped(_)))) => return Err(e),
                Ok(Err(WaitError::Round(e))) => last_error = e,
            }
            if tokio::time::Instant::now() + READ_INDEX_RETRY >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(READ_INDEX_RETRY).await;
        }
    }

    async fn read_index_once(&self) -> Result<u64, WaitError> {
        if self.remote_leader().is_some() {
            self.read_rounds.follower.read_index().await
        } else {
            self.read_rounds.leader.read_index().await
        }
    }

    /// A read index this node confirms as leader, in a round shared with its own reads and its
    /// other followers' requests: what the peer `ReadIndex` RPC answers. Never asks another node.
    pub(crate) async fn leader_read_index(&self) -> Result<u64, WaitError> {
        self.read_rounds.leader.read_index().await
    }

    async fn wait_applied(
        &self,
        done: impl Fn(&AppliedPosition) -> bool,
        wanted: impl FnOnce() -> String,
    ) -> Result<AppliedPosition, ReadError> {
        let mut watch: watch::Receiver<AppliedPosition> = self.state_machine.applied_watch();
        let read_wait_max = self.config.read_wait_max;
        let waited = tokio::time::timeout(read_wait_max, watch.wait_for(|p| done(p))).await;
        match waited {
            Ok(Ok(position)) => Ok(*position),
            Ok(Err(_)) => Err(ReadError::Stopped("state machine closed".to_string())),
            Err(_) => Err(ReadError::Timeout {
                wanted: wanted(),
                applied_index: self.applied().log_index,
                applied_seq: self.applied().seq,
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
                peer_address: node.peer_addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let committed_index = self.log_store.committed_index();
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let replication = metrics
            .replication
            .as_ref()
            .map(|replication| {
                replication
                    .iter()
                    .filter(|(id, _)| **id != self.config.node_id)
                    .map(|(id, matched)| {
                        let matched_index = matched.map(|l| l.index).unwrap_or(0);
                        ReplicationStatus {
                            node_id: *id,
                            matched_index,
                            lag: last_log_index.saturating_sub(matched_index),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let initialized = membership.voter_ids().next().is_some();
        ClusterStatus {
            node_id: self.config.node_id,
            role,
            // A stopped node follows no one, whatever its last metrics named (`/healthz` says
            // 503 without a leader).
            leader_id: metrics
                .current_leader
                .filter(|_| metrics.state != ServerState::Shutdown),
            term: metrics.current_term,
            last_log_index,
            committed_index,
            applied: self.applied(),
            snapshot_index: metrics.snapshot.map(|l| l.index).unwrap_or(0),
            members,
            purged_index: metrics.purged.map(|l| l.index).unwrap_or(0),
            replication,
            initialized,
            millis_since_quorum_ack: metrics.millis_since_quorum_ack,
            stamps_bounded: self.stamps_bounded.load(Ordering::Relaxed),
        }
    }

    /// Builds a snapshot of everything applied so far, then purges the log up to it. Returns
    /// (snapshot index, purged index).
    pub async fn compact(&self) -> Result<(u64, u64), ReadError> {
        let applied = self.applied().log_index;
        let stopped = |e: openraft::error::Fatal<NodeId>| ReadError::Stopped(e.to_string());
        self.raft.trigger().snapshot().await.map_err(stopped)?;
        let metrics = self
            .raft
            .wait(Some(COMPACT_WAIT_MAX))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "snapshot covers the applied index",
            )
            .await
            .map_err(|e| ReadError::NoQuorum(format!("snapshot not built: {e}")))?;
        let snapshot_index = metrics.snapshot.map(|s| s.index).unwrap_or(0);
        self.raft
            .trigger()
            .purge_log(snapshot_index)
            .await
            .map_err(stopped)?;
        let metrics = self
            .raft
            .wait(Some(COMPACT_WAIT_MAX))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= snapshot_index),
                "log purged up to the snapshot",
            )
            .await
            .map_err(|e| ReadError::NoQuorum(format!("log not purged: {e}")))?;
        Ok((snapshot_index, metrics.purged.map(|p| p.index).unwrap_or(0)))
    }

    /// Makes `members` (this node among them) the cluster's first voters. Idempotent: if the
    /// cluster already has exactly these members it returns `Ok(false)`.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, MemberNode>,
    ) -> Result<bool, MembershipError> {
        if !members.contains_key(&self.config.node_id) {
            return Err(MembershipError::Invalid(format!(
                "the members must include this node ({})",
                self.config.node_id
            )));
        }
        let nodes = members.clone();
        let stopped = |e: openraft::error::Fatal<NodeId>| MembershipError::Stopped(e.to_string());
        if !self.raft.is_initialized().await.map_err(stopped)? {
            match self.raft.initialize(nodes.clone()).await {
                Ok(()) => return Ok(true),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(RaftError::APIError(e)) => return Err(MembershipError::Invalid(e.to_string())),
                Err(RaftError::Fatal(e)) => return Err(stopped(e)),
            }
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let same = voters == members.keys().copied().collect::<BTreeSet<_>>()
            && members
                .iter()
                .all(|(id, node)| membership.get_node(id) == Some(node));
        if same {
            Ok(false)
        } else {
            Err(MembershipError::AlreadyInitialized {
                current: membership
                    .nodes()
                    .map(|(id, n)| format!("{id}={} (peers: {})", n.addr, n.peer_addr))
                    .collect::<Vec<_>>()
                    .join(","),
            })
        }
    }

    /// Adds a node as a learner. Returns the log index of the membership entry.
    pub async fn add_learner(
        &self,
        node_id: NodeId,
        node: MemberNode,
    ) -> Result<u64, MembershipError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if membership.membership().get_node(&node_id).is_some() {
            return Err(MembershipError::AlreadyMember { node_id });
        }
        let change = self.raft.add_learner(node_id, node, false);
        self.membership_write(change).await
    }

    /// Makes a learner a voter once it has caught up.
    pub async fn promote(&self, node_id: NodeId) -> Result<u64, MembershipError> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(MembershipError::NotFound(format!(
                "node {node_id} is not a member; add it as a learner first"
            )));
        }
        if membership.voter_ids().any(|id| id == node_id) {
            return Err(MembershipError::AlreadyMember { node_id });
        }
        if let Some(replication) = &metrics.replication {
            let matched = replication
                .get(&node_id)
                .copied()
                .flatten()
                .map(|l| l.index)
                .unwrap_or(0);
            let lag = metrics.last_log_index.unwrap_or(0).saturating_sub(matched);
            if lag > PROMOTE_LAG_MAX {
                return Err(MembershipError::LearnerBehind {
                    node_id,
                    lag,
                    lag_max: PROMOTE_LAG_MAX,
                });
            }
        }
        let change = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false);
        self.membership_write(change).await
    }

    /// Removes a voter or a learner from the cluster.
    pub async fn remove(&self, node_id: NodeId) -> Result<u64, MembershipError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(MembershipError::NotFound(format!(
                "node {node_id} is not a member"
            )));
        }
        let ids = BTreeSet::from([node_id]);
        let change = if membership.voter_ids().any(|id| id == node_id) {
            if membership.voter_ids().count() == 1 {
                return Err(MembershipError::Invalid(
                    "the last voter cannot be removed".to_string(),
                ));
            }
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        let change = self.raft.change_membership(change, false);
        self.membership_write(change).await
    }

    async fn membership_write(
        &self,
        change: impl std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<crate::types::TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>,
            >,
        >,
    ) -> Result<u64, MembershipError> {
        let result = tokio::time::timeout(MEMBERSHIP_WAIT_MAX, change)
            .await
            .map_err(|_| {
                MembershipError::NoQuorum(format!(
                    "not committed within {} s",
                    MEMBERSHIP_WAIT_MAX.as_secs()
                ))
            })?;
        match result {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                let (leader_id, leader_addr) = self.leader_hint();
                Err(MembershipError::NotLeader {
                    leader_id,
                    leader_addr,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => Err(match e {
                ChangeMembershipError::InProgress(e) => MembershipError::InProgress(e.to_string()),
                ChangeMembershipError::LearnerNotFound(e) => {
                    MembershipError::NotFound(e.to_string())
                }
                ChangeMembershipError::EmptyMembership(e) => {
                    MembershipError::Invalid(e.to_string())
                }
            }),
            Err(RaftError::Fatal(e)) => Err(MembershipError::Stopped(e.to_string())),
        }
    }

    /// Stops Raft. Storage is durable at every acknowledged point, so nothing needs flushing.
    /// Resolves when Raft has stopped on its own, with why: a storage error (a full disk, an
    /// I/O error) or a panic in its core. This node commits and applies nothing after that, and
    /// only a restart recovers it, so the caller stops serving and exits for its supervisor to
    /// restart it. Never resolves for the stop [`RaftNode::shutdown`] asks for.
    pub async fn fatal(&self) -> FatalError {
        let mut metrics = self.raft.metrics();
        loop {
            let core = CoreRun::of(&metrics.borrow_and_update().running_state);
            match core {
                CoreRun::Running => {}
                CoreRun::Stopped => return std::future::pending().await,
                CoreRun::Failed(fatal) => return fatal,
            }
            if metrics.changed().await.is_err() {
                // The core's task ended, and its metrics with it. It says why it stops before
                // it ends, unless it panicked.
                // Bound first: the metrics' guard must not be held across an await.
                let core = CoreRun::of(&metrics.borrow().running_state);
                return match core {
                    CoreRun::Failed(fatal) => fatal,
                    CoreRun::Stopped => std::future::pending().await,
                    CoreRun::Running => FatalError {
                        reason: "the raft core ended without saying why (a panic)".to_string(),
                    },
                };
            }
        }
    }

    /// Stops Raft, then syncs both databases' write-ahead logs, so that what was written
    /// unsynced (the log store's committed hint) survives too. What was
    /// acknowledged is durable without this; a failed sync is only logged.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let log_store = self.log_store.clone();
        let state_machine = self.state_machine.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            log_store.flush().and_then(|()| state_machine.flush())
        })
        .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "sync the write-ahead logs at shutdown"),
            Err(e) => tracing::warn!(error = %e, "sync the write-ahead logs at shutdown"),
        }
    }
}

/// Whether openraft's core runs, as its metrics' `running_state` says.
enum CoreRun {
    Running,
    /// It stopped because it was asked to.
    Stopped,
    /// It stopped on a storage error or a panic.
    Failed(FatalError),
}

impl CoreRun {
    fn of(running_state: &Result<(), Fatal<NodeId>>) -> CoreRun {
        match running_state {
            Ok(()) => CoreRun::Running,
            Err(Fatal::Stopped) => CoreRun::Stopped,
            Err(fatal) => CoreRun::Failed(FatalError {
                reason: fatal.to_string(),
            }),
        }
    }
}
