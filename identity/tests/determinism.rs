//! Determinism of `apply_batch`, checked on random batches.
//!
//! Goal: every replica that applies the same log reaches the same bytes, and no input makes apply
//! panic or fail. Method: generate sequences of batches (plausible commands of every kind over
//! small pools of ids, so that many are accepted, mixed with garbage: empty, long and
//! control-character ids, unknown enum values, bad digests, mutated encodings and arbitrary bytes
//! decoded as a batch), apply them to independent replicas, and compare outcomes, events, writes
//! and state digests after every batch. Along the way, check the invariants the rest of the system
//! relies on.
//!
//! To get past validation and permission checks to the rules behind them, most commands are
//! clean (no garbage field) and come from the principal they are meant for (an agent issuing its
//! own token, a human starting her own session, the holder of a delegation delegating under it);
//! a genesis batch sets up what they act on (see [`genesis`]); child grants mostly fit their
//! parent but for one respect; some commands carry client assertions from a small pool of jtis;
//! and some are sent again later in the same batch (a retry, a resend under a new key, or a
//! different request under the same key).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::{
    prelude::*,
    sample::{Index, select},
    strategy::Union,
};
use prost::Message;
use warrant_identity::{
    AppliedBatch, AuditRecords, InMemoryState, StateRead, WriteSet, apply_batch,
    apply_batch_recording, apply_batch_unaudited,
    audit::history::{self, AsOf},
    fixtures::{admin, agent_actor, command_with_key, human_actor, node, strings},
    keys, limits, query, state_digest,
};
use warrant_proto::log::{
    self, Actor, AuthMethod, Batch, Command, Credential, EntityKind, FederatedIdentity,
    PrincipalKind, SigningAlgorithm, command::Kind as CommandKind,
    credential::Kind as CredentialKind, event::Kind as EventKind, outcome::Result as OutcomeResult,
};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
/// The genesis batch's stamp, in seconds.
const GENESIS_S: u64 = 1_700_000_000;
/// Random batches are mostly stamped within this many seconds after the genesis.
const BATCH_SPREAD_S: u64 = 100_000;
/// How long the genesis root delegation d1 lasts.
const D1_TTL_S: u64 = 20 * 86_400;
/// How long its child d2 lasts: it expires within the range of batch stamps.
const D2_TTL_S: u64 = 70_000;
/// The genesis root delegation d1's call budget: a few SYNC ALLOWs of its tokens spend it, so
/// random batches reach BUDGET_EXHAUSTED, and children may ask for more than it (refused).
const D1_BUDGET: log::CallBudget = log::CallBudget {
    total: 2,
    tools: Vec::new(),
};
/// This cluster's issuer: the audience of human session tokens.
const ISSUER: &str = "https://warrant";
/// Ids with weights.
type Pool = &'static [(&'static str, u32)];
const IDS: &[&str] = &[
    "alice", "bob", "bot", "bot2", "mail", "send", "read", "j1", "j2", "c1",
];
// Small weighted pools, so that commands often name what earlier ones created. The genesis batch
// creates every entry of a pool but the last (or last two), which random batches may create.
const HUMANS: Pool = &[("alice", 8), ("carol", 2), ("bob", 2)];
const AGENTS: Pool = &[
    ("bot", 8),
    ("bot2", 6),
    ("bot3", 3),
    ("bot4", 2),
    ("bot5", 1),
];
const SERVICES: Pool = &[("mail", 6), ("docs", 3), ("cal", 1)];
const DEVICES: Pool = &[("dev1", 6), ("dev2", 3), ("dev3", 1)];
const SESSIONS: Pool = &[("s1", 4), ("s2", 4), ("s3", 2), ("s4", 2)];
const DELEGATIONS: Pool = &[("d1", 6), ("d2", 4), ("d3", 2), ("d4", 2)];
const CREDENTIAL_IDS: &[&str] = &["c1", "c2", "c3"];
/// Tokens the genesis batch issues (t-alice with alice's session), plus one it does not.
const TOKEN_JTIS: &[&str] = &["j1", "jd1", "t-alice", "j2"];
const ASSERTION_JTIS: &[&str] = &["a1", "a2"];
const FEDERATED: &[(&str, &str)] = &[
    ("https://idp", "alice-sub"),
    ("https://idp", "bob-sub"),
    ("https://other", "alice-sub"),
];
/// Token exchanges that continue their subject token's authority, as (agent, delegation,
/// subject jti): bot for alice's session token under her root grant d1, and bot2 for bot's
/// delegated token under d2 (or d3, when a random batch creates it under d1).
const EXCHANGES: &[(&str, &str, &str)] = &[
    ("bot", "d1", "t-alice"),
    ("bot2", "d2", "jd1"),
    ("bot2", "d3", "jd1"),
];
const AUDIENCES: &[&str] = &["https://mail", "https://docs", "https://cal"];
const KEY_IDS: &[&str] = &["k1", "k2"];
const SCOPES: &[&str] = &["send", "read", "write"];
const TOKEN_TTL_MAX_S: u32 = limits::TOKEN_TTL_SECONDS_MAX;
const SESSION_TTL_MAX_S: u32 = limits::SESSION_TTL_SECONDS_MAX;
const DELEGATION_DEPTH_MAX: u32 = limits::DELEGATION_DEPTH_MAX;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replicas_agree(batches in proptest::collection::vec(arb_batch(), 1..8)) {
        check_replicas_agree(batches)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The correctness of as-of reads: for every seq, every projection row read through
    /// `AsOf` equals the row of a replica that applied the log only up to that seq.
    #[test]
    fn as_of_equals_a_replica_stopped_there(
        batches in proptest::collection::vec(arb_batch(), 1..6),
    ) {
        check_as_of(batches)?;
    }
}

/// Applies the batches with the history recorded, and, on a replica without it, every batch
/// cut after each of its commands: the state after each command, what `AsOf` must answer.
fn check_as_of(batches: Vec<Batch>) -> Result<(), TestCaseError> {
    let mut recorded = InMemoryState::new();
    let mut plain = InMemoryState::new();
    // The state after each command, with its last seq, in log order.
    let mut points = vec![(0u64, InMemoryState::new())];
    for (idx, batch) in std::iter::once(genesis()).chain(batches).enumerate() {
        let log_index = idx as u64 + 1;
        let applied =
            apply_batch_recording(&recorded, &batch, log_index, AuditRecords::HISTORY).unwrap();
        recorded.apply_writes(&applied.writes);
        for cut in 1..=batch.commands.len() {
            let prefix = Batch {
                time_unix_ms: batch.time_unix_ms,
                commands: batch.commands[..cut].to_vec(),
            };
            let mut after = plain.clone();
            after.apply_writes(
                &apply_batch_unaudited(&plain, &prefix, log_index)
                    .unwrap()
                    .writes,
            );
            points.push((query::applied_seq(&after).unwrap(), after));
        }
        let whole = apply_batch_unaudited(&plain, &batch, log_index).unwrap();
        plain.apply_writes(&whole.writes);
    }
    let last_seq = query::applied_seq(&recorded).unwrap();
    prop_assert_eq!(last_seq, query::applied_seq(&plain).unwrap());
    let versioned_keys = versioned_keys(&recorded);
    let mut point = 0;
    for seq in 0..=last_seq {
        // The last command whose last seq is at or before `seq`: a command that adds several
        // events shows all of its rows at once.
        while points.get(point + 1).is_some_and(|(next, _)| *next <= seq) {
            point += 1;
        }
        let expected = &points[point].1;
        let as_of = AsOf::new(&recorded, seq);
        check_rows_as_of(&as_of, expected, &versioned_keys, seq)?;
        prop_assert_eq!(query::applied_seq(&as_of).unwrap(), seq);
        let events = query::events(&as_of, 0, limits::EVENTS_PAGE_MAX).unwrap();
        prop_assert_eq!(events.len() as u64, seq.min(limits::EVENTS_PAGE_MAX as u64));
    }
    Ok(())
}

/// Every key that has a version in `state`.
fn versioned_keys(state: &InMemoryState) -> Vec<Vec<u8>> {
    let versions = state.scan(keys::VERSION_PREFIX, b"", usize::MAX).unwrap();
    let mut keys: Vec<Vec<u8>> = versions
        .iter()
        .map(|(key, _)| keys::version_parts(key).unwrap().0)
        .collect();
    keys.dedup();
    keys
}

/// The projection rows `as_of` reads equal `expected`'s: point reads of every key ever
/// versioned, whole and paged scans of each table, reverse seeks, and a scan of everything.
fn check_rows_as_of(
    as_of: &AsOf<'_>,
    expected: &InMemoryState,
    versioned_keys: &[Vec<u8>],
    seq: u64,
) -> Result<(), TestCaseError> {
    for key in versioned_keys {
        prop_assert_eq!(
            as_of.get(key).unwrap(),
            expected.get(key).unwrap(),
            "{:?} at {}",
            key,
            seq
        );
    }
    let projection = |rows: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
        rows.into_iter()
            .filter(|(key, _)| history::is_versioned(key))
            .collect()
    };
    let all = projection(expected.scan(b"", b"", usize::MAX).unwrap());
    prop_assert_eq!(&projection(as_of.scan(b"", b"", usize::MAX).unwrap()), &all);
    let tables: std::collections::BTreeSet<&[u8]> = versioned_keys
        .iter()
        .filter_map(|key| {
            key.iter()
                .position(|byte| *byte == 0)
                .map(|end| &key[..=end])
        })
        .collect();
    for table in tables {
        let rows = expected.scan(table, b"", usize::MAX).unwrap();
        prop_assert_eq!(&as_of.scan(table, b"", usize::MAX).unwrap(), &rows);
        // Paged from each row, two at a time, as list queries page.
        for (idx, (key, _)) in rows.iter().enumerate() {
            let page = as_of.scan(table, &keys::successor(key), 2).unwrap();
            let want: Vec<_> = rows.iter().skip(idx + 1).take(2).cloned().collect();
            prop_assert_eq!(page, want);
            prop_assert_eq!(
                as_of.last_before(table, key).unwrap(),
                expected.last_before(table, key).unwrap()
            );
        }
    }
    Ok(())
}

