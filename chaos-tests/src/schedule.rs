//! Seeded fault schedules: which nemesis acts when, reproducible from a seed.
//!
//! A schedule names its targets by role ([`Target::Leader`], [`Target::Follower`]), because the
//! leader is known only at run time; the nemesis resolves a role to a node when it acts. Heals
//! ([`Action::Resume`], [`Action::Heal`], [`Action::RestartDead`], [`Action::FreeDisk`],
//! [`Action::UnskewClocks`]) name no target: by then the leader may be another node, and a heal
//! undoes every fault of its class wherever it is.
//!
//! Generation draws only from [`ChaCha8Rng`] (whose stream is fixed across platforms and crate
//! versions, unlike `StdRng`) through this module's own integer sampling (so a change to `rand`'s
//! distributions cannot change a schedule): the same seed and arguments give the same bytes.

use std::collections::BTreeSet;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// Followers in the three-node cluster: [`Target::Follower`] takes 0 or 1 (by node id order).
pub const FOLLOWERS: u8 = 2;
/// The clock skew a [`NemesisKind::ClockSkew`] applies, either way.
pub const CLOCK_SKEW_S: i64 = 30;
/// A failpoint crash fires after 1 to this many applies on its node.
pub const MAX_FAILPOINT_APPLIES: u32 = 20;
/// The most steps a schedule file may hold (a sanity bound on input).
pub const MAX_STEPS: usize = 10_000;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisKind {
    KillLeader,
    KillAll,
    PauseLeader,
    IsolateLeader,
    OneWayPartition,
    ClockSkew,
    FailpointCrash,
    DiskFullFollower,
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 8] = [
        NemesisKind::KillLeader,
        NemesisKind::KillAll,
        NemesisKind::PauseLeader,
        NemesisKind::IsolateLeader,
        NemesisKind::OneWayPartition,
        NemesisKind::ClockSkew,
        NemesisKind::FailpointCrash,
        NemesisKind::DiskFullFollower,
    ];

    /// The kind's name as written in schedules and scenario names.
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::KillLeader => "kill_leader",
            NemesisKind::KillAll => "kill_all",
            NemesisKind::PauseLeader => "pause_leader",
            NemesisKind::IsolateLeader => "isolate_leader",
            NemesisKind::OneWayPartition => "one_way_partition",
            NemesisKind::ClockSkew => "clock_skew",
            NemesisKind::FailpointCrash => "failpoint_crash",
            NemesisKind::DiskFullFollower => "disk_full_follower",
        }
    }
}

/// A node named by its role when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Leader,
    /// The n-th follower (0-based, by node id) of the leader at that moment.
    Follower(u8),
    All,
}

/// What the nemesis does at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// SIGKILL.
    Kill { target: Target },
    /// SIGSTOP.
    Pause { target: Target },
    /// SIGCONT every paused node.
    Resume,
    /// Drop all traffic between the target and the other nodes (clients still reach it).
    Isolate { target: Target },
    /// Drop traffic from `from` to `to` only.
    OneWay { from: Target, to: Target },
    /// Restart the target with its clock moved by `offset_s` (libfaketime).
    SkewClock { target: Target, offset_s: i64 },
    /// Restart every skewed node on the true clock.
    UnskewClocks,
    /// Restart the target with a failpoint that crashes it between an apply's commit and its
    /// reply, after `after_applies` applies.
    ArmFailpoint { target: Target, after_applies: u32 },
    /// Fill the target's data filesystem.
    FillDisk { target: Target },
    /// Remove every filler file.
    FreeDisk,
    /// Remove every partition rule.
    Heal,
    /// Start every node that is not running (failpoints disarmed).
    RestartDead,
}

/// The kinds of damage a schedule can leave open, each closed by its own heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    /// Killed, or armed to crash: closed by [`Action::RestartDead`].
    Dead,
    Paused,
    Partitioned,
    Skewed,
    DiskFull,
}

impl Action {
    /// The damage this action opens (a fault) or closes (a heal).
    pub fn class(&self) -> FaultClass {
        match self {
            Action::Kill { .. } | Action::ArmFailpoint { .. } | Action::RestartDead => {
                FaultClass::Dead
            }
            Action::Pause { .. } | Action::Resume => FaultClass::Paused,
            Action::Isolate { .. } | Action::OneWay { .. } | Action::Heal => {
                FaultClass::Partitioned
            }
            Action::SkewClock { .. } | Action::UnskewClocks => FaultClass::Skewed,
            Action::FillDisk { .. } | Action::FreeDisk => FaultClass::DiskFull,
        }
    }

