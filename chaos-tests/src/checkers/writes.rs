//! W1: no acknowledged write is lost, and no write appears that was never attempted.

use std::collections::{BTreeMap, BTreeSet};

use super::{Verdict, Violations};
use crate::history::{History, OpF, Outcome};

pub const LOST_WRITES: &str = "lost_writes";

/// What happened to the attempts to register one id.
#[derive(Default)]
struct Attempts {
    /// The first acknowledged attempt's op index.
    acknowledged: Option<usize>,
    indeterminate: usize,
    refused: usize,
}

/// Every acknowledged `RegisterHuman` id must be in `final_ids` (the W1 humans read back from
/// the cluster after the run); every id there must have been attempted, and not only refused
/// (a refusal says the write was not applied). Indeterminate attempts may be in or out.
pub fn lost_writes(history: &History, final_ids: &BTreeSet<String>) -> Verdict {
    let mut attempts: BTreeMap<&str, Attempts> = BTreeMap::new();
    for op in history.ops() {
        let OpF::RegisterHuman { id } = &op.f else {
            continue;
        };
        let entry = attempts.entry(id.as_str()).or_default();
        match op.outcome {
            Outcome::Ok(_) => {
                entry.acknowledged.get_or_insert(op.index);
            }
            Outcome::Info { .. } => entry.indeterminate += 1,
            Outcome::Fail { .. } => entry.refused += 1,
        }
    }
    let mut violations = Violations::default();
    for (id, attempt) in &attempts {
        if let Some(index) = attempt.acknowledged
            && !final_ids.contains(*id)
        {
            violations.push(format!(
                "lost: human {id} was acknowledged (op #{index}) but is not in the final state"
            ));
        }
    }
    for id in final_ids {
        match attempts.get(id.as_str()) {
            None => violations.push(format!(
                "phantom: human {id} is in the final state but was never attempted"
            )),
            Some(attempt) if attempt.acknowledged.is_none() && attempt.indeterminate == 0 => {
                violations.push(format!(
                    "phantom: human {id} is in the final state but its {} attempt(s) were all refused as not applied",
                    attempt.refused
                ));
            }
            Some(_) => {}
        }
    }
    let acknowledged = attempts
        .values()
        .filter(|a| a.acknowledged.is_some())
        .count();
    let indeterminate_only = attempts
        .values()
        .filter(|a| a.acknowledged.is_none() && a.indeterminate > 0)
        .count();
    let summary = format!(
        "{} ids attempted: {acknowledged} acknowledged, {indeterminate_only} only indeterminate; {} in the final state",
        attempts.len(),
        final_ids.len()
    );
    violations.verdict(LOST_WRITES, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{ack, fail, history, info, op};

    fn register(id: &str, outcome: crate::history::Outcome) -> crate::history::Op {
        op(OpF::RegisterHuman { id: id.into() }, 0, 10, outcome)
    }

    #[test]
    fn table() {
        // (name, ops, final ids, ok, violations)
        let cases = vec![
            (
                "acknowledged present, indeterminate either way, refused absent",
                vec![
                    register("a", ack()),
                    register("b", info("DEADLINE_EXCEEDED", "deadline")),
                    register("c", info("unreachable", "reset")),
                    register("d", fail("UNAVAILABLE", "NOT_LEADER")),
                ],
                vec!["a", "b"],
                true,
                0,
            ),
            (
                "retried after a refusal and acknowledged",
                vec![
                    register("a", fail("UNAVAILABLE", "NOT_LEADER")),
                    register("a", ack()),
                ],
                vec!["a"],
                true,
                0,
            ),
            (
                "acknowledged write lost",
                vec![register("a", ack()), register("b", ack())],
                vec!["a"],
                false,
                1,
            ),
            (
                "phantom never attempted",
                vec![register("a", ack())],
                vec!["a", "z"],
                false,
                1,
            ),
            (
                "refused write present",
                vec![register("a", fail("UNAVAILABLE", "NOT_LEADER"))],
                vec!["a"],
                false,
                1,
            ),
        ];
        for (name, ops, final_ids, ok, violations) in cases {
            let final_ids: BTreeSet<String> = final_ids.into_iter().map(String::from).collect();
            let verdict = lost_writes(&history(ops), &final_ids);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
            assert_eq!(verdict.checker, LOST_WRITES);
        }
    }

    #[test]
    fn a_lost_write_names_the_id_and_op() {
        let verdict = lost_writes(&history(vec![register("h-7", ack())]), &BTreeSet::new());
        assert_eq!(
            verdict.violations,
            vec!["lost: human h-7 was acknowledged (op #0) but is not in the final state"]
        );
    }
}
