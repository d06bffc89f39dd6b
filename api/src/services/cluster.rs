//! `warrant.v1.ClusterService`: this node's view of the cluster.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warrant_proto::api::{self, cluster_service_server::ClusterService};

use super::{Context, storage};
use crate::error::ApiError;

pub struct ClusterApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
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
            members: status
                .members
                .into_iter()
                .map(|m| api::Member {
                    node_id: m.node_id,
                    address: m.address,
                    voter: m.voter,
                })
                .collect(),
            snapshot_index: status.snapshot_index,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn digest(
        &self,
        request: Request<api::DigestRequest>,
    ) -> Result<Response<api::DigestResponse>, Status> {
        self.context.admin(request.metadata()).await?;
        let reader = self.context.node.reader();
        // The digest walks the whole state: off the async runtime.
        let (digest, applied_seq) = tokio::task::spawn_blocking(move || {
            let digest = warrant_identity::state_digest(&reader).map_err(storage)?;
            let applied_seq = warrant_identity::query::applied_seq(&reader).map_err(storage)?;
            Ok::<_, ApiError>((digest, applied_seq))
        })
        .await
        .map_err(|e| ApiError::internal(format!("digest task: {e}")))??;
        Ok(Response::new(api::DigestResponse {
            applied_index: self.context.node.applied().log_index,
            applied_seq,
            sha256_hex: hex::encode(digest),
        }))
    }
}
