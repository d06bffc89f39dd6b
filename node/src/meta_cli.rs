//! `warrant version` (what this binary is: its version, the compiler and target it was built
//! with, its build profile, and the test-only features compiled in) and `warrant completions <shell>` (a completion script made by
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
    /// Test-only features compiled in: `chaos` (failpoints and planted bugs), else none. A
    /// release build has none.
    pub features: Vec<&'static str>,
}

/// The test-only features this binary was built with. Asked of `warrant_raft`, not of this
/// crate's own features: a `cargo test --workspace` build turns `chaos` on through
/// chaos-tests' dev-dependencies on the libraries, without this crate's feature.
fn features() -> Vec<&'static str> {
    if warrant_raft::CHAOS {
        vec!["chaos"]
    } else {
        Vec::new()
    }
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
        features: features(),
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
            let features = match info.features.as_slice() {
                [] => "none".to_string(),
                features => format!("{} (test-only, never in a release)", features.join(", ")),
            };
            println!("  features  : {features}");
        }
    }
    Ok(())
}

/// Writes the completion script for `shell` of the command tree `command` to stdout.
pub fn completions(shell: clap_complete::Shell, command: &mut clap::Command) {
    clap_complete::generate(shell, command, "warrant", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_name_chaos_exactly_when_it_is_compiled_in() {
        let info = version_info();
        assert_eq!(info.features.contains(&"chaos"), warrant_raft::CHAOS);
        let json = serde_json::to_value(&info).expect("serialise");
        let listed = json["features"].as_array().expect("a features list");
        assert_eq!(listed.len(), usize::from(warrant_raft::CHAOS));
    }
}
