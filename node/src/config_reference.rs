//! The configuration reference: one row per key of [`ServerConfig`] (its type, allowed values,
//! environment variable and what it does), with the default taken from
//! `ServerConfig::default()` itself. `warrant config reference` prints it as Markdown
//! (docs/config-reference.md); a test fails when that file differs or when a field of the
//! struct has no row, so the reference cannot drift from the code.

use serde_json::Value;
use warrant_raft::{STORAGE_CACHE_MIB_MAX, STORAGE_CACHE_MIB_MIN};

use crate::config::{ADMIN_TOKEN_LEN_MIN, LOG_FORMATS, SNAPSHOT_LOGS_SINCE_LAST_MAX, ServerConfig};

/// One key of the reference.
pub struct KeyDoc {
    /// The key as written in TOML: `node_id`, `tls.ca_file`, `federation[].issuer`.
    pub key: &'static str,
    /// Its TOML type.
    pub kind: &'static str,
    /// The values it allows.
    pub allowed: String,
    /// What it does.
    pub about: &'static str,
}

fn row(
    key: &'static str,
    kind: &'static str,
    allowed: impl Into<String>,
    about: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        kind,
        allowed: allowed.into(),
        about,
    }
}

/// Every key, in the order the reference lists them.
pub fn keys() -> Vec<KeyDoc> {
    let mut keys = node_keys();
    keys.extend(secret_keys());
    keys.extend(token_keys());
    keys.extend(section_keys());
    keys
}

fn node_keys() -> Vec<KeyDoc> {
    let mut keys = address_keys();
    keys.extend(behaviour_keys());
    keys
}

/// Who the node is, where it keeps its data, and where it listens.
fn address_keys() -> Vec<KeyDoc> {
    vec![
        row(
            "node_id",
            "integer",
            "1 or more; unique in the cluster, never reused",
            "This node's id. A wiped node rejoins under a new id.",
        ),
        row(
            "data_dir",
            "path",
            "a directory the node owns",
            "Where the node keeps its RocksDB databases, keys and Raft state.",
        ),
        row(
            "listen_addr",
            "address",
            "ip:port",
            "The public gRPC API, health and reflection (TLS).",
        ),
        row(
            "peer_listen_addr",
            "address",
            "ip:port",
            "The peer RPCs (Raft, forwarding, read indexes), on a listener of their own that needs mutual TLS.",
        ),
        row(
            "http_listen_addr",
            "address",
            "ip:port, or unset to disable HTTP",
            "JWKS, OAuth metadata, the token endpoint, /metrics and /healthz over HTTPS.",
        ),
        row(
            "advertise_addr",
            "string",
            "host:port; unset: listen_addr",
            "What clients dial to reach this node (leader hints name it).",
        ),
        row(
            "peer_advertise_addr",
            "string",
            "host:port; unset: peer_listen_addr",
            "What the other members dial to reach this node's peer listener.",
        ),
    ]
}

/// How it runs: security mode, bootstrap, logs, snapshots, memory.
fn behaviour_keys() -> Vec<KeyDoc> {
    vec![
        row(
            "insecure_plaintext",
            "boolean",
            "true, false; exclusive with [tls]",
            "Run with no TLS at all, peers proving themselves with peer_secret. Tests and development only.",
        ),
        row(
            "init_single_node",
            "boolean",
            "true, false",
            "Make this node a one-member cluster on start if it is in none yet. false for cluster members: run `warrant cluster init` once instead.",
        ),
        row(
            "log_format",
            "string",
            LOG_FORMATS.join(", "),
            "Log lines on stderr as text or as one JSON object per line.",
        ),
        row(
            "snapshot_logs_since_last",
            "integer",
            format!("1 to {SNAPSHOT_LOGS_SINCE_LAST_MAX}"),
            "Build a snapshot, and compact the log behind it, every this many Raft entries (each holds up to 1024 commands).",
        ),
        row(
            "snapshot_logs_kept",
            "integer",
            format!("0 to {SNAPSHOT_LOGS_SINCE_LAST_MAX}"),
            "Raft entries kept behind a snapshot, so a briefly absent follower catches up from the log.",
        ),
        row(
            "storage_cache_mib",
            "integer",
            format!("{STORAGE_CACHE_MIB_MIN} to {STORAGE_CACHE_MIB_MAX}"),
            "The storage memory budget in MiB: RocksDB's one block cache for both databases.",
        ),
    ]
}

