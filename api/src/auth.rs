//! Caller authentication.
//!
//! - Admins present the bootstrap admin token from the node's config as `Bearer <token>`.
//! - Humans present their session access token as `Bearer <jwt>`: a Warrant token whose audience
//!   is this cluster's issuer, whose session is in force.
//! - Agents present `Basic base64(agent_id[/credential_id]:client_secret)`; the secret is checked
//!   against the argon2id hash of one credential of the agent (see [`basic`]). Argon2 is
//!   deliberately slow, so a successful check is remembered (keyed by the secret's SHA-256 and
//!   the stored hash, so a rotated credential invalidates it) in a bounded cache.
//! - Or agents present an RFC 7523 client assertion as `client-assertion: <jwt>`, signed with an
//!   Ed25519 key registered as one of their credentials (`kid` = credential id). Its `jti` is
//!   spent through the log by the command it authenticates, so it works once, cluster-wide.
//!
//! Bounded cost: a presented secret costs at most one argon2 hash, against the credential it
//! names or, for an unknown agent, a dummy hash of the same cost. Hashes run on their own pool
//! ([`pool`]), never on the threads Raft uses; attempts that cost a hash or a catch-up are
//! limited per principal and per peer address ([`failures`]). A node catches up to the leader's
//! read index only for a well-formed credential naming a principal it does not know yet.

pub mod basic;
pub mod failure_log;
pub mod failures;
pub mod pool;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::IpAddr, sync::Mutex, time::Instant};

use argon2::{Argon2, PasswordHasher, password_hash::SaltString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Code, metadata::MetadataMap};
use warrant_identity::{StateRead, query};
use warrant_proto::{
    log,
    state::{self, AgentRow},
};

use warrant_token::{
    assertion::{self, AssertionExpectations},
    jwt::Expectations,
};

use crate::{
    error::{ApiError, Reason},
    limits::{
        ARGON2_QUEUE_MAX, ARGON2_THREADS_MAX, ARGON2_WAIT_MAX, AUTH_FAILURE_KEYS_MAX,
        AUTH_FAILURE_WINDOW, AUTH_FAILURES_PER_ADDRESS_MAX, AUTH_FAILURES_PER_PRINCIPAL_MAX,
    },
    storage::storage,
};
use basic::BasicCredential;
use failure_log::{Claimed, FailureLog};
use failures::{FailureLimits, Failures};
use pool::{HashPool, PoolConfig, PoolError};

/// The metadata entry carrying an RFC 7523 client assertion.
pub const CLIENT_ASSERTION_METADATA: &str = "client-assertion";

