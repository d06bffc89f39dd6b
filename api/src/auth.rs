//! Caller authentication.
//!
//! - Admins present the bootstrap admin token from the node's config as `Bearer <token>`.
//! - Humans present their session access token as `Bearer <jwt>`: a Warrant token whose audience
//!   is this cluster's issuer, whose session is in force.
//! - Agents present `Basic base64(agent_id:client_secret)`; the secret is checked against the
//!   argon2id hash in the agent's projection row. Argon2 is deliberately slow, so a successful
//!   check is remembered (keyed by the secret's SHA-256 and the stored hash, so a rotated
//!   credential invalidates it) in a bounded cache.
//! - Or agents present an RFC 7523 client assertion as `client-assertion: <jwt>`, signed with an
//!   Ed25519 key registered as one of their credentials (`kid` = credential id). Its `jti` is
//!   spent through the log by the command it authenticates, so it works once, cluster-wide.

use std::{collections::BTreeMap, sync::Mutex};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Code, metadata::MetadataMap};
use warrant_identity::{StateRead, query};
use warrant_proto::{log, state};

use warrant_token::{
    assertion::{self, AssertionExpectations},
    jwt::Expectations,
};

use crate::error::{ApiError, Reason};

/// The metadata entry carrying an RFC 7523 client assertion.
pub const CLIENT_ASSERTION_METADATA: &str = "client-assertion";

/// Cached successful secret checks, at most this many agents.
pub const VERIFIED_SECRETS_MAX: usize = 10_000;
/// The longest `authorization` value parsed; longer ones are refused before decoding.
pub const AUTHORIZATION_LEN_MAX: usize = 1024;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// A human with a session access token.
    Human {
        human_id: String,
        session_id: String,
        /// Set for a login with an upstream id_token: the session it starts spends it, so a
        /// captured id_token cannot start a second session.
        assertion: Option<log::AssertionUse>,
    },
    Agent {
        agent_id: String,
        method: log::AuthMethod,
        /// The id of the credential that authenticated the call.
        credential_id: String,
        /// Set when a client assertion authenticated the call: the command spends it.
        assertion: Option<log::AssertionUse>,
    },
}

impl Caller {
    /// An agent authenticated by its client secret `credential_id`.
    pub fn agent(agent_id: &str, credential_id: &str) -> Caller {
        Caller::Agent {
            agent_id: agent_id.to_string(),
            method: log::AuthMethod::ClientSecret,
            credential_id: credential_id.to_string(),
            assertion: None,
        }
    }

    /// The credential apply must find still in force, if the caller used one it can check.
    pub fn credential(&self) -> Option<log::CallerCredential> {
        use log::caller_credential::Kind;
        let kind = match self {
            Caller::Admin => return None,
            Caller::Human { session_id, .. } if session_id.is_empty() => return None,
            Caller::Human { session_id, .. } => Kind::SessionId(session_id.clone()),
            Caller::Agent { credential_id, .. } => Kind::CredentialId(credential_id.clone()),
        };
        Some(log::CallerCredential { kind: Some(kind) })
    }

    pub fn actor(&self) -> log::Actor {
        let (kind, id) = match self {
            Caller::Admin => (log::PrincipalKind::Admin, "admin"),
            Caller::Human { human_id, .. } => (log::PrincipalKind::Human, human_id.as_str()),
            Caller::Agent { agent_id, .. } => (log::PrincipalKind::Agent, agent_id.as_str()),
        };
        log::Actor {
            kind: kind as i32,
            id: id.to_string(),
            on_behalf_of: vec![],
        }
    }

    /// The client assertion the command must spend, if one authenticated the call.
    pub fn assertion(&self) -> Option<log::AssertionUse> {
        match self {
            Caller::Agent { assertion, .. } | Caller::Human { assertion, .. } => assertion.clone(),
            Caller::Admin => None,
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            _ => Err(ApiError::new(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                "this RPC needs the admin credential",
            )),
        }
    }

    /// Reads cannot spend an assertion through the log, so an assertion could be replayed
    /// against them: they take the other credentials only.
    pub fn require_reusable_credential(&self) -> Result<(), ApiError> {
        if self.assertion().is_some() {
            return Err(ApiError::new(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                "a client assertion authenticates only RPCs that write; use the admin token, a \
                 session token or a client secret",
            ));
        }
        Ok(())
    }
}

