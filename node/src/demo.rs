//! `warrant demo`: a three-node cluster on loopback in a temporary directory, and a scripted
//! walk through the API as a client would make it: register on one node, issue on another,
//! verify on the third, revoke, verify again, a delegation chain whose tool calls are decided
//! (and narrowed by a policy) with every decision a receipt, read the audit trail, and prove it:
//! a checkpoint signed by every node, an inclusion proof checked by the demo, and what an agent
//! could do before the revocation and after.

use std::net::TcpListener;

use anyhow::Context as _;
use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use warrant_proto::{
    api::{
        self, Consistency, ReadOptions, audit_service_client::AuditServiceClient,
        identity_service_client::IdentityServiceClient, token_service_client::TokenServiceClient,
    },
    log::event::Kind,
};

use crate::local_cluster::{LOCAL_NODES, LocalCluster};

mod access;
mod proofs;

/// Attempts at finding a run of free loopback ports.
const PORT_ATTEMPTS_MAX: usize = 20;

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("warrant-demo-{}", std::process::id()));
    let admin_token = format!("demo-{}", hex::encode(rand::random::<[u8; 16]>()));
    let base_port = free_port_run(3 * LOCAL_NODES as usize)?;
    println!(
        "== starting a three-node cluster on 127.0.0.1:{base_port}.. (logs in {})",
        dir.display()
    );
    let cluster = LocalCluster::start(&dir, base_port, &admin_token).await?;
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let result = walk_through(&cluster.connector, &addrs, &admin_token).await;
    println!("== stopping the cluster");
    cluster.stop().await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The first of `len` consecutive loopback ports that were all free a moment ago.
