//! The field rules of every command kind: one check per kind, called by the API before it
//! proposes a command and by `apply` when it decides one.
//!
//! A check reads only the command (and, for a delegation's expiry, the time it is judged at): no
//! state, so the edge and apply reach the same verdict on the same bytes. Rules that need state
//! (does the parent allow this depth?) stay in apply. The log is an input too: apply runs these
//! again because a replica must reach the same verdict on every entry ever committed, whoever
//! proposed it.

use std::collections::{BTreeMap, BTreeSet};

use warrant_proto::log::{
    self, AuthMethod, EntityKind, PrincipalKind, SigningAlgorithm,
    caller_attribute::Value as AttributeValue, command::Kind as CommandKind,
    credential::Kind as CredentialKind,
};

use crate::limits::{
    self, ACCESS_MESSAGE_LEN_MAX, ATTRIBUTE_STRING_LEN_MAX, AUDIENCES_PER_DELEGATION_MAX,
    AUTH_FAILURE_REASON_LEN_MAX, AUTH_FAILURES_PER_RECORD_MAX, BUDGET_UNITS_MAX,
    CALLER_ATTRIBUTES_MAX, CREDENTIAL_CHANGES_MAX, CREDENTIALS_PER_AGENT_MAX, DELEGATION_DEPTH_MAX,
    DELEGATION_TTL_SECONDS_MAX, DESCRIPTION_LEN_MAX, DEVICE_NAME_LEN_MAX, DISPLAY_NAME_LEN_MAX,
    ED25519_PUBLIC_KEY_LEN, EMAIL_LEN_MAX, FieldError, HUMANS_PER_IMPORT_MAX, PLATFORM_LEN_MAX,
    REASON_LEN_MAX, RECEIPTS_PER_RECORD_MAX, SCOPES_PER_TOKEN_MAX, SESSION_TTL_SECONDS_MAX,
    TASK_LEN_MAX, TOKEN_TTL_SECONDS_MAX, TOOLS_PER_SERVICE_MAX,
};

/// Checks the fields of one command kind, judged at `now_unix_s` (only a delegation's expiry
/// depends on it).
pub fn command(kind: &CommandKind, now_unix_s: u64) -> Result<(), FieldError> {
    match kind {
        CommandKind::RegisterHuman(command) => register_human(command),
        CommandKind::RegisterAgent(command) => register_agent(command),
        CommandKind::RegisterService(command) => register_service(command),
        CommandKind::RegisterOperator(command) => register_operator(command),
        CommandKind::IssueToken(command) => issue_token(command),
        CommandKind::RevokeToken(command) => revoke_token(command),
        CommandKind::PublishSigningKey(command) => publish_signing_key(command),
        CommandKind::UpdateHuman(command) => update_human(command),
        CommandKind::UpdateAgent(command) => update_agent(command),
        CommandKind::UpdateService(command) => update_service(command),
        CommandKind::RegisterDevice(command) => register_device(command),
        CommandKind::UpdateDevice(command) => update_device(command),
        CommandKind::BindAgentDevice(command) => bind_agent_device(command),
        CommandKind::SetStatus(command) => set_status(command),
        CommandKind::ChangeCredentials(command) => change_credentials(command),
        CommandKind::StartSession(command) => start_session(command),
        CommandKind::EndSession(command) => end_session(command),
        CommandKind::CreateDelegation(command) => create_delegation(command, now_unix_s),
        CommandKind::RevokeDelegation(command) => revoke_delegation(command),
        CommandKind::RetireSigningKey(command) => retire_signing_key(command),
        CommandKind::RegisterHumans(command) => register_humans(command),
        CommandKind::MarkSigningKeyCompromised(command) => mark_signing_key_compromised(command),
        CommandKind::Authorize(command) => authorize(command),
        CommandKind::RecordAccessDecisions(command) => record_access_decisions(command),
        CommandKind::RecordAuthFailures(command) => record_auth_failures(command),
        CommandKind::RecordAuditExportProgress(_) => Ok(()),
        CommandKind::PublishPolicy(command) => publish_policy(command),
        CommandKind::ActivatePolicy(command) => activate_policy(command),
        CommandKind::RollbackPolicy(command) => rollback_policy(command),
        CommandKind::SetShadowPolicy(command) => set_shadow_policy(command),
    }
}

