//! The limits that more than one module of this crate must agree on: the peer client and the
//! peer server (message and snapshot sizes, forwarding depth), and the proposer and the peer
//! client (the queue length a refused proposal reports).
//!
//! A limit only one module uses stays beside its use.

use std::time::Duration;

/// The largest peer message accepted: a full AppendEntries of `max_payload_entries` batches.
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Snapshot bytes per streamed message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks read ahead of the network on the sending side: with the chunk size, this bounds the
/// sender's memory for a snapshot of any size.
pub const SNAPSHOT_CHUNKS_AHEAD_MAX: usize = 2;
/// The largest snapshot a node accepts.
pub const SNAPSHOT_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// A snapshot stream that goes quiet for this long is abandoned.
pub const SNAPSHOT_CHUNK_WAIT_MAX: Duration = Duration::from_secs(30);
/// Forwarding stops after this many nodes: a follower, then at most one stale leader.
pub const FORWARD_HOPS_MAX: u32 = 2;
/// Commands waiting for a batch. Beyond this, proposals are refused with `Overloaded`.
pub const QUEUE_LEN_MAX: usize = 16_384;
