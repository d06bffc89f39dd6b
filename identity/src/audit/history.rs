//! The versions every projection row keeps, and reads as of a past point of the log.
//!
//! Rows: `v\0` + escaped key + `\0\0` + seq (u64 BE) holds one version of a projection row:
//! `0x01` + the row's bytes as written by the command whose last event is `seq`, or `0x00` when
//! that command deleted it. The key is escaped so that the byte order of versions is the byte
//! order of keys, then seq: every NUL of the key becomes `\0\xff`, and `\0\0` ends it. So the
//! versions of one key are contiguous and ascending, and the keys under a prefix are contiguous.
//! `vt\0` + time_unix_ms (u64 BE) holds the last seq of the batches stamped at that time, so a
//! time maps to a seq with one seek. Events, idempotency rows, spent assertions and the tree
//! keep no versions: they are immutable or not projections.
//!
//! [`AsOf`] reads a store as it was after a seq: a point read of a projection row is one reverse
//! seek (`StateRead::last_before`) to its latest version at or before the seq; a scan walks the
//! distinct keys under its prefix, two seeks per key (the next key's first version, then its
//! version current at the seq), skipping the keys absent then. Versions at or below the applied
//! seq never change, so as-of reads on a live store are consistent without a snapshot.

use crate::{
    keys,
    state::{StateError, StateRead, WriteSet},
};

/// The tables that are projections: each keeps the versions of its rows.
const VERSIONED_TABLES: &[&[u8]] = &[
    keys::HUMAN_PREFIX,
    keys::AGENT_PREFIX,
    keys::AGENT_BY_OWNER_PREFIX,
    keys::SERVICE_PREFIX,
    keys::SERVICE_BY_AUDIENCE_PREFIX,
    keys::TOKEN_PREFIX,
    keys::SIGNING_KEY_PREFIX,
    keys::SIGNING_KEY_IN_FORCE_PREFIX,
    keys::SIGNING_KEY_RETIRED_PREFIX,
    keys::DEVICE_PREFIX,
    keys::DEVICE_BY_OWNER_PREFIX,
    keys::SESSION_PREFIX,
    keys::SESSION_BY_PRINCIPAL_PREFIX,
    keys::DELEGATION_PREFIX,
    keys::DELEGATION_BY_GRANTEE_PREFIX,
    keys::FEDERATED_PREFIX,
    keys::BUDGET_USAGE_PREFIX,
    keys::POLICY_VERSION_PREFIX,
    keys::POLICY_ACTIVATION,
    keys::OPERATOR_PREFIX,
];

/// A row: its key and its value.
type Row = (Vec<u8>, Vec<u8>);

/// A version's first byte when the row was written.
const PRESENT: u8 = 0x01;
/// A version's only byte when the row was deleted.
const DELETED: u8 = 0x00;

/// The versioned table `key` belongs to, if any.
fn versioned_table(key: &[u8]) -> Option<&'static [u8]> {
    VERSIONED_TABLES
        .iter()
        .copied()
        .find(|table| key.starts_with(table))
}

/// Whether rows under `key` are projections, which keep their versions.
pub fn is_versioned(key: &[u8]) -> bool {
    versioned_table(key).is_some()
}

/// Adds to `out` one version, at `seq`, of every versioned row `writes` puts or deletes.
pub fn record_versions(writes: &WriteSet, seq: u64, out: &mut WriteSet) {
    for (key, value) in &writes.ops {
        if !is_versioned(key) {
            continue;
        }
        let version = match value {
            Some(row) => {
                let mut version = Vec::with_capacity(row.len().saturating_add(1));
                version.push(PRESENT);
                version.extend_from_slice(row);
                version
            }
            None => vec![DELETED],
        };
        out.put(keys::version(key, seq), version);
    }
}

/// Records that the events up to `last_seq` are stamped at or before `time_unix_ms`.
pub fn record_time(writes: &mut WriteSet, time_unix_ms: u64, last_seq: u64) {
    writes.put(
        keys::version_time(time_unix_ms),
        last_seq.to_be_bytes().to_vec(),
    );
}

