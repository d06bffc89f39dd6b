//! Prometheus `/metrics` on a real 3-node cluster (issue 14, "Metrics"): scraped over HTTPS,
//! parsed by the Prometheus text-format parser of the reference Python client
//! (`prometheus_client`, pinned), every name checked against the naming conventions, the series
//! count unchanged by 50 more principals, and the counters moved by exactly the work done.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use support::{
    AgentCredential, Node,
    cluster::{Cluster, status_of},
    fx::{self, CONVERT, FxWorld, OPS, authorize_request},
    pip_install, verify_request,
};
use tonic::Code;
use warrant_proto::api::{self, AuditMode};

/// The reference parser, pinned: what Prometheus' own client library reads.
const PROMETHEUS_CLIENT: &str = "prometheus_client==0.21.1";
/// Parses the text in the file `argv[1]` and prints its families as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
families = []
for family in text_string_to_metric_families(text):
    families.append({
        "name": family.name,
        "type": family.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    })
print(json.dumps(families))
"#;
/// Principals registered between the two scrapes compared.
const MORE_AGENTS: usize = 50;
/// Tokens issued (and verified) in each round of work.
const TOKENS_PER_ROUND: usize = 5;
/// How long a gauge sampled in the background may take to show what was done.
const SAMPLE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Unit suffixes a histogram's name may end with (base units, and the batch's command count).
const HISTOGRAM_UNITS: [&str; 3] = ["_seconds", "_bytes", "_commands"];

/// One sample: its name and labels, and its value.
type Series = BTreeMap<(String, BTreeMap<String, String>), f64>;

struct Family {
    name: String,
    kind: String,
    sample_names: Vec<String>,
}

/// A scrape, parsed.
struct Scrape {
    text: String,
    /// Every family: its name, its type and its samples' names.
    families: Vec<Family>,
    series: Series,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|((sample, sample_labels), _)| {
                sample == name
                    && labels
                        .iter()
                        .all(|(k, v)| sample_labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// Whether any sample is named `name`.
    fn has(&self, name: &str) -> bool {
        self.series.keys().any(|(sample, _)| sample == name)
    }

    fn series_keys(&self) -> BTreeSet<(String, BTreeMap<String, String>)> {
        self.series.keys().cloned().collect()
    }
}

fn scrape(node: &Node, site: &Path, work: &Path) -> Scrape {
    let (status, text) = node.http_get("/metrics");
    assert_eq!(status, 200, "/metrics answered {status}: {text}");
    let path = work.join(format!("scrape-{}.txt", node.node_id()));
    std::fs::write(&path, &text).expect("write the scrape");
    let output = Command::new("python3")
        .arg("-c")
        .arg(PARSE)
        .arg(&path)
        .env("PYTHONPATH", site)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "prometheus_client could not parse /metrics: {}\n--- text ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the parser's JSON");
    let mut families = Vec::new();
    let mut series = Series::new();
    for family in parsed {
        let mut sample_names = Vec::new();
        for sample in family["samples"].as_array().expect("samples") {
            let labels = sample["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a label value").to_string()))
                .collect();
            let key = (sample["name"].as_str().expect("a name").to_string(), labels);
            sample_names.push(key.0.clone());
            series.insert(key, sample["value"].as_f64().expect("a numeric value"));
        }
        families.push(Family {
            name: family["name"].as_str().expect("a name").to_string(),
            kind: family["type"].as_str().expect("a type").to_string(),
            sample_names,
        });
    }
    Scrape {
        text,
        families,
        series,
    }
}

