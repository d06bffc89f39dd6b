//! `warrant demo`: a three-node cluster on loopback in a temporary directory, and a scripted
//! walk through the API as a client would make it: register on one node, issue on another,
//! verify on the third, revoke, verify again, and read the audit trail.

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

/// Attempts at finding a run of free loopback ports.
const PORT_ATTEMPTS_MAX: usize = 20;

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("warrant-demo-{}", std::process::id()));
    let admin_token = format!("demo-{}", hex::encode(rand::random::<[u8; 16]>()));
    let base_port = free_port_run(2 * LOCAL_NODES as usize)?;
    println!(
        "== starting a three-node cluster on 127.0.0.1:{base_port}.. (logs in {})",
        dir.display()
    );
    let cluster = LocalCluster::start(&dir, base_port, &admin_token).await?;
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let result = walk_through(&addrs, &admin_token).await;
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

async fn walk_through(addrs: &[String], admin_token: &str) -> anyhow::Result<()> {
    let mut channels = Vec::new();
    for addr in addrs {
        channels.push(crate::client::connect(addr).await?);
    }
    let [one, two, three] = channels.as_slice() else {
        anyhow::bail!("the demo needs three nodes");
    };
    let leader = api_status(one.clone()).await?.leader_id;
    println!(
        "== nodes 1, 2, 3 at {}; node {leader} leads",
        addrs.join(", ")
    );
    let admin = format!("Bearer {admin_token}");
    // Registration on node 1, issuing on node 2, verification on node 3: any node serves any
    // request, and a follower forwards writes to the leader.
    let mut identity = IdentityServiceClient::new(one.clone());
    let mut tokens = TokenServiceClient::new(two.clone());
    let mut verifier = TokenServiceClient::new(three.clone());
    let mut audit = AuditServiceClient::new(three.clone());

    let human = identity
        .register_human(authed(
            &admin,
            api::RegisterHumanRequest {
                human_id: "alice".into(),
                display_name: "Alice".into(),
                email: "alice@example.com".into(),
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
            &admin,
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
    let service = identity
        .register_service(authed(
            &admin,
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

    let verify = |token: String| api::VerifyRequest {
        token,
        audience: "https://calendar.example/mcp".into(),
        read: Some(ReadOptions {
            consistency: Consistency::Linearizable as i32,
            at_least_seq: 0,
        }),
    };
    let verified = verifier
        .verify(authed(&admin, verify(issued.access_token.clone())))
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
            &admin,
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
        .verify(authed(&admin, verify(issued.access_token)))
        .await?
        .into_inner();
    let reason = api::TokenInvalidReason::try_from(verified.reason)
        .map(|r| r.as_str_name())
        .unwrap_or("?");
    println!(
        "node 3: verified again     active={} reason={reason} (LINEARIZABLE)",
        verified.active
    );
    anyhow::ensure!(!verified.active, "a revoked token still verified");

    let events = audit
        .list_events(authed(
            &admin,
            api::ListEventsRequest {
                from_seq: 1,
                limit: 100,
                read: Some(ReadOptions {
                    consistency: Consistency::AtLeast as i32,
                    at_least_seq: revoked.seq,
                }),
            },
        ))
        .await?
        .into_inner();
    println!("node 3: audit trail ({} events):", events.events.len());
    for event in &events.events {
        let what = match &event.kind {
            Some(Kind::HumanRegistered(e)) => format!("HumanRegistered {}", e.human_id),
            Some(Kind::AgentRegistered(e)) => {
                format!("AgentRegistered {} owner={}", e.agent_id, e.owner_human_id)
            }
            Some(Kind::ServiceRegistered(e)) => {
                format!("ServiceRegistered {} aud={}", e.service_id, e.audience)
            }
            Some(Kind::TokenIssued(e)) => format!(
                "TokenIssued jti={} sub={} scopes={:?}",
                e.jti, e.subject, e.scopes
            ),
            Some(Kind::TokenRevoked(e)) => {
                format!("TokenRevoked jti={} reason={}", e.jti, e.reason)
            }
            Some(Kind::SigningKeyPublished(e)) => {
                format!("SigningKeyPublished kid={} node={}", e.key_id, e.node_id)
            }
            None => "?".to_string(),
        };
        let actor = event.actor.as_ref().map(|a| a.id.as_str()).unwrap_or("?");
        println!(
            "  #{:<3} log {:<4} by {:<16} {what}",
            event.seq, event.log_index, actor
        );
    }
    Ok(())
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
