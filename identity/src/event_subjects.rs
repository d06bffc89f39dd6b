//! What each event is about: the humans, agents, services and tools it names, and its kind's
//! name. Pure, over every event kind by one exhaustive match, so a new kind cannot be added to
//! the log without saying what it names (the audit `Query` filters read this, nothing else).
//!
//! A human is named when the event registers, changes or disables them, when they own what it
//! registers, when they are the root of a delegation, the subject of a token or the human a
//! decision was made for, and when the actor acts on their behalf. An agent is named when it is
//! acting (the actor, a principal, a link of a chain) or acted on. A service is named by its id
//! and, separately, by the audiences the event names (a token and a delegation name audiences,
//! not service ids), so a caller can match both. Tools are named by a service's tools, a
//! token's or a delegation's scopes (a scope is a tool name) and a decision's tool. A failed
//! authentication names the principal it claimed, unverified.

use warrant_proto::log::{self, EntityKind, PrincipalKind, event::Kind};

/// The ids one event names, by what they name. Borrowed from the event; may repeat an id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subjects<'a> {
    pub humans: Vec<&'a str>,
    pub agents: Vec<&'a str>,
    pub services: Vec<&'a str>,
    /// Service audiences (RFC 8707 resources), for events that name a service only so.
    pub audiences: Vec<&'a str>,
    pub tools: Vec<&'a str>,
}

impl<'a> Subjects<'a> {
    fn human(&mut self, id: &'a str) {
        push(&mut self.humans, id);
    }

    fn agent(&mut self, id: &'a str) {
        push(&mut self.agents, id);
    }

    fn service(&mut self, id: &'a str) {
        push(&mut self.services, id);
    }

    fn audience(&mut self, audience: &'a str) {
        push(&mut self.audiences, audience);
    }

    fn tool(&mut self, name: &'a str) {
        push(&mut self.tools, name);
    }

    /// A principal of `kind`, where the kind says which list it belongs to.
    fn principal(&mut self, kind: i32, id: &'a str) {
        match PrincipalKind::try_from(kind) {
            Ok(PrincipalKind::Human) => self.human(id),
            Ok(PrincipalKind::Agent) => self.agent(id),
            Ok(PrincipalKind::Service) => self.service(id),
            _ => {}
        }
    }

    /// An entity a status change names.
    fn entity(&mut self, kind: i32, id: &'a str) {
        match EntityKind::try_from(kind) {
            Ok(EntityKind::Human) => self.human(id),
            Ok(EntityKind::Agent) => self.agent(id),
            Ok(EntityKind::Service) => self.service(id),
            _ => {}
        }
    }

    fn token(&mut self, token: &'a log::TokenIssued) {
        self.principal(token.subject_kind, &token.subject);
        self.agent(&token.agent_id);
        token.actor_chain.iter().for_each(|id| self.agent(id));
        self.audience(&token.audience);
        token.scopes.iter().for_each(|scope| self.tool(scope));
    }

    fn delegation(&mut self, created: &'a log::DelegationCreated) {
        self.human(&created.root_human_id);
        self.principal(created.grantor_kind, &created.grantor_id);
        self.agent(&created.grantee_agent_id);
        created.agent_chain.iter().for_each(|id| self.agent(id));
        created.audiences.iter().for_each(|a| self.audience(a));
        created.scopes.iter().for_each(|scope| self.tool(scope));
    }

    fn decision(&mut self, decided: &'a log::AccessDecided) {
        self.principal(decided.principal_kind, &decided.principal_id);
        self.human(&decided.on_behalf_of_human_id);
        decided.agent_chain.iter().for_each(|id| self.agent(id));
        self.service(&decided.service_id);
        self.tool(&decided.tool);
    }
}

/// Adds a non-empty id once.
fn push<'a>(ids: &mut Vec<&'a str>, id: &'a str) {
    if !id.is_empty() && !ids.contains(&id) {
        ids.push(id);
    }
}

/// Everything `event` names: its actor and its kind's ids.
pub fn subjects(event: &log::Event) -> Subjects<'_> {
    let mut subjects = Subjects::default();
    if let Some(actor) = &event.actor {
        if actor.kind == PrincipalKind::Agent as i32 {
            subjects.agent(&actor.id);
        }
        actor.on_behalf_of.iter().for_each(|id| subjects.human(id));
    }
    if let Some(kind) = &event.kind {
        kind_subjects(kind, &mut subjects);
    }
    subjects
}

