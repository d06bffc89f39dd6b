//! The `warrant` binary: `server` runs a node; `cluster` and `member` administer a cluster;
//! `local-cluster` runs three nodes on loopback; `dev` runs a one-node cluster for development;
//! `demo` runs a local cluster and walks through issue, verify, revoke and audit against it.

mod audit_access;
mod audit_bisect;
mod audit_cli;
mod audit_client;
mod audit_json;
mod audit_verify;
mod audit_verify_cli;
mod certs;
mod client;
mod cluster_cli;
mod config;
mod config_cli;
mod config_reference;
mod demo;
mod health_cli;
mod lifecycle;
mod local_cluster;
mod meta_cli;
mod operator_cli;
mod policy_cli;
mod private_files;
mod snapshot_cli;
mod telemetry;

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use warrant_api::{ApiConfig, Warrant};

use crate::config::{Overrides, ServerConfig};

#[derive(Parser)]
#[command(
    name = "warrant",
    version,
    about = "Identity authority for humans and AI agents",
    after_help = client::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a TOML config file (overridable by WARRANT_* variables and flags).
    Server {
        #[arg(short, long, env = "WARRANT_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        node_id: Option<u64>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        listen_addr: Option<SocketAddr>,
        /// Serve the peer RPCs here (mutual TLS).
        #[arg(long)]
        peer_listen_addr: Option<SocketAddr>,
        /// Serve /.well-known/jwks.json and /healthz over HTTP here.
        #[arg(long)]
        http_listen_addr: Option<SocketAddr>,
        #[arg(long)]
        advertise_addr: Option<String>,
        #[arg(long)]
        peer_advertise_addr: Option<String>,
        /// Make this node a one-member cluster if it is not in one yet.
        #[arg(long)]
        init_single_node: bool,
    },
    /// Run a one-node cluster for development and print its endpoints.
    Dev {
        #[arg(long, default_value = ".warrant-dev")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:7401")]
        http_listen_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:7402")]
        peer_listen_addr: SocketAddr,
    },
    /// Start a three-node cluster on loopback in a temporary directory, walk through register,
    /// issue, verify, revoke and audit over gRPC across its nodes, and stop it.
    Demo,
    /// Run a three-node cluster on loopback until Ctrl-C, then stop it cleanly.
    LocalCluster {
        /// Data directories and logs of the three nodes.
        #[arg(long, default_value = ".warrant-local")]
        dir: PathBuf,
        /// Node n listens on base-port + 3(n-1) for gRPC, the next port for HTTP and the one
        /// after for its peers.
        #[arg(long, default_value_t = 7410)]
        base_port: u16,
    },
    /// Register named operators.
    #[command(subcommand)]
    Operator(operator_cli::OperatorCommand),
    /// Make TLS certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Bootstrap a cluster, or show its members' status.
    #[command(subcommand)]
    Cluster(cluster_cli::ClusterCommand),
    /// Add, promote or remove a member.
    #[command(subcommand)]
    Member(cluster_cli::MemberCommand),
    /// Manage the signing key of the node at --endpoint.
    #[command(subcommand)]
    Key(cluster_cli::KeyCommand),
    /// Publish, activate, roll back and inspect Cedar policy versions.
    #[command(subcommand)]
    Policy(policy_cli::PolicyCommand),
    /// Decide whether an agent's token may call a tool now; the decision is recorded as a
    /// receipt. A DENY is printed and exits 0.
    Authorize(Box<policy_cli::AuthorizeArgs>),
    /// The audit log: signed checkpoints, export and offline verification, tail, query, and
    /// what an agent could do at a point of the log.
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// Ask a node's gRPC health service whether it serves (for probes: exit 0 serving, 4 not,
    /// 3 no answer).
    Health(health_cli::HealthArgs),
    /// Check a config file, or print the configuration reference.
    #[command(subcommand)]
    Config(config_cli::ConfigCommand),
    /// Print this binary's version, compiler, target and build profile.
    Version {
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: client::Output,
    },
    /// Print a shell completion script, e.g. `warrant completions bash > /etc/bash_completion.d/warrant`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Backups: save one from a live node, check a file, restore a new data dir from one.
    #[command(subcommand)]
    Snapshot(snapshot_cli::SnapshotCommand),
}

#[derive(Subcommand)]
enum CertsCommand {
    /// A development CA, a certificate for each of nodes 1..=N (naming node-<id>.warrant.internal,
    /// localhost, 127.0.0.1, ::1 and every --host) and a client certificate, in --out.
    Dev {
        #[arg(long, default_value = ".warrant-certs")]
        out: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Another DNS name or IP address the nodes' certificates should carry.
        #[arg(long)]
        host: Vec<String>,
        /// An operator to make a client certificate for (operator-<id>.pem, naming
        /// <id>.operator.warrant.internal); repeatable.
        #[arg(long)]
        operator: Vec<String>,
    },
}

