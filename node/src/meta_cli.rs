//! `warrant version` (what this binary is: its version, the compiler and target it was built
//! with, and its build profile) and `warrant completions <shell>` (a completion script made by
//! clap_complete from the command tree itself, so it lists every verb and flag).

use serde::Serialize;

use crate::client::Output;

/// What `warrant version` prints.
#[derive(Debug, Serialize)]
pub struct VersionInfo {
    pub version: &'static str,
    pub rustc: &'static str,
    pub target: &'static str,
    pub profile: &'static str,
    pub allocator: &'static str,
    pub tls: &'static str,
}

pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        rustc: env!("BUILD_RUSTC_VERSION"),
        target: env!("BUILD_TARGET_TRIPLE"),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        allocator: "jemalloc",
        tls: "rustls with aws-lc-rs",
    }
}

pub fn version(output: Output) -> anyhow::Result<()> {
    let info = version_info();
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&info)?),
        Output::Table => {
            println!("warrant {}", info.version);
            println!("  rustc     : {}", info.rustc);
            println!("  target    : {}", info.target);
            println!("  profile   : {}", info.profile);
            println!("  allocator : {}", info.allocator);
            println!("  tls       : {}", info.tls);
        }
    }
    Ok(())
}

/// Writes the completion script for `shell` of the command tree `command` to stdout.
pub fn completions(shell: clap_complete::Shell, command: &mut clap::Command) {
    clap_complete::generate(shell, command, "warrant", &mut std::io::stdout());
}
