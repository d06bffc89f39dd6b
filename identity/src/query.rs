//! Reading the projection: the lookups `apply` decides with and the API layer answers with.
//!
//! Every row read is checked against the key it was found under (an event's seq, a row's id), so
//! a row written under the wrong key is reported as corrupt instead of being served.

use prost::Message;
use warrant_proto::{
    log,
    state::{
        AgentRow, BudgetUsageRow, DelegationRow, DeviceRow, HumanRow, OperatorRow,
        PolicyActivationRow, PolicyVersionRow, ServiceRow, SessionRow, SigningKeyRow, TokenRow,
    },
};

use crate::{
    keys,
    limits::{EVENTS_PAGE_MAX, LIST_PAGE_MAX, POLICY_VERSIONS_PAGE_MAX},
    state::{StateError, StateRead},
};

/// The seq of the last event, 0 if none.
pub fn applied_seq(state: &dyn StateRead) -> Result<u64, StateError> {
    match state.get(keys::LAST_SEQ)? {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(seq) => Ok(u64::from_be_bytes(seq)),
            Err(_) => Err(StateError::corrupt(
                keys::LAST_SEQ,
                format!("{} bytes where a u64 was expected", bytes.len()),
            )),
        },
    }
}

/// The seq through which the audit stream exporter's collector acknowledged every event, 0 if
/// nothing was exported yet (`RecordAuditExportProgress`).
pub fn audit_exported(state: &dyn StateRead) -> Result<u64, StateError> {
    match state.get(keys::AUDIT_EXPORTED)? {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(seq) => Ok(u64::from_be_bytes(seq)),
            Err(_) => Err(StateError::corrupt(
                keys::AUDIT_EXPORTED,
                format!("{} bytes where a u64 was expected", bytes.len()),
            )),
        },
    }
}

/// The human `id`, if registered.
pub fn human(state: &dyn StateRead, id: &str) -> Result<Option<HumanRow>, StateError> {
    let key = keys::human(id);
    let row: Option<HumanRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_id(&key, &row.human_id, id)?;
    }
    Ok(row)
}

/// The agent `id`, if registered.
pub fn agent(state: &dyn StateRead, id: &str) -> Result<Option<AgentRow>, StateError> {
    let key = keys::agent(id);
    let row: Option<AgentRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_id(&key, &row.agent_id, id)?;
    }
    Ok(row)
}

/// The service `id`, if registered.
pub fn operator(state: &dyn StateRead, id: &str) -> Result<Option<OperatorRow>, StateError> {
    let key = keys::operator(id);
    let row: Option<OperatorRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_id(&key, &row.operator_id, id)?;
    }
    Ok(row)
}

/// Whether any operator is registered: from then on the bootstrap admin token acts no more.
pub fn any_operator(state: &dyn StateRead) -> Result<bool, StateError> {
    Ok(!state.scan(keys::OPERATOR_PREFIX, b"", 1)?.is_empty())
}

pub fn service(state: &dyn StateRead, id: &str) -> Result<Option<ServiceRow>, StateError> {
    let key = keys::service(id);
    let row: Option<ServiceRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_id(&key, &row.service_id, id)?;
    }
    Ok(row)
}

/// The service whose audience is `audience`, if any.
pub fn service_by_audience(
    state: &dyn StateRead,
    audience: &str,
) -> Result<Option<ServiceRow>, StateError> {
    let key = keys::service_by_audience(audience);
    let Some(service_id) = state.get(&key)? else {
        return Ok(None);
    };
    let Ok(service_id) = String::from_utf8(service_id) else {
        return Err(StateError::corrupt(&key, "service id is not UTF-8"));
    };
    match service(state, &service_id)? {
        Some(row) if row.audience == audience => Ok(Some(row)),
        Some(row) => Err(StateError::corrupt(
            &key,
            format!("service {service_id} has audience {}", row.audience),
        )),
        None => Err(StateError::corrupt(
            &key,
            format!("service {service_id} does not exist"),
        )),
    }
}

/// The token `jti`, if issued.
pub fn token(state: &dyn StateRead, jti: &str) -> Result<Option<TokenRow>, StateError> {
    let key = keys::token(jti);
    let row: Option<TokenRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        let Some(issued) = &row.issued else {
            return Err(StateError::corrupt(&key, "token row without claims"));
        };
        check_id(&key, &issued.jti, jti)?;
    }
    Ok(row)
}