fn secret_keys() -> Vec<KeyDoc> {
    let secret = format!("at least {ADMIN_TOKEN_LEN_MIN} printable ASCII characters");
    vec![
        row(
            "admin_token",
            "string",
            format!("{secret}; exclusive with admin_token_file"),
            "The bootstrap admin credential. Prefer admin_token_file.",
        ),
        row(
            "admin_token_file",
            "path",
            "a readable file holding the token",
            "A file holding the bootstrap admin credential (a Kubernetes Secret, a systemd credential).",
        ),
        row(
            "peer_secret",
            "string",
            format!("{secret}; unset: derived from the admin token"),
            "With insecure_plaintext only: the secret members present to each other on peer RPCs.",
        ),
        row(
            "peer_secret_file",
            "path",
            "a readable file; exclusive with peer_secret",
            "A file holding peer_secret.",
        ),
        row(
            "peer_secrets_accepted",
            "array of strings",
            format!("at most {} secrets", warrant_raft::PEER_SECRETS_MAX - 1),
            "Peer secrets accepted besides peer_secret, to rotate it with rolling restarts.",
        ),
        row(
            "cluster_secret",
            "string",
            "deprecated: use peer_secret",
            "The old name of peer_secret, accepted for one release with a warning.",
        ),
        row(
            "cluster_secret_file",
            "path",
            "deprecated: use peer_secret_file",
            "The old name of peer_secret_file, accepted for one release with a warning.",
        ),
    ]
}

fn token_keys() -> Vec<KeyDoc> {
    use warrant_identity::limits::{SESSION_TTL_SECONDS_MAX, TOKEN_TTL_SECONDS_MAX};
    vec![
        row(
            "issuer",
            "string",
            "a URL naming this cluster (not empty)",
            "The `iss` of every token this cluster signs.",
        ),
        row(
            "token_ttl_default_s",
            "integer",
            format!("1 to {TOKEN_TTL_SECONDS_MAX}"),
            "Lifetime in seconds of a token when the request asks for none.",
        ),
        row(
            "clock_leeway_s",
            "integer",
            "0 or more",
            "Seconds of clock skew tolerated when checking exp, nbf and iat.",
        ),
        row(
            "session_ttl_default_s",
            "integer",
            format!("1 to {SESSION_TTL_SECONDS_MAX}"),
            "Lifetime in seconds of a session when the client asks for none.",
        ),
        row(
            "allow_local_passwords",
            "boolean",
            "true, false",
            "Whether humans may log in with a local password (development clusters; production humans log in through [[federation]]).",
        ),
    ]
}

fn section_keys() -> Vec<KeyDoc> {
    let mut keys = tls_keys();
    keys.extend(federation_keys());
    keys.extend(audit_export_keys());
    keys
}

fn tls_keys() -> Vec<KeyDoc> {
    vec![
        row(
            "tls",
            "table",
            "required unless insecure_plaintext = true",
            "The node's TLS material, PEM. The files reload on SIGHUP and when replaced.",
        ),
        row(
            "tls.ca_file",
            "path",
            "a PEM file",
            "The cluster's CA: it signs every node's (and client's) certificate.",
        ),
        row(
            "tls.cert_file",
            "path",
            "a PEM file",
            "This node's certificate chain; it must name node-<id>.warrant.internal and the names clients dial.",
        ),
        row(
            "tls.key_file",
            "path",
            "a PEM file",
            "This node's private key.",
        ),
    ]
}

