//! Server configuration: built-in defaults < TOML file < `WARRANT_*` environment < flags.
//!
//! Errors name the key that is wrong and, through figment, where its value came from.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use warrant_raft::{STORAGE_CACHE_MIB_MAX, STORAGE_CACHE_MIB_MIN};

/// Admin tokens shorter than this are refused: the token is the bootstrap root credential.
pub const ADMIN_TOKEN_LEN_MIN: usize = 16;
/// Raft entries between snapshots, at most. Entries hold up to 1024 commands each.
pub const SNAPSHOT_LOGS_SINCE_LAST_MAX: u64 = 10_000_000;
/// The values `log_format` allows.
pub const LOG_FORMATS: [&str; 2] = ["text", "json"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This node's id: unique in the cluster, never reused.
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// The public gRPC API, health and reflection.
    pub listen_addr: SocketAddr,
    /// The peer RPCs (Raft, forwarding, read indexes), on a listener of their own that needs
    /// mutual TLS.
    pub peer_listen_addr: SocketAddr,
    /// Where `/.well-known/jwks.json` and `/healthz` are served over HTTP; unset disables HTTP.
    pub http_listen_addr: Option<SocketAddr>,
    /// What clients dial; defaults to `listen_addr`.
    pub advertise_addr: Option<String>,
    /// What peers dial; defaults to `peer_listen_addr`.
    pub peer_advertise_addr: Option<String>,
    /// The node's TLS material (`[tls]`): required unless `insecure_plaintext = true`.
    pub tls: Option<TlsConfig>,
    /// Run with no TLS at all, peers proving themselves with `peer_secret` instead. For tests
    /// and development only; the node warns at start.
    pub insecure_plaintext: bool,
    /// The bootstrap admin credential. Prefer `admin_token_file`.
    pub admin_token: Option<String>,
    /// A file holding the bootstrap admin credential (e.g. a Kubernetes secret or systemd
    /// credential).
    pub admin_token_file: Option<PathBuf>,
    /// With `insecure_plaintext` only: the peer secret members present to each other on peer
    /// RPCs (the same on every node). Unset: derived from the admin token, which every member
    /// shares. Prefer `peer_secret_file`.
    pub peer_secret: Option<String>,
    pub peer_secret_file: Option<PathBuf>,
    /// Secrets accepted besides `peer_secret`, to rotate it with rolling restarts: first accept
    /// the new one everywhere, then send it.
    pub peer_secrets_accepted: Vec<String>,
    /// The old names of `peer_secret` and `peer_secret_file`, accepted for one release (with a
    /// warning at start); giving both an old and a new name is an error.
    pub cluster_secret: Option<String>,
    pub cluster_secret_file: Option<PathBuf>,
    /// The `iss` of every token this cluster signs.
    pub issuer: String,
    pub token_ttl_default_s: u32,
    pub clock_leeway_s: u64,
    /// Make this node a one-member cluster on start, if it is not in one yet.
    pub init_single_node: bool,
    /// `text` or `json`.
    pub log_format: String,
    /// Build a snapshot, and compact the log behind it, every this many Raft entries.
    pub snapshot_logs_since_last: u64,
    /// Raft entries kept behind a snapshot, so a briefly absent follower catches up from the
    /// log rather than by snapshot.
    pub snapshot_logs_kept: u64,
    /// Lifetime of a session when the client asks for none.
    pub session_ttl_default_s: u32,
    /// Whether humans may log in with a local password. For development clusters: production
    /// humans log in through an upstream OIDC issuer (`[[federation]]`).
    pub allow_local_passwords: bool,
    /// Upstream OIDC issuers whose id_tokens log humans in.
    pub federation: Vec<FederatedIssuer>,
    /// The storage memory budget in MiB: RocksDB's one block cache for both databases, which
    /// memtables and index and filter blocks are charged to, so memory does not grow with the
    /// history.
    pub storage_cache_mib: u64,
    /// Send every committed event, from the leader, as an OTLP log record to a collector
    /// (`[audit_export]`). Absent: off.
    pub audit_export: Option<AuditExportSection>,
}