/// The generator is only useful if random batches get past validation often enough to reach
/// every decision: this samples it with a fixed seed and checks what the outcomes cover.
#[test]
fn generated_batches_reach_every_decision() {
    use std::collections::BTreeMap;

    use proptest::{strategy::ValueTree, test_runner::TestRunner};

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(arb_batch(), 1..8);
    let mut reached: BTreeMap<String, usize> = BTreeMap::new();
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
                *reached.entry(label).or_default() += 1;
            }
            for event in &applied.events {
                let label = event.kind.as_ref().map_or("no kind", event_name);
                *reached.entry(label.to_owned()).or_default() += 1;
                if let Some(EventKind::AccessDecided(receipt)) = &event.kind
                    && receipt.mode == log::AccessMode::Sync as i32
                {
                    let label = match log::AccessDenyReason::try_from(receipt.deny_reason) {
                        Ok(log::AccessDenyReason::Unspecified) => "ACCESS_DECISION_ALLOW",
                        Ok(reason) => reason.as_str_name(),
                        Err(_) => "unknown deny reason",
                    };
                    *reached.entry(label.to_owned()).or_default() += 1;
                }
            }
        }
    }
    // Every reject reason but UNSPECIFIED, which apply never produces.
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
        "REJECT_REASON_AGENT_DISABLED",
        "REJECT_REASON_SCOPE_NOT_ALLOWED",
        "REJECT_REASON_SIGNING_KEY_NOT_FOUND",
        "REJECT_REASON_AUDIENCE_TAKEN",
        "REJECT_REASON_PERMISSION_DENIED",
        "REJECT_REASON_SIGNING_KEY_CONFLICT",
        "REJECT_REASON_ASSERTION_REPLAYED",
        "REJECT_REASON_ASSERTION_EXPIRED",
        "REJECT_REASON_DEVICE_NOT_FOUND",
        "REJECT_REASON_DELEGATION_NOT_FOUND",
        "REJECT_REASON_DELEGATION_INACTIVE",
        "REJECT_REASON_SCOPE_EXCEEDS_PARENT",
        "REJECT_REASON_AUDIENCE_EXCEEDS_PARENT",
        "REJECT_REASON_EXPIRY_EXCEEDS_PARENT",
        "REJECT_REASON_DELEGATION_DEPTH_EXCEEDED",
        "REJECT_REASON_DELEGATION_CYCLE",
        "REJECT_REASON_SESSION_NOT_FOUND",
        "REJECT_REASON_SESSION_ENDED",
        "REJECT_REASON_HUMAN_DISABLED",
        "REJECT_REASON_CREDENTIAL_NOT_FOUND",
        "REJECT_REASON_SIGNING_KEY_RETIRED",
        "REJECT_REASON_FEDERATED_IDENTITY_TAKEN",
        "REJECT_REASON_DEVICE_DISABLED",
        "REJECT_REASON_SUBJECT_TOKEN_INACTIVE",
        "REJECT_REASON_AUDIENCE_NOT_DELEGATED",
        "REJECT_REASON_SCOPE_NOT_DELEGATED",
        "REJECT_REASON_SIGNING_KEY_COMPROMISED",
        "REJECT_REASON_BUDGET_EXCEEDS_PARENT",
        "REJECT_REASON_POLICY_INVALID",
        "REJECT_REASON_POLICY_VERSION_NOT_FOUND",
        "REJECT_REASON_POLICY_NO_PREVIOUS_VERSION",
        // SYNC decisions, from the receipts of Authorize.
        "ACCESS_DECISION_ALLOW",
        "ACCESS_DENY_REASON_TOKEN_INVALID",
        "ACCESS_DENY_REASON_AUDIENCE_MISMATCH",
        "ACCESS_DENY_REASON_SERVICE_NOT_FOUND",
        "ACCESS_DENY_REASON_TOOL_NOT_FOUND",
        "ACCESS_DENY_REASON_TOOL_NOT_IN_SCOPE",
        "ACCESS_DENY_REASON_BUDGET_EXHAUSTED",
        "ACCESS_DENY_REASON_POLICY_FORBIDDEN",
    ];
    // Every event kind, from random batches alone.
    let events = [
        "HumanRegistered",
        "AgentRegistered",
        "ServiceRegistered",
        "TokenIssued",
        "TokenRevoked",
        "SigningKeyPublished",
        "HumanUpdated",
        "AgentUpdated",
        "ServiceUpdated",
        "DeviceRegistered",
        "DeviceUpdated",
        "AgentDeviceBound",
        "StatusChanged",
        "CredentialsChanged",
        "SessionStarted",
        "SessionEnded",
        "DelegationCreated",
        "DelegationRevoked",
        "SigningKeyRetired",
        "SigningKeyCompromised",
        "OperatorRegistered",
        "AccessDecided",
        "CommandRejected",
        "AuthFailuresRecorded",
        "AuditExportProgressed",
        "PolicyPublished",
        "PolicyActivated",
        "ShadowPolicySet",
    ];
    let missing: Vec<&str> = decisions
        .iter()
        .chain(&events)
        .copied()
        .filter(|it| !reached.contains_key(*it))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached {missing:?}; reached {reached:?}"
    );
}

/// The name of an event kind. Exhaustive, so that a new kind has to be added to the reach test.
fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::HumanRegistered(_) => "HumanRegistered",
        EventKind::AgentRegistered(_) => "AgentRegistered",
        EventKind::ServiceRegistered(_) => "ServiceRegistered",
        EventKind::TokenIssued(_) => "TokenIssued",
        EventKind::TokenRevoked(_) => "TokenRevoked",
        EventKind::SigningKeyPublished(_) => "SigningKeyPublished",
        EventKind::HumanUpdated(_) => "HumanUpdated",
        EventKind::AgentUpdated(_) => "AgentUpdated",
        EventKind::ServiceUpdated(_) => "ServiceUpdated",
        EventKind::DeviceRegistered(_) => "DeviceRegistered",
        EventKind::DeviceUpdated(_) => "DeviceUpdated",
        EventKind::AgentDeviceBound(_) => "AgentDeviceBound",
        EventKind::StatusChanged(_) => "StatusChanged",
        EventKind::CredentialsChanged(_) => "CredentialsChanged",
        EventKind::SessionStarted(_) => "SessionStarted",
        EventKind::SessionEnded(_) => "SessionEnded",
        EventKind::DelegationCreated(_) => "DelegationCreated",
        EventKind::DelegationRevoked(_) => "DelegationRevoked",
        EventKind::SigningKeyRetired(_) => "SigningKeyRetired",
        EventKind::SigningKeyCompromised(_) => "SigningKeyCompromised",
        EventKind::OperatorRegistered(_) => "OperatorRegistered",
        EventKind::PolicyPublished(_) => "PolicyPublished",
        EventKind::PolicyActivated(_) => "PolicyActivated",
        EventKind::ShadowPolicySet(_) => "ShadowPolicySet",
        EventKind::AccessDecided(_) => "AccessDecided",
        EventKind::CommandRejected(_) => "CommandRejected",
        EventKind::AuthFailuresRecorded(_) => "AuthFailuresRecorded",
        EventKind::AuditExportProgressed(_) => "AuditExportProgressed",
    }
}

/// The name a CommandRejected event gives the command's kind: its oneof field name, which is
/// the snake_case of its Rust variant (the Debug form starts with the variant).
fn kind_name(command: &Command) -> String {
    let debug = format!("{:?}", command.kind.as_ref().unwrap());
    let variant = debug.split('(').next().unwrap_or_default();
    let mut name = String::new();
    for (idx, ch) in variant.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if idx > 0 {
                name.push('_');
            }
            name.push(ch.to_ascii_lowercase());
        } else {
            name.push(ch);
        }
    }
    name
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
    // Rejections, replays and no-ops write nothing at all, except that an accepted no-op that
    // carried a client assertion spends it (and keeps its outcome, so that a retry replays).
    let spends_assertion =
        batch
            .commands
            .iter()
            .zip(&applied.outcomes)
            .any(|(command, outcome)| {
                command.assertion.is_some()
                    && matches!(
                        &outcome.result,
                        Some(OutcomeResult::Accepted(it)) if !it.changed && !it.replayed
                    )
            });
    // Forgetting spent assertions past their retention deletes rows and writes no event.
    let forgets_assertions = applied.writes.ops.iter().any(|(key, value)| {
        value.is_none()
            && (key.starts_with(warrant_identity::keys::ASSERTION_PREFIX)
                || key.starts_with(warrant_identity::keys::ASSERTION_BY_EXPIRY_PREFIX))
    });
    if applied.events.is_empty() && !spends_assertion && !forgets_assertions {
        prop_assert!(applied.writes.is_empty(), "writes without events");
    }
    if !applied.events.is_empty() {
        prop_assert!(!applied.writes.is_empty(), "events without writes");
    }
    for (offset, event) in applied.events.iter().enumerate() {
        prop_assert_eq!(event.seq, seq_before + 1 + offset as u64, "seqs are dense");
        prop_assert_eq!(event.time_unix_ms, batch.time_unix_ms);
        prop_assert!(event.kind.is_some() && event.actor.is_some());
        let outcome = &applied.outcomes[event.batch_position as usize];
        let accepted = match &outcome.result {
            Some(OutcomeResult::Accepted(accepted)) => accepted,
            // A handler's refusal is on the record as exactly one CommandRejected event, which
            // says what the outcome says.
            Some(OutcomeResult::Rejected(rejection)) => {
                let recorded = log::CommandRejected {
                    command_kind: kind_name(&batch.commands[event.batch_position as usize]),
                    reason: rejection.reason,
                    message: rejection.message.clone(),
                };
                prop_assert_eq!(&event.kind, &Some(EventKind::CommandRejected(recorded)));
                continue;
            }
            None => {
                return Err(TestCaseError::fail(format!(
                    "event {event:?} for outcome {outcome:?}"
                )));
            }
        };
        prop_assert!(
            !matches!(event.kind, Some(EventKind::CommandRejected(_))),
            "CommandRejected for an accepted command"
        );
        // A command that adds several events (RegisterHumans) names the last of them.
        let last_seq_of_command = applied
            .events
            .iter()
            .filter(|it| it.batch_position == event.batch_position)
            .map(|it| it.seq)
            .max();
        prop_assert_eq!(Some(accepted.seq), last_seq_of_command);
        prop_assert!(accepted.changed && !accepted.replayed);
        // An Authorize's receipt is its event, and its outcome returns it.
        if let Some(EventKind::AccessDecided(receipt)) = &event.kind
            && let Some(CommandKind::Authorize(_)) =
                &batch.commands[event.batch_position as usize].kind
        {
            prop_assert_eq!(accepted.access_decided.as_ref(), Some(receipt));
            prop_assert_eq!(receipt.decided_at_seq, event.seq - 1);
            prop_assert_eq!(receipt.decided_at_unix_ms, batch.time_unix_ms);
        }
    }
    let n_changed = applied
        .outcomes
        .iter()
        .filter(|it| {
            matches!(&it.result, Some(OutcomeResult::Accepted(accepted)) if accepted.changed && !accepted.replayed)
        })
        .count();
    // One changed outcome per accepted command with events, however many events it added.
    let n_commands_with_events = applied
        .events
        .iter()
        .filter(|it| !matches!(it.kind, Some(EventKind::CommandRejected(_))))
        .map(|it| it.batch_position)
        .collect::<BTreeSet<_>>()
        .len();
    prop_assert_eq!(n_changed, n_commands_with_events);
    for outcome in &applied.outcomes {
        prop_assert!(outcome.result.is_some());
    }
    Ok(())
}

