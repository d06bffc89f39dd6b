//! `AuthzService.Authorize`: the question a gateway asks about each tool call, on the same
//! pre-issued tokens as the Verify scenarios (agent A's, for the fixture's first tool), so the
//! three rates compare like for like.
//!
//! - SYNC: decided in apply at the command's log position; the receipt is committed before the
//!   reply, so every call is a replicated write.
//! - ASYNC: decided on the serving node at its applied seq (LOCAL, as Verify LOCAL reads); the
//!   reply says the receipt is pending, and the node commits receipts in batches after it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures::future::BoxFuture;
use tonic::{metadata::AsciiMetadataValue, transport::Channel};
use warrant_proto::api::{self, AuditMode, Consistency, authz_service_client::AuthzServiceClient};

use super::{
    auth::{bearer, with_auth},
    fixture::Fixture,
    tokens::pre_issue,
};
use crate::load::Operation;

/// `Authorize` of the next pre-issued token for the fixture's tool, as the admin. A DENY, or a
/// reply in another mode than asked, is an error: these tokens are all valid and unbudgeted.
struct AuthorizeOp {
    authorization: AsciiMetadataValue,
    service_id: String,
    tool: String,
    audit: AuditMode,
    tokens: Arc<Vec<String>>,
    next: AtomicUsize,
}

impl Operation for AuthorizeOp {
    fn call(
        &self,
        channel: &Channel,
        _worker: usize,
        _n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let token = &self.tokens[self.next.fetch_add(1, Ordering::Relaxed) % self.tokens.len()];
        let request = api::AuthorizeRequest {
            token: token.clone(),
            service_id: self.service_id.clone(),
            tool: self.tool.clone(),
            // SYNC decides at its log position; ASYNC on the node's applied state.
            read: (self.audit == AuditMode::Async).then_some(api::ReadOptions {
                consistency: Consistency::Local as i32,
                at_least_seq: 0,
                as_of: None,
            }),
            audit: self.audit as i32,
            ..Default::default()
        };
        let audit = self.audit;
        let mut client = AuthzServiceClient::new(channel.clone());
        let request = with_auth(&self.authorization, request);
        Box::pin(async move {
            let reply = client.authorize(request).await?.into_inner();
            if !reply.allowed {
                let why = reply.decision.map(|d| d.message).unwrap_or_default();
                return Err(tonic::Status::internal(format!(
                    "a valid token's call was denied: {why}"
                )));
            }
            if reply.audit != audit as i32 || reply.receipt_pending != (audit == AuditMode::Async) {
                return Err(tonic::Status::internal(format!(
                    "asked {}, answered mode {} with receipt_pending={}",
                    audit.as_str_name(),
                    reply.audit,
                    reply.receipt_pending
                )));
            }
            Ok(())
        })
    }
}

/// Pre-issues `tokens` distinct tokens through `leader`; each call Authorizes the next one for
/// the fixture's first tool in `audit` mode.
pub async fn authorize(
    f: &Fixture,
    leader: &Channel,
    audit: AuditMode,
    tokens: usize,
) -> anyhow::Result<Arc<dyn Operation>> {
    let tool = f
        .scopes
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the fixture's tokens carry no scope"))?;
    Ok(Arc::new(AuthorizeOp {
        authorization: bearer(&f.admin_token)?,
        service_id: f.service_id.clone(),
        tool,
        audit,
        tokens: Arc::new(pre_issue(f, leader, tokens).await?),
        next: AtomicUsize::new(0),
    }))
}
