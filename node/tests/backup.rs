//! Backup and restore between real `warrant` processes, through the real CLI: a backup saved
//! from cluster A under write load restores into a fresh three-node cluster B that starts with
//! no `cluster init`, with A's state digest, events and Merkle root at the backup's index; a
//! quiet save's digest is what Digest says; a corrupt file is refused naming the byte offset of
//! the bad block; and one node restored alone (two of three lost) takes new members.

mod support;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use support::{
    Node, READY_POLL_INTERVAL, audit::warrant, cluster::Cluster, cluster::status_of, with_auth,
};
use tonic::transport::Channel;
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};

/// How long the load may take to reach a count of writes.
const LOAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// Writes committed before the save starts, and after it returns, so that the backup's index
/// lies strictly inside a stream of writes.
const WRITES_AROUND_SAVE: u64 = 30;

/// Humans registered (in imports of [`HUMANS_PER_IMPORT`]) before the load starts, so that the
/// backup spans several 1 MiB blocks (an event and its rows take about 500 bytes).
const PRELOADED_HUMANS: usize = 8000;
/// Humans per RegisterHumans call: the API's limit.
const HUMANS_PER_IMPORT: usize = 1000;

/// Registers [`PRELOADED_HUMANS`] humans through `node`.
async fn preload(node: &Node) {
    for import in 0..PRELOADED_HUMANS / HUMANS_PER_IMPORT {
        let humans = (0..HUMANS_PER_IMPORT)
            .map(|i| {
                let id = format!("pre-{import}-{i}");
                api::NewHuman {
                    display_name: format!("Preloaded {id}"),
                    email: format!("{id}@example.com"),
                    human_id: id,
                    ..Default::default()
                }
            })
            .collect();
        node.identity()
            .register_humans(node.admin(api::RegisterHumansRequest {
                idempotency_key: format!("preload-{import}"),
                humans,
            }))
            .await
            .expect("RegisterHumans");
    }
}

/// Admin writes (RegisterHuman) round-robin through every node until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(channels: Vec<Channel>, admin_auth: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (stop_flag, count, failures) = (stop.clone(), committed.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            while !stop_flag.load(Ordering::SeqCst) {
                let channel = channels[n % channels.len()].clone();
                let request = api::RegisterHumanRequest {
                    human_id: format!("load-{n}"),
                    display_name: format!("Load {n}"),
                    email: format!("load-{n}@example.com"),
                    ..Default::default()
                };
                let result = IdentityServiceClient::new(channel)
                    .register_human(with_auth(Some(&admin_auth), request))
                    .await;
                match result {
                    Ok(_) => count.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failures.fetch_add(1, Ordering::SeqCst),
                };
                n += 1;
            }
        });
        Load {
            stop,
            committed,
            failed,
            task,
        }
    }

    /// Waits until `n` writes have committed in all.
    async fn wait_committed(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + LOAD_WAIT_MAX;
        while self.committed.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the load did not reach {n} writes within {LOAD_WAIT_MAX:?}"
            );
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the load task");
        assert_eq!(self.failed.load(Ordering::SeqCst), 0, "failed writes");
        self.committed.load(Ordering::SeqCst)
    }
}

/// Runs the CLI off the async runtime (it is a blocking process call).
async fn cli(args: Vec<String>, admin_token: &str) -> (bool, String, String) {
    let token = admin_token.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        warrant(&args, &token)
    })
    .await
    .expect("the CLI task")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `warrant snapshot status FILE -o json`, parsed; panics unless it succeeds.
async fn status_json(file: &Path, admin_token: &str) -> serde_json::Value {
    let file = file.display().to_string();
    let (ok, stdout, stderr) = cli(
        strings(&["snapshot", "status", &file, "-o", "json"]),
        admin_token,
    )
    .await;
    assert!(ok, "snapshot status failed: {stderr}");
    serde_json::from_str(&stdout).expect("status JSON")
}

fn u64_of(json: &serde_json::Value, field: &str) -> u64 {
    json[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {json}"))
}

fn str_of<'a>(json: &'a serde_json::Value, field: &str) -> &'a str {
    json[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {json}"))
}

/// The root of the audit tree of `size` leaves, as `node` proves it.
async fn root_at(node: &Node, size: u64) -> Vec<u8> {
    node.audit()
        .prove_inclusion(node.admin(api::ProveInclusionRequest {
            seq: size,
            tree_size: size,
            read: Some(support::linearizable()),
        }))
        .await
        .expect("ProveInclusion")
        .into_inner()
        .root_hash
}

