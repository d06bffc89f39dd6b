//! Parsing, naming and strict validation of a policy text, with the line and column of every
//! error.
//!
//! Positions come from Cedar's source spans (byte offsets into the text), turned into 1-based
//! lines and columns (columns count characters, not bytes). Errors are sorted by (line, column,
//! message, policy id) and deduplicated, so the list is the same whatever order Cedar found them
//! in.

use std::{collections::BTreeMap, str::FromStr};

use cedar_policy::{PolicyId, PolicySet, ValidationMode, Validator};
use miette::Diagnostic;
use warrant_proto::log;

use super::{BUILT_IN_POLICY_ID, ValidatedPolicy, schema};
use crate::limits::{POLICIES_PER_SET_MAX, POLICY_ERRORS_MAX, POLICY_TEXT_BYTES_MAX};

/// A parsed text whose policies carry their final ids.
pub(super) struct Named {
    /// The published policies, named by `@id` or Cedar's default; no built-in.
    pub(super) policies: PolicySet,
    /// Their ids, sorted.
    pub(super) ids: Vec<String>,
    /// Where each policy starts in the text (byte offset), by id: the position of errors about
    /// a whole policy.
    starts: BTreeMap<String, usize>,
}

/// See [`super::validate`].
pub(super) fn validate(
    text: &str,
    attributes: &[log::PolicyAttribute],
) -> Result<ValidatedPolicy, Vec<log::PolicyError>> {
    if POLICY_TEXT_BYTES_MAX < text.len() {
        return Err(vec![error_at_start(format!(
            "the text is {} bytes long; allowed: at most {POLICY_TEXT_BYTES_MAX} bytes",
            text.len()
        ))]);
    }
    if let Err(error) = schema::check_attributes(attributes) {
        return Err(vec![error_at_start(error.to_string())]);
    }
    let schema = schema::schema(attributes).map_err(|message| vec![error_at_start(message)])?;
    let named = parse_named(text)?;
    let result = Validator::new(schema).validate(&named.policies, ValidationMode::Strict);
    let positions = Positions::new(text);
    let errors: Vec<log::PolicyError> = result
        .validation_errors()
        .map(|error| {
            let policy_id = error.policy_id().to_string();
            let offset = first_offset(error).or_else(|| named.starts.get(&policy_id).copied());
            positions.error(offset, &policy_id, &error.to_string())
        })
        .collect();
    if errors.is_empty() {
        return Ok(ValidatedPolicy {
            policy_ids: named.ids,
        });
    }
    Err(finish(errors))
}

/// Parses `text` and names each policy: its `@id` annotation, else Cedar's default `policyN`.
/// Refuses templates, more than [`POLICIES_PER_SET_MAX`] policies, an empty id, the built-in's
/// id and an id used twice.
pub(super) fn parse_named(text: &str) -> Result<Named, Vec<log::PolicyError>> {
    let positions = Positions::new(text);
    let parsed = PolicySet::from_str(text).map_err(|errors| {
        finish(
            errors
                .iter()
                .map(|error| positions.error(first_offset(error), "", &error.to_string()))
                .collect(),
        )
    })?;
    let statement_starts = statement_starts(text);
    // Cedar names the n-th statement `policyN`, templates included.
    let start_of = |default_id: &PolicyId| {
        default_id
            .to_string()
            .strip_prefix("policy")
            .and_then(|it| it.parse::<usize>().ok())
            .and_then(|idx| statement_starts.get(idx).copied())
    };
    let mut errors = Vec::new();
    for template in parsed.templates() {
        errors.push(positions.error(
            start_of(template.id()),
            template.id().as_ref(),
            "templates (policies with ?principal or ?resource slots) are not supported; allowed: \
             static policies",
        ));
    }
    if POLICIES_PER_SET_MAX < statement_starts.len() {
        errors.push(positions.error(
            statement_starts.get(POLICIES_PER_SET_MAX).copied(),
            "",
            &format!(
                "the text defines {} policies; allowed: at most {POLICIES_PER_SET_MAX}",
                statement_starts.len()
            ),
        ));
        return Err(finish(errors));
    }
    let mut policies = PolicySet::new();
    let mut starts = BTreeMap::new();
    for policy in parsed.policies() {
        let start = start_of(policy.id());
        let id = policy
            .annotation("id")
            .map_or_else(|| policy.id().to_string(), str::to_owned);
        let problem = if id.is_empty() {
            Some("has an empty @id; allowed: a non-empty id".to_owned())
        } else if id == BUILT_IN_POLICY_ID {
            Some(format!(
                "uses the reserved id {BUILT_IN_POLICY_ID}; allowed: any other id"
            ))
        } else if let Some(first) = starts.get(&id) {
            let (line, column) = positions.line_column(Some(*first));
            Some(format!(
                "repeats the id {id} of the policy at line {line}, column {column}; allowed: \
                 unique ids"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            errors.push(positions.error(start, &id, &format!("the policy {problem}")));
            continue;
        }
        starts.insert(id.clone(), start.unwrap_or(0));
        if let Err(error) = policies.add(policy.new_id(PolicyId::new(&id))) {
            errors.push(positions.error(start, &id, &error.to_string()));
        }
    }
    if !errors.is_empty() {
        return Err(finish(errors));
    }
    Ok(Named {
        policies,
        ids: starts.keys().cloned().collect(),
        starts,
    })
}

/// The offset of a diagnostic's first labelled span, if it has one.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    let mut labels = diagnostic.labels()?;
    labels.next().map(|label| label.offset())
}

/// Where each statement (policy) of a text that parsed starts: its first byte that is not
/// whitespace or a comment. Cedar ends every policy with `;`, and `;` appears nowhere else but
/// in strings and `//` comments, which this skips.
fn statement_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut in_statement = false;
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        let opens_statement = !in_statement && !byte.is_ascii_whitespace();
        match byte {
            b'/' if bytes.get(idx + 1) == Some(&b'/') => {
                while bytes.get(idx).is_some_and(|it| *it != b'\n') {
                    idx += 1;
                }
                continue;
            }
            b';' => in_statement = false,
            _ if opens_statement => {
                starts.push(idx);
                in_statement = true;
            }
            _ => {}
        }
        if byte == b'"' {
            idx = string_end(bytes, idx + 1);
            continue;
        }
        idx += 1;
    }
    starts
}

