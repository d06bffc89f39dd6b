//! The state machine survives a restart, and a snapshot installed on another node yields the same
//! state, also after that node restarts (the generation switch is durable). A consistent view
//! reads one index while applies go on.

use openraft::{
    CommittedLeaderId, EntryPayload, LogId, RaftSnapshotBuilder, storage::RaftStateMachine,
};
use prost::Message;
use tempfile::TempDir;
use warrant_identity::{query, state_digest};
use warrant_proto::log::{self, command::Kind};
use warrant_raft::{
    STORAGE_CACHE_MIB_DEFAULT,
    storage::{BatchPayload, Entry, SnapshotFile, StateMachineStore, StorageMemory},
};

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn register_human(index: u64, human_id: &str) -> Entry {
    let batch = log::Batch {
        time_unix_ms: 1_764_000_000_000 + index,
        commands: vec![log::Command {
            idempotency_key: format!("register-{human_id}"),
            request_digest: vec![index as u8; 32],
            actor: Some(log::Actor {
                kind: log::PrincipalKind::Admin as i32,
                id: "admin".into(),
                on_behalf_of: vec![],
            }),
            kind: Some(Kind::RegisterHuman(log::RegisterHuman {
                human_id: human_id.into(),
                display_name: String::new(),
                email: String::new(),
                ..Default::default()
            })),
            ..Default::default()
        }],
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(BatchPayload(batch.encode_to_vec())),
    }
}

/// Opens the state machine in `dir` with the default memory budget.
fn open(dir: &std::path::Path) -> StateMachineStore {
    let memory = StorageMemory::new(STORAGE_CACHE_MIB_DEFAULT).expect("default budget");
    StateMachineStore::open(dir, &memory).expect("open state machine")
}

fn digest(sm: &StateMachineStore) -> [u8; 32] {
    state_digest(&sm.reader()).expect("digest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_state_survives_restart_and_snapshot_install() {
    let leader_dir = TempDir::new().expect("temp dir");
    let follower_dir = TempDir::new().expect("temp dir");

    tracing::info!("--- apply three entries in one call, then restart");
    let mut leader = open(leader_dir.path());
    let entries = vec![
        Entry {
            log_id: log_id(1),
            payload: EntryPayload::Blank,
        },
        register_human(2, "alice"),
        register_human(3, "bob"),
    ];
    let responses = leader.apply(entries).await.expect("apply");
    assert_eq!(responses.len(), 3, "one response per entry");
    let before = digest(&leader);
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(3)));
    drop(leader);

    let mut leader = open(leader_dir.path());
    let (applied, _) = leader.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(3)));
    assert_eq!(digest(&leader), before, "state changed across a restart");
    assert_eq!(
        query::applied_seq(&leader.reader()).expect("seq"),
        2,
        "two events, dense seqs"
    );
    let current = leader
        .get_current_snapshot()
        .await
        .expect("current snapshot")
        .expect("a snapshot exists");
    assert_eq!(
        current.meta, snapshot.meta,
        "the snapshot survives a restart"
    );

    tracing::info!("--- install the snapshot on a fresh node, then restart it");
    let mut follower = open(follower_dir.path());
    follower
        .install_snapshot(&current.meta, current.snapshot)
        .await
        .expect("install");
    assert_eq!(
        digest(&follower),
        before,
        "installed state differs from the leader's"
    );
    assert!(
        query::human(&follower.reader(), "bob")
            .expect("read")
            .is_some()
    );
    drop(follower);
    let mut follower = open(follower_dir.path());
    let (applied, _) = follower.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(3)));
    assert_eq!(
        digest(&follower),
        before,
        "the installed generation did not survive a restart"
    );

    tracing::info!("--- the follower keeps applying after the snapshot");
    follower
        .apply(vec![register_human(4, "carol")])
        .await
        .expect("apply after install");
    assert_eq!(query::applied_seq(&follower.reader()).expect("seq"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_refused_and_leaves_state_intact() {
    let leader_dir = TempDir::new().expect("temp dir");
    let follower_dir = TempDir::new().expect("temp dir");
    let mut leader = open(leader_dir.path());
    leader
        .apply(vec![register_human(1, "alice")])
        .await
        .expect("apply");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");

    let mut follower = open(follower_dir.path());
    follower
        .apply(vec![register_human(1, "zed")])
        .await
        .expect("apply");
    let before = digest(&follower);

    // Flip one byte in the middle of the file: the checksum must catch it before any install.
    let mut bytes = std::fs::read(&snapshot.snapshot.path).expect("read snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let corrupt = follower_dir.path().join("corrupt.snap");
    std::fs::write(&corrupt, bytes).expect("write corrupt copy");
    let result = follower
        .install_snapshot(&snapshot.meta, Box::new(SnapshotFile { path: corrupt }))
        .await;
    assert!(result.is_err(), "a corrupt snapshot was installed");
    assert_eq!(
        digest(&follower),
        before,
        "a refused snapshot changed the state"
    );
}

/// A consistent view names the index it reads at and keeps seeing that state while applies go
/// on: what the Digest RPC and the chaos checker compare must be a digest of the index it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_view_stays_at_its_index_while_applies_go_on() {
    let dir = TempDir::new().expect("temp dir");
    let mut sm = open(dir.path());
    sm.apply(vec![register_human(1, "alice"), register_human(2, "bob")])
        .await
        .expect("apply");
    let at_two = digest(&sm);
    let reader = sm.reader();
    let runtime = tokio::runtime::Handle::current();

    let (index_in_view, digest_in_view) = tokio::task::block_in_place(|| {
        reader
            .consistent(|view, index| {
                // Entry 3 lands while the view is open; the view must not see it.
                runtime
                    .block_on(sm.apply(vec![register_human(3, "carol")]))
                    .expect("apply inside the view");
                (index, state_digest(view).expect("digest in the view"))
            })
            .expect("consistent view")
    });
    assert_eq!(index_in_view, 2, "the view's index");
    assert_eq!(
        digest_in_view, at_two,
        "the view saw an apply made after it opened"
    );

    let at_three = digest(&sm);
    assert_ne!(at_three, at_two, "entry 3 changed nothing");
    let (index_now, digest_now) = reader
        .consistent(|view, index| (index, state_digest(view).expect("digest")))
        .expect("consistent view");
    assert_eq!(
        (index_now, digest_now),
        (3, at_three),
        "a new view sees entry 3"
    );
}