/// `--members` and `--peers` for `nodes`.
fn member_lists(nodes: &[&Node]) -> (String, String) {
    let members = nodes
        .iter()
        .map(|n| format!("{}={}", n.node_id(), n.addr()))
        .collect::<Vec<_>>()
        .join(",");
    let peers = nodes
        .iter()
        .map(|n| format!("{}={}", n.node_id(), n.peer_addr()))
        .collect::<Vec<_>>()
        .join(",");
    (members, peers)
}

/// `warrant snapshot restore FILE --data-dir D --node-id N --members … --peers …`.
fn restore_args(
    file: &Path,
    data_dir: &Path,
    node_id: u64,
    lists: &(String, String),
) -> Vec<String> {
    let (file, data_dir, node_id) = (
        file.display().to_string(),
        data_dir.display().to_string(),
        node_id.to_string(),
    );
    strings(&[
        "snapshot",
        "restore",
        &file,
        "--data-dir",
        &data_dir,
        "--node-id",
        &node_id,
        "--members",
        &lists.0,
        "--peers",
        &lists.1,
    ])
}

/// Restores `file` into `node`'s (new) data dir as one of `members`; panics unless it succeeds.
async fn restore(file: &Path, node: &Node, members: &(String, String), admin_token: &str) {
    let args = restore_args(file, &node.data_dir(), node.node_id(), members);
    let (ok, stdout, stderr) = cli(args, admin_token).await;
    assert!(ok, "restore of node {} failed: {stderr}", node.node_id());
    assert!(stdout.contains("match the backup"), "{stdout}");
}

