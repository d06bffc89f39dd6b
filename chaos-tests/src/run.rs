//! One chaos run: start the cluster, set up, drive the workloads while the nemesis follows the
//! schedule, heal, observe, and judge.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;
use tokio::task::JoinHandle;
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};

use crate::{
    checkers::ProofCheck,
    checkers::{self, Verdict},
    cluster::{ChaosCluster, ClusterSpec, with_auth},
    history::{History, OpF, Outcome, Recorder, Value},
    nemesis::{Nemesis, restart_dead},
    observe,
    schedule::{NemesisKind, Schedule},
    workload::{self, Fixtures, TRANSPORT_CLASSES, Targets},
};

/// How long the cluster has to serve a write again after the last fault is healed. Reported;
/// the check is loose, for a busy two-core machine.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(60);
/// The pause between two liveness probes.
const LIVENESS_PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// How long the workloads run on after the heal, so that the healed cluster is exercised too.
const AFTER_HEAL: Duration = Duration::from_secs(3);
/// How long a stopped client may take to finish its call in flight.
const CLIENT_STOP_WAIT: Duration = Duration::from_secs(15);
/// W2 token clients per run.
const TOKEN_CLIENTS: u32 = 2;

/// Raft entries between two snapshots in a run (the default is 20,000).
const SNAPSHOT_EVERY_ENTRIES: i64 = 200;
/// Raft entries kept behind a snapshot in a run (the default is 10,000): a node down for a few
/// seconds catches up by snapshot install.
const SNAPSHOT_KEEP_ENTRIES: i64 = 50;

/// A planted bug the run turns on (feature `chaos`; see `warrant_identity::chaos`).
pub const CANARY_ENV: &str = "CHAOS_CANARY";
/// What a report or a failed run says of a node whose process ended without the harness
/// stopping it (a crash, a fatal storage error).
pub const NODE_ENDED_ON_ITS_OWN: &str = "ended on its own";

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub kinds: Vec<NemesisKind>,
    pub duration: Duration,
    /// The shortest and longest fault, in ms.
    pub fault_window: (u64, u64),
    /// A canary to plant on every node.
    pub canary: Option<String>,
    /// The third octet of the cluster's subnet.
    pub subnet: u8,
    /// The crash failpoint the failpoint nemesis arms (one of `tiers::CRASH_POINTS`).
    pub failpoint: String,
}

/// What a run found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub canary: Option<String>,
    pub operations: usize,
    pub acknowledged: usize,
    pub lost: usize,
    pub violations: usize,
    pub liveness_ms: Option<u64>,
    pub verdicts: Vec<Verdict>,
    pub nemesis: Vec<crate::nemesis::Applied>,
    /// What Compact answered on a full disk (the disk-full nemesis).
    pub compact_answers: Vec<String>,
    /// Each node's starts that ended on their own, and how (crashes, fatal storage errors).
    pub node_exits: BTreeMap<u64, Vec<String>>,
    /// Where the schedule, history and node logs were kept.
    pub artefacts: PathBuf,
    /// The crash failpoint the failpoint nemesis armed, if it ran.
    pub failpoint: String,
}

/// One row of the nemesis x workload table.
#[derive(Debug, Serialize)]
pub struct WorkloadRow {
    pub workload: &'static str,
    pub operations: usize,
    pub acknowledged: usize,
    pub lost: usize,
    pub violations: usize,
}

/// The workloads in table order, and the checkers that judge each.
const WORKLOAD_CHECKERS: [(&str, &[&str]); 6] = [
    ("W1 unique events", &[checkers::LOST_WRITES]),
    (
        "W2 token lifecycle",
        &[checkers::REVOCATIONS_HONOURED, checkers::LINEARIZABLE],
    ),
    ("W3 delegation chains", &[checkers::DELEGATIONS_NEVER_WIDEN]),
    ("W5 audit monitor", &[checkers::AUDIT_CONTINUITY]),
    ("W6 bad input", &[checkers::ERROR_CONTRACT]),
    ("cluster", &[checkers::DIGESTS_AGREE, checkers::LIVENESS]),
];

