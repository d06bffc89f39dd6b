//! Warrant's access tokens: RFC 9068 JWTs signed with a node's Ed25519 key, and their strict
//! verification; and the signed notes (C2SP signed-note, tlog-checkpoint) of the audit log.
//!
//! **Architecture Invariant:** pure computation over bytes and keys. No storage, no network, no
//! clock (the caller passes "now"): where keys come from is the caller's [`jwt::KeyLookup`].

pub mod assertion;
mod claims;
mod compact;
mod ed25519;
pub mod id_token;
pub mod jwt;
pub mod limits;
pub mod note;
pub mod signing_key;
#[cfg(test)]
mod testing;

pub use signing_key::NodeSigningKey;
