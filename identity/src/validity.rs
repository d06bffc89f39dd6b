//! Whether principals, sessions, delegation chains and tokens are in force at an instant.
//!
//! Revocation cascades by construction rather than by fan-out: a token names its agent, its
//! session and its delegation, and a delegation names its parent, so "is this token in force"
//! walks at most [`DELEGATION_DEPTH_MAX`] links up to the human at the root (and, for a token
//! obtained by exchange, up the tokens it was exchanged for). Revoking any link,
//! disabling any agent or human on the way, or ending the session, is one row write, and every
//! token below it fails the next check. `apply` runs the same walk (at the batch stamp) before it
//! issues or delegates, so an issuance can never race a revocation.

use warrant_proto::{
    api::TokenInvalidReason,
    log::{self, PrincipalKind, RejectReason},
    state::{AgentRow, HumanRow, SessionRow, Status, TokenRow},
};

use crate::{
    limits::DELEGATION_DEPTH_MAX,
    query,
    state::{StateError, StateRead},
};

/// Why something is not in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LapseKind {
    AgentDisabled,
    HumanDisabled,
    DeviceDisabled,
    SessionEnded,
    DelegationNotFound,
    DelegationRevoked,
    DelegationExpired,
    TokenRevoked,
    SigningKeyCompromised,
}

/// What each caller calls a lapse: the rule in one place. A lapse does not say whether the thing
/// checked exists at all; callers that answer "not found" ask the state first.
impl LapseKind {
    /// Why apply refuses an agent that is not in force ([`agent`]'s lapse): its device is
    /// named as such; anything else, the owner included, is the agent's.
    pub fn agent_reject_reason(self) -> RejectReason {
        match self {
            LapseKind::DeviceDisabled => RejectReason::DeviceDisabled,
            _ => RejectReason::AgentDisabled,
        }
    }

    /// Why apply refuses a session that is not in force ([`session`]'s lapse).
    pub fn session_reject_reason(self) -> RejectReason {
        match self {
            LapseKind::DeviceDisabled => RejectReason::DeviceDisabled,
            _ => RejectReason::SessionEnded,
        }
    }

    /// Why apply refuses a delegation chain that is not in force ([`delegation_chain`]'s lapse):
    /// a missing link is named as such; anything else makes the delegation inactive.
    pub fn delegation_reject_reason(self) -> RejectReason {
        match self {
            LapseKind::DelegationNotFound => RejectReason::DelegationNotFound,
            _ => RejectReason::DelegationInactive,
        }
    }

    /// Why a presented token is not valid (Verify, exchange, bearer authentication, Authorize)
    /// when a link of it lapsed: the one mapping, for the API and for apply's receipts alike.
    pub fn token_invalid_reason(self) -> TokenInvalidReason {
        match self {
            LapseKind::AgentDisabled => TokenInvalidReason::AgentDisabled,
            LapseKind::HumanDisabled => TokenInvalidReason::HumanDisabled,
            LapseKind::DeviceDisabled => TokenInvalidReason::DeviceDisabled,
            LapseKind::SessionEnded => TokenInvalidReason::SessionEnded,
            LapseKind::DelegationNotFound | LapseKind::DelegationRevoked => {
                TokenInvalidReason::DelegationRevoked
            }
            LapseKind::DelegationExpired => TokenInvalidReason::DelegationExpired,
            LapseKind::TokenRevoked => TokenInvalidReason::Revoked,
            LapseKind::SigningKeyCompromised => TokenInvalidReason::SigningKeyCompromised,
        }
    }

    /// [`Self::token_invalid_reason`] as the number a receipt carries
    /// (`AccessDecided.token_invalid_reason`).
    pub fn token_invalid_reason_number(self) -> u32 {
        self.token_invalid_reason() as u32
    }
}

/// Why something is not in force, with a message for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapse {
    pub kind: LapseKind,
    pub message: String,
}