/// The ids one kind names. One arm per kind: adding a kind to the log fails to compile here.
fn kind_subjects<'a>(kind: &'a Kind, s: &mut Subjects<'a>) {
    match kind {
        Kind::HumanRegistered(it) => s.human(&it.human_id),
        Kind::HumanUpdated(it) => s.human(&it.human_id),
        Kind::AgentRegistered(it) => {
            s.agent(&it.agent_id);
            s.human(&it.owner_human_id);
        }
        Kind::AgentUpdated(it) => s.agent(&it.agent_id),
        Kind::ServiceRegistered(it) => {
            s.service(&it.service_id);
            s.audience(&it.audience);
            it.tools.iter().for_each(|tool| s.tool(&tool.name));
        }
        Kind::ServiceUpdated(it) => {
            s.service(&it.service_id);
            it.tools.iter().for_each(|tool| s.tool(&tool.name));
        }
        Kind::DeviceRegistered(it) => s.human(&it.owner_human_id),
        Kind::DeviceUpdated(_) => {}
        Kind::AgentDeviceBound(it) => s.agent(&it.agent_id),
        Kind::StatusChanged(it) => s.entity(it.entity, &it.id),
        Kind::CredentialsChanged(it) => s.agent(&it.agent_id),
        Kind::TokenIssued(it) => s.token(it),
        Kind::TokenRevoked(_) => {}
        Kind::SessionStarted(it) => {
            s.principal(it.principal_kind, &it.principal_id);
            if let Some(token) = &it.token {
                s.token(token);
            }
        }
        Kind::SessionEnded(_) => {}
        Kind::DelegationCreated(it) => s.delegation(it),
        Kind::DelegationRevoked(_) => {}
        Kind::AccessDecided(it) => s.decision(it),
        Kind::AuthFailuresRecorded(it) => s.principal(it.claimed_kind, &it.claimed_id),
        // Keys, operators, policies, refusals and the audit stream's progress name none of the four.
        Kind::SigningKeyPublished(_)
        | Kind::SigningKeyRetired(_)
        | Kind::SigningKeyCompromised(_)
        | Kind::OperatorRegistered(_)
        | Kind::PolicyPublished(_)
        | Kind::PolicyActivated(_)
        | Kind::ShadowPolicySet(_)
        | Kind::CommandRejected(_)
        | Kind::AuditExportProgressed(_) => {}
    }
}