/// What bearer tokens and assertions are checked against.
pub struct AuthConfig {
    pub admin_token: String,
    /// This cluster's issuer: the audience of session tokens and of client assertions.
    pub issuer: String,
    /// Further audiences a client assertion may name (the HTTP token endpoint's URL).
    pub assertion_audiences: Vec<String>,
    pub clock_leeway_s: u64,
}

pub struct Authenticator {
    admin_token_sha256: [u8; 32],
    issuer: String,
    assertion_audiences: Vec<String>,
    clock_leeway_s: u64,
    verified: Mutex<BTreeMap<String, ([u8; 32], String)>>,
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Self {
        let mut assertion_audiences = vec![config.issuer.clone()];
        assertion_audiences.extend(config.assertion_audiences);
        Authenticator {
            admin_token_sha256: Sha256::digest(config.admin_token.as_bytes()).into(),
            issuer: config.issuer,
            assertion_audiences,
            clock_leeway_s: config.clock_leeway_s,
            verified: Mutex::default(),
        }
    }

    /// Authenticates the caller of one request. `state` is read for agent credentials.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        state: &(dyn StateRead + Sync),
    ) -> Result<Caller, ApiError> {
        if let Some(value) = metadata.get(CLIENT_ASSERTION_METADATA) {
            let value = value.to_str().map_err(|_| {
                unauthenticated(
                    Reason::CredentialInvalid,
                    "client-assertion metadata is not ASCII",
                )
            })?;
            return self.authenticate_assertion(value, state);
        }
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
            if bool::from(presented[..].ct_eq(&self.admin_token_sha256[..])) {
                return Ok(Caller::Admin);
            }
            // The admin token is opaque; anything shaped like a JWS is a session token.
            if token.split('.').count() == 3 {
                return self.authenticate_session_token(token, state);
            }
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                "the bearer credential is neither the admin token nor a session token",
            ));
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
        let decoded = decode_basic(encoded)?;
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
        // (credential id, argon2id PHC) of each client secret the agent holds.
        let hashes: Vec<(String, String)> = agent
            .credentials
            .iter()
            .filter_map(|c| match &c.kind {
                Some(log::credential::Kind::ClientSecretArgon2id(phc)) => {
                    Some((c.credential_id.clone(), phc.clone()))
                }
                _ => None,
            })
            .collect();
        if let Some(credential_id) = self.verified_before(agent_id, &secret_sha256, &hashes) {
            return Ok(Caller::agent(agent_id, &credential_id));
        }
        let secret = secret.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            hashes
                .into_iter()
                .find(|(_, phc)| verify_secret(&secret, phc))
        })
        .await
        .map_err(|e| ApiError::internal(format!("verify secret: {e}")))?;
        let Some((credential_id, phc)) = matched else {
            return Err(rejected());
        };
        self.remember_verified(agent_id, secret_sha256, phc);
        Ok(Caller::agent(agent_id, &credential_id))
    }

    /// The credential id a secret with this SHA-256 was verified against before, if the agent
    /// still holds that credential (`hashes`: its client secrets as (credential id, PHC)).
    fn verified_before(
        &self,
        agent_id: &str,
        secret_sha256: &[u8; 32],
        hashes: &[(String, String)],
    ) -> Option<String> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(agent_id)
            .filter(|(cached_sha, _)| bool::from(cached_sha[..].ct_eq(&secret_sha256[..])))
            .and_then(|(_, cached_phc)| {
                hashes
                    .iter()
                    .find(|(_, phc)| phc == cached_phc)
                    .map(|(id, _)| id.clone())
            })
    }

    /// Remembers a successful secret check, forgetting all of them when the cache is full.
    fn remember_verified(&self, agent_id: &str, secret_sha256: [u8; 32], phc: String) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if VERIFIED_SECRETS_MAX <= verified.len() {
            verified.clear();
        }
        verified.insert(agent_id.to_string(), (secret_sha256, phc));
    }

    /// A human's session access token: a Warrant token for this cluster's own audience, issued
    /// with a human session and still in force.
    fn authenticate_session_token(
        &self,
        token: &str,
        state: &(dyn StateRead + Sync),
    ) -> Result<Caller, ApiError> {
        let expect = Expectations {
            issuer: &self.issuer,
            audience: Some(&self.issuer),
            now_unix_s: now_unix_s(),
            leeway_s: self.clock_leeway_s,
        };
        let checked = match crate::tokens::check(state, token, &expect)? {
            Ok(checked) => checked,
            Err(invalid) => {
                return Err(unauthenticated(
                    Reason::CredentialInvalid,
                    format!(
                        "the session token is not valid ({}): {}",
                        invalid.reason.as_str_name(),
                        invalid.message
                    ),
                ));
            }
        };
        let issued = checked.issued();
        if !(issued.subject_kind == log::PrincipalKind::Human as i32
            && issued.agent_id.is_empty()
            && !issued.session_id.is_empty())
        {
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                "the bearer token is not a human's session token",
            ));
        }
        Ok(Caller::Human {
            human_id: issued.subject,
            session_id: issued.session_id,
            assertion: None,
        })
    }

    /// An RFC 7523 client assertion, signed by a key registered for the agent it names.
    pub fn authenticate_assertion(
        &self,
        value: &str,
        state: &(dyn StateRead + Sync),
    ) -> Result<Caller, ApiError> {
        let refused = |error: assertion::AssertionError| {
            unauthenticated(Reason::Credential(error.reason()), error.to_string())
        };
        let peek = assertion::peek(value).map_err(refused)?;
        let unknown = || {
            unauthenticated(
                Reason::CredentialInvalid,
                "the assertion names an unknown agent, or a key not registered for it",
            )
        };
        if warrant_identity::limits::validate_id("iss", &peek.agent_id).is_err() {
            return Err(unknown());
        }
        let agent = query::agent(state, &peek.agent_id)
            .map_err(|e| ApiError::internal(format!("read agent: {e}")))?
            .ok_or_else(unknown)?;
        let public_key: [u8; 32] = agent
            .credentials
            .iter()
            .filter(|c| c.credential_id == peek.key_id)
            .find_map(|c| match &c.kind {
                Some(log::credential::Kind::Ed25519PublicKey(key)) => {
                    key.as_slice().try_into().ok()
                }
                _ => None,
            })
            .ok_or_else(unknown)?;
        if agent.status != state::Status::Active as i32 {
            return Err(ApiError::new(
                Code::PermissionDenied,
                Reason::AgentDisabled,
                format!("agent {} is disabled", agent.agent_id),
            ));
        }
        let audiences: Vec<&str> = self
            .assertion_audiences
            .iter()
            .map(String::as_str)
            .collect();
        let expect = AssertionExpectations {
            audiences: &audiences,
            now_unix_s: now_unix_s(),
            leeway_s: self.clock_leeway_s,
        };
        let verified = assertion::verify(value, &public_key, &expect).map_err(refused)?;
        // Apply is the authority on replays; this early look only spares the log a doomed write.
        let spent = query::assertion_spent(state, &verified.agent_id, &verified.jti)
            .map_err(|e| ApiError::internal(format!("read assertion: {e}")))?;
        if spent {
            return Err(unauthenticated(
                Reason::AssertionReplayed,
                format!(
                    "client assertion {} was already used; allowed: a new assertion (new jti) per request",
                    verified.jti
                ),
            ));
        }
        Ok(Caller::Agent {
            agent_id: verified.agent_id.clone(),
            method: log::AuthMethod::PrivateKeyJwt,
            credential_id: verified.key_id.clone(),
            assertion: Some(log::AssertionUse {
                principal_id: verified.agent_id,
                jti: verified.jti,
                expires_at_unix_s: verified.expires_at_unix_s,
            }),
        })
    }
}

pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

/// Whether `secret` matches the argon2id PHC string. Slow by design: call it off the runtime.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// The text of a `Basic` credential.
fn decode_basic(encoded: &str) -> Result<String, ApiError> {
    let decoded = STANDARD.decode(encoded).map_err(|_| {
        unauthenticated(
            Reason::CredentialInvalid,
            "Basic credential is not valid base64",
        )
    })?;
    String::from_utf8(decoded)
        .map_err(|_| unauthenticated(Reason::CredentialInvalid, "Basic credential is not UTF-8"))
}

fn unauthenticated(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::Unauthenticated, reason, message)
}
