//! The nemesis: carries out a [`Schedule`]'s steps on a running cluster.
//!
//! Steps name their targets by role (the leader, a follower); the nemesis resolves a role when
//! the step comes due, so the same schedule file means the same faults on every replay. It keeps
//! what it did (paused, skewed, filled, armed) so that [`Nemesis::heal_all`] can undo all of it.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context as _;
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use crate::{
    clock,
    cluster::ChaosCluster,
    schedule::{Action, Target},
};

/// One line of the nemesis's log: when (ms from the run's start), what, on which nodes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Applied {
    pub at_ms: u64,
    pub action: String,
    pub nodes: Vec<u64>,
}

pub struct Nemesis {
    /// The node the workloads should aim half their reads at (0: none).
    pub faulted: Arc<AtomicU64>,
    paused: BTreeSet<u64>,
    skewed: BTreeSet<u64>,
    filled: BTreeSet<u64>,
    armed: bool,
    /// The crash failpoint [`Action::ArmFailpoint`] arms.
    failpoint: String,
    pub log: Vec<Applied>,
    /// What each Compact on a full disk answered.
    pub compact_answers: Vec<String>,
}

impl Nemesis {
    pub fn new(faulted: Arc<AtomicU64>, failpoint: &str) -> Nemesis {
        Nemesis {
            faulted,
            paused: BTreeSet::new(),
            skewed: BTreeSet::new(),
            filled: BTreeSet::new(),
            armed: false,
            failpoint: failpoint.to_string(),
            log: Vec::new(),
            compact_answers: Vec::new(),
        }
    }

    /// Carries out one action; `at_ms` is only for the log.
    pub async fn apply(
        &mut self,
        cluster: &mut ChaosCluster,
        action: &Action,
        at_ms: u64,
    ) -> anyhow::Result<()> {
        let nodes = match action {
            Action::Kill { target } => self.kill(cluster, target).await?,
            Action::Pause { target } => self.pause(cluster, target).await?,
            Action::Resume => self.resume(cluster)?,
            Action::Isolate { target } => {
                let id = resolve(cluster, target).await?;
                cluster.net.isolate(id).context("isolate")?;
                self.fault(&[id])
            }
            Action::OneWay { from, to } => {
                let from = resolve(cluster, from).await?;
                let to = resolve_other(cluster, to, from).await?;
                cluster.net.one_way(from, to).context("one-way partition")?;
                self.fault(&[from, to])
            }
            Action::SkewClock { target, offset_s } => self.skew(cluster, target, *offset_s).await?,
            Action::ArmFailpoint { after_applies, .. } => self.arm(cluster, *after_applies).await?,
            Action::FillDisk { target } => self.fill(cluster, target).await?,
            Action::FreeDisk => self.free(cluster)?,
            Action::Heal => {
                cluster.net.heal().context("heal the network")?;
                self.faulted.store(0, Ordering::Relaxed);
                cluster.ids()
            }
            Action::UnskewClocks => self.unskew(cluster).await?,
            Action::RestartDead => {
                if std::mem::take(&mut self.armed) {
                    clear_env(cluster, "FAILPOINTS");
                }
                restart_dead(cluster).await?
            }
        };
        self.log.push(Applied {
            at_ms,
            action: format!("{action:?}"),
            nodes,
        });
        Ok(())
    }

