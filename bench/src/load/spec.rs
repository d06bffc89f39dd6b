//! What a load run does: the shape of the load and the one request it repeats.

use std::time::Duration;

use futures::future::BoxFuture;
use tonic::transport::Channel;

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Closed loop: the number of workers issuing back-to-back. Open loop: the cap on requests
    /// in flight.
    pub concurrency: usize,
    /// How many channels (HTTP/2 connections) the caller opened; reported, and used by callers
    /// to size [`crate::load::channels`].
    pub connections: usize,
    /// Calls in this first stretch run but are not recorded.
    pub warmup: Duration,
    /// The recorded stretch, after the warm-up.
    pub measure: Duration,
    pub arrival: Arrival,
}

/// How requests arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Each worker sends its next request when its last one is answered.
    Closed,
    /// Requests are due at a fixed rate, whether or not earlier ones were answered.
    Open { per_second: f64 },
}

impl Arrival {
    /// `"closed"` or `"open@<rate>/s"`, as reports name it.
    pub fn label(&self) -> String {
        match self {
            Arrival::Closed => "closed".to_string(),
            Arrival::Open { per_second } => format!("open@{per_second}/s"),
        }
    }
}

/// One kind of request the generator repeats.
pub trait Operation: Send + Sync + 'static {
    /// One request. `worker` is the worker index, `n` counts that worker's calls from 0.
    fn call(
        &self,
        channel: &Channel,
        worker: usize,
        n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>>;
}
