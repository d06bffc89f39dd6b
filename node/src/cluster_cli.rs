//! `warrant cluster …` and `warrant member …`: bootstrap, membership and status, as etcdctl and
//! cockroach do them. Each talks gRPC to one node; membership changes follow NOT_LEADER answers
//! to the leader.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};

use crate::client::{AdminAuth, Connector, Output, Target, authed, on_leader, refused};

/// How long `cluster status` waits for each member.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Make the listed nodes one cluster. Run once, against any one of them; running it again
    /// with the same members changes nothing.
    Init {
        #[command(flatten)]
        auth: AdminAuth,
        /// Every initial voter as id=host:port (the address clients dial), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        /// Every initial voter's peer listener as id=host:port, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<String>,
    },
    /// Show every member: id, address, role, term, commit index, applied index and lag.
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Rotate the signing key of the node at --endpoint: a new key is published and signs from
    /// now on; the old one is retired and stays in JWKS until the last token it signed expires.
    Rotate {
        #[command(flatten)]
        auth: AdminAuth,
    },
    /// Mark a signing key (of any node) compromised: it leaves JWKS at once, signs nothing more,
    /// and every token it signed fails Verify. Never undone. Its node rotates to a new key.
    Compromised {
        #[command(flatten)]
        auth: AdminAuth,
        /// The key's id (the `kid` of the tokens it signed). A kid is base64url and may begin
        /// with '-', so the value is taken as is.
        #[arg(long, allow_hyphen_values = true)]
        key_id: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        reason: String,
    },
}

pub async fn run_key(command: KeyCommand) -> anyhow::Result<()> {
    let auth = match command {
        KeyCommand::Rotate { auth } => auth,
        KeyCommand::Compromised {
            auth,
            key_id,
            reason,
        } => return mark_key_compromised(auth, key_id, reason).await,
    };
    let authorization = auth.authorization()?;
    let channel = auth.channel().await?;
    let reply = ClusterServiceClient::new(channel)
        .rotate_signing_key(authed(&authorization, api::RotateSigningKeyRequest {}))
        .await
        .map_err(|status| refused("rotate signing key", &status))?
        .into_inner();
    println!(
        "rotated: new key {} signs from now on; key {} is retired (seq {})",
        reply.new_key_id, reply.retired_key_id, reply.seq
    );
    Ok(())
}

