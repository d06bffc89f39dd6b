//! What the admin commands share: connecting to a node, the admin credential, and following a
//! NOT_LEADER answer to the leader it names.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use tonic::{Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

/// How many times an admin command follows a leader hint before giving up.
const LEADER_HOPS_MAX: usize = 3;
/// The deadline of every admin RPC.
pub const ADMIN_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin credential: `--admin-token`, `--admin-token-file`, or `WARRANT_ADMIN_TOKEN`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminAuth {
    /// A node's gRPC endpoint, e.g. 127.0.0.1:7400.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub endpoint: String,
    /// The bootstrap admin token (prefer --admin-token-file or WARRANT_ADMIN_TOKEN).
    #[arg(long, env = "WARRANT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminAuth {
    pub fn authorization(&self) -> anyhow::Result<String> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => anyhow::bail!(
                "no admin token: pass --admin-token-file, --admin-token or set WARRANT_ADMIN_TOKEN"
            ),
        };
        Ok(format!("Bearer {token}"))
    }
}

pub async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Channel::from_shared(uri.clone())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(ADMIN_RPC_TIMEOUT)
        // tonic's default, stated: with Nagle a small request waits for a delayed ACK (~40 ms).
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connect to {uri}"))
}

pub fn authed<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
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
pub async fn on_leader<T, F, Fut>(endpoint: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut endpoint = endpoint.to_string();
    for _ in 0..LEADER_HOPS_MAX {
        let channel = connect(&endpoint).await?;
        match call(channel).await {
            Ok(value) => return Ok(value),
            Err(status) => match error_info(&status) {
                (reason, Some(leader)) if reason == "NOT_LEADER" && leader != endpoint => {
                    eprintln!("{endpoint} is not the leader; asking {leader}");
                    endpoint = leader;
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
