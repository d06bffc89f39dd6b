//! TEMPORARY (edge helper's branch only): the signature of `AuthzService.Authorize`'s shared
//! body, so AuthZEN compiles before the api helper's `services::authz` lands. The api helper's
//! version replaces this file whole when the branches merge.

use tonic::Code;
use warrant_proto::api;

use crate::{ApiError, Reason, auth::Caller, context::Context};

/// TEMPORARY: refuses every call; the api helper's `authorize` decides them.
pub async fn authorize(
    _context: &Context,
    _caller: &Caller,
    _request: api::AuthorizeRequest,
) -> Result<api::AuthorizeResponse, ApiError> {
    Err(ApiError::new(
        Code::Unimplemented,
        Reason::FieldInvalid,
        "TEMPORARY: Authorize is not in this build",
    ))
}