/// The signing key `key_id`, if published.
pub fn signing_key(
    state: &dyn StateRead,
    key_id: &str,
) -> Result<Option<SigningKeyRow>, StateError> {
    let key = keys::signing_key(key_id);
    let row: Option<SigningKeyRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_signing_key(&key, row, key_id)?;
    }
    Ok(row)
}

/// The signing keys a verifier may need: every key published and not retired, then every
/// retired key whose last token expires at or after `retired_kept_from_unix_s`; at most `limit`
/// of each. Read through the two indexes, so the cost and the bound follow the keys in force,
/// never the number of keys ever published.
pub fn signing_keys_in_force(
    state: &dyn StateRead,
    retired_kept_from_unix_s: u64,
    limit: usize,
) -> Result<Vec<SigningKeyRow>, StateError> {
    let mut rows = unretired_signing_keys(state, limit)?;
    let start = keys::signing_key_retired_from(retired_kept_from_unix_s);
    for (key, _) in state.scan(keys::SIGNING_KEY_RETIRED_PREFIX, &start, limit)? {
        rows.push(indexed_signing_key(state, &key, true)?);
    }
    Ok(rows)
}

/// Up to `limit` signing keys published and not retired, in key id order.
pub fn unretired_signing_keys(
    state: &dyn StateRead,
    limit: usize,
) -> Result<Vec<SigningKeyRow>, StateError> {
    state
        .scan(keys::SIGNING_KEY_IN_FORCE_PREFIX, b"", limit)?
        .iter()
        .map(|(key, _)| indexed_signing_key(state, key, false))
        .collect()
}

/// The signing key an index entry names, which must exist and be `retired` as the index says.
fn indexed_signing_key(
    state: &dyn StateRead,
    index_key: &[u8],
    retired: bool,
) -> Result<SigningKeyRow, StateError> {
    let key_id = keys::signing_key_id_from_index(index_key)
        .and_then(|key_id| std::str::from_utf8(key_id).ok())
        .ok_or_else(|| StateError::corrupt(index_key, "not a signing key index entry"))?;
    match signing_key(state, key_id)? {
        Some(row) if row.retired == retired => Ok(row),
        Some(_) => Err(StateError::corrupt(
            index_key,
            "index entry disagrees with the key's retirement",
        )),
        None => Err(StateError::corrupt(
            index_key,
            "index entry names no published key",
        )),
    }
}

/// Up to `limit` agents (capped at [`LIST_PAGE_MAX`]) in ascending agent id order, strictly after
/// `after_agent_id` (empty = from the start), optionally only those owned by `owner_human_id`.
///
/// To page, pass the last agent id of one page as `after_agent_id` of the next.
pub fn list_agents(
    state: &dyn StateRead,
    owner_human_id: Option<&str>,
    after_agent_id: &str,
    limit: usize,
) -> Result<Vec<AgentRow>, StateError> {
    let limit = limit.min(LIST_PAGE_MAX);
    let Some(owner_human_id) = owner_human_id else {
        let start = match after_agent_id {
            "" => Vec::new(),
            after => keys::successor(&keys::agent(after)),
        };
        let rows = state.scan(keys::AGENT_PREFIX, &start, limit)?;
        let mut agents = Vec::with_capacity(rows.len());
        for (key, bytes) in rows {
            let row: AgentRow = decode_row(&key, &bytes)?;
            let agent_id = key.get(keys::AGENT_PREFIX.len()..).unwrap_or_default();
            check_id(&key, &row.agent_id, &String::from_utf8_lossy(agent_id))?;
            agents.push(row);
        }
        return Ok(agents);
    };

    let prefix = keys::agent_by_owner_prefix(owner_human_id);
    let start = match after_agent_id {
        "" => Vec::new(),
        after => keys::successor(&keys::agent_by_owner(owner_human_id, after)),
    };
    let entries = state.scan(&prefix, &start, limit)?;
    let mut agents = Vec::with_capacity(entries.len());
    for (key, _) in entries {
        let agent_id = key.get(prefix.len()..).unwrap_or_default();
        let Ok(agent_id) = std::str::from_utf8(agent_id) else {
            return Err(StateError::corrupt(&key, "agent id is not UTF-8"));
        };
        match agent(state, agent_id)? {
            Some(row) if row.owner_human_id == owner_human_id => agents.push(row),
            Some(row) => {
                return Err(StateError::corrupt(
                    &key,
                    format!("agent {agent_id} is owned by {}", row.owner_human_id),
                ));
            }
            None => {
                return Err(StateError::corrupt(
                    &key,
                    format!("agent {agent_id} does not exist"),
                ));
            }
        }
    }
    Ok(agents)
}

