//! The workloads: client tasks that call the cluster and record every call in the history.
//!
//! - W1 registers humans with unique ids (the set of unique events).
//! - W2 walks tokens through their lifecycle: Issue, LINEARIZABLE Verify on random nodes (half of
//!   them on the faulted node while there is one), Revoke, and Verify again.
//! - W3 builds delegation chains and tries a widening and a cycle under each, which must never
//!   commit.
//! - W5 is an audit monitor: it collects signed checkpoints from random nodes as it goes.
//! - W6 sends bad input during the faults; every answer must be a documented status and reason.
//!
//! A client never retries a call: an error is recorded as it came, and the checkers decide what
//! it may mean.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::{Rng as _, SeedableRng as _, seq::IndexedRandom as _};
use rand_chacha::ChaCha8Rng;
use tonic::{Request, transport::Channel};
use tonic_types::StatusExt as _;
use warrant_proto::api::{
    self, Consistency, ReadOptions, audit_service_client::AuditServiceClient,
    delegation_service_client::DelegationServiceClient,
    identity_service_client::IdentityServiceClient, token_service_client::TokenServiceClient,
};

use crate::{
    cluster::with_auth,
    history::{
        Consistency as Read, DelegationFault, OpF, Outcome, Recorder, Value, VerifyResult,
        grpc_code_name,
    },
};

/// The service every token is for.
pub const AUDIENCE: &str = "https://tools.chaos.test";
/// Its tools, which are the scopes tokens and delegations name.
pub const TOOLS: [&str; 2] = ["read", "write"];
/// The human the tokens and delegations act for.
pub const HUMAN: &str = "chaos-human";
/// The token lifetime: long enough that no token expires during a run, skew included.
pub const TOKEN_TTL_S: u32 = 900;
/// Verifies of each token before and after its revocation.
pub const VERIFIES_PER_PHASE: usize = 3;
/// How long a delegation grant lasts.
pub const DELEGATION_TTL_S: u64 = 3600;
/// The pause between two calls of one client: the clients share two cores with three nodes.
pub const THINK_TIME: Duration = Duration::from_millis(20);
/// How often the audit monitor asks for a checkpoint.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(700);

/// The nodes a client may call, and which one is being faulted now (0: none).
#[derive(Clone)]
pub struct Targets {
    pub nodes: Vec<(u64, Channel)>,
    pub faulted: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    pub admin_token: String,
}

impl Targets {
    fn random(&self, rng: &mut ChaCha8Rng) -> (u64, Channel) {
        self.nodes.choose(rng).cloned().expect("a node")
    }

    /// Half of the time the faulted node, if there is one; otherwise a random node.
    fn biased(&self, rng: &mut ChaCha8Rng) -> (u64, Channel) {
        let faulted = self.faulted.load(Ordering::Relaxed);
        if faulted != 0
            && rng.random_bool(0.5)
            && let Some(target) = self.nodes.iter().find(|(id, _)| *id == faulted)
        {
            return target.clone();
        }
        self.random(rng)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn admin<T>(&self, message: T) -> Request<T> {
        with_auth(&format!("Bearer {}", self.admin_token), message)
    }
}

/// The agents and grants the workloads start from, registered before any fault.
#[derive(Clone, Debug)]
pub struct Fixtures {
    /// (agent id, secret) of the agent that issues W2's tokens.
    pub issuer: (String, String),
    /// W3's agents, each of which receives one link of a chain.
    pub chain_agents: Vec<(String, String)>,
}

/// The number of agents W3's chains use.
const CHAIN_AGENTS: usize = 3;

/// How many times a setup call is tried: setup comes before any fault, but a loaded machine
/// can still miss a deadline.
const SETUP_ATTEMPTS: usize = 5;

/// Runs one setup call until it succeeds (or says the entity already exists: an earlier
/// attempt that timed out had committed it), at most [`SETUP_ATTEMPTS`] times.
async fn setup_call<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut last = None;
    for _ in 0..SETUP_ATTEMPTS {
        match call().await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(THINK_TIME * 10).await;
    }
    let status = last.map_or_else(|| "no attempt".to_string(), |s| format!("{s:?}"));
    anyhow::bail!("setup: {what} failed {SETUP_ATTEMPTS} times; last: {status}")
}

