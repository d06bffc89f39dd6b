//! Three `warrant` processes on loopback as one cluster: writes and reads on any node, failover
//! under load, revocation everywhere, and a paused leader. Nodes are killed or paused only by the
//! PIDs the harness started.

mod support;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use support::{
    AgentCredential,
    cluster::{CONVERGE_WAIT_MAX, Cluster},
    error_reason, invalid_reason_name, linearizable, verify_request,
};
use tonic::Code;
use warrant_proto::api::{self, Consistency, ReadOptions, TokenInvalidReason};

const AUDIENCE: &str = "https://calendar.example/mcp";
/// Concurrent writers in the failover test.
const WRITERS: usize = 4;
/// Writes acknowledged before the leader is killed, and after writes resume.
const WRITES_BEFORE_KILL: usize = 100;
const WRITES_AFTER_RESUME: usize = 100;

fn followers(cluster_leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|id| *id != cluster_leader).collect()
}

fn human(human_id: &str) -> api::RegisterHumanRequest {
    api::RegisterHumanRequest {
        human_id: human_id.to_string(),
        display_name: format!("Human {human_id}"),
        email: format!("{human_id}@example.com"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_reads_back_linearizably_on_the_other_follower() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let [f1, f2] = followers(leader, 3)[..] else {
        panic!("two followers")
    };
    let (f1, f2) = (cluster.node(f1), cluster.node(f2));

    // Registration through follower 1 is forwarded to the leader.
    let registered = f1
        .identity()
        .register_human(f1.admin(api::RegisterHumanRequest {
            idempotency_key: "register-carol".into(),
            ..human("carol")
        }))
        .await
        .expect("RegisterHuman through a follower")
        .into_inner();
    let read = f2
        .identity()
        .get_human(f2.admin(api::GetHumanRequest {
            human_id: "carol".into(),
            read: Some(linearizable()),
        }))
        .await
        .expect("LINEARIZABLE GetHuman on the other follower")
        .into_inner();
    assert_eq!(read.human_id, "carol");

    // A retry of the same write, through the other follower, is applied once.
    let retried = f2
        .identity()
        .register_human(f2.admin(api::RegisterHumanRequest {
            idempotency_key: "register-carol".into(),
            ..human("carol")
        }))
        .await
        .expect("retried RegisterHuman")
        .into_inner();
    assert_eq!(
        retried.seq, registered.seq,
        "the retry got the first outcome"
    );
    let events = f2.all_events().await;
    let carols = events
        .iter()
        .filter(|e| {
            matches!(&e.kind, Some(warrant_proto::log::event::Kind::HumanRegistered(h)) if h.human_id == "carol")
        })
        .count();
    assert_eq!(carols, 1, "one HumanRegistered event for carol");

    // An agent registered through one follower issues through the other at once, and its token
    // verifies on the leader.
    let agent = AgentCredential::new("carol-agent");
    f1.register_agent(&agent.agent_id, "carol", &agent.secret)
        .await;
    f1.register_service("calendar", AUDIENCE, &["read_events"])
        .await;
    let issued = f2.issue(&agent, AUDIENCE, &["read_events"]).await;
    let verified = cluster
        .node(leader)
        .verify(&issued.access_token, AUDIENCE)
        .await;
    assert!(verified.active, "{}", verified.reason_message);
    assert_eq!(verified.agent_id, "carol-agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_is_honoured_on_another() {
    let cluster = Cluster::start(3).await;
    let (a, c) = (cluster.node(1), cluster.node(3));
    let issued = a.issue_calendar_token(AUDIENCE, &["read_events"]).await;
    assert!(c.verify(&issued.access_token, AUDIENCE).await.active);

    let revoked = a
        .tokens()
        .revoke(a.admin(api::RevokeRequest {
            jti: issued.jti.clone(),
            reason: "test".into(),
            ..Default::default()
        }))
        .await
        .expect("Revoke on A")
        .into_inner();

    // Bad-input row 28: REVOKED, LINEARIZABLE, on every node (the leader and both
    // followers, whichever of them A is).
    for node_id in 1..=3 {
        let linearizable = cluster
            .node(node_id)
            .verify(&issued.access_token, AUDIENCE)
            .await;
        assert!(!linearizable.active, "node {node_id}");
        assert_eq!(
            invalid_reason_name(linearizable.reason),
            "TOKEN_INVALID_REASON_REVOKED",
            "node {node_id}"
        );
    }
    let at_least = c
        .tokens()
        .verify(c.admin(api::VerifyRequest {
            read: Some(ReadOptions {
                consistency: Consistency::AtLeast as i32,
                at_least_seq: revoked.seq,
                as_of: None,
            }),
            ..verify_request(&issued.access_token, AUDIENCE)
        }))
        .await
        .expect("AT_LEAST Verify on C")
        .into_inner();
    assert!(!at_least.active);
    assert_eq!(at_least.reason, TokenInvalidReason::Revoked as i32);
    assert!(at_least.applied_seq >= revoked.seq);
}

/// What the writers acknowledged: (human id, seq, when the successful attempt was sent, when it
/// was acknowledged).
#[derive(Default)]
struct Acks {
    acked: Vec<(String, u64, Instant, Instant)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let channels: Vec<(u64, tonic::transport::Channel)> = cluster
        .nodes
        .values()
        .map(|n| (n.node_id(), n.channel()))
        .collect();
    let admin = cluster.node(1).admin_auth();
    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let channels = channels.clone();
        let acks = acks.clone();
        let stop = stop.clone();
        let admin = admin.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut target = writer;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let human_id = format!("w{writer}-{n}");
                // Retry one write, same idempotency key, across nodes until acknowledged.
                loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let (_, channel) = &channels[target % channels.len()];
                    let sent = Instant::now();
                    match register_once(channel, &admin, &human_id, Duration::from_secs(5)).await {
                        Ok(seq) => {
                            acks.lock().expect("acks lock").acked.push((
                                human_id.clone(),
                                seq,
                                sent,
                                Instant::now(),
                            ));
                            break;
                        }
                        Err(_) => target += 1,
                    }
                }
                n += 1;
            }
        }));
    }
    let wait_acks = |count: usize| {
        let acks = acks.clone();
        async move {
            let deadline = tokio::time::Instant::now() + CONVERGE_WAIT_MAX;
            loop {
                if acks.lock().expect("acks lock").acked.len() >= count {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{count} writes not acknowledged within {CONVERGE_WAIT_MAX:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_acks(WRITES_BEFORE_KILL).await;
    let acked_at_kill = acks.lock().expect("acks lock").acked.len();
    let killed_at = Instant::now();
    cluster.node_mut(leader).kill();
    wait_acks(acked_at_kill + WRITES_AFTER_RESUME).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let acked = std::mem::take(&mut acks.lock().expect("acks lock").acked);
    // Writes resumed when the first write sent after the kill was acknowledged: only a new
    // leader can have committed it.
    let resumed_at = acked
        .iter()
        .filter(|(_, _, sent, _)| *sent > killed_at)
        .map(|(_, _, _, at)| *at)
        .min()
        .expect("writes sent after the kill were acknowledged");
    let survivors = followers(leader, 3);
    let new_leader = cluster.leader_among(&survivors).await;
    eprintln!(
        "failover: killed leader {leader}; node {new_leader} leads; writes resumed {} ms after the kill; {} writes acknowledged in all",
        resumed_at.duration_since(killed_at).as_millis(),
        acked.len()
    );
    assert_ne!(new_leader, leader);

    // Every acknowledged write is on both survivors, with the seq it was acknowledged with.
    for id in &survivors {
        let events = cluster.node(*id).all_events().await;
        let present: BTreeSet<(String, u64)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(warrant_proto::log::event::Kind::HumanRegistered(h)) => {
                    Some((h.human_id.clone(), e.seq))
                }
                _ => None,
            })
            .collect();
        for (human_id, seq, _, _) in &acked {
            assert!(
                present.contains(&(human_id.clone(), *seq)),
                "node {id} lacks acknowledged write {human_id} at seq {seq}"
            );
        }
    }
    let digests = cluster.digests().await;
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "survivors' digests differ: {digests:?}"
    );

    // The killed node restarts on its data dir, loses nothing, and catches up to the same state.
    cluster.node_mut(leader).start_again().await;
    let digests = cluster.digests().await;
    assert_eq!(digests.len(), 3);
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "digests differ after the restart: {digests:?}"
    );
    let events = cluster.node(leader).all_events().await;
    for (human_id, seq, _, _) in &acked {
        let event = events
            .iter()
            .find(|e| e.seq == *seq)
            .unwrap_or_else(|| panic!("restarted node lacks seq {seq}"));
        assert!(
            matches!(&event.kind, Some(warrant_proto::log::event::Kind::HumanRegistered(h)) if &h.human_id == human_id),
            "seq {seq} on the restarted node is not {human_id}"
        );
    }
}

