//! Checking a presented Warrant access token: its signature and claims (the `token` crate), then
//! the log: it was issued with exactly these claims, and it and everything it names (agent,
//! human, session, delegation chain) are still in force. Shared by Verify, token exchange and
//! human bearer authentication, so all three answer alike.

use warrant_identity::{StateRead, query, validity};
use warrant_proto::{api::TokenInvalidReason, state};
use warrant_token::jwt::{self, Expectations, Invalid, KeyLookup, VerifiedClaims};

use crate::{error::ApiError, storage::storage};

/// Signing keys as the log published them.
pub struct PublishedKeys<'a> {
    pub state: &'a dyn StateRead,
}

impl KeyLookup for PublishedKeys<'_> {
    type Error = ApiError;

    fn public_key(&self, key_id: &str) -> Result<Option<[u8; 32]>, ApiError> {
        let row = query::signing_key(self.state, key_id).map_err(storage)?;
        Ok(row
            .and_then(|row| row.key)
            .and_then(|key| key.public_key.as_slice().try_into().ok()))
    }
}

/// A token that checked out, with its logged issuance.
pub struct Checked {
    pub claims: VerifiedClaims,
    pub row: state::TokenRow,
}

impl Checked {
    pub fn issued(&self) -> warrant_proto::log::TokenIssued {
        self.row.issued.clone().unwrap_or_default()
    }
}

/// Checks `token` against the published keys, `expect`, and the state. `Ok(Err(_))` is an
/// invalid token; `Err(_)` a failure to read.
pub fn check(
    state: &dyn StateRead,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Result<Checked, Invalid>, ApiError> {
    let checked = match check_issuance(state, token, expect)? {
        Ok(checked) => checked,
        Err(invalid) => return Ok(Err(invalid)),
    };
    if let Err(lapse) = validity::token(state, &checked.row, expect.now_unix_s).map_err(storage)? {
        return Ok(Err(Invalid {
            reason: lapse.kind.token_invalid_reason(),
            message: lapse.message,
        }));
    }
    Ok(Ok(checked))
}

/// The first half of [`check`]: the signature, the claims, and the logged issuance they must
/// equal, but not whether it is still in force. Authorize stops here, so that a revoked or
/// disabled token's denial still names the token, its agent and its human: the decision itself
/// asks `validity`, at its own position.
pub fn check_issuance(
    state: &dyn StateRead,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Result<Checked, Invalid>, ApiError> {
    let claims = match jwt::verify(token, &PublishedKeys { state }, expect)? {
        Ok(claims) => claims,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let invalid =
        |reason: TokenInvalidReason, message: String| Ok(Err(Invalid { reason, message }));
    // Before the issuance: whoever holds a compromised key signs what they like, so a token it
    // signed is refused as such, logged or forged.
    if let Some(key) = query::signing_key(state, &claims.key_id).map_err(storage)?
        && key.compromised
    {
        return invalid(
            TokenInvalidReason::SigningKeyCompromised,
            format!(
                "its signing key {} was marked compromised at seq {}",
                claims.key_id, key.compromised_seq
            ),
        );
    }
    let Some(row) = query::token(state, &claims.jti).map_err(storage)? else {
        return invalid(
            TokenInvalidReason::UnknownToken,
            format!("no issuance of jti {} is in the log", claims.jti),
        );
    };
    let issued = row.issued.clone().unwrap_or_default();
    let optional = |value: &str| (!value.is_empty()).then(|| value.to_string());
    let matches = issued.subject == claims.sub
        && jwt::client_id_of(&issued) == claims.client_id
        && issued.expires_at_unix_s == claims.exp
        && issued.issued_at_unix_s == claims.iat
        && issued.scopes == claims.scopes
        && issued.key_id == claims.key_id
        && issued.actor_chain == claims.actor_chain
        && optional(&issued.session_id) == claims.sid
        && optional(&issued.delegation_id) == claims.delegation_id
        && optional(&issued.task) == claims.task
        && claims.aud.contains(&issued.audience);
    if !matches {
        return invalid(
            TokenInvalidReason::UnknownToken,
            "the token's claims differ from its logged issuance".to_string(),
        );
    }
    Ok(Ok(Checked { claims, row }))
}