/// `[audit_export]`: where the leader sends the audit stream (OTLP/gRPC logs), and how.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditExportSection {
    /// `http://host:port` or `https://host:port` of an OTLP/gRPC logs receiver, such as an
    /// OpenTelemetry Collector's `otlp` receiver (port 4317).
    pub endpoint: String,
    /// For https: the CA (PEM) the collector's certificate chains to. Unset: the cluster CA,
    /// `[tls] ca_file`.
    pub ca_file: Option<PathBuf>,
    /// Events per export request, 1 to 4096.
    #[serde(default = "audit_export_batch_default")]
    pub batch_max: usize,
    /// How often an idle exporter looks for new events, in milliseconds: 10 to 60000.
    #[serde(default = "audit_export_interval_ms_default")]
    pub interval_ms: u64,
}

fn audit_export_batch_default() -> usize {
    warrant_api::audit_export::AUDIT_EXPORT_BATCH_DEFAULT
}

fn audit_export_interval_ms_default() -> u64 {
    let default = warrant_api::audit_export::AUDIT_EXPORT_INTERVAL_DEFAULT;
    u64::try_from(default.as_millis()).unwrap_or(u64::MAX)
}

/// `[tls]`: the cluster CA and this node's certificate and key, PEM. The certificate must name
/// the node (`node-<id>.warrant.internal`) and the addresses clients dial; `warrant certs dev`
/// makes a development set.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One trusted upstream OIDC issuer (`[[federation]]` in the TOML file).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FederatedIssuer {
    /// Its `iss`, exactly as its id_tokens spell it.
    pub issuer: String,
    /// Warrant's client id at that issuer: the `aud` its id_tokens carry.
    pub audience: String,
    /// Its JWKS, from a file...
    pub jwks_file: Option<PathBuf>,
    /// ...or fetched from a URL by this node (https, or http on loopback only).
    pub jwks_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 1,
            data_dir: PathBuf::from("/var/lib/warrant"),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7400)),
            peer_listen_addr: SocketAddr::from(([127, 0, 0, 1], 7402)),
            http_listen_addr: None,
            advertise_addr: None,
            peer_advertise_addr: None,
            tls: None,
            insecure_plaintext: false,
            admin_token: None,
            admin_token_file: None,
            peer_secret: None,
            peer_secret_file: None,
            peer_secrets_accepted: Vec::new(),
            cluster_secret: None,
            cluster_secret_file: None,
            issuer: "https://warrant.local".to_string(),
            token_ttl_default_s: 900,
            clock_leeway_s: 5,
            init_single_node: false,
            log_format: "text".to_string(),
            snapshot_logs_since_last: 20_000,
            snapshot_logs_kept: 10_000,
            session_ttl_default_s: 8 * 3600,
            allow_local_passwords: false,
            federation: Vec::new(),
            storage_cache_mib: warrant_raft::STORAGE_CACHE_MIB_DEFAULT,
            audit_export: None,
        }
    }
}

/// Flags that override the file and the environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_listen_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_advertise_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_single_node: Option<bool>,
}