/// Proposing a committed batch again (a client retry) replays every change, and every no-op that
/// spent a client assertion, and adds nothing.
fn check_retry_replays(
    state: &InMemoryState,
    batch: &Batch,
    first: &AppliedBatch,
    log_index: u64,
) -> Result<(), TestCaseError> {
    let retried = apply_batch(state, batch, log_index).unwrap();
    let decisions = batch
        .commands
        .iter()
        .zip(&first.outcomes)
        .zip(&retried.outcomes);
    let recorded_refusals: BTreeSet<u32> = first
        .events
        .iter()
        .filter(|it| matches!(it.kind, Some(EventKind::CommandRejected(_))))
        .map(|it| it.batch_position)
        .collect();
    for (position, ((command, first), again)) in decisions.enumerate() {
        if let Some(OutcomeResult::Accepted(first)) = &first.result
            && (first.changed || command.assertion.is_some())
        {
            let expected = log::Accepted {
                replayed: true,
                ..first.clone()
            };
            prop_assert_eq!(&again.result, &Some(OutcomeResult::Accepted(expected)));
        }
        // A recorded refusal replays as itself.
        if recorded_refusals.contains(&(position as u32)) {
            prop_assert_eq!(&again.result, &first.result);
        }
    }
    // The retry adds no event: every command replays, or is refused before any handler.
    prop_assert!(
        retried
            .events
            .iter()
            .all(|it| !recorded_refusals.contains(&it.batch_position)),
        "a recorded refusal was recorded again"
    );
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

/// A first batch that makes later random commands likely to succeed, and gives them something to
/// act on: a federated human (alice) with a password, three of her agents (bot2 bound to her
/// laptop dev1), two services, a signing key, a root delegation (d1 to bot) and a short-lived
/// child of it (d2 to bot2), a human and an agent session (s1 of alice with its token t-alice,
/// s2 of bot), and two tokens (j1 plain, jd1 under d1: to revoke and to exchange). Also a disabled
/// human (carol), agent (bot4) and device (dev2), to be refused as such.
fn genesis() -> Batch {
    let kinds = vec![
        (
            admin(),
            CommandKind::RegisterHuman(log::RegisterHuman {
                human_id: "alice".to_owned(),
                display_name: "Alice".to_owned(),
                federated: Some(federated(FEDERATED[0])),
                password_argon2id: PHC.to_owned(),
                ..Default::default()
            }),
        ),
        (
            admin(),
            CommandKind::RegisterAgent(log::RegisterAgent {
                agent_id: "bot".to_owned(),
                owner_human_id: "alice".to_owned(),
                kind: "mcp".to_owned(),
                credentials: vec![Credential {
                    credential_id: "c1".to_owned(),
                    kind: Some(CredentialKind::ClientSecretArgon2id(PHC.to_owned())),
                }],
                ..Default::default()
            }),
        ),
        (
            admin(),
            CommandKind::RegisterAgent(log::RegisterAgent {
                agent_id: "bot2".to_owned(),
                owner_human_id: "alice".to_owned(),
                kind: "mcp".to_owned(),
                credentials: vec![Credential {
                    credential_id: "c2".to_owned(),
                    kind: Some(CredentialKind::Ed25519PublicKey(vec![7; 32])),
                }],
                ..Default::default()
            }),
        ),
        (
            admin(),
            CommandKind::RegisterAgent(log::RegisterAgent {
                agent_id: "bot3".to_owned(),
                owner_human_id: "alice".to_owned(),
                kind: "cli".to_owned(),
                ..Default::default()
            }),
        ),
        (
            admin(),
            CommandKind::RegisterAgent(log::RegisterAgent {
                agent_id: "bot4".to_owned(),
                owner_human_id: "alice".to_owned(),
                kind: "cli".to_owned(),
                ..Default::default()
            }),
        ),
        (admin(), disable(EntityKind::Agent, "bot4")),
        (
            admin(),
            CommandKind::RegisterHuman(log::RegisterHuman {
                human_id: "carol".to_owned(),
                ..Default::default()
            }),
        ),
        (admin(), disable(EntityKind::Human, "carol")),
        (
            admin(),
            CommandKind::RegisterService(log::RegisterService {
                service_id: "mail".to_owned(),
                audience: "https://mail".to_owned(),
                tools: tools(&["send", "read"]),
            }),
        ),
        (
            admin(),
            CommandKind::RegisterService(log::RegisterService {
                service_id: "docs".to_owned(),
                audience: "https://docs".to_owned(),
                tools: tools(&["read", "write"]),
            }),
        ),
        (
            admin(),
            CommandKind::PublishSigningKey(log::PublishSigningKey {
                key_id: "k1".to_owned(),
                node_id: 1,
                algorithm: SigningAlgorithm::Ed25519 as i32,
                public_key: vec![1; 32],
            }),
        ),
        (
            human_actor("alice"),
            CommandKind::RegisterDevice(log::RegisterDevice {
                device_id: "dev1".to_owned(),
                owner_human_id: "alice".to_owned(),
                name: "laptop".to_owned(),
                platform: "macos".to_owned(),
            }),
        ),
        (
            human_actor("alice"),
            CommandKind::RegisterDevice(log::RegisterDevice {
                device_id: "dev2".to_owned(),
                owner_human_id: "alice".to_owned(),
                name: "old phone".to_owned(),
                platform: "linux".to_owned(),
            }),
        ),
        (human_actor("alice"), disable(EntityKind::Device, "dev2")),
        (
            human_actor("alice"),
            CommandKind::BindAgentDevice(log::BindAgentDevice {
                agent_id: "bot2".to_owned(),
                device_id: "dev1".to_owned(),
            }),
        ),
        (
            human_actor("alice"),
            CommandKind::CreateDelegation(log::CreateDelegation {
                delegation_id: "d1".to_owned(),
                grantee_agent_id: "bot".to_owned(),
                scopes: strings(&["send"]),
                audiences: strings(&["https://mail"]),
                task: "triage".to_owned(),
                expires_at_unix_s: GENESIS_S + D1_TTL_S,
                max_depth: 3,
                budget: Some(D1_BUDGET),
                ..Default::default()
            }),
        ),
        (
            agent_actor("bot"),
            CommandKind::CreateDelegation(log::CreateDelegation {
                delegation_id: "d2".to_owned(),
                parent_delegation_id: "d1".to_owned(),
                grantee_agent_id: "bot2".to_owned(),
                scopes: strings(&["send"]),
                audiences: strings(&["https://mail"]),
                // Expires within the range of random batch stamps.
                expires_at_unix_s: GENESIS_S + D2_TTL_S,
                max_depth: 2,
                ..Default::default()
            }),
        ),
        (
            human_actor("alice"),
            CommandKind::StartSession(log::StartSession {
                session_id: "s1".to_owned(),
                principal_kind: PrincipalKind::Human as i32,
                principal_id: "alice".to_owned(),
                auth_method: AuthMethod::LocalPassword as i32,
                ttl_seconds: 7 * 86_400,
                token_jti: "t-alice".to_owned(),
                token_key_id: "k1".to_owned(),
                token_audience: ISSUER.to_owned(),
                ..Default::default()
            }),
        ),
        (
            agent_actor("bot"),
            CommandKind::StartSession(log::StartSession {
                session_id: "s2".to_owned(),
                principal_kind: PrincipalKind::Agent as i32,
                principal_id: "bot".to_owned(),
                device_id: "dev1".to_owned(),
                auth_method: AuthMethod::ClientSecret as i32,
                // Expires within the range of random batch stamps.
                ttl_seconds: 50_000,
                ..Default::default()
            }),
        ),
        // A token to revoke: random issuance succeeds too rarely to leave one around.
        (
            agent_actor("bot"),
            CommandKind::IssueToken(log::IssueToken {
                jti: "j1".to_owned(),
                agent_id: "bot".to_owned(),
                audience: "https://mail".to_owned(),
                scopes: strings(&["send"]),
                ttl_seconds: 600,
                key_id: "k1".to_owned(),
                ..Default::default()
            }),
        ),
        // A delegated token, for bot2 to exchange under d2.
        (
            agent_actor("bot"),
            CommandKind::IssueToken(log::IssueToken {
                jti: "jd1".to_owned(),
                agent_id: "bot".to_owned(),
                audience: "https://mail".to_owned(),
                scopes: strings(&["send"]),
                ttl_seconds: 86_400,
                key_id: "k1".to_owned(),
                delegation_id: "d1".to_owned(),
                ..Default::default()
            }),
        ),
        // Policy version 1 (active: large amounts are forbidden) and version 2 (published only),
        // so random batches activate, roll back, shadow and meet forbids.
        (admin(), genesis_policy(GENESIS_POLICY_V1)),
        (admin(), genesis_policy(GENESIS_POLICY_V2)),
        (
            admin(),
            CommandKind::ActivatePolicy(log::ActivatePolicy { version: 1 }),
        ),
    ];
    let commands = kinds
        .into_iter()
        .enumerate()
        .map(|(idx, (actor, kind))| {
            command_with_key(actor, kind, format!("genesis-{idx}"), vec![0; 32])
        })
        .collect();
    Batch {
        time_unix_ms: GENESIS_S * 1000,
        commands,
    }
}

const GENESIS_POLICY_V1: &str = "@id(\"big\") forbid(principal, action == Action::\"call\", \
     resource) when { context.attributes has amount && context.attributes.amount > 10000 };";
const GENESIS_POLICY_V2: &str =
    "@id(\"no-deep\") forbid(principal, action, resource) when { context.depth > 1 };";

fn genesis_policy(text: &str) -> CommandKind {
    CommandKind::PublishPolicy(log::PublishPolicy {
        text: text.to_owned(),
        description: String::new(),
        attributes: vec![log::PolicyAttribute {
            name: "amount".to_owned(),
            r#type: log::PolicyAttributeType::Long as i32,
        }],
    })
}

fn arb_batch() -> BoxedStrategy<Batch> {
    prop_oneof![
        12 => arb_plain_batch(),
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
    // Mostly within about a day of the genesis: long enough for the short-lived genesis
    // delegation, session and tokens to have expired in some batches and not in others.
    let time_unix_ms = prop_oneof![
        14 => GENESIS_S * 1000..(GENESIS_S + BATCH_SPREAD_S) * 1000,
        1 => any::<u64>(),
        1 => Just(0u64),
    ];
    let echo = prop_oneof![Just(Echo::Retry), Just(Echo::Resend), Just(Echo::Altered)];
    let echoes = proptest::collection::vec((any::<Index>(), echo, 0u32..10_000), 0..3);
    (
        time_unix_ms,
        proptest::collection::vec(arb_command(), 0..8),
        echoes,
    )
        .prop_map(|(time_unix_ms, mut commands, echoes)| {
            for (index, echo, n) in echoes {
                if commands.is_empty() {
                    break;
                }
                let command = echo.of(&commands[index.index(commands.len())], n);
                commands.push(command);
            }
            Batch {
                time_unix_ms,
                commands,
            }
        })
        .boxed()
}

/// A command sent again later in the same batch, as clients do.
#[derive(Clone, Copy, Debug)]
enum Echo {
    /// A retry: the same command, which replays if it was accepted.
    Retry,
    /// The same request under a new idempotency key: its client assertion, if any, is spent.
    Resend,
    /// A different request under the same key.
    Altered,
}

impl Echo {
    fn of(self, command: &Command, n: u32) -> Command {
        let mut echo = command.clone();
        match self {
            Self::Retry => {}
            Self::Resend => echo.idempotency_key = format!("echo-{n}"),
            Self::Altered => echo.request_digest = vec![3; 32],
        }
        echo
    }
}

/// How much garbage the fields of a command carry: none in a clean command, so that it gets past
/// validation to the rules behind it, and some in a dirty one. A weight against 10 for plausible
/// values.
type Dirt = u32;
const CLEAN: Dirt = 0;
const DIRTY: Dirt = 3;

fn arb_command() -> BoxedStrategy<Command> {
    let kind = prop_oneof![
        30 => arb_kind(CLEAN).prop_map(Some),
        10 => arb_kind(DIRTY).prop_map(Some),
        1 => Just(None),
    ];
    (
        arb_idempotency_key(),
        arb_digest(),
        prop_oneof![19 => arb_actor().prop_map(Some), 1 => Just(None)],
        kind,
        (proptest::bool::weighted(0.8), any::<u8>()),
        arb_assertion_choice(),
    )
        .prop_map(
            |(idempotency_key, request_digest, actor, kind, (coherent, pick), assertion)| {
                // Most commands are allowed only to one principal (an agent asks for its own
                // tokens, a human starts her own session, the holder of a delegation delegates
                // under it); left to chance, actor and command would almost never match and
                // the rules behind the permission checks would go untested.
                let actor = match &kind {
                    Some(kind) if coherent => Some(coherent_actor(kind, pick)),
                    _ => actor,
                };
                let assertion = assertion.into_assertion(actor.as_ref());
                Command {
                    idempotency_key,
                    request_digest,
                    actor,
                    assertion,
                    kind,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

/// Whether and how a command carries a client assertion.
#[derive(Clone, Debug)]
enum AssertionChoice {
    None,
    /// One of the acting agent's (none if an agent does not act), from a small pool of jtis so
    /// that they get replayed.
    Own {
        jti: String,
        expires_at_unix_s: u64,
    },
    /// Whatever agent and jti, whoever acts.
    Any(log::AssertionUse),
}

impl AssertionChoice {
    fn into_assertion(self, actor: Option<&Actor>) -> Option<log::AssertionUse> {
        match self {
            Self::None => None,
            Self::Own {
                jti,
                expires_at_unix_s,
            } => match actor {
                Some(actor) if actor.kind == PrincipalKind::Agent as i32 => {
                    Some(log::AssertionUse {
                        principal_id: actor.id.clone(),
                        jti,
                        expires_at_unix_s,
                    })
                }
                _ => None,
            },
            Self::Any(assertion) => Some(assertion),
        }
    }
}

fn arb_assertion_choice() -> impl Strategy<Value = AssertionChoice> {
    let jti = prop_oneof![
        8 => select(ASSERTION_JTIS).prop_map(str::to_owned),
        2 => (0u32..10_000).prop_map(|n| format!("assertion-{n}")),
        1 => arb_garbage(),
    ];
    // Mostly fresh for the whole run (so replays are caught), sometimes expiring early (so apply
    // refuses stale ones and prunes spent ones), sometimes anything.
    let expires_at_unix_s = prop_oneof![
        4 => Just(GENESIS_S + 200_000),
        2 => Just(GENESIS_S + 300),
        1 => any::<u64>(),
    ];
    prop_oneof![
        10 => Just(AssertionChoice::None),
        8 => (jti.clone(), expires_at_unix_s.clone()).prop_map(|(jti, expires_at_unix_s)| {
            AssertionChoice::Own {
                jti,
                expires_at_unix_s,
            }
        }),
        1 => (arb_agent_id(DIRTY), jti, expires_at_unix_s).prop_map(
            |(agent_id, jti, expires_at_unix_s)| {
                AssertionChoice::Any(log::AssertionUse {
                    principal_id: agent_id,
                    jti,
                    expires_at_unix_s,
                })
            }
        ),
    ]
}

/// The principal a command is meant to come from (or another one allowed to send it); `pick`
/// chooses among the allowed ones.
fn coherent_actor(kind: &CommandKind, pick: u8) -> Actor {
    let pick = usize::from(pick);
    let admin_or = |other: Actor| if pick % 4 == 0 { admin() } else { other };
    match kind {
        CommandKind::RegisterHuman(_)
        | CommandKind::RegisterHumans(_)
        | CommandKind::RegisterAgent(_)
        | CommandKind::RegisterService(_)
        | CommandKind::UpdateService(_) => admin(),
        CommandKind::IssueToken(it) => agent_actor(&it.agent_id),
        CommandKind::RevokeToken(_) => [
            admin(),
            agent_actor("bot"),
            agent_actor("bot2"),
            human_actor("alice"),
        ][pick % 4]
            .clone(),
        CommandKind::PublishSigningKey(it) => admin_or(node(it.node_id)),
        CommandKind::RetireSigningKey(_) => [admin(), node(1), node(2)][pick % 3].clone(),
        CommandKind::MarkSigningKeyCompromised(_) => admin_or(node(1)),
        CommandKind::RegisterOperator(_) => admin_or(warrant_identity::fixtures::actor(
            PrincipalKind::Operator,
            "root",
        )),
        CommandKind::UpdateHuman(it) => admin_or(human_actor(&it.human_id)),
        CommandKind::RegisterDevice(it) => admin_or(human_actor(&it.owner_human_id)),
        // Every agent and device in the pools is most likely alice's.
        CommandKind::UpdateAgent(_)
        | CommandKind::UpdateDevice(_)
        | CommandKind::BindAgentDevice(_) => admin_or(human_actor("alice")),
        CommandKind::SetStatus(it) => match EntityKind::try_from(it.entity) {
            Ok(EntityKind::Agent | EntityKind::Device) => admin_or(human_actor("alice")),
            _ => admin(),
        },
        CommandKind::ChangeCredentials(it) => [
            agent_actor(&it.agent_id),
            agent_actor(&it.agent_id),
            human_actor("alice"),
            admin(),
        ][pick % 4]
            .clone(),
        CommandKind::StartSession(it) => Actor {
            kind: it.principal_kind,
            id: it.principal_id.clone(),
            on_behalf_of: Vec::new(),
        },
        CommandKind::EndSession(it) => admin_or(session_principal(&it.session_id)),
        // A root grant: by the human, or by an admin for them.
        CommandKind::CreateDelegation(it) if it.parent_delegation_id.is_empty() => {
            match it.grantor_human_id.as_str() {
                "" => human_actor("alice"),
                grantor if pick % 2 == 0 => human_actor(grantor),
                _ => admin(),
            }
        }
        CommandKind::CreateDelegation(it) => agent_actor(grantee_hint(&it.parent_delegation_id)),
        CommandKind::RevokeDelegation(it) => [
            admin(),
            human_actor("alice"),
            agent_actor(grantee_hint(&it.delegation_id)),
        ][pick % 3]
            .clone(),
        // Policies are an admin's (or an admin operator's).
        CommandKind::PublishPolicy(_)
        | CommandKind::ActivatePolicy(_)
        | CommandKind::RollbackPolicy(_)
        | CommandKind::SetShadowPolicy(_) => admin_or(warrant_identity::fixtures::actor(
            PrincipalKind::Operator,
            "root",
        )),
        // Any authenticated caller may ask: the service the call is to, mostly.
        CommandKind::Authorize(it) => [
            warrant_identity::fixtures::actor(PrincipalKind::Service, &it.service_id),
            warrant_identity::fixtures::actor(PrincipalKind::Service, &it.service_id),
            agent_actor("bot"),
            admin(),
        ][pick % 4]
            .clone(),
        // Only a node records what it decided or saw; sometimes another one claims to.
        CommandKind::RecordAccessDecisions(_) | CommandKind::RecordAuthFailures(_) => {
            [node(1), node(1), node(1), admin()][pick % 4].clone()
        }
        CommandKind::RecordAuditExportProgress(it) => {
            [node(it.node_id), node(it.node_id), node(1), admin()][pick % 4].clone()
        }
    }
}

/// The agent that delegation `delegation_id` is most likely granted to: genesis creates d1 for
/// bot and d2 for bot2, and coherent random grants follow the same map (d3 to bot2, d4 to bot3).
fn grantee_hint(delegation_id: &str) -> &'static str {
    match delegation_id {
        "d2" | "d3" => "bot2",
        "d4" => "bot3",
        _ => "bot",
    }
}

/// The principal whose session `session_id` most likely is: genesis starts s1 for alice and s2
/// for bot, and coherent random sessions follow the same map.
fn session_principal(session_id: &str) -> Actor {
    match session_id {
        "s2" => agent_actor("bot"),
        "s3" => agent_actor("bot2"),
        _ => human_actor("alice"),
    }
}

fn arb_kind(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    Union::new_weighted(vec![
        (5, arb_register_human(dirt)),
        (2, arb_register_humans(dirt)),
        (4, arb_register_agent(dirt)),
        (3, arb_register_service(dirt)),
        (18, arb_issue_token(dirt)),
        (4, arb_revoke_token(dirt)),
        (3, arb_publish_signing_key(dirt)),
        (3, arb_retire_signing_key(dirt)),
        (2, arb_mark_signing_key_compromised(dirt)),
        (1, arb_register_operator()),
        (3, arb_update_human(dirt)),
        (3, arb_update_agent(dirt)),
        (3, arb_update_service(dirt)),
        (4, arb_register_device(dirt)),
        (3, arb_update_device(dirt)),
        (4, arb_bind_agent_device(dirt)),
        (5, arb_set_status(dirt)),
        (4, arb_change_credentials(dirt)),
        (10, arb_start_session(dirt)),
        (4, arb_end_session(dirt)),
        (14, arb_create_delegation(dirt)),
        (3, arb_revoke_delegation(dirt)),
        (2, arb_publish_policy(dirt)),
        (2, arb_activate_policy(dirt)),
        (
            1,
            Just(CommandKind::RollbackPolicy(log::RollbackPolicy {})).boxed(),
        ),
        (1, arb_set_shadow_policy(dirt)),
        (20, arb_authorize(dirt)),
        (2, arb_record_access_decisions(dirt)),
        (2, arb_record_auth_failures(dirt)),
        (1, arb_record_audit_export_progress()),
    ])
    .boxed()
}

/// Progress anywhere from nothing to past the log's end (refused), mostly by node 1.
fn arb_record_audit_export_progress() -> BoxedStrategy<CommandKind> {
    (0u64..40, prop_oneof![3 => Just(1u64), 1 => Just(2u64)])
        .prop_map(|(through_seq, node_id)| {
            CommandKind::RecordAuditExportProgress(log::RecordAuditExportProgress {
                through_seq,
                node_id,
            })
        })
        .boxed()
}

fn arb_register_human(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    arb_human(dirt).prop_map(CommandKind::RegisterHuman).boxed()
}

/// An import of one to four humans, each as [`arb_register_human`] makes them (so ids may repeat
/// within the import, or name a human already registered).
fn arb_register_humans(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    proptest::collection::vec(arb_human(dirt), 1..=4)
        .prop_map(|humans| CommandKind::RegisterHumans(log::RegisterHumans { humans }))
        .boxed()
}

fn arb_human(dirt: Dirt) -> BoxedStrategy<log::RegisterHuman> {
    let password = or_invalid(
        prop_oneof![Just(String::new()), Just(PHC.to_owned())],
        Just("plain".to_owned()),
        dirt,
    );
    (
        arb_new_id(HUMANS, 1, dirt),
        arb_text(dirt),
        arb_text(dirt),
        arb_federated(dirt),
        password,
    )
        .prop_map(
            |(human_id, display_name, email, federated, password_argon2id)| log::RegisterHuman {
                human_id,
                display_name,
                email,
                federated,
                password_argon2id,
            },
        )
        .boxed()
}

fn arb_register_agent(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (
        arb_new_id(AGENTS, 1, dirt),
        arb_human_id(dirt),
        arb_agent_kind(dirt),
        arb_text(dirt),
        arb_credentials(dirt),
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
            },
        )
        .boxed()
}

/// Operator root or ops in any role (unspecified too). Once one is registered, the bootstrap
/// admin's later commands are refused; replicas must agree on that as on everything else.
fn arb_register_operator() -> BoxedStrategy<CommandKind> {
    let id = prop_oneof![Just("root".to_owned()), Just("ops".to_owned())];
    (id, 0i32..4)
        .prop_map(|(operator_id, role)| {
            CommandKind::RegisterOperator(log::RegisterOperator {
                operator_id,
                role,
                display_name: "Operator".to_owned(),
            })
        })
        .boxed()
}

fn arb_register_service(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    // Mostly the audience that names no service yet.
    let audience = prop_oneof![1 => Just(AUDIENCES[2].to_owned()), 1 => arb_audience(dirt)];
    (arb_new_id(SERVICES, 1, dirt), audience, arb_tools(dirt))
        .prop_map(|(service_id, audience, tools)| {
            CommandKind::RegisterService(log::RegisterService {
                service_id,
                audience,
                tools,
            })
        })
        .boxed()
}

fn arb_update_service(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_service_id(dirt), arb_tools(dirt))
        .prop_map(|(service_id, tools)| {
            CommandKind::UpdateService(log::UpdateService { service_id, tools })
        })
        .boxed()
}

/// What an `IssueToken` asks for besides the token itself.
#[derive(Clone, Copy, Debug)]
enum IssueMode {
    /// For the agent itself.
    Plain,
    /// Under a delegation, for its root human.
    Delegated,
    /// Tied to one of the agent's sessions.
    Session,
    /// Exchanging a subject token (RFC 8693) under a delegation.
    Exchange,
    /// Any combination of the three, valid or not.
    Mixed,
}

fn arb_issue_token(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let mode = prop_oneof![
        3 => Just(IssueMode::Plain),
        3 => Just(IssueMode::Delegated),
        3 => Just(IssueMode::Session),
        3 => Just(IssueMode::Exchange),
        1 => Just(IssueMode::Mixed),
    ];
    let ttl_seconds = or_invalid(
        prop_oneof![8 => 1u32..1000, 1 => Just(TOKEN_TTL_MAX_S)],
        prop_oneof![Just(0u32), Just(TOKEN_TTL_MAX_S + 1), any::<u32>()],
        dirt,
    );
    let optional =
        |strategy: BoxedStrategy<String>| prop_oneof![1 => Just(String::new()), 2 => strategy];
    (
        (
            arb_new_jti(dirt),
            arb_issuer(dirt),
            arb_audience_and_scopes(dirt),
            ttl_seconds,
            arb_key_id(dirt),
        ),
        mode,
        proptest::bool::weighted(0.8),
        any::<u8>(),
        (
            arb_delegation_id(dirt),
            // Mostly an agent's session: s2 is bot's, s3 is bot2's if a random batch starts it.
            prop_oneof![
                3 => Just("s2".to_owned()),
                1 => Just("s3".to_owned()),
                1 => arb_session_id(dirt),
            ],
            arb_subject_jti(dirt),
            optional(arb_delegation_id(dirt)),
            optional(arb_session_id(dirt)),
            optional(arb_subject_jti(dirt)),
        ),
    )
        .prop_map(
            |(
                (jti, agent_id, (audience, scopes), ttl_seconds, key_id),
                mode,
                coherent,
                pick,
                (
                    delegation_id,
                    session_id,
                    subject_jti,
                    maybe_delegation,
                    maybe_session,
                    maybe_subject,
                ),
            )| {
                let mut issue = log::IssueToken {
                    jti,
                    agent_id,
                    audience,
                    scopes,
                    ttl_seconds,
                    key_id,
                    ..Default::default()
                };
                match mode {
                    IssueMode::Plain => {}
                    IssueMode::Delegated => {
                        if coherent {
                            issue.agent_id = grantee_hint(&delegation_id).to_owned();
                        }
                        issue.delegation_id = delegation_id;
                    }
                    IssueMode::Session => {
                        let principal = session_principal(&session_id);
                        if coherent && principal.kind == PrincipalKind::Agent as i32 {
                            issue.agent_id = principal.id;
                        }
                        issue.session_id = session_id;
                    }
                    IssueMode::Exchange if coherent => {
                        let (agent_id, delegation_id, subject_jti) =
                            EXCHANGES[usize::from(pick) % EXCHANGES.len()];
                        issue.agent_id = agent_id.to_owned();
                        issue.delegation_id = delegation_id.to_owned();
                        issue.subject_jti = subject_jti.to_owned();
                    }
                    IssueMode::Exchange => {
                        issue.delegation_id = delegation_id;
                        issue.subject_jti = subject_jti;
                    }
                    IssueMode::Mixed => {
                        issue.delegation_id = maybe_delegation;
                        issue.session_id = maybe_session;
                        issue.subject_jti = maybe_subject;
                    }
                }
                CommandKind::IssueToken(issue)
            },
        )
        .boxed()
}

fn arb_revoke_token(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let jti = prop_oneof![3 => arb_subject_jti(dirt), 1 => arb_new_jti(dirt)];
    (jti, arb_text(dirt))
        .prop_map(|(jti, reason)| CommandKind::RevokeToken(log::RevokeToken { jti, reason }))
        .boxed()
}

fn arb_publish_signing_key(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    // Mostly k2, which the genesis batch does not publish.
    let key_id = prop_oneof![2 => Just(KEY_IDS[1].to_owned()), 1 => arb_key_id(dirt)];
    (
        key_id,
        0u64..3,
        or_invalid(Just(SigningAlgorithm::Ed25519 as i32), any::<i32>(), dirt),
        or_invalid(
            prop_oneof![Just(vec![1u8; 32]), Just(vec![2u8; 32])],
            proptest::collection::vec(any::<u8>(), 0..40),
            dirt,
        ),
    )
        .prop_map(|(key_id, node_id, algorithm, public_key)| {
            CommandKind::PublishSigningKey(log::PublishSigningKey {
                key_id,
                node_id,
                algorithm,
                public_key,
            })
        })
        .boxed()
}

fn arb_mark_signing_key_compromised(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    or_garbage(select(KEY_IDS).prop_map(str::to_owned), dirt)
        .prop_map(|key_id| {
            CommandKind::MarkSigningKeyCompromised(log::MarkSigningKeyCompromised {
                key_id,
                reason: "leaked".to_owned(),
            })
        })
        .boxed()
}

fn arb_retire_signing_key(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    or_garbage(select(KEY_IDS).prop_map(str::to_owned), dirt)
        .prop_map(|key_id| CommandKind::RetireSigningKey(log::RetireSigningKey { key_id }))
        .boxed()
}

fn arb_update_human(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_human_id(dirt), arb_text(dirt), arb_text(dirt))
        .prop_map(|(human_id, display_name, email)| {
            CommandKind::UpdateHuman(log::UpdateHuman {
                human_id,
                display_name,
                email,
            })
        })
        .boxed()
}

fn arb_update_agent(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_agent_id(dirt), arb_agent_kind(dirt), arb_text(dirt))
        .prop_map(|(agent_id, kind, description)| {
            CommandKind::UpdateAgent(log::UpdateAgent {
                agent_id,
                kind,
                description,
            })
        })
        .boxed()
}

fn arb_register_device(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (
        arb_new_id(DEVICES, 1, dirt),
        arb_human_id(dirt),
        arb_text(dirt),
        arb_platform(dirt),
    )
        .prop_map(|(device_id, owner_human_id, name, platform)| {
            CommandKind::RegisterDevice(log::RegisterDevice {
                device_id,
                owner_human_id,
                name,
                platform,
            })
        })
        .boxed()
}

fn arb_update_device(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_device_id(dirt), arb_text(dirt), arb_platform(dirt))
        .prop_map(|(device_id, name, platform)| {
            CommandKind::UpdateDevice(log::UpdateDevice {
                device_id,
                name,
                platform,
            })
        })
        .boxed()
}

