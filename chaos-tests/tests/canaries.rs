//! The canaries: each planted bug (feature `chaos`, turned on per run by `CHAOS_CANARY`) must
//! make its scenario fail, and fail in the checker that guards against it. A checker that passes
//! a planted bug would pass the real one too.

use warrant_chaos::{
    run::{NODE_ENDED_ON_ITS_OWN, run},
    tiers,
};

/// What the harness says when a node exits while it starts.
const NODE_WONT_START: &str = "exited while starting";

/// One scenario at a time in this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn caught(canary: &str, expected_checkers: &[&str]) {
    let _serial = SERIAL.lock().await;
    let scenario = tiers::canary_scenario(canary);
    let report = match run(&scenario).await {
        Ok(report) => report,
        // The planted bug can leave a node that no longer runs (a log that lost what its
        // snapshot or commit marker says it holds: openraft refuses it as the node starts, or
        // panics on it just after): the run stops there, which is the scenario failing too, and
        // only a planted bug may do it.
        Err(error)
            if [NODE_WONT_START, NODE_ENDED_ON_ITS_OWN]
                .iter()
                .any(|said| format!("{error:#}").contains(said)) =>
        {
            println!("the canary {canary} left a node that no longer runs: {error:#}");
            return;
        }
        Err(error) => panic!("the run did not complete: {error:#}"),
    };
    println!("{}", report.summary());
    assert!(
        !report.ok(),
        "the canary {canary} went unnoticed: {}",
        report.summary()
    );
    let failed: Vec<&str> = report
        .verdicts
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.checker)
        .collect();
    assert!(
        expected_checkers.iter().any(|c| failed.contains(c)),
        "the canary {canary} failed {failed:?}, not one of {expected_checkers:?}: {}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_before_the_fsync_loses_writes_on_kill_all() {
    caught(
        "ack_before_fsync",
        &["lost_writes", "liveness", "audit_continuity"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_from_local_state_is_stale_on_an_isolated_leader() {
    caught(
        "linearizable_read_local",
        &["revocations_honoured", "linearizable"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_the_revocation_check_on_followers_verifies_revoked_tokens() {
    caught(
        "skip_follower_revocation",
        &["revocations_honoured", "linearizable"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_that_reads_the_clock_makes_replicas_diverge() {
    caught("apply_reads_clock", &["digests_agree"]).await;
}
