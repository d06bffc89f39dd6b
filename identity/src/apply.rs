//! Deciding a committed batch: every command becomes an outcome, and accepted ones become events
//! and projection rows.
//!
//! **Architecture Invariant:** [`apply_batch`] is a pure function of the state it reads, the batch
//! and the log index. It reads no clock (time is the batch stamp), draws no randomness, iterates
//! no hash map, and never panics, so every replica computes the same bytes. It returns `Err` only
//! when the store fails or holds a corrupt row; a bad command is a `Rejected` outcome, never an
//! error, because an error stops the node.
//!
//! Each command goes through the same steps:
//! 1. envelope checks (kind, idempotency key, request digest, actor), else `INVALID_COMMAND`;
//! 2. idempotency: a key seen before replays its first outcome, or is rejected as reused when the
//!    request digest differs;
//! 3. the command's own rules: field validation, then permission, then the state it depends on.
//!    A rejection at any step writes nothing.
//!
//! An accepted command that changed state appends exactly one event and stores its outcome under
//! its idempotency key. An accepted no-op (revoking a revoked token, republishing an identical
//! key) appends nothing and stores nothing, unless it carried a client assertion: then it spends
//! the assertion and keeps its outcome, so a retry replays. A rejected command spends nothing:
//! an assertion is spent by the first command it authenticates that is accepted.

use std::collections::BTreeSet;

use prost::Message;
use warrant_proto::{
    log::{
        self, PrincipalKind, RejectReason, SigningAlgorithm, command::Kind as CommandKind,
        credential::Kind as CredentialKind, event::Kind as EventKind,
        outcome::Result as OutcomeResult,
    },
    state::{AgentRow, HumanRow, IdempotencyRow, ServiceRow, SigningKeyRow, Status},
};

mod delegations;
mod principals;
mod sessions;
mod tokens;

use crate::{
    keys,
    limits::{
        self, CREDENTIALS_PER_AGENT_MAX, DESCRIPTION_LEN_MAX, DISPLAY_NAME_LEN_MAX,
        ED25519_PUBLIC_KEY_LEN, EMAIL_LEN_MAX, FieldError, ON_BEHALF_OF_MAX, REASON_LEN_MAX,
        REQUEST_DIGEST_LEN, TOOLS_PER_SERVICE_MAX,
    },
    query,
    state::{Overlay, StateError, StateRead, WriteSet},
};

/// What applying one batch decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppliedBatch {
    /// One outcome per command, in batch order.
    pub outcomes: Vec<log::Outcome>,
    /// Every row to write, to be committed atomically: projection rows, the events, the
    /// idempotency rows and the last seq. Empty when no command changed anything.
    pub writes: WriteSet,
    /// The events appended, in seq order. They are also in `writes`.
    pub events: Vec<log::Event>,
}

/// Decides every command of `batch`, committed at `log_index`, against `state`.
///
/// Deterministic. Err only for storage failures (StateError); domain rejections are
/// Outcome::Rejected.
pub fn apply_batch(
    state: &dyn StateRead,
    batch: &log::Batch,
    log_index: u64,
) -> Result<AppliedBatch, StateError> {
    let seq_before = query::applied_seq(state)?;
    let mut applier = Applier {
        overlay: Overlay::new(state),
        time_unix_ms: batch.time_unix_ms,
        log_index,
        last_seq: seq_before,
        events: Vec::new(),
    };
    applier.prune_spent_assertions()?;
    let mut outcomes = Vec::with_capacity(batch.commands.len());
    for (position, command) in batch.commands.iter().enumerate() {
        let outcome = match u32::try_from(position) {
            Ok(batch_position) if position < limits::COMMANDS_PER_BATCH_MAX => {
                applier.apply_command(batch_position, command)?
            }
            _ => rejected(
                RejectReason::InvalidCommand,
                format!(
                    "command {position} is past the batch limit; allowed: at most {} commands \
                     per batch",
                    limits::COMMANDS_PER_BATCH_MAX
                ),
            ),
        };
        outcomes.push(outcome);
    }
    let Applier {
        overlay,
        last_seq,
        events,
        ..
    } = applier;
    let mut writes = overlay.into_writes();
    if last_seq != seq_before {
        writes.put(keys::LAST_SEQ.to_vec(), last_seq.to_be_bytes().to_vec());
    }
    Ok(AppliedBatch {
        outcomes,
        writes,
        events,
    })
}