fn arb_bind_agent_device(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    // An empty device unbinds.
    let device_id = prop_oneof![1 => Just(String::new()), 4 => arb_device_id(dirt)];
    (arb_agent_id(dirt), device_id)
        .prop_map(|(agent_id, device_id)| {
            CommandKind::BindAgentDevice(log::BindAgentDevice {
                agent_id,
                device_id,
            })
        })
        .boxed()
}

fn arb_set_status(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let entity = or_invalid(
        prop_oneof![
            2 => Just(EntityKind::Human as i32),
            3 => Just(EntityKind::Agent as i32),
            2 => Just(EntityKind::Service as i32),
            3 => Just(EntityKind::Device as i32),
        ],
        any::<i32>(),
        dirt,
    );
    (
        entity,
        (
            arb_human_id(dirt),
            arb_agent_id(dirt),
            arb_service_id(dirt),
            arb_device_id(dirt),
            arb_id(dirt),
        ),
        proptest::bool::weighted(0.9),
        proptest::bool::weighted(0.6),
        arb_text(dirt),
    )
        .prop_map(
            |(
                entity,
                (human_id, agent_id, service_id, device_id, other),
                coherent,
                disabled,
                reason,
            )| {
                let id = match EntityKind::try_from(entity) {
                    _ if !coherent => other,
                    Ok(EntityKind::Human) => human_id,
                    Ok(EntityKind::Agent) => agent_id,
                    Ok(EntityKind::Service) => service_id,
                    Ok(EntityKind::Device) => device_id,
                    _ => other,
                };
                CommandKind::SetStatus(log::SetStatus {
                    entity,
                    id,
                    disabled,
                    reason,
                })
            },
        )
        .boxed()
}

