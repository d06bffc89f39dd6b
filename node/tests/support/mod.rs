//! A harness that runs the real `warrant` binary: one node as a one-node cluster, or several as
//! members of one cluster ([`cluster`]).
//!
//! Each [`Node`] owns a temporary directory (config, data dir, stdout/stderr logs) and exactly one
//! child process. It signals only that child, by its own pid, and kills it on drop. Readiness is
//! a bounded poll of a condition, never a sleep (see [`Ready`]).

#![allow(dead_code)] // Each test binary uses a subset of the helpers.

pub mod audit;
pub mod cluster;

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;
use warrant_proto::api::{
    self, Consistency, ReadOptions, audit_service_client::AuditServiceClient,
    cluster_service_client::ClusterServiceClient, identity_service_client::IdentityServiceClient,
    token_service_client::TokenServiceClient,
};

/// How long a node may take to become ready.
pub const READY_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often readiness is polled.
pub const READY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The per-RPC deadline of the test clients: no call hangs a test.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a start is retried on a fresh port when the picked one was taken meanwhile.
const PORT_ATTEMPTS_MAX: usize = 5;
/// The clock leeway the node is configured with.
pub const CLOCK_LEEWAY_S: u64 = 5;
/// How much of a log file a failure message quotes.
const LOG_TAIL_BYTES: usize = 6 * 1024;

/// What "ready" means for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Health SERVING and this node is the leader: a one-node cluster.
    Leader,
    /// Health SERVING: a leader is known and this node's signing key is published.
    Serving,
    /// The process answers as ours (admin Digest), nothing more: an uninitialised member.
    Listening,
}

/// Nodes every test binary's development CA has certificates for.
pub const CERT_NODES: u64 = 8;
/// Operators it has client certificates for (`operator-<id>.pem`).
pub const CERT_OPERATORS: [&str; 3] = ["root", "ops", "audit"];

/// A development CA with certificates for nodes 1..=[`CERT_NODES`] and a client, made by the
/// binary under test (`warrant certs dev`), as an operator would. One per test binary: every
/// node it starts runs TLS on every listener and mutual TLS between peers, as in production.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    /// The test binary's certificates, made on first use.
    pub fn shared() -> &'static Certs {
        static CERTS: std::sync::OnceLock<Certs> = std::sync::OnceLock::new();
        CERTS.get_or_init(|| Certs::make(&format!("certs-{}", std::process::id())))
    }

    /// A fresh CA and certificates in `CARGO_TARGET_TMPDIR/<name>`.
    pub fn make(name: &str) -> Certs {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let mut command = warrant_command();
        command.args(["certs", "dev", "--nodes", &CERT_NODES.to_string()]);
        for operator in CERT_OPERATORS {
            command.args(["--operator", operator]);
        }
        let output = command
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("run warrant certs dev");
        assert!(
            output.status.success(),
            "warrant certs dev failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Certs { dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// (certificate, key) of node `node_id`.
    pub fn node_files(&self, node_id: u64) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("node-{node_id}.pem")),
            self.dir.join(format!("node-{node_id}-key.pem")),
        )
    }

    /// (certificate, key) of the client certificate, which names no node.
    pub fn client_files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.pem"), self.dir.join("client-key.pem"))
    }

    /// A client's TLS settings: trust this CA.
    pub fn client_tls(&self) -> ClientTlsConfig {
        let ca = fs::read(self.ca_file()).expect("read the CA");
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca))
    }

    /// [`Certs::client_tls`] presenting `node_id`'s certificate (`None`: the client one).
    pub fn client_tls_as(&self, node_id: Option<u64>) -> ClientTlsConfig {
        let (cert, key) = match node_id {
            Some(id) => self.node_files(id),
            None => self.client_files(),
        };
        let identity = Identity::from_pem(
            fs::read(cert).expect("read a certificate"),
            fs::read(key).expect("read a key"),
        );
        self.client_tls().identity(identity)
    }

    /// [`Certs::client_tls`] presenting operator `operator_id`'s certificate.
    pub fn operator_tls(&self, operator_id: &str) -> ClientTlsConfig {
        let read = |name: String| fs::read(self.dir.join(name)).expect("read an operator file");
        let identity = Identity::from_pem(
            read(format!("operator-{operator_id}.pem")),
            read(format!("operator-{operator_id}-key.pem")),
        );
        self.client_tls().identity(identity)
    }

    /// The `[tls]` table of node `node_id`.
    fn config(&self, node_id: u64) -> toml::Table {
        let (cert, key) = self.node_files(node_id);
        let mut tls = toml::Table::new();
        tls.insert(
            "ca_file".into(),
            self.ca_file().display().to_string().into(),
        );
        tls.insert("cert_file".into(), cert.display().to_string().into());
        tls.insert("key_file".into(), key.display().to_string().into());
        tls
    }
}

