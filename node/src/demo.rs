//! `warrant demo`: a one-node cluster in a temporary directory and a scripted walk through the
//! API, as a client would make it.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use warrant_api::ApiConfig;
use warrant_proto::{
    api::{
        self, Consistency, ReadOptions, audit_service_client::AuditServiceClient,
        identity_service_client::IdentityServiceClient, token_service_client::TokenServiceClient,
    },
    log::event::Kind,
};

/// How long the demo waits for the node to become healthy.
const READY_WAIT_MAX: Duration = Duration::from_secs(60);

pub async fn run(listen_addr: SocketAddr) -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("warrant-demo-{}", std::process::id()));
    let admin_token = format!("demo-{}", hex::encode(rand::random::<[u8; 16]>()));
    let api = ApiConfig {
        node_id: 1,
        data_dir: data_dir.clone(),
        listen_addr,
        http_listen_addr: None,
        advertise_addr: listen_addr.to_string(),
        admin_token: admin_token.clone(),
        issuer: "https://warrant.local".to_string(),
        token_ttl_default_s: 900,
        clock_leeway_s: 5,
        init_single_node: true,
    };
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(warrant_api::Warrant::run(
        ApiConfig {
            advertise_addr: listen_addr.to_string(),
            ..api
        },
        async move {
            let _ = stop_rx.await;
        },
        move |warrant| {
            let _ = addr_tx.send(warrant.local_addr);
        },
    ));
    let addr = addr_rx.await.context("node failed to start")?;
    let result = walk_through(addr, &admin_token).await;
    let _ = stop_tx.send(());
    node.await.context("join node")?.context("run node")?;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn walk_through(addr: SocketAddr, admin_token: &str) -> anyhow::Result<()> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connect to node")?;
    wait_ready(channel.clone()).await?;
    println!("== Warrant demo: a one-node cluster at http://{addr}");
    let admin = format!("Bearer {admin_token}");
    let mut identity = IdentityServiceClient::new(channel.clone());
    let mut tokens = TokenServiceClient::new(channel.clone());
    let mut audit = AuditServiceClient::new(channel.clone());

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
        "registered human   alice                      (seq {})",
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
        "registered agent   alice-assistant (owner alice) (seq {})",
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
        "registered service calendar (audience https://calendar.example/mcp) (seq {})",
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
        "issued token       jti {} (seq {}, expires in {} s)",
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
    let verified = tokens
        .verify(authed(&admin, verify(issued.access_token.clone())))
        .await?
        .into_inner();
    println!(
        "verified           active={} sub={} agent={} scopes={:?}",
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
        "revoked            jti {} (seq {})",
        issued.jti, revoked.seq
    );
    let verified = tokens
        .verify(authed(&admin, verify(issued.access_token)))
        .await?
        .into_inner();
    let reason = api::TokenInvalidReason::try_from(verified.reason)
        .map(|r| r.as_str_name())
        .unwrap_or("?");
    println!(
        "verified again     active={} reason={reason}",
        verified.active
    );
    anyhow::ensure!(!verified.active, "a revoked token still verified");

    let events = audit
        .list_events(authed(
            &admin,
            api::ListEventsRequest {
                from_seq: 1,
                limit: 100,
                read: None,
            },
        ))
        .await?
        .into_inner();
    println!("audit trail ({} events):", events.events.len());
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

/// Waits, bounded, for the node's health check to report SERVING (its key is published).
async fn wait_ready(channel: Channel) -> anyhow::Result<()> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(reply) = reply
            && reply.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node not healthy within {READY_WAIT_MAX:?}"
        );
    }
}