/// The offset of the header or block of the backup `bytes` that holds byte `at`, walking the
/// blocks' length fields (header, then `length u32, payload, 32-byte checksum` until length 0).
fn block_holding(bytes: &[u8], at: usize) -> u64 {
    let header = warrant_raft::BACKUP_HEADER_LEN as usize;
    if at < header {
        return 0;
    }
    let mut offset = header;
    loop {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4")) as usize;
        let framed = if len == 0 { 4 + 8 + 32 } else { 4 + len + 32 };
        if at < offset + framed {
            return offset as u64;
        }
        offset += framed;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_saved_under_load_restores_into_a_new_cluster() {
    let a = Cluster::start(3).await;
    let token = a.admin_token().to_string();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let file = scratch.path().join("a.wbak");
    preload(a.node(1)).await;
    refuses_an_anonymous_save(a.node(1)).await;
    let leader = a.leader().await;
    let status = save_under_load(&a, leader, &file, &token).await;

    // Status checked every block; it reports what the file holds.
    let bytes = std::fs::read(&file).expect("read the backup");
    assert_eq!(u64_of(&status, "size_bytes"), bytes.len() as u64);
    assert_eq!(
        str_of(&status, "sha256"),
        hex::encode(Sha256::digest(&bytes))
    );
    let events = u64_of(&status, "events");
    assert_eq!(u64_of(&status, "last_seq"), events);

    let (b, lists) = start_restored_cluster(&file, &status, &token).await;
    let a_events = same_history(&a, leader, &b, events, str_of(&status, "merkle_root")).await;
    // B takes writes.
    b[1].register_human("after-restore").await;
    quiet_save_reports_the_digest(&a, leader, scratch.path(), &token).await;

    refuses_a_corrupt_backup(&bytes, scratch.path(), &b[0], &lists, &token).await;
    refuses_a_data_dir_in_use(&file, &b[0], &lists, &token).await;
    one_node_restored_alone_takes_new_members(&file, events, &a_events, &token).await;
}

/// SaveSnapshot is for admins: no credential, no backup.
async fn refuses_an_anonymous_save(node: &Node) {
    let anonymous = node
        .cluster()
        .save_snapshot(api::SaveSnapshotRequest {})
        .await
        .expect_err("a save without a credential is refused");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
}

/// Saves `file` through the CLI from a follower while writes go through every node, with
/// writes committed before the save and after it; returns `snapshot status -o json`.
async fn save_under_load(a: &Cluster, leader: u64, file: &Path, token: &str) -> serde_json::Value {
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let channels = a.live().map(Node::channel).collect();
    let load = Load::start(channels, a.node(1).admin_auth());
    load.wait_committed(WRITES_AROUND_SAVE).await;
    let seq_before = status_of(a.node(follower).channel())
        .await
        .expect("status")
        .applied_seq;
    let endpoint = a.node(follower).addr();
    let file_arg = file.display().to_string();
    let (ok, stdout, stderr) = cli(
        strings(&["snapshot", "save", "--endpoint", &endpoint, &file_arg]),
        token,
    )
    .await;
    assert!(ok, "snapshot save failed: {stderr}");
    assert!(
        !Path::new(&format!("{file_arg}.part")).exists(),
        "the .part file is gone"
    );
    let after_save = load.committed.load(Ordering::SeqCst);
    load.wait_committed(after_save + WRITES_AROUND_SAVE).await;
    let writes = load.stop().await;
    eprintln!("save output:\n{stdout}");
    let status = status_json(file, token).await;
    let events = u64_of(&status, "events");
    assert!(
        seq_before <= events,
        "the backup ({events} events) is older than the save ({seq_before})"
    );
    let final_seq = a.node(leader).digest().await.applied_seq;
    assert!(
        events < final_seq,
        "writes continued past the backup: {events} < {final_seq} ({writes} writes)"
    );
    status
}

/// Cluster B: three new data dirs restored with B's members, then started, with no cluster
/// init. Returns its nodes, serving, and their `--members`/`--peers` lists.
async fn start_restored_cluster(
    file: &Path,
    status: &serde_json::Value,
    token: &str,
) -> (Vec<Node>, (String, String)) {
    let mut b: Vec<Node> = (1..=3)
        .map(|id| Node::unstarted_member(id, token, toml::Table::new()))
        .collect();
    let lists = member_lists(&b.iter().collect::<Vec<_>>());
    for node in &b {
        restore(file, node, &lists, token).await;
    }
    // Node 1 alone has no quorum, so it writes nothing: its digest is the restored state's.
    b[0].start_prepared().await;
    let restored = b[0].digest().await;
    assert_eq!(
        (restored.applied_index, restored.applied_seq),
        (u64_of(status, "index"), u64_of(status, "events"))
    );
    assert_eq!(
        restored.sha256_hex,
        str_of(status, "state_digest"),
        "B's digest is the backup's"
    );
    for node in &mut b[1..] {
        node.start_prepared().await;
    }
    for node in &mut b {
        node.wait_serving().await;
    }
    let b_status = status_of(b[0].channel()).await.expect("B status");
    assert!(b_status.initialized && b_status.has_leader, "{b_status:?}");
    let mut b_members: Vec<(u64, String)> = b_status
        .members
        .iter()
        .map(|m| (m.node_id, m.peer_address.clone()))
        .collect();
    b_members.sort();
    let expected: Vec<(u64, String)> = b.iter().map(|n| (n.node_id(), n.peer_addr())).collect();
    assert_eq!(
        b_members, expected,
        "B's members are the ones restored with"
    );
    (b, lists)
}

/// The same events 1..=N and the same root at N, on A and on every node of B, and that root
/// is the backup's. Returns A's events 1..=N.
async fn same_history(
    a: &Cluster,
    leader: u64,
    b: &[Node],
    events: u64,
    backup_root: &str,
) -> Vec<warrant_proto::log::Event> {
    let mut a_events = a.node(leader).all_events().await;
    a_events.truncate(events as usize);
    let a_root = root_at(a.node(leader), events).await;
    assert_eq!(
        hex::encode(&a_root),
        backup_root,
        "A's root at N is the backup's"
    );
    for node in b {
        let b_events = node.all_events().await;
        assert_eq!(
            &b_events[..events as usize],
            a_events.as_slice(),
            "events 1..={events} on B node {}",
            node.node_id()
        );
        assert_eq!(root_at(node, events).await, a_root, "root at {events}");
    }
    a_events
}

/// How many times the quiet save is retried when a background command (a key retirement, a
/// leader's blank entry) landed between the digest and the save.
const QUIET_SAVE_ATTEMPTS: usize = 5;

/// A save with no writes running: its digest is the one Digest reports at its index. The
/// cluster writes a few commands of its own (signing keys published and retired after a
/// start), so a save whose index moved past the digest's is taken again, a bounded number of
/// times; the digests must be equal whenever the indexes are.
async fn quiet_save_reports_the_digest(a: &Cluster, leader: u64, scratch: &Path, token: &str) {
    let quiet = scratch.join("quiet.wbak");
    let quiet_arg = quiet.display().to_string();
    let endpoint = a.node(leader).addr();
    let mut seen = Vec::new();
    for _ in 0..QUIET_SAVE_ATTEMPTS {
        a.converged().await;
        let digest_now = a.node(leader).digest().await;
        let index_now = digest_now.applied_index;
        let (ok, _, stderr) = cli(
            strings(&["snapshot", "save", "--endpoint", &endpoint, &quiet_arg]),
            token,
        )
        .await;
        assert!(ok, "quiet save failed: {stderr}");
        let quiet_status = status_json(&quiet, token).await;
        let saved_index = u64_of(&quiet_status, "index");
        assert!(
            saved_index >= index_now,
            "the save went back: {saved_index} < {index_now}"
        );
        if saved_index == index_now {
            assert_eq!(str_of(&quiet_status, "state_digest"), digest_now.sha256_hex);
            return;
        }
        seen.push((index_now, saved_index));
    }
    panic!("every quiet save raced a background command: (digest index, saved index) {seen:?}");
}

/// A byte flipped in the middle: status and restore both refuse it, naming the offset of the
/// block that holds the byte, and restore leaves no data dir behind.
async fn refuses_a_corrupt_backup(
    bytes: &[u8],
    scratch: &Path,
    like: &Node,
    lists: &(String, String),
    token: &str,
) {
    let middle = bytes.len() / 2;
    let mut damaged = bytes.to_vec();
    damaged[middle] ^= 0x01;
    let bad = scratch.join("bad.wbak");
    std::fs::write(&bad, &damaged).expect("write the damaged copy");
    let offset = block_holding(bytes, middle);
    assert!(
        offset > warrant_raft::BACKUP_HEADER_LEN,
        "the middle of a multi-block file is past the first block: {} bytes",
        bytes.len()
    );
    let expected = format!("byte offset {offset}");
    let bad_arg = bad.display().to_string();
    let (ok, _, stderr) = cli(strings(&["snapshot", "status", &bad_arg]), token).await;
    assert!(!ok, "status accepted a corrupt file");
    assert!(
        stderr.contains(&expected),
        "status: {stderr} (want {expected})"
    );
    let data_dir = scratch.join("from-bad");
    let (ok, _, stderr) = cli(restore_args(&bad, &data_dir, like.node_id(), lists), token).await;
    assert!(!ok, "restore accepted a corrupt file");
    assert!(
        stderr.contains(&expected),
        "restore: {stderr} (want {expected})"
    );
    assert!(!data_dir.exists(), "a refused restore leaves no data dir");
    eprintln!("corrupt backup refused: {}", stderr.trim());
}

/// Restore writes only into a new or empty data dir.
async fn refuses_a_data_dir_in_use(
    file: &Path,
    node: &Node,
    lists: &(String, String),
    token: &str,
) {
    let (ok, _, stderr) = cli(
        restore_args(file, &node.data_dir(), node.node_id(), lists),
        token,
    )
    .await;
    assert!(!ok, "restore wrote into a data dir in use");
    assert!(stderr.contains("is not empty"), "{stderr}");
}

/// Two of three lost: one node restored as a one-member cluster leads at once, then takes a
/// new member, which catches up from it.
async fn one_node_restored_alone_takes_new_members(
    file: &Path,
    events: u64,
    a_events: &[warrant_proto::log::Event],
    token: &str,
) {
    let mut survivor = Node::unstarted_member(5, token, toml::Table::new());
    let lists = member_lists(&[&survivor]);
    restore(file, &survivor, &lists, token).await;
    survivor.start_prepared().await;
    survivor.wait_serving().await;
    let status = status_of(survivor.channel()).await.expect("status");
    assert_eq!(status.role, "LEADER", "{status:?}");
    let joiner = Node::start_member(6, token, toml::Table::new()).await;
    // Uninitialised, it has nothing to back up.
    let refused = joiner
        .cluster()
        .save_snapshot(joiner.admin(api::SaveSnapshotRequest {}))
        .await
        .expect_err("an uninitialised node refuses to save");
    assert_eq!(
        (refused.code(), support::error_reason(&refused).as_str()),
        (tonic::Code::FailedPrecondition, "NOTHING_TO_BACK_UP"),
        "{refused:?}"
    );
    survivor
        .cluster()
        .add_member(survivor.admin(api::AddMemberRequest {
            node_id: 6,
            address: joiner.addr(),
            peer_address: joiner.peer_addr(),
        }))
        .await
        .expect("AddMember");
    let mut joiner = joiner;
    joiner.wait_serving().await;
    let joined = joiner.all_events().await;
    assert_eq!(
        &joined[..events as usize],
        a_events,
        "the new member's events"
    );
    assert_eq!(
        root_at(&joiner, events).await,
        root_at(&survivor, events).await
    );
}