pub fn register_human(command: &log::RegisterHuman) -> Result<(), FieldError> {
    limits::validate_id("human_id", &command.human_id)?;
    limits::validate_text("display_name", &command.display_name, DISPLAY_NAME_LEN_MAX)?;
    limits::validate_text("email", &command.email, EMAIL_LEN_MAX)?;
    if let Some(federated) = &command.federated {
        federated_identity(federated)?;
    }
    if !command.password_argon2id.is_empty() {
        limits::validate_argon2id_phc("password_argon2id", &command.password_argon2id)?;
    }
    Ok(())
}

/// Checks an import: 1 to [`HUMANS_PER_IMPORT_MAX`] humans, each passing [`register_human`]
/// (its fields named `humans[i].…`), no id and no upstream identity twice.
pub fn register_humans(command: &log::RegisterHumans) -> Result<(), FieldError> {
    let humans = &command.humans;
    if humans.is_empty() || HUMANS_PER_IMPORT_MAX < humans.len() {
        return Err(FieldError::new(
            "humans",
            format!("has {} entries", humans.len()),
            format!("1 to {HUMANS_PER_IMPORT_MAX} humans"),
        ));
    }
    let mut human_ids = BTreeMap::new();
    let mut upstream_ids = BTreeMap::new();
    for (idx, human) in humans.iter().enumerate() {
        let item = format!("humans[{idx}]");
        register_human(human).map_err(|error| error.within(&item))?;
        if let Some(first) = human_ids.insert(human.human_id.as_str(), idx) {
            return Err(FieldError::new(
                format!("{item}.human_id"),
                format!("repeats humans[{first}].human_id {}", human.human_id),
                "human ids unique within the request",
            ));
        }
        if let Some(federated) = &human.federated
            && let Some(first) =
                upstream_ids.insert((federated.issuer.as_str(), federated.subject.as_str()), idx)
        {
            return Err(FieldError::new(
                format!("{item}.federated"),
                format!(
                    "repeats humans[{first}].federated (subject {} of issuer {})",
                    federated.subject, federated.issuer
                ),
                "each upstream identity once within the request",
            ));
        }
    }
    Ok(())
}

pub fn update_human(command: &log::UpdateHuman) -> Result<(), FieldError> {
    limits::validate_id("human_id", &command.human_id)?;
    limits::validate_text("display_name", &command.display_name, DISPLAY_NAME_LEN_MAX)?;
    limits::validate_text("email", &command.email, EMAIL_LEN_MAX)
}

pub fn register_agent(command: &log::RegisterAgent) -> Result<(), FieldError> {
    limits::validate_id("agent_id", &command.agent_id)?;
    limits::validate_id("owner_human_id", &command.owner_human_id)?;
    agent_profile(&command.kind, &command.description)?;
    credentials(&command.credentials)
}

pub fn update_agent(command: &log::UpdateAgent) -> Result<(), FieldError> {
    limits::validate_id("agent_id", &command.agent_id)?;
    agent_profile(&command.kind, &command.description)
}

fn agent_profile(kind: &str, description: &str) -> Result<(), FieldError> {
    limits::validate_name("kind", kind, limits::AGENT_KIND_LEN_MAX)?;
    limits::validate_text("description", description, DESCRIPTION_LEN_MAX)
}

pub fn register_operator(command: &log::RegisterOperator) -> Result<(), FieldError> {
    limits::validate_operator_id("operator_id", &command.operator_id)?;
    match log::OperatorRole::try_from(command.role) {
        Ok(log::OperatorRole::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                "role",
                format!("is {}", command.role),
                "OPERATOR_ROLE_ADMIN, OPERATOR_ROLE_OPERATOR or OPERATOR_ROLE_AUDITOR",
            ));
        }
        Ok(_) => {}
    }
    limits::validate_text(
        "display_name",
        &command.display_name,
        limits::DISPLAY_NAME_LEN_MAX,
    )
}

pub fn register_service(command: &log::RegisterService) -> Result<(), FieldError> {
    limits::validate_id("service_id", &command.service_id)?;
    limits::validate_audience("audience", &command.audience)?;
    tools(&command.tools)
}

pub fn update_service(command: &log::UpdateService) -> Result<(), FieldError> {
    limits::validate_id("service_id", &command.service_id)?;
    tools(&command.tools)
}

