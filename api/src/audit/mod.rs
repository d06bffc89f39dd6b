//! The node's signed checkpoints of the audit tree, and the proofs it serves from it.
//!
//! - `key`: the audit key (`<data dir>/audit-key.pk8`), its origin, key name and verifier key;
//!   the checkpoint text itself is `warrant_token::note` (C2SP tlog-checkpoint, signed-note).
//! - `record`: the largest checkpoint signed (`<data dir>/audit/signed-checkpoint`).
//! - `verify`: the tree recomputed from the event records, a bounded step at a time.
//! - `rules`: what may be signed, as a pure state machine.
//! - `signer`: [`CheckpointSigner`], shared by the services as `Context::checkpoints`.
//! - `anchor`: proofs from the stored tree, verified against the verified tree before sending.
//! - `schedule`: the task that verifies at start and signs every CHECKPOINT_INTERVAL.

pub mod anchor;
pub mod key;
pub mod record;
pub mod rules;
pub mod schedule;
pub mod signer;
pub mod verify;

#[cfg(test)]
mod tests;

pub use key::AuditKey;
pub use rules::SignerState;
pub use signer::CheckpointSigner;
