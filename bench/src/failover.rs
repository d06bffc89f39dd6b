//! Failover under write load: SIGKILL the leader while clients keep writing, and measure the
//! time until the survivors agree on a new leader and until the first write sent after the
//! kill is acknowledged; then read back every acknowledged write (LINEARIZABLE) from the new
//! leader: none may be lost.
//!
//! The writers register humans with ids they choose (`failover-<tag>-<writer>-<n>`), so the
//! check knows exactly which writes were acknowledged. Each writer follows the leader: after a
//! failed write it asks the nodes' Status which one leads and writes there.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use futures::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tonic::transport::Channel;
use warrant_proto::api::{
    self, Consistency, ReadOptions, identity_service_client::IdentityServiceClient,
};

use crate::procs::warrant::{
    WarrantCluster, admin_request, agreed_leader, control_channel, status,
};

/// Concurrent writers during a failover.
const WRITERS: usize = 4;
/// Writing before the kill, so the kill lands under load with writes acknowledged.
const BEFORE_KILL: Duration = Duration::from_secs(1);
/// Writing after the first post-kill acknowledgement, so the new leader is checked under load.
const AFTER_RECOVERY: Duration = Duration::from_secs(1);
/// How long the cluster may take to elect a new leader and acknowledge a write.
const RECOVERY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often the survivors' Status and the writers' acknowledgements are looked at: the
/// resolution of the measured times.
const FAILOVER_POLL: Duration = Duration::from_millis(10);
/// How long a writer waits before asking again which node leads, when none says so.
const LEADER_SEARCH_PAUSE: Duration = Duration::from_millis(20);
/// Concurrent reads while checking the acknowledged writes.
const CHECK_CONCURRENCY: usize = 16;
/// Attempts per read-back of an acknowledged write, for transient errors (not NOT_FOUND).
const CHECK_ATTEMPTS_MAX: usize = 5;
/// Lost ids named in the result, at most.
const LOST_EXAMPLES_MAX: usize = 10;

/// One failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverResult {
    pub killed: u64,
    pub new_leader: u64,
    /// From the SIGKILL until both survivors name the same new leader.
    pub to_new_leader_ms: f64,
    /// From the SIGKILL until the first write sent after it is acknowledged.
    pub to_first_write_ms: f64,
    pub acknowledged: u64,
    /// Writes that failed (not acknowledged: they may or may not have been applied).
    pub failed: u64,
    /// Acknowledged writes the new leader does not have.
    pub lost: u64,
    pub lost_examples: Vec<String>,
}

/// A write the cluster acknowledged.
struct Ack {
    human_id: String,
    sent: Instant,
    acknowledged: Instant,
}

/// What the writers share.
struct Writers {
    admin_token: String,
    addrs: Vec<crate::load::Dial>,
    tag: String,
    acks: Mutex<Vec<Ack>>,
    failed: AtomicU64,
    stop: AtomicBool,
}

/// Runs one failover on `cluster` and restarts the killed node afterwards, so the cluster has
/// all its members again. `tag` keeps this failover's ids apart from any other's.
pub async fn run(cluster: &mut WarrantCluster, tag: &str) -> anyhow::Result<FailoverResult> {
    let killed = cluster.leader(RECOVERY_WAIT_MAX).await?;
    let live = cluster.live();
    let writers = Arc::new(Writers {
        admin_token: cluster.admin_token().to_string(),
        addrs: live
            .iter()
            .map(|id| cluster.dial(*id))
            .collect::<anyhow::Result<_>>()?,
        tag: tag.to_string(),
        acks: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until_stopped(writers.clone(), w)))
        .collect();
    tokio::time::sleep(BEFORE_KILL).await;
    let measured = kill_and_recover(cluster, killed, &live, &writers).await;
    writers.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.context("a failover writer panicked")?;
    }
    let (new_leader, to_new_leader, to_first_write) = measured?;
    let acked: Vec<String> = std::mem::take(&mut *lock(&writers.acks))
        .into_iter()
        .map(|a| a.human_id)
        .collect();
    let lost = missing(&cluster.channel(new_leader)?, cluster.admin_token(), &acked).await?;
    cluster.restart(killed).await?;
    Ok(FailoverResult {
        killed,
        new_leader,
        to_new_leader_ms: to_new_leader.as_secs_f64() * 1e3,
        to_first_write_ms: to_first_write.as_secs_f64() * 1e3,
        acknowledged: acked.len() as u64,
        failed: writers.failed.load(Ordering::Relaxed),
        lost: lost.len() as u64,
        lost_examples: lost.into_iter().take(LOST_EXAMPLES_MAX).collect(),
    })
}