/// Up to `limit` events (capped at [`EVENTS_PAGE_MAX`]) with seq >= `from_seq`, in seq order.
pub fn events(
    state: &dyn StateRead,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<log::Event>, StateError> {
    let limit = limit.min(EVENTS_PAGE_MAX);
    let rows = state.scan(keys::EVENT_PREFIX, &keys::event(from_seq), limit)?;
    let mut events = Vec::with_capacity(rows.len());
    for (key, bytes) in rows {
        let event: log::Event = decode_row(&key, &bytes)?;
        if keys::event_seq(&key) != Some(event.seq) {
            return Err(StateError::corrupt(
                &key,
                format!("event has seq {}", event.seq),
            ));
        }
        events.push(event);
    }
    Ok(events)
}

/// The device `id`, if registered.
pub fn device(state: &dyn StateRead, id: &str) -> Result<Option<DeviceRow>, StateError> {
    let key = keys::device(id);
    let row: Option<DeviceRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_id(&key, &row.device_id, id)?;
    }
    Ok(row)
}

/// The session `id`, if started.
pub fn session(state: &dyn StateRead, id: &str) -> Result<Option<SessionRow>, StateError> {
    let key = keys::session(id);
    let row: Option<SessionRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        let Some(started) = &row.started else {
            return Err(StateError::corrupt(&key, "session row without its start"));
        };
        check_id(&key, &started.session_id, id)?;
    }
    Ok(row)
}

/// The delegation `id`, if created.
pub fn delegation(state: &dyn StateRead, id: &str) -> Result<Option<DelegationRow>, StateError> {
    let key = keys::delegation(id);
    let row: Option<DelegationRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        let Some(created) = &row.created else {
            return Err(StateError::corrupt(
                &key,
                "delegation row without its grant",
            ));
        };
        check_id(&key, &created.delegation_id, id)?;
    }
    Ok(row)
}

/// Up to `limit` delegations granted to `agent_id`, in delegation id order.
pub fn delegations_to(
    state: &dyn StateRead,
    agent_id: &str,
    limit: usize,
) -> Result<Vec<DelegationRow>, StateError> {
    let prefix = keys::delegation_by_grantee_prefix(agent_id);
    let entries = state.scan(&prefix, b"", limit.min(LIST_PAGE_MAX))?;
    let mut rows = Vec::with_capacity(entries.len());
    for (key, _) in entries {
        let Ok(delegation_id) = std::str::from_utf8(key.get(prefix.len()..).unwrap_or_default())
        else {
            return Err(StateError::corrupt(&key, "delegation id is not UTF-8"));
        };
        match delegation(state, delegation_id)? {
            Some(row)
                if row
                    .created
                    .as_ref()
                    .is_some_and(|it| it.grantee_agent_id == agent_id) =>
            {
                rows.push(row);
            }
            _ => {
                return Err(StateError::corrupt(
                    &key,
                    format!("delegation {delegation_id} is not granted to {agent_id}"),
                ));
            }
        }
    }
    Ok(rows)
}

/// Up to `limit` (capped at [`LIST_PAGE_MAX`]) sessions started by the principal of
/// `principal_kind` named `principal_id`, ended ones included, in session id order.
pub fn sessions_of(
    state: &dyn StateRead,
    principal_kind: i32,
    principal_id: &str,
    limit: usize,
) -> Result<Vec<SessionRow>, StateError> {
    let prefix = keys::session_by_principal_prefix(principal_kind, principal_id);
    let entries = state.scan(&prefix, b"", limit.min(LIST_PAGE_MAX))?;
    let mut rows = Vec::with_capacity(entries.len());
    for (key, _) in entries {
        let session_id = indexed_id(&key, prefix.len())?;
        match session(state, session_id)? {
            Some(row)
                if row.started.as_ref().is_some_and(|it| {
                    it.principal_kind == principal_kind && it.principal_id == principal_id
                }) =>
            {
                rows.push(row);
            }
            _ => {
                return Err(StateError::corrupt(
                    &key,
                    format!("session {session_id} is not {principal_id}'s"),
                ));
            }
        }
    }
    Ok(rows)
}

