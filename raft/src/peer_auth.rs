//! Who may call the peer RPCs, decided before any request body is read.
//!
//! `Forward` commits a command as whatever actor it names and `InstallSnapshot` replaces a
//! node's whole state, so only members may call the peer RPCs. They are served on a listener of
//! their own (`peer_listen_addr`), never on the public port, and a caller is a member in one of
//! two ways:
//!
//! - **Mutual TLS**, the default. The caller's certificate chains to the cluster's CA (the TLS
//!   handshake checks that, so a stranger never gets to send a byte of HTTP/2) and names a node
//!   as a DNS subject alternative name, [`node_name`] (`node-<id>.warrant.internal`).
//!   [`PeerAuthLayer`] refuses a connection whose certificate names no node, before the body is
//!   read, and each handler refuses a request whose `source_node_id` is not the node the
//!   certificate names. A node dialling a peer checks the peer's certificate for the name of
//!   the node it meant to reach, so a certificate valid for node 3 does not pass for node 2.
//! - **Shared secrets**, only for plaintext clusters (`insecure_plaintext = true`, tests and
//!   development). Each request carries [`PEER_SECRET_METADATA`]; the layer compares it in
//!   constant time with every accepted secret. Several may be accepted, so a secret is rotated
//!   with two rolling restarts: accept the new one, then send it.

use std::{
    fmt,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tonic::{Request, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    peer_budget::{LimitedBody, PeerBudget},
    types::NodeId,
};

/// The metadata key that carries the peer secret on a plaintext cluster.
pub const PEER_SECRET_METADATA: &str = "x-warrant-peer-secret";
/// The DNS domain under which a node's certificate names it (see [`node_name`]). `.internal`
/// is reserved for private use, so no public CA issues names under it.
pub const NODE_NAME_DOMAIN: &str = "warrant.internal";
/// The `ErrorInfo` reason of a refused peer call. The API's reason table has the same row.
pub const PEER_UNAUTHENTICATED: &str = "PEER_UNAUTHENTICATED";
/// The `ErrorInfo` reason of a peer call refused because too many are in flight. The API's
/// reason table has the same row.
pub const PEER_BUSY: &str = "PEER_BUSY";
/// The `ErrorInfo` domain of statuses raised here.
const ERROR_DOMAIN: &str = "warrant.dev";
/// Secrets a plaintext node accepts at once: the current one and those being rotated out.
pub const PEER_SECRETS_MAX: usize = 8;

/// The DNS name a node's certificate carries: `node-<id>.warrant.internal`.
pub fn node_name(node_id: NodeId) -> String {
    format!("node-{node_id}.{NODE_NAME_DOMAIN}")
}

/// The node a DNS name names, if it is exactly [`node_name`] of one.
pub fn node_id_of_name(name: &str) -> Option<NodeId> {
    let digits = name
        .strip_prefix("node-")?
        .strip_suffix(NODE_NAME_DOMAIN)?
        .strip_suffix('.')?;
    // Canonical decimal only: "node-01" and "node-+1" name no node.
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let id: NodeId = digits.parse().ok().filter(|_| canonical)?;
    (id != 0).then_some(id)
}

/// The node a (chain-verified) certificate names: exactly one [`node_name`] among its DNS
/// subject alternative names. A certificate naming two nodes names none.
pub fn node_id_of_certificate(der: &[u8]) -> Option<NodeId> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let mut ids = cert.valid_dns_names().filter_map(node_id_of_name);
    let id = ids.next()?;
    ids.all(|other| other == id).then_some(id)
}

/// What a peer connection proved about its caller: the connect info the listener attaches to
/// every request on the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerConnInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The node the caller's verified TLS certificate names; `None` on plaintext.
    pub node_id: Option<NodeId>,
}

/// A node's TLS material as PEM: the cluster CA, and the node's own certificate chain and key,
/// which it presents both as a server and as a client.
#[derive(Clone)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        write!(
            f,
            "PeerTls {{ ca: {} bytes, cert: {} bytes, key: redacted }}",
            self.ca_pem.len(),
            self.cert_pem.len()
        )
    }
}

/// How members prove themselves to each other.
#[derive(Clone)]
pub enum PeerSecurity {
    /// Mutual TLS with the current material; a reload sends new material.
    MutualTls(watch::Receiver<Arc<PeerTls>>),
    /// Plaintext with shared secrets: for `insecure_plaintext` clusters only.
    SharedSecrets(SharedSecrets),
}

impl fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSecurity::MutualTls(_) => write!(f, "MutualTls"),
            PeerSecurity::SharedSecrets(s) => {
                write!(f, "SharedSecrets({} accepted)", s.accepted.len())
            }
        }
    }
}