/// SIGKILLs `killed`, then waits for a new leader and for the first write sent after the kill
/// to be acknowledged: (new leader, time to it, time to that write), then lets the writers go
/// on for [`AFTER_RECOVERY`].
async fn kill_and_recover(
    cluster: &mut WarrantCluster,
    killed: u64,
    live: &[u64],
    writers: &Writers,
) -> anyhow::Result<(u64, Duration, Duration)> {
    anyhow::ensure!(
        !lock(&writers.acks).is_empty(),
        "no write was acknowledged in the {BEFORE_KILL:?} before the kill ({} failed)",
        writers.failed.load(Ordering::Relaxed)
    );
    let survivors = live
        .iter()
        .filter(|id| **id != killed)
        .map(|id| Ok((*id, cluster.channel(*id)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    cluster.kill(killed)?;
    let killed_at = Instant::now();
    let new_leader = agreed_leader(&survivors, RECOVERY_WAIT_MAX, FAILOVER_POLL).await?;
    let to_new_leader = killed_at.elapsed();
    let deadline = killed_at + RECOVERY_WAIT_MAX;
    let to_first_write = loop {
        if let Some(acked) = first_ack_sent_after(writers, killed_at) {
            break acked;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no write sent after the kill was acknowledged within {RECOVERY_WAIT_MAX:?}"
        );
        tokio::time::sleep(FAILOVER_POLL).await;
    };
    tokio::time::sleep(AFTER_RECOVERY).await;
    Ok((new_leader, to_new_leader, to_first_write))
}

/// When the first write sent at or after `since` was acknowledged, counted from `since`.
fn first_ack_sent_after(writers: &Writers, since: Instant) -> Option<Duration> {
    lock(&writers.acks)
        .iter()
        .filter(|a| since <= a.sent)
        .map(|a| a.acknowledged - since)
        .min()
}

/// One writer: register humans one after the other at whichever node leads, until stopped.
async fn write_until_stopped(writers: Arc<Writers>, writer: usize) {
    let mut target: Option<Channel> = None;
    let mut n = 0_u64;
    while !writers.stop.load(Ordering::Relaxed) {
        let Some(channel) = target.clone() else {
            target = find_leader(&writers.addrs).await;
            if target.is_none() {
                tokio::time::sleep(LEADER_SEARCH_PAUSE).await;
            }
            continue;
        };
        let human_id = format!("failover-{}-{writer}-{n}", writers.tag);
        n += 1;
        let request = api::RegisterHumanRequest {
            human_id: human_id.clone(),
            display_name: "Failover".to_string(),
            ..Default::default()
        };
        let sent = Instant::now();
        let result = IdentityServiceClient::new(channel)
            .register_human(admin_request(&writers.admin_token, request))
            .await;
        match result {
            Ok(_) => lock(&writers.acks).push(Ack {
                human_id,
                sent,
                acknowledged: Instant::now(),
            }),
            Err(_) => {
                writers.failed.fetch_add(1, Ordering::Relaxed);
                target = None;
            }
        }
    }
}

/// A channel to the node that reports itself LEADER, if one does.
async fn find_leader(addrs: &[crate::load::Dial]) -> Option<Channel> {
    for addr in addrs {
        let Ok(channel) = control_channel(addr) else {
            continue;
        };
        if status(channel.clone())
            .await
            .is_ok_and(|s| s.role == "LEADER")
        {
            return Some(channel);
        }
    }
    None
}

/// The ids among `human_ids` that a LINEARIZABLE GetHuman on `channel` does not find.
async fn missing(
    channel: &Channel,
    admin_token: &str,
    human_ids: &[String],
) -> anyhow::Result<Vec<String>> {
    let checks = stream::iter(human_ids.iter().cloned())
        .map(|human_id| async move {
            let found = is_present(channel, admin_token, &human_id).await?;
            anyhow::Ok((!found).then_some(human_id))
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut lost = Vec::new();
    for check in checks {
        lost.extend(check?);
    }
    lost.sort();
    Ok(lost)
}

/// Whether the human exists (LINEARIZABLE), retrying transient errors.
async fn is_present(channel: &Channel, admin_token: &str, human_id: &str) -> anyhow::Result<bool> {
    let mut last = None;
    for _ in 0..CHECK_ATTEMPTS_MAX {
        let request = api::GetHumanRequest {
            human_id: human_id.to_string(),
            read: Some(ReadOptions {
                consistency: Consistency::Linearizable as i32,
                at_least_seq: 0,
                as_of: None,
            }),
        };
        match IdentityServiceClient::new(channel.clone())
            .get_human(admin_request(admin_token, request))
            .await
        {
            Ok(_) => return Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(false),
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(LEADER_SEARCH_PAUSE).await;
    }
    anyhow::bail!("GetHuman {human_id} kept failing: {last:?}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_write_counts_only_writes_sent_after_the_kill() {
        let kill = Instant::now();
        let ms = Duration::from_millis;
        let ack = |sent: Instant, acknowledged: Instant| Ack {
            human_id: String::new(),
            sent,
            acknowledged,
        };
        let writers = Writers {
            admin_token: String::new(),
            addrs: Vec::new(),
            tag: String::new(),
            // Pushed in arrival order: a write sent before the kill, acknowledged late by the
            // new leader, does not count; of those sent after, the earliest acknowledgement does.
            acks: Mutex::new(vec![
                ack(kill - ms(5), kill + ms(100)),
                ack(kill + ms(10), kill + ms(400)),
                ack(kill + ms(20), kill + ms(300)),
            ]),
            failed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        };
        assert_eq!(first_ack_sent_after(&writers, kill), Some(ms(300)));
        assert_eq!(first_ack_sent_after(&writers, kill + ms(30)), None);
    }
}
