//! Warrant's identity model: commands in, outcomes, events and projection rows out.
//!
//! - [`apply`]: decides a committed [`log::Batch`](warrant_proto::log::Batch) against state.
//! - [`state`]: the storage boundary ([`StateRead`], [`WriteSet`]) and an in-memory store.
//! - [`query`]: reads the projection, for `apply` and for the API layer.
//! - [`limits`]: size limits and field rules, shared with the API layer's validation.
//! - [`keys`]: the key layout of the state store.
//! - [`audit`]: the Merkle tree over the events, and the versions behind as-of reads.
//! - [`event_subjects`]: the humans, agents, services and tools each event names.
//! - [`digest`]: a fingerprint of the whole state, for comparing replicas.
//! - [`effective`]: what an agent could do for a human, at a state (as of a seq, through
//!   [`audit::history::AsOf`]).
//! - `fixtures` (tests and the `fixtures` feature only): commands as tests and benchmarks build
//!   them.
//!
//! - `chaos` (feature `chaos` only): the planted bugs of chaos-tests/, selected by
//!   `CHAOS_CANARY`.
//!
//! **Architecture Invariant:** this crate does no I/O. It has no tokio, RocksDB or network
//! dependency, reads no clock and draws no randomness; storage is reached only through
//! [`StateRead`], and writes are returned, never made. (The one exception is the `chaos`
//! feature's `apply_reads_clock` canary, a planted bug that no release build contains.)

pub mod access;
pub mod apply;
pub mod audit;
#[cfg(feature = "chaos")]
pub mod chaos;
pub mod check;
pub mod digest;
pub mod effective;
pub mod event_subjects;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod keys;
pub mod limits;
pub mod policy;
pub mod query;
pub mod state;
pub mod validity;

pub use apply::{AppliedBatch, AuditRecords, apply_batch};
#[cfg(any(test, feature = "fixtures"))]
pub use apply::{apply_batch_recording, apply_batch_unaudited};
pub use digest::state_digest;
pub use state::{InMemoryState, Overlay, StateError, StateRead, WriteSet};
