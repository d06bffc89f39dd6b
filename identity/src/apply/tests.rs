//! Tests for `apply_batch`, written as data: commands built by a few constructors, run through
//! one `check_*` helper per kind of expectation.

#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use warrant_proto::log::{
    Accepted, Actor, Batch, Command, Credential, Event, Outcome, RejectReason, Tool,
};

use super::*;
use crate::{
    InMemoryState,
    limits::TOKEN_TTL_SECONDS_MAX,
    state_digest,
    validity::{self, Lapse, LapseKind},
};
use warrant_proto::state::{DelegationRow, SessionRow, TokenRow};
use warrant_proto::{
    log::{
        PrincipalKind, SigningAlgorithm, credential::Kind as CredentialKind,
        event::Kind as EventKind,
    },
    state::{AgentRow, HumanRow, ServiceRow, SigningKeyRow, Status},
};

/// The batch stamp of set-up batches.
const T0: u64 = 1_700_000_000_000;
/// The batch stamp of the batch under test.
const T1: u64 = 1_700_000_123_456;

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
const MAIL: &str = "https://mail.example";

/// One replica's store plus the log index of its last batch.
#[derive(Clone)]
struct Replica {
    state: InMemoryState,
    log_index: u64,
}

impl Replica {
    fn new() -> Self {
        Self {
            state: InMemoryState::new(),
            log_index: 0,
        }
    }

    /// The replica every rejection test starts from: human alice, her agent bot, service mail
    /// (tools send and read) and signing key k1.
    fn world() -> Self {
        let mut replica = Self::new();
        for command in [
            register_human("alice"),
            agent("bot", "alice").by(admin()),
            service("mail", MAIL, &["send", "read"]).by(admin()),
            signing_key("k1", 1).by(node()),
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
        let applied = apply_batch(&self.state, &batch, self.log_index).unwrap();
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
}

/// Applies `command` alone and checks it is rejected for `reason` with exactly `message`, and
/// that the state, including its events, is unchanged.
fn check_rejected(mut replica: Replica, command: Command, reason: RejectReason, message: &str) {
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

// Actors.

fn admin() -> Actor {
    Actor {
        kind: PrincipalKind::Admin as i32,
        id: "root".to_owned(),
        on_behalf_of: Vec::new(),
    }
}

fn node() -> Actor {
    Actor {
        kind: PrincipalKind::Node as i32,
        id: "1".to_owned(),
        on_behalf_of: Vec::new(),
    }
}

fn agent_actor(id: &str) -> Actor {
    Actor {
        kind: PrincipalKind::Agent as i32,
        id: id.to_owned(),
        on_behalf_of: Vec::new(),
    }
}

fn human_actor(id: &str) -> Actor {
    Actor {
        kind: PrincipalKind::Human as i32,
        id: id.to_owned(),
        on_behalf_of: Vec::new(),
    }
}

// Command bodies, with plausible defaults; tests override fields with `..body(..)`.

fn human(id: &str) -> log::RegisterHuman {
    log::RegisterHuman {
        human_id: id.to_owned(),
        display_name: format!("{id} Example"),
        email: format!("{id}@example.com"),
        ..Default::default()
    }
}

fn agent(id: &str, owner: &str) -> log::RegisterAgent {
    log::RegisterAgent {
        agent_id: id.to_owned(),
        owner_human_id: owner.to_owned(),
        kind: "mcp-client".to_owned(),
        description: "reads mail".to_owned(),
        credentials: vec![credential("c1")],
    }
}

fn credential(id: &str) -> Credential {
    Credential {
        credential_id: id.to_owned(),
        kind: Some(CredentialKind::ClientSecretArgon2id(PHC.to_owned())),
    }
}

fn service(id: &str, audience: &str, tools: &[&str]) -> log::RegisterService {
    log::RegisterService {
        service_id: id.to_owned(),
        audience: audience.to_owned(),
        tools: tools
            .iter()
            .map(|name| Tool {
                name: (*name).to_owned(),
                description: format!("{name}s"),
            })
            .collect(),
    }
}

fn issue(jti: &str, agent_id: &str, scopes: &[&str]) -> log::IssueToken {
    log::IssueToken {
        jti: jti.to_owned(),
        agent_id: agent_id.to_owned(),
        audience: MAIL.to_owned(),
        scopes: scopes.iter().map(|it| (*it).to_owned()).collect(),
        ttl_seconds: 600,
        key_id: "k1".to_owned(),
        ..Default::default()
    }
}

fn revoke(jti: &str) -> log::RevokeToken {
    log::RevokeToken {
        jti: jti.to_owned(),
        reason: "leaked".to_owned(),
    }
}

fn signing_key(key_id: &str, fill: u8) -> log::PublishSigningKey {
    log::PublishSigningKey {
        key_id: key_id.to_owned(),
        node_id: 1,
        algorithm: SigningAlgorithm::Ed25519 as i32,
        public_key: vec![fill; 32],
    }
}

fn register_human(id: &str) -> Command {
    human(id).by(admin())
}

/// Turns a command body into a command sent by an actor.
trait By {
    fn by(self, actor: Actor) -> Command;
}

macro_rules! impl_by {
    ($($body:ident => $variant:ident,)*) => {$(
        impl By for log::$body {
            fn by(self, actor: Actor) -> Command {
                command(actor, Some(CommandKind::$variant(self)))
            }
        }
    )*};
}

impl_by! {
    RegisterHuman => RegisterHuman,
    RegisterAgent => RegisterAgent,
    RegisterService => RegisterService,
    IssueToken => IssueToken,
    RevokeToken => RevokeToken,
    PublishSigningKey => PublishSigningKey,
    UpdateHuman => UpdateHuman,
    UpdateAgent => UpdateAgent,
    UpdateService => UpdateService,
    RegisterDevice => RegisterDevice,
    UpdateDevice => UpdateDevice,
    BindAgentDevice => BindAgentDevice,
    SetStatus => SetStatus,
    ChangeCredentials => ChangeCredentials,
    StartSession => StartSession,
    EndSession => EndSession,
    CreateDelegation => CreateDelegation,
    RevokeDelegation => RevokeDelegation,
    RetireSigningKey => RetireSigningKey,
}

/// A command whose request digest is the hash of its actor and body, and whose idempotency key
/// derives from that digest, as an API node would make them: the same request sent twice is a
/// retry, a different one gets a different key.
fn command(actor: Actor, kind: Option<CommandKind>) -> Command {
    let body = Command {
        actor: Some(actor),
        kind,
        ..Command::default()
    };
    let digest = Sha256::digest(body.encode_to_vec()).to_vec();
    Command {
        idempotency_key: format!("key-{}", hex::encode(&digest[..8])),
        request_digest: digest,
        ..body
    }
}

/// Overrides for the envelope of a command.
trait Envelope {
    fn key(self, idempotency_key: &str) -> Self;
    fn digest(self, request_digest: &[u8]) -> Self;
    /// Marks the command as authenticated by client assertion `jti` of `agent_id`. The request
    /// digest stays that of the body, as the API node computes it.
    fn spending(self, agent_id: &str, jti: &str) -> Self;
}

impl Envelope for Command {
    fn key(self, idempotency_key: &str) -> Self {
        Command {
            idempotency_key: idempotency_key.to_owned(),
            ..self
        }
    }

    fn digest(self, request_digest: &[u8]) -> Self {
        Command {
            request_digest: request_digest.to_vec(),
            ..self
        }
    }

    fn spending(self, agent_id: &str, jti: &str) -> Self {
        Command {
            assertion: Some(log::AssertionUse {
                principal_id: agent_id.to_owned(),
                jti: jti.to_owned(),
                expires_at_unix_s: NOW_S + 60,
            }),
            ..self
        }
    }
}

// The envelope.

#[test]
fn envelope_rejections() {
    let valid = register_human("zed");
    let id_rule = "1 to 128 printable ASCII characters ('!' to '~', no spaces)";
    let cases: Vec<(Command, String)> = vec![
        (
            Command {
                kind: None,
                ..valid.clone()
            },
            "kind is missing; allowed: one of the command kinds of warrant.log.v1.Command"
                .to_owned(),
        ),
        (
            valid.clone().key(""),
            format!("idempotency_key is empty; allowed: {id_rule}"),
        ),
        (
            valid.clone().key("a b"),
            format!("idempotency_key contains ' ' at byte 1; allowed: {id_rule}"),
        ),
        (
            valid.clone().key(&"k".repeat(129)),
            format!("idempotency_key is 129 bytes long; allowed: {id_rule}"),
        ),
        (
            valid.clone().digest(&[0; 31]),
            "request_digest is 31 bytes long; allowed: exactly 32 bytes (SHA-256)".to_owned(),
        ),
        (
            valid.clone().digest(&[]),
            "request_digest is 0 bytes long; allowed: exactly 32 bytes (SHA-256)".to_owned(),
        ),
        (
            Command {
                actor: None,
                ..valid.clone()
            },
            "actor is missing; allowed: the principal that asked".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor { kind: 0, ..admin() }),
                ..valid.clone()
            },
            "actor.kind is 0; allowed: admin, human, agent, service or node".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    kind: 99,
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.kind is 99; allowed: admin, human, agent, service or node".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    id: String::new(),
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.id is empty; allowed: 1 to 256 bytes of text without control characters"
                .to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    id: "ro\0ot".to_owned(),
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.id contains '\\0' at byte 2; allowed: 1 to 256 bytes of text without control \
             characters"
                .to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    on_behalf_of: vec!["h".to_owned(); 17],
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.on_behalf_of has 17 entries; allowed: at most 16".to_owned(),
        ),
        (
            Command {
                actor: Some(Actor {
                    on_behalf_of: vec!["h".to_owned(), "\n".to_owned()],
                    ..admin()
                }),
                ..valid.clone()
            },
            "actor.on_behalf_of[1] contains '\\n' at byte 0; allowed: 1 to 256 bytes of text \
             without control characters"
                .to_owned(),
        ),
    ];
    for (command, message) in cases {
        check_rejected(
            Replica::world(),
            command,
            RejectReason::InvalidCommand,
            &message,
        );
    }
}

#[test]
fn envelope_checks_run_in_order() {
    // Everything is wrong at once; the kind is reported first, then the key, the digest, the
    // actor.
    let broken = Command {
        idempotency_key: String::new(),
        request_digest: Vec::new(),
        actor: None,
        kind: None,
        ..Default::default()
    };
    let with_kind = Command {
        kind: register_human("zed").kind,
        ..broken.clone()
    };
    let with_key = with_kind.clone().key("k");
    let with_digest = with_key.clone().digest(&[0; 32]);
    let cases = [
        (broken, "kind is missing"),
        (with_kind, "idempotency_key is empty"),
        (with_key, "request_digest is 0 bytes long"),
        (with_digest, "actor is missing"),
    ];
    for (command, prefix) in cases {
        let applied = apply_batch(
            &InMemoryState::new(),
            &Batch {
                time_unix_ms: T1,
                commands: vec![command],
            },
            1,
        )
        .unwrap();
        let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
            panic!("expected a rejection: {:?}", applied.outcomes);
        };
        assert!(
            rejected.message.starts_with(prefix),
            "{} should start with {prefix}",
            rejected.message
        );
    }
}

// RegisterHuman.

#[test]
fn register_human_accepts() {
    let mut replica = Replica::new();
    let (accepted, event) = check_accepted(&mut replica, register_human("alice"));
    assert_eq!(
        accepted,
        Accepted {
            seq: 1,
            replayed: false,
            token_issued: None,
            changed: true,
            ..Default::default()
        }
    );
    assert_eq!(
        event.kind,
        Some(EventKind::HumanRegistered(log::HumanRegistered {
            human_id: "alice".to_owned(),
            display_name: "alice Example".to_owned(),
            email: "alice@example.com".to_owned(),
            ..Default::default()
        }))
    );
    let row = query::human(&replica.state, "alice").unwrap().unwrap();
    assert_eq!(
        row,
        HumanRow {
            human_id: "alice".to_owned(),
            display_name: "alice Example".to_owned(),
            email: "alice@example.com".to_owned(),
            status: Status::Active as i32,
            created_seq: 1,
            created_unix_ms: T1,
            ..Default::default()
        }
    );
}

#[test]
fn register_human_allows_empty_optional_text() {
    let command = log::RegisterHuman {
        display_name: String::new(),
        email: String::new(),
        ..human("zed")
    };
    check_accepted(&mut Replica::new(), command.by(admin()));
}