/// Which workload made an op (its row in [`WORKLOAD_CHECKERS`]).
fn workload_of(f: &OpF) -> usize {
    match f {
        OpF::RegisterHuman { .. } => 0,
        OpF::Issue { .. } | OpF::Verify { .. } | OpF::Revoke { .. } => 1,
        OpF::CreateDelegation { .. } | OpF::InvalidDelegation { .. } => 2,
        OpF::Checkpoint => 3,
        OpF::BadInput { .. } => 4,
    }
}

/// The table's rows for one run: each workload's operations and acknowledged ones, the lost
/// writes, and the violations its checkers found (`verdicts`: checker, ok, violations).
pub fn workload_rows(
    verdicts: &[(String, bool, usize)],
    lost: usize,
    history: &History,
) -> Vec<WorkloadRow> {
    let mut rows: Vec<WorkloadRow> = WORKLOAD_CHECKERS
        .iter()
        .map(|(workload, checkers)| WorkloadRow {
            workload,
            operations: 0,
            acknowledged: 0,
            lost: 0,
            violations: verdicts
                .iter()
                .filter(|(checker, ok, _)| checkers.contains(&checker.as_str()) && !ok)
                .map(|(_, _, violations)| (*violations).max(1))
                .sum(),
        })
        .collect();
    for op in history.ops() {
        let row = &mut rows[workload_of(&op.f)];
        row.operations += 1;
        row.acknowledged += usize::from(op.is_ok());
    }
    rows[0].lost = lost;
    rows
}

impl Report {
    /// Whether every checker passed.
    pub fn ok(&self) -> bool {
        self.verdicts.iter().all(|v| v.ok)
    }

    /// The verdict of the checker named `name`.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.checker == name)
    }

    /// One paragraph for a human.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} (seed {}, canary {:?}): {} ops, {} acknowledged, {} lost, {} violations, liveness {:?} ms; artefacts in {}\n",
            self.scenario,
            self.seed,
            self.canary,
            self.operations,
            self.acknowledged,
            self.lost,
            self.violations,
            self.liveness_ms,
            self.artefacts.display()
        );
        for answer in &self.compact_answers {
            text.push_str(&format!("  full disk: {answer}\n"));
        }
        for line in ended_on_their_own(&self.node_exits) {
            text.push_str(&format!("  {line}\n"));
        }
        for verdict in &self.verdicts {
            text.push_str(&format!(
                "  {}: {} - {}\n",
                verdict.checker,
                if verdict.ok { "ok" } else { "FAILED" },
                verdict.summary
            ));
            for violation in verdict.violations.iter().take(5) {
                text.push_str(&format!("      {violation}\n"));
            }
        }
        text
    }
}

