//! The auditor's log between real `warrant` processes: reads as of a point of the log on every
//! node (and on a node that joined from a snapshot), checkpoints of the three nodes agreeing and
//! merging into one note, a watcher resuming without gap or duplicate, the export verified by
//! `warrant audit verify` (and failing at the tampered seq), a rolled-back data dir refused or
//! caught by a monitor, and a node killed under writes whose export still verifies.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use support::{
    AgentCredential, Node,
    audit::{
        CATCH_UP_WAIT_MAX, SIGNED_CHECKPOINT_FILE, audit_public_key, checkpoint, copy_dir,
        export_lines, export_to, local, merge_notes, reason, restore_data_dir, scratch,
        signature_verifies, split_note, wait_clock_past, warrant, write_lines,
    },
    cluster::Cluster,
};
use tonic::Code;
use warrant_identity::audit::merkle;
use warrant_proto::{
    api::{
        self, Consistency, ReadOptions, delegation_service_client::DelegationServiceClient,
        identity_service_client::IdentityServiceClient,
    },
    log,
};

const AUDIENCE: &str = "https://calendar.example/mcp";
const HUMAN: &str = "hana";
const AGENT: &str = "hana-assistant";

/// Snapshot every 50 entries and keep 5 behind it, so a short test compacts its log.
fn compacting() -> toml::Table {
    let mut extra = toml::Table::new();
    extra.insert("snapshot_logs_since_last".into(), toml::Value::Integer(50));
    extra.insert("snapshot_logs_kept".into(), toml::Value::Integer(5));
    extra
}

/// A point of the log: the state after the event at `seq`, stamped `time_ms`.
#[derive(Clone, Copy, Debug)]
struct Point {
    seq: u64,
    time_ms: u64,
}

/// The event at `seq` as `node` lists it.
async fn event_at(node: &Node, seq: u64) -> log::Event {
    let request = api::ListEventsRequest {
        from_seq: seq,
        limit: 1,
        read: Some(support::linearizable()),
    };
    let page = node
        .audit()
        .list_events(node.admin(request))
        .await
        .expect("ListEvents")
        .into_inner();
    page.events.into_iter().next().expect("the event at seq")
}

/// Records the point of `seq` and waits until the clock has moved past it, so the next step's
/// events are stamped strictly later.
async fn point(node: &Node, seq: u64) -> Point {
    let time_ms = event_at(node, seq).await.time_unix_ms;
    wait_clock_past(time_ms + 1).await;
    Point { seq, time_ms }
}

/// What the agent and the delegation looked like after each step.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    agent: Option<(i32, Vec<String>)>,
    delegation_revoked: Option<bool>,
    in_force: usize,
}

/// The steps (register, delegate, rotate, revoke, disable) through node 1, with their points:
/// index 0 is the point before the agent exists.
async fn five_steps(node: &Node) -> (Vec<Point>, String) {
    node.register_service("calendar", AUDIENCE, &["read_events", "create_event"])
        .await;
    let before = node.register_human(HUMAN).await.seq;
    let mut points = vec![point(node, before).await];
    let agent = AgentCredential::new(AGENT);
    let seq = node.register_agent(AGENT, HUMAN, &agent.secret).await.seq;
    points.push(point(node, seq).await);

    let grant = api::CreateDelegationRequest {
        grantee_agent_id: AGENT.to_string(),
        scopes: vec!["read_events".to_string()],
        audiences: vec![AUDIENCE.to_string()],
        task: "read the calendar".to_string(),
        expires_at_unix_s: support::now_unix_s() + 3600,
        grantor_human_id: HUMAN.to_string(),
        ..Default::default()
    };
    let created = DelegationServiceClient::new(node.channel())
        .create_delegation(node.admin(grant))
        .await
        .expect("CreateDelegation")
        .into_inner();
    let delegation_id = created.delegation.expect("a delegation").delegation_id;
    points.push(point(node, created.seq).await);

    let rotate = api::RotateCredentialRequest {
        agent_id: AGENT.to_string(),
        old_credential_id: "secret-1".to_string(),
        credential: Some(api::NewCredential {
            credential_id: "secret-2".to_string(),
            kind: Some(api::new_credential::Kind::ClientSecret(hex::encode(
                rand::random::<[u8; 24]>(),
            ))),
        }),
        ..Default::default()
    };
    let seq = node
        .identity()
        .rotate_credential(node.admin(rotate))
        .await
        .expect("RotateCredential")
        .into_inner()
        .seq;
    points.push(point(node, seq).await);

    let revoke = api::RevokeRequest {
        delegation_id: delegation_id.clone(),
        reason: "done".to_string(),
        ..Default::default()
    };
    let seq = node
        .tokens()
        .revoke(node.admin(revoke))
        .await
        .expect("Revoke the delegation")
        .into_inner()
        .seq;
    points.push(point(node, seq).await);

    let disable = api::SetStatusRequest {
        entity: log::EntityKind::Agent as i32,
        id: AGENT.to_string(),
        disabled: true,
        reason: "retired".to_string(),
        ..Default::default()
    };
    let seq = node
        .identity()
        .set_status(node.admin(disable))
        .await
        .expect("SetStatus")
        .into_inner()
        .seq;
    points.push(point(node, seq).await);
    (points, delegation_id)
}