pub fn register_device(command: &log::RegisterDevice) -> Result<(), FieldError> {
    limits::validate_id("device_id", &command.device_id)?;
    limits::validate_id("owner_human_id", &command.owner_human_id)?;
    device_profile(&command.name, &command.platform)
}

pub fn update_device(command: &log::UpdateDevice) -> Result<(), FieldError> {
    limits::validate_id("device_id", &command.device_id)?;
    device_profile(&command.name, &command.platform)
}

fn device_profile(name: &str, platform: &str) -> Result<(), FieldError> {
    limits::validate_text("name", name, DEVICE_NAME_LEN_MAX)?;
    limits::validate_text("platform", platform, PLATFORM_LEN_MAX)
}

pub fn bind_agent_device(command: &log::BindAgentDevice) -> Result<(), FieldError> {
    limits::validate_id("agent_id", &command.agent_id)?;
    optional_id("device_id", &command.device_id)
}

pub fn set_status(command: &log::SetStatus) -> Result<(), FieldError> {
    limits::validate_id("id", &command.id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)?;
    match EntityKind::try_from(command.entity) {
        Ok(EntityKind::Unspecified) | Err(_) => Err(FieldError::new(
            "entity",
            format!("is {}", command.entity),
            "human, agent, service, device or operator",
        )),
        Ok(_) => Ok(()),
    }
}

pub fn change_credentials(command: &log::ChangeCredentials) -> Result<(), FieldError> {
    limits::validate_id("agent_id", &command.agent_id)?;
    if command.add.is_empty() && command.remove.is_empty() {
        return Err(FieldError::new(
            "add",
            "and remove are both empty",
            "at least one credential to add or remove",
        ));
    }
    for (field, len) in [("add", command.add.len()), ("remove", command.remove.len())] {
        if CREDENTIAL_CHANGES_MAX < len {
            return Err(FieldError::new(
                field,
                format!("has {len} entries"),
                format!("at most {CREDENTIAL_CHANGES_MAX}"),
            ));
        }
    }
    for (idx, added) in command.add.iter().enumerate() {
        credential(&format!("add[{idx}]"), added)?;
    }
    for (idx, credential_id) in command.remove.iter().enumerate() {
        limits::validate_id(&format!("remove[{idx}]"), credential_id)?;
    }
    Ok(())
}

/// Checks an agent's credential list: at most [`CREDENTIALS_PER_AGENT_MAX`], ids unique, each
/// one well formed.
pub fn credentials(credentials: &[log::Credential]) -> Result<(), FieldError> {
    if CREDENTIALS_PER_AGENT_MAX < credentials.len() {
        return Err(FieldError::new(
            "credentials",
            format!("has {} entries", credentials.len()),
            format!("at most {CREDENTIALS_PER_AGENT_MAX}"),
        ));
    }
    let mut credential_ids = BTreeSet::new();
    for (idx, each) in credentials.iter().enumerate() {
        if !credential_ids.insert(each.credential_id.as_str()) {
            return Err(FieldError::new(
                format!("credentials[{idx}].credential_id"),
                format!("repeats {}", each.credential_id),
                "credential ids unique within the agent",
            ));
        }
        credential(&format!("credentials[{idx}]"), each)?;
    }
    Ok(())
}

/// Checks one credential's shape, named `field`: an id, and either an argon2id hash or an
/// Ed25519 key.
pub fn credential(field: &str, credential: &log::Credential) -> Result<(), FieldError> {
    limits::validate_id(&format!("{field}.credential_id"), &credential.credential_id)?;
    match &credential.kind {
        Some(CredentialKind::ClientSecretArgon2id(phc)) => {
            limits::validate_argon2id_phc(&format!("{field}.client_secret_argon2id"), phc)
        }
        Some(CredentialKind::Ed25519PublicKey(key)) => {
            ed25519_public_key(&format!("{field}.ed25519_public_key"), key)
        }
        None => Err(FieldError::new(
            format!("{field}.kind"),
            "is missing",
            "client_secret_argon2id or ed25519_public_key",
        )),
    }
}

fn ed25519_public_key(field: &str, key: &[u8]) -> Result<(), FieldError> {
    if key.len() == ED25519_PUBLIC_KEY_LEN {
        return Ok(());
    }
    Err(FieldError::new(
        field,
        format!("is {} bytes long", key.len()),
        format!("exactly {ED25519_PUBLIC_KEY_LEN} bytes (an Ed25519 public key)"),
    ))
}

