//! Determinism of `apply_batch`, checked on random batches.
//!
//! Goal: every replica that applies the same log reaches the same bytes, and no input makes apply
//! panic or fail. Method: generate sequences of batches (plausible commands over a small pool of
//! ids, so that many are accepted, mixed with garbage: empty, long and control-character ids,
//! unknown enum values, bad digests, mutated encodings and arbitrary bytes decoded as a batch),
//! apply them to independent replicas, and compare outcomes, events, writes and state digests
//! after every batch. Along the way, check the invariants the rest of the system relies on.

#![allow(clippy::unwrap_used)]

use proptest::{prelude::*, sample::select};
use prost::Message;
use warrant_identity::{
    AppliedBatch, InMemoryState, StateRead, WriteSet, apply_batch, limits, query, state_digest,
};
use warrant_proto::log::{
    self, Actor, Batch, Command, Credential, PrincipalKind, SigningAlgorithm,
    command::Kind as CommandKind, credential::Kind as CredentialKind,
    outcome::Result as OutcomeResult,
};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
const IDS: &[&str] = &[
    "alice", "bob", "bot", "bot2", "mail", "send", "read", "j1", "j2", "c1",
];
const AUDIENCES: &[&str] = &["https://mail", "https://docs"];
const KEY_IDS: &[&str] = &["k1", "k2"];
const SCOPES: &[&str] = &["send", "read", "write"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replicas_agree(batches in proptest::collection::vec(arb_batch(), 1..8)) {
        check_replicas_agree(batches)?;
    }
}

/// The generator is only useful if random batches get past validation often enough to reach
/// every decision: this samples it with a fixed seed and checks what the outcomes cover.
#[test]
fn generated_batches_reach_every_decision() {
    use std::collections::BTreeSet;

    use proptest::{strategy::ValueTree, test_runner::TestRunner};

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(arb_batch(), 1..8);
    let mut reached = BTreeSet::new();
    for _ in 0..256 {
        let batches = strategy.new_tree(&mut runner).unwrap().current();
        let mut state = InMemoryState::new();
        for (idx, batch) in std::iter::once(genesis()).chain(batches).enumerate() {
            let applied = apply_batch(&state, &batch, idx as u64 + 1).unwrap();
            state.apply_writes(&applied.writes);
            if idx == 0 {
                // The genesis batch is fixed; only the random batches count.
                let all_accepted = applied.events.len() == batch.commands.len();
                assert!(all_accepted, "genesis rejected: {:?}", applied.outcomes);
                continue;
            }
            for outcome in &applied.outcomes {
                let label = match &outcome.result {
                    Some(OutcomeResult::Accepted(it)) if it.replayed => "replayed".to_owned(),
                    Some(OutcomeResult::Accepted(it)) if !it.changed => "unchanged".to_owned(),
                    Some(OutcomeResult::Accepted(_)) => "changed".to_owned(),
                    Some(OutcomeResult::Rejected(it)) => log::RejectReason::try_from(it.reason)
                        .map(|reason| reason.as_str_name().to_owned())
                        .unwrap_or_default(),
                    None => "none".to_owned(),
                };
                reached.insert(label);
            }
            for event in &applied.events {
                let label = format!("{:?}", event.kind.as_ref().map(std::mem::discriminant));
                reached.insert(label);
            }
        }
    }
    let decisions = [
        "changed",
        "replayed",
        "unchanged",
        "REJECT_REASON_INVALID_COMMAND",
        "REJECT_REASON_IDEMPOTENCY_KEY_REUSED",
        "REJECT_REASON_ALREADY_EXISTS",
        "REJECT_REASON_HUMAN_NOT_FOUND",
        "REJECT_REASON_AGENT_NOT_FOUND",
        "REJECT_REASON_SERVICE_NOT_FOUND",
        "REJECT_REASON_TOKEN_NOT_FOUND",
        "REJECT_REASON_SCOPE_NOT_ALLOWED",
        "REJECT_REASON_SIGNING_KEY_NOT_FOUND",
        "REJECT_REASON_AUDIENCE_TAKEN",
        "REJECT_REASON_PERMISSION_DENIED",
        "REJECT_REASON_SIGNING_KEY_CONFLICT",
    ];
    let missing: Vec<&str> = decisions
        .iter()
        .copied()
        .filter(|it| !reached.contains(*it))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached {missing:?}; reached {reached:?}"
    );
    // Every event kind, from random batches alone.
    let n_event_kinds = reached.iter().filter(|it| it.starts_with("Some(")).count();
    assert_eq!(n_event_kinds, 6, "reached {reached:?}");
}