/// jemalloc, as TiKV runs. Measured with cluster-bench on two cores: after the same load, a
/// leader held 113 MiB RSS against 160 with glibc's malloc, whose per-thread arenas keep what
/// replication and apply free; malloc and free were a tenth of a leader's CPU under load.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs the command; a failure prints its error chain and exits 1, 3 (unreachable) or 4
/// (refused), as [`client::exit_code`] classes it (clap exits 2 on a usage error).
fn main() -> std::process::ExitCode {
    private_files::restrict_umask();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::from(client::exit_code(&error))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server { config, node_id, data_dir, listen_addr, peer_listen_addr, http_listen_addr, advertise_addr, peer_advertise_addr, init_single_node } => {
                lifecycle::die_with_parent()?;
                let overrides = Overrides {
                    node_id,
                    data_dir,
                    listen_addr,
                    peer_listen_addr,
                    http_listen_addr,
                    advertise_addr,
                    peer_advertise_addr,
                    init_single_node: init_single_node.then_some(true),
                };
                let config = ServerConfig::load(config.as_deref(), &overrides)?;
                let telemetry = telemetry::init(&config.log_format, config.node_id)?;
                for (old, new) in config.deprecated_keys_used() {
                    tracing::warn!(old, new, "config key {old} is deprecated and will be removed in the next release; use {new}");
                }
                let api = api_config(&config)?;
                let served = serve(api, |_| {}).await;
                telemetry.shutdown().await;
                served
            }
            Command::Dev { data_dir, listen_addr, http_listen_addr, peer_listen_addr } => {
                dev(data_dir, listen_addr, http_listen_addr, peer_listen_addr).await
            }
            Command::Demo => demo::run().await,
            Command::LocalCluster { dir, base_port } => local_cluster(dir, base_port).await,
            Command::Cluster(command) => cluster_cli::run_cluster(command).await,
            Command::Member(command) => cluster_cli::run_member(command).await,
            Command::Key(command) => cluster_cli::run_key(command).await,
            Command::Operator(command) => operator_cli::run(command).await,
            Command::Policy(command) => policy_cli::run(command).await,
            Command::Authorize(args) => policy_cli::run_authorize(*args).await,
            Command::Audit(command) => audit_cli::run(command).await,
            Command::Health(args) => health_cli::run(args).await,
            Command::Config(command) => config_cli::run(command),
            Command::Version { output } => meta_cli::version(output),
            Command::Completions { shell } => {
                meta_cli::completions(shell, &mut Cli::command());
                Ok(())
            }
            Command::Snapshot(command) => snapshot_cli::run(command).await,
            Command::Certs(CertsCommand::Dev {
                out,
                nodes,
                host,
                operator,
            }) => certs_dev(&out, nodes, &host, &operator),
        }
    })
}

/// `warrant dev`: one TLS node, initialised, with local passwords allowed; prints its endpoints.
async fn dev(
    data_dir: PathBuf,
    listen_addr: SocketAddr,
    http_listen_addr: SocketAddr,
    peer_listen_addr: SocketAddr,
) -> anyhow::Result<()> {
    telemetry::init_logging("text");
    let admin_token = dev_admin_token(&data_dir)?;
    let certs = certs::make(&data_dir.join("tls"), 1, &[], &[])?;
    let node = certs.node(1);
    let config = ServerConfig {
        data_dir: data_dir.clone(),
        listen_addr,
        peer_listen_addr,
        http_listen_addr: Some(http_listen_addr),
        admin_token: Some(admin_token.clone()),
        init_single_node: true,
        allow_local_passwords: true,
        tls: Some(config::TlsConfig {
            ca_file: node.ca_file,
            cert_file: node.cert_file,
            key_file: node.key_file,
        }),
        ..ServerConfig::default()
    };
    let api = api_config(&config)?;
    serve(api, |warrant| {
        println!("warrant dev node {} is up", warrant.node.node_id());
        println!(
            "  gRPC endpoint : {} (TLS; CA {})",
            warrant.local_addr,
            certs.ca_file.display()
        );
        if let Some(http_addr) = warrant.http_addr {
            println!("  JWKS          : https://{http_addr}/.well-known/jwks.json");
        }
        println!("  data dir      : {}", data_dir.display());
        println!("  admin token   : {admin_token}   (authorization: Bearer <token>)");
        println!("  health        : grpc.health.v1.Health/Check; reflection is on");
    })
    .await
}

/// `warrant certs dev`: writes the files and says where they are.
fn certs_dev(
    out: &std::path::Path,
    nodes: u64,
    host: &[String],
    operators: &[String],
) -> anyhow::Result<()> {
    let made = certs::make(out, nodes, host, operators)?;
    println!(
        "wrote a development CA and certificates to {}:",
        made.dir.display()
    );
    println!("  CA            : {}", made.ca_file.display());
    for node_id in 1..=nodes {
        let files = made.node(node_id);
        println!(
            "  node {node_id}        : {} (key {})",
            files.cert_file.display(),
            files.key_file.display()
        );
    }
    println!(
        "  client        : {} (key {})",
        made.client_cert_file.display(),
        made.client_key_file.display()
    );
    Ok(())
}

