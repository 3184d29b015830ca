//! Compiles the vendored remote-write protobufs (1.0 and 2.0) with prost.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/remote.proto", "proto/write_v2.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // A vendored protoc keeps the build free of system packages.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&protos, &["proto/"])?;
    Ok(())
}