/// The binary under test, with no `WARRANT_*` variable of the test's environment.
pub fn warrant_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warrant"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WARRANT_") {
            command.env_remove(name);
        }
    }
    command
}

/// A TLS endpoint for `addr` (host:port) trusting the test CA.
pub fn tls_endpoint(addr: &str) -> Endpoint {
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(Certs::shared().client_tls())
        .expect("TLS settings")
}

/// One running `warrant server` process and its directory.
pub struct Node {
    node_id: u64,
    init_single_node: bool,
    /// Extra config keys (e.g. snapshot tuning).
    extra: toml::Table,
    ready: Ready,
    dir: tempfile::TempDir,
    port: u16,
    /// The HTTP port (JWKS, healthz); picked anew with each config written.
    http_port: u16,
    /// The peer listener's port: picked once, since the membership records it.
    peer_port: u16,
    admin_token: String,
    issuer: String,
    child: Option<Child>,
    channel: Option<Channel>,
    /// Starts so far; each start logs to its own pair of files.
    starts: u32,
    /// Environment variables the process gets beyond the test's own (e.g. `OTEL_*`).
    env: Vec<(String, String)>,
}

impl Node {
    /// Starts a fresh one-node cluster in a new temporary directory and waits until it leads.
    pub async fn start() -> Node {
        let admin_token = format!("test-admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut node = Node::new(1, true, toml::Table::new(), Ready::Leader, admin_token);
        node.launch(None).await;
        node
    }

    /// Starts an uninitialised node that will join a cluster, and waits until it answers.
    pub async fn start_member(node_id: u64, admin_token: &str, extra: toml::Table) -> Node {
        Node::start_member_with_env(node_id, admin_token, extra, Vec::new()).await
    }

    /// [`Node::start_member`] with `env` set in the process's environment.
    pub async fn start_member_with_env(
        node_id: u64,
        admin_token: &str,
        extra: toml::Table,
        env: Vec<(String, String)>,
    ) -> Node {
        let mut node = Node::new(
            node_id,
            false,
            extra,
            Ready::Listening,
            admin_token.to_string(),
        );
        node.env = env;
        node.launch(None).await;
        // From now on (restarts), ready means serving in the cluster.
        node.ready = Ready::Serving;
        node
    }

    /// A member whose ports are chosen but whose process is not started yet: for a data dir
    /// written offline first (a restore), then started with [`Node::start_prepared`].
    pub fn unstarted_member(node_id: u64, admin_token: &str, extra: toml::Table) -> Node {
        let mut node = Node::new(
            node_id,
            false,
            extra,
            Ready::Listening,
            admin_token.to_string(),
        );
        node.port = free_port();
        node
    }

    /// Starts a node made by [`Node::unstarted_member`] on its chosen port (if still free) and
    /// waits until its process answers; [`Node::wait_serving`] waits for more.
    pub async fn start_prepared(&mut self) {
        let port = self.port;
        self.launch(Some(port)).await;
        self.ready = Ready::Serving;
    }

    fn new(
        node_id: u64,
        init_single_node: bool,
        extra: toml::Table,
        ready: Ready,
        admin_token: String,
    ) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("warrant-it-{node_id}-"))
            .tempdir()
            .expect("create temp dir");
        Node {
            node_id,
            init_single_node,
            extra,
            ready,
            dir,
            port: 0,
            http_port: 0,
            peer_port: free_port(),
            admin_token,
            issuer: "https://warrant.test".to_string(),
            child: None,
            channel: None,
            starts: 0,
            env: Vec::new(),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The gRPC address clients use.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The peer listener's address.
    pub fn peer_addr(&self) -> String {
        format!("127.0.0.1:{}", self.peer_port)
    }

    /// Whether this node runs TLS (the default; `insecure_plaintext = true` in its extra keys
    /// turns it off).
    pub fn tls(&self) -> bool {
        self.extra.get("insecure_plaintext") != Some(&toml::Value::Boolean(true))
    }

    /// An endpoint for this node's public gRPC port, with the test clients' timeouts.
    pub fn endpoint(&self) -> Endpoint {
        let endpoint = if self.tls() {
            tls_endpoint(&self.addr())
        } else {
            Endpoint::from_shared(format!("http://{}", self.addr())).expect("endpoint")
        };
        endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(RPC_TIMEOUT)
    }

    /// Waits until the node is ready in the sense of [`Ready::Serving`].
    pub async fn wait_serving(&mut self) {
        self.ready = Ready::Serving;
        match self.wait_ready().await {
            Ok(channel) => self.channel = Some(channel),
            Err(Failure::PortTaken) => panic!("node {} lost its port", self.node_id),
            Err(Failure::Other(why)) => panic!(
                "node {} did not start serving: {why}\n--- stderr tail ---\n{}",
                self.node_id,
                self.stderr_tail()
            ),
        }
    }

    /// Sends `signal` to this node's process (only it).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.pid().expect("the node is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .expect("signal the node");
    }

