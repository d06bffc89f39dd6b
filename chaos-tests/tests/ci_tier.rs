//! The CI tier: each nemesis the issue names, one scenario each, against three real nodes in
//! network namespaces, judged by every checker. Runs in `cargo test --workspace`.
//!
//! Scenarios run one at a time (they share two cores with their nodes); each has its own subnet
//! and namespaces. A failing run prints its report and keeps its schedule, history and node logs
//! (see `Report::artefacts`); `warrant-chaos replay` reruns its seed.

use warrant_chaos::{
    run::{Scenario, run},
    schedule::NemesisKind,
    tiers,
};

/// One scenario at a time in this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn passes(kind: NemesisKind) {
    let _serial = SERIAL.lock().await;
    let scenario: Scenario = tiers::ci_scenario(kind);
    let report = run(&scenario).await.expect("the run completes");
    println!("{}", report.summary());
    assert!(report.ok(), "{}", report.summary());
    assert!(
        report.acknowledged > 0,
        "nothing was acknowledged: {}",
        report.summary()
    );
    assert!(
        !report.nemesis.is_empty(),
        "the nemesis did nothing: {}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader() {
    passes(NemesisKind::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all() {
    passes(NemesisKind::KillAll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_leader() {
    passes(NemesisKind::PauseLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_leader() {
    passes(NemesisKind::IsolateLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition() {
    passes(NemesisKind::OneWayPartition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew() {
    passes(NemesisKind::ClockSkew).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failpoint_crash_between_commit_and_reply() {
    passes(NemesisKind::FailpointCrash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_a_follower() {
    passes(NemesisKind::DiskFullFollower).await;
}
