//! Starting a node: storage, Raft, the signing key, and one gRPC listener that serves the public
//! API, the peer RPCs, health and reflection.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::server::HealthReporter;
use warrant_proto::api::{
    audit_service_server::AuditServiceServer, cluster_service_server::ClusterServiceServer,
    delegation_service_server::DelegationServiceServer,
    identity_service_server::IdentityServiceServer, session_service_server::SessionServiceServer,
    token_service_server::TokenServiceServer,
};
use warrant_raft::{RaftConfig, RaftNode};
use warrant_token::NodeSigningKey;

use crate::{
    auth::{AuthConfig, Authenticator},
    context::Context,
    federation::{Federation, FederationError, IssuerConfig},
    keys::{self, key_set::SigningKeys},
    limits::{CONCURRENCY_PER_CONNECTION_MAX, REQUEST_BYTES_MAX, STREAMS_PER_CONNECTION_MAX},
    services::{
        audit::AuditApi, cluster::ClusterApi, delegation::DelegationApi, identity::IdentityApi,
        session::SessionApi, token::TokenApi,
    },
};

/// How a node runs. Built by the `warrant` binary from its config file, environment and flags.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub listen_addr: SocketAddr,
    /// Where `/.well-known/jwks.json` and `/healthz` are served over HTTP, if anywhere.
    pub http_listen_addr: Option<SocketAddr>,
    /// The address peers and clients should use for this node (`host:port`).
    pub advertise_addr: String,
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
    /// The peer secret: every member presents it on peer RPCs; the same on every node.
    pub peer_secret: String,
    /// Upstream OIDC issuers whose humans log in with id_tokens.
    pub federation: Vec<IssuerConfig>,
    /// Whether humans may log in with a local password (development clusters only).
    pub allow_local_passwords: bool,
    pub session_ttl_default_s: u32,
    /// The storage memory budget in MiB (RocksDB's block cache, memtables, index and filter
    /// blocks, for both databases).
    pub storage_cache_mib: u64,
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
    #[error("start raft: {0}")]
    Raft(#[from] warrant_raft::StartError),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("serve: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A running node.
pub struct Warrant {
    pub node: RaftNode,
    pub local_addr: SocketAddr,
    /// The bound HTTP address, when HTTP is enabled.
    pub http_addr: Option<SocketAddr>,
    pub key_id: String,
}

impl Warrant {
    /// Starts the node and serves until `shutdown` resolves.
    pub async fn run(
        config: ApiConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
        on_ready: impl FnOnce(&Warrant),
    ) -> Result<(), ServeError> {
        warrant_raft::create_private_dir_all(&config.data_dir).map_err(|source| {
            ServeError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            }
        })?;
        let signing_key = Arc::new(NodeSigningKey::load_or_generate(&config.data_dir)?);
        let node = start_raft(&config).await?;
        let listeners = Listeners::bind(&config).await?;
        let federation = Arc::new(Federation::load(config.federation.clone()).await?);
        let context = service_context(&config, &node, &signing_key, federation.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (grpc, health) = serve_grpc(&context, listeners.grpc, stop_rx.clone()).await?;
        let http = listeners
            .http
            .map(|listener| serve_http(&context, listener, stop_rx.clone()));
        if config.init_single_node && node.initialize_single().await? {
            tracing::info!(node_id = config.node_id, "initialised a one-member cluster");
        }
        let warrant = Warrant {
            node: node.clone(),
            local_addr: listeners.grpc_addr,
            http_addr: listeners.http_addr,
            key_id: signing_key.key_id().to_string(),
        };
        let refresher = tokio::spawn(federation.refresh_forever(stop_rx.clone()));
        let publisher = tokio::spawn(publish_then_serve(
            node.clone(),
            signing_key,
            health,
            stop_rx,
        ));
        on_ready(&warrant);

        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        publisher.abort();
        refresher.abort();
        if let Some(http) = http {
            let _ = http.await;
        }
        let served = grpc.await;
        node.shutdown().await;
        match served {
            Ok(result) => result.map_err(ServeError::from),
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                Ok(())
            }
        }
    }
}

