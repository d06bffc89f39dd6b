//! Tests for `apply_batch`, written as data: commands built by the constructors of
//! [`crate::fixtures`], run through one `check_*` helper per kind of expectation.
//!
//! This module holds the harness ([`Replica`] and its worlds) and the helpers; each child holds
//! the tests of one concern, as the modules of `apply` divide them.

#![allow(clippy::unwrap_used)]

use warrant_proto::log::{Accepted, Batch, Command, Event, Outcome, RejectReason};

use super::*;
use crate::{
    InMemoryState,
    fixtures::*,
    limits::TOKEN_TTL_SECONDS_MAX,
    state_digest,
    validity::{self, Lapse, LapseKind},
};
use warrant_proto::state::{DelegationRow, SessionRow, TokenRow};
use warrant_proto::{
    log::{
        Actor, Credential, PrincipalKind, SigningAlgorithm, Tool,
        credential::Kind as CredentialKind, event::Kind as EventKind,
    },
    state::{AgentRow, HumanRow, ServiceRow, SigningKeyRow, Status},
};

mod access;
mod assertions;
mod audit_export;
mod corrupt_state;
mod credentials;
mod delegations;
mod devices;
mod envelope;
mod history;
mod idempotency;
mod operators;
mod policies;
mod principals;
mod sessions;
mod signing_keys;
mod status;
mod tokens;

/// The batch stamp of set-up batches.
const T0: u64 = 1_700_000_000_000;
/// The batch stamp of the batch under test.
const T1: u64 = 1_700_000_123_456;

/// One replica's store plus the log index of its last batch.
#[derive(Clone)]
struct Replica {
    state: InMemoryState,
    log_index: u64,
    /// What apply records besides the events: everything, as `apply_batch` does, unless a test
    /// looks at one record alone.
    records: AuditRecords,
}

impl Replica {
    fn new() -> Self {
        Self {
            state: InMemoryState::new(),
            log_index: 0,
            records: AuditRecords::ALL,
        }
    }

    /// This replica, applying with only `records` from now on.
    fn recording(self, records: AuditRecords) -> Self {
        Self { records, ..self }
    }

    /// The replica every rejection test starts from: human alice, her agent bot, service mail
    /// (tools send and read) and signing key k1.
    fn world() -> Self {
        let mut replica = Self::new();
        for command in [
            register_human("alice"),
            agent("bot", "alice").by(admin()),
            service("mail", MAIL, &["send", "read"]).by(admin()),
            signing_key("k1", 1).by(node(1)),
        ] {
            let applied = replica.apply(T0, vec![command]);
            assert!(
                !applied.events.is_empty(),
                "set-up rejected: {:?}",
                applied.outcomes
            );
        }
        replica
    }

    /// Applies one batch at the next log index and commits its writes.
    fn apply(&mut self, time_unix_ms: u64, commands: Vec<Command>) -> AppliedBatch {
        self.log_index += 1;
        let batch = Batch {
            time_unix_ms,
            commands,
        };
        let applied = apply_recording(&self.state, &batch, self.log_index, self.records).unwrap();
        assert_eq!(applied.outcomes.len(), batch.commands.len());
        self.state.apply_writes(&applied.writes);
        applied
    }

    /// Stores `row` under `key` directly: the way to reach states no command produces yet, such
    /// as a disabled human.
    fn put_row(&mut self, key: Vec<u8>, row: &impl Message) {
        let mut writes = WriteSet::new();
        writes.put(key, row.encode_to_vec());
        self.state.apply_writes(&writes);
    }

    fn digest(&self) -> [u8; 32] {
        state_digest(&self.state).unwrap()
    }

    fn seq(&self) -> u64 {
        query::applied_seq(&self.state).unwrap()
    }

    /// Applies each command in a batch of its own stamped T0, checking that each adds an event.
    fn set_up(&mut self, commands: impl IntoIterator<Item = Command>) {
        for command in commands {
            let context = format!("{command:?}");
            let applied = self.apply(T0, vec![command]);
            assert_eq!(
                applied.events.len(),
                1,
                "set-up {context}: {:?}",
                applied.outcomes
            );
        }
    }

    fn token_row(&self, jti: &str) -> TokenRow {
        query::token(&self.state, jti)
            .expect("the store reads")
            .expect("the token was issued")
    }
}

