//! Three `warrant server` processes from a given binary as one cluster on loopback.
//!
//! Node n listens on ports 2(n-1) (gRPC) and 2(n-1)+1 (HTTP) of the cluster's [`PortBlock`];
//! its config file, data directory and log live under `<run dir>/warrant-n/`. The nodes start
//! uninitialised; `InitCluster` on node 1 makes them one cluster.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::load::Dial;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use super::{POLL_INTERVAL, PortBlock, START_WAIT_MAX, STOP_WAIT_MAX, child::Spawned, rss};

/// Members of the benchmark cluster.
pub const NODES: u64 = 3;
/// Ports per node: gRPC and HTTP.
const PORTS_PER_NODE: u16 = 3;
/// The deadline of the harness's own RPCs (status polls, InitCluster): a dead node answers
/// nothing, and a poll must move on to the next.
pub const CONTROL_RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// One node: where it listens and its process, when running.
pub struct WarrantNode {
    pub node_id: u64,
    /// The public gRPC API, host:port.
    pub addr: String,
    pub http_addr: String,
    /// The peer listener, host:port.
    pub peer_addr: String,
    pub dir: PathBuf,
    process: Option<Spawned>,
}

pub struct WarrantCluster {
    binary: PathBuf,
    admin_token: String,
    nodes: Vec<WarrantNode>,
    /// The development CA the nodes' certificates chain to (`warrant certs dev`).
    ca_pem: Vec<u8>,
}

