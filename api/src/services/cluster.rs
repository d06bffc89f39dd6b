//! `warrant.v1.ClusterService`: this node's view of the cluster.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use tonic::{Request, Response, Status, metadata::MetadataMap};
use warrant_proto::api::{self, cluster_service_server::ClusterService};
use warrant_raft::{MemberNode, MembershipError};

use crate::{
    context::Context,
    error::{ApiError, Reason},
    storage::storage,
    validate,
};

/// Members named in one `InitCluster`.
pub const INIT_MEMBERS_MAX: usize = 7;
/// A peer address is `host:port`.
pub const PEER_ADDRESS_LEN_MAX: usize = 255;

pub struct ClusterApi {
    pub context: Arc<Context>,
}

impl ClusterApi {
    fn members(&self) -> Vec<api::Member> {
        members_reply(self.context.node.status().members)
    }

    /// The shape every membership change shares: admins only, a valid request, one change,
    /// then the members after it. `change` runs only once the caller and `check` have passed.
    async fn change_membership(
        &self,
        metadata: &MetadataMap,
        check: Result<(), ApiError>,
        change: impl Future<Output = Result<u64, MembershipError>>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        self.context.operations(metadata).await?;
        check?;
        let log_index = change.await.map_err(ApiError::from)?;
        Ok(Response::new(api::MembershipResponse {
            members: self.members(),
            log_index,
        }))
    }
}

fn check_node_id(node_id: u64) -> Result<(), ApiError> {
    if node_id == 0 {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            "node_id",
            "node_id is 0; allowed: 1 or more",
        ));
    }
    Ok(())
}

fn members_reply(members: Vec<warrant_raft::MemberStatus>) -> Vec<api::Member> {
    members
        .into_iter()
        .map(|m| api::Member {
            node_id: m.node_id,
            address: m.address,
            voter: m.voter,
            peer_address: m.peer_address,
        })
        .collect()
}

/// A member: its id, the address clients dial and the one peers dial.
fn check_member(node_id: u64, address: &str, peer_address: &str) -> Result<MemberNode, ApiError> {
    check_node_id(node_id)?;
    check_address("address", address)?;
    check_address("peer_address", peer_address)?;
    Ok(MemberNode {
        addr: address.to_string(),
        peer_addr: peer_address.to_string(),
    })
}