/// Up to `limit` (capped at [`LIST_PAGE_MAX`]) devices owned by `owner_human_id`, in device id
/// order.
pub fn devices_of(
    state: &dyn StateRead,
    owner_human_id: &str,
    limit: usize,
) -> Result<Vec<DeviceRow>, StateError> {
    let prefix = keys::device_by_owner_prefix(owner_human_id);
    let entries = state.scan(&prefix, b"", limit.min(LIST_PAGE_MAX))?;
    let mut rows = Vec::with_capacity(entries.len());
    for (key, _) in entries {
        let device_id = indexed_id(&key, prefix.len())?;
        match device(state, device_id)? {
            Some(row) if row.owner_human_id == owner_human_id => rows.push(row),
            _ => {
                return Err(StateError::corrupt(
                    &key,
                    format!("device {device_id} is not {owner_human_id}'s"),
                ));
            }
        }
    }
    Ok(rows)
}

/// The id an index entry names after its `prefix_len` bytes of prefix.
fn indexed_id(key: &[u8], prefix_len: usize) -> Result<&str, StateError> {
    std::str::from_utf8(key.get(prefix_len..).unwrap_or_default())
        .map_err(|_| StateError::corrupt(key, "indexed id is not UTF-8"))
}

/// The human an upstream issuer names `subject`, if registered.
pub fn human_by_federated(
    state: &dyn StateRead,
    issuer: &str,
    subject: &str,
) -> Result<Option<HumanRow>, StateError> {
    let key = keys::federated(issuer, subject);
    let Some(human_id) = state.get(&key)? else {
        return Ok(None);
    };
    let Ok(human_id) = String::from_utf8(human_id) else {
        return Err(StateError::corrupt(&key, "human id is not UTF-8"));
    };
    match human(state, &human_id)? {
        Some(row) => Ok(Some(row)),
        None => Err(StateError::corrupt(
            &key,
            format!("human {human_id} does not exist"),
        )),
    }
}

/// Whether the client assertion `jti` of `agent_id` was already spent.
pub fn assertion_spent(
    state: &dyn StateRead,
    agent_id: &str,
    jti: &str,
) -> Result<bool, StateError> {
    Ok(state.get(&keys::assertion(agent_id, jti))?.is_some())
}

/// Up to `limit` humans (capped at [`LIST_PAGE_MAX`]) in id order, strictly after `after`.
pub fn list_humans(
    state: &dyn StateRead,
    after: &str,
    limit: usize,
) -> Result<Vec<HumanRow>, StateError> {
    list_table(state, keys::HUMAN_PREFIX, after, limit, |row: &HumanRow| {
        &row.human_id
    })
}

/// Up to `limit` services (capped at [`LIST_PAGE_MAX`]) in id order, strictly after `after`.
pub fn list_services(
    state: &dyn StateRead,
    after: &str,
    limit: usize,
) -> Result<Vec<ServiceRow>, StateError> {
    list_table(
        state,
        keys::SERVICE_PREFIX,
        after,
        limit,
        |row: &ServiceRow| &row.service_id,
    )
}

/// Up to `limit` devices (capped at [`LIST_PAGE_MAX`]) in id order, strictly after `after`.
pub fn list_devices(
    state: &dyn StateRead,
    after: &str,
    limit: usize,
) -> Result<Vec<DeviceRow>, StateError> {
    list_table(
        state,
        keys::DEVICE_PREFIX,
        after,
        limit,
        |row: &DeviceRow| &row.device_id,
    )
}

/// One page of a table keyed by `prefix` + id, each row checked against its key.
fn list_table<M>(
    state: &dyn StateRead,
    prefix: &[u8],
    after: &str,
    limit: usize,
    id_of: impl Fn(&M) -> &str,
) -> Result<Vec<M>, StateError>
where
    M: Message + Default,
{
    let start = match after {
        "" => Vec::new(),
        after => keys::successor(&[prefix, after.as_bytes()].concat()),
    };
    let rows = state.scan(prefix, &start, limit.min(LIST_PAGE_MAX))?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, bytes) in rows {
        let row: M = decode_row(&key, &bytes)?;
        let id = key.get(prefix.len()..).unwrap_or_default();
        check_id(&key, id_of(&row), &String::from_utf8_lossy(id))?;
        out.push(row);
    }
    Ok(out)
}

/// What delegation `delegation_id`'s call budget has spent: every SYNC ALLOW under it or below
/// it. An empty row when nothing was spent yet (or the delegation has no budget).
pub fn budget_usage(
    state: &dyn StateRead,
    delegation_id: &str,
) -> Result<BudgetUsageRow, StateError> {
    Ok(read_row(state, &keys::budget_usage(delegation_id))?.unwrap_or_default())
}

