//! Tests for `apply_batch`, written as data: commands built by a few constructors, run through
//! one `check_*` helper per kind of expectation.

#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use warrant_proto::log::{
    Accepted, Actor, Batch, Command, Credential, Event, Outcome, RejectReason, Tool,
};

use super::*;
use crate::{InMemoryState, limits::TOKEN_TTL_SECONDS_MAX, state_digest};
use warrant_proto::state::TokenRow;

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
