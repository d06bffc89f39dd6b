//! Three etcd members on loopback, as etcd ships them: default quota, snapshot count and
//! fsync on every commit; only the addresses, names and data directories are set.
//!
//! Member n listens for clients on port 2(n-1) and for peers on 2(n-1)+1 of its [`PortBlock`];
//! its data directory and log live under `<run dir>/etcd-n/`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use tokio::time::Instant;

use super::{POLL_INTERVAL, PortBlock, START_WAIT_MAX, STOP_WAIT_MAX, child::Spawned, http, rss};

/// Debian's etcd (3.4.23 on bookworm).
pub const ETCD_BINARY: &str = "/usr/bin/etcd";
/// Members of the anchor cluster: as many as Warrant's.
pub const MEMBERS: u16 = 3;
const PORTS_PER_MEMBER: u16 = 2;

pub struct EtcdMember {
    pub name: String,
    /// The client URL's host:port (gRPC `KV.Put` and HTTP `/health`).
    pub client_addr: String,
    pub peer_addr: String,
    pub dir: PathBuf,
    process: Spawned,
}

pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
}

impl EtcdCluster {
    /// Starts the members of `binary` under `run_dir` and waits until each reports healthy (a
    /// leader elected, the member caught up) and one of them leads.
    pub async fn start(binary: &Path, run_dir: &Path) -> anyhow::Result<EtcdCluster> {
        let ports = PortBlock::allocate(PORTS_PER_MEMBER * MEMBERS)?;
        let addr = |i: u16| format!("127.0.0.1:{}", ports.port(i));
        let initial_cluster = (0..MEMBERS)
            .map(|m| format!("etcd-{}=http://{}", m + 1, addr(PORTS_PER_MEMBER * m + 1)))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("bench-{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut members = Vec::new();
        for m in 0..MEMBERS {
            let name = format!("etcd-{}", m + 1);
            let client_addr = addr(PORTS_PER_MEMBER * m);
            let peer_addr = addr(PORTS_PER_MEMBER * m + 1);
            let dir = run_dir.join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let mut command = Command::new(binary);
            command
                .arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg(format!("--listen-client-urls=http://{client_addr}"))
                .arg(format!("--advertise-client-urls=http://{client_addr}"))
                .arg(format!("--listen-peer-urls=http://{peer_addr}"))
                .arg(format!("--initial-advertise-peer-urls=http://{peer_addr}"))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--initial-cluster-state=new")
                .arg("--logger=zap")
                .arg("--log-outputs=stderr");
            // etcd reads ETCD_* variables as flags: none may leak in from the environment.
            for (var, _) in std::env::vars_os() {
                if var.to_string_lossy().starts_with("ETCD_") {
                    command.env_remove(var);
                }
            }
            let process = Spawned::spawn(&name, command, &dir.join("etcd.log"))?;
            members.push(EtcdMember {
                name,
                client_addr,
                peer_addr,
                dir,
                process,
            });
        }
        let mut cluster = EtcdCluster { members };
        cluster.wait_healthy().await?;
        cluster.leader().await?;
        Ok(cluster)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_WAIT_MAX;
        for member in &mut self.members {
            loop {
                if let Some(exit) = member.process.exited()? {
                    anyhow::bail!(
                        "{} exited with {exit}; see {}",
                        member.name,
                        member.process.log_path.display()
                    );
                }
                let healthy = http::get(&member.client_addr, "/health")
                    .await
                    .is_ok_and(|(code, body)| code == 200 && body.contains("\"true\""));
                if healthy {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} not healthy within {START_WAIT_MAX:?}; see {}",
                    member.name,
                    member.process.log_path.display()
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }

    /// The index (in [`EtcdCluster::members`]) of the member that reports itself leader in
    /// its `/metrics` (`etcd_server_is_leader 1`), polled until one does.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + START_WAIT_MAX;
        loop {
            for (index, member) in self.members.iter().enumerate() {
                if let Ok((200, metrics)) = http::get(&member.client_addr, "/metrics").await
                    && reports_leader(&metrics)
                {
                    return Ok(index);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no etcd member reported itself leader within {START_WAIT_MAX:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Each member's name and resident memory, while it runs.
    pub fn memory(&self) -> Vec<(String, Option<rss::ProcMemory>)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), rss::of_pid(m.process.pid())))
            .collect()
    }

    /// SIGTERMs every member and waits (bounded) for each to exit.
    pub async fn stop(mut self) {
        for member in &mut self.members {
            member.process.terminate(STOP_WAIT_MAX).await;
        }
    }
}

/// Whether etcd's Prometheus text says this member leads.
fn reports_leader(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|line| line.trim() == "etcd_server_is_leader 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_is_read_from_the_gauge_line_only() {
        let leader = "# HELP etcd_server_is_leader Whether or not this member is a leader.\n# TYPE etcd_server_is_leader gauge\netcd_server_is_leader 1\n";
        assert!(reports_leader(leader));
        assert!(!reports_leader(&leader.replace(" 1\n", " 0\n")));
        assert!(!reports_leader("etcd_server_is_leader_changes 1\n"));
    }
}
