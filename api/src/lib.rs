//! Warrant's edges: the gRPC services, request validation, caller authentication and token
//! signing and verification.
//!
//! Requests are parsed into commands here; the identity model never sees raw protobuf requests
//! or secrets in clear. Replies are built from projections read through `warrant_raft`.
//!
//! **Architecture Invariant:** this crate is the only one that knows the public API's protobuf
//! types and gRPC status codes. It never touches RocksDB or openraft directly.

pub mod auth;
pub mod error;
pub mod jwt;
pub mod server;
pub mod services;
pub mod signing_key;
pub mod validate;

pub use error::{ApiError, Reason};
pub use server::{ApiConfig, Warrant};
pub use signing_key::NodeSigningKey;
