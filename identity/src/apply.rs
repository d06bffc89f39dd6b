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
//! 3. the caller's credential still in force, the operator's role, the assertion unspent: a
//!    rejection here is an authentication failure and writes nothing;
//! 4. the command's own rules (the handler, `decide`): field validation, then permission, then
//!    the state it depends on. The caller is authenticated by now, so a rejection here is an
//!    audit fact: one `CommandRejected` event, the assertion spent, and the refusal kept under
//!    the idempotency key, so a retry replays it and adds nothing.
//!
//! An accepted command that changed state appends its events (one, or one per human for
//! `RegisterHumans`) at consecutive seqs and stores its outcome under its idempotency key. An accepted no-op (revoking a revoked token, republishing an identical
//! key) appends nothing and stores nothing, unless it carried a client assertion: then it spends
//! the assertion and keeps its outcome, so a retry replays. A command rejected before its
//! handler spends nothing; one its handler rejected spends its assertion like an accepted one.
//!
//! The audit records ride in the same write set: every projection row a command writes keeps a
//! version at the command's last seq (`audit::history`, recorded in `Applier::commit`, the one
//! place a command's writes reach the batch), and a batch that added events adds a time index
//! entry and appends the exact bytes of its event records to the Merkle tree (`audit::tree`).
//! A state whose tree does not hold one leaf per event is corrupt: the two are only ever
//! written together.

use prost::Message;
use warrant_proto::{
    log::{
        self, RejectReason, command::Kind as CommandKind, event::Kind as EventKind,
        outcome::Result as OutcomeResult,
    },
    state::IdempotencyRow,
};

mod access;
mod assertions;
mod audit_export;
mod context;
mod credentials;
mod delegations;
mod devices;
mod envelope;
mod operators;
mod permissions;
mod policies;
mod principals;
mod revocation;
mod sessions;
mod signing_keys;
mod status;
mod tokens;

use self::{
    assertions::Spend,
    context::{Change, Context, Decision, Refusal, accepted, outcome, rejected},
};
use crate::{
    audit::{history, tree},
    keys, limits, query,
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

/// What apply records for the audit trail besides the events: the versions of the projection
/// rows (with the time index) and the Merkle tree over the event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRecords {
    pub history: bool,
    pub tree: bool,
}

impl AuditRecords {
    /// What [`apply_batch`] records: everything.
    pub const ALL: Self = Self {
        history: true,
        tree: true,
    };
    /// Nothing but the events: apply as it was before the audit trail.
    pub const NONE: Self = Self {
        history: false,
        tree: false,
    };
    /// The versions and the time index, no tree.
    pub const HISTORY: Self = Self {
        history: true,
        tree: false,
    };
}

/// Decides every command of `batch`, committed at `log_index`, against `state`.
///
/// Deterministic. Err only for storage failures (StateError); domain rejections are
/// Outcome::Rejected. Every projection row written keeps a version at its command's last seq,
/// and the batch's event records are appended to the Merkle tree in the same write set; a
/// state whose tree does not hold one leaf per event is corrupt (they are only ever written
/// together).
pub fn apply_batch(
    state: &dyn StateRead,
    batch: &log::Batch,
    log_index: u64,
) -> Result<AppliedBatch, StateError> {
    apply_recording(state, batch, log_index, AuditRecords::ALL)
}

/// [`apply_batch`] without the history or the tree: apply as it was before the audit trail,
/// the baseline the benchmark compares with.
#[cfg(any(test, feature = "fixtures"))]
pub fn apply_batch_unaudited(
    state: &dyn StateRead,
    batch: &log::Batch,
    log_index: u64,
) -> Result<AppliedBatch, StateError> {
    apply_recording(state, batch, log_index, AuditRecords::NONE)
}

/// [`apply_batch`] recording only what `records` says, for tests and benchmarks that measure
/// or check one record without the other.
#[cfg(any(test, feature = "fixtures"))]
pub fn apply_batch_recording(
    state: &dyn StateRead,
    batch: &log::Batch,
    log_index: u64,
    records: AuditRecords,
) -> Result<AppliedBatch, StateError> {
    apply_recording(state, batch, log_index, records)
}