/// The last seq stamped at or before `time_unix_ms`; 0 when none is.
///
/// Batch stamps never decrease along the log (the proposer holds them monotonic), so the entry
/// at the greatest time at or before `time_unix_ms` holds the greatest seq stamped by then.
pub fn seq_at_time(state: &dyn StateRead, time_unix_ms: u64) -> Result<u64, StateError> {
    let end = keys::successor(&keys::version_time(time_unix_ms));
    match state.last_before(keys::VERSION_TIME_PREFIX, &end)? {
        None => Ok(0),
        Some((key, value)) => match <[u8; 8]>::try_from(value.as_slice()) {
            Ok(seq) => Ok(u64::from_be_bytes(seq)),
            Err(_) => Err(StateError::corrupt(
                &key,
                format!("{} bytes where a u64 seq was expected", value.len()),
            )),
        },
    }
}

/// The state as it was after the event at `seq`: every projection read answers from the
/// version current then, events and the last seq stop at `seq`. A seek per point read, never
/// a replay.
pub struct AsOf<'a> {
    base: &'a dyn StateRead,
    seq: u64,
}

/// What the unversioned rows of the base look like as of a seq.
enum Unversioned {
    /// The row, possibly rewritten (the last seq, capped).
    Row(Vec<u8>, Vec<u8>),
    /// Not there then, and neither is any row after it in its table (an event past the seq).
    SkipTable,
}

