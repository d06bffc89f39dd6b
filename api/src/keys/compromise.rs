//! Marking a signing key compromised (`ClusterService.MarkKeyCompromised`): one log command,
//! after which the key is listed nowhere, signs nothing more, and no token it signed verifies.
//! The node whose key it is rotates: at once if it received the call, otherwise at its next
//! issuance, which apply refuses with `SIGNING_KEY_COMPROMISED` (`services::mint`).

use warrant_proto::{api, log};

use super::rotate_away_from;
use crate::{
    auth::Caller,
    context::{Context, command},
    error::ApiError,
    validate,
};

/// Commits the mark for the admin `caller`, then rotates this node's key if it was the one.
pub async fn mark_compromised(
    context: &Context,
    caller: &Caller,
    mut request: api::MarkKeyCompromisedRequest,
) -> Result<api::MarkKeyCompromisedResponse, ApiError> {
    validate::optional_idempotency_key(&request.idempotency_key)?;
    let kind = log::command::Kind::MarkSigningKeyCompromised(log::MarkSigningKeyCompromised {
        key_id: request.key_id.clone(),
        reason: request.reason.clone(),
    });
    let idempotency_key = std::mem::take(&mut request.idempotency_key);
    let accepted = context
        .commit(command(
            caller,
            &idempotency_key,
            "MarkKeyCompromised",
            &request,
            kind,
        ))
        .await?;
    if accepted.changed {
        tracing::warn!(key_id = %request.key_id, seq = accepted.seq, "signing key marked compromised");
    }
    let new_key_id = rotate_away_from(context, &request.key_id)
        .await?
        .unwrap_or_default();
    Ok(api::MarkKeyCompromisedResponse {
        seq: accepted.seq,
        changed: accepted.changed,
        new_key_id,
    })
}
