//! The audit fixtures' commands: a deterministic, seeded stream of batches that looks like a
//! deployment's log, so as-of reads meet rows with many versions.
//!
//! A setup phase registers one service, node 1's signing key, the humans (bulk imports), two
//! agents per human and a device per human. Then every batch is [`COMMANDS_PER_BATCH`] commands
//! drawn from [`MIX`]: token issuance and revocation, credential rotations (most of them on a
//! hot tenth of the agents, whose rows then keep about 125 versions each at every size), agents
//! disabled and enabled again, delegations granted and revoked, sessions started and ended,
//! and ASYNC access receipts, [`RECEIPTS_PER_RECORD`] per command, about half the events.
//!
//! The stream depends only on the seed and the target size, never on outcomes: the loader
//! checks that apply accepted what it was sent.

use std::collections::VecDeque;

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use warrant_identity::fixtures::{self, actor, command_with_key};
use warrant_proto::log::{self, PrincipalKind, command::Kind};

/// Commands per steady-state batch (one Raft entry): about 500 events with the receipts.
pub const COMMANDS_PER_BATCH: usize = 256;
/// Receipts per `RecordAccessDecisions`: each one event, the cheapest kind.
pub const RECEIPTS_PER_RECORD: usize = 32;
/// The stamp of the first batch (2023-11-14), and the stamp step between batches.
pub const GENESIS_UNIX_MS: u64 = 1_700_000_000_000;
pub const BATCH_STEP_MS: u64 = 250;
/// One human per this many target events, within [`HUMANS_MIN`]..=[`HUMANS_MAX`]: every size
/// from 10⁴ to 10⁷ has the same density (about 250 events per agent, and as many versions per
/// hot agent row), so what changes from one size to the next is the log's length alone.
const EVENTS_PER_HUMAN: u64 = 500;
const HUMANS_MIN: u64 = 20;
const HUMANS_MAX: u64 = 20_000;
/// Agents per human (agent `2h` and `2h+1` belong to human `h`).
pub const AGENTS_PER_HUMAN: u32 = 2;
/// The hot agents, whose credentials rotate most: one in this many.
const HOT_AGENT_EVERY: u32 = 10;
/// The share (per mille) of rotations that go to the hot agents.
const HOT_ROTATIONS_PER_MILLE: u32 = 800;
/// How many recent tokens, delegations and sessions are remembered for revoking and ending.
const RECENT_MAX: usize = 4096;
/// The agents disabled at once, at most one in this many; beyond it a disable becomes an
/// enable.
const DISABLED_ONE_IN: usize = 8;
pub const SERVICE_ID: &str = "mail";
pub const TOOLS: [&str; 3] = ["read", "send", "search"];
pub const KEY_ID: &str = "k1";
const DELEGATION_TTL_S: u64 = 7 * 86_400;

/// What each steady-state command is, per mille.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Receipts,
    Issue,
    RevokeToken,
    Rotate,
    Delegate,
    RevokeDelegation,
    Disable,
    Enable,
    StartSession,
    EndSession,
}

/// The steady-state mix: (operation, per mille of commands). Receipt commands are 3 % of the
/// commands and about half the events.
const MIX: [(Op, u32); 10] = [
    (Op::Receipts, 30),
    (Op::Issue, 500),
    (Op::RevokeToken, 80),
    (Op::Rotate, 120),
    (Op::Delegate, 80),
    (Op::RevokeDelegation, 40),
    (Op::Disable, 20),
    (Op::Enable, 20),
    (Op::StartSession, 60),
    (Op::EndSession, 50),
];
const _: () = {
    let mut sum = 0;
    let mut i = 0;
    while i < MIX.len() {
        sum += MIX[i].1;
        i += 1;
    }
    assert!(sum == 1000);
};

/// The entities of a fixture, fixed by its target size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct World {
    pub humans: u32,
    pub agents: u32,
}