/// The one body of every `apply_batch*`: the switch only adds or leaves out the audit rows.
fn apply_recording(
    state: &dyn StateRead,
    batch: &log::Batch,
    log_index: u64,
    records: AuditRecords,
) -> Result<AppliedBatch, StateError> {
    let seq_before = query::applied_seq(state)?;
    if records.tree {
        let tree_size = tree::size(state)?;
        if tree_size != seq_before {
            return Err(StateError::corrupt(
                keys::LAST_SEQ,
                format!(
                    "the log holds {seq_before} events and the Merkle tree {tree_size} leaves; \
                     they are written together, so the store is corrupt"
                ),
            ));
        }
    }
    #[cfg(not(feature = "chaos"))]
    let time_unix_ms = batch.time_unix_ms;
    #[cfg(feature = "chaos")]
    let time_unix_ms = crate::chaos::apply_time_unix_ms(batch.time_unix_ms);
    let mut applier = Applier {
        overlay: Overlay::new(state),
        time_unix_ms,
        log_index,
        last_seq: seq_before,
        events: Vec::new(),
        records,
        event_records: Vec::new(),
    };
    assertions::prune_spent(&mut applier.overlay, time_unix_ms / 1000)?;
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
    let events = std::mem::take(&mut applier.events);
    let writes = applier.finish(state, seq_before)?;
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
    records: AuditRecords,
    /// The stored bytes of `events`, for the tree (only when it is recorded).
    event_records: Vec<Vec<u8>>,
}