/// The state of one batch being applied.
struct Applier<'a> {
    /// The state as the next command sees it: the store plus the writes of earlier commands.
    overlay: Overlay<'a>,
    time_unix_ms: u64,
    log_index: u64,
    last_seq: u64,
    events: Vec<log::Event>,
}

impl Applier<'_> {
    /// Forgets up to [`limits::ASSERTIONS_PRUNED_PER_BATCH_MAX`] spent client assertions that
    /// expired more than [`limits::ASSERTION_RETENTION_S`] before this batch's stamp: apply
    /// refuses those anyway, so remembering them protects nothing. Oldest first, by key order.
    fn prune_spent_assertions(&mut self) -> Result<(), StateError> {
        let now_unix_s = self.time_unix_ms / 1000;
        let rows = self.overlay.scan(
            keys::ASSERTION_BY_EXPIRY_PREFIX,
            b"",
            limits::ASSERTIONS_PRUNED_PER_BATCH_MAX,
        )?;
        let mut writes = WriteSet::new();
        for (key, _) in rows {
            let Some((expires_at_unix_s, spent_key)) = keys::assertion_from_expiry_key(&key) else {
                return Err(StateError::corrupt(
                    &key,
                    "not a spent-assertion expiry key",
                ));
            };
            if now_unix_s <= expires_at_unix_s.saturating_add(limits::ASSERTION_RETENTION_S) {
                break;
            }
            writes.delete(key);
            writes.delete(spent_key);
        }
        self.overlay.write(writes);
        Ok(())
    }

    /// The credential the API node authenticated the actor with must still be in force at this
    /// batch: a session ended, or a credential removed, through another node a moment ago must
    /// not authenticate a command that a lagging node let through. `Some` is the rejection.
    fn check_credential(
        &self,
        actor: &log::Actor,
        credential: &log::CallerCredential,
    ) -> Result<Option<log::Outcome>, StateError> {
        use log::caller_credential::Kind;
        let now_unix_s = self.time_unix_ms / 1000;
        let refusal = match &credential.kind {
            Some(Kind::SessionId(session_id)) => {
                match crate::validity::session(&self.overlay, session_id, now_unix_s)? {
                    Ok(row)
                        if row.started.as_ref().is_some_and(|it| {
                            it.principal_kind == actor.kind && it.principal_id == actor.id
                        }) =>
                    {
                        None
                    }
                    Ok(_) => Some(format!(
                        "session {session_id} is not {}'s; allowed: the actor's own session",
                        actor.id
                    )),
                    Err(lapse) => Some(format!(
                        "the session that authenticated this command is no longer in force: {}",
                        lapse.message
                    )),
                }
            }
            Some(Kind::CredentialId(credential_id)) => {
                let held = query::agent(&self.overlay, &actor.id)?.is_some_and(|agent| {
                    agent
                        .credentials
                        .iter()
                        .any(|it| &it.credential_id == credential_id)
                });
                (!held).then(|| {
                    format!(
                        "credential {credential_id} of agent {} was removed; allowed: a \
                         credential the agent holds",
                        actor.id
                    )
                })
            }
            None => None,
        };
        Ok(refusal.map(|message| rejected(RejectReason::CredentialRevoked, message)))
    }

    fn apply_command(
        &mut self,
        batch_position: u32,
        command: &log::Command,
    ) -> Result<log::Outcome, StateError> {
        let (kind, actor) = match check_envelope(command) {
            Ok(it) => it,
            Err(field_error) => {
                return Ok(rejected(
                    RejectReason::InvalidCommand,
                    field_error.to_string(),
                ));
            }
        };
        let idempotency_key = keys::idempotency(actor.kind, &actor.id, &command.idempotency_key);
        if let Some(row) = query::read_row::<IdempotencyRow>(&self.overlay, &idempotency_key)? {
            return replay(&idempotency_key, row, command);
        }
        // Only a corrupt store can hold u64::MAX as the last seq: 2^64 events cannot be written.
        let Some(seq) = self.last_seq.checked_add(1) else {
            return Err(StateError::corrupt(
                keys::LAST_SEQ,
                "no seq left after u64::MAX",
            ));
        };
        if let Some(credential) = &command.credential
            && let Some(refusal) = self.check_credential(actor, credential)?
        {
            return Ok(refusal);
        }
        // A client assertion authenticates one command, once, anywhere in the cluster.
        let assertion_key = match &command.assertion {
            None => None,
            Some(assertion) => {
                let key = keys::assertion(&assertion.principal_id, &assertion.jti);
                let stale_after = assertion
                    .expires_at_unix_s
                    .saturating_add(limits::ASSERTION_RETENTION_S);
                // What the caller presented, for messages.
                let (what, whose) = if actor.kind == PrincipalKind::Human as i32 {
                    ("id_token", "human")
                } else {
                    ("client assertion", "agent")
                };
                if stale_after < self.time_unix_ms / 1000 {
                    return Ok(rejected(
                        RejectReason::AssertionExpired,
                        format!(
                            "{what} {} of {whose} {} expired at {}, more than {} s before this \
                             batch; allowed: a fresh one",
                            assertion.jti,
                            assertion.principal_id,
                            assertion.expires_at_unix_s,
                            limits::ASSERTION_RETENTION_S
                        ),
                    ));
                }
                if self.overlay.get(&key)?.is_some() {
                    return Ok(rejected(
                        RejectReason::AssertionReplayed,
                        format!(
                            "{what} {} of {whose} {} was already used; allowed: a new one (new \
                             jti) per request",
                            assertion.jti, assertion.principal_id
                        ),
                    ));
                }
                let by_expiry = keys::assertion_by_expiry(
                    assertion.expires_at_unix_s,
                    &assertion.principal_id,
                    &assertion.jti,
                );
                Some((key, by_expiry, assertion.expires_at_unix_s))
            }
        };
        let context = Context {
            actor,
            seq,
            time_unix_ms: self.time_unix_ms,
        };
        let change = match decide(&self.overlay, &context, kind) {
            Ok(change) => change,
            Err(Refusal::Reject(rejection)) => {
                return Ok(outcome(OutcomeResult::Rejected(rejection)));
            }
            Err(Refusal::Storage(error)) => return Err(error),
        };
        let Some(Change {
            event_kind,
            mut writes,
            token_issued,
            session_started,
            delegation_created,
        }) = change
        else {
            let outcome = accepted(log::Accepted {
                seq: self.last_seq,
                changed: false,
                ..log::Accepted::default()
            });
            // A no-op spends its assertion like any accepted command, so it also keeps its
            // outcome: a retry with the same key and assertion must replay, not be refused.
            if let Some((key, by_expiry, expires_at_unix_s)) = assertion_key {
                let mut writes = WriteSet::new();
                writes.put(key, expires_at_unix_s.to_be_bytes().to_vec());
                writes.put(by_expiry, Vec::new());
                let idempotency_row = IdempotencyRow {
                    request_digest: command.request_digest.clone(),
                    outcome: Some(outcome.clone()),
                };
                writes.put(idempotency_key, idempotency_row.encode_to_vec());
                self.overlay.write(writes);
            }
            return Ok(outcome);
        };
        if let Some((key, by_expiry, expires_at_unix_s)) = assertion_key {
            writes.put(key, expires_at_unix_s.to_be_bytes().to_vec());
            writes.put(by_expiry, Vec::new());
        }
        let event = log::Event {
            seq,
            time_unix_ms: self.time_unix_ms,
            log_index: self.log_index,
            batch_position,
            idempotency_key: command.idempotency_key.clone(),
            actor: Some(actor.clone()),
            kind: Some(event_kind),
        };
        let outcome = accepted(log::Accepted {
            seq,
            replayed: false,
            token_issued,
            changed: true,
            session_started,
            delegation_created,
        });
        let idempotency_row = IdempotencyRow {
            request_digest: command.request_digest.clone(),
            outcome: Some(outcome.clone()),
        };
        writes.put(keys::event(seq), event.encode_to_vec());
        writes.put(idempotency_key, idempotency_row.encode_to_vec());
        self.overlay.write(writes);
        self.events.push(event);
        self.last_seq = seq;
        Ok(outcome)
    }
}

