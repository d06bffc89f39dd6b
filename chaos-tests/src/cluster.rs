//! Three real `warrant server` processes, each in a network namespace of its own ([`Net`]).
//!
//! The harness owns every process it starts and signals only those, by the pids it holds. A node
//! listens on fixed ports inside its namespace (no two nodes share an address, so nothing races
//! for a free port); the test process reaches each one over the bridge, as a client on another
//! host would. Every wait is a bounded poll of a condition.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use nix::{sys::signal::Signal, unistd::Pid};
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use crate::{disk::SmallDisk, net::Net};

/// The public gRPC port every node listens on inside its namespace.
pub const GRPC_PORT: u16 = 7001;
/// The HTTP port (JWKS, metrics).
pub const HTTP_PORT: u16 = 7002;
/// The peer (Raft, mutual TLS) port.
pub const PEER_PORT: u16 = 7003;
/// How long a node may take to answer after it was started.
pub const START_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long the cluster may take to agree on a leader.
pub const LEADER_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The deadline of every client call: a paused node must not hang a client.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a client waits for a TCP and TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The clock leeway the nodes are configured with (seconds).
pub const CLOCK_LEEWAY_S: i64 = 5;
/// The size of a node's data disk when the scenario gives it one of its own (a tmpfs).
pub const SMALL_DISK_MIB: u64 = 256;
/// The environment variable naming the `warrant` binary to run, when not beside this one.
pub const BINARY_ENV: &str = "CHAOS_WARRANT_BIN";
/// How the node learns our pid, to die with us (`PR_SET_PDEATHSIG`): see `node::lifecycle`.
const PARENT_PID_ENV: &str = "LOCAL_CLUSTER_PARENT_PID";

/// What a cluster is started with.
#[derive(Clone, Debug, Default)]
pub struct ClusterSpec {
    /// A short name for namespaces and logs.
    pub tag: String,
    /// The third octet of 10.77.x.0/24: distinct per cluster alive at once.
    pub subnet: u8,
    /// Extra environment per node id (failpoints, canaries, a skewed clock).
    pub env: BTreeMap<u64, Vec<(String, String)>>,
    /// Give every node's data dir a small tmpfs of its own (the disk-full nemesis fills one).
    pub small_disks: bool,
    /// Extra config keys for every node.
    pub extra: toml::Table,
}

/// The `warrant` binary under test: [`BINARY_ENV`], or the one Cargo built beside this
/// executable (`target/<profile>/warrant`, for a test in `target/<profile>/deps/`).
pub fn warrant_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locate this executable")?;
    let mut dir = exe.parent().context("this executable's directory")?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().context("the profile directory")?;
    }
    let binary = dir.join("warrant");
    ensure!(
        binary.is_file(),
        "no warrant binary at {}: build it first (`cargo build -p warrant-node --features chaos`) \
         or name it in {BINARY_ENV}",
        binary.display()
    );
    Ok(binary)
}

/// One `warrant server` process and its directory.
pub struct ChaosNode {
    pub id: u64,
    dir: PathBuf,
    child: Option<Child>,
    /// Starts so far; each start logs to its own pair of files.
    starts: u32,
    /// The environment every start gets (the scenario's), beyond the one-off of a restart.
    pub env: Vec<(String, String)>,
    paused: bool,
    channel: Channel,
    /// Held so that it is unmounted only after the process is gone.
    disk: Option<SmallDisk>,
    /// How each start that ended on its own ended (a crash, a fatal storage error), for the
    /// report: "start 2: exit status: 1".
    pub exits: Vec<String>,
}

impl ChaosNode {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn disk(&self) -> Option<&SmallDisk> {
        self.disk.as_ref()
    }