fn arb_change_credentials(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let remove = proptest::collection::vec(
        or_garbage(select(CREDENTIAL_IDS).prop_map(str::to_owned), dirt),
        0..2,
    );
    let changes = (arb_credentials(dirt), remove).prop_filter(
        "a change adds or removes something",
        move |(add, remove)| dirt != CLEAN || !(add.is_empty() && remove.is_empty()),
    );
    (arb_agent_id(dirt), changes)
        .prop_map(|(agent_id, (add, remove))| {
            CommandKind::ChangeCredentials(log::ChangeCredentials {
                agent_id,
                add,
                remove,
            })
        })
        .boxed()
}

fn arb_start_session(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let principal_kind = or_invalid(
        prop_oneof![
            Just(PrincipalKind::Human as i32),
            Just(PrincipalKind::Agent as i32),
        ],
        any::<i32>(),
        dirt,
    );
    let ttl_seconds = or_invalid(
        prop_oneof![8 => 1u32..100_000, 1 => Just(SESSION_TTL_MAX_S)],
        prop_oneof![Just(0u32), Just(SESSION_TTL_MAX_S + 1)],
        dirt,
    );
    // Mostly new sessions and tokens: the genesis batch already has s1 and s2, and t-alice.
    let session_id = arb_new_id(SESSIONS, 2, dirt);
    let token_jti = or_garbage(
        prop_oneof![
            1 => select(&["t-alice", "t2"][..]).prop_map(str::to_owned),
            4 => (0u32..10_000).prop_map(|n| format!("session-token-{n}")),
        ],
        dirt,
    );
    let token_audience = or_garbage(Just(ISSUER.to_owned()), dirt);
    let device_id = prop_oneof![3 => Just(String::new()), 2 => arb_device_id(dirt)];
    (
        session_id,
        principal_kind,
        (arb_human_id(dirt), arb_agent_id(dirt)),
        device_id,
        (
            proptest::bool::weighted(if dirt == CLEAN { 1.0 } else { 0.7 }),
            any::<bool>(),
            any::<i32>(),
        ),
        ttl_seconds,
        arb_federated(dirt),
        (token_jti, arb_key_id(dirt), token_audience),
    )
        .prop_map(
            |(
                session_id,
                principal_kind,
                (human_id, agent_id),
                device_id,
                (coherent, which, other_method),
                ttl_seconds,
                federated,
                (token_jti, token_key_id, token_audience),
            )| {
                let is_human = principal_kind == PrincipalKind::Human as i32;
                let auth_method = match (coherent, is_human, which) {
                    (false, _, _) => other_method.rem_euclid(6),
                    (true, true, true) => AuthMethod::LocalPassword as i32,
                    (true, true, false) => AuthMethod::OidcIdToken as i32,
                    (true, false, true) => AuthMethod::ClientSecret as i32,
                    (true, false, false) => AuthMethod::PrivateKeyJwt as i32,
                };
                // An id_token login names the identity it verified.
                let federated = match (
                    federated,
                    coherent && auth_method == AuthMethod::OidcIdToken as i32,
                ) {
                    (None, true) => Some(self::federated(FEDERATED[0])),
                    (federated, _) => federated,
                };
                let principal_id = if is_human { human_id } else { agent_id };
                CommandKind::StartSession(log::StartSession {
                    session_id,
                    principal_kind,
                    principal_id,
                    device_id,
                    auth_method,
                    ttl_seconds,
                    federated,
                    token_jti,
                    token_key_id,
                    token_audience,
                })
            },
        )
        .boxed()
}