/// Registers the human, the service and the agents on `channel` (the leader, before faults).
pub async fn setup(channel: Channel, admin_token: &str) -> anyhow::Result<Fixtures> {
    let admin = |message| with_auth(&format!("Bearer {admin_token}"), message);
    let identity = IdentityServiceClient::new(channel);
    setup_call("RegisterHuman", || {
        let mut client = identity.clone();
        let request = admin(api::RegisterHumanRequest {
            human_id: HUMAN.into(),
            display_name: "Chaos Human".into(),
            email: "chaos@example.com".into(),
            ..Default::default()
        });
        async move { client.register_human(request).await }
    })
    .await?;
    let tools: Vec<api::Tool> = TOOLS
        .iter()
        .map(|name| api::Tool {
            name: name.to_string(),
            description: format!("tool {name}"),
        })
        .collect();
    setup_call("RegisterService", || {
        let mut client = identity.clone();
        let request = with_auth(
            &format!("Bearer {admin_token}"),
            api::RegisterServiceRequest {
                service_id: "chaos-tools".into(),
                audience: AUDIENCE.into(),
                tools: tools.clone(),
                ..Default::default()
            },
        );
        async move { client.register_service(request).await }
    })
    .await?;
    let mut agents = Vec::new();
    let names = std::iter::once("issuer".to_string())
        .chain((1..=CHAIN_AGENTS).map(|i| format!("chain-{i}")));
    for name in names {
        let secret = hex::encode(rand::random::<[u8; 24]>());
        setup_call("RegisterAgent", || {
            let mut client = identity.clone();
            let request = with_auth(
                &format!("Bearer {admin_token}"),
                api::RegisterAgentRequest {
                    idempotency_key: format!("chaos-setup-agent-{name}"),
                    agent_id: format!("agent-{name}"),
                    owner_human_id: HUMAN.into(),
                    kind: "assistant".into(),
                    description: format!("chaos agent {name}"),
                    client_secret: secret.clone(),
                    ..Default::default()
                },
            );
            async move { client.register_agent(request).await }
        })
        .await?;
        agents.push((format!("agent-{name}"), secret));
    }
    let issuer = agents.remove(0);
    Ok(Fixtures {
        issuer,
        chain_agents: agents,
    })
}

fn basic(agent: &(String, String)) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", agent.0, agent.1))
    )
}

/// `Ok` with `value`, or the error as the history records it. `write` says whether the call
/// may have taken effect despite an error (a write), or certainly did not (a read).
fn outcome<T>(
    result: Result<T, tonic::Status>,
    write: bool,
    value: impl FnOnce(T) -> Value,
) -> Outcome {
    match result {
        Ok(reply) => Outcome::Ok(value(reply)),
        Err(status) => error_outcome(&status, write),
    }
}

/// How an error is recorded: `Fail` when the call certainly had no effect (every read, and a
/// write the edge refused with a documented reason before proposing it), `Info` when a write
/// may or may not have committed (the node became unreachable, the deadline passed, the leader
/// changed).
pub fn error_outcome(status: &tonic::Status, write: bool) -> Outcome {
    let (code, reason) = status_reason(status);
    let refused = matches!(
        status.code(),
        tonic::Code::InvalidArgument
            | tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::NotFound
            | tonic::Code::AlreadyExists
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange
    ) && !reason.is_empty()
        && !TRANSPORT_CLASSES.contains(&code.as_str());
    if !write || refused {
        Outcome::Fail { code, reason }
    } else {
        Outcome::Info { code, reason }
    }
}

/// The codes recorded for failures no server sent: no connection, or the client's deadline.
pub const TRANSPORT_CLASSES: [&str; 2] = ["unreachable", "deadline"];

/// The status's code and reason, as the history records them: the gRPC code's name and the
/// `ErrorInfo` reason the server sent (`""` when it sent none: an error-contract violation), or,
/// for a status the client made itself, a transport class and the client's message.
pub fn status_reason(status: &tonic::Status) -> (String, String) {
    if let Some(info) = status.get_error_details().error_info() {
        let code = grpc_code_name(status.code() as i32).unwrap_or("UNKNOWN");
        return (code.to_string(), info.reason.clone());
    }
    if std::error::Error::source(status).is_some() {
        let class = match status.code() {
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => TRANSPORT_CLASSES[1],
            _ => TRANSPORT_CLASSES[0],
        };
        return (class.to_string(), status.message().to_string());
    }
    let code = grpc_code_name(status.code() as i32).unwrap_or("UNKNOWN");
    (code.to_string(), String::new())
}

