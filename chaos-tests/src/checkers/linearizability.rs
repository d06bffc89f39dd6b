//! W2: the token lifecycle is linearizable, per jti.

use super::{Verdict, Violations};
use crate::history::History;
use crate::linearizable::{Limits, TokenModel, check_history};

pub const LINEARIZABLE: &str = "linearizable";

/// Runs the WGL checker with [`TokenModel`] over every jti, at the default [`Limits`]. A jti
/// the search could not finish is a failure too (it proves nothing), listed as unknown.
pub fn linearizable(history: &History) -> Verdict {
    linearizable_with(history, &Limits::default())
}

pub fn linearizable_with(history: &History, limits: &Limits) -> Verdict {
    let report = check_history(&TokenModel, history, limits);
    let mut violations = Violations::default();
    for counterexample in &report.not_linearizable {
        violations.push(counterexample.description.clone());
    }
    for (jti, why) in &report.unknown {
        violations.push(format!("key {jti}: {why}"));
    }
    let summary = format!(
        "{} jtis, {} ops: {} not linearizable, {} unknown",
        report.keys_checked,
        report.ops_checked,
        report.not_linearizable.len(),
        report.unknown.len()
    );
    violations.verdict(LINEARIZABLE, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{ack, history, op, verified};
    use crate::history::{Consistency, Op, OpF, Outcome, Value, VerifyResult};

    fn lifecycle(last_read: VerifyResult) -> Vec<Op> {
        let mut issue = op(
            OpF::Issue { agent: "a".into() },
            0,
            10,
            Outcome::Ok(Value::Issued { jti: "j".into() }),
        );
        issue.key = "j".into();
        let verify = OpF::Verify {
            jti: "j".into(),
            consistency: Consistency::Linearizable,
        };
        vec![
            issue,
            op(OpF::Revoke { jti: "j".into() }, 20, 30, ack()),
            op(verify, 40, 50, verified(last_read)),
        ]
    }

    #[test]
    fn passing_failing_and_unknown() {
        let verdict = linearizable(&history(lifecycle(VerifyResult::Revoked)));
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(
            verdict.summary,
            "1 jtis, 3 ops: 0 not linearizable, 0 unknown"
        );

        let verdict = linearizable(&history(lifecycle(VerifyResult::Active)));
        assert!(!verdict.ok);
        assert_eq!(verdict.violations.len(), 1);
        assert!(
            verdict.violations[0].contains("not linearizable"),
            "{verdict:?}"
        );

        let tight = Limits {
            step_budget: 1,
            ..Limits::default()
        };
        let verdict = linearizable_with(&history(lifecycle(VerifyResult::Revoked)), &tight);
        assert!(!verdict.ok);
        assert!(
            verdict.violations[0].contains("unknown (budget exhausted"),
            "{verdict:?}"
        );
    }
}