    pub fn is_heal(&self) -> bool {
        matches!(
            self,
            Action::Resume
                | Action::Heal
                | Action::RestartDead
                | Action::FreeDisk
                | Action::UnskewClocks
        )
    }

    /// The targets the action names (none for a heal).
    pub fn targets(&self) -> Vec<Target> {
        match *self {
            Action::Kill { target }
            | Action::Pause { target }
            | Action::Isolate { target }
            | Action::SkewClock { target, .. }
            | Action::ArmFailpoint { target, .. }
            | Action::FillDisk { target } => vec![target],
            Action::OneWay { from, to } => vec![from, to],
            _ => Vec::new(),
        }
    }
}

/// One action at a time since the run's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub action: Action,
}

/// Why a schedule file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("schedule json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schedule has {steps} steps, more than {MAX_STEPS}")]
    TooManySteps { steps: usize },
    #[error("schedule step {step}: {why}")]
    BadStep { step: usize, why: &'static str },
    #[error("schedule leaves faults unhealed at its end: {open:?}")]
    Unhealed { open: Vec<FaultClass> },
}

/// A run's faults: what happens when, and the seed and scenario that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    /// The kinds composed, joined by `+` ("quiet" for none).
    pub scenario: String,
    pub duration_ms: u64,
    /// In time order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Alternating quiet and fault phases over `duration_ms`, each phase's length drawn from
    /// `fault_window` (min, max ms; swapped if reversed, at least 1 ms). Each fault phase applies
    /// one kind, taking the kinds in a seeded order that uses every kind once before any repeats,
    /// and ends with that kind's heal. The first fault waits one quiet phase (the cluster settles),
    /// and the last heal leaves at least the window's minimum before the end (recovery can be
    /// seen). No kinds, or no room for one phase, gives a schedule without steps.
    pub fn generate(
        seed: u64,
        kinds: &[NemesisKind],
        duration_ms: u64,
        fault_window: (u64, u64),
    ) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (min_ms, max_ms) = normalized(fault_window);
        let kinds: Vec<NemesisKind> = kinds
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut steps = Vec::new();
        let mut order: Vec<NemesisKind> = Vec::new();
        let mut fault_at = in_range(&mut rng, min_ms, max_ms);
        while !kinds.is_empty() {
            let heal_at = fault_at.saturating_add(in_range(&mut rng, min_ms, max_ms));
            if heal_at.saturating_add(min_ms) > duration_ms {
                break;
            }
            if order.is_empty() {
                order = shuffled(&mut rng, &kinds);
            }
            let kind = order.remove(0);
            let fault = fault_action(&mut rng, kind);
            steps.push(Step {
                at_ms: fault_at,
                action: fault,
            });
            steps.push(Step {
                at_ms: heal_at,
                action: heal_action(kind),
            });
            fault_at = heal_at.saturating_add(in_range(&mut rng, min_ms, max_ms));
        }
        let scenario = if kinds.is_empty() {
            "quiet".to_owned()
        } else {
            let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
            names.join("+")
        };
        Schedule {
            seed,
            scenario,
            duration_ms,
            steps,
        }
    }

    /// Canonical pretty JSON with a final newline: the same schedule gives the same bytes.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        // Only integers, plain strings and unit-like enums: serialising cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).expect("a schedule serialises");
        bytes.push(b'\n');
        bytes
    }

    pub fn write_file(&self, path: &Path) -> Result<(), ScheduleError> {
        std::fs::write(path, self.to_file_bytes())?;
        Ok(())
    }

    /// Parses and [validates](Schedule::validate) a schedule file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Schedule, ScheduleError> {
        let schedule: Schedule = serde_json::from_slice(bytes)?;
        schedule.validate()?;
        Ok(schedule)
    }

    pub fn from_file(path: &Path) -> Result<Schedule, ScheduleError> {
        Schedule::from_bytes(&std::fs::read(path)?)
    }

    /// Steps in time order within the duration, followers that exist, skews within bounds,
    /// and every fault healed by the end.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.steps.len() > MAX_STEPS {
            return Err(ScheduleError::TooManySteps {
                steps: self.steps.len(),
            });
        }
        let mut previous_ms = 0;
        for (step, Step { at_ms, action }) in self.steps.iter().enumerate() {
            let bad = |why| Err(ScheduleError::BadStep { step, why });
            if *at_ms < previous_ms {
                return bad("earlier than the step before it");
            }
            if *at_ms > self.duration_ms {
                return bad("after the schedule's end");
            }
            if action
                .targets()
                .iter()
                .any(|target| !target_exists(*target))
            {
                return bad("names a follower the cluster does not have");
            }
            if let Action::SkewClock { offset_s, .. } = action
                && offset_s.abs() > CLOCK_SKEW_S
            {
                return bad("skews the clock further than the bound");
            }
            previous_ms = *at_ms;
        }
        let open = self.unhealed_at_end();
        if !open.is_empty() {
            return Err(ScheduleError::Unhealed { open });
        }
        Ok(())
    }

    /// The fault classes still open after the last step.
    pub fn unhealed_at_end(&self) -> Vec<FaultClass> {
        let mut open = BTreeSet::new();
        for step in &self.steps {
            if step.action.is_heal() {
                open.remove(&step.action.class());
            } else {
                open.insert(step.action.class());
            }
        }
        open.into_iter().collect()
    }

    /// The instants (ms) at which a heal leaves no fault open: where liveness is measured from.
    pub fn heal_times_ms(&self) -> Vec<u64> {
        let mut open = BTreeSet::new();
        let mut times = Vec::new();
        for step in &self.steps {
            if step.action.is_heal() {
                open.remove(&step.action.class());
                if open.is_empty() && times.last() != Some(&step.at_ms) {
                    times.push(step.at_ms);
                }
            } else {
                open.insert(step.action.class());
            }
        }
        times
    }
}