/// The offset just past the string literal whose body starts at `idx`.
fn string_end(bytes: &[u8], mut idx: usize) -> usize {
    while let Some(&byte) = bytes.get(idx) {
        match byte {
            b'\\' => idx += 2,
            b'"' => return idx + 1,
            _ => idx += 1,
        }
    }
    idx
}

/// Turns byte offsets into 1-based lines and columns.
struct Positions<'a> {
    text: &'a str,
}

impl<'a> Positions<'a> {
    fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// (0, 0) without an offset; an offset past the end or inside a character is clamped.
    fn line_column(&self, offset: Option<usize>) -> (u32, u32) {
        let Some(mut offset) = offset else {
            return (0, 0);
        };
        offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = self.text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |it| it + 1);
        let line = before.matches('\n').count().saturating_add(1);
        let column = before
            .get(line_start..)
            .unwrap_or_default()
            .chars()
            .count()
            .saturating_add(1);
        (saturating_u32(line), saturating_u32(column))
    }

    fn error(&self, offset: Option<usize>, policy_id: &str, message: &str) -> log::PolicyError {
        let (line, column) = self.line_column(offset);
        log::PolicyError {
            line,
            column,
            policy_id: policy_id.to_owned(),
            message: without_policy_prefix(message, policy_id).to_owned(),
        }
    }
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Cedar starts validation messages with "for policy `id`, "; the error names its policy in its
/// own field, so the message need not repeat it.
fn without_policy_prefix<'m>(message: &'m str, policy_id: &str) -> &'m str {
    let prefix = format!("for policy `{policy_id}`");
    match message.strip_prefix(&prefix) {
        Some(rest) => rest
            .strip_prefix(", ")
            .or_else(|| rest.strip_prefix(": "))
            .unwrap_or(rest),
        None => message,
    }
}

/// An error about the text or the declaration as a whole.
fn error_at_start(message: String) -> log::PolicyError {
    log::PolicyError {
        line: 0,
        column: 0,
        policy_id: String::new(),
        message,
    }
}

/// Sorts and deduplicates `errors`, and cuts them to [`POLICY_ERRORS_MAX`] entries, the last
/// one saying how many more there were.
fn finish(mut errors: Vec<log::PolicyError>) -> Vec<log::PolicyError> {
    errors.sort_by(|a, b| {
        (a.line, a.column, &a.message, &a.policy_id).cmp(&(
            b.line,
            b.column,
            &b.message,
            &b.policy_id,
        ))
    });
    errors.dedup();
    if POLICY_ERRORS_MAX < errors.len() {
        let shown = POLICY_ERRORS_MAX - 1;
        let hidden = errors.len() - shown;
        errors.truncate(shown);
        errors.push(error_at_start(format!(
            "and {hidden} more errors not shown; allowed: at most {POLICY_ERRORS_MAX} entries"
        )));
    }
    errors
}
