//! `RaftNode::fatal` answers only for a stop the node did not ask for: after a requested
//! shutdown it stays pending, so a server waiting on it shuts down cleanly instead of reporting
//! a failure. (A real fatal error, a full disk, is `node/tests/fatal_storage.rs`.)

mod support;

use futures::FutureExt;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_shutdown_is_not_fatal() {
    let dir = TempDir::new().expect("temp dir");
    let node = support::single_leader(dir.path()).await;
    // A server spawns the future that waits on it.
    assert_send(&node.fatal());
    assert!(
        node.fatal().now_or_never().is_none(),
        "a running node is not stopped"
    );

    node.shutdown().await;
    // The core has ended (shutdown joins it) and said it was asked to stop.
    assert_eq!(node.status().role, "SHUTDOWN");
    assert_eq!(
        node.status().leader_id,
        None,
        "a stopped node follows no leader"
    );
    assert!(
        node.fatal().now_or_never().is_none(),
        "a requested shutdown is reported as fatal"
    );
}

fn assert_send<T: Send>(_: &T) {}
