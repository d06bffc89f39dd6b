//! Compiles the .proto contracts with protox (a pure-Rust protobuf compiler: no machine here has
//! protoc) and generates prost messages plus tonic clients and servers.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_FILES: &[&str] = &[
    "proto/warrant/log/v1/log.proto",
    "proto/warrant/state/v1/state.proto",
    "proto/warrant/v1/warrant.proto",
    "proto/warrant/raft/v1/raft.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let file_descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("descriptor.bin"),
        file_descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .bytes(".warrant.raft")
        .compile_fds(file_descriptors)?;
    Ok(())
}
