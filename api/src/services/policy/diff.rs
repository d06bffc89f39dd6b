//! What changed between two policy versions: by policy id (added, removed, changed), and a
//! unified line diff of the texts.

use std::collections::BTreeMap;

use cedar_policy::PolicySet;

/// Context lines around each hunk of the unified diff.
const DIFF_CONTEXT_LINES: usize = 3;

/// The difference between two policy texts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PolicyDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unified: String,
}

/// Each policy (and template) of `text` by id: its `@id("…")` annotation, else Cedar's default
/// (`policy0`, `policy1`… in text order), as publication names them. The value is the policy as
/// written, trimmed, so a change of layout elsewhere in the text does not mark it changed.
///
/// Published texts were validated, so they parse; one that does not is reported as an error.
pub fn policies_by_id(text: &str) -> Result<BTreeMap<String, String>, String> {
    let set: PolicySet = text
        .parse()
        .map_err(|e: cedar_policy::ParseErrors| e.to_string())?;
    let mut by_id = BTreeMap::new();
    for policy in set.policies() {
        let id = policy
            .annotation("id")
            .map_or_else(|| policy.id().to_string(), str::to_string);
        by_id.insert(id, policy.to_string().trim().to_string());
    }
    for template in set.templates() {
        let id = template
            .annotation("id")
            .map_or_else(|| template.id().to_string(), str::to_string);
        by_id.insert(id, template.to_string().trim().to_string());
    }
    Ok(by_id)
}

/// The diff from `from_text` to `to_text`, whose unified diff names them `from_label` and
/// `to_label`.
pub fn diff(
    from_text: &str,
    to_text: &str,
    from_label: &str,
    to_label: &str,
) -> Result<PolicyDiff, String> {
    let from = policies_by_id(from_text)?;
    let to = policies_by_id(to_text)?;
    let added = to
        .keys()
        .filter(|id| !from.contains_key(*id))
        .cloned()
        .collect();
    let removed = from
        .keys()
        .filter(|id| !to.contains_key(*id))
        .cloned()
        .collect();
    let changed = from
        .iter()
        .filter(|(id, text)| to.get(*id).is_some_and(|other| other != *text))
        .map(|(id, _)| id.clone())
        .collect();
    let unified = similar::TextDiff::from_lines(from_text, to_text)
        .unified_diff()
        .context_radius(DIFF_CONTEXT_LINES)
        .header(from_label, to_label)
        .to_string();
    Ok(PolicyDiff {
        added,
        removed,
        changed,
        unified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"@id("no-transfer")
forbid(principal, action, resource == Tool::"fx-mcp/transfer");

@id("business-hours")
forbid(principal, action, resource)
when { context.time < 0 };

permit(principal, action, resource);
"#;

    const V2: &str = r#"@id("no-transfer")
forbid(principal, action, resource == Tool::"fx-mcp/transfer");

@id("business-hours")
forbid(principal, action, resource)
when { context.time < 100 };

@id("small-amounts")
forbid(principal, action == Action::"call", resource == Tool::"fx-mcp/convert")
when { context.attributes has amount && context.attributes.amount > 10000 };
"#;

    #[test]
    fn ids_come_from_annotations_or_cedars_defaults() {
        let ids: Vec<String> = policies_by_id(V1).expect("parses").into_keys().collect();
        assert_eq!(ids, vec!["business-hours", "no-transfer", "policy2"]);
    }

    #[test]
    fn diff_names_added_removed_and_changed_policies_and_the_lines() {
        let diff = diff(V1, V2, "version 1", "version 2").expect("both parse");
        assert_eq!(diff.added, vec!["small-amounts"]);
        assert_eq!(diff.removed, vec!["policy2"]);
        assert_eq!(diff.changed, vec!["business-hours"]);
        assert!(
            diff.unified.starts_with("--- version 1\n+++ version 2\n"),
            "{}",
            diff.unified
        );
        assert!(
            diff.unified.contains("\n-when { context.time < 0 };\n"),
            "{}",
            diff.unified
        );
        assert!(
            diff.unified.contains("\n+when { context.time < 100 };\n"),
            "{}",
            diff.unified
        );
        assert!(
            diff.unified
                .contains("\n-permit(principal, action, resource);\n")
        );
        // Unchanged far from any change: outside every hunk's context.
        let same = super::diff(V1, V1, "a", "b").expect("parses");
        assert_eq!(same, PolicyDiff::default());
    }

    #[test]
    fn a_text_that_does_not_parse_is_an_error() {
        assert!(diff("permit(", V1, "a", "b").is_err());
    }
}