fn expected_after(step: usize) -> Expected {
    let active = api::PrincipalStatus::Active as i32;
    let disabled = api::PrincipalStatus::Disabled as i32;
    let creds = |id: &str| vec![id.to_string()];
    match step {
        0 => Expected {
            agent: None,
            delegation_revoked: None,
            in_force: 0,
        },
        1 => Expected {
            agent: Some((active, creds("secret-1"))),
            delegation_revoked: None,
            in_force: 0,
        },
        2 => Expected {
            agent: Some((active, creds("secret-1"))),
            delegation_revoked: Some(false),
            in_force: 1,
        },
        3 => Expected {
            agent: Some((active, creds("secret-2"))),
            delegation_revoked: Some(false),
            in_force: 1,
        },
        4 => Expected {
            agent: Some((active, creds("secret-2"))),
            delegation_revoked: Some(true),
            in_force: 0,
        },
        _ => Expected {
            agent: Some((disabled, creds("secret-2"))),
            delegation_revoked: Some(true),
            in_force: 0,
        },
    }
}

/// `at` with the barrier AT_LEAST `applied`: the node has applied every step before answering.
fn read_at(at: api::as_of::Point, applied: u64) -> ReadOptions {
    ReadOptions {
        consistency: Consistency::AtLeast as i32,
        at_least_seq: applied,
        as_of: Some(api::AsOf { point: Some(at) }),
    }
}

/// What `node` answers as of `at`.
async fn observed(
    node: &Node,
    delegation_id: &str,
    at: api::as_of::Point,
    applied: u64,
) -> Expected {
    let request = api::GetAgentRequest {
        agent_id: AGENT.to_string(),
        read: Some(read_at(at, applied)),
    };
    let agent = match node.identity().get_agent(node.admin(request)).await {
        Ok(agent) => {
            let agent = agent.into_inner();
            Some((agent.status, agent.credential_ids))
        }
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("GetAgent as of {at:?} on node {}: {status}", node.node_id()),
    };
    let request = api::GetDelegationRequest {
        delegation_id: delegation_id.to_string(),
        read: Some(read_at(at, applied)),
    };
    let delegation_revoked = match DelegationServiceClient::new(node.channel())
        .get_delegation(node.admin(request))
        .await
    {
        Ok(d) => Some(d.into_inner().revoked),
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("GetDelegation as of {at:?}: {status}"),
    };
    let mut in_force = 0;
    if agent.is_some() {
        let access = effective_access(node, at, applied).await;
        in_force = access.delegations.iter().filter(|d| d.in_force).count();
        let status = access.agent.as_ref().map(|a| a.status);
        assert_eq!(
            status,
            agent.as_ref().map(|a| a.0),
            "EffectiveAccess's agent as of {at:?}"
        );
    }
    Expected {
        agent,
        delegation_revoked,
        in_force,
    }
}

