//! `warrant.v1.AuditService`: the event log, in seq order, with its proofs and history. The
//! trait impl only routes: `proofs` (checkpoints, GetEvent, inclusion and consistency),
//! `access` (EffectiveAccess), `events_query`, `watch` and `export`; `records` reads event
//! records through the public descriptors, `slots` bounds the Watch and Export streams.

mod access;
mod events_query;
mod export;
mod proofs;
mod records;
mod slots;
mod watch;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warrant_identity::{limits, query};
use warrant_proto::api::{self, audit_service_server::AuditService};

use crate::{context::Context, storage::storage, validate};

pub struct AuditApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type WatchStream = watch::WatchStream;
    type ExportStream = export::ExportStream;

    async fn get_checkpoint(
        &self,
        request: Request<api::GetCheckpointRequest>,
    ) -> Result<Response<api::Checkpoint>, Status> {
        proofs::get_checkpoint(&self.context, request).await
    }

    async fn get_event(
        &self,
        request: Request<api::GetEventRequest>,
    ) -> Result<Response<api::GetEventResponse>, Status> {
        proofs::get_event(&self.context, request).await
    }

    async fn prove_inclusion(
        &self,
        request: Request<api::ProveInclusionRequest>,
    ) -> Result<Response<api::InclusionProof>, Status> {
        proofs::prove_inclusion(&self.context, request).await
    }

    async fn prove_consistency(
        &self,
        request: Request<api::ProveConsistencyRequest>,
    ) -> Result<Response<api::ConsistencyProof>, Status> {
        proofs::prove_consistency(&self.context, request).await
    }

    async fn effective_access(
        &self,
        request: Request<api::EffectiveAccessRequest>,
    ) -> Result<Response<api::EffectiveAccessResponse>, Status> {
        access::effective_access(&self.context, request).await
    }

    async fn query(
        &self,
        request: Request<api::QueryEventsRequest>,
    ) -> Result<Response<api::QueryEventsResponse>, Status> {
        events_query::query(&self.context, request).await
    }

    async fn watch(
        &self,
        request: Request<api::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        watch::watch(&self.context, request).await
    }

    async fn export(
        &self,
        request: Request<api::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        export::export(&self.context, request).await
    }

    async fn list_events(
        &self,
        request: Request<api::ListEventsRequest>,
    ) -> Result<Response<api::ListEventsResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        let request = request.into_inner();
        let from_seq = request.from_seq.max(1);
        let limit = if request.limit == 0 {
            100
        } else {
            u64::from(request.limit)
        };
        validate::in_range("limit", limit, 1, limits::EVENTS_PAGE_MAX as u64)?;
        let reader = self
            .context
            .read_view(validate::read_options(request.read.as_ref())?)
            .await?;
        // As of a seq, the events stop at it and so does the applied seq the reply names.
        let events = query::events(&reader, from_seq, limit as usize).map_err(storage)?;
        let applied_seq = reader.seq()?;
        let next_seq = events
            .last()
            .map(|e| e.seq + 1)
            .unwrap_or(from_seq.min(applied_seq + 1));
        Ok(Response::new(api::ListEventsResponse {
            events,
            next_seq,
            applied_seq,
        }))
    }
}