async fn mark_key_compromised(
    auth: AdminAuth,
    key_id: String,
    reason: String,
) -> anyhow::Result<()> {
    let authorization = auth.authorization()?;
    let channel = auth.channel().await?;
    let request = api::MarkKeyCompromisedRequest {
        key_id: key_id.clone(),
        reason,
        idempotency_key: String::new(),
    };
    let reply = ClusterServiceClient::new(channel)
        .mark_key_compromised(authed(&authorization, request))
        .await
        .map_err(|status| refused("mark key compromised", &status))?
        .into_inner();
    let marked = if reply.changed {
        "marked"
    } else {
        "already marked"
    };
    println!("key {key_id} {marked} compromised (seq {})", reply.seq);
    if !reply.new_key_id.is_empty() {
        println!(
            "this node rotated: new key {} signs from now on",
            reply.new_key_id
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Add a node as a learner: it catches up from the log or a snapshot, without a vote.
    Add {
        #[command(flatten)]
        auth: AdminAuth,
        #[arg(long)]
        node_id: u64,
        /// The address clients dial, host:port.
        #[arg(long)]
        address: String,
        /// The address of its peer listener, which the other members dial, host:port.
        #[arg(long)]
        peer_address: String,
    },
    /// Make a learner a voter (once it has caught up).
    Promote {
        #[command(flatten)]
        auth: AdminAuth,
        #[arg(long)]
        node_id: u64,
    },
    /// Remove a member. Its id is never reused: a wiped node rejoins under a new id.
    Remove {
        #[command(flatten)]
        auth: AdminAuth,
        #[arg(long)]
        node_id: u64,
    },
}

pub async fn run_cluster(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init {
            auth,
            members,
            peers,
        } => init(&auth, parse_members(&members, &peers)?).await,
        ClusterCommand::Status { target, output } => {
            let connector = Connector::from_args(&target.tls)?;
            status(&connector, target.endpoints()?, output).await
        }
    }
}

/// `cluster init`. Idempotent, including after the bootstrap token was retired (a named operator
/// registered, which needs an initialised cluster): then the node's membership, which `Status`
/// shows to anyone, is compared with `members`, and equal means done.
async fn init(auth: &AdminAuth, members: Vec<api::Member>) -> anyhow::Result<()> {
    let authorization = auth.authorization()?;
    let channel = auth.channel().await?;
    let request = api::InitClusterRequest {
        members: members.clone(),
    };
    let reply = match ClusterServiceClient::new(channel.clone())
        .init_cluster(authed(&authorization, request))
        .await
    {
        Ok(reply) => reply.into_inner(),
        Err(status) if crate::client::error_info(&status).0 == "BOOTSTRAP_TOKEN_RETIRED" => {
            return already_initialised(channel, &members, &status).await;
        }
        Err(status) => return Err(refused("init cluster", &status)),
    };
    if reply.initialized_now {
        println!("initialised the cluster:");
    } else {
        println!("the cluster was already initialised with these members:");
    }
    print_members(&reply.members);
    Ok(())
}

/// Succeeds when the node's cluster has exactly `members` (ids and both addresses).
async fn already_initialised(
    channel: tonic::transport::Channel,
    members: &[api::Member],
    retired: &tonic::Status,
) -> anyhow::Result<()> {
    let status = ClusterServiceClient::new(channel)
        .status(api::StatusRequest {})
        .await
        .map_err(|status| refused("status", &status))?
        .into_inner();
    let key = |m: &api::Member| (m.node_id, m.address.clone(), m.peer_address.clone());
    let mut want: Vec<_> = members.iter().map(key).collect();
    let mut have: Vec<_> = status.members.iter().map(key).collect();
    want.sort();
    have.sort();
    if want != have {
        return Err(refused("init cluster", retired));
    }
    println!("the cluster was already initialised with these members:");
    print_members(&status.members);
    Ok(())
}

fn print_members(members: &[api::Member]) {
    for m in members {
        println!("  {}  {}  peers: {}", m.node_id, m.address, m.peer_address);
    }
}

pub async fn run_member(command: MemberCommand) -> anyhow::Result<()> {
    let (auth, what) = match &command {
        MemberCommand::Add { auth, node_id, .. } => (auth, format!("added learner {node_id}")),
        MemberCommand::Promote { auth, node_id } => (auth, format!("promoted {node_id} to voter")),
        MemberCommand::Remove { auth, node_id } => (auth, format!("removed {node_id}")),
    };
    let authorization = auth.authorization()?;
    let reply = on_leader(&auth.connector()?, auth.endpoints()?, |channel| {
        let mut client = ClusterServiceClient::new(channel);
        let authorization = authorization.clone();
        let command = &command;
        async move {
            let reply = match command {
                MemberCommand::Add {
                    node_id,
                    address,
                    peer_address,
                    ..
                } => {
                    client
                        .add_member(authed(
                            &authorization,
                            api::AddMemberRequest {
                                node_id: *node_id,
                                address: address.clone(),
                                peer_address: peer_address.clone(),
                            },
                        ))
                        .await
                }
                MemberCommand::Promote { node_id, .. } => {
                    client
                        .promote_member(authed(
                            &authorization,
                            api::PromoteMemberRequest { node_id: *node_id },
                        ))
                        .await
                }
                MemberCommand::Remove { node_id, .. } => {
                    client
                        .remove_member(authed(
                            &authorization,
                            api::RemoveMemberRequest { node_id: *node_id },
                        ))
                        .await
                }
            };
            reply.map(tonic::Response::into_inner)
        }
    })
    .await?;
    println!("{what} (log index {}); members now:", reply.log_index);
    for m in reply.members {
        let role = if m.voter { "voter" } else { "learner" };
        println!("  {}  {}  {role}", m.node_id, m.address);
    }
    Ok(())
}

/// `--members` and `--peers` as members: every member needs a peer address, and every peer
/// address a member.
pub(crate) fn parse_members(
    members: &[String],
    peers: &[String],
) -> anyhow::Result<Vec<api::Member>> {
    let mut peer_addresses = std::collections::BTreeMap::new();
    for text in peers {
        let (node_id, address) = parse_id_address("peer", text)?;
        anyhow::ensure!(
            peer_addresses.insert(node_id, address).is_none(),
            "--peers names node {node_id} twice"
        );
    }
    let mut parsed = Vec::new();
    for text in members {
        let (node_id, address) = parse_id_address("member", text)?;
        let peer_address = peer_addresses
            .remove(&node_id)
            .with_context(|| format!("--peers has no address for member {node_id}"))?;
        parsed.push(api::Member {
            node_id,
            address,
            voter: true,
            peer_address,
        });
    }
    if let Some(node_id) = peer_addresses.keys().next() {
        anyhow::bail!("--peers names node {node_id}, which --members does not");
    }
    Ok(parsed)
}

fn parse_id_address(what: &str, text: &str) -> anyhow::Result<(u64, String)> {
    let (id, address) = text
        .split_once('=')
        .with_context(|| format!("{what} {text:?} is not id=host:port"))?;
    let node_id = id
        .trim()
        .parse()
        .with_context(|| format!("{what} {text:?}: {id:?} is not a node id"))?;
    Ok((node_id, address.trim().to_string()))
}

/// One row of `cluster status`.
#[derive(Debug, Serialize)]
struct MemberRow {
    id: u64,
    address: String,
    voter: bool,
    role: String,
    term: u64,
    leader_id: Option<u64>,
    commit_index: u64,
    applied_index: u64,
    applied_seq: u64,
    /// The leader's commit index minus this member's applied index.
    lag: Option<u64>,
    snapshot_index: u64,
    purged_index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn member_status(
    connector: &Connector,
    address: &str,
) -> Result<api::StatusResponse, String> {
    let call = async {
        let channel = connector
            .connect(address)
            .await
            .map_err(|e| format!("{e:#}"))?;
        ClusterServiceClient::new(channel)
            .status(api::StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(MEMBER_STATUS_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err("no answer".to_string()))
}

async fn status(connector: &Connector, endpoints: &[String], output: Output) -> anyhow::Result<()> {
    let statuses = member_statuses(connector, endpoints).await?;
    print_rows(&member_rows(statuses), output)
}

/// Each member's status, as the first of `endpoints` that answers lists them (itself alone
/// when it is in no cluster yet).
async fn member_statuses(
    connector: &Connector,
    endpoints: &[String],
) -> anyhow::Result<Vec<MemberStatus>> {
    let (channel, endpoint) = connector.connect_first(endpoints).await?;
    let endpoint = endpoint.as_str();
    let first = tokio::time::timeout(
        MEMBER_STATUS_TIMEOUT,
        ClusterServiceClient::new(channel).status(api::StatusRequest {}),
    )
    .await
    .map_err(|_| {
        anyhow::Error::new(crate::client::Failure::Unreachable(format!(
            "{endpoint}: no answer within {MEMBER_STATUS_TIMEOUT:?}"
        )))
    })?
    .map_err(|status| refused(endpoint, &status))?
    .into_inner();
    let mut statuses = Vec::new();
    for member in &first.members {
        let status = if member.node_id == first.node_id {
            Ok(first.clone())
        } else {
            let address = crate::client::dialled_like(endpoint, &member.address);
            member_status(connector, &address).await
        };
        statuses.push((member.clone(), status));
    }
    if first.members.is_empty() {
        statuses.push((
            api::Member {
                node_id: first.node_id,
                address: endpoint.to_string(),
                voter: false,
                peer_address: String::new(),
            },
            Ok(first.clone()),
        ));
    }
    Ok(statuses)
}

/// The table's rows; lag is measured against the leader's commit index, when a leader answered.
fn member_rows(statuses: Vec<MemberStatus>) -> Vec<MemberRow> {
    let leader_commit = statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .find(|s| s.role == "LEADER")
        .map(|s| s.committed_index);
    statuses
        .into_iter()
        .map(|(member, status)| match status {
            Ok(s) => MemberRow {
                id: member.node_id,
                address: member.address,
                voter: member.voter,
                role: s.role,
                term: s.term,
                leader_id: s.has_leader.then_some(s.leader_id),
                commit_index: s.committed_index,
                applied_index: s.applied_index,
                applied_seq: s.applied_seq,
                lag: leader_commit.map(|c| c.saturating_sub(s.applied_index)),
                snapshot_index: s.snapshot_index,
                purged_index: s.purged_index,
                error: None,
            },
            Err(e) => MemberRow {
                id: member.node_id,
                address: member.address,
                voter: member.voter,
                role: "UNREACHABLE".to_string(),
                term: 0,
                leader_id: None,
                commit_index: 0,
                applied_index: 0,
                applied_seq: 0,
                lag: None,
                snapshot_index: 0,
                purged_index: 0,
                error: Some(e),
            },
        })
        .collect()
}

fn print_rows(rows: &[MemberRow], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Output::Table => {
            println!(
                "{:<4} {:<22} {:<8} {:<12} {:>6} {:>10} {:>10} {:>8} {:>9}",
                "ID", "ADDRESS", "VOTER", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "SNAPSHOT"
            );
            for r in rows {
                let lag = r.lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<4} {:<22} {:<8} {:<12} {:>6} {:>10} {:>10} {:>8} {:>9}",
                    r.id,
                    r.address,
                    if r.voter { "voter" } else { "learner" },
                    r.role,
                    r.term,
                    r.commit_index,
                    r.applied_index,
                    lag,
                    r.snapshot_index
                );
                if let Some(e) = &r.error {
                    println!("     ^ {e}");
                }
            }
        }
    }
    Ok(())
}

/// A member and its status, or why it did not answer.
type MemberStatus = (api::Member, Result<api::StatusResponse, String>);
