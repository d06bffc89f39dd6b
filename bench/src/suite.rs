//! One repeat of the cluster benchmark on fresh clusters: anchors, every scenario at every
//! concurrency against the leader (and a follower where it makes sense), memory, revocation
//! reach under mixed load, failover.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use indicatif::ProgressBar;
use tonic::transport::Channel;
use warrant_proto::api::{
    self, AuditMode, Consistency, cluster_service_client::ClusterServiceClient,
};

use crate::{
    anchors::{self, Anchors},
    failover::{self, FailoverResult},
    load::{self, Arrival, LoadSpec, Operation},
    plan::{self, Kind, Plan},
    procs::{EtcdCluster, WarrantCluster},
    report::results::{MemoryRecord, RunRecord, Target},
    scenarios::{self, Fixture, Reach},
};

/// Workers of the mixed load that runs while revocation reach is measured.
const REACH_LOAD_CONCURRENCY: usize = 16;
/// Connections per node of that load.
const REACH_LOAD_CONNECTIONS_PER_NODE: usize = 2;
/// The background load runs in stretches of this length until reach is measured.
const REACH_LOAD_STRETCH: Duration = Duration::from_secs(2);

/// What one repeat measured.
pub struct RepeatOutput {
    pub anchors: Anchors,
    pub runs: Vec<RunRecord>,
    pub reach: Option<Reach>,
    pub failovers: Vec<FailoverResult>,
    pub memory: Vec<MemoryRecord>,
}

pub struct Suite {
    pub plan: Plan,
    pub warrant_bin: PathBuf,
    pub etcd_bin: PathBuf,
    pub run_dir: PathBuf,
    pub progress: ProgressBar,
}

/// The clusters of one repeat and what the scenarios need of them.
struct Clusters {
    warrant: WarrantCluster,
    etcd: EtcdCluster,
    leader: u64,
    follower: u64,
    fixture: Fixture,
}

impl Suite {
    /// Prints a line above the progress bar, or plainly when there is no terminal to draw one.
    fn say(&self, line: String) {
        if self.progress.is_hidden() {
            println!("{line}");
        } else {
            self.progress.println(line);
        }
    }