/// A failover writer's deadline per call: above the server's own propose deadline (10 s,
/// `PROPOSE_WAIT_MAX`), so every answer is the server's, never the client giving up.
const FAILOVER_RPC_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a node waits for a new leader before answering NOT_LEADER: raft's
/// `LEADER_CHANGE_WAIT_ELECTION_TIMEOUTS` (4) × `election_timeout_max` (600 ms).
const LEADER_CHANGE_WAIT_MAX: Duration = Duration::from_millis(2400);
/// A NOT_LEADER for a write sent after the kill comes only after waiting for a leader change:
/// raft gives up after `LEADER_CHANGE_WAIT_MAX`, or after 3 leader changes, which cannot happen
/// faster than the first failover (0.9 s of silence before any election). Answering at once,
/// as a node that does not wait does, fails this.
const NOT_LEADER_AFTER_WAIT_MIN: Duration = Duration::from_secs(1);

/// One answer a failover writer got.
struct Answer {
    human_id: String,
    node_id: u64,
    sent: Instant,
    answered: Instant,
    /// The seq, or the status code and reason.
    result: Result<u64, (Code, String)>,
}

/// Registers `human_id` through `channel` as the admin, the id doubling as the idempotency key
/// so a retry on another node is the same write. Returns its seq.
async fn register_once(
    channel: &tonic::transport::Channel,
    admin: &str,
    human_id: &str,
    timeout: Duration,
) -> Result<u64, tonic::Status> {
    let mut client = api::identity_service_client::IdentityServiceClient::new(channel.clone());
    let mut request = support::with_auth(
        Some(admin),
        api::RegisterHumanRequest {
            idempotency_key: human_id.to_string(),
            ..human(human_id)
        },
    );
    request.set_timeout(timeout);
    Ok(client.register_human(request).await?.into_inner().seq)
}