/// Checks what every command must carry, in a fixed order so that the first problem is always
/// the one reported.
fn check_envelope(command: &log::Command) -> Result<(&CommandKind, &log::Actor), FieldError> {
    let Some(kind) = &command.kind else {
        return Err(FieldError::new(
            "kind",
            "is missing",
            "one of the command kinds of warrant.log.v1.Command",
        ));
    };
    limits::validate_idempotency_key("idempotency_key", &command.idempotency_key)?;
    if command.request_digest.len() != REQUEST_DIGEST_LEN {
        return Err(FieldError::new(
            "request_digest",
            format!("is {} bytes long", command.request_digest.len()),
            format!("exactly {REQUEST_DIGEST_LEN} bytes (SHA-256)"),
        ));
    }
    let Some(actor) = &command.actor else {
        return Err(FieldError::new(
            "actor",
            "is missing",
            "the principal that asked",
        ));
    };
    match PrincipalKind::try_from(actor.kind) {
        Ok(PrincipalKind::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                "actor.kind",
                format!("is {}", actor.kind),
                "admin, human, agent, service or node",
            ));
        }
        Ok(_) => {}
    }
    limits::validate_actor_id("actor.id", &actor.id)?;
    if ON_BEHALF_OF_MAX < actor.on_behalf_of.len() {
        return Err(FieldError::new(
            "actor.on_behalf_of",
            format!("has {} entries", actor.on_behalf_of.len()),
            format!("at most {ON_BEHALF_OF_MAX}"),
        ));
    }
    for (idx, principal) in actor.on_behalf_of.iter().enumerate() {
        limits::validate_actor_id(&format!("actor.on_behalf_of[{idx}]"), principal)?;
    }
    if let Some(credential) = &command.credential {
        use log::caller_credential::Kind;
        match &credential.kind {
            Some(Kind::SessionId(session_id)) if actor.kind == PrincipalKind::Human as i32 => {
                limits::validate_id("credential.session_id", session_id)?;
            }
            Some(Kind::CredentialId(credential_id))
                if actor.kind == PrincipalKind::Agent as i32 =>
            {
                limits::validate_id("credential.credential_id", credential_id)?;
            }
            _ => {
                return Err(FieldError::new(
                    "credential",
                    "does not fit the actor",
                    "a session id for a human actor, a credential id for an agent actor",
                ));
            }
        }
    }
    if let Some(assertion) = &command.assertion {
        let presenter =
            actor.kind == PrincipalKind::Agent as i32 || actor.kind == PrincipalKind::Human as i32;
        if !(presenter && actor.id == assertion.principal_id) {
            return Err(FieldError::new(
                "assertion.principal_id",
                format!(
                    "is {} but the actor is {}",
                    assertion.principal_id, actor.id
                ),
                "the agent or human that is the actor",
            ));
        }
        limits::validate_opaque(
            "assertion.jti",
            &assertion.jti,
            limits::ASSERTION_JTI_LEN_MAX,
        )?;
    }
    Ok((kind, actor))
}

