//! Test fixtures: log commands as the tests and benchmarks of the workspace build them.
//!
//! What the apply tests, the determinism test, the proto frozen-bytes test and `bench/` share
//! lives here once: actors, command envelopes, and one constructor per command body with
//! plausible defaults that a test overrides with `..body(..)`. The data of a scenario (its ids,
//! its grants, its world) stays in the test that tells it.
//!
//! Compiled only for this crate's tests and under the `fixtures` feature, which only test and
//! benchmark crates enable. Nothing on a production path may use it: these envelopes carry
//! made-up digests and keys, and the defaults are test data.

use prost::Message;
use sha2::{Digest, Sha256};
use warrant_proto::log::{
    self, Actor, Command, Credential, PrincipalKind, SigningAlgorithm, Tool,
    command::Kind as CommandKind, credential::Kind as CredentialKind,
};

/// A PHC string of the shape an Argon2id client secret or password hash is stored in.
pub const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
/// The audience of service mail, the default audience of [`issue`].
pub const MAIL: &str = "https://mail.example";

// Actors.

/// An actor of `kind` named `id`, acting for no one else.
pub fn actor(kind: PrincipalKind, id: &str) -> Actor {
    Actor {
        kind: kind as i32,
        id: id.to_owned(),
        on_behalf_of: Vec::new(),
    }
}

/// The admin, named `root`.
pub fn admin() -> Actor {
    actor(PrincipalKind::Admin, "root")
}

/// Node `node_id`, as it publishes and retires its signing keys.
pub fn node(node_id: u64) -> Actor {
    actor(PrincipalKind::Node, &node_id.to_string())
}

pub fn agent_actor(id: &str) -> Actor {
    actor(PrincipalKind::Agent, id)
}

pub fn human_actor(id: &str) -> Actor {
    actor(PrincipalKind::Human, id)
}

// Envelopes.

/// A command whose request digest is the hash of its actor and body, and whose idempotency key
/// derives from that digest, as an API node would make them: the same request sent twice is a
/// retry, a different one gets a different key.
pub fn command(actor: Actor, kind: Option<CommandKind>) -> Command {
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

/// A command with the idempotency key and request digest given, for batches whose commands are
/// told apart by key alone.
pub fn command_with_key(
    actor: Actor,
    kind: CommandKind,
    idempotency_key: String,
    request_digest: Vec<u8>,
) -> Command {
    Command {
        idempotency_key,
        request_digest,
        actor: Some(actor),
        kind: Some(kind),
        ..Command::default()
    }
}

/// Turns a command body into a command sent by an actor, through [`command`].
pub trait By {
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
    RegisterOperator => RegisterOperator,
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
    RegisterHumans => RegisterHumans,
    MarkSigningKeyCompromised => MarkSigningKeyCompromised,
    Authorize => Authorize,
    RecordAccessDecisions => RecordAccessDecisions,
    RecordAuthFailures => RecordAuthFailures,
    RecordAuditExportProgress => RecordAuditExportProgress,
}

/// Overrides for the envelope of a command.
pub trait Envelope {
    fn key(self, idempotency_key: &str) -> Self;
    fn digest(self, request_digest: &[u8]) -> Self;
    /// Marks the command as authenticated by client assertion `jti` of `agent_id`, valid until
    /// `expires_at_unix_s`. The request digest stays that of the body, as the API node computes
    /// it.
    fn spending(self, agent_id: &str, jti: &str, expires_at_unix_s: u64) -> Self;
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

    fn spending(self, agent_id: &str, jti: &str, expires_at_unix_s: u64) -> Self {
        Command {
            assertion: Some(log::AssertionUse {
                principal_id: agent_id.to_owned(),
                jti: jti.to_owned(),
                expires_at_unix_s,
            }),
            ..self
        }
    }
}

// Command bodies, with plausible defaults; tests override fields with `..body(..)`.

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|it| (*it).to_owned()).collect()
}

pub fn human(id: &str) -> log::RegisterHuman {
    log::RegisterHuman {
        human_id: id.to_owned(),
        display_name: format!("{id} Example"),
        email: format!("{id}@example.com"),
        ..Default::default()
    }
}

/// An import of the humans `ids`, each as [`human`] makes it.
pub fn humans(ids: &[&str]) -> log::RegisterHumans {
    log::RegisterHumans {
        humans: ids.iter().map(|id| human(id)).collect(),
    }
}

