//! Compiles the `.proto` contract with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "switchyard/admin/v1/admin.proto",
        "switchyard/config/v1/config.proto",
        "switchyard/usage/v1/usage.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        // A config update is a whole snapshot or a small health view: the snapshot goes in a box
        // so that the enum is the size of the small one.
        .boxed(".switchyard.config.v1.ConfigUpdate.update.snapshot")
        .compile_fds(descriptors)?;
    Ok(())
}