/// The first outcome for a retried idempotency key, or a rejection if the key now names a
/// different request.
fn replay(
    key: &[u8],
    row: IdempotencyRow,
    command: &log::Command,
) -> Result<log::Outcome, StateError> {
    if row.request_digest != command.request_digest {
        return Ok(rejected(
            RejectReason::IdempotencyKeyReused,
            format!(
                "idempotency key {} was already used by this actor for a different request; \
                 allowed: a new key per request",
                command.idempotency_key
            ),
        ));
    }
    // Only accepted outcomes are ever stored.
    match row.outcome.and_then(|it| it.result) {
        Some(OutcomeResult::Accepted(first)) => Ok(accepted(log::Accepted {
            replayed: true,
            ..first
        })),
        _ => Err(StateError::corrupt(
            key,
            "idempotency row without an accepted outcome",
        )),
    }
}

/// What a command may depend on besides state and its own fields.
struct Context<'a> {
    actor: &'a log::Actor,
    /// The seq its event gets, if it makes one.
    seq: u64,
    time_unix_ms: u64,
}

/// What an accepted command changes: one event plus the projection rows it writes. A command
/// accepted as a no-op (nothing to change) has no `Change`.
struct Change {
    event_kind: EventKind,
    writes: WriteSet,
    /// The claims to return, for `IssueToken`.
    token_issued: Option<log::TokenIssued>,
    /// The session to return, for `StartSession`.
    session_started: Option<log::SessionStarted>,
    /// The grant to return, for `CreateDelegation`.
    delegation_created: Option<log::DelegationCreated>,
}