impl ServerConfig {
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment
            .merge(server_env())
            .merge(Serialized::defaults(overrides));
        let config: ServerConfig = figment
            .extract()
            .map_err(|e| anyhow::format_err!("invalid config: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
        Ok(())
    }

    /// Every value that is out of range, each as `invalid config: key K is V; allowed: ...`.
    pub fn problems(&self) -> Vec<String> {
        use warrant_identity::limits::{SESSION_TTL_SECONDS_MAX, TOKEN_TTL_SECONDS_MAX};
        let mut problems = Vec::new();
        let mut expect = |ok: bool, text: String| {
            if !ok {
                problems.push(format!("invalid config: {text}"));
            }
        };
        expect(
            self.peer_secrets_accepted.len() < warrant_raft::PEER_SECRETS_MAX,
            format!(
                "key peer_secrets_accepted has {} secrets; allowed: at most {}",
                self.peer_secrets_accepted.len(),
                warrant_raft::PEER_SECRETS_MAX - 1
            ),
        );
        expect(
            self.node_id != 0,
            "key node_id is 0; allowed: 1 or more".into(),
        );
        expect(
            !self.issuer.is_empty(),
            "key issuer is empty; allowed: a URL naming this cluster".into(),
        );
        expect(
            0 < self.token_ttl_default_s && self.token_ttl_default_s <= TOKEN_TTL_SECONDS_MAX,
            format!(
                "key token_ttl_default_s is {}; allowed: 1 to {TOKEN_TTL_SECONDS_MAX}",
                self.token_ttl_default_s
            ),
        );
        expect(
            (1..=SNAPSHOT_LOGS_SINCE_LAST_MAX).contains(&self.snapshot_logs_since_last),
            format!(
                "key snapshot_logs_since_last is {}; allowed: 1 to {SNAPSHOT_LOGS_SINCE_LAST_MAX}",
                self.snapshot_logs_since_last
            ),
        );
        expect(
            self.snapshot_logs_kept <= SNAPSHOT_LOGS_SINCE_LAST_MAX,
            format!(
                "key snapshot_logs_kept is {}; allowed: 0 to {SNAPSHOT_LOGS_SINCE_LAST_MAX}",
                self.snapshot_logs_kept
            ),
        );
        expect(
            0 < self.session_ttl_default_s && self.session_ttl_default_s <= SESSION_TTL_SECONDS_MAX,
            format!(
                "key session_ttl_default_s is {}; allowed: 1 to {SESSION_TTL_SECONDS_MAX}",
                self.session_ttl_default_s
            ),
        );
        expect(
            (STORAGE_CACHE_MIB_MIN..=STORAGE_CACHE_MIB_MAX).contains(&self.storage_cache_mib),
            format!(
                "key storage_cache_mib is {}; allowed: {STORAGE_CACHE_MIB_MIN} to {STORAGE_CACHE_MIB_MAX}",
                self.storage_cache_mib
            ),
        );
        expect(
            LOG_FORMATS.contains(&self.log_format.as_str()),
            format!(
                "key log_format is {:?}; allowed: {}",
                self.log_format,
                LOG_FORMATS.join(", ")
            ),
        );
        for (idx, issuer) in self.federation.iter().enumerate() {
            if let Err(e) = issuer.check(idx) {
                problems.push(format!("{e:#}"));
            }
        }
        if let Err(e) = self.audit_export() {
            problems.push(format!("{e:#}"));
        }
        problems
    }

    /// `[audit_export]`, checked and resolved as the API layer takes it; `None` when absent.
    pub fn audit_export(
        &self,
    ) -> anyhow::Result<Option<warrant_api::audit_export::AuditExportConfig>> {
        use warrant_api::audit_export::{
            AUDIT_EXPORT_BATCH_MAX, AUDIT_EXPORT_INTERVAL_MAX, AUDIT_EXPORT_INTERVAL_MIN,
            AuditExportConfig,
        };
        let Some(section) = &self.audit_export else {
            return Ok(None);
        };
        let https = section.endpoint.starts_with("https://");
        anyhow::ensure!(
            https || section.endpoint.starts_with("http://"),
            "invalid config: key audit_export.endpoint is {:?}; allowed: http://host:port or \
             https://host:port of an OTLP/gRPC logs receiver",
            section.endpoint
        );
        anyhow::ensure!(
            (1..=AUDIT_EXPORT_BATCH_MAX).contains(&section.batch_max),
            "invalid config: key audit_export.batch_max is {}; allowed: 1 to {AUDIT_EXPORT_BATCH_MAX}",
            section.batch_max
        );
        let interval = std::time::Duration::from_millis(section.interval_ms);
        anyhow::ensure!(
            (AUDIT_EXPORT_INTERVAL_MIN..=AUDIT_EXPORT_INTERVAL_MAX).contains(&interval),
            "invalid config: key audit_export.interval_ms is {}; allowed: {} to {}",
            section.interval_ms,
            AUDIT_EXPORT_INTERVAL_MIN.as_millis(),
            AUDIT_EXPORT_INTERVAL_MAX.as_millis()
        );
        let cluster_ca = self.tls.as_ref().map(|tls| tls.ca_file.clone());
        Ok(Some(AuditExportConfig {
            endpoint: section.endpoint.clone(),
            ca_file: section.ca_file.clone().or(cluster_ca).filter(|_| https),
            batch_max: section.batch_max,
            interval,
        }))
    }

    /// The trusted upstream issuers, as the API layer takes them.
    pub fn federation(&self) -> Vec<warrant_api::federation::IssuerConfig> {
        use warrant_api::federation::{IssuerConfig, JwksSource};
        self.federation
            .iter()
            .map(|it| IssuerConfig {
                issuer: it.issuer.clone(),
                audience: it.audience.clone(),
                jwks: match (&it.jwks_file, &it.jwks_url) {
                    (Some(file), _) => JwksSource::File(file.clone()),
                    (None, url) => JwksSource::Url(url.clone().unwrap_or_default()),
                },
            })
            .collect()
    }

    /// The admin token, from `admin_token` or `admin_token_file`.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        secret_from("admin_token", &self.admin_token, &self.admin_token_file)?.ok_or_else(|| {
            anyhow::format_err!(
                "invalid config: neither admin_token nor admin_token_file is set; allowed: one of them"
            )
        })
    }

    /// The peer secret: `peer_secret`, `peer_secret_file` (or their old names
    /// `cluster_secret`, `cluster_secret_file`), or one derived from the admin token (SHA-256
    /// over a fixed label and the token), so a cluster whose members share the admin token needs
    /// no second secret.
    pub fn peer_secret(&self, admin_token: &str) -> anyhow::Result<String> {
        let new_set = self.peer_secret.is_some() || self.peer_secret_file.is_some();
        let old_set = self.cluster_secret.is_some() || self.cluster_secret_file.is_some();
        anyhow::ensure!(
            !(new_set && old_set),
            "invalid config: keys peer_secret (or peer_secret_file) and cluster_secret (or \
             cluster_secret_file) are both set; allowed: one of them (cluster_secret is the old \
             name of peer_secret)"
        );
        let secret = if old_set {
            secret_from(
                "cluster_secret",
                &self.cluster_secret,
                &self.cluster_secret_file,
            )?
        } else {
            secret_from("peer_secret", &self.peer_secret, &self.peer_secret_file)?
        };
        match secret {
            Some(secret) => Ok(secret),
            None => {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                hasher.update(b"warrant peer secret\0");
                hasher.update(admin_token.as_bytes());
                Ok(hex::encode(hasher.finalize()))
            }
        }
    }

    /// The deprecated keys this config sets, each with the key that replaces it.
    pub fn deprecated_keys_used(&self) -> Vec<(&'static str, &'static str)> {
        let mut used = Vec::new();
        if self.cluster_secret.is_some() {
            used.push(("cluster_secret", "peer_secret"));
        }
        if self.cluster_secret_file.is_some() {
            used.push(("cluster_secret_file", "peer_secret_file"));
        }
        used
    }

    /// How the node protects its traffic, as the API layer takes it.
    /// Checked after every single key (and the admin token), so a wrong key is named before a
    /// missing section.
    pub fn security(&self, admin_token: &str) -> anyhow::Result<warrant_api::Security> {
        match (&self.tls, self.insecure_plaintext) {
            (Some(_), true) => anyhow::bail!(
                "invalid config: [tls] and insecure_plaintext = true are both set; allowed: one \
                 of them"
            ),
            (None, false) => anyhow::bail!(
                "invalid config: no [tls] section; allowed: [tls] with ca_file, cert_file and \
                 key_file (`warrant certs dev` makes a development set), or insecure_plaintext = \
                 true for tests and development"
            ),
            _ => {}
        }
        if let Some(tls) = &self.tls {
            return Ok(warrant_api::Security::Tls(
                warrant_api::transport::TlsFiles {
                    ca_file: tls.ca_file.clone(),
                    cert_file: tls.cert_file.clone(),
                    key_file: tls.key_file.clone(),
                },
            ));
        }
        let mut peer_secrets = vec![self.peer_secret(admin_token)?];
        peer_secrets.extend(self.peer_secrets_accepted.iter().cloned());
        Ok(warrant_api::Security::InsecurePlaintext { peer_secrets })
    }

    pub fn peer_advertise_addr(&self) -> String {
        self.peer_advertise_addr
            .clone()
            .unwrap_or_else(|| self.peer_listen_addr.to_string())
    }

    pub fn advertise_addr(&self) -> String {
        self.advertise_addr
            .clone()
            .unwrap_or_else(|| self.listen_addr.to_string())
    }
}

