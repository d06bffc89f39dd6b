//! Channels to one node, each its own HTTP/2 connection.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::try_join_all;
use tonic::transport::{Channel, Endpoint};

/// How long one connection attempt may take before the run is abandoned.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of every call on these channels: a stuck server turns into errors the run
/// counts, never into a run that does not end.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Most channels one call may open: each is a socket and a connection task.
pub const CHANNELS_MAX: usize = 1024;

/// `n` eagerly connected channels to `http://{addr}`, each its own HTTP/2 connection, TCP_NODELAY
/// on.
pub async fn channels(addr: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    anyhow::ensure!(
        (1..=CHANNELS_MAX).contains(&n),
        "{n} channels asked for; allowed: 1 to {CHANNELS_MAX}"
    );
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("endpoint for {addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT);
    // Each `connect` dials its own connection; clones of one channel would share one.
    let connections = (0..n).map(|_| endpoint.connect());
    try_join_all(connections)
        .await
        .with_context(|| format!("connect {n} channels to {addr}"))
}
