//! The cluster load generator's core: drives one [`Operation`] over gRPC channels in a closed or
//! an open loop and reports throughput and latency from HDR histograms.
//!
//! - [`spec`]: what to run ([`LoadSpec`], [`Arrival`]) and the [`Operation`] trait.
//! - [`connect`]: eagerly connected channels, one HTTP/2 connection each.
//! - [`recorder`]: what one worker measured; merged once, at the end (no lock per call).
//! - [`runner`]: the closed and open loops ([`run`]).
//! - [`report`]: the serialisable [`RunResult`].
//!
//! Open-loop latency is measured from each arrival's *intended* start (corrected for coordinated
//! omission, as wrk2 does): a server that stalls is charged for every request that had to wait,
//! not only for the one that was in flight.

pub mod connect;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod spec;

pub use connect::{Dial, channels};
pub use report::{Latency, RunResult};
pub use runner::run;
pub use spec::{Arrival, LoadSpec, Operation};

#[cfg(test)]
mod tests;
