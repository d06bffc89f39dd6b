//! An authentication flood against an in-process single-node Warrant.
//!
//! Goal: wrong secrets cost bounded work and never stall the log. Method: 64 concurrent callers
//! send 2,000 wrong client secrets (each distinct, so no two checks fold) for an agent holding 8
//! client secrets, while an admin keeps committing writes. Every write must commit within raft's
//! `PROPOSE_WAIT_MAX`; the argon2 pool's counter must show at most one hash per attempt, and
//! exactly one per attempt answered CREDENTIAL_INVALID; every other answer must be a
//! RESOURCE_EXHAUSTED with a stable reason and a message saying what is allowed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;
use warrant_api::limits;

mod support;

use support::{admin, first_write, human, start, with_auth};
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};

const ATTEMPTS: usize = 2_000;
const CALLERS: usize = 64;
const CREDENTIALS: usize = 8;

/// Agent `flooded`, owned by `owner`, with CREDENTIALS client secrets.
async fn register_flooded(identity: &mut IdentityServiceClient<Channel>) {
    let credentials = (2..=CREDENTIALS)
        .map(|idx| api::NewCredential {
            credential_id: format!("secret-{idx}"),
            kind: Some(api::new_credential::Kind::ClientSecret(format!(
                "flooded-secret-{idx}-flooded-secret"
            ))),
        })
        .collect();
    let request = api::RegisterAgentRequest {
        agent_id: "flooded".to_owned(),
        owner_human_id: "owner".to_owned(),
        kind: "assistant".to_owned(),
        client_secret: "flooded-secret-1-flooded-secret".to_owned(),
        credentials,
        ..Default::default()
    };
    let agent = identity
        .register_agent(admin(request))
        .await
        .expect("RegisterAgent")
        .into_inner();
    let held = agent.agent.expect("the agent").credential_ids.len();
    assert_eq!(held, CREDENTIALS);
}

/// Who a flood names (per attempt), and the failure limit that should hold it back.
struct Flood {
    user: fn(usize) -> String,
    limit: u32,
}

/// How the flood was answered.
#[derive(Debug, Default)]
struct Tally {
    invalid: usize,
    rate_limited: usize,
    busy: usize,
}

/// One caller: wrong secrets, each distinct, for the agent `user` names, until ATTEMPTS have been
/// sent among all callers.
async fn flood(
    mut identity: IdentityServiceClient<Channel>,
    sent: Arc<AtomicUsize>,
    user: fn(usize) -> String,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let idx = sent.fetch_add(1, Ordering::Relaxed);
        if ATTEMPTS <= idx {
            return tally;
        }
        let user = user(idx);
        let credential = STANDARD.encode(format!("{user}:wrong-secret-{idx:06}-wrong-secret"));
        let request = api::GetAgentRequest {
            agent_id: "flooded".to_owned(),
            ..Default::default()
        };
        let status = identity
            .get_agent(with_auth(&format!("Basic {credential}"), request))
            .await
            .expect_err("a wrong secret is refused");
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        match (status.code(), reason.as_str()) {
            (Code::Unauthenticated, "CREDENTIAL_INVALID") => tally.invalid += 1,
            (Code::ResourceExhausted, "AUTH_RATE_LIMITED") => {
                assert!(status.message().contains("allowed: "), "{status:?}");
                tally.rate_limited += 1;
            }
            (Code::ResourceExhausted, "AUTH_BUSY") => {
                assert!(status.message().contains("allowed: "), "{status:?}");
                tally.busy += 1;
            }
            _ => panic!("attempt {idx}: unexpected answer {status:?}"),
        }
    }
}

/// Commits writes until the flood is over (and at least three), each within the propose bound.
async fn write_through(
    mut identity: IdentityServiceClient<Channel>,
    sent: Arc<AtomicUsize>,
    phase: usize,
) -> (usize, Duration) {
    let (mut writes, mut slowest) = (0, Duration::ZERO);
    while writes < 3 || sent.load(Ordering::Relaxed) < ATTEMPTS {
        let started = Instant::now();
        identity
            .register_human(admin(human(&format!("writer-{phase}-{writes}"))))
            .await
            .expect("a write during the flood commits");
        let took = started.elapsed();
        assert!(
            took < warrant_raft::PROPOSE_WAIT_MAX,
            "write {writes} took {took:?} during the flood"
        );
        writes += 1;
        slowest = slowest.max(took);
    }
    (writes, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_secrets_costs_at_most_a_hash_each_and_writes_still_commit() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let support::Started {
        channel,
        hashes,
        stop,
    } = start(data_dir.path()).await;
    let mut identity = IdentityServiceClient::new(channel.clone());
    first_write(&mut identity, "owner").await;
    register_flooded(&mut identity).await;

    // The flooded agent, then (with the address's remaining allowance) agents nobody registered:
    // each of those costs a dummy hash and a catch-up until the address is limited.
    let floods = [
        Flood {
            user: |_| "flooded".to_owned(),
            limit: limits::AUTH_FAILURES_PER_PRINCIPAL_MAX,
        },
        Flood {
            user: |idx| format!("ghost-{idx}"),
            limit: limits::AUTH_FAILURES_PER_ADDRESS_MAX,
        },
    ];
    for (phase, Flood { user, limit }) in floods.into_iter().enumerate() {
        let before = hashes.get();
        let sent = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_through(identity.clone(), sent.clone(), phase));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let identity = IdentityServiceClient::new(channel.clone());
                tokio::spawn(flood(identity, sent.clone(), user))
            })
            .collect();
        let mut tally = Tally::default();
        for caller in callers {
            let part = caller.await.expect("a caller finishes");
            tally.invalid += part.invalid;
            tally.rate_limited += part.rate_limited;
            tally.busy += part.busy;
        }
        let (writes, slowest) = writer.await.expect("the writer finishes");
        let hashed = usize::try_from(hashes.get() - before).expect("fits");
        eprintln!(
            "flood {phase}: {tally:?}, {hashed} hashes, {writes} writes (slowest {slowest:?})"
        );
        check(&tally, hashed, limit as usize);
        assert!(3 <= writes);
    }
    let _ = stop.send(());
}

fn check(tally: &Tally, hashed: usize, limit: usize) {
    assert_eq!(
        tally.invalid + tally.rate_limited + tally.busy,
        ATTEMPTS,
        "{tally:?}"
    );
    assert!(
        hashed <= ATTEMPTS,
        "{hashed} hashes for {ATTEMPTS} attempts"
    );
    // Distinct secrets never fold: each refusal as wrong is one hash; a busy refusal is at most
    // one (a check that timed out may still have run), a rate-limited one none.
    assert!(
        tally.invalid <= hashed && hashed <= tally.invalid + tally.busy,
        "{hashed} hashes for {tally:?}"
    );
    // The failure limit bounds the hashes (one window, or two on a slow run); the refusals are
    // the limit's, or the full pool's (those are free, so they are not charged).
    assert!(tally.invalid <= 2 * limit, "{tally:?}");
    assert!(0 < tally.rate_limited + tally.busy, "{tally:?}");
}
