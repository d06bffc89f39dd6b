//! The comparison points: etcd's `KV.Put` (a Raft write through another system) and gRPC health
//! (a round trip through our own server that touches no state).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    etcd::etcdserverpb::{PutRequest, kv_client::KvClient},
    load::Operation,
};

/// Largest value [`etcd_put`] sends: etcd's default request limit is 1.5 MiB.
pub const ETCD_VALUE_BYTES_MAX: usize = 1024 * 1024;

struct EtcdPut {
    value: Bytes,
}

impl Operation for EtcdPut {
    fn call(
        &self,
        channel: &Channel,
        worker: usize,
        n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let request = PutRequest {
            key: Bytes::from(format!("bench/{worker}/{n}")),
            value: self.value.clone(),
            ..Default::default()
        };
        let mut client = KvClient::new(channel.clone());
        Box::pin(async move { client.put(request).await.map(drop) })
    }
}

/// etcd KV.Put of `value_bytes` bytes, a distinct key per (worker, n).
///
/// # Panics
/// When `value_bytes` is above [`ETCD_VALUE_BYTES_MAX`].
pub fn etcd_put(value_bytes: usize) -> Arc<dyn Operation> {
    assert!(
        value_bytes <= ETCD_VALUE_BYTES_MAX,
        "{value_bytes} value bytes; allowed: up to {ETCD_VALUE_BYTES_MAX}"
    );
    Arc::new(EtcdPut {
        value: Bytes::from(vec![b'v'; value_bytes]),
    })
}

struct HealthCheck;

impl Operation for HealthCheck {
    fn call(
        &self,
        channel: &Channel,
        _worker: usize,
        _n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let mut client = HealthClient::new(channel.clone());
        Box::pin(async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let status = client.check(request).await?.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Ok(())
            } else {
                Err(tonic::Status::unavailable(format!(
                    "health status {status}, not SERVING"
                )))
            }
        })
    }
}

/// grpc.health.v1.Health/Check, service "".
pub fn health_check() -> Arc<dyn Operation> {
    Arc::new(HealthCheck)
}
