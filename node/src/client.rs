//! What the admin commands share: connecting to a node, the admin credential, and following a
//! NOT_LEADER answer to the leader it names.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_types::StatusExt;

/// How many times an admin command follows a leader hint before giving up.
const LEADER_HOPS_MAX: usize = 3;
/// The deadline of every admin RPC.
pub const ADMIN_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// How the CLI reaches a node: its endpoint and the TLS settings to trust it with.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// A node's gRPC endpoint, e.g. 127.0.0.1:7400 (TLS), or http://127.0.0.1:7400 for a node
    /// running with insecure_plaintext.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub endpoint: String,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// The CLI's TLS settings. Their variables are `WARRANT_CLI_*`, a prefix no server config key
/// has, so exporting them for the CLI never changes how a node on the same machine starts.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// The CA certificate (PEM) that signed the nodes' certificates.
    #[arg(long, env = "WARRANT_CLI_CA")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) to present, with --key.
    #[arg(long, env = "WARRANT_CLI_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "WARRANT_CLI_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// Dials nodes with one set of TLS settings (the endpoint it was given and every leader it is
/// pointed to). Cheap to clone.
#[derive(Clone, Default)]
pub struct Connector {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Connector {
    /// Reads the files `tls` names.
    pub fn from_args(tls: &TlsArgs) -> anyhow::Result<Connector> {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("read {}", path.display()))
        };
        Ok(Connector {
            ca: tls.ca.as_ref().map(read).transpose()?,
            identity: match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                _ => None,
            },
        })
    }

    /// Dials `endpoint`: TLS unless it says `http://`. A TLS endpoint needs the CA.
    pub async fn connect(&self, endpoint: &str) -> anyhow::Result<Channel> {
        let plaintext = endpoint.starts_with("http://");
        let uri = match endpoint.split_once("://") {
            Some(_) => endpoint.to_string(),
            None => format!("https://{endpoint}"),
        };
        let mut channel = Endpoint::from_shared(uri.clone())
            .with_context(|| format!("invalid endpoint {endpoint:?}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(ADMIN_RPC_TIMEOUT)
            // tonic's default, stated: with Nagle a small request waits for a delayed ACK (~40 ms).
            .tcp_nodelay(true);
        if !plaintext {
            let Some(ca) = &self.ca else {
                anyhow::bail!(
                    "{endpoint} is a TLS endpoint and no CA is given: pass --ca (or set \
                     WARRANT_CLI_CA) to the cluster's CA certificate, or use http://{endpoint} \
                     for a node running with insecure_plaintext"
                );
            };
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            channel = channel
                .tls_config(tls)
                .with_context(|| format!("TLS settings for {endpoint}"))?;
        }
        channel
            .connect()
            .await
            .with_context(|| format!("connect to {uri}"))
    }
}

/// The admin credential: `--admin-token`, `--admin-token-file`, or `WARRANT_CLI_ADMIN_TOKEN`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminAuth {
    #[command(flatten)]
    pub target: Target,
    /// The bootstrap admin token (prefer --admin-token-file or WARRANT_CLI_ADMIN_TOKEN).
    #[arg(long, env = "WARRANT_CLI_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminAuth {
    /// The `authorization` value: the bootstrap admin token, or empty when an operator's client
    /// certificate (`--cert`/`--key`) authenticates the calls instead.
    pub fn authorization(&self) -> anyhow::Result<String> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?
                .trim()
                .to_string(),
            (None, None) if self.target.tls.cert.is_some() => return Ok(String::new()),
            (None, None) => anyhow::bail!(
                "no credential: pass an operator's client certificate (--cert and --key), or \
                 the bootstrap admin token (--admin-token-file, --admin-token or \
                 WARRANT_CLI_ADMIN_TOKEN)"
            ),
        };
        Ok(format!("Bearer {token}"))
    }

    pub fn endpoint(&self) -> &str {
        &self.target.endpoint
    }

    pub fn connector(&self) -> anyhow::Result<Connector> {
        Connector::from_args(&self.target.tls)
    }
}

/// `address` (host:port, as a leader hint or a member list gives it) with `endpoint`'s scheme,
/// so every node is dialled the way the first one was.
pub fn dialled_like(endpoint: &str, address: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://{address}"),
        None => address.to_string(),
    }
}

/// `message` with `authorization` metadata, unless `authorization` is empty (a client
/// certificate authenticates the call).
pub fn authed<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if authorization.is_empty() {
        return request;
    }
    if let Ok(value) = MetadataValue::try_from(authorization) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The reason code and leader address an error carries, if any.
pub fn error_info(status: &Status) -> (String, Option<String>) {
    match status.get_details_error_info() {
        Some(info) => (
            info.reason.clone(),
            info.metadata.get("leader_addr").cloned(),
        ),
        None => (String::new(), None),
    }
}

/// Runs `call` against `endpoint`, and again against the leader each NOT_LEADER answer names.
pub async fn on_leader<T, F, Fut>(
    connector: &Connector,
    endpoint: &str,
    mut call: F,
) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut endpoint = endpoint.to_string();
    for _ in 0..LEADER_HOPS_MAX {
        let channel = connector.connect(&endpoint).await?;
        match call(channel).await {
            Ok(value) => return Ok(value),
            Err(status) => match error_info(&status) {
                (reason, Some(leader)) if reason == "NOT_LEADER" && leader != endpoint => {
                    eprintln!("{endpoint} is not the leader; asking {leader}");
                    endpoint = dialled_like(&endpoint, &leader);
                }
                (reason, _) => anyhow::bail!(
                    "{endpoint}: {} ({}): {}",
                    status.code(),
                    if reason.is_empty() {
                        "no reason"
                    } else {
                        &reason
                    },
                    status.message()
                ),
            },
        }
    }
    anyhow::bail!("no leader found after {LEADER_HOPS_MAX} hops")
}
