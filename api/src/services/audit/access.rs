//! `EffectiveAccess`: what an agent could do for a human at a point of the log.
//!
//! The point is the request's `as_of`, or `read.as_of` (both may be set only to the same
//! point), resolved like every as-of read (`Context::read_view`); the answer is
//! `identity::effective::effective_access` over that view, so it reads the versions current
//! then and never replays. "In force" is judged at the as-of time when one was asked for, at
//! the time of the event at the as-of seq when a seq was, and at this node's clock for the
//! applied state; `answered_at_unix_ms` says which instant it was.

use tonic::{Code, Request, Response, Status};
use warrant_identity::limits::EFFECTIVE_ACCESS_ITEMS_MAX;
use warrant_identity::{
    StateRead,
    effective::{self, EffectiveAccess},
    limits, query,
};
use warrant_proto::{api, state};

use crate::{
    context::{Context, ReadView, event_time_unix_ms, now_unix_ms},
    error::{ApiError, Reason},
    services::{delegation::delegation_reply, identity::replies::ReadBack},
    storage::storage,
    validate::{self, ReadRequest},
};

pub(super) async fn effective_access(
    context: &Context,
    request: Request<api::EffectiveAccessRequest>,
) -> Result<Response<api::EffectiveAccessResponse>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    limits::validate_id("agent_id", &request.agent_id).map_err(ApiError::from)?;
    if !request.human_id.is_empty() {
        limits::validate_id("human_id", &request.human_id).map_err(ApiError::from)?;
    }
    let view = context.read_view(read_request(&request)?).await?;
    let answered_at_seq = view.seq()?;
    let answered_at_unix_ms = answered_at(&view, answered_at_seq)?;
    let human_id = (!request.human_id.is_empty()).then_some(request.human_id.as_str());
    let answer = effective::effective_access(
        &view,
        &request.agent_id,
        human_id,
        answered_at_unix_ms / 1000,
        EFFECTIVE_ACCESS_ITEMS_MAX,
    )
    .map_err(storage)?
    .ok_or_else(|| {
        ApiError::new(
            Code::NotFound,
            Reason::AgentNotFound,
            format!(
                "agent {} is not registered at seq {answered_at_seq}",
                request.agent_id
            ),
        )
    })?;
    let mut response = response(&view, answer)?;
    response.answered_at_seq = answered_at_seq;
    response.answered_at_unix_ms = answered_at_unix_ms;
    response.checkpoint = checkpoint_covering(context, answered_at_seq).await?;
    Ok(Response::new(response))
}

/// The read options with the point asked about: `as_of`, or `read.as_of`, which must agree when
/// both are set.
fn read_request(request: &api::EffectiveAccessRequest) -> Result<ReadRequest, ApiError> {
    let mut read = validate::read_options(request.read.as_ref())?;
    let own = validate::as_of_point(request.as_of.as_ref(), "as_of")?;
    read.as_of = match (own, read.as_of) {
        (Some(own), Some(other)) if own != other => {
            return Err(ApiError::invalid_field(
                Reason::FieldInvalid,
                "as_of",
                "as_of and read.as_of name different points; allowed: one of them, or the same \
                 point in both",
            ));
        }
        (own, other) => own.or(other),
    };
    Ok(read)
}

/// The instant "in force" is judged at: the time asked about, else the stamp of the event at
/// the as-of seq (0 before any event), else, for the applied state, this node's clock.
fn answered_at(view: &ReadView, seq: u64) -> Result<u64, ApiError> {
    match view.as_of() {
        Some(as_of) => match as_of.unix_ms {
            Some(unix_ms) => Ok(unix_ms),
            None => Ok(event_time_unix_ms(view.live_reader(), seq)
                .map_err(storage)?
                .unwrap_or(0)),
        },
        None => Ok(now_unix_ms()),
    }
}

/// The checkpoint of the answer: one this node signed (`context.checkpoints`) at a size of at
/// least `seq`, so every event the answer rests on can be proven included; signed now if the
/// latest is older. The signer's refusals are the answer's; only the state before any event
/// (seq 0) rests on nothing, and goes without one when the tree is empty.
async fn checkpoint_covering(
    context: &Context,
    seq: u64,
) -> Result<Option<api::Checkpoint>, ApiError> {
    match context.checkpoints.checkpoint_at_least(seq).await {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(e) if seq == 0 && e.reason == Reason::CheckpointUnavailable => Ok(None),
        Err(e) => Err(e),
    }
}

