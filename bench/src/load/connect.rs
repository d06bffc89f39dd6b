//! Channels to one node, each its own HTTP/2 connection.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::try_join_all;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How long one connection attempt may take before the run is abandoned.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of every call on these channels: a stuck server turns into errors the run
/// counts, never into a run that does not end.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Most channels one call may open: each is a socket and a connection task.
pub const CHANNELS_MAX: usize = 1024;

/// Where a system under test listens and how to reach it: plaintext (etcd, as it runs here) or
/// TLS trusting a CA (Warrant, as it runs everywhere).
#[derive(Clone, Debug)]
pub struct Dial {
    pub addr: String,
    /// The CA (PEM) the server's certificate chains to; `None`: plaintext.
    pub ca_pem: Option<Vec<u8>>,
}

impl Dial {
    pub fn plain(addr: &str) -> Dial {
        Dial {
            addr: addr.to_string(),
            ca_pem: None,
        }
    }

    pub fn tls(addr: &str, ca_pem: &[u8]) -> Dial {
        Dial {
            addr: addr.to_string(),
            ca_pem: Some(ca_pem.to_vec()),
        }
    }

    /// An endpoint with TCP_NODELAY, the connect timeout and `rpc_timeout` per call.
    pub fn endpoint(&self, rpc_timeout: Duration) -> anyhow::Result<Endpoint> {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", self.addr))
            .with_context(|| format!("endpoint for {}", self.addr))?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(rpc_timeout);
        if let Some(ca) = &self.ca_pem {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            endpoint = endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS for {}", self.addr))?;
        }
        Ok(endpoint)
    }
}

/// `n` eagerly connected channels to `dial`, each its own HTTP/2 connection, TCP_NODELAY on.
pub async fn channels(dial: &Dial, n: usize) -> anyhow::Result<Vec<Channel>> {
    anyhow::ensure!(
        (1..=CHANNELS_MAX).contains(&n),
        "{n} channels asked for; allowed: 1 to {CHANNELS_MAX}"
    );
    let endpoint = dial.endpoint(RPC_TIMEOUT)?;
    let addr = &dial.addr;
    // Each `connect` dials its own connection; clones of one channel would share one.
    let connections = (0..n).map(|_| endpoint.connect());
    try_join_all(connections)
        .await
        .with_context(|| format!("connect {n} channels to {addr}"))
}
