//! The tiers' scenarios, in one place: what the CI tier runs (one nemesis each, short, fixed
//! seeds so a failure replays), what the canaries run, and the long tier's composed schedules.

use std::time::Duration;

use crate::{run::Scenario, schedule::NemesisKind};

/// How long a CI-tier scenario injects faults. Twelve runs of this, plus start-up, healing and
/// judging, keep the tier near 10 minutes on two cores.
pub const CI_DURATION: Duration = Duration::from_secs(24);
/// The shortest and longest fault of a CI-tier scenario, in ms.
pub const CI_FAULT_WINDOW: (u64, u64) = (3_000, 7_000);
/// The CI tier's seeds start here (plus the nemesis's position in [`NemesisKind::ALL`]).
pub const CI_SEED_BASE: u64 = 15_000;
/// How long a long-tier scenario runs.
pub const LONG_DURATION: Duration = Duration::from_secs(180);
/// The long tier's faults are longer.
pub const LONG_FAULT_WINDOW: (u64, u64) = (3_000, 15_000);

/// The product's crash failpoints (`warrant_raft::chaos::CRASH_POINTS`; a test checks the two
/// lists agree). The CI tier arms the one between apply commit and reply; the long tier picks one
/// by seed.
pub const CRASH_POINTS: [&str; 8] = [
    "log_append_before_fsync",
    "log_append_after_fsync",
    "vote_saved",
    "apply_before_commit",
    "apply_after_commit",
    "snapshot_built",
    "snapshot_installed",
    "purged",
];
/// The failpoint the CI tier crashes at.
pub const CI_CRASH_POINT: &str = "apply_after_commit";

/// A CI-tier scenario: `kind` alone.
pub fn ci_scenario(kind: NemesisKind) -> Scenario {
    let position = NemesisKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as u64;
    Scenario {
        name: format!("ci-{}", kind.name()),
        seed: CI_SEED_BASE + position,
        kinds: vec![kind],
        duration: CI_DURATION,
        fault_window: CI_FAULT_WINDOW,
        canary: None,
        subnet: 10 + position as u8,
        failpoint: CI_CRASH_POINT.to_string(),
    }
}

/// The canaries, each with the nemesis that exposes it.
pub const CANARIES: [(&str, NemesisKind); 4] = [
    ("ack_before_fsync", NemesisKind::KillAll),
    ("linearizable_read_local", NemesisKind::IsolateLeader),
    ("skip_follower_revocation", NemesisKind::PauseLeader),
    ("apply_reads_clock", NemesisKind::ClockSkew),
];

/// The scenario that must catch `canary` (planted on every node).
pub fn canary_scenario(canary: &str) -> Scenario {
    let position = CANARIES.iter().position(|(c, _)| *c == canary).unwrap_or(0);
    let kind = CANARIES[position].1;
    Scenario {
        name: format!("canary-{canary}"),
        seed: CI_SEED_BASE + 100 + position as u64,
        kinds: vec![kind],
        duration: CI_DURATION,
        fault_window: CI_FAULT_WINDOW,
        canary: Some(canary.to_string()),
        subnet: 40 + position as u8,
        failpoint: CI_CRASH_POINT.to_string(),
    }
}

/// The long tier: every nemesis alone at length, then all of them composed, from `seed`.
pub fn long_scenarios(seed: u64, duration: Duration) -> Vec<Scenario> {
    let mut scenarios: Vec<Scenario> = NemesisKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| Scenario {
            name: format!("long-{}", kind.name()),
            seed: seed + i as u64,
            kinds: vec![*kind],
            duration,
            fault_window: LONG_FAULT_WINDOW,
            canary: None,
            subnet: 100 + i as u8,
            failpoint: CRASH_POINTS[(seed as usize + i) % CRASH_POINTS.len()].to_string(),
        })
        .collect();
    scenarios.push(Scenario {
        name: "long-composed".into(),
        seed: seed + 100,
        kinds: NemesisKind::ALL.to_vec(),
        duration: duration * 2,
        fault_window: LONG_FAULT_WINDOW,
        canary: None,
        subnet: 120,
        failpoint: CRASH_POINTS[(seed as usize + 100) % CRASH_POINTS.len()].to_string(),
    });
    scenarios
}