async fn start_raft(config: &ApiConfig) -> Result<RaftNode, ServeError> {
    let mut raft_config = RaftConfig::new(
        config.node_id,
        config.advertise_addr.clone(),
        config.data_dir.clone(),
    );
    raft_config.snapshot_logs_since_last = config.snapshot_logs_since_last;
    raft_config.logs_kept_after_snapshot = config.snapshot_logs_kept;
    raft_config.peer_secret = config.peer_secret.clone();
    raft_config.storage_cache_mib = config.storage_cache_mib;
    Ok(RaftNode::start(raft_config).await?)
}

/// The bound gRPC listener and, when HTTP is enabled, the HTTP one.
struct Listeners {
    grpc: TcpListener,
    grpc_addr: SocketAddr,
    http: Option<TcpListener>,
    http_addr: Option<SocketAddr>,
}

impl Listeners {
    async fn bind(config: &ApiConfig) -> Result<Listeners, ServeError> {
        let grpc = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let grpc_addr = grpc.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let http = match config.http_listen_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?,
            ),
            None => None,
        };
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        Ok(Listeners {
            grpc,
            grpc_addr,
            http,
            http_addr,
        })
    }
}

fn service_context(
    config: &ApiConfig,
    node: &RaftNode,
    signing_key: &Arc<NodeSigningKey>,
    federation: Arc<Federation>,
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
    })
}

/// Serves the public API, the peer RPCs, health and reflection on `listener` until `stop`.
/// Returns the server's task and the reporter that marks the node healthy.
async fn serve_grpc(
    context: &Arc<Context>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> Result<(GrpcServer, HealthReporter), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // tonic-health starts the overall service ("") as SERVING; this node serves only once a
    // leader is known and its signing key is published (`publish_then_serve`).
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warrant_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let node_id = context.node.node_id();
    let serve = Server::builder()
        .trace_fn(move |request| rpc_span(node_id, request))
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION_MAX)
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(context.node.peer_service())
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
        .serve_with_incoming_shutdown(accepted_without_nagle(listener), async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
    Ok((tokio::spawn(serve), health))
}

/// Every request runs in a span naming the node and a request id (the caller's `x-request-id`
/// when it sent one), so one request's logs can be followed.
fn rpc_span(node_id: u64, request: &axum::http::Request<()>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::info_span!("rpc", node_id, method = %request.uri().path(), request_id = %request_id)
}

type GrpcServer = JoinHandle<Result<(), tonic::transport::Error>>;

/// The gRPC listener's connections, each with TCP_NODELAY set as it is accepted.
///
/// `Server::tcp_nodelay` applies only when tonic binds the address itself; a server given its
/// own incoming stream (we bind first, to learn the port and report bind errors) keeps Nagle's
/// algorithm on every accepted socket. With Nagle, a response's small last segment waits for
/// the delayed ACK of the previous one: Issue at one client took 44 ms on an idle machine instead
/// of 2.2 ms, and LINEARIZABLE Verify had 45 ms tails (the peer RPCs share this port too).
fn accepted_without_nagle(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The HTTP listener, with TCP_NODELAY set on each accepted connection: `axum::serve` leaves
/// sockets as accepted, so Nagle would delay its small responses the same way.
fn http_accepted_without_nagle(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on an HTTP connection");
        }
    })
}

/// Serves the HTTP side (JWKS, OAuth metadata, the token endpoint, `/healthz`) until `stop`.
fn serve_http(
    context: &Arc<Context>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = crate::http::router(context.clone());
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(http_accepted_without_nagle(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    })
}

/// Publishes this node's signing key (`keys::publish`), then reports the node healthy:
/// healthy means able to serve, so a leader is known and the key is in the log.
async fn publish_then_serve(
    node: RaftNode,
    key: Arc<NodeSigningKey>,
    health: HealthReporter,
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
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::serve::Listener;
    use tokio::net::TcpStream;
    use tokio_stream::StreamExt;

    use super::*;

    async fn loopback_listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        (listener, addr)
    }

    /// Linux accepts sockets with Nagle on; the stream tonic serves must turn it off.
    #[tokio::test]
    async fn grpc_connections_are_accepted_with_nodelay() {
        let (listener, addr) = loopback_listener().await;
        let mut incoming = accepted_without_nagle(listener);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }

    #[tokio::test]
    async fn http_connections_are_accepted_with_nodelay() {
        let (listener, addr) = loopback_listener().await;
        let mut incoming = http_accepted_without_nagle(listener);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = incoming.accept().await;
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }
}
