//! The principals the token scenarios act as, created once per run through the leader.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tonic::transport::Channel;
use warrant_proto::api::{
    self, delegation_service_client::DelegationServiceClient,
    identity_service_client::IdentityServiceClient,
};

use super::auth::{basic, bearer, with_auth};

/// The tools the fixture's service offers; tokens are issued for the first.
const TOOLS: &[&str] = &["read_events", "create_event"];
/// How long the fixture's delegations last: longer than any benchmark run.
const DELEGATION_TTL_S: u64 = 24 * 3600;
/// Random bytes in an agent's client secret.
const SECRET_BYTES: usize = 24;

/// An agent and its client secret. Not `Debug`: the secret is never printed.
#[derive(Clone)]
pub struct AgentSecret {
    pub agent_id: String,
    pub secret: String,
}

impl AgentSecret {
    fn new(agent_id: String) -> AgentSecret {
        let secret: [u8; SECRET_BYTES] = rand::random();
        let secret = secret.iter().map(|b| format!("{b:02x}")).collect();
        AgentSecret { agent_id, secret }
    }

    /// `Basic base64(agent_id:secret)`.
    pub fn authorization(&self) -> tonic::metadata::AsciiMetadataValue {
        basic(&self.agent_id, &self.secret)
    }
}

/// One run's principals: human → agent A (root grant, max depth 2) → agent B (child grant).
/// Not `Debug`: it holds secrets and the admin token.
#[derive(Clone)]
pub struct Fixture {
    pub tag: String,
    pub admin_token: String,
    pub human_id: String,
    pub service_id: String,
    pub audience: String,
    /// The scopes every scenario's token asks for (one tool of the service).
    pub scopes: Vec<String>,
    pub agent_a: AgentSecret,
    pub agent_b: AgentSecret,
    pub root_delegation_id: String,
    pub child_delegation_id: String,
}

impl Fixture {
    /// Creates through the leader, with the bootstrap admin token: a human, a service (audience +
    /// tools), agent A and agent B (each with a client secret), a root delegation human→A and a
    /// child A→B (depth 2). Ids are unique per call (a `tag` argument) so repeated runs on one
    /// cluster don't collide. `tag` must be a short id (letters, digits, '.', '_', '-').
    pub async fn create(leader: &Channel, admin_token: &str, tag: &str) -> anyhow::Result<Fixture> {
        let mut fixture = Fixture {
            tag: tag.to_string(),
            admin_token: admin_token.to_string(),
            human_id: format!("{tag}-human"),
            service_id: format!("{tag}-svc"),
            audience: format!("https://{tag}.bench.example/mcp"),
            scopes: vec![TOOLS[0].to_string()],
            agent_a: AgentSecret::new(format!("{tag}-agent-a")),
            agent_b: AgentSecret::new(format!("{tag}-agent-b")),
            root_delegation_id: String::new(),
            child_delegation_id: String::new(),
        };
        fixture.register_principals(leader).await?;
        fixture.delegate(leader).await?;
        Ok(fixture)
    }

    async fn register_principals(&self, leader: &Channel) -> anyhow::Result<()> {
        let admin = bearer(&self.admin_token)?;
        let mut identity = IdentityServiceClient::new(leader.clone());
        let human = api::RegisterHumanRequest {
            human_id: self.human_id.clone(),
            display_name: format!("Bench human {}", self.tag),
            ..Default::default()
        };
        identity
            .register_human(with_auth(&admin, human))
            .await
            .context("RegisterHuman")?;
        let service = api::RegisterServiceRequest {
            service_id: self.service_id.clone(),
            audience: self.audience.clone(),
            tools: TOOLS
                .iter()
                .map(|name| api::Tool {
                    name: name.to_string(),
                    description: format!("bench tool {name}"),
                })
                .collect(),
            ..Default::default()
        };
        identity
            .register_service(with_auth(&admin, service))
            .await
            .context("RegisterService")?;
        for agent in [&self.agent_a, &self.agent_b] {
            let request = api::RegisterAgentRequest {
                agent_id: agent.agent_id.clone(),
                owner_human_id: self.human_id.clone(),
                kind: "assistant".to_string(),
                client_secret: agent.secret.clone(),
                ..Default::default()
            };
            identity
                .register_agent(with_auth(&admin, request))
                .await
                .with_context(|| format!("RegisterAgent {}", agent.agent_id))?;
        }
        Ok(())
    }

    /// The admin grants A for the human (max depth 2); A grants B a part of it.
    async fn delegate(&mut self, leader: &Channel) -> anyhow::Result<()> {
        let mut delegations = DelegationServiceClient::new(leader.clone());
        let expires_at_unix_s = now_unix_s()? + DELEGATION_TTL_S;
        let root = api::CreateDelegationRequest {
            grantee_agent_id: self.agent_a.agent_id.clone(),
            scopes: TOOLS.iter().map(|tool| tool.to_string()).collect(),
            audiences: vec![self.audience.clone()],
            task: "bench".to_string(),
            expires_at_unix_s,
            max_depth: 2,
            grantor_human_id: self.human_id.clone(),
            ..Default::default()
        };
        let root = delegations
            .create_delegation(with_auth(&bearer(&self.admin_token)?, root))
            .await
            .context("CreateDelegation human→A")?
            .into_inner()
            .delegation
            .context("an accepted root grant is returned")?;
        let child = api::CreateDelegationRequest {
            parent_delegation_id: root.delegation_id.clone(),
            grantee_agent_id: self.agent_b.agent_id.clone(),
            scopes: self.scopes.clone(),
            audiences: vec![self.audience.clone()],
            expires_at_unix_s,
            ..Default::default()
        };
        let child = delegations
            .create_delegation(with_auth(&self.agent_a.authorization(), child))
            .await
            .context("CreateDelegation A→B")?
            .into_inner()
            .delegation
            .context("an accepted child grant is returned")?;
        anyhow::ensure!(
            child.depth == 2,
            "the child grant has depth {}",
            child.depth
        );
        self.root_delegation_id = root.delegation_id;
        self.child_delegation_id = child.delegation_id;
        Ok(())
    }
}

fn now_unix_s() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs())
}