    /// Whether the process is still running; reaps it if it exited on its own (a crash).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(ended) => {
                let how = match ended {
                    Ok(Some(status)) => status.to_string(),
                    Ok(None) => "running".to_string(),
                    Err(error) => error.to_string(),
                };
                self.exits.push(format!("start {}: {how}", self.starts));
                self.child = None;
                self.paused = false;
                false
            }
            None => false,
        }
    }

    /// SIGKILLs the process (only ours) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERMs the process (only ours), as an operator's rolling restart does (a stopping
    /// leader hands leadership over first), and reaps it within `wait_max`; SIGKILLs it and
    /// fails if it has not exited by then.
    pub async fn stop(&mut self, wait_max: Duration) -> anyhow::Result<()> {
        if self.paused {
            self.pause(false)?;
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)
            .with_context(|| format!("SIGTERM node {}", self.id))?;
        let deadline = tokio::time::Instant::now() + wait_max;
        while matches!(child.try_wait(), Ok(None)) {
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                bail!(
                    "node {} did not exit within {wait_max:?} of SIGTERM",
                    self.id
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.child = None;
        Ok(())
    }

    /// SIGSTOP or SIGCONT.
    pub fn pause(&mut self, pause: bool) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let signal = if pause {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        nix::sys::signal::kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("{signal} node {}", self.id))?;
        self.paused = pause;
        Ok(())
    }

    /// The last bytes of the current start's stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let path = self.dir.join(format!("stderr.{}.log", self.starts));
        let text = fs::read_to_string(path).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// Every stderr log of every start, concatenated (for a run's artefacts).
    pub fn logs_dir(&self) -> &Path {
        &self.dir
    }
}

/// How much of a log a failure message quotes.
const LOG_TAIL_BYTES: usize = 4096;

impl Drop for ChaosNode {
    fn drop(&mut self) {
        if self.paused {
            let _ = self.pause(false);
        }
        self.kill();
    }
}

/// The three nodes, their network and their certificates.
pub struct ChaosCluster {
    pub nodes: BTreeMap<u64, ChaosNode>,
    pub net: Net,
    binary: PathBuf,
    certs: PathBuf,
    admin_token: String,
    spec: ClusterSpec,
    /// Owns every node's directory; kept when the run fails (see [`ChaosCluster::keep_dir`]).
    dir: tempfile::TempDir,
}