fn arb_end_session(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_session_id(dirt), arb_text(dirt))
        .prop_map(|(session_id, reason)| {
            CommandKind::EndSession(log::EndSession { session_id, reason })
        })
        .boxed()
}

fn arb_create_delegation(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let delegation_id = arb_new_id(DELEGATIONS, 2, dirt);
    // A root grant, or a child mostly of d1 (the one grant sure to exist).
    let parent_delegation_id = prop_oneof![
        4 => Just(String::new()),
        3 => Just("d1".to_owned()),
        3 => arb_delegation_id(dirt),
    ];
    let child_shape = prop_oneof![
        3 => Just(ChildShape::Fits),
        2 => Just(ChildShape::WiderScopes),
        2 => Just(ChildShape::WiderAudiences),
        2 => Just(ChildShape::LaterExpiry),
        1 => Just(ChildShape::Deeper),
        2 => Just(ChildShape::BiggerBudget),
        2 => Just(ChildShape::Drawn),
    ];
    let audiences = or_invalid(
        prop_oneof![
            4 => Just(strings(&["https://mail"])),
            2 => proptest::sample::subsequence(AUDIENCES, 1..=2)
                .prop_map(|it| it.into_iter().map(str::to_owned).collect()),
        ],
        proptest::collection::vec(arb_audience(dirt), 0..3),
        dirt,
    );
    // After every plausible batch stamp, mostly; the two before it make grants that expire
    // within the range of batch stamps (or are refused as already expired).
    let expires_at_unix_s = or_invalid(
        prop_oneof![
            1 => select(&[40_000, 90_000][..]).prop_map(|offset| GENESIS_S + offset),
            6 => select(&[86_400, 2 * 86_400, 10 * 86_400][..])
                .prop_map(|offset| GENESIS_S + BATCH_SPREAD_S + offset),
            // Past d1's expiry: only for a root grant.
            2 => Just(GENESIS_S + D1_TTL_S + 86_400),
        ],
        prop_oneof![Just(0u64), Just(GENESIS_S + 32 * 86_400), any::<u64>()],
        dirt,
    );
    let max_depth = or_invalid(
        prop_oneof![8 => 1u32..5, 1 => Just(DELEGATION_DEPTH_MAX)],
        prop_oneof![Just(0u32), Just(DELEGATION_DEPTH_MAX + 1), any::<u32>()],
        dirt,
    );
    let grantor_human_id = prop_oneof![1 => Just(String::new()), 1 => arb_human_id(dirt)];
    (
        (
            delegation_id,
            parent_delegation_id,
            arb_agent_id(dirt),
            arb_budget(dirt),
        ),
        (proptest::bool::weighted(0.8), child_shape),
        arb_scopes(dirt),
        audiences,
        arb_text(dirt),
        expires_at_unix_s,
        max_depth,
        grantor_human_id,
    )
        .prop_map(
            |(
                (delegation_id, parent_delegation_id, grantee_agent_id, budget),
                (coherent, child_shape),
                scopes,
                audiences,
                task,
                expires_at_unix_s,
                max_depth,
                grantor_human_id,
            )| {
                let grantee_agent_id = if coherent {
                    grantee_hint(&delegation_id).to_owned()
                } else {
                    grantee_agent_id
                };
                let mut grant = log::CreateDelegation {
                    delegation_id,
                    parent_delegation_id,
                    grantee_agent_id,
                    scopes,
                    audiences,
                    task,
                    expires_at_unix_s,
                    max_depth,
                    grantor_human_id,
                    budget,
                };
                if coherent && !grant.parent_delegation_id.is_empty() {
                    child_shape.apply(&mut grant);
                }
                CommandKind::CreateDelegation(grant)
            },
        )
        .boxed()
}

