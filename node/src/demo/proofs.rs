//! The demo's last act: the audit trail proven. Every node signs a checkpoint of the same tree;
//! node 3 proves that the revocation of alice's grant is in it, and the demo checks the proof
//! and the signature itself, as an auditor would; then it asks what the researcher could do for
//! alice just before the revocation, and now.

use tonic::transport::Channel;
use warrant_identity::audit::merkle;
use warrant_proto::{
    api::{self, Consistency, ReadOptions, audit_service_client::AuditServiceClient},
    log::event::Kind,
};
use warrant_token::note;

use super::authed;

/// Signs a checkpoint on each node, proves the revocation of `root_id` on node 3, and shows the
/// researcher's effective access before it and now.
pub(super) async fn prove(
    channels: [&Channel; 3],
    admin: &str,
    root_id: &str,
) -> anyhow::Result<()> {
    let mut checkpoints = Vec::new();
    for (number, channel) in (1..).zip(channels) {
        let checkpoint = fresh_checkpoint(channel, admin).await?;
        let key = note::parse_verifier_key(&checkpoint.verifier_key)?;
        note::open(&checkpoint.note, std::slice::from_ref(&key))?;
        println!(
            "node {number}: signed checkpoint     size {} root {}… ({})",
            checkpoint.tree_size,
            hex::encode(&checkpoint.root_hash[..checkpoint.root_hash.len().min(8)]),
            key.name()
        );
        checkpoints.push(checkpoint);
    }
    report_agreement(&checkpoints);
    let Some(checkpoint) = checkpoints.pop() else {
        anyhow::bail!("no checkpoint");
    };
    let revoked_seq = revocation_seq(channels[2], admin, root_id).await?;
    prove_included(channels[2], admin, revoked_seq, &checkpoint).await?;
    print_access(
        channels[2],
        admin,
        revoked_seq - 1,
        "just before the revocation",
    )
    .await?;
    print_access(channels[2], admin, checkpoint.tree_size, "now").await
}

/// A checkpoint signed now, at a size confirmed current.
async fn fresh_checkpoint(channel: &Channel, admin: &str) -> anyhow::Result<api::Checkpoint> {
    Ok(AuditServiceClient::new(channel.clone())
        .get_checkpoint(authed(
            admin,
            api::GetCheckpointRequest {
                read: Some(ReadOptions {
                    consistency: Consistency::Linearizable as i32,
                    at_least_seq: 0,
                    as_of: None,
                }),
                fresh: true,
            },
        ))
        .await?
        .into_inner())
}

/// Checkpoints of the same size must carry the same root on every node.
fn report_agreement(checkpoints: &[api::Checkpoint]) {
    let same_size = checkpoints
        .windows(2)
        .all(|pair| pair[0].tree_size == pair[1].tree_size);
    let same_root = checkpoints
        .windows(2)
        .all(|pair| pair[0].root_hash == pair[1].root_hash);
    match (same_size, same_root) {
        (true, true) => println!("        the three nodes signed the same tree"),
        (true, false) => println!("        the nodes signed DIFFERENT roots for one size: a fork!"),
        (false, _) => {
            println!("        the nodes signed different sizes (events were still landing)")
        }
    }
}

/// The seq of the event that revoked delegation `root_id`.
async fn revocation_seq(channel: &Channel, admin: &str, root_id: &str) -> anyhow::Result<u64> {
    let page = AuditServiceClient::new(channel.clone())
        .query(authed(
            admin,
            api::QueryEventsRequest {
                kinds: vec!["delegation_revoked".into()],
                limit: 10,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    page.events
        .iter()
        .find(|event| {
            matches!(&event.kind, Some(Kind::DelegationRevoked(revoked))
                if revoked.delegation_id == root_id)
        })
        .map(|event| event.seq)
        .ok_or_else(|| anyhow::anyhow!("no DelegationRevoked event for {root_id}"))
}

/// Node 3 proves that the event at `seq` is in `checkpoint`'s tree; the demo checks it.
async fn prove_included(
    channel: &Channel,
    admin: &str,
    seq: u64,
    checkpoint: &api::Checkpoint,
) -> anyhow::Result<()> {
    let mut audit = AuditServiceClient::new(channel.clone());
    let event = audit
        .get_event(authed(admin, api::GetEventRequest { seq, read: None }))
        .await?
        .into_inner();
    let proof = audit
        .prove_inclusion(authed(
            admin,
            api::ProveInclusionRequest {
                seq,
                tree_size: checkpoint.tree_size,
                read: None,
            },
        ))
        .await?
        .into_inner();
    let hashes = proof
        .hashes
        .iter()
        .map(|hash| merkle::Hash::try_from(hash.as_slice()))
        .collect::<Result<Vec<_>, _>>()?;
    let root = merkle::Hash::try_from(checkpoint.root_hash.as_slice())?;
    let leaf = merkle::leaf_hash(&event.record);
    merkle::verify_inclusion(seq - 1, checkpoint.tree_size, &leaf, &hashes, &root)?;
    println!(
        "node 3: proved the revocation (seq {seq}) is in the signed tree: {} hashes, checked here",
        hashes.len()
    );
    Ok(())
}

/// What the researcher could do for alice after the event at `seq`.
async fn print_access(channel: &Channel, admin: &str, seq: u64, when: &str) -> anyhow::Result<()> {
    let access = AuditServiceClient::new(channel.clone())
        .effective_access(authed(
            admin,
            api::EffectiveAccessRequest {
                agent_id: "researcher".into(),
                human_id: "alice".into(),
                as_of: Some(api::AsOf {
                    point: Some(api::as_of::Point::Seq(seq)),
                }),
                read: None,
            },
        ))
        .await?
        .into_inner();
    println!("node 3: what researcher could do for alice {when} (seq {seq}):");
    for effective in &access.delegations {
        let Some(delegation) = &effective.delegation else {
            continue;
        };
        let state = if effective.in_force {
            "in force".to_string()
        } else {
            format!("not in force: {}", effective.not_in_force_reason)
        };
        println!(
            "        delegation {} scopes {:?} via {} hops: {state}",
            delegation.delegation_id,
            delegation.scopes,
            effective.chain.len()
        );
    }
    Ok(())
}
