//! The replicas agree: nodes at the same applied index have the same state digest.

use std::collections::BTreeMap;

use super::{Verdict, Violations};

pub const DIGESTS_AGREE: &str = "digests_agree";

/// `reports` holds `(node_id, applied_index, digest_hex)` as each node reported them. Nodes at
/// an equal applied index must report equal digests (hex compared case-insensitively). If no
/// two nodes share an index nothing could be compared, which fails too.
pub fn digests_agree(reports: &[(u64, u64, String)]) -> Verdict {
    let mut by_index: BTreeMap<u64, Vec<(u64, &str)>> = BTreeMap::new();
    for (node, applied, digest) in reports {
        by_index
            .entry(*applied)
            .or_default()
            .push((*node, digest.as_str()));
    }
    let mut violations = Violations::default();
    let mut compared = 0;
    for (applied, nodes) in &by_index {
        let Some(&(first_node, first_digest)) = nodes.first() else {
            continue;
        };
        if nodes.iter().all(|&(node, _)| node == first_node) {
            continue;
        }
        compared += 1;
        for &(node, digest) in &nodes[1..] {
            if !digest.eq_ignore_ascii_case(first_digest) {
                violations.push(format!(
                    "at applied index {applied}: node {first_node} has digest {first_digest}, node {node} has {digest}"
                ));
            }
        }
    }
    if compared == 0 && violations.is_empty() {
        return Verdict::cannot_judge(
            DIGESTS_AGREE,
            format!("no two of {} reports share an applied index", reports.len()),
        );
    }
    let summary = format!(
        "{} reports, {compared} applied indices held by two or more nodes",
        reports.len()
    );
    violations.verdict(DIGESTS_AGREE, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (node, applied index, digest)
    type Report = (u64, u64, &'static str);

    #[test]
    fn table() {
        // (name, reports, ok, violations)
        let cases: Vec<(&str, Vec<Report>, bool, usize)> = vec![
            (
                "all equal",
                vec![(1, 9, "ab"), (2, 9, "AB"), (3, 9, "ab")],
                true,
                0,
            ),
            (
                "a laggard is not compared",
                vec![(1, 9, "ab"), (2, 9, "ab"), (3, 7, "cd")],
                true,
                0,
            ),
            (
                "one diverges",
                vec![(1, 9, "ab"), (2, 9, "ab"), (3, 9, "cd")],
                false,
                1,
            ),
            (
                "no shared index",
                vec![(1, 9, "ab"), (2, 8, "ab"), (3, 7, "ab")],
                false,
                1,
            ),
            ("nothing reported", vec![], false, 1),
        ];
        for (name, reports, ok, violations) in cases {
            let reports: Vec<(u64, u64, String)> = reports
                .into_iter()
                .map(|(node, applied, digest)| (node, applied, digest.to_owned()))
                .collect();
            let verdict = digests_agree(&reports);
            assert_eq!(verdict.ok, ok, "{name}: {verdict:?}");
            assert_eq!(verdict.violations.len(), violations, "{name}: {verdict:?}");
        }
    }

    #[test]
    fn divergence_names_both_nodes() {
        let verdict = digests_agree(&[(1, 4, "aa".into()), (3, 4, "bb".into())]);
        assert_eq!(
            verdict.violations,
            vec!["at applied index 4: node 1 has digest aa, node 3 has bb"]
        );
    }
}