    /// SIGKILLs the node (no graceful shutdown) and starts it again on the same data dir, on the
    /// same port if it is still free. Waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.start_again().await;
    }

    /// Starts a killed node again on the same data dir and port, and waits until it is ready.
    pub async fn start_again(&mut self) {
        let port = self.port;
        self.launch(Some(port)).await;
    }

    /// SIGKILLs this node's process (only it) and reaps it.
    pub fn kill(&mut self) {
        self.channel = None;
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the node");
            child.wait().expect("reap the node");
        }
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A plain HTTP/1.1 GET against the node's HTTP port: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http_request(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Sends one raw HTTP/1.1 request to the node's HTTP port, over TLS unless the node runs
    /// plaintext: (status code, body).
    fn http_request(&self, request: &str) -> (u16, String) {
        let response = self.http_exchange(request);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Sends one raw HTTP/1.1 request to the node's HTTP port (TLS unless the node runs
    /// plaintext) and returns the whole response, head and body.
    pub fn http_exchange(&self, request: &str) -> String {
        use std::io::{Read, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.http_port))
            .expect("connect to the HTTP port");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set read timeout");
        let mut response = String::new();
        if self.tls() {
            let mut tls = rustls::StreamOwned::new(tls_client("127.0.0.1"), stream);
            tls.write_all(request.as_bytes()).expect("send request");
            read_until_close(&mut tls, &mut response);
        } else {
            let mut stream = stream;
            stream.write_all(request.as_bytes()).expect("send request");
            stream.read_to_string(&mut response).expect("read response");
        }
        response
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The Ed25519 PKCS#8 signing key the node generated in its data dir.
    pub fn signing_key_pkcs8(&self) -> Vec<u8> {
        fs::read(self.data_dir().join("signing-key.p8")).expect("read the node's signing key")
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone().expect("the node is running")
    }

    pub fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel())
    }

    pub fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel())
    }

    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel())
    }

    pub fn cluster(&self) -> ClusterServiceClient<Channel> {
        ClusterServiceClient::new(self.channel())
    }

    /// The admin credential as `authorization` metadata.
    pub fn admin_auth(&self) -> String {
        format!("Bearer {}", self.admin_token)
    }

    /// `message` with the admin credential.
    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_auth(Some(&self.admin_auth()), message)
    }

    /// The digest of the whole projected state and the applied seq it was taken at.
    pub async fn digest(&self) -> api::DigestResponse {
        self.cluster()
            .digest(self.admin(api::DigestRequest {}))
            .await
            .expect("Digest")
            .into_inner()
    }

    pub async fn register_human(&self, human_id: &str) -> api::RegisterHumanResponse {
        let request = api::RegisterHumanRequest {
            human_id: human_id.to_string(),
            display_name: format!("Human {human_id}"),
            email: format!("{human_id}@example.com"),
            ..Default::default()
        };
        self.identity()
            .register_human(self.admin(request))
            .await
            .expect("RegisterHuman")
            .into_inner()
    }

    pub async fn register_agent(
        &self,
        agent_id: &str,
        owner_human_id: &str,
        client_secret: &str,
    ) -> api::RegisterAgentResponse {
        let request = api::RegisterAgentRequest {
            agent_id: agent_id.to_string(),
            owner_human_id: owner_human_id.to_string(),
            kind: "assistant".to_string(),
            description: format!("agent {agent_id}"),
            client_secret: client_secret.to_string(),
            ..Default::default()
        };
        self.identity()
            .register_agent(self.admin(request))
            .await
            .expect("RegisterAgent")
            .into_inner()
    }

    pub async fn register_service(
        &self,
        service_id: &str,
        audience: &str,
        tools: &[&str],
    ) -> api::RegisterServiceResponse {
        let request = api::RegisterServiceRequest {
            service_id: service_id.to_string(),
            audience: audience.to_string(),
            tools: tools
                .iter()
                .map(|name| api::Tool {
                    name: name.to_string(),
                    description: format!("tool {name}"),
                })
                .collect(),
            ..Default::default()
        };
        self.identity()
            .register_service(self.admin(request))
            .await
            .expect("RegisterService")
            .into_inner()
    }

    /// Registers alice, her agent `alice-assistant` and the `calendar` service at `audience`
    /// (tools read_events and create_event), then has the agent issue a token with `scopes`.
    pub async fn issue_calendar_token(
        &self,
        audience: &str,
        scopes: &[&str],
    ) -> api::IssueResponse {
        self.register_human("alice").await;
        let agent = AgentCredential::new("alice-assistant");
        self.register_agent(&agent.agent_id, "alice", &agent.secret)
            .await;
        self.register_service("calendar", audience, &["read_events", "create_event"])
            .await;
        self.issue(&agent, audience, scopes).await
    }

    /// The agent issues a token for itself.
    pub async fn issue(
        &self,
        agent: &AgentCredential,
        audience: &str,
        scopes: &[&str],
    ) -> api::IssueResponse {
        let request = api::IssueRequest {
            audience: audience.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ttl_seconds: 600,
            ..Default::default()
        };
        self.tokens()
            .issue(agent.request(request))
            .await
            .expect("Issue")
            .into_inner()
    }

    /// Verifies a token as the admin, LINEARIZABLE.
    pub async fn verify(&self, token: &str, audience: &str) -> api::VerifyResponse {
        self.tokens()
            .verify(self.admin(verify_request(token, audience)))
            .await
            .expect("Verify")
            .into_inner()
    }

    /// Every event from seq 1, all pages, LINEARIZABLE.
    pub async fn all_events(&self) -> Vec<warrant_proto::log::Event> {
        let mut events = Vec::new();
        let mut from_seq = 1;
        loop {
            let request = api::ListEventsRequest {
                from_seq,
                limit: 1000,
                read: Some(linearizable()),
            };
            let page = self
                .audit()
                .list_events(self.admin(request))
                .await
                .expect("ListEvents")
                .into_inner();
            let done = page.events.is_empty() || page.applied_seq < page.next_seq;
            events.extend(page.events);
            if done {
                return events;
            }
            assert!(
                from_seq < page.next_seq,
                "ListEvents did not advance: from {from_seq}, next {}",
                page.next_seq
            );
            from_seq = page.next_seq;
        }
    }

    /// The last `LOG_TAIL_BYTES` of the current start's stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.log_path("stderr", self.starts))
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("warrant.toml")
    }

    fn log_path(&self, stream: &str, start: u32) -> PathBuf {
        self.dir.path().join(format!("{stream}.{start}.log"))
    }

    fn write_config(&mut self) {
        self.http_port = free_port();
        let mut table = toml::Table::new();
        table.insert("node_id".into(), toml::Value::Integer(self.node_id as i64));
        table.insert(
            "data_dir".into(),
            self.data_dir().display().to_string().into(),
        );
        table.insert(
            "listen_addr".into(),
            format!("127.0.0.1:{}", self.port).into(),
        );
        table.insert(
            "http_listen_addr".into(),
            format!("127.0.0.1:{}", self.http_port).into(),
        );
        table.insert("peer_listen_addr".into(), self.peer_addr().into());
        if self.tls() {
            table.insert(
                "tls".into(),
                toml::Value::Table(Certs::shared().config(self.node_id)),
            );
        }
        table.insert("admin_token".into(), self.admin_token.clone().into());
        table.insert("issuer".into(), self.issuer.clone().into());
        table.insert(
            "clock_leeway_s".into(),
            toml::Value::Integer(CLOCK_LEEWAY_S as i64),
        );
        table.insert("init_single_node".into(), self.init_single_node.into());
        for (key, value) in &self.extra {
            table.insert(key.clone(), value.clone());
        }
        fs::write(
            self.config_path(),
            toml::to_string(&table).expect("render config"),
        )
        .expect("write config");
    }

    /// Starts the process on `port` (or a free one) and waits until it is ready. If the port
    /// was taken by someone else between picking and binding, tries again on a new one.
    async fn launch(&mut self, port: Option<u16>) {
        let mut port = port;
        for _ in 0..PORT_ATTEMPTS_MAX {
            self.port = match port.take() {
                Some(port) if port_is_free(port) => port,
                _ => free_port(),
            };
            self.write_config();
            self.spawn();
            match self.wait_ready().await {
                Ok(channel) => {
                    self.channel = Some(channel);
                    return;
                }
                Err(Failure::PortTaken) => self.kill(),
                Err(Failure::Other(why)) => {
                    self.kill();
                    panic!(
                        "warrant node did not become ready: {why}\n--- stderr tail ---\n{}",
                        self.stderr_tail()
                    );
                }
            }
        }
        panic!("warrant node could not bind a free port in {PORT_ATTEMPTS_MAX} attempts");
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let stdout =
            fs::File::create(self.log_path("stdout", self.starts)).expect("create stdout log");
        let stderr =
            fs::File::create(self.log_path("stderr", self.starts)).expect("create stderr log");
        // The config file is the whole configuration: nothing from the test's environment leaks in.
        let mut command = warrant_command();
        command
            .arg("server")
            .arg("--config")
            .arg(self.config_path());
        // Plain log files, without ANSI colours.
        command.env("NO_COLOR", "1");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        self.child = Some(command.spawn().expect("spawn the warrant binary"));
    }

    async fn wait_ready(&mut self) -> Result<Channel, Failure> {
        let endpoint = self.endpoint();
        let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
        let mut poll = tokio::time::interval(READY_POLL_INTERVAL);
        loop {
            poll.tick().await;
            let child = self.child.as_mut().expect("a child was spawned");
            if let Some(exit) = child
                .try_wait()
                .map_err(|e| Failure::Other(format!("wait for the node: {e}")))?
            {
                let stderr = self.stderr_tail();
                if stderr.contains("Address already in use") {
                    return Err(Failure::PortTaken);
                }
                return Err(Failure::Other(format!(
                    "the node exited with {exit} before it was ready"
                )));
            }
            let last_error = match probe(&endpoint, &self.admin_auth(), self.ready).await {
                Ok(channel) => return Ok(channel),
                Err(why) => why,
            };
            if deadline <= tokio::time::Instant::now() {
                return Err(Failure::Other(format!(
                    "not ready within {READY_WAIT_MAX:?}; last probe: {last_error}"
                )));
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- warrant node stderr tail ({}) ---\n{}",
                self.dir.path().display(),
                self.stderr_tail()
            );
        }
    }
}