impl<'a> AsOf<'a> {
    pub fn new(base: &'a dyn StateRead, seq: u64) -> Self {
        Self { base, seq }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The value of versioned `key` after the event at `self.seq`: its latest version at or
    /// before it, unless that version deleted it.
    fn version_at(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let end = keys::successor(&keys::version(key, self.seq));
        let Some((version_key, version)) = self.base.last_before(&keys::versions_of(key), &end)?
        else {
            return Ok(None);
        };
        match version.split_first() {
            Some((&PRESENT, row)) => Ok(Some(row.to_vec())),
            Some((&DELETED, [])) => Ok(None),
            _ => Err(StateError::corrupt(
                &version_key,
                "a version is 0x01 + the row or 0x00 alone",
            )),
        }
    }

    /// The versioned key a version row names, checked.
    fn versioned_key(version_key: &[u8]) -> Result<(Vec<u8>, u64), StateError> {
        match keys::version_parts(version_key) {
            Some((key, seq)) if is_versioned(&key) => Ok((key, seq)),
            _ => Err(StateError::corrupt(
                version_key,
                "not the version of a projection row",
            )),
        }
    }

    /// Up to `limit` versioned rows under `prefix` from `lower`, as of `self.seq`.
    fn versioned_rows(
        &self,
        prefix: &[u8],
        lower: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StateError> {
        let versions = keys::versions_under(prefix);
        let mut cursor = keys::versions_under(lower);
        let mut rows = Vec::new();
        while rows.len() < limit {
            // Seek one: the first version of the next key.
            let Some((version_key, _)) = self.base.scan(&versions, &cursor, 1)?.pop() else {
                break;
            };
            let (key, first_seq) = Self::versioned_key(&version_key)?;
            let next = keys::versions_after(&key);
            if next <= cursor {
                return Err(StateError::Storage(format!(
                    "scan from {} returned {}",
                    keys::display(&cursor),
                    keys::display(&version_key)
                )));
            }
            cursor = next;
            // Seek two, unless the key was first written after the seq.
            if first_seq <= self.seq
                && let Some(row) = self.version_at(&key)?
            {
                rows.push((key, row));
            }
        }
        Ok(rows)
    }

    /// The greatest versioned row under `prefix` before `end`, as of `self.seq`.
    fn versioned_last_before(&self, prefix: &[u8], end: &[u8]) -> Result<Option<Row>, StateError> {
        let versions = keys::versions_under(prefix);
        // Every version of a key below `end` sorts below `end`'s escape, and no other does.
        let mut bound = keys::versions_under(end);
        while let Some((version_key, _)) = self.base.last_before(&versions, &bound)? {
            let (key, _) = Self::versioned_key(&version_key)?;
            if let Some(row) = self.version_at(&key)? {
                return Ok(Some((key, row)));
            }
            bound = keys::versions_under(&key);
            if bound.as_slice() >= version_key.as_slice() {
                return Err(StateError::Storage(format!(
                    "reverse seek returned {}",
                    keys::display(&version_key)
                )));
            }
        }
        Ok(None)
    }

    /// `key` and `value` of the base as of `self.seq`, for a key no version covers.
    fn unversioned(&self, key: Vec<u8>, value: Vec<u8>) -> Unversioned {
        if key == keys::LAST_SEQ
            && let Ok(stored) = <[u8; 8]>::try_from(value.as_slice())
        {
            let capped = u64::from_be_bytes(stored).min(self.seq);
            return Unversioned::Row(key, capped.to_be_bytes().to_vec());
        }
        match keys::event_seq(&key) {
            Some(seq) if seq > self.seq => Unversioned::SkipTable,
            _ => Unversioned::Row(key, value),
        }
    }

    /// Up to `limit` rows under `prefix` from `lower` that keep no versions, as of `self.seq`.
    /// Versioned tables and later events are jumped over whole, a seek each.
    fn unversioned_rows(
        &self,
        prefix: &[u8],
        lower: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StateError> {
        let mut rows = Vec::new();
        let mut cursor = lower.to_vec();
        'pages: while rows.len() < limit {
            let page = self.base.scan(prefix, &cursor, limit)?;
            let exhausted = page.len() < limit;
            for (key, value) in page {
                // A store that returned rows before the cursor would make this loop spin.
                if key < cursor || !key.starts_with(prefix) {
                    return Err(StateError::Storage(format!(
                        "scan from {} returned {}",
                        keys::display(&cursor),
                        keys::display(&key)
                    )));
                }
                let versioned = versioned_table(&key);
                let table = versioned.or_else(|| {
                    key.starts_with(keys::EVENT_PREFIX)
                        .then_some(keys::EVENT_PREFIX)
                });
                let row = match versioned {
                    Some(_) => Unversioned::SkipTable,
                    None => self.unversioned(key, value),
                };
                match row {
                    Unversioned::Row(key, value) => {
                        cursor = keys::successor(&key);
                        rows.push((key, value));
                        if rows.len() == limit {
                            break 'pages;
                        }
                    }
                    Unversioned::SkipTable => {
                        // Nothing of this table is visible from here on: resume past it.
                        match table.and_then(keys::prefix_end) {
                            Some(past) if past > cursor => cursor = past,
                            _ => break 'pages,
                        }
                        continue 'pages;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(rows)
    }

    /// The greatest row under `prefix` before `end` that keeps no versions, as of `self.seq`.
    fn unversioned_last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<Row>, StateError> {
        let mut bound = end.to_vec();
        while let Some((key, value)) = self.base.last_before(prefix, &bound)? {
            let next_bound = match versioned_table(&key) {
                Some(table) => table.to_vec(),
                None => match self.unversioned(key.clone(), value) {
                    Unversioned::Row(key, value) => return Ok(Some((key, value))),
                    // Events sort by seq: the visible ones are all below seq + 1.
                    Unversioned::SkipTable => keys::event(self.seq.saturating_add(1)),
                },
            };
            if next_bound >= bound || next_bound > key {
                return Err(StateError::Storage(format!(
                    "reverse seek before {} returned {}",
                    keys::display(&bound),
                    keys::display(&key)
                )));
            }
            bound = next_bound;
        }
        Ok(None)
    }
}

/// Whether a key under `prefix` may be versioned, and whether it may not be.
fn regions(prefix: &[u8]) -> (bool, bool) {
    let inside_versioned = is_versioned(prefix);
    let may_be_versioned = inside_versioned
        || VERSIONED_TABLES
            .iter()
            .any(|table| table.starts_with(prefix));
    (may_be_versioned, !inside_versioned)
}

/// The first `limit` rows of two ascending lists with no key in common, ascending.
fn merge(left: Vec<Row>, right: Vec<Row>, limit: usize) -> Vec<Row> {
    let mut rows = Vec::with_capacity(left.len().saturating_add(right.len()).min(limit));
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while rows.len() < limit {
        let take_left = match (left.peek(), right.peek()) {
            (Some((l, _)), Some((r, _))) => l < r,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        rows.extend(next);
    }
    rows
}

impl StateRead for AsOf<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if is_versioned(key) {
            return self.version_at(key);
        }
        let Some(value) = self.base.get(key)? else {
            return Ok(None);
        };
        match self.unversioned(key.to_vec(), value) {
            Unversioned::Row(_, value) => Ok(Some(value)),
            Unversioned::SkipTable => Ok(None),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let lower = if prefix < start { start } else { prefix };
        let (may_be_versioned, may_be_unversioned) = regions(prefix);
        let versioned = match may_be_versioned {
            true => self.versioned_rows(prefix, lower, limit)?,
            false => Vec::new(),
        };
        let unversioned = match may_be_unversioned {
            true => self.unversioned_rows(prefix, lower, limit)?,
            false => Vec::new(),
        };
        Ok(merge(versioned, unversioned, limit))
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        let (may_be_versioned, may_be_unversioned) = regions(prefix);
        let versioned = match may_be_versioned {
            true => self.versioned_last_before(prefix, end)?,
            false => None,
        };
        let unversioned = match may_be_unversioned {
            true => self.unversioned_last_before(prefix, end)?,
            false => None,
        };
        Ok(match (versioned, unversioned) {
            (Some(left), Some(right)) => Some(if left.0 > right.0 { left } else { right }),
            (left, right) => left.or(right),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::InMemoryState;

    /// A store whose history: seq 1 writes h\0a and the event, seq 2 writes h\0b, seq 3
    /// deletes h\0a and rewrites h\0b; plus an idempotency row, which keeps no version.
    fn store() -> InMemoryState {
        let mut state = InMemoryState::new();
        type Command<'a> = (u64, Vec<(&'a str, Option<&'a str>)>);
        let commands: [Command<'_>; 3] = [
            (1, vec![("h\0a", Some("a1"))]),
            (2, vec![("h\0b", Some("b2"))]),
            (3, vec![("h\0a", None), ("h\0b", Some("b3"))]),
        ];
        for (seq, rows) in commands {
            let mut writes = WriteSet::new();
            for (key, value) in rows {
                match value {
                    Some(value) => writes.put(key.as_bytes().to_vec(), value.as_bytes().to_vec()),
                    None => writes.delete(key.as_bytes().to_vec()),
                }
            }
            writes.put(keys::event(seq), vec![seq as u8]);
            writes.put(b"i\0key".to_vec(), b"idem".to_vec());
            let mut versions = WriteSet::new();
            record_versions(&writes, seq, &mut versions);
            writes.extend(versions);
            writes.put(keys::LAST_SEQ.to_vec(), seq.to_be_bytes().to_vec());
            record_time(&mut writes, 1000 * seq, seq);
            state.apply_writes(&writes);
        }
        state
    }

    fn keys_of(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
        rows.iter().map(|(key, _)| keys::display(key)).collect()
    }

    #[test]
    fn only_projection_rows_keep_versions() {
        let state = store();
        let versions = state.scan(keys::VERSION_PREFIX, b"", 100).unwrap();
        assert_eq!(
            keys_of(&versions),
            [
                "v\\x00h\\x00\\xffa\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01",
                "v\\x00h\\x00\\xffa\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x03",
                "v\\x00h\\x00\\xffb\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02",
                "v\\x00h\\x00\\xffb\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x03",
            ]
        );
        assert_eq!(versions[1].1, [DELETED]);
        assert_eq!(versions[3].1, b"\x01b3");
        assert!(is_versioned(keys::POLICY_ACTIVATION));
        assert!(!is_versioned(&keys::event(1)));
        assert!(!is_versioned(keys::LAST_SEQ));
        assert!(!is_versioned(&keys::version(b"h\0a", 1)));
    }

    #[test]
    fn reads_as_of_each_seq() {
        let state = store();
        let get = |seq, key: &str| AsOf::new(&state, seq).get(key.as_bytes()).unwrap();
        assert_eq!(get(0, "h\0a"), None);
        assert_eq!(get(1, "h\0a"), Some(b"a1".to_vec()));
        assert_eq!(get(2, "h\0a"), Some(b"a1".to_vec()));
        assert_eq!(get(3, "h\0a"), None);
        assert_eq!(get(2, "h\0b"), Some(b"b2".to_vec()));
        assert_eq!(get(u64::MAX, "h\0b"), Some(b"b3".to_vec()));
        // Unversioned rows pass through; events and the last seq stop at the seq.
        assert_eq!(get(0, "i\0key"), Some(b"idem".to_vec()));
        assert_eq!(AsOf::new(&state, 1).get(&keys::event(2)).unwrap(), None);
        assert_eq!(
            AsOf::new(&state, 2).get(&keys::event(2)).unwrap(),
            Some(vec![2])
        );
        assert_eq!(
            AsOf::new(&state, 2).get(keys::LAST_SEQ).unwrap(),
            Some(2u64.to_be_bytes().to_vec())
        );
        assert_eq!(
            AsOf::new(&state, 9).get(keys::LAST_SEQ).unwrap(),
            Some(3u64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn scans_and_reverse_seeks_merge_versioned_and_other_rows() {
        let state = store();
        let as_of = AsOf::new(&state, 2);
        let all = as_of.scan(b"", b"", 100).unwrap();
        let keys = keys_of(&all);
        // Events 1 and 2, the projection as of 2, the capped last seq, then the history rows
        // (which pass through).
        assert_eq!(
            &keys[..6],
            [
                "e\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01",
                "e\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02",
                "h\\x00a",
                "h\\x00b",
                "i\\x00key",
                "m\\x00last_seq",
            ]
        );
        assert_eq!(all[5].1, 2u64.to_be_bytes());
        assert_eq!(as_of.scan(b"", b"", 3).unwrap(), all[..3].to_vec());
        assert_eq!(
            as_of.scan(b"h\0", b"h\0a\0", 10).unwrap(),
            all[3..4].to_vec()
        );
        assert_eq!(
            AsOf::new(&state, 3).scan(b"h\0", b"", 10).unwrap(),
            vec![(b"h\0b".to_vec(), b"b3".to_vec())]
        );
        let last = |seq, prefix: &[u8], end: &[u8]| {
            AsOf::new(&state, seq)
                .last_before(prefix, end)
                .unwrap()
                .map(|(key, _)| keys::display(&key))
        };
        assert_eq!(last(2, b"h\0", b"h\0z").as_deref(), Some("h\\x00b"));
        assert_eq!(last(1, b"h\0", b"h\0z").as_deref(), Some("h\\x00a"));
        assert_eq!(last(0, b"h\0", b"h\0z"), None);
        // Across tables: below the projection lie the events visible at the seq.
        assert_eq!(
            last(1, b"", b"h\0a").as_deref(),
            Some("e\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01")
        );
        assert_eq!(last(3, b"", b"i").as_deref(), Some("h\\x00b"));
    }

    #[test]
    fn times_map_to_the_last_seq_stamped_by_then() {
        let state = store();
        assert_eq!(seq_at_time(&state, 0).unwrap(), 0);
        assert_eq!(seq_at_time(&state, 999).unwrap(), 0);
        assert_eq!(seq_at_time(&state, 1000).unwrap(), 1);
        assert_eq!(seq_at_time(&state, 2999).unwrap(), 2);
        assert_eq!(seq_at_time(&state, u64::MAX).unwrap(), 3);
    }

    #[test]
    fn a_malformed_version_is_corrupt() {
        let mut state = store();
        let mut writes = WriteSet::new();
        writes.put(keys::version(b"h\0c", 1), vec![7]);
        state.apply_writes(&writes);
        assert!(matches!(
            AsOf::new(&state, 1).get(b"h\0c"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
