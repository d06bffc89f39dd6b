//! Caller authentication.
//!
//! Admins present the bootstrap admin token from the node's config as `Bearer <token>`. Agents
//! present their own credential as `Basic base64(agent_id:client_secret)`; the secret is checked
//! against the argon2id hash in the agent's projection row. Argon2 is deliberately slow, so a
//! successful check is remembered (keyed by the secret's SHA-256 and the stored hash, so a
//! rotated credential invalidates it) in a bounded cache.

use std::{collections::BTreeMap, sync::Mutex};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use tonic::{Code, metadata::MetadataMap};
use warrant_identity::{StateRead, query};
use warrant_proto::{log, state};

use crate::error::{ApiError, Reason};

/// Cached successful secret checks, at most this many agents.
pub const VERIFIED_SECRETS_MAX: usize = 10_000;
/// The longest `authorization` value parsed; longer ones are refused before decoding.
pub const AUTHORIZATION_LEN_MAX: usize = 1024;
/// Client secrets: long enough to resist guessing, short enough to hash cheaply.
pub const CLIENT_SECRET_LEN_MIN: usize = 24;
pub const CLIENT_SECRET_LEN_MAX: usize = 256;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Agent { agent_id: String },
}

impl Caller {
    pub fn actor(&self) -> log::Actor {
        match self {
            Caller::Admin => log::Actor {
                kind: log::PrincipalKind::Admin as i32,
                id: "admin".to_string(),
                on_behalf_of: vec![],
            },
            Caller::Agent { agent_id } => log::Actor {
                kind: log::PrincipalKind::Agent as i32,
                id: agent_id.clone(),
                on_behalf_of: vec![],
            },
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Agent { .. } => Err(ApiError::new(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                "this RPC needs the admin credential",
            )),
        }
    }
}

pub struct Authenticator {
    admin_token_sha256: [u8; 32],
    verified: Mutex<BTreeMap<String, ([u8; 32], String)>>,
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Authenticator {
            admin_token_sha256: Sha256::digest(admin_token.as_bytes()).into(),
            verified: Mutex::default(),
        }
    }

    /// Authenticates the caller of one request. `state` is read for agent credentials.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        state: &(dyn StateRead + Sync),
    ) -> Result<Caller, ApiError> {
        let Some(value) = metadata.get("authorization") else {
            return Err(unauthenticated(
                Reason::CredentialMissing,
                "no authorization metadata; allowed: 'Bearer <admin token>' or 'Basic base64(agent_id:client_secret)'",
            ));
        };
        let value = value.to_str().map_err(|_| {
            unauthenticated(
                Reason::CredentialInvalid,
                "authorization metadata is not ASCII",
            )
        })?;
        if AUTHORIZATION_LEN_MAX < value.len() {
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                format!(
                    "authorization metadata is {} bytes; allowed: at most {AUTHORIZATION_LEN_MAX}",
                    value.len()
                ),
            ));
        }
        if let Some(token) = value.strip_prefix("Bearer ") {
            let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            return if constant_time_eq(&presented, &self.admin_token_sha256) {
                Ok(Caller::Admin)
            } else {
                Err(unauthenticated(
                    Reason::CredentialInvalid,
                    "the bearer credential is not the admin token",
                ))
            };
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            return self.authenticate_agent(encoded, state).await;
        }
        Err(unauthenticated(
            Reason::CredentialInvalid,
            "unknown authorization scheme; allowed: Bearer, Basic",
        ))
    }

    async fn authenticate_agent(
        &self,
        encoded: &str,
        state: &(dyn StateRead + Sync),
    ) -> Result<Caller, ApiError> {
        let decoded = STANDARD.decode(encoded).map_err(|_| {
            unauthenticated(
                Reason::CredentialInvalid,
                "Basic credential is not valid base64",
            )
        })?;
        let decoded = String::from_utf8(decoded).map_err(|_| {
            unauthenticated(Reason::CredentialInvalid, "Basic credential is not UTF-8")
        })?;
        let Some((agent_id, secret)) = decoded.split_once(':') else {
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                "Basic credential must be agent_id:client_secret",
            ));
        };
        // Any failure below reads the same to the caller, so it learns nothing about which agents exist.
        let rejected = || {
            unauthenticated(
                Reason::CredentialInvalid,
                "unknown agent or wrong client secret",
            )
        };
        if warrant_identity::limits::validate_id("agent_id", agent_id).is_err() {
            return Err(rejected());
        }
        let agent = query::agent(state, agent_id)
            .map_err(|e| ApiError::internal(format!("read agent: {e}")))?
            .ok_or_else(rejected)?;
        if agent.status != state::Status::Active as i32 {
            return Err(ApiError::new(
                Code::PermissionDenied,
                Reason::AgentDisabled,
                format!("agent {agent_id} is disabled"),
            ));
        }
        let secret_sha256: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let hashes: Vec<String> = agent
            .credentials
            .iter()
            .filter_map(|c| {
                c.kind
                    .as_ref()
                    .map(|log::credential::Kind::ClientSecretArgon2id(phc)| phc.clone())
            })
            .collect();
        if let Some((cached_sha, cached_phc)) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(agent_id)
            && constant_time_eq(cached_sha, &secret_sha256)
            && hashes.contains(cached_phc)
        {
            return Ok(Caller::Agent {
                agent_id: agent_id.to_string(),
            });
        }
        let secret = secret.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            hashes.into_iter().find(|phc| verify_secret(&secret, phc))
        })
        .await
        .map_err(|e| ApiError::internal(format!("verify secret: {e}")))?;
        let Some(phc) = matched else {
            return Err(rejected());
        };
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if VERIFIED_SECRETS_MAX <= verified.len() {
            verified.clear();
        }
        verified.insert(agent_id.to_string(), (secret_sha256, phc));
        Ok(Caller::Agent {
            agent_id: agent_id.to_string(),
        })
    }
}

/// Hashes a client secret with argon2id (OWASP minimum parameters: m=19 MiB, t=2, p=1) into a
/// PHC string. Done by the API node before proposing: never inside apply.
pub fn hash_secret(secret: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::internal(format!("hash client secret: {e}")))
}

fn verify_secret(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

fn unauthenticated(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::Unauthenticated, reason, message)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