enum Failure {
    PortTaken,
    Other(String),
}

/// Ready means: health SERVING (the signing key is published) and this node is the leader (so
/// LINEARIZABLE reads and writes are answered right away). Health alone is not enough: after a
/// restart the node reports SERVING as soon as it sees its key already published, which can be
/// before it has elected itself (observed: SERVING with role LEARNER and no leader).
///
/// The Digest call (admin only) proves the process answering is ours, not another test's node
/// that took the port first: only ours knows this admin token.
async fn probe(endpoint: &Endpoint, admin_auth: &str, ready: Ready) -> Result<Channel, String> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if ready == Ready::Listening {
        ClusterServiceClient::new(channel.clone())
            .digest(with_auth(Some(admin_auth), api::DigestRequest {}))
            .await
            .map_err(|e| format!("digest as this node's admin: {e}"))?;
        return Ok(channel);
    }
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| format!("health: {e}"))?
        .into_inner();
    if health.status != ServingStatus::Serving as i32 {
        return Err(format!("health status {}", health.status));
    }
    let status = ClusterServiceClient::new(channel.clone())
        .status(api::StatusRequest {})
        .await
        .map_err(|e| format!("status: {e}"))?
        .into_inner();
    if ready == Ready::Leader && status.role != "LEADER" {
        return Err(format!("role {}", status.role));
    }
    ClusterServiceClient::new(channel.clone())
        .digest(with_auth(Some(admin_auth), api::DigestRequest {}))
        .await
        .map_err(|e| format!("digest as this node's admin: {e}"))?;
    Ok(channel)
}

