//! W6 and every workload: each failure is a known status with a documented reason.

use std::collections::BTreeSet;

use super::{Verdict, Violations};
use crate::history::{GRPC_CODE_NAMES, History, Op, OpF, Outcome, RECORDER_CODES};

pub const ERROR_CONTRACT: &str = "error_contract";

/// Every `Fail`/`Info` op must carry a code and a reason. A code in `transport_classes`
/// ("unreachable", "deadline": no status came back) is accepted with any reason; any other code
/// must be a gRPC status name other than OK, with a reason in `documented_reasons` (the
/// ErrorInfo reasons the API documents). Ops the recorder itself closed ([`RECORDER_CODES`])
/// are the harness's and are only counted. A `BadInput` that was acknowledged is a violation.
pub fn error_contract(
    history: &History,
    documented_reasons: &BTreeSet<String>,
    transport_classes: &BTreeSet<String>,
) -> Verdict {
    let mut violations = Violations::default();
    let (mut with_status, mut transport, mut harness) = (0, 0, 0);
    for op in history.ops() {
        if let (OpF::BadInput { case }, Outcome::Ok(value)) = (&op.f, &op.outcome) {
            violations.push(format!(
                "bad input {case} was accepted ({value:?}): #{}",
                op.index
            ));
            continue;
        }
        let Some((code, reason)) = op.outcome.error() else {
            continue;
        };
        if RECORDER_CODES.contains(&code) {
            harness += 1;
        } else if transport_classes.contains(code) {
            transport += 1;
            if reason.is_empty() {
                violations.push(breach(op, "a transport failure without a reason"));
            }
        } else {
            with_status += 1;
            if let Some(why) = status_breach(code, reason, documented_reasons) {
                violations.push(breach(op, why));
            }
        }
    }
    let summary = format!(
        "{} failed or indeterminate ops: {with_status} with a status, {transport} transport-level, {harness} closed by the harness",
        with_status + transport + harness
    );
    violations.verdict(ERROR_CONTRACT, summary)
}

fn status_breach(code: &str, reason: &str, documented: &BTreeSet<String>) -> Option<&'static str> {
    if code.is_empty() {
        Some("no code")
    } else if code == "OK" || !GRPC_CODE_NAMES.contains(&code) {
        Some("a code that is neither a gRPC error status nor an allowed transport class")
    } else if reason.is_empty() {
        Some("a status without a reason")
    } else if !documented.contains(reason) {
        Some("a reason the API does not document")
    } else {
        None
    }
}

fn breach(op: &Op, why: &str) -> String {
    format!("{why}: {op}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{ack, fail, history, info, op};
    use crate::history::ABANDONED_CODE;

    fn bad(case: &str, outcome: Outcome) -> Op {
        op(OpF::BadInput { case: case.into() }, 0, 10, outcome)
    }

    fn register(outcome: Outcome) -> Op {
        op(OpF::RegisterHuman { id: "h".into() }, 0, 10, outcome)
    }

    #[test]
    fn table() {
        let documented: BTreeSet<String> =
            ["FIELD_TOO_LONG", "NOT_LEADER"].map(String::from).into();
        let transport: BTreeSet<String> = ["unreachable", "deadline"].map(String::from).into();
        // (name, ops, ok, violations)
        let cases = vec![
            (
                "documented reasons, transport classes, harness codes",
                vec![
                    bad("long", fail("INVALID_ARGUMENT", "FIELD_TOO_LONG")),
                    register(info("UNAVAILABLE", "NOT_LEADER")),
                    register(info("unreachable", "connection refused")),
                    register(info(ABANDONED_CODE, "client ended")),
                    register(ack()),
                ],
                true,
                0,
            ),
            (
                "undocumented reason",
                vec![register(fail("INTERNAL", "PANIC"))],
                false,
                1,
            ),
            (
                "no reason",
                vec![register(fail("UNAVAILABLE", ""))],
                false,
                1,
            ),
            (
                "unknown code",
                vec![register(info("EXPLODED", "NOT_LEADER"))],
                false,
                1,
            ),
            (
                "OK is no failure code",
                vec![register(fail("OK", "NOT_LEADER"))],
                false,
                1,
            ),
            (
                "transport failure without reason",
                vec![register(info("deadline", ""))],
                false,
                1,
            ),
            ("bad input accepted", vec![bad("long", ack())], false, 1),
        ];
        for (name, ops, ok, violations) in cases {
            let verdict = error_contract(&history(ops), &documented, &transport);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
        }
    }
}
