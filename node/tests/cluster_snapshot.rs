//! Snapshots between real `warrant` processes: a node that joins after the log was compacted
//! catches up from a streamed snapshot and holds the whole audit trail; a snapshot of a million
//! events streams without either side's memory growing with it; the admin CLI drives membership.

mod support;

use std::time::Instant;

use support::{Node, cluster::Cluster, linearizable};
use warrant_proto::api::{self, Consistency, ReadOptions};

/// Snapshot every 50 entries and keep 5 behind it, so a short test compacts its log.
fn compacting() -> toml::Table {
    let mut extra = toml::Table::new();
    extra.insert("snapshot_logs_since_last".into(), toml::Value::Integer(50));
    extra.insert("snapshot_logs_kept".into(), toml::Value::Integer(5));
    extra
}

fn local() -> Option<ReadOptions> {
    Some(ReadOptions {
        consistency: Consistency::Local as i32,
        at_least_seq: 0,
        as_of: None,
    })
}

/// Runs the `warrant` binary with `args` and the admin token in the environment.
/// Runs the CLI as an operator would: the admin token and the cluster CA from its environment.
fn warrant(args: &[&str], admin_token: &str) -> (bool, String, String) {
    let output = support::warrant_command()
        .args(args)
        .env("WARRANT_CLI_ADMIN_TOKEN", admin_token)
        .env("WARRANT_CLI_CA", support::Certs::shared().ca_file())
        .output()
        .expect("run warrant");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_after_compaction_gets_a_snapshot_and_the_whole_history() {
    let mut cluster = Cluster::start_with(3, compacting()).await;
    let leader = cluster.leader().await;
    // One entry per write: sequential writes through the leader.
    for i in 0..150 {
        cluster.node(leader).register_human(&format!("h{i}")).await;
    }
    // Snapshots are built in the background: wait (bounded) for the leader to compact.
    let deadline = tokio::time::Instant::now() + support::cluster::CONVERGE_WAIT_MAX;
    loop {
        let status = support::cluster::status_of(cluster.node(leader).channel())
            .await
            .expect("Status");
        if status.purged_index > 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader did not compact its log: {status:?}"
        );
        tokio::time::sleep(support::READY_POLL_INTERVAL).await;
    }
    let leader_events = cluster.node(leader).all_events().await;

    // `cluster init` again with the same members is a no-op; with others it is refused.
    let members: Vec<String> = cluster
        .nodes
        .values()
        .map(|n| format!("{}={}", n.node_id(), n.addr()))
        .collect();
    let peers: Vec<String> = cluster
        .nodes
        .values()
        .map(|n| format!("{}={}", n.node_id(), n.peer_addr()))
        .collect();
    let endpoint = cluster.node(1).addr();
    let (ok, stdout, stderr) = warrant(
        &[
            "cluster",
            "init",
            "--endpoint",
            &endpoint,
            "--members",
            &members.join(","),
            "--peers",
            &peers.join(","),
        ],
        cluster.admin_token(),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("already initialised"), "{stdout}");
    let (ok, _, stderr) = warrant(
        &[
            "cluster",
            "init",
            "--endpoint",
            &endpoint,
            "--members",
            &members[0],
            "--peers",
            &peers[0],
        ],
        cluster.admin_token(),
    );
    assert!(!ok);
    assert!(stderr.contains("ALREADY_INITIALIZED"), "{stderr}");

    // Node 4 joins as a learner through the CLI, sent to a follower: it follows the leader hint.
    let newcomer = Node::start_member(4, cluster.admin_token(), compacting()).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let (ok, stdout, stderr) = warrant(
        &[
            "member",
            "add",
            "--endpoint",
            &cluster.node(follower).addr(),
            "--node-id",
            "4",
            "--address",
            &newcomer.addr(),
            "--peer-address",
            &newcomer.peer_addr(),
        ],
        cluster.admin_token(),
    );
    assert!(ok, "member add failed: {stderr}");
    assert!(stdout.contains("added learner 4"), "{stdout}");
    cluster.nodes.insert(4, newcomer);
    cluster.node_mut(4).wait_serving().await;
    cluster.converged().await;

    let joined = cluster.node(4);
    let status = support::cluster::status_of(joined.channel())
        .await
        .expect("Status");
    assert_eq!(status.role, "LEARNER");
    assert!(
        status.snapshot_index > 0,
        "node 4 caught up from a snapshot (snapshot index {})",
        status.snapshot_index
    );
    // Reads about events older than the compaction point, from node 4's own state.
    let first = joined
        .identity()
        .get_human(joined.admin(api::GetHumanRequest {
            human_id: "h0".into(),
            read: local(),
        }))
        .await
        .expect("GetHuman h0 on node 4")
        .into_inner();
    assert_eq!(first.human_id, "h0");
    // The whole history, from seq 1, identical to what the leader held before node 4 came, and
    // one event more: node 4 serves only once its signing key is published.
    let events = joined.all_events().await;
    assert!(events.len() > leader_events.len());
    assert_eq!(events[..leader_events.len()], leader_events[..]);

    // Promote it, then check `cluster status -o json` reports four voters with no lag.
    let (ok, _, stderr) = warrant(
        &[
            "member",
            "promote",
            "--endpoint",
            &endpoint,
            "--node-id",
            "4",
        ],
        cluster.admin_token(),
    );
    assert!(ok, "member promote failed: {stderr}");
    cluster.converged().await;
    let (ok, stdout, stderr) = warrant(
        &["cluster", "status", "--endpoint", &endpoint, "-o", "json"],
        cluster.admin_token(),
    );
    assert!(ok, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    let rows = rows.as_array().expect("an array of members");
    assert_eq!(rows.len(), 4, "{stdout}");
    assert!(rows.iter().all(|r| r["voter"] == true), "{stdout}");
    assert_eq!(
        rows.iter().filter(|r| r["role"] == "LEADER").count(),
        1,
        "{stdout}"
    );
    assert!(
        rows.iter().all(|r| r["lag"].as_u64().is_some()),
        "every member reports a lag: {stdout}"
    );

    // Remove node 4 again; the cluster keeps serving LINEARIZABLE reads.
    let (ok, _, stderr) = warrant(
        &[
            "member",
            "remove",
            "--endpoint",
            &endpoint,
            "--node-id",
            "4",
        ],
        cluster.admin_token(),
    );
    assert!(ok, "member remove failed: {stderr}");
    let status = support::cluster::status_of(cluster.node(1).channel())
        .await
        .expect("Status");
    assert!(status.members.iter().all(|m| m.node_id != 4), "{status:?}");
    let read = cluster
        .node(1)
        .identity()
        .get_human(cluster.node(1).admin(api::GetHumanRequest {
            human_id: "h149".into(),
            read: Some(linearizable()),
        }))
        .await
        .expect("GetHuman after removal");
    assert_eq!(read.into_inner().human_id, "h149");
}

/// The resident set size and its peak, in KiB, from /proc.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Events in the large-snapshot test.
const LARGE_EVENTS: u64 = 1_000_000;
/// Humans per `RegisterHumans` call: the import limit (`warrant_identity::limits::HUMANS_PER_IMPORT_MAX`).
const HUMANS_PER_IMPORT: u64 = 1_000;
/// Concurrent loaders: enough to keep a proposer entry in flight while the next is decided.
const LOADERS: u64 = 4;

/// One loader's `batch`-th import: humans `l{loader}-{n}`, each with a name and an email as an
/// HR export would carry them.
fn import(loader: u64, batch: u64) -> api::RegisterHumansRequest {
    let humans = (0..HUMANS_PER_IMPORT)
        .map(|i| {
            let human_id = format!("l{loader}-{}", batch * HUMANS_PER_IMPORT + i);
            api::NewHuman {
                display_name: format!("Human {human_id}"),
                email: format!("{human_id}@example.com"),
                human_id,
                ..Default::default()
            }
        })
        .collect();
    api::RegisterHumansRequest {
        humans,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_event_snapshot_streams_without_memory_growing_with_it() {
    let mut cluster = Cluster::start(1).await;
    let node = cluster.node(1);
    let seq_before = node.digest().await.applied_seq;
    let started = Instant::now();
    let mut loaders = Vec::new();
    let imports_per_loader = LARGE_EVENTS / HUMANS_PER_IMPORT / LOADERS;
    for loader in 0..LOADERS {
        let channel = node.channel();
        let admin = node.admin_auth();
        loaders.push(tokio::spawn(async move {
            let mut client = api::identity_service_client::IdentityServiceClient::new(channel);
            for batch in 0..imports_per_loader {
                let request = support::with_auth(Some(&admin), import(loader, batch));
                let reply = client
                    .register_humans(request)
                    .await
                    .expect("load")
                    .into_inner();
                assert_eq!(
                    reply.seq - reply.first_seq + 1,
                    HUMANS_PER_IMPORT,
                    "{reply:?}"
                );
            }
        }));
    }
    for loader in loaders {
        loader.await.expect("loader");
    }
    let loaded_in = started.elapsed();
    let digest = node.digest().await;
    assert!(digest.applied_seq >= LARGE_EVENTS);
    assert_eq!(
        digest.applied_seq,
        seq_before + LARGE_EVENTS,
        "one event per human"
    );
    // Building a snapshot of a million events takes longer than the harness's RPC deadline.
    let unhurried = support::tls_endpoint(&node.addr())
        .connect()
        .await
        .expect("connect");
    let compacted = api::cluster_service_client::ClusterServiceClient::new(unhurried)
        .compact(node.admin(api::CompactRequest {}))
        .await
        .expect("Compact")
        .into_inner();
    assert!(compacted.purged_index >= compacted.snapshot_index);
    let snapshot_bytes: u64 = std::fs::read_dir(node.data_dir().join("snapshots"))
        .expect("snapshot dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .max()
        .expect("a snapshot file");

    // Reset the leader's peak RSS, so the peak below is the transfer's.
    let leader_pid = node.pid().expect("pid");
    std::fs::write(format!("/proc/{leader_pid}/clear_refs"), "5").expect("reset VmHWM");
    let (leader_rss_before, _) = rss_kib(leader_pid);
    let newcomer = Node::start_member(2, cluster.admin_token(), toml::Table::new()).await;
    let newcomer_pid = newcomer.pid().expect("pid");
    let (newcomer_rss_before, _) = rss_kib(newcomer_pid);
    let transfer = Instant::now();
    node.cluster()
        .add_member(node.admin(api::AddMemberRequest {
            node_id: 2,
            address: newcomer.addr(),
            peer_address: newcomer.peer_addr(),
        }))
        .await
        .expect("AddMember");
    cluster.nodes.insert(2, newcomer);
    let index = cluster.converged().await;
    let transfer = transfer.elapsed();
    let (_, leader_peak) = rss_kib(leader_pid);
    let (_, newcomer_peak) = rss_kib(newcomer_pid);
    let digests = cluster.digests().await;
    assert!(digests.windows(2).all(|w| w[0].1 == w[1].1), "{digests:?}");
    let status = support::cluster::status_of(cluster.node(2).channel())
        .await
        .expect("Status");
    assert!(
        status.snapshot_index >= compacted.snapshot_index,
        "node 2 installed the snapshot"
    );

    let snapshot_kib = snapshot_bytes / 1024;
    eprintln!(
        "large snapshot: {} events loaded in {:.1} s; snapshot {} MiB at index {}; caught up to index {index} in {:.1} s; \
         leader RSS {} MiB -> peak {} MiB; newcomer RSS {} MiB -> peak {} MiB",
        digest.applied_seq,
        loaded_in.as_secs_f64(),
        snapshot_kib / 1024,
        compacted.snapshot_index,
        transfer.as_secs_f64(),
        leader_rss_before / 1024,
        leader_peak / 1024,
        newcomer_rss_before / 1024,
        newcomer_peak / 1024,
    );
    // Neither side's memory grows by anything near the snapshot's size.
    let growth_max = snapshot_kib / 4;
    assert!(
        leader_peak.saturating_sub(leader_rss_before) < growth_max,
        "leader RSS grew {} KiB sending a {snapshot_kib} KiB snapshot",
        leader_peak.saturating_sub(leader_rss_before)
    );
    assert!(
        newcomer_peak.saturating_sub(newcomer_rss_before) < growth_max,
        "newcomer RSS grew {} KiB receiving a {snapshot_kib} KiB snapshot",
        newcomer_peak.saturating_sub(newcomer_rss_before)
    );
}
