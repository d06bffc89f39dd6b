//! Agents' credentials: adding, rotating and removing them, and how a new credential or secret
//! reaches the log (argon2id-hashed, or an Ed25519 public key) and the request digest (keyed by
//! the cluster's digest key, never in clear).

use tonic::Request;
use warrant_identity::check;
use warrant_proto::{api, log};

use super::write::commit_and_read_back;
use crate::{
    auth::{Caller, hash_secret},
    context::Context,
    digest_key::DigestKey,
    error::{ApiError, Reason},
    limits::{CLIENT_SECRET_LEN_MAX, CLIENT_SECRET_LEN_MIN},
    validate,
};

pub(super) async fn add(
    context: &Context,
    request: Request<api::AddCredentialRequest>,
) -> Result<api::CredentialResponse, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let add = vec![take_new_credential(context, &mut request.credential).await?];
    let key = std::mem::take(&mut request.idempotency_key);
    let change = Change {
        agent_id: request.agent_id.clone(),
        add,
        remove: vec![],
    };
    change
        .commit(context, &caller, &key, "AddCredential", &request)
        .await
}

pub(super) async fn rotate(
    context: &Context,
    request: Request<api::RotateCredentialRequest>,
) -> Result<api::CredentialResponse, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    // `old_credential_id` becomes `remove[0]` of the command, checked in `Context::commit`.
    let add = vec![take_new_credential(context, &mut request.credential).await?];
    let key = std::mem::take(&mut request.idempotency_key);
    let change = Change {
        agent_id: request.agent_id.clone(),
        add,
        remove: vec![request.old_credential_id.clone()],
    };
    change
        .commit(context, &caller, &key, "RotateCredential", &request)
        .await
}

pub(super) async fn remove(
    context: &Context,
    request: Request<api::RemoveCredentialRequest>,
) -> Result<api::CredentialResponse, ApiError> {
    let caller = context.caller(request.metadata()).await?;
    let mut request = request.into_inner();
    let key = std::mem::take(&mut request.idempotency_key);
    let change = Change {
        agent_id: request.agent_id.clone(),
        add: vec![],
        remove: vec![request.credential_id.clone()],
    };
    change
        .commit(context, &caller, &key, "RemoveCredential", &request)
        .await
}

/// The new credential a request carries, as the log stores it; the request keeps only the
/// digest of its secret, if it has one.
async fn take_new_credential(
    context: &Context,
    credential: &mut Option<api::NewCredential>,
) -> Result<log::Credential, ApiError> {
    let stored = stored_credential("credential", &credential.clone().unwrap_or_default()).await?;
    if let Some(credential) = credential.as_mut() {
        strip_secrets(&context.digest_key, std::slice::from_mut(credential));
    }
    Ok(stored)
}

/// One change to an agent's credentials.
struct Change {
    agent_id: String,
    add: Vec<log::Credential>,
    remove: Vec<String>,
}

impl Change {
    /// Commits the change; `request_without_secrets` is the request as its digest covers it.
    async fn commit(
        self,
        context: &Context,
        caller: &Caller,
        key: &str,
        method: &str,
        request_without_secrets: &impl prost::Message,
    ) -> Result<api::CredentialResponse, ApiError> {
        validate::optional_idempotency_key(key)?;
        let kind = log::command::Kind::ChangeCredentials(log::ChangeCredentials {
            agent_id: self.agent_id.clone(),
            add: self.add,
            remove: self.remove,
        });
        let (agent, seq) = commit_and_read_back(
            context,
            caller,
            key,
            method,
            request_without_secrets,
            kind,
            &self.agent_id,
        )
        .await?;
        Ok(api::CredentialResponse {
            agent: Some(agent),
            seq,
        })
    }
}

/// Hashes a secret with argon2id off the async runtime.
pub(super) async fn hash(secret: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(|e| ApiError::internal(format!("hash secret: {e}")))?
}

/// Replaces client secrets in `credentials` with their keyed digests (see
/// [`crate::digest_key`]) before a request is hashed, so a retry with the same secret matches
/// and the log gives a guesser nothing to check against.
pub(super) fn strip_secrets(digest_key: &DigestKey, credentials: &mut [api::NewCredential]) {
    for credential in credentials {
        if let Some(api::new_credential::Kind::ClientSecret(secret)) = &mut credential.kind {
            *secret = digest_key.secret(secret);
        }
    }
}

/// A credential as the log stores it: a secret hashed with argon2id, or an Ed25519 public key.
pub(super) async fn stored_credential(
    field: &str,
    credential: &api::NewCredential,
) -> Result<log::Credential, ApiError> {
    let kind = match &credential.kind {
        Some(api::new_credential::Kind::ClientSecret(secret)) => {
            check_client_secret(&format!("{field}.client_secret"), secret)?;
            log::credential::Kind::ClientSecretArgon2id(hash(secret.clone()).await?)
        }
        Some(api::new_credential::Kind::Ed25519PublicKey(key)) => {
            log::credential::Kind::Ed25519PublicKey(key.clone())
        }
        None => {
            return Err(ApiError::invalid_field(
                Reason::FieldRequired,
                &format!("{field}.kind"),
                format!("{field} has no kind; allowed: client_secret or ed25519_public_key"),
            ));
        }
    };
    let stored = log::Credential {
        credential_id: credential.credential_id.clone(),
        kind: Some(kind),
    };
    // The one credential rule, apply's too.
    check::credential(field, &stored)?;
    Ok(stored)
}

pub(super) fn check_client_secret(field: &str, secret: &str) -> Result<(), ApiError> {
    let len = secret.len();
    if !(CLIENT_SECRET_LEN_MIN..=CLIENT_SECRET_LEN_MAX).contains(&len) {
        return Err(ApiError::invalid_field(
            if len == 0 {
                Reason::FieldRequired
            } else {
                Reason::FieldInvalid
            },
            field,
            format!(
                "{field} is {len} bytes; allowed: {} to {} printable ASCII characters",
                CLIENT_SECRET_LEN_MIN, CLIENT_SECRET_LEN_MAX
            ),
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            Reason::FieldInvalid,
            field,
            format!("{field} holds a character outside printable ASCII (0x21..=0x7e)"),
        ));
    }
    Ok(())
}
