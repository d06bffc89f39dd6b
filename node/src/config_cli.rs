//! `warrant config check FILE` and `warrant config reference`. `check` reads a config file the
//! way `warrant server` does (the file, then the `WARRANT_*` environment) and names every bad
//! key with the values it allows: unknown keys, values of the wrong type, values out of range,
//! and (unless `--skip-files`) files it names that cannot be read. `reference` prints the
//! generated configuration reference ([`crate::config_reference`]).

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};

use crate::{
    config::{Overrides, ServerConfig},
    config_reference::{self, KeyDoc},
};

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file as `warrant server` would read it (the file, then WARRANT_*
    /// variables): every bad key is named with the values it allows. Exits 0 when valid, 1
    /// when not.
    Check {
        file: PathBuf,
        /// Check keys and values only, not that the files the config names can be read (for
        /// checking a config on another machine than the node's).
        #[arg(long)]
        skip_files: bool,
    },
    /// Print the configuration reference (Markdown): every key with its type, default,
    /// allowed values and environment variable, generated from the config struct.
    Reference,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check { file, skip_files } => {
            let problems = check(&file, skip_files)?;
            if problems.is_empty() {
                println!("{}: valid", file.display());
                return Ok(());
            }
            for problem in &problems {
                eprintln!("{problem}");
            }
            anyhow::bail!("{}: {} problem(s)", file.display(), problems.len())
        }
        ConfigCommand::Reference => {
            print!("{}", config_reference::markdown());
            Ok(())
        }
    }
}

/// Every problem of the config `file` (with the environment), one line each; empty when valid.
/// An unreadable file or a TOML syntax error is an error of its own.
pub fn check(file: &Path, skip_files: bool) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        file.exists(),
        "config file {} does not exist",
        file.display()
    );
    let dict: Dict = Figment::from(Toml::file_exact(file))
        .extract()
        .map_err(|e| anyhow::anyhow!("{}: not valid TOML: {e}", file.display()))?;
    let docs = config_reference::keys();
    let mut problems = unknown_keys(&dict, &docs);
    let (bad, well_typed) = bad_values(&dict, &docs);
    problems.extend(bad);
    // The values out of range, among the keys whose type is right.
    let well_typed = Figment::from(Serialized::defaults(ServerConfig::default()))
        .merge(Serialized::defaults(well_typed))
        .extract::<ServerConfig>();
    if let Ok(config) = well_typed {
        problems.extend(config.problems());
    }
    if !problems.is_empty() {
        return Ok(problems);
    }
    match ServerConfig::load(Some(file), &Overrides::default()) {
        Ok(config) => problems.extend(whole_config_problems(&config, skip_files)),
        Err(e) => problems.extend(format!("{e:#}").lines().map(String::from)),
    }
    Ok(problems)
}

/// The keys `docs` lists under `prefix` (`""` for the top level, `"tls."`, `"federation[]."`).
fn known_under<'a>(docs: &'a [KeyDoc], prefix: &str) -> Vec<&'a str> {
    docs.iter()
        .filter_map(|d| d.key.strip_prefix(prefix))
        .filter(|k| !k.contains('.') && !k.contains('['))
        .collect()
}

fn unknown_in(table: &Dict, shown: &str, known: &[&str]) -> Vec<String> {
    table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            format!(
                "invalid config: unknown key {shown}{k}; allowed keys here: {}",
                known.join(", ")
            )
        })
        .collect()
}

/// Keys the config has no such field for, at the top level, in `[tls]` and in each
/// `[[federation]]` entry.
fn unknown_keys(dict: &Dict, docs: &[KeyDoc]) -> Vec<String> {
    let mut problems = unknown_in(dict, "", &known_under(docs, ""));
    if let Some(Value::Dict(_, tls)) = dict.get("tls") {
        problems.extend(unknown_in(tls, "tls.", &known_under(docs, "tls.")));
    }
    if let Some(Value::Array(_, entries)) = dict.get("federation") {
        let known = known_under(docs, "federation[].");
        for (idx, entry) in entries.iter().enumerate() {
            if let Value::Dict(_, entry) = entry {
                problems.extend(unknown_in(entry, &format!("federation[{idx}]."), &known));
            }
        }
    }
    problems
}

