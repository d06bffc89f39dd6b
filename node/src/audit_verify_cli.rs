//! `warrant audit export` and `warrant audit verify`: writing the JSON Lines export, and checking
//! one (a file, or the live export of a node) against pinned verifier keys and an optional older
//! trusted checkpoint. Verification is offline unless `--endpoint` is given; then a root mismatch
//! is localised against the node (`audit_bisect`). Exit 0 means verified; any failure prints the
//! first bad seq (when one can be named) and exits non-zero.

use std::{
    fs::File,
    io::{BufReader, BufWriter, IsTerminal as _, Write as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use warrant_proto::api::{self, audit_service_client::AuditServiceClient};
use warrant_token::note::{self, VerifierKey};

use crate::{
    audit_bisect::{self, Located},
    audit_client::{audit_client, print_json, refused, req},
    audit_verify::{self, CheckpointNote, FailureKind, Inputs, Report},
    client::{AdminAuth, Target, TlsArgs},
    policy_cli::{Common, Output},
};

/// The most pinned keys read (from --key and --keys-file together).
const PINNED_KEYS_MAX: usize = 64;

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// The export file; without it, the live export of --endpoints is verified.
    pub file: Option<PathBuf>,
    /// Nodes to localise a root mismatch against (and to export from when no file is given),
    /// comma-separated, tried in order; `--endpoint` is an alias.
    #[arg(
        long = "endpoints",
        visible_alias = "endpoint",
        env = "WARRANT_ENDPOINTS",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// The CA certificate (PEM) that signed the nodes' certificates (with --endpoint).
    #[arg(long, env = "WARRANT_CLI_CA")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) to present, with --client-key (`--key` names pinned keys here).
    #[arg(long, env = "WARRANT_CLI_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, env = "WARRANT_CLI_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    #[arg(
        long,
        env = "WARRANT_CLI_ADMIN_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub admin_token: Option<String>,
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// A pinned verifier key (<name>+<key id>+<key>, as `warrant audit keys` prints); repeatable.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// A file of pinned verifier keys, one per line (# starts a comment).
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// An older checkpoint note you trust: the file's root at its size must be its root.
    #[arg(long)]
    pub trusted: Option<PathBuf>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

impl VerifyArgs {
    fn common(&self) -> Option<Common> {
        if self.endpoints.is_empty() {
            return None;
        }
        let endpoints = self.endpoints.clone();
        Some(Common {
            auth: AdminAuth {
                target: Target {
                    endpoints,
                    tls: TlsArgs {
                        ca: self.ca.clone(),
                        cert: self.client_cert.clone(),
                        key: self.client_key.clone(),
                    },
                },
                admin_token: self.admin_token.clone(),
                admin_token_file: self.admin_token_file.clone(),
            },
            output: self.output,
        })
    }
}

fn pinned_keys(args: &VerifyArgs) -> anyhow::Result<Vec<VerifierKey>> {
    let mut texts = args.keys.clone();
    if let Some(path) = &args.keys_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        texts.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    anyhow::ensure!(
        !texts.is_empty(),
        "no pinned key: pass each node's verifier key with --key (or --keys-file); \
         `warrant audit keys` prints a node's, to compare out of band"
    );
    anyhow::ensure!(
        texts.len() <= PINNED_KEYS_MAX,
        "{} keys given, at most {PINNED_KEYS_MAX}",
        texts.len()
    );
    texts
        .iter()
        .map(|t| {
            // A key pasted on the command line may carry the newline `warrant audit keys` printed.
            note::parse_verifier_key(t.trim()).map_err(|why| anyhow::anyhow!("--key {t}: {why}"))
        })
        .collect()
}

fn trusted_note(path: &Path) -> anyhow::Result<CheckpointNote> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    audit_verify::read_checkpoint(&text)
        .map_err(|why| anyhow::anyhow!("the trusted checkpoint {}: {why}", path.display()))
}

/// A temporary file of ours, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let name = format!(
            "warrant-audit-{what}-{}",
            hex::encode(rand::random::<[u8; 8]>())
        );
        Scratch(std::env::temp_dir().join(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let pinned = pinned_keys(&args)?;
    let trusted = args.trusted.as_deref().map(trusted_note).transpose()?;
    let common = args.common();
    let exported = Scratch::new("export");
    let file = match (&args.file, &common) {
        (Some(file), _) => file.clone(),
        (None, Some(common)) => {
            export_to(common, &exported.0, 0, 0).await?;
            exported.0.clone()
        }
        (None, None) => {
            anyhow::bail!("give an export FILE, or --endpoint to verify a node's live export")
        }
    };
    let leaves = common.as_ref().map(|_| Scratch::new("leaves"));
    let mut report = walk(
        &file,
        &pinned,
        trusted.as_ref(),
        leaves.as_ref(),
        args.output,
    )?;
    if let (Some(common), Some(leaves)) = (&common, &leaves)
        && report.failure.as_ref().map(|f| f.kind) == Some(FailureKind::RootMismatch)
    {
        localise(common, &pinned, &leaves.0, &mut report).await?;
    }
    print_report(&report, args.output)?;
    match &report.failure {
        None => Ok(()),
        Some(failure) => match failure.seq {
            Some(seq) => anyhow::bail!("verification failed at seq {seq}: {:?}", failure.kind),
            None => anyhow::bail!("verification failed: {:?}", failure.kind),
        },
    }
}

/// Checks the trusted checkpoint's own signature, then walks the file.
fn walk(
    file: &Path,
    pinned: &[VerifierKey],
    trusted: Option<&CheckpointNote>,
    leaves: Option<&Scratch>,
    output: Output,
) -> anyhow::Result<Report> {
    let inputs = Inputs { pinned, trusted };
    let opened = File::open(file).with_context(|| format!("open {}", file.display()))?;
    let length = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = progress_bar(length, output);
    let mut sink = leaves
        .map(|s| File::create(&s.0).map(BufWriter::new))
        .transpose()
        .context("create the scratch file of leaves")?;
    let mut report = tokio::task::block_in_place(|| {
        let sink = sink.as_mut().map(|s| s as &mut dyn std::io::Write);
        audit_verify::verify(BufReader::new(opened), &inputs, &progress, sink)
    });
    progress.finish_and_clear();
    if let Some(mut sink) = sink {
        sink.flush().context("write the scratch file of leaves")?;
    }
    if report.failure.is_none()
        && let Some(trusted) = trusted
        && let Err(failure) =
            audit_verify::signed_by_pinned(trusted, pinned, "the trusted checkpoint")
    {
        report.ok = false;
        report.failure = Some(failure);
    }
    Ok(report)
}

/// A bar over the file's bytes on a terminal; hidden for JSON output or when stderr is not one.
fn progress_bar(length: u64, output: Output) -> ProgressBar {
    if matches!(output, Output::Json) || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(
        "verifying {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn localise(
    common: &Common,
    pinned: &[VerifierKey],
    leaves: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = audit_client(common).await?;
    let located = audit_bisect::locate(
        client,
        &common.auth.authorization()?,
        pinned,
        leaves,
        report.events,
    )
    .await
    .context("localise the root mismatch against the node")?;
    let Some(failure) = report.failure.as_mut() else {
        return Ok(());
    };
    match located {
        Located::Seq {
            seq,
            node_leaf,
            file_leaf,
        } => {
            failure.seq = Some(seq);
            failure.detail = format!(
                "the first leaf the node proves differently is seq {seq}: the node's leaf is {}, \
                 the file's {}",
                STANDARD.encode(node_leaf),
                STANDARD.encode(file_leaf)
            );
        }
        Located::NodeAgrees => {
            failure.detail.push_str(
                "; the node's tree at this size has the file's root: the file's checkpoint is \
                 not the node's",
            );
        }
        Located::NodeSmaller { node_size } => {
            failure.detail.push_str(&format!(
                "; the node's tree has only {node_size} events, fewer than the file"
            ));
        }
    }
    Ok(())
}

fn print_report(report: &Report, output: Output) -> anyhow::Result<()> {
    if let Output::Json = output {
        return print_json(&serde_json::to_value(report)?);
    }
    match &report.failure {
        None => {
            println!(
                "OK: {} events, tree size {}, root {}",
                report.events, report.tree_size, report.root
            );
            println!("  log       : {}", report.origin);
            println!("  signed by : {}", report.signers.join(", "));
            if let Some(size) = report.trusted_size {
                println!("  consistent with the trusted checkpoint at size {size}");
            }
        }
        Some(failure) => {
            let at = failure
                .seq
                .map_or("no seq can be named".to_string(), |s| format!("seq {s}"));
            println!("FAILED ({at}): {:?}", failure.kind);
            println!("  {}", failure.detail);
            println!("  {} events checked before it", report.events);
        }
    }
    Ok(())
}

/// `warrant audit export`: the node's export, written to `out` as it streams.
pub async fn export(common: &Common, out: &Path, from_seq: u64, to_seq: u64) -> anyhow::Result<()> {
    let lines = export_to(common, out, from_seq, to_seq).await?;
    let events = lines.saturating_sub(1);
    match common.output {
        Output::Json => print_json(&serde_json::json!({ "file": out, "events": events })),
        Output::Table => {
            println!(
                "exported {events} events and their checkpoint to {}",
                out.display()
            );
            Ok(())
        }
    }
}

/// Streams the export into `out` (removed again on failure); returns the lines written.
async fn export_to(common: &Common, out: &Path, from_seq: u64, to_seq: u64) -> anyhow::Result<u64> {
    let written = stream_export(audit_client(common).await?, common, out, from_seq, to_seq).await;
    if written.is_err() {
        let _ = std::fs::remove_file(out);
    }
    written
}

async fn stream_export(
    mut client: AuditServiceClient<tonic::transport::Channel>,
    common: &Common,
    out: &Path,
    from_seq: u64,
    to_seq: u64,
) -> anyhow::Result<u64> {
    let request = api::ExportRequest {
        from_seq,
        to_seq,
        read: None,
    };
    let mut stream = client
        .export(req(common, request)?)
        .await
        .map_err(|status| refused("export", &status))?
        .into_inner();
    let mut file =
        BufWriter::new(File::create(out).with_context(|| format!("create {}", out.display()))?);
    let mut lines = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|status| refused("export", &status))?
    {
        lines += chunk.jsonl.iter().filter(|b| **b == b'\n').count() as u64;
        file.write_all(&chunk.jsonl)
            .with_context(|| format!("write {}", out.display()))?;
    }
    file.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("write {}", out.display()))?;
    anyhow::ensure!(
        lines > 0,
        "the node's export was empty (no checkpoint line)"
    );
    Ok(lines)
}
