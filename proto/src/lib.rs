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

/// Modules mirror the protobuf package paths, because generated code refers to other packages
/// by relative paths (`super::super::log::v1`).
pub mod warrant {
    pub mod log {
        pub mod v1 {
            tonic::include_proto!("warrant.log.v1");
        }
    }
    pub mod state {
        pub mod v1 {
            tonic::include_proto!("warrant.state.v1");
        }
    }
    pub mod v1 {
        tonic::include_proto!("warrant.v1");
    }
    pub mod raft {
        pub mod v1 {
            tonic::include_proto!("warrant.raft.v1");
        }
    }
}

pub use warrant::{log::v1 as log, raft::v1 as raft, state::v1 as state, v1 as api};

/// The encoded `FileDescriptorSet` of every contract.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
/// The encoded `FileDescriptorSet` of the public API (`warrant.v1` and the log schema it
/// imports), for the public port's server reflection: the peer contract is not among them.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor-public.bin"));