/// Where runs keep their artefacts: `CHAOS_ARTEFACTS`, or `target/chaos` beside the binary.
pub fn artefacts_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHAOS_ARTEFACTS") {
        return PathBuf::from(dir);
    }
    crate::cluster::warrant_binary()
        .ok()
        .and_then(|bin| {
            bin.parent()
                .and_then(|p| p.parent())
                .map(|p| p.join("chaos"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("warrant-chaos"))
}

/// Runs `scenario` and judges it.
pub async fn run(scenario: &Scenario) -> anyhow::Result<Report> {
    let schedule = Schedule::generate(
        scenario.seed,
        &scenario.kinds,
        scenario.duration.as_millis() as u64,
        scenario.fault_window,
    );
    let artefacts = artefacts_root().join(format!("{}-{}", scenario.name, scenario.seed));
    std::fs::create_dir_all(&artefacts).context("create the artefacts directory")?;
    std::fs::write(artefacts.join("schedule.json"), schedule.to_file_bytes())
        .context("write the schedule")?;
    let mut cluster = ChaosCluster::start(spec(scenario)).await?;
    let outcome = drive_and_judge(scenario, &schedule, &mut cluster, &artefacts).await;
    let mut report = match outcome {
        Ok(report) => report,
        Err(error) => {
            let exits = node_exits(&mut cluster);
            let kept = cluster.keep_dir();
            return Err(error.context(format!(
                "the run failed ({}); node logs kept in {}",
                exits_summary(&exits),
                kept.display()
            )));
        }
    };
    report.node_exits = node_exits(&mut cluster);
    std::fs::write(
        artefacts.join("report.json"),
        serde_json::to_vec_pretty(&report)?,
    )
    .context("write the report")?;
    if !report.ok() {
        let kept = cluster.keep_dir();
        eprintln!("node logs of the failed run kept in {}", kept.display());
    }
    Ok(report)
}

/// Drives the scenario, keeps its history, and judges it.
async fn drive_and_judge(
    scenario: &Scenario,
    schedule: &Schedule,
    cluster: &mut ChaosCluster,
    artefacts: &std::path::Path,
) -> anyhow::Result<Report> {
    let (history, nemesis, liveness) = drive(scenario, schedule, cluster, artefacts).await?;
    std::fs::write(artefacts.join("history.jsonl"), history.to_jsonl())
        .context("write the history")?;
    let verdicts = judge(cluster, &history, &nemesis, liveness, artefacts).await?;
    Ok(report(
        scenario,
        &history,
        verdicts,
        nemesis,
        liveness,
        artefacts.to_path_buf(),
    ))
}

/// How each node's starts that ended on their own ended, reaping any that just did.
fn node_exits(cluster: &mut ChaosCluster) -> BTreeMap<u64, Vec<String>> {
    cluster
        .ids()
        .into_iter()
        .map(|id| {
            let node = cluster.node_mut(id);
            node.alive();
            (id, node.exits.clone())
        })
        .collect()
}

/// A line per node that ended on its own: "node 2 ended on its own: start 3: exit status: 1".
fn ended_on_their_own(exits: &BTreeMap<u64, Vec<String>>) -> Vec<String> {
    exits
        .iter()
        .filter(|(_, exits)| !exits.is_empty())
        .map(|(node, exits)| format!("node {node} {NODE_ENDED_ON_ITS_OWN}: {}", exits.join("; ")))
        .collect()
}

/// [`ended_on_their_own`] in one line, or that no node did.
fn exits_summary(exits: &BTreeMap<u64, Vec<String>>) -> String {
    let ended = ended_on_their_own(exits);
    if ended.is_empty() {
        "every node ran until the harness stopped it".to_string()
    } else {
        ended.join("; ")
    }
}

fn spec(scenario: &Scenario) -> ClusterSpec {
    let mut env = BTreeMap::new();
    if let Some(canary) = &scenario.canary {
        for id in 1..=3 {
            env.insert(id, vec![(CANARY_ENV.to_string(), canary.clone())]);
        }
    }
    // Snapshots, log purges and snapshot installs every few seconds of load, not every few
    // minutes: the faults meet them too, and so do the failpoints placed in them.
    let mut extra = toml::Table::new();
    extra.insert(
        "snapshot_logs_since_last".into(),
        toml::Value::Integer(SNAPSHOT_EVERY_ENTRIES),
    );
    extra.insert(
        "snapshot_logs_kept".into(),
        toml::Value::Integer(SNAPSHOT_KEEP_ENTRIES),
    );
    ClusterSpec {
        tag: short_tag(&scenario.name),
        subnet: scenario.subnet,
        env,
        small_disks: scenario.kinds.contains(&NemesisKind::DiskFullFollower),
        extra,
    }
}

/// A namespace-friendly tag: the scenario's initials, at most 4 characters.
fn short_tag(name: &str) -> String {
    let tag: String = name
        .split(['-', '_', ' '])
        .filter_map(|w| w.chars().next())
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    if tag.is_empty() { "run".into() } else { tag }
}

/// When the last fault was healed and when a write was first acknowledged after it, on the
/// recorder's clock.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    pub heal_ns: u64,
    pub first_write_ns: Option<u64>,
}

impl Liveness {
    fn gap_ms(&self) -> Option<u64> {
        self.first_write_ns
            .map(|t| t.saturating_sub(self.heal_ns) / 1_000_000)
    }
}

type Driven = (History, Nemesis, Liveness);

async fn drive(
    scenario: &Scenario,
    schedule: &Schedule,
    cluster: &mut ChaosCluster,
    artefacts: &std::path::Path,
) -> anyhow::Result<Driven> {
    let leader = cluster.leader().await?;
    let fixtures = workload::setup(cluster.channel(leader), cluster.admin_token())
        .await
        .context("set up the workloads' fixtures")?;
    let faulted = Arc::new(AtomicU64::new(0));
    let targets = Targets {
        nodes: cluster
            .ids()
            .into_iter()
            .map(|id| (id, cluster.channel(id)))
            .collect(),
        faulted: faulted.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        admin_token: cluster.admin_token().to_string(),
    };
    let recorder = Recorder::new();
    let clients = spawn_clients(&targets, &recorder, &fixtures, scenario.seed);
    let mut nemesis = Nemesis::new(faulted, &scenario.failpoint);
    let started = Instant::now();
    for step in &schedule.steps {
        let due = started + Duration::from_millis(step.at_ms);
        tokio::time::sleep_until(due.into()).await;
        nemesis
            .apply(cluster, &step.action, started.elapsed().as_millis() as u64)
            .await
            .with_context(|| format!("nemesis step at {} ms: {:?}", step.at_ms, step.action))?;
    }
    tokio::time::sleep_until((started + scenario.duration).into()).await;
    nemesis.heal_all(cluster).await?;
    let liveness = liveness(cluster, &targets, &recorder).await;
    tokio::time::sleep(AFTER_HEAL).await;
    targets.stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = tokio::time::timeout(CLIENT_STOP_WAIT, client).await;
    }
    restart_dead(cluster).await?;
    let _ = artefacts;
    Ok((recorder.finish(), nemesis, liveness))
}