impl FederatedIssuer {
    fn check(&self, idx: usize) -> anyhow::Result<()> {
        let key = format!("federation[{idx}]");
        anyhow::ensure!(
            !self.issuer.is_empty()
                && self.issuer.len() <= warrant_identity::limits::ISSUER_LEN_MAX,
            "invalid config: key {key}.issuer is {} bytes; allowed: 1 to {}",
            self.issuer.len(),
            warrant_identity::limits::ISSUER_LEN_MAX
        );
        anyhow::ensure!(
            !self.audience.is_empty(),
            "invalid config: key {key}.audience is empty; allowed: Warrant's client id at {}",
            self.issuer
        );
        match (&self.jwks_file, &self.jwks_url) {
            // Read and parsed now, so a bad file stops the node before it touches any data.
            (Some(path), None) => {
                let bytes = std::fs::read(path).with_context(|| {
                    format!(
                        "invalid config: key {key}.jwks_file: read {}",
                        path.display()
                    )
                })?;
                warrant_api::id_token::IssuerKeys::from_jwks_json(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid config: key {key}.jwks_file {} is not a usable JWKS: {e}",
                        path.display()
                    )
                })?;
                Ok(())
            }
            (None, Some(url)) => {
                let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
                    .iter()
                    .any(|prefix| url.starts_with(prefix));
                anyhow::ensure!(
                    url.starts_with("https://") || loopback,
                    "invalid config: key {key}.jwks_url is {url:?}; allowed: an https URL (http only on loopback)"
                );
                Ok(())
            }
            _ => anyhow::bail!("invalid config: {key} needs exactly one of jwks_file and jwks_url"),
        }
    }
}

