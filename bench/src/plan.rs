//! What a `cluster-bench` run measures, by mode: the scenarios, the concurrencies, how long
//! and how often.

use std::time::Duration;

/// How thorough a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// At most [`QUICK_BUDGET`]: concurrencies 1 and 64, one repeat.
    Quick,
    /// At most [`FULL_BUDGET`]: concurrencies 1, 16, 64 and 256, three repeats.
    Full,
}

/// The quick mode's time limit (issue 13).
pub const QUICK_BUDGET: Duration = Duration::from_secs(3 * 60);
/// The full mode's time limit (issue 13).
pub const FULL_BUDGET: Duration = Duration::from_secs(15 * 60);
/// Client connections per run, at most: enough HTTP/2 connections that one connection's
/// ordering does not serialise the load, few enough that 256 workers share them as a real
/// client pool would.
pub const CONNECTIONS_MAX: usize = 8;
/// The latency CDFs are plotted at this concurrency.
pub const CDF_CONCURRENCY: usize = 64;
/// etcd Put's value: the op-guide's `--val-size=256`, about a registered human's size.
pub const ETCD_VALUE_BYTES: usize = 256;
/// Tokens pre-issued for each Verify scenario (Verify picks them in turn).
pub const VERIFY_TOKENS: usize = 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub concurrencies: Vec<usize>,
    /// Each on fresh clusters.
    pub repeats: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Revocation-reach samples, measured in the first repeat under mixed load.
    pub reach_samples: usize,
    /// Failovers per repeat (the killed node is restarted in between).
    pub failovers_per_repeat: usize,
    /// Events imported in the first repeat before memory is read again, so memory is reported
    /// after a long history (issue 13: "after 10⁶ events"), beside its reading before.
    pub history_events: u64,
    pub budget: Duration,
    /// The scenarios run, in report order: all of [`SCENARIOS`] unless narrowed.
    pub scenarios: Vec<&'static Scenario>,
}