fn spawn_clients(
    targets: &Targets,
    recorder: &Recorder,
    fixtures: &Fixtures,
    seed: u64,
) -> Vec<JoinHandle<()>> {
    let mut clients = Vec::new();
    let mut process = 0u32;
    let mut next = || {
        process += 1;
        (
            process,
            seed.wrapping_mul(1_000_003).wrapping_add(process as u64),
        )
    };
    let (p, s) = next();
    clients.push(tokio::spawn(workload::unique_events(
        targets.clone(),
        recorder.clone(),
        p,
        s,
    )));
    for _ in 0..TOKEN_CLIENTS {
        let (p, s) = next();
        clients.push(tokio::spawn(workload::token_lifecycle(
            targets.clone(),
            recorder.clone(),
            fixtures.clone(),
            p,
            s,
        )));
    }
    let (p, s) = next();
    clients.push(tokio::spawn(workload::delegation_chains(
        targets.clone(),
        recorder.clone(),
        fixtures.clone(),
        p,
        s,
    )));
    let (p, s) = next();
    clients.push(tokio::spawn(workload::audit_monitor(
        targets.clone(),
        recorder.clone(),
        p,
        s,
    )));
    let (p, s) = next();
    clients.push(tokio::spawn(workload::bad_input(
        targets.clone(),
        recorder.clone(),
        fixtures.clone(),
        p,
        s,
    )));
    clients
}

/// Probes with writes (humans outside W1's ids) until one is acknowledged, or the bound passes.
async fn liveness(cluster: &ChaosCluster, targets: &Targets, recorder: &Recorder) -> Liveness {
    let heal_ns = recorder.now_ns();
    let healed = Instant::now();
    let mut probe = 0u64;
    while healed.elapsed() < LIVENESS_BOUND {
        for (_, channel) in &targets.nodes {
            probe += 1;
            let id = format!("liveness-{probe}");
            let request = with_auth(
                &format!("Bearer {}", cluster.admin_token()),
                api::RegisterHumanRequest {
                    human_id: id.clone(),
                    display_name: id.clone(),
                    email: format!("{id}@example.com"),
                    ..Default::default()
                },
            );
            if IdentityServiceClient::new(channel.clone())
                .register_human(request)
                .await
                .is_ok()
            {
                return Liveness {
                    heal_ns,
                    first_write_ns: Some(recorder.now_ns()),
                };
            }
        }
        tokio::time::sleep(LIVENESS_PROBE_INTERVAL).await;
    }
    Liveness {
        heal_ns,
        first_write_ns: None,
    }
}