impl ChaosCluster {
    /// Starts three nodes in their namespaces, makes them one cluster and waits for a leader.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<ChaosCluster> {
        let binary = warrant_binary()?;
        let ids = [1u64, 2, 3];
        let net = Net::create(&spec.tag, spec.subnet, &ids)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("warrant-chaos-{}-", spec.tag))
            .tempdir()
            .context("create the run's directory")?;
        let certs = dir.path().join("certs");
        make_certs(&binary, &certs, &net, &ids)?;
        let admin_token = format!("chaos-admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let tls = client_tls(&certs)?;
        let mut nodes = BTreeMap::new();
        for id in ids {
            let node_dir = dir.path().join(format!("node-{id}"));
            fs::create_dir_all(node_dir.join("data")).context("create a node's directory")?;
            let disk = if spec.small_disks {
                Some(SmallDisk::mount(&node_dir.join("data"), SMALL_DISK_MIB)?)
            } else {
                None
            };
            let endpoint =
                Endpoint::from_shared(format!("https://{}:{GRPC_PORT}", net.node_ip(id)))
                    .context("node endpoint")?
                    .tls_config(tls.clone())
                    .context("client TLS")?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(RPC_TIMEOUT);
            let node = ChaosNode {
                id,
                dir: node_dir,
                child: None,
                starts: 0,
                env: spec.env.get(&id).cloned().unwrap_or_default(),
                paused: false,
                channel: endpoint.connect_lazy(),
                disk,
                exits: Vec::new(),
            };
            nodes.insert(id, node);
        }
        let mut cluster = ChaosCluster {
            nodes,
            net,
            binary,
            certs,
            admin_token,
            spec,
            dir,
        };
        for id in ids {
            cluster.write_config(id)?;
            cluster.spawn(id, &[])?;
        }
        cluster.init().await?;
        Ok(cluster)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> &ChaosNode {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut ChaosNode {
        self.nodes.get_mut(&id).expect("a node of this cluster")
    }

    pub fn channel(&self, id: u64) -> Channel {
        self.nodes[&id].channel()
    }

    /// The CA, client and node certificates (`warrant certs dev`).
    pub fn certs_dir(&self) -> &Path {
        &self.certs
    }

    /// The binary the nodes run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// `message` with the admin credential.
    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_auth(&format!("Bearer {}", self.admin_token), message)
    }

    /// The gRPC address clients dial for node `id`.
    pub fn addr(&self, id: u64) -> String {
        format!("{}:{GRPC_PORT}", self.net.node_ip(id))
    }

    /// Keeps the run's directory (logs, data dirs) past the end of the process, and says where.
    pub fn keep_dir(self) -> PathBuf {
        let ChaosCluster { nodes, dir, .. } = self;
        drop(nodes);
        dir.keep()
    }

    /// Starts a node that is not running, with the scenario's environment plus `extra_env`.
    pub async fn start_node(
        &mut self,
        id: u64,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<()> {
        ensure!(!self.node_mut(id).alive(), "node {id} is already running");
        self.spawn(id, extra_env)?;
        self.wait_answering(id).await
    }

    /// Starts a node that is not running, without waiting for it to answer: for a start that
    /// may crash on purpose (an armed failpoint can fire while it starts).
    pub fn spawn_node(&mut self, id: u64) -> anyhow::Result<()> {
        ensure!(!self.node_mut(id).alive(), "node {id} is already running");
        self.spawn(id, &[])
    }

    /// The leader every running, unpaused node reports, once they agree.
    pub async fn leader(&mut self) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT_MAX;
        loop {
            let mut reports = Vec::new();
            for id in self.ids() {
                if !self.node_mut(id).alive() || self.node(id).paused {
                    continue;
                }
                let status = status(self.channel(id)).await.ok();
                reports.push(status.and_then(|s| s.has_leader.then_some(s.leader_id)));
            }
            if let Some(Some(leader)) = reports.first()
                && reports.iter().all(|r| *r == Some(*leader))
            {
                return Ok(*leader);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no leader agreed within {LEADER_WAIT_MAX:?}: {reports:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Each running node's (applied index, digest), once every running node has applied the
    /// leader's commit index.
    pub async fn converged_digests(&mut self) -> anyhow::Result<Vec<(u64, u64, String)>> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT_MAX;
        loop {
            let mut digests = Vec::new();
            for id in self.ids() {
                if !self.node_mut(id).alive() {
                    continue;
                }
                let request = self.admin(api::DigestRequest {});
                if let Ok(reply) = ClusterServiceClient::new(self.channel(id))
                    .digest(request)
                    .await
                {
                    let reply = reply.into_inner();
                    digests.push((id, reply.applied_index, reply.sha256_hex));
                }
            }
            let indexes: Vec<u64> = digests.iter().map(|d| d.1).collect();
            if digests.len() == self.running() && indexes.windows(2).all(|w| w[0] == w[1]) {
                return Ok(digests);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("nodes did not converge within {LEADER_WAIT_MAX:?}: {digests:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// How many nodes have a running process.
    pub fn running(&mut self) -> usize {
        let ids = self.ids();
        ids.into_iter()
            .filter(|id| self.node_mut(*id).alive())
            .count()
    }

    async fn init(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.wait_answering(id).await?;
        }
        let members = self
            .ids()
            .into_iter()
            .map(|id| api::Member {
                node_id: id,
                address: self.addr(id),
                voter: true,
                peer_address: format!("{}:{PEER_PORT}", self.net.node_ip(id)),
            })
            .collect();
        let request = self.admin(api::InitClusterRequest { members });
        ClusterServiceClient::new(self.channel(1))
            .init_cluster(request)
            .await
            .context("InitCluster")?;
        self.leader().await?;
        Ok(())
    }

    /// Waits until node `id`'s process answers an admin call (proving it is ours).
    async fn wait_answering(&mut self, id: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_WAIT_MAX;
        loop {
            if !self.node_mut(id).alive() {
                bail!(
                    "node {id} exited while starting:\n{}",
                    self.node(id).stderr_tail()
                );
            }
            let request = self.admin(api::DigestRequest {});
            if ClusterServiceClient::new(self.channel(id))
                .digest(request)
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "node {id} did not answer within {START_WAIT_MAX:?}:\n{}",
                    self.node(id).stderr_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn write_config(&self, id: u64) -> anyhow::Result<()> {
        let ip = self.net.node_ip(id);
        let node = self.node(id);
        let mut tls = toml::Table::new();
        let certs = &self.certs;
        tls.insert("ca_file".into(), path_value(&certs.join("ca.pem")));
        tls.insert(
            "cert_file".into(),
            path_value(&certs.join(format!("node-{id}.pem"))),
        );
        tls.insert(
            "key_file".into(),
            path_value(&certs.join(format!("node-{id}-key.pem"))),
        );
        let mut table = self.spec.extra.clone();
        table.insert("node_id".into(), toml::Value::Integer(id as i64));
        table.insert("data_dir".into(), path_value(&node.data_dir()));
        table.insert("listen_addr".into(), format!("{ip}:{GRPC_PORT}").into());
        table.insert(
            "http_listen_addr".into(),
            format!("{ip}:{HTTP_PORT}").into(),
        );
        table.insert(
            "peer_listen_addr".into(),
            format!("{ip}:{PEER_PORT}").into(),
        );
        table.insert("tls".into(), toml::Value::Table(tls));
        table.insert("admin_token".into(), self.admin_token.clone().into());
        table.insert("issuer".into(), "https://warrant.chaos".into());
        table.insert(
            "clock_leeway_s".into(),
            toml::Value::Integer(CLOCK_LEEWAY_S),
        );
        table.insert("init_single_node".into(), false.into());
        let text = toml::to_string(&table).context("render a node's config")?;
        fs::write(node.dir.join("warrant.toml"), text).context("write a node's config")
    }

    /// Spawns node `id` in its namespace; its pid is the `warrant` process's own (`ip netns
    /// exec` execs it).
    fn spawn(&mut self, id: u64, extra_env: &[(String, String)]) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        let mut command = self.net.command(id, &binary);
        let node = self.node_mut(id);
        node.starts += 1;
        let log =
            |stream: &str| fs::File::create(node.dir.join(format!("{stream}.{}.log", node.starts)));
        let stdout = log("stdout").context("create a stdout log")?;
        let stderr = log("stderr").context("create a stderr log")?;
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WARRANT_") {
                command.env_remove(name);
            }
        }
        // Its own process group: a terminal's Ctrl-C reaches the harness, which stops its nodes
        // by pid, never a group it does not own.
        command.process_group(0);
        command
            .arg("server")
            .arg("--config")
            .arg(node.dir.join("warrant.toml"))
            .env("NO_COLOR", "1")
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .envs(node.env.iter().chain(extra_env).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        node.child = Some(command.spawn().context("spawn warrant")?);
        Ok(())
    }
}

/// `warrant certs dev` for the nodes, naming their namespace addresses.
fn make_certs(binary: &Path, out: &Path, net: &Net, ids: &[u64]) -> anyhow::Result<()> {
    let mut command = std::process::Command::new(binary);
    command.args(["certs", "dev", "--nodes", &ids.len().to_string()]);
    for id in ids {
        command.args(["--host", &net.node_ip(*id).to_string()]);
    }
    let output = command
        .arg("--out")
        .arg(out)
        .output()
        .context("run warrant certs dev")?;
    ensure!(
        output.status.success(),
        "warrant certs dev failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn client_tls(certs: &Path) -> anyhow::Result<ClientTlsConfig> {
    let ca = fs::read(certs.join("ca.pem")).context("read the CA")?;
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
}

fn path_value(path: &Path) -> toml::Value {
    path.display().to_string().into()
}

/// ClusterService.Status of one node.
pub async fn status(channel: Channel) -> Result<api::StatusResponse, tonic::Status> {
    ClusterServiceClient::new(channel)
        .status(api::StatusRequest {})
        .await
        .map(tonic::Response::into_inner)
}

/// `message` with `authorization: <value>`.
pub fn with_auth<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(authorization) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
