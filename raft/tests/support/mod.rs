//! Test data and setup shared by raft's tests: log entries full of registrations, and a
//! one-member node.

#![allow(dead_code)] // Each test binary uses a subset of the helpers.

use openraft::{CommittedLeaderId, EntryPayload, LogId};
use prost::Message;
use warrant_proto::log::{self, command::Kind};
use warrant_raft::storage::{BatchPayload, Entry};

/// An admin's `RegisterHuman` of `human_id` under `idempotency_key`, named `display_name`.
pub fn registration(
    idempotency_key: String,
    human_id: String,
    display_name: String,
) -> log::Command {
    log::Command {
        idempotency_key,
        request_digest: vec![7; 32],
        actor: Some(log::Actor {
            kind: log::PrincipalKind::Admin as i32,
            id: "admin".into(),
            on_behalf_of: vec![],
        }),
        kind: Some(Kind::RegisterHuman(log::RegisterHuman {
            human_id,
            display_name,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A one-member cluster in `dir`, started and leading.
pub async fn single_leader(dir: &std::path::Path) -> warrant_raft::RaftNode {
    let config = warrant_raft::RaftConfig::new(1, "127.0.0.1:1".into(), dir.to_path_buf());
    let node = warrant_raft::RaftNode::start(config).await.expect("start");
    node.initialize_single().await.expect("initialize");
    node.wait_for_leader(std::time::Duration::from_secs(30))
        .await
        .expect("a leader");
    node
}

/// Entry `index` (term 1), a batch of one admin `RegisterHuman` per `i` in `humans`, each
/// human named by `display_name(i)`: the shape of a full group-commit batch of writes.
pub fn registrations_entry(
    index: u64,
    humans: std::ops::Range<usize>,
    display_name: impl Fn(usize) -> String,
) -> Entry {
    let commands = humans
        .map(|i| {
            let mut command = registration(
                format!("register-{i}"),
                format!("human-{i:09}"),
                display_name(i),
            );
            if let Some(Kind::RegisterHuman(human)) = &mut command.kind {
                human.email = format!("human-{i}@example.com");
            }
            command
        })
        .collect();
    let batch = log::Batch {
        time_unix_ms: 1_764_000_000_000 + index,
        commands,
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(BatchPayload(batch.encode_to_vec())),
    }
}
