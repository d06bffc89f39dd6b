//! Starting a node: storage, Raft, the signing key, and three listeners: the public gRPC API
//! (with health and reflection), the peer RPCs on a listener of their own, and HTTP.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use warrant_proto::api::{
    audit_service_server::AuditServiceServer, authz_service_server::AuthzServiceServer,
    cluster_service_server::ClusterServiceServer,
    delegation_service_server::DelegationServiceServer,
    identity_service_server::IdentityServiceServer, policy_service_server::PolicyServiceServer,
    session_service_server::SessionServiceServer, token_service_server::TokenServiceServer,
};
use warrant_raft::{HandOver, PeerSecurity, RaftConfig, RaftNode, SharedSecrets};
use warrant_token::NodeSigningKey;

use crate::{
    audit::{self, AuditKey, CheckpointSigner, key::AuditKeyError, record::RecordError},
    auth::{AuthConfig, Authenticator},
    context::Context,
    federation::{Federation, FederationError, IssuerConfig},
    keys::{self, key_set::SigningKeys},
    limits::{
        HTTP_CONNECTIONS_MAX, PEER_CONNECTIONS_MAX, POLICY_REQUEST_BYTES_MAX,
        PUBLIC_CONNECTIONS_MAX, REQUEST_BYTES_MAX,
    },
    peer::PeerAddrLayer,
    receipts::{self, ReceiptQueue},
    services::{
        audit::AuditApi, authz::AuthzApi, cluster::ClusterApi, delegation::DelegationApi,
        identity::IdentityApi, policy::PolicyApi, session::SessionApi, token::TokenApi,
    },
    transport::{self, GrpcEdge, ListenerSpec, Protocol, Role, TlsError, TlsFiles, TlsState},
};

/// The longest a stop may take, from the signal to the end of [`Warrant::run`]: the drain of
/// open calls (`transport::DRAIN_WAIT_MAX`, 5 s), the receipts still queued
/// (`limits::RECEIPT_DRAIN_ON_STOP_MAX`), a leadership hand-over
/// (`RaftNode::hand_over_wait_max`, 5 s with the default timing), Raft's shutdown and the
/// peer listener's drain (5 s) fit with room to spare. Past it the stop is abandoned and the
/// process exits non-zero; the next start relies on the write-ahead logs, as after a crash.
/// Supervisors' stop timeouts (systemd `TimeoutStopSec`, Kubernetes
/// `terminationGracePeriodSeconds`) must be longer.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(30);

/// The version every start and stop line names.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a node protects its traffic.
#[derive(Clone, Debug)]
pub enum Security {
    /// TLS on every listener, mutual TLS between peers.
    Tls(TlsFiles),
    /// No TLS anywhere (`insecure_plaintext = true`): tests and development only. Peers prove
    /// themselves with shared secrets: the first is sent, all are accepted.
    InsecurePlaintext { peer_secrets: Vec<String> },
}