impl Applier<'_> {
    /// The batch's write set: every command's writes, then the last seq and, when the batch
    /// added events, the time index entry and the tree's new leaves and nodes.
    fn finish(self, state: &dyn StateRead, seq_before: u64) -> Result<WriteSet, StateError> {
        let Applier {
            overlay,
            time_unix_ms,
            last_seq,
            records,
            event_records,
            ..
        } = self;
        let mut writes = overlay.into_writes();
        if last_seq == seq_before {
            return Ok(writes);
        }
        writes.put(keys::LAST_SEQ.to_vec(), last_seq.to_be_bytes().to_vec());
        if records.history {
            history::record_time(&mut writes, time_unix_ms, last_seq);
        }
        if records.tree {
            let leaves: Vec<&[u8]> = event_records.iter().map(Vec::as_slice).collect();
            let tree_size = tree::append(state, &mut writes, seq_before, &leaves)?;
            if tree_size != last_seq {
                return Err(StateError::corrupt(
                    keys::LAST_SEQ,
                    format!("the tree grew to {tree_size} leaves for {last_seq} events"),
                ));
            }
        }
        Ok(writes)
    }

    /// Commits a decided command's writes to the overlay, with a version at `seq` (the
    /// command's last seq) of every projection row they put or delete: the one place a
    /// command's writes reach the batch, accepted, refused or a no-op alike.
    fn commit(&mut self, mut writes: WriteSet, seq: u64) {
        if self.records.history {
            let mut versions = WriteSet::new();
            history::record_versions(&writes, seq, &mut versions);
            writes.extend(versions);
        }
        self.overlay.write(writes);
    }

    /// Decides one command: envelope, idempotency, the caller's credential, the assertion it
    /// spends, then the command's own rules; records what an accepted one changed.
    fn apply_command(
        &mut self,
        batch_position: u32,
        command: &log::Command,
    ) -> Result<log::Outcome, StateError> {
        let envelope = match envelope::check(command) {
            Ok(it) => it,
            Err(field_error) => {
                return Ok(rejected(
                    RejectReason::InvalidCommand,
                    field_error.to_string(),
                ));
            }
        };
        let actor = envelope.actor;
        let idempotency_key = keys::idempotency(actor.kind, &actor.id, &command.idempotency_key);
        if let Some(row) = query::read_row::<IdempotencyRow>(&self.overlay, &idempotency_key)? {
            return envelope::replay(&idempotency_key, row, command);
        }
        // Only a corrupt store can hold u64::MAX as the last seq: 2^64 events cannot be written.
        let Some(seq) = self.last_seq.checked_add(1) else {
            return Err(StateError::corrupt(
                keys::LAST_SEQ,
                "no seq left after u64::MAX",
            ));
        };
        if let Some(credential) = &command.credential
            && let Some(refusal) = self.check_caller_credential(actor, credential)?
        {
            return Ok(refusal);
        }
        let caller = match operators::resolve(&self.overlay, envelope.caller)? {
            Ok(caller) => caller,
            Err(Refusal::Reject(rejection)) => {
                return Ok(outcome(OutcomeResult::Rejected(rejection)));
            }
            Err(Refusal::Storage(error)) => return Err(error),
        };
        let spend = match &command.assertion {
            None => None,
            Some(assertion) => match assertions::check_unspent(
                &self.overlay,
                caller,
                assertion,
                self.time_unix_ms / 1000,
            )? {
                Ok(spend) => Some(spend),
                Err(refusal) => return Ok(refusal),
            },
        };
        let context = Context {
            actor,
            caller,
            seq,
            time_unix_ms: self.time_unix_ms,
            idempotency_key: &command.idempotency_key,
        };
        let pending = Pending {
            command,
            idempotency_key,
            spend,
        };
        match decide(&self.overlay, &context, envelope.kind) {
            Ok(Some(change)) => Ok(self.record_change(pending, &context, batch_position, change)),
            Ok(None) => Ok(self.record_no_op(pending)),
            Err(Refusal::Reject(rejection)) => Ok(self.record_rejection(
                pending,
                &context,
                batch_position,
                envelope::kind_name(envelope.kind),
                rejection,
            )),
            Err(Refusal::Storage(error)) => Err(error),
        }
    }

    /// Records a command its handler refused, from a caller apply authenticated: one
    /// `CommandRejected` event, its assertion's spend, and the refusal under its idempotency
    /// key, so a retry replays the refusal and adds no second event. A denial is an audit fact:
    /// who asked for what, and why not.
    fn record_rejection(
        &mut self,
        pending: Pending<'_>,
        context: &Context<'_>,
        batch_position: u32,
        command_kind: &str,
        rejection: log::Rejected,
    ) -> log::Outcome {
        let event_kind = EventKind::CommandRejected(log::CommandRejected {
            command_kind: command_kind.to_owned(),
            reason: rejection.reason,
            message: rejection.message.clone(),
        });
        let mut writes = WriteSet::new();
        self.append_event(
            &mut writes,
            &pending,
            context,
            batch_position,
            context.seq,
            event_kind,
        );
        let outcome = outcome(OutcomeResult::Rejected(rejection));
        pending.finish(&outcome, &mut writes);
        self.commit(writes, context.seq);
        self.last_seq = context.seq;
        outcome
    }

    /// Writes one event of `pending`'s command at `seq`.
    fn append_event(
        &mut self,
        writes: &mut WriteSet,
        pending: &Pending<'_>,
        context: &Context<'_>,
        batch_position: u32,
        seq: u64,
        kind: EventKind,
    ) {
        let event = log::Event {
            seq,
            time_unix_ms: self.time_unix_ms,
            log_index: self.log_index,
            batch_position,
            idempotency_key: pending.command.idempotency_key.clone(),
            actor: Some(context.actor.clone()),
            kind: Some(kind),
        };
        let record = event.encode_to_vec();
        if self.records.tree {
            // The tree's leaf is the hash of exactly these bytes, the ones stored.
            self.event_records.push(record.clone());
        }
        writes.put(keys::event(seq), record);
        self.events.push(event);
    }

    /// Records an accepted command that changed state: its rows, its assertion's spend, its
    /// events at the next seqs, and its outcome (naming the last event) under its idempotency
    /// key.
    fn record_change(
        &mut self,
        pending: Pending<'_>,
        context: &Context<'_>,
        batch_position: u32,
        change: Change,
    ) -> log::Outcome {
        let Change {
            event_kind,
            later_event_kinds,
            mut writes,
            token_issued,
            session_started,
            delegation_created,
            access_decided,
            policy_version,
        } = change;
        let mut seq = context.seq;
        for (offset, kind) in std::iter::once(event_kind)
            .chain(later_event_kinds)
            .enumerate()
        {
            // A handler that makes several events took their seqs with `Context::event_at`,
            // which refuses to overflow, so this never saturates.
            seq = context.seq.saturating_add(offset as u64);
            self.append_event(&mut writes, &pending, context, batch_position, seq, kind);
        }
        let outcome = accepted(log::Accepted {
            seq,
            replayed: false,
            token_issued,
            changed: true,
            session_started,
            delegation_created,
            access_decided,
            policy_version,
        });
        pending.finish(&outcome, &mut writes);
        self.commit(writes, seq);
        self.last_seq = seq;
        outcome
    }

    /// Records an accepted no-op: nothing, unless it carried an assertion. A no-op spends its
    /// assertion like any accepted command, so it also keeps its outcome: a retry with the same
    /// key and assertion must replay, not be refused.
    fn record_no_op(&mut self, pending: Pending<'_>) -> log::Outcome {
        let outcome = accepted(log::Accepted {
            seq: self.last_seq,
            changed: false,
            ..log::Accepted::default()
        });
        if pending.spend.is_some() {
            let mut writes = WriteSet::new();
            pending.finish(&outcome, &mut writes);
            self.commit(writes, self.last_seq);
        }
        outcome
    }

    /// The credential the API node authenticated the actor with must still be in force at this
    /// batch: a session ended, or a credential removed, through another node a moment ago must
    /// not authenticate a command that a lagging node let through. `Some` is the rejection.
    fn check_caller_credential(
        &self,
        actor: &log::Actor,
        credential: &log::CallerCredential,
    ) -> Result<Option<log::Outcome>, StateError> {
        use log::caller_credential::Kind;
        let refusal = match &credential.kind {
            Some(Kind::SessionId(session_id)) => self.session_refusal(actor, session_id)?,
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

    /// Why the session that authenticated `actor` no longer does, if it does not.
    fn session_refusal(
        &self,
        actor: &log::Actor,
        session_id: &str,
    ) -> Result<Option<String>, StateError> {
        let now_unix_s = self.time_unix_ms / 1000;
        Ok(
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
            },
        )
    }
}

