//! `warrant.v1.PolicyService`: Cedar policy versions published, activated, rolled back and
//! marked shadow through the log, and read back.
//!
//! A text is validated here first (`warrant_identity::policy::validate`, the same function apply
//! runs again), so an invalid one is refused with every error's line and column before it
//! reaches the log; apply's own refusal is mapped the same way. Writes are for admins (the
//! bootstrap admin and operators with the admin role); reads, `Validate` and `GetSchema` for any
//! operator role.

mod diff;
mod reads;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warrant_identity::policy;
use warrant_proto::{
    api::{self, policy_service_server::PolicyService},
    log,
};
use warrant_raft::ReadConsistency;

use crate::{
    auth::Caller,
    context::{Context, command},
    error::ApiError,
    storage::storage,
    validate,
};

pub struct PolicyApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn validate(
        &self,
        request: Request<api::ValidatePolicyRequest>,
    ) -> Result<Response<api::ValidatePolicyResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        let request = request.into_inner();
        check_text_size(&request.text)?;
        let reply = match policy::validate(&request.text, &request.attributes) {
            Ok(validated) => api::ValidatePolicyResponse {
                valid: true,
                errors: Vec::new(),
                policy_ids: validated.policy_ids,
            },
            Err(errors) => api::ValidatePolicyResponse {
                valid: false,
                errors: errors.into_iter().map(error_detail).collect(),
                policy_ids: Vec::new(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn publish(
        &self,
        request: Request<api::PublishPolicyRequest>,
    ) -> Result<Response<api::PublishPolicyResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        Ok(Response::new(
            publish(&self.context, &caller, request.into_inner()).await?,
        ))
    }

    async fn activate(
        &self,
        request: Request<api::ActivatePolicyRequest>,
    ) -> Result<Response<api::PolicyActivationResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        let key = take_key(&mut request.idempotency_key)?;
        let kind = log::command::Kind::ActivatePolicy(log::ActivatePolicy {
            version: request.version,
        });
        let command = command(&caller, &key, "ActivatePolicy", &request, kind);
        Ok(Response::new(activation(&self.context, command).await?))
    }

    async fn rollback(
        &self,
        request: Request<api::RollbackPolicyRequest>,
    ) -> Result<Response<api::PolicyActivationResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        let key = take_key(&mut request.idempotency_key)?;
        let kind = log::command::Kind::RollbackPolicy(log::RollbackPolicy {});
        let command = command(&caller, &key, "RollbackPolicy", &request, kind);
        Ok(Response::new(activation(&self.context, command).await?))
    }

    async fn set_shadow(
        &self,
        request: Request<api::SetShadowPolicyRequest>,
    ) -> Result<Response<api::PolicyActivationResponse>, Status> {
        let caller = self.context.admin(request.metadata()).await?;
        let mut request = request.into_inner();
        let key = take_key(&mut request.idempotency_key)?;
        let kind = log::command::Kind::SetShadowPolicy(log::SetShadowPolicy {
            version: request.version,
        });
        let command = command(&caller, &key, "SetShadowPolicy", &request, kind);
        Ok(Response::new(activation(&self.context, command).await?))
    }

    async fn get(
        &self,
        request: Request<api::GetPolicyRequest>,
    ) -> Result<Response<api::PolicyVersion>, Status> {
        self.context.auditor(request.metadata()).await?;
        Ok(Response::new(
            reads::get(&self.context, request.into_inner()).await?,
        ))
    }

    async fn list(
        &self,
        request: Request<api::ListPoliciesRequest>,
    ) -> Result<Response<api::ListPoliciesResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        Ok(Response::new(
            reads::list(&self.context, request.into_inner()).await?,
        ))
    }

    async fn diff(
        &self,
        request: Request<api::DiffPoliciesRequest>,
    ) -> Result<Response<api::DiffPoliciesResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        Ok(Response::new(
            reads::diff(&self.context, request.into_inner()).await?,
        ))
    }

    async fn shadow_report(
        &self,
        request: Request<api::ShadowReportRequest>,
    ) -> Result<Response<api::ShadowReportResponse>, Status> {
        self.context.auditor(request.metadata()).await?;
        Ok(Response::new(
            reads::shadow_report(&self.context, request.into_inner()).await?,
        ))
    }

    async fn get_schema(
        &self,
        request: Request<api::GetPolicySchemaRequest>,
    ) -> Result<Response<api::PolicySchema>, Status> {
        self.context.auditor(request.metadata()).await?;
        let request = request.into_inner();
        Ok(Response::new(api::PolicySchema {
            cedar_schema: policy::schema_text(&request.attributes),
        }))
    }
}

fn take_key(key: &mut String) -> Result<String, ApiError> {
    validate::optional_idempotency_key(key)?;
    Ok(std::mem::take(key))
}

fn error_detail(error: log::PolicyError) -> api::PolicyErrorDetail {
    api::PolicyErrorDetail {
        line: error.line,
        column: error.column,
        policy_id: error.policy_id,
        message: error.message,
    }
}

/// A text over the limit is refused as a field before it is parsed: it has no position to
/// report, only a size. (Apply refuses one too, as POLICY_INVALID at line 0.)
fn check_text_size(text: &str) -> Result<(), ApiError> {
    let limit = warrant_identity::limits::POLICY_TEXT_BYTES_MAX;
    if text.len() <= limit {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        crate::reasons::Reason::FieldTooLong,
        "text",
        format!(
            "text is {} bytes long; allowed: at most {limit} bytes of policy text",
            text.len()
        ),
    )
    .with("limit", limit.to_string()))
}

/// Validates the text here, then commits the publication. Apply validates again and may refuse
/// with the same errors, mapped the same way (`ApiError::from_rejected`).
async fn publish(
    context: &Context,
    caller: &Caller,
    mut request: api::PublishPolicyRequest,
) -> Result<api::PublishPolicyResponse, ApiError> {
    let key = take_key(&mut request.idempotency_key)?;
    check_text_size(&request.text)?;
    let validated = policy::validate(&request.text, &request.attributes)
        .map_err(|errors| ApiError::policy_invalid(&errors))?;
    let kind = log::command::Kind::PublishPolicy(log::PublishPolicy {
        text: request.text.clone(),
        description: request.description.clone(),
        attributes: request.attributes.clone(),
    });
    let accepted = context
        .commit(command(caller, &key, "PublishPolicy", &request, kind))
        .await?;
    Ok(api::PublishPolicyResponse {
        version: accepted.policy_version,
        seq: accepted.seq,
        policy_ids: validated.policy_ids,
    })
}

/// Commits an activation, rollback or shadow change, and replies with the versions in use as of
/// its seq.
async fn activation(
    context: &Context,
    command: log::Command,
) -> Result<api::PolicyActivationResponse, ApiError> {
    let accepted = context.commit(command).await?;
    let reader = context.read(ReadConsistency::AtLeast(accepted.seq)).await?;
    let row = warrant_identity::query::policy_activation(&reader).map_err(storage)?;
    Ok(api::PolicyActivationResponse {
        active_version: row.active_version,
        shadow_version: row.shadow_version,
        seq: accepted.seq,
    })
}
