//! The limits that more than one module of this crate must agree on: the peer client and the
//! peer server (message and snapshot sizes, forwarding depth), and the proposer and the peer
//! client (the queue length a refused proposal reports, the entry size an AppendEntries admits),
//! and the node and the proposer (how long a write's outcome is waited for).
//!
//! A limit only one module uses stays beside its use.

use std::time::Duration;

/// The largest peer message accepted, either way. AppendEntries stay far below it
/// ([`APPEND_ENTRIES_BYTES_MAX`]); a forwarded command or a Raft error is small.
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The entries one AppendEntries carries, encoded, unless it carries a single entry (always
/// sent: one entry can never be split). The log store reads a lagging follower's entries within
/// it (`limited_get_log_entries`), and the peer client refuses more with `PayloadTooLarge` and a
/// hint of how many fit, so openraft sends fewer. Sized by time as much as by memory: openraft
/// 0.9 gives an AppendEntries one heartbeat interval (100 ms) to be encoded, sent, decoded and
/// fsynced on the follower, and one that times out is resent whole, so entries too big for
/// that interval would never get through and the follower would never catch up. 4 MiB holds
/// three full group-commit batches.
pub const APPEND_ENTRIES_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The most a proposed entry can encode to beyond its batch's bytes: log id, payload tag and
/// length prefixes (postcard varints, a few bytes each). An upper bound, so an estimate made
/// with it never says entries fit when they do not.
pub const ENTRY_OVERHEAD_BYTES_MAX: usize = 64;
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
/// The longest a write waits to be committed (through forwarding, if any) before its outcome is
/// reported unknown. A retry with the same idempotency key is then safe. The proposer waits no
/// longer for a batch's outcome either.
pub const PROPOSE_WAIT_MAX: Duration = Duration::from_secs(10);