    pub async fn repeat(&self, repeat: usize) -> anyhow::Result<RepeatOutput> {
        let dir = self.run_dir.join(format!("repeat-{repeat}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        // On a quiet machine, before the clusters start.
        let anchor_dir = dir.clone();
        let anchors = tokio::task::spawn_blocking(move || anchors::measure(&anchor_dir))
            .await
            .context("the anchors panicked")??;
        let mut clusters = self.start(&dir, repeat).await?;
        let runs = self.load_runs(&clusters, repeat).await?;
        let etcd_leader = clusters.etcd.leader().await?;
        let events = applied_seq(&clusters, clusters.leader).await?;
        let mut memory = memory(&clusters, etcd_leader, repeat, "load runs", events);
        if repeat == 0 && 0 < self.plan.history_events {
            memory.extend(self.history(&clusters, etcd_leader).await?);
        }
        let reach = if repeat == 0 && 0 < self.plan.reach_samples {
            self.progress
                .set_message("revocation reach under mixed load");
            Some(self.reach(&clusters).await?)
        } else {
            None
        };
        let mut failovers = Vec::new();
        for i in 0..self.plan.failovers_per_repeat {
            self.progress.set_message(format!("failover {}", i + 1));
            let result = failover::run(&mut clusters.warrant, &format!("r{repeat}-{i}")).await?;
            self.say(format!(
                "failover: node {} killed, new leader {} after {:.0} ms, first write after {:.0} ms, {} acknowledged, {} lost",
                result.killed, result.new_leader, result.to_new_leader_ms, result.to_first_write_ms, result.acknowledged, result.lost
            ));
            failovers.push(result);
        }
        clusters.warrant.stop().await;
        clusters.etcd.stop().await;
        Ok(RepeatOutput {
            anchors,
            runs,
            reach,
            failovers,
            memory,
        })
    }

    async fn start(&self, dir: &Path, repeat: usize) -> anyhow::Result<Clusters> {
        self.progress
            .set_message("starting etcd and warrant clusters");
        let etcd = EtcdCluster::start(&self.etcd_bin, dir).await?;
        let warrant = WarrantCluster::start(&self.warrant_bin, dir).await?;
        let (leader, follower) = warrant.leader_and_follower().await?;
        self.progress.set_message("creating the fixture");
        let fixture = Fixture::create(
            &warrant.channel(leader)?,
            warrant.admin_token(),
            &format!("r{repeat}"),
        )
        .await
        .context("create the fixture")?;
        Ok(Clusters {
            warrant,
            etcd,
            leader,
            follower,
            fixture,
        })
    }

    /// Every scenario at every concurrency, against each of its targets.
    async fn load_runs(&self, c: &Clusters, repeat: usize) -> anyhow::Result<Vec<RunRecord>> {
        let leader_channel = c.warrant.channel(c.leader)?;
        let etcd_addr = c.etcd.members[c.etcd.leader().await?].client_addr.clone();
        let mut runs = Vec::new();
        for scenario in &self.plan.scenarios {
            let op = self
                .operation(scenario.kind, c, &leader_channel, repeat)
                .await?;
            let mut targets = vec![(Target::Leader, c.warrant.dial(c.leader)?)];
            if scenario.kind == Kind::EtcdPut {
                targets = vec![(Target::Leader, load::Dial::plain(&etcd_addr))];
            } else if scenario.on_follower {
                targets.push((Target::Follower, c.warrant.dial(c.follower)?));
            }
            for &concurrency in &self.plan.concurrencies {
                for (target, addr) in &targets {
                    // Register ids are unique per tag: a fresh tag per run.
                    let op = if scenario.kind == Kind::Register {
                        let tag = format!("r{repeat}-{}-c{concurrency}", target.name());
                        scenarios::register(c.warrant.admin_token(), &tag)
                    } else {
                        op.clone()
                    };
                    let record = self
                        .one_run(repeat, scenario.name, *target, addr, concurrency, op)
                        .await?;
                    runs.push(record);
                }
            }
        }
        Ok(runs)
    }

    async fn operation(
        &self,
        kind: Kind,
        c: &Clusters,
        leader: &Channel,
        repeat: usize,
    ) -> anyhow::Result<Arc<dyn Operation>> {
        let f = &c.fixture;
        let tokens = plan::VERIFY_TOKENS;
        Ok(match kind {
            Kind::IssueSelf => scenarios::issue_self(f),
            Kind::IssueDelegated => scenarios::issue_delegated(f),
            Kind::Register => scenarios::register(c.warrant.admin_token(), &format!("r{repeat}")),
            Kind::VerifyLinearizable => {
                scenarios::verify(f, leader, Consistency::Linearizable, tokens).await?
            }
            Kind::VerifyLocal => scenarios::verify(f, leader, Consistency::Local, tokens).await?,
            Kind::AuthorizeSync => scenarios::authorize(f, leader, AuditMode::Sync, tokens).await?,
            Kind::AuthorizeAsync => {
                scenarios::authorize(f, leader, AuditMode::Async, tokens).await?
            }
            Kind::Mixed => scenarios::mixed(f, leader, tokens).await?,
            Kind::Health => scenarios::health_check(),
            Kind::EtcdPut => scenarios::etcd_put(plan::ETCD_VALUE_BYTES),
        })
    }

    async fn one_run(
        &self,
        repeat: usize,
        scenario: &str,
        target: Target,
        addr: &load::Dial,
        concurrency: usize,
        op: Arc<dyn Operation>,
    ) -> anyhow::Result<RunRecord> {
        let label = format!("{scenario}@{}/c{concurrency}", target.name());
        self.progress.set_message(label.clone());
        let connections = plan::connections(concurrency);
        let channels = load::channels(addr, connections).await?;
        let spec = LoadSpec {
            concurrency,
            connections,
            warmup: self.plan.warmup,
            measure: self.plan.measure,
            arrival: Arrival::Closed,
        };
        let result = load::run(&label, &channels, op, &spec).await;
        self.say(format!(
            "{label:<36} {:>9.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}{}",
            result.per_second,
            result.latency_us.p50 / 1e3,
            result.latency_us.p99 / 1e3,
            result.errors,
            result
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
        self.progress.inc(1);
        Ok(RunRecord {
            repeat,
            scenario: scenario.to_string(),
            target,
            result,
        })
    }

    /// Imports the plan's history through the leader in [`HISTORY_STAGES`] equal stages,
    /// reading memory after each: what a node holds must be bounded by its configuration (the
    /// storage cache fills, then stays), not grow with the length of its history.
    async fn history(&self, c: &Clusters, etcd_leader: usize) -> anyhow::Result<Vec<MemoryRecord>> {
        let stage_events = self.plan.history_events.div_ceil(HISTORY_STAGES);
        let leader = c.warrant.channel(c.leader)?;
        let mut memories = Vec::new();
        for stage in 1..=HISTORY_STAGES {
            self.progress.set_message(format!(
                "importing history, stage {stage} of {HISTORY_STAGES}"
            ));
            let started = std::time::Instant::now();
            let tag = format!("hist{stage}");
            let last =
                scenarios::import_humans(&leader, c.warrant.admin_token(), &tag, stage_events)
                    .await?;
            for id in c.warrant.live() {
                applied_at_least(c, id, last).await?;
            }
            let applied = applied_seq(c, c.leader).await?;
            self.say(format!(
                "history: {stage_events} events imported in {:.1} s; the log holds {applied}",
                started.elapsed().as_secs_f64()
            ));
            let after = format!("{} more events", stage * stage_events);
            memories.extend(memory(c, etcd_leader, 0, &after, applied));
        }
        Ok(memories)
    }

    /// Revocation reach over every node, revoking on the leader, while mixed load runs on all
    /// three nodes.
    async fn reach(&self, c: &Clusters) -> anyhow::Result<Reach> {
        let leader_channel = c.warrant.channel(c.leader)?;
        let op = scenarios::mixed(&c.fixture, &leader_channel, plan::VERIFY_TOKENS).await?;
        let mut channels = Vec::new();
        let mut nodes = Vec::new();
        for id in c.warrant.live() {
            let dial = c.warrant.dial(id)?;
            channels.extend(load::channels(&dial, REACH_LOAD_CONNECTIONS_PER_NODE).await?);
            nodes.push((id, c.warrant.channel(id)?));
        }
        let revoke_on = nodes
            .iter()
            .position(|(id, _)| *id == c.leader)
            .context("the leader is live")?;
        let stop = Arc::new(AtomicBool::new(false));
        let background = tokio::spawn({
            let stop = stop.clone();
            let spec = LoadSpec {
                concurrency: REACH_LOAD_CONCURRENCY,
                connections: channels.len(),
                warmup: Duration::ZERO,
                measure: REACH_LOAD_STRETCH,
                arrival: Arrival::Closed,
            };
            async move {
                while !stop.load(Ordering::Relaxed) {
                    load::run("mixed-background", &channels, op.clone(), &spec).await;
                }
            }
        });
        let reach =
            scenarios::revocation_reach(&c.fixture, &nodes, revoke_on, self.plan.reach_samples)
                .await;
        stop.store(true, Ordering::Relaxed);
        background.await.context("the background load panicked")?;
        let reach = reach?;
        self.say(format!(
            "revocation reach: {} observations, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} timed out",
            reach.samples, reach.p50_ms, reach.p99_ms, reach.max_ms, reach.timeouts
        ));
        Ok(reach)
    }
}

/// Every node's and member's memory now, named by role (`warrant leader`, `warrant follower`,
/// `etcd leader`, `etcd follower`): leaders do more work, and the leader changes between
/// repeats.
fn memory(
    c: &Clusters,
    etcd_leader: usize,
    repeat: usize,
    after: &str,
    events: u64,
) -> Vec<MemoryRecord> {
    let role = |leads: bool| if leads { "leader" } else { "follower" };
    let mut memory: Vec<MemoryRecord> = c
        .warrant
        .live()
        .into_iter()
        .map(|id| MemoryRecord {
            repeat,
            process: format!("warrant {}", role(id == c.leader)),
            after: after.to_string(),
            events,
            memory: c.warrant.memory(id),
        })
        .collect();
    memory.extend(
        c.etcd
            .memory()
            .into_iter()
            .enumerate()
            .map(|(index, (_, memory))| MemoryRecord {
                repeat,
                process: format!("etcd {}", role(index == etcd_leader)),
                after: after.to_string(),
                events,
                memory,
            }),
    );
    memory
}

/// Memory is read after each of this many equal parts of the imported history, so the table
/// shows whether it levels off.
const HISTORY_STAGES: u64 = 2;

/// How long a node may take to apply what the leader has: the import's last entries, behind
/// a follower's share of a loaded two-core machine.
const APPLY_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often a node's applied seq is asked for while waiting.
const APPLY_POLL: Duration = Duration::from_millis(50);

/// Events in node `id`'s applied state now.
async fn applied_seq(c: &Clusters, id: u64) -> anyhow::Result<u64> {
    let mut client = ClusterServiceClient::new(c.warrant.channel(id)?);
    let digest = client
        .digest(c.warrant.admin(api::DigestRequest {}))
        .await
        .with_context(|| format!("Digest of node {id}"))?;
    Ok(digest.into_inner().applied_seq)
}

/// Waits (bounded) until node `id` has applied event `seq`.
async fn applied_at_least(c: &Clusters, id: u64, seq: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT_MAX;
    while applied_seq(c, id).await? < seq {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {id} did not apply seq {seq} within {APPLY_WAIT_MAX:?}"
        );
        tokio::time::sleep(APPLY_POLL).await;
    }
    Ok(())
}