fn check_replicas_agree(batches: Vec<Batch>) -> Result<(), TestCaseError> {
    let mut replica_a = InMemoryState::new();
    let mut replica_b = InMemoryState::new();
    for (idx, batch) in std::iter::once(genesis()).chain(batches).enumerate() {
        let log_index = idx as u64 + 1;
        let seq_before = query::applied_seq(&replica_a).unwrap();
        let applied_a = apply_batch(&replica_a, &batch, log_index).unwrap();
        let applied_b = apply_batch(&replica_b, &batch, log_index).unwrap();
        prop_assert_eq!(&applied_a, &applied_b);
        check_invariants(&batch, &applied_a, seq_before)?;

        replica_a.apply_writes(&applied_a.writes);
        replica_b.apply_writes(&applied_b.writes);
        prop_assert_eq!(
            state_digest(&replica_a).unwrap(),
            state_digest(&replica_b).unwrap()
        );
        let n_events = applied_a.events.len() as u64;
        prop_assert_eq!(
            query::applied_seq(&replica_a).unwrap(),
            seq_before + n_events
        );
        let stored = query::events(&replica_a, seq_before + 1, limits::EVENTS_PAGE_MAX).unwrap();
        prop_assert_eq!(&stored, &applied_a.events);

        check_retry_replays(&replica_a, &batch, &applied_a, log_index + 1000)?;

        // A replica restored from a copy of another's rows carries on identically: apply depends
        // on nothing but the rows.
        if idx % 3 == 2 {
            replica_b = copy_rows(&replica_a);
        }
    }
    Ok(())
}

/// What every applied batch must satisfy, whatever its input.
fn check_invariants(
    batch: &Batch,
    applied: &AppliedBatch,
    seq_before: u64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(applied.outcomes.len(), batch.commands.len());
    // Rejections, replays and no-ops write nothing at all.
    prop_assert_eq!(applied.writes.is_empty(), applied.events.is_empty());
    for (offset, event) in applied.events.iter().enumerate() {
        prop_assert_eq!(event.seq, seq_before + 1 + offset as u64, "seqs are dense");
        prop_assert_eq!(event.time_unix_ms, batch.time_unix_ms);
        let outcome = &applied.outcomes[event.batch_position as usize];
        let Some(OutcomeResult::Accepted(accepted)) = &outcome.result else {
            return Err(TestCaseError::fail(format!(
                "event {event:?} for outcome {outcome:?}"
            )));
        };
        prop_assert_eq!(accepted.seq, event.seq);
        prop_assert!(accepted.changed && !accepted.replayed);
        prop_assert!(event.kind.is_some() && event.actor.is_some());
    }
    let n_changed = applied
        .outcomes
        .iter()
        .filter(|it| {
            matches!(&it.result, Some(OutcomeResult::Accepted(accepted)) if accepted.changed && !accepted.replayed)
        })
        .count();
    prop_assert_eq!(n_changed, applied.events.len());
    for outcome in &applied.outcomes {
        prop_assert!(outcome.result.is_some());
    }
    Ok(())
}

