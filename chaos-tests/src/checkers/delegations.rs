//! W3: no delegation that widens its parent's scopes or closes a cycle is ever acknowledged.

use super::{Verdict, Violations};
use crate::history::{History, OpF, Outcome};

pub const DELEGATIONS_NEVER_WIDEN: &str = "delegations_never_widen";

/// Every `InvalidDelegation` attempt must not have been acknowledged, and none may have
/// committed: `committed_invalid` lists the idempotency keys of the attempts found in the final
/// log as created delegations (the caller reads them back), which settles the indeterminate
/// ones too.
pub fn delegations_never_widen(history: &History, committed_invalid: &[String]) -> Verdict {
    let mut violations = Violations::default();
    let (mut attempts, mut refused, mut indeterminate) = (0, 0, 0);
    for op in history.ops() {
        let OpF::InvalidDelegation {
            parent,
            scopes,
            fault,
        } = &op.f
        else {
            continue;
        };
        attempts += 1;
        match &op.outcome {
            Outcome::Ok(value) => violations.push(format!(
                "{fault:?} delegation from {parent} with scopes {scopes:?} was acknowledged ({value:?}): #{} on node {}",
                op.index, op.node
            )),
            Outcome::Fail { .. } => refused += 1,
            Outcome::Info { .. } => indeterminate += 1,
        }
    }
    for key in committed_invalid {
        violations.push(format!(
            "a delegation that had to be refused is in the log (idempotency key {key})"
        ));
    }
    let summary = format!(
        "{attempts} attempts that must be refused: {refused} refused, {indeterminate} indeterminate, {} in the final log",
        committed_invalid.len()
    );
    violations.verdict(DELEGATIONS_NEVER_WIDEN, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{fail, history, info, op};
    use crate::history::{DelegationFault, Op, Value};

    fn attempt(fault: DelegationFault, outcome: Outcome) -> Op {
        let f = OpF::InvalidDelegation {
            parent: "d1".into(),
            scopes: vec!["admin".into()],
            fault,
        };
        op(f, 0, 10, outcome)
    }

    fn legal() -> Op {
        let f = OpF::CreateDelegation {
            parent: "h1".into(),
            scopes: vec!["read".into()],
        };
        op(
            f,
            0,
            10,
            Outcome::Ok(Value::DelegationCreated { id: "d1".into() }),
        )
    }

    #[test]
    fn table() {
        let accepted = || Outcome::Ok(Value::DelegationCreated { id: "d9".into() });
        // (name, ops, ok, violations)
        let cases = vec![
            (
                "refused or indeterminate, legal ones acknowledged",
                vec![
                    legal(),
                    attempt(
                        DelegationFault::Widen,
                        fail("PERMISSION_DENIED", "SCOPE_WIDENING"),
                    ),
                    attempt(DelegationFault::Cycle, info("unreachable", "reset")),
                ],
                true,
                0,
            ),
            (
                "widening acknowledged",
                vec![legal(), attempt(DelegationFault::Widen, accepted())],
                false,
                1,
            ),
            (
                "cycle acknowledged",
                vec![attempt(DelegationFault::Cycle, accepted())],
                false,
                1,
            ),
        ];
        for (name, ops, ok, violations) in cases {
            let verdict = delegations_never_widen(&history(ops), &[]);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
        }
        let indeterminate = vec![attempt(
            DelegationFault::Cycle,
            info("unreachable", "reset"),
        )];
        let verdict = delegations_never_widen(&history(indeterminate), &["chaos-invalid-1".into()]);
        assert!(
            !verdict.ok,
            "an indeterminate attempt found committed: {verdict:?}"
        );
    }
}
