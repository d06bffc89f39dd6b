//! Runs every scenario for a second against processes you started yourself. Ignored by default:
//! it needs a running node (and etcd for the etcd test), and it measures nothing worth keeping.
//!
//! ```text
//! warrant dev --data-dir /tmp/wd --listen-addr 127.0.0.1:7400 --http-listen-addr 127.0.0.1:7401
//! etcd --data-dir /tmp/ed --listen-client-urls http://127.0.0.1:23790 \
//!      --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800
//! WARRANT_BENCH_ADDR=127.0.0.1:7400 WARRANT_BENCH_ADMIN_TOKEN=$(cat /tmp/wd/dev-admin-token) \
//! WARRANT_BENCH_CA=/tmp/wd/tls/ca.pem \
//! WARRANT_BENCH_ETCD_ADDR=127.0.0.1:23790 \
//!   cargo test -p warrant-bench --test scenarios_smoke -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Each run prints its `RunResult` as JSON and checks that calls succeeded.

use std::{sync::Arc, time::Duration};

use warrant_bench::{
    load::{self, Arrival, LoadSpec, Operation, RunResult},
    scenarios::{self, Fixture},
};
use warrant_proto::api::{AuditMode, Consistency};

/// How long each smoke run measures, after as long a warm-up.
const SMOKE_STRETCH: Duration = Duration::from_secs(1);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (see this file's header)"))
}

/// The Warrant node at `addr`: TLS trusting `WARRANT_BENCH_CA` (`warrant dev` writes its CA to
/// `<data dir>/tls/ca.pem`), or plaintext when it is unset (a node with insecure_plaintext).
fn dial(addr: &str) -> load::Dial {
    match std::env::var("WARRANT_BENCH_CA") {
        Ok(ca) => load::Dial::tls(addr, &std::fs::read(ca).expect("read WARRANT_BENCH_CA")),
        Err(_) => load::Dial::plain(addr),
    }
}

/// A tag no earlier run on the same node used.
fn fresh_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!("smoke{}", nanos % 1_000_000_000_000)
}

fn spec(arrival: Arrival) -> LoadSpec {
    LoadSpec {
        concurrency: 8,
        connections: 2,
        warmup: SMOKE_STRETCH,
        measure: SMOKE_STRETCH,
        arrival,
    }
}

async fn run_and_check(
    target: &load::Dial,
    label: &str,
    op: Arc<dyn Operation>,
    arrival: Arrival,
) -> RunResult {
    let spec = spec(arrival);
    let channels = load::channels(target, spec.connections)
        .await
        .expect("connect");
    let result = load::run(label, &channels, op, &spec).await;
    println!(
        "{}",
        serde_json::to_string(&result).expect("a RunResult serialises")
    );
    assert_eq!(result.errors, 0, "{label}: {:?}", result.first_error);
    assert!(result.ops > 0, "{label}: no call succeeded");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running warrant node; see the file header"]
async fn warrant_scenarios_run_against_one_node() {
    let (addr, admin) = (env("WARRANT_BENCH_ADDR"), env("WARRANT_BENCH_ADMIN_TOKEN"));
    let leader = load::channels(&dial(&addr), 1)
        .await
        .expect("connect")
        .remove(0);
    let tag = fresh_tag();
    let f = Fixture::create(&leader, &admin, &tag)
        .await
        .expect("fixture");
    let open = Arrival::Open { per_second: 200.0 };
    run_and_check(
        &dial(&addr),
        "health",
        scenarios::health_check(),
        Arrival::Closed,
    )
    .await;
    run_and_check(
        &dial(&addr),
        "issue_self",
        scenarios::issue_self(&f),
        Arrival::Closed,
    )
    .await;
    run_and_check(
        &dial(&addr),
        "issue_delegated",
        scenarios::issue_delegated(&f),
        open,
    )
    .await;
    run_and_check(
        &dial(&addr),
        "register",
        scenarios::register(&admin, &tag),
        Arrival::Closed,
    )
    .await;
    for consistency in [Consistency::Local, Consistency::Linearizable] {
        let op = scenarios::verify(&f, &leader, consistency, 100)
            .await
            .expect("pre-issue");
        run_and_check(&dial(&addr), consistency.as_str_name(), op, Arrival::Closed).await;
    }
    let op = scenarios::mixed(&f, &leader, 100).await.expect("pre-issue");
    run_and_check(&dial(&addr), "mixed", op, open).await;
    for audit in [AuditMode::Sync, AuditMode::Async] {
        let op = scenarios::authorize(&f, &leader, audit, 100)
            .await
            .expect("pre-issue");
        run_and_check(&dial(&addr), audit.as_str_name(), op, Arrival::Closed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running warrant node; see the file header"]
async fn revocation_reach_on_one_node_measures_nothing_but_completes() {
    let (addr, admin) = (env("WARRANT_BENCH_ADDR"), env("WARRANT_BENCH_ADMIN_TOKEN"));
    let leader = load::channels(&dial(&addr), 1)
        .await
        .expect("connect")
        .remove(0);
    let f = Fixture::create(&leader, &admin, &fresh_tag())
        .await
        .expect("fixture");
    // The same node twice, as two "nodes": the second watches the first's revocations.
    let nodes = vec![(1, leader.clone()), (2, leader.clone())];
    let reach = scenarios::revocation_reach(&f, &nodes, 0, 20)
        .await
        .expect("reach");
    println!(
        "{}",
        serde_json::to_string(&reach).expect("Reach serialises")
    );
    assert_eq!(
        (reach.samples, reach.timeouts),
        (20, 0),
        "{:?}",
        reach.first_timeout
    );
    assert_eq!(reach.per_node.len(), 1);
    assert_eq!(reach.per_node[0].0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running etcd; see the file header"]
async fn etcd_put_runs_against_one_member() {
    let addr = env("WARRANT_BENCH_ETCD_ADDR");
    run_and_check(
        &load::Dial::plain(&addr),
        "etcd_put",
        scenarios::etcd_put(256),
        Arrival::Closed,
    )
    .await;
}