fn target_exists(target: Target) -> bool {
    match target {
        Target::Follower(n) => n < FOLLOWERS,
        Target::Leader | Target::All => true,
    }
}

fn normalized((a, b): (u64, u64)) -> (u64, u64) {
    (a.min(b).max(1), a.max(b).max(1))
}

/// Uniform in `0..bound` (bound > 0) by rejection from whole u64 draws: no modulo bias, and no
/// dependence on `rand`'s sampling algorithms.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    debug_assert!(bound > 0);
    let bound = bound.max(1);
    // The largest multiple of `bound` that fits; draws at or past it would favour small values.
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let draw = rng.next_u64();
        if draw < zone {
            return draw % bound;
        }
    }
}

/// Uniform in `low..=high` (low <= high).
fn in_range(rng: &mut ChaCha8Rng, low: u64, high: u64) -> u64 {
    match (high - low).checked_add(1) {
        Some(width) => low + below(rng, width),
        None => rng.next_u64(),
    }
}

fn coin(rng: &mut ChaCha8Rng) -> bool {
    below(rng, 2) == 1
}

/// The kinds in a seeded order (Fisher-Yates).
fn shuffled(rng: &mut ChaCha8Rng, kinds: &[NemesisKind]) -> Vec<NemesisKind> {
    let mut order = kinds.to_vec();
    for last in (1..order.len()).rev() {
        let pick = below(rng, last as u64 + 1) as usize;
        order.swap(last, pick);
    }
    order
}

fn any_follower(rng: &mut ChaCha8Rng) -> Target {
    Target::Follower(below(rng, u64::from(FOLLOWERS)) as u8)
}

fn fault_action(rng: &mut ChaCha8Rng, kind: NemesisKind) -> Action {
    match kind {
        NemesisKind::KillLeader => Action::Kill {
            target: Target::Leader,
        },
        NemesisKind::KillAll => Action::Kill {
            target: Target::All,
        },
        NemesisKind::PauseLeader => Action::Pause {
            target: Target::Leader,
        },
        NemesisKind::IsolateLeader => Action::Isolate {
            target: Target::Leader,
        },
        NemesisKind::OneWayPartition => {
            let follower = any_follower(rng);
            if coin(rng) {
                Action::OneWay {
                    from: Target::Leader,
                    to: follower,
                }
            } else {
                Action::OneWay {
                    from: follower,
                    to: Target::Leader,
                }
            }
        }
        NemesisKind::ClockSkew => {
            let target = if coin(rng) {
                Target::Leader
            } else {
                any_follower(rng)
            };
            let offset_s = if coin(rng) {
                CLOCK_SKEW_S
            } else {
                -CLOCK_SKEW_S
            };
            Action::SkewClock { target, offset_s }
        }
        NemesisKind::FailpointCrash => Action::ArmFailpoint {
            // The failpoint sits between an apply's commit and the reply: the leader replies.
            target: Target::Leader,
            after_applies: 1 + below(rng, u64::from(MAX_FAILPOINT_APPLIES)) as u32,
        },
        NemesisKind::DiskFullFollower => Action::FillDisk {
            target: any_follower(rng),
        },
    }
}