impl PeerSecurity {
    /// `message` as a peer request: with the secret on plaintext; on mutual TLS the connection
    /// carries the proof.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        match self {
            PeerSecurity::MutualTls(_) => Request::new(message),
            PeerSecurity::SharedSecrets(secrets) => secrets.request(message),
        }
    }

    /// The layer the peer listener runs in front of the peer service.
    pub fn layer(&self) -> PeerAuthLayer {
        PeerAuthLayer {
            secrets: match self {
                PeerSecurity::MutualTls(_) => None,
                PeerSecurity::SharedSecrets(secrets) => Some(secrets.clone()),
            },
            budget: PeerBudget::default(),
        }
    }
}

/// The secrets of a plaintext cluster: the first is sent, every one is accepted.
#[derive(Clone)]
pub struct SharedSecrets {
    sent: Arc<str>,
    /// SHA-256 of each accepted secret, so each comparison takes the same time whatever the
    /// length of what a caller presents.
    accepted: Arc<[[u8; 32]]>,
}

impl SharedSecrets {
    /// Only `secret`, sent and accepted.
    pub fn single(secret: &str) -> Self {
        SharedSecrets {
            sent: secret.into(),
            accepted: Arc::new([Sha256::digest(secret.as_bytes()).into()]),
        }
    }

    /// `secrets[0]` is sent; all are accepted. At least one, at most [`PEER_SECRETS_MAX`].
    pub fn new(secrets: &[String]) -> Result<Self, String> {
        let Some(sent) = secrets.first() else {
            return Err("a plaintext cluster needs a peer secret".to_string());
        };
        if secrets.len() > PEER_SECRETS_MAX {
            return Err(format!(
                "{} peer secrets given; allowed: 1 to {PEER_SECRETS_MAX}",
                secrets.len()
            ));
        }
        Ok(SharedSecrets {
            sent: sent.as_str().into(),
            accepted: secrets
                .iter()
                .map(|s| Sha256::digest(s.as_bytes()).into())
                .collect(),
        })
    }

    /// `message` as a request that carries the secret.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = MetadataValue::try_from(&*self.sent) {
            request.metadata_mut().insert(PEER_SECRET_METADATA, value);
        }
        request
    }

    /// Whether `presented` is one of the accepted secrets. Compares against every one, so the
    /// time taken says nothing about which matched.
    fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.accepted
            .iter()
            .fold(subtle::Choice::from(0), |any, secret| {
                any | presented[..].ct_eq(&secret[..])
            })
            .into()
    }
}

/// The status a peer call gets when its pool of slots is full, with `ErrorInfo`.
fn busy(message: String) -> Status {
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_error_info(PEER_BUSY, ERROR_DOMAIN, std::collections::HashMap::new()),
    )
}

/// The status a refused peer call gets, with `ErrorInfo`.
fn unauthenticated(message: &str) -> Status {
    Status::with_error_details(
        tonic::Code::Unauthenticated,
        message,
        ErrorDetails::with_error_info(
            PEER_UNAUTHENTICATED,
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        ),
    )
}

/// Refuses a peer request whose caller is not a member, from its headers and connection alone:
/// the body is never read, so an unauthenticated 60 MiB AppendEntries costs nothing to refuse.
#[derive(Clone)]
pub struct PeerAuthLayer {
    /// `None`: mutual TLS, the connection must carry a certificate naming a node.
    secrets: Option<SharedSecrets>,
    /// What members may make this node hold at once, shared by every connection.
    budget: PeerBudget,
}

impl<S> tower_layer::Layer<S> for PeerAuthLayer {
    type Service = PeerAuth<S>;

