//! A follower that joins behind more entries than one peer message holds still catches up.
//!
//! Method: a leader alone commits full-size entries (about 1 MiB each) summing past the peer
//! message limit, then a second node joins as a learner. openraft sends a lagging follower up to
//! `max_payload_entries` (256) entries at once; unbounded by bytes, that AppendEntries would be
//! refused by the transport's message limit, or outlast its one-heartbeat timeout, on every retry.
//! The learner must reach the leader's last log index within a bound, with the same state.

mod support;

use std::{net::SocketAddr, time::Duration};

use tempfile::TempDir;
use tokio::net::TcpListener;
use warrant_identity::state_digest;
use warrant_proto::log;
use warrant_raft::{MemberNode, RaftConfig, RaftNode};

/// Entries the leader commits before the learner joins, each carrying one command of
/// `COMMAND_BYTES`: together far past the 64 MiB peer message limit.
const N_ENTRIES: usize = 72;
/// Just under the proposer's 1 MiB batch limit, so each command is an entry of its own.
const COMMAND_BYTES: usize = 1000 * 1024;
/// Generous for a debug build on two busy cores: the catch-up, about 72 MiB over loopback,
/// took 1.6 s. Without the byte bound on AppendEntries the learner applied nothing in 20 s.
const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A node serving its peer service on a loopback listener of its own.
struct TestNode {
    node: RaftNode,
    peer_addr: SocketAddr,
    _dir: TempDir,
}

async fn start_node(node_id: u64) -> TestNode {
    let dir = TempDir::new().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let peer_addr = listener.local_addr().expect("local addr");
    let mut config = RaftConfig::new(node_id, peer_addr.to_string(), dir.path().to_path_buf());
    config.peer_advertise_addr = peer_addr.to_string();
    let node = RaftNode::start(config).await.expect("start");
    let (auth, service) = node.peer_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(auth)
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    TestNode {
        node,
        peer_addr,
        _dir: dir,
    }
}

/// A registration whose display name is `COMMAND_BYTES` long: far over the field's limit, so
/// apply refuses it, but the entry carrying it is as large as a full batch all the same.
fn big_command(i: usize) -> log::Command {
    support::registration(
        format!("big-{i}"),
        format!("human-{i}"),
        "x".repeat(COMMAND_BYTES),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_behind_more_than_a_peer_message_catches_up() {
    let leader = start_node(1).await;
    leader.node.initialize_single().await.expect("initialize");
    leader
        .node
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");

    // --- the leader commits entries the learner will lag behind
    let mut last_index = 0;
    for i in 0..N_ENTRIES {
        let proposal = leader.node.propose(big_command(i)).await.expect("propose");
        assert!(last_index < proposal.log_index, "one entry per command");
        last_index = proposal.log_index;
    }

    // --- a learner joins and must catch up
    let learner = start_node(2).await;
    let member = MemberNode {
        addr: learner.peer_addr.to_string(),
        peer_addr: learner.peer_addr.to_string(),
    };
    let joined_index = leader
        .node
        .add_learner(2, member)
        .await
        .expect("add learner");
    assert!(last_index < joined_index, "the membership entry comes last");
    let started = tokio::time::Instant::now();
    let caught_up = tokio::time::timeout(CATCH_UP_WAIT_MAX, async {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        while learner.node.applied().log_index < joined_index {
            poll.tick().await;
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "the learner applied {} of {joined_index} entries within {CATCH_UP_WAIT_MAX:?}",
        learner.node.applied().log_index
    );
    eprintln!(
        "caught up {N_ENTRIES} entries of {COMMAND_BYTES} bytes in {:?}",
        started.elapsed()
    );
    assert_eq!(
        state_digest(&learner.node.reader()).expect("digest"),
        state_digest(&leader.node.reader()).expect("digest"),
        "the learner holds the leader's state"
    );
    learner.node.shutdown().await;
    leader.node.shutdown().await;
}
