//! A fingerprint of the whole state, for comparing replicas and checking snapshots.

use sha2::{Digest, Sha256};

use crate::{
    keys,
    state::{StateError, StateRead},
};

/// Rows read per scan while hashing; bounds memory, whatever the size of the state.
const DIGEST_PAGE_ROWS: usize = 1024;

/// SHA-256 over every row in key order, each framed as: key length (u32 BE), key, value length
/// (u32 BE), value. Two stores with the same rows have the same digest, whatever their backing.
pub fn state_digest(state: &dyn StateRead) -> Result<[u8; 32], StateError> {
    let mut hasher = Sha256::new();
    let mut previous: Option<Vec<u8>> = None;
    loop {
        let start = previous.as_deref().map(keys::successor).unwrap_or_default();
        let page = state.scan(b"", &start, DIGEST_PAGE_ROWS)?;
        let page_len = page.len();
        for (key, value) in page {
            // Strictly ascending keys are what makes the digest canonical, and what guarantees
            // that the next page starts after this one.
            if previous
                .as_deref()
                .is_some_and(|previous| key.as_slice() <= previous)
            {
                return Err(StateError::Storage(format!(
                    "scan returned {} out of order",
                    keys::display(&key)
                )));
            }
            hasher.update(frame_len(&key, &key)?);
            hasher.update(&key);
            hasher.update(frame_len(&key, &value)?);
            hasher.update(&value);
            previous = Some(key);
        }
        if page_len < DIGEST_PAGE_ROWS {
            return Ok(hasher.finalize().into());
        }
    }
}

fn frame_len(key: &[u8], bytes: &[u8]) -> Result<[u8; 4], StateError> {
    match u32::try_from(bytes.len()) {
        Ok(len) => Ok(len.to_be_bytes()),
        Err(_) => Err(StateError::corrupt(key, "row longer than 4 GiB")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::{InMemoryState, WriteSet};

    fn state(rows: &[(&[u8], &[u8])]) -> InMemoryState {
        let mut writes = WriteSet::new();
        for (key, value) in rows {
            writes.put(key.to_vec(), value.to_vec());
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        state
    }

    #[test]
    fn empty_state_hashes_nothing() {
        let expected: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(state_digest(&InMemoryState::new()).unwrap(), expected);
    }

    #[test]
    fn rows_are_framed_with_lengths() {
        let mut framed = Vec::new();
        framed.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 2, b'x', b'y']);
        framed.extend_from_slice(&[0, 0, 0, 2, b'b', b'c', 0, 0, 0, 0]);
        let expected: [u8; 32] = Sha256::digest(&framed).into();
        let actual = state_digest(&state(&[(b"bc", b""), (b"a", b"xy")])).unwrap();
        assert_eq!(hex::encode(actual), hex::encode(expected));
    }

    #[test]
    fn framing_tells_row_boundaries_apart() {
        let one = state_digest(&state(&[(b"ab", b"c")])).unwrap();
        let other = state_digest(&state(&[(b"a", b"bc")])).unwrap();
        assert_ne!(one, other);
    }

    #[test]
    fn pages_cover_every_row() {
        // More rows than one page, so a lost or repeated row at a page boundary changes the
        // digest compared with hashing the rows in one go.
        let n_rows = DIGEST_PAGE_ROWS * 2 + 3;
        let mut writes = WriteSet::new();
        let mut framed = Vec::new();
        for idx in 0..n_rows {
            let key = format!("row{idx:05}").into_bytes();
            let value = idx.to_be_bytes().to_vec();
            writes.put(key, value);
        }
        for (key, value) in writes.ops.iter() {
            let value = value.as_ref().unwrap();
            framed.extend_from_slice(&u32::try_from(key.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(key);
            framed.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(value);
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        let expected: [u8; 32] = Sha256::digest(&framed).into();
        assert_eq!(state_digest(&state).unwrap(), expected);
    }

    /// A store that ignores the scan start: the digest must fail instead of looping forever.
    struct StuckStore(InMemoryState);

    impl StateRead for StuckStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            self.0.get(key)
        }

        fn scan(
            &self,
            prefix: &[u8],
            _start: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
            self.0.scan(prefix, b"", limit)
        }

        fn last_before(
            &self,
            prefix: &[u8],
            end: &[u8],
        ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
            self.0.last_before(prefix, end)
        }
    }

    #[test]
    fn a_store_that_does_not_advance_is_an_error() {
        let mut writes = WriteSet::new();
        for idx in 0..DIGEST_PAGE_ROWS + 1 {
            writes.put(idx.to_be_bytes().to_vec(), Vec::new());
        }
        let mut inner = InMemoryState::new();
        inner.apply_writes(&writes);
        let err = state_digest(&StuckStore(inner)).unwrap_err();
        assert!(matches!(err, StateError::Storage(_)), "{err}");
    }
}
