//! The policy rows as apply writes them: one `PolicyVersionRow` per published version under
//! `pv\0` + the version (u32 big-endian, so versions scan in order), and one
//! `PolicyActivationRow` under `pa`.
//!
//! Read here by key until `warrant_identity::query` has its own policy lookups (the policy
//! work adds them); these should then call those.

use prost::Message;
use warrant_identity::{StateError, StateRead};
use warrant_proto::state::{PolicyActivationRow, PolicyVersionRow};

const POLICY_VERSION_PREFIX: &[u8] = b"pv\0";
const POLICY_ACTIVATION: &[u8] = b"pa";

fn version_key(version: u32) -> Vec<u8> {
    [POLICY_VERSION_PREFIX, &version.to_be_bytes()].concat()
}

fn decode<T: Message + Default>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    T::decode(bytes).map_err(|e| StateError::corrupt(key, e.to_string()))
}

/// The published version `version`, if any.
pub fn version(
    state: &dyn StateRead,
    version: u32,
) -> Result<Option<PolicyVersionRow>, StateError> {
    let key = version_key(version);
    let Some(bytes) = state.get(&key)? else {
        return Ok(None);
    };
    let row: PolicyVersionRow = decode(&key, &bytes)?;
    let found = row.published.as_ref().map_or(0, |it| it.version);
    if found != version {
        return Err(StateError::corrupt(&key, format!("holds version {found}")));
    }
    Ok(Some(row))
}

/// Up to `limit` published versions after `after_version`, in version order.
pub fn versions_after(
    state: &dyn StateRead,
    after_version: u32,
    limit: usize,
) -> Result<Vec<PolicyVersionRow>, StateError> {
    let Some(start) = after_version.checked_add(1) else {
        return Ok(Vec::new());
    };
    let rows = state.scan(POLICY_VERSION_PREFIX, &version_key(start), limit)?;
    rows.iter().map(|(key, bytes)| decode(key, bytes)).collect()
}

/// Which versions are active and shadow (all zero before any activation).
pub fn activation(state: &dyn StateRead) -> Result<PolicyActivationRow, StateError> {
    match state.get(POLICY_ACTIVATION)? {
        Some(bytes) => decode(POLICY_ACTIVATION, &bytes),
        None => Ok(PolicyActivationRow::default()),
    }
}

#[cfg(test)]
mod tests {
    use warrant_identity::{InMemoryState, WriteSet};
    use warrant_proto::log;

    use super::*;

    fn row(version: u32) -> PolicyVersionRow {
        PolicyVersionRow {
            published: Some(log::PolicyPublished {
                version,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn versions_are_read_by_number_and_listed_in_order() {
        let mut state = InMemoryState::new();
        let mut writes = WriteSet::new();
        // 256 sorts after 2 only as big-endian bytes.
        for version in [256, 1, 2] {
            writes.put(version_key(version), row(version).encode_to_vec());
        }
        state.apply_writes(&writes);
        assert_eq!(version(&state, 2).expect("read"), Some(row(2)));
        assert_eq!(version(&state, 3).expect("read"), None);
        let listed: Vec<u32> = versions_after(&state, 1, 10)
            .expect("read")
            .into_iter()
            .map(|it| it.published.unwrap_or_default().version)
            .collect();
        assert_eq!(listed, vec![2, 256]);
        assert!(
            versions_after(&state, u32::MAX, 10)
                .expect("read")
                .is_empty()
        );
        // A row under another version's key is corrupt, not served.
        let mut writes = WriteSet::new();
        writes.put(version_key(9), row(8).encode_to_vec());
        state.apply_writes(&writes);
        assert!(version(&state, 9).is_err());
    }
}
