//! W2: a revoke, once acknowledged, is honoured by every LINEARIZABLE verify begun after.

use std::collections::BTreeMap;

use super::{Verdict, Violations};
use crate::history::{Consistency, History, OpF, Outcome, Value, VerifyResult};

pub const REVOCATIONS_HONOURED: &str = "revocations_honoured";

/// For every jti whose revoke was acknowledged at `complete_ns = t` (the earliest such), no
/// LINEARIZABLE verify of it invoked after `t` returned Active. Weaker reads may be stale.
pub fn revocations_honoured(history: &History) -> Verdict {
    // jti -> (ack time, op index) of its earliest acknowledged revoke.
    let mut revoked: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for op in history.ops() {
        if let (OpF::Revoke { jti }, Outcome::Ok(_)) = (&op.f, &op.outcome) {
            let earliest = revoked.entry(jti).or_insert((op.complete_ns, op.index));
            if op.complete_ns < earliest.0 {
                *earliest = (op.complete_ns, op.index);
            }
        }
    }
    let mut violations = Violations::default();
    let mut judged = 0;
    for op in history.ops() {
        let OpF::Verify {
            jti,
            consistency: Consistency::Linearizable,
        } = &op.f
        else {
            continue;
        };
        let Outcome::Ok(Value::Verified { result }) = &op.outcome else {
            continue;
        };
        let Some(&(acked_ns, revoke)) = revoked.get(jti.as_str()) else {
            continue;
        };
        if op.invoke_ns <= acked_ns {
            continue;
        }
        judged += 1;
        if *result == VerifyResult::Active {
            violations.push(format!(
                "jti {jti}: verify #{} on node {} invoked at {} ns returned Active; revoke #{revoke} was acknowledged at {acked_ns} ns",
                op.index, op.node, op.invoke_ns
            ));
        }
    }
    let summary = format!(
        "{} acknowledged revocations; {judged} LINEARIZABLE verifies begun after one",
        revoked.len()
    );
    violations.verdict(REVOCATIONS_HONOURED, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{ack, history, info, op, verified};
    use crate::history::Op;

    fn revoke(from: u64, to: u64, outcome: Outcome) -> Op {
        op(OpF::Revoke { jti: "j".into() }, from, to, outcome)
    }

    fn verify(consistency: Consistency, from: u64, to: u64, result: VerifyResult) -> Op {
        let f = OpF::Verify {
            jti: "j".into(),
            consistency,
        };
        op(f, from, to, verified(result))
    }

    #[test]
    fn table() {
        use Consistency::{Linearizable, Local};
        use VerifyResult::{Active, Revoked};
        // (name, ops, ok, violations)
        let cases = vec![
            (
                "read after ack sees Revoked",
                vec![revoke(10, 20, ack()), verify(Linearizable, 30, 40, Revoked)],
                true,
                0,
            ),
            (
                "read concurrent with the revoke may see Active",
                vec![revoke(10, 20, ack()), verify(Linearizable, 15, 40, Active)],
                true,
                0,
            ),
            (
                "stale LOCAL read is allowed",
                vec![revoke(10, 20, ack()), verify(Local, 30, 40, Active)],
                true,
                0,
            ),
            (
                "indeterminate revoke promises nothing",
                vec![
                    revoke(10, 20, info("DEADLINE_EXCEEDED", "deadline")),
                    verify(Linearizable, 30, 40, Active),
                ],
                true,
                0,
            ),
            (
                "read after ack sees Active",
                vec![revoke(10, 20, ack()), verify(Linearizable, 30, 40, Active)],
                false,
                1,
            ),
            (
                "the earliest acknowledged revoke counts",
                vec![
                    revoke(10, 20, ack()),
                    revoke(50, 60, ack()),
                    verify(Linearizable, 30, 40, Active),
                ],
                false,
                1,
            ),
        ];
        for (name, ops, ok, violations) in cases {
            let verdict = revocations_honoured(&history(ops));
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
        }
    }
}