impl Change {
    fn new(event_kind: EventKind, writes: WriteSet) -> Self {
        Self {
            event_kind,
            writes,
            token_issued: None,
            session_started: None,
            delegation_created: None,
        }
    }
}

/// Why a command was not accepted. Lets handlers use `?` for both rejections and store errors.
enum Refusal {
    /// A domain rejection: becomes the command's outcome.
    Reject(log::Rejected),
    /// A store failure: stops the batch.
    Storage(StateError),
}

impl From<StateError> for Refusal {
    fn from(error: StateError) -> Self {
        Self::Storage(error)
    }
}

impl From<FieldError> for Refusal {
    fn from(error: FieldError) -> Self {
        reject(RejectReason::InvalidCommand, error.to_string())
    }
}

fn reject(reason: RejectReason, message: impl Into<String>) -> Refusal {
    Refusal::Reject(log::Rejected {
        reason: reason as i32,
        message: message.into(),
    })
}

fn decide(
    state: &dyn StateRead,
    context: &Context<'_>,
    kind: &CommandKind,
) -> Result<Option<Change>, Refusal> {
    match kind {
        CommandKind::RegisterHuman(command) => register_human(state, context, command),
        CommandKind::RegisterAgent(command) => register_agent(state, context, command),
        CommandKind::RegisterService(command) => register_service(state, context, command),
        CommandKind::IssueToken(command) => tokens::issue_token(state, context, command),
        CommandKind::RevokeToken(command) => revoke_token(state, context, command),
        CommandKind::PublishSigningKey(command) => publish_signing_key(state, context, command),
        CommandKind::UpdateHuman(command) => principals::update_human(state, context, command),
        CommandKind::UpdateAgent(command) => principals::update_agent(state, context, command),
        CommandKind::UpdateService(command) => principals::update_service(state, context, command),
        CommandKind::RegisterDevice(command) => {
            principals::register_device(state, context, command)
        }
        CommandKind::UpdateDevice(command) => principals::update_device(state, context, command),
        CommandKind::BindAgentDevice(command) => {
            principals::bind_agent_device(state, context, command)
        }
        CommandKind::SetStatus(command) => principals::set_status(state, context, command),
        CommandKind::ChangeCredentials(command) => {
            principals::change_credentials(state, context, command)
        }
        CommandKind::StartSession(command) => sessions::start_session(state, context, command),
        CommandKind::EndSession(command) => sessions::end_session(state, context, command),
        CommandKind::CreateDelegation(command) => {
            delegations::create_delegation(state, context, command)
        }
        CommandKind::RevokeDelegation(command) => {
            delegations::revoke_delegation(state, context, command)
        }
        CommandKind::RetireSigningKey(command) => {
            tokens::retire_signing_key(state, context, command)
        }
    }
}

fn register_human(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterHuman,
) -> Result<Option<Change>, Refusal> {
    require_admin(context, "register humans")?;
    limits::validate_id("human_id", &command.human_id)?;
    limits::validate_text("display_name", &command.display_name, DISPLAY_NAME_LEN_MAX)?;
    limits::validate_text("email", &command.email, EMAIL_LEN_MAX)?;
    if let Some(federated) = &command.federated {
        validate_federated(federated)?;
    }
    if !command.password_argon2id.is_empty() {
        limits::validate_argon2id_phc("password_argon2id", &command.password_argon2id)?;
    }

    let key = keys::human(&command.human_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("human {} already exists", command.human_id),
        ));
    }
    let mut writes = WriteSet::new();
    if let Some(federated) = &command.federated {
        let federated_key = keys::federated(&federated.issuer, &federated.subject);
        if let Some(taken_by) = state.get(&federated_key)? {
            return Err(reject(
                RejectReason::FederatedIdentityTaken,
                format!(
                    "subject {} of issuer {} already names human {}",
                    federated.subject,
                    federated.issuer,
                    String::from_utf8_lossy(&taken_by)
                ),
            ));
        }
        writes.put(federated_key, command.human_id.clone().into_bytes());
    }

    let row = HumanRow {
        human_id: command.human_id.clone(),
        display_name: command.display_name.clone(),
        email: command.email.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
        federated: command.federated.clone(),
        password_argon2id: command.password_argon2id.clone(),
        disabled_seq: 0,
    };
    writes.put(key, row.encode_to_vec());
    let event = log::HumanRegistered {
        human_id: command.human_id.clone(),
        display_name: command.display_name.clone(),
        email: command.email.clone(),
        federated: command.federated.clone(),
        has_password: !command.password_argon2id.is_empty(),
    };
    Ok(Some(Change::new(EventKind::HumanRegistered(event), writes)))
}

