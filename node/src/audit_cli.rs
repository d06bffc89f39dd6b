//! `warrant audit …`: the auditor's verbs. `checkpoint` and `keys` print a node's signed
//! checkpoint and verifier key; `export` writes the JSON Lines export; `verify` checks an export
//! file (or a node's live export) offline against pinned keys (`audit_verify`, `audit_bisect`);
//! `tail` follows the log live, resuming after a disconnect; `query` pages through filtered
//! events; `access` prints what an agent could do at a point of the log (`audit_access`). Each
//! talks gRPC to one node with the CLI's TLS settings and credential, prints text or, with
//! `-o json`, JSON, and on a refusal prints the status, reason code and message and exits
//! non-zero, as `policy_cli` does.

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tonic::Status;
use warrant_proto::api;

use crate::{
    audit_client::{audit_client, format_time_ms, parse_time_ms, print_json, refused, req},
    audit_json,
    policy_cli::{Common, Output},
};

/// Pages `audit query` reads at most before it stops and says where to resume.
const QUERY_PAGES_MAX: usize = 10_000;
/// Consecutive failed (re)connections `audit tail` makes before it gives up.
const TAIL_RETRIES_MAX: u32 = 10;
/// The first and the longest wait between two reconnections of `audit tail`.
const TAIL_BACKOFF_MIN: Duration = Duration::from_millis(200);
const TAIL_BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the node's latest signed checkpoint (a C2SP tlog-checkpoint note).
    Checkpoint {
        #[command(flatten)]
        common: Common,
        /// Sign one now at the size the node has reached.
        #[arg(long)]
        fresh: bool,
        /// Also write the note to this file (to keep as a trusted checkpoint).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the node's checkpoint verifier key (compare it out of band, then pin it).
    Keys {
        #[command(flatten)]
        common: Common,
    },
    /// Write the log as JSON Lines, ending with a checkpoint signed at its last seq.
    Export {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        out: PathBuf,
        /// The first seq (a file verifies on its own only from seq 1).
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// The last seq (default: the node's tree size).
        #[arg(long, default_value_t = 0)]
        to_seq: u64,
    },
    /// Verify an export file (or the live export of --endpoint) against pinned keys.
    Verify(Box<crate::audit_verify_cli::VerifyArgs>),
    /// Follow the log live, one line per event; resumes after a disconnect.
    Tail {
        #[command(flatten)]
        common: Common,
        /// The first seq to print (default: the next event applied).
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
    },
    /// Events matching every filter given, in seq order.
    Query(Box<QueryArgs>),
    /// What an agent could do (for a human) at a point of the log.
    Access(Box<crate::audit_access::AccessArgs>),
}

#[derive(Args, Clone, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub human: Option<String>,
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub tool: Option<String>,
    /// An event kind by its field name (human_registered, access_decided, ...); repeatable.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only access decisions that were ALLOW or DENY.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// Events at or after this time (RFC 3339 or unix ms).
    #[arg(long)]
    pub from: Option<String>,
    /// Events before this time (RFC 3339 or unix ms).
    #[arg(long)]
    pub to: Option<String>,
    /// Print at most this many events.
    #[arg(long)]
    pub limit: Option<u64>,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Checkpoint { common, fresh, out } => {
            checkpoint(&common, fresh, out.as_ref()).await
        }
        AuditCommand::Keys { common } => keys(&common).await,
        AuditCommand::Export {
            common,
            out,
            from_seq,
            to_seq,
        } => crate::audit_verify_cli::export(&common, &out, from_seq, to_seq).await,
        AuditCommand::Verify(args) => crate::audit_verify_cli::run(*args).await,
        AuditCommand::Tail { common, from_seq } => tail(&common, from_seq).await,
        AuditCommand::Query(args) => query(&args).await,
        AuditCommand::Access(args) => crate::audit_access::run(&args).await,
    }
}

pub async fn fetch_checkpoint(common: &Common, fresh: bool) -> anyhow::Result<api::Checkpoint> {
    let request = api::GetCheckpointRequest { read: None, fresh };
    audit_client(common)
        .await?
        .get_checkpoint(req(common, request)?)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| refused("checkpoint", &status))
}

fn checkpoint_json(c: &api::Checkpoint) -> serde_json::Value {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    json!({
        "note": c.note,
        "origin": c.origin,
        "tree_size": c.tree_size,
        "root_hash": STANDARD.encode(&c.root_hash),
        "node_id": c.node_id,
        "verifier_key": c.verifier_key,
        "applied_seq": c.applied_seq,
    })
}

async fn checkpoint(common: &Common, fresh: bool, out: Option<&PathBuf>) -> anyhow::Result<()> {
    let c = fetch_checkpoint(common, fresh).await?;
    if let Some(out) = out {
        std::fs::write(out, &c.note).with_context(|| format!("write {}", out.display()))?;
    }
    match common.output {
        Output::Json => print_json(&checkpoint_json(&c)),
        Output::Table => {
            print!("{}", c.note);
            if let Some(out) = out {
                eprintln!("wrote the checkpoint to {}", out.display());
            }
            Ok(())
        }
    }
}

async fn keys(common: &Common) -> anyhow::Result<()> {
    // The key comes with a checkpoint; before the first scheduled one, ask for one signed now.
    let c = match fetch_checkpoint(common, false).await {
        Ok(c) => c,
        Err(_) => fetch_checkpoint(common, true).await?,
    };
    match common.output {
        Output::Json => {
            print_json(&json!({ "node_id": c.node_id, "verifier_key": c.verifier_key }))
        }
        Output::Table => {
            println!("{}", c.verifier_key);
            Ok(())
        }
    }
}