/// Prometheus naming (operations.md B.3): a `warrant_` prefix, `_total` on every counter and
/// on nothing else, a unit on every histogram.
fn assert_conventions(scrape: &Scrape) {
    assert!(!scrape.families.is_empty(), "no metric families");
    for Family {
        name,
        kind,
        sample_names: samples,
    } in &scrape.families
    {
        assert!(
            name.starts_with("warrant_"),
            "{name} lacks the warrant_ prefix"
        );
        match kind.as_str() {
            // The parser names a counter family without its `_total`; its samples keep it.
            "counter" => assert!(
                samples.iter().all(|s| s.ends_with("_total")),
                "counter {name} has samples without _total: {samples:?}"
            ),
            "gauge" | "info" => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
            "histogram" => assert!(
                HISTOGRAM_UNITS.iter().any(|unit| name.ends_with(unit)),
                "histogram {name} names no unit"
            ),
            other => panic!("{name} is a {other}: only counters, gauges and histograms expected"),
        }
    }
}

/// The work one round does, all through `node`: tokens issued and verified, one decision, one
/// refused call, and `agents` more agents registered.
async fn round(node: &Node, world: &FxWorld, delegation_id: &str, agents: &[AgentCredential]) {
    for _ in 0..TOKENS_PER_ROUND {
        let token = world.issue(node, delegation_id, &[CONVERT]).await;
        let verified = node.verify(&token.access_token, fx::FX_AUDIENCE).await;
        assert!(verified.active, "a fresh token verifies");
    }
    let token = world.issue(node, delegation_id, &[CONVERT]).await;
    let key = uuid_like();
    world
        .authorize(
            node,
            authorize_request(&key, &token.access_token, CONVERT, vec![], AuditMode::Sync),
        )
        .await
        .expect("Authorize answers");
    let refused = node
        .tokens()
        .verify(node.admin(verify_request("", fx::FX_AUDIENCE)))
        .await
        .expect_err("a Verify without a token is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    for agent in agents {
        node.register_agent(&agent.agent_id, OPS, &agent.secret)
            .await;
    }
}

fn uuid_like() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn agents(prefix: &str, n: usize) -> Vec<AgentCredential> {
    (0..n)
        .map(|idx| AgentCredential::new(&format!("{prefix}-{idx}")))
        .collect()
}