fn register_agent(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterAgent,
) -> Result<Option<Change>, Refusal> {
    require_admin(context, "register agents")?;
    limits::validate_id("agent_id", &command.agent_id)?;
    limits::validate_id("owner_human_id", &command.owner_human_id)?;
    limits::validate_name("kind", &command.kind, limits::AGENT_KIND_LEN_MAX)?;
    limits::validate_text("description", &command.description, DESCRIPTION_LEN_MAX)?;
    validate_credentials(&command.credentials)?;

    match query::human(state, &command.owner_human_id)? {
        None => {
            return Err(reject(
                RejectReason::HumanNotFound,
                format!("owner human {} does not exist", command.owner_human_id),
            ));
        }
        Some(owner) if owner.status != Status::Active as i32 => {
            return Err(reject(
                RejectReason::HumanNotFound,
                format!("owner human {} is not active", command.owner_human_id),
            ));
        }
        Some(_) => {}
    }
    let key = keys::agent(&command.agent_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("agent {} already exists", command.agent_id),
        ));
    }

    let row = AgentRow {
        agent_id: command.agent_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        kind: command.kind.clone(),
        description: command.description.clone(),
        status: Status::Active as i32,
        credentials: command.credentials.clone(),
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
        device_id: String::new(),
        disabled_seq: 0,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(
        keys::agent_by_owner(&command.owner_human_id, &command.agent_id),
        Vec::new(),
    );
    // The event names the credentials but never carries their hashes: the audit stream is read
    // far more widely than the projection.
    let event = log::AgentRegistered {
        agent_id: command.agent_id.clone(),
        owner_human_id: command.owner_human_id.clone(),
        kind: command.kind.clone(),
        description: command.description.clone(),
        credential_ids: command
            .credentials
            .iter()
            .map(|it| it.credential_id.clone())
            .collect(),
    };
    Ok(Some(Change::new(EventKind::AgentRegistered(event), writes)))
}

fn validate_credentials(credentials: &[log::Credential]) -> Result<(), FieldError> {
    if CREDENTIALS_PER_AGENT_MAX < credentials.len() {
        return Err(FieldError::new(
            "credentials",
            format!("has {} entries", credentials.len()),
            format!("at most {CREDENTIALS_PER_AGENT_MAX}"),
        ));
    }
    let mut credential_ids = BTreeSet::new();
    for (idx, credential) in credentials.iter().enumerate() {
        let field = format!("credentials[{idx}].credential_id");
        if !credential_ids.insert(credential.credential_id.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {}", credential.credential_id),
                "credential ids unique within the agent",
            ));
        }
        validate_credential(&format!("credentials[{idx}]"), credential)?;
    }
    Ok(())
}

/// Checks one credential's shape: an id, and either an argon2id hash or an Ed25519 key.
fn validate_credential(field: &str, credential: &log::Credential) -> Result<(), FieldError> {
    limits::validate_id(&format!("{field}.credential_id"), &credential.credential_id)?;
    match &credential.kind {
        Some(CredentialKind::ClientSecretArgon2id(phc)) => {
            limits::validate_argon2id_phc(&format!("{field}.client_secret_argon2id"), phc)
        }
        Some(CredentialKind::Ed25519PublicKey(key)) if key.len() == ED25519_PUBLIC_KEY_LEN => {
            Ok(())
        }
        Some(CredentialKind::Ed25519PublicKey(key)) => Err(FieldError::new(
            format!("{field}.ed25519_public_key"),
            format!("is {} bytes long", key.len()),
            format!("exactly {ED25519_PUBLIC_KEY_LEN} bytes (an Ed25519 public key)"),
        )),
        None => Err(FieldError::new(
            format!("{field}.kind"),
            "is missing",
            "client_secret_argon2id or ed25519_public_key",
        )),
    }
}