/// Sends `w{writer}-{n}` registrations to `nodes`, starting at node `writer % len`, retrying
/// each write (same idempotency key) on the next node after a failure, and records every
/// answer, until `stop`.
async fn write_until_stopped(
    writer: usize,
    nodes: Vec<(u64, tonic::transport::Channel)>,
    admin: String,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut target = writer;
    for n in 0.. {
        let human_id = format!("w{writer}-{n}");
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let (node_id, channel) = &nodes[target % nodes.len()];
            let sent = Instant::now();
            let result = register_once(channel, &admin, &human_id, FAILOVER_RPC_TIMEOUT)
                .await
                .map_err(|status| (status.code(), error_reason(&status)));
            let acknowledged = result.is_ok();
            answers.lock().expect("answers lock").push(Answer {
                human_id: human_id.clone(),
                node_id: *node_id,
                sent,
                answered: Instant::now(),
                result,
            });
            if acknowledged {
                break;
            }
            target += 1;
        }
    }
}

/// Waits until `answers` holds `count` acknowledged writes.
async fn wait_acknowledged(answers: &Mutex<Vec<Answer>>, count: usize) {
    wait_answers(answers, &format!("{count} acknowledged writes"), |all| {
        all.iter().filter(|a| a.result.is_ok()).count() >= count
    })
    .await
}

/// Waits until `answers` holds a write sent after `after` that was acknowledged.
async fn wait_acknowledged_after(answers: &Mutex<Vec<Answer>>, after: Instant) {
    wait_answers(
        answers,
        "a write sent after the window acknowledged",
        |all| all.iter().any(|a| a.sent > after && a.result.is_ok()),
    )
    .await
}