/// One event as `audit tail` and `audit query` print it.
fn print_event(common: &Common, event: &warrant_proto::log::Event) -> anyhow::Result<()> {
    let value = audit_json::event_json(event)?;
    match common.output {
        Output::Json => println!("{}", serde_json::to_string(&value)?),
        Output::Table => {
            let actor = event
                .actor
                .as_ref()
                .map(|a| a.id.as_str())
                .filter(|id| !id.is_empty())
                .unwrap_or("-");
            println!(
                "{:>8}  {}  {:<24} {actor}",
                event.seq,
                format_time_ms(event.time_unix_ms),
                audit_json::event_kind(&value)
            );
        }
    }
    std::io::stdout().flush().context("write to stdout")
}

/// Watches from `from_seq`, printing each event once; after a disconnect, asks again from the
/// last seq printed + 1, so nothing is skipped or repeated.
async fn tail(common: &Common, from_seq: u64) -> anyhow::Result<()> {
    let mut next = from_seq;
    let mut failures = 0;
    let mut backoff = TAIL_BACKOFF_MIN;
    loop {
        match watch_once(common, &mut next).await {
            Ok(()) => {
                failures = 0;
                backoff = TAIL_BACKOFF_MIN;
                eprintln!("the stream ended; resuming from seq {next}");
            }
            Err(WatchError::Fatal(error)) => return Err(error),
            Err(WatchError::Retry(why)) => {
                failures += 1;
                anyhow::ensure!(
                    failures <= TAIL_RETRIES_MAX,
                    "gave up after {TAIL_RETRIES_MAX} failed reconnections: {why}"
                );
                eprintln!("{why}; reconnecting in {backoff:?} from seq {next}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(TAIL_BACKOFF_MAX);
            }
        }
    }
}

enum WatchError {
    Retry(String),
    Fatal(anyhow::Error),
}

fn retriable(status: &Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::ResourceExhausted
    ) || crate::client::error_info(status).0 == "NOT_LEADER"
}

/// One Watch stream until it ends; `next` follows the events printed.
async fn watch_once(common: &Common, next: &mut u64) -> Result<(), WatchError> {
    let mut client = audit_client(common)
        .await
        .map_err(|e| WatchError::Retry(format!("{e:#}")))?;
    let request = req(common, api::WatchRequest { from_seq: *next }).map_err(WatchError::Fatal)?;
    let classify = |status: Status| {
        if retriable(&status) {
            WatchError::Retry(format!("watch: {} {}", status.code(), status.message()))
        } else {
            WatchError::Fatal(refused("watch", &status))
        }
    };
    let mut stream = client.watch(request).await.map_err(classify)?.into_inner();
    while let Some(message) = stream.message().await.map_err(classify)? {
        if *next == 0 && message.events.is_empty() {
            *next = message.applied_seq + 1;
        }
        for event in &message.events {
            if *next != 0 && event.seq < *next {
                continue;
            }
            if *next != 0 && event.seq > *next {
                return Err(WatchError::Fatal(anyhow::anyhow!(
                    "the stream skipped from seq {next} to {}",
                    event.seq
                )));
            }
            print_event(common, event).map_err(WatchError::Fatal)?;
            *next = event.seq + 1;
        }
    }
    Ok(())
}

fn query_request(args: &QueryArgs) -> anyhow::Result<api::QueryEventsRequest> {
    let decision = match args.decision.as_deref() {
        Some("allow") => warrant_proto::log::AccessDecision::Allow as i32,
        Some("deny") => warrant_proto::log::AccessDecision::Deny as i32,
        _ => 0,
    };
    let time = |t: &Option<String>| t.as_deref().map(parse_time_ms).transpose();
    Ok(api::QueryEventsRequest {
        actor_id: args.actor.clone().unwrap_or_default(),
        human_id: args.human.clone().unwrap_or_default(),
        agent_id: args.agent.clone().unwrap_or_default(),
        service_id: args.service.clone().unwrap_or_default(),
        tool: args.tool.clone().unwrap_or_default(),
        kinds: args.kinds.clone(),
        decision,
        from_time_unix_ms: time(&args.from)?.unwrap_or(0),
        to_time_unix_ms: time(&args.to)?.unwrap_or(0),
        cursor: String::new(),
        limit: 0,
        read: None,
    })
}

/// Pages through the matches, printing each event as it comes.
async fn query(args: &QueryArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let mut client = audit_client(common).await?;
    let mut request = query_request(args)?;
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    for _ in 0..QUERY_PAGES_MAX {
        let page = client
            .query(req(common, request.clone())?)
            .await
            .map_err(|status| refused("query", &status))?
            .into_inner();
        for event in &page.events {
            if printed == limit {
                return Ok(());
            }
            print_event(common, event)?;
            printed += 1;
        }
        if page.next_cursor.is_empty() {
            return Ok(());
        }
        request.cursor = page.next_cursor;
    }
    anyhow::bail!(
        "stopped after {QUERY_PAGES_MAX} pages; narrow the filters or the time range, or resume \
         with --from after the last event printed"
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Clap's own consistency checks (unique option names, valid requirements) on every verb.
    #[test]
    fn the_command_line_is_well_formed() {
        crate::Cli::command().debug_assert();
    }
}