/// Applies `command` alone and checks its handler rejected it for `reason` with exactly
/// `message`: the refusal is on the record as one `CommandRejected` event at the next seq, the
/// outcome is kept under the idempotency key (with the assertion spent, if any), nothing else is
/// written, and a retry replays the refusal and adds nothing.
fn check_rejected(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
    let seq_before = replica.seq();
    let context = format!("{command:?}");
    let applied = replica.apply(T1, vec![command.clone()]);
    let expected = rejected(reason, message.to_owned());
    assert_eq!(
        applied.outcomes,
        std::slice::from_ref(&expected),
        "command {context}"
    );
    let [event] = applied.events.as_slice() else {
        panic!(
            "command {context}: expected one event, got {:?}",
            applied.events
        );
    };
    let kind = crate::apply::envelope::kind_name(command.kind.as_ref().unwrap());
    assert_eq!(
        event.kind,
        Some(EventKind::CommandRejected(log::CommandRejected {
            command_kind: kind.to_owned(),
            reason: reason as i32,
            message: message.to_owned(),
        })),
        "command {context}"
    );
    assert_eq!(event.seq, seq_before + 1);
    assert_eq!(event.actor, command.actor);
    assert_eq!(replica.seq(), seq_before + 1);
    let actor = command.actor.clone().unwrap();
    let idempotency_key = keys::idempotency(actor.kind, &actor.id, &command.idempotency_key);
    let mut written: Vec<&[u8]> = applied.writes.ops.keys().map(Vec::as_slice).collect();
    written.retain(|key| {
        !key.starts_with(keys::ASSERTION_PREFIX)
            && !key.starts_with(keys::ASSERTION_BY_EXPIRY_PREFIX)
            && !is_tree_row(key)
    });
    // No projection row, so no version either: only the time index of the audit rows.
    let mut allowed = [
        keys::LAST_SEQ.to_vec(),
        keys::event(event.seq),
        idempotency_key,
        keys::version_time(T1),
    ];
    allowed.sort();
    written.sort();
    assert_eq!(
        written,
        allowed.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        "command {context}"
    );
    let digest = replica.digest();
    let retried = replica.apply(T1, vec![command]);
    assert_eq!(retried.outcomes, [expected], "retry of {context}");
    assert_eq!(retried.events, [], "retry of {context}");
    assert!(retried.writes.is_empty(), "retry of {context}");
    assert_eq!(replica.digest(), digest);
}

/// Applies `command` alone and checks it is refused before its handler (envelope, idempotency,
/// the caller's credential, the assertion: an authentication failure) for `reason` with exactly
/// `message`, and that the state, including its events, is unchanged.
fn check_refused(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
    let digest_before = replica.digest();
    let seq_before = replica.seq();
    let context = format!("{command:?}");
    let applied = replica.apply(T1, vec![command]);
    assert_eq!(
        applied.outcomes,
        [rejected(reason, message.to_owned())],
        "command {context}"
    );
    assert_eq!(applied.events, [], "command {context}");
    assert!(applied.writes.is_empty(), "command {context}");
    assert_eq!(replica.seq(), seq_before);
    assert_eq!(replica.digest(), digest_before);
}

/// Applies `command` alone, checks it is accepted as new with one event, and returns the
/// outcome and the event.
fn check_accepted(replica: &mut Replica, command: Command) -> (Accepted, Event) {
    let seq_before = replica.seq();
    let applied = replica.apply(T1, vec![command.clone()]);
    let accepted = accepted_of(&applied.outcomes[0]);
    assert!(accepted.changed && !accepted.replayed, "{accepted:?}");
    assert_eq!(accepted.seq, seq_before + 1);
    assert_eq!(replica.seq(), seq_before + 1);
    let [event] = applied.events.as_slice() else {
        panic!("expected one event, got {:?}", applied.events);
    };
    assert_eq!(event.seq, accepted.seq);
    assert_eq!(event.time_unix_ms, T1);
    assert_eq!(event.log_index, replica.log_index);
    assert_eq!(event.batch_position, 0);
    assert_eq!(event.idempotency_key, command.idempotency_key);
    assert_eq!(event.actor, command.actor);
    assert_eq!(
        query::events(&replica.state, event.seq, 10).unwrap(),
        std::slice::from_ref(event)
    );
    (accepted, event.clone())
}

/// Applies `command` alone and checks it is accepted as a no-op: no event, no writes.
fn check_unchanged(replica: &mut Replica, command: Command) {
    let digest_before = replica.digest();
    let seq_before = replica.seq();
    let applied = replica.apply(T1, vec![command]);
    let expected = Accepted {
        seq: seq_before,
        replayed: false,
        token_issued: None,
        changed: false,
        ..Default::default()
    };
    assert_eq!(accepted_of(&applied.outcomes[0]), expected);
    assert_eq!(applied.events, []);
    assert!(applied.writes.is_empty());
    assert_eq!(replica.digest(), digest_before);
}

/// Whether `key` is a row of the Merkle tree (`audit::tree`: `mt\0` nodes and the size), which
/// every batch that adds events writes.
fn is_tree_row(key: &[u8]) -> bool {
    key.starts_with(b"mt\0") || key == b"m\0tree_size"
}

fn accepted_of(outcome: &Outcome) -> Accepted {
    match &outcome.result {
        Some(OutcomeResult::Accepted(accepted)) => accepted.clone(),
        other => panic!("expected accepted, got {other:?}"),
    }
}

