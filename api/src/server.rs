//! Starting a node: storage, Raft, the signing key, and one gRPC listener that serves the public
//! API, the peer RPCs, health and reflection.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::Server;
use warrant_identity::query;
use warrant_proto::{
    api::{
        audit_service_server::AuditServiceServer, cluster_service_server::ClusterServiceServer,
        delegation_service_server::DelegationServiceServer,
        identity_service_server::IdentityServiceServer,
        session_service_server::SessionServiceServer, token_service_server::TokenServiceServer,
    },
    log,
};
use warrant_raft::{RaftConfig, RaftNode};
use warrant_token::NodeSigningKey;

use crate::{
    auth::{AuthConfig, Authenticator},
    federation::{Federation, FederationError, IssuerConfig},
    services::{
        Context, audit::AuditApi, cluster::ClusterApi, delegation::DelegationApi,
        identity::IdentityApi, session::SessionApi, token::TokenApi,
    },
    signing::SigningKeys,
};

/// The largest public request accepted. Tokens are at most 8 KiB; nothing legitimate comes close.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Concurrent RPCs per client connection.
pub const CONCURRENCY_PER_CONNECTION_MAX: usize = 256;
/// Concurrent HTTP/2 streams per connection.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 512;

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
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
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
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ServeError::SigningKey(warrant_token::signing_key::SigningKeyError::Write {
                path: config.data_dir.display().to_string(),
                source: e,
            })
        })?;
        let signing_key = Arc::new(NodeSigningKey::load_or_generate(&config.data_dir)?);
        let mut raft_config = RaftConfig::new(
            config.node_id,
            config.advertise_addr.clone(),
            config.data_dir.clone(),
        );
        raft_config.snapshot_logs_since_last = config.snapshot_logs_since_last;
        raft_config.logs_kept_after_snapshot = config.snapshot_logs_kept;
        raft_config.peer_secret = config.peer_secret.clone();
        let node = RaftNode::start(raft_config).await?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let http_listener = match config.http_listen_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?,
            ),
            None => None,
        };
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());

        let federation = Arc::new(Federation::load(config.federation.clone()).await?);
        let context = Arc::new(Context {
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
            federation: federation.clone(),
            allow_local_passwords: config.allow_local_passwords,
            data_dir: config.data_dir.clone(),
            rotation: tokio::sync::Mutex::new(()),
        });
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        // tonic-health starts the overall service ("") as SERVING; this node serves only once a
        // leader is known and its signing key is published (`publish_signing_key`).
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(warrant_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;

        let identity = IdentityServiceServer::new(IdentityApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);
        let token = TokenServiceServer::new(TokenApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);
        let cluster = ClusterServiceServer::new(ClusterApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);
        let audit = AuditServiceServer::new(AuditApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);
        let session = SessionServiceServer::new(SessionApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);
        let delegation = DelegationServiceServer::new(DelegationApi {
            context: context.clone(),
        })
        .max_decoding_message_size(REQUEST_BYTES_MAX);

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let node_id = config.node_id;
        let serve = Server::builder()
            // Every request runs in a span naming the node and a request id (the caller's
            // `x-request-id` when it sent one), so one request's logs can be followed.
            .trace_fn(move |request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.len() <= 128)
                    .map(str::to_string)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                tracing::info_span!("rpc", node_id, method = %request.uri().path(), request_id = %request_id)
            })
            .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION_MAX)
            .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
            .tcp_nodelay(true)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(node.peer_service())
            .add_service(identity)
            .add_service(token)
            .add_service(cluster)
            .add_service(audit)
            .add_service(session)
            .add_service(delegation)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), {
                let mut stop_rx = stop_rx.clone();
                async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                }
            });
        let server = tokio::spawn(serve);
        let http_server = http_listener.map(|http_listener| {
            let mut stop_rx = stop_rx.clone();
            let app = crate::http::router(context.clone());
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                };
                if let Err(e) = axum::serve(http_listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "http server failed");
                }
            })
        });

        if config.init_single_node && node.initialize_single().await? {
            tracing::info!(node_id = config.node_id, "initialised a one-member cluster");
        }
        let warrant = Warrant {
            node: node.clone(),
            local_addr,
            http_addr,
            key_id: signing_key.key_id().to_string(),
        };
        let refresher = tokio::spawn(federation.refresh_forever(stop_rx.clone()));
        let publisher = tokio::spawn(publish_signing_key(
            node.clone(),
            signing_key.clone(),
            health_reporter,
            stop_rx,
        ));
        on_ready(&warrant);

        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        publisher.abort();
        refresher.abort();
        if let Some(http_server) = http_server {
            let _ = http_server.await;
        }
        let served = server.await;
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

/// Publishes this node's public key through the log once a leader exists, then reports the
/// node healthy. Retries until it succeeds or the node stops: a node whose key is unpublished
/// cannot issue.
async fn publish_signing_key(
    node: RaftNode,
    key: Arc<NodeSigningKey>,
    health: tonic_health::server::HealthReporter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let command = crate::keys::publish_command(node.node_id(), &key);
    let mut backoff = Duration::from_millis(100);
    loop {
        // Healthy means able to serve: a leader is known and our key is in the log.
        if node.wait_for_leader(Duration::from_secs(5)).await.is_ok() {
            if matches!(
                query::signing_key(&node.reader(), key.key_id()),
                Ok(Some(_))
            ) {
                break;
            }
            match node.propose(command.clone()).await {
                Ok(proposal) => match proposal.outcome.result {
                    Some(log::outcome::Result::Accepted(_)) => break,
                    other => {
                        tracing::error!(outcome = ?other, "publishing the signing key was rejected")
                    }
                },
                Err(e) => tracing::warn!(error = %e, "publishing the signing key failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    tracing::info!(key_id = key.key_id(), "signing key published");
    crate::keys::retire_earlier_keys(&node, key.key_id()).await;
    health.set_serving::<TokenServiceServer<TokenApi>>().await;
    health
        .set_serving::<IdentityServiceServer<IdentityApi>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
}