/// The kind's field name in `warrant.log.v1.Event`'s `kind` oneof: how `Query` names kinds.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::HumanRegistered(_) => "human_registered",
        Kind::AgentRegistered(_) => "agent_registered",
        Kind::ServiceRegistered(_) => "service_registered",
        Kind::TokenIssued(_) => "token_issued",
        Kind::TokenRevoked(_) => "token_revoked",
        Kind::SigningKeyPublished(_) => "signing_key_published",
        Kind::HumanUpdated(_) => "human_updated",
        Kind::AgentUpdated(_) => "agent_updated",
        Kind::ServiceUpdated(_) => "service_updated",
        Kind::DeviceRegistered(_) => "device_registered",
        Kind::DeviceUpdated(_) => "device_updated",
        Kind::AgentDeviceBound(_) => "agent_device_bound",
        Kind::StatusChanged(_) => "status_changed",
        Kind::CredentialsChanged(_) => "credentials_changed",
        Kind::SessionStarted(_) => "session_started",
        Kind::SessionEnded(_) => "session_ended",
        Kind::DelegationCreated(_) => "delegation_created",
        Kind::DelegationRevoked(_) => "delegation_revoked",
        Kind::SigningKeyRetired(_) => "signing_key_retired",
        Kind::SigningKeyCompromised(_) => "signing_key_compromised",
        Kind::OperatorRegistered(_) => "operator_registered",
        Kind::PolicyPublished(_) => "policy_published",
        Kind::PolicyActivated(_) => "policy_activated",
        Kind::ShadowPolicySet(_) => "shadow_policy_set",
        Kind::AccessDecided(_) => "access_decided",
        Kind::CommandRejected(_) => "command_rejected",
        Kind::AuthFailuresRecorded(_) => "auth_failures_recorded",
        Kind::AuditExportProgressed(_) => "audit_export_progressed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: Option<log::Actor>, kind: Kind) -> log::Event {
        log::Event {
            seq: 1,
            actor,
            kind: Some(kind),
            ..Default::default()
        }
    }

    fn agent_actor(id: &str, on_behalf_of: &[&str]) -> Option<log::Actor> {
        Some(log::Actor {
            kind: PrincipalKind::Agent as i32,
            id: id.to_string(),
            on_behalf_of: on_behalf_of.iter().map(|it| it.to_string()).collect(),
        })
    }

    #[test]
    fn a_decision_names_its_principal_human_chain_service_and_tool() {
        let decided = event(
            agent_actor("node-agent", &[]),
            Kind::AccessDecided(log::AccessDecided {
                principal_kind: PrincipalKind::Agent as i32,
                principal_id: "sub".to_string(),
                on_behalf_of_human_id: "alice".to_string(),
                agent_chain: vec!["root-agent".to_string(), "sub".to_string()],
                service_id: "calendar".to_string(),
                tool: "create_event".to_string(),
                ..Default::default()
            }),
        );
        let s = subjects(&decided);
        assert_eq!(s.humans, vec!["alice"]);
        assert_eq!(s.agents, vec!["node-agent", "sub", "root-agent"]);
        assert_eq!(s.services, vec!["calendar"]);
        assert_eq!(s.tools, vec!["create_event"]);
        assert!(s.audiences.is_empty());
    }

    #[test]
    fn a_token_names_its_subject_agents_audience_and_scopes() {
        let issued = log::TokenIssued {
            subject: "alice".to_string(),
            subject_kind: PrincipalKind::Human as i32,
            agent_id: "sub".to_string(),
            actor_chain: vec!["root-agent".to_string()],
            audience: "https://calendar.example".to_string(),
            scopes: vec!["read".to_string(), "write".to_string()],
            ..Default::default()
        };
        let s_event = event(
            agent_actor("sub", &["alice"]),
            Kind::TokenIssued(issued.clone()),
        );
        let s = subjects(&s_event);
        assert_eq!(s.humans, vec!["alice"], "named once");
        assert_eq!(s.agents, vec!["sub", "root-agent"]);
        assert_eq!(s.audiences, vec!["https://calendar.example"]);
        assert_eq!(s.tools, vec!["read", "write"]);
        // A human's session names its token's audience too.
        let session_event = event(
            None,
            Kind::SessionStarted(log::SessionStarted {
                principal_kind: PrincipalKind::Human as i32,
                principal_id: "bob".to_string(),
                token: Some(log::TokenIssued {
                    subject: "bob".to_string(),
                    subject_kind: PrincipalKind::Human as i32,
                    audience: "https://warrant.example".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
        let session = subjects(&session_event);
        assert_eq!(session.humans, vec!["bob"]);
        assert_eq!(session.audiences, vec!["https://warrant.example"]);
    }

    #[test]
    fn a_delegation_names_its_root_grantor_grantee_audiences_and_scopes() {
        let s_event = event(
            None,
            Kind::DelegationCreated(log::DelegationCreated {
                root_human_id: "alice".to_string(),
                grantor_kind: PrincipalKind::Agent as i32,
                grantor_id: "root-agent".to_string(),
                grantee_agent_id: "sub".to_string(),
                agent_chain: vec!["root-agent".to_string(), "sub".to_string()],
                audiences: vec!["https://calendar.example".to_string()],
                scopes: vec!["read".to_string()],
                ..Default::default()
            }),
        );
        let s = subjects(&s_event);
        assert_eq!(s.humans, vec!["alice"]);
        assert_eq!(s.agents, vec!["root-agent", "sub"]);
        assert_eq!(s.audiences, vec!["https://calendar.example"]);
        assert_eq!(s.tools, vec!["read"]);
    }

    #[test]
    fn registrations_and_status_changes_name_the_entity_and_its_owner() {
        let agent_event = event(
            None,
            Kind::AgentRegistered(log::AgentRegistered {
                agent_id: "a1".to_string(),
                owner_human_id: "alice".to_string(),
                ..Default::default()
            }),
        );
        let agent = subjects(&agent_event);
        assert_eq!((agent.agents, agent.humans), (vec!["a1"], vec!["alice"]));
        let service_event = event(
            None,
            Kind::ServiceRegistered(log::ServiceRegistered {
                service_id: "calendar".to_string(),
                audience: "https://calendar.example".to_string(),
                tools: vec![log::Tool {
                    name: "read".to_string(),
                    description: String::new(),
                }],
            }),
        );
        let service = subjects(&service_event);
        assert_eq!(service.services, vec!["calendar"]);
        assert_eq!(service.audiences, vec!["https://calendar.example"]);
        assert_eq!(service.tools, vec!["read"]);
        for (entity, human, agent, service) in [
            (EntityKind::Human, 1, 0, 0),
            (EntityKind::Agent, 0, 1, 0),
            (EntityKind::Service, 0, 0, 1),
            (EntityKind::Device, 0, 0, 0),
            (EntityKind::Operator, 0, 0, 0),
        ] {
            let s_event = event(
                None,
                Kind::StatusChanged(log::StatusChanged {
                    entity: entity as i32,
                    id: "x".to_string(),
                    ..Default::default()
                }),
            );
            let s = subjects(&s_event);
            assert_eq!(
                (s.humans.len(), s.agents.len(), s.services.len()),
                (human, agent, service),
                "{entity:?}"
            );
        }
    }

    #[test]
    fn a_failed_authentication_names_the_principal_it_claimed() {
        let s_event = event(
            None,
            Kind::AuthFailuresRecorded(log::AuthFailures {
                claimed_kind: PrincipalKind::Agent as i32,
                claimed_id: "a1".to_string(),
                ..Default::default()
            }),
        );
        let s = subjects(&s_event);
        assert_eq!(s.agents, vec!["a1"]);
        // Keys and refusals name nobody; empty ids are never names.
        let none_event = event(None, Kind::CommandRejected(log::CommandRejected::default()));
        let none = subjects(&none_event);
        assert_eq!(none, Subjects::default());
        let empty_event = event(None, Kind::AgentRegistered(log::AgentRegistered::default()));
        let empty = subjects(&empty_event);
        assert_eq!(empty, Subjects::default());
    }

    #[test]
    fn kind_names_are_the_oneof_field_names() {
        assert_eq!(
            kind_name(&Kind::AccessDecided(Default::default())),
            "access_decided"
        );
        assert_eq!(
            kind_name(&Kind::AuthFailuresRecorded(Default::default())),
            "auth_failures_recorded"
        );
        // Every name against the descriptor: `warrant-api`'s kind table test.
    }
}