pub fn free_port_run(len: usize) -> anyhow::Result<u16> {
    for _ in 0..PORT_ATTEMPTS_MAX {
        let base = 20_000 + rand::random::<u16>() % 30_000;
        let all_free = (0..len).all(|i| {
            u16::try_from(i)
                .ok()
                .and_then(|i| base.checked_add(i))
                .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if all_free {
            return Ok(base);
        }
    }
    anyhow::bail!("no run of {len} free loopback ports found in {PORT_ATTEMPTS_MAX} attempts")
}

async fn walk_through(
    connector: &crate::client::Connector,
    addrs: &[String],
    admin_token: &str,
) -> anyhow::Result<()> {
    let mut channels = Vec::new();
    for addr in addrs {
        channels.push(connector.connect(addr).await?);
    }
    let [one, two, three] = channels.as_slice() else {
        anyhow::bail!("the demo needs three nodes");
    };
    let leader = api_status(one.clone()).await?.leader_id;
    println!(
        "== nodes 1, 2, 3 at {} (TLS; peers on mutual TLS); node {leader} leads",
        addrs.join(", ")
    );
    let admin = format!("Bearer {admin_token}");
    // Registration on node 1, issuing on node 2, verification on node 3: any node serves any
    // request, and a follower forwards writes to the leader.
    let registered = register_alice(one, &admin).await?;
    issue_verify_revoke(two, three, &admin, &registered.agent_secret).await?;
    let (last_seq, root_id) =
        delegation_chain(one, two, three, &admin, registered.password).await?;
    print_audit_trail(three, &admin, last_seq).await?;
    proofs::prove([one, two, three], &admin, &root_id).await
}

/// What `register_alice` registered that later steps log in with.
struct Registered {
    /// Alice's local password.
    password: String,
    /// The client secret of her agent, alice-assistant.
    agent_secret: String,
}

/// Node 1 registers human alice, her agent alice-assistant and the calendar service.
async fn register_alice(one: &Channel, admin: &str) -> anyhow::Result<Registered> {
    let mut identity = IdentityServiceClient::new(one.clone());
    // A local password: the demo cluster is a development cluster. Production humans log in
    // with an id_token from an upstream issuer.
    let password = hex::encode(rand::random::<[u8; 16]>());
    let human = identity
        .register_human(authed(
            admin,
            api::RegisterHumanRequest {
                human_id: "alice".into(),
                display_name: "Alice".into(),
                email: "alice@example.com".into(),
                password: password.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 1: registered human   alice                      (seq {})",
        human.seq
    );
    let secret = hex::encode(rand::random::<[u8; 24]>());
    let agent = identity
        .register_agent(authed(
            admin,
            api::RegisterAgentRequest {
                agent_id: "alice-assistant".into(),
                owner_human_id: "alice".into(),
                kind: "assistant".into(),
                description: "Alice's scheduling agent".into(),
                client_secret: secret.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 1: registered agent   alice-assistant (owner alice) (seq {})",
        agent.seq
    );
    register_calendar(&mut identity, admin).await?;
    Ok(Registered {
        password,
        agent_secret: secret,
    })
}

async fn register_calendar(
    identity: &mut IdentityServiceClient<Channel>,
    admin: &str,
) -> anyhow::Result<()> {
    let service = identity
        .register_service(authed(
            admin,
            api::RegisterServiceRequest {
                service_id: "calendar".into(),
                audience: "https://calendar.example/mcp".into(),
                tools: vec![
                    api::Tool {
                        name: "read_events".into(),
                        description: "List events".into(),
                    },
                    api::Tool {
                        name: "create_event".into(),
                        description: "Create an event".into(),
                    },
                ],
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 1: registered service calendar (audience https://calendar.example/mcp) (seq {})",
        service.seq
    );
    Ok(())
}

/// Node 2 issues alice-assistant a token, node 3 verifies it, node 2 revokes it, and node 3 no
/// longer accepts it.
async fn issue_verify_revoke(
    two: &Channel,
    three: &Channel,
    admin: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let mut tokens = TokenServiceClient::new(two.clone());
    let mut verifier = TokenServiceClient::new(three.clone());
    let agent_credential = format!(
        "Basic {}",
        STANDARD.encode(format!("alice-assistant:{secret}"))
    );
    let issued = tokens
        .issue(authed(
            &agent_credential,
            api::IssueRequest {
                audience: "https://calendar.example/mcp".into(),
                scopes: vec!["read_events".into()],
                ttl_seconds: 600,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 2: issued token       jti {} (seq {}, expires in {} s)",
        issued.jti, issued.seq, issued.expires_in
    );
    let verified = verifier
        .verify(authed(admin, calendar_verify(issued.access_token.clone())))
        .await?
        .into_inner();
    println!(
        "node 3: verified           active={} sub={} agent={} scopes={:?} (LINEARIZABLE)",
        verified.active, verified.subject, verified.agent_id, verified.scopes
    );
    anyhow::ensure!(
        verified.active,
        "a fresh token did not verify: {}",
        verified.reason_message
    );
    let revoked = tokens
        .revoke(authed(
            admin,
            api::RevokeRequest {
                jti: issued.jti.clone(),
                reason: "demo".into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 2: revoked            jti {} (seq {})",
        issued.jti, revoked.seq
    );
    let verified = verifier
        .verify(authed(admin, calendar_verify(issued.access_token)))
        .await?
        .into_inner();
    println!(
        "node 3: verified again     active={} reason={} (LINEARIZABLE)",
        verified.active,
        reason_name(verified.reason)
    );
    anyhow::ensure!(!verified.active, "a revoked token still verified");
    Ok(())
}

/// Node 3 lists the audit trail, reading at least up to `last_seq`.
async fn print_audit_trail(three: &Channel, admin: &str, last_seq: u64) -> anyhow::Result<()> {
    let events = AuditServiceClient::new(three.clone())
        .list_events(authed(
            admin,
            api::ListEventsRequest {
                from_seq: 1,
                limit: 100,
                read: Some(ReadOptions {
                    consistency: Consistency::AtLeast as i32,
                    at_least_seq: last_seq,
                    as_of: None,
                }),
            },
        ))
        .await?
        .into_inner();
    println!("node 3: audit trail ({} events):", events.events.len());
    for event in &events.events {
        let what = describe(event);
        let actor = event.actor.as_ref().map(|a| a.id.as_str()).unwrap_or("?");
        println!(
            "  #{:<3} log {:<4} by {:<16} {what}",
            event.seq, event.log_index, actor
        );
    }
    Ok(())
}

/// Human alice logs in and delegates to her planner agent, which delegates a narrower part to a
/// researcher sub-agent; the researcher's token carries alice as `sub` and the act chain
/// researcher → planner. Revoking alice's grant stops the researcher's token on every node.
/// Returns the last seq written and alice's root delegation.
async fn delegation_chain(
    one: &Channel,
    two: &Channel,
    three: &Channel,
    admin: &str,
    password: String,
) -> anyhow::Result<(u64, String)> {
    let secret = register_team(one, admin).await?;
    let session = api::session_service_client::SessionServiceClient::new(one.clone())
        .start_session(api::StartSessionRequest {
            human_id: "alice".into(),
            password,
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "node 1: alice logged in            session {} (seq {})",
        session.session_id, session.seq
    );
    let as_alice = format!("Bearer {}", session.access_token);
    let agent = |id: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let chain = delegate_down(one, two, &as_alice, &agent).await?;
    let issued = TokenServiceClient::new(two.clone())
        .issue(authed(
            &agent("researcher"),
            api::IssueRequest {
                audience: "https://calendar.example/mcp".into(),
                scopes: vec!["read_events".into()],
                delegation_id: chain.child_id.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let last_seq = verify_then_revoke(one, three, admin, &as_alice, &chain.root_id, issued).await?;
    Ok((last_seq, chain.root_id))
}

/// Registers alice's planner and researcher agents, both with the returned client secret.
async fn register_team(one: &Channel, admin: &str) -> anyhow::Result<String> {
    let mut identity = IdentityServiceClient::new(one.clone());
    let secret = hex::encode(rand::random::<[u8; 24]>());
    for (agent_id, description) in [
        ("planner", "plans the team offsite"),
        ("researcher", "finds free slots"),
    ] {
        identity
            .register_agent(authed(
                admin,
                api::RegisterAgentRequest {
                    agent_id: agent_id.into(),
                    owner_human_id: "alice".into(),
                    kind: "assistant".into(),
                    description: description.into(),
                    client_secret: secret.clone(),
                    ..Default::default()
                },
            ))
            .await?;
    }
    Ok(secret)
}

/// The delegations of the chain: alice's grant to the planner and the planner's to the
/// researcher.
struct Chain {
    root_id: String,
    child_id: String,
}

/// Alice delegates to the planner (node 1), the planner to the researcher (node 2), and the
/// researcher's attempt to delegate back to the planner is refused as a cycle.
async fn delegate_down(
    one: &Channel,
    two: &Channel,
    as_alice: &str,
    agent: &impl Fn(&str) -> String,
) -> anyhow::Result<Chain> {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut delegations = api::delegation_service_client::DelegationServiceClient::new(one.clone());
    let root = delegations
        .create_delegation(authed(
            as_alice,
            api::CreateDelegationRequest {
                grantee_agent_id: "planner".into(),
                scopes: vec!["read_events".into(), "create_event".into()],
                audiences: vec!["https://calendar.example/mcp".into()],
                task: "plan the team offsite".into(),
                expires_at_unix_s: expires + 3600,
                max_depth: 2,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let root_id = root.delegation.map(|d| d.delegation_id).unwrap_or_default();
    println!(
        "node 1: alice -> planner           delegation {root_id} (read_events create_event, 1 h, depth 2)"
    );
    let mut delegations_two =
        api::delegation_service_client::DelegationServiceClient::new(two.clone());
    let child = delegations_two
        .create_delegation(authed(
            &agent("planner"),
            api::CreateDelegationRequest {
                parent_delegation_id: root_id.clone(),
                grantee_agent_id: "researcher".into(),
                scopes: vec!["read_events".into()],
                audiences: vec!["https://calendar.example/mcp".into()],
                expires_at_unix_s: expires + 1800,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let child_id = child
        .delegation
        .map(|d| d.delegation_id)
        .unwrap_or_default();
    println!("node 2: planner -> researcher      delegation {child_id} (read_events only, 30 min)");
    let widened = delegations_two
        .create_delegation(authed(
            &agent("researcher"),
            api::CreateDelegationRequest {
                parent_delegation_id: child_id.clone(),
                grantee_agent_id: "planner".into(),
                scopes: vec!["read_events".into()],
                audiences: vec!["https://calendar.example/mcp".into()],
                expires_at_unix_s: expires + 600,
                ..Default::default()
            },
        ))
        .await;
    let refused = widened
        .err()
        .map(|status| crate::client::error_info(&status).0)
        .unwrap_or_else(|| "accepted?!".to_string());
    println!("node 2: researcher -> planner      refused: {refused} (a cycle)");
    Ok(Chain { root_id, child_id })
}

/// Node 3 verifies the researcher's token, alice revokes her grant on node 1, and node 3 no
/// longer accepts the token; the calendar's calls are decided before and after. Returns the last
/// receipt's seq.
async fn verify_then_revoke(
    one: &Channel,
    three: &Channel,
    admin: &str,
    as_alice: &str,
    root_id: &str,
    issued: api::IssueResponse,
) -> anyhow::Result<u64> {
    let mut verifier = TokenServiceClient::new(three.clone());
    let verify = || calendar_verify(issued.access_token.clone());
    let verified = verifier.verify(authed(admin, verify())).await?.into_inner();
    println!(
        "node 3: researcher's token         active={} sub={} act={} task={:?}",
        verified.active,
        verified.subject,
        verified.actor_chain.join(" -> "),
        verified.task
    );
    anyhow::ensure!(
        verified.active,
        "the delegated token did not verify: {}",
        verified.reason_message
    );
    access::decide_calls(one, three, admin, &issued.access_token).await?;
    let revoked = TokenServiceClient::new(one.clone())
        .revoke(authed(
            as_alice,
            api::RevokeRequest {
                delegation_id: root_id.to_string(),
                reason: "offsite cancelled".into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 1: alice revoked              delegation {root_id} (seq {})",
        revoked.seq
    );
    let verified = verifier.verify(authed(admin, verify())).await?.into_inner();
    println!(
        "node 3: researcher's token         active={} reason={} (LINEARIZABLE)",
        verified.active,
        reason_name(verified.reason)
    );
    anyhow::ensure!(
        !verified.active,
        "a token under a revoked delegation still verified"
    );
    access::decide_after_revoke(three, admin, &issued.access_token).await
}

/// A linearizable check of `token` for the calendar's audience.
fn calendar_verify(token: String) -> api::VerifyRequest {
    api::VerifyRequest {
        token,
        audience: "https://calendar.example/mcp".into(),
        read: Some(ReadOptions {
            consistency: Consistency::Linearizable as i32,
            at_least_seq: 0,
            as_of: None,
        }),
    }
}

/// The name of a `TokenInvalidReason`, or `?` for an unknown one.
fn reason_name(reason: i32) -> &'static str {
    api::TokenInvalidReason::try_from(reason)
        .map(|r| r.as_str_name())
        .unwrap_or("?")
}

/// One line about a `TokenIssued` event: the scopes of an agent's own token, the chain and
/// delegation of a delegated one.
fn describe_token_issued(e: &warrant_proto::log::TokenIssued) -> String {
    if e.actor_chain.is_empty() {
        format!(
            "TokenIssued jti={} sub={} scopes={:?}",
            e.jti, e.subject, e.scopes
        )
    } else {
        format!(
            "TokenIssued jti={} sub={} act={} delegation={}",
            e.jti,
            e.subject,
            e.actor_chain.join("->"),
            e.delegation_id
        )
    }
}

/// One line about an audit event.
pub fn describe(event: &warrant_proto::log::Event) -> String {
    match &event.kind {
        Some(Kind::HumanRegistered(e)) => format!("HumanRegistered {}", e.human_id),
        Some(Kind::AgentRegistered(e)) => {
            format!("AgentRegistered {} owner={}", e.agent_id, e.owner_human_id)
        }
        Some(Kind::ServiceRegistered(e)) => {
            format!("ServiceRegistered {} aud={}", e.service_id, e.audience)
        }
        Some(Kind::TokenIssued(e)) => describe_token_issued(e),
        Some(Kind::TokenRevoked(e)) => format!("TokenRevoked jti={} reason={}", e.jti, e.reason),
        Some(Kind::SigningKeyPublished(e)) => {
            format!("SigningKeyPublished kid={} node={}", e.key_id, e.node_id)
        }
        Some(Kind::SigningKeyRetired(e)) => {
            format!("SigningKeyRetired kid={} node={}", e.key_id, e.node_id)
        }
        Some(Kind::OperatorRegistered(e)) => format!(
            "OperatorRegistered {} role={}",
            e.operator_id,
            warrant_proto::log::OperatorRole::try_from(e.role)
                .map(|r| r.as_str_name())
                .unwrap_or("unknown")
        ),
        Some(Kind::SigningKeyCompromised(e)) => {
            format!("SigningKeyCompromised kid={} node={}", e.key_id, e.node_id)
        }
        Some(Kind::HumanUpdated(e)) => format!("HumanUpdated {}", e.human_id),
        Some(Kind::AgentUpdated(e)) => format!("AgentUpdated {}", e.agent_id),
        Some(Kind::ServiceUpdated(e)) => format!("ServiceUpdated {}", e.service_id),
        Some(Kind::DeviceRegistered(e)) => {
            format!(
                "DeviceRegistered {} owner={}",
                e.device_id, e.owner_human_id
            )
        }
        Some(Kind::DeviceUpdated(e)) => format!("DeviceUpdated {}", e.device_id),
        Some(Kind::AgentDeviceBound(e)) => {
            format!("AgentDeviceBound {} device={}", e.agent_id, e.device_id)
        }
        Some(Kind::StatusChanged(e)) => format!(
            "StatusChanged {} {}",
            e.id,
            if e.disabled { "disabled" } else { "enabled" }
        ),
        Some(Kind::CredentialsChanged(e)) => format!(
            "CredentialsChanged {} +{:?} -{:?}",
            e.agent_id, e.added_ids, e.removed_ids
        ),
        Some(Kind::SessionStarted(e)) => {
            format!("SessionStarted {} for {}", e.session_id, e.principal_id)
        }
        Some(Kind::SessionEnded(e)) => format!("SessionEnded {}", e.session_id),
        Some(Kind::AuditExportProgressed(e)) => format!(
            "AuditExportProgressed through {} by node {}",
            e.through_seq, e.node_id
        ),
        Some(
            kind @ (Kind::PolicyPublished(_)
            | Kind::PolicyActivated(_)
            | Kind::ShadowPolicySet(_)
            | Kind::AccessDecided(_)
            | Kind::CommandRejected(_)
            | Kind::AuthFailuresRecorded(_)),
        ) => access::describe(kind),
        Some(Kind::DelegationCreated(e)) => format!(
            "DelegationCreated {} {} -> {} scopes={:?}",
            e.delegation_id, e.grantor_id, e.grantee_agent_id, e.scopes
        ),
        Some(Kind::DelegationRevoked(e)) => {
            format!("DelegationRevoked {} reason={}", e.delegation_id, e.reason)
        }
        None => "?".to_string(),
    }
}

fn authed<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(authorization) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn api_status(channel: Channel) -> anyhow::Result<api::StatusResponse> {
    Ok(
        api::cluster_service_client::ClusterServiceClient::new(channel)
            .status(api::StatusRequest {})
            .await
            .context("cluster status")?
            .into_inner(),
    )
}