/// How a node runs. Built by the `warrant` binary from its config file, environment and flags.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// The public gRPC API, health and reflection.
    pub listen_addr: SocketAddr,
    /// The peer RPCs (Raft, forwarding, read indexes), and nothing else.
    pub peer_listen_addr: SocketAddr,
    /// Where `/.well-known/jwks.json` and `/healthz` are served over HTTP, if anywhere.
    pub http_listen_addr: Option<SocketAddr>,
    /// The address clients should use for this node (`host:port`).
    pub advertise_addr: String,
    /// The address peers should use for this node's peer listener (`host:port`).
    pub peer_advertise_addr: String,
    pub security: Security,
    pub admin_token: String,
    pub issuer: String,
    pub token_ttl_default_s: u32,
    pub clock_leeway_s: u64,
    /// Make this node a one-member cluster on start if it is not in one yet.
    pub init_single_node: bool,
    /// Build a snapshot, and compact the log behind it, every this many entries.
    pub snapshot_logs_since_last: u64,
    /// Entries kept behind a snapshot, so a briefly absent follower catches up from the log.
    pub snapshot_logs_kept: u64,
    /// Upstream OIDC issuers whose humans log in with id_tokens.
    pub federation: Vec<IssuerConfig>,
    /// Whether humans may log in with a local password (development clusters only).
    pub allow_local_passwords: bool,
    pub session_ttl_default_s: u32,
    /// The storage memory budget in MiB (RocksDB's block cache, memtables, index and filter
    /// blocks, for both databases).
    pub storage_cache_mib: u64,
    /// Where the leader sends the audit stream as OTLP logs (`[audit_export]`); `None`: off.
    pub audit_export: Option<crate::audit_export::AuditExportConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("signing key: {0}")]
    SigningKey(#[from] warrant_token::signing_key::SigningKeyError),
    #[error(transparent)]
    AuditKey(#[from] AuditKeyError),
    #[error(transparent)]
    AuditRecord(#[from] RecordError),
    #[error("start raft: {0}")]
    Raft(#[from] warrant_raft::StartError),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("peer secrets: {0}")]
    PeerSecrets(String),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error(transparent)]
    AuditExport(#[from] crate::audit_export::CollectorError),
    #[error("reflection: {0}")]
    Reflection(String),
    /// Raft stopped on a storage error or a panic while serving: the node reported itself
    /// NOT_SERVING and stopped, for its supervisor to restart it.
    #[error(transparent)]
    Fatal(#[from] warrant_raft::FatalError),
    /// The stop took longer than [`STOP_WAIT_MAX`] and was abandoned.
    #[error("the stop did not finish within {} s", STOP_WAIT_MAX.as_secs())]
    StopTimeout,
}

/// A running node.
pub struct Warrant {
    pub node: RaftNode,
    pub local_addr: SocketAddr,
    /// The bound peer listener's address.
    pub peer_addr: SocketAddr,
    /// The bound HTTP address, when HTTP is enabled.
    pub http_addr: Option<SocketAddr>,
    pub key_id: String,
    /// The argon2 hashes authentication has computed, for tests until metrics count them.
    pub argon2_hashes: crate::auth::pool::HashCounter,
    /// Whether the node reports itself SERVING (health ""): true once a leader is known and
    /// the signing key is published; false again from the start of a stop. For readiness
    /// notifications (systemd).
    pub serving: watch::Receiver<bool>,
}

impl Warrant {
    /// Starts the node and serves until `shutdown` resolves, or until Raft stops on a fatal
    /// error (then every service turns NOT_SERVING and this returns [`ServeError::Fatal`]).
    pub async fn run(
        config: ApiConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
        on_ready: impl FnOnce(&Warrant),
    ) -> Result<(), ServeError> {
        create_data_dir(&config)?;
        crate::metrics::install();
        let tls = load_tls(&config)?;
        let signing_key = Arc::new(NodeSigningKey::load_or_generate(&config.data_dir)?);
        let audit_key = load_audit_key(&config)?;
        let node = start_raft(&config, peer_security(&config, tls.as_ref())?).await?;
        let checkpoints = open_checkpoints(&config, &node, audit_key)?;
        let listeners = Listeners::bind(&config).await?;
        let federation = Arc::new(Federation::load(config.federation.clone()).await?);
        let (receipt_queue, receipt_drain) = receipts::queue();
        let context = service_context(
            &config,
            &node,
            &signing_key,
            federation.clone(),
            receipt_queue,
            checkpoints,
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        // The peer listener stops last, after Raft: a leader hands over through it.
        let (peer_stop_tx, peer_stop_rx) = watch::channel(false);
        let (serving_tx, serving) = watch::channel(false);
        let serving_tx = Arc::new(serving_tx);
        // Not among `tasks`, which are aborted at stop: it commits what is queued, within a
        // bound, after the listeners stopped and before Raft does.
        let receipt_task =
            tokio::spawn(receipt_drain.run(node.clone(), config.node_id, stop_rx.clone()));
        // Also joined before Raft stops: it finishes its batch and commits its progress.
        let audit_export_task = spawn_audit_export(&config, &node, &stop_rx)?;
        let addrs = listeners.addrs();
        let (servers, peer_server, health) = listeners
            .serve(&context, tls.clone(), &stop_rx, &peer_stop_rx)
            .await?;
        if config.init_single_node && node.initialize_single().await? {
            tracing::info!(node_id = config.node_id, "initialised a one-member cluster");
        }
        let warrant = Warrant {
            node: node.clone(),
            local_addr: addrs.0,
            peer_addr: addrs.1,
            http_addr: addrs.2,
            key_id: signing_key.key_id().to_string(),
            argon2_hashes: context.auth.pool().hash_counter(),
            serving,
        };
        let tasks = spawn_background(
            &context,
            federation,
            signing_key,
            (health.clone(), serving_tx.clone()),
            tls,
            stop_rx,
        );
        on_ready(&warrant);
        log_started(&config, &warrant);

        let fatal = wait_for_stop(shutdown, &node, &config).await;
        let stopping = Stopping {
            tasks,
            health,
            serving: serving_tx,
            stop: stop_tx,
            servers,
            receipt_task,
            audit_export_task,
            node,
            peer_stop: peer_stop_tx,
            peer_server,
        };
        stopping.finish(fatal, &config).await
    }
}

fn create_data_dir(config: &ApiConfig) -> Result<(), ServeError> {
    warrant_raft::create_private_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })
}

/// The one line a node logs when it has started: what it runs, which node of which cluster
/// (the cluster is named by its issuer, which every member shares), and where it listens.
fn log_started(config: &ApiConfig, warrant: &Warrant) {
    tracing::info!(
        version = VERSION,
        node_id = config.node_id,
        cluster_id = %config.issuer,
        addr = %warrant.local_addr,
        peer_addr = %warrant.peer_addr,
        key_id = %warrant.key_id,
        "started"
    );
}

/// Starts the audit stream exporter when `[audit_export]` is configured; a bad endpoint or CA
/// stops the node at start.
fn spawn_audit_export(
    config: &ApiConfig,
    node: &RaftNode,
    stop: &watch::Receiver<bool>,
) -> Result<Option<JoinHandle<()>>, ServeError> {
    let Some(export) = config.audit_export.clone() else {
        return Ok(None);
    };
    let collector = crate::audit_export::Collector::new(&export)?;
    tracing::info!(endpoint = %export.endpoint, "audit export: on (the leader sends)");
    Ok(Some(tokio::spawn(crate::audit_export::run(
        export,
        collector,
        node.clone(),
        stop.clone(),
    ))))
}

/// Waits for `shutdown`, or for Raft to stop on a fatal error, which it returns: a node that
/// can neither commit nor apply must not stay SERVING.
async fn wait_for_stop(
    shutdown: impl Future<Output = ()>,
    node: &RaftNode,
    config: &ApiConfig,
) -> Option<warrant_raft::FatalError> {
    let fatal = tokio::select! {
        () = shutdown => None,
        fatal = node.fatal() => Some(fatal),
    };
    match &fatal {
        None => tracing::info!(
            version = VERSION,
            node_id = config.node_id,
            cluster_id = %config.issuer,
            role = node.status().role,
            "stopping"
        ),
        Some(fatal) => tracing::error!(
            version = VERSION,
            node_id = config.node_id,
            cluster_id = %config.issuer,
            error = %fatal,
            "stopping: this node can no longer commit or apply; it exits for its supervisor to \
             restart it"
        ),
    }
    fatal
}

/// What a running node stops, in the order [`Stopping::run`] stops it.
struct Stopping {
    tasks: Vec<JoinHandle<()>>,
    health: HealthReporter,
    serving: Arc<watch::Sender<bool>>,
    /// Stops the public and HTTP listeners and the background tasks that watch it.
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    receipt_task: JoinHandle<()>,
    /// Joined before the hand-over: a new leader must see this one's last committed progress,
    /// or it sends that batch again.
    audit_export_task: Option<JoinHandle<()>>,
    node: RaftNode,
    peer_stop: watch::Sender<bool>,
    peer_server: JoinHandle<()>,
}

impl Stopping {
    /// Stops within [`STOP_WAIT_MAX`] (handing leadership over unless Raft stopped on `fatal`),
    /// logs the one `stopped` line, and says how the node ended.
    async fn finish(
        self,
        fatal: Option<warrant_raft::FatalError>,
        config: &ApiConfig,
    ) -> Result<(), ServeError> {
        let hand_over = fatal.is_none();
        if tokio::time::timeout(STOP_WAIT_MAX, self.run(hand_over))
            .await
            .is_err()
        {
            tracing::error!(
                stop_wait_max_s = STOP_WAIT_MAX.as_secs(),
                "the stop took too long; exiting without finishing it"
            );
            return Err(ServeError::StopTimeout);
        }
        tracing::info!(
            version = VERSION,
            node_id = config.node_id,
            cluster_id = %config.issuer,
            clean = fatal.is_none(),
            "stopped"
        );
        match fatal {
            Some(fatal) => Err(ServeError::Fatal(fatal)),
            None => Ok(()),
        }
    }

    /// NOT_SERVING everywhere; the public and HTTP listeners stop accepting and their open
    /// calls drain (at most `transport::DRAIN_WAIT_MAX`); queued receipts are committed; if
    /// `hand_over` and this node leads, another voter takes over; Raft stops and the
    /// write-ahead logs are synced; the peer listener, which Raft needed until then, drains last.
    async fn run(self, hand_over: bool) {
        for task in self.tasks {
            task.abort();
            // Joined, so that no task can report SERVING after the health set below.
            let _ = task.await;
        }
        stop_serving(&self.health).await;
        self.serving.send_replace(false);
        let _ = self.stop.send(true);
        for server in self.servers {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "server task failed");
            }
        }
        if let Err(e) = self.receipt_task.await {
            tracing::error!(error = %e, "receipt drain task failed");
        }
        if let Some(task) = self.audit_export_task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "audit export task failed");
        }
        if hand_over {
            log_hand_over(&self.node).await;
        }
        self.node.shutdown().await;
        let _ = self.peer_stop.send(true);
        if let Err(e) = self.peer_server.await {
            tracing::error!(error = %e, "peer server task failed");
        }
    }
}

