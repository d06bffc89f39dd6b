//! Localising a root mismatch against a live node. Offline, a file whose lines each check but
//! whose root is not the signed one names no seq. A node can: its checkpoint, signed by a
//! pinned key, fixes its root at a size S, and a consistency proof to S fixes its root at any
//! smaller size k. Prefix roots of two logs, once they differ, differ at every larger size, so a
//! bisection over k finds the first seq whose leaf the file and the node disagree on; an
//! inclusion proof of that seq, checked against the signed root, shows the node's leaf there.
//! Every answer of the node is verified before it is used: a node cannot steer the search.

use std::{
    fs::File,
    io::{BufReader, Read as _},
    path::Path,
};

use anyhow::Context as _;
use tonic::transport::Channel;
use warrant_identity::audit::merkle::{self, CompactRange, Hash};
use warrant_proto::api::{self, audit_service_client::AuditServiceClient};
use warrant_token::note::VerifierKey;

use crate::{audit_verify, client::authed};

/// What the node says about the file's leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// The first seq whose leaf differs: the node's leaf there (proven) and the file's.
    Seq {
        seq: u64,
        node_leaf: Hash,
        file_leaf: Hash,
    },
    /// The node's root at the file's size is the file's: the file's checkpoint is the odd one.
    NodeAgrees,
    /// The node's tree is smaller than the file (it was rolled back, or the file is forged).
    NodeSmaller { node_size: u64 },
}

/// The node's signed view: its checkpoint's size and root.
struct NodeView {
    client: AuditServiceClient<Channel>,
    authorization: String,
    size: u64,
    root: Hash,
}

/// Finds where the file's `events` leaves (stored 32 bytes each in `leaves`) first differ from
/// the tree of the node behind `client`, whose checkpoint must be signed by a pinned key.
pub async fn locate(
    client: AuditServiceClient<Channel>,
    authorization: &str,
    pinned: &[VerifierKey],
    leaves: &Path,
    events: u64,
) -> anyhow::Result<Located> {
    let mut node = match NodeView::fetch(client, authorization, pinned, events).await? {
        Ok(node) => node,
        Err(node_size) => return Ok(Located::NodeSmaller { node_size }),
    };
    if prefix_root(leaves, events)? == node.root_at(events).await? {
        return Ok(Located::NodeAgrees);
    }
    // Roots agree at `lo` (0: both empty) and differ at `hi`.
    let (mut lo, mut hi) = (0, events);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if prefix_root(leaves, mid)? == node.root_at(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let node_leaf = node.proven_leaf(hi).await?;
    let file_leaf = leaf_at(leaves, hi)?;
    Ok(Located::Seq {
        seq: hi,
        node_leaf,
        file_leaf,
    })
}

impl NodeView {
    /// The node's latest checkpoint, or a fresh one if that is smaller than `at_least`; the
    /// fresh one's size when even it is smaller.
    async fn fetch(
        mut client: AuditServiceClient<Channel>,
        authorization: &str,
        pinned: &[VerifierKey],
        at_least: u64,
    ) -> anyhow::Result<Result<NodeView, u64>> {
        let mut size = 0;
        for fresh in [false, true] {
            let request = api::GetCheckpointRequest { read: None, fresh };
            let checkpoint = client
                .get_checkpoint(authed(authorization, request))
                .await
                .map_err(|status| crate::audit_client::refused("GetCheckpoint", &status))?
                .into_inner();
            let note = audit_verify::read_checkpoint(&checkpoint.note)
                .map_err(|why| anyhow::anyhow!("the node's checkpoint: {why}"))?;
            audit_verify::signed_by_pinned(&note, pinned, "the node's checkpoint")
                .map_err(|failure| anyhow::anyhow!(failure.detail))?;
            size = note.checkpoint.size;
            if size >= at_least {
                return Ok(Ok(NodeView {
                    client,
                    authorization: authorization.to_string(),
                    size,
                    root: note.checkpoint.root,
                }));
            }
        }
        Ok(Err(size))
    }

    /// The node's root at `size` (≤ its checkpoint's), proven consistent with the signed root.
    async fn root_at(&mut self, size: u64) -> anyhow::Result<Hash> {
        if size == self.size {
            return Ok(self.root);
        }
        if size == 0 {
            return Ok(merkle::empty_root());
        }
        let request = api::ProveConsistencyRequest {
            old_size: size,
            new_size: self.size,
            read: None,
        };
        let proof = self
            .client
            .prove_consistency(authed(&self.authorization, request))
            .await
            .map_err(|status| crate::audit_client::refused("ProveConsistency", &status))?
            .into_inner();
        let old_root = hash(&proof.old_root).context("the proof's old root")?;
        let hashes = hashes(&proof.hashes)?;
        merkle::verify_consistency(size, self.size, &old_root, &self.root, &hashes)
            .with_context(|| format!("the node's consistency proof {size} → {}", self.size))?;
        Ok(old_root)
    }

    /// The node's leaf at `seq`, proven included under the signed root.
    async fn proven_leaf(&mut self, seq: u64) -> anyhow::Result<Hash> {
        let request = api::ProveInclusionRequest {
            seq,
            tree_size: self.size,
            read: None,
        };
        let proof = self
            .client
            .prove_inclusion(authed(&self.authorization, request))
            .await
            .map_err(|status| crate::audit_client::refused("ProveInclusion", &status))?
            .into_inner();
        let leaf = hash(&proof.leaf_hash).context("the proof's leaf")?;
        merkle::verify_inclusion(
            seq - 1,
            self.size,
            &leaf,
            &hashes(&proof.hashes)?,
            &self.root,
        )
        .with_context(|| format!("the node's inclusion proof of seq {seq}"))?;
        Ok(leaf)
    }
}

fn hash(bytes: &[u8]) -> anyhow::Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a hash of {} bytes, not 32", bytes.len()))
}

fn hashes(list: &[Vec<u8>]) -> anyhow::Result<Vec<Hash>> {
    anyhow::ensure!(
        list.len() <= merkle::PROOF_HASHES_MAX,
        "a proof of {} hashes (at most {})",
        list.len(),
        merkle::PROOF_HASHES_MAX
    );
    list.iter().map(|h| hash(h)).collect()
}

/// The root of the first `size` leaves kept in `leaves`.
fn prefix_root(leaves: &Path, size: u64) -> anyhow::Result<Hash> {
    let file = File::open(leaves).with_context(|| format!("open {}", leaves.display()))?;
    let mut reader = BufReader::new(file);
    let mut range = CompactRange::new();
    let mut leaf = [0u8; 32];
    for _ in 0..size {
        reader
            .read_exact(&mut leaf)
            .context("read the kept leaves")?;
        range.push(leaf).context("fold the kept leaves")?;
    }
    Ok(range.root())
}

/// The file's leaf at `seq`.
fn leaf_at(leaves: &Path, seq: u64) -> anyhow::Result<Hash> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = File::open(leaves).with_context(|| format!("open {}", leaves.display()))?;
    file.seek(SeekFrom::Start((seq - 1) * 32))?;
    let mut leaf = [0u8; 32];
    file.read_exact(&mut leaf).context("read the kept leaves")?;
    Ok(leaf)
}