impl World {
    /// The world of a fixture of about `target_events` events.
    pub fn for_events(target_events: u64) -> World {
        let humans = (target_events / EVENTS_PER_HUMAN).clamp(HUMANS_MIN, HUMANS_MAX) as u32;
        World {
            humans,
            agents: humans * AGENTS_PER_HUMAN,
        }
    }
}

pub fn human_id(index: u32) -> String {
    format!("h{index}")
}

pub fn agent_id(index: u32) -> String {
    format!("a{index}")
}

/// The human who owns agent `index`.
pub fn owner_of(agent: u32) -> u32 {
    agent / AGENTS_PER_HUMAN
}

/// The stamp of batch `index`.
pub fn batch_time_ms(index: u64) -> u64 {
    GENESIS_UNIX_MS + index * BATCH_STEP_MS
}

/// The seeded stream of batches.
pub struct Workload {
    rng: StdRng,
    world: World,
    /// Batches made so far (the next batch's index).
    batches: u64,
    /// Setup steps still to make, in order.
    setup: VecDeque<log::Batch>,
    next_id: u64,
    /// Each agent's current credential number (`c<n>`), and whether it is disabled.
    credential: Vec<u32>,
    disabled: Vec<bool>,
    disabled_list: Vec<u32>,
    tokens: VecDeque<String>,
    delegations: VecDeque<String>,
    sessions: VecDeque<String>,
}

impl Workload {
    pub fn new(seed: u64, target_events: u64) -> Workload {
        let world = World::for_events(target_events);
        let mut workload = Workload {
            rng: StdRng::seed_from_u64(seed),
            world,
            batches: 0,
            setup: VecDeque::new(),
            next_id: 0,
            credential: vec![0; world.agents as usize],
            disabled: vec![false; world.agents as usize],
            disabled_list: Vec::new(),
            tokens: VecDeque::new(),
            delegations: VecDeque::new(),
            sessions: VecDeque::new(),
        };
        workload.plan_setup();
        workload
    }

    pub fn world(&self) -> World {
        self.world
    }

    /// The next batch of the stream.
    pub fn next_batch(&mut self) -> log::Batch {
        let index = self.batches;
        self.batches += 1;
        let time_unix_ms = batch_time_ms(index);
        if let Some(mut batch) = self.setup.pop_front() {
            batch.time_unix_ms = time_unix_ms;
            return batch;
        }
        let commands = (0..COMMANDS_PER_BATCH)
            .map(|_| self.steady_command(time_unix_ms))
            .collect();
        log::Batch {
            time_unix_ms,
            commands,
        }
    }

    fn key(&mut self) -> String {
        self.next_id += 1;
        format!("k{}", self.next_id)
    }

    fn by(&mut self, who: log::Actor, kind: Kind) -> log::Command {
        let key = self.key();
        command_with_key(who, kind, key, vec![7; 32])
    }

