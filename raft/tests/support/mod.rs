//! Test data shared by raft's storage tests: log entries full of registrations.

use openraft::{CommittedLeaderId, EntryPayload, LogId};
use prost::Message;
use warrant_proto::log::{self, command::Kind};
use warrant_raft::storage::{BatchPayload, Entry};

/// Entry `index` (term 1), a batch of one admin `RegisterHuman` per `i` in `humans`, each
/// human named by `display_name(i)`: the shape of a full group-commit batch of writes.
pub fn registrations_entry(
    index: u64,
    humans: std::ops::Range<usize>,
    display_name: impl Fn(usize) -> String,
) -> Entry {
    let commands = humans
        .map(|i| log::Command {
            idempotency_key: format!("register-{i}"),
            request_digest: vec![7; 32],
            actor: Some(log::Actor {
                kind: log::PrincipalKind::Admin as i32,
                id: "admin".into(),
                on_behalf_of: vec![],
            }),
            kind: Some(Kind::RegisterHuman(log::RegisterHuman {
                human_id: format!("human-{i:09}"),
                display_name: display_name(i),
                email: format!("human-{i}@example.com"),
                ..Default::default()
            })),
            ..Default::default()
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
