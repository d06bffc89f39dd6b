//! The node's TLS material: read from files, checked, turned into one rustls server config per
//! listener, and reloaded on SIGHUP and when a file changes, without a restart.
//!
//! A reload that fails (a half-written file, a key that does not match its certificate, a
//! certificate for another node) keeps the material in use and logs why: a node never stops
//! serving because an operator was midway through replacing a file. Connections already open
//! keep the certificate they were made with; new ones get the new one.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::sync::watch;
use warrant_raft::{PeerTls, node_id_of_certificate, node_name};

/// How often the files are checked for changes.
pub const TLS_RELOAD_POLL: Duration = Duration::from_secs(2);
/// The largest certificate, chain or key file read.
pub const TLS_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Where a node's TLS material is: the cluster CA (which signs node and client certificates),
/// and the node's certificate chain and private key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes; allowed: at most {TLS_FILE_BYTES_MAX}")]
    TooLarge { path: String, bytes: u64 },
    #[error("{path} holds no usable {what} (PEM): {why}")]
    Pem {
        path: String,
        what: &'static str,
        why: String,
    },
    #[error(
        "the certificate in {path} names {named}; this is node {node_id}, whose certificate \
         must carry the DNS name {expected}"
    )]
    WrongNode {
        path: String,
        node_id: u64,
        named: String,
        expected: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One consistent set of material, as every listener uses it.
pub struct Loaded {
    /// Public gRPC: a client certificate is optional, and checked against the CA if sent.
    pub public: Arc<ServerConfig>,
    /// HTTP (JWKS, OAuth, health): server authentication only.
    pub http: Arc<ServerConfig>,
    /// Peers: a client certificate from the CA is required.
    pub peer: Arc<ServerConfig>,
    /// The same material for the peer client.
    pub peer_tls: Arc<PeerTls>,
}

/// The current material and what reloads it. Cheap to share.
pub struct TlsState {
    files: TlsFiles,
    node_id: u64,
    current: RwLock<Arc<Loaded>>,
    peer_tx: watch::Sender<Arc<PeerTls>>,
}

impl TlsState {
    /// Loads the material for `node_id`; fails if any file is missing, unparsable, or names
    /// another node.
    pub fn load(files: TlsFiles, node_id: u64) -> Result<Arc<TlsState>, TlsError> {
        let loaded = load(&files, node_id)?;
        let (peer_tx, _) = watch::channel(loaded.peer_tls.clone());
        Ok(Arc::new(TlsState {
            files,
            node_id,
            current: RwLock::new(Arc::new(loaded)),
            peer_tx,
        }))
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The peer client's view of the material: it redials with new material after a reload.
    pub fn peer_material(&self) -> watch::Receiver<Arc<PeerTls>> {
        self.peer_tx.subscribe()
    }

    /// Reads the files again and switches to them if they are valid.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load(&self.files, self.node_id)?;
        let peer_tls = loaded.peer_tls.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        self.peer_tx.send_replace(peer_tls);
        Ok(())
    }

    /// Reloads on SIGHUP and whenever a file's size or modification time changes, until `stop`.
    pub async fn reload_forever(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        if hangup.is_none() {
            tracing::warn!("cannot listen for SIGHUP; TLS files reload on change only");
        }
        let mut seen = self.stamps();
        let mut poll = tokio::time::interval(TLS_RELOAD_POLL);
        loop {
            let why = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                _ = poll.tick() => {
                    let now = self.stamps();
                    if now == seen { continue; }
                    seen = now;
                    "a file changed"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(why, "reloaded the TLS certificates and key"),
                Err(e) => {
                    tracing::error!(why, error = %e, "TLS reload failed; keeping the material in use")
                }
            }
        }
    }

    fn stamps(&self) -> [Option<(SystemTime, u64)>; 3] {
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        [
            stamp(&self.files.ca_file),
            stamp(&self.files.cert_file),
            stamp(&self.files.key_file),
        ]
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let shown = || path.display().to_string();
    let bytes = std::fs::metadata(path)
        .map_err(|source| TlsError::Read {
            path: shown(),
            source,
        })?
        .len();
    if bytes > TLS_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge {
            path: shown(),
            bytes,
        });
    }
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |why: String| TlsError::Pem {
        path: path.display().to_string(),
        what: "certificate",
        why,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block".to_string()));
    }
    Ok(certs)
}

/// Reads and checks the three files and builds every listener's config from them.
fn load(files: &TlsFiles, node_id: u64) -> Result<Loaded, TlsError> {
    let ca_pem = read(&files.ca_file)?;
    let cert_pem = read(&files.cert_file)?;
    let key_pem = read(&files.key_file)?;
    let cas = certificates(&files.ca_file, &ca_pem)?;
    let chain = certificates(&files.cert_file, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key_file.display().to_string(),
        what: "private key",
        why: e.to_string(),
    })?;
    check_names_node(&files.cert_file, &chain[0], node_id)?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("CA in {}: {e}", files.ca_file.display())))?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = |verifier: Option<bool>, alpn: &[&[u8]]| {
        server_config(
            &provider,
            &roots,
            verifier,
            chain.clone(),
            key.clone_key(),
            alpn,
        )
    };
    Ok(Loaded {
        public: config(Some(false), &[b"h2"])?,
        http: config(None, &[b"http/1.1"])?,
        peer: config(Some(true), &[b"h2"])?,
        peer_tls: Arc::new(PeerTls {
            ca_pem,
            cert_pem,
            key_pem,
        }),
    })
}

/// The node's own certificate must name it, or its peers would refuse it (and an operator
/// who swapped two nodes' files would find out from a partition instead of from this).
fn check_names_node(path: &Path, cert: &CertificateDer<'_>, node_id: u64) -> Result<(), TlsError> {
    match node_id_of_certificate(cert) {
        Some(id) if id == node_id => Ok(()),
        named => Err(TlsError::WrongNode {
            path: path.display().to_string(),
            node_id,
            named: named.map_or("no node".to_string(), |id| format!("node {id}")),
            expected: node_name(node_id),
        }),
    }
}

/// A server config: `client_certs` None for none asked, `Some(required)` to ask for one from
/// the CA (and refuse the handshake without one when required).
fn server_config(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    client_certs: Option<bool>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let config_error = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(&e))?;
    let builder = match client_certs {
        None => builder.with_no_client_auth(),
        Some(required) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| config_error(&e))?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(&e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
