//! The audit trail's proofs and history: the RFC 9162 Merkle tree over every event record
//! (`merkle`: the pure hashing and proof verification; `tree`: the tree kept in the state
//! store, appended in apply), and the versions every projection row keeps (`history`), which
//! answer reads as of a past seq or time.

pub mod history;
pub mod merkle;
#[cfg(test)]
mod rfc6962_vectors;
pub mod tree;
