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

use crate::state::{StateError, StateRead, WriteSet};

/// Whether rows under `key` are projections, which keep their versions.
pub fn is_versioned(key: &[u8]) -> bool {
    todo!("{key:?}")
}

/// Adds to `out` one version, at `seq`, of every versioned row `writes` puts or deletes.
pub fn record_versions(writes: &WriteSet, seq: u64, out: &mut WriteSet) {
    todo!("{writes:?}{seq}{out:?}")
}

/// Records that the events up to `last_seq` are stamped at or before `time_unix_ms`.
pub fn record_time(writes: &mut WriteSet, time_unix_ms: u64, last_seq: u64) {
    todo!("{writes:?}{time_unix_ms}{last_seq}")
}

/// The last seq stamped at or before `time_unix_ms`; 0 when none is.
pub fn seq_at_time(state: &dyn StateRead, time_unix_ms: u64) -> Result<u64, StateError> {
    todo!("{:p}{time_unix_ms}", state)
}

/// The state as it was after the event at `seq`: every projection read answers from the
/// version current then, events and the last seq stop at `seq`. A seek per point read, never
/// a replay.
pub struct AsOf<'a> {
    base: &'a dyn StateRead,
    seq: u64,
}

impl<'a> AsOf<'a> {
    pub fn new(base: &'a dyn StateRead, seq: u64) -> Self {
        Self { base, seq }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl StateRead for AsOf<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        todo!("{:p}{key:?}", self.base)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        todo!("{prefix:?}{start:?}{limit}")
    }

    fn last_before(
        &self,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        todo!("{prefix:?}{end:?}")
    }
}
