//! Pure checkers over a run's [`History`](crate::history::History) and the nodes' final
//! observations. Each returns a [`Verdict`]; none talks to a node.
//!
//! - [`lost_writes`]: every acknowledged W1 registration is in the final state, nothing else is;
//! - [`revocations_honoured`]: no LINEARIZABLE verify begun after a revoke's ack saw Active;
//! - [`linearizable`]: W2 per jti, by [`crate::linearizable`];
//! - [`digests_agree`]: equal state digests at equal applied index;
//! - [`audit_continuity`]: every node's audit log gapless, duplicate-free and the same;
//! - [`error_contract`]: every failure a known status with a documented reason;
//! - [`delegations_never_widen`]: no widening or cyclic W3 delegation acknowledged;
//! - [`liveness`]: how long after a heal the first write was acknowledged.

mod audit;
mod delegations;
mod digests;
mod errors;
mod linearizability;
mod liveness;
mod revocations;
mod writes;

pub use audit::{AUDIT_CONTINUITY, ProofCheck, audit_continuity};
pub use delegations::{DELEGATIONS_NEVER_WIDEN, delegations_never_widen};
pub use digests::{DIGESTS_AGREE, digests_agree};
pub use errors::{ERROR_CONTRACT, error_contract};
pub use linearizability::{LINEARIZABLE, linearizable, linearizable_with};
pub use liveness::{LIVENESS, liveness, liveness_after};
pub use revocations::{REVOCATIONS_HONOURED, revocations_honoured};
pub use writes::{LOST_WRITES, lost_writes};

use std::fmt;

use serde::Serialize;

/// The most violations a verdict lists; its summary counts them all.
pub const MAX_VIOLATIONS: usize = 20;

/// One checker's judgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub checker: &'static str,
    pub ok: bool,
    pub summary: String,
    /// The first [`MAX_VIOLATIONS`] violations, one readable line (or paragraph) each.
    pub violations: Vec<String>,
}

impl Verdict {
    /// A failure because the input does not allow a judgement (nothing to compare).
    fn cannot_judge(checker: &'static str, why: String) -> Verdict {
        Verdict {
            checker,
            ok: false,
            summary: format!("cannot judge: {why}"),
            violations: vec![why],
        }
    }
}

/// `PASS name: summary` or `FAIL name: summary`, then one indented line per violation.
impl fmt::Display for Verdict {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "PASS" } else { "FAIL" };
        write!(out, "{mark} {}: {}", self.checker, self.summary)?;
        for violation in &self.violations {
            write!(out, "\n  - {}", violation.replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

/// Collects violations, keeping the first [`MAX_VIOLATIONS`] and counting all.
#[derive(Default)]
struct Violations {
    kept: Vec<String>,
    total: usize,
}

impl Violations {
    fn push(&mut self, violation: String) {
        self.total += 1;
        if self.kept.len() < MAX_VIOLATIONS {
            self.kept.push(violation);
        }
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The verdict: ok if nothing was pushed. The summary gains the violation count.
    fn verdict(self, checker: &'static str, summary: String) -> Verdict {
        let summary = match self.total {
            0 => summary,
            total if total > self.kept.len() => {
                format!(
                    "{summary}; {total} violations, the first {} listed",
                    self.kept.len()
                )
            }
            total => format!("{summary}; {total} violations"),
        };
        Verdict {
            checker,
            ok: self.total == 0,
            summary,
            violations: self.kept,
        }
    }
}

/// Shared by the checkers' tests: a history from ops in order, indices filled in.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::history::{History, Op, OpF, Outcome, Value, VerifyResult};

    pub fn op(f: OpF, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Op {
        Op {
            index: 0,
            process: 0,
            node: 1,
            key: f.key().to_owned(),
            f,
            invoke_ns,
            complete_ns,
            outcome,
        }
    }

    pub fn history(mut ops: Vec<Op>) -> History {
        for (index, op) in ops.iter_mut().enumerate() {
            op.index = index;
        }
        History::from_ops(ops).expect("well-formed test history")
    }

    pub fn ack() -> Outcome {
        Outcome::Ok(Value::Ack)
    }

    pub fn verified(result: VerifyResult) -> Outcome {
        Outcome::Ok(Value::Verified { result })
    }

    pub fn fail(code: &str, reason: &str) -> Outcome {
        Outcome::Fail {
            code: code.into(),
            reason: reason.into(),
        }
    }

    pub fn info(code: &str, reason: &str) -> Outcome {
        Outcome::Info {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_bounded_and_counted() {
        let mut violations = Violations::default();
        for n in 0..MAX_VIOLATIONS + 5 {
            violations.push(format!("v{n}"));
        }
        let verdict = violations.verdict("test", "checked".into());
        assert!(!verdict.ok);
        assert_eq!(verdict.violations.len(), MAX_VIOLATIONS);
        assert!(
            verdict
                .summary
                .contains(&format!("{} violations", MAX_VIOLATIONS + 5))
        );
        assert!(
            verdict
                .to_string()
                .starts_with("FAIL test: checked; 25 violations")
        );
        assert!(verdict.to_string().contains("\n  - v0\n  - v1\n"));
        let clean = Violations::default().verdict("test", "checked".into());
        assert_eq!(clean.to_string(), "PASS test: checked");
        assert!(clean.ok && clean.violations.is_empty());
        assert_eq!(clean.summary, "checked");
    }
}