fn federation_keys() -> Vec<KeyDoc> {
    vec![
        row(
            "federation",
            "array of tables",
            "zero or more [[federation]] entries",
            "Upstream OIDC issuers whose id_tokens log humans in.",
        ),
        row(
            "federation[].issuer",
            "string",
            format!("1 to {} bytes", warrant_identity::limits::ISSUER_LEN_MAX),
            "Its `iss`, exactly as its id_tokens spell it.",
        ),
        row(
            "federation[].audience",
            "string",
            "not empty",
            "Warrant's client id at that issuer: the `aud` its id_tokens carry.",
        ),
        row(
            "federation[].jwks_file",
            "path",
            "a JWKS file; exactly one of jwks_file and jwks_url",
            "Its keys, read at start.",
        ),
        row(
            "federation[].jwks_url",
            "string",
            "an https URL (http only on loopback); exactly one of jwks_file and jwks_url",
            "Its keys, fetched by each node.",
        ),
    ]
}

fn audit_export_keys() -> Vec<KeyDoc> {
    vec![
        row(
            "audit_export",
            "table",
            "absent (off) or an [audit_export] section",
            "Send every committed event, from the leader, as an OTLP log record (the audit stream).",
        ),
        row(
            "audit_export.endpoint",
            "string",
            "http://host:port or https://host:port of an OTLP/gRPC logs receiver",
            "Where the audit stream goes, e.g. an OpenTelemetry Collector's otlp receiver (4317).",
        ),
        row(
            "audit_export.ca_file",
            "path",
            "a PEM file; unset: [tls] ca_file",
            "For https: the CA the collector's certificate chains to.",
        ),
        row(
            "audit_export.batch_max",
            "integer",
            format!(
                "1 to {}; default {}",
                warrant_api::audit_export::AUDIT_EXPORT_BATCH_MAX,
                warrant_api::audit_export::AUDIT_EXPORT_BATCH_DEFAULT
            ),
            "Events per export request.",
        ),
        row(
            "audit_export.interval_ms",
            "integer",
            format!(
                "{} to {}; default {}",
                warrant_api::audit_export::AUDIT_EXPORT_INTERVAL_MIN.as_millis(),
                warrant_api::audit_export::AUDIT_EXPORT_INTERVAL_MAX.as_millis(),
                warrant_api::audit_export::AUDIT_EXPORT_INTERVAL_DEFAULT.as_millis()
            ),
            "How often an idle exporter looks for new events, in milliseconds.",
        ),
    ]
}

/// The environment variable that sets `key`: `WARRANT_` and the key in capitals, a section's
/// keys joined by `__`. A `[[federation]]` entry's keys are set only as the whole list.
pub fn env_var(key: &str) -> String {
    if key.starts_with("federation[]") {
        return "in WARRANT_FEDERATION".to_string();
    }
    format!("WARRANT_{}", key.to_ascii_uppercase().replace('.', "__"))
}

/// The built-in default of `key`, from `ServerConfig::default()`, as TOML would spell it.
pub fn default_of(key: &str) -> String {
    let defaults = serde_json::to_value(ServerConfig::default()).unwrap_or(Value::Null);
    let value = match key.split_once('.') {
        _ if key.starts_with("federation[].") => return required_or_unset(key),
        Some((section, _)) if defaults.get(section) == Some(&Value::Null) => {
            return "(section absent)".to_string();
        }
        Some((section, sub)) => defaults.get(section).and_then(|s| s.get(sub)),
        None => defaults.get(key),
    };
    match value {
        None | Some(Value::Null) => "unset".to_string(),
        Some(Value::String(text)) => format!("`\"{text}\"`"),
        Some(other) => format!("`{other}`"),
    }
}

/// A `[[federation]]` key's default: its required keys have none.
fn required_or_unset(key: &str) -> String {
    if key.ends_with(".issuer") || key.ends_with(".audience") {
        "(required)".to_string()
    } else {
        "unset".to_string()
    }
}