/// Checks an upstream identity: an issuer URL and the subject it names the human by.
fn validate_federated(federated: &log::FederatedIdentity) -> Result<(), FieldError> {
    limits::validate_opaque(
        "federated.issuer",
        &federated.issuer,
        limits::ISSUER_LEN_MAX,
    )?;
    limits::validate_opaque(
        "federated.subject",
        &federated.subject,
        limits::FEDERATED_SUBJECT_LEN_MAX,
    )
}

fn register_service(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RegisterService,
) -> Result<Option<Change>, Refusal> {
    require_admin(context, "register services")?;
    limits::validate_id("service_id", &command.service_id)?;
    limits::validate_audience("audience", &command.audience)?;
    validate_tools(&command.tools)?;

    let key = keys::service(&command.service_id);
    if state.get(&key)?.is_some() {
        return Err(reject(
            RejectReason::AlreadyExists,
            format!("service {} already exists", command.service_id),
        ));
    }
    let audience_key = keys::service_by_audience(&command.audience);
    if let Some(owner) = state.get(&audience_key)? {
        return Err(reject(
            RejectReason::AudienceTaken,
            format!(
                "audience {} already names service {}",
                command.audience,
                String::from_utf8_lossy(&owner)
            ),
        ));
    }

    let row = ServiceRow {
        service_id: command.service_id.clone(),
        audience: command.audience.clone(),
        tools: command.tools.clone(),
        status: Status::Active as i32,
        created_seq: context.seq,
        created_unix_ms: context.time_unix_ms,
    };
    let mut writes = WriteSet::new();
    writes.put(key, row.encode_to_vec());
    writes.put(audience_key, command.service_id.clone().into_bytes());
    let event = log::ServiceRegistered {
        service_id: command.service_id.clone(),
        audience: command.audience.clone(),
        tools: command.tools.clone(),
    };
    Ok(Some(Change::new(
        EventKind::ServiceRegistered(event),
        writes,
    )))
}

fn validate_tools(tools: &[log::Tool]) -> Result<(), FieldError> {
    if TOOLS_PER_SERVICE_MAX < tools.len() {
        return Err(FieldError::new(
            "tools",
            format!("has {} entries", tools.len()),
            format!("at most {TOOLS_PER_SERVICE_MAX}"),
        ));
    }
    let mut names = BTreeSet::new();
    for (idx, tool) in tools.iter().enumerate() {
        let field = format!("tools[{idx}].name");
        limits::validate_id(&field, &tool.name)?;
        if !names.insert(tool.name.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {}", tool.name),
                "tool names unique within the service",
            ));
        }
        limits::validate_text(
            &format!("tools[{idx}].description"),
            &tool.description,
            DESCRIPTION_LEN_MAX,
        )?;
    }
    Ok(())
}

fn revoke_token(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::RevokeToken,
) -> Result<Option<Change>, Refusal> {
    limits::validate_jti("jti", &command.jti)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)?;

    let Some(mut row) = query::token(state, &command.jti)? else {
        return Err(reject(
            RejectReason::TokenNotFound,
            format!("token {} does not exist", command.jti),
        ));
    };
    let agent_id = row
        .issued
        .as_ref()
        .map(|it| it.agent_id.as_str())
        .unwrap_or_default();
    let actor = context.actor;
    let is_admin = actor.kind == PrincipalKind::Admin as i32;
    let is_holder = actor.kind == PrincipalKind::Agent as i32 && actor.id == agent_id;
    let is_subject_human = row.issued.as_ref().is_some_and(|it| {
        it.subject_kind == PrincipalKind::Human as i32
            && actor.kind == PrincipalKind::Human as i32
            && actor.id == it.subject
    });
    if !(is_admin || is_holder || is_subject_human) {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "only an admin, agent {agent_id} or the human it acts for may revoke token {}",
                command.jti
            ),
        ));
    }
    if row.revoked {
        return Ok(None);
    }

    row.revoked = true;
    row.revoked_seq = context.seq;
    row.revoke_reason = command.reason.clone();
    let mut writes = WriteSet::new();
    writes.put(keys::token(&command.jti), row.encode_to_vec());
    let event = log::TokenRevoked {
        jti: command.jti.clone(),
        reason: command.reason.clone(),
    };
    Ok(Some(Change::new(EventKind::TokenRevoked(event), writes)))
}

