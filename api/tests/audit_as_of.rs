//! Reads as of a past point, EffectiveAccess and Export against an in-process single-node
//! Warrant, through the versions, the time index and the tree apply keeps.

use std::time::Instant;

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use tonic::{Code, transport::Channel};
use warrant_proto::api::{
    self, AsOf, Consistency, ReadOptions, as_of, audit_service_client::AuditServiceClient,
    identity_service_client::IdentityServiceClient,
};

mod support;

use support::{WAIT_MAX, admin, first_write, human, start};

fn at(point: as_of::Point) -> Option<ReadOptions> {
    Some(ReadOptions {
        consistency: Consistency::Linearizable as i32,
        at_least_seq: 0,
        as_of: Some(AsOf { point: Some(point) }),
    })
}

async fn get_human(
    identity: &mut IdentityServiceClient<Channel>,
    read: Option<ReadOptions>,
) -> Result<api::Human, tonic::Status> {
    identity
        .get_human(admin(api::GetHumanRequest {
            human_id: "alice".to_owned(),
            read,
        }))
        .await
        .map(|r| r.into_inner())
}

/// Waits until the wall clock has moved past `unix_ms` (bounded), so two writes get distinct
/// batch stamps.
async fn clock_past(unix_ms: u64) {
    let deadline = Instant::now() + WAIT_MAX;
    while now_ms() <= unix_ms && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_as_of_effective_access_and_export() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let support::Started { channel, stop, .. } = start(data_dir.path()).await;
    let mut identity = IdentityServiceClient::new(channel.clone());
    first_write(&mut identity, "first").await;
    let registered = identity
        .register_human(admin(human("alice")))
        .await
        .expect("register")
        .into_inner()
        .seq;
    let between = now_ms();
    clock_past(between).await;
    let updated = identity
        .update_human(admin(api::UpdateHumanRequest {
            human_id: "alice".to_owned(),
            display_name: "Alice Renamed".to_owned(),
            ..Default::default()
        }))
        .await
        .expect("update");
    assert_eq!(updated.into_inner().display_name, "Alice Renamed");

    // As of a seq: before the registration, at it, and now.
    let before = get_human(&mut identity, at(as_of::Point::Seq(registered - 1)))
        .await
        .expect_err("not yet registered");
    assert_eq!(before.code(), Code::NotFound);
    let then = get_human(&mut identity, at(as_of::Point::Seq(registered)))
        .await
        .expect("registered");
    assert_eq!(then.display_name, "Human alice");
    let now = get_human(&mut identity, None).await.expect("now");
    assert_eq!(now.display_name, "Alice Renamed");
    // As of a time between the two writes.
    let at_time = get_human(&mut identity, at(as_of::Point::TimeUnixMs(between)))
        .await
        .expect("at a time");
    assert_eq!(at_time.display_name, "Human alice");
    // A list as of the registration names that seq.
    let list = identity
        .list_humans(admin(api::ListRequest {
            page_size: 10,
            page_token: String::new(),
            read: at(as_of::Point::Seq(registered)),
        }))
        .await
        .expect("ListHumans")
        .into_inner();
    assert_eq!(list.applied_seq, registered);
    assert_eq!(list.humans.len(), 2);
    assert_eq!(list.humans[0].display_name, "Human alice");

    // EffectiveAccess: an agent registered after the point is not found there.
    let agent_seq = identity
        .register_agent(admin(api::RegisterAgentRequest {
            agent_id: "helper".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "assistant".to_owned(),
            client_secret: "helper-secret-helper-secret-1".to_owned(),
            ..Default::default()
        }))
        .await
        .expect("agent")
        .into_inner()
        .seq;
    let mut audit = AuditServiceClient::new(channel.clone());
    let access = audit
        .effective_access(admin(api::EffectiveAccessRequest {
            agent_id: "helper".to_owned(),
            as_of: Some(AsOf {
                point: Some(as_of::Point::Seq(agent_seq)),
            }),
            ..Default::default()
        }))
        .await
        .expect("EffectiveAccess")
        .into_inner();
    assert_eq!(access.answered_at_seq, agent_seq);
    let covering = access.checkpoint.expect("a checkpoint");
    assert!(covering.tree_size >= agent_seq, "{covering:?}");
    assert!(covering.note.contains("\n\n\u{2014} "), "{covering:?}");
    assert!(access.answered_at_unix_ms > 0);
    assert_eq!(access.agent.expect("agent").owner_human_id, "alice");
    assert_eq!(access.owner.expect("owner").display_name, "Alice Renamed");
    let earlier = audit
        .effective_access(admin(api::EffectiveAccessRequest {
            agent_id: "helper".to_owned(),
            as_of: Some(AsOf {
                point: Some(as_of::Point::Seq(agent_seq - 1)),
            }),
            ..Default::default()
        }))
        .await
        .expect_err("not yet registered");
    assert_eq!(earlier.code(), Code::NotFound);

    // Export: every event once, in order, each stored leaf the hash of its exact record.
    let mut stream = audit
        .export(admin(api::ExportRequest::default()))
        .await
        .expect("Export")
        .into_inner();
    let mut text = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        assert_eq!(chunk.jsonl.last(), Some(&b'\n'));
        text.extend(chunk.jsonl);
    }
    let lines: Vec<serde_json::Value> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    let (last, events) = lines.split_last().expect("lines");
    assert_eq!(last["tree_size"], events.len() as u64);
    let note = last["checkpoint"].as_str().expect("a note");
    assert!(
        note.contains(&format!("\n{}\n", events.len())),
        "the note is at the last seq exported: {note}"
    );
    assert!(!last["verifier_key"].as_str().expect("a key").is_empty());
    for (i, line) in events.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 1);
        let record = STANDARD
            .decode(line["record"].as_str().expect("record"))
            .expect("base64");
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(&record);
        assert_eq!(
            line["leaf_hash"].as_str().expect("leaf"),
            STANDARD.encode(hasher.finalize()),
            "leaf {i}"
        );
        assert!(line["event"].is_object());
    }
    assert!(events.len() as u64 >= agent_seq);
    let _ = stop.send(());
}
