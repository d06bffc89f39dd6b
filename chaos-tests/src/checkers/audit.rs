//! W5: the audit log is the same on every node, gapless and duplicate-free, and its proofs hold.

use std::collections::BTreeMap;

use super::{Verdict, Violations};

pub const AUDIT_CONTINUITY: &str = "audit_continuity";

/// What the caller found checking the audit log's inclusion and consistency proofs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofCheck {
    pub verified: bool,
    /// What was checked, or what failed, for the summary.
    pub details: String,
}

/// `per_node` maps a node id to its audit records `(seq, record_sha256_hex)` in the order the
/// node returned them. Each node's list must run gapless from its first seq without
/// duplicates; all nodes must agree on the hash at every seq they share; `proofs` must be
/// verified. Fewer than two nodes with records leave nothing to compare, which fails too.
pub fn audit_continuity(
    per_node: &BTreeMap<u64, Vec<(u64, String)>>,
    proofs: &ProofCheck,
) -> Verdict {
    let mut violations = Violations::default();
    for (node, records) in per_node {
        check_one_node(*node, records, &mut violations);
    }
    // seq -> the first node seen holding it, and its hash there.
    let mut first_seen: BTreeMap<u64, (u64, &str)> = BTreeMap::new();
    let mut shared = 0;
    for (node, records) in per_node {
        for (seq, hash) in records {
            match first_seen.get(seq) {
                None => {
                    first_seen.insert(*seq, (*node, hash.as_str()));
                }
                Some(&(other, _)) if other == *node => {}
                Some(&(other, other_hash)) => {
                    shared += 1;
                    if !other_hash.eq_ignore_ascii_case(hash) {
                        violations.push(format!(
                            "seq {seq}: node {other} has record {other_hash}, node {node} has {hash}"
                        ));
                    }
                }
            }
        }
    }
    if !proofs.verified {
        violations.push(format!("proofs did not verify: {}", proofs.details));
    }
    let nodes_with_records = per_node
        .values()
        .filter(|records| !records.is_empty())
        .count();
    if nodes_with_records < 2 && violations.is_empty() {
        return Verdict::cannot_judge(
            AUDIT_CONTINUITY,
            format!("{nodes_with_records} node(s) returned audit records; agreement needs two"),
        );
    }
    let span = match (first_seen.keys().next(), first_seen.keys().next_back()) {
        (Some(low), Some(high)) => format!("seq {low}..={high}"),
        _ => "no records".to_owned(),
    };
    let summary = format!(
        "{nodes_with_records} nodes, {span}, {shared} records compared across nodes; proofs: {}",
        proofs.details
    );
    violations.verdict(AUDIT_CONTINUITY, summary)
}

/// One node's list: each seq one more than the one before it.
fn check_one_node(node: u64, records: &[(u64, String)], violations: &mut Violations) {
    for pair in records.windows(2) {
        let (previous, seq) = (pair[0].0, pair[1].0);
        if seq == previous {
            violations.push(format!("node {node}: seq {seq} appears twice"));
        } else if seq < previous {
            violations.push(format!("node {node}: seq {seq} comes after seq {previous}"));
        } else if seq > previous + 1 {
            violations.push(format!(
                "node {node}: gap, seq {}..={} missing between {previous} and {seq}",
                previous + 1,
                seq - 1
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: &[(u64, &str)]) -> Vec<(u64, String)> {
        records
            .iter()
            .map(|&(seq, hash)| (seq, hash.to_owned()))
            .collect()
    }

    fn verified() -> ProofCheck {
        ProofCheck {
            verified: true,
            details: "3 consistency proofs verified".into(),
        }
    }

    #[test]
    fn table() {
        let good = log(&[(1, "a"), (2, "b"), (3, "c")]);
        // (name, per node, proofs, ok, violations)
        let cases = vec![
            (
                "all agree",
                vec![
                    (1, good.clone()),
                    (2, good.clone()),
                    (3, log(&[(2, "b"), (3, "c")])),
                ],
                verified(),
                true,
                0,
            ),
            (
                "a node behind, from a later start",
                vec![(1, good.clone()), (2, log(&[(3, "c"), (4, "d")]))],
                verified(),
                true,
                0,
            ),
            (
                "gap",
                vec![(1, log(&[(1, "a"), (3, "c")])), (2, good.clone())],
                verified(),
                false,
                1,
            ),
            (
                "duplicate",
                vec![(1, log(&[(1, "a"), (1, "a"), (2, "b")])), (2, good.clone())],
                verified(),
                false,
                1,
            ),
            (
                "out of order",
                vec![(1, log(&[(2, "b"), (1, "a")])), (2, good.clone())],
                verified(),
                false,
                1,
            ),
            (
                "disagreement",
                vec![(1, good.clone()), (2, log(&[(1, "a"), (2, "x"), (3, "c")]))],
                verified(),
                false,
                1,
            ),
            (
                "proofs failed",
                vec![(1, good.clone()), (2, good.clone())],
                ProofCheck {
                    verified: false,
                    details: "root mismatch at size 3".into(),
                },
                false,
                1,
            ),
            (
                "one node only",
                vec![(1, good.clone()), (2, Vec::new())],
                verified(),
                false,
                1,
            ),
        ];
        for (name, per_node, proofs, ok, violations) in cases {
            let per_node: BTreeMap<u64, Vec<(u64, String)>> = per_node.into_iter().collect();
            let verdict = audit_continuity(&per_node, &proofs);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
        }
    }

    #[test]
    fn gap_names_the_missing_seqs() {
        let per_node = BTreeMap::from([(1, log(&[(1, "a"), (4, "d")])), (2, log(&[(1, "a")]))]);
        let verdict = audit_continuity(&per_node, &verified());
        assert_eq!(
            verdict.violations,
            vec!["node 1: gap, seq 2..=3 missing between 1 and 4"]
        );
    }
}