impl Lapse {
    fn new(kind: LapseKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// `Ok(Err(_))` is a lapse; `Err(_)` a store failure.
pub type Verdict<T> = Result<Result<T, Lapse>, StateError>;

/// The human, if registered, active, and not disabled since `since_seq` (the seq of whatever
/// depends on them: disabling is permanent for what existed then, even once re-enabled).
pub fn human(state: &dyn StateRead, human_id: &str, since_seq: u64) -> Verdict<HumanRow> {
    match query::human(state, human_id)? {
        Some(row) if row.status != Status::Active as i32 => Ok(Err(Lapse::new(
            LapseKind::HumanDisabled,
            format!("human {human_id} is disabled"),
        ))),
        Some(row) if since_seq < row.disabled_seq => Ok(Err(Lapse::new(
            LapseKind::HumanDisabled,
            format!(
                "human {human_id} was disabled at seq {} (after seq {since_seq}) and enabled \
                 again since: what existed then stays revoked",
                row.disabled_seq
            ),
        ))),
        Some(row) => Ok(Ok(row)),
        None => Ok(Err(Lapse::new(
            LapseKind::HumanDisabled,
            format!("human {human_id} does not exist"),
        ))),
    }
}

/// The agent, if registered and active, not disabled since `since_seq`, with its owner in force:
/// offboarding a human stops the agents they own. An agent bound to a device stops with the
/// device (a lost laptop).
pub fn agent(state: &dyn StateRead, agent_id: &str, since_seq: u64) -> Verdict<AgentRow> {
    let row = match query::agent(state, agent_id)? {
        Some(row) if row.status != Status::Active as i32 => {
            return Ok(Err(Lapse::new(
                LapseKind::AgentDisabled,
                format!("agent {agent_id} is disabled"),
            )));
        }
        Some(row) if since_seq < row.disabled_seq => {
            return Ok(Err(Lapse::new(
                LapseKind::AgentDisabled,
                format!(
                    "agent {agent_id} was disabled at seq {} (after seq {since_seq}) and enabled \
                     again since: what existed then stays revoked",
                    row.disabled_seq
                ),
            )));
        }
        Some(row) => row,
        None => {
            return Ok(Err(Lapse::new(
                LapseKind::AgentDisabled,
                format!("agent {agent_id} does not exist"),
            )));
        }
    };
    if let Err(lapse) = human(state, &row.owner_human_id, since_seq)? {
        return Ok(Err(Lapse::new(
            LapseKind::HumanDisabled,
            format!("agent {agent_id}'s owner: {}", lapse.message),
        )));
    }
    if !row.device_id.is_empty() {
        match query::device(state, &row.device_id)? {
            Some(device)
                if device.status == Status::Active as i32 && device.disabled_seq <= since_seq => {}
            _ => {
                return Ok(Err(Lapse::new(
                    LapseKind::DeviceDisabled,
                    format!("agent {agent_id}'s device {} is disabled", row.device_id),
                )));
            }
        }
    }
    Ok(Ok(row))
}

/// The session, if started, not ended, not expired at `now_unix_s`, and on an active device.
pub fn session(state: &dyn StateRead, session_id: &str, now_unix_s: u64) -> Verdict<SessionRow> {
    let Some(row) = query::session(state, session_id)? else {
        return Ok(Err(Lapse::new(
            LapseKind::SessionEnded,
            format!("session {session_id} does not exist"),
        )));
    };
    if row.ended {
        return Ok(Err(Lapse::new(
            LapseKind::SessionEnded,
            format!("session {session_id} ended at seq {}", row.ended_seq),
        )));
    }
    let started = row.started.clone().unwrap_or_default();
    if started.expires_at_unix_s <= now_unix_s {
        return Ok(Err(Lapse::new(
            LapseKind::SessionEnded,
            format!(
                "session {session_id} expired at {}",
                started.expires_at_unix_s
            ),
        )));
    }
    if !started.device_id.is_empty() {
        match query::device(state, &started.device_id)? {
            Some(device)
                if device.status == Status::Active as i32
                    && device.disabled_seq <= row.started_seq => {}
            _ => {
                return Ok(Err(Lapse::new(
                    LapseKind::DeviceDisabled,
                    format!(
                        "session {session_id}'s device {} is disabled",
                        started.device_id
                    ),
                )));
            }
        }
    }
    Ok(Ok(row))
}

/// The delegation `delegation_id` and every link above it, leaf first, if every link is
/// unrevoked and unexpired at `now_unix_s`, every grantee agent is in force, and so is the human
/// at the root.
pub fn delegation_chain(
    state: &dyn StateRead,
    delegation_id: &str,
    now_unix_s: u64,
) -> Verdict<Vec<log::DelegationCreated>> {
    let mut chain = Vec::new();
    let mut current = delegation_id.to_owned();
    // A stored chain is never deeper than the cap: apply refuses to build one.
    for _ in 0..=DELEGATION_DEPTH_MAX {
        let Some(row) = query::delegation(state, &current)? else {
            return Ok(Err(Lapse::new(
                LapseKind::DelegationNotFound,
                format!("delegation {current} does not exist"),
            )));
        };
        let created_seq = row.created_seq;
        let created = row.created.unwrap_or_default();
        if row.revoked {
            return Ok(Err(Lapse::new(
                LapseKind::DelegationRevoked,
                format!(
                    "delegation {current} was revoked at seq {}",
                    row.revoked_seq
                ),
            )));
        }
        if created.expires_at_unix_s <= now_unix_s {
            return Ok(Err(Lapse::new(
                LapseKind::DelegationExpired,
                format!(
                    "delegation {current} expired at {}",
                    created.expires_at_unix_s
                ),
            )));
        }
        if let Err(lapse) = agent(state, &created.grantee_agent_id, created_seq)? {
            return Ok(Err(lapse));
        }
        let parent = created.parent_delegation_id.clone();
        let root_human_id = created.root_human_id.clone();
        chain.push(created);
        if parent.is_empty() {
            if let Err(lapse) = human(state, &root_human_id, created_seq)? {
                return Ok(Err(lapse));
            }
            return Ok(Ok(chain));
        }
        current = parent;
    }
    Err(StateError::corrupt(
        &crate::keys::delegation(delegation_id),
        format!("chain is deeper than {DELEGATION_DEPTH_MAX}"),
    ))
}

/// Whether a token is in force at `now_unix_s`, apart from its own `exp` (which the caller
/// checks with its clock leeway): not revoked, and every principal, session and delegation it
/// names in force.
pub fn token(state: &dyn StateRead, row: &TokenRow, now_unix_s: u64) -> Verdict<()> {
    let issued = row.issued.clone().unwrap_or_default();
    if row.revoked {
        return Ok(Err(Lapse::new(
            LapseKind::TokenRevoked,
            format!("the token was revoked at seq {}", row.revoked_seq),
        )));
    }
    // Whoever holds a compromised key can sign anything, so nothing it signed is trusted; the
    // token's issuance was honest, but its bytes can no longer be told from a forgery's.
    if let Some(key) = query::signing_key(state, &issued.key_id)?
        && key.compromised
    {
        return Ok(Err(Lapse::new(
            LapseKind::SigningKeyCompromised,
            format!(
                "its signing key {} was marked compromised at seq {}",
                issued.key_id, key.compromised_seq
            ),
        )));
    }
    if !issued.agent_id.is_empty()
        && let Err(lapse) = agent(state, &issued.agent_id, row.issued_seq)?
    {
        return Ok(Err(lapse));
    }
    if issued.subject_kind == PrincipalKind::Human as i32
        && let Err(lapse) = human(state, &issued.subject, row.issued_seq)?
    {
        return Ok(Err(lapse));
    }
    if !issued.session_id.is_empty()
        && let Err(lapse) = session(state, &issued.session_id, now_unix_s)?
    {
        return Ok(Err(lapse));
    }
    if !issued.delegation_id.is_empty()
        && let Err(lapse) = delegation_chain(state, &issued.delegation_id, now_unix_s)?
    {
        return Ok(Err(lapse));
    }
    // A token obtained by exchange stands on the token it was exchanged for: revoking that one
    // revokes everything exchanged from it, however many hops down.
    let mut subject_jti = issued.subject_jti;
    for _ in 0..=DELEGATION_DEPTH_MAX {
        if subject_jti.is_empty() {
            return Ok(Ok(()));
        }
        let Some(subject) = query::token(state, &subject_jti)? else {
            return Ok(Err(Lapse::new(
                LapseKind::TokenRevoked,
                format!("the token it was exchanged for ({subject_jti}) is not in the log"),
            )));
        };
        if subject.revoked {
            return Ok(Err(Lapse::new(
                LapseKind::TokenRevoked,
                format!(
                    "the token it was exchanged for ({subject_jti}) was revoked at seq {}",
                    subject.revoked_seq
                ),
            )));
        }
        subject_jti = subject.issued.unwrap_or_default().subject_jti;
    }
    Ok(Ok(()))
}

/// Whether `delegation` continues the authority of `subject`, the token an RFC 8693 exchange
/// presents: a human's session token continues only into a root delegation from that human; an
/// agent's delegated token only into a delegation that agent granted below its own. The one
/// statement of the rule, for the API's early refusal and for apply's.
pub fn continues_subject_token(
    delegation: &log::DelegationCreated,
    subject: &log::TokenIssued,
) -> bool {
    let is_human_session_token =
        subject.subject_kind == PrincipalKind::Human as i32 && subject.agent_id.is_empty();
    if is_human_session_token {
        return delegation.parent_delegation_id.is_empty()
            && delegation.root_human_id == subject.subject;
    }
    !subject.delegation_id.is_empty()
        && delegation.parent_delegation_id == subject.delegation_id
        && delegation.grantor_id == subject.agent_id
}