/// Hands leadership over if this node leads, and says how that went.
async fn log_hand_over(node: &RaftNode) {
    let started = tokio::time::Instant::now();
    let outcome = node.hand_over_leadership().await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        HandOver::NotLeader | HandOver::OnlyVoter => {}
        HandOver::Done { to } => {
            tracing::info!(to, elapsed_ms, "handed leadership over")
        }
        HandOver::Failed(why) => tracing::warn!(
            elapsed_ms,
            reason = %why,
            "leadership not handed over; the others elect a leader once this node stops"
        ),
    }
}

/// The TLS material, unless the node runs plaintext (which it says loudly).
fn load_tls(config: &ApiConfig) -> Result<Option<Arc<TlsState>>, ServeError> {
    // One process-wide provider, the one every TLS config here names: aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match &config.security {
        Security::Tls(files) => Ok(Some(TlsState::load(files.clone(), config.node_id)?)),
        Security::InsecurePlaintext { .. } => {
            tracing::warn!(
                "insecure_plaintext = true: no TLS on any listener, and peers prove themselves \
                 with a shared secret; tokens, secrets and the replicated log travel in clear. \
                 For tests and development only"
            );
            Ok(None)
        }
    }
}

fn peer_security(
    config: &ApiConfig,
    tls: Option<&Arc<TlsState>>,
) -> Result<PeerSecurity, ServeError> {
    match (&config.security, tls) {
        (Security::Tls(_), Some(tls)) => Ok(PeerSecurity::MutualTls(tls.peer_material())),
        (Security::InsecurePlaintext { peer_secrets }, _) => Ok(PeerSecurity::SharedSecrets(
            SharedSecrets::new(peer_secrets).map_err(ServeError::PeerSecrets)?,
        )),
        (Security::Tls(_), None) => Err(ServeError::PeerSecrets(
            "TLS is configured but its material is not loaded".to_string(),
        )),
    }
}