/// How a child grant relates to its parent: left to chance, a child would almost never fit
/// within its parent in every respect but one, and the attenuation rules would go untested.
#[derive(Clone, Copy, Debug)]
enum ChildShape {
    /// Within the parent (as far as the parent is known: d1 or d2).
    Fits,
    /// Within the parent but for one more scope.
    WiderScopes,
    /// Within the parent but for one more audience.
    WiderAudiences,
    /// Within the parent but for a day more than it.
    LaterExpiry,
    /// Within the parent but for allowing a deeper chain.
    Deeper,
    /// Within the parent but for a call budget larger than d1's.
    BiggerBudget,
    /// As drawn.
    Drawn,
}

impl ChildShape {
    fn apply(self, grant: &mut log::CreateDelegation) {
        // What the genesis batch granted; d3 and d4 are whatever a random batch made them.
        let (parent_max_depth, parent_expires_at_unix_s) = match grant.parent_delegation_id.as_str()
        {
            "d1" => (3, GENESIS_S + D1_TTL_S),
            "d2" => (2, GENESIS_S + D2_TTL_S),
            _ => (3, GENESIS_S + BATCH_SPREAD_S + 86_400),
        };
        if matches!(self, Self::Drawn) {
            return;
        }
        grant.scopes = strings(&["send"]);
        grant.audiences = strings(&[AUDIENCES[0]]);
        grant.expires_at_unix_s = parent_expires_at_unix_s - 1000;
        grant.max_depth = parent_max_depth;
        match self {
            Self::Fits | Self::Drawn => {}
            Self::WiderScopes => grant.scopes.push("read".to_owned()),
            Self::WiderAudiences => grant.audiences.push(AUDIENCES[1].to_owned()),
            Self::LaterExpiry => grant.expires_at_unix_s = parent_expires_at_unix_s + 86_400,
            Self::Deeper => grant.max_depth = parent_max_depth + 1,
            Self::BiggerBudget => {
                grant.budget = Some(log::CallBudget {
                    total: D1_BUDGET.total + 1,
                    tools: Vec::new(),
                });
            }
        }
    }
}

fn arb_revoke_delegation(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    (arb_delegation_id(dirt), arb_text(dirt))
        .prop_map(|(delegation_id, reason)| {
            CommandKind::RevokeDelegation(log::RevokeDelegation {
                delegation_id,
                reason,
            })
        })
        .boxed()
}

/// A call budget: mostly none, else small totals and a per-tool limit on send, some above the
/// genesis d1's (a child asking for them is refused), and in a dirty command limits out of range
/// or tools out of order.
fn arb_budget(dirt: Dirt) -> BoxedStrategy<Option<log::CallBudget>> {
    let tool = |tool: &str, limit: u64| log::ToolBudget {
        tool: tool.to_owned(),
        limit,
    };
    let valid = prop_oneof![
        4 => Just(None),
        1 => (1u64..4).prop_map(|total| Some(log::CallBudget { total, tools: Vec::new() })),
        1 => (0u64..9, 1u64..4).prop_map(move |(total, limit)| Some(log::CallBudget {
            total,
            tools: vec![tool("send", limit)],
        })),
    ];
    let invalid = prop_oneof![
        Just(Some(log::CallBudget {
            total: limits::BUDGET_UNITS_MAX + 1,
            tools: Vec::new(),
        })),
        Just(Some(log::CallBudget {
            total: 1,
            tools: vec![tool("send", 0)],
        })),
        Just(Some(log::CallBudget {
            total: 0,
            tools: vec![tool("send", 1), tool("read", 1)],
        })),
    ];
    or_invalid(valid, invalid, dirt)
}

/// A few fixed policy texts: valid ones (a forbid on large amounts, a harmless permit) and
/// invalid ones (a syntax error, garbage).
fn arb_publish_policy(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    const TEXTS: &[&str] = &[
        "@id(\"big\") forbid(principal, action, resource) when { context.attributes has amount \
         && context.attributes.amount > 10000 };",
        "permit(principal, action, resource);",
        "forbid(principal, action == Action::\"call\", resource) when { context.depth > 1 };",
        "forbid(principal",
        "@id(\"warrant.delegation\") forbid(principal, action, resource);",
    ];
    let attributes = prop_oneof![
        Just(Vec::new()),
        Just(vec![log::PolicyAttribute {
            name: "amount".to_owned(),
            r#type: log::PolicyAttributeType::Long as i32,
        }]),
    ];
    (
        or_garbage(select(TEXTS).prop_map(str::to_owned), dirt),
        arb_text(dirt),
        attributes,
    )
        .prop_map(|(text, description, attributes)| {
            CommandKind::PublishPolicy(log::PublishPolicy {
                text,
                description,
                attributes,
            })
        })
        .boxed()
}

fn arb_policy_version(dirt: Dirt) -> BoxedStrategy<u32> {
    or_invalid(0u32..4, any::<u32>(), dirt)
}

fn arb_activate_policy(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    arb_policy_version(dirt)
        .prop_map(|version| CommandKind::ActivatePolicy(log::ActivatePolicy { version }))
        .boxed()
}

fn arb_set_shadow_policy(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    arb_policy_version(dirt)
        .prop_map(|version| CommandKind::SetShadowPolicy(log::SetShadowPolicy { version }))
        .boxed()
}

/// A SYNC decision: mostly a genesis token (jd1 under the budgeted d1 is in force for most
/// stamps; j1 expires early; t-alice is a human's) on a tool of mail, sometimes a token the API
/// node found invalid, a token never issued, another service or tool; with caller attributes.
fn arb_authorize(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let token = prop_oneof![
        8 => Just(("jd1".to_owned(), 0u32)),
        2 => select(&["j1", "t-alice"][..]).prop_map(|jti| (jti.to_owned(), 0u32)),
        1 => Just((String::new(), 3u32)),
        1 => arb_new_jti(dirt).prop_map(|jti| (jti, 0u32)),
    ];
    let service_id = prop_oneof![8 => Just("mail".to_owned()), 1 => arb_service_id(dirt)];
    let tool = prop_oneof![
        8 => Just("send".to_owned()),
        2 => select(SCOPES).prop_map(str::to_owned),
        1 => arb_id(dirt),
    ];
    (
        token,
        service_id,
        tool,
        arb_caller_attributes(dirt),
        prop_oneof![4 => Just(1u64), 1 => Just(2u64)],
    )
        .prop_map(
            |((token_jti, token_invalid_reason), service_id, tool, attributes, node_id)| {
                CommandKind::Authorize(log::Authorize {
                    token_jti,
                    token_invalid_reason,
                    service_id,
                    tool,
                    attributes,
                    serving_node_id: node_id,
                    token_invalid_message: if token_invalid_reason == 0 {
                        String::new()
                    } else {
                        "bad signature".to_owned()
                    },
                })
            },
        )
        .boxed()
}

fn arb_caller_attributes(dirt: Dirt) -> BoxedStrategy<Vec<log::CallerAttribute>> {
    use log::caller_attribute::Value;
    let value = prop_oneof![
        prop_oneof![Just(50i64), Just(20_000i64), any::<i64>()].prop_map(Value::LongValue),
        select(&["EUR", "USD"][..]).prop_map(|it| Value::StringValue(it.to_owned())),
        any::<bool>().prop_map(Value::BoolValue),
    ];
    let name = or_invalid(
        select(&["amount", "currency", "urgent"][..]).prop_map(str::to_owned),
        prop_oneof![
            Just("1st".to_owned()),
            Just("a-b".to_owned()),
            arb_garbage()
        ],
        dirt,
    );
    let attribute = (name, proptest::option::weighted(0.95, value))
        .prop_map(|(name, value)| log::CallerAttribute { name, value });
    // Names may repeat (refused): three draws from three names.
    proptest::collection::vec(attribute, 0..3).boxed()
}

/// ASYNC receipts as a node records them: its own (node 1) mostly, sometimes another node's.
fn arb_record_access_decisions(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let receipt = (
        0u32..10_000,
        select(&[1u64, 1, 1, 2][..]),
        any::<bool>(),
        select(&["send", "read"][..]),
    )
        .prop_map(|(n, serving_node_id, allow, tool)| log::AccessDecided {
            decision_id: format!("rcpt-{n}"),
            decision: if allow {
                log::AccessDecision::Allow as i32
            } else {
                log::AccessDecision::Deny as i32
            },
            deny_reason: if allow {
                0
            } else {
                log::AccessDenyReason::ToolNotInScope as i32
            },
            principal_kind: PrincipalKind::Agent as i32,
            principal_id: "bot".to_owned(),
            service_id: "mail".to_owned(),
            tool: tool.to_owned(),
            token_jti: "jd1".to_owned(),
            serving_node_id,
            mode: log::AccessMode::Async as i32,
            ..Default::default()
        });
    let count = if dirt == CLEAN { 1..4usize } else { 0..4usize };
    proptest::collection::vec(receipt, count)
        .prop_map(|decisions| {
            CommandKind::RecordAccessDecisions(log::RecordAccessDecisions { decisions })
        })
        .boxed()
}

/// Auth-failure aggregates from node 1 (sometimes claiming node 2's), with bounded or garbage
/// claimed ids and reasons.
fn arb_record_auth_failures(dirt: Dirt) -> BoxedStrategy<CommandKind> {
    let entry = (
        or_garbage(
            select(&["bot", "mallory", "(other)"][..]).prop_map(str::to_owned),
            dirt,
        ),
        or_garbage(
            select(&["UNAUTHENTICATED", "AUTH_RATE_LIMITED"][..]).prop_map(str::to_owned),
            dirt,
        ),
        or_invalid(1u64..1000, Just(0u64), dirt),
        select(&[1u64, 1, 1, 2][..]),
    )
        .prop_map(|(claimed_id, reason, count, node_id)| log::AuthFailures {
            claimed_kind: PrincipalKind::Agent as i32,
            claimed_id,
            reason,
            count,
            first_unix_ms: GENESIS_S * 1000,
            last_unix_ms: GENESIS_S * 1000 + count,
            node_id,
        });
    let count = if dirt == CLEAN { 1..4usize } else { 0..4usize };
    proptest::collection::vec(entry, count)
        .prop_map(|failures| CommandKind::RecordAuthFailures(log::RecordAuthFailures { failures }))
        .boxed()
}