/// The row under `key`, decoded, if any.
pub(crate) fn read_row<M>(state: &dyn StateRead, key: &[u8]) -> Result<Option<M>, StateError>
where
    M: Message + Default,
{
    match state.get(key)? {
        Some(bytes) => decode_row(key, &bytes).map(Some),
        None => Ok(None),
    }
}

fn decode_row<M>(key: &[u8], bytes: &[u8]) -> Result<M, StateError>
where
    M: Message + Default,
{
    M::decode(bytes).map_err(|error| StateError::corrupt(key, format!("decode: {error}")))
}

fn check_id(key: &[u8], stored: &str, expected: &str) -> Result<(), StateError> {
    if stored != expected {
        return Err(StateError::corrupt(key, format!("row names {stored}")));
    }
    Ok(())
}

fn check_signing_key(key: &[u8], row: &SigningKeyRow, key_id: &str) -> Result<(), StateError> {
    match &row.key {
        Some(published) => check_id(key, &published.key_id, key_id),
        None => Err(StateError::corrupt(key, "signing key row without a key")),
    }
}

/// Policy version `version`, if published.
pub fn policy_version(
    state: &dyn StateRead,
    version: u32,
) -> Result<Option<PolicyVersionRow>, StateError> {
    let key = keys::policy_version(version);
    let row: Option<PolicyVersionRow> = read_row(state, &key)?;
    if let Some(row) = &row {
        check_policy_version(&key, row, version)?;
    }
    Ok(row)
}

/// Which policy versions are active and shadow; the default row (nothing published, nothing
/// active) before the first PublishPolicy.
pub fn policy_activation(state: &dyn StateRead) -> Result<PolicyActivationRow, StateError> {
    Ok(read_row(state, keys::POLICY_ACTIVATION)?.unwrap_or_default())
}

/// Up to `limit` policy versions (capped at [`POLICY_VERSIONS_PAGE_MAX`]: each row carries its
/// full text) in version order, strictly after `after_version` (0 = from the first).
pub fn list_policy_versions(
    state: &dyn StateRead,
    after_version: u32,
    limit: usize,
) -> Result<Vec<PolicyVersionRow>, StateError> {
    let Some(start) = after_version.checked_add(1) else {
        return Ok(Vec::new());
    };
    let rows = state.scan(
        keys::POLICY_VERSION_PREFIX,
        &keys::policy_version(start),
        limit.min(POLICY_VERSIONS_PAGE_MAX),
    )?;
    let mut versions = Vec::with_capacity(rows.len());
    for (key, bytes) in rows {
        let row: PolicyVersionRow = decode_row(&key, &bytes)?;
        let Some(version) = keys::policy_version_number(&key) else {
            return Err(StateError::corrupt(&key, "not a policy version key"));
        };
        check_policy_version(&key, &row, version)?;
        versions.push(row);
    }
    Ok(versions)
}