impl WarrantCluster {
    /// Starts [`NODES`] nodes of `binary` under `run_dir`, initialises the cluster and waits
    /// until every node serves and they agree on a leader.
    pub async fn start(binary: &Path, run_dir: &Path) -> anyhow::Result<WarrantCluster> {
        let ports = PortBlock::allocate(PORTS_PER_NODE * NODES as u16)?;
        let admin_token = format!("bench-admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let certs = make_certs(binary, &run_dir.join("tls"))?;
        let mut cluster = WarrantCluster {
            binary: binary.to_path_buf(),
            admin_token,
            nodes: Vec::new(),
            ca_pem: std::fs::read(certs.join("ca.pem")).context("read the bench CA")?,
        };
        for node_id in 1..=NODES {
            let offset = PORTS_PER_NODE * (node_id as u16 - 1);
            let node = WarrantNode {
                node_id,
                addr: format!("127.0.0.1:{}", ports.port(offset)),
                http_addr: format!("127.0.0.1:{}", ports.port(offset + 1)),
                peer_addr: format!("127.0.0.1:{}", ports.port(offset + 2)),
                dir: run_dir.join(format!("warrant-{node_id}")),
                process: None,
            };
            std::fs::create_dir_all(&node.dir)
                .with_context(|| format!("create {}", node.dir.display()))?;
            std::fs::write(
                node.dir.join("warrant.toml"),
                config(&node, &cluster.admin_token, &certs),
            )
            .context("write a node config")?;
            cluster.nodes.push(node);
        }
        for id in 1..=NODES {
            cluster.spawn(id)?;
        }
        cluster.bootstrap().await?;
        Ok(cluster)
    }

    async fn bootstrap(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_WAIT_MAX;
        for id in 1..=NODES {
            self.wait_until(id, deadline, "answer Status", |channel| async move {
                status(channel).await.is_ok()
            })
            .await?;
        }
        let members = self
            .nodes
            .iter()
            .map(|node| api::Member {
                node_id: node.node_id,
                address: node.addr.clone(),
                voter: true,
                peer_address: node.peer_addr.clone(),
            })
            .collect();
        ClusterServiceClient::new(self.channel(1)?)
            .init_cluster(self.admin(api::InitClusterRequest { members }))
            .await
            .context("InitCluster")?;
        for id in 1..=NODES {
            self.wait_serving(id, deadline).await?;
        }
        self.leader(START_WAIT_MAX).await?;
        Ok(())
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        let node = self.node_mut(id)?;
        let mut command = Command::new(&binary);
        command
            .arg("server")
            .arg("--config")
            .arg(node.dir.join("warrant.toml"));
        // The config file is the whole configuration: nothing leaks in from the environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WARRANT_") {
                command.env_remove(name);
            }
        }
        command.env("NO_COLOR", "1");
        let log = node.dir.join("node.log");
        node.process = Some(Spawned::spawn(&format!("warrant-{id}"), command, &log)?);
        Ok(())
    }

    async fn wait_serving(&mut self, id: u64, deadline: Instant) -> anyhow::Result<()> {
        self.wait_until(id, deadline, "serve", |channel| async move {
            let serving = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
            serving && status(channel).await.is_ok_and(|s| s.has_leader)
        })
        .await
    }

    /// Polls `ready` against node `id` until it holds, the node exits, or `deadline` passes.
    async fn wait_until<F, Fut>(
        &mut self,
        id: u64,
        deadline: Instant,
        what: &str,
        ready: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = bool>,
    {
        loop {
            let node = self.node_mut(id)?;
            let process = node.process.as_mut().context("the node is not running")?;
            if let Some(exit) = process.exited()? {
                anyhow::bail!(
                    "warrant node {id} exited with {exit}; see {}",
                    process.log_path.display()
                );
            }
            if ready(self.channel(id)?).await {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "warrant node {id} did not {what} within {START_WAIT_MAX:?}; see {}",
                self.node(id)?.dir.join("node.log").display()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// `message` with the cluster's admin credential.
    pub fn admin<T>(&self, message: T) -> tonic::Request<T> {
        admin_request(&self.admin_token, message)
    }

    pub fn node(&self, id: u64) -> anyhow::Result<&WarrantNode> {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut WarrantNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .with_context(|| format!("no node {id}"))
    }

    pub fn addr(&self, id: u64) -> anyhow::Result<&str> {
        Ok(&self.node(id)?.addr)
    }

    /// How to reach node `id`: TLS, trusting the cluster's CA.
    pub fn dial(&self, id: u64) -> anyhow::Result<Dial> {
        Ok(Dial::tls(self.addr(id)?, &self.ca_pem))
    }

    /// A lazily connecting channel to node `id` with [`CONTROL_RPC_TIMEOUT`] per call: for
    /// the harness's own calls, not for load (the generator opens its own connections).
    pub fn channel(&self, id: u64) -> anyhow::Result<Channel> {
        control_channel(&self.dial(id)?)
    }

    /// The ids of the nodes whose process is running.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some())
            .map(|n| n.node_id)
            .collect()
    }

    /// Waits until every live node names the same leader, itself live, and returns it.
    pub async fn leader(&self, wait: Duration) -> anyhow::Result<u64> {
        let live = self.live();
        let channels = live
            .iter()
            .map(|id| Ok((*id, self.channel(*id)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        agreed_leader(&channels, wait, POLL_INTERVAL).await
    }

    /// The leader and one follower (the lowest-numbered other live node).
    pub async fn leader_and_follower(&self) -> anyhow::Result<(u64, u64)> {
        let leader = self.leader(START_WAIT_MAX).await?;
        let follower = self
            .live()
            .into_iter()
            .find(|id| *id != leader)
            .context("no live follower")?;
        Ok((leader, follower))
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).ok()?.process.as_ref().map(Spawned::pid)
    }

    /// The resident memory of node `id`, while it runs.
    pub fn memory(&self, id: u64) -> Option<rss::ProcMemory> {
        rss::of_pid(self.pid(id)?)
    }

    /// SIGKILLs node `id` (no graceful shutdown) and reaps it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        let mut process = node
            .process
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        process.kill();
        Ok(())
    }

    /// Starts a killed node again on its data dir and ports, and waits until it serves.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        anyhow::ensure!(self.pid(id).is_none(), "node {id} is still running");
        self.spawn(id)?;
        self.wait_serving(id, Instant::now() + START_WAIT_MAX).await
    }

    /// SIGTERMs every node and waits (bounded) for each to exit.
    pub async fn stop(mut self) {
        for node in &mut self.nodes {
            if let Some(process) = node.process.as_mut() {
                process.terminate(STOP_WAIT_MAX).await;
            }
        }
    }
}

/// The TOML config of `node`: every key the benchmark relies on is spelled out, the rest are
/// the shipped defaults.
fn config(node: &WarrantNode, admin_token: &str, certs: &Path) -> String {
    // A JSON string literal is a valid TOML basic string.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let lines = [
        format!("node_id = {}", node.node_id),
        format!(
            "data_dir = {}",
            quoted(&node.dir.join("data").display().to_string())
        ),
        format!("listen_addr = {}", quoted(&node.addr)),
        format!("http_listen_addr = {}", quoted(&node.http_addr)),
        format!("peer_listen_addr = {}", quoted(&node.peer_addr)),
        format!("admin_token = {}", quoted(admin_token)),
        format!("issuer = {}", quoted("https://warrant.bench")),
        "init_single_node = false".to_string(),
        "log_format = \"text\"".to_string(),
        // TLS as users run it; the [tls] table comes last (keys after it would belong to it).
        "[tls]".to_string(),
        format!(
            "ca_file = {}",
            quoted(&certs.join("ca.pem").display().to_string())
        ),
        format!(
            "cert_file = {}",
            quoted(
                &certs
                    .join(format!("node-{}.pem", node.node_id))
                    .display()
                    .to_string()
            )
        ),
        format!(
            "key_file = {}",
            quoted(
                &certs
                    .join(format!("node-{}-key.pem", node.node_id))
                    .display()
                    .to_string()
            )
        ),
    ];
    lines.join("\n") + "\n"
}

/// A lazily connecting channel to `dial` with [`CONTROL_RPC_TIMEOUT`] per call.
pub fn control_channel(dial: &Dial) -> anyhow::Result<Channel> {
    Ok(dial.endpoint(CONTROL_RPC_TIMEOUT)?.connect_lazy())
}

/// A development CA and node certificates in `dir`, made by the binary under test.
fn make_certs(binary: &Path, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let output = Command::new(binary)
        .args(["certs", "dev", "--nodes", &NODES.to_string(), "--out"])
        .arg(dir)
        .output()
        .context("run warrant certs dev")?;
    anyhow::ensure!(
        output.status.success(),
        "warrant certs dev failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(dir.to_path_buf())
}

/// `message` with `authorization: Bearer <admin_token>`.
pub fn admin_request<T>(admin_token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {admin_token}")
        .parse()
        .expect("an admin token is valid metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

pub async fn status(channel: Channel) -> Result<api::StatusResponse, tonic::Status> {
    ClusterServiceClient::new(channel)
        .status(api::StatusRequest {})
        .await
        .map(tonic::Response::into_inner)
}

/// Polls `nodes` every `poll` until every one of them names the same leader, itself among
/// them; that leader.
pub async fn agreed_leader(
    nodes: &[(u64, Channel)],
    wait: Duration,
    poll: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + wait;
    loop {
        let mut named = Vec::new();
        for (_, channel) in nodes {
            let leader = status(channel.clone())
                .await
                .ok()
                .and_then(|s| s.has_leader.then_some(s.leader_id));
            named.push(leader);
        }
        if let Some(Some(leader)) = named.first()
            && named.iter().all(|l| *l == Some(*leader))
            && nodes.iter().any(|(id, _)| id == leader)
        {
            return Ok(*leader);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "nodes {:?} did not agree on a leader among them within {wait:?}: they name {named:?}",
            nodes.iter().map(|(id, _)| *id).collect::<Vec<_>>()
        );
        tokio::time::sleep(poll).await;
    }
}