fn arb_credentials(dirt: Dirt) -> BoxedStrategy<Vec<Credential>> {
    let kind = or_invalid(
        prop_oneof![
            Just(Some(CredentialKind::ClientSecretArgon2id(PHC.to_owned()))),
            Just(Some(CredentialKind::Ed25519PublicKey(vec![9; 32]))),
        ],
        prop_oneof![
            Just(Some(CredentialKind::ClientSecretArgon2id(
                "plain".to_owned()
            ))),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|key| Some(CredentialKind::Ed25519PublicKey(key))),
            Just(None),
        ],
        dirt,
    );
    let credential = (
        or_garbage(select(CREDENTIAL_IDS).prop_map(str::to_owned), dirt),
        kind,
    )
        .prop_map(|(credential_id, kind)| Credential {
            credential_id,
            kind,
        });
    proptest::collection::vec(credential, 0..3)
        .prop_filter("credential ids are unique", move |credentials| {
            dirt != CLEAN || {
                let ids: BTreeSet<&str> = credentials
                    .iter()
                    .map(|it| it.credential_id.as_str())
                    .collect();
                ids.len() == credentials.len()
            }
        })
        .boxed()
}

fn arb_federated(dirt: Dirt) -> BoxedStrategy<Option<FederatedIdentity>> {
    or_invalid(
        prop_oneof![
            1 => Just(None),
            2 => select(FEDERATED).prop_map(|it| Some(federated(it))),
        ],
        (arb_garbage(), arb_garbage())
            .prop_map(|(issuer, subject)| Some(FederatedIdentity { issuer, subject })),
        dirt,
    )
}

fn arb_tools(dirt: Dirt) -> BoxedStrategy<Vec<log::Tool>> {
    let names = or_invalid(
        proptest::sample::subsequence(SCOPES, 0..=3)
            .prop_map(|it| it.into_iter().map(str::to_owned).collect::<Vec<_>>()),
        proptest::collection::vec(arb_id(dirt), 0..4),
        dirt,
    );
    (names, arb_text(dirt))
        .prop_map(|(names, description)| {
            names
                .into_iter()
                .map(|name| log::Tool {
                    name,
                    description: description.clone(),
                })
                .collect()
        })
        .boxed()
}

/// A random actor, for the commands whose actor is not made coherent.
fn arb_actor() -> BoxedStrategy<Actor> {
    let kind = prop_oneof![
        3 => Just(PrincipalKind::Admin as i32),
        4 => Just(PrincipalKind::Agent as i32),
        2 => Just(PrincipalKind::Node as i32),
        2 => Just(PrincipalKind::Human as i32),
        1 => Just(PrincipalKind::Service as i32),
        1 => any::<i32>(),
    ];
    let actor_id = prop_oneof![
        8 => select(IDS).prop_map(str::to_owned),
        2 => select(&["root", "1", "bot3", "carol"][..]).prop_map(str::to_owned),
        1 => arb_garbage(),
    ];
    let on_behalf_of = prop_oneof![
        4 => Just(Vec::new()),
        1 => proptest::collection::vec(arb_id(DIRTY), 1..3),
    ];
    (kind, actor_id, on_behalf_of)
        .prop_map(|(kind, id, on_behalf_of)| Actor {
            kind,
            id,
            on_behalf_of,
        })
        .boxed()
}

fn disable(entity: EntityKind, id: &str) -> CommandKind {
    CommandKind::SetStatus(log::SetStatus {
        entity: entity as i32,
        id: id.to_owned(),
        disabled: true,
        reason: String::new(),
    })
}

fn federated((issuer, subject): (&str, &str)) -> FederatedIdentity {
    FederatedIdentity {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
    }
}

fn tools(names: &[&str]) -> Vec<log::Tool> {
    names
        .iter()
        .map(|name| log::Tool {
            name: (*name).to_owned(),
            description: String::new(),
        })
        .collect()
}

/// `strategy`, or in a dirty command sometimes a string that breaks a rule.
fn or_garbage(
    strategy: impl Strategy<Value = String> + 'static,
    dirt: Dirt,
) -> BoxedStrategy<String> {
    or_invalid(strategy, arb_garbage(), dirt)
}

/// `valid`, or in a dirty command sometimes `invalid`.
fn or_invalid<T: std::fmt::Debug + Clone + 'static>(
    valid: impl Strategy<Value = T> + 'static,
    invalid: impl Strategy<Value = T> + 'static,
    dirt: Dirt,
) -> BoxedStrategy<T> {
    if dirt == CLEAN {
        valid.boxed()
    } else {
        Union::new_weighted(vec![(10, valid.boxed()), (dirt, invalid.boxed())]).boxed()
    }
}

/// An id from `pool`, by weight; sometimes another plausible id, and in a dirty command sometimes
/// garbage.
fn arb_pooled(pool: Pool, dirt: Dirt) -> BoxedStrategy<String> {
    let weighted = Union::new_weighted(
        pool.iter()
            .map(|(id, weight)| (*weight, Just((*id).to_owned())))
            .collect(),
    );
    or_garbage(
        prop_oneof![
            12 => weighted,
            1 => select(IDS).prop_map(str::to_owned),
        ],
        dirt,
    )
}

/// For a command that creates something: half the time an id the genesis batch did not create
/// (the last `n_new` of `pool`).
fn arb_new_id(pool: Pool, n_new: usize, dirt: Dirt) -> BoxedStrategy<String> {
    let new: Vec<String> = pool[pool.len() - n_new..]
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect();
    prop_oneof![1 => arb_pooled(pool, dirt), 1 => select(new)].boxed()
}

fn arb_human_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(HUMANS, dirt)
}

fn arb_agent_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(AGENTS, dirt)
}

fn arb_service_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(SERVICES, dirt)
}

fn arb_device_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(DEVICES, dirt)
}

fn arb_session_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(SESSIONS, dirt)
}

fn arb_delegation_id(dirt: Dirt) -> BoxedStrategy<String> {
    arb_pooled(DELEGATIONS, dirt)
}

fn arb_agent_kind(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(select(&["mcp", "cli"][..]).prop_map(str::to_owned), dirt)
}

fn arb_platform(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(
        select(&["", "macos", "linux"][..]).prop_map(str::to_owned),
        dirt,
    )
}

fn arb_id(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(select(IDS).prop_map(str::to_owned), dirt)
}

/// A jti for a new token: mostly fresh, sometimes one already issued.
fn arb_new_jti(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(
        prop_oneof![
            1 => select(&["j1", "j2", "j3"][..]).prop_map(str::to_owned),
            3 => (0u32..10_000).prop_map(|n| format!("jti-{n}")),
        ],
        dirt,
    )
}

/// A token to exchange or revoke: mostly one the genesis batch issued.
fn arb_subject_jti(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(select(TOKEN_JTIS).prop_map(str::to_owned), dirt)
}

/// The agent a token is asked for: mostly the one the genesis batch registers.
fn arb_issuer(dirt: Dirt) -> BoxedStrategy<String> {
    prop_oneof![3 => Just("bot".to_owned()), 2 => arb_agent_id(dirt)].boxed()
}

/// Scopes for a token or delegation: a set of tool names, mostly ["send"], which the genesis
/// delegations grant; in a dirty command sometimes empty, repeated or garbage.
fn arb_scopes(dirt: Dirt) -> BoxedStrategy<Vec<String>> {
    or_invalid(
        prop_oneof![
            4 => Just(strings(&["send"])),
            2 => Just(strings(&["read"])),
            1 => Just(strings(&["send", "read"])),
            1 => proptest::sample::subsequence(SCOPES, 1..=2)
                .prop_map(|it| it.into_iter().map(str::to_owned).collect()),
        ],
        proptest::collection::vec(
            or_garbage(select(SCOPES).prop_map(str::to_owned), dirt),
            0..3,
        ),
        dirt,
    )
}

/// A token's audience and scopes: mostly tools of that audience's service.
fn arb_audience_and_scopes(dirt: Dirt) -> BoxedStrategy<(String, Vec<String>)> {
    let scopes = |sets: &'static [&'static [&'static str]]| select(sets).prop_map(strings);
    prop_oneof![
        6 => (Just(AUDIENCES[0].to_owned()), scopes(&[&["send"], &["read"], &["send", "read"]])),
        2 => (Just(AUDIENCES[1].to_owned()), scopes(&[&["read"], &["write"], &["read", "write"]])),
        2 => (arb_audience(dirt), arb_scopes(dirt)),
    ]
    .boxed()
}

fn arb_audience(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(
        prop_oneof![
            4 => Just(AUDIENCES[0].to_owned()),
            1 => select(AUDIENCES).prop_map(str::to_owned),
        ],
        dirt,
    )
}

fn arb_key_id(dirt: Dirt) -> BoxedStrategy<String> {
    // Mostly k1, which the genesis batch publishes.
    or_garbage(
        prop_oneof![
            6 => Just(KEY_IDS[0].to_owned()),
            1 => select(KEY_IDS).prop_map(str::to_owned),
        ],
        dirt,
    )
}

fn arb_idempotency_key() -> impl Strategy<Value = String> {
    // A few keys reused often (retries and reuse), and many fresh ones so that actors do not
    // run out of unused keys and see nothing but replays.
    prop_oneof![
        6 => select(&["r1", "r2", "r3", "r4"][..]).prop_map(str::to_owned),
        12 => (0u32..10_000).prop_map(|n| format!("fresh-{n}")),
        1 => arb_garbage(),
    ]
}

fn arb_text(dirt: Dirt) -> BoxedStrategy<String> {
    or_garbage(select(&["", "Some text"][..]).prop_map(str::to_owned), dirt)
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
        8 => Just(vec![1u8; 32]),
        8 => Just(vec![2u8; 32]),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}