fn heal_action(kind: NemesisKind) -> Action {
    match kind {
        NemesisKind::KillLeader | NemesisKind::KillAll | NemesisKind::FailpointCrash => {
            Action::RestartDead
        }
        NemesisKind::PauseLeader => Action::Resume,
        NemesisKind::IsolateLeader | NemesisKind::OneWayPartition => Action::Heal,
        NemesisKind::ClockSkew => Action::UnskewClocks,
        NemesisKind::DiskFullFollower => Action::FreeDisk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION_MS: u64 = 120_000;
    const WINDOW: (u64, u64) = (2_000, 8_000);

    fn all_kinds(seed: u64) -> Schedule {
        Schedule::generate(seed, &NemesisKind::ALL, DURATION_MS, WINDOW)
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(
                all_kinds(seed).to_file_bytes(),
                all_kinds(seed).to_file_bytes()
            );
            assert_ne!(
                all_kinds(seed).to_file_bytes(),
                all_kinds(seed ^ 1).to_file_bytes()
            );
        }
    }

    #[test]
    fn every_fault_is_healed_steps_are_ordered_and_phases_alternate() {
        for seed in 0..200 {
            let schedule = all_kinds(seed);
            assert!(schedule.validate().is_ok(), "seed {seed}: {schedule:?}");
            assert!(schedule.unhealed_at_end().is_empty());
            assert!(schedule.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            // Fault, heal, fault, heal: never two faults open at once, each heal its fault's.
            for pair in schedule.steps.chunks(2) {
                let [fault, heal] = pair else {
                    panic!("seed {seed}: a fault without its heal");
                };
                assert!(!fault.action.is_heal() && heal.action.is_heal());
                assert_eq!(fault.action.class(), heal.action.class());
                assert!(heal.at_ms - fault.at_ms >= WINDOW.0);
                assert!(heal.at_ms - fault.at_ms <= WINDOW.1);
            }
            let last_heal = schedule.steps.last().map_or(0, |step| step.at_ms);
            assert!(
                last_heal + WINDOW.0 <= DURATION_MS,
                "seed {seed}: no quiet tail"
            );
            assert!(
                schedule
                    .steps
                    .first()
                    .is_none_or(|step| step.at_ms >= WINDOW.0)
            );
        }
    }

    #[test]
    fn composed_kinds_each_appear_before_any_repeats() {
        let schedule = all_kinds(7);
        let faults: Vec<NemesisKind> = schedule
            .steps
            .iter()
            .filter(|step| !step.action.is_heal())
            .map(|step| kind_of(&step.action))
            .collect();
        assert!(faults.len() > NemesisKind::ALL.len(), "{schedule:?}");
        let first_round: BTreeSet<NemesisKind> = faults
            .iter()
            .take(NemesisKind::ALL.len())
            .copied()
            .collect();
        assert_eq!(first_round.len(), NemesisKind::ALL.len(), "{schedule:?}");
        assert_eq!(
            schedule.scenario,
            "kill_leader+kill_all+pause_leader+isolate_leader+one_way_partition+clock_skew+failpoint_crash+disk_full_follower"
        );
    }

    /// Which kind produced a fault action (tests only: kill targets tell the two kills apart).
    fn kind_of(action: &Action) -> NemesisKind {
        match action {
            Action::Kill {
                target: Target::All,
            } => NemesisKind::KillAll,
            Action::Kill { .. } => NemesisKind::KillLeader,
            Action::Pause { .. } => NemesisKind::PauseLeader,
            Action::Isolate { .. } => NemesisKind::IsolateLeader,
            Action::OneWay { .. } => NemesisKind::OneWayPartition,
            Action::SkewClock { .. } => NemesisKind::ClockSkew,
            Action::ArmFailpoint { .. } => NemesisKind::FailpointCrash,
            Action::FillDisk { .. } => NemesisKind::DiskFullFollower,
            heal => panic!("{heal:?} is a heal"),
        }
    }

    #[test]
    fn one_kind_uses_its_own_fault_and_heal() {
        let schedule = Schedule::generate(3, &[NemesisKind::PauseLeader], 60_000, (1_000, 3_000));
        assert_eq!(schedule.scenario, "pause_leader");
        assert!(schedule.steps.len() >= 2);
        for pair in schedule.steps.chunks(2) {
            assert_eq!(
                (pair[0].action, pair[1].action),
                (
                    Action::Pause {
                        target: Target::Leader
                    },
                    Action::Resume
                )
            );
        }
    }

    #[test]
    fn no_kinds_or_no_room_gives_no_steps() {
        let quiet = Schedule::generate(1, &[], DURATION_MS, WINDOW);
        assert_eq!((quiet.scenario.as_str(), quiet.steps.len()), ("quiet", 0));
        let cramped = Schedule::generate(1, &[NemesisKind::KillAll], 5_000, WINDOW);
        assert!(cramped.steps.is_empty());
    }

    #[test]
    fn file_round_trip_and_validation() {
        let schedule = all_kinds(11);
        let bytes = schedule.to_file_bytes();
        assert_eq!(Schedule::from_bytes(&bytes).expect("valid"), schedule);
        let path =
            std::env::temp_dir().join(format!("warrant-schedule-{}.json", std::process::id()));
        schedule.write_file(&path).expect("writes");
        let read_back = Schedule::from_file(&path).expect("reads");
        std::fs::remove_file(&path).expect("removes");
        assert_eq!(read_back, schedule);

        let mut unhealed = schedule.clone();
        unhealed.steps.pop();
        assert!(matches!(
            unhealed.validate(),
            Err(ScheduleError::Unhealed { .. })
        ));
        let mut unordered = schedule.clone();
        unordered.steps.swap(0, 1);
        assert!(matches!(
            unordered.validate(),
            Err(ScheduleError::BadStep { step: 1, .. })
        ));
        let mut ghost = schedule;
        ghost.steps[0].action = Action::FillDisk {
            target: Target::Follower(FOLLOWERS),
        };
        assert!(matches!(
            ghost.validate(),
            Err(ScheduleError::BadStep { step: 0, .. })
        ));
    }

    #[test]
    fn heal_times_are_where_no_fault_is_open() {
        let schedule = Schedule {
            seed: 0,
            scenario: "hand".into(),
            duration_ms: 100,
            steps: vec![
                Step {
                    at_ms: 10,
                    action: Action::Pause {
                        target: Target::Leader,
                    },
                },
                Step {
                    at_ms: 12,
                    action: Action::Isolate {
                        target: Target::Leader,
                    },
                },
                Step {
                    at_ms: 20,
                    action: Action::Resume,
                },
                Step {
                    at_ms: 30,
                    action: Action::Heal,
                },
                Step {
                    at_ms: 50,
                    action: Action::Kill {
                        target: Target::All,
                    },
                },
                Step {
                    at_ms: 60,
                    action: Action::RestartDead,
                },
            ],
        };
        assert_eq!(schedule.heal_times_ms(), vec![30, 60]);
    }

    #[test]
    fn sampling_is_uniform_enough_and_in_range() {
        const DRAWS: u64 = 30_000;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut counts = [0u64; 3];
        for _ in 0..DRAWS {
            counts[below(&mut rng, 3) as usize] += 1;
        }
        assert!(
            counts
                .iter()
                .all(|&count| count.abs_diff(DRAWS / 3) < DRAWS / 30),
            "{counts:?}"
        );
        assert!((0..1000).all(|_| (5..=9).contains(&in_range(&mut rng, 5, 9))));
        assert_eq!(in_range(&mut rng, 4, 4), 4);
    }

    /// Pinned output: a change here means old seeds no longer reproduce their runs (a
    /// rand_chacha stream change, or a change to this module's sampling). Only change it on
    /// purpose, and say so where old schedules are kept.
    #[test]
    fn a_seed_reproduces_the_same_schedule_across_versions() {
        let schedule = Schedule::generate(
            42,
            &[NemesisKind::OneWayPartition, NemesisKind::ClockSkew],
            30_000,
            (1_000, 4_000),
        );
        let skew = |target, offset_s| Action::SkewClock { target, offset_s };
        let one_way = |n| Action::OneWay {
            from: Target::Follower(n),
            to: Target::Leader,
        };
        let expected = vec![
            (1001, skew(Target::Follower(0), -30)),
            (3265, Action::UnskewClocks),
            (5031, one_way(0)),
            (7362, Action::Heal),
            (10945, one_way(1)),
            (14495, Action::Heal),
            (16469, skew(Target::Leader, 30)),
            (18825, Action::UnskewClocks),
            (21226, one_way(1)),
            (24110, Action::Heal),
            (26692, skew(Target::Leader, 30)),
            (28240, Action::UnskewClocks),
        ];
        let steps: Vec<(u64, Action)> = schedule
            .steps
            .iter()
            .map(|step| (step.at_ms, step.action))
            .collect();
        assert_eq!(steps, expected);
        assert!(
            String::from_utf8(schedule.to_file_bytes())
                .expect("JSON is UTF-8")
                .contains("\"action\": \"skew_clock\",\n        \"target\": {\n          \"follower\": 0\n        },\n        \"offset_s\": -30")
        );
    }
}
