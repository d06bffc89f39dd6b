//! openraft's type configuration for Warrant, and the small types that several modules share.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::limits::ENTRY_OVERHEAD_BYTES_MAX;

/// A node's id in the cluster. Never reused: a wiped node rejoins under a new id.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Warrant's Raft types: each entry carries one encoded `warrant.log.v1.Batch`.
    pub TypeConfig:
        D = BatchPayload,
        R = BatchResponse,
        NodeId = NodeId,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A member as the membership records it: where clients reach it, and where its peers do.
///
/// Two listeners, because peer RPCs need mutual TLS and must not be reachable where clients
/// connect (see `peer_auth`). `addr` is what a client is told to dial when this node leads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    /// The public gRPC address, `host:port`.
    pub addr: String,
    /// The peer listener's address, `host:port`.
    pub peer_addr: String,
}

/// The application payload of a Raft entry: a protobuf-encoded `warrant.log.v1.Batch`.
///
/// It stays encoded so that the bytes in the Raft log are exactly the bytes auditors read.
/// Serialized as serde bytes, not as a sequence of `u8`: postcard writes both as a length and
/// the bytes (so entries already in a log, or sent by a node of an earlier version, read the
/// same), but a sequence goes byte by byte, which made encoding and decoding a catching-up
/// follower's AppendEntries outlast its timeout.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BatchPayload(pub Vec<u8>);

impl Serialize for BatchPayload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for BatchPayload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_byte_buf(BytesVisitor)
            .map(BatchPayload)
    }
}

struct BytesVisitor;

impl serde::de::Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an encoded batch")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }
}

impl fmt::Debug for BatchPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Batches may carry credential hashes; never print their bytes.
        write!(f, "BatchPayload({} bytes)", self.0.len())
    }
}

/// At least what `entry` encodes to with postcard: what it adds to an AppendEntries. A batch is
/// counted by its length, without walking its bytes: this runs for every entry replicated.
pub(crate) fn entry_bytes_max(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(batch) => {
            batch.0.len().saturating_add(ENTRY_OVERHEAD_BYTES_MAX)
        }
        // Blank and membership entries are small: measured exactly.
        openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => {
            postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX)
        }
    }
}

/// The state machine's answer to one entry: a protobuf-encoded `warrant.log.v1.BatchOutcomes`.
/// Empty for blank and membership entries.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse(pub Vec<u8>);

impl fmt::Debug for BatchResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchResponse({} bytes)", self.0.len())
    }
}

/// A snapshot as openraft moves it around: a handle to a file on disk, never the bytes.
///
/// See [`crate::snapshot`] for the file format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
}

/// How far this node has applied: the Raft log index and the last event seq.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedPosition {
    pub log_index: u64,
    pub seq: u64,
}

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StorageIOError = openraft::StorageIOError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MemberNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MemberNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Frozen bytes: how the earlier derived `Serialize` (a sequence of `u8`) wrote a payload.
    /// Logs on disk and peers of that version hold these; the bytes encoding must read them and
    /// write them back unchanged.
    #[test]
    fn a_payload_encodes_as_the_sequence_it_replaced() {
        let frozen: &[u8] = &[0x03, 0x0a, 0x0b, 0x0c];
        let payload = BatchPayload(vec![0x0a, 0x0b, 0x0c]);
        assert_eq!(postcard::to_allocvec(&payload).expect("encode"), frozen);
        let decoded: BatchPayload = postcard::from_bytes(frozen).expect("decode");
        assert_eq!(decoded, payload);
        // A length past one varint byte, as every real batch has.
        let long = vec![0x5a_u8; 300];
        let as_sequence = postcard::to_allocvec(&long).expect("encode as a sequence");
        assert_eq!(&as_sequence[..2], &[0xac, 0x02]);
        let payload = BatchPayload(long);
        assert_eq!(
            postcard::to_allocvec(&payload).expect("encode"),
            as_sequence
        );
        let decoded: BatchPayload = postcard::from_bytes(&as_sequence).expect("decode");
        assert_eq!(decoded, payload);
    }
}

/// What a stopping leader tells the voter it asks to take over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Succession {
    /// The term the leader leads in.
    pub term: u64,
    /// The leader's last log index.
    pub last_log_index: u64,
    /// How long the leader would still refuse a vote itself (its own lease).
    pub leader_lease_left: std::time::Duration,
}
