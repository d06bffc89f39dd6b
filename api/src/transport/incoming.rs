//! Accepting connections: a cap on how many are open, TCP_NODELAY on each, and the TLS
//! handshake (bounded in time) before anything reads a byte of HTTP.
//!
//! A connection over the cap is closed as it is accepted, so a flood of idle sockets cannot
//! exhaust file descriptors or memory. The handshake runs in a task of its own, holding the
//! connection's permit, so a slow or silent client never holds up the accept loop. A plaintext
//! client on a TLS listener fails the handshake and is closed: plaintext is refused.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
};
use warrant_raft::{PeerConnInfo, node_id_of_certificate};

/// The DNS domain under which a client certificate names an operator:
/// `<operator_id>.operator.warrant.internal`.
pub const OPERATOR_NAME_DOMAIN: &str = "operator.warrant.internal";

/// The operator a verified client certificate names: its requests carry it as an extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOperator(pub Arc<str>);

/// The operator a (chain-verified) certificate names: exactly one
/// `<operator_id>.operator.warrant.internal` among its DNS names, the id a DNS label.
pub fn operator_of_certificate(der: &[u8]) -> Option<ClientOperator> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let mut ids = cert.valid_dns_names().filter_map(|name| {
        let id = name.strip_suffix(OPERATOR_NAME_DOMAIN)?.strip_suffix('.')?;
        warrant_identity::limits::validate_operator_id("operator_id", id)
            .is_ok()
            .then(|| id.to_string())
    });
    let id = ids.next()?;
    ids.all(|other| other == id)
        .then(|| ClientOperator(id.into()))
}

use super::tls::{Loaded, TlsState};

/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed `accept` (out of file descriptors, say), the loop waits this long before
/// accepting again rather than spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Accepted connections waiting for a server task.
const ACCEPTED_QUEUE_LEN: usize = 64;

/// Which of a node's TLS server configs a listener uses.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Public,
    Http,
    Peer,
}

impl Role {
    fn config(self, loaded: &Loaded) -> Arc<ServerConfig> {
        match self {
            Role::Public => loaded.public.clone(),
            Role::Http => loaded.http.clone(),
            Role::Peer => loaded.peer.clone(),
        }
    }
}

/// What a listener accepts.
pub struct ListenerSpec {
    pub role: Role,
    /// Open connections at most.
    pub connections_max: usize,
    /// `None`: plaintext.
    pub tls: Option<Arc<TlsState>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted connection, TLS established if the listener has TLS, and what it proved about
/// its caller. It holds its listener's permit until it is dropped.
pub struct Conn {
    io: Io,
    pub info: PeerConnInfo,
    /// The operator a verified client certificate names, on the public listener.
    pub operator: Option<ClientOperator>,
    /// Set once the client has sent a byte (after TLS): see `HTTP2_SILENT_CLIENT_TIMEOUT`.
    heard: Arc<AtomicBool>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    fn new(
        io: Io,
        info: PeerConnInfo,
        operator: Option<ClientOperator>,
        permit: OwnedSemaphorePermit,
    ) -> Conn {
        Conn {
            io,
            info,
            operator,
            heard: Arc::default(),
            _permit: permit,
        }
    }

    /// Whether the client has sent anything yet; shared, so it can be watched while the
    /// connection is being served.
    pub fn heard(&self) -> Arc<AtomicBool> {
        self.heard.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts on `listener` until `stop`, and hands each established connection to the receiver.
pub fn accept(
    listener: TcpListener,
    spec: ListenerSpec,
    stop: watch::Receiver<bool>,
) -> mpsc::Receiver<Conn> {
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE_LEN);
    tokio::spawn(accept_loop(listener, spec, tx, stop));
    rx
}

async fn accept_loop(
    listener: TcpListener,
    spec: ListenerSpec,
    tx: mpsc::Sender<Conn>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(spec.connections_max));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(role = ?spec.role, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(role = ?spec.role, %remote, max = spec.connections_max, "connection cap reached; closing");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        match &spec.tls {
            None => {
                let info = PeerConnInfo {
                    remote_addr: Some(remote),
                    node_id: None,
                };
                let conn = Conn::new(Io::Plain(tcp), info, None, permit);
                if tx.send(conn).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let config = spec.role.config(&tls.current());
                tokio::spawn(handshake(tcp, remote, config, permit, tx.clone()));
            }
        }
    }
}

/// Completes the TLS handshake, or drops the connection if it fails or takes too long.
async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    config: Arc<ServerConfig>,
    permit: OwnedSemaphorePermit,
    tx: mpsc::Sender<Conn>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return;
        }
    };
    // The verifier has checked the chain against the CA; this reads whom it names.
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .cloned();
    let node_id = leaf.as_ref().and_then(|cert| node_id_of_certificate(cert));
    let operator = leaf.as_ref().and_then(|cert| operator_of_certificate(cert));
    let info = PeerConnInfo {
        remote_addr: Some(remote),
        node_id,
    };
    let conn = Conn::new(Io::Tls(Box::new(stream)), info, operator, permit);
    let _ = tx.send(conn).await;
}
