//! The state store's key layout.
//!
//! Every key starts with a short table tag and a NUL byte. Ids, audiences, key ids and
//! idempotency keys never contain NUL (apply rejects those that do before building a key), so a
//! NUL can separate the parts of a composite key and every key maps back to exactly one row.
//!
//! | key | value |
//! |---|---|
//! | `m\0last_seq` | the seq of the last event, u64 big-endian |
//! | `e\0` + seq (u64 BE) | `log::Event` |
//! | `h\0` + human_id | `state::HumanRow` |
//! | `a\0` + agent_id | `state::AgentRow` |
//! | `ao\0` + owner_human_id + `\0` + agent_id | empty (agents by owner) |
//! | `s\0` + service_id | `state::ServiceRow` |
//! | `sa\0` + audience | the service id, UTF-8 |
//! | `t\0` + jti | `state::TokenRow` |
//! | `k\0` + key_id | `state::SigningKeyRow` |
//! | `kf\0` + key_id | empty (signing keys published and not retired) |
//! | `kr\0` + keep_until_unix_s (u64 BE) + key_id | empty (retired keys by their last token's expiry) |
//! | `i\0` + actor kind (i32 BE) + actor_id + `\0` + idempotency key | `state::IdempotencyRow` |
//! | `d\0` + device_id | `state::DeviceRow` |
//! | `x\0` + session_id | `state::SessionRow` |
//! | `g\0` + delegation_id | `state::DelegationRow` |
//! | `gg\0` + grantee agent_id + `\0` + delegation_id | empty (delegations by grantee) |
//! | `f\0` + issuer + `\0` + subject | the human id, UTF-8 (federated identities) |
//! | `u\0` + agent_id + `\0` + assertion jti | the assertion's exp, u64 BE (spent assertions) |
//! | `ue\0` + exp (u64 BE) + agent_id + `\0` + jti | empty (spent assertions by expiry, to prune) |
//! | `bu\0` + delegation_id | `state::BudgetUsageRow` (what a delegation's call budget spent) |
//! | `pv\0` + version (u32 BE) | `state::PolicyVersionRow` |
//! | `pa` | `state::PolicyActivationRow` (one row: the active and shadow versions) |
//! | `o\0` + operator_id | `state::OperatorRow` |
//! | `xp\0` + principal kind (i32 BE) + principal_id + `\0` + session_id | empty (sessions by principal) |
//! | `do\0` + owner_human_id + `\0` + device_id | empty (devices by owner) |
//! | `v\0` + escaped key + `\0\0` + seq (u64 BE) | one version of a projection row: `0x01` + the row, or `0x00` (deleted) |
//! | `vt\0` + time_unix_ms (u64 BE) | the last seq of the batches stamped then, u64 BE |
//! | `m\0audit_exported` | the seq through which the audit stream exporter's collector acknowledged every event, u64 BE |
//! | `m\0tree_size` | the number of leaves of the Merkle tree over the events, u64 BE (equals `m\0last_seq`) |
//! | `mt\0` + level (u8) + index (u64 BE) | 32 bytes: the hash of the perfect subtree of 2^level leaves from leaf index × 2^level (level 0: leaf hashes), stored once complete |
//!
//! Big-endian numbers keep the store's byte order equal to numeric order, so events scan in seq
//! order.
//!
//! Versions (`v\0`, see `audit::history`) escape the key they version, every NUL becoming
//! `\0\xff`, and end it with `\0\0`: then the versions of one key are contiguous and in seq
//! order, the versions of the keys under a prefix are contiguous and in key order, and no key's
//! versions fall among another's.