#[test]
fn register_human_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (register_human(""), InvalidCommand, format!("human_id is empty; allowed: {id_rule}")),
        (register_human("a\0b"), InvalidCommand, format!("human_id contains '\\0' at byte 1; allowed: {id_rule}")),
        (register_human(&"h".repeat(65)), InvalidCommand, format!("human_id is 65 bytes long; allowed: {id_rule}")),
        (
            log::RegisterHuman { display_name: "Zed\u{1b}[31m".to_owned(), ..human("zed") }.by(admin()),
            InvalidCommand,
            "display_name contains '\\u{1b}' at byte 3; allowed: up to 256 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { display_name: "z".repeat(257), ..human("zed") }.by(admin()),
            InvalidCommand,
            "display_name is 257 bytes long; allowed: up to 256 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { email: format!("{}@x", "z".repeat(253)), ..human("zed") }.by(admin()),
            InvalidCommand,
            "email is 255 bytes long; allowed: up to 254 bytes of text without control characters".to_owned(),
        ),
        (
            log::RegisterHuman { email: "zed@x\r\n".to_owned(), ..human("zed") }.by(admin()),
            InvalidCommand,
            "email contains '\\r' at byte 5; allowed: up to 254 bytes of text without control characters".to_owned(),
        ),
        (
            // A different request for an existing id: not a retry, so not a replay.
            log::RegisterHuman { display_name: "Alice Again".to_owned(), ..human("alice") }.by(admin()),
            AlreadyExists,
            "human alice already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// RegisterAgent.

#[test]
fn register_agent_accepts_and_keeps_hashes_out_of_the_event() {
    let mut replica = Replica::new();
    check_accepted(&mut replica, register_human("alice"));
    let command = log::RegisterAgent {
        credentials: vec![credential("c1"), credential("c2")],
        ..agent("bot", "alice")
    };
    let (_, event) = check_accepted(&mut replica, command.by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentRegistered(log::AgentRegistered {
            agent_id: "bot".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "mcp-client".to_owned(),
            description: "reads mail".to_owned(),
            credential_ids: vec!["c1".to_owned(), "c2".to_owned()],
        }))
    );
    let event_bytes = event.encode_to_vec();
    assert!(
        !event_bytes.windows(ARGON2ID.len()).any(|it| it == ARGON2ID),
        "hash leaked into the event"
    );

    let row = query::agent(&replica.state, "bot").unwrap().unwrap();
    assert_eq!(row.status, Status::Active as i32);
    assert_eq!(row.owner_human_id, "alice");
    assert_eq!(row.credentials, vec![credential("c1"), credential("c2")]);
    assert_eq!(row.created_seq, 2);
    assert_eq!(row.created_unix_ms, T1);
    let owned = query::list_agents(&replica.state, Some("alice"), "", 10).unwrap();
    assert_eq!(owned, [row]);
}

const ARGON2ID: &[u8] = b"$argon2id$";

