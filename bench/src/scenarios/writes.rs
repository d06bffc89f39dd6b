//! `RegisterHuman`: a committed write that signs nothing, to separate Raft's cost from signing.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::{metadata::AsciiMetadataValue, transport::Channel};
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};

use super::auth::{bearer, with_auth};
use crate::load::Operation;

struct RegisterOp {
    authorization: AsciiMetadataValue,
    tag: String,
}

impl Operation for RegisterOp {
    fn call(
        &self,
        channel: &Channel,
        worker: usize,
        n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let request = api::RegisterHumanRequest {
            human_id: format!("{}-h{worker}-{n}", self.tag),
            display_name: "Bench human".to_string(),
            ..Default::default()
        };
        let mut client = IdentityServiceClient::new(channel.clone());
        let request = with_auth(&self.authorization, request);
        Box::pin(async move { client.register_human(request).await.map(drop) })
    }
}

/// RegisterHuman as the admin; ids are unique per (worker, n) within `tag`, so each `tag` may
/// be run once per cluster (a second run would collide with the first's humans).
///
/// # Panics
/// When `admin_token` cannot be metadata (it is configuration, not input).
pub fn register(admin_token: &str, tag: &str) -> Arc<dyn Operation> {
    Arc::new(RegisterOp {
        authorization: bearer(admin_token).expect("the admin token is valid metadata"),
        tag: tag.to_string(),
    })
}