fn linearizable() -> Option<ReadOptions> {
    Some(ReadOptions {
        consistency: Consistency::Linearizable as i32,
        ..Default::default()
    })
}

/// W1: registers `w1-<process>-<n>` humans on random nodes until stopped.
pub async fn unique_events(targets: Targets, recorder: Recorder, process: u32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n = 0u64;
    while !targets.stopped() {
        n += 1;
        let id = format!("w1-{process}-{n}");
        let (node, channel) = targets.random(&mut rng);
        let Ok(pending) = recorder.invoke(process, node, OpF::RegisterHuman { id: id.clone() })
        else {
            return;
        };
        let request = targets.admin(api::RegisterHumanRequest {
            idempotency_key: format!("chaos-{id}"),
            human_id: id.clone(),
            display_name: format!("Human {id}"),
            email: format!("{id}@example.com"),
            ..Default::default()
        });
        let result = IdentityServiceClient::new(channel)
            .register_human(request)
            .await;
        pending.complete(outcome(result, true, |_| Value::Ack));
        tokio::time::sleep(THINK_TIME).await;
    }
}

/// W2: one token at a time through issue, verifies, revoke and verifies, until stopped.
pub async fn token_lifecycle(
    targets: Targets,
    recorder: Recorder,
    fixtures: Fixtures,
    process: u32,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while !targets.stopped() {
        let Some((jti, token)) = issue(&targets, &recorder, &fixtures, process, &mut rng).await
        else {
            tokio::time::sleep(THINK_TIME).await;
            continue;
        };
        verify_some(&targets, &recorder, process, &jti, &token, &mut rng).await;
        let (node, channel) = targets.random(&mut rng);
        let Ok(pending) = recorder.invoke(process, node, OpF::Revoke { jti: jti.clone() }) else {
            return;
        };
        let request = targets.admin(api::RevokeRequest {
            idempotency_key: format!("chaos-revoke-{jti}"),
            jti: jti.clone(),
            reason: "chaos".into(),
            ..Default::default()
        });
        let result = TokenServiceClient::new(channel).revoke(request).await;
        pending.complete(outcome(result, true, |_| Value::Ack));
        verify_some(&targets, &recorder, process, &jti, &token, &mut rng).await;
    }
}

async fn issue(
    targets: &Targets,
    recorder: &Recorder,
    fixtures: &Fixtures,
    process: u32,
    rng: &mut ChaCha8Rng,
) -> Option<(String, String)> {
    let (node, channel) = targets.random(rng);
    let f = OpF::Issue {
        agent: fixtures.issuer.0.clone(),
    };
    let pending = recorder.invoke(process, node, f).ok()?;
    let request = with_auth(
        &basic(&fixtures.issuer),
        api::IssueRequest {
            audience: AUDIENCE.into(),
            scopes: vec![TOOLS[0].into()],
            ttl_seconds: TOKEN_TTL_S,
            ..Default::default()
        },
    );
    match TokenServiceClient::new(channel).issue(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            pending.complete(Outcome::Ok(Value::Issued {
                jti: reply.jti.clone(),
            }));
            Some((reply.jti, reply.access_token))
        }
        Err(status) => {
            pending.complete(error_outcome(&status, true));
            None
        }
    }
}

async fn verify_some(
    targets: &Targets,
    recorder: &Recorder,
    process: u32,
    jti: &str,
    token: &str,
    rng: &mut ChaCha8Rng,
) {
    for _ in 0..VERIFIES_PER_PHASE {
        if targets.stopped() {
            return;
        }
        let (node, channel) = targets.biased(rng);
        let f = OpF::Verify {
            jti: jti.to_string(),
            consistency: Read::Linearizable,
        };
        let Ok(pending) = recorder.invoke(process, node, f) else {
            return;
        };
        let request = targets.admin(api::VerifyRequest {
            token: token.to_string(),
            audience: AUDIENCE.into(),
            read: linearizable(),
        });
        let result = TokenServiceClient::new(channel).verify(request).await;
        pending.complete(outcome(result, false, |reply| Value::Verified {
            result: verify_result(&reply.into_inner()),
        }));
        tokio::time::sleep(THINK_TIME).await;
    }
}