/// Proposing a committed batch again (a client retry) replays every change and adds nothing.
fn check_retry_replays(
    state: &InMemoryState,
    batch: &Batch,
    first: &AppliedBatch,
    log_index: u64,
) -> Result<(), TestCaseError> {
    let retried = apply_batch(state, batch, log_index).unwrap();
    for (first, again) in first.outcomes.iter().zip(&retried.outcomes) {
        if let Some(OutcomeResult::Accepted(first)) = &first.result
            && first.changed
        {
            let expected = log::Accepted {
                replayed: true,
                ..first.clone()
            };
            prop_assert_eq!(&again.result, &Some(OutcomeResult::Accepted(expected)));
        }
    }
    Ok(())
}

fn copy_rows(state: &InMemoryState) -> InMemoryState {
    let mut writes = WriteSet::new();
    let mut start = Vec::new();
    loop {
        let page = state.scan(b"", &start, 7).unwrap();
        let Some((last, _)) = page.last() else { break };
        start = last.iter().copied().chain([0]).collect();
        for (key, value) in page {
            writes.put(key, value);
        }
    }
    let mut copy = InMemoryState::new();
    copy.apply_writes(&writes);
    copy
}

/// A first batch that makes later random commands likely to succeed: a human, her agent, a
/// service, a signing key and a token.
fn genesis() -> Batch {
    let admin = Actor {
        kind: PrincipalKind::Admin as i32,
        id: "root".to_owned(),
        on_behalf_of: vec![],
    };
    let kinds = vec![
        CommandKind::RegisterHuman(log::RegisterHuman {
            human_id: "alice".to_owned(),
            ..Default::default()
        }),
        CommandKind::RegisterAgent(log::RegisterAgent {
            agent_id: "bot".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "mcp".to_owned(),
            ..Default::default()
        }),
        CommandKind::RegisterService(log::RegisterService {
            service_id: "mail".to_owned(),
            audience: "https://mail".to_owned(),
            tools: vec![
                log::Tool {
                    name: "send".to_owned(),
                    description: String::new(),
                },
                log::Tool {
                    name: "read".to_owned(),
                    description: String::new(),
                },
            ],
        }),
        CommandKind::PublishSigningKey(log::PublishSigningKey {
            key_id: "k1".to_owned(),
            node_id: 1,
            algorithm: SigningAlgorithm::Ed25519 as i32,
            public_key: vec![1; 32],
        }),
    ];
    let mut commands: Vec<Command> = kinds
        .into_iter()
        .enumerate()
        .map(|(idx, kind)| Command {
            idempotency_key: format!("genesis-{idx}"),
            request_digest: vec![0; 32],
            actor: Some(admin.clone()),
            kind: Some(kind),
            ..Default::default()
        })
        .collect();
    // A token to revoke: random issuance succeeds too rarely to leave one around.
    commands.push(Command {
        idempotency_key: "genesis-token".to_owned(),
        request_digest: vec![0; 32],
        actor: Some(Actor {
            kind: PrincipalKind::Agent as i32,
            id: "bot".to_owned(),
            on_behalf_of: vec![],
        }),
        kind: Some(CommandKind::IssueToken(log::IssueToken {
            jti: "j1".to_owned(),
            agent_id: "bot".to_owned(),
            audience: "https://mail".to_owned(),
            scopes: vec!["send".to_owned()],
            ttl_seconds: 600,
            key_id: "k1".to_owned(),
            ..Default::default()
        })),
        ..Default::default()
    });
    Batch {
        time_unix_ms: 1_700_000_000_000,
        commands,
    }
}

fn arb_batch() -> BoxedStrategy<Batch> {
    prop_oneof![
        6 => arb_plain_batch(),
        2 => (arb_plain_batch(), proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4))
            .prop_map(|(batch, flips)| mutate(&batch, &flips)),
        1 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| Batch::decode(bytes.as_slice()).unwrap_or_default()),
    ]
    .boxed()
}

