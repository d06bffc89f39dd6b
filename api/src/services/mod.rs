//! The gRPC services. Each RPC: authenticate, validate, then either propose a command and map
//! its outcome, or pass the read barrier and answer from the projection. What they share is in
//! [`crate::context`].

pub mod audit;
pub mod authz;
pub mod backup;
pub mod cluster;
pub mod delegation;
pub mod identity;
pub(crate) mod mint;
pub mod policy;
pub mod session;
pub mod token;