fn verify_result(reply: &api::VerifyResponse) -> VerifyResult {
    if reply.active {
        VerifyResult::Active
    } else if reply.reason == api::TokenInvalidReason::Revoked as i32 {
        VerifyResult::Revoked
    } else {
        VerifyResult::OtherInvalid(format!("{:?}", reply.reason()))
    }
}

/// The idempotency key prefix of W3's attempts that must be refused: a committed event carrying
/// one is a widening or a cycle that got through, whatever its reply said.
pub const INVALID_GRANT_KEY_PREFIX: &str = "chaos-invalid-";

/// W3: a root grant to the first chain agent, a narrower child to the second, and under it two
/// attempts that must be refused: widening the scopes, and granting back to the first agent (a
/// cycle).
pub async fn delegation_chains(
    targets: Targets,
    recorder: Recorder,
    fixtures: Fixtures,
    process: u32,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let agents = &fixtures.chain_agents;
    let mut client = Grants {
        targets: &targets,
        recorder: &recorder,
        process,
        rng: &mut rng,
    };
    while !targets.stopped() {
        let root = Grant {
            parent: None,
            grantee: &agents[0],
            scopes: &TOOLS,
            fault: None,
        };
        let Some(root) = client.delegate(root).await else {
            tokio::time::sleep(THINK_TIME).await;
            continue;
        };
        let child = Grant {
            parent: Some((&root, &agents[0])),
            grantee: &agents[1],
            scopes: &TOOLS[..1],
            fault: None,
        };
        let Some(child) = client.delegate(child).await else {
            tokio::time::sleep(THINK_TIME).await;
            continue;
        };
        let holder = Some((child.as_str(), &agents[1]));
        let widen = Grant {
            parent: holder,
            grantee: &agents[2],
            scopes: &TOOLS,
            fault: Some(DelegationFault::Widen),
        };
        client.delegate(widen).await;
        let cycle = Grant {
            parent: holder,
            grantee: &agents[0],
            scopes: &TOOLS[..1],
            fault: Some(DelegationFault::Cycle),
        };
        client.delegate(cycle).await;
        tokio::time::sleep(THINK_TIME).await;
    }
}

/// One CreateDelegation W3 makes.
struct Grant<'a> {
    /// The parent grant and its grantee (who makes this one); `None`: a root grant from the
    /// human, made by the admin.
    parent: Option<(&'a str, &'a (String, String))>,
    grantee: &'a (String, String),
    scopes: &'a [&'a str],
    /// Set for the attempts that must be refused.
    fault: Option<DelegationFault>,
}

/// W3's client state.
struct Grants<'a> {
    targets: &'a Targets,
    recorder: &'a Recorder,
    process: u32,
    rng: &'a mut ChaCha8Rng,
}