/// The batch with some bytes of its encoding flipped, when that still decodes.
fn mutate(batch: &Batch, flips: &[(usize, u8)]) -> Batch {
    let mut bytes = batch.encode_to_vec();
    if bytes.is_empty() {
        return batch.clone();
    }
    for (position, mask) in flips {
        let len = bytes.len();
        bytes[position % len] ^= mask;
    }
    Batch::decode(bytes.as_slice()).unwrap_or_else(|_| batch.clone())
}

fn arb_plain_batch() -> BoxedStrategy<Batch> {
    let time_unix_ms = prop_oneof![
        4 => 1_700_000_000_000u64..1_700_100_000_000,
        1 => any::<u64>(),
        1 => Just(0u64),
    ];
    (time_unix_ms, proptest::collection::vec(arb_command(), 0..8))
        .prop_map(|(time_unix_ms, commands)| Batch {
            time_unix_ms,
            commands,
        })
        .boxed()
}

fn arb_command() -> BoxedStrategy<Command> {
    (
        arb_idempotency_key(),
        arb_digest(),
        prop_oneof![9 => arb_actor().prop_map(Some), 1 => Just(None)],
        prop_oneof![19 => arb_kind().prop_map(Some), 1 => Just(None)],
        proptest::bool::weighted(0.7),
    )
        .prop_map(|(idempotency_key, request_digest, actor, kind, coherent)| {
            // Only an agent may ask for its own tokens; left to chance, actor and agent id would
            // almost never match and issuance would go untested.
            let actor = match &kind {
                Some(CommandKind::IssueToken(issue)) if coherent => Some(Actor {
                    kind: PrincipalKind::Agent as i32,
                    id: issue.agent_id.clone(),
                    on_behalf_of: Vec::new(),
                }),
                _ => actor,
            };
            Command {
                idempotency_key,
                request_digest,
                actor,
                kind,
                ..Default::default()
            }
        })
        .boxed()
}

fn arb_kind() -> BoxedStrategy<CommandKind> {
    prop_oneof![
        (arb_id(), arb_text(), arb_text()).prop_map(|(human_id, display_name, email)| {
            CommandKind::RegisterHuman(log::RegisterHuman {
                human_id,
                display_name,
                email,
                ..Default::default()
            })
        }),
        (
            arb_id(),
            arb_id(),
            arb_id(),
            arb_text(),
            proptest::collection::vec(arb_credential(), 0..3)
        )
            .prop_map(
                |(agent_id, owner_human_id, kind, description, credentials)| {
                    CommandKind::RegisterAgent(log::RegisterAgent {
                        agent_id,
                        owner_human_id,
                        kind,
                        description,
                        credentials,
                    })
                }
            ),
        (
            arb_id(),
            arb_audience(),
            proptest::collection::vec((arb_id(), arb_text()), 0..4)
        )
            .prop_map(|(service_id, audience, tools)| {
                let tools = tools
                    .into_iter()
                    .map(|(name, description)| log::Tool { name, description })
                    .collect();
                CommandKind::RegisterService(log::RegisterService {
                    service_id,
                    audience,
                    tools,
                })
            }),
        (
            arb_jti(),
            arb_issuer(),
            arb_audience(),
            proptest::collection::vec(arb_scope(), 0..3),
            prop_oneof![
                1 => Just(0u32),
                8 => 1u32..1000,
                1 => Just(86_400),
                1 => Just(86_401),
                1 => any::<u32>(),
            ],
            arb_key_id(),
        )
            .prop_map(|(jti, agent_id, audience, scopes, ttl_seconds, key_id)| {
                CommandKind::IssueToken(log::IssueToken {
                    jti,
                    agent_id,
                    audience,
                    scopes,
                    ttl_seconds,
                    key_id,
                    ..Default::default()
                })
            }),
        (arb_jti(), arb_text())
            .prop_map(|(jti, reason)| CommandKind::RevokeToken(log::RevokeToken { jti, reason })),
        (
            arb_key_id(),
            0u64..3,
            prop_oneof![Just(1i32), 0i32..3, any::<i32>()],
            prop_oneof![
                Just(vec![1u8; 32]),
                Just(vec![2u8; 32]),
                proptest::collection::vec(any::<u8>(), 0..40)
            ],
        )
            .prop_map(|(key_id, node_id, algorithm, public_key)| {
                CommandKind::PublishSigningKey(log::PublishSigningKey {
                    key_id,
                    node_id,
                    algorithm,
                    public_key,
                })
            }),
    ]
    .boxed()
}

