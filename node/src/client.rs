//! What the admin commands share: the endpoints to try (`--endpoints`, `WARRANT_ENDPOINTS`),
//! connecting to the first that answers, the admin credential, following a NOT_LEADER answer to
//! the leader it names, the output format (`-o table|json`), and how a failure is classed for
//! the exit code ([`Failure`]: unreachable or refused).

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
/// Endpoints `--endpoints` takes at most: a cluster's members, with room for a few more.
pub const ENDPOINTS_MAX: usize = 16;
/// How long the CLI waits for one endpoint's TCP connection (and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of every admin RPC.
pub const ADMIN_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// How the CLI reaches a node: the endpoints to try and the TLS settings to trust them with.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// The nodes' gRPC endpoints, comma-separated, tried in order until one answers: e.g.
    /// 10.0.0.1:7400,10.0.0.2:7400 (TLS), or http://127.0.0.1:7400 for a node running with
    /// insecure_plaintext. `--endpoint` is an alias.
    #[arg(
        long = "endpoints",
        visible_alias = "endpoint",
        env = "WARRANT_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7400"
    )]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How a read verb prints its answer: a table (or text) for people, or one JSON document,
/// stable for scripts. `text` is accepted as the old name of `table`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    #[value(alias = "text")]
    Table,
    Json,
}

/// Why a command failed, for its exit code ([`exit_code`]): no endpoint answered, or a node
/// answered and said no. Every other error exits 1.
#[derive(Debug)]
pub enum Failure {
    /// No endpoint answered: connection refused, DNS, TLS handshake, or no reply in time.
    Unreachable(String),
    /// A node answered with a non-OK status (permission, invalid argument, not found, failed
    /// precondition, ...).
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(text) => write!(f, "unreachable: {text}"),
            Failure::Refused(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Failure {}

/// Exit code 3: no endpoint answered.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code 4: a node answered with a refusal.
pub const EXIT_REFUSED: u8 = 4;
/// What `--help` says about exit codes (docs/operations.md says the same).
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok (a DENY from `authorize` is an answer: 0); \
1 other error; 2 usage; 3 unreachable (no endpoint answered: connection refused, DNS, TLS \
handshake, no reply before the deadline); 4 refused (a node answered with a non-OK status).";

/// The exit code for `error`: 3 or 4 when a [`Failure`], a gRPC status or a transport error is
/// in its chain, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return match failure {
                Failure::Unreachable(_) => EXIT_UNREACHABLE,
                Failure::Refused(_) => EXIT_REFUSED,
            };
        }
        if let Some(status) = cause.downcast_ref::<Status>() {
            return if status_is_unreachable(status) {
                EXIT_UNREACHABLE
            } else {
                EXIT_REFUSED
            };
        }
        if cause.is::<tonic::transport::Error>() {
            return EXIT_UNREACHABLE;
        }
    }
    1
}

/// Whether `status` was made on this side because no reply came (the connection failed or
/// broke, or the deadline passed), rather than sent by a node. A node's refusals carry an
/// ErrorInfo reason; these carry none.
pub fn status_is_unreachable(status: &Status) -> bool {
    use tonic::Code;
    let no_reason = status.get_details_error_info().is_none();
    let transport = matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
    );
    no_reason && (transport || std::error::Error::source(status).is_some())
}

/// `text` (what failed, and why) as the [`Failure`] `status` is: unreachable or refused.
pub fn status_failure(text: String, status: &Status) -> anyhow::Error {
    if status_is_unreachable(status) {
        anyhow::Error::new(Failure::Unreachable(text))
    } else {
        anyhow::Error::new(Failure::Refused(text))
    }
}

/// A refused call as the CLI reports it: what, the status, the reason code and the message,
/// and every field violation (an invalid policy's errors, with line and column).
pub fn refused(what: &str, status: &Status) -> anyhow::Error {
    let (reason, _) = error_info(status);
    let reason = if reason.is_empty() {
        "no reason".to_string()
    } else {
        reason
    };
    let mut text = format!("{what}: {} ({reason}): {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for violation in bad.field_violations {
            text.push_str(&format!(
                "\n  {}: {}",
                violation.field, violation.description
            ));
        }
    }
    status_failure(text, status)
}

impl Target {
    /// The endpoints, checked: at least one, at most [`ENDPOINTS_MAX`], none empty.
    pub fn endpoints(&self) -> anyhow::Result<&[String]> {
        checked_endpoints(&self.endpoints)
    }

    /// A channel to the first endpoint that answers, and that endpoint.
    pub async fn channel(&self) -> anyhow::Result<(Channel, String)> {
        Connector::from_args(&self.tls)?
            .connect_first(self.endpoints()?)
            .await
    }
}

