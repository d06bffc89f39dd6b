//! The requests the cluster benchmark drives through [`crate::load`], and the fixture they need.
//!
//! - [`auth`]: credentials as gRPC metadata.
//! - [`fixture`]: one human, service, two agents and a depth-2 delegation, created per run.
//! - [`tokens`]: Issue (for the agent itself, and under the delegation), Verify and a mix.
//! - [`authorize`]: Authorize SYNC and ASYNC on the same tokens as Verify.
//! - [`writes`]: RegisterHuman, a committed write that signs nothing; bulk imports that give a
//!   cluster a long history.
//! - [`anchors`]: etcd's Put and gRPC health, the comparison points.
//! - [`reach`]: how long a revocation takes to reach every node's local reads.

pub mod anchors;
pub mod auth;
pub mod authorize;
pub mod fixture;
pub mod reach;
pub mod tokens;
pub mod writes;

pub use anchors::{etcd_put, health_check};
pub use authorize::authorize;
pub use fixture::{AgentSecret, Fixture};
pub use reach::{Reach, ReachStats, revocation_reach};
pub use tokens::{issue_delegated, issue_self, mixed, verify};
pub use writes::{import_humans, register};
