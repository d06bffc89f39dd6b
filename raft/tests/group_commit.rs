//! Group commit on one node: commands proposed together share Raft entries, every one gets its
//! own outcome, and seqs stay dense and unique.

mod support;

use std::collections::BTreeSet;

use tempfile::TempDir;
use warrant_proto::log::{self, outcome};

const N_COMMANDS: usize = 200;

fn register_human(i: usize) -> log::Command {
    support::registration(format!("register-{i}"), format!("human-{i}"), String::new())
}

// A current-thread runtime makes the test deterministic: `join_all` enqueues every proposal in
// its first poll, before the proposer task runs, so the proposer finds them all waiting.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_commands_share_entries() {
    let dir = TempDir::new().expect("temp dir");
    let node = support::single_leader(dir.path()).await;

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