/// `endpoints` when there are 1 to [`ENDPOINTS_MAX`] of them and none is empty.
pub fn checked_endpoints(endpoints: &[String]) -> anyhow::Result<&[String]> {
    anyhow::ensure!(
        !endpoints.is_empty() && endpoints.len() <= ENDPOINTS_MAX,
        "--endpoints names {} endpoints; allowed: 1 to {ENDPOINTS_MAX}",
        endpoints.len()
    );
    anyhow::ensure!(
        endpoints.iter().all(|e| !e.trim().is_empty()),
        "--endpoints has an empty entry; allowed: host:port or http://host:port, comma-separated"
    );
    Ok(endpoints)
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
            .connect_timeout(CONNECT_TIMEOUT)
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
        channel.connect().await.map_err(|e| {
            anyhow::Error::new(Failure::Unreachable(format!("connect to {uri}: {e:#}")))
        })
    }

    /// A channel to the first of `endpoints` that accepts a connection, and which one it was.
    /// A settings error (no CA, a malformed endpoint) stops at once; when none answers, the
    /// error is [`Failure::Unreachable`] naming why each did not.
    pub async fn connect_first(&self, endpoints: &[String]) -> anyhow::Result<(Channel, String)> {
        let mut why = Vec::new();
        for endpoint in checked_endpoints(endpoints)? {
            match self.connect(endpoint).await {
                Ok(channel) => return Ok((channel, endpoint.clone())),
                Err(e) if exit_code(&e) == EXIT_UNREACHABLE => why.push(format!("{e:#}")),
                Err(e) => return Err(e),
            }
        }
        Err(anyhow::Error::new(Failure::Unreachable(format!(
            "no endpoint answered ({})",
            why.join("; ")
        ))))
    }
}

/// The admin credential: `--admin-token`, `--admin-token-file`, or `WARRANT_CLI_ADMIN_TOKEN`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminAuth {
    #[command(flatten)]
    pub target: Target,
    /// The bootstrap admin token (prefer --admin-token-file or WARRANT_CLI_ADMIN_TOKEN). Taken
    /// as is even when it begins with '-': a credential is opaque.
    #[arg(
        long,
        env = "WARRANT_CLI_ADMIN_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
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

    /// The endpoints to try, checked.
    pub fn endpoints(&self) -> anyhow::Result<&[String]> {
        self.target.endpoints()
    }

    /// A channel to the first endpoint that answers.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self.target.channel().await?.0)
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

/// Runs `call` against the first of `endpoints` that answers, and again against the leader
/// each NOT_LEADER answer names. A NOT_LEADER without a hint (a leader handing over, or no
/// leader yet) moves on to the next endpoint.
pub async fn on_leader<T, F, Fut>(
    connector: &Connector,
    endpoints: &[String],
    mut call: F,
) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut untried: std::collections::VecDeque<String> =
        checked_endpoints(endpoints)?.iter().cloned().collect();
    let mut next: Option<String> = None;
    for _ in 0..LEADER_HOPS_MAX + endpoints.len() {
        let (channel, endpoint) = match next.take() {
            Some(leader) => (connector.connect(&leader).await?, leader),
            None => {
                let list: Vec<String> = untried.iter().cloned().collect();
                let (channel, endpoint) = connector.connect_first(&list).await?;
                untried.retain(|e| *e != endpoint);
                (channel, endpoint)
            }
        };
        let status = match call(channel).await {
            Ok(value) => return Ok(value),
            Err(status) => status,
        };
        match error_info(&status) {
            (reason, Some(leader)) if reason == "NOT_LEADER" && leader != endpoint => {
                eprintln!("{endpoint} is not the leader; asking {leader}");
                next = Some(dialled_like(&endpoint, &leader));
            }
            (reason, None) if reason == "NOT_LEADER" && !untried.is_empty() => {
                eprintln!("{endpoint} is not the leader and names none; trying the next endpoint");
            }
            _ => return Err(refused(&endpoint, &status)),
        }
    }
    Err(anyhow::Error::new(Failure::Refused(format!(
        "no leader found after {LEADER_HOPS_MAX} hops"
    ))))
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn a_status_without_a_reason_and_a_transport_code_is_unreachable() {
        assert!(status_is_unreachable(&Status::unavailable(
            "connection reset"
        )));
        assert!(status_is_unreachable(&Status::cancelled("Timeout expired")));
        assert!(!status_is_unreachable(&Status::not_found(
            "no such version"
        )));
        let answered = Status::with_error_details(
            Code::Unavailable,
            "no leader",
            ErrorDetails::with_error_info("NO_LEADER", "warrant", std::collections::HashMap::new()),
        );
        assert!(!status_is_unreachable(&answered), "a node sent it");
        let error = anyhow::Error::new(Status::permission_denied("no")).context("policy get");
        assert_eq!(exit_code(&error), EXIT_REFUSED);
        assert_eq!(exit_code(&anyhow::anyhow!("bad flag")), 1);
    }
}