/// The answer as the API shows it (without the point and the checkpoint, which the caller sets).
fn response(
    state: &dyn StateRead,
    answer: EffectiveAccess,
) -> Result<api::EffectiveAccessResponse, ApiError> {
    let mut delegations = Vec::with_capacity(answer.delegations.len());
    for held in answer.delegations {
        let mut chain = Vec::with_capacity(held.chain.len());
        for row in held.chain {
            chain.push(delegation(state, row)?);
        }
        delegations.push(api::EffectiveDelegation {
            delegation: chain.last().cloned(),
            chain,
            in_force: held.lapse.is_none(),
            not_in_force_reason: held.lapse.map(|l| l.message).unwrap_or_default(),
        });
    }
    let sessions = answer
        .agent_sessions
        .into_iter()
        .chain(answer.owner_sessions)
        .map(|s| session(s.row, s.lapse.is_none()))
        .collect();
    Ok(api::EffectiveAccessResponse {
        answered_at_seq: 0,
        answered_at_unix_ms: 0,
        agent: Some(api::Agent::reply(answer.agent)),
        owner: answer.owner.map(api::Human::reply),
        delegations,
        sessions,
        devices: devices(answer.device, answer.owner_devices),
        active_policy_version: answer.policy.active_version,
        shadow_policy_version: answer.policy.shadow_version,
        checkpoint: None,
        truncated: answer.truncated,
    })
}

/// A delegation with its budget spent, as GetDelegation shows it (at the same point).
fn delegation(
    state: &dyn StateRead,
    row: state::DelegationRow,
) -> Result<api::Delegation, ApiError> {
    let id = row
        .created
        .as_ref()
        .map(|it| it.delegation_id.clone())
        .unwrap_or_default();
    let usage = query::budget_usage(state, &id).map_err(storage)?;
    Ok(delegation_reply(row, &usage))
}

fn session(row: state::SessionRow, in_force: bool) -> api::EffectiveSession {
    let started = row.started.unwrap_or_default();
    api::EffectiveSession {
        session_id: started.session_id,
        principal_kind: started.principal_kind,
        principal_id: started.principal_id,
        device_id: started.device_id,
        auth_method: started.auth_method,
        expires_at_unix_s: started.expires_at_unix_s,
        ended: row.ended,
        started_seq: row.started_seq,
        in_force,
    }
}

/// The agent's bound device first, then the owner's others (the bound device is one of them:
/// it is listed once).
fn devices(bound: Option<state::DeviceRow>, owners: Vec<state::DeviceRow>) -> Vec<api::Device> {
    let bound_id = bound.as_ref().map(|d| d.device_id.clone());
    bound
        .into_iter()
        .chain(
            owners
                .into_iter()
                .filter(|d| Some(&d.device_id) != bound_id.as_ref()),
        )
        .map(api::Device::reply)
        .collect()
}

#[cfg(test)]
mod tests {
    use warrant_proto::api::{AsOf, ReadOptions, as_of};

    use super::*;
    use crate::validate::AsOfPoint;

    fn at(point: as_of::Point) -> Option<AsOf> {
        Some(AsOf { point: Some(point) })
    }

    #[test]
    fn the_point_is_the_own_field_or_the_read_options_and_both_must_agree() {
        let own = api::EffectiveAccessRequest {
            as_of: at(as_of::Point::Seq(4)),
            ..Default::default()
        };
        assert_eq!(
            read_request(&own).expect("own").as_of,
            Some(AsOfPoint::Seq(4))
        );
        let read = api::EffectiveAccessRequest {
            read: Some(ReadOptions {
                as_of: at(as_of::Point::TimeUnixMs(9)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            read_request(&read).expect("read").as_of,
            Some(AsOfPoint::Time { unix_ms: 9 })
        );
        let same = api::EffectiveAccessRequest {
            as_of: at(as_of::Point::Seq(4)),
            read: Some(ReadOptions {
                as_of: at(as_of::Point::Seq(4)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            read_request(&same).expect("same").as_of,
            Some(AsOfPoint::Seq(4))
        );
        let differ = api::EffectiveAccessRequest {
            as_of: at(as_of::Point::Seq(4)),
            read: Some(ReadOptions {
                as_of: at(as_of::Point::Seq(5)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            read_request(&differ).expect_err("differ").reason,
            Reason::FieldInvalid
        );
        assert_eq!(
            read_request(&api::EffectiveAccessRequest::default())
                .expect("now")
                .as_of,
            None
        );
    }

    #[test]
    fn the_bound_device_is_listed_first_and_once() {
        let device = |id: &str| state::DeviceRow {
            device_id: id.to_string(),
            owner_human_id: "alice".to_string(),
            ..Default::default()
        };
        let listed: Vec<String> = devices(
            Some(device("laptop")),
            vec![device("desk"), device("laptop"), device("phone")],
        )
        .into_iter()
        .map(|d| d.device_id)
        .collect();
        assert_eq!(listed, vec!["laptop", "desk", "phone"]);
        assert_eq!(devices(None, vec![device("desk")]).len(), 1);
    }

    #[test]
    fn a_session_shows_its_start_and_whether_it_is_in_force() {
        let row = state::SessionRow {
            started: Some(warrant_proto::log::SessionStarted {
                session_id: "s1".to_string(),
                principal_id: "a1".to_string(),
                expires_at_unix_s: 99,
                ..Default::default()
            }),
            started_seq: 3,
            ended: true,
            ..Default::default()
        };
        let shown = session(row, false);
        assert_eq!(
            (
                shown.session_id.as_str(),
                shown.started_seq,
                shown.ended,
                shown.in_force
            ),
            ("s1", 3, true, false)
        );
    }
}
