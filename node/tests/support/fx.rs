//! The world the access-decision tests share (`access.rs`, `authzen.rs`): alice, her assistant
//! agent, the `fx-mcp` service with the tools `convert` and `transfer`, and a gateway agent, the
//! MCP server's own credential, that asks Authorize about the assistant's calls.

use std::time::Duration;

use tonic::{Status, transport::Channel};
use warrant_proto::{
    api::{
        self, AuditMode, authz_service_client::AuthzServiceClient,
        delegation_service_client::DelegationServiceClient,
        policy_service_client::PolicyServiceClient, session_service_client::SessionServiceClient,
    },
    log::{self, event::Kind},
};

use super::{AgentCredential, Node, READY_POLL_INTERVAL, now_unix_s, with_auth};

pub const FX_SERVICE: &str = "fx-mcp";
pub const FX_AUDIENCE: &str = "https://fx.example/mcp";
pub const CONVERT: &str = "convert";
pub const TRANSFER: &str = "transfer";
pub const FX_TOOLS: &[&str] = &[CONVERT, TRANSFER];
pub const ALICE: &str = "alice";
pub const ASSISTANT: &str = "alice-assistant";
/// The MCP server's credential: the caller of Authorize, whom receipts name as `requested_by`.
pub const GATEWAY: &str = "fx-gateway";
/// The human who owns the gateway agent.
pub const OPS: &str = "fx-ops";
pub const TASK: &str = "quarterly FX report";
/// Lifetime of the delegations the tests make: longer than any test.
pub const GRANT_TTL_S: u64 = 3600;
/// How long an ASYNC receipt, or a node's aggregate, may take to reach the log.
pub const RECORD_WAIT_MAX: Duration = Duration::from_secs(30);

/// The registered principals, and alice's session token.
pub struct FxWorld {
    pub alice_token: String,
    pub assistant: AgentCredential,
    pub gateway: AgentCredential,
}

impl FxWorld {
    /// Registers fx-mcp, alice (with a password, then logs her in), her assistant, and the
    /// gateway agent (owned by fx-ops), all through `node`. The cluster must allow local
    /// passwords.
    pub async fn register(node: &Node) -> FxWorld {
        node.register_service(FX_SERVICE, FX_AUDIENCE, FX_TOOLS)
            .await;
        let password = hex::encode(rand::random::<[u8; 16]>());
        node.identity()
            .register_human(node.admin(api::RegisterHumanRequest {
                human_id: ALICE.to_string(),
                display_name: "Alice".to_string(),
                email: "alice@example.com".to_string(),
                password: password.clone(),
                ..Default::default()
            }))
            .await
            .expect("RegisterHuman alice with a password");
        node.register_human(OPS).await;
        let assistant = AgentCredential::new(ASSISTANT);
        node.register_agent(&assistant.agent_id, ALICE, &assistant.secret)
            .await;
        let gateway = AgentCredential::new(GATEWAY);
        node.register_agent(&gateway.agent_id, OPS, &gateway.secret)
            .await;
        let session = SessionServiceClient::new(node.channel())
            .start_session(api::StartSessionRequest {
                human_id: ALICE.to_string(),
                password,
                ..Default::default()
            })
            .await
            .expect("alice logs in with her password")
            .into_inner();
        FxWorld {
            alice_token: session.access_token,
            assistant,
            gateway,
        }
    }

    /// `Bearer <alice's session token>`.
    pub fn alice_auth(&self) -> String {
        format!("Bearer {}", self.alice_token)
    }

    /// Alice grants her assistant `scopes` on fx-mcp for [`TASK`], with `budget`, through `node`.
    pub async fn delegate(
        &self,
        node: &Node,
        scopes: &[&str],
        budget: Option<log::CallBudget>,
    ) -> api::Delegation {
        let request = api::CreateDelegationRequest {
            grantee_agent_id: ASSISTANT.to_string(),
            scopes: strings(scopes),
            audiences: vec![FX_AUDIENCE.to_string()],
            task: TASK.to_string(),
            expires_at_unix_s: now_unix_s() + GRANT_TTL_S,
            max_depth: 2,
            budget,
            ..Default::default()
        };
        delegations(node)
            .create_delegation(with_auth(Some(&self.alice_auth()), request))
            .await
            .expect("alice delegates to her assistant")
            .into_inner()
            .delegation
            .expect("an accepted grant is returned")
    }

