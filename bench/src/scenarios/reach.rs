//! Revocation reach: how long after a Revoke is acknowledged every other node's LOCAL Verify
//! refuses the token. LOCAL reads answer from the node's applied state, so this is the window in
//! which a follower still accepts a revoked token.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tonic::{metadata::AsciiMetadataValue, transport::Channel};
use warrant_proto::api::{
    self, Consistency, TokenInvalidReason, token_service_client::TokenServiceClient,
};

use super::{
    auth::{bearer, with_auth},
    fixture::Fixture,
    tokens::issue_one,
};

/// How long a fresh token may take to verify active on every node before the sample is given up
/// (a timeout, reported).
pub const VISIBLE_DEADLINE: Duration = Duration::from_secs(10);
/// How long, from sending the Revoke, a node may take to refuse the token before that node's
/// sample is given up (a timeout, reported). Far above any healthy replication delay.
pub const REACH_DEADLINE: Duration = Duration::from_secs(10);
/// Most revocations one call measures: each is a committed write and several polls.
pub const REACH_SAMPLES_MAX: usize = 10_000;

/// Percentiles of one set of delays, in milliseconds. A delay can be negative: a follower may
/// apply the revocation before the leader's acknowledgement reaches the client.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReachStats {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl ReachStats {
    fn of(mut delays_ms: Vec<f64>) -> ReachStats {
        delays_ms.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let index = ((q * delays_ms.len() as f64).ceil() as usize).saturating_sub(1);
            delays_ms.get(index).copied().unwrap_or(0.0)
        };
        ReachStats {
            samples: delays_ms.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: delays_ms.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reach {
    /// Observations (one per revocation and other node) that saw REVOKED in time.
    pub samples: usize,
    /// From the Revoke's acknowledgement to the node's first REVOKED answer, over all nodes.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The same, per node id.
    pub per_node: Vec<(u64, ReachStats)>,
    /// From sending the Revoke, over all nodes.
    pub from_send: ReachStats,
    /// The Revoke call itself, send to acknowledgement.
    pub revoke: ReachStats,
    /// Observations given up at [`VISIBLE_DEADLINE`] or [`REACH_DEADLINE`], or that saw another
    /// answer than REVOKED; not in the percentiles.
    pub timeouts: usize,
    pub first_timeout: Option<String>,
}

/// Revocation reach: `count` times, issue a fresh token, make sure every node's LOCAL Verify
/// accepts it, revoke it on `nodes[revoke_on]`, then measure, per other node, the time from the
/// Revoke's acknowledgement (and from sending it) to that node's LOCAL Verify first answering
/// active=false with reason REVOKED. Polls back to back, bounded by [`REACH_DEADLINE`].
pub async fn revocation_reach(
    f: &Fixture,
    nodes: &[(u64, Channel)],
    revoke_on: usize,
    count: usize,
) -> anyhow::Result<Reach> {
    anyhow::ensure!(
        revoke_on < nodes.len(),
        "revoke_on {revoke_on} is not a node index"
    );
    anyhow::ensure!(
        (1..=REACH_SAMPLES_MAX).contains(&count),
        "{count} samples asked for; allowed: 1 to {REACH_SAMPLES_MAX}"
    );
    let probe = Probe {
        authorization: bearer(&f.admin_token)?,
        audience: f.audience.clone(),
    };
    let mut tally = Tally::default();
    for _ in 0..count {
        sample(f, &probe, nodes, revoke_on, &mut tally).await?;
    }
    Ok(tally.reach(nodes, revoke_on))
}

/// One revocation, measured on every node but `revoke_on`.
async fn sample(
    f: &Fixture,
    probe: &Probe,
    nodes: &[(u64, Channel)],
    revoke_on: usize,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let (_, revoker) = &nodes[revoke_on];
    let issued = issue_one(f, revoker).await?;
    let visible = nodes.iter().map(|(node_id, channel)| {
        probe.until(
            channel,
            &issued.access_token,
            Seen::Active,
            VISIBLE_DEADLINE,
            *node_id,
        )
    });
    if let Some(Err(why)) = join_all(visible).await.into_iter().find(Result::is_err) {
        tally.timeout(why);
        return Ok(());
    }
    let sent = Instant::now();
    let watchers: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != revoke_on)
        .map(|(_, (node_id, channel))| {
            let (probe, channel, token) =
                (probe.clone(), channel.clone(), issued.access_token.clone());
            let node_id = *node_id;
            let deadline = REACH_DEADLINE;
            tokio::spawn(async move {
                let seen = probe
                    .until(&channel, &token, Seen::Revoked, deadline, node_id)
                    .await;
                (node_id, seen)
            })
        })
        .collect();
    let revoke = api::RevokeRequest {
        jti: issued.jti.clone(),
        reason: "bench: revocation reach".to_string(),
        ..Default::default()
    };
    let revoked = TokenServiceClient::new(revoker.clone())
        .revoke(with_auth(&probe.authorization, revoke))
        .await;
    let acked = Instant::now();
    if let Err(status) = revoked {
        watchers.iter().for_each(|watcher| watcher.abort());
        return Err(status).context("Revoke");
    }
    tally.revoke_ms.push(signed_ms(acked, sent));
    for watcher in watchers {
        let (node_id, seen) = watcher.await.context("a reach watcher panicked")?;
        match seen {
            Ok(at) => tally.seen(node_id, signed_ms(at, acked), signed_ms(at, sent)),
            Err(why) => tally.timeout(why),
        }
    }
    Ok(())
}