/// The node's audit key, named in one log line so that an operator can pin its verifier key.
fn load_audit_key(config: &ApiConfig) -> Result<Arc<AuditKey>, ServeError> {
    let key = AuditKey::load_or_generate(&config.data_dir, &config.issuer, config.node_id)?;
    tracing::info!(
        verifier_key = key.verifier_key(),
        "audit key loaded: monitors pin this verifier key to check this node's checkpoints"
    );
    Ok(Arc::new(key))
}

/// The checkpoint signer, once the storage opened: it verifies the tree there, from its record
/// (read strictly: a corrupt record stops the node, naming the file).
fn open_checkpoints(
    config: &ApiConfig,
    node: &RaftNode,
    audit_key: Arc<AuditKey>,
) -> Result<Arc<CheckpointSigner>, ServeError> {
    let signer = CheckpointSigner::open(node.clone(), audit_key, &config.data_dir)?;
    Ok(Arc::new(signer))
}

async fn start_raft(config: &ApiConfig, security: PeerSecurity) -> Result<RaftNode, ServeError> {
    let mut raft_config = RaftConfig::new(
        config.node_id,
        config.advertise_addr.clone(),
        config.data_dir.clone(),
    );
    raft_config.peer_advertise_addr = config.peer_advertise_addr.clone();
    raft_config.snapshot_logs_since_last = config.snapshot_logs_since_last;
    raft_config.logs_kept_after_snapshot = config.snapshot_logs_kept;
    raft_config.peer_security = security;
    raft_config.storage_cache_mib = config.storage_cache_mib;
    Ok(RaftNode::start(raft_config).await?)
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// The bound listeners: public gRPC, peers and, when enabled, HTTP.
struct Listeners {
    public: (TcpListener, SocketAddr),
    peer: (TcpListener, SocketAddr),
    http: Option<(TcpListener, SocketAddr)>,
}

impl Listeners {
    async fn bind(config: &ApiConfig) -> Result<Listeners, ServeError> {
        let public = bind(config.listen_addr).await?;
        let peer = bind(config.peer_listen_addr).await?;
        let http = match config.http_listen_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { public, peer, http })
    }

    fn addrs(&self) -> (SocketAddr, SocketAddr, Option<SocketAddr>) {
        (self.public.1, self.peer.1, self.http.as_ref().map(|h| h.1))
    }

    /// Serves the public and HTTP listeners until `stop` and the peer listener until
    /// `peer_stop`. Returns their tasks (public and HTTP, then peers), and the reporter that
    /// marks the node healthy.
    async fn serve(
        self,
        context: &Arc<Context>,
        tls: Option<Arc<TlsState>>,
        stop: &watch::Receiver<bool>,
        peer_stop: &watch::Receiver<bool>,
    ) -> Result<(Vec<JoinHandle<()>>, JoinHandle<()>, HealthReporter), ServeError> {
        let node_id = context.node.node_id();
        let spec = |role, connections_max| ListenerSpec {
            role,
            connections_max,
            tls: tls.clone(),
        };
        let (public, health) = public_routes(context).await?;
        let public = transport::serve(
            transport::accept(
                self.public.0,
                spec(Role::Public, PUBLIC_CONNECTIONS_MAX),
                stop.clone(),
            ),
            // Authentication counts failures per peer address: each request carries its own.
            GrpcEdge::new(tower_layer::Layer::layer(&PeerAddrLayer, public), node_id),
            Protocol::Http2,
            stop.clone(),
        );
        let (auth, peer_service) = context.node.peer_service();
        let peer = transport::serve(
            transport::accept(
                self.peer.0,
                spec(Role::Peer, PEER_CONNECTIONS_MAX),
                peer_stop.clone(),
            ),
            GrpcEdge::new(
                tower_layer::Layer::layer(&auth, Routes::new(peer_service)),
                node_id,
            ),
            Protocol::Http2,
            peer_stop.clone(),
        );
        let mut servers = vec![public];
        if let Some((listener, _)) = self.http {
            servers.push(transport::serve(
                transport::accept(
                    listener,
                    spec(Role::Http, HTTP_CONNECTIONS_MAX),
                    stop.clone(),
                ),
                tower_layer::Layer::layer(&PeerAddrLayer, crate::http::router(context.clone())),
                Protocol::Http1,
                stop.clone(),
            ));
        }
        Ok((servers, peer, health))
    }
}