    /// The assistant issues a token for `scopes` on fx-mcp under `delegation_id`, through `node`.
    pub async fn issue(
        &self,
        node: &Node,
        delegation_id: &str,
        scopes: &[&str],
    ) -> api::IssueResponse {
        let request = api::IssueRequest {
            audience: FX_AUDIENCE.to_string(),
            scopes: strings(scopes),
            ttl_seconds: 600,
            delegation_id: delegation_id.to_string(),
            ..Default::default()
        };
        node.tokens()
            .issue(self.assistant.request(request))
            .await
            .expect("the assistant issues under alice's grant")
            .into_inner()
    }

    /// The gateway asks `node` to Authorize `request`.
    pub async fn authorize(
        &self,
        node: &Node,
        request: api::AuthorizeRequest,
    ) -> Result<api::AuthorizeResponse, Status> {
        authz(node.channel())
            .authorize(self.gateway.request(request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The actor receipts name as `requested_by` for the gateway's calls.
    pub fn gateway_actor(&self) -> log::Actor {
        log::Actor {
            kind: log::PrincipalKind::Agent as i32,
            id: GATEWAY.to_string(),
            on_behalf_of: vec![],
        }
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|it| it.to_string()).collect()
}

pub fn authz(channel: Channel) -> AuthzServiceClient<Channel> {
    AuthzServiceClient::new(channel)
}

pub fn policies(node: &Node) -> PolicyServiceClient<Channel> {
    PolicyServiceClient::new(node.channel())
}

pub fn delegations(node: &Node) -> DelegationServiceClient<Channel> {
    DelegationServiceClient::new(node.channel())
}

/// An Authorize request for `tool` on fx-mcp with `token`: SYNC under `key` when `audit` is
/// SYNC, else ASYNC read LINEARIZABLE.
pub fn authorize_request(
    key: &str,
    token: &str,
    tool: &str,
    attributes: Vec<log::CallerAttribute>,
    audit: AuditMode,
) -> api::AuthorizeRequest {
    api::AuthorizeRequest {
        idempotency_key: key.to_string(),
        token: token.to_string(),
        service_id: FX_SERVICE.to_string(),
        tool: tool.to_string(),
        attributes,
        read: (audit == AuditMode::Async).then(super::linearizable),
        audit: audit as i32,
    }
}

/// The caller attribute `amount` (declared LONG by the policies that read it).
pub fn amount(value: i64) -> log::CallerAttribute {
    log::CallerAttribute {
        name: "amount".to_string(),
        value: Some(log::caller_attribute::Value::LongValue(value)),
    }
}

/// The declared attribute `amount: LONG`.
pub fn amount_declared() -> log::PolicyAttribute {
    log::PolicyAttribute {
        name: "amount".to_string(),
        r#type: log::PolicyAttributeType::Long as i32,
    }
}

/// Publishes `text` (declaring `attributes`) as the admin through `node`, then activates it.
pub async fn publish_and_activate(
    node: &Node,
    text: &str,
    attributes: Vec<log::PolicyAttribute>,
) -> api::PublishPolicyResponse {
    let published = policies(node)
        .publish(node.admin(api::PublishPolicyRequest {
            text: text.to_string(),
            description: format!("published by the test through node {}", node.node_id()),
            attributes,
            ..Default::default()
        }))
        .await
        .expect("Publish a valid policy text")
        .into_inner();
    let activated = policies(node)
        .activate(node.admin(api::ActivatePolicyRequest {
            version: published.version,
            ..Default::default()
        }))
        .await
        .expect("Activate the version just published")
        .into_inner();
    assert_eq!(
        activated.active_version, published.version,
        "Activate answered another active version: {activated:?}"
    );
    published
}

/// The AccessDecided receipts among `events`: (seq, receipt), in log order.
pub fn receipts(events: &[log::Event]) -> Vec<(u64, log::AccessDecided)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            Some(Kind::AccessDecided(receipt)) => Some((event.seq, receipt.clone())),
            _ => None,
        })
        .collect()
}

/// The name of an `AccessDenyReason` number, for readable assertions.
pub fn deny_reason_name(reason: i32) -> String {
    log::AccessDenyReason::try_from(reason)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_else(|_| format!("unknown({reason})"))
}

/// The name of an `AccessDecision` number.
pub fn decision_name(decision: i32) -> String {
    log::AccessDecision::try_from(decision)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("unknown({decision})"))
}

/// Polls `node`'s events (LINEARIZABLE) until `done` holds of them, at most `wait_max`; the
/// events it held of, or a panic naming `what`.
pub async fn wait_for_events(
    node: &Node,
    wait_max: Duration,
    what: &str,
    done: impl Fn(&[log::Event]) -> bool,
) -> Vec<log::Event> {
    let deadline = tokio::time::Instant::now() + wait_max;
    loop {
        let events = node.all_events().await;
        if done(&events) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {}: {what} not in the log within {wait_max:?} ({} events)",
            node.node_id(),
            events.len()
        );
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}