fn reason_of(outcome: &Outcome) -> RejectReason {
    match &outcome.result {
        Some(OutcomeResult::Rejected(rejected)) => RejectReason::try_from(rejected.reason).unwrap(),
        other => panic!("expected rejected, got {other:?}"),
    }
}

// The worlds of agents as identities: delegations, sessions, token exchange, client assertions,
// credentials, status and key retirement.

/// The stamp of set-up batches, in seconds.
const T0_S: u64 = T0 / 1000;
/// The stamp of the batch under test, in seconds: what `iat` and every expiry check see.
const NOW_S: u64 = T1 / 1000;
const CAL: &str = "https://cal.example";
/// This cluster's issuer: the audience of human session tokens.
const ISSUER: &str = "https://warrant.example";
/// When d1 of [`delegation_world`] expires.
const D1_EXPIRES: u64 = T0_S + 7_200;
/// When d2 of [`delegation_world`] expires: before d1.
const D2_EXPIRES: u64 = T0_S + 3_600;

/// hana's root grant to bot: send and read on mail, for a task, chains up to 3 agents deep.
fn d1() -> log::CreateDelegation {
    log::CreateDelegation {
        delegation_id: "d1".to_owned(),
        parent_delegation_id: String::new(),
        grantee_agent_id: "bot".to_owned(),
        scopes: strings(&["send", "read"]),
        audiences: strings(&[MAIL]),
        task: "triage inbox".to_owned(),
        expires_at_unix_s: D1_EXPIRES,
        max_depth: 3,
        grantor_human_id: String::new(),
        budget: None,
    }
}

/// bot's grant to sub under d1: read on mail, no task of its own, chains up to 2 agents deep.
fn d2() -> log::CreateDelegation {
    log::CreateDelegation {
        delegation_id: "d2".to_owned(),
        parent_delegation_id: "d1".to_owned(),
        grantee_agent_id: "sub".to_owned(),
        scopes: strings(&["read"]),
        audiences: strings(&[MAIL]),
        task: String::new(),
        expires_at_unix_s: D2_EXPIRES,
        max_depth: 2,
        grantor_human_id: String::new(),
        budget: None,
    }
}

/// The world plus human hana, alice's agents sub and other, service cal (tool view), hana's grant
/// d1 to bot and bot's grant d2 to sub under it. hana owns none of the agents, so disabling her
/// reaches the tokens only through the delegation chain.
fn delegation_world() -> Replica {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        agent("other", "alice").by(admin()),
        service("cal", CAL, &["view"]).by(admin()),
        d1().by(human_actor("hana")),
        d2().by(agent_actor("bot")),
    ]);
    replica
}

/// A token for `agent_id` under `delegation_id`.
fn delegated(jti: &str, agent_id: &str, delegation_id: &str, scopes: &[&str]) -> log::IssueToken {
    log::IssueToken {
        delegation_id: delegation_id.to_owned(),
        ..issue(jti, agent_id, scopes)
    }
}

/// An RFC 8693 exchange of `subject_jti` by `agent_id` under `delegation_id`, for read on mail.
fn exchange(jti: &str, agent_id: &str, delegation_id: &str, subject_jti: &str) -> log::IssueToken {
    log::IssueToken {
        subject_jti: subject_jti.to_owned(),
        ..delegated(jti, agent_id, delegation_id, &["read"])
    }
}

/// A human's password login, whose session token `token_jti` is signed with k1.
fn human_session(session_id: &str, human_id: &str, token_jti: &str) -> log::StartSession {
    log::StartSession {
        session_id: session_id.to_owned(),
        principal_kind: PrincipalKind::Human as i32,
        principal_id: human_id.to_owned(),
        auth_method: log::AuthMethod::LocalPassword as i32,
        ttl_seconds: 3_600,
        token_jti: token_jti.to_owned(),
        token_key_id: "k1".to_owned(),
        token_audience: ISSUER.to_owned(),
        ..Default::default()
    }
}

fn lapse(kind: LapseKind, message: impl Into<String>) -> Result<(), Lapse> {
    Err(Lapse {
        kind,
        message: message.into(),
    })
}

/// Whether token `jti` is in force at the stamp under test.
fn token_validity(replica: &Replica, jti: &str) -> Result<(), Lapse> {
    validity::token(&replica.state, &replica.token_row(jti), NOW_S).expect("the store reads")
}

/// The world plus human hana and devices: laptop and tablet (alice's; tablet disabled) and phone
/// (hana's).
fn session_world() -> Replica {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        device("laptop", "alice").by(human_actor("alice")),
        device("tablet", "alice").by(admin()),
        device("phone", "hana").by(human_actor("hana")),
        set_status(log::EntityKind::Device, "tablet", true).by(human_actor("alice")),
    ]);
    replica
}