    /// Undoes every fault: the network healed, paused nodes resumed, disks freed, skewed and
    /// armed nodes restarted plain, and every dead node started again.
    pub async fn heal_all(&mut self, cluster: &mut ChaosCluster) -> anyhow::Result<()> {
        cluster.net.heal().context("heal the network")?;
        self.resume(cluster)?;
        self.free(cluster)?;
        for id in std::mem::take(&mut self.skewed) {
            cluster.node_mut(id).kill();
        }
        if std::mem::take(&mut self.armed) {
            clear_env(cluster, "FAILPOINTS");
        }
        restart_dead(cluster).await?;
        self.faulted.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn fault(&self, nodes: &[u64]) -> Vec<u64> {
        self.faulted.store(nodes[0], Ordering::Relaxed);
        nodes.to_vec()
    }

    async fn kill(
        &mut self,
        cluster: &mut ChaosCluster,
        target: &Target,
    ) -> anyhow::Result<Vec<u64>> {
        let ids = match target {
            Target::All => cluster.ids(),
            other => vec![resolve(cluster, other).await?],
        };
        for id in &ids {
            cluster.node_mut(*id).kill();
        }
        Ok(self.fault(&ids))
    }

    async fn pause(
        &mut self,
        cluster: &mut ChaosCluster,
        target: &Target,
    ) -> anyhow::Result<Vec<u64>> {
        let id = resolve(cluster, target).await?;
        cluster.node_mut(id).pause(true)?;
        self.paused.insert(id);
        Ok(self.fault(&[id]))
    }

    fn resume(&mut self, cluster: &mut ChaosCluster) -> anyhow::Result<Vec<u64>> {
        let ids: Vec<u64> = std::mem::take(&mut self.paused).into_iter().collect();
        for id in &ids {
            cluster.node_mut(*id).pause(false)?;
        }
        self.faulted.store(0, Ordering::Relaxed);
        Ok(ids)
    }

    /// Restarts the target with its wall clock moved by `offset_s` (libfaketime; monotonic
    /// clocks untouched).
    async fn skew(
        &mut self,
        cluster: &mut ChaosCluster,
        target: &Target,
        offset_s: i64,
    ) -> anyhow::Result<Vec<u64>> {
        let id = resolve(cluster, target).await?;
        let env = clock::skew_env(offset_s).context("a skewed clock")?;
        cluster.node_mut(id).kill();
        cluster.start_node(id, &env).await?;
        self.skewed.insert(id);
        Ok(self.fault(&[id]))
    }

    /// Restarts every node with the run's crash failpoint armed: each aborts the
    /// `after_applies + 1`-th time it passes that point from now. With `apply_after_commit` all
    /// nodes apply the same entries, so the leader dies with replies in flight, and so do the
    /// others; the storage points fire where each node's own appends, votes or snapshots reach
    /// them.
    async fn arm(
        &mut self,
        cluster: &mut ChaosCluster,
        after_applies: u32,
    ) -> anyhow::Result<Vec<u64>> {
        let actions = format!("{}={after_applies}*off->1*return->off", self.failpoint);
        let ids = cluster.ids();
        for id in &ids {
            cluster.node_mut(*id).kill();
            set_env(cluster, *id, "FAILPOINTS", &actions);
        }
        // Not waited for: a storage failpoint can fire while a node starts (its first appends
        // or votes); RestartDead brings back whatever died.
        for id in &ids {
            cluster.spawn_node(*id)?;
        }
        self.armed = true;
        Ok(self.fault(&ids))
    }

    /// Restarts every skewed node on the true clock.
    async fn unskew(&mut self, cluster: &mut ChaosCluster) -> anyhow::Result<Vec<u64>> {
        let ids: Vec<u64> = std::mem::take(&mut self.skewed).into_iter().collect();
        for id in &ids {
            cluster.node_mut(*id).kill();
            cluster.start_node(*id, &[]).await?;
        }
        self.faulted.store(0, Ordering::Relaxed);
        Ok(ids)
    }

    async fn fill(
        &mut self,
        cluster: &mut ChaosCluster,
        target: &Target,
    ) -> anyhow::Result<Vec<u64>> {
        let id = resolve(cluster, target).await?;
        let disk = cluster
            .node(id)
            .disk()
            .context("the disk-full nemesis needs small disks (ClusterSpec::small_disks)")?;
        disk.fill().context("fill the disk")?;
        self.filled.insert(id);
        // A few KB of writes land in space RocksDB's WAL has already allocated, so a full disk
        // is met first by whatever writes new files: a snapshot, as an operator's Compact
        // makes one. Its answer (refused, or the node gone) is the log's, not a failure here.
        let request = cluster.admin(api::CompactRequest {});
        let answer = ClusterServiceClient::new(cluster.channel(id))
            .compact(request)
            .await;
        self.compact_answers.push(match answer {
            Ok(reply) => format!("node {id}: Compact answered {:?}", reply.into_inner()),
            Err(status) => format!(
                "node {id}: Compact refused: {:?} {}",
                status.code(),
                status.message()
            ),
        });
        Ok(self.fault(&[id]))
    }

    fn free(&mut self, cluster: &mut ChaosCluster) -> anyhow::Result<Vec<u64>> {
        let ids: Vec<u64> = std::mem::take(&mut self.filled).into_iter().collect();
        for id in &ids {
            if let Some(disk) = cluster.node(*id).disk() {
                disk.free().context("free the disk")?;
            }
        }
        Ok(ids)
    }
}

fn set_env(cluster: &mut ChaosCluster, id: u64, name: &str, value: &str) {
    let env = &mut cluster.node_mut(id).env;
    env.retain(|(key, _)| key != name);
    env.push((name.to_string(), value.to_string()));
}

fn clear_env(cluster: &mut ChaosCluster, name: &str) {
    for id in cluster.ids() {
        cluster.node_mut(id).env.retain(|(key, _)| key != name);
    }
}

/// Starts every node whose process is gone (killed, or crashed on its own).
pub async fn restart_dead(cluster: &mut ChaosCluster) -> anyhow::Result<Vec<u64>> {
    let mut started = Vec::new();
    for id in cluster.ids() {
        if !cluster.node_mut(id).alive() {
            cluster.start_node(id, &[]).await?;
            started.push(id);
        }
    }
    Ok(started)
}

/// The node a role names now: the leader, or the n-th follower of the current leader.
async fn resolve(cluster: &mut ChaosCluster, target: &Target) -> anyhow::Result<u64> {
    let leader = cluster.leader().await?;
    Ok(match target {
        Target::Leader | Target::All => leader,
        Target::Follower(n) => {
            let followers: Vec<u64> = cluster
                .ids()
                .into_iter()
                .filter(|id| *id != leader)
                .collect();
            followers[*n as usize % followers.len()]
        }
    })
}

/// Like [`resolve`], but never `other` (a one-way partition needs two nodes).
async fn resolve_other(
    cluster: &mut ChaosCluster,
    target: &Target,
    other: u64,
) -> anyhow::Result<u64> {
    let id = resolve(cluster, target).await?;
    if id != other {
        return Ok(id);
    }
    let rest: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != other)
        .collect();
    Ok(rest[0])
}