    fn layer(&self, inner: S) -> PeerAuth<S> {
        PeerAuth {
            inner,
            secrets: self.secrets.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// The service [`PeerAuthLayer`] builds.
#[derive(Clone)]
pub struct PeerAuth<S> {
    inner: S,
    secrets: Option<SharedSecrets>,
    budget: PeerBudget,
}

impl<S> PeerAuth<S> {
    fn authenticate<B>(&self, request: &http::Request<B>) -> Result<(), Status> {
        match &self.secrets {
            None => match request.extensions().get::<PeerConnInfo>() {
                Some(PeerConnInfo {
                    node_id: Some(_), ..
                }) => Ok(()),
                _ => Err(unauthenticated(
                    "peer RPCs need a client certificate from the cluster's CA that names a \
                     node (node-<id>.warrant.internal); they are for cluster members only",
                )),
            },
            Some(secrets) => {
                let presented = request
                    .headers()
                    .get(PEER_SECRET_METADATA)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                if secrets.accepts(presented) {
                    return Ok(());
                }
                Err(unauthenticated(
                    "peer RPCs need the cluster's peer secret (x-warrant-peer-secret); they \
                     are for cluster members only",
                ))
            }
        }
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for PeerAuth<S>
where
    S: tower_service::Service<
            http::Request<LimitedBody<B>>,
            Response = http::Response<tonic::body::Body>,
        >,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Err(status) = self.authenticate(&request) {
            tracing::warn!(
                remote = ?request.extensions().get::<PeerConnInfo>().and_then(|c| c.remote_addr),
                path = %request.uri().path(),
                "refused an unauthenticated peer request"
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let path = request.uri().path().to_string();
        let admission = match self.budget.admit(&path, busy) {
            Ok(admission) => admission,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        // A snapshot stream is long; tonic bounds each of its messages. A unary body is one.
        let counted = !path.ends_with("/InstallSnapshot");
        let request = request.map(|body| LimitedBody::new(body, admission.body_bytes_max, counted));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(admission);
            response
        })
    }
}

/// Refuses a request whose `source_node_id` is not the node its connection's certificate
/// names. On plaintext (no certificate) the secret already decided.
pub(crate) fn check_source<T>(request: &Request<T>, source_node_id: NodeId) -> Result<(), Status> {
    check_certified_source(
        request.extensions().get::<PeerConnInfo>().copied(),
        source_node_id,
    )
}

/// [`check_source`] for a connection's info taken out of its request (a stream's header comes
/// after the request's metadata).
pub(crate) fn check_certified_source(
    conn: Option<PeerConnInfo>,
    source_node_id: NodeId,
) -> Result<(), Status> {
    match conn.and_then(|c| c.node_id) {
        Some(certified) if certified != source_node_id => Err(Status::with_error_details(
            tonic::Code::PermissionDenied,
            format!(
                "the request says it comes from node {source_node_id}, but the caller's \
                 certificate names node {certified}"
            ),
            ErrorDetails::with_error_info(
                PEER_UNAUTHENTICATED,
                ERROR_DOMAIN,
                std::collections::HashMap::new(),
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip_and_only_canonical_ones_name_a_node() {
        for id in [1, 2, 42, u64::MAX] {
            assert_eq!(node_id_of_name(&node_name(id)), Some(id));
        }
        for name in [
            "node-0.warrant.internal",
            "node-01.warrant.internal",
            "node-+1.warrant.internal",
            "node-.warrant.internal",
            "node-1.warrant.internal.evil",
            "node-1xwarrant.internal",
            "node-1.other.internal",
            "xnode-1.warrant.internal",
            "node-18446744073709551616.warrant.internal",
            "localhost",
        ] {
            assert_eq!(node_id_of_name(name), None, "{name}");
        }
    }

    #[test]
    fn any_accepted_secret_passes_and_nothing_else_does() {
        let secrets = SharedSecrets::new(&["new-secret-0123456789".into(), "old-secret".into()])
            .expect("two secrets");
        assert!(secrets.accepts(b"new-secret-0123456789"));
        assert!(secrets.accepts(b"old-secret"));
        for wrong in [
            &b""[..],
            b"new-secret",
            b"old-secret ",
            b"NEW-SECRET-0123456789",
        ] {
            assert!(!secrets.accepts(wrong), "{wrong:?}");
        }
        let request = secrets.request(());
        assert_eq!(
            request
                .metadata()
                .get(PEER_SECRET_METADATA)
                .map(|v| v.as_bytes()),
            Some(&b"new-secret-0123456789"[..]),
            "the first secret is the one sent"
        );
    }

    #[test]
    fn the_secret_list_is_bounded() {
        assert!(SharedSecrets::new(&[]).is_err());
        let many: Vec<String> = (0..=PEER_SECRETS_MAX).map(|i| format!("s{i}")).collect();
        assert!(SharedSecrets::new(&many).is_err());
        assert!(SharedSecrets::new(&many[..PEER_SECRETS_MAX]).is_ok());
    }

    fn with_conn(node_id: Option<NodeId>) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(PeerConnInfo {
            remote_addr: None,
            node_id,
        });
        request
    }

    #[test]
    fn a_request_must_come_from_the_node_its_certificate_names() {
        assert!(check_source(&with_conn(Some(2)), 2).is_ok());
        let status = check_source(&with_conn(Some(3)), 2).expect_err("node 3 posing as 2");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status
                .get_error_details()
                .error_info()
                .map(|i| i.reason.as_str()),
            Some(PEER_UNAUTHENTICATED)
        );
        // Plaintext: the shared secret decided already.
        assert!(check_source(&with_conn(None), 2).is_ok());
    }

    #[tokio::test]
    async fn the_layer_refuses_before_the_inner_service_runs() {
        use tower_layer::Layer;
        use tower_service::Service;
        let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = {
            let called = called.clone();
            tower::service_fn(move |_request: http::Request<LimitedBody<()>>| {
                called.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        tonic::body::Body::empty(),
                    ))
                }
            })
        };
        let mtls = PeerAuthLayer {
            secrets: None,
            budget: PeerBudget::default(),
        };
        let mut service = mtls.layer(inner.clone());
        for conn in [None, Some(PeerConnInfo::default())] {
            let mut request = http::Request::new(());
            if let Some(conn) = conn {
                request.extensions_mut().insert(conn);
            }
            let response = service.call(request).await.expect("a response");
            let status = Status::from_header_map(response.headers()).expect("a grpc status");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
        let mut request = http::Request::new(());
        request.extensions_mut().insert(PeerConnInfo {
            remote_addr: None,
            node_id: Some(2),
        });
        service.call(request).await.expect("a response");
        assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
