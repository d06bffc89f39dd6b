//! A leader that was cut off with writes in flight, then caught up by a snapshot past them,
//! commits again once it leads again.
//!
//! openraft 0.9.25 never answers such writes: the old leader appended them and lost leadership
//! with their responders pending; its log lagged past the new leader's purge, so it was caught up
//! by a snapshot past its own last entry. `install_full_snapshot` truncates (and answers) only
//! when the local log reaches the snapshot's index; the purge that follows answers no one
//! (openraft#1761, fixed upstream in 0.10 by #1762). The proposer keeps at most
//! `BATCHES_IN_FLIGHT_MAX` batches in flight, and stranded ones kept their slots for good: the
//! node, leader again, committed nothing. `ci_tier`'s failpoint_crash found it (seed 15006); this
//! test builds the same path step by step.
//!
//! Needs root, iproute2 and nftables, like the rest of the suite.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use tonic::transport::Channel;
use warrant_chaos::cluster::{ChaosCluster, ClusterSpec, status, with_auth};
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};
use warrant_raft::BATCHES_IN_FLIGHT_MAX;

const TAG: &str = "sw";
const SUBNET: u8 = 60;
/// Snapshots this often, keeping this many entries behind each: the new leader purges past the
/// old one's log after a few dozen writes.
const SNAPSHOT_EVERY_ENTRIES: i64 = 40;
const SNAPSHOT_KEEP_ENTRIES: i64 = 5;
/// Writes the new leader commits while the old one is cut off: enough for two snapshots.
const WRITES_WHILE_CUT_OFF: usize = 100;
/// Attempts at each write that must commit (a leader change can refuse one).
const WRITE_ATTEMPTS: usize = 5;
/// The bound on every condition waited for.
const WAIT_MAX: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A stopping node's own bound (`STOP_WAIT_MAX`), and a little more.
const STOP_WAIT_MAX: Duration = Duration::from_secs(warrant_api::STOP_WAIT_MAX.as_secs() + 5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_pending_writes_a_snapshot_superseded_commits_when_it_leads_again() {
    let mut cluster = ChaosCluster::start(spec())
        .await
        .expect("start the cluster");
    if let Err(error) = scenario(&mut cluster).await {
        let dir = cluster.keep_dir();
        panic!("{error:#}\nnode logs kept in {}", dir.display());
    }
}

fn spec() -> ClusterSpec {
    let mut extra = toml::Table::new();
    extra.insert(
        "snapshot_logs_since_last".into(),
        SNAPSHOT_EVERY_ENTRIES.into(),
    );
    extra.insert("snapshot_logs_kept".into(), SNAPSHOT_KEEP_ENTRIES.into());
    ClusterSpec {
        tag: TAG.into(),
        subnet: SUBNET,
        extra,
        ..ClusterSpec::default()
    }
}

async fn scenario(cluster: &mut ChaosCluster) -> anyhow::Result<()> {
    let old = cluster.leader().await?;
    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
    cluster.net.isolate(old)?;
    let last_stranded = strand_batches(cluster, old).await?;

    let new = leader_among(cluster, &others).await?;
    for i in 0..WRITES_WHILE_CUT_OFF {
        register(cluster, new, &format!("while-cut-off-{i}")).await?;
    }
    wait_for(
        cluster,
        new,
        "the new leader purged past the stranded entries",
        |s| s.purged_index > last_stranded,
    )
    .await?;

    cluster.net.heal()?;
    let caught_up = wait_for(cluster, old, "the old leader installed a snapshot", |s| {
        s.leader_id == new
            && s.snapshot_index > last_stranded
            && s.applied_index >= s.snapshot_index
    })
    .await?;
    println!(
        "node {old}: stranded entries up to {last_stranded}, caught up by the snapshot at {}",
        caught_up.snapshot_index
    );
    for i in 0..BATCHES_IN_FLIGHT_MAX {
        ensure!(
            !exists(cluster, new, &stranded_id(i)).await?,
            "the stranded write {i} committed: the snapshot did not supersede it"
        );
    }

    hand_leadership_to(cluster, old, new).await?;
    // The proof: the old leader, leading again, commits.
    register(cluster, old, "after-the-snapshot").await?;
    ensure!(
        exists(cluster, old, "after-the-snapshot").await?,
        "a committed write is missing"
    );
    Ok(())
}

fn stranded_id(i: usize) -> String {
    format!("stranded-{i}")
}

/// Proposes one batch at a time on the cut-off leader until every batch slot of its proposer is
/// taken by an entry it appended and cannot commit. Returns the last such entry's index.
async fn strand_batches(cluster: &mut ChaosCluster, old: u64) -> anyhow::Result<u64> {
    let before = status(cluster.channel(old)).await?.last_log_index;
    for i in 0..BATCHES_IN_FLIGHT_MAX {
        let channel = cluster.channel(old);
        let request = admin_register(cluster, &stranded_id(i));
        // Never answered in time: the client's deadline ends the call, not the write.
        tokio::spawn(async move {
            IdentityServiceClient::new(channel)
                .register_human(request)
                .await
        });
        let appended = before + i as u64 + 1;
        wait_for(cluster, old, "the cut-off leader appended a write", |s| {
            s.last_log_index >= appended
        })
        .await?;
    }
    let last = status(cluster.channel(old)).await?.last_log_index;
    ensure!(
        last == before + BATCHES_IN_FLIGHT_MAX as u64,
        "the cut-off leader appended {} entries, not one per batch slot ({BATCHES_IN_FLIGHT_MAX})",
        last - before
    );
    Ok(last)
}

/// Makes `target` the leader: a stopping leader hands leadership to its lowest-id caught-up
/// voter, so the third node is stopped and a write made without it first, which leaves `target`
/// the only voter caught up. Then both stopped nodes start again, as followers.
async fn hand_leadership_to(
    cluster: &mut ChaosCluster,
    target: u64,
    leader: u64,
) -> anyhow::Result<()> {
    let third = cluster
        .ids()
        .into_iter()
        .find(|id| *id != target && *id != leader)
        .context("a third node")?;
    cluster.node_mut(third).stop(STOP_WAIT_MAX).await?;
    register(cluster, leader, "without-the-third").await?;
    cluster.node_mut(leader).stop(STOP_WAIT_MAX).await?;
    wait_for(cluster, target, "the hand-over", |s| s.role == "LEADER").await?;
    for id in [third, leader] {
        cluster.start_node(id, &[]).await?;
    }
    let agreed = cluster.leader().await?;
    ensure!(agreed == target, "node {agreed} leads, not node {target}");
    Ok(())
}

/// The leader the running nodes among `ids` agree on.
async fn leader_among(cluster: &mut ChaosCluster, ids: &[u64]) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        let mut seen = Vec::new();
        for id in ids {
            let answer = status(cluster.channel(*id)).await.ok();
            seen.push(answer.and_then(|s| s.has_leader.then_some(s.leader_id)));
        }
        if let Some(Some(leader)) = seen.first()
            && ids.contains(leader)
            && seen.iter().all(|s| *s == Some(*leader))
        {
            return Ok(*leader);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("nodes {ids:?} agreed on no leader among them within {WAIT_MAX:?}: {seen:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Node `id`'s status once `condition` holds of it.
async fn wait_for(
    cluster: &ChaosCluster,
    id: u64,
    what: &str,
    condition: impl Fn(&api::StatusResponse) -> bool,
) -> anyhow::Result<api::StatusResponse> {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        let last = status(cluster.channel(id)).await;
        if let Ok(answer) = &last
            && condition(answer)
        {
            return Ok(answer.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("node {id}: not {what} within {WAIT_MAX:?}; last status: {last:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Registers `human_id` through node `id`, which must commit it within [`WRITE_ATTEMPTS`].
async fn register(cluster: &ChaosCluster, id: u64, human_id: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..WRITE_ATTEMPTS {
        let request = admin_register(cluster, human_id);
        match identity(cluster.channel(id)).register_human(request).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    bail!("node {id}: RegisterHuman {human_id} failed {WRITE_ATTEMPTS} times; last: {last:?}")
}

/// Whether node `id` holds the human, read linearizably.
async fn exists(cluster: &ChaosCluster, id: u64, human_id: &str) -> anyhow::Result<bool> {
    let request = cluster.admin(api::GetHumanRequest {
        human_id: human_id.into(),
        // The default consistency: linearizable.
        read: None,
    });
    match identity(cluster.channel(id)).get_human(request).await {
        Ok(_) => Ok(true),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
        Err(status) => Err(status).with_context(|| format!("node {id}: GetHuman {human_id}")),
    }
}

fn admin_register(
    cluster: &ChaosCluster,
    human_id: &str,
) -> tonic::Request<api::RegisterHumanRequest> {
    with_auth(
        &format!("Bearer {}", cluster.admin_token()),
        api::RegisterHumanRequest {
            human_id: human_id.into(),
            display_name: format!("Human {human_id}"),
            email: format!("{human_id}@example.com"),
            ..Default::default()
        },
    )
}

fn identity(channel: Channel) -> IdentityServiceClient<Channel> {
    IdentityServiceClient::new(channel)
}
