//! `warrant.v1.AuditService`: the event log, in seq order.

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
        let consistency = validate::read_consistency(request.read.as_ref())?;
        let reader = self.context.read(consistency).await?;
        let events = query::events(&reader, from_seq, limit as usize).map_err(storage)?;
        let applied_seq = query::applied_seq(&reader).map_err(storage)?;
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