/// Scrapes `node` until `done` holds (gauges are sampled in the background), bounded.
async fn scrape_until(
    node: &Node,
    site: &Path,
    work: &Path,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = tokio::time::Instant::now() + SAMPLE_WAIT_MAX;
    loop {
        let scrape = scrape(node, site, work);
        if done(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {}: {what} within {SAMPLE_WAIT_MAX:?}\n{}",
            node.node_id(),
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn applied_index(node: &Node) -> u64 {
    status_of(node.channel())
        .await
        .expect("Status")
        .applied_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_conventions_stay_bounded_and_count_the_work_done() {
    let work = tempfile::tempdir().expect("work dir");
    let site = work.path().join("site");
    pip_install(&site, PROMETHEUS_CLIENT);
    let mut extra = toml::Table::new();
    extra.insert("allow_local_passwords".into(), true.into());
    let cluster = Cluster::start_with(3, extra).await;
    let leader_id = cluster.leader().await;
    let node = cluster.node(1);

    // Warm-up: every kind of work once, so each series the rounds touch exists before the
    // first scrape compared. A compaction builds a snapshot.
    let world = FxWorld::register(node).await;
    let grant = world.delegate(node, &[CONVERT], None).await;
    round(node, &world, &grant.delegation_id, &agents("warm", 1)).await;
    node.cluster()
        .compact(node.admin(api::CompactRequest {}))
        .await
        .expect("Compact");
    let applied = applied_index(node).await;
    let before = scrape_until(node, &site, work.path(), "applied index sampled", |s| {
        s.sum("warrant_raft_applied_index", &[]) >= applied as f64
    })
    .await;
    assert_conventions(&before);

    round(
        node,
        &world,
        &grant.delegation_id,
        &agents("more", MORE_AGENTS),
    )
    .await;
    let applied = applied_index(node).await;
    let after = scrape_until(node, &site, work.path(), "applied index sampled", |s| {
        s.sum("warrant_raft_applied_index", &[]) >= applied as f64
    })
    .await;
    assert_conventions(&after);

    // Bounded: 50 more principals, the same series.
    let (series_before, series_after) = (before.series_keys(), after.series_keys());
    assert_eq!(
        series_before.len(),
        series_after.len(),
        "series appeared: {:?}; vanished: {:?}",
        series_after.difference(&series_before).collect::<Vec<_>>(),
        series_before.difference(&series_after).collect::<Vec<_>>()
    );
    assert_eq!(series_before, series_after);
    for secret_or_principal in [
        cluster.admin_token(),
        "more-0",
        "warm-0",
        fx::ASSISTANT,
        fx::ALICE,
    ] {
        assert!(
            !after.text.contains(secret_or_principal),
            "/metrics names {secret_or_principal:?}"
        );
    }

    assert_counters_moved(&before, &after);
    assert_raft_and_storage(&before, &after);
    assert_cluster_gauges(&cluster, leader_id, &site, work.path()).await;
}

/// The counters moved by exactly the work of one round (node 1 served all of it).
fn assert_counters_moved(before: &Scrape, after: &Scrape) {
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let tokens = (TOKENS_PER_ROUND + 1) as f64;
    assert_eq!(
        moved("warrant_tokens_issued_total", &[("kind", "delegated")]),
        tokens
    );
    assert!(before.sum("warrant_tokens_issued_total", &[("kind", "session")]) >= 1.0);
    assert_eq!(
        moved("warrant_tokens_verified_total", &[("result", "valid")]),
        TOKENS_PER_ROUND as f64
    );
    assert_eq!(moved("warrant_decisions_total", &[]), 1.0);
    let issue = [
        ("service", "warrant.v1.TokenService"),
        ("method", "Issue"),
        ("code", "OK"),
    ];
    assert_eq!(moved("warrant_rpc_requests_total", &issue), tokens);
    let registered = [
        ("service", "warrant.v1.IdentityService"),
        ("method", "RegisterAgent"),
        ("code", "OK"),
    ];
    assert_eq!(
        moved("warrant_rpc_requests_total", &registered),
        MORE_AGENTS as f64
    );
    let refused = [
        ("service", "warrant.v1.TokenService"),
        ("method", "Verify"),
        ("reason", "FIELD_REQUIRED"),
    ];
    assert_eq!(moved("warrant_rpc_errors_total", &refused), 1.0);
    let refused_code = [
        ("service", "warrant.v1.TokenService"),
        ("method", "Verify"),
        ("code", "INVALID_ARGUMENT"),
    ];
    assert_eq!(moved("warrant_rpc_requests_total", &refused_code), 1.0);
    let verify_timed = [("service", "warrant.v1.TokenService"), ("method", "Verify")];
    assert_eq!(
        moved("warrant_rpc_duration_seconds_count", &verify_timed),
        (TOKENS_PER_ROUND + 1) as f64
    );
    // The agents authenticated with secrets: argon2 hashed at least once, in a bounded queue.
    assert!(after.sum("warrant_argon2_hashes_total", &[]) >= 1.0);
    assert!(after.sum("warrant_argon2_queue_capacity", &[]) >= 1.0);
    assert!(after.has("warrant_argon2_queue_depth"));
    assert_eq!(
        after.sum(
            "warrant_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

/// Raft indexes advanced, storage was fsynced, applied and measured, the snapshot timed.
fn assert_raft_and_storage(before: &Scrape, after: &Scrape) {
    let gauge = |scrape: &Scrape, name: &str| scrape.sum(name, &[]);
    for index in ["warrant_raft_applied_index", "warrant_raft_commit_index"] {
        assert!(
            gauge(after, index) > gauge(before, index),
            "{index}: {} then {}",
            gauge(before, index),
            gauge(after, index)
        );
    }
    for histogram in [
        "warrant_storage_fsync_duration_seconds_count",
        "warrant_apply_duration_seconds_count",
    ] {
        assert!(
            gauge(after, histogram) > gauge(before, histogram),
            "{histogram} did not move"
        );
    }
    assert!(gauge(before, "warrant_snapshot_build_duration_seconds_count") >= 1.0);
    for db in ["raft_log", "state"] {
        assert!(
            after.sum("warrant_storage_size_bytes", &[("db", db)]) > 0.0,
            "no size for {db}"
        );
    }
    assert!(gauge(after, "warrant_raft_term") >= 1.0);
    assert!(gauge(after, "warrant_raft_leader_changes_total") >= 1.0);
    assert!(after.has("warrant_proposer_queue_depth"));
}

/// Every node knows the leader, exactly one leads, and it alone reports each peer's lag (and the
/// group-commit batches it proposed).
async fn assert_cluster_gauges(cluster: &Cluster, leader_id: u64, site: &Path, work: &Path) {
    let mut leading = 0.0;
    for node in cluster.nodes.values() {
        let scrape = scrape_until(node, site, work, "a leader known", |s| {
            s.sum("warrant_raft_has_leader", &[]) == 1.0
        })
        .await;
        assert_conventions(&scrape);
        leading += scrape.sum("warrant_raft_is_leader", &[]);
        let lag = lag_peers(&scrape);
        if node.node_id() == leader_id {
            let peers: BTreeSet<String> = cluster
                .nodes
                .keys()
                .filter(|id| **id != leader_id)
                .map(u64::to_string)
                .collect();
            assert_eq!(lag, peers, "the leader reports each peer's lag");
            assert!(scrape.sum("warrant_proposer_batch_commands_count", &[]) >= 1.0);
        } else {
            assert!(lag.is_empty(), "a follower reports no lag: {lag:?}");
        }
    }
    assert_eq!(leading, 1.0, "exactly one node leads");
}

/// Snapshot every 50 entries and keep 5 behind it, so a short test compacts its log.
fn compacting() -> toml::Table {
    let mut extra = toml::Table::new();
    extra.insert("snapshot_logs_since_last".into(), toml::Value::Integer(50));
    extra.insert("snapshot_logs_kept".into(), toml::Value::Integer(5));
    extra
}

/// The peers the leader's scrape reports a replication lag for.
fn lag_peers(scrape: &Scrape) -> BTreeSet<String> {
    scrape
        .series
        .keys()
        .filter(|(name, _)| name == "warrant_raft_replication_lag_entries")
        .map(|(_, labels)| labels["peer"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_after_compaction_times_its_install_and_its_lag_series_leaves_with_it() {
    let work = tempfile::tempdir().expect("work dir");
    let site = work.path().join("site");
    pip_install(&site, PROMETHEUS_CLIENT);
    let mut cluster = Cluster::start_with(3, compacting()).await;
    let leader_id = cluster.leader().await;
    let leader = cluster.node(leader_id);
    for idx in 0..60 {
        leader.register_human(&format!("h{idx}")).await;
    }
    let compacted = leader
        .cluster()
        .compact(leader.admin(api::CompactRequest {}))
        .await
        .expect("Compact")
        .into_inner();
    assert!(compacted.purged_index > 0, "{compacted:?}");

    cluster.add_learner(4, compacting()).await;
    let newcomer = cluster.node(4);
    let installed = scrape_until(newcomer, &site, work.path(), "a snapshot installed", |s| {
        s.sum("warrant_snapshot_install_duration_seconds_count", &[]) >= 1.0
    })
    .await;
    assert_conventions(&installed);
    let leader = cluster.node(leader_id);
    let with_learner = scrape_until(leader, &site, work.path(), "node 4's lag", |s| {
        lag_peers(s).contains("4")
    })
    .await;
    let others: BTreeSet<String> = (1..=4)
        .filter(|id| *id != leader_id)
        .map(|id| id.to_string())
        .collect();
    assert_eq!(
        lag_peers(&with_learner),
        others,
        "the learner's lag is reported too"
    );

    leader
        .cluster()
        .remove_member(leader.admin(api::RemoveMemberRequest { node_id: 4 }))
        .await
        .expect("RemoveMember");
    let without = scrape_until(leader, &site, work.path(), "node 4's lag gone", |s| {
        !lag_peers(s).contains("4")
    })
    .await;
    assert_eq!(lag_peers(&without).len(), 2, "the two other voters remain");
}