async fn effective_access(
    node: &Node,
    at: api::as_of::Point,
    applied: u64,
) -> api::EffectiveAccessResponse {
    let request = api::EffectiveAccessRequest {
        agent_id: AGENT.to_string(),
        human_id: HUMAN.to_string(),
        as_of: Some(api::AsOf { point: Some(at) }),
        read: Some(ReadOptions {
            consistency: Consistency::AtLeast as i32,
            at_least_seq: applied,
            as_of: None,
        }),
    };
    let access = node
        .audit()
        .effective_access(node.admin(request))
        .await
        .expect("EffectiveAccess")
        .into_inner();
    if let api::as_of::Point::Seq(seq) = at {
        assert_eq!(
            access.answered_at_seq, seq,
            "EffectiveAccess answers at the seq asked"
        );
    }
    let checkpoint = access
        .checkpoint
        .as_ref()
        .expect("an answer carries a checkpoint");
    assert!(
        checkpoint.tree_size >= access.answered_at_seq,
        "the checkpoint covers the answer: {} < {}",
        checkpoint.tree_size,
        access.answered_at_seq
    );
    access
}

/// Every point, by seq and by a time strictly between it and the next step, on `node`.
async fn check_every_point(node: &Node, points: &[Point], delegation_id: &str) {
    let applied = points.last().expect("points").seq;
    for (step, p) in points.iter().enumerate() {
        let between = match points.get(step + 1) {
            Some(next) => p.time_ms + (next.time_ms - p.time_ms) / 2,
            None => p.time_ms,
        };
        for at in [
            api::as_of::Point::Seq(p.seq),
            api::as_of::Point::TimeUnixMs(between),
        ] {
            assert_eq!(
                observed(node, delegation_id, at, applied).await,
                expected_after(step),
                "node {} as of {at:?} (after step {step})",
                node.node_id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_answers_as_of_each_step_and_so_does_one_installed_from_a_snapshot() {
    let mut cluster = Cluster::start_with(3, compacting()).await;
    let (points, delegation_id) = five_steps(cluster.node(1)).await;
    for id in 1..=3 {
        check_every_point(cluster.node(id), &points, &delegation_id).await;
    }
    // Compact the log, then add a node: it gets the state (and its versions) by snapshot.
    let leader = cluster.leader().await;
    for i in 0..120 {
        cluster
            .node(leader)
            .register_human(&format!("filler-{i}"))
            .await;
    }
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT_MAX;
    while support::cluster::status_of(cluster.node(leader).channel())
        .await
        .expect("Status")
        .purged_index
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader did not compact its log"
        );
        tokio::time::sleep(support::READY_POLL_INTERVAL).await;
    }
    cluster.add_learner(4, compacting()).await;
    cluster.converged().await;
    for id in 1..=4 {
        check_every_point(cluster.node(id), &points, &delegation_id).await;
    }
}

async fn write_humans(node: &Node, prefix: &str, n: usize) -> u64 {
    let mut seq = 0;
    for i in 0..n {
        seq = node.register_human(&format!("{prefix}-{i}")).await.seq;
    }
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_nodes_sign_the_same_checkpoint_and_their_signatures_merge() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let last = write_humans(cluster.node(leader), "h", 12).await;
    cluster.converged().await;
    let mut notes = Vec::new();
    let mut keys = Vec::new();
    for id in 1..=3 {
        let node = cluster.node(id);
        let c = checkpoint(node, true, None)
            .await
            .expect("a fresh checkpoint");
        assert_eq!(
            c.tree_size, last,
            "node {id} signs the size every node applied"
        );
        assert_eq!(c.node_id, id);
        let (_, _, public) = support::audit::parse_verifier_key(&c.verifier_key);
        assert_eq!(
            public,
            audit_public_key(node),
            "node {id} signs with its data dir's key"
        );
        assert!(
            c.verifier_key
                .starts_with(&format!("{}#node-{id}+", c.origin))
        );
        notes.push(c.note);
        keys.push(c.verifier_key);
    }
    let (body, _) = split_note(&notes[0]);
    assert!(
        body.starts_with(&format!("warrant.test/audit\n{last}\n")),
        "a tlog-checkpoint body: {body}"
    );
    for (i, note) in notes.iter().enumerate() {
        let (other, lines) = split_note(note);
        assert_eq!(other, body, "every node signs byte-identical bodies");
        assert_eq!(lines.len(), 1);
        for (j, key) in keys.iter().enumerate() {
            assert_eq!(signature_verifies(&body, &lines[0], key), i == j);
        }
    }
    let merged = merge_notes(&notes.iter().map(String::as_str).collect::<Vec<_>>());
    let (merged_body, lines) = split_note(&merged);
    assert_eq!(merged_body, body);
    assert_eq!(lines.len(), 3);
    for (line, key) in lines.iter().zip(&keys) {
        assert!(signature_verifies(&body, line, key));
    }
    // The merged note is a trusted checkpoint `warrant audit verify` accepts for node 1's export.
    let node = cluster.node(1);
    let (export, trusted) = (scratch(node, "export.jsonl"), scratch(node, "merged.note"));
    export_to(node, &export, 0).await;
    std::fs::write(&trusted, &merged).unwrap();
    let mut args = vec!["audit", "verify", export.to_str().unwrap(), "--trusted"];
    args.push(trusted.to_str().unwrap());
    for key in &keys {
        args.extend(["--key", key.as_str()]);
    }
    let (ok, stdout, stderr) = warrant(&args, cluster.admin_token());
    assert!(ok, "verify with the merged note: {stdout}{stderr}");
}

/// Watches `node` from `from_seq`, appending each seq received to `seqs`, until `stop` says so.
async fn watch_until(node: &Node, seqs: &mut Vec<u64>, stop: impl Fn(&[u64]) -> bool) {
    let from_seq = seqs.last().map_or(1, |last| last + 1);
    let mut stream = node
        .audit()
        .watch(node.admin(api::WatchRequest { from_seq }))
        .await
        .expect("Watch")
        .into_inner();
    while !stop(seqs) {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("a Watch message within 30 s")
            .expect("the Watch stream")
            .expect("the stream goes on");
        seqs.extend(message.events.iter().map(|e| e.seq));
    }
    // Dropping the stream disconnects the watcher.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_disconnected_under_writes_resumes_without_gap_or_duplicate() {
    const WRITES: usize = 300;
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let mut identity = IdentityServiceClient::new(cluster.node(leader).channel());
    let token = format!("Bearer {}", cluster.admin_token());
    let writer = tokio::spawn(async move {
        for i in 0..WRITES {
            let request = api::RegisterHumanRequest {
                human_id: format!("w-{i}"),
                display_name: format!("W {i}"),
                email: format!("w{i}@example.com"),
                ..Default::default()
            };
            identity
                .register_human(support::with_auth(Some(&token), request))
                .await
                .expect("RegisterHuman");
        }
    });
    let watcher = if leader == 2 { 3 } else { 2 };
    let other = 6 - leader - watcher;
    let mut seqs = Vec::new();
    watch_until(cluster.node(watcher), &mut seqs, |s| s.len() >= 40).await;
    assert!(
        !writer.is_finished(),
        "the first disconnect happens under writes"
    );
    watch_until(cluster.node(watcher), &mut seqs, |s| s.len() >= 120).await;
    // And from another node, as a client that fails over would.
    writer.await.expect("the writer");
    let last = cluster.node(leader).all_events().await.last().unwrap().seq;
    watch_until(cluster.node(other), &mut seqs, |s| s.last() >= Some(&last)).await;
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "gapless, no duplicate"
    );
}

/// `record`'s leaf hash as the export writes it.
fn leaf_b64(record: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update([0x00]);
    hash.update(record);
    STANDARD.encode(hash.finalize())
}

/// Runs `warrant audit verify` with `-o json` and returns (exit success, the report).
fn verify_json(admin_token: &str, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["audit", "verify", "-o", "json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = warrant(&all, admin_token);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (ok, report)
}

fn flipped_byte_fails_at_its_seq(node: &Node, token: &str, key: &str, lines: &[serde_json::Value]) {
    // A flipped byte of the record of seq 5: that leaf no longer matches.
    let mut tampered = lines.to_vec();
    let mut record = STANDARD
        .decode(tampered[4]["record"].as_str().unwrap())
        .unwrap();
    let at = record.len() / 2;
    record[at] ^= 0x01;
    tampered[4]["record"] = STANDARD.encode(&record).into();
    let bad = scratch(node, "flipped.jsonl");
    write_lines(&bad, &tampered);
    let (ok, report) = verify_json(token, &[bad.to_str().unwrap(), "--key", key]);
    assert!(!ok);
    assert_eq!(report["failure"]["kind"], "leaf_mismatch", "{report}");
    assert_eq!(report["failure"]["seq"], 5);
}

fn forged_line_is_found_by_bisection(
    node: &Node,
    token: &str,
    key: &str,
    lines: &[serde_json::Value],
) {
    let endpoint = node.addr();
    // A forged seq 7 with its leaf re-hashed: only the root says so; offline no seq is named,
    // against the node the bisection names 7.
    let mut forged = lines.to_vec();
    let mut event = log::Event::decode(
        STANDARD
            .decode(forged[6]["record"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    event.idempotency_key = "forged".to_string();
    let record = event.encode_to_vec();
    forged[6]["record"] = STANDARD.encode(&record).into();
    forged[6]["leaf_hash"] = leaf_b64(&record).into();
    // The JSON view follows, or the view check would name seq 7 offline already.
    forged[6]["event"]["idempotency_key"] = "forged".into();
    let bad = scratch(node, "forged.jsonl");
    write_lines(&bad, &forged);
    let (ok, report) = verify_json(token, &[bad.to_str().unwrap(), "--key", key]);
    assert!(!ok);
    assert_eq!(report["failure"]["kind"], "root_mismatch", "{report}");
    assert!(report["failure"]["seq"].is_null());
    let (ok, report) = verify_json(
        token,
        &[bad.to_str().unwrap(), "--key", key, "--endpoint", &endpoint],
    );
    assert!(!ok);
    assert_eq!(report["failure"]["seq"], 7, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_verifies_with_the_cli_and_a_tampered_one_fails_at_its_seq() {
    let node = Node::start().await;
    let token = node.admin_auth().trim_start_matches("Bearer ").to_string();
    let endpoint = node.addr();
    write_humans(&node, "h", 12).await;
    let (ok, key, err) = warrant(&["audit", "keys", "--endpoint", &endpoint], &token);
    assert!(ok, "audit keys: {err}");
    let key = key.trim().to_string();
    let old = scratch(&node, "old.note");
    let (ok, _, err) = warrant(
        &[
            "audit",
            "checkpoint",
            "--fresh",
            "--endpoint",
            &endpoint,
            "--out",
            old.to_str().unwrap(),
        ],
        &token,
    );
    assert!(ok, "audit checkpoint: {err}");
    let last = write_humans(&node, "more", 5).await;
    let file = scratch(&node, "export.jsonl");
    let (ok, out, err) = warrant(
        &[
            "audit",
            "export",
            "--endpoint",
            &endpoint,
            "--out",
            file.to_str().unwrap(),
        ],
        &token,
    );
    assert!(ok, "audit export: {out}{err}");
    let path = file.to_str().unwrap();

    let (ok, text, err) = warrant(&["audit", "verify", path, "--key", &key], &token);
    assert!(
        ok && text.starts_with(&format!("OK: {last} events")),
        "{text}{err}"
    );
    let (ok, report) = verify_json(
        &token,
        &[path, "--key", &key, "--trusted", old.to_str().unwrap()],
    );
    assert!(ok, "{report}");
    assert_eq!(report["tree_size"], last);
    assert!(report["trusted_size"].as_u64().unwrap() < last);

    let lines = export_lines(&file);
    flipped_byte_fails_at_its_seq(&node, &token, &key, &lines);
    forged_line_is_found_by_bisection(&node, &token, &key, &lines);

    // A checkpoint newer than the file: rolled back, as the client sees it.
    write_humans(&node, "later", 2).await;
    let newer = scratch(&node, "newer.note");
    let c = checkpoint(&node, true, None)
        .await
        .expect("a fresh checkpoint");
    std::fs::write(&newer, c.note).unwrap();
    let (ok, report) = verify_json(
        &token,
        &[path, "--key", &key, "--trusted", newer.to_str().unwrap()],
    );
    assert!(!ok);
    assert_eq!(report["failure"]["kind"], "trusted_larger", "{report}");
}

/// Waits until `node` signs a fresh checkpoint of at least `size`; returns it.
async fn caught_up_checkpoint(node: &Node, size: u64) -> api::Checkpoint {
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT_MAX;
    loop {
        match checkpoint(node, true, None).await {
            Ok(c) if c.tree_size >= size => return c,
            Ok(_) | Err(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {} did not sign a checkpoint of {size} within {CATCH_UP_WAIT_MAX:?}",
            node.node_id()
        );
        tokio::time::sleep(support::READY_POLL_INTERVAL).await;
    }
}

/// `later` extends `earlier`: the node proves it, and the proof holds against both roots.
async fn assert_consistent(node: &Node, earlier: &api::Checkpoint, later: &api::Checkpoint) {
    let request = api::ProveConsistencyRequest {
        old_size: earlier.tree_size,
        new_size: later.tree_size,
        read: None,
    };
    let proof = node
        .audit()
        .prove_consistency(node.admin(request))
        .await
        .expect("ProveConsistency")
        .into_inner();
    let hashes: Vec<merkle::Hash> = proof
        .hashes
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    let old: merkle::Hash = earlier.root_hash.as_slice().try_into().unwrap();
    let new: merkle::Hash = later.root_hash.as_slice().try_into().unwrap();
    merkle::verify_consistency(earlier.tree_size, later.tree_size, &old, &new, &hashes)
        .expect("the later checkpoint extends the earlier one");
}

/// Stops every node, then starts `restored` alone with its data dir replaced by `saved` (and
/// the signed-checkpoint record of now, if `keep_record`).
async fn restore_alone(
    cluster: &mut Cluster,
    restored: u64,
    saved: &std::path::Path,
    keep_record: bool,
) {
    for id in 1..=3 {
        cluster.node_mut(id).kill();
    }
    let node = cluster.node_mut(restored);
    let record =
        std::fs::read(node.data_dir().join(SIGNED_CHECKPOINT_FILE)).expect("a signed record");
    restore_data_dir(node, saved);
    if keep_record {
        std::fs::write(node.data_dir().join(SIGNED_CHECKPOINT_FILE), record).unwrap();
    }
    node.start_again_alone().await;
}

async fn start_peers(cluster: &mut Cluster, except: u64) {
    for id in (1..=3).filter(|id| *id != except) {
        cluster.node_mut(id).start_again().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_data_dir_is_refused_or_caught_then_catches_up_and_signs_consistently() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    write_humans(cluster.node(leader), "a", 10).await;
    cluster.converged().await;
    let first = checkpoint(cluster.node(3), true, None)
        .await
        .expect("a checkpoint");
    cluster.node_mut(3).kill();
    let saved = scratch(cluster.node(3), "data-earlier");
    copy_dir(&cluster.node(3).data_dir(), &saved);
    cluster.node_mut(3).start_again().await;
    let leader = cluster.leader().await;
    write_humans(cluster.node(leader), "b", 10).await;
    cluster.converged().await;
    let newer = caught_up_checkpoint(cluster.node(3), first.tree_size + 10).await;

    // With the record of what it signed: the node refuses to serve a checkpoint (tamper 5).
    restore_alone(&mut cluster, 3, &saved, true).await;
    let refused = checkpoint(cluster.node(3), false, Some(local()))
        .await
        .expect_err("rolled back");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert_eq!(reason(&refused), "AUDIT_ROLLBACK");
    start_peers(&mut cluster, 3).await;
    let caught_up = caught_up_checkpoint(cluster.node(3), newer.tree_size).await;
    assert_consistent(cluster.node(3), &newer, &caught_up).await;

    // Without it (the whole data dir rolled back, tamper 11): a monitor holding the newer
    // checkpoint sees a smaller signed size.
    restore_alone(&mut cluster, 3, &saved, false).await;
    let answer = checkpoint(cluster.node(3), false, Some(local()))
        .await
        .expect("the old checkpoint");
    assert!(
        answer.tree_size < newer.tree_size,
        "the monitor holding size {} is shown {}",
        newer.tree_size,
        answer.tree_size
    );
    let (body, lines) = split_note(&answer.note);
    assert!(
        signature_verifies(&body, &lines[0], &newer.verifier_key),
        "a genuine older note"
    );
    start_peers(&mut cluster, 3).await;
    let caught_up = caught_up_checkpoint(cluster.node(3), newer.tree_size).await;
    assert_consistent(cluster.node(3), &newer, &caught_up).await;
    assert_consistent(cluster.node(3), &first, &caught_up).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_writes_restarts_with_a_tree_as_long_as_its_log() {
    const WRITES: usize = 200;
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let victim = if leader == 1 { 2 } else { 1 };
    let mut identity = IdentityServiceClient::new(cluster.node(leader).channel());
    let token = format!("Bearer {}", cluster.admin_token());
    let writer = tokio::spawn(async move {
        for i in 0..WRITES {
            let request = api::RegisterHumanRequest {
                human_id: format!("k-{i}"),
                ..Default::default()
            };
            identity
                .register_human(support::with_auth(Some(&token), request))
                .await
                .expect("RegisterHuman");
        }
    });
    // Kill the follower once it has applied part of the writes, mid-stream.
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT_MAX;
    while cluster.node(victim).digest().await.applied_seq < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writes do not reach the follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.node_mut(victim).kill();
    cluster.node_mut(victim).start_again().await;
    writer.await.expect("the writer");
    cluster.converged().await;
    let node = cluster.node(victim);
    let last = node.all_events().await.last().unwrap().seq;
    let c = caught_up_checkpoint(node, last).await;
    assert_eq!(c.tree_size, last, "the tree is exactly as long as the log");
    let file = scratch(node, "export.jsonl");
    export_to(node, &file, 0).await;
    let (ok, report) = verify_json(
        cluster.admin_token(),
        &[file.to_str().unwrap(), "--key", &c.verifier_key],
    );
    assert!(ok, "{report}");
    assert_eq!(report["tree_size"], last);
}

/// Reads `warrant audit tail -o json` lines from `child` until one has seq `last`; returns every
/// seq read.
fn tail_until(stdout: &mut impl std::io::BufRead, last: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut line = String::new();
    while seqs.last() != Some(&last) {
        line.clear();
        let read = stdout.read_line(&mut line).expect("read the tail's output");
        assert!(read > 0, "the tail stopped after {seqs:?}");
        let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON event");
        seqs.push(
            event["seq"]
                .as_str()
                .expect("seq as proto3 JSON")
                .parse()
                .unwrap(),
        );
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_tails_across_a_node_restart_and_queries_by_kind() {
    let mut node = Node::start().await;
    let token = node.admin_auth().trim_start_matches("Bearer ").to_string();
    let endpoint = node.addr();
    let first = write_humans(&node, "t", 5).await;
    let mut tail = support::warrant_command()
        .args([
            "audit",
            "tail",
            "--from-seq",
            "1",
            "-o",
            "json",
            "--endpoint",
            &endpoint,
        ])
        .env("WARRANT_CLI_ADMIN_TOKEN", &token)
        .env("WARRANT_CLI_CA", support::Certs::shared().ca_file())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the tail");
    let mut stdout = std::io::BufReader::new(tail.stdout.take().unwrap());
    let mut seqs = tail_until(&mut stdout, first);
    // The node goes away and comes back on its port: the tail reconnects from its last seq + 1.
    node.restart().await;
    let last = write_humans(&node, "u", 5).await;
    seqs.extend(tail_until(&mut stdout, last));
    tail.kill().expect("stop the tail");
    tail.wait().expect("reap the tail");
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "every event once, in order"
    );

    let (ok, out, err) = warrant(
        &[
            "audit",
            "query",
            "--kind",
            "human_registered",
            "-o",
            "json",
            "--endpoint",
            &endpoint,
        ],
        &token,
    );
    assert!(ok, "audit query: {err}");
    let kinds: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    assert_eq!(kinds.len(), 10, "the ten humans: {out}");
    assert!(kinds.iter().all(|e| e.get("human_registered").is_some()));
}