async fn wait_answers(answers: &Mutex<Vec<Answer>>, what: &str, done: impl Fn(&[Answer]) -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE_WAIT_MAX;
    while !done(&answers.lock().expect("answers lock")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {CONVERGE_WAIT_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the failover answers: failures are retryable, and the write path waited out the
/// election instead of failing through it.
fn assert_writes_rode_through(answers: &[Answer], dead_at: Instant, survivors: usize) {
    let after_kill = || answers.iter().filter(|a| a.sent > dead_at);
    for a in answers {
        if let Err((code, reason)) = &a.result {
            let retryable = matches!(
                (code, reason.as_str()),
                (
                    Code::Unavailable,
                    "NOT_LEADER" | "OUTCOME_UNKNOWN" | "NODE_STOPPED"
                ) | (Code::ResourceExhausted, "OVERLOADED")
            );
            assert!(
                retryable,
                "{} on node {}: {code:?} {reason}",
                a.human_id, a.node_id
            );
        }
    }
    // Only a forward already on its way over the dead leader's connection, before a survivor
    // saw that connection close, can have an unknown outcome: at most one per writer per
    // survivor. A node that reports a refused connection as an unknown outcome answers every
    // write sent in the second before the election so (hundreds).
    let unknown_after_kill = after_kill()
        .filter(|a| matches!(&a.result, Err((_, r)) if r == "OUTCOME_UNKNOWN"))
        .count();
    assert!(
        unknown_after_kill <= WRITERS * survivors,
        "{unknown_after_kill} writes sent after the kill had an unknown outcome"
    );
    for a in after_kill() {
        if matches!(&a.result, Err((_, r)) if r == "NOT_LEADER") {
            let waited = a.answered.duration_since(a.sent);
            assert!(
                waited >= NOT_LEADER_AFTER_WAIT_MIN,
                "{} on node {}: NOT_LEADER after {waited:?}, without waiting for a new leader",
                a.human_id,
                a.node_id
            );
        }
        // By then every survivor has seen the new leader, or waits long enough to.
        if a.sent > dead_at + LEADER_CHANGE_WAIT_MAX {
            assert!(
                a.result.is_ok(),
                "{} sent to node {} {:?} after the kill failed: {:?}",
                a.human_id,
                a.node_id,
                a.sent.duration_since(dead_at),
                a.result
            );
        }
    }
}

/// Every acknowledged write is on each node in `nodes`, with the seq it was acknowledged with.
async fn assert_acknowledged_present(cluster: &Cluster, nodes: &[u64], answers: &[Answer]) {
    for id in nodes {
        let events = cluster.node(*id).all_events().await;
        let present: BTreeSet<(String, u64)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(warrant_proto::log::event::Kind::HumanRegistered(h)) => {
                    Some((h.human_id.clone(), e.seq))
                }
                _ => None,
            })
            .collect();
        for a in answers {
            if let Ok(seq) = a.result {
                assert!(
                    present.contains(&(a.human_id.clone(), seq)),
                    "node {id} lacks acknowledged write {} at seq {seq}",
                    a.human_id
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_followers_ride_through_a_sigkill_of_the_leader() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivors = followers(leader, 3);
    let channels: Vec<(u64, tonic::transport::Channel)> = survivors
        .iter()
        .map(|id| (*id, cluster.node(*id).channel()))
        .collect();
    let admin = cluster.node(1).admin_auth();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(write_until_stopped(
                writer,
                channels.clone(),
                admin.clone(),
                answers.clone(),
                stop.clone(),
            ))
        })
        .collect();
    wait_acknowledged(&answers, WRITES_BEFORE_KILL).await;
    cluster.node_mut(leader).kill();
    // `kill` returns once the process is reaped: its sockets are closed from here on.
    let dead_at = Instant::now();
    let acknowledged_at_kill = answers
        .lock()
        .expect("answers lock")
        .iter()
        .filter(|a| a.result.is_ok())
        .count();
    wait_acknowledged(&answers, acknowledged_at_kill + WRITES_AFTER_RESUME).await;
    // Writes sent later than a leader-change wait after the kill, so the check that none of
    // them failed has some to check.
    wait_acknowledged_after(&answers, dead_at + LEADER_CHANGE_WAIT_MAX).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    let failed_after_kill: Vec<_> = answers
        .iter()
        .filter(|a| a.sent > dead_at && a.result.is_err())
        .map(|a| (a.sent.duration_since(dead_at).as_millis(), a.result.clone()))
        .collect();
    // (ms after the kill the write was sent, its answer), the first few.
    eprintln!(
        "failover through followers: killed leader {leader}; {} answers, {} failed after the kill: {:?}",
        answers.len(),
        failed_after_kill.len(),
        &failed_after_kill[..failed_after_kill.len().min(20)]
    );
    assert_writes_rode_through(&answers, dead_at, survivors.len());
    let new_leader = cluster.leader_among(&survivors).await;
    assert_ne!(new_leader, leader);
    assert_acknowledged_present(&cluster, &survivors, &answers).await;
    let digests = cluster.digests().await;
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "survivors' digests differ: {digests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_never_answers_valid_for_a_revoked_token() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivors = followers(leader, 3);
    let old = cluster.node(leader);
    old.register_human("alice").await;
    let agent = AgentCredential::new("alice-assistant");
    old.register_agent(&agent.agent_id, "alice", &agent.secret)
        .await;
    old.register_service("calendar", AUDIENCE, &["read_events"])
        .await;
    // Revoked before the pause.
    let first = old.issue(&agent, AUDIENCE, &["read_events"]).await;
    // Valid when the leader is paused, then revoked through the new leader while it sleeps:
    // the paused node's own state still says VALID, so only a real read index protects it.
    let second = old.issue(&agent, AUDIENCE, &["read_events"]).await;
    old.tokens()
        .revoke(old.admin(api::RevokeRequest {
            jti: first.jti.clone(),
            reason: "before the pause".into(),
            ..Default::default()
        }))
        .await
        .expect("Revoke");
    cluster.converged().await;

    cluster.node(leader).signal(Signal::SIGSTOP);
    // Sent to a follower right away, before or during the election: waits for a leader or
    // fails, and never says VALID.
    let follower = cluster.node(survivors[1]);
    let during = follower
        .tokens()
        .verify(follower.admin(verify_request(&first.access_token, AUDIENCE)))
        .await;
    match &during {
        Ok(reply) => assert!(
            !reply.get_ref().active,
            "a follower answered VALID for a revoked token while the leader was paused"
        ),
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
    }

    let new_leader = cluster.leader_among(&survivors).await;
    assert_ne!(new_leader, leader);
    let new = cluster.node(new_leader);
    new.tokens()
        .revoke(new.admin(api::RevokeRequest {
            jti: second.jti.clone(),
            reason: "while the old leader sleeps".into(),
            ..Default::default()
        }))
        .await
        .expect("Revoke through the new leader");
    let after = follower.verify(&second.access_token, AUDIENCE).await;
    assert_eq!(after.reason, TokenInvalidReason::Revoked as i32);

    // Sent to the paused node after the revocation: it cannot answer while stopped, and once
    // resumed it must not serve its stale state as if it still led.
    let to_paused = tokio::spawn({
        let channel = cluster.node(leader).channel();
        let admin = cluster.node(leader).admin_auth();
        let token = second.access_token.clone();
        async move {
            let mut request = support::with_auth(Some(&admin), verify_request(&token, AUDIENCE));
            request.set_timeout(Duration::from_secs(20));
            api::token_service_client::TokenServiceClient::new(channel)
                .verify(request)
                .await
        }
    });
    // Whether the request reaches the socket before or after the resume, the answer must not
    // be VALID; yielding first lets the client usually send it while the process is stopped.
    tokio::task::yield_now().await;
    cluster.node(leader).signal(Signal::SIGCONT);
    match to_paused.await.expect("verify task") {
        Ok(reply) => {
            let reply = reply.into_inner();
            assert!(
                !reply.active,
                "the resumed old leader answered VALID for a token revoked while it slept"
            );
            assert_eq!(reply.reason, TokenInvalidReason::Revoked as i32);
        }
        Err(status) => assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{status:?} ({})",
            error_reason(&status)
        ),
    }
    // The old leader rejoins as a follower and converges.
    let leader_now = cluster.leader().await;
    assert_ne!(leader_now, leader, "the old leader stepped down");
    let digests = cluster.digests().await;
    assert!(digests.windows(2).all(|w| w[0].1 == w[1].1), "{digests:?}");
}
