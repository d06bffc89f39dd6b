//! A three-node cluster on loopback, as child `warrant server` processes of this binary: for
//! `warrant local-cluster` and `warrant demo`.
//!
//! Each node gets its own data directory and log file under one directory, and TLS material
//! from a development CA made in `tls/` there (`warrant certs dev`), so a local cluster is TLS
//! end to end, its peers on mutual TLS, as a production one is. Stopping sends each
//! child SIGTERM (a graceful shutdown) and waits for it; a child still running after
//! [`STOP_WAIT_MAX`] is killed. Only the children this process started are ever signalled.
//! A parent that dies without stopping them (SIGKILL, SIGPIPE) takes them along: each child
//! asks the kernel for SIGTERM on its parent's death (`lifecycle::die_with_parent`).
//!
//! Children are spawned from the thread that runs the command (`block_on`'s), never from a
//! runtime worker: the kernel sends the parent-death signal when the spawning *thread* exits.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use nix::{sys::signal::Signal, unistd::Pid};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use crate::{
    certs::DevCerts,
    client::{Connector, authed},
};

/// Nodes in a local cluster.
pub const LOCAL_NODES: u64 = 3;
/// How long the cluster may take to start and elect a leader.
const START_WAIT_MAX: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a node may take to shut down after SIGTERM: its own bound, and a little more.
const STOP_WAIT_MAX: Duration = Duration::from_secs(warrant_api::STOP_WAIT_MAX.as_secs() + 5);

/// One local node.
pub struct LocalNode {
    pub node_id: u64,
    /// The public gRPC API.
    pub addr: String,
    /// HTTP: JWKS and /healthz.
    pub http_addr: String,
    /// The peer listener (mutual TLS).
    pub peer_addr: String,
    pub log_path: PathBuf,
    child: Child,
}

pub struct LocalCluster {
    pub nodes: Vec<LocalNode>,
    pub admin_token: String,
    pub certs: DevCerts,
    /// Dials the nodes, trusting the development CA.
    pub connector: Connector,
}

impl LocalCluster {
    /// Starts the nodes under `dir` on ports `base_port..base_port + 3 * LOCAL_NODES` (gRPC,
    /// HTTP and peers for each node in turn), initialises the cluster and waits until every
    /// node serves.
    pub async fn start(dir: &Path, base_port: u16, admin_token: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let certs = crate::certs::make(&dir.join("tls"), LOCAL_NODES, &[], &[])?;
        let connector = Connector::from_args(&crate::client::TlsArgs {
            ca: Some(certs.ca_file.clone()),
            cert: None,
            key: None,
        })?;
        let mut cluster = LocalCluster {
            nodes: Vec::new(),
            admin_token: admin_token.to_string(),
            certs,
            connector,
        };
        for node_id in 1..=LOCAL_NODES {
            match cluster.spawn(dir, base_port, node_id) {
                Ok(node) => cluster.nodes.push(node),
                Err(e) => {
                    cluster.stop().await;
                    return Err(e);
                }
            }
        }
        if let Err(e) = cluster.bootstrap().await {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    /// Starts node `node_id` as a child process, configured through flags and `WARRANT_*`.
    fn spawn(&self, dir: &Path, base_port: u16, node_id: u64) -> anyhow::Result<LocalNode> {
        let exe = std::env::current_exe().context("find the warrant binary")?;
        let offset = u16::try_from(3 * (node_id - 1)).context("port offset")?;
        let port = base_port
            .checked_add(offset)
            .filter(|p| p.checked_add(2).is_some())
            .context("base port too high")?;
        let addr = format!("127.0.0.1:{port}");
        let http_addr = format!("127.0.0.1:{}", port + 1);
        let peer_addr = format!("127.0.0.1:{}", port + 2);
        let log_path = dir.join(format!("node-{node_id}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let tls = self.certs.node(node_id);
        let child = Command::new(&exe)
            .arg("server")
            .args(["--node-id", &node_id.to_string()])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{node_id}")))
            .args(["--listen-addr", &addr, "--http-listen-addr", &http_addr])
            .args(["--peer-listen-addr", &peer_addr])
            .env("WARRANT_ADMIN_TOKEN", &self.admin_token)
            .env("WARRANT_TLS__CA_FILE", &tls.ca_file)
            .env("WARRANT_TLS__CERT_FILE", &tls.cert_file)
            .env("WARRANT_TLS__KEY_FILE", &tls.key_file)
            // A development cluster: humans may log in with local passwords.
            .env("WARRANT_ALLOW_LOCAL_PASSWORDS", "true")
            .env("NO_COLOR", "1")
            // The child asks for SIGTERM when this process dies (`lifecycle::die_with_parent`):
            // a parent killed outright, or stopped by SIGPIPE, leaves no node behind.
            .env(
                crate::lifecycle::PARENT_PID_ENV,
                std::process::id().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            .spawn()
            .context("start a warrant server")?;
        Ok(LocalNode {
            node_id,
            addr,
            http_addr,
            peer_addr,
            log_path,
            child,
        })
    }

    async fn bootstrap(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_WAIT_MAX;
        let connector = self.connector.clone();
        for node in &mut self.nodes {
            wait_until(&connector, deadline, node, |channel| async move {
                ClusterServiceClient::new(channel)
                    .status(api::StatusRequest {})
                    .await
                    .is_ok()
            })
            .await?;
        }
        let members = self
            .nodes
            .iter()
            .map(|n| api::Member {
                node_id: n.node_id,
                address: n.addr.clone(),
                voter: true,
                peer_address: n.peer_addr.clone(),
            })
            .collect();
        let channel = connector.connect(&self.nodes[0].addr).await?;
        ClusterServiceClient::new(channel)
            .init_cluster(authed(
                &format!("Bearer {}", self.admin_token),
                api::InitClusterRequest { members },
            ))
            .await
            .context("initialise the cluster")?;
        for node in &mut self.nodes {
            wait_until(&connector, deadline, node, |channel| async move {
                HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
            })
            .await?;
        }
        Ok(())
    }

    /// SIGTERMs every node and waits for each to exit.
    pub async fn stop(self) {
        for node in &self.nodes {
            if let Ok(pid) = i32::try_from(node.child.id()) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for mut node in self.nodes {
            let deadline = tokio::time::Instant::now() + STOP_WAIT_MAX;
            loop {
                match node.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if tokio::time::Instant::now() >= deadline => {
                        eprintln!(
                            "node {} did not stop within {STOP_WAIT_MAX:?}; killing it",
                            node.node_id
                        );
                        let _ = node.child.kill();
                        let _ = node.child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(POLL_INTERVAL).await,
                }
            }
        }
    }
}

/// Polls `ready` against `node` until it holds, the node exits, or the deadline passes.
async fn wait_until<F, Fut>(
    connector: &Connector,
    deadline: tokio::time::Instant,
    node: &mut LocalNode,
    ready: F,
) -> anyhow::Result<()>
where
    F: Fn(tonic::transport::Channel) -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if let Some(exit) = node.child.try_wait().context("wait for a node")? {
            anyhow::bail!(
                "node {} exited with {exit}; see {}",
                node.node_id,
                node.log_path.display()
            );
        }
        if let Ok(channel) = connector.connect(&node.addr).await
            && ready(channel).await
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node {} not ready within {START_WAIT_MAX:?}; see {}",
            node.node_id,
            node.log_path.display()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
