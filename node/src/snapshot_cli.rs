//! `warrant snapshot save|status|restore`: backups, as `etcdctl snapshot` does them.
//!
//! `save` streams a backup from a live node (`ClusterService.SaveSnapshot`) into `FILE.part`,
//! checks its size and SHA-256 against what the node announced and every block of it, then
//! fsyncs and renames it to FILE: a FILE that exists is whole. `status` reads a backup and
//! checks every block. `restore` writes a new data dir from a backup, offline (see
//! `warrant_raft::restore`).

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{BufReader, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use warrant_proto::api::{self, cluster_service_client::ClusterServiceClient};
use warrant_raft::{BackupSummary, BackupVerified, MemberNode, RestoreRequest};

use crate::{
    client::{AdminAuth, Output, authed, refused},
    cluster_cli::parse_members,
};

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Save a backup of the first node of --endpoints that answers to FILE: live, consistent at one applied index,
    /// checksummed per block. FILE must not exist; it appears only once complete and checked.
    Save {
        #[command(flatten)]
        auth: AdminAuth,
        file: PathBuf,
    },
    /// Check every block of a backup and show what it holds: index, term, events, size,
    /// checksum, state digest and Merkle root. A corrupt file is refused, naming the offset.
    Status {
        file: PathBuf,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Write a new data dir from a backup, offline, as one member of a new cluster whose voters
    /// are --members: run it on every member with the same lists, then start them (no cluster
    /// init). After losing two of three nodes: restore on one node with only itself as member,
    /// start it, then add new members.
    Restore {
        file: PathBuf,
        /// The new node's data dir: must not exist, or be empty.
        #[arg(long)]
        data_dir: PathBuf,
        /// This node's id, one of --members.
        #[arg(long)]
        node_id: u64,
        /// Every voter of the restored cluster as id=host:port (the address clients dial),
        /// comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        /// Every voter's peer listener as id=host:port, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<String>,
        /// The storage memory budget to restore with (the node's storage_cache_mib).
        #[arg(long, default_value_t = warrant_raft::STORAGE_CACHE_MIB_DEFAULT)]
        storage_cache_mib: u64,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

pub async fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { auth, file } => save(auth, &file).await,
        SnapshotCommand::Status { file, output } => status(&file, output).await,
        SnapshotCommand::Restore {
            file,
            data_dir,
            node_id,
            members,
            peers,
            storage_cache_mib,
            output,
        } => {
            let members = parse_members(&members, &peers)?
                .into_iter()
                .map(|m| {
                    let node = MemberNode {
                        addr: m.address,
                        peer_addr: m.peer_address,
                    };
                    (m.node_id, node)
                })
                .collect::<BTreeMap<_, _>>();
            let request = RestoreRequest {
                backup: file,
                data_dir,
                node_id,
                members,
                storage_cache_mib,
            };
            restore(request, output).await
        }
    }
}

/// What `status` and `save` print about a backup.
#[derive(Debug, Serialize)]
struct BackupReport {
    file: String,
    index: u64,
    term: u64,
    last_seq: u64,
    events: u64,
    rows: u64,
    size_bytes: u64,
    sha256: String,
    state_digest: String,
    merkle_root: String,
}

impl BackupReport {
    fn new(file: &Path, summary: &BackupSummary, verified: &BackupVerified) -> Self {
        BackupReport {
            file: file.display().to_string(),
            index: summary.index,
            term: summary.term,
            last_seq: summary.last_seq,
            events: summary.events,
            rows: verified.rows,
            size_bytes: verified.size,
            sha256: hex::encode(verified.sha256),
            state_digest: hex::encode(summary.state_digest),
            merkle_root: hex::encode(summary.merkle_root),
        }
    }

    fn print(&self, output: Output) -> anyhow::Result<()> {
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(self)?),
            Output::Table => {
                let rows = [
                    ("file", self.file.clone()),
                    ("index", self.index.to_string()),
                    ("term", self.term.to_string()),
                    ("last seq", self.last_seq.to_string()),
                    ("events", self.events.to_string()),
                    ("rows", self.rows.to_string()),
                    ("size", format!("{} bytes", self.size_bytes)),
                    ("sha256", self.sha256.clone()),
                    ("state digest", self.state_digest.clone()),
                    ("merkle root", self.merkle_root.clone()),
                ];
                for (name, value) in rows {
                    println!("{name:<13} {value}");
                }
            }
        }
        Ok(())
    }
}

/// Reads and checks a whole backup file, off the async runtime.
async fn verify_file(file: &Path) -> anyhow::Result<(BackupSummary, BackupVerified)> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let input = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        warrant_raft::verify_backup(BufReader::with_capacity(1 << 20, input))
            .with_context(|| format!("refused {}", path.display()))
    })
    .await
    .context("backup check task")?
}

async fn status(file: &Path, output: Output) -> anyhow::Result<()> {
    let (summary, verified) = verify_file(file).await?;
    BackupReport::new(file, &summary, &verified).print(output)
}

