//! Warrant's edges: the gRPC services, request validation and caller authentication. Tokens are
//! signed and verified by `warrant_token`; this crate decides what to sign and checks tokens
//! against the log's state.
//!
//! Requests are parsed into commands here; the identity model never sees raw protobuf requests
//! or secrets in clear. Replies are built from projections read through `warrant_raft`.
//!
//! **Architecture Invariant:** this crate is the only one that knows the public API's protobuf
//! types and gRPC status codes. It never touches RocksDB or openraft directly.

pub mod audit;
pub mod audit_export;
pub mod auth;
pub mod authzen;
/// The planted bugs of chaos-tests/: only in a build with the `chaos` feature.
#[cfg(feature = "chaos")]
mod chaos;
pub mod context;
pub mod digest_key;
pub mod error;
pub mod federation;
pub mod http;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod peer;
pub mod reasons;
pub mod receipts;
pub mod server;
pub mod services;
mod storage;
pub mod tokens;
pub mod transport;
pub mod validate;

pub use error::{ApiError, Reason};
pub use server::{ApiConfig, STOP_WAIT_MAX, Security, ServeError, Warrant};
pub use warrant_token::{NodeSigningKey, id_token, jwt, signing_key};