#[test]
fn register_agent_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let phc_rule =
        "an argon2id PHC string starting with '$argon2id$', up to 512 printable ASCII characters";
    let with = |change: fn(&mut log::RegisterAgent)| {
        let mut body = agent("bot2", "alice");
        change(&mut body);
        body.by(admin())
    };
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.agent_id = "-bot".to_owned()), InvalidCommand, format!("agent_id starts with '-'; allowed: {id_rule}")),
        (with(|it| it.owner_human_id = String::new()), InvalidCommand, format!("owner_human_id is empty; allowed: {id_rule}")),
        (with(|it| it.kind = String::new()), InvalidCommand, format!("kind is empty; allowed: {id_rule}")),
        (with(|it| it.kind = "mcp client".to_owned()), InvalidCommand, format!("kind contains ' ' at byte 3; allowed: {id_rule}")),
        (
            with(|it| it.description = "d".repeat(1025)),
            InvalidCommand,
            "description is 1025 bytes long; allowed: up to 1024 bytes of text without control characters".to_owned(),
        ),
        (
            with(|it| it.credentials = (0..9).map(|idx| credential(&format!("c{idx}"))).collect()),
            InvalidCommand,
            "credentials has 9 entries; allowed: at most 8".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![credential("c1"), credential("c2"), credential("c1")]),
            InvalidCommand,
            "credentials[2].credential_id repeats c1; allowed: credential ids unique within the agent".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![credential("c 1")]),
            InvalidCommand,
            format!("credentials[0].credential_id contains ' ' at byte 1; allowed: {id_rule}"),
        ),
        (
            with(|it| it.credentials = vec![Credential { kind: None, ..credential("c1") }]),
            InvalidCommand,
            "credentials[0].kind is missing; allowed: client_secret_argon2id or ed25519_public_key".to_owned(),
        ),
        (
            with(|it| it.credentials = vec![Credential {
                kind: Some(CredentialKind::ClientSecretArgon2id("hunter2".to_owned())),
                ..credential("c1")
            }]),
            InvalidCommand,
            format!("credentials[0].client_secret_argon2id does not start with '$argon2id$'; allowed: {phc_rule}"),
        ),
        (
            with(|it| it.credentials = vec![Credential {
                kind: Some(CredentialKind::ClientSecretArgon2id(format!("{PHC}{}", "a".repeat(512)))),
                ..credential("c1")
            }]),
            InvalidCommand,
            format!("credentials[0].client_secret_argon2id is {} bytes long; allowed: {phc_rule}", PHC.len() + 512),
        ),
        (with(|it| it.owner_human_id = "nobody".to_owned()), HumanNotFound, "owner human nobody does not exist".to_owned()),
        (with(|it| it.owner_human_id = "dora".to_owned()), HumanNotFound, "owner human dora is not active".to_owned()),
        (
            log::RegisterAgent { description: "another".to_owned(), ..agent("bot", "alice") }.by(admin()),
            AlreadyExists,
            "agent bot already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        let mut replica = Replica::world();
        let disabled = HumanRow {
            human_id: "dora".to_owned(),
            status: Status::Disabled as i32,
            ..HumanRow::default()
        };
        replica.put_row(keys::human("dora"), &disabled);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn register_agent_allows_no_credentials() {
    let mut replica = Replica::world();
    let command = log::RegisterAgent {
        credentials: Vec::new(),
        ..agent("bot2", "alice")
    };
    check_accepted(&mut replica, command.by(admin()));
}

// RegisterService.

#[test]
fn register_service_accepts() {
    let mut replica = Replica::new();
    let (_, event) = check_accepted(
        &mut replica,
        service("mail", MAIL, &["send", "read"]).by(admin()),
    );
    let body = service("mail", MAIL, &["send", "read"]);
    assert_eq!(
        event.kind,
        Some(EventKind::ServiceRegistered(log::ServiceRegistered {
            service_id: "mail".to_owned(),
            audience: MAIL.to_owned(),
            tools: body.tools.clone(),
        }))
    );
    let row = query::service_by_audience(&replica.state, MAIL)
        .unwrap()
        .unwrap();
    assert_eq!(
        row,
        ServiceRow {
            service_id: "mail".to_owned(),
            audience: MAIL.to_owned(),
            tools: body.tools,
            status: Status::Active as i32,
            created_seq: 1,
            created_unix_ms: T1,
        }
    );
    assert_eq!(query::service(&replica.state, "mail").unwrap(), Some(row));
}

#[test]
fn register_service_rejections() {
    use RejectReason::*;
    let id_rule = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";
    let audience_rule = "1 to 256 printable ASCII characters ('!' to '~', no spaces)";
    let many: Vec<String> = (0..257).map(|idx| format!("t{idx}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (service("", "https://x", &[]).by(admin()), InvalidCommand, format!("service_id is empty; allowed: {id_rule}")),
        (service("x", "", &[]).by(admin()), InvalidCommand, format!("audience is empty; allowed: {audience_rule}")),
        (service("x", "https://x y", &[]).by(admin()), InvalidCommand, format!("audience contains ' ' at byte 9; allowed: {audience_rule}")),
        (
            service("x", &format!("https://{}", "x".repeat(249)), &[]).by(admin()),
            InvalidCommand,
            format!("audience is 257 bytes long; allowed: {audience_rule}"),
        ),
        (service("x", "https://x", &many).by(admin()), InvalidCommand, "tools has 257 entries; allowed: at most 256".to_owned()),
        (
            service("x", "https://x", &["a", "b", "a"]).by(admin()),
            InvalidCommand,
            "tools[2].name repeats a; allowed: tool names unique within the service".to_owned(),
        ),
        (service("x", "https://x", &["a", "b/c"]).by(admin()), InvalidCommand, format!("tools[1].name contains '/' at byte 1; allowed: {id_rule}")),
        (
            log::RegisterService {
                tools: vec![Tool { name: "a".to_owned(), description: "bad\u{0}".to_owned() }],
                ..service("x", "https://x", &[])
            }
            .by(admin()),
            InvalidCommand,
            "tools[0].description contains '\\0' at byte 3; allowed: up to 1024 bytes of text without control characters".to_owned(),
        ),
        (service("mail", "https://other", &[]).by(admin()), AlreadyExists, "service mail already exists".to_owned()),
        (service("mail2", MAIL, &[]).by(admin()), AudienceTaken, format!("audience {MAIL} already names service mail")),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// IssueToken.

#[test]
fn issue_token_derives_claims_from_the_batch_stamp() {
    let mut replica = Replica::world();
    let seq_before = replica.seq();
    let (accepted, event) = check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    let claims = log::TokenIssued {
        jti: "j1".to_owned(),
        subject: "bot".to_owned(),
        agent_id: "bot".to_owned(),
        audience: MAIL.to_owned(),
        scopes: vec!["send".to_owned()],
        subject_kind: log::PrincipalKind::Agent as i32,
        // T1 is 1_700_000_123_456 ms: seconds round down.
        issued_at_unix_s: 1_700_000_123,
        expires_at_unix_s: 1_700_000_723,
        key_id: "k1".to_owned(),
        ..Default::default()
    };
    assert_eq!(
        accepted,
        Accepted {
            seq: seq_before + 1,
            replayed: false,
            token_issued: Some(claims.clone()),
            changed: true,
            ..Default::default()
        }
    );
    assert_eq!(event.kind, Some(EventKind::TokenIssued(claims.clone())));
    let row = query::token(&replica.state, "j1").unwrap().unwrap();
    assert_eq!(
        row,
        TokenRow {
            issued: Some(claims),
            issued_seq: seq_before + 1,
            revoked: false,
            revoked_seq: 0,
            revoke_reason: String::new()
        }
    );
}

#[test]
fn issue_token_ttl_bounds_are_inclusive() {
    let mut replica = Replica::world();
    for (jti, ttl_seconds) in [("j1", 1), ("j2", TOKEN_TTL_SECONDS_MAX)] {
        let command = log::IssueToken {
            ttl_seconds,
            ..issue(jti, "bot", &["send", "read"])
        };
        let (accepted, _) = check_accepted(&mut replica, command.by(agent_actor("bot")));
        let claims = accepted.token_issued.unwrap();
        assert_eq!(
            claims.expires_at_unix_s - claims.issued_at_unix_s,
            u64::from(ttl_seconds)
        );
    }
}

#[test]
fn issue_token_rejections() {
    use RejectReason::*;
    let with = |change: fn(&mut log::IssueToken)| {
        let mut body = issue("j9", "bot", &["send"]);
        change(&mut body);
        body.by(agent_actor("bot"))
    };
    let tools_rule = "1 to 64 tool names";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.jti = String::new()), InvalidCommand, "jti is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (with(|it| it.jti = "j/9".to_owned()), InvalidCommand, "jti contains '/' at byte 1; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (with(|it| it.audience = "has space".to_owned()), InvalidCommand, "audience contains ' ' at byte 3; allowed: 1 to 256 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (with(|it| it.scopes = Vec::new()), InvalidCommand, format!("scopes has 0 entries; allowed: {tools_rule}")),
        (with(|it| it.scopes = vec!["send".to_owned(); 65]), InvalidCommand, format!("scopes has 65 entries; allowed: {tools_rule}")),
        (with(|it| it.scopes = vec!["send".to_owned(), "send".to_owned()]), InvalidCommand, "scopes[1] repeats send; allowed: unique scopes".to_owned()),
        (with(|it| it.scopes = vec!["mail:send".to_owned()]), InvalidCommand, "scopes[0] contains ':' at byte 4; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".to_owned()),
        (with(|it| it.ttl_seconds = 0), InvalidCommand, "ttl_seconds is 0; allowed: 1 to 86400".to_owned()),
        (with(|it| it.ttl_seconds = 86_401), InvalidCommand, "ttl_seconds is 86401; allowed: 1 to 86400".to_owned()),
        (with(|it| it.key_id = String::new()), InvalidCommand, "key_id is empty; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (issue("j9", "bot", &["send"]).by(admin()), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "bot", &["send"]).by(agent_actor("bot2")), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "bot", &["send"]).by(human_actor("bot")), PermissionDenied, "only agent bot itself may ask for its tokens".to_owned()),
        (issue("j9", "ghost", &["send"]).by(agent_actor("ghost")), AgentNotFound, "agent ghost does not exist".to_owned()),
        (issue("j9", "sleepy", &["send"]).by(agent_actor("sleepy")), AgentDisabled, "agent sleepy is disabled".to_owned()),
        (with(|it| it.audience = "https://nowhere".to_owned()), ServiceNotFound, "no service has audience https://nowhere".to_owned()),
        (
            with(|it| it.scopes = vec!["send".to_owned(), "delete".to_owned()]),
            ScopeNotAllowed,
            "scope delete is not a tool of service mail; allowed: read, send".to_owned(),
        ),
        (with(|it| it.key_id = "k2".to_owned()), SigningKeyNotFound, "signing key k2 is not published".to_owned()),
        (with(|it| it.jti = "j1".to_owned()), AlreadyExists, "token j1 already exists".to_owned()),
    ];
    for (command, reason, message) in cases {
        let mut replica = Replica::world();
        check_accepted(
            &mut replica,
            issue("j1", "bot", &["read"]).by(agent_actor("bot")),
        );
        let disabled = AgentRow {
            agent_id: "sleepy".to_owned(),
            owner_human_id: "alice".to_owned(),
            status: Status::Disabled as i32,
            ..AgentRow::default()
        };
        replica.put_row(keys::agent("sleepy"), &disabled);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn scope_not_allowed_lists_a_bounded_number_of_tools() {
    let names: Vec<String> = (0..40).map(|idx| format!("tool{idx:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        service("big", "https://big", &names).by(admin()),
    );
    check_accepted(
        &mut replica,
        service("empty", "https://empty", &[]).by(admin()),
    );
    let shown: Vec<&str> = names[..16].to_vec();
    let cases = [
        (
            "https://big",
            format!(
                "scope send is not a tool of service big; allowed: {} and 24 more",
                shown.join(", ")
            ),
        ),
        (
            "https://empty",
            "scope send is not a tool of service empty; allowed: none: the service has no tools"
                .to_owned(),
        ),
    ];
    for (audience, message) in cases {
        let command = log::IssueToken {
            audience: audience.to_owned(),
            ..issue("j9", "bot", &["send"])
        };
        check_rejected(
            replica.clone(),
            command.by(agent_actor("bot")),
            RejectReason::ScopeNotAllowed,
            &message,
        );
    }
}

// RevokeToken.

/// The world plus token j1, issued to bot.
fn world_with_token() -> Replica {
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    replica
}

#[test]
fn revoke_token_by_admin_or_holder() {
    for actor in [admin(), agent_actor("bot")] {
        let mut replica = world_with_token();
        let (accepted, event) = check_accepted(&mut replica, revoke("j1").by(actor.clone()));
        assert_eq!(
            event.kind,
            Some(EventKind::TokenRevoked(log::TokenRevoked {
                jti: "j1".to_owned(),
                reason: "leaked".to_owned()
            }))
        );
        let row = query::token(&replica.state, "j1").unwrap().unwrap();
        assert!(row.revoked);
        assert_eq!(row.revoked_seq, accepted.seq);
        assert_eq!(row.revoke_reason, "leaked");
        assert_eq!(row.issued.unwrap().jti, "j1");
    }
}

#[test]
fn revoking_a_revoked_token_changes_nothing_and_stores_no_key() {
    let mut replica = world_with_token();
    check_accepted(&mut replica, revoke("j1").by(admin()));
    let again = log::RevokeToken {
        reason: "still leaked".to_owned(),
        ..revoke("j1")
    }
    .by(admin());
    check_unchanged(&mut replica, again.clone());
    // No idempotency row was stored for the no-op, so the key is free for another request.
    let other = revoke("j1")
        .by(admin())
        .key(&again.idempotency_key)
        .digest(&[7; 32]);
    check_unchanged(&mut replica, other);
}

#[test]
fn revoke_token_rejections() {
    use RejectReason::*;
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (revoke("").by(admin()), InvalidCommand, "jti is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'".to_owned()),
        (
            log::RevokeToken { reason: "r".repeat(513), ..revoke("j1") }.by(admin()),
            InvalidCommand,
            "reason is 513 bytes long; allowed: up to 512 bytes of text without control characters".to_owned(),
        ),
        (
            log::RevokeToken { reason: "a\u{2028}\u{85}".to_owned(), ..revoke("j1") }.by(admin()),
            InvalidCommand,
            "reason contains '\\u{85}' at byte 4; allowed: up to 512 bytes of text without control characters".to_owned(),
        ),
        (revoke("j2").by(admin()), TokenNotFound, "token j2 does not exist".to_owned()),
        (revoke("j1").by(agent_actor("bot2")), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
        (revoke("j1").by(human_actor("alice")), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
        (revoke("j1").by(node()), PermissionDenied, "only an admin, agent bot or the human it acts for may revoke token j1".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(world_with_token(), command, reason, &message);
    }
}

// PublishSigningKey.

#[test]
fn publish_signing_key_accepts() {
    let mut replica = Replica::new();
    let (accepted, event) = check_accepted(&mut replica, signing_key("k1", 1).by(node()));
    let published = log::SigningKeyPublished {
        key_id: "k1".to_owned(),
        node_id: 1,
        algorithm: SigningAlgorithm::Ed25519 as i32,
        public_key: vec![1; 32],
    };
    assert_eq!(
        event.kind,
        Some(EventKind::SigningKeyPublished(published.clone()))
    );
    let row = SigningKeyRow {
        key: Some(published),
        published_seq: accepted.seq,
        published_unix_ms: T1,
        ..Default::default()
    };
    assert_eq!(
        query::signing_key(&replica.state, "k1").unwrap(),
        Some(row.clone())
    );
    check_accepted(&mut replica, signing_key("k0", 2).by(admin()));
    let key_ids: Vec<String> = query::signing_keys(&replica.state, 10)
        .unwrap()
        .into_iter()
        .map(|it| it.key.unwrap().key_id)
        .collect();
    assert_eq!(key_ids, ["k0", "k1"]);
}

#[test]
fn republishing_an_identical_key_is_a_no_op() {
    let mut replica = Replica::world();
    // Another node restarting and republishing k1 sends the same content under its own key.
    let again = signing_key("k1", 1).by(admin());
    check_unchanged(&mut replica, again);
}

#[test]
fn publish_signing_key_rejections() {
    use RejectReason::*;
    let with = |change: fn(&mut log::PublishSigningKey)| {
        let mut body = signing_key("k2", 2);
        change(&mut body);
        body.by(node())
    };
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.key_id = "k 2".to_owned()), InvalidCommand, "key_id contains ' ' at byte 1; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (with(|it| it.algorithm = 0), InvalidCommand, "algorithm is SIGNING_ALGORITHM_UNSPECIFIED; allowed: SIGNING_ALGORITHM_ED25519".to_owned()),
        (with(|it| it.algorithm = 7), InvalidCommand, "algorithm is 7; allowed: SIGNING_ALGORITHM_ED25519".to_owned()),
        (with(|it| it.public_key = vec![2; 33]), InvalidCommand, "public_key is 33 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        (signing_key("k2", 2).by(agent_actor("bot")), PermissionDenied, "only a node or an admin may publish signing keys".to_owned()),
        (signing_key("k2", 2).by(human_actor("alice")), PermissionDenied, "only a node or an admin may publish signing keys".to_owned()),
        (signing_key("k1", 9).by(node()), SigningKeyConflict, "signing key k1 is already published with different content".to_owned()),
        (
            log::PublishSigningKey { node_id: 2, ..signing_key("k1", 1) }.by(admin()),
            SigningKeyConflict,
            "signing key k1 is already published with different content".to_owned(),
        ),
        (log::PublishSigningKey { node_id: 2, ..signing_key("k2", 2) }.by(node()), PermissionDenied, "node 1 may publish only its own keys, not node 2's".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// Idempotency.

#[test]
fn a_retry_replays_the_first_outcome() {
    let mut replica = Replica::world();
    let command = issue("j1", "bot", &["send"]).by(agent_actor("bot"));
    let (first, _) = check_accepted(&mut replica, command.clone());
    // Later events must not change what the replay says.
    check_accepted(&mut replica, register_human("zed"));
    let digest_before = replica.digest();
    let seq_before = replica.seq();
    let applied = replica.apply(T1 + 5_000, vec![command]);
    assert_eq!(
        accepted_of(&applied.outcomes[0]),
        Accepted {
            replayed: true,
            ..first
        }
    );
    assert_eq!(applied.events, []);
    assert!(applied.writes.is_empty());
    assert_eq!(replica.seq(), seq_before);
    assert_eq!(replica.digest(), digest_before);
}

#[test]
fn a_retry_in_the_same_batch_replays() {
    let mut replica = Replica::new();
    let command = register_human("alice");
    let applied = replica.apply(T1, vec![command.clone(), command]);
    let first = accepted_of(&applied.outcomes[0]);
    assert_eq!(
        accepted_of(&applied.outcomes[1]),
        Accepted {
            replayed: true,
            ..first
        }
    );
    assert_eq!(applied.events.len(), 1);
}

#[test]
fn reusing_a_key_for_another_request_is_rejected() {
    let first = register_human("zed");
    let mut replica = Replica::world();
    check_accepted(&mut replica, first.clone());
    let cases = [
        // Same key, same body, different digest: a different request as far as the API node knows.
        first.clone().digest(&[9; 32]),
        // Same key, different body.
        register_human("zoe").key(&first.idempotency_key),
    ];
    for command in cases {
        check_rejected(
            replica.clone(),
            command,
            RejectReason::IdempotencyKeyReused,
            &format!(
                "idempotency key {} was already used by this actor for a different request; \
                 allowed: a new key per request",
                first.idempotency_key
            ),
        );
    }
}

#[test]
fn keys_are_scoped_by_actor() {
    let mut replica = Replica::world();
    let by_root = register_human("zed").key("shared");
    check_accepted(&mut replica, by_root.clone());
    // Another admin using the same key is a different request, not a replay or a reuse.
    let by_other = Command {
        actor: Some(Actor {
            id: "other-admin".to_owned(),
            ..admin()
        }),
        ..register_human("zoe")
    }
    .key("shared");
    check_accepted(&mut replica, by_other);
    // Another principal kind is another actor too.
    let by_node = signing_key("k7", 1).by(node()).key("shared");
    check_accepted(&mut replica, by_node);
}

#[test]
fn a_rejected_command_stores_no_key() {
    let mut replica = Replica::world();
    let early = agent("bot2", "zed").by(admin());
    let applied = replica.apply(T1, vec![early.clone()]);
    assert_eq!(reason_of(&applied.outcomes[0]), RejectReason::HumanNotFound);
    // Once the owner exists, the same request with the same key goes through as new.
    check_accepted(&mut replica, register_human("zed"));
    check_accepted(&mut replica, early);
}

// Batches.

#[test]
fn commands_see_earlier_writes_of_their_batch() {
    let mut replica = Replica::new();
    let applied = replica.apply(
        T1,
        vec![
            register_human("alice"),
            agent("bot", "alice").by(admin()),
            service("mail", MAIL, &["send"]).by(admin()),
            signing_key("k1", 1).by(node()),
            issue("j1", "bot", &["send"]).by(agent_actor("bot")),
            revoke("j1").by(agent_actor("bot")),
            // Same id, new key: sees the human registered three commands up.
            register_human("alice").key("again"),
        ],
    );
    let seqs: Vec<u64> = applied.outcomes[..6]
        .iter()
        .map(|it| accepted_of(it).seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(reason_of(&applied.outcomes[6]), RejectReason::AlreadyExists);
    assert!(query::token(&replica.state, "j1").unwrap().unwrap().revoked);
}

#[test]
fn seqs_are_dense_across_batches() {
    let mut replica = Replica::new();
    let batches = vec![
        vec![register_human("a"), register_human(""), register_human("b")],
        vec![],
        vec![register_human("a").key("x"), register_human("c")],
        vec![
            register_human("d"),
            register_human("d").key("y"),
            register_human("e"),
        ],
    ];
    let mut all_events = Vec::new();
    for (idx, commands) in batches.into_iter().enumerate() {
        let time_unix_ms = T0 + idx as u64;
        let n_commands = commands.len();
        let applied = replica.apply(time_unix_ms, commands);
        assert_eq!(applied.outcomes.len(), n_commands);
        for event in &applied.events {
            assert_eq!(event.time_unix_ms, time_unix_ms);
            assert_eq!(event.log_index, replica.log_index);
            let outcome = &applied.outcomes[event.batch_position as usize];
            assert_eq!(accepted_of(outcome).seq, event.seq);
        }
        all_events.extend(applied.events);
    }
    let seqs: Vec<u64> = all_events.iter().map(|it| it.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let positions: Vec<(u64, u32)> = all_events
        .iter()
        .map(|it| (it.log_index, it.batch_position))
        .collect();
    assert_eq!(positions, [(1, 0), (1, 2), (3, 1), (4, 0), (4, 2)]);
    assert_eq!(replica.seq(), 5);
    assert_eq!(query::events(&replica.state, 1, 100).unwrap(), all_events);
}

#[test]
fn a_batch_of_rejections_writes_nothing() {
    let mut replica = Replica::world();
    let seq_before = replica.seq();
    let applied = replica.apply(T1, vec![register_human(""), Command::default()]);
    assert!(applied.writes.is_empty());
    assert_eq!(replica.seq(), seq_before);
}

#[test]
fn commands_past_the_batch_limit_are_rejected() {
    let n_commands = limits::COMMANDS_PER_BATCH_MAX + 2;
    let commands: Vec<Command> = (0..n_commands)
        .map(|idx| register_human(&format!("h{idx}")))
        .collect();
    let mut replica = Replica::new();
    let applied = replica.apply(T1, commands);
    assert_eq!(applied.outcomes.len(), n_commands);
    assert_eq!(applied.events.len(), limits::COMMANDS_PER_BATCH_MAX);
    assert_eq!(
        accepted_of(&applied.outcomes[limits::COMMANDS_PER_BATCH_MAX - 1]).seq,
        4096
    );
    assert_eq!(
        applied.outcomes[limits::COMMANDS_PER_BATCH_MAX],
        rejected(
            RejectReason::InvalidCommand,
            "command 4096 is past the batch limit; allowed: at most 4096 commands per batch"
                .to_owned()
        )
    );
    assert_eq!(
        reason_of(&applied.outcomes[n_commands - 1]),
        RejectReason::InvalidCommand
    );
    assert_eq!(query::human(&replica.state, "h4096").unwrap(), None);
}

// Corrupt state.

#[test]
fn corrupt_rows_are_errors_not_outcomes() {
    let cases: Vec<(Vec<u8>, Vec<u8>, Command)> = vec![
        (
            keys::human("alice"),
            vec![0xff; 3],
            agent("bot2", "alice").by(admin()),
        ),
        (
            keys::LAST_SEQ.to_vec(),
            vec![1, 2, 3],
            register_human("zed"),
        ),
        (
            keys::LAST_SEQ.to_vec(),
            u64::MAX.to_be_bytes().to_vec(),
            register_human("zed"),
        ),
        (
            keys::idempotency(PrincipalKind::Admin as i32, "root", "k"),
            IdempotencyRow {
                request_digest: vec![0; 32],
                outcome: None,
            }
            .encode_to_vec(),
            register_human("zed").key("k").digest(&[0; 32]),
        ),
    ];
    for (key, value, command) in cases {
        let mut replica = Replica::world();
        let mut writes = WriteSet::new();
        writes.put(key, value);
        replica.state.apply_writes(&writes);
        let batch = Batch {
            time_unix_ms: T1,
            commands: vec![command],
        };
        let result = apply_batch(&replica.state, &batch, 99);
        assert!(
            matches!(result, Err(StateError::Corrupt { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn the_meta_row_tracks_the_last_seq() {
    let mut replica = Replica::new();
    let applied = replica.apply(T1, vec![register_human("a"), register_human("b")]);
    assert_eq!(
        applied.writes.ops.get(keys::LAST_SEQ),
        Some(&Some(2u64.to_be_bytes().to_vec()))
    );
    // Every write of the batch: two humans, two events, two idempotency rows, the meta row.
    assert_eq!(applied.writes.len(), 7);
    assert_eq!(replica.state.len(), 7);
}

// Agents as identities: delegations, sessions, token exchange, client assertions, credentials,
// status and key retirement.

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

impl Replica {
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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|it| (*it).to_owned()).collect()
}

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

fn revoke_delegation(delegation_id: &str) -> log::RevokeDelegation {
    log::RevokeDelegation {
        delegation_id: delegation_id.to_owned(),
        reason: "task done".to_owned(),
    }
}

fn set_status(entity: log::EntityKind, id: &str, disabled: bool) -> log::SetStatus {
    log::SetStatus {
        entity: entity as i32,
        id: id.to_owned(),
        disabled,
        reason: "offboarding".to_owned(),
    }
}

fn agent_session(session_id: &str, agent_id: &str) -> log::StartSession {
    log::StartSession {
        session_id: session_id.to_owned(),
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: agent_id.to_owned(),
        auth_method: log::AuthMethod::ClientSecret as i32,
        ttl_seconds: 3_600,
        ..Default::default()
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

fn end_session(session_id: &str) -> log::EndSession {
    log::EndSession {
        session_id: session_id.to_owned(),
        reason: "logout".to_owned(),
    }
}

fn device(device_id: &str, owner_human_id: &str) -> log::RegisterDevice {
    log::RegisterDevice {
        device_id: device_id.to_owned(),
        owner_human_id: owner_human_id.to_owned(),
        name: format!("{owner_human_id}'s {device_id}"),
        platform: "linux".to_owned(),
    }
}

fn bind(agent_id: &str, device_id: &str) -> log::BindAgentDevice {
    log::BindAgentDevice {
        agent_id: agent_id.to_owned(),
        device_id: device_id.to_owned(),
    }
}

/// An Ed25519 credential whose key is `len` bytes of 0xee.
fn ed25519(credential_id: &str, len: usize) -> Credential {
    Credential {
        credential_id: credential_id.to_owned(),
        kind: Some(CredentialKind::Ed25519PublicKey(vec![0xee; len])),
    }
}

fn retire(key_id: &str) -> log::RetireSigningKey {
    log::RetireSigningKey {
        key_id: key_id.to_owned(),
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

// CreateDelegation.

#[test]
fn a_human_grants_a_root_delegation() {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        service("cal", CAL, &["view"]).by(admin()),
    ]);
    // Scopes may come from any granted audience's service.
    let grant = log::CreateDelegation {
        scopes: strings(&["send", "view"]),
        audiences: strings(&[MAIL, CAL]),
        ..d1()
    };
    let (accepted, event) = check_accepted(&mut replica, grant.by(human_actor("hana")));
    let created = log::DelegationCreated {
        delegation_id: "d1".to_owned(),
        parent_delegation_id: String::new(),
        root_human_id: "hana".to_owned(),
        grantor_kind: PrincipalKind::Human as i32,
        grantor_id: "hana".to_owned(),
        grantee_agent_id: "bot".to_owned(),
        scopes: strings(&["send", "view"]),
        audiences: strings(&[MAIL, CAL]),
        task: "triage inbox".to_owned(),
        expires_at_unix_s: D1_EXPIRES,
        max_depth: 3,
        depth: 1,
        agent_chain: strings(&["bot"]),
    };
    assert_eq!(accepted.delegation_created.as_ref(), Some(&created));
    assert_eq!(
        event.kind,
        Some(EventKind::DelegationCreated(created.clone()))
    );
    let row = DelegationRow {
        created: Some(created),
        created_seq: accepted.seq,
        ..Default::default()
    };
    assert_eq!(
        query::delegations_to(&replica.state, "bot", 10).expect("the store reads"),
        [row]
    );
}

#[test]
fn an_admin_grants_a_root_delegation_only_for_a_named_human() {
    let mut replica = Replica::world();
    replica.set_up([register_human("hana")]);
    let for_hana = log::CreateDelegation {
        grantor_human_id: "hana".to_owned(),
        ..d1()
    };
    let (accepted, _) = check_accepted(&mut replica.clone(), for_hana.by(admin()));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(
        (
            created.root_human_id.as_str(),
            created.grantor_kind,
            created.grantor_id.as_str(),
            created.depth,
        ),
        ("hana", PrincipalKind::Human as i32, "hana", 1)
    );
    check_rejected(
        replica,
        d1().by(admin()),
        RejectReason::InvalidCommand,
        "grantor_human_id is empty; allowed: the human an admin makes the grant for",
    );
}

#[test]
fn root_delegation_rejections() {
    use RejectReason::*;
    let mut base = Replica::world();
    base.set_up([
        register_human("hana"),
        register_human("dora"),
        set_status(log::EntityKind::Human, "dora", true).by(admin()),
        d1().by(human_actor("hana")),
    ]);
    let hana = human_actor("hana");
    let with = |change: fn(&mut log::CreateDelegation)| {
        let mut body = log::CreateDelegation {
            delegation_id: "d9".to_owned(),
            ..d1()
        };
        change(&mut body);
        body.by(human_actor("hana"))
    };
    let agent_root = "a delegation without a parent is granted by a human (or an admin for one); \
                      an agent delegates onward only under a delegation it holds \
                      (parent_delegation_id)";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (
            with(|it| it.grantor_human_id = "alice".to_owned()),
            PermissionDenied,
            "human hana may grant only as themself, not as alice".to_owned(),
        ),
        (
            d1().by(agent_actor("bot")),
            PermissionDenied,
            agent_root.to_owned(),
        ),
        (d1().by(node()), PermissionDenied, agent_root.to_owned()),
        (
            with(|it| it.scopes = strings(&["send", "view"])),
            ScopeNotAllowed,
            "scope view is not a tool of any granted audience's service; allowed: read send"
                .to_owned(),
        ),
        (
            with(|it| it.audiences = strings(&["https://nowhere"])),
            ServiceNotFound,
            "no service has audience https://nowhere".to_owned(),
        ),
        (
            with(|it| it.audiences = Vec::new()),
            InvalidCommand,
            "audiences has 0 entries; allowed: 1 to 16 service audiences".to_owned(),
        ),
        (
            with(|it| it.audiences = strings(&[MAIL, MAIL])),
            InvalidCommand,
            format!("audiences[1] repeats {MAIL}; allowed: unique audiences"),
        ),
        (
            with(|it| it.grantee_agent_id = "ghost".to_owned()),
            AgentNotFound,
            "agent ghost does not exist".to_owned(),
        ),
        (
            d1().by(human_actor("dora")),
            HumanDisabled,
            "human dora is disabled".to_owned(),
        ),
        (
            log::CreateDelegation {
                grantor_human_id: "ghost".to_owned(),
                ..d1()
            }
            .by(admin()),
            HumanNotFound,
            "human ghost does not exist".to_owned(),
        ),
        (
            log::CreateDelegation {
                task: "another".to_owned(),
                ..d1()
            }
            .by(hana),
            AlreadyExists,
            "delegation d1 already exists".to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, &message);
    }
}

#[test]
fn an_agent_grants_a_narrower_child_that_inherits_the_task() {
    let mut replica = Replica::world();
    replica.set_up([
        register_human("hana"),
        agent("sub", "alice").by(admin()),
        d1().by(human_actor("hana")),
    ]);
    let (accepted, event) = check_accepted(&mut replica, d2().by(agent_actor("bot")));
    let created = log::DelegationCreated {
        delegation_id: "d2".to_owned(),
        parent_delegation_id: "d1".to_owned(),
        root_human_id: "hana".to_owned(),
        grantor_kind: PrincipalKind::Agent as i32,
        grantor_id: "bot".to_owned(),
        grantee_agent_id: "sub".to_owned(),
        scopes: strings(&["read"]),
        audiences: strings(&[MAIL]),
        task: "triage inbox".to_owned(),
        expires_at_unix_s: D2_EXPIRES,
        max_depth: 2,
        depth: 2,
        agent_chain: strings(&["bot", "sub"]),
    };
    assert_eq!(accepted.delegation_created.as_ref(), Some(&created));
    assert_eq!(event.kind, Some(EventKind::DelegationCreated(created)));
    // A task of its own replaces the inherited one.
    let own_task = log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        task: "summarize only".to_owned(),
        ..d2()
    };
    let (accepted, _) = check_accepted(&mut replica, own_task.by(agent_actor("bot")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(created.task, "summarize only");
}

#[test]
fn child_delegation_bounds_are_inclusive() {
    // Everything at the parent's limit: its expiry, its max_depth, all its scopes and audiences.
    let mut replica = delegation_world();
    let at_limit = log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        grantee_agent_id: "other".to_owned(),
        scopes: strings(&["send", "read"]),
        expires_at_unix_s: D1_EXPIRES,
        max_depth: 3,
        ..d2()
    };
    let (accepted, _) = check_accepted(&mut replica, at_limit.by(agent_actor("bot")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!((created.depth, created.max_depth), (2, 3));
    // The deepest grant its max_depth allows.
    let deepest = log::CreateDelegation {
        delegation_id: "d4".to_owned(),
        parent_delegation_id: "d2".to_owned(),
        grantee_agent_id: "other".to_owned(),
        ..d2()
    };
    let mut replica = delegation_world();
    check_rejected(
        replica.clone(),
        deepest.clone().by(agent_actor("sub")),
        RejectReason::DelegationDepthExceeded,
        "the chain would be 3 agents deep; allowed: at most 2 under delegation d2",
    );
    let roomy = log::CreateDelegation {
        delegation_id: "d2b".to_owned(),
        max_depth: 3,
        ..d2()
    };
    check_accepted(&mut replica, roomy.by(agent_actor("bot")));
    let deepest = log::CreateDelegation {
        parent_delegation_id: "d2b".to_owned(),
        max_depth: 3,
        ..deepest
    };
    let (accepted, _) = check_accepted(&mut replica, deepest.by(agent_actor("sub")));
    let created = accepted.delegation_created.expect("the grant is returned");
    assert_eq!(created.depth, 3);
    assert_eq!(created.agent_chain, strings(&["bot", "sub", "other"]));
    // A root grant for the longest lifetime and the deepest chain allowed.
    let longest = log::CreateDelegation {
        delegation_id: "d5".to_owned(),
        expires_at_unix_s: NOW_S + limits::DELEGATION_TTL_SECONDS_MAX,
        max_depth: limits::DELEGATION_DEPTH_MAX,
        ..d1()
    };
    check_accepted(&mut replica, longest.by(human_actor("hana")));
}

#[test]
fn child_delegation_rejections() {
    use RejectReason::*;
    let base = delegation_world();
    let next_seq = base.seq() + 1;
    let under = |parent: &str, grantee: &str| log::CreateDelegation {
        delegation_id: "d3".to_owned(),
        parent_delegation_id: parent.to_owned(),
        grantee_agent_id: grantee.to_owned(),
        ..d2()
    };
    let bot = || agent_actor("bot");
    let expiry_rule = format!(
        "allowed: a time after now and at most 2592000 s ahead (up to {})",
        NOW_S + limits::DELEGATION_TTL_SECONDS_MAX
    );
    let revoke_d1 = || revoke_delegation("d1").by(human_actor("hana"));
    let brief = log::CreateDelegation {
        delegation_id: "brief".to_owned(),
        expires_at_unix_s: T0_S + 60,
        ..d1()
    };
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (
            vec![],
            log::CreateDelegation {
                scopes: strings(&["read", "view"]),
                ..under("d1", "other")
            }
            .by(bot()),
            ScopeExceedsParent,
            "scope view is not in parent delegation d1; allowed: a subset of send read".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                audiences: strings(&[MAIL, CAL]),
                ..under("d1", "other")
            }
            .by(bot()),
            AudienceExceedsParent,
            format!("audience {CAL} is not in parent delegation d1; allowed: a subset of {MAIL}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: D1_EXPIRES + 1,
                ..under("d1", "other")
            }
            .by(bot()),
            ExpiryExceedsParent,
            format!(
                "expiry {} is after parent delegation d1's {D1_EXPIRES}; allowed: at most {D1_EXPIRES}",
                D1_EXPIRES + 1
            ),
        ),
        (
            vec![],
            under("d2", "other").by(agent_actor("sub")),
            DelegationDepthExceeded,
            "the chain would be 3 agents deep; allowed: at most 2 under delegation d2".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 4,
                ..under("d1", "other")
            }
            .by(bot()),
            DelegationDepthExceeded,
            "max_depth 4 is above the parent's 3; allowed: 2 to 3".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 1,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 1 but this grant is at depth 2; allowed: 2 to 3".to_owned(),
        ),
        (
            vec![],
            under("d2", "bot").by(agent_actor("sub")),
            DelegationCycle,
            "agent bot is already in the chain bot -> sub; allowed: an agent not yet in it"
                .to_owned(),
        ),
        (
            vec![],
            under("d1", "bot").by(bot()),
            DelegationCycle,
            "agent bot is already in the chain bot; allowed: an agent not yet in it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(agent_actor("other")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(agent_actor("sub")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(human_actor("hana")),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![],
            under("d1", "other").by(admin()),
            PermissionDenied,
            "only agent bot, which holds delegation d1, may delegate under it".to_owned(),
        ),
        (
            vec![revoke_d1()],
            under("d1", "other").by(bot()),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        // Revoking the root reaches every grant below it.
        (
            vec![revoke_d1()],
            under("d2", "other").by(agent_actor("sub")),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        (
            vec![brief.by(human_actor("hana"))],
            under("brief", "other").by(bot()),
            DelegationInactive,
            format!("delegation brief expired at {}", T0_S + 60),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            under("d2", "other").by(agent_actor("sub")),
            DelegationInactive,
            "agent bot is disabled".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            under("d1", "other").by(bot()),
            DelegationInactive,
            "human hana is disabled".to_owned(),
        ),
        (
            vec![],
            under("nope", "other").by(bot()),
            DelegationNotFound,
            "delegation nope does not exist".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: NOW_S,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!("expires_at_unix_s is {NOW_S} (now {NOW_S}); {expiry_rule}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: T0_S,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!("expires_at_unix_s is {T0_S} (now {NOW_S}); {expiry_rule}"),
        ),
        (
            vec![],
            log::CreateDelegation {
                expires_at_unix_s: NOW_S + limits::DELEGATION_TTL_SECONDS_MAX + 1,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            format!(
                "expires_at_unix_s is {} (now {NOW_S}); {expiry_rule}",
                NOW_S + limits::DELEGATION_TTL_SECONDS_MAX + 1
            ),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 0,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 0; allowed: 1 to 8".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                max_depth: 9,
                ..under("d1", "other")
            }
            .by(bot()),
            InvalidCommand,
            "max_depth is 9; allowed: 1 to 8".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "other", true).by(admin())],
            under("d1", "other").by(bot()),
            AgentDisabled,
            "agent other is disabled".to_owned(),
        ),
        (
            vec![],
            log::CreateDelegation {
                delegation_id: "d2".to_owned(),
                ..under("d1", "other")
            }
            .by(bot()),
            AlreadyExists,
            "delegation d2 already exists".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn revoke_delegation_by_anyone_above_it_or_its_grantee() {
    let actors = [
        admin(),
        human_actor("hana"),
        agent_actor("bot"),
        agent_actor("sub"),
    ];
    for actor in actors {
        let mut replica = delegation_world();
        let (accepted, event) =
            check_accepted(&mut replica, revoke_delegation("d2").by(actor.clone()));
        assert_eq!(
            event.kind,
            Some(EventKind::DelegationRevoked(log::DelegationRevoked {
                delegation_id: "d2".to_owned(),
                reason: "task done".to_owned(),
            }))
        );
        let row = query::delegation(&replica.state, "d2")
            .expect("the store reads")
            .expect("d2 exists");
        assert_eq!(
            (row.revoked, row.revoked_seq, row.revoke_reason.as_str()),
            (true, accepted.seq, "task done")
        );
        check_unchanged(
            &mut replica,
            revoke_delegation("d2").by(admin()).key("again"),
        );
    }
    use RejectReason::*;
    let cases = [
        (
            revoke_delegation("d1").by(agent_actor("sub")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot may revoke delegation d1",
        ),
        (
            revoke_delegation("d2").by(human_actor("alice")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot -> sub may revoke delegation d2",
        ),
        (
            revoke_delegation("d2").by(agent_actor("other")),
            PermissionDenied,
            "only an admin, human hana or an agent in the chain bot -> sub may revoke delegation d2",
        ),
        (
            revoke_delegation("nope").by(admin()),
            DelegationNotFound,
            "delegation nope does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(delegation_world(), command, reason, message);
    }
}

// IssueToken under a delegation.

#[test]
fn a_sub_agent_issues_for_the_root_human() {
    // The token lives at most as long as the delegation.
    for (ttl_seconds, expires_at_unix_s) in
        [(600, NOW_S + 600), (TOKEN_TTL_SECONDS_MAX, D2_EXPIRES)]
    {
        let mut replica = delegation_world();
        let command = log::IssueToken {
            ttl_seconds,
            ..delegated("j2", "sub", "d2", &["read"])
        };
        let (accepted, event) = check_accepted(&mut replica, command.by(agent_actor("sub")));
        let claims = log::TokenIssued {
            jti: "j2".to_owned(),
            subject: "hana".to_owned(),
            agent_id: "sub".to_owned(),
            audience: MAIL.to_owned(),
            scopes: strings(&["read"]),
            issued_at_unix_s: NOW_S,
            expires_at_unix_s,
            key_id: "k1".to_owned(),
            session_id: String::new(),
            delegation_id: "d2".to_owned(),
            actor_chain: strings(&["sub", "bot"]),
            task: "triage inbox".to_owned(),
            subject_jti: String::new(),
            subject_kind: PrincipalKind::Human as i32,
        };
        assert_eq!(accepted.token_issued.as_ref(), Some(&claims));
        assert_eq!(event.kind, Some(EventKind::TokenIssued(claims.clone())));
        assert_eq!(replica.token_row("j2").issued, Some(claims));
    }
    // The root grantee issues under its own grant: a chain of one.
    let mut replica = delegation_world();
    let (accepted, _) = check_accepted(
        &mut replica,
        delegated("j1", "bot", "d1", &["send"]).by(agent_actor("bot")),
    );
    let claims = accepted.token_issued.expect("claims are returned");
    assert_eq!(
        (
            claims.subject.as_str(),
            claims.actor_chain,
            claims.expires_at_unix_s
        ),
        ("hana", strings(&["bot"]), NOW_S + 600)
    );
}

#[test]
fn issue_under_delegation_rejections() {
    use RejectReason::*;
    let base = delegation_world();
    let next_seq = base.seq() + 1;
    let sub = || agent_actor("sub");
    let j2 = |scopes: &[&str]| delegated("j2", "sub", "d2", scopes).by(agent_actor("sub"));
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        // send is a tool of mail, so only the delegation refuses it.
        (
            vec![],
            j2(&["send"]),
            ScopeNotDelegated,
            "scope send is not in delegation d2; allowed: read".to_owned(),
        ),
        (
            vec![],
            log::IssueToken {
                audience: CAL.to_owned(),
                ..delegated("j2", "sub", "d2", &["view"])
            }
            .by(sub()),
            AudienceNotDelegated,
            format!("audience {CAL} is not in delegation d2; allowed: {MAIL}"),
        ),
        (
            vec![],
            delegated("j2", "bot", "d2", &["read"]).by(agent_actor("bot")),
            PermissionDenied,
            "delegation d2 is granted to agent sub, not bot".to_owned(),
        ),
        (
            vec![],
            delegated("j2", "sub", "d1", &["read"]).by(sub()),
            PermissionDenied,
            "delegation d1 is granted to agent bot, not sub".to_owned(),
        ),
        (
            vec![],
            delegated("j2", "sub", "nope", &["read"]).by(sub()),
            DelegationNotFound,
            "delegation nope does not exist".to_owned(),
        ),
        // The cascade: revoking the root stops the child.
        (
            vec![revoke_delegation("d1").by(human_actor("hana"))],
            j2(&["read"]),
            DelegationInactive,
            format!("delegation d1 was revoked at seq {next_seq}"),
        ),
        (
            vec![revoke_delegation("d2").by(agent_actor("bot"))],
            j2(&["read"]),
            DelegationInactive,
            format!("delegation d2 was revoked at seq {next_seq}"),
        ),
        // The kill switch on the middle of the chain.
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            j2(&["read"]),
            DelegationInactive,
            "agent bot is disabled".to_owned(),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            j2(&["read"]),
            DelegationInactive,
            "human hana is disabled".to_owned(),
        ),
        // Offboarding the agents' owner stops the agent itself first.
        (
            vec![set_status(log::EntityKind::Human, "alice", true).by(admin())],
            j2(&["read"]),
            AgentDisabled,
            "agent sub's owner: human alice is disabled".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn a_delegated_token_lapses_with_any_link_of_its_chain() {
    use LapseKind::*;
    let mut base = delegation_world();
    base.set_up([
        agent_session("as1", "sub").by(agent_actor("sub")),
        log::IssueToken {
            session_id: "as1".to_owned(),
            ..delegated("j2", "sub", "d2", &["read"])
        }
        .by(agent_actor("sub")),
    ]);
    let next_seq = base.seq() + 1;
    let cases: Vec<(Vec<Command>, Result<(), Lapse>)> = vec![
        (vec![], Ok(())),
        (
            vec![revoke_delegation("d1").by(human_actor("hana"))],
            lapse(
                DelegationRevoked,
                format!("delegation d1 was revoked at seq {next_seq}"),
            ),
        ),
        (
            vec![revoke_delegation("d2").by(agent_actor("sub"))],
            lapse(
                DelegationRevoked,
                format!("delegation d2 was revoked at seq {next_seq}"),
            ),
        ),
        (
            vec![set_status(log::EntityKind::Human, "hana", true).by(admin())],
            lapse(HumanDisabled, "human hana is disabled"),
        ),
        (
            vec![end_session("as1").by(agent_actor("sub"))],
            lapse(SessionEnded, format!("session as1 ended at seq {next_seq}")),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())],
            lapse(AgentDisabled, "agent bot is disabled"),
        ),
        (
            vec![set_status(log::EntityKind::Agent, "sub", true).by(admin())],
            lapse(AgentDisabled, "agent sub is disabled"),
        ),
        (
            vec![revoke("j2").by(human_actor("hana"))],
            lapse(
                TokenRevoked,
                format!("the token was revoked at seq {next_seq}"),
            ),
        ),
    ];
    for (set_up, expected) in cases {
        let mut replica = base.clone();
        let context = format!("{set_up:?}");
        replica.set_up(set_up);
        assert_eq!(token_validity(&replica, "j2"), expected, "after {context}");
    }
    // The chain also lapses when a link expires.
    let row = base.token_row("j2");
    assert_eq!(
        validity::token(&base.state, &row, D2_EXPIRES).expect("the store reads"),
        lapse(
            SessionEnded,
            format!("session as1 expired at {}", T0_S + 3_600)
        )
    );
}

// Token exchange (RFC 8693).

#[test]
fn exchange_a_human_session_token_down_a_delegation_chain() {
    let mut replica = delegation_world();
    let (accepted, event) = check_accepted(
        &mut replica,
        human_session("hs1", "hana", "hj").by(human_actor("hana")),
    );
    let session_token = log::TokenIssued {
        jti: "hj".to_owned(),
        subject: "hana".to_owned(),
        subject_kind: PrincipalKind::Human as i32,
        audience: ISSUER.to_owned(),
        issued_at_unix_s: NOW_S,
        expires_at_unix_s: NOW_S + 3_600,
        key_id: "k1".to_owned(),
        session_id: "hs1".to_owned(),
        ..Default::default()
    };
    let started = log::SessionStarted {
        session_id: "hs1".to_owned(),
        principal_kind: PrincipalKind::Human as i32,
        principal_id: "hana".to_owned(),
        device_id: String::new(),
        auth_method: log::AuthMethod::LocalPassword as i32,
        expires_at_unix_s: NOW_S + 3_600,
        federated: None,
        token: Some(session_token.clone()),
    };
    assert_eq!(accepted.token_issued.as_ref(), Some(&session_token));
    assert_eq!(accepted.session_started.as_ref(), Some(&started));
    assert_eq!(event.kind, Some(EventKind::SessionStarted(started)));
    assert_eq!(replica.token_row("hj").issued, Some(session_token));
    assert_eq!(token_validity(&replica, "hj"), Ok(()));

    // bot exchanges hana's session token under her grant d1.
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x1", "bot", "d1", "hj").by(agent_actor("bot")),
    );
    let x1 = log::TokenIssued {
        jti: "x1".to_owned(),
        subject: "hana".to_owned(),
        agent_id: "bot".to_owned(),
        audience: MAIL.to_owned(),
        scopes: strings(&["read"]),
        issued_at_unix_s: NOW_S,
        expires_at_unix_s: NOW_S + 600,
        key_id: "k1".to_owned(),
        session_id: "hs1".to_owned(),
        delegation_id: "d1".to_owned(),
        actor_chain: strings(&["bot"]),
        task: "triage inbox".to_owned(),
        subject_jti: "hj".to_owned(),
        subject_kind: PrincipalKind::Human as i32,
    };
    assert_eq!(accepted.token_issued, Some(x1.clone()));

    // sub exchanges bot's token under the grant bot made it.
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x2", "sub", "d2", "x1").by(agent_actor("sub")),
    );
    let x2 = log::TokenIssued {
        jti: "x2".to_owned(),
        agent_id: "sub".to_owned(),
        delegation_id: "d2".to_owned(),
        actor_chain: strings(&["sub", "bot"]),
        subject_jti: "x1".to_owned(),
        ..x1
    };
    assert_eq!(accepted.token_issued, Some(x2));

    // Logging out ends every token exchanged from the session.
    let (ended, _) = check_accepted(&mut replica, end_session("hs1").by(human_actor("hana")));
    for jti in ["hj", "x1", "x2"] {
        assert_eq!(
            token_validity(&replica, jti),
            lapse(
                LapseKind::SessionEnded,
                format!("session hs1 ended at seq {}", ended.seq)
            ),
            "{jti}"
        );
    }
}

#[test]
fn an_exchange_never_exceeds_the_subject_token() {
    // A session shorter than the requested token: the exchanged token ends with it.
    let mut replica = delegation_world();
    let short = log::StartSession {
        ttl_seconds: 60,
        ..human_session("hs1", "hana", "hj")
    };
    check_accepted(&mut replica, short.by(human_actor("hana")));
    let (accepted, _) = check_accepted(
        &mut replica,
        exchange("x1", "bot", "d1", "hj").by(agent_actor("bot")),
    );
    let claims = accepted.token_issued.expect("claims are returned");
    assert_eq!(claims.expires_at_unix_s, NOW_S + 60);
}

#[test]
fn token_exchange_rejections() {
    use RejectReason::*;
    let mut base = delegation_world();
    base.set_up([
        // alice's own grant to bot: not a continuation of hana's session.
        log::CreateDelegation {
            delegation_id: "da".to_owned(),
            ..d1()
        }
        .by(human_actor("alice")),
        human_session("hs1", "hana", "hj").by(human_actor("hana")),
        log::StartSession {
            ttl_seconds: 60,
            ..human_session("hs2", "hana", "hj2")
        }
        .by(human_actor("hana")),
    ]);
    let next_seq = base.seq() + 1;
    let no_link = |delegation_id: &str, subject_jti: &str| {
        format!(
            "delegation {delegation_id} does not continue from subject token {subject_jti}: \
             allowed: a root delegation from the session's human, or a delegation granted under \
             the subject token's own delegation by its agent"
        )
    };
    let bot = || agent_actor("bot");
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (vec![], exchange("x1", "bot", "da", "hj").by(bot()), SubjectTokenInactive, no_link("da", "hj")),
        // A human's session token goes to a root grantee only, not down a child.
        (vec![], exchange("x1", "sub", "d2", "hj").by(agent_actor("sub")), SubjectTokenInactive, no_link("d2", "hj")),
        (vec![end_session("hs1").by(human_actor("hana"))], exchange("x1", "bot", "d1", "hj").by(bot()), SubjectTokenInactive, format!("subject token hj: session hs1 ended at seq {next_seq}")),
        (vec![revoke("hj").by(human_actor("hana"))], exchange("x1", "bot", "d1", "hj").by(bot()), SubjectTokenInactive, format!("subject token hj: the token was revoked at seq {next_seq}")),
        (vec![], exchange("x1", "bot", "d1", "nope").by(bot()), SubjectTokenInactive, "subject token nope was never issued".to_owned()),
        (vec![], exchange("x1", "bot", "d1", "hj2").by(bot()), SubjectTokenInactive, format!("subject token hj2 expired at {}", T0_S + 60)),
        // bot's own token (no delegation) carries no authority to pass on.
        (
            vec![issue("j1", "bot", &["read"]).by(bot())],
            exchange("x1", "sub", "d2", "j1").by(agent_actor("sub")),
            SubjectTokenInactive,
            no_link("d2", "j1"),
        ),
        (vec![], log::IssueToken { delegation_id: String::new(), ..exchange("x1", "bot", "d1", "hj") }.by(bot()), InvalidCommand, "delegation_id is empty in a token exchange; allowed: the delegation the actor acts under".to_owned()),
        (
            vec![],
            log::IssueToken { session_id: "hs1".to_owned(), ..exchange("x1", "bot", "d1", "hj") }.by(bot()),
            InvalidCommand,
            "session_id is set in a token exchange; allowed: empty: an exchanged token keeps the subject token's session".to_owned(),
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = base.clone();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

// Client assertions.

#[test]
fn an_assertion_authenticates_one_command() {
    let mut replica = Replica::world();
    replica.set_up([agent("bot2", "alice").by(admin())]);
    let bot = || agent_actor("bot");
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1"),
    );
    assert!(query::assertion_spent(&replica.state, "bot", "a-1").expect("the store reads"));
    check_rejected(
        replica.clone(),
        issue("j2", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1"),
        RejectReason::AssertionReplayed,
        "client assertion a-1 of agent bot was already used; allowed: a new one (new jti) per \
         request",
    );
    // A new jti is a new assertion, and so is the same jti of another agent.
    check_accepted(
        &mut replica,
        issue("j2", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-2"),
    );
    check_accepted(
        &mut replica,
        issue("j3", "bot2", &["send"])
            .by(agent_actor("bot2"))
            .spending("bot2", "a-1"),
    );
}

#[test]
fn spent_assertions_are_forgotten_after_their_retention_and_refused_from_then_on() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1"),
    );
    let expires = NOW_S + 60;
    let by_expiry = keys::assertion_by_expiry(expires, "bot", "a-1");
    assert!(replica.state.get(&by_expiry).expect("reads").is_some());

    // Up to the end of the retention the assertion is remembered, whatever the batch holds.
    let last_remembered_ms = (expires + limits::ASSERTION_RETENTION_S) * 1000;
    let applied = replica.apply(last_remembered_ms, vec![]);
    assert!(applied.writes.is_empty(), "{:?}", applied.writes);
    // One second later it is forgotten: both rows go, and no event is written.
    let applied = replica.apply(last_remembered_ms + 1000, vec![]);
    assert!(applied.events.is_empty());
    assert_eq!(
        applied.writes.ops.keys().cloned().collect::<Vec<_>>(),
        vec![keys::assertion("bot", "a-1"), by_expiry.clone()]
    );
    assert!(applied.writes.ops.values().all(Option::is_none));
    replica.state.apply_writes(&applied.writes);
    assert!(!query::assertion_spent(&replica.state, "bot", "a-1").expect("reads"));

    // And from then on apply itself refuses it: the replay it can no longer see is refused as
    // too old, with no event.
    let stale = issue("j2", "bot", &["send"])
        .by(bot())
        .spending("bot", "a-1");
    let seq_before = replica.seq();
    let applied = replica.apply(last_remembered_ms + 2000, vec![stale]);
    let Some(OutcomeResult::Rejected(rejected)) = &applied.outcomes[0].result else {
        panic!("a stale assertion was accepted: {:?}", applied.outcomes);
    };
    assert_eq!(rejected.reason, RejectReason::AssertionExpired as i32);
    assert!(applied.events.is_empty());
    assert_eq!(replica.seq(), seq_before);
}

#[test]
fn pruning_is_bounded_per_batch_and_oldest_first() {
    let mut replica = Replica::world();
    let count = limits::ASSERTIONS_PRUNED_PER_BATCH_MAX + 6;
    // Spend `count` assertions directly, as accepted no-ops would, with distinct expiries.
    let mut writes = WriteSet::new();
    for idx in 0..count as u64 {
        let jti = format!("a-{idx:03}");
        writes.put(
            keys::assertion("bot", &jti),
            (NOW_S + idx).to_be_bytes().to_vec(),
        );
        writes.put(
            keys::assertion_by_expiry(NOW_S + idx, "bot", &jti),
            Vec::new(),
        );
    }
    replica.state.apply_writes(&writes);
    let far_future_ms = (NOW_S + 10 * limits::ASSERTION_RETENTION_S) * 1000;
    let applied = replica.apply(far_future_ms, vec![]);
    let forgotten: Vec<Vec<u8>> = applied
        .writes
        .ops
        .keys()
        .filter(|key| key.starts_with(keys::ASSERTION_PREFIX))
        .cloned()
        .collect();
    assert_eq!(forgotten.len(), limits::ASSERTIONS_PRUNED_PER_BATCH_MAX);
    assert_eq!(forgotten.first(), Some(&keys::assertion("bot", "a-000")));
    replica.state.apply_writes(&applied.writes);
    let applied = replica.apply(far_future_ms, vec![]);
    assert_eq!(applied.writes.len(), 2 * 6, "the rest go in the next batch");
}

#[test]
fn an_assertion_replayed_within_a_batch_is_refused() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    let applied = replica.apply(
        T1,
        vec![
            issue("j1", "bot", &["send"])
                .by(bot())
                .spending("bot", "a-1"),
            issue("j2", "bot", &["send"])
                .by(bot())
                .spending("bot", "a-1"),
        ],
    );
    accepted_of(&applied.outcomes[0]);
    assert_eq!(
        applied.outcomes[1],
        rejected(
            RejectReason::AssertionReplayed,
            "client assertion a-1 of agent bot was already used; allowed: a new one (new jti) \
             per request"
                .to_owned()
        )
    );
    let positions: Vec<u32> = applied.events.iter().map(|it| it.batch_position).collect();
    assert_eq!(positions, [0]);
    assert_eq!(
        query::token(&replica.state, "j2").expect("the store reads"),
        None
    );
}

#[test]
fn a_rejected_command_does_not_spend_its_assertion() {
    let mut replica = Replica::world();
    let bot = || agent_actor("bot");
    check_rejected(
        replica.clone(),
        issue("j1", "bot", &["delete"])
            .by(bot())
            .spending("bot", "a-1"),
        RejectReason::ScopeNotAllowed,
        "scope delete is not a tool of service mail; allowed: read, send",
    );
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"])
            .by(bot())
            .spending("bot", "a-1"),
    );
}

#[test]
fn an_assertion_must_name_the_acting_agent() {
    let rule = "allowed: the agent or human that is the actor";
    let cases = [
        (
            issue("j1", "bot", &["send"])
                .by(agent_actor("bot"))
                .spending("bot2", "a-1"),
            format!("assertion.principal_id is bot2 but the actor is bot; {rule}"),
        ),
        (
            register_human("zed").spending("bot", "a-1"),
            format!("assertion.principal_id is bot but the actor is root; {rule}"),
        ),
        // An id equal to the assertion's is not enough: the actor must be an agent or a human.
        (
            revoke("j1")
                .by(Actor {
                    kind: PrincipalKind::Service as i32,
                    id: "bot".to_owned(),
                    on_behalf_of: vec![],
                })
                .spending("bot", "a-1"),
            format!("assertion.principal_id is bot but the actor is bot; {rule}"),
        ),
        (
            issue("j1", "bot", &["send"])
                .by(agent_actor("bot"))
                .spending("bot", ""),
            "assertion.jti is empty; allowed: 1 to 128 printable ASCII characters ('!' to '~', \
             no spaces)"
                .to_owned(),
        ),
    ];
    for (command, message) in cases {
        check_rejected(
            Replica::world(),
            command,
            RejectReason::InvalidCommand,
            &message,
        );
    }
}

#[test]
fn a_retry_with_its_assertion_replays_the_first_outcome() {
    let mut replica = Replica::world();
    let command = issue("j1", "bot", &["send"])
        .by(agent_actor("bot"))
        .spending("bot", "a-1");
    let (first, _) = check_accepted(&mut replica, command.clone());
    for batch in [vec![command.clone()], vec![command.clone(), command]] {
        let digest_before = replica.digest();
        let applied = replica.apply(T1 + 1_000, batch);
        for outcome in &applied.outcomes {
            assert_eq!(
                accepted_of(outcome),
                Accepted {
                    replayed: true,
                    ..first.clone()
                }
            );
        }
        assert_eq!(applied.events, []);
        assert!(applied.writes.is_empty());
        assert_eq!(replica.digest(), digest_before);
    }
}

#[test]
fn a_retry_of_an_accepted_no_op_with_its_assertion_is_not_refused() {
    let mut replica = Replica::world();
    replica.set_up([
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        revoke("j1").by(admin()),
    ]);
    // Revoking a revoked token is accepted without a change...
    let command = revoke("j1").by(agent_actor("bot")).spending("bot", "a-1");
    let applied = replica.apply(T1, vec![command.clone()]);
    let first = accepted_of(&applied.outcomes[0]);
    assert!(!first.changed);
    // ...and so must its retry be, rather than refused as a replayed assertion.
    let applied = replica.apply(T1 + 1_000, vec![command]);
    let retried = accepted_of(&applied.outcomes[0]);
    assert_eq!((retried.seq, retried.changed), (first.seq, false));
}

// Sessions.

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

#[test]
fn an_agent_session_starts_and_ends_once() {
    let mut replica = session_world();
    let (started_outcome, event) = check_accepted(
        &mut replica,
        agent_session("s1", "bot").by(agent_actor("bot")),
    );
    let started = log::SessionStarted {
        session_id: "s1".to_owned(),
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: "bot".to_owned(),
        device_id: String::new(),
        auth_method: log::AuthMethod::ClientSecret as i32,
        expires_at_unix_s: NOW_S + 3_600,
        federated: None,
        token: None,
    };
    assert_eq!(started_outcome.session_started.as_ref(), Some(&started));
    assert_eq!(started_outcome.token_issued, None);
    assert_eq!(event.kind, Some(EventKind::SessionStarted(started.clone())));
    let (ended, event) = check_accepted(&mut replica, end_session("s1").by(agent_actor("bot")));
    assert_eq!(
        event.kind,
        Some(EventKind::SessionEnded(log::SessionEnded {
            session_id: "s1".to_owned(),
            reason: "logout".to_owned(),
        }))
    );
    assert_eq!(
        query::session(&replica.state, "s1").expect("the store reads"),
        Some(SessionRow {
            started: Some(started),
            started_seq: started_outcome.seq,
            ended: true,
            ended_seq: ended.seq,
            end_reason: "logout".to_owned(),
        })
    );
    // Ending it again, by anyone allowed to, changes nothing.
    for actor in [agent_actor("bot"), human_actor("alice"), admin()] {
        let again = log::EndSession {
            reason: "again".to_owned(),
            ..end_session("s1")
        };
        check_unchanged(&mut replica, again.by(actor));
    }
}

#[test]
fn a_human_session_on_a_device_issues_its_session_token() {
    let mut replica = session_world();
    let command = log::StartSession {
        device_id: "laptop".to_owned(),
        ..human_session("hs1", "alice", "hj")
    };
    let (accepted, _) = check_accepted(&mut replica, command.by(human_actor("alice")));
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "laptop");
    let token = started.token.expect("a human session has a token");
    assert_eq!(accepted.token_issued.as_ref(), Some(&token));
    assert_eq!(
        replica.token_row("hj"),
        TokenRow {
            issued: Some(token),
            issued_seq: accepted.seq,
            ..Default::default()
        }
    );
    let key = query::signing_key(&replica.state, "k1")
        .expect("the store reads")
        .expect("k1 is published");
    assert_eq!(key.last_token_expires_at_unix_s, NOW_S + 3_600);
    // Disabling the device ends what was started on it.
    check_accepted(
        &mut replica,
        set_status(log::EntityKind::Device, "laptop", true).by(human_actor("alice")),
    );
    assert_eq!(
        token_validity(&replica, "hj"),
        lapse(
            LapseKind::DeviceDisabled,
            "session hs1's device laptop is disabled"
        )
    );
}

#[test]
fn a_bound_agent_starts_its_sessions_on_its_device() {
    let mut replica = session_world();
    let (_, event) = check_accepted(&mut replica, bind("bot", "laptop").by(human_actor("alice")));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentDeviceBound(log::AgentDeviceBound {
            agent_id: "bot".to_owned(),
            device_id: "laptop".to_owned(),
        }))
    );
    check_unchanged(&mut replica, bind("bot", "laptop").by(admin()));
    let (accepted, _) = check_accepted(
        &mut replica,
        agent_session("s1", "bot").by(agent_actor("bot")),
    );
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "laptop");
    // Unbinding frees the agent from the device.
    let (_, event) = check_accepted(&mut replica, bind("bot", "").by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::AgentDeviceBound(log::AgentDeviceBound {
            agent_id: "bot".to_owned(),
            device_id: String::new(),
        }))
    );
    let (accepted, _) = check_accepted(
        &mut replica,
        agent_session("s2", "bot").by(agent_actor("bot")),
    );
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.device_id, "");
}

#[test]
fn start_session_rejections() {
    use RejectReason::*;
    let alice = || human_actor("alice");
    let bot = || agent_actor("bot");
    let on = |device_id: &str, session: log::StartSession| log::StartSession {
        device_id: device_id.to_owned(),
        ..session
    };
    let bind_laptop = || bind("bot", "laptop").by(human_actor("alice"));
    let cases: Vec<(Vec<Command>, Command, RejectReason, String)> = vec![
        (vec![], on("phone", human_session("hs1", "alice", "hj")).by(alice()), PermissionDenied, "device phone belongs to human hana".to_owned()),
        (vec![], on("phone", agent_session("s1", "bot")).by(bot()), PermissionDenied, "device phone belongs to human hana".to_owned()),
        (vec![], on("tablet", human_session("hs1", "alice", "hj")).by(alice()), DeviceDisabled, "device tablet is disabled".to_owned()),
        (vec![], on("ghost", agent_session("s1", "bot")).by(bot()), DeviceNotFound, "device ghost does not exist".to_owned()),
        (
            vec![bind_laptop(), set_status(log::EntityKind::Device, "laptop", true).by(admin())],
            agent_session("s1", "bot").by(bot()),
            DeviceDisabled,
            "agent bot's device laptop is disabled".to_owned(),
        ),
        (vec![bind_laptop()], on("phone", agent_session("s1", "bot")).by(bot()), PermissionDenied, "agent bot is bound to device laptop, not phone".to_owned()),
        // A session is started by its own principal only.
        (vec![], agent_session("s1", "bot").by(agent_actor("bot2")), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], agent_session("s1", "bot").by(alice()), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], agent_session("s1", "bot").by(admin()), PermissionDenied, "only bot itself may start its session".to_owned()),
        (vec![], human_session("hs1", "alice", "hj").by(human_actor("hana")), PermissionDenied, "only alice itself may start its session".to_owned()),
        (vec![], human_session("hs1", "alice", "hj").by(agent_actor("alice")), PermissionDenied, "only alice itself may start its session".to_owned()),
        (
            vec![],
            log::StartSession { auth_method: log::AuthMethod::ClientSecret as i32, ..human_session("hs1", "alice", "hj") }.by(alice()),
            InvalidCommand,
            "auth_method is 1 for principal kind 2; allowed: a human with OIDC_ID_TOKEN or LOCAL_PASSWORD, or an agent with CLIENT_SECRET or PRIVATE_KEY_JWT".to_owned(),
        ),
        (vec![], log::StartSession { ttl_seconds: 0, ..agent_session("s1", "bot") }.by(bot()), InvalidCommand, "ttl_seconds is 0; allowed: 1 to 604800".to_owned()),
        (vec![set_status(log::EntityKind::Agent, "bot", true).by(admin())], agent_session("s1", "bot").by(bot()), AgentDisabled, "agent bot is disabled".to_owned()),
        (vec![set_status(log::EntityKind::Human, "alice", true).by(admin())], human_session("hs1", "alice", "hj").by(alice()), HumanDisabled, "human alice is disabled".to_owned()),
        (vec![agent_session("s1", "bot").by(bot())], log::StartSession { ttl_seconds: 60, ..agent_session("s1", "bot") }.by(bot()), AlreadyExists, "session s1 already exists".to_owned()),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = session_world();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, &message);
    }
}

#[test]
fn end_session_rejections() {
    use RejectReason::*;
    let mut base = session_world();
    base.set_up([agent_session("s1", "bot").by(agent_actor("bot"))]);
    let cases = [
        (
            end_session("s1").by(agent_actor("bot2")),
            PermissionDenied,
            "only an admin or bot may end session s1",
        ),
        (
            end_session("s1").by(human_actor("hana")),
            PermissionDenied,
            "only an admin or bot may end session s1",
        ),
        (
            end_session("nope").by(admin()),
            SessionNotFound,
            "session nope does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

#[test]
fn bind_agent_device_rejections() {
    use RejectReason::*;
    let alice = || human_actor("alice");
    let cases = [
        (
            bind("bot", "phone").by(alice()),
            PermissionDenied,
            "device phone belongs to human hana, not to agent bot's owner alice",
        ),
        (
            bind("bot", "tablet").by(alice()),
            DeviceDisabled,
            "device tablet is disabled",
        ),
        (
            bind("bot", "ghost").by(alice()),
            DeviceNotFound,
            "device ghost does not exist",
        ),
        (
            bind("bot", "laptop").by(human_actor("hana")),
            PermissionDenied,
            "only an admin or human alice may bind this agent",
        ),
        (
            bind("bot", "laptop").by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or human alice may bind this agent",
        ),
        (
            bind("ghost", "laptop").by(alice()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(session_world(), command, reason, message);
    }
}

// ChangeCredentials.

#[test]
fn change_credentials_adds_a_key_without_its_bytes_in_the_event() {
    let mut replica = Replica::world();
    let command = log::ChangeCredentials {
        agent_id: "bot".to_owned(),
        add: vec![ed25519("c2", 32)],
        remove: Vec::new(),
    };
    let (_, event) = check_accepted(&mut replica, command.by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::CredentialsChanged(log::CredentialsChanged {
            agent_id: "bot".to_owned(),
            added_ids: strings(&["c2"]),
            removed_ids: Vec::new(),
        }))
    );
    let event_bytes = event.encode_to_vec();
    assert!(
        !event_bytes.windows(32).any(|it| it == [0xee; 32]),
        "key leaked into the event"
    );
    let row = query::agent(&replica.state, "bot")
        .expect("the store reads")
        .expect("bot exists");
    assert_eq!(row.credentials, [credential("c1"), ed25519("c2", 32)]);
}

#[test]
fn an_agent_or_its_owner_rotates_its_credentials() {
    for actor in [agent_actor("bot"), human_actor("alice")] {
        let mut replica = Replica::world();
        // Add and remove in one step: never a moment with neither or both.
        let rotation = log::ChangeCredentials {
            agent_id: "bot".to_owned(),
            add: vec![ed25519("c2", 32)],
            remove: strings(&["c1"]),
        };
        let (_, event) = check_accepted(&mut replica, rotation.by(actor));
        assert_eq!(
            event.kind,
            Some(EventKind::CredentialsChanged(log::CredentialsChanged {
                agent_id: "bot".to_owned(),
                added_ids: strings(&["c2"]),
                removed_ids: strings(&["c1"]),
            }))
        );
        let row = query::agent(&replica.state, "bot")
            .expect("the store reads")
            .expect("bot exists");
        assert_eq!(row.credentials, [ed25519("c2", 32)]);
    }
}

#[test]
fn change_credentials_rejections() {
    use RejectReason::*;
    let change = |add: Vec<Credential>, remove: &[&str]| log::ChangeCredentials {
        agent_id: "bot".to_owned(),
        add,
        remove: strings(remove),
    };
    let bot = || agent_actor("bot");
    let many = |from: usize, to: usize| -> Vec<Credential> {
        (from..to)
            .map(|idx| ed25519(&format!("c{idx}"), 32))
            .collect()
    };
    let denied = "only an admin, human alice or agent bot itself may change its credentials";
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (change(vec![], &["c9"]).by(bot()), CredentialNotFound, "agent bot has no credential c9".to_owned()),
        (change(vec![], &["c1", "c1"]).by(bot()), CredentialNotFound, "agent bot has no credential c1".to_owned()),
        (change(vec![ed25519("c1", 32)], &[]).by(bot()), AlreadyExists, "agent bot already has credential c1".to_owned()),
        (change(vec![ed25519("c2", 32), credential("c2")], &[]).by(bot()), AlreadyExists, "agent bot already has credential c2".to_owned()),
        (change(vec![ed25519("c2", 31)], &[]).by(bot()), InvalidCommand, "add[0].ed25519_public_key is 31 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        (change(vec![ed25519("c2", 33)], &[]).by(bot()), InvalidCommand, "add[0].ed25519_public_key is 33 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        // bot holds c1: eight more would make nine.
        (change(many(2, 10), &[]).by(bot()), InvalidCommand, "add would leave 9 credentials; allowed: at most 8 per agent".to_owned()),
        (change(many(2, 11), &[]).by(bot()), InvalidCommand, "add has 9 entries; allowed: at most 8".to_owned()),
        (change(vec![], &[]).by(bot()), InvalidCommand, "add and remove are both empty; allowed: at least one credential to add or remove".to_owned()),
        (change(vec![], &["c 1"]).by(bot()), InvalidCommand, "remove[0] contains ' ' at byte 1; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".to_owned()),
        (change(vec![ed25519("c2", 32)], &["c1"]).by(agent_actor("bot2")), PermissionDenied, denied.to_owned()),
        (change(vec![ed25519("c2", 32)], &["c1"]).by(human_actor("hana")), PermissionDenied, denied.to_owned()),
        (log::ChangeCredentials { agent_id: "ghost".to_owned(), ..change(vec![], &["c1"]) }.by(admin()), AgentNotFound, "agent ghost does not exist".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
    // Up to the cap is fine.
    let mut replica = Replica::world();
    check_accepted(&mut replica, change(many(2, 9), &[]).by(bot()));
}

// RetireSigningKey.

#[test]
fn a_retired_key_is_kept_until_its_last_token_expires() {
    let bot = || agent_actor("bot");
    let cases: Vec<(Vec<Command>, u64)> = vec![
        (vec![], 0),
        (
            vec![
                log::IssueToken {
                    ttl_seconds: 3_600,
                    ..issue("j1", "bot", &["send"])
                }
                .by(bot()),
                issue("j2", "bot", &["send"]).by(bot()),
            ],
            T0_S + 3_600,
        ),
        // A human's session token is signed by the key too.
        (
            vec![
                issue("j1", "bot", &["send"]).by(bot()),
                log::StartSession {
                    ttl_seconds: 7_200,
                    ..human_session("hs1", "alice", "hj")
                }
                .by(human_actor("alice")),
            ],
            T0_S + 7_200,
        ),
    ];
    for (set_up, keep_until_unix_s) in cases {
        let mut replica = Replica::world();
        replica.set_up(set_up);
        let (accepted, event) = check_accepted(&mut replica, retire("k1").by(node()));
        assert_eq!(
            event.kind,
            Some(EventKind::SigningKeyRetired(log::SigningKeyRetired {
                key_id: "k1".to_owned(),
                node_id: 1,
                keep_until_unix_s,
            }))
        );
        let row = query::signing_key(&replica.state, "k1")
            .expect("the store reads")
            .expect("k1 is published");
        assert_eq!((row.retired, row.retired_seq), (true, accepted.seq));
        // Retiring it again changes nothing.
        check_unchanged(&mut replica, retire("k1").by(admin()));
    }
}

#[test]
fn retire_signing_key_rejections() {
    use RejectReason::*;
    let node_2 = Actor {
        id: "2".to_owned(),
        ..node()
    };
    let retire_k1 = || retire("k1").by(node());
    let cases: Vec<(Vec<Command>, Command, RejectReason, &str)> = vec![
        (
            vec![retire_k1()],
            issue("j1", "bot", &["send"]).by(agent_actor("bot")),
            SigningKeyRetired,
            "signing key k1 is retired; allowed: the node's current key",
        ),
        (
            vec![retire_k1()],
            human_session("hs1", "alice", "hj").by(human_actor("alice")),
            SigningKeyRetired,
            // One issuance rule for both paths: the message names what is allowed.
            "signing key k1 is retired; allowed: the node's current key",
        ),
        (
            vec![],
            retire("k1").by(node_2),
            PermissionDenied,
            "only an admin or node 1 may retire its key k1",
        ),
        (
            vec![],
            retire("k1").by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or node 1 may retire its key k1",
        ),
        (
            vec![],
            retire("k9").by(node()),
            SigningKeyNotFound,
            "signing key k9 is not published",
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = Replica::world();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, message);
    }
}

// SetStatus and updates.

#[test]
fn an_agent_is_disabled_and_enabled_again() {
    let mut replica = Replica::world();
    let status_changed = |disabled: bool| {
        Some(EventKind::StatusChanged(log::StatusChanged {
            entity: log::EntityKind::Agent as i32,
            id: "bot".to_owned(),
            disabled,
            reason: "offboarding".to_owned(),
        }))
    };
    let (accepted, event) = check_accepted(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", true).by(admin()),
    );
    assert!(accepted.changed);
    assert_eq!(event.kind, status_changed(true));
    check_unchanged(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", true).by(human_actor("alice")),
    );
    check_rejected(
        replica.clone(),
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        RejectReason::AgentDisabled,
        "agent bot is disabled",
    );
    // Its owner turns it back on.
    let (_, event) = check_accepted(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", false).by(human_actor("alice")),
    );
    assert_eq!(event.kind, status_changed(false));
    check_unchanged(
        &mut replica,
        set_status(log::EntityKind::Agent, "bot", false).by(admin()),
    );
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
}

#[test]
fn set_status_rejections() {
    use RejectReason::*;
    let mut base = Replica::world();
    base.set_up([register_human("hana")]);
    let agent_rule = "only an admin or human alice may disable or enable this agent";
    let cases = [
        (
            set_status(log::EntityKind::Agent, "bot", true).by(human_actor("hana")),
            PermissionDenied,
            agent_rule,
        ),
        (
            set_status(log::EntityKind::Agent, "bot", true).by(agent_actor("bot")),
            PermissionDenied,
            agent_rule,
        ),
        (
            set_status(log::EntityKind::Human, "alice", true).by(human_actor("alice")),
            PermissionDenied,
            "only an admin may disable or enable humans",
        ),
        (
            set_status(log::EntityKind::Service, "mail", true).by(human_actor("alice")),
            PermissionDenied,
            "only an admin may disable or enable services",
        ),
        (
            set_status(log::EntityKind::Agent, "ghost", true).by(admin()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
        (
            set_status(log::EntityKind::Human, "ghost", true).by(admin()),
            HumanNotFound,
            "human ghost does not exist",
        ),
        (
            set_status(log::EntityKind::Unspecified, "bot", true).by(admin()),
            InvalidCommand,
            "entity is 0; allowed: human, agent, service or device",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

#[test]
fn an_agent_is_updated_by_its_owner_only() {
    let update = log::UpdateAgent {
        agent_id: "bot".to_owned(),
        kind: "assistant".to_owned(),
        description: "schedules meetings".to_owned(),
    };
    let mut base = Replica::world();
    base.set_up([register_human("hana")]);
    for actor in [human_actor("alice"), admin()] {
        let mut replica = base.clone();
        let (_, event) = check_accepted(&mut replica, update.clone().by(actor));
        assert_eq!(
            event.kind,
            Some(EventKind::AgentUpdated(log::AgentUpdated {
                agent_id: "bot".to_owned(),
                kind: "assistant".to_owned(),
                description: "schedules meetings".to_owned(),
            }))
        );
        let row = query::agent(&replica.state, "bot")
            .expect("the store reads")
            .expect("bot exists");
        assert_eq!(
            (row.kind.as_str(), row.description.as_str()),
            ("assistant", "schedules meetings")
        );
        // The same values again change nothing.
        check_unchanged(&mut replica, update.clone().by(admin()).key("again"));
    }
    use RejectReason::*;
    let cases = [
        (
            update.clone().by(human_actor("hana")),
            PermissionDenied,
            "only an admin or human alice may update this agent",
        ),
        (
            update.clone().by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or human alice may update this agent",
        ),
        (
            log::UpdateAgent {
                agent_id: "ghost".to_owned(),
                ..update.clone()
            }
            .by(admin()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, message);
    }
}

#[test]
fn humans_devices_and_services_are_updated_by_whoever_may() {
    let mut replica = session_world();
    let human_update = log::UpdateHuman {
        human_id: "alice".to_owned(),
        display_name: "Alice A.".to_owned(),
        email: "alice@example.org".to_owned(),
    };
    let (_, event) = check_accepted(&mut replica, human_update.clone().by(human_actor("alice")));
    assert_eq!(
        event.kind,
        Some(EventKind::HumanUpdated(log::HumanUpdated {
            human_id: "alice".to_owned(),
            display_name: "Alice A.".to_owned(),
            email: "alice@example.org".to_owned(),
        }))
    );
    check_rejected(
        replica.clone(),
        log::UpdateHuman {
            display_name: "Mallory".to_owned(),
            ..human_update
        }
        .by(human_actor("hana")),
        RejectReason::PermissionDenied,
        "only an admin or human alice may update this human",
    );
    let device_update = log::UpdateDevice {
        device_id: "laptop".to_owned(),
        name: "work laptop".to_owned(),
        platform: "macos".to_owned(),
    };
    check_accepted(&mut replica, device_update.clone().by(human_actor("alice")));
    check_rejected(
        replica.clone(),
        device_update.by(human_actor("hana")),
        RejectReason::PermissionDenied,
        "only an admin or human alice may update this device",
    );
    let service_update = log::UpdateService {
        service_id: "mail".to_owned(),
        tools: service("mail", MAIL, &["send", "read", "archive"]).tools,
    };
    let (_, event) = check_accepted(&mut replica, service_update.clone().by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::ServiceUpdated(log::ServiceUpdated {
            service_id: "mail".to_owned(),
            tools: service_update.tools.clone(),
        }))
    );
    check_rejected(
        replica,
        service_update.by(human_actor("alice")),
        RejectReason::PermissionDenied,
        "only an admin may update services",
    );
}

const IDP: &str = "https://idp.example";

fn federated(subject: &str) -> log::FederatedIdentity {
    log::FederatedIdentity {
        issuer: IDP.to_owned(),
        subject: subject.to_owned(),
    }
}

/// hana, registered as subject 123 of the upstream issuer, logs in with its id_token.
fn oidc_session(subject: Option<&str>) -> Command {
    log::StartSession {
        auth_method: log::AuthMethod::OidcIdToken as i32,
        federated: subject.map(federated),
        ..human_session("hs1", "hana", "hj")
    }
    .by(human_actor("hana"))
}

#[test]
fn a_federated_human_logs_in_with_its_upstream_identity() {
    let mut base = Replica::world();
    let hana = log::RegisterHuman {
        federated: Some(federated("123")),
        ..human("hana")
    };
    base.set_up([hana.by(admin())]);
    let mut replica = base.clone();
    let (accepted, _) = check_accepted(&mut replica, oidc_session(Some("123")));
    let started = accepted.session_started.expect("the session is returned");
    assert_eq!(started.federated, Some(federated("123")));
    use RejectReason::*;
    let cases = [
        (
            oidc_session(Some("999")),
            PermissionDenied,
            format!("human hana is not subject 999 of issuer {IDP}"),
        ),
        (
            oidc_session(None),
            InvalidCommand,
            "federated is missing; allowed: the issuer and subject of the verified id_token"
                .to_owned(),
        ),
        (
            oidc_session(Some("")),
            InvalidCommand,
            "federated.subject is empty; allowed: 1 to 255 printable ASCII characters ('!' to \
             '~', no spaces)"
                .to_owned(),
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(base.clone(), command, reason, &message);
    }
}

#[test]
fn a_session_records_only_a_verified_upstream_identity() {
    // Neither a password login nor an agent's secret says anything about an upstream identity;
    // one the command carries anyway, never validated, must not reach the audit log.
    let unverified = Some(log::FederatedIdentity {
        issuer: "https://evil.example".to_owned(),
        subject: "not checked\n".to_owned(),
    });
    let commands = [
        log::StartSession {
            federated: unverified.clone(),
            ..human_session("hs1", "alice", "hj")
        }
        .by(human_actor("alice")),
        log::StartSession {
            federated: unverified,
            ..agent_session("s1", "bot")
        }
        .by(agent_actor("bot")),
    ];
    for command in commands {
        let mut replica = Replica::world();
        let applied = replica.apply(T1, vec![command]);
        match &applied.outcomes[0].result {
            Some(OutcomeResult::Accepted(accepted)) => {
                let started = accepted.session_started.as_ref().expect("a session");
                assert_eq!(started.federated, None);
            }
            _ => assert_eq!(
                reason_of(&applied.outcomes[0]),
                RejectReason::InvalidCommand
            ),
        }
    }
}

/// The kill switch is permanent for what existed when it was thrown: re-enabling an agent, a
/// human or a device does not revive the tokens, delegations or sessions issued before.
#[test]
fn re_enabling_does_not_revive_what_was_revoked() {
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
    );
    let before = replica.token_row("j1");
    assert_eq!(
        validity::token(&replica.state, &before, NOW_S).expect("reads"),
        Ok(())
    );
    for (entity, id) in [
        (log::EntityKind::Agent, "bot"),
        (log::EntityKind::Human, "alice"),
    ] {
        let mut replica = replica.clone();
        check_accepted(&mut replica, set_status(entity, id, true).by(admin()));
        check_accepted(&mut replica, set_status(entity, id, false).by(admin()));
        let lapse = validity::token(&replica.state, &before, NOW_S)
            .expect("reads")
            .expect_err("a token from before the kill switch stays revoked");
        let expected = match entity {
            log::EntityKind::Agent => LapseKind::AgentDisabled,
            _ => LapseKind::HumanDisabled,
        };
        assert_eq!(lapse.kind, expected, "{id}: {}", lapse.message);
        assert!(lapse.message.contains("enabled again"), "{}", lapse.message);
        // What is issued after the re-enable is in force.
        check_accepted(
            &mut replica,
            issue("j2", "bot", &["send"]).by(agent_actor("bot")),
        );
        let after = replica.token_row("j2");
        assert_eq!(
            validity::token(&replica.state, &after, NOW_S).expect("reads"),
            Ok(()),
            "{id}"
        );
    }
}

/// A command carries the credential its caller was authenticated with; apply refuses it once
/// that credential is gone, so a node that has not applied a logout or a credential removal yet
/// cannot let the old credential act.
#[test]
fn a_command_is_refused_once_its_credential_is_gone() {
    use log::caller_credential::Kind;
    let with = |command: Command, kind: Kind| Command {
        credential: Some(log::CallerCredential { kind: Some(kind) }),
        ..command
    };
    let mut replica = Replica::world();
    check_accepted(
        &mut replica,
        human_session("hs1", "alice", "hj1").by(human_actor("alice")),
    );
    let grant_as_alice = || {
        with(
            update_human_command().by(human_actor("alice")),
            Kind::SessionId("hs1".to_owned()),
        )
    };
    check_accepted(&mut replica, grant_as_alice());
    check_accepted(&mut replica, end_session("hs1").by(human_actor("alice")));
    check_rejected(
        replica.clone(),
        with(
            log::UpdateHuman {
                human_id: "alice".to_owned(),
                display_name: "Alice again".to_owned(),
                email: String::new(),
            }
            .by(human_actor("alice")),
            Kind::SessionId("hs1".to_owned()),
        ),
        RejectReason::CredentialRevoked,
        "the session that authenticated this command is no longer in force: session hs1 ended \
         at seq 7",
    );

    // An agent's credential: accepted while held, refused once removed.
    let issue_with_secret = |jti: &str| {
        with(
            issue(jti, "bot", &["send"]).by(agent_actor("bot")),
            Kind::CredentialId("c1".to_owned()),
        )
    };
    check_accepted(&mut replica, issue_with_secret("j1"));
    check_accepted(
        &mut replica,
        log::ChangeCredentials {
            agent_id: "bot".to_owned(),
            add: vec![],
            remove: vec!["c1".to_owned()],
        }
        .by(admin()),
    );
    check_rejected(
        replica.clone(),
        issue_with_secret("j2"),
        RejectReason::CredentialRevoked,
        "credential c1 of agent bot was removed; allowed: a credential the agent holds",
    );
    // A credential that does not fit the actor is malformed.
    check_rejected(
        replica,
        with(
            issue("j3", "bot", &["send"]).by(agent_actor("bot")),
            Kind::SessionId("hs1".to_owned()),
        ),
        RejectReason::InvalidCommand,
        "credential does not fit the actor; allowed: a session id for a human actor, a \
         credential id for an agent actor",
    );
}

fn update_human_command() -> log::UpdateHuman {
    log::UpdateHuman {
        human_id: "alice".to_owned(),
        display_name: "Alice L.".to_owned(),
        email: String::new(),
    }
}