async fn save(auth: AdminAuth, file: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !file.exists(),
        "{} exists; allowed: a path that does not exist (a save never overwrites a backup)",
        file.display()
    );
    let authorization = auth.authorization()?;
    let channel = auth.channel().await?;
    let mut stream = ClusterServiceClient::new(channel)
        .save_snapshot(authed(&authorization, api::SaveSnapshotRequest {}))
        .await
        .map_err(|status| refused("save snapshot", &status))?
        .into_inner();
    let first = stream
        .message()
        .await
        .map_err(|status| refused("save snapshot", &status))?
        .context("the node ended the stream before it sent the backup's summary")?;
    let announced = first
        .summary
        .context("the node's first message carries no summary")?;
    let part = part_path(file);
    let received = receive(&mut stream, &part, &announced).await;
    let received = match received {
        Ok(received) => received,
        Err(e) => {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
    };
    let checked = check_received(&part, &announced, received).await;
    let (summary, verified) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
    };
    fs::rename(&part, file)
        .with_context(|| format!("rename {} to {}", part.display(), file.display()))?;
    sync_parent_dir(file)?;
    BackupReport::new(file, &summary, &verified).print(Output::Table)
}

/// `FILE.part`: where a save writes until the file is complete and checked.
fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

/// Writes the stream's data into `part` with a progress bar, then fsyncs it. Returns the bytes
/// received and their SHA-256.
async fn receive(
    stream: &mut tonic::Streaming<api::SaveSnapshotChunk>,
    part: &Path,
    announced: &api::SnapshotSummary,
) -> anyhow::Result<(u64, [u8; 32])> {
    let mut out = File::create(part).with_context(|| format!("create {}", part.display()))?;
    let bar = progress_bar(announced.size_bytes);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|status| refused("save snapshot", &status))?
    {
        received += chunk.data.len() as u64;
        anyhow::ensure!(
            received <= announced.size_bytes,
            "the node sent more than the {} bytes it announced",
            announced.size_bytes
        );
        hasher.update(&chunk.data);
        out.write_all(&chunk.data)
            .with_context(|| format!("write {}", part.display()))?;
        bar.set_position(received);
    }
    out.sync_all()
        .with_context(|| format!("fsync {}", part.display()))?;
    bar.finish_and_clear();
    Ok((received, hasher.finalize().into()))
}

/// Checks what arrived against what the node announced, then reads the file back and checks
/// every block and its header.
async fn check_received(
    part: &Path,
    announced: &api::SnapshotSummary,
    (size, sha256): (u64, [u8; 32]),
) -> anyhow::Result<(BackupSummary, BackupVerified)> {
    anyhow::ensure!(
        size == announced.size_bytes,
        "the stream ended after {size} of the {} bytes announced",
        announced.size_bytes
    );
    anyhow::ensure!(
        hex::encode(sha256) == announced.sha256_hex,
        "the bytes received hash to {}, not the {} announced",
        hex::encode(sha256),
        announced.sha256_hex
    );
    let (summary, verified) = verify_file(part).await?;
    let header = (
        summary.index,
        summary.term,
        summary.events,
        hex::encode(summary.state_digest),
        hex::encode(summary.merkle_root),
    );
    let said = (
        announced.applied_index,
        announced.term,
        announced.events,
        announced.state_digest_hex.clone(),
        announced.merkle_root_hex.clone(),
    );
    anyhow::ensure!(
        header == said,
        "the file's header {header:?} is not the summary announced {said:?}"
    );
    Ok((summary, verified))
}

fn progress_bar(total: u64) -> ProgressBar {
    // indicatif draws only on a terminal: piped or redirected, the bar stays silent.
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "saving {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

fn sync_parent_dir(file: &Path) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

/// What `restore` prints.
#[derive(Debug, Serialize)]
struct RestoreReport {
    data_dir: String,
    node_id: u64,
    members: Vec<u64>,
    #[serde(flatten)]
    backup: BackupReport,
}

async fn restore(request: RestoreRequest, output: Output) -> anyhow::Result<()> {
    let (file, data_dir, node_id) = (
        request.backup.clone(),
        request.data_dir.clone(),
        request.node_id,
    );
    let members: Vec<u64> = request.members.keys().copied().collect();
    let restored = warrant_raft::restore(request)
        .await
        .with_context(|| format!("restore {} into {}", file.display(), data_dir.display()))?;
    let report = RestoreReport {
        data_dir: data_dir.display().to_string(),
        node_id,
        members,
        backup: BackupReport::new(&file, &restored.summary, &restored.verified),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            println!(
                "restored {} into {} as node {} of members {:?}; the state digest and Merkle \
                 root recomputed from the restored state match the backup",
                file.display(),
                report.data_dir,
                node_id,
                report.members
            );
            report.backup.print(Output::Table)?;
        }
    }
    Ok(())
}
