//! What the checkers need from the cluster once the faults are healed: the humans that exist,
//! each node's event list, and the audit monitor's checkpoints checked against a full export with
//! the real `warrant audit verify`.

use std::{collections::BTreeSet, path::Path, process::Command};

use anyhow::{Context as _, ensure};
use sha2::{Digest as _, Sha256};
use tonic::transport::Channel;
use warrant_proto::api::{
    self, Consistency, ReadOptions, audit_service_client::AuditServiceClient,
    identity_service_client::IdentityServiceClient,
};

use warrant_proto::log::event::Kind;

use crate::{
    cluster::{ChaosCluster, with_auth},
    workload::INVALID_GRANT_KEY_PREFIX,
};

/// How many times a final read is tried before the run is called incomplete.
const READ_ATTEMPTS: u32 = 5;
/// The pause between two tries of a final read.
const READ_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Events per ListEvents page.
const EVENTS_PAGE: u32 = 1000;
/// The most events read back from one node (a CI run writes a few thousand).
pub const EVENTS_READ_MAX: usize = 1_000_000;
/// The most held checkpoints checked against the export (each is one `audit verify` run).
pub const TRUSTED_CHECKED_MAX: usize = 6;

fn read(consistency: Consistency) -> Option<ReadOptions> {
    Some(ReadOptions {
        consistency: consistency as i32,
        ..Default::default()
    })
}

/// Which of `ids` exist, read LINEARIZABLE through `channel`.
pub async fn existing_humans(
    channel: Channel,
    admin_token: &str,
    ids: &BTreeSet<String>,
) -> anyhow::Result<BTreeSet<String>> {
    let mut client = IdentityServiceClient::new(channel);
    let mut found = BTreeSet::new();
    for id in ids {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let request = with_auth(
                &format!("Bearer {admin_token}"),
                api::GetHumanRequest {
                    human_id: id.clone(),
                    read: read(Consistency::Linearizable),
                },
            );
            match client.get_human(request).await {
                Ok(_) => {
                    found.insert(id.clone());
                    break;
                }
                Err(status) if status.code() == tonic::Code::NotFound => break,
                // The faults are healed, but a loaded machine can still miss a deadline.
                Err(_) if attempts < READ_ATTEMPTS => tokio::time::sleep(READ_RETRY_PAUSE).await,
                Err(status) => return Err(status).with_context(|| format!("GetHuman {id}")),
            }
        }
    }
    Ok(found)
}

/// What one node's log holds, as the checkers read it.
#[derive(Debug, Default)]
pub struct NodeLog {
    /// (seq, SHA-256 of the encoded event), in the node's order.
    pub hashes: Vec<(u64, String)>,
    /// The idempotency keys of created delegations that W3 made to be refused.
    pub invalid_grants: Vec<String>,
}

/// One node's whole event list, LOCAL (its own applied state).
pub async fn node_log(channel: Channel, admin_token: &str) -> anyhow::Result<NodeLog> {
    let mut client = AuditServiceClient::new(channel);
    let mut log = NodeLog::default();
    let mut from_seq = 1;
    loop {
        let mut attempts = 0;
        let page = loop {
            attempts += 1;
            let request = with_auth(
                &format!("Bearer {admin_token}"),
                api::ListEventsRequest {
                    from_seq,
                    limit: EVENTS_PAGE,
                    read: read(Consistency::Local),
                },
            );
            match client.list_events(request).await {
                Ok(page) => break page.into_inner(),
                // The faults are healed, but a loaded machine can still miss a deadline.
                Err(_) if attempts < READ_ATTEMPTS => tokio::time::sleep(READ_RETRY_PAUSE).await,
                Err(status) => return Err(status).context("ListEvents"),
            }
        };
        let Some(last) = page.events.last().map(|e| e.seq) else {
            return Ok(log);
        };
        for event in &page.events {
            let bytes = prost::Message::encode_to_vec(event);
            log.hashes
                .push((event.seq, hex::encode(Sha256::digest(&bytes))));
            if matches!(event.kind, Some(Kind::DelegationCreated(_)))
                && event.idempotency_key.starts_with(INVALID_GRANT_KEY_PREFIX)
            {
                log.invalid_grants.push(event.idempotency_key.clone());
            }
        }
        ensure!(
            log.hashes.len() <= EVENTS_READ_MAX,
            "more than {EVENTS_READ_MAX} events"
        );
        ensure!(
            last >= from_seq,
            "ListEvents went backwards: from {from_seq}, last {last}"
        );
        from_seq = last + 1;
    }
}

/// Exports node `id`'s log and verifies it with `warrant audit verify` against every node's
/// pinned key, once alone and once from each of (a spread of) the monitor's `held` checkpoint
/// notes as the trusted one. Returns a line per failure (empty: all verified).
pub fn verify_export(
    cluster: &ChaosCluster,
    id: u64,
    held: &[String],
    work: &Path,
) -> anyhow::Result<Vec<String>> {
    let export = work.join("export.jsonl");
    let common = common_args(cluster, id);
    let output = warrant(
        cluster,
        &["audit", "export"],
        &common,
        &["--out", &export.display().to_string()],
    )?;
    ensure!(
        output.status.success(),
        "audit export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut keys = Vec::new();
    for node in cluster.ids() {
        let output = warrant(
            cluster,
            &["audit", "keys"],
            &common_args(cluster, node),
            &[],
        )?;
        ensure!(
            output.status.success(),
            "audit keys failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        keys.push(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let mut failures = Vec::new();
    let mut runs: Vec<Option<&String>> = vec![None];
    runs.extend(spread(held, TRUSTED_CHECKED_MAX).into_iter().map(Some));
    for (n, trusted) in runs.into_iter().enumerate() {
        let mut args = vec![export.display().to_string()];
        for key in &keys {
            args.extend(["--key".to_string(), key.clone()]);
        }
        if let Some(note) = trusted {
            let path = work.join(format!("trusted-{n}.note"));
            std::fs::write(&path, note).context("write a trusted note")?;
            args.extend(["--trusted".to_string(), path.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = warrant(cluster, &["audit", "verify"], &[], &args)?;
        if !output.status.success() {
            failures.push(format!(
                "audit verify (trusted #{n}) failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(failures)
}

/// Up to `max` items spread evenly over `items`, first and last included.
fn spread<T>(items: &[T], max: usize) -> Vec<&T> {
    if items.len() <= max {
        return items.iter().collect();
    }
    (0..max)
        .map(|i| &items[i * (items.len() - 1) / (max - 1)])
        .collect()
}

fn common_args(cluster: &ChaosCluster, id: u64) -> Vec<String> {
    vec![
        "--endpoints".into(),
        cluster.addr(id),
        "--ca".into(),
        cluster.certs_dir().join("ca.pem").display().to_string(),
        "--admin-token".into(),
        cluster.admin_token().to_string(),
    ]
}

fn warrant(
    cluster: &ChaosCluster,
    verb: &[&str],
    common: &[String],
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let mut command = Command::new(cluster.binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WARRANT_") {
            command.env_remove(name);
        }
    }
    command
        .args(verb)
        .args(common)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("run warrant {}", verb.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_keeps_the_ends_and_at_most_max() {
        let items: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&items, 3), vec![&0, &4, &9]);
        assert_eq!(spread(&items[..2], 3), vec![&0, &1]);
    }
}
