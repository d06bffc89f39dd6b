//! Authentication's cost: one hash per presented secret, the same answer for unknown and
//! disabled agents, catch-ups only for well-formed credentials naming unknown principals, the
//! pool's refusals and the failure limits, all counted through the pool's hash counter.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use warrant_identity::{InMemoryState, WriteSet, keys};
use warrant_proto::log::{Credential, credential::Kind};

use super::*;

const RIGHT: &str = "right-secret-right-secret-right";
const OTHER: &str = "other-secret-other-secret-other";
const WRONG: &str = "wrong-secret-wrong-secret-wrong";

/// A node's state, and what a catch-up would bring it.
struct Source {
    state: Mutex<InMemoryState>,
    behind: Mutex<Option<WriteSet>>,
    catch_ups: AtomicU64,
}

impl Source {
    fn new(rows: WriteSet) -> Source {
        let mut state = InMemoryState::new();
        state.apply_writes(&rows);
        Source {
            state: Mutex::new(state),
            behind: Mutex::new(None),
            catch_ups: AtomicU64::new(0),
        }
    }
}

impl AuthSource for Source {
    type State = InMemoryState;

    fn state(&self) -> InMemoryState {
        self.state.lock().expect("unpoisoned").clone()
    }

    async fn catch_up(&self) -> bool {
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
        let Some(rows) = self.behind.lock().expect("unpoisoned").take() else {
            return false;
        };
        self.state.lock().expect("unpoisoned").apply_writes(&rows);
        true
    }
}

/// The argon2id hashes of RIGHT and OTHER, computed once (outside any pool).
fn phcs() -> &'static (String, String) {
    static PHCS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PHCS.get_or_init(|| {
        let hash = |secret| hash_secret(secret).expect("hash");
        (hash(RIGHT), hash(OTHER))
    })
}

/// Agent `agent_id` with eight client secrets: c1 (the oldest) is RIGHT, c2..c8 are OTHER.
fn agent_rows(rows: &mut WriteSet, agent_id: &str, status: state::Status) {
    let (right, other) = phcs();
    let secret = |idx: usize, phc: &str| Credential {
        credential_id: format!("c{idx}"),
        kind: Some(Kind::ClientSecretArgon2id(phc.to_owned())),
    };
    let mut credentials = vec![secret(1, right)];
    credentials.extend((2..=8).map(|idx| secret(idx, other)));
    let row = AgentRow {
        agent_id: agent_id.to_owned(),
        owner_human_id: "alice".to_owned(),
        status: status as i32,
        credentials,
        ..AgentRow::default()
    };
    rows.put(keys::agent(agent_id), row.encode_to_vec());
}

/// bot (active) and sleepy (disabled), each with eight client secrets.
fn world() -> Source {
    let mut rows = WriteSet::new();
    agent_rows(&mut rows, "bot", state::Status::Active);
    agent_rows(&mut rows, "sleepy", state::Status::Disabled);
    Source::new(rows)
}

fn authenticator(cost: AuthCost) -> Authenticator {
    let config = AuthConfig {
        admin_token: "admin-token".to_owned(),
        issuer: "https://warrant.test".to_owned(),
        assertion_audiences: vec![],
        clock_leeway_s: 0,
    };
    Authenticator::with_cost(config, cost)
}

fn generous() -> AuthCost {
    let mut cost = AuthCost::from_limits();
    cost.pool.wait_max = Duration::from_secs(30);
    cost
}

fn metadata(authorization: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert("authorization", authorization.parse().expect("ASCII"));
    metadata
}

fn basic(user: &str, secret: &str) -> MetadataMap {
    metadata(&format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{secret}"))
    ))
}