/// Checks an upstream identity: an issuer URL and the subject it names the human by.
pub fn federated_identity(federated: &log::FederatedIdentity) -> Result<(), FieldError> {
    limits::validate_opaque(
        "federated.issuer",
        &federated.issuer,
        limits::ISSUER_LEN_MAX,
    )?;
    limits::validate_opaque(
        "federated.subject",
        &federated.subject,
        limits::FEDERATED_SUBJECT_LEN_MAX,
    )
}

/// Checks a service's tools: at most [`TOOLS_PER_SERVICE_MAX`], names unique ids, descriptions
/// bounded.
pub fn tools(tools: &[log::Tool]) -> Result<(), FieldError> {
    if TOOLS_PER_SERVICE_MAX < tools.len() {
        return Err(FieldError::new(
            "tools",
            format!("has {} entries", tools.len()),
            format!("at most {TOOLS_PER_SERVICE_MAX}"),
        ));
    }
    let mut names = BTreeSet::new();
    for (idx, tool) in tools.iter().enumerate() {
        let field = format!("tools[{idx}].name");
        limits::validate_id(&field, &tool.name)?;
        if !names.insert(tool.name.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {}", tool.name),
                "tool names unique within the service",
            ));
        }
        limits::validate_text(
            &format!("tools[{idx}].description"),
            &tool.description,
            DESCRIPTION_LEN_MAX,
        )?;
    }
    Ok(())
}

pub fn issue_token(command: &log::IssueToken) -> Result<(), FieldError> {
    limits::validate_jti("jti", &command.jti)?;
    limits::validate_id("agent_id", &command.agent_id)?;
    limits::validate_audience("audience", &command.audience)?;
    scope_list("scopes", &command.scopes, SCOPES_PER_TOKEN_MAX)?;
    ttl_seconds(command.ttl_seconds, TOKEN_TTL_SECONDS_MAX)?;
    limits::validate_key_id("key_id", &command.key_id)?;
    optional_id("delegation_id", &command.delegation_id)?;
    optional_id("session_id", &command.session_id)?;
    if command.subject_jti.is_empty() {
        return Ok(());
    }
    limits::validate_jti("subject_jti", &command.subject_jti)?;
    if command.delegation_id.is_empty() {
        return Err(FieldError::new(
            "delegation_id",
            "is empty in a token exchange",
            "the delegation the actor acts under",
        ));
    }
    if !command.session_id.is_empty() {
        return Err(FieldError::new(
            "session_id",
            "is set in a token exchange",
            "empty: an exchanged token keeps the subject token's session",
        ));
    }
    Ok(())
}

pub fn revoke_token(command: &log::RevokeToken) -> Result<(), FieldError> {
    limits::validate_jti("jti", &command.jti)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)
}

