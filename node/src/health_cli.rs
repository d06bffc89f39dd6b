//! `warrant health`: asks a node's gRPC health service (grpc.health.v1) whether it serves, over
//! the CLI's TLS settings. Made for probes where the image has no shell (distroless): Docker
//! Compose health checks and Kubernetes exec probes run the binary itself. Exit 0 when the
//! node reports SERVING (with `--live`: when it answers at all, which is what a liveness probe
//! asks: the process is not wedged), 4 when it answers anything else, 3 when it does not answer.

use std::time::Duration;

use serde_json::json;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::client::{Failure, Output, Target, refused};

/// How long `warrant health` waits for the answer: probes have deadlines of their own, and a
/// node that cannot answer a health check within this is not live.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub target: Target,
    /// The service to ask about ("" is the node as a whole).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Succeed whenever the node answers, serving or not (a liveness probe).
    #[arg(long)]
    pub live: bool,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let (channel, endpoint) = args.target.channel().await?;
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    let reply = tokio::time::timeout(HEALTH_TIMEOUT, HealthClient::new(channel).check(request))
        .await
        .map_err(|_| {
            anyhow::Error::new(Failure::Unreachable(format!(
                "{endpoint}: no health answer within {HEALTH_TIMEOUT:?}"
            )))
        })?
        .map_err(|status| refused(&format!("{endpoint}: health"), &status))?
        .into_inner();
    let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    match args.output {
        Output::Json => println!(
            "{}",
            json!({ "endpoint": endpoint, "service": args.service, "status": name })
        ),
        Output::Table => println!("{endpoint}: {name}"),
    }
    if args.live || status == ServingStatus::Serving {
        return Ok(());
    }
    Err(anyhow::Error::new(Failure::Refused(format!(
        "{endpoint} answers {name}"
    ))))
}