/// The `WARRANT_*` environment as config keys (`WARRANT_TLS__CA_FILE` is `tls.ca_file`).
/// The `WARRANT_` variables that are not config keys are left out ([`is_config_env_key`]), so
/// that exporting them for the CLI never stops a node from starting.
fn server_env() -> Env {
    Env::prefixed("WARRANT_")
        .filter(|key| is_config_env_key(key.as_str()))
        .split("__")
}

/// Whether `WARRANT_<key>` (the part after the prefix) is read as a config key. Not:
/// `WARRANT_CONFIG` (the config file's path, read by the `server` command itself),
/// `WARRANT_ENDPOINTS` (the CLI's endpoints) and the CLI's `WARRANT_CLI_*`.
pub fn is_config_env_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !(key == "config" || key == "endpoints" || key.starts_with("cli_"))
}

/// A secret given inline as `key` or in the file `key_file` (at most one of them), at least
/// [`ADMIN_TOKEN_LEN_MIN`] printable ASCII characters; `None` when neither is set.
fn secret_from(
    key: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "invalid config: keys {key} and {key}_file are both set; allowed: one of them"
        ),
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("read {key}_file {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => return Ok(None),
    };
    anyhow::ensure!(
        ADMIN_TOKEN_LEN_MIN <= secret.len() && secret.bytes().all(|b| b.is_ascii_graphic()),
        "invalid config: key {key} must be at least {ADMIN_TOKEN_LEN_MIN} printable ASCII characters"
    );
    Ok(Some(secret))
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn the_cli_variables_are_not_config_keys() {
        for cli in [
            "ENDPOINTS",
            "endpoints",
            "CONFIG",
            "CLI_CA",
            "CLI_ADMIN_TOKEN",
            "cli_key",
        ] {
            assert!(!super::is_config_env_key(cli), "{cli} read as a config key");
        }
        for key in ["NODE_ID", "TLS__CA_FILE", "ENDPOINT", "ADMIN_TOKEN_FILE"] {
            assert!(
                super::is_config_env_key(key),
                "{key} not read as a config key"
            );
        }
    }
}

