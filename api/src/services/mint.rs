//! Minting access tokens: commit an issuance naming this node's current signing key, then sign
//! what was committed. The token is signed only after its issuance is committed, so no token
//! exists whose issuance is not in the log. Shared by token issuance, token exchange and human
//! logins (a session's access token).

use prost::Message;
use tonic::Code;
use warrant_proto::{api, log};
use warrant_token::jwt::{self, AccessClaims};

use crate::{
    auth::Caller,
    context::{Context, command, derived_idempotency_key},
    error::{ApiError, Reason},
};

/// RFC 8693 §3: the type of every token this cluster issues.
pub const ACCESS_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A committed command and, if its outcome carries an issuance, that token signed.
pub(crate) struct Minted {
    pub accepted: log::Accepted,
    pub token: Option<api::IssueResponse>,
}

/// Commits the command `build` makes for this node's current key (see
/// [`commit_with_current_key`]), then signs the issuance `issued` finds in its outcome.
pub(crate) async fn commit_and_sign(
    context: &Context,
    build: impl FnMut(&str) -> log::Command,
    issued: impl FnOnce(&log::Accepted) -> Option<&log::TokenIssued>,
) -> Result<Minted, ApiError> {
    let accepted = commit_with_current_key(context, build).await?;
    let token = match issued(&accepted) {
        Some(token) => Some(sign_issued(context, token, accepted.seq)?),
        None => None,
    };
    Ok(Minted { accepted, token })
}

/// Commits an issuance with this node's current key, then signs the committed claims.
pub(crate) async fn issue_and_sign(
    context: &Context,
    caller: &Caller,
    idempotency_key: &str,
    method: &str,
    request_without_key: &impl Message,
    mut issue: log::IssueToken,
) -> Result<api::IssueResponse, ApiError> {
    let build = |key_id: &str| {
        issue.key_id = key_id.to_string();
        command(
            caller,
            idempotency_key,
            method,
            request_without_key,
            log::command::Kind::IssueToken(issue.clone()),
        )
    };
    commit_and_sign(context, build, |accepted| accepted.token_issued.as_ref())
        .await?
        .token
        .ok_or_else(|| ApiError::internal("accepted issuance carries no claims"))
}

/// Commits a command naming this node's current signing key (which `build` puts in). If a key
/// rotation retired that key between choosing it and committing (`SIGNING_KEY_RETIRED`), tries
/// once more with the new key, so issuances racing a rotation do not fail.
///
/// Apply keeps the refusal under the first attempt's idempotency key, so the second attempt goes
/// under a key derived from it and the refused key id (`key/rekey-<kid>`): a client's retry of
/// the whole request meets the same refusal, then the same second attempt, which replays its
/// first outcome instead of issuing twice.
async fn commit_with_current_key(
    context: &Context,
    mut build: impl FnMut(&str) -> log::Command,
) -> Result<log::Accepted, ApiError> {
    let mut attempts_left = 2;
    let mut refused_key_id: Option<String> = None;
    loop {
        attempts_left -= 1;
        let key_id = context.signing_keys.current().key_id().to_string();
        let mut command = build(&key_id);
        if let Some(refused) = &refused_key_id {
            command.idempotency_key =
                derived_idempotency_key(&command.idempotency_key, &format!("rekey-{refused}"));
        }
        match context.commit(command).await {
            Err(error) if error.reason == Reason::SigningKeyRetired && 0 < attempts_left => {
                refused_key_id = Some(key_id);
            }
            // An admin marked this node's key compromised: rotate (once, however many issuances
            // met the mark) and issue with the new key.
            Err(error) if error.reason == Reason::SigningKeyCompromised && 0 < attempts_left => {
                crate::keys::rotate_away_from(context, &key_id).await?;
                refused_key_id = Some(key_id);
            }
            other => return other,
        }
    }
}

/// Signs committed claims. A replayed issuance is signed again to the same bytes.
fn sign_issued(
    context: &Context,
    issued: &log::TokenIssued,
    seq: u64,
) -> Result<api::IssueResponse, ApiError> {
    // The span names the key, which the JWKS publishes; never the claims or the token.
    let _span = tracing::info_span!("token.sign", key_id = %issued.key_id, seq).entered();
    let Some(key) = context.signing_keys.by_id(&issued.key_id) else {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            Reason::IssuedByOtherNode,
            format!(
                "this idempotency key was first used on the node with key {}; retry there",
                issued.key_id
            ),
        ));
    };
    let claims = AccessClaims::from_issued(&context.issuer, issued);
    let access_token = jwt::sign(&key, &claims).map_err(|e| ApiError::internal(e.to_string()))?;
    crate::metrics::token_issued(issued);
    Ok(api::IssueResponse {
        access_token,
        token_type: "Bearer".to_string(),
        expires_in: u32::try_from(
            issued
                .expires_at_unix_s
                .saturating_sub(issued.issued_at_unix_s),
        )
        .unwrap_or(u32::MAX),
        jti: issued.jti.clone(),
        seq,
        issued_at_unix_s: issued.issued_at_unix_s,
        expires_at_unix_s: issued.expires_at_unix_s,
        issued_token_type: ACCESS_TOKEN_TYPE_URN.to_string(),
        scope: issued.scopes.join(" "),
    })
}
