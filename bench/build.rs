//! Generates the etcd KV client the load generator uses as its anchor, from our own minimal
//! proto, with protox (a pure-Rust protobuf compiler: no machine here has protoc). Client only:
//! nothing here serves etcd's API.

const PROTO_FILES: &[&str] = &["proto/etcd/kv.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let file_descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .bytes(".etcdserverpb")
        .compile_fds(file_descriptors)?;
    Ok(())
}