/// The key holding the seq of the last event.
pub const LAST_SEQ: &[u8] = b"m\0last_seq";
/// The prefix of every event row.
pub const EVENT_PREFIX: &[u8] = b"e\0";
/// The prefix of every human row.
pub const HUMAN_PREFIX: &[u8] = b"h\0";
/// The prefix of every agent row.
pub const AGENT_PREFIX: &[u8] = b"a\0";
/// The prefix of the agents-by-owner index.
pub const AGENT_BY_OWNER_PREFIX: &[u8] = b"ao\0";
/// The prefix of every service row.
pub const SERVICE_PREFIX: &[u8] = b"s\0";
/// Operators by id.
pub const OPERATOR_PREFIX: &[u8] = b"o\0";
/// The prefix of the services-by-audience index.
pub const SERVICE_BY_AUDIENCE_PREFIX: &[u8] = b"sa\0";
/// The prefix of every token row.
pub const TOKEN_PREFIX: &[u8] = b"t\0";
/// The prefix of every signing key row.
pub const SIGNING_KEY_PREFIX: &[u8] = b"k\0";
/// The prefix of the index of signing keys published and not retired.
pub const SIGNING_KEY_IN_FORCE_PREFIX: &[u8] = b"kf\0";
/// The prefix of the index of retired signing keys, ordered by the expiry of their last token.
pub const SIGNING_KEY_RETIRED_PREFIX: &[u8] = b"kr\0";
/// The prefix of every idempotency row.
pub const IDEMPOTENCY_PREFIX: &[u8] = b"i\0";
/// The prefix of every device row.
pub const DEVICE_PREFIX: &[u8] = b"d\0";
/// The prefix of every session row.
pub const SESSION_PREFIX: &[u8] = b"x\0";
/// The prefix of every delegation row.
pub const DELEGATION_PREFIX: &[u8] = b"g\0";
/// The prefix of the delegations-by-grantee index.
pub const DELEGATION_BY_GRANTEE_PREFIX: &[u8] = b"gg\0";
/// The prefix of the federated identity index.
pub const FEDERATED_PREFIX: &[u8] = b"f\0";
/// The prefix of the spent client assertions.
pub const ASSERTION_PREFIX: &[u8] = b"u\0";
/// The prefix of the spent client assertions ordered by expiry.
pub const ASSERTION_BY_EXPIRY_PREFIX: &[u8] = b"ue\0";
/// The prefix of the budget usage rows.
pub const BUDGET_USAGE_PREFIX: &[u8] = b"bu\0";

/// The prefix of the sessions-by-principal index.
pub const SESSION_BY_PRINCIPAL_PREFIX: &[u8] = b"xp\0";
/// The prefix of the devices-by-owner index.
pub const DEVICE_BY_OWNER_PREFIX: &[u8] = b"do\0";
/// The prefix of every version of a projection row.
pub const VERSION_PREFIX: &[u8] = b"v\0";
/// The prefix of the time index of the history.
pub const VERSION_TIME_PREFIX: &[u8] = b"vt\0";

/// The prefix of one principal's entries in the sessions-by-principal index. The kind is part of
/// the key because a human and an agent may share an id.
pub fn session_by_principal_prefix(principal_kind: i32, principal_id: &str) -> Vec<u8> {
    let mut key = join(SESSION_BY_PRINCIPAL_PREFIX, &principal_kind.to_be_bytes());
    key.extend_from_slice(principal_id.as_bytes());
    key.push(0);
    key
}

/// The key of one entry in the sessions-by-principal index.
pub fn session_by_principal(principal_kind: i32, principal_id: &str, session_id: &str) -> Vec<u8> {
    join(
        &session_by_principal_prefix(principal_kind, principal_id),
        session_id.as_bytes(),
    )
}

/// The prefix of one owner's entries in the devices-by-owner index.
pub fn device_by_owner_prefix(owner_human_id: &str) -> Vec<u8> {
    let mut key = join(DEVICE_BY_OWNER_PREFIX, owner_human_id.as_bytes());
    key.push(0);
    key
}

/// The key of one entry in the devices-by-owner index.
pub fn device_by_owner(owner_human_id: &str, device_id: &str) -> Vec<u8> {
    join(
        &device_by_owner_prefix(owner_human_id),
        device_id.as_bytes(),
    )
}

/// The prefix of the versions of every key that starts with `prefix`: `v\0` + `prefix`
/// escaped, unterminated.
pub fn versions_under(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        VERSION_PREFIX
            .len()
            .saturating_add(prefix.len().saturating_mul(2)),
    );
    out.extend_from_slice(VERSION_PREFIX);
    for byte in prefix {
        out.push(*byte);
        if *byte == 0 {
            out.push(0xff);
        }
    }
    out
}