/// A rustls client connection to `host` trusting the test CA.
pub fn tls_client(host: &str) -> rustls::ClientConnection {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(Certs::shared().ca_file()).expect("read the CA") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).expect("a server name");
    rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("a TLS client")
}

/// Reads until the server closes. A TLS server may close without `close_notify`; what was
/// read by then is the response.
fn read_until_close(stream: &mut impl std::io::Read, response: &mut String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read the HTTP response: {e}"),
        }
    }
    response.push_str(&String::from_utf8_lossy(&bytes));
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn tail(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// An agent's own credential.
#[derive(Clone, Debug)]
pub struct AgentCredential {
    pub agent_id: String,
    pub secret: String,
}

impl AgentCredential {
    /// A new credential with a random secret.
    pub fn new(agent_id: &str) -> Self {
        AgentCredential {
            agent_id: agent_id.to_string(),
            secret: hex::encode(rand::random::<[u8; 24]>()),
        }
    }

    /// `Basic base64(agent_id:secret)`.
    pub fn auth(&self) -> String {
        basic_auth(&self.agent_id, &self.secret)
    }

    pub fn request<T>(&self, message: T) -> Request<T> {
        with_auth(Some(&self.auth()), message)
    }
}

pub fn basic_auth(agent_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{agent_id}:{secret}")))
}

/// `message` with `authorization: <authorization>`, or without any when `None`.
pub fn with_auth<T>(authorization: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(authorization) = authorization {
        let value =
            MetadataValue::try_from(authorization).expect("authorization is valid metadata");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

pub fn linearizable() -> ReadOptions {
    ReadOptions {
        consistency: Consistency::Linearizable as i32,
        at_least_seq: 0,
        as_of: None,
    }
}

pub fn verify_request(token: &str, audience: &str) -> api::VerifyRequest {
    api::VerifyRequest {
        token: token.to_string(),
        audience: audience.to_string(),
        read: Some(linearizable()),
    }
}

/// The `reason` of the status's `google.rpc.ErrorInfo` detail, or "" when it carries none.
pub fn error_reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The name of a `TokenInvalidReason` value, for readable assertions.
pub fn invalid_reason_name(reason: i32) -> String {
    api::TokenInvalidReason::try_from(reason)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_else(|_| format!("unknown({reason})"))
}

/// The token with one character changed well inside its signature. (The last character also
/// carries padding bits that lenient base64 decoders ignore, so it is not a reliable tamper.)
pub fn tamper_signature(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let inside = bytes.len() - 10;
    bytes[inside] = if bytes[inside] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("a token is ASCII")
}

// ---------------------------------------------------------------------------------------------
// Added for agent_auth.rs, key_rotation.rs and interop_pyjwt.rs
// ---------------------------------------------------------------------------------------------

impl Node {
    /// Starts a fresh one-node cluster with `extra` config keys (e.g. `[[federation]]`,
    /// `allow_local_passwords`) and waits until it leads.
    pub async fn start_with(extra: toml::Table) -> Node {
        let admin_token = format!("test-admin-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut node = Node::new(1, true, extra, Ready::Leader, admin_token);
        node.launch(None).await;
        node
    }

    /// The HTTP address (JWKS, discovery, token endpoint), host:port.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// A plain HTTP/1.1 POST of an `application/x-www-form-urlencoded` body against the node's
    /// HTTP port: (status code, body).
    pub fn http_post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = form_urlencode(fields);
        self.http_request(&format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, everything else %XX.
pub fn form_urlencode(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Seconds since the Unix epoch, from the test's clock.
pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The decoded JSON header of a compact JWS.
pub fn jwt_header(token: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = token.split('.').next().expect("a compact JWS");
    let bytes = URL_SAFE_NO_PAD.decode(header).expect("a base64url header");
    serde_json::from_slice(&bytes).expect("a JSON header")
}

/// `message` with `client-assertion: <assertion>` (RFC 7523 private_key_jwt) and nothing else.
pub fn with_assertion<T>(assertion: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(assertion).expect("an assertion is valid metadata");
    request.metadata_mut().insert("client-assertion", value);
    request
}

/// An agent's Ed25519 key, registered (or not) as one of its credentials, that signs RFC 7523
/// client assertions.
pub struct AgentKey {
    pub agent_id: String,
    /// The credential id: the assertion's `kid`.
    pub credential_id: String,
    key: aws_lc_rs::signature::Ed25519KeyPair,
}

impl AgentKey {
    /// A fresh random key.
    pub fn generate(agent_id: &str, credential_id: &str) -> AgentKey {
        use aws_lc_rs::{rand::SystemRandom, signature::Ed25519KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate a key");
        AgentKey {
            agent_id: agent_id.to_string(),
            credential_id: credential_id.to_string(),
            key: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse the generated key"),
        }
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }

    /// The credential registering this key for the agent.
    pub fn credential(&self) -> api::NewCredential {
        api::NewCredential {
            credential_id: self.credential_id.clone(),
            kind: Some(api::new_credential::Kind::Ed25519PublicKey(
                self.public_key(),
            )),
        }
    }

    /// An assertion for `audience`, valid from `iat` to `exp`, with a random `jti`.
    pub fn assertion_at(&self, audience: &str, iat: u64, exp: u64) -> String {
        let claims = serde_json::json!({
            "iss": self.agent_id,
            "sub": self.agent_id,
            "aud": audience,
            "iat": iat,
            "exp": exp,
            "jti": hex::encode(rand::random::<[u8; 16]>()),
        });
        self.sign(&claims)
    }

    /// A fresh assertion for `audience`, valid for one minute from now.
    pub fn assertion(&self, audience: &str) -> String {
        let now = now_unix_s();
        self.assertion_at(audience, now, now + 60)
    }

    /// `claims` signed under header `{"alg":"EdDSA","typ":"JWT","kid":<credential id>}`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.credential_id});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// Installs PyJWT (with `cryptography` for EdDSA) from PyPI into `dir`, for PYTHONPATH.
pub fn install_pyjwt(dir: &Path) {
    pip_install(dir, "pyjwt[crypto]>=2.8");
}

/// The first of `len` consecutive loopback ports that were all free a moment ago.
pub fn free_port_run(len: u16) -> u16 {
    for _ in 0..50 {
        let base = 20_000 + rand::random::<u16>() % 30_000;
        if (0..len).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {len} free loopback ports");
}

/// Installs `requirement` from PyPI into `dir` (for PYTHONPATH), quietly.
pub fn pip_install(dir: &Path, requirement: &str) {
    pip_install_pinned(dir, &[requirement], false);
}

/// Installs `requirements` from PyPI into `dir` (for PYTHONPATH), quietly; with `no_deps`,
/// exactly those packages, for a set pinned down to every dependency.
pub fn pip_install_pinned(dir: &Path, requirements: &[&str], no_deps: bool) {
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    if no_deps {
        pip.arg("--no-deps");
    }
    let output = pip
        .arg("--target")
        .arg(dir)
        .args(requirements)
        .output()
        .expect("run pip");
    assert!(
        output.status.success(),
        "pip could not install {requirements:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Verifies many tokens in one PyJWT process, each with the key its `kid` names in `jwks`
/// alone (EdDSA only; `aud`, `iss` and the registered claims required). One entry per token:
/// the verified claims, or why PyJWT refused it.
const PYJWT_VERIFY_ALL: &str = r#"
import json, sys
import jwt
jwks_path, tokens_path, audience, issuer = sys.argv[1:5]
with open(jwks_path, encoding="utf-8") as f:
    jwks = jwt.PyJWKSet.from_json(f.read())
with open(tokens_path, encoding="utf-8") as f:
    tokens = json.load(f)
results = []
for token in tokens:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        matching = [key for key in jwks.keys if key.key_id == kid]
        if len(matching) != 1:
            results.append({"ok": False, "error": f"kid {kid!r} not found exactly once in the JWKS"})
            continue
        claims = jwt.decode(token, matching[0].key, algorithms=["EdDSA"], audience=audience,
                            issuer=issuer,
                            options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]})
        results.append({"ok": True, "claims": claims})
    except jwt.PyJWTError as error:
        results.append({"ok": False, "error": f"{type(error).__name__}: {error}"})
print(json.dumps(results))
"#;

pub fn pyjwt_verify_all(
    pythonpath: &Path,
    work: &Path,
    jwks: &str,
    tokens: &[String],
    audience: &str,
    issuer: &str,
) -> Vec<Result<serde_json::Value, String>> {
    let jwks_path = work.join("jwks-all.json");
    let tokens_path = work.join("tokens-all.json");
    fs::write(&jwks_path, jwks).expect("write the JWKS");
    fs::write(
        &tokens_path,
        serde_json::to_string(tokens).expect("tokens as JSON"),
    )
    .expect("write the tokens");
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYJWT_VERIFY_ALL)
        .arg(&jwks_path)
        .arg(&tokens_path)
        .arg(audience)
        .arg(issuer)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "the PyJWT batch verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("the verifier prints a JSON list");
    assert_eq!(results.len(), tokens.len(), "one result per token");
    results
        .into_iter()
        .map(|result| match result["ok"].as_bool() {
            Some(true) => Ok(result["claims"].clone()),
            _ => Err(result["error"].as_str().unwrap_or("?").to_string()),
        })
        .collect()
}

// Added for fatal_storage.rs
// ---------------------------------------------------------------------------------------------

impl Node {
    /// Waits at most `wait_max` for the node's process to exit on its own, and reaps it.
    /// `None` if it is still running then.
    pub async fn wait_exit(&mut self, wait_max: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + wait_max;
        let mut poll = tokio::time::interval(READY_POLL_INTERVAL);
        loop {
            poll.tick().await;
            let child = self.child.as_mut().expect("the node was started");
            if let Some(exit) = child.try_wait().expect("wait for the node") {
                self.child = None;
                self.channel = None;
                return Some(exit);
            }
            if deadline <= tokio::time::Instant::now() {
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Added for access.rs and authzen.rs
// ---------------------------------------------------------------------------------------------

pub mod fx;

impl Node {
    /// A plain HTTP/1.1 POST of a JSON body against the node's HTTP port, with
    /// `authorization` (when given) and `headers`: (status code, the response head, body).
    pub fn http_post_json(
        &self,
        path: &str,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> (u16, String, String) {
        let body = body.to_string();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(authorization) = authorization {
            head.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        split_http_response(&self.http_exchange(&format!("{head}\r\n{body}")))
    }

    /// A plain HTTP/1.1 GET: (status code, the response head, body).
    pub fn http_get_with_head(&self, path: &str) -> (u16, String, String) {
        split_http_response(&self.http_exchange(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )))
    }
}

/// (status code, head, body) of a whole HTTP/1.1 response. A chunked body is de-chunked.
pub fn split_http_response(response: &str) -> (u16, String, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

/// The payload of an HTTP/1.1 chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("a bad chunk size line {size:?}"));
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

impl Node {
    /// The events after `seq` (one page of up to 1,000), LINEARIZABLE.
    pub async fn events_after(&self, seq: u64) -> Vec<warrant_proto::log::Event> {
        let request = api::ListEventsRequest {
            from_seq: seq + 1,
            limit: 1000,
            read: Some(linearizable()),
        };
        self.audit()
            .list_events(self.admin(request))
            .await
            .expect("ListEvents")
            .into_inner()
            .events
    }
}

/// Checks that `events` are only audit facts about refusals: exactly one `CommandRejected` with
/// `rejection` (a reason code such as `SCOPE_EXCEEDS_PARENT`) when one is expected, none
/// otherwise, and any number of `AuthFailures` aggregates (a node flushes them every 10 s, at
/// any moment of a test). Anything else means the refusal changed state.
pub fn only_refusal_facts(
    events: &[warrant_proto::log::Event],
    rejection: Option<&str>,
) -> Result<(), String> {
    use warrant_proto::log::{RejectReason, event::Kind};
    let mut rejections = Vec::new();
    for event in events {
        match &event.kind {
            Some(Kind::AuthFailuresRecorded(_)) => {}
            Some(Kind::CommandRejected(rejected)) => rejections.push(
                RejectReason::try_from(rejected.reason)
                    .map(|it| it.as_str_name().trim_start_matches("REJECT_REASON_"))
                    .unwrap_or("?")
                    .to_owned(),
            ),
            other => return Err(format!("a refusal added event {} {other:?}", event.seq)),
        }
    }
    let want: Vec<String> = rejection.into_iter().map(str::to_owned).collect();
    if rejections == want {
        Ok(())
    } else {
        Err(format!(
            "want CommandRejected events {want:?}, got {rejections:?}"
        ))
    }
}