fn publish_signing_key(
    state: &dyn StateRead,
    context: &Context<'_>,
    command: &log::PublishSigningKey,
) -> Result<Option<Change>, Refusal> {
    limits::validate_key_id("key_id", &command.key_id)?;
    if command.algorithm != SigningAlgorithm::Ed25519 as i32 {
        let algorithm = SigningAlgorithm::try_from(command.algorithm)
            .map(|it| it.as_str_name().to_owned())
            .unwrap_or_else(|_| command.algorithm.to_string());
        return Err(FieldError::new(
            "algorithm",
            format!("is {algorithm}"),
            SigningAlgorithm::Ed25519.as_str_name(),
        )
        .into());
    }
    if command.public_key.len() != ED25519_PUBLIC_KEY_LEN {
        return Err(FieldError::new(
            "public_key",
            format!("is {} bytes long", command.public_key.len()),
            format!("exactly {ED25519_PUBLIC_KEY_LEN} bytes (an Ed25519 public key)"),
        )
        .into());
    }

    let actor_kind = context.actor.kind;
    if !(actor_kind == PrincipalKind::Node as i32 || actor_kind == PrincipalKind::Admin as i32) {
        return Err(reject(
            RejectReason::PermissionDenied,
            "only a node or an admin may publish signing keys",
        ));
    }
    // A node publishes only its own keys: a key attributed to another node would let one node
    // sign tokens that verify as another's.
    if actor_kind == PrincipalKind::Node as i32 && context.actor.id != command.node_id.to_string() {
        return Err(reject(
            RejectReason::PermissionDenied,
            format!(
                "node {} may publish only its own keys, not node {}'s",
                context.actor.id, command.node_id
            ),
        ));
    }
    let published = log::SigningKeyPublished {
        key_id: command.key_id.clone(),
        node_id: command.node_id,
        algorithm: command.algorithm,
        public_key: command.public_key.clone(),
    };
    if let Some(existing) = query::signing_key(state, &command.key_id)? {
        // Republishing the same key is what a node does after a restart: harmless.
        if existing.key.as_ref() == Some(&published) {
            return Ok(None);
        }
        return Err(reject(
            RejectReason::SigningKeyConflict,
            format!(
                "signing key {} is already published with different content",
                command.key_id
            ),
        ));
    }

    let row = SigningKeyRow {
        key: Some(published.clone()),
        published_seq: context.seq,
        published_unix_ms: context.time_unix_ms,
        ..SigningKeyRow::default()
    };
    let mut writes = WriteSet::new();
    writes.put(keys::signing_key(&command.key_id), row.encode_to_vec());
    Ok(Some(Change::new(
        EventKind::SigningKeyPublished(published),
        writes,
    )))
}

fn outcome(result: OutcomeResult) -> log::Outcome {
    log::Outcome {
        result: Some(result),
    }
}

fn accepted(accepted: log::Accepted) -> log::Outcome {
    outcome(OutcomeResult::Accepted(accepted))
}

fn rejected(reason: RejectReason, message: String) -> log::Outcome {
    outcome(OutcomeResult::Rejected(log::Rejected {
        reason: reason as i32,
        message,
    }))
}

#[cfg(test)]
mod tests;

/// The agent, if it is in force for a command at `seq` (see `validity::agent`); else the
/// rejection that says why: it does not exist, its bound device is disabled, or it (or its
/// owner) is disabled.
fn agent_in_force(state: &dyn StateRead, agent_id: &str, seq: u64) -> Result<AgentRow, Refusal> {
    match crate::validity::agent(state, agent_id, seq)? {
        Ok(agent) => Ok(agent),
        Err(lapse) if query::agent(state, agent_id)?.is_none() => {
            Err(reject(RejectReason::AgentNotFound, lapse.message))
        }
        Err(lapse) if lapse.kind == crate::validity::LapseKind::DeviceDisabled => {
            Err(reject(RejectReason::DeviceDisabled, lapse.message))
        }
        Err(lapse) => Err(reject(RejectReason::AgentDisabled, lapse.message)),
    }
}

/// Registration is an admin act. The API layer checks this too; apply checks it again so that no
/// path into the log can skip it.
fn require_admin(context: &Context<'_>, what: &str) -> Result<(), Refusal> {
    if context.actor.kind == PrincipalKind::Admin as i32 {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only an admin may {what}"),
    ))
}