#[cfg(test)]
mod deploy_tests {
    use super::*;

    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/warrant.example.toml"
    );
    const UNIT: &str = include_str!("../../deploy/systemd/warrant.service");
    const CREDENTIALS_DIR: &str = "/run/credentials/warrant.service/";

    /// The example config is one this binary accepts, and the systemd unit provides every file
    /// it names: a credential it loads, or a path its install steps put in place.
    #[test]
    fn the_example_config_loads_and_the_unit_provides_every_file_it_names() {
        let config = ServerConfig::load(Some(std::path::Path::new(EXAMPLE)), &Overrides::default())
            .expect("loads");
        let tls = config.tls.clone().expect("the example runs TLS");
        let mut files = vec![config.admin_token_file.clone().expect("admin_token_file")];
        files.extend([tls.ca_file, tls.cert_file, tls.key_file]);
        for file in files {
            let path = file.display().to_string();
            match path.strip_prefix(CREDENTIALS_DIR) {
                Some(name) => assert!(
                    UNIT.lines()
                        .any(|l| l.starts_with(&format!("LoadCredential={name}:"))),
                    "the unit does not load credential {name}"
                ),
                None => {
                    let (dir, name) = path.rsplit_once('/').expect("an absolute path");
                    assert!(
                        UNIT.lines().any(|l| l.starts_with("#   install")
                            && l.contains(name)
                            && l.contains(&format!("{dir}/"))),
                        "the unit's install steps do not put {path} in place"
                    );
                }
            }
        }
        assert!(UNIT.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    }
}

#[cfg(test)]
mod audit_export_tests {
    use super::*;

    fn load(toml: &str) -> anyhow::Result<ServerConfig> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("warrant.toml");
        std::fs::write(&path, toml).expect("write the config");
        ServerConfig::load(Some(&path), &Overrides::default())
    }

    #[test]
    fn absent_is_off_and_a_section_takes_the_defaults() {
        assert_eq!(load("").expect("loads").audit_export().expect("ok"), None);
        let config = load("[audit_export]\nendpoint = \"http://collector:4317\"\n").expect("loads");
        let export = config.audit_export().expect("ok").expect("on");
        assert_eq!(export.endpoint, "http://collector:4317");
        assert_eq!(export.batch_max, 512);
        assert_eq!(export.interval, std::time::Duration::from_millis(1000));
        assert_eq!(export.ca_file, None, "plaintext needs no CA");
    }

    #[test]
    fn https_trusts_the_given_ca_else_the_cluster_ca() {
        let tls = "[tls]\nca_file = \"/ca.pem\"\ncert_file = \"/n.pem\"\nkey_file = \"/k.pem\"\n";
        let https = "[audit_export]\nendpoint = \"https://collector:4317\"\n";
        let config = load(&format!("{tls}{https}")).expect("loads");
        let export = config.audit_export().expect("ok").expect("on");
        assert_eq!(export.ca_file, Some(PathBuf::from("/ca.pem")));
        let own = format!("{tls}{https}ca_file = \"/otel-ca.pem\"\n");
        let export = load(&own).expect("loads").audit_export().expect("ok");
        assert_eq!(
            export.expect("on").ca_file,
            Some(PathBuf::from("/otel-ca.pem"))
        );
    }

    #[test]
    fn a_bad_value_is_named_with_what_is_allowed() {
        let cases = [
            (
                "endpoint = \"collector:4317\"",
                "key audit_export.endpoint is \"collector:4317\"; allowed: http://host:port or \
                 https://host:port",
            ),
            (
                "endpoint = \"http://c:4317\"\nbatch_max = 0",
                "key audit_export.batch_max is 0; allowed: 1 to 4096",
            ),
            (
                "endpoint = \"http://c:4317\"\ninterval_ms = 5",
                "key audit_export.interval_ms is 5; allowed: 10 to 60000",
            ),
            (
                "endpoint = \"http://c:4317\"\nbatch = 3",
                "unknown field: found `batch`, expected `one of `endpoint`, `ca_file`, `batch_max`, `interval_ms``",
            ),
        ];
        for (section, expected) in cases {
            let error = load(&format!("[audit_export]\n{section}\n")).expect_err(section);
            assert!(error.to_string().contains(expected), "{section}: {error}");
        }
    }
}