/// Cached successful secret checks, at most this many agents.
pub const VERIFIED_SECRETS_MAX: usize = 10_000;
/// The longest `authorization` value parsed; longer ones are refused before decoding.
pub const AUTHORIZATION_LEN_MAX: usize = 1024;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The bootstrap admin token: accepted only until the first operator is registered.
    Admin,
    /// A named operator, authenticated by its client certificate, with its row's role.
    Operator {
        operator_id: String,
        role: log::OperatorRole,
    },
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
            Caller::Admin | Caller::Operator { .. } => return None,
            Caller::Human { session_id, .. } if session_id.is_empty() => return None,
            Caller::Human { session_id, .. } => Kind::SessionId(session_id.clone()),
            Caller::Agent { credential_id, .. } => Kind::CredentialId(credential_id.clone()),
        };
        Some(log::CallerCredential { kind: Some(kind) })
    }

    pub fn actor(&self) -> log::Actor {
        let (kind, id) = match self {
            Caller::Admin => (log::PrincipalKind::Admin, "admin"),
            Caller::Operator { operator_id, .. } => {
                (log::PrincipalKind::Operator, operator_id.as_str())
            }
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
            Caller::Admin | Caller::Operator { .. } => None,
        }
    }

    /// The role an operator caller has; the bootstrap admin counts as an admin.
    fn role(&self) -> Option<log::OperatorRole> {
        match self {
            Caller::Admin => Some(log::OperatorRole::Admin),
            Caller::Operator { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// Registration, status, revocation: the admin role.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_role(&[log::OperatorRole::Admin], "an admin")
    }

    /// Running the cluster (membership, keys, compaction): admins and operators.
    pub fn require_operations(&self) -> Result<(), ApiError> {
        use log::OperatorRole::{Admin, Operator};
        self.require_role(&[Admin, Operator], "an admin or an operator")
    }

    /// Reading the audit trail, digests and projections: any operator role.
    pub fn require_auditor(&self) -> Result<(), ApiError> {
        use log::OperatorRole::{Admin, Auditor, Operator};
        self.require_role(
            &[Admin, Operator, Auditor],
            "an admin, an operator or an auditor",
        )
    }

    fn require_role(&self, roles: &[log::OperatorRole], who: &str) -> Result<(), ApiError> {
        match self.role() {
            Some(role) if roles.contains(&role) => Ok(()),
            _ => Err(ApiError::new(
                Code::PermissionDenied,
                Reason::PermissionDenied,
                format!("this RPC is for {who}"),
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

/// What authentication may spend: the argon2 pool and the failure limits.
#[derive(Clone, Copy, Debug)]
pub struct AuthCost {
    pub pool: PoolConfig,
    pub failures: FailureLimits,
}

impl AuthCost {
    /// The named limits of [`crate::limits`], the pool sized to half this machine's cores.
    pub fn from_limits() -> AuthCost {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        AuthCost {
            pool: PoolConfig {
                threads: (cores / 2).clamp(1, ARGON2_THREADS_MAX),
                queue_max: ARGON2_QUEUE_MAX,
                wait_max: ARGON2_WAIT_MAX,
            },
            failures: FailureLimits {
                per_principal_max: AUTH_FAILURES_PER_PRINCIPAL_MAX,
                per_address_max: AUTH_FAILURES_PER_ADDRESS_MAX,
                window: AUTH_FAILURE_WINDOW,
                keys_max: AUTH_FAILURE_KEYS_MAX,
            },
        }
    }
}

/// What authentication reads: this node's applied state, and a catch-up to the leader's read
/// index for a credential that names a principal the state does not hold yet (registered a
/// moment ago through another node).
pub trait AuthSource: Sync {
    type State: StateRead + Sync;

    fn state(&self) -> Self::State;

    /// Catches up; whether that applied anything new.
    fn catch_up(&self) -> impl Future<Output = bool> + Send;
}

/// What one look at the state found.
enum Lookup<T> {
    Found(T),
    /// A well-formed credential naming a principal (or key, or token) this state does not hold:
    /// the one case where catching up can help. The error is the answer if it does not.
    Unknown(ApiError),
}

/// A secret check that succeeded: the secret's SHA-256 and the PHC string it matched.
struct Verified {
    secret_sha256: [u8; 32],
    phc: String,
}

pub struct Authenticator {
    admin_token_sha256: [u8; 32],
    issuer: String,
    assertion_audiences: Vec<String>,
    clock_leeway_s: u64,
    pool: HashPool,
    failures: Failures,
    /// Every refused authentication, aggregated for the log (never the credential).
    failure_log: FailureLog,
    /// The last secret verified per (agent id, credential id).
    verified: Mutex<BTreeMap<(String, String), Verified>>,
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Self {
        Self::with_cost(config, AuthCost::from_limits())
    }

    pub fn with_cost(config: AuthConfig, cost: AuthCost) -> Self {
        let mut assertion_audiences = vec![config.issuer.clone()];
        assertion_audiences.extend(config.assertion_audiences);
        Authenticator {
            admin_token_sha256: Sha256::digest(config.admin_token.as_bytes()).into(),
            issuer: config.issuer,
            assertion_audiences,
            clock_leeway_s: config.clock_leeway_s,
            pool: HashPool::new(cost.pool),
            failures: Failures::new(cost.failures),
            failure_log: FailureLog::default(),
            verified: Mutex::default(),
        }
    }

    /// The argon2 pool, for its counter.
    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// The refused authentications counted since the last flush.
    pub fn failure_log(&self) -> &FailureLog {
        &self.failure_log
    }

    /// Authenticates the caller of one request, from the peer [`crate::peer::current`] names.
    /// Every refusal is counted in the failure log, under the principal the credential claimed.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        source: &impl AuthSource,
    ) -> Result<Caller, ApiError> {
        let result = self.authenticate_uncounted(metadata, source).await;
        if let Err(error) = &result {
            self.failure_log
                .record_error(&claimed(metadata), error, now_unix_ms());
        }
        result
    }

    async fn authenticate_uncounted(
        &self,
        metadata: &MetadataMap,
        source: &impl AuthSource,
    ) -> Result<Caller, ApiError> {
        let peer = crate::peer::current();
        if let Some(value) = metadata.get(CLIENT_ASSERTION_METADATA) {
            let value = value.to_str().map_err(|_| {
                unauthenticated(
                    Reason::CredentialInvalid,
                    "client-assertion metadata is not ASCII",
                )
            })?;
            return self.authenticate_assertion_from(value, source, peer).await;
        }
        if metadata.get("authorization").is_none()
            && let Some(operator) = crate::peer::operator()
        {
            let lookup = |state: &(dyn StateRead + Sync)| operator_caller(&operator.0, state);
            return self
                .with_catch_up(source, Some(&operator.0), peer, lookup)
                .await;
        }
        let value = authorization(metadata)?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(presented[..].ct_eq(&self.admin_token_sha256[..])) {
                return bootstrap_admin(&source.state());
            }
            // The admin token is opaque; anything shaped like a JWS is a session token.
            if token.split('.').count() == 3 {
                let lookup = |state: &(dyn StateRead + Sync)| self.session_caller(token, state);
                return self.with_catch_up(source, None, peer, lookup).await;
            }
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                "the bearer credential is neither the admin token nor a session token",
            ));
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            return self.authenticate_agent(encoded, source, peer).await;
        }
        Err(unauthenticated(
            Reason::CredentialInvalid,
            "unknown authorization scheme; allowed: Bearer, Basic",
        ))
    }

    /// Checks `secret` for `principal` against `phc`, or against a dummy of the same cost when
    /// there is none (an unknown principal, or one without a secret), so both cost one hash.
    /// The attempt counts against the failure limits unless it matches.
    pub async fn check_secret(
        &self,
        principal: &str,
        secret: &str,
        phc: Option<&str>,
    ) -> Result<bool, ApiError> {
        let claimed = Claimed::new(log::PrincipalKind::Human, principal);
        let charge = self
            .failures
            .charge(Some(principal), crate::peer::current(), Instant::now())
            .inspect_err(|e| self.failure_log.record_error(&claimed, e, now_unix_ms()))?;
        let matched = match self.pool.verify(secret, phc.unwrap_or(DUMMY_PHC)).await {
            Ok(matched) => matched && phc.is_some(),
            Err(e) => {
                if let PoolError::Busy { .. } = e {
                    self.failures.forgive(charge);
                }
                return Err(busy(e));
            }
        };
        if matched {
            self.failures.forgive(charge);
        } else {
            let reason = Reason::CredentialInvalid.as_str();
            self.failure_log.record(&claimed, reason, now_unix_ms());
        }
        Ok(matched)
    }

    /// An agent's client secret: one hash against the credential it names (or a dummy), after
    /// a catch-up only if the agent is unknown here.
    async fn authenticate_agent(
        &self,
        encoded: &str,
        source: &impl AuthSource,
        peer: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let basic = BasicCredential::parse(encoded)?;
        let secret_sha256: [u8; 32] = Sha256::digest(basic.secret.as_bytes()).into();
        let mut agent = query::agent(&source.state(), &basic.agent_id).map_err(storage)?;
        // A secret verified here before costs nothing, and is never refused by the limits.
        if let Some(agent) = &agent
            && let Some((credential_id, phc)) = basic.target(agent)
            && self.verified_before(agent, &credential_id, &secret_sha256, &phc)
        {
            return agent_caller(agent, &credential_id);
        }
        let charge = self
            .failures
            .charge(Some(&basic.agent_id), peer, Instant::now())?;
        if agent.is_none() && source.catch_up().await {
            agent = query::agent(&source.state(), &basic.agent_id).map_err(storage)?;
        }
        let target = agent.as_ref().and_then(|agent| basic.target(agent));
        let phc = target.as_ref().map_or(DUMMY_PHC, |(_, phc)| phc.as_str());
        let matched = match self.pool.verify(&basic.secret, phc).await {
            Ok(matched) => matched,
            Err(e) => {
                if let PoolError::Busy { .. } = e {
                    self.failures.forgive(charge);
                }
                return Err(busy(e));
            }
        };
        // Unknown, disabled or active: a wrong secret reads the same, after the same one hash.
        let (Some(agent), Some((credential_id, phc)), true) = (agent, target, matched) else {
            return Err(unauthenticated(
                Reason::CredentialInvalid,
                "unknown agent or wrong client secret",
            ));
        };
        self.failures.forgive(charge);
        self.remember_verified(&agent, &credential_id, secret_sha256, phc);
        agent_caller(&agent, &credential_id)
    }

    /// Runs `lookup` against this node's state; if it finds the credential names something
    /// unknown here, charges the attempt (a catch-up costs a quorum round), catches up once and
    /// looks again.
    async fn with_catch_up<S: AuthSource, T>(
        &self,
        source: &S,
        principal: Option<&str>,
        peer: Option<IpAddr>,
        lookup: impl Fn(&(dyn StateRead + Sync)) -> Result<Lookup<T>, ApiError>,
    ) -> Result<T, ApiError> {
        let unknown = match lookup(&source.state())? {
            Lookup::Found(found) => return Ok(found),
            Lookup::Unknown(e) => e,
        };
        let charge = self.failures.charge(principal, peer, Instant::now())?;
        if !source.catch_up().await {
            return Err(unknown);
        }
        match lookup(&source.state())? {
            Lookup::Found(found) => {
                self.failures.forgive(charge);
                Ok(found)
            }
            Lookup::Unknown(e) => Err(e),
        }
    }

    /// Whether a secret with this SHA-256 was verified before against credential `credential_id`
    /// of the agent, which still holds it with the same PHC.
    fn verified_before(
        &self,
        agent: &AgentRow,
        credential_id: &str,
        secret_sha256: &[u8; 32],
        phc: &str,
    ) -> bool {
        let key = (agent.agent_id.clone(), credential_id.to_string());
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .is_some_and(|verified| {
                bool::from(verified.secret_sha256[..].ct_eq(&secret_sha256[..]))
                    && verified.phc == phc
            })
    }

    /// Remembers a successful secret check, forgetting all of them when the cache is full.
    fn remember_verified(
        &self,
        agent: &AgentRow,
        credential_id: &str,
        secret_sha256: [u8; 32],
        phc: String,
    ) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if VERIFIED_SECRETS_MAX <= verified.len() {
            verified.clear();
        }
        let key = (agent.agent_id.clone(), credential_id.to_string());
        verified.insert(key, Verified { secret_sha256, phc });
    }

    /// A human's session access token: a Warrant token for this cluster's own audience, issued
    /// with a human session and still in force. Unknown when its key or its issuance is not
    /// in this state: both may have been committed through another node a moment ago.
    fn session_caller(
        &self,
        token: &str,
        state: &(dyn StateRead + Sync),
    ) -> Result<Lookup<Caller>, ApiError> {
        use warrant_proto::api::TokenInvalidReason;
        let expect = Expectations {
            issuer: &self.issuer,
            audience: Some(&self.issuer),
            now_unix_s: now_unix_s(),
            leeway_s: self.clock_leeway_s,
        };
        let checked = match crate::tokens::check(state, token, &expect)? {
            Ok(checked) => checked,
            Err(invalid) => {
                let error = unauthenticated(
                    Reason::CredentialInvalid,
                    format!(
                        "the session token is not valid ({}): {}",
                        invalid.reason.as_str_name(),
                        invalid.message
                    ),
                );
                return match invalid.reason {
                    TokenInvalidReason::UnknownKey | TokenInvalidReason::UnknownToken => {
                        Ok(Lookup::Unknown(error))
                    }
                    _ => Err(error),
                };
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
        Ok(Lookup::Found(Caller::Human {
            human_id: issued.subject,
            session_id: issued.session_id,
            assertion: None,
        }))
    }

    /// An RFC 7523 client assertion, signed by a key registered for the agent it names (passed
    /// in a request body: RFC 8693's `actor_token`), from the peer [`crate::peer::current`] names.
    pub async fn authenticate_assertion(
        &self,
        value: &str,
        source: &impl AuthSource,
    ) -> Result<Caller, ApiError> {
        let peer = crate::peer::current();
        let result = self.authenticate_assertion_from(value, source, peer).await;
        if let Err(error) = &result {
            let claimed = claimed_by_assertion(value);
            self.failure_log
                .record_error(&claimed, error, now_unix_ms());
        }
        result
    }

    async fn authenticate_assertion_from(
        &self,
        value: &str,
        source: &impl AuthSource,
        peer: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let peek = assertion::peek(value).map_err(assertion_refused)?;
        if warrant_identity::limits::validate_id("iss", &peek.agent_id).is_err() {
            return Err(unknown_assertion_key());
        }
        let lookup = |state: &(dyn StateRead + Sync)| self.assertion_caller(value, &peek, state);
        self.with_catch_up(source, Some(&peek.agent_id), peer, lookup)
            .await
    }

    /// The agent a client assertion authenticates. Its signature is checked before the agent's
    /// status, so a forged assertion cannot tell a disabled agent from an active one.
    fn assertion_caller(
        &self,
        value: &str,
        peek: &assertion::AssertionClaimsPeek,
        state: &(dyn StateRead + Sync),
    ) -> Result<Lookup<Caller>, ApiError> {
        let Some(agent) = query::agent(state, &peek.agent_id).map_err(storage)? else {
            return Ok(Lookup::Unknown(unknown_assertion_key()));
        };
        let public_key: Option<[u8; 32]> = agent
            .credentials
            .iter()
            .filter(|c| c.credential_id == peek.key_id)
            .find_map(|c| match &c.kind {
                Some(log::credential::Kind::Ed25519PublicKey(key)) => {
                    key.as_slice().try_into().ok()
                }
                _ => None,
            });
        let Some(public_key) = public_key else {
            return Ok(Lookup::Unknown(unknown_assertion_key()));
        };
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
        let verified = assertion::verify(value, &public_key, &expect).map_err(assertion_refused)?;
        if agent.status != state::Status::Active as i32 {
            return Err(agent_disabled(&agent));
        }
        // Apply is the authority on replays; this early look only spares the log a doomed write.
        let spent =
            query::assertion_spent(state, &verified.agent_id, &verified.jti).map_err(storage)?;
        if spent {
            return Err(unauthenticated(
                Reason::AssertionReplayed,
                format!(
                    "client assertion {} was already used; allowed: a new assertion (new jti) per request",
                    verified.jti
                ),
            ));
        }
        Ok(Lookup::Found(Caller::Agent {
            agent_id: verified.agent_id.clone(),
            method: log::AuthMethod::PrivateKeyJwt,
            credential_id: verified.key_id.clone(),
            assertion: Some(log::AssertionUse {
                principal_id: verified.agent_id,
                jti: verified.jti,
                expires_at_unix_s: verified.expires_at_unix_s,
            }),
        }))
    }
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Who the credential in `metadata` claims to be, read without checking it, for the failure
/// log. Only the name is read, never kept with the credential.
fn claimed(metadata: &MetadataMap) -> Claimed {
    use log::PrincipalKind::{Admin, Agent, Human, Operator, Unspecified};
    if let Some(value) = metadata.get(CLIENT_ASSERTION_METADATA) {
        return value
            .to_str()
            .map_or(Claimed::unnamed(Agent), claimed_by_assertion);
    }
    let Some(value) = metadata.get("authorization") else {
        return match crate::peer::operator() {
            Some(operator) => Claimed::new(Operator, &operator.0),
            None => Claimed::unnamed(Unspecified),
        };
    };
    let value = value.to_str().unwrap_or_default();
    if AUTHORIZATION_LEN_MAX < value.len() {
        return Claimed::unnamed(Unspecified);
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        if token.split('.').count() != 3 {
            return Claimed::new(Admin, "admin");
        }
        return unverified_subject(token)
            .map_or(Claimed::unnamed(Human), |sub| Claimed::new(Human, &sub));
    }
    if let Some(encoded) = value.strip_prefix("Basic ") {
        return basic_user(encoded).map_or(Claimed::unnamed(Agent), |agent_id| {
            Claimed::new(Agent, &agent_id)
        });
    }
    Claimed::unnamed(Unspecified)
}

fn claimed_by_assertion(value: &str) -> Claimed {
    match assertion::peek(value) {
        Ok(peek) => Claimed::new(log::PrincipalKind::Agent, &peek.agent_id),
        Err(_) => Claimed::unnamed(log::PrincipalKind::Agent),
    }
}

/// The `sub` of a JWS's payload, unverified: only a name for the failure log.
fn unverified_subject(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

/// The agent id of a `Basic` credential (the user part before any credential id), unverified.
fn basic_user(encoded: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let decoded = STANDARD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, _secret) = decoded.split_once(':')?;
    let agent_id = user.split(basic::CREDENTIAL_SEPARATOR).next()?;
    Some(agent_id.to_string())
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

/// What a secret is checked against when there is no credential to check it against: an
/// argon2id hash with the parameters [`hash_secret`] uses (so it costs the same) of no secret
/// anyone knows. Its output is arbitrary bytes, so no secret matches it.
pub const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$d2FycmFudC1kdW1teS0xNg$\
                             AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// The bootstrap admin token authenticates only until the first operator is registered: from
/// then on every act names an operator. Apply refuses the bootstrap admin the same way.
fn bootstrap_admin(state: &(dyn StateRead + Sync)) -> Result<Caller, ApiError> {
    if warrant_identity::query::any_operator(state).map_err(crate::storage::storage)? {
        return Err(ApiError::new(
            Code::PermissionDenied,
            Reason::BootstrapTokenRetired,
            "the bootstrap admin token only registers the first operator, and an operator \
             exists: call as a named operator (a client certificate naming \
             <operator_id>.operator.warrant.internal)",
        ));
    }
    Ok(Caller::Admin)
}

/// Operator `operator_id`, named by the caller's client certificate, as the state holds it.
fn operator_caller(
    operator_id: &str,
    state: &(dyn StateRead + Sync),
) -> Result<Lookup<Caller>, ApiError> {
    let row =
        warrant_identity::query::operator(state, operator_id).map_err(crate::storage::storage)?;
    let Some(row) = row else {
        return Ok(Lookup::Unknown(unauthenticated(
            Reason::CredentialInvalid,
            format!("the client certificate names operator {operator_id}, who is not registered"),
        )));
    };
    if row.status == warrant_proto::state::Status::Disabled as i32 {
        return Err(unauthenticated(
            Reason::Credential("CREDENTIAL_REVOKED"),
            format!("operator {operator_id} is disabled"),
        ));
    }
    Ok(Lookup::Found(Caller::Operator {
        operator_id: operator_id.to_string(),
        role: log::OperatorRole::try_from(row.role).unwrap_or(log::OperatorRole::Unspecified),
    }))
}

/// The `authorization` value, if present, ASCII and of a length worth parsing.
fn authorization(metadata: &MetadataMap) -> Result<&str, ApiError> {
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
    Ok(value)
}

/// The agent authenticated by its credential `credential_id`, unless it is disabled. Only a
/// caller that proved it holds the credential learns that.
fn agent_caller(agent: &AgentRow, credential_id: &str) -> Result<Caller, ApiError> {
    if agent.status != state::Status::Active as i32 {
        return Err(agent_disabled(agent));
    }
    Ok(Caller::agent(&agent.agent_id, credential_id))
}

fn agent_disabled(agent: &AgentRow) -> ApiError {
    ApiError::new(
        Code::PermissionDenied,
        Reason::AgentDisabled,
        format!("agent {} is disabled", agent.agent_id),
    )
}

fn assertion_refused(error: assertion::AssertionError) -> ApiError {
    unauthenticated(Reason::Credential(error.reason()), error.to_string())
}

fn unknown_assertion_key() -> ApiError {
    unauthenticated(
        Reason::CredentialInvalid,
        "the assertion names an unknown agent, or a key not registered for it",
    )
}

/// A secret check the pool could not take or finish: the caller may retry with backoff.
fn busy(error: PoolError) -> ApiError {
    match error {
        PoolError::Stopped => ApiError::internal(format!("check the secret: {error}")),
        PoolError::Busy { .. } | PoolError::TimedOut { .. } => ApiError::new(
            Code::ResourceExhausted,
            Reason::AuthBusy,
            format!("this node is checking too many secrets: {error}; retry with backoff"),
        ),
    }
}

fn unauthenticated(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::Unauthenticated, reason, message)
}