impl Plan {
    pub fn for_mode(mode: Mode) -> Plan {
        match mode {
            Mode::Quick => Plan {
                mode,
                concurrencies: vec![1, 64],
                repeats: 1,
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(2),
                reach_samples: 100,
                failovers_per_repeat: 1,
                history_events: 100_000,
                budget: QUICK_BUDGET,
                scenarios: SCENARIOS.iter().collect(),
            },
            Mode::Full => Plan {
                mode,
                concurrencies: vec![1, 16, 64, 256],
                repeats: 3,
                warmup: Duration::from_secs(1),
                measure: Duration::from_millis(2500),
                reach_samples: 1000,
                failovers_per_repeat: 1,
                history_events: 1_000_000,
                budget: FULL_BUDGET,
                scenarios: SCENARIOS.iter().collect(),
            },
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match (self.narrowed(), self.mode) {
            (true, _) => "narrowed",
            (false, Mode::Quick) => "quick",
            (false, Mode::Full) => "full",
        }
    }

    /// Only `scenarios` at `clients` (each list unchanged when empty), each measured for
    /// `measure` when given, and none of the revocation, history and failover steps: a run to
    /// profile one path under a steady load, not one to report.
    pub fn narrowed_to(
        mut self,
        scenarios: &[String],
        clients: &[usize],
        measure: Option<Duration>,
    ) -> anyhow::Result<Plan> {
        if !scenarios.is_empty() {
            self.scenarios = scenarios
                .iter()
                .map(|name| {
                    scenario(name).ok_or_else(|| {
                        let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                        anyhow::anyhow!("no scenario {name:?}; known: {}", known.join(", "))
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if !clients.is_empty() {
            self.concurrencies = clients.to_vec();
        }
        self.measure = measure.unwrap_or(self.measure);
        if self.narrowed() {
            self.reach_samples = 0;
            self.history_events = 0;
            self.failovers_per_repeat = 0;
        }
        Ok(self)
    }

    /// Whether this plan runs less than its mode.
    pub fn narrowed(&self) -> bool {
        let mode = Plan::for_mode(self.mode);
        self.scenarios.len() != mode.scenarios.len()
            || self.concurrencies != mode.concurrencies
            || self.measure != mode.measure
    }

    /// Load runs per repeat.
    pub fn runs_per_repeat(&self) -> usize {
        let targets: usize = self
            .scenarios
            .iter()
            .map(|s| 1 + usize::from(s.on_follower))
            .sum();
        targets * self.concurrencies.len()
    }
}

/// Client connections for `concurrency` workers.
pub fn connections(concurrency: usize) -> usize {
    concurrency.clamp(1, CONNECTIONS_MAX)
}

/// The in-process rate a scenario is set against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InProcess {
    /// One Ed25519 signature (aws-lc-rs, one core): what an issuance cannot beat.
    Sign,
    /// One Ed25519 verification.
    Verify,
    None,
}

/// The load a scenario drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    IssueSelf,
    IssueDelegated,
    Register,
    VerifyLinearizable,
    VerifyLocal,
    /// AuthzService.Authorize, decided in apply (the receipt committed before the reply).
    AuthorizeSync,
    /// Authorize decided on the serving node, the receipt committed after the reply.
    AuthorizeAsync,
    Mixed,
    /// grpc.health.v1 Check: the transport-and-client ceiling.
    Health,
    /// etcd KV.Put: the replicated-write anchor.
    EtcdPut,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub kind: Kind,
    /// Also run against a follower.
    pub on_follower: bool,
    pub in_process: InProcess,
    /// Set against etcd Put and the health ceiling at the same concurrency.
    pub compared: bool,
    /// Set against this scenario's rate at the same target and concurrency (issue 10's goals:
    /// Authorize ASYNC at least half Verify LOCAL's rate, SYNC at least half ASYNC's).
    pub baseline: Option<&'static str>,
}

pub const ETCD_PUT: &str = "etcd-put";
pub const HEALTH: &str = "health";
pub const VERIFY_LOCAL: &str = "verify-local";
pub const AUTHORIZE_ASYNC: &str = "authorize-async";

/// Every scenario, in report order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "issue-self",
        what: "TokenService.Issue by an agent for itself (a committed write and a signature)",
        kind: Kind::IssueSelf,
        on_follower: true,
        in_process: InProcess::Sign,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: "issue-delegated",
        what: "Issue under a depth-2 delegation (the chain checked at apply)",
        kind: Kind::IssueDelegated,
        on_follower: false,
        in_process: InProcess::Sign,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: "register",
        what: "IdentityService.RegisterHuman (a committed write that signs nothing)",
        kind: Kind::Register,
        on_follower: true,
        in_process: InProcess::None,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: "verify-linearizable",
        what: "TokenService.Verify LINEARIZABLE (read index through the leader)",
        kind: Kind::VerifyLinearizable,
        on_follower: true,
        in_process: InProcess::Verify,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: VERIFY_LOCAL,
        what: "Verify LOCAL (the node's applied state)",
        kind: Kind::VerifyLocal,
        on_follower: true,
        in_process: InProcess::Verify,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: AUTHORIZE_ASYNC,
        what: "AuthzService.Authorize ASYNC (decided on the node's applied state, receipt committed after the reply)",
        kind: Kind::AuthorizeAsync,
        on_follower: true,
        in_process: InProcess::Verify,
        compared: true,
        baseline: Some(VERIFY_LOCAL),
    },
    Scenario {
        name: "authorize-sync",
        what: "Authorize SYNC (decided in apply, receipt committed before the reply)",
        kind: Kind::AuthorizeSync,
        on_follower: false,
        in_process: InProcess::Verify,
        compared: true,
        baseline: Some(AUTHORIZE_ASYNC),
    },
    Scenario {
        name: "mixed",
        what: "90 % Verify LOCAL, 10 % Issue",
        kind: Kind::Mixed,
        on_follower: false,
        in_process: InProcess::Verify,
        compared: true,
        baseline: None,
    },
    Scenario {
        name: HEALTH,
        what: "grpc.health.v1.Health/Check against one node: the transport-and-client ceiling",
        kind: Kind::Health,
        on_follower: false,
        in_process: InProcess::None,
        compared: false,
        baseline: None,
    },
    Scenario {
        name: ETCD_PUT,
        what: "etcd 3.4 KV.Put (256-byte values) against its leader, three members, fsync on",
        kind: Kind::EtcdPut,
        on_follower: false,
        in_process: InProcess::None,
        compared: false,
        baseline: None,
    },
];

/// The scenario called `name`.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds a repeat spends outside load runs: starting both clusters, the fixture and its
    /// tokens, the anchors, a failover with the restart. Observed on the 2-vCPU machine: about
    /// 25 s; this leaves room.
    const REPEAT_OVERHEAD_S: f64 = 45.0;
    /// Seconds for the revocation-reach samples, each at most a few tens of ms under load.
    const REACH_S_PER_SAMPLE: f64 = 0.06;
    /// Seconds per load run beyond warmup and measure: connecting, draining.
    const RUN_OVERHEAD_S: f64 = 0.3;

    #[test]
    fn each_mode_fits_its_budget_by_estimate() {
        for mode in [Mode::Quick, Mode::Full] {
            let plan = Plan::for_mode(mode);
            let per_run = (plan.warmup + plan.measure).as_secs_f64() + RUN_OVERHEAD_S;
            let estimate = plan.repeats as f64
                * (REPEAT_OVERHEAD_S + per_run * plan.runs_per_repeat() as f64)
                + REACH_S_PER_SAMPLE * plan.reach_samples as f64;
            assert!(
                estimate < plan.budget.as_secs_f64(),
                "{mode:?}: about {estimate:.0} s, over {:?}",
                plan.budget
            );
        }
    }

    #[test]
    fn a_narrowed_plan_runs_only_what_it_names() {
        let full = Plan::for_mode(Mode::Full);
        assert!(!full.narrowed());
        let plan = full
            .clone()
            .narrowed_to(&["issue-self".to_string()], &[64], None)
            .expect("a known scenario");
        assert!(plan.narrowed());
        assert_eq!(plan.mode_name(), "narrowed");
        assert_eq!(
            plan.runs_per_repeat(),
            2,
            "leader and follower at 64 clients"
        );
        assert_eq!(
            (
                plan.reach_samples,
                plan.history_events,
                plan.failovers_per_repeat
            ),
            (0, 0, 0)
        );
        let unknown = full.narrowed_to(&["nope".to_string()], &[], None);
        assert!(unknown.is_err_and(|e| e.to_string().contains("issue-self")));
    }

    #[test]
    fn names_are_unique_and_found() {
        for s in SCENARIOS {
            assert_eq!(scenario(s.name).map(|f| f.kind), Some(s.kind));
        }
        assert!(scenario("nope").is_none());
        assert_eq!(connections(1), 1);
        assert_eq!(connections(256), CONNECTIONS_MAX);
    }
}
