//! Generates the Rust types of `proto/*.proto` with prost-build, using the
//! `protoc` binary shipped by `protoc-bin-vendored` so that the build does not
//! depend on a system protobuf compiler.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/raft.proto",
    "proto/kv.proto",
    "proto/auth.proto",
    "proto/rpc.proto",
    "proto/client.proto",
    "proto/internal.proto",
    "proto/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = prost_build::Config::new();
    // Keys, values and entry payloads are moved between threads and layers
    // without copying.
    config.bytes(["."]);
    config.compile_protos(PROTOS, &[PathBuf::from("proto")])?;
    Ok(())
}