fn service_context(
    config: &ApiConfig,
    node: &RaftNode,
    signing_key: &Arc<NodeSigningKey>,
    federation: Arc<Federation>,
    receipts: ReceiptQueue,
    checkpoints: Arc<CheckpointSigner>,
) -> Arc<Context> {
    Arc::new(Context {
        node: node.clone(),
        auth: Authenticator::new(AuthConfig {
            admin_token: config.admin_token.clone(),
            issuer: config.issuer.clone(),
            assertion_audiences: vec![crate::http::token_endpoint(&config.issuer)],
            clock_leeway_s: config.clock_leeway_s,
        }),
        signing_keys: SigningKeys::new(signing_key.clone()),
        issuer: config.issuer.clone(),
        token_ttl_default_s: config.token_ttl_default_s,
        session_ttl_default_s: config.session_ttl_default_s,
        clock_leeway_s: config.clock_leeway_s,
        federation,
        allow_local_passwords: config.allow_local_passwords,
        data_dir: config.data_dir.clone(),
        rotation: tokio::sync::Mutex::new(()),
        digest_key: crate::digest_key::DigestKey::from_admin_token(&config.admin_token),
        receipts,
        checkpoints,
        audit_streams: Arc::new(tokio::sync::Semaphore::new(crate::limits::WATCHERS_MAX)),
    })
}