    /// The setup batches: the service and key, the humans, their agents and devices.
    fn plan_setup(&mut self) {
        let tools: Vec<&str> = TOOLS.to_vec();
        let first = vec![
            self.by(
                fixtures::admin(),
                Kind::RegisterService(fixtures::service(SERVICE_ID, fixtures::MAIL, &tools)),
            ),
            self.by(
                fixtures::node(1),
                Kind::PublishSigningKey(fixtures::signing_key(KEY_ID, 1)),
            ),
        ];
        self.push_setup(first);
        let humans: Vec<String> = (0..self.world.humans).map(human_id).collect();
        let mut commands = Vec::new();
        for chunk in humans.chunks(warrant_identity::limits::HUMANS_PER_IMPORT_MAX) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            commands.push(self.by(
                fixtures::admin(),
                Kind::RegisterHumans(fixtures::humans(&ids)),
            ));
        }
        self.push_setup(commands);
        let mut commands = Vec::new();
        for agent in 0..self.world.agents {
            let register = log::RegisterAgent {
                credentials: vec![fixtures::credential("c0")],
                ..fixtures::agent(&agent_id(agent), &human_id(owner_of(agent)))
            };
            commands.push(self.by(fixtures::admin(), Kind::RegisterAgent(register)));
        }
        for human in 0..self.world.humans {
            let device = fixtures::device(&format!("d{human}"), &human_id(human));
            commands.push(self.by(fixtures::admin(), Kind::RegisterDevice(device)));
        }
        self.push_setup(commands);
    }

    fn push_setup(&mut self, commands: Vec<log::Command>) {
        for chunk in commands.chunks(COMMANDS_PER_BATCH * 4) {
            self.setup.push_back(log::Batch {
                time_unix_ms: 0,
                commands: chunk.to_vec(),
            });
        }
    }

    fn draw_op(&mut self) -> Op {
        let mut point = self.rng.random_range(0..1000);
        for (op, weight) in MIX {
            if point < weight {
                return op;
            }
            point -= weight;
        }
        Op::Issue
    }

    /// At most this many agents are disabled at once.
    fn disabled_max(&self) -> usize {
        (self.world.agents as usize / DISABLED_ONE_IN).max(1)
    }

    /// An agent that is not disabled (one always is: at most one in [`DISABLED_ONE_IN`] is).
    fn active_agent(&mut self) -> u32 {
        let start = self.rng.random_range(0..self.world.agents);
        (0..self.world.agents)
            .map(|step| (start + step) % self.world.agents)
            .find(|agent| !self.disabled[*agent as usize])
            .unwrap_or(start)
    }

    /// An active agent for a rotation: a hot one most of the time.
    fn rotation_agent(&mut self) -> u32 {
        let hot = self.rng.random_range(0..1000) < HOT_ROTATIONS_PER_MILLE;
        let agent = if hot {
            let hot_agents = self.world.agents.div_ceil(HOT_AGENT_EVERY);
            self.rng.random_range(0..hot_agents) * HOT_AGENT_EVERY
        } else {
            self.rng.random_range(0..self.world.agents)
        };
        if self.disabled[agent as usize] {
            self.active_agent()
        } else {
            agent
        }
    }

    fn steady_command(&mut self, time_unix_ms: u64) -> log::Command {
        match self.draw_op() {
            Op::Receipts => self.receipts(time_unix_ms),
            Op::Issue => self.issue(),
            Op::RevokeToken => match self.tokens.pop_front() {
                Some(jti) => self.by(fixtures::admin(), Kind::RevokeToken(fixtures::revoke(&jti))),
                None => self.issue(),
            },
            Op::Rotate => self.rotate(),
            Op::Delegate => self.delegate(time_unix_ms),
            Op::RevokeDelegation => match self.delegations.pop_front() {
                Some(id) => self.by(
                    fixtures::admin(),
                    Kind::RevokeDelegation(fixtures::revoke_delegation(&id)),
                ),
                None => self.delegate(time_unix_ms),
            },
            Op::Disable if self.disabled_list.len() < self.disabled_max() => self.disable(),
            Op::Disable | Op::Enable => match self.disabled_list.pop() {
                Some(agent) => self.set_status(agent, false),
                None => self.disable(),
            },
            Op::StartSession => self.start_session(),
            Op::EndSession => match self.sessions.pop_front() {
                Some(id) => self.by(
                    fixtures::admin(),
                    Kind::EndSession(fixtures::end_session(&id)),
                ),
                None => self.start_session(),
            },
        }
    }

    fn remember(list: &mut VecDeque<String>, id: String) {
        if RECENT_MAX <= list.len() {
            list.pop_front();
        }
        list.push_back(id);
    }

    fn issue(&mut self) -> log::Command {
        let agent = self.active_agent();
        let jti = format!("t{}", self.next_id);
        let scope = TOOLS[self.rng.random_range(0..TOOLS.len())];
        let body = log::IssueToken {
            key_id: KEY_ID.into(),
            ..fixtures::issue(&jti, &agent_id(agent), &[scope])
        };
        Self::remember(&mut self.tokens, jti);
        self.by(
            fixtures::agent_actor(&agent_id(agent)),
            Kind::IssueToken(body),
        )
    }

    fn rotate(&mut self) -> log::Command {
        let agent = self.rotation_agent();
        let old = self.credential[agent as usize];
        self.credential[agent as usize] = old + 1;
        let body = log::ChangeCredentials {
            agent_id: agent_id(agent),
            add: vec![fixtures::credential(&format!("c{}", old + 1))],
            remove: vec![format!("c{old}")],
        };
        self.by(fixtures::admin(), Kind::ChangeCredentials(body))
    }

    fn delegate(&mut self, time_unix_ms: u64) -> log::Command {
        let agent = self.active_agent();
        let owner = human_id(owner_of(agent));
        self.next_id += 1;
        let delegation_id = format!("g{}", self.next_id);
        let body = log::CreateDelegation {
            delegation_id: delegation_id.clone(),
            grantee_agent_id: agent_id(agent),
            scopes: fixtures::strings(&TOOLS[..2]),
            audiences: vec![fixtures::MAIL.into()],
            task: "triage".into(),
            expires_at_unix_s: time_unix_ms / 1000 + DELEGATION_TTL_S,
            max_depth: 2,
            ..Default::default()
        };
        Self::remember(&mut self.delegations, delegation_id);
        self.by(fixtures::human_actor(&owner), Kind::CreateDelegation(body))
    }

    fn disable(&mut self) -> log::Command {
        let agent = self.active_agent();
        self.disabled_list.push(agent);
        self.set_status(agent, true)
    }

    fn set_status(&mut self, agent: u32, disabled: bool) -> log::Command {
        self.disabled[agent as usize] = disabled;
        let body = fixtures::set_status(log::EntityKind::Agent, &agent_id(agent), disabled);
        self.by(fixtures::admin(), Kind::SetStatus(body))
    }

    fn start_session(&mut self) -> log::Command {
        let agent = self.active_agent();
        self.next_id += 1;
        let session_id = format!("s{}", self.next_id);
        let body = fixtures::agent_session(&session_id, &agent_id(agent));
        Self::remember(&mut self.sessions, session_id);
        self.by(
            fixtures::agent_actor(&agent_id(agent)),
            Kind::StartSession(body),
        )
    }

    fn receipts(&mut self, time_unix_ms: u64) -> log::Command {
        let decisions = (0..RECEIPTS_PER_RECORD)
            .map(|_| {
                let agent = self.rng.random_range(0..self.world.agents);
                self.next_id += 1;
                log::AccessDecided {
                    decision_id: format!("r{}", self.next_id),
                    decision: log::AccessDecision::Allow as i32,
                    principal_kind: PrincipalKind::Agent as i32,
                    principal_id: agent_id(agent),
                    on_behalf_of_human_id: human_id(owner_of(agent)),
                    service_id: SERVICE_ID.into(),
                    tool: TOOLS[self.rng.random_range(0..TOOLS.len())].into(),
                    serving_node_id: 1,
                    mode: log::AccessMode::Async as i32,
                    decided_at_unix_ms: time_unix_ms,
                    requested_by: Some(actor(PrincipalKind::Service, SERVICE_ID)),
                    ..Default::default()
                }
            })
            .collect();
        self.by(
            fixtures::node(1),
            Kind::RecordAccessDecisions(log::RecordAccessDecisions { decisions }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_depends_on_the_seed_alone() {
        let batches = |seed| {
            let mut workload = Workload::new(seed, 10_000);
            (0..8).map(|_| workload.next_batch()).collect::<Vec<_>>()
        };
        assert_eq!(batches(7), batches(7));
        assert_ne!(batches(7), batches(8));
    }

    #[test]
    fn the_world_grows_with_the_target_within_bounds() {
        assert_eq!(World::for_events(10_000).humans, 20);
        assert_eq!(World::for_events(1_000_000).humans, 2_000);
        assert_eq!(World::for_events(10_000_000_000).humans, 20_000);
        assert_eq!(owner_of(5), 2);
    }
}
