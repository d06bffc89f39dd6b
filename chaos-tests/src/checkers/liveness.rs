//! After a heal, the cluster accepts writes again within a bound.

use std::time::Duration;

use super::{Verdict, Violations};
use crate::history::History;

pub const LIVENESS: &str = "liveness";

/// The gap between the heal at `heal_ns` and the first write acknowledged after it at
/// `first_write_ns` (both on the recorder's clock), ok if it is under `bound`.
pub fn liveness(heal_ns: u64, first_write_ns: Option<u64>, bound: Duration) -> Verdict {
    let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    let mut violations = Violations::default();
    let summary = match first_write_ns {
        None => {
            violations.push(format!(
                "no write was acknowledged after the heal at {heal_ns} ns"
            ));
            format!("no write after the heal (bound {} ms)", bound.as_millis())
        }
        Some(first) if first < heal_ns => {
            violations.push(format!(
                "the first write ({first} ns) is before the heal ({heal_ns} ns): wrong input"
            ));
            "first write before the heal".to_owned()
        }
        Some(first) => {
            let gap = Duration::from_nanos(first - heal_ns);
            if first - heal_ns >= bound_ns {
                violations.push(format!(
                    "the first write after the heal took {} ms, bound {} ms",
                    gap.as_millis(),
                    bound.as_millis()
                ));
            }
            format!(
                "first write {} ms after the heal (bound {} ms)",
                gap.as_millis(),
                bound.as_millis()
            )
        }
    };
    violations.verdict(LIVENESS, summary)
}

/// [`liveness`] with the first acknowledged write after `heal_ns` taken from the history.
pub fn liveness_after(history: &History, heal_ns: u64, bound: Duration) -> Verdict {
    let first = history
        .first_acknowledged_write_after(heal_ns)
        .map(|op| op.complete_ns);
    liveness(heal_ns, first, bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::test_support::{ack, history, op};
    use crate::history::OpF;

    const MS: u64 = 1_000_000;

    #[test]
    fn table() {
        let bound = Duration::from_secs(5);
        // (name, heal, first write, ok)
        let cases = vec![
            ("quick recovery", 10 * MS, Some(1_200 * MS), true),
            ("too slow", 10 * MS, Some(6_000 * MS), false),
            ("never", 10 * MS, None, false),
            ("inverted input", 10 * MS, Some(5 * MS), false),
        ];
        for (name, heal, first, ok) in cases {
            let verdict = liveness(heal, first, bound);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(
                verdict.violations.len(),
                usize::from(!ok),
                "{name}: {verdict:?}"
            );
        }
        let verdict = liveness(0, Some(1_500 * MS), bound);
        assert_eq!(
            verdict.summary,
            "first write 1500 ms after the heal (bound 5000 ms)"
        );
    }

    #[test]
    fn from_the_history() {
        let ops = vec![
            op(OpF::RegisterHuman { id: "a".into() }, 0, 2 * MS, ack()),
            op(
                OpF::RegisterHuman { id: "b".into() },
                3 * MS,
                900 * MS,
                ack(),
            ),
        ];
        let verdict = liveness_after(&history(ops), 100 * MS, Duration::from_secs(1));
        assert!(verdict.ok, "{verdict:?}");
        assert!(
            verdict.summary.starts_with("first write 800 ms"),
            "{verdict:?}"
        );
    }
}
