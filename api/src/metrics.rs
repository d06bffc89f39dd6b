//! Prometheus metrics: the recorder, `/metrics`, and what the edges report.

use std::time::Duration;

/// One finished gRPC call, as the edge saw it.
pub struct RpcOutcome<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub code: tonic::Code,
    /// The `ErrorInfo` reason of a non-OK status, when it carried one.
    pub reason: Option<&'a str>,
    pub elapsed: Duration,
}

/// Counts and times one finished call.
pub fn rpc_finished(rpc: &RpcOutcome<'_>) {
    let _ = rpc;
}