/// A member's address is `host:port`, nothing else.
fn check_address(field: &str, address: &str) -> Result<(), ApiError> {
    let invalid = |problem: &str| {
        ApiError::invalid_field(
            Reason::FieldInvalid,
            field,
            format!("{field} {problem}; allowed: host:port, at most {PEER_ADDRESS_LEN_MAX} bytes"),
        )
    };
    if address.is_empty() {
        return Err(ApiError::invalid_field(
            Reason::FieldRequired,
            field,
            format!("{field} is empty; allowed: host:port"),
        ));
    }
    if address.len() > PEER_ADDRESS_LEN_MAX {
        return Err(invalid("is too long"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid("has no port"));
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(invalid("is not host:port"));
    }
    Ok(())
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    type SaveSnapshotStream = super::backup::SaveSnapshotStream;

    async fn save_snapshot(
        &self,
        request: Request<api::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        super::backup::save_snapshot(&self.context, request).await
    }

    /// Unauthenticated, like a health check: it reveals topology, never identities.
    async fn status(
        &self,
        _request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let status = self.context.node.status();
        Ok(Response::new(api::StatusResponse {
            node_id: status.node_id,
            role: status.role.to_string(),
            leader_id: status.leader_id.unwrap_or(0),
            has_leader: status.leader_id.is_some(),
            term: status.term,
            last_log_index: status.last_log_index,
            committed_index: status.committed_index,
            applied_index: status.applied.log_index,
            applied_seq: status.applied.seq,
            members: members_reply(status.members),
            snapshot_index: status.snapshot_index,
            version: env!("CARGO_PKG_VERSION").to_string(),
            purged_index: status.purged_index,
            replication: status
                .replication
                .into_iter()
                .map(|r| api::Replication {
                    node_id: r.node_id,
                    matched_index: r.matched_index,
                    lag: r.lag,
                })
                .collect(),
            initialized: status.initialized,
            millis_since_quorum_ack: status.millis_since_quorum_ack.unwrap_or(0),
            stamps_bounded: status.stamps_bounded,
        }))
    }

    async fn init_cluster(
        &self,
        request: Request<api::InitClusterRequest>,
    ) -> Result<Response<api::InitClusterResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let request = request.into_inner();
        validate::list_len("members", request.members.len(), 1, INIT_MEMBERS_MAX)?;
        let mut members = BTreeMap::new();
        for member in &request.members {
            let node = check_member(member.node_id, &member.address, &member.peer_address)?;
            if members.insert(member.node_id, node).is_some() {
                return Err(ApiError::invalid_field(
                    Reason::FieldInvalid,
                    "members",
                    format!(
                        "node id {} is listed twice; allowed: each id once",
                        member.node_id
                    ),
                )
                .into());
            }
        }
        let initialized_now = self
            .context
            .node
            .initialize(members)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::InitClusterResponse {
            initialized_now,
            members: self.members(),
        }))
    }

    async fn add_member(
        &self,
        request: Request<api::AddMemberRequest>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        // The change is a lazy future: it runs only once the caller and the check have passed.
        let (check, node) =
            match check_member(request.node_id, &request.address, &request.peer_address) {
                Ok(node) => (Ok(()), node),
                Err(e) => (Err(e), MemberNode::default()),
            };
        let change = self.context.node.add_learner(request.node_id, node);
        self.change_membership(&metadata, check, change).await
    }

    async fn promote_member(
        &self,
        request: Request<api::PromoteMemberRequest>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let change = self.context.node.promote(request.node_id);
        self.change_membership(&metadata, check_node_id(request.node_id), change)
            .await
    }

    async fn compact(
        &self,
        request: Request<api::CompactRequest>,
    ) -> Result<Response<api::CompactResponse>, Status> {
        self.context.operations(request.metadata()).await?;
        let (snapshot_index, purged_index) =
            self.context.node.compact().await.map_err(ApiError::from)?;
        Ok(Response::new(api::CompactResponse {
            snapshot_index,
            purged_index,
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<api::RotateSigningKeyRequest>,
    ) -> Result<Response<api::RotateSigningKeyResponse>, Status> {
        self.context.operations(request.metadata()).await?;
        Ok(Response::new(crate::keys::rotate(&self.context).await?))
    }

    async fn mark_key_compromised(
        &self,
        request: Request<api::MarkKeyCompromisedRequest>,
    ) -> Result<Response<api::MarkKeyCompromisedResponse>, Status> {
        let caller = self.context.operations(request.metadata()).await?;
        let response =
            crate::keys::compromise::mark_compromised(&self.context, &caller, request.into_inner())
                .await?;
        Ok(Response::new(response))
    }

    async fn remove_member(
        &self,
        request: Request<api::RemoveMemberRequest>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let change = self.context.node.remove(request.node_id);
        self.change_membership(&metadata, check_node_id(request.node_id), change)
            .await
    }

    async fn digest(
        &self,
        request: Request<api::DigestRequest>,
    ) -> Result<Response<api::DigestResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        let reader = self.context.node.reader();
        // The digest walks the whole state: off the async runtime, and over one consistent
        // view, so that the index it names is the one it hashed while applies go on.
        let (digest, applied_seq, applied_index) = tokio::task::spawn_blocking(move || {
            reader
                .consistent(|view, applied_index| {
                    let digest = warrant_identity::state_digest(view)?;
                    let applied_seq = warrant_identity::query::applied_seq(view)?;
                    Ok((digest, applied_seq, applied_index))
                })
                .and_then(|digested| digested)
                .map_err(storage)
        })
        .await
        .map_err(|e| ApiError::internal(format!("digest task: {e}")))??;
        Ok(Response::new(api::DigestResponse {
            applied_index,
            applied_seq,
            sha256_hex: hex::encode(digest),
        }))
    }
}