/// The prefix of the versions of `key` exactly: [`versions_under`] `key`, then `\0\0`.
pub fn versions_of(key: &[u8]) -> Vec<u8> {
    let mut out = versions_under(key);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The key of the version of `key` written at `seq`.
pub fn version(key: &[u8], seq: u64) -> Vec<u8> {
    join(&versions_of(key), &seq.to_be_bytes())
}

/// Where the versions of the keys after `key` start: past every version of `key` and before
/// the versions of any greater key (`\0\x01` sorts after `\0\0`, before `\0\xff` and any
/// other byte).
pub fn versions_after(key: &[u8]) -> Vec<u8> {
    let mut out = versions_under(key);
    out.extend_from_slice(&[0, 1]);
    out
}

/// The key and seq a version key names, or `None` when `version_key` is not one.
pub fn version_parts(version_key: &[u8]) -> Option<(Vec<u8>, u64)> {
    let mut rest = version_key.strip_prefix(VERSION_PREFIX)?;
    let mut key = Vec::with_capacity(rest.len());
    loop {
        match rest {
            [0, 0, seq @ ..] => {
                return Some((key, u64::from_be_bytes(seq.try_into().ok()?)));
            }
            [0, 0xff, tail @ ..] => {
                key.push(0);
                rest = tail;
            }
            [0, ..] | [] => return None,
            [byte, tail @ ..] => {
                key.push(*byte);
                rest = tail;
            }
        }
    }
}

/// The key of the time index entry of batches stamped `time_unix_ms`.
pub fn version_time(time_unix_ms: u64) -> Vec<u8> {
    join(VERSION_TIME_PREFIX, &time_unix_ms.to_be_bytes())
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when there is
/// none (`prefix` is empty or all 0xff): where a reverse seek under `prefix` may start.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|byte| *byte != 0xff)?;
    let mut end = prefix.get(..=last)?.to_vec();
    if let Some(byte) = end.last_mut() {
        *byte = byte.saturating_add(1);
    }
    Some(end)
}

/// The key holding the seq through which the audit stream was exported (absent: 0).
pub const AUDIT_EXPORTED: &[u8] = b"m\0audit_exported";

/// The key holding the number of leaves of the Merkle tree over the events.
pub const TREE_SIZE: &[u8] = b"m\0tree_size";
/// The prefix of every stored Merkle tree node.
pub const TREE_NODE_PREFIX: &[u8] = b"mt\0";

/// The key of the Merkle tree node of 2^`level` leaves starting at leaf `index` × 2^`level`.
pub fn tree_node(level: u8, index: u64) -> Vec<u8> {
    let mut key = join(TREE_NODE_PREFIX, &[level]);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The key of delegation `delegation_id`'s budget usage row.
pub fn budget_usage(delegation_id: &str) -> Vec<u8> {
    join(BUDGET_USAGE_PREFIX, delegation_id.as_bytes())
}

/// The key of a device row.
pub fn device(device_id: &str) -> Vec<u8> {
    join(DEVICE_PREFIX, device_id.as_bytes())
}

/// The key of a session row.
pub fn session(session_id: &str) -> Vec<u8> {
    join(SESSION_PREFIX, session_id.as_bytes())
}

/// The key of a delegation row.
pub fn delegation(delegation_id: &str) -> Vec<u8> {
    join(DELEGATION_PREFIX, delegation_id.as_bytes())
}

/// The prefix of one agent's entries in the delegations-by-grantee index.
pub fn delegation_by_grantee_prefix(agent_id: &str) -> Vec<u8> {
    let mut key = join(DELEGATION_BY_GRANTEE_PREFIX, agent_id.as_bytes());
    key.push(0);
    key
}

/// The key of one entry in the delegations-by-grantee index.
pub fn delegation_by_grantee(agent_id: &str, delegation_id: &str) -> Vec<u8> {
    join(
        &delegation_by_grantee_prefix(agent_id),
        delegation_id.as_bytes(),
    )
}

/// The key of a federated identity's entry.
pub fn federated(issuer: &str, subject: &str) -> Vec<u8> {
    let mut key = join(FEDERATED_PREFIX, issuer.as_bytes());
    key.push(0);
    key.extend_from_slice(subject.as_bytes());
    key
}

/// The key of a spent assertion in expiry order.
pub fn assertion_by_expiry(expires_at_unix_s: u64, agent_id: &str, jti: &str) -> Vec<u8> {
    let mut key = join(ASSERTION_BY_EXPIRY_PREFIX, &expires_at_unix_s.to_be_bytes());
    key.extend_from_slice(agent_id.as_bytes());
    key.push(0);
    key.extend_from_slice(jti.as_bytes());
    key
}

/// The expiry and the spent-assertion key named by an expiry-ordered key, or `None` when `key`
/// is not one.
pub fn assertion_from_expiry_key(key: &[u8]) -> Option<(u64, Vec<u8>)> {
    let rest = key.strip_prefix(ASSERTION_BY_EXPIRY_PREFIX)?;
    let (expiry, agent_and_jti) = rest.split_first_chunk::<8>()?;
    Some((
        u64::from_be_bytes(*expiry),
        join(ASSERTION_PREFIX, agent_and_jti),
    ))
}

/// The key marking a client assertion as spent.
pub fn assertion(agent_id: &str, jti: &str) -> Vec<u8> {
    let mut key = join(ASSERTION_PREFIX, agent_id.as_bytes());
    key.push(0);
    key.extend_from_slice(jti.as_bytes());
    key
}

/// The key of the event with `seq`.
pub fn event(seq: u64) -> Vec<u8> {
    join(EVENT_PREFIX, &seq.to_be_bytes())
}

/// The seq encoded in an event key, or `None` when `key` is not an event key.
pub fn event_seq(key: &[u8]) -> Option<u64> {
    let seq = key.strip_prefix(EVENT_PREFIX)?;
    Some(u64::from_be_bytes(seq.try_into().ok()?))
}

/// The key of a human row.
pub fn human(human_id: &str) -> Vec<u8> {
    join(HUMAN_PREFIX, human_id.as_bytes())
}

/// The key of an agent row.
pub fn agent(agent_id: &str) -> Vec<u8> {
    join(AGENT_PREFIX, agent_id.as_bytes())
}

/// The prefix of one owner's entries in the agents-by-owner index.
pub fn agent_by_owner_prefix(owner_human_id: &str) -> Vec<u8> {
    let mut key = join(AGENT_BY_OWNER_PREFIX, owner_human_id.as_bytes());
    key.push(0);
    key
}

/// The key of one entry in the agents-by-owner index.
pub fn agent_by_owner(owner_human_id: &str, agent_id: &str) -> Vec<u8> {
    join(&agent_by_owner_prefix(owner_human_id), agent_id.as_bytes())
}

/// The key of an operator row.
pub fn operator(operator_id: &str) -> Vec<u8> {
    join(OPERATOR_PREFIX, operator_id.as_bytes())
}

/// The key of a service row.
pub fn service(service_id: &str) -> Vec<u8> {
    join(SERVICE_PREFIX, service_id.as_bytes())
}

/// The key of an entry in the services-by-audience index.
pub fn service_by_audience(audience: &str) -> Vec<u8> {
    join(SERVICE_BY_AUDIENCE_PREFIX, audience.as_bytes())
}

/// The key of a token row.
pub fn token(jti: &str) -> Vec<u8> {
    join(TOKEN_PREFIX, jti.as_bytes())
}

/// The key of a signing key row.
pub fn signing_key(key_id: &str) -> Vec<u8> {
    join(SIGNING_KEY_PREFIX, key_id.as_bytes())
}

/// The key of a signing key's entry in the index of keys not retired.
pub fn signing_key_in_force(key_id: &str) -> Vec<u8> {
    join(SIGNING_KEY_IN_FORCE_PREFIX, key_id.as_bytes())
}

/// The key of a retired signing key's entry in the index by the expiry of its last token.
pub fn signing_key_retired(keep_until_unix_s: u64, key_id: &str) -> Vec<u8> {
    join(
        &signing_key_retired_from(keep_until_unix_s),
        key_id.as_bytes(),
    )
}

/// Where a scan of retired keys whose last token expires at or after `unix_s` starts.
pub fn signing_key_retired_from(unix_s: u64) -> Vec<u8> {
    join(SIGNING_KEY_RETIRED_PREFIX, &unix_s.to_be_bytes())
}

/// The key id named by an entry of either signing key index, or `None` when `key` is neither.
pub fn signing_key_id_from_index(key: &[u8]) -> Option<&[u8]> {
    if let Some(key_id) = key.strip_prefix(SIGNING_KEY_IN_FORCE_PREFIX) {
        return Some(key_id);
    }
    let rest = key.strip_prefix(SIGNING_KEY_RETIRED_PREFIX)?;
    rest.split_first_chunk::<8>().map(|(_, key_id)| key_id)
}

/// The key of an idempotency row. Keys are scoped by actor, so two callers can never see or
/// collide with each other's keys.
pub fn idempotency(actor_kind: i32, actor_id: &str, idempotency_key: &str) -> Vec<u8> {
    let mut key = join(IDEMPOTENCY_PREFIX, &actor_kind.to_be_bytes());
    key.extend_from_slice(actor_id.as_bytes());
    key.push(0);
    key.extend_from_slice(idempotency_key.as_bytes());
    key
}

/// The smallest key that sorts after `key`, for resuming a scan strictly after a row.
pub fn successor(key: &[u8]) -> Vec<u8> {
    join(key, &[0])
}

/// A key rendered for error messages: printable ASCII as is, every other byte escaped.
pub fn display(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// The prefix of every policy version row.
pub const POLICY_VERSION_PREFIX: &[u8] = b"pv\0";
/// The one row saying which policy versions are active and shadow.
pub const POLICY_ACTIVATION: &[u8] = b"pa";

/// The key of a policy version row; big-endian, so versions scan in publication order.
pub fn policy_version(version: u32) -> Vec<u8> {
    join(POLICY_VERSION_PREFIX, &version.to_be_bytes())
}

/// The version encoded in a policy version key, or `None` when `key` is not one.
pub fn policy_version_number(key: &[u8]) -> Option<u32> {
    let version = key.strip_prefix(POLICY_VERSION_PREFIX)?;
    Some(u32::from_be_bytes(version.try_into().ok()?))
}

fn join(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len().saturating_add(rest.len()));
    key.extend_from_slice(prefix);
    key.extend_from_slice(rest);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_bytes() {
        let cases: &[(Vec<u8>, &[u8])] = &[
            (event(258), b"e\0\0\0\0\0\0\0\x01\x02"),
            (human("alice"), b"h\0alice"),
            (agent("bot"), b"a\0bot"),
            (agent_by_owner_prefix("alice"), b"ao\0alice\0"),
            (agent_by_owner("alice", "bot"), b"ao\0alice\0bot"),
            (service("mail"), b"s\0mail"),
            (service_by_audience("https://mail"), b"sa\0https://mail"),
            (token("j1"), b"t\0j1"),
            (signing_key("k1"), b"k\0k1"),
            (signing_key_in_force("k1"), b"kf\0k1"),
            (
                signing_key_retired(258, "k1"),
                b"kr\0\0\0\0\0\0\0\x01\x02k1",
            ),
            (idempotency(3, "bot", "key-1"), b"i\0\0\0\0\x03bot\0key-1"),
            (device("laptop"), b"d\0laptop"),
            (session("s1"), b"x\0s1"),
            (delegation("d1"), b"g\0d1"),
            (delegation_by_grantee("bot", "d1"), b"gg\0bot\0d1"),
            (federated("https://idp", "42"), b"f\0https://idp\x0042"),
            (assertion("bot", "j1"), b"u\0bot\0j1"),
            (
                assertion_by_expiry(258, "bot", "j1"),
                b"ue\0\0\0\0\0\0\0\x01\x02bot\0j1",
            ),
            (successor(b"a\0bot"), b"a\0bot\0"),
            (policy_version(258), b"pv\0\0\0\x01\x02"),
            (
                session_by_principal(2, "bot", "s1"),
                b"xp\0\0\0\0\x02bot\0s1",
            ),
            (device_by_owner("alice", "laptop"), b"do\0alice\0laptop"),
            (
                version(b"a\0bot", 258),
                b"v\0a\0\xffbot\0\0\0\0\0\0\0\0\x01\x02",
            ),
            (versions_under(b"gg\0bot\0"), b"v\0gg\0\xffbot\0\xff"),
            (versions_after(b"pa"), b"v\0pa\0\x01"),
            (version_time(258), b"vt\0\0\0\0\0\0\0\x01\x02"),
            (TREE_SIZE.to_vec(), b"m\0tree_size"),
            (tree_node(3, 258), b"mt\0\x03\0\0\0\0\0\0\x01\x02"),
        ];
        for (actual, expected) in cases {
            assert_eq!(display(actual), display(expected));
        }
    }

    #[test]
    fn event_keys_sort_by_seq_and_parse_back() {
        let seqs = [0, 1, 255, 256, 65_536, u64::MAX - 1, u64::MAX];
        for pair in seqs.windows(2) {
            if let [lower, higher] = pair {
                assert!(event(*lower) < event(*higher), "{lower} < {higher}");
            }
        }
        for seq in seqs {
            assert_eq!(event_seq(&event(seq)), Some(seq));
        }
        assert_eq!(event_seq(b"e\0short"), None);
        assert_eq!(event_seq(&human("alice")), None);
    }

    #[test]
    fn tables_do_not_share_prefixes() {
        let prefixes = [
            LAST_SEQ,
            EVENT_PREFIX,
            HUMAN_PREFIX,
            AGENT_PREFIX,
            AGENT_BY_OWNER_PREFIX,
            SERVICE_PREFIX,
            SERVICE_BY_AUDIENCE_PREFIX,
            TOKEN_PREFIX,
            SIGNING_KEY_PREFIX,
            SIGNING_KEY_IN_FORCE_PREFIX,
            SIGNING_KEY_RETIRED_PREFIX,
            IDEMPOTENCY_PREFIX,
            DEVICE_PREFIX,
            SESSION_PREFIX,
            DELEGATION_PREFIX,
            DELEGATION_BY_GRANTEE_PREFIX,
            FEDERATED_PREFIX,
            ASSERTION_PREFIX,
            ASSERTION_BY_EXPIRY_PREFIX,
            POLICY_VERSION_PREFIX,
            POLICY_ACTIVATION,
            OPERATOR_PREFIX,
            SESSION_BY_PRINCIPAL_PREFIX,
            DEVICE_BY_OWNER_PREFIX,
            VERSION_PREFIX,
            VERSION_TIME_PREFIX,
            TREE_SIZE,
            TREE_NODE_PREFIX,
        ];
        for (a_idx, a) in prefixes.iter().enumerate() {
            for (b_idx, b) in prefixes.iter().enumerate() {
                if a_idx != b_idx {
                    assert!(
                        !a.starts_with(b),
                        "{} starts with {}",
                        display(a),
                        display(b)
                    );
                }
            }
        }
    }

    #[test]
    fn signing_key_index_entries_name_their_key() {
        assert_eq!(
            signing_key_id_from_index(&signing_key_in_force("k1")),
            Some(&b"k1"[..])
        );
        assert_eq!(
            signing_key_id_from_index(&signing_key_retired(u64::MAX, "k1")),
            Some(&b"k1"[..])
        );
        assert_eq!(signing_key_id_from_index(&signing_key("k1")), None);
        // Retired keys sort by the expiry of their last token, whatever their ids.
        assert!(signing_key_retired(255, "z") < signing_key_retired(256, "a"));
        assert!(signing_key_retired_from(256) <= signing_key_retired(256, "a"));
        assert!(signing_key_retired(255, "z") < signing_key_retired_from(256));
    }

    #[test]
    fn policy_version_keys_sort_by_version_and_parse_back() {
        assert!(policy_version(255) < policy_version(256));
        assert_eq!(
            policy_version_number(&policy_version(u32::MAX)),
            Some(u32::MAX)
        );
        assert_eq!(policy_version_number(POLICY_ACTIVATION), None);
        assert_eq!(policy_version_number(b"pv\0\x01"), None);
    }

    #[test]
    fn versions_sort_by_key_then_seq_and_parse_back() {
        // Keys in byte order, with the cases escaping must keep apart: a key and its
        // extensions by NUL, by a low byte and by 0xff.
        let keys: [&[u8]; 7] = [b"a", b"a\0", b"a\0\0", b"a\0\x01", b"a\x01", b"a\xff", b"b"];
        let mut previous: Option<Vec<u8>> = None;
        for key in keys {
            assert!(versions_of(key).starts_with(&versions_under(key)));
            assert!(version(key, u64::MAX) < versions_after(key));
            for seq in [0, 1, 256, u64::MAX] {
                let version_key = version(key, seq);
                assert_eq!(version_parts(&version_key), Some((key.to_vec(), seq)));
                if let Some(previous) = &previous {
                    assert!(previous < &version_key, "{}", display(&version_key));
                }
                previous = Some(version_key);
            }
            // The versions of the keys under a prefix start with the prefix's escape.
            assert_eq!(
                version(key, 1).starts_with(&versions_under(b"a")),
                key.starts_with(b"a")
            );
        }
        assert!(versions_after(b"a") < version(b"a\0", 0));
        assert!(!version(b"a", 1).starts_with(&versions_under(b"a\0")));
        assert_eq!(version_parts(b"v\0a\0\0short"), None);
        assert_eq!(version_parts(b"v\0a\0b"), None);
        assert_eq!(version_parts(b"h\0a"), None);
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn display_escapes_non_printable_bytes() {
        assert_eq!(display(b"i\0\xff~"), "i\\x00\\xff~");
    }
}