/// Checks a list of scopes (tool names) named `field`: 1 to `len_max` unique ids.
pub fn scope_list(field: &str, scopes: &[String], len_max: usize) -> Result<(), FieldError> {
    if scopes.is_empty() || len_max < scopes.len() {
        return Err(FieldError::new(
            field,
            format!("has {} entries", scopes.len()),
            format!("1 to {len_max} tool names"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, scope) in scopes.iter().enumerate() {
        let item = format!("{field}[{idx}]");
        limits::validate_id(&item, scope)?;
        if !seen.insert(scope.as_str()) {
            return Err(FieldError::new(
                item,
                format!("repeats {scope}"),
                format!("unique {field}"),
            ));
        }
    }
    Ok(())
}

pub fn start_session(command: &log::StartSession) -> Result<(), FieldError> {
    limits::validate_id("session_id", &command.session_id)?;
    limits::validate_id("principal_id", &command.principal_id)?;
    optional_id("device_id", &command.device_id)?;
    ttl_seconds(command.ttl_seconds, SESSION_TTL_SECONDS_MAX)?;
    let auth_method = AuthMethod::try_from(command.auth_method);
    if session_is_human(command)? {
        limits::validate_jti("token_jti", &command.token_jti)?;
        limits::validate_key_id("token_key_id", &command.token_key_id)?;
        limits::validate_audience("token_audience", &command.token_audience)?;
    }
    match (&command.federated, auth_method) {
        (Some(federated), Ok(AuthMethod::OidcIdToken)) => federated_identity(federated),
        (None, Ok(AuthMethod::OidcIdToken)) => Err(FieldError::new(
            "federated",
            "is missing",
            "the issuer and subject of the verified id_token",
        )),
        _ => Ok(()),
    }
}

/// Whether a session is a human's (true) or an agent's (false); an error when its principal
/// kind and auth method do not fit together.
pub fn session_is_human(command: &log::StartSession) -> Result<bool, FieldError> {
    let principal_kind = PrincipalKind::try_from(command.principal_kind);
    let auth_method = AuthMethod::try_from(command.auth_method);
    match (principal_kind, auth_method) {
        (Ok(PrincipalKind::Human), Ok(AuthMethod::OidcIdToken | AuthMethod::LocalPassword)) => {
            Ok(true)
        }
        (Ok(PrincipalKind::Agent), Ok(AuthMethod::ClientSecret | AuthMethod::PrivateKeyJwt)) => {
            Ok(false)
        }
        _ => Err(FieldError::new(
            "auth_method",
            format!(
                "is {} for principal kind {}",
                command.auth_method, command.principal_kind
            ),
            "a human with OIDC_ID_TOKEN or LOCAL_PASSWORD, or an agent with CLIENT_SECRET or \
             PRIVATE_KEY_JWT",
        )),
    }
}

pub fn end_session(command: &log::EndSession) -> Result<(), FieldError> {
    limits::validate_id("session_id", &command.session_id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)
}

/// Checks a delegation judged at `now_unix_s`: its expiry must be after then and at most
/// [`DELEGATION_TTL_SECONDS_MAX`] ahead.
pub fn create_delegation(
    command: &log::CreateDelegation,
    now_unix_s: u64,
) -> Result<(), FieldError> {
    limits::validate_id("delegation_id", &command.delegation_id)?;
    optional_id("parent_delegation_id", &command.parent_delegation_id)?;
    limits::validate_id("grantee_agent_id", &command.grantee_agent_id)?;
    scope_list("scopes", &command.scopes, SCOPES_PER_TOKEN_MAX)?;
    audiences(&command.audiences)?;
    limits::validate_text("task", &command.task, TASK_LEN_MAX)?;
    optional_id("grantor_human_id", &command.grantor_human_id)?;
    if let Some(budget) = &command.budget {
        call_budget(budget, &command.scopes)?;
    }
    let latest = now_unix_s.saturating_add(DELEGATION_TTL_SECONDS_MAX);
    if !(now_unix_s < command.expires_at_unix_s && command.expires_at_unix_s <= latest) {
        return Err(FieldError::new(
            "expires_at_unix_s",
            format!("is {} (now {now_unix_s})", command.expires_at_unix_s),
            format!(
                "a time after now and at most {DELEGATION_TTL_SECONDS_MAX} s ahead (up to {latest})"
            ),
        ));
    }
    if !(1 <= command.max_depth && command.max_depth <= DELEGATION_DEPTH_MAX) {
        return Err(FieldError::new(
            "max_depth",
            format!("is {}", command.max_depth),
            format!("1 to {DELEGATION_DEPTH_MAX}"),
        ));
    }
    Ok(())
}

/// Checks a delegation's call budget: limits 1 to [`BUDGET_UNITS_MAX`] (a total of 0 means no
/// total), tools in name order, each once and each one of the delegation's `scopes`.
pub fn call_budget(budget: &log::CallBudget, scopes: &[String]) -> Result<(), FieldError> {
    let units = || format!("1 to {BUDGET_UNITS_MAX}");
    if BUDGET_UNITS_MAX < budget.total {
        return Err(FieldError::new(
            "budget.total",
            format!("is {}", budget.total),
            format!("0 (no total) or {}", units()),
        ));
    }
    if SCOPES_PER_TOKEN_MAX < budget.tools.len() {
        return Err(FieldError::new(
            "budget.tools",
            format!("has {} entries", budget.tools.len()),
            format!("at most {SCOPES_PER_TOKEN_MAX}"),
        ));
    }
    let mut previous: Option<&str> = None;
    for (idx, each) in budget.tools.iter().enumerate() {
        let field = format!("budget.tools[{idx}]");
        if !scopes.contains(&each.tool) {
            return Err(FieldError::new(
                format!("{field}.tool"),
                format!("is {}, not one of the scopes", each.tool),
                format!("one of {}", scopes.join(" ")),
            ));
        }
        if previous.is_some_and(|it| each.tool.as_str() <= it) {
            return Err(FieldError::new(
                format!("{field}.tool"),
                format!("is {} after {}", each.tool, previous.unwrap_or_default()),
                "tools in name order, each once",
            ));
        }
        if !(1..=BUDGET_UNITS_MAX).contains(&each.limit) {
            return Err(FieldError::new(
                format!("{field}.limit"),
                format!("is {}", each.limit),
                units(),
            ));
        }
        previous = Some(&each.tool);
    }
    Ok(())
}

/// Checks an Authorize: either a verified token's jti or the reason the API node found it
/// invalid, the service and tool, and the caller attributes.
pub fn authorize(command: &log::Authorize) -> Result<(), FieldError> {
    // A token found invalid at the edge may have no jti to name.
    if command.token_invalid_reason == 0 || !command.token_jti.is_empty() {
        limits::validate_jti("token_jti", &command.token_jti)?;
    }
    limits::validate_text(
        "token_invalid_message",
        &command.token_invalid_message,
        ACCESS_MESSAGE_LEN_MAX,
    )?;
    limits::validate_id("service_id", &command.service_id)?;
    limits::validate_id("tool", &command.tool)?;
    caller_attributes(&command.attributes)
}

/// Checks caller attributes: at most [`CALLER_ATTRIBUTES_MAX`], names Cedar identifiers and
/// unique (so their canonical order is total), each with a value, strings up to
/// [`ATTRIBUTE_STRING_LEN_MAX`] bytes.
pub fn caller_attributes(attributes: &[log::CallerAttribute]) -> Result<(), FieldError> {
    if CALLER_ATTRIBUTES_MAX < attributes.len() {
        return Err(FieldError::new(
            "attributes",
            format!("has {} entries", attributes.len()),
            format!("at most {CALLER_ATTRIBUTES_MAX}"),
        ));
    }
    let mut names = BTreeSet::new();
    for (idx, attribute) in attributes.iter().enumerate() {
        let field = format!("attributes[{idx}]");
        limits::validate_attribute_name(&format!("{field}.name"), &attribute.name)?;
        if !names.insert(attribute.name.as_str()) {
            return Err(FieldError::new(
                format!("{field}.name"),
                format!("repeats {}", attribute.name),
                "attribute names unique within the request",
            ));
        }
        match &attribute.value {
            None => {
                return Err(FieldError::new(
                    format!("{field}.value"),
                    "is missing",
                    "a string, long or bool value",
                ));
            }
            Some(AttributeValue::StringValue(value)) => limits::validate_text(
                &format!("{field}.string_value"),
                value,
                ATTRIBUTE_STRING_LEN_MAX,
            )?,
            Some(AttributeValue::LongValue(_) | AttributeValue::BoolValue(_)) => {}
        }
    }
    Ok(())
}

/// Checks a batch of ASYNC receipts: 1 to [`RECEIPTS_PER_RECORD_MAX`]. The receipts themselves
/// are recorded as the serving node decided them: apply never re-decides nor drops one.
pub fn record_access_decisions(command: &log::RecordAccessDecisions) -> Result<(), FieldError> {
    let len = command.decisions.len();
    if len == 0 || RECEIPTS_PER_RECORD_MAX < len {
        return Err(FieldError::new(
            "decisions",
            format!("has {len} entries"),
            format!("1 to {RECEIPTS_PER_RECORD_MAX} receipts"),
        ));
    }
    Ok(())
}

/// Checks a batch of auth-failure aggregates: 1 to [`AUTH_FAILURES_PER_RECORD_MAX`], each with a
/// bounded claimed id and reason code, a count of at least one, and its first time no later
/// than its last.
pub fn record_auth_failures(command: &log::RecordAuthFailures) -> Result<(), FieldError> {
    let len = command.failures.len();
    if len == 0 || AUTH_FAILURES_PER_RECORD_MAX < len {
        return Err(FieldError::new(
            "failures",
            format!("has {len} entries"),
            format!("1 to {AUTH_FAILURES_PER_RECORD_MAX} entries"),
        ));
    }
    for (idx, entry) in command.failures.iter().enumerate() {
        let field = format!("failures[{idx}]");
        if PrincipalKind::try_from(entry.claimed_kind).is_err() {
            return Err(FieldError::new(
                format!("{field}.claimed_kind"),
                format!("is {}", entry.claimed_kind),
                "a PrincipalKind value",
            ));
        }
        limits::validate_text(
            &format!("{field}.claimed_id"),
            &entry.claimed_id,
            limits::ACTOR_ID_LEN_MAX,
        )?;
        limits::validate_name(
            &format!("{field}.reason"),
            &entry.reason,
            AUTH_FAILURE_REASON_LEN_MAX,
        )?;
        if entry.count == 0 || entry.last_unix_ms < entry.first_unix_ms {
            return Err(FieldError::new(
                format!("{field}.count"),
                format!(
                    "is {} from {} to {}",
                    entry.count, entry.first_unix_ms, entry.last_unix_ms
                ),
                "at least 1, with first_unix_ms no later than last_unix_ms",
            ));
        }
    }
    Ok(())
}

fn audiences(audiences: &[String]) -> Result<(), FieldError> {
    if audiences.is_empty() || AUDIENCES_PER_DELEGATION_MAX < audiences.len() {
        return Err(FieldError::new(
            "audiences",
            format!("has {} entries", audiences.len()),
            format!("1 to {AUDIENCES_PER_DELEGATION_MAX} service audiences"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, audience) in audiences.iter().enumerate() {
        let field = format!("audiences[{idx}]");
        limits::validate_audience(&field, audience)?;
        if !seen.insert(audience.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {audience}"),
                "unique audiences",
            ));
        }
    }
    Ok(())
}

pub fn revoke_delegation(command: &log::RevokeDelegation) -> Result<(), FieldError> {
    limits::validate_id("delegation_id", &command.delegation_id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)
}

pub fn publish_signing_key(command: &log::PublishSigningKey) -> Result<(), FieldError> {
    limits::validate_key_id("key_id", &command.key_id)?;
    if command.algorithm != SigningAlgorithm::Ed25519 as i32 {
        let algorithm = SigningAlgorithm::try_from(command.algorithm)
            .map(|it| it.as_str_name().to_owned())
            .unwrap_or_else(|_| command.algorithm.to_string());
        return Err(FieldError::new(
            "algorithm",
            format!("is {algorithm}"),
            SigningAlgorithm::Ed25519.as_str_name(),
        ));
    }
    ed25519_public_key("public_key", &command.public_key)
}

pub fn retire_signing_key(command: &log::RetireSigningKey) -> Result<(), FieldError> {
    limits::validate_key_id("key_id", &command.key_id)
}

pub fn mark_signing_key_compromised(
    command: &log::MarkSigningKeyCompromised,
) -> Result<(), FieldError> {
    limits::validate_key_id("key_id", &command.key_id)?;
    limits::validate_text("reason", &command.reason, REASON_LEN_MAX)
}

/// An id that may be left empty; when given, it follows the id rules.
fn optional_id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Ok(());
    }
    limits::validate_id(field, value)
}

/// A lifetime in seconds: 1 to `max`.
fn ttl_seconds(ttl_seconds: u32, max: u32) -> Result<(), FieldError> {
    if 1 <= ttl_seconds && ttl_seconds <= max {
        return Ok(());
    }
    Err(FieldError::new(
        "ttl_seconds",
        format!("is {ttl_seconds}"),
        format!("1 to {max}"),
    ))
}

/// Checks a publication's fields: the description and the declared attributes
/// ([`crate::policy::check_attributes`]). The text itself is judged by `policy::validate` (size,
/// syntax, schema), whose errors carry positions and the reason POLICY_INVALID.
pub fn publish_policy(command: &log::PublishPolicy) -> Result<(), FieldError> {
    limits::validate_text(
        "description",
        &command.description,
        limits::POLICY_DESCRIPTION_LEN_MAX,
    )?;
    crate::policy::check_attributes(&command.attributes)
}

pub fn activate_policy(command: &log::ActivatePolicy) -> Result<(), FieldError> {
    policy_version("version", command.version)
}

/// Nothing to check: a rollback names no version.
pub fn rollback_policy(_command: &log::RollbackPolicy) -> Result<(), FieldError> {
    Ok(())
}

/// Any version, or 0 to clear the shadow.
pub fn set_shadow_policy(_command: &log::SetShadowPolicy) -> Result<(), FieldError> {
    Ok(())
}

/// A policy version number: versions start at 1.
fn policy_version(field: &str, version: u32) -> Result<(), FieldError> {
    if version == 0 {
        return Err(FieldError::new(
            field,
            "is 0",
            "a published version, numbered from 1",
        ));
    }
    Ok(())
}
