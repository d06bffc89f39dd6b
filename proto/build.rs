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
/// The files the public gRPC port's reflection describes: the public API and what it imports.
/// The peer contract (`raft.proto`) is served only on the peer listener, so the public port
/// neither lists nor describes it; the projection rows (`state.proto`) are internal.
const PUBLIC_PROTO_FILES: &[&str] = &["warrant/log/v1/log.proto", "warrant/v1/warrant.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let file_descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("descriptor.bin"),
        file_descriptors.encode_to_vec(),
    )?;
    let mut public = file_descriptors.clone();
    public
        .file
        .retain(|file| PUBLIC_PROTO_FILES.contains(&file.name()));
    assert_eq!(
        public.file.len(),
        PUBLIC_PROTO_FILES.len(),
        "every public proto file is compiled"
    );
    fs::write(
        out_dir.join("descriptor-public.bin"),
        public.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .bytes(".warrant.raft")
        .compile_fds(file_descriptors)?;
    Ok(())
}
