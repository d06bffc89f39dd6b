//! `warrant operator add`: registers a named operator. The bootstrap admin token registers the
//! first one; from then on an operator with the admin role (its client certificate given as
//! `--cert`/`--key`) registers the others.

use clap::{Subcommand, ValueEnum};
use warrant_proto::{
    api::{self, identity_service_client::IdentityServiceClient},
    log::OperatorRole,
};

use crate::client::{AdminAuth, authed, refused};

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Register an operator; its client certificate must name
    /// <operator-id>.operator.warrant.internal (`warrant certs dev --operator <id>` makes one).
    Add {
        #[command(flatten)]
        auth: AdminAuth,
        /// A DNS label: lowercase letters, digits and '-'.
        #[arg(long)]
        operator_id: String,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    /// Everything: registration, status, revocation, keys, membership, audit.
    Admin,
    /// Running the cluster: membership, signing keys, compaction.
    Operator,
    /// Read-only: the audit trail, digests and projections.
    Auditor,
}

pub async fn run(command: OperatorCommand) -> anyhow::Result<()> {
    let OperatorCommand::Add {
        auth,
        operator_id,
        role,
        display_name,
    } = command;
    let role = match role {
        Role::Admin => OperatorRole::Admin,
        Role::Operator => OperatorRole::Operator,
        Role::Auditor => OperatorRole::Auditor,
    };
    let authorization = auth.authorization()?;
    let channel = auth.channel().await?;
    let request = api::RegisterOperatorRequest {
        operator_id,
        role: role as i32,
        display_name,
        ..Default::default()
    };
    let reply = IdentityServiceClient::new(channel)
        .register_operator(authed(&authorization, request))
        .await
        .map_err(|status| refused("register operator", &status))?
        .into_inner();
    println!(
        "registered operator {} ({}) at seq {}",
        reply.operator_id,
        role.as_str_name(),
        reply.seq
    );
    Ok(())
}