/// A decided command's bookkeeping, whatever it changed (or, refused by its handler, that it
/// was refused): its assertion's spend and its outcome under its idempotency key.
struct Pending<'a> {
    command: &'a log::Command,
    idempotency_key: Vec<u8>,
    spend: Option<Spend>,
}

impl Pending<'_> {
    fn finish(self, outcome: &log::Outcome, writes: &mut WriteSet) {
        if let Some(spend) = self.spend {
            spend.record(writes);
        }
        let idempotency_row = IdempotencyRow {
            request_digest: self.command.request_digest.clone(),
            outcome: Some(outcome.clone()),
        };
        writes.put(self.idempotency_key, idempotency_row.encode_to_vec());
    }
}

/// Hands a command to its handler.
fn decide(state: &dyn StateRead, context: &Context<'_>, kind: &CommandKind) -> Decision {
    match kind {
        CommandKind::RegisterHuman(command) => principals::register_human(state, context, command),
        CommandKind::RegisterHumans(command) => {
            principals::register_humans(state, context, command)
        }
        CommandKind::RegisterAgent(command) => principals::register_agent(state, context, command),
        CommandKind::RegisterOperator(command) => {
            operators::register_operator(state, context, command)
        }
        CommandKind::RegisterService(command) => {
            principals::register_service(state, context, command)
        }
        CommandKind::UpdateHuman(command) => principals::update_human(state, context, command),
        CommandKind::UpdateAgent(command) => principals::update_agent(state, context, command),
        CommandKind::UpdateService(command) => principals::update_service(state, context, command),
        CommandKind::RegisterDevice(command) => devices::register_device(state, context, command),
        CommandKind::UpdateDevice(command) => devices::update_device(state, context, command),
        CommandKind::BindAgentDevice(command) => {
            devices::bind_agent_device(state, context, command)
        }
        CommandKind::SetStatus(command) => status::set_status(state, context, command),
        CommandKind::ChangeCredentials(command) => {
            credentials::change_credentials(state, context, command)
        }
        CommandKind::StartSession(command) => sessions::start_session(state, context, command),
        CommandKind::EndSession(command) => sessions::end_session(state, context, command),
        CommandKind::CreateDelegation(command) => {
            delegations::create_delegation(state, context, command)
        }
        CommandKind::RevokeDelegation(command) => {
            delegations::revoke_delegation(state, context, command)
        }
        CommandKind::IssueToken(command) => tokens::issue_token(state, context, command),
        CommandKind::RevokeToken(command) => tokens::revoke_token(state, context, command),
        CommandKind::PublishSigningKey(command) => {
            signing_keys::publish_signing_key(state, context, command)
        }
        CommandKind::RetireSigningKey(command) => {
            signing_keys::retire_signing_key(state, context, command)
        }
        CommandKind::MarkSigningKeyCompromised(command) => {
            signing_keys::mark_signing_key_compromised(state, context, command)
        }
        CommandKind::Authorize(command) => access::authorize(state, context, command),
        CommandKind::RecordAccessDecisions(command) => {
            access::record_access_decisions(context, command)
        }
        CommandKind::RecordAuthFailures(command) => access::record_auth_failures(context, command),
        CommandKind::RecordAuditExportProgress(command) => {
            audit_export::record_progress(state, context, command)
        }
        CommandKind::PublishPolicy(command) => policies::publish_policy(state, context, command),
        CommandKind::ActivatePolicy(command) => policies::activate_policy(state, context, command),
        CommandKind::RollbackPolicy(command) => policies::rollback_policy(state, context, command),
        CommandKind::SetShadowPolicy(command) => {
            policies::set_shadow_policy(state, context, command)
        }
    }
}

#[cfg(test)]
mod tests;