/// Each key whose value does not have the key's type, read one key at a time over the
/// defaults so that every bad key is named, not only the first; and the keys that read well.
fn bad_values(dict: &Dict, docs: &[KeyDoc]) -> (Vec<String>, Dict) {
    let mut problems = Vec::new();
    let mut well_typed = Dict::new();
    for (key, value) in dict {
        let one = Dict::from([(key.clone(), value.clone())]);
        let figment = Figment::from(Serialized::defaults(ServerConfig::default()))
            .merge(Serialized::defaults(one.clone()));
        let Err(errors) = figment.extract::<ServerConfig>() else {
            well_typed.extend(one);
            continue;
        };
        for error in errors {
            if matches!(error.kind, figment::error::Kind::UnknownField(..)) {
                continue; // named by `unknown_keys`
            }
            let mut path = if error.path.is_empty() {
                key.clone()
            } else {
                error.path.join(".")
            };
            if let figment::error::Kind::MissingField(field) = &error.kind {
                path = format!("{path}.{field}");
            }
            let allowed = allowed_of(docs, &path);
            problems.push(format!(
                "invalid config: key {}: {}; allowed: {allowed}",
                shown_key(&path),
                error.kind
            ));
        }
    }
    (problems, well_typed)
}

/// `federation.0.issuer` (figment's path) as the config spells it: `federation[0].issuer`.
fn shown_key(path: &str) -> String {
    let mut shown = String::new();
    for part in path.split('.') {
        match part.parse::<usize>() {
            Ok(idx) => shown.push_str(&format!("[{idx}]")),
            Err(_) if shown.is_empty() => shown.push_str(part),
            Err(_) => {
                shown.push('.');
                shown.push_str(part);
            }
        }
    }
    shown
}

/// The values `path` (`federation.0.issuer` as figment spells it) allows, per the reference.
fn allowed_of(docs: &[KeyDoc], path: &str) -> String {
    let key: Vec<&str> = path
        .split('.')
        .map(|part| {
            if part.parse::<usize>().is_ok() {
                "[]"
            } else {
                part
            }
        })
        .collect();
    let key = key.join(".").replace(".[].", "[].");
    docs.iter()
        .find(|d| d.key == key)
        .map(|d| format!("{} ({})", d.allowed, d.kind))
        .unwrap_or_else(|| "see docs/config-reference.md".to_string())
}

/// What only the whole config shows: the admin credential, TLS or plaintext, and (unless
/// `skip_files`) that the files it names can be read.
fn whole_config_problems(config: &ServerConfig, skip_files: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let token = if skip_files {
        if config.admin_token.is_none() && config.admin_token_file.is_none() {
            problems.push(
                "invalid config: neither admin_token nor admin_token_file is set; allowed: one \
                 of them"
                    .to_string(),
            );
        }
        // Stands in for the token, which is not read: only its presence is checked.
        Ok("skip-files-placeholder-token".to_string())
    } else {
        config.admin_token()
    };
    let reads_secret_file =
        config.peer_secret_file.is_some() || config.cluster_secret_file.is_some();
    match token {
        Ok(_) if skip_files && reads_secret_file => {}
        Ok(token) => {
            if let Err(e) = config.security(&token) {
                problems.push(format!("{e:#}"));
            }
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    if let (Some(tls), false) = (&config.tls, skip_files) {
        for (key, path) in [
            ("tls.ca_file", &tls.ca_file),
            ("tls.cert_file", &tls.cert_file),
            ("tls.key_file", &tls.key_file),
        ] {
            if let Err(e) = std::fs::File::open(path) {
                problems.push(format!(
                    "invalid config: key {key}: cannot read {}: {e}; allowed: a readable PEM file",
                    path.display()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figment_paths_are_shown_as_the_config_spells_them() {
        assert_eq!(shown_key("federation.0.issuer"), "federation[0].issuer");
        assert_eq!(shown_key("tls.cert_file"), "tls.cert_file");
        assert_eq!(shown_key("node_id"), "node_id");
        let docs = config_reference::keys();
        assert!(allowed_of(&docs, "federation.1.jwks_url").starts_with("an https URL"));
        assert_eq!(allowed_of(&docs, "log_format"), "text, json (string)");
    }
}