/// Human `id`, registered by the admin.
pub fn register_human(id: &str) -> Command {
    human(id).by(admin())
}

/// Agent `id` of human `owner`, with client secret c1.
pub fn agent(id: &str, owner: &str) -> log::RegisterAgent {
    log::RegisterAgent {
        agent_id: id.to_owned(),
        owner_human_id: owner.to_owned(),
        kind: "mcp-client".to_owned(),
        description: "reads mail".to_owned(),
        credentials: vec![credential("c1")],
    }
}

/// An Argon2id client secret.
pub fn credential(id: &str) -> Credential {
    Credential {
        credential_id: id.to_owned(),
        kind: Some(CredentialKind::ClientSecretArgon2id(PHC.to_owned())),
    }
}

/// An Ed25519 credential whose key is `len` bytes of 0xee.
pub fn ed25519(credential_id: &str, len: usize) -> Credential {
    Credential {
        credential_id: credential_id.to_owned(),
        kind: Some(CredentialKind::Ed25519PublicKey(vec![0xee; len])),
    }
}

pub fn service(id: &str, audience: &str, tools: &[&str]) -> log::RegisterService {
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

/// A token for `agent_id` on mail, for ten minutes, signed with k1.
pub fn issue(jti: &str, agent_id: &str, scopes: &[&str]) -> log::IssueToken {
    log::IssueToken {
        jti: jti.to_owned(),
        agent_id: agent_id.to_owned(),
        audience: MAIL.to_owned(),
        scopes: strings(scopes),
        ttl_seconds: 600,
        key_id: "k1".to_owned(),
        ..Default::default()
    }
}

pub fn revoke(jti: &str) -> log::RevokeToken {
    log::RevokeToken {
        jti: jti.to_owned(),
        reason: "leaked".to_owned(),
    }
}

/// Node 1's Ed25519 key `key_id`, 32 bytes of `fill`.
pub fn signing_key(key_id: &str, fill: u8) -> log::PublishSigningKey {
    log::PublishSigningKey {
        key_id: key_id.to_owned(),
        node_id: 1,
        algorithm: SigningAlgorithm::Ed25519 as i32,
        public_key: vec![fill; 32],
    }
}

pub fn retire(key_id: &str) -> log::RetireSigningKey {
    log::RetireSigningKey {
        key_id: key_id.to_owned(),
    }
}

pub fn compromise(key_id: &str) -> log::MarkSigningKeyCompromised {
    log::MarkSigningKeyCompromised {
        key_id: key_id.to_owned(),
        reason: "key file leaked".to_owned(),
    }
}

pub fn revoke_delegation(delegation_id: &str) -> log::RevokeDelegation {
    log::RevokeDelegation {
        delegation_id: delegation_id.to_owned(),
        reason: "task done".to_owned(),
    }
}

pub fn set_status(entity: log::EntityKind, id: &str, disabled: bool) -> log::SetStatus {
    log::SetStatus {
        entity: entity as i32,
        id: id.to_owned(),
        disabled,
        reason: "offboarding".to_owned(),
    }
}

/// An hour-long session of agent `agent_id`, authenticated by client secret.
pub fn agent_session(session_id: &str, agent_id: &str) -> log::StartSession {
    log::StartSession {
        session_id: session_id.to_owned(),
        principal_kind: PrincipalKind::Agent as i32,
        principal_id: agent_id.to_owned(),
        auth_method: log::AuthMethod::ClientSecret as i32,
        ttl_seconds: 3_600,
        ..Default::default()
    }
}

pub fn end_session(session_id: &str) -> log::EndSession {
    log::EndSession {
        session_id: session_id.to_owned(),
        reason: "logout".to_owned(),
    }
}

pub fn device(device_id: &str, owner_human_id: &str) -> log::RegisterDevice {
    log::RegisterDevice {
        device_id: device_id.to_owned(),
        owner_human_id: owner_human_id.to_owned(),
        name: format!("{owner_human_id}'s {device_id}"),
        platform: "linux".to_owned(),
    }
}

pub fn bind(agent_id: &str, device_id: &str) -> log::BindAgentDevice {
    log::BindAgentDevice {
        agent_id: agent_id.to_owned(),
        device_id: device_id.to_owned(),
    }
}
