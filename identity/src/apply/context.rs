//! What every command handler works with: who is asking ([`Caller`]), what it may depend on
//! ([`Context`]), what an accepted command changes ([`Change`]) and why one is refused
//! ([`Refusal`]). A leaf: the handlers import it, it imports none of them.

use warrant_proto::{
    log::{
        self, PrincipalKind, RejectReason, event::Kind as EventKind,
        outcome::Result as OutcomeResult,
    },
    state::{AgentRow, DeviceRow, HumanRow},
};

use crate::{
    keys,
    limits::FieldError,
    query,
    state::{StateError, StateRead, WriteSet},
    validity,
};

/// The actor of a command, by kind: the envelope check makes it once, so handlers ask "is this
/// agent X" instead of comparing kinds and ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Caller<'a> {
    Admin,
    Human(&'a str),
    Agent(&'a str),
    Service(&'a str),
    /// A node, by its decimal id.
    Node(&'a str),
    /// A named operator, with the role its row holds (resolved by `operators::resolve` before
    /// any handler runs; `Unspecified` until then).
    Operator(&'a str, log::OperatorRole),
}

impl<'a> Caller<'a> {
    /// The typed form of an actor; `None` for an unspecified or unknown kind.
    pub(super) fn of(actor: &'a log::Actor) -> Option<Self> {
        let id = actor.id.as_str();
        match PrincipalKind::try_from(actor.kind) {
            Ok(PrincipalKind::Admin) => Some(Caller::Admin),
            Ok(PrincipalKind::Human) => Some(Caller::Human(id)),
            Ok(PrincipalKind::Agent) => Some(Caller::Agent(id)),
            Ok(PrincipalKind::Service) => Some(Caller::Service(id)),
            Ok(PrincipalKind::Node) => Some(Caller::Node(id)),
            Ok(PrincipalKind::Operator) => {
                Some(Caller::Operator(id, log::OperatorRole::Unspecified))
            }
            Ok(PrincipalKind::Unspecified) | Err(_) => None,
        }
    }
}

/// What a command may depend on besides state and its own fields.
pub(super) struct Context<'a> {
    /// The actor as the command names it (for events and messages).
    pub(super) actor: &'a log::Actor,
    /// The same actor, typed.
    pub(super) caller: Caller<'a>,
    /// The seq its event gets, if it makes one; a command that makes several gives them this seq
    /// and the ones after it.
    pub(super) seq: u64,
    pub(super) time_unix_ms: u64,
    /// The command's idempotency key, as the caller chose it (an Authorize's decision id).
    pub(super) idempotency_key: &'a str,
}

impl<'a> Context<'a> {
    /// The batch stamp in whole seconds, the unit of every expiry.
    pub(super) fn now_unix_s(&self) -> u64 {
        self.time_unix_ms / 1000
    }

    /// The context of this command's event number `offset` (0 is its first), for a command that
    /// makes several. Err only when no seq is left, which only a corrupt store's last seq causes.
    pub(super) fn event_at(&self, offset: usize) -> Result<Context<'a>, StateError> {
        let seq = u64::try_from(offset)
            .ok()
            .and_then(|offset| self.seq.checked_add(offset))
            .ok_or_else(|| {
                StateError::corrupt(keys::LAST_SEQ, "no seq left for every event of a command")
            })?;
        Ok(Context {
            actor: self.actor,
            caller: self.caller,
            seq,
            time_unix_ms: self.time_unix_ms,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// What an accepted command changes: its events plus the projection rows it writes. A command
/// accepted as a no-op (nothing to change) has no `Change`.
pub(super) struct Change {
    /// The first event, at [`Context::seq`]: every change has one.
    pub(super) event_kind: EventKind,
    /// The events after it, at the seqs that follow, for a command that changes several things
    /// at once (`RegisterHumans`: one event per human). Empty for every other command.
    pub(super) later_event_kinds: Vec<EventKind>,
    pub(super) writes: WriteSet,
    /// The claims to return, for `IssueToken`.
    pub(super) token_issued: Option<log::TokenIssued>,
    /// The session to return, for `StartSession`.
    pub(super) session_started: Option<log::SessionStarted>,
    /// The grant to return, for `CreateDelegation`.
    pub(super) delegation_created: Option<log::DelegationCreated>,
    /// The receipt to return, for `Authorize`.
    pub(super) access_decided: Option<log::AccessDecided>,
    /// The version published, activated or marked shadow, for the policy commands.
    pub(super) policy_version: u32,
}

impl Change {
    pub(super) fn new(event_kind: EventKind, writes: WriteSet) -> Self {
        Self {
            event_kind,
            later_event_kinds: Vec::new(),
            writes,
            token_issued: None,
            session_started: None,
            delegation_created: None,
            access_decided: None,
            policy_version: 0,
        }
    }

    /// A change that writes one row.
    pub(super) fn one_row(event_kind: EventKind, key: Vec<u8>, row: Vec<u8>) -> Self {
        let mut writes = WriteSet::new();
        writes.put(key, row);
        Self::new(event_kind, writes)
    }
}

/// What a handler decides: a change, `None` for an accepted no-op, or a refusal.
pub(super) type Decision = Result<Option<Change>, Refusal>;

/// Why a command was not accepted. Lets handlers use `?` for both rejections and store errors.
pub(super) enum Refusal {
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

impl Refusal {
    /// The same refusal about a part of the command, named `part` (e.g. `humans[3]`): a domain
    /// rejection's message is prefixed with it; a store failure stays as it is.
    pub(super) fn about(self, part: &str) -> Self {
        match self {
            Refusal::Reject(rejected) => Refusal::Reject(log::Rejected {
                message: format!("{part}: {}", rejected.message),
                ..rejected
            }),
            storage @ Refusal::Storage(_) => storage,
        }
    }
}

pub(super) fn reject(reason: RejectReason, message: impl Into<String>) -> Refusal {
    Refusal::Reject(log::Rejected {
        reason: reason as i32,
        message: message.into(),
        policy_errors: Vec::new(),
    })
}

/// A POLICY_INVALID refusal carrying the errors of the text (with their positions) beside its
/// message.
pub(super) fn reject_policy_invalid(
    message: impl Into<String>,
    policy_errors: Vec<log::PolicyError>,
) -> Refusal {
    Refusal::Reject(log::Rejected {
        reason: RejectReason::PolicyInvalid as i32,
        message: message.into(),
        policy_errors,
    })
}

/// The agent, if it is in force for a command at `seq` (see `validity::agent`); else the
/// rejection that says why: it does not exist, its bound device is disabled, or it (or its
/// owner) is disabled.
pub(super) fn agent_in_force(
    state: &dyn StateRead,
    agent_id: &str,
    seq: u64,
) -> Result<AgentRow, Refusal> {
    match validity::agent(state, agent_id, seq)? {
        Ok(agent) => Ok(agent),
        Err(lapse) if query::agent(state, agent_id)?.is_none() => {
            Err(reject(RejectReason::AgentNotFound, lapse.message))
        }
        Err(lapse) => Err(reject(lapse.kind.agent_reject_reason(), lapse.message)),
    }
}

/// The human, if in force for a command at `seq`; else HUMAN_NOT_FOUND or HUMAN_DISABLED.
pub(super) fn human_in_force(
    state: &dyn StateRead,
    human_id: &str,
    seq: u64,
) -> Result<HumanRow, Refusal> {
    match validity::human(state, human_id, seq)? {
        Ok(human) => Ok(human),
        Err(lapse) if query::human(state, human_id)?.is_none() => {
            Err(reject(RejectReason::HumanNotFound, lapse.message))
        }
        Err(lapse) => Err(reject(RejectReason::HumanDisabled, lapse.message)),
    }
}

/// The delegation, if it and every link above it are in force at `now_unix_s`; else
/// DELEGATION_NOT_FOUND or DELEGATION_INACTIVE.
pub(super) fn delegation_in_force(
    state: &dyn StateRead,
    delegation_id: &str,
    now_unix_s: u64,
) -> Result<log::DelegationCreated, Refusal> {
    let chain = match validity::delegation_chain(state, delegation_id, now_unix_s)? {
        Ok(chain) => chain,
        Err(lapse) => return Err(reject(lapse.kind.delegation_reject_reason(), lapse.message)),
    };
    chain.into_iter().next().ok_or_else(|| {
        reject(
            RejectReason::DelegationNotFound,
            format!("delegation {delegation_id} does not exist"),
        )
    })
}

pub(super) fn outcome(result: OutcomeResult) -> log::Outcome {
    log::Outcome {
        result: Some(result),
    }
}

pub(super) fn accepted(accepted: log::Accepted) -> log::Outcome {
    outcome(OutcomeResult::Accepted(accepted))
}

pub(super) fn rejected(reason: RejectReason, message: String) -> log::Outcome {
    outcome(OutcomeResult::Rejected(log::Rejected {
        reason: reason as i32,
        message,
        policy_errors: Vec::new(),
    }))
}

/// The agent's row; else AGENT_NOT_FOUND.
pub(super) fn existing_agent(state: &dyn StateRead, agent_id: &str) -> Result<AgentRow, Refusal> {
    query::agent(state, agent_id)?.ok_or_else(|| {
        reject(
            RejectReason::AgentNotFound,
            format!("agent {agent_id} does not exist"),
        )
    })
}

/// The device's row; else DEVICE_NOT_FOUND.
pub(super) fn existing_device(
    state: &dyn StateRead,
    device_id: &str,
) -> Result<DeviceRow, Refusal> {
    query::device(state, device_id)?.ok_or_else(|| {
        reject(
            RejectReason::DeviceNotFound,
            format!("device {device_id} does not exist"),
        )
    })
}