fn arb_credential() -> BoxedStrategy<Credential> {
    let kind = prop_oneof![
        4 => Just(Some(CredentialKind::ClientSecretArgon2id(PHC.to_owned()))),
        1 => Just(Some(CredentialKind::ClientSecretArgon2id("plain".to_owned()))),
        1 => Just(None),
    ];
    (arb_id(), kind)
        .prop_map(|(credential_id, kind)| Credential {
            credential_id,
            kind,
        })
        .boxed()
}

fn arb_actor() -> BoxedStrategy<Actor> {
    let kind = prop_oneof![
        3 => Just(PrincipalKind::Admin as i32),
        4 => Just(PrincipalKind::Agent as i32),
        2 => Just(PrincipalKind::Node as i32),
        1 => Just(PrincipalKind::Human as i32),
        1 => any::<i32>(),
    ];
    let actor_id = prop_oneof![4 => select(IDS).prop_map(str::to_owned), 1 => Just("root".to_owned()), 1 => arb_garbage()];
    (kind, actor_id, proptest::collection::vec(arb_id(), 0..2))
        .prop_map(|(kind, id, on_behalf_of)| Actor {
            kind,
            id,
            on_behalf_of,
        })
        .boxed()
}

fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![8 => select(IDS).prop_map(str::to_owned), 2 => arb_garbage()]
}

fn arb_jti() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&["j1", "j2", "j3"][..]).prop_map(str::to_owned),
        4 => (0u32..10_000).prop_map(|n| format!("jti-{n}")),
        1 => arb_garbage(),
    ]
}

/// The agent a token is asked for: mostly the one the genesis batch registers.
fn arb_issuer() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just("bot".to_owned()), 2 => arb_id()]
}

fn arb_scope() -> impl Strategy<Value = String> {
    prop_oneof![8 => select(SCOPES).prop_map(str::to_owned), 1 => arb_garbage()]
}

fn arb_audience() -> impl Strategy<Value = String> {
    prop_oneof![8 => select(AUDIENCES).prop_map(str::to_owned), 2 => arb_garbage()]
}

fn arb_key_id() -> impl Strategy<Value = String> {
    prop_oneof![8 => select(KEY_IDS).prop_map(str::to_owned), 2 => arb_garbage()]
}

fn arb_idempotency_key() -> impl Strategy<Value = String> {
    // A few keys reused often (retries and reuse), and many fresh ones so that actors do not
    // run out of unused keys and see nothing but replays.
    prop_oneof![
        4 => select(&["r1", "r2", "r3", "r4"][..]).prop_map(str::to_owned),
        4 => (0u32..10_000).prop_map(|n| format!("fresh-{n}")),
        1 => arb_garbage(),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(String::new()), 4 => Just("Some text".to_owned()), 2 => arb_garbage()]
}

/// Strings that break one rule or another.
fn arb_garbage() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("x".repeat(65)),
        Just("y".repeat(1025)),
        Just("a\0b".to_owned()),
        Just("tab\there".to_owned()),
        Just("-lead".to_owned()),
        Just("with space".to_owned()),
        Just("ünïcode".to_owned()),
        any::<String>(),
    ]
    .boxed()
}

fn arb_digest() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(vec![1u8; 32]),
        4 => Just(vec![2u8; 32]),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}
