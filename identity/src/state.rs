//! How the model reads state and says what to write.
//!
//! **API Boundary:** [`StateRead`] is all the model knows about storage. The raft crate
//! implements it over RocksDB; [`InMemoryState`] implements it over a map for tests and
//! simulation. `apply` never writes: it returns a [`WriteSet`] that the caller commits atomically
//! together with the applied log id.

use std::{collections::BTreeMap, ops::Bound};

use crate::keys;

/// Read access to the state store: point reads and ordered prefix scans.
pub trait StateRead {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// Up to `limit` rows whose key starts with `prefix` and is >= `start`, ascending key order.
    /// `start` may be empty or shorter than prefix (then it means "from the prefix").
    // The row type is spelled out, not aliased: implementors in other crates write it as is.
    #[allow(clippy::type_complexity)]
    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError>;

    /// The row with the greatest key that starts with `prefix` and sorts before `end`
    /// (exclusive), if any: one reverse seek, how as-of reads find the version current at a seq.
    #[allow(clippy::type_complexity)]
    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError>;
}

/// A failure to read state. Never a domain rejection: those are `Outcome`s.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed to read.
    #[error("storage: {0}")]
    Storage(String),
    /// A row could not be decoded, or contradicts another row.
    #[error("corrupt row {key}: {reason}")]
    Corrupt {
        /// The row's key, rendered with [`keys::display`].
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl StateError {
    /// A corrupt-row error for `key`.
    pub fn corrupt(key: &[u8], reason: impl Into<String>) -> Self {
        Self::Corrupt {
            key: keys::display(key),
            reason: reason.into(),
        }
    }
}

/// The writes one batch wants made, to be committed atomically. Ordered by key, so the writes
/// are the same bytes on every replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// Key to new value; `None` deletes the row.
    pub ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteSet {
    /// An empty write set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `key`, replacing any earlier write to `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert(key, Some(value));
    }

    /// Deletes the row under `key`, replacing any earlier write to `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.insert(key, None);
    }

    /// Adds every write of `later`, which wins where both write the same key.
    pub fn extend(&mut self, later: WriteSet) {
        self.ops.extend(later.ops);
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of keys written or deleted.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// State in a sorted map: the reference store for tests and simulation.
#[derive(Clone, Debug, Default)]
pub struct InMemoryState {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl InMemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `writes`.
    pub fn apply_writes(&mut self, writes: &WriteSet) {
        for (key, value) in &writes.ops {
            match value {
                Some(value) => self.rows.insert(key.clone(), value.clone()),
                None => self.rows.remove(key),
            };
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl StateRead for InMemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.rows.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let rows = self
            .rows
            .range(scan_lower_bound(prefix, start).to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(rows)
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        let Some(end) = last_before_end(prefix, end) else {
            return Ok(None);
        };
        let range = (
            Bound::Included(prefix.to_vec()),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        Ok(self
            .rows
            .range::<Vec<u8>, _>(range)
            .next_back()
            .map(|(key, value)| (key.clone(), value.clone())))
    }
}

/// Where a reverse seek for the last row under `prefix` before `end` stops (exclusive): `end`,
/// or the first key past the prefix when that is smaller, so that the row found always carries
/// the prefix; `Some(None)` means no bound past the prefix (a prefix of 0xff bytes only), `None`
/// that no key can qualify (`end` is not past `prefix`).
pub fn last_before_end(prefix: &[u8], end: &[u8]) -> Option<Option<Vec<u8>>> {
    if end <= prefix {
        return None;
    }
    Some(match keys::prefix_end(prefix) {
        Some(prefix_end) if prefix_end.as_slice() < end => Some(prefix_end),
        _ => Some(end.to_vec()),
    })
}

/// Reads through pending writes to the state below: what `apply` reads while deciding a batch, so
/// that each command sees the writes of the commands before it. The state machine uses it the same
/// way across the entries of one `apply` call.
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    writes: WriteSet,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateRead) -> Self {
        Self {
            base,
            writes: WriteSet::new(),
        }
    }

    /// Layers `writes` over what is already pending; later writes win.
    pub fn write(&mut self, writes: WriteSet) {
        self.writes.extend(writes);
    }

    pub fn into_writes(self) -> WriteSet {
        self.writes
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.ops.get(key) {
            Some(pending) => Ok(pending.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let lower = scan_lower_bound(prefix, start);
        let mut pending = self
            .writes
            .ops
            .range(lower.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .peekable();
        let mut rows = Vec::new();
        let mut cursor = lower.to_vec();
        // Base rows may be deleted or replaced by pending writes, so a base page can yield fewer
        // rows than asked for; keep paging until the result is full or the base runs out.
        while rows.len() < limit {
            let page = self.base.scan(prefix, &cursor, limit)?;
            let base_exhausted = page.len() < limit;
            for (key, value) in page {
                // A store that returned rows before the cursor would make this loop spin forever.
                if key.as_slice() < cursor.as_slice() || !key.starts_with(prefix) {
                    return Err(StateError::Storage(format!(
                        "scan from {} returned {} out of range",
                        keys::display(&cursor),
                        keys::display(&key)
                    )));
                }
                while let Some((pending_key, pending_value)) =
                    pending.next_if(|(pending_key, _)| pending_key.as_slice() < key.as_slice())
                {
                    if let Some(pending_value) = pending_value {
                        rows.push((pending_key.clone(), pending_value.clone()));
                    }
                }
                match pending.next_if(|(pending_key, _)| pending_key.as_slice() == key.as_slice()) {
                    Some((_, Some(pending_value))) => {
                        rows.push((key.clone(), pending_value.clone()))
                    }
                    Some((_, None)) => {}
                    None => rows.push((key.clone(), value)),
                }
                cursor = keys::successor(&key);
            }
            if base_exhausted {
                rows.extend(pending.filter_map(|(key, value)| Some((key.clone(), value.clone()?))));
                break;
            }
        }
        rows.truncate(limit);
        Ok(rows)
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        let mut bound = end.to_vec();
        let mut base_best = self.base.last_before(prefix, &bound)?;
        // Each turn either answers or moves the bound below a pending delete, so this ends after
        // at most one turn per pending delete under the prefix.
        loop {
            let Some(limit) = last_before_end(prefix, &bound) else {
                return Ok(None);
            };
            let range = (
                Bound::Included(prefix.to_vec()),
                limit.map_or(Bound::Unbounded, Bound::Excluded),
            );
            let pending = self.writes.ops.range::<Vec<u8>, _>(range).next_back();
            match (pending, &base_best) {
                (None, _) => return Ok(base_best),
                (Some((pending_key, _)), Some((base_key, _))) if base_key > pending_key => {
                    return Ok(base_best);
                }
                (Some((pending_key, Some(value))), _) => {
                    return Ok(Some((pending_key.clone(), value.clone())));
                }
                (Some((pending_key, None)), _) => {
                    // The best candidate was deleted: look below it. The base's best stays
                    // valid unless it is the deleted row itself.
                    bound = pending_key.clone();
                    if base_best
                        .as_ref()
                        .is_some_and(|(base_key, _)| base_key >= &bound)
                    {
                        base_best = self.base.last_before(prefix, &bound)?;
                    }
                }
            }
        }
    }
}

/// Where a scan starts: `start`, unless `prefix` sorts after it.
fn scan_lower_bound<'k>(prefix: &'k [u8], start: &'k [u8]) -> &'k [u8] {
    if prefix < start { start } else { prefix }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rows(state: &dyn StateRead, prefix: &[u8], start: &[u8], limit: usize) -> Vec<String> {
        let rows = state.scan(prefix, start, limit).unwrap();
        rows.iter()
            .map(|(key, value)| format!("{}={}", keys::display(key), keys::display(value)))
            .collect()
    }

    fn store(pairs: &[(&str, &str)]) -> InMemoryState {
        let mut writes = WriteSet::new();
        for (key, value) in pairs {
            writes.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        state
    }

    #[test]
    fn scan_honours_prefix_start_and_limit() {
        let state = store(&[
            ("a", "0"),
            ("b1", "1"),
            ("b2", "2"),
            ("b3", "3"),
            ("c", "4"),
        ]);
        assert_eq!(rows(&state, b"b", b"", 10), ["b1=1", "b2=2", "b3=3"]);
        assert_eq!(rows(&state, b"b", b"a", 10), ["b1=1", "b2=2", "b3=3"]);
        assert_eq!(rows(&state, b"b", b"b2", 10), ["b2=2", "b3=3"]);
        assert_eq!(rows(&state, b"b", b"b1\0", 1), ["b2=2"]);
        assert_eq!(rows(&state, b"b", b"c", 10), Vec::<String>::new());
        assert_eq!(rows(&state, b"b", b"", 0), Vec::<String>::new());
        assert_eq!(rows(&state, b"", b"", 10).len(), 5);
    }

    #[test]
    fn overlay_reads_through_pending_writes() {
        let base = store(&[("b1", "1"), ("b2", "2"), ("b3", "3")]);
        let mut overlay = Overlay::new(&base);
        let mut writes = WriteSet::new();
        writes.delete(b"b1".to_vec());
        writes.put(b"b2".to_vec(), b"two".to_vec());
        writes.put(b"b25".to_vec(), b"new".to_vec());
        writes.delete(b"b9".to_vec());
        overlay.write(writes);
        assert_eq!(overlay.get(b"b1").unwrap(), None);
        assert_eq!(overlay.get(b"b2").unwrap(), Some(b"two".to_vec()));
        assert_eq!(overlay.get(b"b3").unwrap(), Some(b"3".to_vec()));
        assert_eq!(rows(&overlay, b"b", b"", 10), ["b2=two", "b25=new", "b3=3"]);
        assert_eq!(rows(&overlay, b"b", b"", 1), ["b2=two"]);
        assert_eq!(rows(&overlay, b"b", b"b2\0", 1), ["b25=new"]);
    }

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(0xffu8)],
            0..4,
        )
    }

    fn arb_writes() -> impl Strategy<Value = WriteSet> {
        proptest::collection::btree_map(arb_key(), proptest::option::of(arb_key()), 0..12)
            .prop_map(|ops| WriteSet { ops })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Scanning through an overlay equals scanning the store after committing the writes.
        #[test]
        fn overlay_scan_matches_committed_writes(
            base_writes in arb_writes(),
            pending in arb_writes(),
            prefix in arb_key(),
            start in arb_key(),
            limit in 0usize..6,
        ) {
            let mut base = InMemoryState::new();
            base.apply_writes(&base_writes);
            let mut committed = base.clone();
            committed.apply_writes(&pending);
            let mut overlay = Overlay::new(&base);
            overlay.write(pending);
            prop_assert_eq!(
                overlay.scan(&prefix, &start, limit).unwrap(),
                committed.scan(&prefix, &start, limit).unwrap()
            );
            prop_assert_eq!(overlay.get(&prefix).unwrap(), committed.get(&prefix).unwrap());
        }

        /// A reverse seek through an overlay equals one on the store after committing the
        /// writes, pending deletes and replacements included.
        #[test]
        fn overlay_last_before_matches_committed_writes(
            base_writes in arb_writes(),
            pending in arb_writes(),
            prefix in arb_key(),
            end in arb_key(),
        ) {
            let mut base = InMemoryState::new();
            base.apply_writes(&base_writes);
            let mut committed = base.clone();
            committed.apply_writes(&pending);
            let mut overlay = Overlay::new(&base);
            overlay.write(pending);
            let expected = committed.last_before(&prefix, &end).unwrap();
            // The reference itself: the greatest key under the prefix before the end.
            let greatest = committed
                .scan(&prefix, b"", usize::MAX)
                .unwrap()
                .into_iter()
                .rfind(|(key, _)| key.as_slice() < end.as_slice());
            prop_assert_eq!(&expected, &greatest);
            prop_assert_eq!(overlay.last_before(&prefix, &end).unwrap(), expected);
        }
    }

    #[test]
    fn last_before_stays_under_the_prefix() {
        let state = store(&[
            ("a", "0"),
            ("b1", "1"),
            ("b2", "2"),
            ("c", "3"),
            ("\u{7f}", "4"),
        ]);
        let last = |prefix: &str, end: &str| {
            state
                .last_before(prefix.as_bytes(), end.as_bytes())
                .unwrap()
                .map(|(key, _)| String::from_utf8(key).unwrap())
        };
        assert_eq!(last("b", "z").as_deref(), Some("b2"));
        assert_eq!(last("b", "b2").as_deref(), Some("b1"));
        assert_eq!(last("b", "b1").as_deref(), None);
        assert_eq!(last("b", "a").as_deref(), None);
        assert_eq!(last("", "b").as_deref(), Some("a"));
        assert_eq!(last("", "\u{7f}\u{7f}").as_deref(), Some("\u{7f}"));
        assert_eq!(last("d", "z").as_deref(), None);
    }
}