fn api_config(config: &ServerConfig) -> anyhow::Result<ApiConfig> {
    let admin_token = config.admin_token()?;
    Ok(ApiConfig {
        security: config.security(&admin_token)?,
        node_id: config.node_id,
        data_dir: config.data_dir.clone(),
        listen_addr: config.listen_addr,
        peer_listen_addr: config.peer_listen_addr,
        http_listen_addr: config.http_listen_addr,
        advertise_addr: config.advertise_addr(),
        peer_advertise_addr: config.peer_advertise_addr(),
        admin_token,
        issuer: config.issuer.clone(),
        token_ttl_default_s: config.token_ttl_default_s,
        clock_leeway_s: config.clock_leeway_s,
        init_single_node: config.init_single_node,
        snapshot_logs_since_last: config.snapshot_logs_since_last,
        snapshot_logs_kept: config.snapshot_logs_kept,
        federation: config.federation(),
        allow_local_passwords: config.allow_local_passwords,
        session_ttl_default_s: config.session_ttl_default_s,
        storage_cache_mib: config.storage_cache_mib,
        audit_export: config.audit_export()?,
    })
}

async fn local_cluster(dir: PathBuf, base_port: u16) -> anyhow::Result<()> {
    let admin_token = dev_admin_token(&dir)?;
    // Before the nodes start: a SIGTERM while they bootstrap stops them once they have.
    let stop = shutdown_signal();
    let cluster = local_cluster::LocalCluster::start(&dir, base_port, &admin_token).await?;
    println!(
        "warrant local cluster is up ({} nodes)",
        cluster.nodes.len()
    );
    for node in &cluster.nodes {
        println!(
            "  node {}: gRPC {}  peers {}  JWKS https://{}/.well-known/jwks.json  log {}",
            node.node_id,
            node.addr,
            node.peer_addr,
            node.http_addr,
            node.log_path.display()
        );
    }
    println!(
        "  TLS         : every listener; CA {}",
        cluster.certs.ca_file.display()
    );
    println!("  admin token : {admin_token}   (authorization: Bearer <token>)");
    println!(
        "  status      : warrant cluster status --ca {} --endpoints {}",
        cluster.certs.ca_file.display(),
        cluster.nodes[0].addr
    );
    println!("Ctrl-C stops the cluster.");
    stop.await;
    println!("stopping");
    cluster.stop().await;
    Ok(())
}

/// Serves until SIGINT or SIGTERM, telling systemd how it goes (`lifecycle`).
pub async fn serve(api: ApiConfig, on_ready: impl FnOnce(&Warrant)) -> anyhow::Result<()> {
    let result = Warrant::run(api, lifecycle::stopping_on(shutdown_signal()), |warrant| {
        lifecycle::started(warrant);
        on_ready(warrant);
    })
    .await;
    lifecycle::exit_if_stop_timed_out(&result);
    result.context("run node")
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while the caller is still starting up (a
/// local cluster bootstrapping its nodes) is kept for later instead of killing the process and
/// orphaning its children.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (terminate, interrupt) => {
                tracing::error!(
                    sigterm = terminate.is_ok(),
                    sigint = interrupt.is_ok(),
                    "cannot listen for both SIGTERM and SIGINT; stopping on the one available"
                );
                match (terminate, interrupt) {
                    (Ok(mut one), _) | (_, Ok(mut one)) => {
                        one.recv().await;
                    }
                    _ => std::future::pending().await,
                }
            }
        }
    }
}

/// The dev node's admin token: generated once per data directory and kept there (mode 0600).
fn dev_admin_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let path = data_dir.join("dev-admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_string());
    }
    let token = format!("dev-{}", hex::encode(rand::random::<[u8; 16]>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(token.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command, cluster_cli::KeyCommand};

    /// A kid is base64url, so about one in 32 begins with '-' (CI once drew `-Wjef…`): the value
    /// after `--key-id`, and the free-text and credential values beside it, are taken as is.
    #[test]
    fn values_that_begin_with_a_hyphen_are_values() {
        let cli = Cli::try_parse_from([
            "warrant",
            "key",
            "compromised",
            "--key-id",
            "-Wjef3nrmZxFxkoKZAUNDKVRsVRZH1HUPyz8snmcU3E",
            "--reason",
            "-leaked",
            "--admin-token",
            "-token",
        ])
        .unwrap_or_else(|e| panic!("a hyphen-led kid was refused: {e}"));
        let Command::Key(KeyCommand::Compromised {
            auth,
            key_id,
            reason,
        }) = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(key_id, "-Wjef3nrmZxFxkoKZAUNDKVRsVRZH1HUPyz8snmcU3E");
        assert_eq!(reason, "-leaked");
        assert_eq!(auth.admin_token.as_deref(), Some("-token"));
    }
}
