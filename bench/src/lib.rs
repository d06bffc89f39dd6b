//! Shared fixtures for Warrant's benchmarks.
//!
//! Results go in `BENCHMARKS.md` together with the machine and the anchor measured in the same
//! run. These are benchmarks, never tests: nothing here asserts a speed.
//!
//! The three-node cluster benchmark (`cluster-bench`, issue 13):
//! - [`load`] and [`scenarios`]: the load generator and the requests it drives; [`etcd`]: the
//!   etcd client stubs for the anchor.
//! - [`procs`]: the warrant and etcd processes; [`anchors`]: in-process and disk anchors;
//!   [`failover`]: leader SIGKILL under writes.
//! - [`plan`]: what each mode runs; [`suite`]: one repeat of it; [`report`]: JSON, plots and
//!   the BENCHMARKS.md section.
//!
//! The auditor's log benchmark (`audit-bench`, `audit-fixture`, issue 11): [`audit`]. Unlike
//! the cluster benchmark it runs in process, on a state machine opened through
//! `warrant_raft::storage`.

pub mod anchors;
pub mod audit;
pub mod etcd;
pub mod failover;
pub mod load;
pub mod plan;
pub mod procs;
pub mod report;
pub mod scenarios;
pub mod suite;

use warrant_identity::{
    InMemoryState, apply_batch,
    fixtures::{actor, command_with_key},
};
use warrant_proto::log::{self, command::Kind};

pub const HUMAN: &str = "alice";
pub const AGENT: &str = "alice-assistant";
pub const AUDIENCE: &str = "https://calendar.example/mcp";
pub const KEY_ID: &str = "bench-key";

/// A command of `actor_kind` `actor_id` told apart by `key` alone: benchmarks send no retries.
fn command(
    actor_kind: log::PrincipalKind,
    actor_id: &str,
    key: String,
    kind: Kind,
) -> log::Command {
    command_with_key(actor(actor_kind, actor_id), kind, key, vec![7; 32])
}

/// A state holding one human, one agent, one service and one signing key.
pub fn seeded_state() -> InMemoryState {
    let admin =
        |key: &str, kind| command(log::PrincipalKind::Admin, "admin", key.to_string(), kind);
    let batch = log::Batch {
        time_unix_ms: 1_700_000_000_000,
        commands: vec![
            admin(
                "h",
                Kind::RegisterHuman(log::RegisterHuman {
                    human_id: HUMAN.into(),
                    display_name: "Alice".into(),
                    email: String::new(),
                    ..Default::default()
                }),
            ),
            admin(
                "a",
                Kind::RegisterAgent(log::RegisterAgent {
                    agent_id: AGENT.into(),
                    owner_human_id: HUMAN.into(),
                    kind: "assistant".into(),
                    description: String::new(),
                    credentials: vec![],
                }),
            ),
            admin(
                "s",
                Kind::RegisterService(log::RegisterService {
                    service_id: "calendar".into(),
                    audience: AUDIENCE.into(),
                    tools: vec![log::Tool {
                        name: "read_events".into(),
                        description: String::new(),
                    }],
                }),
            ),
            admin(
                "k",
                Kind::PublishSigningKey(log::PublishSigningKey {
                    key_id: KEY_ID.into(),
                    node_id: 1,
                    algorithm: log::SigningAlgorithm::Ed25519 as i32,
                    public_key: vec![1; 32],
                }),
            ),
        ],
    };
    let mut state = InMemoryState::new();
    let applied = apply_batch(&state, &batch, 1).expect("seed batch applies");
    state.apply_writes(&applied.writes);
    state
}

/// A batch of `n` token issuances with jtis starting at `first`.
pub fn issue_batch(first: u64, n: u64) -> log::Batch {
    let commands = (first..first + n)
        .map(|i| {
            command(
                log::PrincipalKind::Agent,
                AGENT,
                format!("issue-{i}"),
                Kind::IssueToken(log::IssueToken {
                    jti: format!("jti-{i}"),
                    agent_id: AGENT.into(),
                    audience: AUDIENCE.into(),
                    scopes: vec!["read_events".into()],
                    ttl_seconds: 600,
                    key_id: KEY_ID.into(),
                    ..Default::default()
                }),
            )
        })
        .collect();
    log::Batch {
        time_unix_ms: 1_700_000_001_000,
        commands,
    }
}

/// The agent at `depth` (1-based) of the benchmark delegation chain.
pub fn chain_agent(depth: u32) -> String {
    format!("agent-{depth}")
}

/// The delegation granting `chain_agent(depth)` its rights.
pub fn chain_delegation(depth: u32) -> String {
    format!("delegation-{depth}")
}

/// [`seeded_state`] plus a delegation chain `alice → agent-1 → … → agent-{depth}`, every link
/// granting `read_events` on the calendar until far in the future.
pub fn chained_state(depth: u32) -> InMemoryState {
    let mut state = seeded_state();
    let admin = |key: String, kind| command(log::PrincipalKind::Admin, "admin", key, kind);
    let mut commands = Vec::new();
    for level in 1..=depth {
        commands.push(admin(
            format!("agent-{level}"),
            Kind::RegisterAgent(log::RegisterAgent {
                agent_id: chain_agent(level),
                owner_human_id: HUMAN.into(),
                kind: "assistant".into(),
                ..Default::default()
            }),
        ));
    }
    for level in 1..=depth {
        let (actor_kind, actor_id, parent) = if level == 1 {
            (log::PrincipalKind::Human, HUMAN.to_string(), String::new())
        } else {
            (
                log::PrincipalKind::Agent,
                chain_agent(level - 1),
                chain_delegation(level - 1),
            )
        };
        commands.push(command(
            actor_kind,
            &actor_id,
            format!("grant-{level}"),
            Kind::CreateDelegation(log::CreateDelegation {
                delegation_id: chain_delegation(level),
                parent_delegation_id: parent,
                grantee_agent_id: chain_agent(level),
                scopes: vec!["read_events".into()],
                audiences: vec![AUDIENCE.into()],
                task: "bench".into(),
                expires_at_unix_s: 1_700_000_000 + 86_400,
                max_depth: warrant_identity::limits::DELEGATION_DEPTH_MAX,
                grantor_human_id: String::new(),
                budget: None,
            }),
        ));
    }
    let batch = log::Batch {
        time_unix_ms: 1_700_000_000_500,
        commands,
    };
    let applied = apply_batch(&state, &batch, 2).expect("chain batch applies");
    for outcome in &applied.outcomes {
        assert!(
            matches!(outcome.result, Some(log::outcome::Result::Accepted(_))),
            "chain setup rejected: {outcome:?}"
        );
    }
    state.apply_writes(&applied.writes);
    state
}

/// One issuance by `chain_agent(depth)` for alice under its delegation.
pub fn delegated_issue_batch(depth: u32, jti: &str) -> log::Batch {
    log::Batch {
        time_unix_ms: 1_700_000_001_000,
        commands: vec![command(
            log::PrincipalKind::Agent,
            &chain_agent(depth),
            format!("issue-{jti}"),
            Kind::IssueToken(log::IssueToken {
                jti: jti.into(),
                agent_id: chain_agent(depth),
                audience: AUDIENCE.into(),
                scopes: vec!["read_events".into()],
                ttl_seconds: 600,
                key_id: KEY_ID.into(),
                delegation_id: chain_delegation(depth),
                ..Default::default()
            }),
        )],
    }
}
