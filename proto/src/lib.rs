//! Warrant's protobuf contracts.
//!
//! - [`log`]: the log's record schema (`warrant.log.v1`): batches, commands, events, outcomes.
//! - [`state`]: projection rows (`warrant.state.v1`), persisted by the state machine.
//! - [`api`]: the public gRPC API (`warrant.v1`).
//! - [`raft`]: peer RPCs between nodes (`warrant.raft.v1`).
//!
//! **Architecture Invariant:** this crate holds generated code and nothing else. It knows no
//! domain rule, no storage and no network beyond the generated tonic stubs.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod log {
    tonic::include_proto!("warrant.log.v1");
}

pub mod state {
    tonic::include_proto!("warrant.state.v1");
}

pub mod api {
    tonic::include_proto!("warrant.v1");
}

pub mod raft {
    tonic::include_proto!("warrant.raft.v1");
}

/// The encoded `FileDescriptorSet` of every contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