impl Grants<'_> {
    /// Makes `grant` on a random node; returns the new grant's id.
    async fn delegate(&mut self, grant: Grant<'_>) -> Option<String> {
        let (node, channel) = self.targets.random(self.rng);
        let parent = grant
            .parent
            .map_or_else(|| format!("human:{HUMAN}"), |(id, _)| id.to_string());
        let scopes: Vec<String> = grant.scopes.iter().map(|s| s.to_string()).collect();
        let (f, prefix) = match grant.fault {
            None => (
                OpF::CreateDelegation {
                    parent,
                    scopes: scopes.clone(),
                },
                "chaos-grant-",
            ),
            Some(fault) => (
                OpF::InvalidDelegation {
                    parent,
                    scopes: scopes.clone(),
                    fault,
                },
                INVALID_GRANT_KEY_PREFIX,
            ),
        };
        let key = format!("{prefix}{}-{}", self.process, self.rng.random::<u64>());
        let pending = self.recorder.invoke(self.process, node, f).ok()?;
        let message = api::CreateDelegationRequest {
            idempotency_key: key,
            parent_delegation_id: grant
                .parent
                .map(|(id, _)| id.to_string())
                .unwrap_or_default(),
            grantee_agent_id: grant.grantee.0.clone(),
            scopes,
            audiences: vec![AUDIENCE.into()],
            task: "chaos".into(),
            expires_at_unix_s: unix_now() + DELEGATION_TTL_S,
            max_depth: if grant.parent.is_none() { 3 } else { 0 },
            grantor_human_id: if grant.parent.is_none() {
                HUMAN.into()
            } else {
                String::new()
            },
            budget: None,
        };
        let request = match grant.parent {
            None => self.targets.admin(message),
            Some((_, holder)) => with_auth(&basic(holder), message),
        };
        match DelegationServiceClient::new(channel)
            .create_delegation(request)
            .await
        {
            Ok(reply) => {
                let id = reply
                    .into_inner()
                    .delegation
                    .map(|d| d.delegation_id)
                    .unwrap_or_default();
                pending.complete(Outcome::Ok(Value::DelegationCreated { id: id.clone() }));
                Some(id)
            }
            Err(status) => {
                pending.complete(error_outcome(&status, true));
                None
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// W5: asks random nodes for their latest checkpoint, and records each one.
pub async fn audit_monitor(targets: Targets, recorder: Recorder, process: u32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while !targets.stopped() {
        let (node, channel) = targets.random(&mut rng);
        let Ok(pending) = recorder.invoke(process, node, OpF::Checkpoint) else {
            return;
        };
        let request = targets.admin(api::GetCheckpointRequest {
            read: linearizable(),
            fresh: false,
        });
        let result = AuditServiceClient::new(channel)
            .get_checkpoint(request)
            .await;
        pending.complete(outcome(result, false, |reply| {
            let reply = reply.into_inner();
            Value::Checkpoint {
                size: reply.tree_size,
                root: hex::encode(&reply.root_hash),
                note: reply.note,
            }
        }));
        tokio::time::sleep(MONITOR_INTERVAL).await;
    }
}

/// W6's malformed calls, each refused with a reason whatever the faults.
#[derive(Clone, Copy, Debug)]
enum BadInput {
    EmptyHumanId,
    OversizedHumanId,
    TooManyScopes,
    BadCredential,
}

const BAD_INPUTS: [BadInput; 4] = [
    BadInput::EmptyHumanId,
    BadInput::OversizedHumanId,
    BadInput::TooManyScopes,
    BadInput::BadCredential,
];

/// How long the oversized id is: far past any id limit, well under the message limit.
const OVERSIZED_ID_BYTES: usize = 64 * 1024;

/// How many scopes the oversized request names: far past any scope-list limit.
const TOO_MANY_SCOPES: usize = 10_000;

/// W6: malformed calls to random nodes, during the faults.
pub async fn bad_input(
    targets: Targets,
    recorder: Recorder,
    fixtures: Fixtures,
    process: u32,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while !targets.stopped() {
        let case = *BAD_INPUTS.choose(&mut rng).expect("a case");
        let (node, channel) = targets.random(&mut rng);
        let f = OpF::BadInput {
            case: format!("{case:?}"),
        };
        let Ok(pending) = recorder.invoke(process, node, f) else {
            return;
        };
        let result = send_bad(&targets, &fixtures, channel, case).await;
        pending.complete(match result {
            Ok(()) => Outcome::Ok(Value::Ack),
            Err(status) => error_outcome(&status, false),
        });
        tokio::time::sleep(THINK_TIME * 5).await;
    }
}

async fn send_bad(
    targets: &Targets,
    fixtures: &Fixtures,
    channel: Channel,
    case: BadInput,
) -> Result<(), tonic::Status> {
    match case {
        BadInput::EmptyHumanId => {
            let request = targets.admin(api::RegisterHumanRequest::default());
            IdentityServiceClient::new(channel)
                .register_human(request)
                .await
                .map(drop)
        }
        BadInput::OversizedHumanId => {
            let request = targets.admin(api::RegisterHumanRequest {
                human_id: "h".repeat(OVERSIZED_ID_BYTES),
                ..Default::default()
            });
            IdentityServiceClient::new(channel)
                .register_human(request)
                .await
                .map(drop)
        }
        BadInput::TooManyScopes => {
            let request = with_auth(
                &basic(&fixtures.issuer),
                api::IssueRequest {
                    audience: AUDIENCE.into(),
                    scopes: vec!["read".into(); TOO_MANY_SCOPES],
                    ..Default::default()
                },
            );
            TokenServiceClient::new(channel)
                .issue(request)
                .await
                .map(drop)
        }
        BadInput::BadCredential => {
            let wrong = (fixtures.issuer.0.clone(), "wrong-secret".to_string());
            let request = with_auth(
                &basic(&wrong),
                api::IssueRequest {
                    audience: AUDIENCE.into(),
                    scopes: vec![TOOLS[0].into()],
                    ..Default::default()
                },
            );
            TokenServiceClient::new(channel)
                .issue(request)
                .await
                .map(drop)
        }
    }
}