fn check_policy_version(
    key: &[u8],
    row: &PolicyVersionRow,
    version: u32,
) -> Result<(), StateError> {
    match &row.published {
        Some(published) if published.version == version => Ok(()),
        Some(published) => Err(StateError::corrupt(
            key,
            format!("row names version {}", published.version),
        )),
        None => Err(StateError::corrupt(
            key,
            "policy version row without its text",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::{InMemoryState, WriteSet};

    fn store(rows: Vec<(Vec<u8>, Vec<u8>)>) -> InMemoryState {
        let mut writes = WriteSet::new();
        for (key, value) in rows {
            writes.put(key, value);
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        state
    }

    fn agent_row(agent_id: &str, owner: &str) -> (Vec<u8>, Vec<u8>) {
        let row = AgentRow {
            agent_id: agent_id.to_owned(),
            owner_human_id: owner.to_owned(),
            ..AgentRow::default()
        };
        (keys::agent(agent_id), row.encode_to_vec())
    }

    fn agents_world() -> InMemoryState {
        let mut rows = Vec::new();
        for (agent_id, owner) in [
            ("a1", "alice"),
            ("a2", "bob"),
            ("a3", "alice"),
            ("a4", "alice"),
        ] {
            rows.push(agent_row(agent_id, owner));
            rows.push((keys::agent_by_owner(owner, agent_id), Vec::new()));
        }
        // An owner whose id extends another's must not leak into its pages.
        rows.push(agent_row("b1", "alice2"));
        rows.push((keys::agent_by_owner("alice2", "b1"), Vec::new()));
        store(rows)
    }

    /// Lists agents and renders their ids, so cases read as data.
    fn check_list(owner: Option<&str>, after: &str, limit: usize, expected: &[&str]) {
        let agents = list_agents(&agents_world(), owner, after, limit).unwrap();
        let ids: Vec<&str> = agents.iter().map(|it| it.agent_id.as_str()).collect();
        assert_eq!(
            ids, expected,
            "owner {owner:?}, after {after:?}, limit {limit}"
        );
    }

    #[test]
    fn list_agents_pages() {
        check_list(None, "", 10, &["a1", "a2", "a3", "a4", "b1"]);
        check_list(None, "", 2, &["a1", "a2"]);
        check_list(None, "a2", 2, &["a3", "a4"]);
        check_list(None, "a", 1, &["a1"]);
        check_list(None, "b1", 10, &[]);
        check_list(None, "", 0, &[]);
        check_list(Some("alice"), "", 10, &["a1", "a3", "a4"]);
        check_list(Some("alice"), "a1", 1, &["a3"]);
        check_list(Some("alice"), "a3", 10, &["a4"]);
        check_list(Some("alice2"), "", 10, &["b1"]);
        check_list(Some("bob"), "a2", 10, &[]);
        check_list(Some("nobody"), "", 10, &[]);
    }

    #[test]
    fn list_agents_caps_the_page() {
        let mut rows = Vec::new();
        for idx in 0..LIST_PAGE_MAX + 5 {
            rows.push(agent_row(&format!("agent{idx:04}"), "alice"));
        }
        let agents = list_agents(&store(rows), None, "", usize::MAX).unwrap();
        assert_eq!(agents.len(), LIST_PAGE_MAX);
    }

    #[test]
    fn owner_index_pointing_nowhere_is_corrupt() {
        let state = store(vec![(keys::agent_by_owner("alice", "ghost"), Vec::new())]);
        let error = list_agents(&state, Some("alice"), "", 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "corrupt row ao\\x00alice\\x00ghost: agent ghost does not exist"
        );
    }

    #[test]
    fn rows_under_the_wrong_key_are_corrupt() {
        let (_, bytes) = agent_row("a1", "alice");
        let state = store(vec![(keys::agent("a2"), bytes)]);
        let error = agent(&state, "a2").unwrap_err();
        assert_eq!(error.to_string(), "corrupt row a\\x00a2: row names a1");
    }

    #[test]
    fn undecodable_rows_are_corrupt() {
        let state = store(vec![(keys::human("alice"), vec![0xff, 0xff])]);
        let error = human(&state, "alice").unwrap_err();
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn applied_seq_reads_the_meta_row() {
        assert_eq!(applied_seq(&InMemoryState::new()).unwrap(), 0);
        let state = store(vec![(keys::LAST_SEQ.to_vec(), 7u64.to_be_bytes().to_vec())]);
        assert_eq!(applied_seq(&state).unwrap(), 7);
        let state = store(vec![(keys::LAST_SEQ.to_vec(), vec![7])]);
        assert_eq!(
            applied_seq(&state).unwrap_err().to_string(),
            "corrupt row m\\x00last_seq: 1 bytes where a u64 was expected"
        );
    }

    #[test]
    fn events_page_from_a_seq() {
        let rows = (1..=5)
            .map(|seq| {
                (
                    keys::event(seq),
                    log::Event {
                        seq,
                        ..log::Event::default()
                    }
                    .encode_to_vec(),
                )
            })
            .collect();
        let state = store(rows);
        let seqs = |from, limit| -> Vec<u64> {
            events(&state, from, limit)
                .unwrap()
                .iter()
                .map(|it| it.seq)
                .collect()
        };
        assert_eq!(seqs(0, 10), [1, 2, 3, 4, 5]);
        assert_eq!(seqs(3, 10), [3, 4, 5]);
        assert_eq!(seqs(2, 2), [2, 3]);
        assert_eq!(seqs(6, 10), Vec::<u64>::new());
        assert_eq!(seqs(u64::MAX, 10), Vec::<u64>::new());
    }

    #[test]
    fn an_event_under_another_seq_is_corrupt() {
        let event = log::Event {
            seq: 2,
            ..log::Event::default()
        };
        let state = store(vec![(keys::event(1), event.encode_to_vec())]);
        assert!(matches!(
            events(&state, 0, 10),
            Err(StateError::Corrupt { .. })
        ));
    }
}
