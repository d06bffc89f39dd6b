//! The generated client of etcd's `KV.Put` (`bench/proto/etcd/kv.proto`), wire-compatible with
//! etcd 3.4's `etcdserverpb`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Named after the protobuf package, as the generated code expects.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
