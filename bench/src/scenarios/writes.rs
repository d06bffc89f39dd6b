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

/// Humans per `RegisterHumans` import: the import limit.
const HUMANS_PER_IMPORT: usize = warrant_identity::limits::HUMANS_PER_IMPORT_MAX;
/// Imports in flight at once: enough to keep a proposer entry in flight while the next is
/// decided, few enough that the import leaves the cluster's other work a share of the cores.
const IMPORTS_IN_FLIGHT: usize = 4;

/// Grows the log by at least `events` events through `RegisterHumans` imports of
/// [`HUMANS_PER_IMPORT`] humans each (`{tag}-i{import}-{i}`), so memory can be read after a
/// long history without a million single calls. Returns the last import's seq.
pub async fn import_humans(
    leader: &Channel,
    admin_token: &str,
    tag: &str,
    events: u64,
) -> anyhow::Result<u64> {
    let authorization = bearer(admin_token)?;
    let imports = events.div_ceil(HUMANS_PER_IMPORT as u64);
    let mut last_seq = 0;
    for first in (0..imports).step_by(IMPORTS_IN_FLIGHT) {
        let wave = (first..imports.min(first + IMPORTS_IN_FLIGHT as u64)).map(|import| {
            let mut client = IdentityServiceClient::new(leader.clone());
            let request = with_auth(&authorization, import_request(tag, import));
            async move { client.register_humans(request).await }
        });
        for reply in futures::future::join_all(wave).await {
            let reply = reply.map_err(|status| anyhow::anyhow!("RegisterHumans: {status}"))?;
            last_seq = last_seq.max(reply.into_inner().seq);
        }
    }
    Ok(last_seq)
}

fn import_request(tag: &str, import: u64) -> api::RegisterHumansRequest {
    let humans = (0..HUMANS_PER_IMPORT)
        .map(|i| api::NewHuman {
            human_id: format!("{tag}-i{import}-{i}"),
            display_name: "Bench human".to_string(),
            ..Default::default()
        })
        .collect();
    api::RegisterHumansRequest {
        humans,
        ..Default::default()
    }
}