/// The public listener's services: the API, health, and reflection (v1 and v1alpha, so older
/// grpcurl and Python clients can list and describe them, health included). Peer RPCs are not
/// among them. Returns the routes and the reporter that marks the node healthy.
async fn public_routes(context: &Arc<Context>) -> Result<(Routes, HealthReporter), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // tonic-health starts the overall service ("") as SERVING; this node serves only once a
    // leader is known and its signing key is published (`publish_then_serve`).
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    // Only the public contracts: registering every file would list and describe the peer
    // service (`warrant.raft.v1.RaftService`) on a port that does not serve it.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(warrant_proto::PUBLIC_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            IdentityServiceServer::new(IdentityApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            TokenServiceServer::new(TokenApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            ClusterServiceServer::new(ClusterApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            AuditServiceServer::new(AuditApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            SessionServiceServer::new(SessionApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            DelegationServiceServer::new(DelegationApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        )
        .add_service(
            // Policy texts are larger than any other request (see the limit).
            PolicyServiceServer::new(PolicyApi {
                context: context.clone(),
            })
            .max_decoding_message_size(POLICY_REQUEST_BYTES_MAX),
        )
        .add_service(
            AuthzServiceServer::new(AuthzApi {
                context: context.clone(),
            })
            .max_decoding_message_size(REQUEST_BYTES_MAX),
        );
    Ok((routes, health))
}

/// Publishes this node's signing key (`keys::publish`), then reports the node healthy:
/// healthy means able to serve, so a leader is known and the key is in the log.
/// The tasks a serving node runs beside its listeners, aborted at stop: upstream JWKS refresh,
/// the failed-authentication flush, the checkpoint schedule (`audit::schedule`), publishing the
/// signing key (then SERVING), TLS reload.
fn spawn_background(
    context: &Arc<Context>,
    federation: Arc<Federation>,
    signing_key: Arc<NodeSigningKey>,
    (health, serving): (HealthReporter, Arc<watch::Sender<bool>>),
    tls: Option<Arc<TlsState>>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(federation.refresh_forever(stop.clone())),
        tokio::spawn(crate::auth::failure_log::flush_forever(
            context.clone(),
            stop.clone(),
        )),
        tokio::spawn(audit::schedule::run(
            context.checkpoints.clone(),
            stop.clone(),
        )),
        tokio::spawn(publish_then_serve(
            context.node.clone(),
            signing_key,
            (health, serving),
            stop.clone(),
        )),
    ];
    if let Some(tls) = tls {
        tasks.push(tokio::spawn(tls.reload_forever(stop)));
    }
    tasks
}

async fn publish_then_serve(
    node: RaftNode,
    key: Arc<NodeSigningKey>,
    (health, serving): (HealthReporter, Arc<watch::Sender<bool>>),
    stop: watch::Receiver<bool>,
) {
    if !keys::publish(&node, &key, stop).await {
        return;
    }
    health.set_serving::<TokenServiceServer<TokenApi>>().await;
    health
        .set_serving::<IdentityServiceServer<IdentityApi>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    serving.send_replace(true);
}

/// Reports the node ("") and every service NOT_SERVING: it is stopping, and probes and
/// balancers should take it out while its connections drain.
async fn stop_serving(health: &HealthReporter) {
    let not_serving = tonic_health::ServingStatus::NotServing;
    health.set_service_status("", not_serving).await;
    health
        .set_not_serving::<IdentityServiceServer<IdentityApi>>()
        .await;
    health
        .set_not_serving::<TokenServiceServer<TokenApi>>()
        .await;
    health
        .set_not_serving::<ClusterServiceServer<ClusterApi>>()
        .await;
    health
        .set_not_serving::<AuditServiceServer<AuditApi>>()
        .await;
    health
        .set_not_serving::<SessionServiceServer<SessionApi>>()
        .await;
    health
        .set_not_serving::<DelegationServiceServer<DelegationApi>>()
        .await;
    health
        .set_not_serving::<PolicyServiceServer<PolicyApi>>()
        .await;
    health
        .set_not_serving::<AuthzServiceServer<AuthzApi>>()
        .await;
}
