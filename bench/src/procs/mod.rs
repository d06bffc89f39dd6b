//! The processes the cluster benchmark starts: three `warrant server` nodes, three etcd members.
//!
//! Every process runs in its own process group, logs to a file in the run directory, and is
//! signalled only by the pid this process started ([`child`]). Dropping a cluster kills what is
//! left of it; [`child::kill_all_started`] does the same from a Ctrl-C handler.

pub mod child;
pub mod etcd;
pub mod http;
pub mod ports;
pub mod rss;
pub mod warrant;

pub use etcd::EtcdCluster;
pub use ports::PortBlock;
pub use rss::ProcMemory;
pub use warrant::WarrantCluster;

use std::time::Duration;

/// How long a cluster may take to start, elect a leader and serve.
pub const START_WAIT_MAX: Duration = Duration::from_secs(60);
/// How often readiness and leadership are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a process may take to exit after SIGTERM before it is killed.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(15);