/// The answer, as a client sees it, and the hashes and catch-ups it cost.
struct Answer {
    result: Result<Caller, (Code, &'static str, String)>,
    hashes: u64,
    catch_ups: u64,
}

async fn attempt(auth: &Authenticator, source: &Source, metadata: &MetadataMap) -> Answer {
    let (hashes, catch_ups) = (
        auth.pool().hashes_computed(),
        source.catch_ups.load(Ordering::Relaxed),
    );
    let result = auth
        .authenticate(metadata, source)
        .await
        .map_err(|e| (e.code, e.reason.as_str(), e.message));
    Answer {
        result,
        hashes: auth.pool().hashes_computed() - hashes,
        catch_ups: source.catch_ups.load(Ordering::Relaxed) - catch_ups,
    }
}

fn refused() -> Result<Caller, (Code, &'static str, String)> {
    Err((
        Code::Unauthenticated,
        "CREDENTIAL_INVALID",
        "unknown agent or wrong client secret".to_owned(),
    ))
}

#[test]
fn the_dummy_costs_what_a_real_hash_costs() {
    use argon2::{Params, PasswordHash};
    let dummy = PasswordHash::new(DUMMY_PHC).expect("the dummy parses");
    let real_phc = hash_secret(RIGHT).expect("hash");
    let real = PasswordHash::new(&real_phc).expect("a real hash parses");
    assert_eq!(dummy.algorithm, real.algorithm);
    assert_eq!(dummy.version, real.version);
    let params = |hash: &PasswordHash| Params::try_from(hash).expect("argon2 params");
    assert_eq!(params(&dummy), params(&real));
    let default = Params::default();
    let costs = |params: Params| (params.m_cost(), params.t_cost(), params.p_cost());
    assert_eq!(
        costs(params(&dummy)),
        costs(default),
        "what hash_secret uses"
    );
    assert_eq!(dummy.hash.map(|it| it.len()), real.hash.map(|it| it.len()));
}

#[tokio::test]
async fn a_wrong_secret_costs_one_hash_against_the_named_credential_or_a_dummy() {
    let source = world();
    let auth = authenticator(generous());
    let cases = [
        ("bot", WRONG, "the oldest of eight"),
        ("bot/c5", WRONG, "the named one"),
        (
            "bot",
            OTHER,
            "c2..c8's secret, unnamed: checked against c1 only",
        ),
        ("bot/c9", RIGHT, "a credential the agent lacks: the dummy"),
        ("ghost", RIGHT, "an unknown agent: the dummy"),
    ];
    for (user, secret, what) in cases {
        let answer = attempt(&auth, &source, &basic(user, secret)).await;
        assert_eq!(answer.result, refused(), "{what}");
        assert_eq!(answer.hashes, 1, "{what}");
    }
    // Right secrets: one hash the first time, none once remembered (per credential, however it
    // was named).
    let cases = [("bot", "c1", 1), ("bot/c1", "c1", 0), ("bot/c7", "c7", 1)];
    for (user, credential_id, hashes) in cases {
        let secret = if credential_id == "c1" { RIGHT } else { OTHER };
        let answer = attempt(&auth, &source, &basic(user, secret)).await;
        assert_eq!(
            answer.result,
            Ok(Caller::agent("bot", credential_id)),
            "{user}"
        );
        assert_eq!(answer.hashes, hashes, "{user}");
        let again = attempt(&auth, &source, &basic(user, secret)).await;
        assert_eq!(
            again.result,
            Ok(Caller::agent("bot", credential_id)),
            "{user}"
        );
        assert_eq!(again.hashes, 0, "{user}: remembered");
    }
}

#[tokio::test]
async fn unknown_and_disabled_agents_get_the_same_answer_for_the_same_cost() {
    let source = world();
    let auth = authenticator(generous());
    let unknown = attempt(&auth, &source, &basic("ghost", WRONG)).await;
    let disabled = attempt(&auth, &source, &basic("sleepy", WRONG)).await;
    assert_eq!(unknown.result, refused());
    assert_eq!(disabled.result, unknown.result);
    assert_eq!((unknown.hashes, disabled.hashes), (1, 1));
    // Only a caller holding the disabled agent's secret learns that it is disabled.
    let holder = attempt(&auth, &source, &basic("sleepy", RIGHT)).await;
    assert_eq!(
        holder.result,
        Err((
            Code::PermissionDenied,
            "AGENT_DISABLED",
            "agent sleepy is disabled".to_owned()
        ))
    );
    assert_eq!(holder.hashes, 1);
}

#[tokio::test]
async fn only_a_well_formed_credential_naming_an_unknown_principal_catches_up() {
    let source = world();
    let auth = authenticator(generous());
    let no_catch_up = [
        metadata("Bearer garbage"),
        metadata("Bearer not.a.jwt"),
        metadata("Basic !!!"),
        basic("ghost", "short"),
        basic("gh ost", RIGHT),
        basic("bot", WRONG),
        basic("sleepy", WRONG),
    ];
    for metadata in &no_catch_up {
        let answer = attempt(&auth, &source, metadata).await;
        assert!(answer.result.is_err(), "{metadata:?}");
        assert_eq!(answer.catch_ups, 0, "{metadata:?}");
    }
    let ghost = attempt(&auth, &source, &basic("ghost", RIGHT)).await;
    assert_eq!(
        (ghost.result, ghost.catch_ups, ghost.hashes),
        (refused(), 1, 1)
    );
    // An agent registered through another node a moment ago: found after the one catch-up,
    // still for one hash.
    let mut rows = WriteSet::new();
    agent_rows(&mut rows, "newbie", state::Status::Active);
    *source.behind.lock().expect("unpoisoned") = Some(rows);
    let newbie = attempt(&auth, &source, &basic("newbie", RIGHT)).await;
    assert_eq!(newbie.result, Ok(Caller::agent("newbie", "c1")));
    assert_eq!((newbie.catch_ups, newbie.hashes), (1, 1));
}

#[tokio::test]
async fn failures_are_limited_per_principal_without_hashing_but_a_known_secret_still_works() {
    let source = world();
    let mut cost = generous();
    cost.failures.per_principal_max = 3;
    let auth = authenticator(cost);
    // A secret this node verified before.
    let known = attempt(&auth, &source, &basic("bot", RIGHT)).await;
    assert_eq!(known.result, Ok(Caller::agent("bot", "c1")));
    for _ in 0..3 {
        assert_eq!(
            attempt(&auth, &source, &basic("bot", WRONG)).await.result,
            refused()
        );
    }
    let limited = attempt(&auth, &source, &basic("bot", WRONG)).await;
    let Err((code, reason, message)) = limited.result else {
        panic!("the fourth failure is refused");
    };
    assert_eq!(
        (code, reason),
        (Code::ResourceExhausted, "AUTH_RATE_LIMITED")
    );
    assert!(
        message.starts_with(
            "too many failed authentication attempts for principal bot; allowed: 3 per 60 s; \
             retry in "
        ),
        "{message}"
    );
    assert_eq!((limited.hashes, limited.catch_ups), (0, 0));
    let cached = attempt(&auth, &source, &basic("bot", RIGHT)).await;
    assert_eq!(cached.result, Ok(Caller::agent("bot", "c1")));
    assert_eq!(cached.hashes, 0);
    // Unknown principals are limited alike: the limit tells nothing about who exists.
    for _ in 0..3 {
        attempt(&auth, &source, &basic("ghost", WRONG)).await;
    }
    let ghost = attempt(&auth, &source, &basic("ghost", WRONG)).await;
    assert_eq!(
        ghost.result.map_err(|(code, reason, _)| (code, reason)),
        Err((Code::ResourceExhausted, "AUTH_RATE_LIMITED"))
    );
    assert_eq!((ghost.hashes, ghost.catch_ups), (0, 0));
}

#[tokio::test]
async fn a_check_past_the_pool_deadline_is_resource_exhausted() {
    let source = world();
    let mut cost = generous();
    cost.pool.threads = 1;
    cost.pool.wait_max = Duration::from_micros(1);
    let auth = authenticator(cost);
    let answer = attempt(&auth, &source, &basic("bot", RIGHT)).await;
    assert_eq!(
        answer.result,
        Err((
            Code::ResourceExhausted,
            "AUTH_BUSY",
            "this node is checking too many secrets: the check did not finish in time; \
             allowed: 0 ms; retry with backoff"
                .to_owned()
        ))
    );
}

#[tokio::test]
async fn a_full_pool_is_resource_exhausted_at_once() {
    let source = world();
    let mut cost = generous();
    cost.pool.threads = 1;
    cost.pool.queue_max = 1;
    let auth = authenticator(cost);
    // Distinct secrets, so that no two checks fold into one.
    let attempts: Vec<MetadataMap> = (0..8)
        .map(|idx| basic(&format!("ghost{idx}"), &format!("{WRONG}-{idx}")))
        .collect();
    let answers =
        futures::future::join_all(attempts.iter().map(|it| auth.authenticate(it, &source))).await;
    let busy: Vec<_> = answers
        .iter()
        .filter_map(|it| it.as_ref().err())
        .filter(|e| e.reason == Reason::AuthBusy)
        .collect();
    assert!(6 <= busy.len(), "{answers:?}");
    assert_eq!(busy[0].code, Code::ResourceExhausted);
    assert_eq!(
        busy[0].message,
        "this node is checking too many secrets: 1 checks are already waiting; allowed: at most \
         1; retry with backoff"
    );
    assert!(auth.pool().hashes_computed() <= 2);
}

#[tokio::test]
async fn every_refusal_is_counted_under_the_claimed_principal_and_successes_are_not() {
    let source = world();
    let auth = authenticator(generous());
    let attempts = [
        basic("bot", WRONG),
        basic("bot", WRONG),
        basic("ghost", RIGHT),
        basic("bot", RIGHT),
        metadata("Bearer not-the-admin-token"),
        metadata("Digest x"),
        MetadataMap::new(),
    ];
    for metadata in &attempts {
        let _ = auth.authenticate(metadata, &source).await;
    }
    let counted: Vec<(i32, String, String, u64)> = auth
        .failure_log()
        .take(1, 64)
        .into_iter()
        .map(|e| (e.claimed_kind, e.claimed_id, e.reason, e.count))
        .collect();
    use log::PrincipalKind::{Admin, Agent, Unspecified};
    let entry = |kind: log::PrincipalKind, id: &str, reason: &str, count| {
        (kind as i32, id.to_owned(), reason.to_owned(), count)
    };
    assert_eq!(
        counted,
        vec![
            entry(Agent, "bot", "CREDENTIAL_INVALID", 2),
            entry(Unspecified, "(unnamed)", "CREDENTIAL_INVALID", 1),
            entry(Unspecified, "(unnamed)", "CREDENTIAL_MISSING", 1),
            entry(Admin, "admin", "CREDENTIAL_INVALID", 1),
            entry(Agent, "ghost", "CREDENTIAL_INVALID", 1),
        ]
    );
    // No entry carries any part of a secret.
    assert!(counted.iter().all(|(_, id, _, _)| !id.contains("secret")));
}