/// A table cell: pipes escaped, so text cannot break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The reference as Markdown (docs/config-reference.md).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated by `warrant config reference` from the config struct (node/src/config.rs and \
         node/src/config_reference.rs); a test fails when this file drifts from it. Do not edit \
         by hand.\n\n\
         `warrant server --config FILE` reads, each overriding the one before: the built-in \
         defaults, the TOML file, `WARRANT_*` environment variables, then flags. A section's \
         keys join with `__` in a variable (`WARRANT_TLS__CA_FILE` is `tls.ca_file`). \
         `WARRANT_CONFIG` (the file's path), `WARRANT_ENDPOINTS` and `WARRANT_CLI_*` belong to \
         the CLI and are never read as keys. Check a file with `warrant config check FILE`: it \
         names every bad key and the values it allows.\n\n\
         Secrets are best read from files (`admin_token_file`, `peer_secret_file`), which fits \
         Kubernetes Secrets and systemd `LoadCredential=`.\n\n\
         | Key | Type | Default | Allowed | Environment | What it does |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for doc in keys() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | `{}` | {} |\n",
            doc.key,
            doc.kind,
            cell(&default_of(doc.key)),
            cell(&doc.allowed),
            env_var(doc.key),
            cell(doc.about)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuditExportSection, FederatedIssuer, TlsConfig};

    /// The field names `value` (a serialized struct) has, prefixed.
    fn field_names(prefix: &str, value: &Value) -> Vec<String> {
        match value {
            Value::Object(map) => map.keys().map(|k| format!("{prefix}{k}")).collect(),
            _ => Vec::new(),
        }
    }

    /// Every key the config structs have, as the reference names them: the fields of
    /// `ServerConfig`, of `[tls]` and of a `[[federation]]` entry.
    fn struct_keys() -> Vec<String> {
        let tls = TlsConfig {
            ca_file: "ca.pem".into(),
            cert_file: "node.pem".into(),
            key_file: "node-key.pem".into(),
        };
        let issuer = FederatedIssuer {
            issuer: String::new(),
            audience: String::new(),
            jwks_file: None,
            jwks_url: None,
        };
        let as_value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        let mut keys = field_names("", &as_value(serde_json::to_value(ServerConfig::default())));
        keys.extend(field_names("tls.", &as_value(serde_json::to_value(tls))));
        keys.extend(field_names(
            "federation[].",
            &as_value(serde_json::to_value(issuer)),
        ));
        let audit_export = AuditExportSection {
            endpoint: String::new(),
            ca_file: None,
            batch_max: 1,
            interval_ms: 1,
        };
        keys.extend(field_names(
            "audit_export.",
            &as_value(serde_json::to_value(audit_export)),
        ));
        keys
    }

    const REFERENCE: &str = include_str!("../../docs/config-reference.md");

    #[test]
    fn every_field_has_a_row_and_every_row_a_field() {
        let rows: Vec<&str> = keys().iter().map(|k| k.key).collect();
        let fields = struct_keys();
        let missing: Vec<&String> = fields
            .iter()
            .filter(|f| !rows.contains(&f.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "config keys with no row in node/src/config_reference.rs: {missing:?}"
        );
        let stale: Vec<&&str> = rows
            .iter()
            .filter(|r| {
                !fields.iter().any(|f| f == *r)
                    && !["tls", "federation", "audit_export"].contains(r)
            })
            .collect();
        assert!(
            stale.is_empty(),
            "rows for keys the config no longer has: {stale:?}"
        );
    }

    #[test]
    fn the_reference_file_is_the_generated_one() {
        assert!(
            REFERENCE == markdown(),
            "docs/config-reference.md differs from the generated reference; regenerate it with \
             `warrant config reference > docs/config-reference.md`"
        );
    }

    #[test]
    fn defaults_and_variables_come_from_the_struct() {
        assert_eq!(default_of("node_id"), "`1`");
        assert_eq!(default_of("log_format"), "`\"text\"`");
        assert_eq!(default_of("http_listen_addr"), "unset");
        assert_eq!(default_of("tls.ca_file"), "(section absent)");
        assert_eq!(env_var("tls.ca_file"), "WARRANT_TLS__CA_FILE");
        assert_eq!(env_var("storage_cache_mib"), "WARRANT_STORAGE_CACHE_MIB");
    }
}
