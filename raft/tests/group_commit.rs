//! Group commit on one node: commands proposed together share Raft entries, every one gets its
//! own outcome, and seqs stay dense and unique.

use std::{collections::BTreeSet, time::Duration};

use tempfile::TempDir;
use warrant_proto::log::{self, command::Kind, outcome};
use warrant_raft::{RaftConfig, RaftNode};

const N_COMMANDS: usize = 200;

fn register_human(i: usize) -> log::Command {
    log::Command {
        idempotency_key: format!("register-{i}"),
        request_digest: vec![1; 32],
        actor: Some(log::Actor {
            kind: log::PrincipalKind::Admin as i32,
            id: "admin".into(),
            on_behalf_of: vec![],
        }),
        kind: Some(Kind::RegisterHuman(log::RegisterHuman {
            human_id: format!("human-{i}"),
            display_name: String::new(),
            email: String::new(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

// A current-thread runtime makes the test deterministic: `join_all` enqueues every proposal in
// its first poll, before the proposer task runs, so the proposer finds them all waiting.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_commands_share_entries() {
    let dir = TempDir::new().expect("temp dir");
    let node = RaftNode::start(RaftConfig::new(
        1,
        "127.0.0.1:1".into(),
        dir.path().to_path_buf(),
    ))
    .await
    .expect("start");
    node.initialize_single().await.expect("initialize");
    node.wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");

    let proposals = (0..N_COMMANDS).map(|i| node.propose(register_human(i)));
    let results = futures::future::join_all(proposals).await;

    let mut log_indexes = BTreeSet::new();
    let mut seqs = BTreeSet::new();
    for (i, result) in results.into_iter().enumerate() {
        let proposal = result.unwrap_or_else(|e| panic!("command {i} failed: {e}"));
        let Some(outcome::Result::Accepted(accepted)) = proposal.outcome.result else {
            panic!("command {i} was not accepted: {:?}", proposal.outcome);
        };
        log_indexes.insert(proposal.log_index);
        seqs.insert(accepted.seq);
    }
    assert_eq!(
        seqs,
        (1..=N_COMMANDS as u64).collect::<BTreeSet<_>>(),
        "seqs are dense and unique"
    );
    assert!(
        log_indexes.len() < 10,
        "{N_COMMANDS} commands took {} Raft entries: no group commit",
        log_indexes.len()
    );
    node.shutdown().await;
}