async fn judge(
    cluster: &mut ChaosCluster,
    history: &History,
    nemesis: &Nemesis,
    liveness: Liveness,
    artefacts: &std::path::Path,
) -> anyhow::Result<Vec<Verdict>> {
    let _ = nemesis;
    let digests = cluster.converged_digests().await?;
    let leader = cluster.leader().await?;
    let attempted: BTreeSet<String> = history
        .ops()
        .iter()
        .filter_map(|op| match &op.f {
            OpF::RegisterHuman { id } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let existing =
        observe::existing_humans(cluster.channel(leader), cluster.admin_token(), &attempted)
            .await?;
    let mut logs = BTreeMap::new();
    let mut invalid_grants = BTreeSet::new();
    for id in cluster.ids() {
        let log = observe::node_log(cluster.channel(id), cluster.admin_token()).await?;
        invalid_grants.extend(log.invalid_grants);
        logs.insert(id, log.hashes);
    }
    let held: Vec<String> = history
        .ops()
        .iter()
        .filter_map(|op| match &op.outcome {
            Outcome::Ok(Value::Checkpoint { note, .. }) => Some(note.clone()),
            _ => None,
        })
        .collect();
    let failures = observe::verify_export(cluster, leader, &held, artefacts)?;
    let proofs = ProofCheck {
        verified: failures.is_empty(),
        details: if failures.is_empty() {
            format!(
                "the export verified alone and from {} held checkpoints",
                held.len().min(observe::TRUSTED_CHECKED_MAX)
            )
        } else {
            failures.join("; ")
        },
    };
    let transport: BTreeSet<String> = TRANSPORT_CLASSES.iter().map(|c| c.to_string()).collect();
    let invalid_grants: Vec<String> = invalid_grants.into_iter().collect();
    Ok(vec![
        checkers::lost_writes(history, &existing),
        checkers::revocations_honoured(history),
        checkers::linearizable(history),
        checkers::digests_agree(&digests),
        checkers::audit_continuity(&logs, &proofs),
        checkers::error_contract(history, &documented_reasons(), &transport),
        checkers::delegations_never_widen(history, &invalid_grants),
        checkers::liveness(liveness.heal_ns, liveness.first_write_ns, LIVENESS_BOUND),
    ])
}

/// Every reason code the API documents (`warrant_api::reasons`).
fn documented_reasons() -> BTreeSet<String> {
    let mut reasons: BTreeSet<String> = warrant_api::reasons::Reason::ROWS
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    // The credential checks' own codes that a call in these workloads can meet (a rejection
    // from apply names one of these two; the rest need assertions or ID tokens).
    reasons.extend(["CREDENTIAL_REVOKED", "ASSERTION_EXPIRED"].map(String::from));
    reasons
}

fn report(
    scenario: &Scenario,
    history: &History,
    verdicts: Vec<Verdict>,
    nemesis: Nemesis,
    liveness: Liveness,
    artefacts: PathBuf,
) -> Report {
    let acknowledged = history
        .ops()
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok(_)) && op.f.is_write())
        .count();
    let lost = verdicts
        .iter()
        .find(|v| v.checker == "lost_writes")
        .map_or(0, |v| v.violations.len());
    let violations = verdicts
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.violations.len().max(1))
        .sum();
    Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        canary: scenario.canary.clone(),
        operations: history.len(),
        acknowledged,
        lost,
        violations,
        liveness_ms: liveness.gap_ms(),
        verdicts,
        compact_answers: nemesis.compact_answers,
        nemesis: nemesis.log,
        node_exits: BTreeMap::new(),
        artefacts,
        failpoint: if scenario.kinds.contains(&NemesisKind::FailpointCrash) {
            scenario.failpoint.clone()
        } else {
            String::new()
        },
    }
}