/// What a poll waits for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Seen {
    Active,
    Revoked,
}

/// LOCAL Verify as the admin, for the fixture's audience.
#[derive(Clone)]
struct Probe {
    authorization: AsciiMetadataValue,
    audience: String,
}

impl Probe {
    /// Verifies back to back until the answer is `want`: when it arrived. Any other inactive
    /// answer, a failed call or the deadline is an error naming the node.
    async fn until(
        &self,
        channel: &Channel,
        token: &str,
        want: Seen,
        within: Duration,
        node_id: u64,
    ) -> Result<Instant, String> {
        let deadline = Instant::now() + within;
        let mut client = TokenServiceClient::new(channel.clone());
        while Instant::now() < deadline {
            let request = api::VerifyRequest {
                token: token.to_string(),
                audience: self.audience.clone(),
                read: Some(api::ReadOptions {
                    consistency: Consistency::Local as i32,
                    at_least_seq: 0,
                    as_of: None,
                }),
            };
            let call = client.verify(with_auth(&self.authorization, request));
            let verified = match tokio::time::timeout_at(deadline, call).await {
                Err(_) => break,
                Ok(Err(status)) => return Err(format!("node {node_id}: Verify failed: {status}")),
                Ok(Ok(reply)) => reply.into_inner(),
            };
            let at = Instant::now();
            let revoked = verified.reason == TokenInvalidReason::Revoked as i32;
            // A node that has not applied the issuance yet does not know the token: that is
            // the wait this poll exists for, not a failure.
            let not_yet_applied = verified.reason == TokenInvalidReason::UnknownToken as i32;
            match (want, verified.active) {
                (Seen::Active, true) => return Ok(at),
                (Seen::Active, false) if not_yet_applied => {}
                (Seen::Revoked, false) if revoked => return Ok(at),
                (Seen::Active, false) | (Seen::Revoked, false) => {
                    return Err(format!(
                        "node {node_id}: unexpected inactive answer while waiting for {want:?}: {}",
                        verified.reason_message
                    ));
                }
                (Seen::Revoked, true) => {}
            }
        }
        Err(format!("node {node_id}: not {want:?} within {within:?}"))
    }
}

/// `later - earlier` in milliseconds, negative when `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(after) => after.as_secs_f64() * 1e3,
        None => -(earlier.duration_since(later).as_secs_f64() * 1e3),
    }
}

/// The delays gathered so far.
#[derive(Default)]
struct Tally {
    from_ack: Vec<(u64, f64)>,
    from_send_ms: Vec<f64>,
    revoke_ms: Vec<f64>,
    timeouts: usize,
    first_timeout: Option<String>,
}

impl Tally {
    fn seen(&mut self, node_id: u64, from_ack_ms: f64, from_send_ms: f64) {
        self.from_ack.push((node_id, from_ack_ms));
        self.from_send_ms.push(from_send_ms);
    }

    fn timeout(&mut self, why: String) {
        self.timeouts += 1;
        self.first_timeout.get_or_insert(why);
    }

    fn reach(self, nodes: &[(u64, Channel)], revoke_on: usize) -> Reach {
        let all = ReachStats::of(self.from_ack.iter().map(|(_, ms)| *ms).collect());
        let per_node = nodes
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != revoke_on)
            .map(|(_, (node_id, _))| {
                let delays = self.from_ack.iter().filter(|(id, _)| id == node_id);
                (
                    *node_id,
                    ReachStats::of(delays.map(|(_, ms)| *ms).collect()),
                )
            })
            .collect();
        Reach {
            samples: all.samples,
            p50_ms: all.p50_ms,
            p99_ms: all.p99_ms,
            max_ms: all.max_ms,
            per_node,
            from_send: ReachStats::of(self.from_send_ms),
            revoke: ReachStats::of(self.revoke_ms),
            timeouts: self.timeouts,
            first_timeout: self.first_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ReachStats, signed_ms};
    use tokio::time::Instant;

    #[test]
    fn percentiles_are_nearest_rank_and_keep_negative_delays() {
        let stats = ReachStats::of((1..=100).rev().map(|ms| f64::from(ms) - 3.0).collect());
        assert_eq!(stats.samples, 100);
        assert_eq!(stats.p50_ms, 47.0);
        assert_eq!(stats.p99_ms, 96.0);
        assert_eq!(stats.max_ms, 97.0);
        let empty = ReachStats::of(Vec::new());
        assert_eq!((empty.samples, empty.max_ms), (0, 0.0));
        let one = ReachStats::of(vec![-2.5]);
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms), (-2.5, -2.5, -2.5));
    }

    #[test]
    fn signed_ms_is_negative_when_the_later_instant_came_first() {
        let earlier = Instant::now();
        let later = earlier + std::time::Duration::from_micros(1500);
        assert_eq!(signed_ms(later, earlier), 1.5);
        assert_eq!(signed_ms(earlier, later), -1.5);
    }
}
